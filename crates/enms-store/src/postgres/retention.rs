//! PostgreSQL's retention: the floors table, pruning a level in short
//! per-machine transactions that take the machine's ingest lock (so a
//! batch in flight either finished its rollups before the rows went, or
//! sees the new floor and is refused), and rows and bytes per level.

use chrono::{DateTime, Utc};
use enms_core::timestamp::to_ms;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};

use crate::Result;
use crate::rollup::{Floors, LEVELS_FINEST_FIRST, LevelStats, Source, StorageStats};

pub async fn floors(conn: &mut PgConnection) -> Result<Floors> {
    let mut floors = Floors::default();
    for row in sqlx::query("SELECT level, floor FROM retention_floors").fetch_all(&mut *conn).await? {
        let name: String = row.try_get("level")?;
        if let Some(level) = Source::parse(&name) {
            floors.set(level, to_ms(row.try_get("floor")?));
        }
    }
    Ok(floors)
}

pub async fn raise(pool: &PgPool, level: Source, floor: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "INSERT INTO retention_floors (level, floor) VALUES ($1, $2)
         ON CONFLICT (level) DO UPDATE SET floor = GREATEST(retention_floors.floor, excluded.floor)",
    )
    .bind(level.name())
    .bind(floor)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn prune(pool: &PgPool, level: Source, before: DateTime<Utc>, limit: u32) -> Result<u64> {
    let keys: Vec<i32> = sqlx::query_scalar("SELECT key FROM machines ORDER BY key").fetch_all(pool).await?;
    let mut deleted = 0u64;
    for table in level.pruned_tables() {
        let column = if *table == "readings" { "ts" } else { "bucket" };
        let sql = format!(
            "DELETE FROM {table} WHERE machine_key = $1 AND {column} IN
                 (SELECT {column} FROM {table} WHERE machine_key = $1 AND {column} < $2 ORDER BY {column} LIMIT $3)"
        );
        for key in &keys {
            let left = u64::from(limit).saturating_sub(deleted);
            if left == 0 {
                return Ok(deleted);
            }
            let mut tx = pool.begin().await?;
            super::rollup::lock(&mut tx, &mut [*key]).await?;
            let done = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(key)
                .bind(before)
                .bind(left as i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            deleted += done.rows_affected();
        }
    }
    Ok(deleted)
}

pub async fn stats(pool: &PgPool) -> Result<StorageStats> {
    let mut out = StorageStats::default();
    for level in LEVELS_FINEST_FIRST {
        let (table, column) = level.table();
        let sql = format!(
            "SELECT m.id, m.name, COUNT(t.machine_key) AS n, MIN(t.{column}) AS oldest, MAX(t.{column}) AS newest
             FROM machines m LEFT JOIN {table} t ON t.machine_key = m.key GROUP BY m.key ORDER BY m.name"
        );
        for row in sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await? {
            out.levels.push(LevelStats {
                machine_id: row.try_get("id")?,
                machine_name: row.try_get("name")?,
                level: level.name(),
                rows: row.try_get::<i64, _>("n")?.try_into().unwrap_or(0),
                oldest: row.try_get("oldest")?,
                newest: row.try_get("newest")?,
            });
        }
        let bytes: i64 =
            sqlx::query_scalar("SELECT pg_total_relation_size($1::regclass)").bind(table).fetch_one(pool).await?;
        out.bytes.push((level.name().to_owned(), bytes.try_into().unwrap_or(0)));
    }
    Ok(out)
}
