//! `enms db stats`: rows, span and bytes of raw readings and each rollup
//! tier, per machine, read straight from the database (as `enms token`
//! does), with the retention floors — what retention keeps and what it
//! costs on disk.

use std::collections::BTreeMap;

use crate::cli::DbCommand;
use crate::settings;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub async fn run(command: DbCommand) -> Result<()> {
    match command {
        DbCommand::Stats { json, db } => stats(db, json).await,
    }
}

async fn stats(db: settings::DatabaseArgs, json: bool) -> Result<()> {
    let url = settings::resolve_database(db)?;
    let store = enms_store::connect(&url).await?;
    let stats = store.storage_stats().await;
    let floors = store.retention_floors().await;
    store.close().await;
    let (stats, floors) = (stats?, floors?);
    let floor = |level: &str| {
        enms_store::rollup::Source::parse(level)
            .and_then(|l| floors.of(l))
            .map(|ms| enms_core::timestamp::from_ms(ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    if json {
        let levels: Vec<_> = ["raw", "1m", "1h", "1d"]
            .into_iter()
            .map(|level| {
                let rows: u64 = stats.levels.iter().filter(|l| l.level == level).map(|l| l.rows).sum();
                let bytes = stats.bytes.iter().find(|(n, _)| n == level).map(|(_, b)| *b);
                serde_json::json!({"level": level, "rows": rows, "bytes": bytes, "kept_from": floor(level)})
            })
            .collect();
        println!("{}", serde_json::json!({"levels": levels, "machines": stats.levels}));
        return Ok(());
    }
    let raw_rows: u64 = stats.levels.iter().filter(|l| l.level == "raw").map(|l| l.rows).sum();
    println!("{:<6} {:>14} {:>16} {:>12}  kept from", "level", "rows", "bytes", "bytes/raw");
    for level in ["raw", "1m", "1h", "1d"] {
        let rows: u64 = stats.levels.iter().filter(|l| l.level == level).map(|l| l.rows).sum();
        let bytes = stats.bytes.iter().find(|(n, _)| n == level).map(|(_, b)| *b);
        let per = match bytes {
            Some(b) if raw_rows > 0 => format!("{:.1}", b as f64 / raw_rows as f64),
            _ => "-".into(),
        };
        println!(
            "{level:<6} {rows:>14} {:>16} {per:>12}  {}",
            bytes.map_or("-".into(), |b| b.to_string()),
            floor(level).unwrap_or_else(|| "everything".into())
        );
    }
    let mut by_machine: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for l in &stats.levels {
        let span = match (l.oldest, l.newest) {
            (Some(a), Some(b)) => format!("{} .. {}", a.format("%Y-%m-%d"), b.format("%Y-%m-%d")),
            _ => "empty".into(),
        };
        by_machine.entry(l.machine_name.as_str()).or_default().push(format!("{} {} ({span})", l.level, l.rows));
    }
    println!();
    for (machine, levels) in by_machine {
        println!("{machine}: {}", levels.join(", "));
    }
    Ok(())
}
