//! Server-sent events over a real socket: the connection event, live events
//! with ids, and resume with `Last-Event-ID`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{C1, TestServer, assert_error};
use crate::wsclient::{WAIT, alert, anomaly, publish};

/// One parsed SSE message.
#[derive(Debug)]
struct SseEvent {
    id: Option<String>,
    event: String,
    data: Value,
}

struct SseClient {
    resp: reqwest::Response,
    buf: String,
}

impl SseClient {
    async fn open(s: &TestServer, path: &str, last_event_id: Option<&str>) -> Self {
        let mut req = reqwest::Client::new().get(format!("{}{path}", s.url));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.expect("stream opens");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Self { resp, buf: String::new() }
    }

    /// Next message with data (comments and `retry:` skipped).
    async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::from("message"), None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).expect("data is JSON"));
                    }
                }
                if let Some(data) = data {
                    return SseEvent { id, event, data };
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk()).await.expect("data in time").expect("body");
            let chunk = chunk.expect("stream still open");
            self.buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }
}

#[tokio::test]
async fn sse_streams_events_and_resumes_from_last_event_id() {
    let s = TestServer::start().await;
    let mut sse =
        SseClient::open(&s, &format!("/api/v1/events/stream?types=anomaly_detected&machine_id={C1}"), None).await;
    let hello = sse.next().await;
    assert_eq!((hello.event.as_str(), hello.data["type"].as_str()), ("connection", Some("connection")));
    publish(&s, &alert("not for this stream")).await;
    let id = publish(&s, &anomaly(C1, "critical", "first")).await;
    let got = sse.next().await;
    assert_eq!((got.event.as_str(), got.id.as_deref()), ("anomaly_detected", Some(id.as_str())));
    assert_eq!(got.data["data"]["anomaly_type"], "first");
    drop(sse);

    for n in 0..20 {
        publish(&s, &anomaly(C1, "warning", &format!("missed-{n}"))).await;
    }
    let mut sse =
        SseClient::open(&s, &format!("/api/v1/events/stream?types=anomaly_detected&machine_id={C1}"), Some(&id)).await;
    let hello = sse.next().await;
    assert_eq!(hello.data["recovered"], true);
    for n in 0..20 {
        assert_eq!(sse.next().await.data["data"]["anomaly_type"], format!("missed-{n}"));
    }
    publish(&s, &anomaly(C1, "warning", "live")).await;
    assert_eq!(sse.next().await.data["data"]["anomaly_type"], "live");
    s.stop().await;
}

#[tokio::test]
async fn sse_refuses_bad_parameters_and_ends_on_shutdown() {
    let s = TestServer::with(|c| c.gateway.drain_timeout = Duration::from_secs(5)).await;
    for (query, field) in
        [("types=nope", "types"), ("machine_id=1", "machine_id"), ("last_event_id=x", "last_event_id")]
    {
        let e = assert_error(
            &s.get(&format!("/api/v1/events/stream?{query}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
        );
        assert_eq!(e["field"], field);
    }
    let mut sse = SseClient::open(&s, "/api/v1/events/stream", None).await;
    sse.next().await;
    let stopping = tokio::spawn(s.stop());
    let last = sse.next().await;
    assert_eq!((last.event.as_str(), last.data["code"].as_str()), ("error", Some("server_shutting_down")));
    tokio::time::timeout(WAIT, stopping).await.expect("stops in time").expect("stop");
}
