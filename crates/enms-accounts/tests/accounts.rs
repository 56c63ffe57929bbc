//! The accounts service on a real SQLite store: sign-in, lock-out, expiry,
//! sign-out, and what changing a user does to their sessions.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use enms_accounts::{AccountError, Accounts, Policy, SESSION_PREFIX, UserChange, secret};
use enms_core::access::{Role, SessionRecord};
use enms_store::Store;
use uuid::Uuid;

async fn accounts(policy: Policy) -> (tempfile::TempDir, Arc<dyn Store>, Accounts) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("enms.db").display());
    let store = enms_store::connect(&url).await.expect("open sqlite");
    (dir, store.clone(), Accounts::new(store, policy))
}

#[tokio::test]
async fn sign_in_starts_a_session_that_sign_out_ends() {
    let (_dir, _store, accounts) = accounts(Policy::default()).await;
    let ada = accounts.create_user("ada", Role::Operator, "analytical engine").await.expect("create");
    assert!(!ada.password_hash.contains("analytical"), "only the hash is kept");

    let signed = accounts.login("ADA", "analytical engine").await.expect("names match case-insensitively");
    assert!(signed.secret.starts_with(SESSION_PREFIX));
    assert_eq!(signed.session.hash, secret::hash(&signed.secret));
    let lifetime = signed.session.expires_at - signed.session.created_at;
    assert_eq!(lifetime.num_hours(), 12, "the default lifetime");
    let (session, user) = accounts.session(&signed.secret).await.expect("live");
    assert_eq!((session.id, user.name.as_str(), user.role), (signed.session.id, "ada", Role::Operator));

    assert!(accounts.logout(session.id).await.expect("logout"));
    assert!(!accounts.logout(session.id).await.expect("twice"), "already ended");
    assert!(matches!(accounts.session(&signed.secret).await, Err(AccountError::UnknownSession)));
    assert!(matches!(accounts.session("enms_s_0000").await, Err(AccountError::UnknownSession)));
}

#[tokio::test]
async fn failed_sign_ins_lock_the_user_out_even_with_the_right_password() {
    let policy = Policy { max_failures: 3, lockout: Duration::from_secs(600), ..Policy::default() };
    let (_dir, store, accounts) = accounts(policy).await;
    accounts.create_user("grace", Role::Viewer, "compiler A-0").await.expect("create");
    for _ in 0..2 {
        assert!(matches!(accounts.login("grace", "wrong password").await, Err(AccountError::InvalidCredentials)));
    }
    let third = accounts.login("grace", "wrong again").await;
    let Err(AccountError::LockedOut { until }) = third else { panic!("the third failure locks: {third:?}") };
    let minutes = (until - Utc::now()).num_minutes();
    assert!((9..=10).contains(&minutes), "locked for the lock-out time, {minutes} min left");
    assert!(
        matches!(accounts.login("grace", "compiler A-0").await, Err(AccountError::LockedOut { .. })),
        "the right password does not open a lock"
    );
    assert!(matches!(accounts.login("nobody", "whatever1").await, Err(AccountError::InvalidCredentials)));

    // Once the lock has passed, the right password signs in and clears the count.
    lift_lock(&store, "grace").await;
    accounts.login("grace", "compiler A-0").await.expect("signs in after the lock");
    let grace = store.find_user("grace").await.unwrap().unwrap();
    assert_eq!((grace.failed_logins, grace.locked_until), (0, None));
}

/// Moves a lock into the past the way time would: through the store, with
/// a lock-out that already ended.
async fn lift_lock(store: &Arc<dyn Store>, name: &str) {
    let user = store.find_user(name).await.unwrap().unwrap();
    let past = Utc::now() - chrono::TimeDelta::seconds(1);
    // One more failure at a limit of 1 sets the lock to `past`.
    store.record_failed_login(user.id, 1, past).await.unwrap();
}

#[tokio::test]
async fn an_expired_session_is_refused_saying_so() {
    let (_dir, store, accounts) = accounts(Policy::default()).await;
    let user = accounts.create_user("linus", Role::Admin, "kernel hacker").await.expect("create");
    let secret = secret::generate(SESSION_PREFIX);
    let past = Utc::now() - chrono::TimeDelta::hours(13);
    let session = SessionRecord {
        id: Uuid::new_v4(),
        user_id: user.id,
        hash: secret::hash(&secret),
        created_at: past,
        expires_at: past + chrono::TimeDelta::hours(12),
        revoked_at: None,
    };
    store.start_session(&session).await.expect("store");
    let refused = accounts.session(&secret).await;
    assert!(
        matches!(refused, Err(AccountError::SessionExpired { at }) if at.timestamp_millis() == session.expires_at.timestamp_millis()),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_new_password_or_disabling_ends_the_users_sessions() {
    let (_dir, _store, accounts) = accounts(Policy::default()).await;
    let user = accounts.create_user("ken", Role::Operator, "unix is simple").await.expect("create");
    let first = accounts.login("ken", "unix is simple").await.expect("login");
    let change = UserChange { password: Some("plan nine from bell".into()), ..UserChange::default() };
    accounts.change_user(user.id, change).await.expect("new password");
    assert!(matches!(accounts.session(&first.secret).await, Err(AccountError::UnknownSession)));
    assert!(matches!(accounts.login("ken", "unix is simple").await, Err(AccountError::InvalidCredentials)));
    let second = accounts.login("ken", "plan nine from bell").await.expect("new password signs in");

    let raise = UserChange { role: Some(Role::Admin), ..UserChange::default() };
    accounts.change_user(user.id, raise).await.expect("raise");
    assert!(accounts.session(&second.secret).await.is_ok(), "a higher role keeps the session");

    accounts.change_user(user.id, UserChange { disabled: Some(true), ..UserChange::default() }).await.expect("off");
    assert!(matches!(accounts.session(&second.secret).await, Err(AccountError::UnknownSession)));
    assert!(matches!(accounts.login("ken", "plan nine from bell").await, Err(AccountError::InvalidCredentials)));
}

#[tokio::test]
async fn bad_names_weak_passwords_and_taken_names_are_refused_storing_nothing() {
    let (_dir, store, accounts) = accounts(Policy::default()).await;
    let bad = accounts.create_user("two words", Role::Viewer, "long enough").await;
    assert!(matches!(bad, Err(AccountError::Invalid { field: "name", .. })), "{bad:?}");
    let weak = accounts.create_user("ada", Role::Viewer, "short").await;
    assert!(matches!(weak, Err(AccountError::Invalid { field: "password", .. })), "{weak:?}");
    accounts.create_user("ada", Role::Viewer, "long enough").await.expect("create");
    let taken = accounts.create_user("Ada", Role::Admin, "long enough").await;
    assert!(matches!(taken, Err(AccountError::NameTaken(_))), "{taken:?}");
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    assert!(matches!(accounts.user("nobody").await, Err(AccountError::UnknownUser(_))));
}
