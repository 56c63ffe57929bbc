//! `enms bench …`: measurements of a running server, recorded in BENCHMARKS.md.

pub mod detect;
pub mod fanout;
pub mod forecast;
pub mod host;
pub mod ingest;
pub mod mqtt;
pub mod notify;
mod raw_ws;
pub mod scale;
