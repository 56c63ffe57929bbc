//! WebSocket framing of what the server sends: the header of an unmasked,
//! final frame. The bus pre-encodes every event as a complete text frame
//! with it, so the hub writes the same bytes to every socket; the outbox
//! and the WebSocket handler use it for pings and closes. Reading (masking,
//! fragments, limits) stays with tungstenite.

pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;

/// The header of an unmasked, final server frame.
pub fn frame_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

#[cfg(test)]
mod tests {
    use super::frame_header;

    #[test]
    fn headers_use_the_shortest_length_encoding() {
        assert_eq!(&frame_header(0x1, 5).0[..2], &[0x81, 5]);
        let (h, n) = frame_header(0x1, 300);
        assert_eq!(&h[..n], &[0x81, 126, 1, 44]);
        let (h, n) = frame_header(0x8, 70_000);
        assert_eq!(&h[..n], &[0x88, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }
}
