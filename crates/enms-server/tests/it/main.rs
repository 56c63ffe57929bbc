//! Integration tests of the server library: the real router over real
//! sockets (port 0), with the real stores, buses, Redis, PostgreSQL and
//! nginx they start or connect to. One test binary, one module per feature.
//! Tests that drive the `enms` binary live with it (crates/enms/tests).

mod adapt;
mod analytics;
mod common;
mod config;
mod demo;
mod detection;
mod events;
mod explain;
mod export;
mod forecast;
mod health;
mod hosts;
mod import;
mod incidents;
mod machines;
mod metrics;
mod modbus;
mod mqtt;
mod nab;
mod nginx;
mod notify;
mod openapi;
mod readings;
mod restart;
mod retention;
mod scaleout;
mod security;
mod sign_in;
mod sinks;
mod sse;
mod ui;
mod ws;
mod wsclient;
