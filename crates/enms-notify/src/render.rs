//! A stored notification turned into what each kind of channel takes:
//! enms's webhook JSON, the Prometheus Alertmanager webhook format, a Slack
//! message, a Teams Adaptive Card, or an e-mail's subject and text.
//!
//! Rendering happens at send time from the notification's stored facts and
//! no format carries a send time, so a retry sends the same bytes, and
//! receivers can drop it by its idempotency key.

use serde_json::{Value, json};

use enms_store::NotificationRecord;

fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// `firing` or `resolved`: what state the notification reports.
pub fn status(n: &NotificationRecord) -> &'static str {
    if n.kind == "resolved" { "resolved" } else { "firing" }
}

/// enms's own webhook payload.
pub fn webhook(n: &NotificationRecord) -> Value {
    json!({
        "id": n.id,
        "idempotency_key": n.key,
        "kind": n.kind,
        "status": status(n),
        "channel": n.channel,
        "rule": n.rule,
        "alert_id": n.alert_id,
        "event_id": n.event_id,
        "title": n.title,
        "created_at": n.created_at.to_rfc3339(),
        "facts": n.body,
    })
}

/// The body Alertmanager sends to its webhook receivers (version 4), so
/// anything that takes those (PagerDuty bridges, alert routers, chat
/// bots) takes enms's alerts. One alert per notification; its labels
/// identify it, so firing and resolved pair up on the receiver.
pub fn alertmanager(n: &NotificationRecord) -> Value {
    let b = &n.body;
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!(text(b, "event_type").unwrap_or("enms")));
    labels.insert("rule".into(), json!(n.rule.clone().unwrap_or_else(|| "test".into())));
    labels.insert("severity".into(), json!(text(b, "severity").unwrap_or("info")));
    for (label, key) in [("machine", "machine_name"), ("machine_id", "machine_id"), ("location", "location")] {
        if let Some(v) = text(b, key) {
            labels.insert(label.into(), json!(v));
        }
    }
    if let Some(v) = b.pointer("/data/anomaly_type").and_then(Value::as_str) {
        labels.insert("anomaly_type".into(), json!(v));
    }
    let starts = text(b, "opened_at").unwrap_or_default().to_owned();
    let ends = if status(n) == "resolved" {
        text(b, "resolved_at").unwrap_or(&starts).to_owned()
    } else {
        "0001-01-01T00:00:00Z".to_owned()
    };
    let mut annotations = json!({"summary": n.title, "description": describe(n)});
    if let Some(link) = text(b, "link") {
        annotations["dashboard"] = json!(link);
    }
    let alert = json!({
        "status": status(n),
        "labels": labels,
        "annotations": annotations,
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": text(b, "link").unwrap_or(""),
        "fingerprint": n.alert_id.clone().unwrap_or_else(|| n.key.clone()),
    });
    json!({
        "version": "4",
        "groupKey": n.alert_id.clone().unwrap_or_else(|| n.key.clone()),
        "truncatedAlerts": 0,
        "status": status(n),
        "receiver": n.channel,
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": text(b, "dashboard_url").unwrap_or(""),
        "alerts": [alert],
    })
}

/// A Slack incoming-webhook message (text for notifications, blocks for
/// the channel).
pub fn slack(n: &NotificationRecord) -> Value {
    let head = format!("{} {}", marker(n), n.title);
    let mut section = format!("*{head}*\n{}", describe(n));
    if let Some(link) = text(&n.body, "link") {
        section.push_str(&format!("\n<{link}|Open in enms>"));
    }
    json!({
        "text": head,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": section}}],
    })
}

/// A Microsoft Teams message with an Adaptive Card, as Teams workflows'
/// "post to a channel when a webhook request is received" takes it.
pub fn teams(n: &NotificationRecord) -> Value {
    let mut body = vec![
        json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true,
               "text": format!("{} {}", marker(n), n.title)}),
        json!({"type": "TextBlock", "wrap": true, "text": describe(n)}),
    ];
    let facts: Vec<Value> =
        facts(n).into_iter().map(|(title, value)| json!({"title": title, "value": value})).collect();
    body.push(json!({"type": "FactSet", "facts": facts}));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(link) = text(&n.body, "link") {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in enms", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}],
    })
}

/// An e-mail's subject and plain text.
pub fn email(n: &NotificationRecord) -> (String, String) {
    let label = match n.kind.as_str() {
        "resolved" => "RESOLVED",
        "escalation" => "ESCALATED",
        "reminder" => "REMINDER",
        "test" => "TEST",
        _ => "FIRING",
    };
    let subject = format!("[enms] {label}: {}", n.title);
    let mut text = format!("{}\n\n{}\n\n", n.title, describe(n));
    for (k, v) in facts(n) {
        text.push_str(&format!("{k}: {v}\n"));
    }
    if let Some(link) = self::text(&n.body, "link") {
        text.push_str(&format!("\nOpen in enms: {link}\n"));
    }
    text.push_str(&format!("\nidempotency key: {}\n", n.key));
    (subject, text)
}

fn marker(n: &NotificationRecord) -> &'static str {
    match n.kind.as_str() {
        "resolved" => "[resolved]",
        "escalation" => "[escalated]",
        "reminder" => "[reminder]",
        "test" => "[test]",
        _ => "[firing]",
    }
}

/// One sentence on what happened, from the facts.
fn describe(n: &NotificationRecord) -> String {
    let b = &n.body;
    if n.kind == "test" {
        return format!("A test notification from enms through channel {:?}.", n.channel);
    }
    let data = b.get("data").unwrap_or(&Value::Null);
    let mut s = match text(b, "event_type") {
        Some("anomaly_detected") => {
            let metric = data.get("metric").and_then(Value::as_str).unwrap_or("value");
            let value = data.get("value").and_then(Value::as_f64);
            let expected = data.get("expected_value").and_then(Value::as_f64);
            match (value, expected) {
                (Some(v), Some(e)) => format!("{metric} was {v:.2} where {e:.2} was expected."),
                _ => format!("An anomaly in {metric}."),
            }
        }
        Some("system_alert") => data.get("message").and_then(Value::as_str).unwrap_or("A system alert.").to_owned(),
        Some(other) => format!("{} event.", other.replace('_', " ")),
        None => String::new(),
    };
    match n.kind.as_str() {
        "resolved" => s.push_str(" It has ended."),
        "escalation" => s.push_str(" Nobody has acknowledged it yet."),
        "reminder" => s.push_str(" It is still not acknowledged."),
        _ => {}
    }
    s
}

/// The facts listed in e-mails and cards.
fn facts(n: &NotificationRecord) -> Vec<(&'static str, String)> {
    let b = &n.body;
    let mut out = Vec::new();
    for (title, key) in [
        ("Machine", "machine_name"),
        ("Location", "location"),
        ("Severity", "severity"),
        ("Rule", "rule"),
        ("Started", "opened_at"),
        ("Ended", "resolved_at"),
    ] {
        if let Some(v) = text(b, key) {
            out.push((title, v.to_owned()));
        }
    }
    if let Some(v) = b.pointer("/data/anomaly_type").and_then(Value::as_str) {
        out.push(("Anomaly type", v.to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use enms_store::DeliveryStatus;
    use uuid::Uuid;

    use super::*;

    fn note(kind: &str) -> NotificationRecord {
        NotificationRecord {
            id: Uuid::nil(),
            key: "r/episode:x:firing:ops".into(),
            channel: "ops".into(),
            kind: kind.into(),
            rule: Some("r".into()),
            alert_id: Some("r/episode:x".into()),
            event_id: Some("1-0".into()),
            title: "Compressor-1: spike anomaly (critical)".into(),
            body: json!({
                "event_type": "anomaly_detected", "severity": "critical", "machine_name": "Compressor-1",
                "opened_at": "2026-12-01T10:00:00+00:00", "resolved_at": "2026-12-01T10:20:00+00:00",
                "link": "http://enms.example/#/anomalies",
                "data": {"metric": "power_kw", "value": 91.5, "expected_value": 60.0, "anomaly_type": "spike"},
            }),
            status: DeliveryStatus::Pending,
            attempts: 0,
            created_at: Utc::now(),
            next_attempt_at: Utc::now(),
            delivered_at: None,
            last_error: None,
        }
    }

    #[test]
    fn alertmanager_bodies_carry_status_labels_and_times() {
        let firing = alertmanager(&note("firing"));
        assert_eq!(firing["version"], "4");
        assert_eq!(firing["status"], "firing");
        let alert = &firing["alerts"][0];
        assert_eq!(alert["labels"]["severity"], "critical");
        assert_eq!(alert["labels"]["machine"], "Compressor-1");
        assert_eq!(alert["labels"]["anomaly_type"], "spike");
        assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(alert["annotations"]["description"], "power_kw was 91.50 where 60.00 was expected.");
        let resolved = alertmanager(&note("resolved"));
        assert_eq!(resolved["alerts"][0]["status"], "resolved");
        assert_eq!(resolved["alerts"][0]["endsAt"], "2026-12-01T10:20:00+00:00");
        assert_eq!(resolved["alerts"][0]["fingerprint"], firing["alerts"][0]["fingerprint"]);
    }

    #[test]
    fn chat_and_mail_formats_say_what_and_link() {
        let s = slack(&note("escalation"));
        assert!(s["text"].as_str().is_some_and(|t| t.starts_with("[escalated] Compressor-1")));
        assert!(
            s["blocks"][0]["text"]["text"].as_str().is_some_and(|t| t.contains("<http://enms.example/#/anomalies|"))
        );
        let t = teams(&note("firing"));
        assert_eq!(t["attachments"][0]["content"]["type"], "AdaptiveCard");
        let (subject, body) = email(&note("reminder"));
        assert_eq!(subject, "[enms] REMINDER: Compressor-1: spike anomaly (critical)");
        assert!(body.contains("Machine: Compressor-1") && body.contains("still not acknowledged"), "{body}");
    }
}
