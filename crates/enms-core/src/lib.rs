//! Domain model of enms: machines, readings and their validation, the CSV
//! reading format, and the simulated factory used by `enms serve --demo`.
//!
//! Nothing in this crate performs I/O; storage, HTTP and clocks live in other
//! crates and pass the current time in where a rule depends on it.

pub mod access;
pub mod csv_format;
pub mod duration;
pub mod event;
pub mod feed;
pub mod host;
pub mod machine;
pub mod payload;
pub mod reading;
pub mod resolution;
pub mod setting;
pub mod sim;
pub mod timestamp;
pub mod validation;

pub use machine::{Machine, MachinePatch, MachineRecord, MachineStatus, NewMachine};
pub use reading::{BatchError, MAX_BATCH_ROWS, Reading, ReadingInput, parse_batch};
pub use resolution::Resolution;
pub use validation::FieldError;
