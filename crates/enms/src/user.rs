//! `enms user create|list|passwd|disable`: the people who sign in, managed
//! straight in the database (so the first admin can be made before anyone
//! can sign in), through the same `enms-accounts` service as the API.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use enms_accounts::{Accounts, Policy, UserChange};
use enms_core::access::Role;
use enms_store::Store;

use crate::cli::{DatabaseArgs, UserCommand};
use crate::settings;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub async fn run(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Create { role, name, json, db } => create(db, role, &name, json).await,
        UserCommand::List { json, db } => list(db, json).await,
        UserCommand::Passwd { user, db } => passwd(db, &user).await,
        UserCommand::Disable { user, db } => disable(db, &user).await,
    }
}

async fn open(db: DatabaseArgs) -> Result<(Arc<dyn Store>, Accounts)> {
    let url = settings::resolve_database(db)?;
    let store = enms_store::connect(&url).await?;
    // Only user records are touched here; sign-in policy is the server's.
    Ok((store.clone(), Accounts::new(store, Policy::default())))
}

/// The new password: prompted twice on a terminal, else one line of stdin.
fn read_password(for_whom: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {for_whom}: "))?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            return Err("the two passwords differ; nothing was changed".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err("no password on standard input; nothing was changed".into());
    }
    Ok(password)
}

async fn create(db: DatabaseArgs, role: Role, name: &str, json: bool) -> Result<()> {
    enms_core::access::valid_user_name(name)?;
    let password = read_password(name)?;
    let (store, accounts) = open(db).await?;
    let created = accounts.create_user(name, role, &password).await;
    store.close().await;
    let user = created?;
    if json {
        println!("{}", serde_json::to_string(&user)?);
        return Ok(());
    }
    eprintln!(
        "Created {role} user {:?} ({}); they sign in at the dashboard or POST /api/auth/login.",
        user.name, user.id
    );
    Ok(())
}

async fn list(db: DatabaseArgs, json: bool) -> Result<()> {
    let (store, accounts) = open(db).await?;
    let all = accounts.list_users().await;
    store.close().await;
    let all = all?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!("{:<36}  {:<24}  {:<8}  {:<16}  STATUS", "ID", "NAME", "ROLE", "LAST SIGN-IN");
    let now = chrono::Utc::now();
    for u in all {
        let status = match (u.disabled_at, u.locked_until) {
            (Some(at), _) => format!("disabled {}", at.format("%Y-%m-%d %H:%M")),
            (None, Some(until)) if until > now => format!("locked until {}", until.format("%Y-%m-%d %H:%M")),
            _ => "active".into(),
        };
        let last = u.last_login_at.map_or_else(|| "never".into(), |t| t.format("%Y-%m-%d %H:%M").to_string());
        println!("{:<36}  {:<24}  {:<8}  {last:<16}  {status}", u.id, u.name, u.role);
    }
    Ok(())
}

async fn passwd(db: DatabaseArgs, which: &str) -> Result<()> {
    let (store, accounts) = open(db).await?;
    let result = async {
        let user = accounts.user(which).await?;
        let password = read_password(&user.name)?;
        accounts.change_user(user.id, UserChange { password: Some(password), ..UserChange::default() }).await?;
        eprintln!("New password for {:?}; their sessions have ended.", user.name);
        Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn disable(db: DatabaseArgs, which: &str) -> Result<()> {
    let (store, accounts) = open(db).await?;
    let result = async {
        let user = accounts.user(which).await?;
        accounts.change_user(user.id, UserChange { disabled: Some(true), ..UserChange::default() }).await?;
        eprintln!("Disabled {:?}; they cannot sign in and their sessions have ended.", user.name);
        Ok(())
    }
    .await;
    store.close().await;
    result
}
