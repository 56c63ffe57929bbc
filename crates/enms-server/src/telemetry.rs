//! Prometheus metrics of one server instance, served at `/metrics`.
//!
//! Each [`App`](crate::App) owns its recorder rather than installing a
//! process-wide one, so two instances in one process (tests, embedding)
//! report their own numbers. Hot paths hold pre-registered handles; the
//! gateway's and bus's counters already live in atomics and are copied in
//! at scrape time, so fan-out pays nothing per delivery for metrics.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Seconds: from 100 µs (a delivery) to 5 min (a long training job).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0,
];

static META: Metadata<'static> = Metadata::new("enms", metrics::Level::INFO, Some(module_path!()));

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Publish (the event's timestamp) → handed to every local socket.
    pub delivery: Histogram,
    /// Readings stored, from any path.
    pub ingested_rows: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let builder = PrometheusBuilder::new();
        // Cannot fail: the bucket list is a non-empty constant.
        let builder = builder.set_buckets(BUCKETS).unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        for (name, help) in [
            ("enms_event_delivery_seconds", "event published → written to local subscribers"),
            ("enms_http_request_duration_seconds", "HTTP request latency by route"),
            ("enms_job_duration_seconds", "background job run time by type and outcome"),
        ] {
            recorder.describe_histogram(name.into(), Some(metrics::Unit::Seconds), help.into());
        }
        let delivery = recorder.register_histogram(&Key::from_name("enms_event_delivery_seconds"), &META);
        let ingested_rows = recorder.register_counter(&Key::from_name("enms_ingested_rows_total"), &META);
        Arc::new(Self { recorder, handle, delivery, ingested_rows })
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, String)]) -> Counter {
        self.recorder.register_counter(&key(name, labels), &META)
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, String)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &META)
    }

    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, String)]) -> Histogram {
        self.recorder.register_histogram(&key(name, labels), &META)
    }

    /// One HTTP request, labelled by route pattern (not path, so ids do not
    /// explode the series count).
    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
        self.counter("enms_http_requests_total", &labels).increment(1);
        self.histogram("enms_http_request_duration_seconds", &labels[..2]).record(took.as_secs_f64());
    }

    /// A finished job.
    pub fn job_finished(&self, kind: &str, outcome: &str, took: Duration) {
        let labels = [("type", kind.to_owned()), ("outcome", outcome.to_owned())];
        self.counter("enms_jobs_total", &labels).increment(1);
        self.histogram("enms_job_duration_seconds", &labels).record(took.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
    Key::from_parts(name, labels.iter().map(|(k, v)| Label::new(*k, v.clone())).collect::<Vec<_>>())
}
