//! The hub without sockets: queue subscribers (the SSE kind) fed by
//! `dispatch`, as the bus feeds it. What a client would notice: a reader
//! that stops reading is cut off and told so while the others keep every
//! event; order holds when a fan-out runs in parallel parts; a replaced
//! filter takes effect from the next event.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use enms_core::event::{Event, EventId, EventType};
use enms_realtime::hub::{QueueLimits, StreamKind, Subscription};
use enms_realtime::{Delivery, Filter, Hub, HubConfig, Published};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

fn hub(queue: QueueLimits, fanout_parallelism: usize) -> Hub {
    // No io_uring: queue subscribers never touch a socket anyway.
    Hub::new(&HubConfig { queue, io_uring: false, fanout_parallelism }, metrics::Histogram::noop())
}

fn event(n: u64, event_type: EventType, machine: &str) -> Delivery {
    Published::new(Event {
        event_type,
        id: EventId { ms: 1_700_000_000_000 + n, seq: 0 },
        timestamp: Utc::now(),
        data: json!({"machine_id": machine, "message": format!("event {n}")}),
    })
}

/// Everything queued for `sub` right now. `dispatch` has queued what it
/// hands over by the time it returns, so nothing is awaited: a zero
/// timeout polls the queue once.
async fn drain(sub: &mut Subscription) -> Vec<EventId> {
    let mut out = Vec::new();
    loop {
        let mut buf = Vec::new();
        match tokio::time::timeout(Duration::ZERO, sub.recv_many(&mut buf, 1024)).await {
            Ok(n) if n > 0 => out.extend(buf.iter().map(|d| d.id())),
            _ => return out,
        }
    }
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_off_and_the_others_keep_every_event() {
    let hub = hub(QueueLimits { messages: 4, bytes: 1 << 20 }, 1);
    let mut stalled = hub.subscribe(StreamKind::Sse, Filter::default());
    let mut reading = hub.subscribe(StreamKind::Sse, Filter::default());
    let signal = stalled.slow_signal();
    let mut got = Vec::new();
    for n in 1..=10 {
        hub.dispatch(&[event(n, EventType::MetricUpdated, "m1")]).await;
        got.extend(drain(&mut reading).await);
    }
    tokio::time::timeout(WAIT, signal.wait()).await.expect("the stalled reader is told it is slow");
    assert_eq!(got.len(), 10, "the reading subscriber got every event");
    let kept = drain(&mut stalled).await;
    assert_eq!(kept.len(), 4, "the stalled one holds what fitted its queue, nothing after the cut: {kept:?}");
    let stats = hub.stats();
    assert_eq!(stats.connections, 2, "a cut subscriber counts until its connection closes");
    assert!(stats.messages_dropped >= 1, "{stats:?}");

    // After the cut nothing more reaches it, even with room in its queue.
    hub.dispatch(&[event(11, EventType::MetricUpdated, "m1")]).await;
    assert!(drain(&mut stalled).await.is_empty());
    assert_eq!(drain(&mut reading).await.len(), 1);
}

#[tokio::test]
async fn a_byte_cap_cuts_a_reader_before_its_message_cap_does() {
    let first = event(1, EventType::MetricUpdated, "m1");
    let cap = first.text.len() * 2 + first.text.len() / 2;
    let hub = hub(QueueLimits { messages: 1000, bytes: cap }, 1);
    let sub = hub.subscribe(StreamKind::Sse, Filter::default());
    let signal = sub.slow_signal();
    hub.dispatch(&[first, event(2, EventType::MetricUpdated, "m1"), event(3, EventType::MetricUpdated, "m1")]).await;
    tokio::time::timeout(WAIT, signal.wait()).await.expect("2.5 events' worth of bytes holds two, not three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_holds_for_every_subscriber_when_a_fan_out_runs_in_parallel_parts() {
    let hub = hub(QueueLimits { messages: 1000, bytes: 64 << 20 }, 4);
    assert_eq!(hub.stats().fanout_parallelism, 4);
    // 640 subscribers: five parts' worth, so each fan-out runs as four parts.
    let mut subs: Vec<Subscription> = (0..640).map(|_| hub.subscribe(StreamKind::Sse, Filter::default())).collect();
    let mut sent = Vec::new();
    for group in 0..60u64 {
        let events: Vec<Delivery> = (0..3).map(|k| event(group * 3 + k, EventType::MetricUpdated, "m1")).collect();
        sent.extend(events.iter().map(|d| d.id()));
        hub.dispatch(&events).await;
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        let got = drain(sub).await;
        assert_eq!(got, sent, "subscriber {i} got every event once, in order");
    }
}

#[tokio::test]
async fn a_replaced_filter_applies_from_the_next_event() {
    let hub = hub(QueueLimits::default(), 1);
    let alerts = Filter { types: Some(HashSet::from([EventType::SystemAlert])), ..Filter::default() };
    let mut sub = hub.subscribe(StreamKind::Custom, alerts);
    let batch = |n: u64| {
        [
            event(n, EventType::SystemAlert, "m1"),
            event(n + 1, EventType::TrainingProgress, "m1"),
            event(n + 2, EventType::TrainingProgress, "m2"),
        ]
    };
    let first = batch(0);
    hub.dispatch(&first).await;
    assert_eq!(drain(&mut sub).await, vec![first[0].id()], "alerts only");

    sub.set_filter(Filter {
        types: Some(HashSet::from([EventType::TrainingProgress])),
        machine_ids: Some(HashSet::from(["m2".to_owned()])),
        ..Filter::default()
    });
    let second = batch(10);
    hub.dispatch(&second).await;
    assert_eq!(drain(&mut sub).await, vec![second[2].id()], "training of m2 only");

    drop(sub);
    assert_eq!(hub.stats().connections, 0, "dropping the subscription unregisters it");
    hub.dispatch(&batch(20)).await;
}
