//! Where a follower of the durable events (the notifier, incidents) starts:
//! its stored cursor, or — on its very first start — the newest event from
//! before the process started. What came before was for the people of that
//! time; what was published since, while the follower got going, is its to
//! handle. The start is stored at once, so a restart continues from it.

use chrono::{DateTime, Utc};
use enms_core::event::{EventId, EventType};
use enms_core::feed::EventSource;

use crate::Store;

pub async fn start_position(
    store: &dyn Store,
    cursor: &str,
    events: &dyn EventSource,
    types: &[EventType],
    started: DateTime<Utc>,
) -> Result<EventId, String> {
    if let Some(saved) = store.cursor(cursor).await.map_err(|e| e.to_string())? {
        return saved.parse().map_err(|e| format!("stored {cursor} cursor {saved:?}: {e}"));
    }
    let page = events.after(None, types, 1).await?;
    let started_ms = started.timestamp_millis().max(1) as u64;
    let start = match page.events.last().map(|(id, _, _)| *id) {
        Some(newest) if newest.ms >= started_ms => EventId { ms: started_ms - 1, seq: u64::MAX },
        newest => newest.unwrap_or_default(),
    };
    store.set_cursor(cursor, &start.to_string()).await.map_err(|e| e.to_string())?;
    Ok(start)
}
