//! The accepted TCP stream under hyper, able to hold back the bytes of a
//! WebSocket handshake's `101 Switching Protocols` so they leave in one
//! write with the `connection` message that follows.
//!
//! Hyper writes and flushes the 101 itself, before the upgraded socket is
//! handed over; the greeting then went as a second segment. On loopback the
//! sender's core pays for the receiver's TCP processing and wake-up of each
//! segment, so opening 5000 connections cost two of each per connection.
//! The WebSocket handler raises the [`HoldHandshake`] flag (a request
//! extension) just before it answers 101; from then on writes collect here,
//! and after the upgrade the gateway takes them with the stream and sends
//! them in front of the greeting. Every other response is written through.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Set by the WebSocket handler on the connection it answers 101 on.
#[derive(Clone, Default)]
pub struct HoldHandshake(Arc<AtomicBool>);

impl HoldHandshake {
    pub fn hold(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn holding(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

pub struct HeldStream {
    stream: TcpStream,
    flag: HoldHandshake,
    held: Vec<u8>,
}

impl HeldStream {
    pub fn new(stream: TcpStream) -> (Self, HoldHandshake) {
        let flag = HoldHandshake::default();
        (Self { stream, flag: flag.clone(), held: Vec::new() }, flag)
    }

    /// The stream and what was held back (empty unless a handshake was).
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.held)
    }
}

impl AsyncRead for HeldStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for HeldStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.flag.holding() {
            this.held.extend_from_slice(data);
            return Poll::Ready(Ok(data.len()));
        }
        Pin::new(&mut this.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.flag.holding() {
            let before = this.held.len();
            for b in bufs {
                this.held.extend_from_slice(b);
            }
            return Poll::Ready(Ok(this.held.len() - before));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.flag.holding() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
