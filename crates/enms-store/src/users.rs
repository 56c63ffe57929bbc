//! What the backends share about users and sessions (the records are
//! `enms_core::access::{UserRecord, SessionRecord}`).

/// Sessions that expired or were revoked longer ago than this are deleted
/// when their user next signs in: the table stays bounded per user without
/// a sweeper, and recent ones stay for an audit.
pub const SESSIONS_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(30);
