//! Canaries (migration 0014): the version each store plugin serves to a
//! share of its users instead of the deployed one, and when the hosts roll
//! it back by themselves.
//!
//! Only the canary's terms are kept here; which users it serves and how
//! its calls fare the hosts decide.

use crate::{Store, StoreError, query_error, to_db_seconds};

/// A plugin's canary, as started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    pub plugin: String,
    pub version: u64,
    /// The share of users served, per million.
    pub share_ppm: u64,
    /// Rolled back past this failure rate, per million.
    pub max_failure_ppm: u64,
    pub window_secs: u64,
    pub min_calls: u64,
    pub started_at: String,
    pub started_by: String,
}

type CanaryRow = (String, i64, i64, i64, i64, i64, String, String);

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Store {
    /// Starts `canary`, replacing any canary its plugin had; false when
    /// the plugin has no such version.
    pub async fn start_canary(&self, canary: &Canary) -> Result<bool, StoreError> {
        let started = sqlx::query(
            "INSERT INTO plugin_canaries (plugin, version, share_ppm, max_failure_ppm, \
             window_secs, min_calls, started_at, started_by) \
             SELECT CAST($1 AS TEXT), CAST($2 AS BIGINT), CAST($3 AS BIGINT), CAST($4 AS BIGINT), \
             CAST($5 AS BIGINT), CAST($6 AS BIGINT), CAST($7 AS TEXT), CAST($8 AS TEXT) \
             WHERE EXISTS (SELECT 1 FROM plugin_versions WHERE plugin = $1 AND version = $2) \
             ON CONFLICT (plugin) DO UPDATE SET version = excluded.version, \
             share_ppm = excluded.share_ppm, max_failure_ppm = excluded.max_failure_ppm, \
             window_secs = excluded.window_secs, min_calls = excluded.min_calls, \
             started_at = excluded.started_at, started_by = excluded.started_by",
        )
        .bind(&canary.plugin)
        .bind(to_db_seconds(canary.version))
        .bind(to_db_seconds(canary.share_ppm))
        .bind(to_db_seconds(canary.max_failure_ppm))
        .bind(to_db_seconds(canary.window_secs))
        .bind(to_db_seconds(canary.min_calls))
        .bind(&canary.started_at)
        .bind(&canary.started_by)
        .execute(&self.pool)
        .await
        .map_err(query_error("start_canary"))?;
        Ok(started.rows_affected() == 1)
    }

    /// Ends `plugin`'s canary of `version` (any version when None); false
    /// when there was none. Hosts rolling the same canary back at once
    /// end it once.
    pub async fn stop_canary(
        &self,
        plugin: &str,
        version: Option<u64>,
    ) -> Result<bool, StoreError> {
        let stopped = sqlx::query(
            "DELETE FROM plugin_canaries WHERE plugin = $1 \
             AND (CAST($2 AS BIGINT) IS NULL OR version = $2)",
        )
        .bind(plugin)
        .bind(version.map(to_db_seconds))
        .execute(&self.pool)
        .await
        .map_err(query_error("stop_canary"))?;
        Ok(stopped.rows_affected() == 1)
    }

    /// `plugin`'s canary, if it has one.
    pub async fn plugin_canary(&self, plugin: &str) -> Result<Option<Canary>, StoreError> {
        let row: Option<CanaryRow> = sqlx::query_as(
            "SELECT plugin, version, share_ppm, max_failure_ppm, window_secs, min_calls, \
             started_at, started_by FROM plugin_canaries WHERE plugin = $1",
        )
        .bind(plugin)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("plugin_canary"))?;
        Ok(row.map(
            |(plugin, version, share, failures, window, min_calls, started_at, started_by)| {
                Canary {
                    plugin,
                    version: count(version),
                    share_ppm: count(share),
                    max_failure_ppm: count(failures),
                    window_secs: count(window),
                    min_calls: count(min_calls),
                    started_at,
                    started_by,
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use crate::tests::{new_version, on_both_backends, open_temp};

    async fn a_canary_needs_a_stored_version_and_ends_once(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let canary = Canary {
            plugin: "geo".to_owned(),
            version: 1,
            share_ppm: 100_000,
            max_failure_ppm: 50_000,
            window_secs: 300,
            min_calls: 20,
            started_at: "t0".to_owned(),
            started_by: "ops".to_owned(),
        };
        assert!(!store.start_canary(&canary).await.unwrap());
        let new = new_version("geo", "aa", b"one");
        store.push_plugin_version(&new).await.unwrap();
        assert!(store.start_canary(&canary).await.unwrap());
        assert_eq!(store.plugin_canary("geo").await.unwrap(), Some(canary));
        assert!(
            !store.stop_canary("geo", Some(2)).await.unwrap(),
            "another version's"
        );
        assert!(store.stop_canary("geo", Some(1)).await.unwrap());
        assert!(!store.stop_canary("geo", Some(1)).await.unwrap(), "once");
        assert_eq!(store.plugin_canary("geo").await.unwrap(), None);
    }

    on_both_backends!(a_canary_needs_a_stored_version_and_ends_once);
}
