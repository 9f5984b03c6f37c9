//! Swapping the plugin chain while serving: on SIGHUP, and when the config
//! file or a plugin file changes.
//!
//! The new chain is built aside (config read and checked, every plugin
//! loaded through the compile cache, worlds and imports checked) and put in
//! place in one step only if all of it loaded. A login runs entirely on the
//! chain that was current when it began ([`Service::pipeline`] hands out one
//! version per run). A chain that does not load is refused with a log line
//! and the old one keeps serving; rolling back is putting the old file (or
//! hash pin) back.
//!
//! Only the chain is swapped: `[plugins]`, `[[actions]]`,
//! `[[credentials_exchange]]`, and each connection's `profile_fetcher` and
//! `options`. What the endpoints follow (issuer, clients, server, storage,
//! keys, engine limits) takes effect at the next start, and a reload that
//! changes the connections themselves is refused. It owns nothing else.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use super::{Service, ServiceError, load_chain};
use claimsmith_config::{Config, ConfigError};

/// How often the config and plugin files are looked at.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "the connections changed ({0}): a reload swaps plugins and actions only, restart to \
         change connections"
    )]
    ConnectionsChanged(String),
    #[error(transparent)]
    Load(#[from] ServiceError),
}

/// What a reload swapped in. The versions are equal when only settings
/// changed (a plugin's options or secrets, say), not the builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swapped {
    pub from: String,
    pub to: String,
}

impl Service {
    /// Reads the config file again and swaps in its chain if all of it
    /// loads; on any error the current chain keeps serving.
    pub async fn reload_chain(&self) -> Result<Swapped, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let file = self.config.file.clone();
        let fresh = tokio::task::spawn_blocking(move || Config::load(&file))
            .await
            .map_err(|e| ServiceError::Loader(e.to_string()))??;
        let mut config = self.chain_config(fresh)?;
        super::store_plugins::point_at_deployed(self.store_access(), &mut config).await?;
        let pipeline = load_chain(&self.engine, config, &self.keys, &self.plugin_http).await?;
        let to = pipeline.chain_version().to_owned();
        let mut chain = self
            .chain
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let from = chain.chain_version().to_owned();
        *chain = Arc::new(pipeline);
        self.engine
            .keep_compiled_only(chain.plugins().values().map(|plugin| plugin.sha256()));
        Ok(Swapped { from, to })
    }

    /// The start config with the chain parts of `fresh`.
    fn chain_config(&self, fresh: Config) -> Result<Config, ReloadError> {
        let names = |config: &Config| -> Vec<String> {
            config.connections.iter().map(|c| c.name.clone()).collect()
        };
        if names(&fresh) != names(&self.config) {
            return Err(ReloadError::ConnectionsChanged(format!(
                "{:?} -> {:?}",
                names(&self.config),
                names(&fresh)
            )));
        }
        let mut config = self.config.clone();
        config.plugins = fresh.plugins;
        config.actions = fresh.actions;
        config.credentials_exchange = fresh.credentials_exchange;
        for (connection, fresh) in config.connections.iter_mut().zip(fresh.connections) {
            connection.profile_fetcher = fresh.profile_fetcher;
            connection.options = fresh.options;
        }
        Ok(config)
    }

    /// Reloads and logs the result, counting it; whether it swapped.
    pub(crate) async fn reload_and_log(&self, why: &str) -> bool {
        match self.reload_chain().await {
            Ok(Swapped { from, to }) => {
                self.metrics.chain_reload("swapped");
                tracing::info!(why, from = %from, to = %to, "swapped in a new plugin chain");
                true
            }
            Err(error) => {
                self.metrics.chain_reload("refused");
                tracing::error!(
                    why,
                    %error,
                    serving = %self.pipeline().chain_version(),
                    "the new plugin chain was refused; the current one keeps serving"
                );
                false
            }
        }
    }
}

/// Reloads on SIGHUP and whenever the config file or a file of the current
/// chain's plugins changes, for as long as the service lives.
pub(super) fn spawn_watching(service: &Arc<Service>) {
    let service = Arc::downgrade(service);
    // Registered before returning: from then on a SIGHUP reloads instead of
    // ending the process (the default action).
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|error| tracing::warn!(%error, "cannot listen for SIGHUP"))
        .ok();
    tokio::spawn(async move {
        let mut seen = fingerprint(&service);
        let mut every = tokio::time::interval(WATCH_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let signalled = async {
                match hangup.as_mut() {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<Option<()>>();
            let why = tokio::select! {
                _ = signalled => "SIGHUP",
                _ = every.tick() => "a file changed",
            };
            let now = fingerprint(&service);
            if now.is_none() {
                return;
            }
            if why != "SIGHUP" && now == seen {
                continue;
            }
            let Some(service) = service.upgrade() else {
                return;
            };
            let _swapped = service.reload_and_log(why).await;
            // Taken after the reload: the new chain may have other files. A
            // file caught mid-write fails to load; the write's end changes
            // the fingerprint again, and that reload succeeds.
            seen = fingerprint(&Arc::downgrade(&service));
        }
    });
}

/// Each watched file with its size and modification time (None while it
/// cannot be read).
type Fingerprint = Vec<(PathBuf, Option<(u64, SystemTime)>)>;

/// The config file and every plugin file of the current chain; None once
/// the service is gone.
fn fingerprint(service: &Weak<Service>) -> Option<Fingerprint> {
    let service = service.upgrade()?;
    let pipeline = service.pipeline();
    let files = std::iter::once(service.config.file.clone()).chain(
        pipeline
            .config()
            .plugins
            .values()
            .map(|spec| spec.path.clone()),
    );
    Some(
        files
            .map(|path| {
                let stamp = std::fs::metadata(&path)
                    .ok()
                    .and_then(|meta| Some((meta.len(), meta.modified().ok()?)));
                (path, stamp)
            })
            .collect(),
    )
}
