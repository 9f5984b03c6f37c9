//! Plugins with `source = "store"`: each host runs the version deployed in
//! the store, and follows deploys.
//!
//! Before a chain loads, each store plugin is pointed at its deployed
//! version: the component is read from the store once, checked against the
//! digest its row holds, written under `<data_dir>/store-plugins/` by that
//! digest, and pinned to it, so the engine refuses the file should it
//! change on disk. A plugin with nothing deployed yet is seeded from its
//! config `path` (checked as a push is, then version 1, deployed). Every
//! `[server] plugin_poll_secs` the store is asked again, and a deploy
//! reloads the chain through the same build-aside-and-swap as a changed
//! file ([`crate::reload`]).
//!
//! Owns the pointing and the following; the versions themselves are the
//! [`Store`]'s, their API is [`crate::management`]'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Service, ServiceError};
use crate::canary::{Breach, CanaryBuild};
use crate::shadow::Candidate;
use claimsmith_config::{Config, PluginSource, PluginSpec};
use claimsmith_engine::Plugin;
use claimsmith_engine::{Engine, LoadError};
use claimsmith_store::{AdminAction, NewPluginVersion, PluginVersion, Store};
use serde_json::json;

/// Who a seeded version and its deploy are recorded as made by.
const SEEDED_BY: &str = "config seed";

/// Who a canary's automatic rollback is recorded as made by.
const CANARY_WATCH: &str = "claimsmith (canary watch)";

/// Where a store plugin's versions are written to be loaded.
fn components_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store-plugins")
}

/// Points every store plugin of `config` at its deployed version.
pub(crate) async fn point_at_deployed(
    access: StoreAccess<'_>,
    config: &mut Config,
) -> Result<(), ServiceError> {
    for spec in config.plugins.values_mut() {
        if spec.source == PluginSource::Store {
            point_plugin(&access, &config.data_dir, spec).await?;
        }
    }
    Ok(())
}

/// What pointing needs of the service, so that start can point before the
/// service exists.
#[derive(Clone, Copy)]
pub(crate) struct StoreAccess<'a> {
    pub store: &'a Store,
    pub engine: &'a Arc<Engine>,
    pub now: u64,
}

async fn point_plugin(
    access: &StoreAccess<'_>,
    data_dir: &Path,
    spec: &mut PluginSpec,
) -> Result<(), ServiceError> {
    let failed = |why: String| ServiceError::StorePlugin {
        plugin: spec.name.clone(),
        why,
    };
    let deployed = match access.store.deployed_plugin(&spec.name).await? {
        Some(deployed) => deployed,
        None => {
            seed(access, data_dir, spec).await?;
            access
                .store
                .deployed_plugin(&spec.name)
                .await?
                .ok_or_else(|| failed("the seeded version is not deployed".to_owned()))?
        }
    };
    *spec = at_version(access, data_dir, spec, deployed.version, &deployed.sha256).await?;
    Ok(())
}

/// The stored component of `version` and its row's SHA-256, once its bytes
/// hash to it: a component that does not is never loaded nor handed out.
pub(crate) async fn verified_component(
    store: &Store,
    plugin: &str,
    version: u64,
) -> Result<Option<(String, Vec<u8>)>, ServiceError> {
    let Some((stored_sha256, bytes)) = store.plugin_component(plugin, version).await? else {
        return Ok(None);
    };
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != stored_sha256 {
        return Err(ServiceError::StorePlugin {
            plugin: plugin.to_owned(),
            why: format!(
                "the stored component of version {version} has SHA-256 {actual}, its row says \
                 {stored_sha256}: it is not used"
            ),
        });
    }
    Ok(Some((stored_sha256, bytes)))
}

/// `spec` pointed at `version` of its plugin, whose row holds `sha256`:
/// its file written from the store unless there, pinned to that digest.
async fn at_version(
    access: &StoreAccess<'_>,
    data_dir: &Path,
    spec: &PluginSpec,
    version: u64,
    sha256: &str,
) -> Result<PluginSpec, ServiceError> {
    let failed = |why: String| ServiceError::StorePlugin {
        plugin: spec.name.clone(),
        why,
    };
    let file = components_dir(data_dir).join(format!("{sha256}.wasm"));
    if !file.exists() {
        let (stored_sha256, bytes) = verified_component(access.store, &spec.name, version)
            .await?
            .ok_or_else(|| failed(format!("version {version} is not stored")))?;
        if stored_sha256 != sha256 {
            return Err(failed(format!(
                "version {version} is stored with SHA-256 {stored_sha256}, the deploy names \
                 {sha256}: it is not loaded"
            )));
        }
        write_once(data_dir, sha256, &bytes).map_err(|e| failed(e.to_string()))?;
    }
    let mut pointed = spec.clone();
    pointed.path = file;
    pointed.sha256 = Some(sha256.to_owned());
    pointed.version = Some(version);
    Ok(pointed)
}

/// Keeps what was `loaded` for `spec`, if anything; a failure leaves the
/// plugin out, logged as `unloaded`.
fn keep_loaded<T>(
    into: &mut HashMap<String, T>,
    spec: &PluginSpec,
    loaded: Result<Option<T>, ServiceError>,
    unloaded: &str,
) {
    match loaded {
        Ok(Some(one)) => {
            into.insert(spec.name.clone(), one);
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(plugin = %spec.name, %error, "{unloaded}"),
    }
}

/// Pushes and deploys a store plugin's config `path` when nothing of it is
/// deployed: a fresh deployment starts on the file it was configured with.
async fn seed(
    access: &StoreAccess<'_>,
    data_dir: &Path,
    spec: &PluginSpec,
) -> Result<(), ServiceError> {
    let bytes = std::fs::read(&spec.path).map_err(|e| ServiceError::StorePlugin {
        plugin: spec.name.clone(),
        why: format!("cannot read the seed {}: {e}", spec.path.display()),
    })?;
    let (version, _) = store_version(access, data_dir, spec, &bytes, SEEDED_BY)
        .await
        .map_err(|e| ServiceError::StorePlugin {
            plugin: spec.name.clone(),
            why: format!("the seed {} does not load: {e}", spec.path.display()),
        })?;
    let at = claimsmith_core::rfc3339(access.now);
    access
        .store
        .deploy_plugin(&spec.name, version.version, &at, SEEDED_BY)
        .await?;
    let entry = AdminAction {
        at,
        actor: SEEDED_BY.to_owned(),
        action: "seed_plugin".to_owned(),
        target: spec.name.clone(),
        detail: json!({"version": version.version, "sha256": version.sha256, "path": spec.path}),
    };
    access.store.record_admin_action(&entry).await?;
    tracing::info!(plugin = %spec.name, version = version.version, "seeded a store plugin");
    Ok(())
}

/// Why a component was not pushed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    #[error(transparent)]
    Refused(#[from] LoadError),
    #[error(transparent)]
    Store(#[from] claimsmith_store::StoreError),
    #[error("{0}")]
    Io(String),
}

/// Checks `bytes` as a start would load them for `spec` (its world, its
/// imports, a compile, which the compile cache keeps for the deploy) and
/// stores them as the plugin's next version, or answers the version that
/// holds them already (with `false`).
pub(crate) async fn store_version(
    access: &StoreAccess<'_>,
    data_dir: &Path,
    spec: &PluginSpec,
    bytes: &[u8],
    by: &str,
) -> Result<(PluginVersion, bool), PushError> {
    let sha256 = hex::encode(Sha256::digest(bytes));
    let file = write_once(data_dir, &sha256, bytes).map_err(|e| PushError::Io(e.to_string()))?;
    let mut candidate = spec.clone();
    candidate.path = file;
    candidate.sha256 = Some(sha256.clone());
    let engine = access.engine.clone();
    let loaded = tokio::task::spawn_blocking(move || engine.load(candidate))
        .await
        .map_err(|e| PushError::Io(e.to_string()))?;
    if let Err(refused) = loaded {
        // Kept only once stored: a refused upload leaves nothing behind.
        let _ = std::fs::remove_file(components_dir(data_dir).join(format!("{sha256}.wasm")));
        return Err(refused.into());
    }
    let language = claimsmith_engine::component_language(bytes).unwrap_or_default();
    let world = spec.world.to_string();
    Ok(access
        .store
        .push_plugin_version(&NewPluginVersion {
            plugin: &spec.name,
            sha256: &sha256,
            world: &world,
            language: &language,
            created_at: &claimsmith_core::rfc3339(access.now),
            created_by: by,
            component: bytes,
        })
        .await?)
}

/// Writes `bytes` as `<sha256>.wasm` unless that file is there: written
/// aside and renamed, so a host never loads half a component.
fn write_once(data_dir: &Path, sha256: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = components_dir(data_dir);
    let file = dir.join(format!("{sha256}.wasm"));
    if file.exists() {
        return Ok(file);
    }
    std::fs::create_dir_all(&dir)?;
    let aside = tempfile::NamedTempFile::new_in(&dir)?;
    std::fs::write(aside.path(), bytes)?;
    aside.persist(&file).map_err(|e| e.error)?;
    Ok(file)
}

impl Service {
    /// What pointing at deployed versions needs, now.
    pub(crate) fn store_access(&self) -> StoreAccess<'_> {
        StoreAccess {
            store: &self.store,
            engine: &self.engine,
            now: self.clock.now(),
        }
    }

    /// Loads the candidate each store plugin of the chain is shadowed by
    /// (keeping those loaded already) and drops the others. A candidate
    /// that does not load leaves its plugin unshadowed, logged.
    pub(crate) async fn refresh_shadows(&self) {
        let mut candidates = HashMap::new();
        for spec in self.store_plugin_specs() {
            let candidate = self.shadow_candidate(&spec).await;
            let unloaded = "cannot load the shadow candidate: the plugin runs unshadowed";
            keep_loaded(&mut candidates, &spec, candidate, unloaded);
        }
        self.shadows.set_candidates(candidates);
    }

    /// The chain's store plugins, as it serves them now.
    fn store_plugin_specs(&self) -> Vec<PluginSpec> {
        let pipeline = self.pipeline();
        let specs = pipeline.config().plugins.values();
        specs
            .filter(|spec| spec.source == PluginSource::Store)
            .cloned()
            .collect()
    }

    async fn shadow_candidate(
        &self,
        spec: &PluginSpec,
    ) -> Result<Option<Arc<Candidate>>, ServiceError> {
        let Some(shadow) = self.store.plugin_shadow(&spec.name).await? else {
            return Ok(None);
        };
        let loaded = self.shadows.candidate(&spec.name).filter(|loaded| {
            (loaded.version, loaded.sample_ppm) == (shadow.version, shadow.sample_ppm)
        });
        if loaded.is_some() {
            return Ok(loaded);
        }
        let plugin = self.load_stored_version(spec, shadow.version).await?;
        Ok(Some(Arc::new(Candidate {
            plugin,
            version: shadow.version,
            sample_ppm: shadow.sample_ppm,
            secrets: spec
                .secrets
                .values()
                .map(|s| s.expose().to_owned())
                .collect(),
        })))
    }

    /// `version` of `spec`'s plugin, loaded with `spec`'s grants.
    async fn load_stored_version(
        &self,
        spec: &PluginSpec,
        version: u64,
    ) -> Result<Arc<Plugin>, ServiceError> {
        let failed = |why: String| ServiceError::StorePlugin {
            plugin: spec.name.clone(),
            why,
        };
        let sha256 = (self.store.plugin_versions(&spec.name).await?.into_iter())
            .find(|stored| stored.version == version)
            .map(|stored| stored.sha256)
            .ok_or_else(|| failed(format!("version {version} is not stored")))?;
        let access = self.store_access();
        let pointed = at_version(&access, &self.config.data_dir, spec, version, &sha256).await?;
        let engine = self.engine.clone();
        let plugin = tokio::task::spawn_blocking(move || engine.load(pointed))
            .await
            .map_err(|e| ServiceError::Loader(e.to_string()))?
            .map_err(|e| failed(e.to_string()))?;
        Ok(Arc::new(plugin))
    }

    /// Loads the build of each store plugin's canary (keeping those loaded
    /// already, their windows with them) and drops the others. A canary
    /// that does not load leaves every user on the deployed version.
    pub(crate) async fn refresh_canaries(&self) {
        let mut builds = HashMap::new();
        for spec in self.store_plugin_specs() {
            let build = self.canary_build(&spec).await;
            let unloaded = "cannot load the canary: every user runs the deployed version";
            keep_loaded(&mut builds, &spec, build, unloaded);
        }
        self.canaries.set(builds);
    }

    async fn canary_build(
        &self,
        spec: &PluginSpec,
    ) -> Result<Option<Arc<CanaryBuild>>, ServiceError> {
        let Some(terms) = self.store.plugin_canary(&spec.name).await? else {
            return Ok(None);
        };
        if let Some(loaded) = self.canaries.get(&spec.name).filter(|b| b.terms == terms) {
            return Ok(Some(loaded));
        }
        let plugin = self.load_stored_version(spec, terms.version).await?;
        Ok(Some(Arc::new(CanaryBuild::new(plugin, terms))))
    }

    /// Ends a canary whose failure rate passed its threshold: in the store
    /// (so every host drops it at its next poll), in the admin trail, and
    /// here at once.
    pub(crate) async fn roll_back_canary(&self, breach: Breach) {
        let Breach {
            plugin,
            version,
            calls,
            failures,
        } = &breach;
        match self.store.stop_canary(plugin, Some(*version)).await {
            Ok(true) => {
                tracing::warn!(
                    plugin,
                    version,
                    calls,
                    failures,
                    "the canary failed past its threshold: rolled back to the deployed version"
                );
                let detail = json!({"version": version, "calls": calls, "failures": failures});
                self.record_admin_action(CANARY_WATCH, "roll_back_canary", plugin, detail)
                    .await;
            }
            Ok(false) => {}
            Err(error) => tracing::error!(%error, plugin, version, "cannot roll the canary back"),
        }
        self.refresh_canaries().await;
    }

    /// Adds this host's shadow tallies to the store's.
    pub(crate) async fn flush_shadow_tallies(&self) {
        for ((plugin, version), pending) in self.shadows.take_tallies() {
            let added = self
                .store
                .add_shadow_tally(&plugin, version, &pending.tally, &pending.differences)
                .await;
            if let Err(error) = added {
                tracing::warn!(%error, plugin, version, "cannot add shadow runs to the store's tally");
            }
        }
    }

    /// The versions the store deploys of the chain's store plugins, when
    /// they are not the versions it runs.
    async fn deploy_pending(&self) -> Result<Option<Deployed>, claimsmith_store::StoreError> {
        let pipeline = self.pipeline();
        let mut deployed = Vec::new();
        let mut differs = false;
        for spec in pipeline.config().plugins.values() {
            if spec.source == PluginSource::Store {
                let version = self
                    .store
                    .deployed_plugin(&spec.name)
                    .await?
                    .map(|d| d.version);
                differs |= version != spec.version;
                deployed.push((spec.name.clone(), version));
            }
        }
        Ok(differs.then_some(deployed))
    }
}

/// Each store plugin with the version the store deploys.
type Deployed = Vec<(String, Option<u64>)>;

/// Asks the store every `[server] plugin_poll_secs` whether a store plugin
/// was deployed, and reloads when one was; for as long as the service
/// lives, and loads the shadow candidates and canaries and adds this
/// host's shadow tallies to the store's at the same pace. Nothing is asked of a config
/// without store plugins. A deploy
/// that does not load is tried once, not at every poll: the next deploy
/// (a rollback, say) is tried again.
pub(crate) fn spawn_following(service: &Arc<Service>) {
    let has_store_plugins =
        (service.config.plugins.values()).any(|spec| spec.source == PluginSource::Store);
    if !has_store_plugins {
        return;
    }
    let every = Duration::from_secs(service.config.server.plugin_poll_secs.max(1));
    let service: Weak<Service> = Arc::downgrade(service);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refused: Option<Deployed> = None;
        loop {
            ticks.tick().await;
            let Some(service) = service.upgrade() else {
                return;
            };
            match service.deploy_pending().await {
                Ok(Some(deployed)) if refused.as_ref() != Some(&deployed) => {
                    let swapped = service.reload_and_log("a deploy in the store").await;
                    refused = (!swapped).then_some(deployed);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot ask the store what is deployed"),
            }
            service.refresh_shadows().await;
            service.refresh_canaries().await;
            service.flush_shadow_tallies().await;
        }
    });
}
