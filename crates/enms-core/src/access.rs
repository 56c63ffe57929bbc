//! Who may do what: the roles an API token or a person carries, the token,
//! user and session records the store keeps. Only hashes are ever stored:
//! SHA-256 of a token or session secret, argon2 of a password.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Roles are ordered: each one may do everything the one before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything and subscribes to every stream.
    Viewer,
    /// Also detects, trains, acknowledges, publishes and ingests.
    Operator,
    /// Also manages machines and tokens and reads the configuration.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown role {s:?}; use viewer, operator or admin"))
    }
}

/// A stored API token: its SHA-256 hash, never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    #[schema(ignore)]
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A token name: 1–64 characters of ASCII letters, digits, space, `-`, `_`,
/// `.` (what the OpenAPI schema can state exactly).
pub fn valid_token_name(name: &str) -> Result<(), String> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || " -_.".contains(c));
    if ok { Ok(()) } else { Err("a token name is 1 to 64 ASCII letters, digits, spaces, '-', '_' or '.'".into()) }
}

/// A person who signs in with a name and password (docs/sign-in.md).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserRecord {
    pub id: Uuid,
    /// Unique, case-insensitively; the name shown as the actor of what they do.
    pub name: String,
    pub role: Role,
    /// The argon2id PHC string (`$argon2id$v=19$…`).
    #[serde(skip)]
    #[schema(ignore)]
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    /// Failed sign-ins since the last success or lock-out.
    pub failed_logins: u32,
    /// Sign-in is refused until then (too many failed attempts).
    pub locked_until: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// A disabled user cannot sign in and their sessions end.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl UserRecord {
    pub fn is_active(&self) -> bool {
        self.disabled_at.is_none()
    }

    /// Whether sign-in is refused at `now` for failed attempts.
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

/// A signed-in session: the SHA-256 of its secret, its user and its end.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    #[serde(skip)]
    #[schema(ignore)]
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set by logout, by disabling the user or by a password change.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The longest user name, in characters.
pub const MAX_USER_NAME: usize = 64;

/// A user name: 1–64 characters of ASCII letters, digits, `-`, `_`, `.`,
/// `@` (an e-mail address fits), no spaces.
pub fn valid_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_USER_NAME
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok { Ok(()) } else { Err("a user name is 1 to 64 ASCII letters, digits, '-', '_', '.' or '@'".into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse_case_insensitively() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!("Operator".parse::<Role>(), Ok(Role::Operator));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn token_names_are_checked() {
        assert!(valid_token_name("grafana scraper-1").is_ok());
        assert!(valid_token_name("").is_err());
        assert!(valid_token_name("a/b").is_err());
        assert!(valid_token_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn user_names_are_checked() {
        assert!(valid_user_name("ada.lovelace@plant.example").is_ok());
        assert!(valid_user_name("").is_err());
        assert!(valid_user_name("two words").is_err());
        assert!(valid_user_name(&"x".repeat(65)).is_err());
    }
}
