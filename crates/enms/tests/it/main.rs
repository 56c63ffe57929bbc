//! Integration tests of the `enms` binary: its commands against a live
//! server, its help, and the leftovers check. The server's own tests are
//! in crates/enms-server/tests; the harness (a server on port 0, a
//! WebSocket client) is shared from there rather than copied.

mod agent;
mod binary;
mod cli;
// Shared harness: this binary uses part of it.
#[allow(dead_code)]
#[path = "../../../enms-server/tests/it/common.rs"]
mod common;
mod leftovers;
#[allow(dead_code)]
#[path = "../../../enms-server/tests/it/sinks.rs"]
mod sinks;
#[allow(dead_code)]
#[path = "../../../enms-server/tests/it/wsclient.rs"]
mod wsclient;
