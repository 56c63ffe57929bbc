//! Batched socket sends through io_uring, for the hub's fan-out.
//!
//! A fan-out's cost is mostly the kernel's: one `send` per delivery, each a
//! syscall. Submitting a chunk's sends as one io_uring batch keeps the
//! kernel's work (copy, loopback or NIC delivery) and drops the per-message
//! syscall entry and exit — on this project's bench machine 0.4–1.2 µs of
//! about 7 µs per 300-byte message (`bench/socket-floor.sh uring`).
//!
//! Every request carries `MSG_DONTWAIT`, so the kernel issues it during the
//! `io_uring_enter` that submits it and answers `EAGAIN` for a full socket
//! instead of parking the request — `try_write` semantics, nothing left in
//! flight when [`send_all`] returns. That is what makes lending it plain
//! borrowed buffers and descriptors sound: the caller keeps both alive for
//! the call, and the kernel is done with them before it returns.
//!
//! One ring per thread: a batch never spans an await, so it is submitted and
//! reaped on one thread, which lets the ring use `SINGLE_ISSUER` and
//! `DEFER_TASKRUN` (completions are only run when this thread asks). Where
//! io_uring cannot be set up (an old kernel, a seccomp filter, the
//! `kernel.io_uring_disabled` sysctl) [`send_all`] says so and the caller
//! sends by itself.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;

use io_uring::{IoUring, opcode, types};

/// Requests per submission; a hub chunk (64 subscribers) fits in one.
const RING_ENTRIES: u32 = 256;

enum Ring {
    Unset,
    // Boxed: the ring struct is ~270 bytes and the thread-local is touched
    // once per batch, so one indirection is free.
    Ready(Box<IoUring>),
    Unavailable,
}

thread_local! {
    static RING: RefCell<Ring> = const { RefCell::new(Ring::Unset) };
}

/// Whether this thread can send through io_uring (setting its ring up).
pub fn available() -> bool {
    RING.with(|ring| ring_of(&mut ring.borrow_mut()).is_some())
}

/// Sends each `(socket, bytes)` once without blocking and stores what each
/// send returned in `results` (same order): bytes written, or the error —
/// `WouldBlock` for a full socket. Returns false, sending nothing, when this
/// thread has no io_uring.
pub fn send_all(sends: &[(RawFd, &[u8])], results: &mut Vec<io::Result<usize>>) -> bool {
    RING.with(|cell| {
        let mut slot = cell.borrow_mut();
        let Some(ring) = ring_of(&mut slot) else { return false };
        // Requests that never reach the kernel stay `WouldBlock`, so their
        // bytes are queued, not lost.
        results.clear();
        results.resize_with(sends.len(), || Err(io::ErrorKind::WouldBlock.into()));
        for (chunk, out) in sends.chunks(RING_ENTRIES as usize).zip(results.chunks_mut(RING_ENTRIES as usize)) {
            if let Err(e) = submit_chunk(ring, chunk, out) {
                // Nothing is in flight (see the module's note); a ring that
                // fails here is not trusted again on this thread.
                tracing::warn!(error = %e, "io_uring send failed; this thread sends with plain writes from now on");
                *slot = Ring::Unavailable;
                break;
            }
        }
        true
    })
}

fn ring_of(slot: &mut Ring) -> Option<&mut IoUring> {
    if let Ring::Unset = slot {
        *slot = match build_ring() {
            Ok(ring) => Ring::Ready(Box::new(ring)),
            Err(e) => {
                tracing::info!(error = %e, "io_uring unavailable; the fan-out uses plain writes");
                Ring::Unavailable
            }
        };
    }
    match slot {
        Ring::Ready(ring) => Some(ring),
        _ => None,
    }
}

fn build_ring() -> io::Result<IoUring> {
    // DEFER_TASKRUN needs Linux 6.1; older kernels get a plain ring.
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(RING_ENTRIES)
        .or_else(|_| IoUring::new(RING_ENTRIES))
}

/// Submits up to [`RING_ENTRIES`] sends and waits for all their completions;
/// `results[i]` gets request i's result.
fn submit_chunk(ring: &mut IoUring, sends: &[(RawFd, &[u8])], results: &mut [io::Result<usize>]) -> io::Result<()> {
    {
        let mut sq = ring.submission();
        for (i, (fd, bytes)) in sends.iter().enumerate() {
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            let send = opcode::Send::new(types::Fd(*fd), bytes.as_ptr(), len)
                .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                .build()
                .user_data(i as u64);
            // SAFETY: the buffer and descriptor are borrowed for this call,
            // and every request completes before it returns (MSG_DONTWAIT).
            if unsafe { sq.push(&send) }.is_err() {
                return Err(io::Error::other("submission queue full"));
            }
        }
    }
    let mut done = 0;
    while done < sends.len() {
        match ring.submit_and_wait(sends.len() - done) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // The caller gives the ring up, so requests the kernel did
                // not take are never submitted; they stay `EAGAIN` here.
                reap(ring, results, &mut done);
                return Err(e);
            }
        }
        reap(ring, results, &mut done);
    }
    Ok(())
}

fn reap(ring: &mut IoUring, results: &mut [io::Result<usize>], done: &mut usize) {
    for cqe in ring.completion() {
        if let Some(result) = results.get_mut(cqe.user_data() as usize) {
            *result = match cqe.result() {
                n if n >= 0 => Ok(n as usize),
                n => Err(io::Error::from_raw_os_error(-n)),
            };
            *done += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    use super::{available, send_all};

    const REFUSED: &str = "this kernel refuses io_uring (seccomp, kernel.io_uring_disabled); \
                           enms falls back to plain writes, but these tests need it";

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        (server, client)
    }

    #[test]
    fn a_batch_reaches_every_socket_in_order() {
        assert!(available(), "{REFUSED}");
        let pairs: Vec<_> = (0..300).map(|_| pair()).collect();
        let frames: Vec<Vec<u8>> = (0..300).map(|i| format!("frame {i}").into_bytes()).collect();
        let sends: Vec<_> = pairs.iter().zip(&frames).map(|((s, _), f)| (s.as_raw_fd(), f.as_slice())).collect();
        let mut results = Vec::new();
        assert!(send_all(&sends, &mut results));
        for (i, ((_, mut client), frame)) in pairs.into_iter().zip(&frames).enumerate() {
            assert_eq!(results[i].as_ref().ok(), Some(&frame.len()), "socket {i}");
            let mut got = vec![0; frame.len()];
            client.read_exact(&mut got).expect("read");
            assert_eq!(&got, frame);
        }
    }

    #[test]
    fn a_full_socket_answers_would_block_and_a_closed_one_an_error() {
        assert!(available(), "{REFUSED}");
        let (full, _reader) = pair();
        let (reset, peer) = pair();
        drop(peer);
        let big = vec![7u8; 1 << 20];
        let mut results = Vec::new();
        // Fill the first socket until the kernel refuses more.
        let mut blocked = false;
        for _ in 0..256 {
            assert!(send_all(&[(full.as_raw_fd(), &big)], &mut results));
            if matches!(&results[0], Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
                blocked = true;
                break;
            }
        }
        assert!(blocked, "a socket nobody reads must fill up: {results:?}");
        // A peer that hung up: the first send may still be accepted, a later
        // one fails with a reset or broken pipe, never blocks or succeeds.
        // Over loopback the peer's reset arrives during that first send.
        let mut outcome = Ok(0);
        for _ in 0..2 {
            assert!(send_all(&[(reset.as_raw_fd(), b"x")], &mut results));
            outcome = results.pop().expect("one result");
        }
        let err = outcome.expect_err("sending to a closed peer fails");
        assert_ne!(err.kind(), std::io::ErrorKind::WouldBlock);
    }
}
