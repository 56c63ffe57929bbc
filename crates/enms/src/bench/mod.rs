//! `enms bench …`: measurements of a running server, recorded in BENCHMARKS.md.

pub mod fanout;
pub mod ingest;
