//! The pruner: every `retention.every`, for each level with a retention,
//! raises its floor to the horizon (a UTC midnight) and then deletes what
//! lies before it in batches of `retention.batch` rows, each its own short
//! transaction, yielding between them — so ingest never waits long behind
//! it. Raising the floor first is what makes pruning safe while readings
//! arrive: from then on a reading older than the raw floor is refused, and
//! what is deleted can no longer be needed to recompute a bucket.
//!
//! Several instances may prune at once; deletes are idempotent.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use enms_store::Store;
use enms_store::retention::RetentionConfig;
use enms_store::rollup::LEVELS_FINEST_FIRST;
use tokio_util::sync::CancellationToken;

/// What one pass deleted, per level (`raw`, `1m`, `1h`, `1d`).
pub type Pruned = Vec<(&'static str, u64)>;

/// Runs passes until `stop`; the first at once.
pub async fn run(store: Arc<dyn Store>, config: RetentionConfig, stop: CancellationToken) {
    if !config.prunes() {
        return;
    }
    loop {
        match pass(store.as_ref(), &config, &stop).await {
            Ok(pruned) => {
                for (level, rows) in pruned.iter().filter(|(_, n)| *n > 0) {
                    tracing::info!(level, rows, "retention pruned");
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed; the next one retries"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One pass over every level with a retention.
pub async fn pass(
    store: &dyn Store,
    config: &RetentionConfig,
    stop: &CancellationToken,
) -> Result<Pruned, enms_store::StoreError> {
    let horizons = config.horizons(Utc::now());
    let mut out = Vec::new();
    for level in LEVELS_FINEST_FIRST {
        let Some(floor) = horizons.of(level) else { continue };
        let floor = enms_core::timestamp::from_ms(floor);
        store.raise_retention_floor(level, floor).await?;
        let mut total = 0;
        loop {
            if stop.is_cancelled() {
                return Ok(out);
            }
            let n = store.prune_level(level, floor, config.batch).await?;
            total += n;
            if n == 0 {
                break;
            }
            // Let ingest's transactions in between the batches.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        out.push((level.name(), total));
    }
    Ok(out)
}
