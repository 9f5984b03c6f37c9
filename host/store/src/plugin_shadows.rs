//! Shadow runs (migration 0013): the candidate version each store plugin
//! is shadowed by, on what share of the logins, and the tallies of how its
//! runs compared with the live ones.
//!
//! The database adds up what every host ran; the hosts decide what a run
//! is and compare it. Starting a shadow again starts its tallies afresh.

use serde_json::Value;

use crate::{Store, StoreError, query_error, to_db_seconds};

/// The most differences a shadow keeps, newest first.
pub const MAX_SHADOW_DIFFERENCES: usize = 20;

/// A plugin's shadow: its candidate and the tallies so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    pub plugin: String,
    pub version: u64,
    /// The share of logins run, per million.
    pub sample_ppm: u64,
    pub started_at: String,
    pub started_by: String,
    pub tally: ShadowTally,
    /// The latest differences, newest first, as the hosts recorded them.
    pub differences: Vec<Value>,
}

/// How many shadow runs came out how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShadowTally {
    pub runs: u64,
    pub identical: u64,
    pub different: u64,
    pub failed: u64,
    /// Not run: the host's shadow queue was full.
    pub dropped: u64,
}

type ShadowRow = (
    String,
    i64,
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
);

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Store {
    /// Shadows `plugin` by its `version` on `sample_ppm` of the logins,
    /// replacing any shadow it had; false when there is no such version.
    pub async fn start_shadow(
        &self,
        plugin: &str,
        version: u64,
        sample_ppm: u64,
        at: &str,
        by: &str,
    ) -> Result<bool, StoreError> {
        let started = sqlx::query(
            "INSERT INTO plugin_shadows (plugin, version, sample_ppm, started_at, started_by) \
             SELECT CAST($1 AS TEXT), CAST($2 AS BIGINT), CAST($3 AS BIGINT), CAST($4 AS TEXT), \
             CAST($5 AS TEXT) \
             WHERE EXISTS (SELECT 1 FROM plugin_versions WHERE plugin = $1 AND version = $2) \
             ON CONFLICT (plugin) DO UPDATE SET version = excluded.version, \
             sample_ppm = excluded.sample_ppm, started_at = excluded.started_at, \
             started_by = excluded.started_by, runs = 0, identical = 0, different = 0, \
             failed = 0, dropped = 0, differences = '[]'",
        )
        .bind(plugin)
        .bind(to_db_seconds(version))
        .bind(to_db_seconds(sample_ppm))
        .bind(at)
        .bind(by)
        .execute(&self.pool)
        .await
        .map_err(query_error("start_shadow"))?;
        Ok(started.rows_affected() == 1)
    }

    /// Ends `plugin`'s shadow; false when it had none.
    pub async fn stop_shadow(&self, plugin: &str) -> Result<bool, StoreError> {
        let stopped = sqlx::query("DELETE FROM plugin_shadows WHERE plugin = $1")
            .bind(plugin)
            .execute(&self.pool)
            .await
            .map_err(query_error("stop_shadow"))?;
        Ok(stopped.rows_affected() == 1)
    }

    /// `plugin`'s shadow, if it has one.
    pub async fn plugin_shadow(&self, plugin: &str) -> Result<Option<Shadow>, StoreError> {
        const OP: &str = "plugin_shadow";
        let row: Option<ShadowRow> = sqlx::query_as(
            "SELECT plugin, version, sample_ppm, started_at, started_by, runs, identical, \
             different, failed, dropped, differences FROM plugin_shadows WHERE plugin = $1",
        )
        .bind(plugin)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error(OP))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (plugin, version, sample_ppm, started_at, started_by, runs, identical, different) =
            (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
        let (failed, dropped, differences) = (row.8, row.9, row.10);
        let differences = serde_json::from_str(&differences).map_err(|e| StoreError::Corrupt {
            op: OP,
            detail: format!("the shadow's differences are not a JSON list: {e}"),
        })?;
        Ok(Some(Shadow {
            plugin,
            version: count(version),
            sample_ppm: count(sample_ppm),
            started_at,
            started_by,
            tally: ShadowTally {
                runs: count(runs),
                identical: count(identical),
                different: count(different),
                failed: count(failed),
                dropped: count(dropped),
            },
            differences,
        }))
    }

    /// Adds a host's `tally` of `plugin`'s shadow by `version`, and its
    /// newest `differences` (newest first) before the kept ones. Nothing
    /// is added once the shadow was stopped or restarted with another
    /// version.
    pub async fn add_shadow_tally(
        &self,
        plugin: &str,
        version: u64,
        tally: &ShadowTally,
        differences: &[Value],
    ) -> Result<(), StoreError> {
        const OP: &str = "add_shadow_tally";
        let mut transaction = self.pool.begin().await.map_err(query_error(OP))?;
        // The counters first: the write locks the row (and in SQLite the
        // database), so the differences read back are the latest and no
        // other host's flush lands between this read and the write below.
        // Read first, two hosts flushing at once would each keep their own.
        let kept: Option<String> = sqlx::query_scalar(
            "UPDATE plugin_shadows SET runs = runs + $3, identical = identical + $4, \
             different = different + $5, failed = failed + $6, dropped = dropped + $7 \
             WHERE plugin = $1 AND version = $2 RETURNING differences",
        )
        .bind(plugin)
        .bind(to_db_seconds(version))
        .bind(to_db_seconds(tally.runs))
        .bind(to_db_seconds(tally.identical))
        .bind(to_db_seconds(tally.different))
        .bind(to_db_seconds(tally.failed))
        .bind(to_db_seconds(tally.dropped))
        .fetch_optional(&mut *transaction)
        .await
        .map_err(query_error(OP))?;
        let Some(kept) = kept else {
            return Ok(());
        };
        let kept: Vec<Value> = serde_json::from_str(&kept).unwrap_or_default();
        let newest: Vec<&Value> = differences
            .iter()
            .chain(kept.iter())
            .take(MAX_SHADOW_DIFFERENCES)
            .collect();
        let newest = serde_json::to_string(&newest).unwrap_or_else(|_| "[]".to_owned());
        sqlx::query(
            "UPDATE plugin_shadows SET differences = $3 WHERE plugin = $1 AND version = $2",
        )
        .bind(plugin)
        .bind(to_db_seconds(version))
        .bind(newest)
        .execute(&mut *transaction)
        .await
        .map_err(query_error(OP))?;
        transaction.commit().await.map_err(query_error(OP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use crate::tests::{new_version, on_both_backends, open_temp};
    use serde_json::json;

    async fn tallies_add_up_and_a_restart_starts_them_afresh(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        assert!(!store.start_shadow("geo", 2, 1, "t0", "ops").await.unwrap());
        for (sha256, bytes) in [("aa", b"one"), ("bb", b"two")] {
            let new = new_version("geo", sha256, bytes);
            store.push_plugin_version(&new).await.unwrap();
        }
        assert!(
            store
                .start_shadow("geo", 2, 500_000, "t1", "ops")
                .await
                .unwrap()
        );
        let tally = ShadowTally {
            runs: 3,
            identical: 1,
            different: 1,
            failed: 1,
            dropped: 2,
        };
        let many: Vec<Value> = (0..MAX_SHADOW_DIFFERENCES).map(|i| json!(i)).collect();
        store
            .add_shadow_tally("geo", 2, &tally, &many)
            .await
            .unwrap();
        store
            .add_shadow_tally("geo", 2, &tally, &[json!("newest")])
            .await
            .unwrap();
        // A host still running another version adds nothing.
        store.add_shadow_tally("geo", 1, &tally, &[]).await.unwrap();
        let shadow = store.plugin_shadow("geo").await.unwrap().unwrap();
        assert_eq!((shadow.version, shadow.sample_ppm), (2, 500_000));
        assert_eq!(shadow.tally.runs, 6);
        assert_eq!((shadow.tally.failed, shadow.tally.dropped), (2, 4));
        assert_eq!(shadow.differences.len(), MAX_SHADOW_DIFFERENCES);
        assert_eq!(shadow.differences[0], "newest");

        assert!(
            store
                .start_shadow("geo", 1, 1_000_000, "t2", "ops")
                .await
                .unwrap()
        );
        let restarted = store.plugin_shadow("geo").await.unwrap().unwrap();
        assert_eq!(
            (restarted.version, restarted.tally),
            (1, ShadowTally::default())
        );
        assert!(restarted.differences.is_empty());
        assert!(store.stop_shadow("geo").await.unwrap());
        assert_eq!(store.plugin_shadow("geo").await.unwrap(), None);
    }

    async fn hosts_flushing_at_once_keep_every_difference(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let new = new_version("geo", "aa", b"one");
        store.push_plugin_version(&new).await.unwrap();
        assert!(store.start_shadow("geo", 1, 1, "t1", "ops").await.unwrap());
        let one_run = ShadowTally {
            runs: 1,
            different: 1,
            ..ShadowTally::default()
        };
        let flushes: Vec<_> = (0..MAX_SHADOW_DIFFERENCES)
            .map(|host| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .add_shadow_tally("geo", 1, &one_run, &[json!(host)])
                        .await
                })
            })
            .collect();
        for flush in flushes {
            flush.await.expect("join").expect("a flush waits its turn");
        }
        let shadow = store.plugin_shadow("geo").await.unwrap().unwrap();
        assert_eq!(shadow.tally.runs, MAX_SHADOW_DIFFERENCES as u64);
        assert_eq!(
            shadow.differences.len(),
            MAX_SHADOW_DIFFERENCES,
            "no flush overwrote another's differences: {:?}",
            shadow.differences
        );
    }

    on_both_backends!(
        tallies_add_up_and_a_restart_starts_them_afresh,
        hosts_flushing_at_once_keep_every_difference
    );
}
