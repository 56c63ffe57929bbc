//! Reading the shared stream: the tail loaded into the window at start, the
//! `XREAD BLOCK` loop that feeds the local fan-out, and history ranges for
//! resume.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use enms_core::event::EventId;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use tokio::sync::mpsc;

use super::{Backoff, Keys, RANGE_PAGE, Shared, local_alert, published};
use crate::bus::window::Window;
use crate::bus::{Delivery, Filter};

/// How long one `XREAD` blocks; the connection's own timeout is longer.
const BLOCK: Duration = Duration::from_secs(5);
const READ_COUNT: usize = 1000;

/// Loads the newest entries (up to the window size) into the window;
/// returns the id the reader continues after.
pub(super) async fn prefill(shared: &Shared) -> EventId {
    let tail = async {
        let mut conn = shared.connect(Some(super::COMMAND_TIMEOUT)).await?;
        redis::cmd("XREVRANGE")
            .arg(&shared.keys.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(shared.config.window_events.max(1))
            .query_async::<StreamRangeReply>(&mut conn)
            .await
    };
    match tail.await {
        Ok(reply) => {
            let mut events: Vec<Delivery> = reply.ids.iter().filter_map(|e| published(&e.id, &e.map)).collect();
            events.reverse();
            let Some(first) = events.first() else { return shared.window().last };
            let mut window = shared.window_mut();
            *window = Window::new(first.id());
            window.push(&events, &shared.config);
            window.last
        }
        Err(e) => {
            tracing::warn!(error = %e, "redis unreachable at start; the bus starts degraded and keeps retrying");
            shared.link().reader_down = Some(format!("redis unreachable: {e}"));
            let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
            EventId { ms: now, seq: 0 }
        }
    }
}

/// Reads the stream after `last` forever, reconnecting with backoff.
pub(super) async fn run(shared: Arc<Shared>, mut last: EventId, fanout: mpsc::Sender<Vec<Delivery>>) {
    let mut backoff = Backoff::new();
    loop {
        let failure = match shared.connect(Some(BLOCK + super::COMMAND_TIMEOUT)).await {
            Ok(mut conn) => {
                if shared.link().reader_down.take().is_some() {
                    tracing::info!("event stream reader reconnected");
                }
                backoff.reset();
                read(&shared, &mut conn, &mut last, &fanout).await
            }
            Err(e) => e,
        };
        if fanout.is_closed() {
            return;
        }
        let first = {
            let mut link = shared.link();
            let was_up = link.reader_down.is_none() && link.publisher_down.is_none();
            link.reader_down = Some(format!("redis unreachable: {failure}"));
            was_up
        };
        if first {
            tracing::warn!(error = %failure, "event stream reader lost redis");
            let message = format!("event bus degraded: redis unreachable ({failure}); local events are buffered");
            local_alert(&shared, &fanout, &message, "warning").await;
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// One connection's read loop; returns why it ended.
async fn read(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    last: &mut EventId,
    fanout: &mpsc::Sender<Vec<Delivery>>,
) -> redis::RedisError {
    loop {
        let reply = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&shared.keys.stream)
            .arg(last.to_string())
            .query_async::<Option<StreamReadReply>>(conn)
            .await;
        let reply = match reply {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => return e,
        };
        let entries = reply.keys.into_iter().flat_map(|k| k.ids);
        let mut batch = Vec::new();
        for entry in entries {
            if let Ok(id) = entry.id.parse::<EventId>() {
                *last = (*last).max(id);
            }
            batch.extend(published(&entry.id, &entry.map));
        }
        if batch.is_empty() {
            continue;
        }
        shared.window_mut().push(&batch, &shared.config);
        if fanout.send(batch).await.is_err() {
            return redis::RedisError::from((redis::ErrorKind::Io, "bus stopped"));
        }
    }
}

/// Stream entries after `after` that match, when the stream still holds all
/// of them: it was not created after `after` (`floor`) and trimming has not
/// reached past it (`max-deleted-entry-id`). `Ok(None)` otherwise.
pub(super) async fn range_after(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    after: EventId,
    filter: &Filter,
    limit: usize,
) -> redis::RedisResult<Option<Vec<Delivery>>> {
    let Some(floor) = redis::cmd("GET").arg(&keys.floor).query_async::<Option<String>>(conn).await? else {
        return Ok(None);
    };
    let floor: EventId = floor.parse().unwrap_or(EventId { ms: u64::MAX, seq: 0 });
    let info: redis::RedisResult<HashMap<String, redis::Value>> =
        redis::cmd("XINFO").arg("STREAM").arg(&keys.stream).query_async(conn).await;
    let trimmed = match info {
        Ok(info) => match info.get("max-deleted-entry-id") {
            Some(redis::Value::BulkString(b)) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
            Some(redis::Value::SimpleString(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or_default(),
        // No stream yet: nothing after the floor was ever added.
        Err(e) if e.to_string().contains("no such key") => EventId::default(),
        Err(e) => return Err(e),
    };
    if after < floor.max(trimmed) {
        return Ok(None);
    }
    let mut events = Vec::new();
    let mut cursor = after;
    loop {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&keys.stream)
            .arg(format!("({cursor}"))
            .arg("+")
            .arg("COUNT")
            .arg(RANGE_PAGE)
            .query_async(conn)
            .await?;
        let n = page.ids.len();
        if let Some(last) = page.ids.last() {
            cursor = last.id.parse().unwrap_or(cursor);
        }
        events.extend(page.ids.iter().filter_map(|e| published(&e.id, &e.map)).filter(|p| filter.matches(p)));
        if n < RANGE_PAGE || events.len() >= limit {
            break;
        }
    }
    events.truncate(limit);
    Ok(Some(events))
}
