//! Plugin versions and their deploys (migration 0012), for plugins with
//! `source = "store"`: the Management API's `/plugins/{name}/versions` and
//! `/plugins/{name}/deploy` write them, every host runs the deployed one.
//!
//! Only what the database must decide is decided here: the next version
//! number and the next deploy, one winner when two hosts race. The caller
//! checks a component before pushing it and its digest before loading it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{Store, StoreError, query_error, to_db_seconds};

/// One stored version of a plugin, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVersion {
    pub plugin: String,
    pub version: u64,
    pub sha256: String,
    pub size: u64,
    pub world: String,
    /// As `claimsmith inspect` names it; empty when unknown.
    pub language: String,
    pub created_at: String,
    pub created_by: String,
}

/// A version to push: its description and its bytes.
pub struct NewPluginVersion<'a> {
    pub plugin: &'a str,
    pub sha256: &'a str,
    pub world: &'a str,
    pub language: &'a str,
    pub created_at: &'a str,
    pub created_by: &'a str,
    pub component: &'a [u8],
}

/// One deploy of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub version: u64,
    pub sha256: String,
    pub deployed_at: String,
    pub deployed_by: String,
}

/// Inserts racing another host's for the same next number are tried again
/// this often before giving up.
const RACE_RETRIES: usize = 5;

/// The columns of a [`VersionRow`]; a macro, so that queries stay literals.
macro_rules! version_columns {
    () => {
        "plugin, version, sha256, size, world, language, created_at, created_by"
    };
}

type VersionRow = (String, i64, String, i64, String, String, String, String);

fn version_of(row: VersionRow) -> PluginVersion {
    let (plugin, version, sha256, size, world, language, created_at, created_by) = row;
    PluginVersion {
        plugin,
        version: u64::try_from(version).unwrap_or(0),
        sha256,
        size: u64::try_from(size).unwrap_or(0),
        world,
        language,
        created_at,
        created_by,
    }
}

impl Store {
    /// Stores `new` as its plugin's next version. A component stored
    /// before (the same SHA-256) is not stored again: its version is
    /// answered, with `false`.
    pub async fn push_plugin_version(
        &self,
        new: &NewPluginVersion<'_>,
    ) -> Result<(PluginVersion, bool), StoreError> {
        const OP: &str = "push_plugin_version";
        let encoded = STANDARD.encode(new.component);
        for _ in 0..RACE_RETRIES {
            if let Some(existing) = self
                .plugin_version_by_digest(new.plugin, new.sha256)
                .await?
            {
                return Ok((existing, false));
            }
            let inserted = sqlx::query(
                "INSERT INTO plugin_versions \
                 (plugin, version, sha256, size, world, language, created_at, created_by, component) \
                 SELECT CAST($1 AS TEXT), COALESCE(MAX(version), 0) + 1, CAST($2 AS TEXT), \
                 CAST($3 AS BIGINT), CAST($4 AS TEXT), CAST($5 AS TEXT), CAST($6 AS TEXT), \
                 CAST($7 AS TEXT), CAST($8 AS TEXT) \
                 FROM plugin_versions WHERE plugin = $1 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(new.plugin)
            .bind(new.sha256)
            .bind(to_db_seconds(new.component.len() as u64))
            .bind(new.world)
            .bind(new.language)
            .bind(new.created_at)
            .bind(new.created_by)
            .bind(&encoded)
            .execute(&self.pool)
            .await
            .map_err(query_error(OP))?
            .rows_affected();
            if inserted == 1
                && let Some(stored) = self
                    .plugin_version_by_digest(new.plugin, new.sha256)
                    .await?
            {
                return Ok((stored, true));
            }
        }
        Err(StoreError::Corrupt {
            op: OP,
            detail: "another host kept taking the next version number".to_owned(),
        })
    }

    async fn plugin_version_by_digest(
        &self,
        plugin: &str,
        sha256: &str,
    ) -> Result<Option<PluginVersion>, StoreError> {
        let row: Option<VersionRow> = sqlx::query_as(concat!(
            "SELECT ",
            version_columns!(),
            " FROM plugin_versions WHERE plugin = $1 AND sha256 = $2"
        ))
        .bind(plugin)
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("plugin_version_by_digest"))?;
        Ok(row.map(version_of))
    }

    /// The stored versions of `plugin`, newest first.
    pub async fn plugin_versions(&self, plugin: &str) -> Result<Vec<PluginVersion>, StoreError> {
        let rows: Vec<VersionRow> = sqlx::query_as(concat!(
            "SELECT ",
            version_columns!(),
            " FROM plugin_versions WHERE plugin = $1 ORDER BY version DESC"
        ))
        .bind(plugin)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("plugin_versions"))?;
        Ok(rows.into_iter().map(version_of).collect())
    }

    /// The bytes of `plugin`'s `version` and the SHA-256 its row holds, for
    /// the caller to check before it loads them.
    pub async fn plugin_component(
        &self,
        plugin: &str,
        version: u64,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        const OP: &str = "plugin_component";
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT sha256, component FROM plugin_versions WHERE plugin = $1 AND version = $2",
        )
        .bind(plugin)
        .bind(to_db_seconds(version))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error(OP))?;
        row.map(|(sha256, encoded)| {
            let bytes = STANDARD.decode(encoded).map_err(|e| StoreError::Corrupt {
                op: OP,
                detail: format!("the stored component is not base64: {e}"),
            })?;
            Ok((sha256, bytes))
        })
        .transpose()
    }

    /// Makes `version` of `plugin` the deployed one, recorded as deployed
    /// at `at` by `by`; false when there is no such version. Two deploys at
    /// once are two rows: the later number is the one every host runs.
    pub async fn deploy_plugin(
        &self,
        plugin: &str,
        version: u64,
        at: &str,
        by: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "deploy_plugin";
        for _ in 0..RACE_RETRIES {
            let inserted = sqlx::query(
                "INSERT INTO plugin_deployments (plugin, seq, version, deployed_at, deployed_by) \
                 SELECT CAST($1 AS TEXT), COALESCE(MAX(seq), 0) + 1, CAST($2 AS BIGINT), \
                 CAST($3 AS TEXT), CAST($4 AS TEXT) \
                 FROM plugin_deployments WHERE plugin = $1 \
                 HAVING EXISTS (SELECT 1 FROM plugin_versions WHERE plugin = $1 AND version = $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(plugin)
            .bind(to_db_seconds(version))
            .bind(at)
            .bind(by)
            .execute(&self.pool)
            .await
            .map_err(query_error(OP))?
            .rows_affected();
            if inserted == 1 {
                return Ok(true);
            }
            let known: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM plugin_versions WHERE plugin = $1 AND version = $2",
            )
            .bind(plugin)
            .bind(to_db_seconds(version))
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error(OP))?;
            if known.is_none() {
                return Ok(false);
            }
        }
        Err(StoreError::Corrupt {
            op: OP,
            detail: "another host kept taking the next deploy number".to_owned(),
        })
    }

    /// `plugin`'s deploys, newest (the live one) first.
    pub async fn plugin_deployments(&self, plugin: &str) -> Result<Vec<Deployment>, StoreError> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT d.version, v.sha256, d.deployed_at, d.deployed_by \
             FROM plugin_deployments d JOIN plugin_versions v \
             ON v.plugin = d.plugin AND v.version = d.version \
             WHERE d.plugin = $1 ORDER BY d.seq DESC",
        )
        .bind(plugin)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("plugin_deployments"))?;
        Ok(rows
            .into_iter()
            .map(|(version, sha256, deployed_at, deployed_by)| Deployment {
                version: u64::try_from(version).unwrap_or(0),
                sha256,
                deployed_at,
                deployed_by,
            })
            .collect())
    }

    /// The version of `plugin` every host runs, if one was deployed.
    pub async fn deployed_plugin(&self, plugin: &str) -> Result<Option<Deployment>, StoreError> {
        Ok(self.plugin_deployments(plugin).await?.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use crate::Backend;
    use crate::tests::{new_version as new, on_both_backends, open_temp};

    async fn versions_are_numbered_per_plugin_and_stored_once_per_digest(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let (first, created) = store
            .push_plugin_version(&new("geo", "aa", b"one"))
            .await
            .unwrap();
        assert_eq!((first.version, created, first.size), (1, true, 3));
        let (again, created) = store
            .push_plugin_version(&new("geo", "aa", b"one"))
            .await
            .unwrap();
        assert_eq!(
            (again.version, created),
            (1, false),
            "the same bytes, the same version"
        );
        let (second, _) = store
            .push_plugin_version(&new("geo", "bb", b"two"))
            .await
            .unwrap();
        assert_eq!(second.version, 2);
        let (other, _) = store
            .push_plugin_version(&new("tier", "aa", b"one"))
            .await
            .unwrap();
        assert_eq!(other.version, 1, "numbered per plugin");
        let listed: Vec<u64> = store
            .plugin_versions("geo")
            .await
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(listed, [2, 1]);
        assert_eq!(
            store.plugin_component("geo", 2).await.unwrap(),
            Some(("bb".to_owned(), b"two".to_vec()))
        );
        assert_eq!(store.plugin_component("geo", 3).await.unwrap(), None);
    }

    async fn the_newest_deploy_is_live_and_an_unknown_version_is_refused(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        assert_eq!(store.deployed_plugin("geo").await.unwrap(), None);
        store
            .push_plugin_version(&new("geo", "aa", b"one"))
            .await
            .unwrap();
        store
            .push_plugin_version(&new("geo", "bb", b"two"))
            .await
            .unwrap();
        assert!(!store.deploy_plugin("geo", 3, "t0", "ops").await.unwrap());
        assert_eq!(store.deployed_plugin("geo").await.unwrap(), None);
        // Racing deploys: every one is recorded, one after the other, and
        // the one recorded last is live (whichever that is).
        let deploys: Vec<_> = [1, 2, 1, 2]
            .into_iter()
            .enumerate()
            .map(|(racer, version)| {
                let store = store.clone();
                let at = format!("t1-{racer}");
                tokio::spawn(async move { store.deploy_plugin("geo", version, &at, "ops").await })
            })
            .collect();
        for deploy in deploys {
            assert!(deploy.await.unwrap().unwrap());
        }
        let history = store.plugin_deployments("geo").await.unwrap();
        let mut racers: Vec<_> = history.iter().map(|d| d.deployed_at.as_str()).collect();
        racers.sort_unstable();
        assert_eq!(racers, ["t1-0", "t1-1", "t1-2", "t1-3"]);
        let live = store.deployed_plugin("geo").await.unwrap().unwrap();
        assert_eq!(live, history[0]);
        let expected_sha = if live.version == 1 { "aa" } else { "bb" };
        assert_eq!(live.sha256, expected_sha, "{live:?}");

        store.deploy_plugin("geo", 1, "t2", "ops").await.unwrap();
        let live = store.deployed_plugin("geo").await.unwrap().unwrap();
        assert_eq!(
            (
                live.version,
                live.sha256.as_str(),
                live.deployed_at.as_str()
            ),
            (1, "aa", "t2")
        );
        assert_eq!(store.plugin_deployments("geo").await.unwrap().len(), 5);
    }

    on_both_backends!(
        versions_are_numbered_per_plugin_and_stored_once_per_digest,
        the_newest_deploy_is_live_and_an_unknown_version_is_refused,
    );
}
