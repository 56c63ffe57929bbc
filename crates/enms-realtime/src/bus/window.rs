//! The bounded in-memory window of recent events (every type) that serves
//! resume without touching the database, shared by both buses.

use std::collections::VecDeque;

use chrono::Utc;
use enms_core::event::EventId;

use super::{BusConfig, Delivery, Filter};

pub struct Window {
    events: VecDeque<Delivery>,
    /// Newest id no longer in the window: events dropped from it, or issued
    /// before this process started. The window holds every event after it.
    pub evicted_up_to: EventId,
    /// Newest id seen.
    pub last: EventId,
}

impl Window {
    /// An empty window that holds everything after `boundary`.
    pub fn new(boundary: EventId) -> Self {
        Self { events: VecDeque::new(), evicted_up_to: boundary, last: boundary }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Appends events in id order and evicts what is over the count or too old.
    pub fn push(&mut self, events: &[Delivery], config: &BusConfig) {
        self.events.extend(events.iter().cloned());
        if let Some(last) = events.last() {
            self.last = self.last.max(last.id());
        }
        let oldest_allowed =
            Utc::now() - chrono::Duration::from_std(config.window_age).unwrap_or(chrono::Duration::MAX);
        while let Some(front) = self.events.front() {
            if self.events.len() <= config.window_events && front.event.timestamp >= oldest_allowed {
                break;
            }
            self.evicted_up_to = front.id();
            self.events.pop_front();
        }
    }

    /// Matching events after `after`, when the window holds all of them.
    pub fn after(&self, after: EventId, filter: &Filter, limit: usize) -> Option<Vec<Delivery>> {
        if after < self.evicted_up_to || after > self.last {
            return None;
        }
        let start = self.events.partition_point(|e| e.id() <= after);
        Some(self.events.range(start..).filter(|e| filter.matches(e)).take(limit).cloned().collect())
    }

    /// The newest `limit` matching events, oldest first.
    pub fn latest(&self, filter: &Filter, limit: usize) -> Vec<Delivery> {
        let mut events: Vec<_> = self.events.iter().rev().filter(|e| filter.matches(e)).take(limit).cloned().collect();
        events.reverse();
        events
    }
}
