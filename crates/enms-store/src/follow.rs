//! Followers of the durable events (the notifier, incidents): the one loop
//! that reads pages of the types a follower takes after its stored cursor,
//! hands it each event — again and again until it is taken, never skipping
//! one — and saves the cursor after each page, so a restart or another
//! instance continues where it stopped. Where a first start begins is
//! [`crate::cursors::start_position`].
//!
//! A page shorter than [`PAGE`] means nothing of the follower's types lies
//! between its position and the head read before the page (see
//! `EventSource::head`), so the position moves to that head — saved at most
//! once a second while idle. Without it a follower of rare types would
//! re-scan the same window, or the whole log, on every poll.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use enms_core::event::{EventId, EventType};
use enms_core::feed::EventSource;
use tokio_util::sync::CancellationToken;

use crate::Store;
use crate::cursors::start_position;

/// Events read at once.
pub const PAGE: usize = 200;
/// How often a position moved past unread events is saved.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// What a follower does with the events.
#[async_trait]
pub trait Follower: Send + Sync {
    /// Takes one event. An error (a store that is away) makes the loop try
    /// the same event again after the retry pause: the follower must make
    /// taking an event twice harmless, as a crash before the cursor is
    /// saved re-reads it anyway.
    async fn take(&self, id: EventId, kind: EventType, envelope: &[u8]) -> Result<(), String>;

    /// Runs before each read (the incidents' auto-resolution check).
    async fn before_read(&self) {}

    /// The log no longer holds some events after `after`: they were missed.
    async fn missed(&self, after: EventId) {
        tracing::warn!(after = %after, "a follower fell behind the event log; some events were missed");
    }
}

/// Where and how a follower follows.
#[derive(Debug, Clone)]
pub struct Follow {
    /// The stored cursor's name, also the follower's name in the log.
    pub name: &'static str,
    pub types: Vec<EventType>,
    /// The pause when nothing new has come: how soon a new event is seen.
    pub idle: Duration,
    /// The pause before trying again after an error.
    pub retry: Duration,
    /// When this process started (where a first start begins).
    pub started: DateTime<Utc>,
}

async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

/// Follows the events until `stop`.
pub async fn run(
    store: &dyn Store,
    events: &dyn EventSource,
    follow: &Follow,
    follower: &dyn Follower,
    stop: &CancellationToken,
) {
    let name = follow.name;
    let mut position = loop {
        match start_position(store, name, events, &follow.types, follow.started).await {
            Ok(p) => break p,
            Err(e) => {
                tracing::warn!(follower = name, error = %e, "cannot read the stored position yet");
                if !pause(follow.retry, stop).await {
                    return;
                }
            }
        }
    };
    let save = |position: EventId| async move {
        if let Err(e) = store.set_cursor(name, &position.to_string()).await {
            tracing::warn!(follower = name, error = %e, "cursor not saved");
        }
    };
    let mut saved_at = tokio::time::Instant::now();
    loop {
        follower.before_read().await;
        // Read before the page: a short page means nothing of ours up to it.
        let head = events.head().await;
        let page = tokio::select! {
            p = events.after(Some(position), &follow.types, PAGE) => p,
            _ = stop.cancelled() => return,
        };
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(follower = name, error = %e, "event log not read");
                if !pause(follow.retry, stop).await {
                    return;
                }
                continue;
            }
        };
        if !page.complete {
            follower.missed(position).await;
        }
        let short = page.events.len() < PAGE;
        if page.events.is_empty() {
            if let Some(h) = head.filter(|h| short && *h > position) {
                position = h;
                if saved_at.elapsed() >= SAVE_EVERY {
                    save(position).await;
                    saved_at = tokio::time::Instant::now();
                }
            }
            if !pause(follow.idle, stop).await {
                return;
            }
            continue;
        }
        for (id, kind, envelope) in &page.events {
            loop {
                match follower.take(*id, *kind, envelope).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(follower = name, error = %e, event = %id, "event not taken; trying again");
                        if !pause(follow.retry, stop).await {
                            return;
                        }
                    }
                }
            }
            position = *id;
        }
        if let Some(h) = head.filter(|h| short && *h > position) {
            position = h;
        }
        // After the page is taken: a crash before this re-reads it.
        save(position).await;
        saved_at = tokio::time::Instant::now();
    }
}
