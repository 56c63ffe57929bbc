//! Appending to the shared stream, with a bounded buffer for outages.
//!
//! One task owns the order: publishes queue up, go to Redis in groups
//! through one script call (one round trip per group), and stay in the
//! buffer, in order, until Redis has taken them. While Redis is down,
//! publishers are answered `Buffered` at once and retries back off
//! exponentially (100 ms to 5 s); the buffer's cap turns further publishes
//! into 503 errors rather than unbounded memory.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use enms_core::event::{Event, EventId, EventType};
use enms_core::timestamp::to_ms;
use redis::aio::MultiplexedConnection;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Backoff, COMMAND_TIMEOUT, Publish, Shared, bus_alert, local_alert};
use crate::bus::{Accepted, BusError, Delivery, Published};

/// Appends a group of events; sets the floor first when the stream is new
/// (see the module docs of `bus::redis`). ARGV: max length, newest id this
/// instance knows, then (type, ts, data) per event.
const APPEND: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[2]) end
local ids = {}
for i = 3, #ARGV, 3 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
    'type', ARGV[i], 'ts', ARGV[i + 1], 'data', ARGV[i + 2])
end
return ids
";

const MAX_GROUP: usize = 256;

struct Pending {
    event_type: EventType,
    data: Value,
    at: DateTime<Utc>,
    reply: Option<oneshot::Sender<Result<Accepted, BusError>>>,
}

pub(super) struct Publisher {
    shared: Arc<Shared>,
    fanout: mpsc::Sender<Vec<Delivery>>,
    pending: VecDeque<Pending>,
    conn: Option<MultiplexedConnection>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    script: redis::Script,
}

impl Publisher {
    pub(super) fn new(shared: Arc<Shared>, fanout: mpsc::Sender<Vec<Delivery>>) -> Self {
        Self {
            shared,
            fanout,
            pending: VecDeque::new(),
            conn: None,
            retry_at: None,
            backoff: Backoff::new(),
            script: redis::Script::new(APPEND),
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Publish>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        let mut prune = tokio::time::interval(crate::bus::local::PRUNE_EVERY);
        loop {
            let retry = self.retry_at;
            tokio::select! {
                n = rx.recv_many(&mut group, MAX_GROUP) => {
                    if n == 0 {
                        break;
                    }
                    let now = Utc::now();
                    for p in group.drain(..) {
                        self.accept(p, now);
                    }
                }
                _ = tokio::time::sleep_until(retry.unwrap_or_else(Instant::now)), if retry.is_some() => {
                    self.retry_at = None;
                }
                _ = prune.tick() => {
                    tokio::spawn(crate::bus::local::prune_log(self.shared.store.clone(), self.shared.config.log_age));
                    continue;
                }
            }
            self.flush().await;
        }
    }

    fn accept(&mut self, p: Publish, at: DateTime<Utc>) {
        if self.pending.len() >= self.shared.redis.buffer {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(BusError::BufferFull));
            }
            return;
        }
        self.pending.push_back(Pending { event_type: p.event_type, data: p.data, at, reply: p.reply });
    }

    /// Appends everything pending, unless backing off after a failure.
    async fn flush(&mut self) {
        while self.retry_at.is_none() && !self.pending.is_empty() {
            let mut conn = match self.connection().await {
                Ok(c) => c,
                Err(e) => return self.fail(e).await,
            };
            let n = self.pending.len().min(MAX_GROUP);
            let known = self.shared.window().last;
            let mut call = self.script.key(&self.shared.keys.stream);
            call.key(&self.shared.keys.floor).arg(self.shared.redis.stream_max_len).arg(known.to_string());
            for p in self.pending.iter().take(n) {
                call.arg(p.event_type.as_str()).arg(to_ms(p.at)).arg(p.data.to_string());
            }
            match call.invoke_async::<Vec<String>>(&mut conn).await {
                Ok(ids) => self.appended(n, &ids).await,
                Err(e) => {
                    self.conn = None;
                    return self.fail(e).await;
                }
            }
        }
        if self.retry_at.is_some() {
            self.answer_buffered();
        }
    }

    async fn connection(&mut self) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        let conn = self.shared.connect(Some(COMMAND_TIMEOUT)).await?;
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    /// The first `n` pending events are in the stream with these ids.
    async fn appended(&mut self, n: usize, ids: &[String]) {
        let mut durable = Vec::new();
        for (p, id) in self.pending.drain(..n).zip(ids) {
            let Ok(id) = id.parse::<EventId>() else { continue };
            let event = Event { event_type: p.event_type, id, timestamp: p.at, data: p.data };
            let delivery = Published::new(event);
            if p.event_type.durable() {
                durable.push(delivery.event.clone());
            }
            if let Some(reply) = p.reply {
                let _ = reply.send(Ok(Accepted::Published(delivery)));
            }
        }
        if !durable.is_empty()
            && let Err(e) = self.shared.store.append_events(&durable).await
        {
            tracing::error!(error = %e, "event log append failed; the events are in the stream only");
        }
        self.backoff.reset();
        let recovered = {
            let mut link = self.shared.link();
            link.buffered = self.pending.len();
            link.publisher_down.take()
        };
        if recovered.is_some() {
            tracing::info!("event bus publisher reconnected to redis");
            let message = format!("event bus recovered: {n} buffered events appended");
            if let Some(data) = bus_alert("bus_recovered", &message, "info") {
                self.pending.push_back(Pending {
                    event_type: EventType::SystemAlert,
                    data,
                    at: Utc::now(),
                    reply: None,
                });
            }
        }
    }

    async fn fail(&mut self, e: redis::RedisError) {
        let message = format!("redis unreachable: {e}");
        let first = {
            let mut link = self.shared.link();
            link.buffered = self.pending.len();
            let was_up = link.publisher_down.is_none() && link.reader_down.is_none();
            link.publisher_down = Some(message);
            was_up
        };
        if first {
            tracing::warn!(error = %e, buffered = self.pending.len(), "event bus publisher lost redis");
            let text = format!("event bus degraded: redis unreachable ({e}); events are buffered");
            local_alert(&self.shared, &self.fanout, &text, "warning").await;
        }
        self.retry_at = Some(Instant::now() + self.backoff.next());
        self.answer_buffered();
    }

    /// Tells waiting publishers their events are buffered, and health how
    /// many are.
    fn answer_buffered(&mut self) {
        self.shared.link().buffered = self.pending.len();
        for p in &mut self.pending {
            if let Some(reply) = p.reply.take() {
                let _ = reply.send(Ok(Accepted::Buffered));
            }
        }
    }
}
