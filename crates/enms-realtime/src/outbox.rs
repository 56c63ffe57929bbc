//! A WebSocket connection's socket, shared by the hub and the connection task.
//!
//! The hub writes each event straight to the socket from the dispatching
//! task when nothing is waiting before it: no task wake-up, no queue and no
//! copy per delivery. A single event goes into the chunk's [`SendBatch`] —
//! one io_uring submission for every socket of the chunk (see
//! `crate::uring`); while it is in flight the outbox counts as busy, so
//! anything else for that socket queues behind it. Several events at once,
//! or a thread without io_uring, take a direct `try_write`. Whatever cannot
//! go at once — the socket is full, or earlier bytes are still waiting — is
//! kept in order in `pending`, capped in messages and bytes, and the
//! connection task writes it when the socket becomes writable, coalescing
//! up to [`MAX_IOV`] pieces per write. Going over a cap makes the client a slow consumer.
//!
//! Reading stays with tungstenite (masking, fragments, control frames, size
//! limits) through [`ReadSide`]; the frames it writes itself (pong, close
//! echo) join `pending` too, so every byte leaves in order.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use enms_core::event::EventId;
use enms_core::setting::{InvalidSetting, at_least_one};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::envelope::Delivery;
use crate::uring;
use crate::wire::{OP_TEXT, frame_header};

/// Slices per vectored write when draining `pending`.
const MAX_IOV: usize = 64;

/// Caps on one subscriber's queue of undelivered events.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub messages: usize,
    pub bytes: usize,
}

impl QueueLimits {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least_one("queue_messages", self.messages)?;
        at_least_one("queue_bytes", self.bytes)
    }
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self { messages: 4096, bytes: 4 << 20 }
    }
}

/// What became of an event offered to a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Sent,
    Queued,
    /// Over a cap: the client is too slow and must be closed.
    Slow,
}

struct State {
    pending: VecDeque<Bytes>,
    pending_messages: usize,
    pending_bytes: usize,
    /// Until the history is sent, live events are held here.
    live: bool,
    held: Vec<Delivery>,
    /// Newest event id written or queued; older ones are duplicates.
    last_id: Option<EventId>,
    /// Nothing more is accepted (slow, closing, or failed).
    closed: bool,
    /// A frame sits in the hub's current [`SendBatch`]: nobody else may
    /// write until the batch completes it.
    in_flight: bool,
}

impl State {
    /// Nothing is waiting to go out before a new frame.
    fn idle(&self) -> bool {
        self.pending.is_empty() && !self.in_flight
    }
}

/// What one attempt to write `pending` achieved.
enum Flushed {
    All,
    /// The socket is full: wait until it is writable.
    Blocked,
    /// A batched send is in flight; its completion wakes the task.
    Busy,
}

pub struct Outbox {
    stream: TcpStream,
    state: Mutex<State>,
    /// Wakes the connection task when `pending` gained bytes.
    pub wake: Notify,
    limits: QueueLimits,
}

impl Outbox {
    pub fn new(stream: TcpStream, limits: QueueLimits, last_id: Option<EventId>) -> Arc<Self> {
        Arc::new(Self {
            stream,
            state: Mutex::new(State {
                pending: VecDeque::new(),
                pending_messages: 0,
                pending_bytes: 0,
                live: false,
                held: Vec::new(),
                last_id,
                closed: false,
                in_flight: false,
            }),
            wake: Notify::new(),
            limits,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by the hub with the matching events of one publish group, in
    /// id order: one event joins `batch` (or is sent at once when the batch
    /// cannot take it), several go in one vectored write.
    pub fn offer<'a>(&'a self, events: &[&'a Delivery], batch: &mut SendBatch<'a>) -> Offer {
        let mut st = self.lock();
        if st.closed {
            return Offer::Queued;
        }
        if !st.live {
            if st.held.len() + events.len() > self.limits.messages {
                st.closed = true;
                return Offer::Slow;
            }
            st.held.extend(events.iter().map(|e| (*e).clone()));
            return Offer::Queued;
        }
        let start = events.partition_point(|e| st.last_id.is_some_and(|last| e.id() <= last));
        let fresh = &events[start..];
        let Some(newest) = fresh.last() else { return Offer::Queued };
        st.last_id = Some(newest.id());
        match fresh {
            [one] if batch.uring && st.idle() => {
                st.in_flight = true;
                batch.entries.push((self, &one.frame));
                Offer::Sent
            }
            [one] => self.send_bytes(&mut st, &one.frame, true),
            many => self.send_many(&mut st, many),
        }
    }

    fn send_many(&self, st: &mut State, events: &[&Delivery]) -> Offer {
        let mut done = 0;
        if st.idle() {
            let slices: Vec<IoSlice<'_>> = events.iter().take(MAX_IOV).map(|e| IoSlice::new(&e.frame)).collect();
            let mut written = match self.stream.try_write_vectored(&slices) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(_) => {
                    st.closed = true;
                    return Offer::Queued;
                }
            };
            while done < events.len() && written >= events[done].frame.len() {
                written -= events[done].frame.len();
                done += 1;
            }
            if done < events.len() && written > 0 {
                let tail = events[done].frame.slice(written..);
                st.pending_bytes += tail.len();
                st.pending_messages += 1;
                st.pending.push_back(tail);
                done += 1;
            }
            if done == events.len() {
                if !st.pending.is_empty() {
                    self.wake.notify_one();
                }
                return Offer::Sent;
            }
        }
        for event in &events[done..] {
            if st.pending_messages >= self.limits.messages || st.pending_bytes + event.frame.len() > self.limits.bytes {
                st.closed = true;
                return Offer::Slow;
            }
            st.pending_bytes += event.frame.len();
            st.pending_messages += 1;
            st.pending.push_back(event.frame.clone());
        }
        self.wake.notify_one();
        Offer::Queued
    }

    /// Writes history (already filtered), then whatever was held meanwhile
    /// that is newer, and from then on lets the hub write directly.
    pub fn go_live(&self, backlog: &[Delivery]) -> Offer {
        let mut st = self.lock();
        let held = std::mem::take(&mut st.held);
        for event in backlog.iter().chain(held.iter()) {
            if st.last_id.is_some_and(|last| event.id() <= last) {
                continue;
            }
            st.last_id = Some(event.id());
            if self.send_bytes(&mut st, &event.frame, false) == Offer::Slow {
                st.closed = true;
                return Offer::Slow;
            }
        }
        st.live = true;
        Offer::Sent
    }

    /// A frame from the server itself (reply, ping, close); never refused.
    pub fn send(&self, opcode: u8, payload: Bytes) {
        let mut st = self.lock();
        self.send_frame(&mut st, &[], opcode, payload, false);
    }

    /// The held-back `101` answer of the handshake and the `connection`
    /// message, in one write (the server's `gateway::held`).
    pub fn greet(&self, handshake: Vec<u8>, hello: Bytes) {
        let mut st = self.lock();
        self.send_frame(&mut st, &handshake, OP_TEXT, hello, false);
    }

    /// Stops accepting events; what is pending still goes out.
    pub fn close_events(&self) {
        self.lock().closed = true;
    }

    /// Raw bytes tungstenite wrote (an already framed pong or close echo).
    fn send_raw(&self, bytes: Bytes) {
        let mut st = self.lock();
        st.pending_bytes += bytes.len();
        st.pending.push_back(bytes);
        drop(st);
        self.wake.notify_one();
    }

    /// Frames `payload` behind `prefix` (raw bytes to go first) and sends both.
    fn send_frame(&self, st: &mut State, prefix: &[u8], opcode: u8, payload: Bytes, capped: bool) -> Offer {
        let (header, n) = frame_header(opcode, payload.len());
        let mut frame = Vec::with_capacity(prefix.len() + n + payload.len());
        frame.extend_from_slice(prefix);
        frame.extend_from_slice(&header[..n]);
        frame.extend_from_slice(&payload);
        self.send_bytes(st, &Bytes::from(frame), capped)
    }

    /// Writes a whole frame now if nothing is waiting before it (one `send`
    /// of the shared bytes), else queues it, within the caps when `capped`.
    fn send_bytes(&self, st: &mut State, frame: &Bytes, capped: bool) -> Offer {
        if st.idle() {
            match self.stream.try_write(frame) {
                Ok(written) if written == frame.len() => return Offer::Sent,
                Ok(written) => {
                    st.pending.push_back(frame.slice(written..));
                    st.pending_bytes += frame.len() - written;
                    st.pending_messages += 1;
                    self.wake.notify_one();
                    return Offer::Queued;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The connection task sees the failure on its next read.
                Err(_) => {
                    st.closed = true;
                    return Offer::Queued;
                }
            }
        } else if capped
            && (st.pending_messages >= self.limits.messages || st.pending_bytes + frame.len() > self.limits.bytes)
        {
            st.closed = true;
            return Offer::Slow;
        }
        st.pending_bytes += frame.len();
        st.pending_messages += 1;
        st.pending.push_back(frame.clone());
        self.wake.notify_one();
        Offer::Queued
    }

    /// The end of a batched send of `frame`: `result` is what the socket
    /// took, or `None` when the batch could not send it (no io_uring on this
    /// thread), in which case it is written here. A remainder goes first in
    /// `pending` — frames queued meanwhile were behind it.
    fn complete(&self, frame: &Bytes, result: Option<io::Result<usize>>) {
        let mut st = self.lock();
        st.in_flight = false;
        let result = match result {
            Some(result) => result,
            None if st.pending.is_empty() => self.stream.try_write(frame),
            None => Err(io::ErrorKind::WouldBlock.into()),
        };
        let rest = match result {
            Ok(written) => frame.slice(written.min(frame.len())..),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => frame.clone(),
            // The connection task sees the failure on its next read.
            Err(_) => {
                st.closed = true;
                Bytes::new()
            }
        };
        if !rest.is_empty() {
            st.pending_bytes += rest.len();
            st.pending_messages += 1;
            st.pending.push_front(rest);
        }
        if !st.pending.is_empty() {
            self.wake.notify_one();
        }
    }

    /// Writes pending bytes until none are left, waiting for the socket as
    /// needed. Cancel-safe: progress is kept in `pending`.
    pub async fn flush(&self) -> io::Result<()> {
        loop {
            match self.write_pending()? {
                Flushed::All => return Ok(()),
                Flushed::Blocked => self.stream.writable().await?,
                Flushed::Busy => self.wake.notified().await,
            }
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.lock().pending.is_empty()
    }

    /// Vectored writes of the pending pieces until they are gone or the
    /// socket is full.
    fn write_pending(&self) -> io::Result<Flushed> {
        let mut st = self.lock();
        if st.in_flight && !st.pending.is_empty() {
            return Ok(Flushed::Busy);
        }
        while !st.pending.is_empty() {
            let slices: Vec<IoSlice<'_>> = st.pending.iter().take(MAX_IOV).map(|b| IoSlice::new(b)).collect();
            let written = match self.stream.try_write_vectored(&slices) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) => return Err(e),
            };
            drop(slices);
            st.pending_bytes -= written;
            let mut left = written;
            while left > 0 {
                let Some(front) = st.pending.front_mut() else { break };
                if front.len() <= left {
                    left -= front.len();
                    st.pending.pop_front();
                } else {
                    *front = front.slice(left..);
                    left = 0;
                }
            }
        }
        // Messages are counted in whole; once empty nothing is outstanding.
        st.pending_messages = 0;
        Ok(Flushed::All)
    }
}

/// The single-event sends of one hub chunk, submitted together by
/// [`SendBatch::flush`]. Each outbox in it is busy until then, so the batch
/// is flushed before every await (and on drop, should a panic unwind past).
pub struct SendBatch<'a> {
    uring: bool,
    entries: Vec<(&'a Outbox, &'a Bytes)>,
    sends: Vec<(RawFd, &'a [u8])>,
    results: Vec<io::Result<usize>>,
}

impl<'a> SendBatch<'a> {
    /// `uring: false` makes every offer write at once, as without a batch.
    pub fn new(uring: bool, capacity: usize) -> Self {
        Self {
            uring,
            entries: Vec::with_capacity(if uring { capacity } else { 0 }),
            sends: Vec::new(),
            results: Vec::new(),
        }
    }

    /// Sends every frame of the batch and hands each outbox its result.
    pub fn flush(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        self.sends.clear();
        self.sends.extend(self.entries.iter().map(|(outbox, frame)| (outbox.stream.as_raw_fd(), &frame[..])));
        let sent = uring::send_all(&self.sends, &mut self.results);
        let mut results = self.results.drain(..);
        for (outbox, frame) in self.entries.drain(..) {
            outbox.complete(frame, if sent { results.next() } else { None });
        }
    }
}

impl Drop for SendBatch<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The socket as tungstenite sees it: reads come from the stream, writes
/// (its automatic pong and close echo) join the outbox in order.
pub struct ReadSide(pub Arc<Outbox>);

impl AsyncRead for ReadSide {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let stream = &self.0.stream;
        loop {
            ready!(stream.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match stream.try_read(unfilled) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.0.send_raw(Bytes::copy_from_slice(data));
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
