//! `enms bench …`: measurements of a running server, recorded in BENCHMARKS.md.

pub mod ingest;
pub mod fanout;
