//! The durable events as a reader outside the bus sees them: the
//! [`EventSource`] trait that the MQTT relay and the notifier read from, and
//! that the server implements over its bus's window and log.

use crate::event::{EventId, EventType};

/// Where a relay reads events.
#[async_trait::async_trait]
pub trait EventSource: Send + Sync + 'static {
    /// Events of `types` after `after` (`None`: only the newest one, to
    /// start from), oldest first, at most `limit`; `complete` is false when
    /// `after` is older than what is still kept.
    async fn after(&self, after: Option<EventId>, types: &[EventType], limit: usize) -> Result<EventPage, String>;

    /// The newest event id already visible to [`EventSource::after`] (of any
    /// type), or `None` when the source cannot say. Read *before* a call to
    /// `after` that returns fewer than its limit, it is a position the
    /// follower may move to: nothing of its types lies between. Without it a
    /// follower of rare types would re-scan every event after its old
    /// position on each poll.
    async fn head(&self) -> Option<EventId> {
        None
    }
}

pub struct EventPage {
    /// Id, type and the JSON envelope of each event.
    pub events: Vec<(EventId, EventType, bytes::Bytes)>,
    pub complete: bool,
}
