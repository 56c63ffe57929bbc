//! The seeds' plain pub/sub channels (`anomaly.detected`, `system.alert`,
//! …), bridged into the stream so systems that still `PUBLISH` there reach
//! every client, validated like any event.
//!
//! Every instance subscribes (pub/sub has no consumer groups); a message is
//! taken by the first instance that claims its digest (`SET NX`, 30 s), so
//! it is appended once. The same payload published twice on one channel
//! within 30 s counts as one message. A payload is either the event's data
//! or `{"type"|"event_type": …, "data": {…}}`.

use std::sync::Arc;

use chrono::Utc;
use enms_core::event::EventType;
use enms_core::payload::validate_payload;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Backoff, Publish, Shared};

const CLAIM: &str = r"
if redis.call('SET', KEYS[1] .. redis.sha1hex(ARGV[1]), '1', 'NX', 'EX', ARGV[2]) then return 1 end
return 0
";
const CLAIM_SECONDS: u64 = 30;

pub(super) async fn run(shared: Arc<Shared>, queue: mpsc::Sender<Publish>) {
    let channels: Vec<&str> = EventType::ALL.iter().map(|t| t.topic()).collect();
    let claim = redis::Script::new(CLAIM);
    let mut backoff = Backoff::new();
    while !queue.is_closed() {
        match shared.client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channels).await {
                Ok(()) => {
                    backoff.reset();
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let channel = msg.get_channel_name().to_owned();
                        handle(&shared, &queue, &claim, &channel, msg.get_payload_bytes()).await;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "seed channel subscription failed"),
            },
            Err(e) => tracing::debug!(error = %e, "seed channel bridge cannot reach redis"),
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

async fn handle(shared: &Shared, queue: &mpsc::Sender<Publish>, claim: &redis::Script, channel: &str, payload: &[u8]) {
    let Ok(event_type) = channel.parse::<EventType>() else { return };
    let data = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(mut map)) => match map.remove("data") {
            Some(data @ Value::Object(_)) if map.contains_key("type") || map.contains_key("event_type") => data,
            Some(other) => {
                map.insert("data".into(), other);
                Value::Object(map)
            }
            None => Value::Object(map),
        },
        _ => {
            tracing::warn!(%channel, "seed channel message is not a JSON object; ignored");
            return;
        }
    };
    let data = match validate_payload(event_type, data, Utc::now()) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(%channel, field = ?e.field, error = %e.message, "seed channel message refused");
            return;
        }
    };
    let Ok(mut conn) = shared.query_connection().await else { return };
    let key = format!("{}{channel}:", shared.keys.bridged);
    let won = claim.key(key).arg(payload).arg(CLAIM_SECONDS).invoke_async::<i64>(&mut conn).await;
    match won {
        Ok(1) => {
            let _ = queue.send(Publish { event_type, data, reply: None }).await;
        }
        Ok(_) => {}
        Err(e) => {
            shared.drop_query_connection();
            tracing::warn!(error = %e, "seed channel message not claimed");
        }
    }
}
