//! Messages of the WebSocket protocol other than events: what the server
//! says on connect and in answer, and what a client may send.

use std::collections::HashSet;

use chrono::Utc;
use enms_core::event::{EventId, EventType};
use serde_json::{Value, json};

use enms_realtime::bus::Filter;

/// `{"type":"connection",...}`, the first message on every connection.
pub fn connection(client_id: &str, stream: &str, recovered: bool, last_event_id: EventId) -> String {
    json!({
        "type": "connection",
        "status": "connected",
        "client_id": client_id,
        "stream": stream,
        "server_time": Utc::now(),
        "recovered": recovered,
        "last_event_id": last_event_id,
    })
    .to_string()
}

pub fn pong() -> String {
    json!({"type": "pong", "timestamp": Utc::now()}).to_string()
}

pub fn error(code: &str, message: &str) -> String {
    json!({"type": "error", "code": code, "message": message}).to_string()
}

/// The answer to `subscribe`/`unsubscribe`: the filter now in force.
pub fn acknowledgement(kind: &str, filter: &Filter) -> String {
    let mut types: Vec<&str> = match &filter.types {
        Some(t) => t.iter().map(|t| t.as_str()).collect(),
        None => EventType::ALL.iter().map(|t| t.as_str()).collect(),
    };
    types.sort_unstable();
    let machines = filter.machine_ids.as_ref().map(|ids| {
        let mut ids: Vec<&String> = ids.iter().collect();
        ids.sort_unstable();
        ids
    });
    json!({"type": kind, "types": types, "machine_ids": machines}).to_string()
}

/// A message a client sent, understood.
#[derive(Debug)]
pub enum ClientMessage {
    Ping,
    Subscribe { machine_ids: Option<HashSet<String>>, types: Option<HashSet<EventType>> },
    Unsubscribe { machine_ids: Option<HashSet<String>>, types: Option<HashSet<EventType>> },
}

/// Why a client message was refused: `(code, message)`.
pub type Refusal = (&'static str, String);

pub fn parse(text: &str) -> Result<ClientMessage, Refusal> {
    let value: Value = serde_json::from_str(text).map_err(|e| ("invalid_json", format!("not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(("invalid_message", "a message must be a JSON object with a \"type\"".into()));
    };
    let kind =
        map.get("type").and_then(Value::as_str).ok_or(("invalid_message", "missing string field \"type\"".into()))?;
    match kind {
        "ping" => Ok(ClientMessage::Ping),
        "subscribe" | "unsubscribe" => {
            let machine_ids = list(&map, "machine_ids", |m| {
                uuid::Uuid::parse_str(m).map(|u| u.to_string()).map_err(|_| format!("{m:?} is not a UUID"))
            })?;
            let types = list(&map, "types", |t| t.parse::<EventType>())?;
            if machine_ids.is_none() && types.is_none() {
                return Err(("invalid_message", format!("{kind} needs \"machine_ids\" or \"types\"")));
            }
            Ok(if kind == "subscribe" {
                ClientMessage::Subscribe { machine_ids, types }
            } else {
                ClientMessage::Unsubscribe { machine_ids, types }
            })
        }
        other => Err((
            "unknown_message_type",
            format!("unknown message type {other:?}; expected ping, subscribe or unsubscribe"),
        )),
    }
}

fn list<T: std::hash::Hash + Eq>(
    map: &serde_json::Map<String, Value>,
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<HashSet<T>>, Refusal> {
    let Some(value) = map.get(key) else { return Ok(None) };
    let Value::Array(items) = value else {
        return Err(("invalid_message", format!("\"{key}\" must be an array of strings")));
    };
    items
        .iter()
        .map(|item| {
            let s = item.as_str().ok_or(("invalid_message", format!("\"{key}\" must be an array of strings")))?;
            parse(s).map_err(|m| ("invalid_value", format!("{key}: {m}")))
        })
        .collect::<Result<HashSet<_>, _>>()
        .map(Some)
}

/// Applies a subscribe/unsubscribe to a filter. `allowed` is the stream's
/// type set; types outside it are refused. Subscribing to machines when all
/// are received narrows to those machines; unsubscribing from every type is
/// refused (close the connection instead).
pub fn apply(filter: &Filter, message: ClientMessage, allowed: Option<&HashSet<EventType>>) -> Result<Filter, Refusal> {
    let mut next = filter.clone();
    let all_allowed = || allowed.cloned().unwrap_or_else(|| EventType::ALL.iter().copied().collect());
    let check = |types: &HashSet<EventType>| match allowed {
        Some(a) if !types.is_subset(a) => {
            Err(("type_not_in_stream", "this stream does not carry some of those types".to_owned()))
        }
        _ => Ok(()),
    };
    match message {
        ClientMessage::Ping => {}
        ClientMessage::Subscribe { machine_ids, types } => {
            if let Some(ids) = machine_ids {
                next.machine_ids.get_or_insert_with(HashSet::new).extend(ids);
            }
            if let Some(types) = types {
                check(&types)?;
                next.types.get_or_insert_with(HashSet::new).extend(types);
            }
        }
        ClientMessage::Unsubscribe { machine_ids, types } => {
            if let (Some(ids), Some(current)) = (machine_ids, next.machine_ids.as_mut()) {
                current.retain(|m| !ids.contains(m));
            }
            if let Some(types) = types {
                check(&types)?;
                let current = next.types.get_or_insert_with(all_allowed);
                current.retain(|t| !types.contains(t));
                if current.is_empty() {
                    return Err(("invalid_message", "cannot unsubscribe from every type; close the connection".into()));
                }
            }
        }
    }
    Ok(next)
}
