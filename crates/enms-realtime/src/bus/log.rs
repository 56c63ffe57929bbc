//! Replay from the durable event log in the store: what both buses fall
//! back to for positions older than their window (or their stream).

use enms_core::event::EventId;
use enms_store::Store;

use super::{BusError, Filter, Published, Replay};

/// Rows read from the log per query when replaying from it.
const LOG_PAGE: u32 = 1000;
/// Rows read at most to answer "the latest N" from the log.
const LOG_SCAN: usize = 20_000;

/// Logged events after `after` that match. Complete only when the filter
/// admits durable types alone and nothing after `after` was pruned.
pub async fn replay(store: &dyn Store, after: EventId, filter: &Filter, limit: usize) -> Result<Replay, BusError> {
    let floor = store.event_log_floor().await?;
    let mut cursor = after;
    let mut events = Vec::new();
    loop {
        let page = store.events_after(cursor, LOG_PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor = last.id;
        let full = page.len() == LOG_PAGE as usize;
        events.extend(page.into_iter().map(Published::new).filter(|p| filter.matches(p)));
        if events.len() >= limit || !full {
            break;
        }
    }
    events.truncate(limit);
    let complete = filter.durable_only() && floor.is_none_or(|floor| after >= floor);
    Ok(Replay { events, complete })
}

/// The newest `limit` logged events that match, oldest first. Reads at most
/// `LOG_SCAN` rows so a narrow filter cannot scan the whole log.
pub async fn latest(store: &dyn Store, filter: &Filter, limit: usize) -> Result<Replay, BusError> {
    let mut cursor = None;
    let mut events = Vec::new();
    let mut scanned = 0;
    while events.len() < limit && scanned < LOG_SCAN {
        let page = store.events_before(cursor, LOG_PAGE).await?;
        let Some(oldest) = page.last() else { break };
        cursor = Some(oldest.id);
        scanned += page.len();
        let full = page.len() == LOG_PAGE as usize;
        events.extend(page.into_iter().map(Published::new).filter(|p| filter.matches(p)));
        if !full {
            break;
        }
    }
    events.truncate(limit);
    events.reverse();
    Ok(Replay { events, complete: true })
}
