//! Integration tests: the real router over real sockets (port 0), and the
//! real `enms` binary. One test binary, one module per feature.

mod analytics;
mod binary;
mod cli;
mod common;
mod demo;
mod detection;
mod events;
mod health;
mod import;
mod leftovers;
mod machines;
mod metrics;
mod nginx;
mod openapi;
mod readings;
mod restart;
mod scaleout;
mod security;
mod sse;
mod ui;
mod ws;
mod wsclient;
