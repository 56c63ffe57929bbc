//! SQLite's retention: the floors table, pruning a level in short
//! per-machine deletes (the writer is free between them, so ingest waits at
//! most one delete), and the rows and bytes per level for `enms db stats`.

use enms_core::timestamp::{from_ms, to_ms};
use sqlx::{AssertSqlSafe, Row, SqliteConnection, SqlitePool};

use crate::Result;
use crate::rollup::{Floors, LEVELS_FINEST_FIRST, LevelStats, Source, StorageStats};

pub async fn floors(conn: &mut SqliteConnection) -> Result<Floors> {
    let mut floors = Floors::default();
    for row in sqlx::query("SELECT level, floor FROM retention_floors").fetch_all(&mut *conn).await? {
        let name: String = row.try_get("level")?;
        if let Some(level) = Source::parse(&name) {
            floors.set(level, row.try_get("floor")?);
        }
    }
    Ok(floors)
}

pub async fn raise(pool: &SqlitePool, level: Source, floor: chrono::DateTime<chrono::Utc>) -> Result<()> {
    sqlx::query(
        "INSERT INTO retention_floors (level, floor) VALUES (?, ?)
         ON CONFLICT (level) DO UPDATE SET floor = MAX(floor, excluded.floor)",
    )
    .bind(level.name())
    .bind(to_ms(floor))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn prune(pool: &SqlitePool, level: Source, before: chrono::DateTime<chrono::Utc>, limit: u32) -> Result<u64> {
    let keys: Vec<i64> = sqlx::query_scalar("SELECT key FROM machines ORDER BY key").fetch_all(pool).await?;
    let mut deleted = 0u64;
    for table in level.pruned_tables() {
        let column = if *table == "readings" { "ts" } else { "bucket" };
        let sql = format!(
            "DELETE FROM {table} WHERE machine_key = ?1 AND {column} IN
                 (SELECT {column} FROM {table} WHERE machine_key = ?1 AND {column} < ?2 ORDER BY {column} LIMIT ?3)"
        );
        for key in &keys {
            let left = u64::from(limit).saturating_sub(deleted);
            if left == 0 {
                return Ok(deleted);
            }
            let done = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(key)
                .bind(to_ms(before))
                .bind(left as i64)
                .execute(pool)
                .await?;
            deleted += done.rows_affected();
        }
    }
    Ok(deleted)
}

pub async fn stats(pool: &SqlitePool) -> Result<StorageStats> {
    let mut out = StorageStats::default();
    for level in LEVELS_FINEST_FIRST {
        let (table, column) = level.table();
        let sql = format!(
            "SELECT m.id, m.name, COUNT(t.machine_key) AS n, MIN(t.{column}) AS oldest, MAX(t.{column}) AS newest
             FROM machines m LEFT JOIN {table} t ON t.machine_key = m.key GROUP BY m.key ORDER BY m.name"
        );
        for row in sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await? {
            let id: String = row.try_get("id")?;
            out.levels.push(LevelStats {
                machine_id: id.parse().map_err(|_| crate::StoreError::Corrupt(format!("machine id {id:?}")))?,
                machine_name: row.try_get("name")?,
                level: level.name(),
                rows: row.try_get::<i64, _>("n")?.try_into().unwrap_or(0),
                oldest: row.try_get::<Option<i64>, _>("oldest")?.map(from_ms),
                newest: row.try_get::<Option<i64>, _>("newest")?.map(from_ms),
            });
        }
        // Pages of the table (its primary key is the table: WITHOUT ROWID).
        let bytes: Option<i64> = sqlx::query_scalar("SELECT SUM(pgsize) FROM dbstat WHERE name = ?")
            .bind(table)
            .fetch_one(pool)
            .await
            .ok()
            .flatten();
        if let Some(b) = bytes {
            out.bytes.push((level.name().to_owned(), b.try_into().unwrap_or(0)));
        }
    }
    Ok(out)
}
