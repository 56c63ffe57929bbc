//! The fan-out benchmark's WebSocket client: a plain-TCP handshake, then
//! frames parsed straight out of one read buffer.
//!
//! A general client (tungstenite) costs the load core a task wake-up, a
//! copy, an allocation and a UTF-8 check per message; with 1000 clients
//! receiving 100,000 messages a second on one core it saturated that core,
//! and the queueing it caused showed up as server latency. This client does
//! only what the benchmark needs — receive unmasked server frames, answer
//! pings, send a close — and it asks the kernel to stamp every packet it
//! receives (`SO_TIMESTAMPNS`), so the benchmark can tell when the server's
//! bytes reached the client's socket apart from when this client, sharing
//! its core with 999 others, got round to reading them.
//! Plain `ws://` only; fragmented messages are refused (the server never
//! fragments).

use std::io::{self, IoSliceMut};
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Read buffer per connection; events are a few hundred bytes.
const BUFFER: usize = 16 << 10;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A received message: text or binary payload, or the server's close.
pub enum Received<'a> {
    Message(&'a [u8]),
    Closed,
}

pub struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    cmsg: Vec<u8>,
    /// Kernel receive time (µs since the epoch) of the newest packet read.
    arrived_us: Option<u64>,
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// `http://host:port/prefix` → (`host:port`, `/prefix`); the prefix is
/// empty at the root.
pub fn split_url(url: &str) -> io::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| invalid(format!("{url}: the benchmark client speaks plain http:// / ws:// only")))?;
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let path = path.trim_end_matches('/');
    Ok((host.to_owned(), if path.is_empty() { String::new() } else { format!("/{path}") }))
}

impl RawWs {
    /// Opens `path` on `host` (`host:port`) and completes the handshake.
    pub async fn connect(host: &str, path: &str) -> io::Result<Self> {
        let mut stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        setsockopt(&stream, sockopt::ReceiveTimestampns, &true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: ZW5tcy1iZW5jaC1jbGllbnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut ws =
            Self { stream, buf: vec![0; BUFFER], start: 0, end: 0, cmsg: nix::cmsg_space!(TimeSpec), arrived_us: None };
        let head_end = loop {
            if let Some(i) = ws.buf[..ws.end].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            ws.fill().await?;
        };
        if !ws.buf.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&ws.buf[..head_end]).into_owned();
            return Err(invalid(format!("handshake refused: {}", head.lines().next().unwrap_or(""))));
        }
        ws.start = head_end;
        Ok(ws)
    }

    /// The next text or binary message; pings are answered on the way.
    pub async fn recv(&mut self) -> io::Result<Received<'_>> {
        loop {
            let (opcode, payload) = match self.parse()? {
                Some(frame) => frame,
                None => {
                    self.fill().await?;
                    continue;
                }
            };
            match opcode {
                OP_TEXT | OP_BINARY => return Ok(Received::Message(&self.buf[payload])),
                OP_CLOSE => return Ok(Received::Closed),
                OP_PING => {
                    let data = self.buf[payload].to_vec();
                    self.send(OP_PONG, &data).await?;
                }
                OP_PONG => {}
                other => return Err(invalid(format!("unexpected opcode {other:#x}"))),
            }
        }
    }

    /// When the kernel received the packet that completed the last message
    /// `recv` returned (µs since the epoch; several messages read at once
    /// share the newest packet's time, so it is never early).
    pub fn arrived_us(&self) -> Option<u64> {
        self.arrived_us
    }

    /// Sends a close frame (1000); the caller then drops the connection.
    pub async fn close(mut self) -> io::Result<()> {
        self.send(OP_CLOSE, &1000u16.to_be_bytes()).await
    }

    /// One complete frame from the buffer, consumed; `None` if incomplete.
    fn parse(&mut self) -> io::Result<Option<(u8, Range<usize>)>> {
        let b = &self.buf[self.start..self.end];
        if b.len() < 2 {
            return Ok(None);
        }
        if b[0] & 0x80 == 0 {
            return Err(invalid("fragmented frame"));
        }
        if b[1] & 0x80 != 0 {
            return Err(invalid("masked server frame"));
        }
        let (len, header) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (usize::try_from(u64::from_be_bytes(n)).map_err(|_| invalid("frame too long"))?, 10)
            }
            126 | 127 => return Ok(None),
            n => (n as usize, 2),
        };
        if b.len() < header + len {
            if header + len > self.buf.len() {
                self.buf.resize(header + len, 0);
            }
            return Ok(None);
        }
        let opcode = b[0] & 0x0F;
        let payload = self.start + header..self.start + header + len;
        self.start = payload.end;
        Ok(Some((opcode, payload)))
    }

    /// Reads more bytes, first moving what is left to the front.
    async fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let fd = self.stream.as_raw_fd();
        let (buf, cmsg) = (&mut self.buf[self.end..], &mut self.cmsg);
        let (n, arrived) = self.stream.async_io(Interest::READABLE, || recv_stamped(fd, buf, cmsg)).await?;
        self.arrived_us = arrived.or(self.arrived_us);
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// A client frame: masked, as the protocol requires (with a zero key,
    /// which leaves the payload as is).
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        if payload.len() > 125 {
            return Err(invalid("control frame payload over 125 bytes"));
        }
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await
    }
}

/// One `recvmsg`: bytes read and the kernel's receive time of the newest.
fn recv_stamped(fd: RawFd, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(cmsg), MsgFlags::empty())?;
    let mut arrived = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmTimestampns(t) = c {
            arrived = Some(t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000);
        }
    }
    Ok((msg.bytes, arrived))
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls_split_into_host_and_prefix() {
        let (h, p) = split_url("http://127.0.0.1:8080").unwrap();
        assert_eq!((h.as_str(), p.as_str()), ("127.0.0.1:8080", ""));
        let (h, p) = split_url("http://localhost:1/enms/").unwrap();
        assert_eq!((h.as_str(), p.as_str()), ("localhost:1", "/enms"));
        assert!(split_url("https://x").is_err());
    }
}
