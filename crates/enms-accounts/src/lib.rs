//! People who sign in (docs/sign-in.md): users with a password and a role,
//! sessions that expire, and lock-out after failed attempts. API tokens —
//! for machines and scripts — stay in the server's `auth` module; a session
//! is the same kind of bearer secret with a different prefix, an expiry and
//! a person behind it.
//!
//! - [`password`]: the rule for a new password and argon2id hashing;
//! - [`secret`]: bearer secrets (tokens and sessions) and their SHA-256;
//! - this module: the [`Accounts`] service the server's routes and guard
//!   and `enms user` call.
//!
//! The lock-out count lives on the user's row and is raised by one atomic
//! UPDATE, so every instance counts the same attempts and a restart does
//! not forgive them. No HTTP: the server maps [`AccountError`] to codes.

pub mod password;
pub mod secret;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use enms_core::access::{Role, SessionRecord, UserRecord, valid_user_name};
use enms_core::setting::{InvalidSetting, above_zero};
use enms_store::{Store, StoreError};
use uuid::Uuid;

/// Session secrets start with this; API tokens with `enms_` and a hex
/// digit, so the guard knows which table to ask.
pub const SESSION_PREFIX: &str = "enms_s_";

/// How sign-in behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// A session ends this long after sign-in, used or not.
    pub session_lifetime: Duration,
    /// Failed sign-ins in a row that lock a user out.
    pub max_failures: u32,
    /// How long a lock-out lasts.
    pub lockout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self { session_lifetime: Duration::from_secs(12 * 3600), max_failures: 5, lockout: Duration::from_secs(900) }
    }
}

impl Policy {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        above_zero("session_lifetime", self.session_lifetime)?;
        above_zero("lockout", self.lockout)?;
        if self.max_failures == 0 {
            return Err(InvalidSetting::new("max_failed_logins", "must be at least 1"));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    #[error("a user named {0:?} already exists")]
    NameTaken(String),
    #[error("no user {0}")]
    UnknownUser(String),
    /// Wrong name or password, or a disabled user: one answer for all, so
    /// it does not tell which names exist.
    #[error("wrong user name or password")]
    InvalidCredentials,
    #[error("too many failed sign-ins for this user; try again after {until}")]
    LockedOut { until: DateTime<Utc> },
    #[error("the session ended at {at}; sign in again")]
    SessionExpired { at: DateTime<Utc> },
    /// Unknown, signed out, or its user was disabled.
    #[error("the session is unknown or was signed out")]
    UnknownSession,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

type Result<T, E = AccountError> = std::result::Result<T, E>;

/// A new session: the record and, this once, its secret.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: UserRecord,
    pub session: SessionRecord,
    pub secret: String,
}

/// What a user's record may be changed to (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub password: Option<String>,
    pub disabled: Option<bool>,
}

/// Users, sign-in and sessions over the store.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn Store>,
    policy: Policy,
    /// Password hashes computed at once: half the cores (at least one).
    /// A burst of sign-ins queues here instead of taking every core from
    /// the requests and streams the server is serving (bench/sign-in.sh).
    hashing: Arc<tokio::sync::Semaphore>,
}

impl Accounts {
    pub fn new(store: Arc<dyn Store>, policy: Policy) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self { store, policy, hashing: Arc::new(tokio::sync::Semaphore::new((cores / 2).max(1))) }
    }

    /// Runs a password hash or verification on the blocking pool, under
    /// the hashing limit.
    async fn hashing<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self.hashing.acquire().await.map_err(|e| AccountError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| AccountError::Hashing(e.to_string()))
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Creates a user; the password is checked, then only its hash is kept.
    pub async fn create_user(&self, name: &str, role: Role, password: &str) -> Result<UserRecord> {
        valid_user_name(name).map_err(|message| AccountError::Invalid { field: "name", message })?;
        password::check(name, password).map_err(|message| AccountError::Invalid { field: "password", message })?;
        let user = UserRecord {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            role,
            password_hash: self.hash(password).await?,
            created_at: now_ms(),
            failed_logins: 0,
            locked_until: None,
            last_login_at: None,
            disabled_at: None,
        };
        match self.store.create_user(&user).await {
            Err(StoreError::Conflict { .. }) => Err(AccountError::NameTaken(name.to_owned())),
            other => other.map(|()| user).map_err(Into::into),
        }
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>> {
        Ok(self.store.list_users().await?)
    }

    /// A user by id or, failing that, by name.
    pub async fn user(&self, which: &str) -> Result<UserRecord> {
        let by_id = match which.parse::<Uuid>() {
            Ok(id) => self.store.get_user(id).await?,
            Err(_) => None,
        };
        let found = match by_id {
            Some(u) => Some(u),
            None => self.store.find_user(which).await?,
        };
        found.ok_or_else(|| AccountError::UnknownUser(which.to_owned()))
    }

    /// Changes a user's role, password or whether they are disabled. A new
    /// password or disabling ends every session of the user, in the same
    /// write.
    pub async fn change_user(&self, id: Uuid, change: UserChange) -> Result<UserRecord> {
        let mut user = self.store.get_user(id).await?.ok_or_else(|| AccountError::UnknownUser(id.to_string()))?;
        let now = now_ms();
        let mut end_sessions = false;
        if let Some(role) = change.role {
            // A lower role must not outlive the change in an open session.
            end_sessions |= role < user.role;
            user.role = role;
        }
        if let Some(password) = &change.password {
            password::check(&user.name, password)
                .map_err(|message| AccountError::Invalid { field: "password", message })?;
            user.password_hash = self.hash(password).await?;
            end_sessions = true;
        }
        match change.disabled {
            Some(true) if user.disabled_at.is_none() => {
                user.disabled_at = Some(now);
                end_sessions = true;
            }
            Some(false) => user.disabled_at = None,
            _ => {}
        }
        if !self.store.update_user(&user, end_sessions.then_some(now)).await? {
            return Err(AccountError::UnknownUser(id.to_string()));
        }
        Ok(user)
    }

    /// Checks a name and password and starts a session. A wrong password
    /// counts toward the lock-out; a locked-out user is refused before the
    /// password is looked at, and a success clears the count.
    pub async fn login(&self, name: &str, password: &str) -> Result<SignedIn> {
        let now = now_ms();
        let user = self.store.find_user(name.trim()).await?;
        let Some(user) = user else {
            let password = password.to_owned();
            let _ = self.hashing(move || password::verify_nothing(&password)).await;
            return Err(AccountError::InvalidCredentials);
        };
        if let Some(until) = user.locked_until.filter(|&until| until > now) {
            return Err(AccountError::LockedOut { until });
        }
        let (given, phc) = (password.to_owned(), user.password_hash.clone());
        let matches = self.hashing(move || password::verify(&given, &phc)).await?;
        if !matches || !user.is_active() {
            if matches {
                return Err(AccountError::InvalidCredentials);
            }
            let lock_until = now + chrono_duration(self.policy.lockout);
            let counted = self.store.record_failed_login(user.id, self.policy.max_failures, lock_until).await?;
            if let Some(until) = counted.and_then(|u| u.locked_until).filter(|&until| until > now) {
                return Err(AccountError::LockedOut { until });
            }
            return Err(AccountError::InvalidCredentials);
        }
        let secret = secret::generate(SESSION_PREFIX);
        let session = SessionRecord {
            id: Uuid::new_v4(),
            user_id: user.id,
            hash: secret::hash(&secret),
            created_at: now,
            expires_at: now + chrono_duration(self.policy.session_lifetime),
            revoked_at: None,
        };
        self.store.start_session(&session).await?;
        Ok(SignedIn { user, session, secret })
    }

    async fn hash(&self, password: &str) -> Result<String> {
        let password = password.to_owned();
        self.hashing(move || password::hash(&password)).await?.map_err(AccountError::Hashing)
    }

    /// The live session a secret names and its user.
    pub async fn session(&self, secret: &str) -> Result<(SessionRecord, UserRecord)> {
        self.session_by_hash(&secret::hash(secret)).await
    }

    /// [`Self::session`] by the secret's SHA-256 (what the server keeps of a
    /// stream's credential).
    pub async fn session_by_hash(&self, hash: &str) -> Result<(SessionRecord, UserRecord)> {
        let session = self.store.find_session(hash).await?;
        let session = session.filter(|s| s.revoked_at.is_none()).ok_or(AccountError::UnknownSession)?;
        if session.expires_at <= Utc::now() {
            return Err(AccountError::SessionExpired { at: session.expires_at });
        }
        let user = self.store.get_user(session.user_id).await?;
        let user = user.filter(UserRecord::is_active).ok_or(AccountError::UnknownSession)?;
        Ok((session, user))
    }

    /// Ends a session (sign-out); `false` when it had already ended.
    pub async fn logout(&self, session: Uuid) -> Result<bool> {
        Ok(self.store.revoke_session(session, Utc::now()).await?)
    }
}

/// Now, to the millisecond the stores keep, so an answer's times equal the
/// stored ones.
fn now_ms() -> DateTime<Utc> {
    use enms_core::timestamp::{from_ms, to_ms};
    from_ms(to_ms(Utc::now()))
}

fn chrono_duration(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}
