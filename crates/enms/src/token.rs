//! `enms token create|list|revoke`: token management straight in the
//! database, so the first admin token can be made before any exists (it is
//! how a secured server is bootstrapped).

use enms_core::access::Role;

use crate::cli::{DatabaseArgs, TokenCommand};
use crate::settings;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub async fn run(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create { role, name, json, db } => create(db, role, &name, json).await,
        TokenCommand::List { json, db } => list(db, json).await,
        TokenCommand::Revoke { token, db } => revoke(db, &token).await,
    }
}

async fn open(db: DatabaseArgs) -> Result<std::sync::Arc<dyn enms_store::Store>> {
    let url = settings::resolve_database(db)?;
    Ok(enms_store::connect(&url).await?)
}

async fn create(db: DatabaseArgs, role: Role, name: &str, json: bool) -> Result<()> {
    let store = open(db).await?;
    let created = enms_server::auth::issue(store.as_ref(), name, role).await.map_err(|e| e.body.message)?;
    store.close().await;
    if json {
        println!("{}", serde_json::to_string(&created)?);
        return Ok(());
    }
    eprintln!(
        "Created {role} token {:?} ({}). It is shown only now; keep it secret:",
        created.record.name, created.record.id
    );
    println!("{}", created.token);
    Ok(())
}

async fn list(db: DatabaseArgs, json: bool) -> Result<()> {
    let store = open(db).await?;
    let all = store.list_tokens().await?;
    store.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!("{:<36}  {:<24}  {:<8}  {:<20}  STATUS", "ID", "NAME", "ROLE", "CREATED");
    for t in all {
        let status = match t.revoked_at {
            Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
            None => "active".into(),
        };
        println!(
            "{:<36}  {:<24}  {:<8}  {:<20}  {status}",
            t.id,
            t.name,
            t.role,
            t.created_at.format("%Y-%m-%d %H:%M")
        );
    }
    Ok(())
}

async fn revoke(db: DatabaseArgs, which: &str) -> Result<()> {
    let store = open(db).await?;
    let all = store.list_tokens().await?;
    let found = all
        .iter()
        .filter(|t| t.is_active())
        .find(|t| t.id.to_string() == which || t.name.eq_ignore_ascii_case(which))
        .ok_or_else(|| format!("no active token with id or name {which:?}"))?;
    store.revoke_token(found.id, chrono::Utc::now()).await?;
    store.close().await;
    eprintln!(
        "Revoked token {:?} ({}); servers stop accepting it within their token_cache time.",
        found.name, found.id
    );
    Ok(())
}
