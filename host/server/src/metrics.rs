//! The service's Prometheus metrics, served on the admin listener's
//! `/metrics` (see `oidc::admin`).
//!
//! Owns the registry and what each metric means. It records what the
//! service reports after each login and decides nothing. Label values come
//! from the config (client ids, plugin names) or from small fixed sets, so
//! the number of series stays bounded whatever requests arrive.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use claimsmith_core::{StepKind, StepReport, StepStatus};

/// How a login came: a sign-in at the upstream, or a refresh.
#[derive(Debug, Clone, Copy)]
pub enum Grant {
    SignIn,
    Refresh,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    client: String,
    grant: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    plugin: String,
    limit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    connection: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionCallLabels {
    plugin: String,
    version: u64,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    plugin: String,
    version: u64,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginCallLabels {
    plugin: String,
    status: &'static str,
}

/// 1 ms to about 16 s (an upstream near the client's 10 s timeout).
fn upstream_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// 50 µs (SQLite on a warm page cache) to about 3 s (a busy PostgreSQL).
fn database_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 3.0, 14))
}

/// 10 µs (a Rust plugin) to about 2.6 s (a plugin near its timeout).
fn plugin_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 4.0, 10))
}

pub struct Metrics {
    registry: Registry,
    logins: Family<LoginLabels, Counter>,
    plugin_duration: Family<PluginLabels, Histogram, fn() -> Histogram>,
    plugin_fuel: Family<PluginLabels, Counter>,
    plugin_calls: Family<PluginCallLabels, Counter>,
    instance_slots_in_use: Gauge,
    chain_reloads: Family<OutcomeLabels, Counter>,
    limit_trips: Family<LimitLabels, Counter>,
    upstream_duration: Family<UpstreamLabels, Histogram, fn() -> Histogram>,
    database_duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    logins_started: Counter,
    shadow_runs: Family<ShadowLabels, Counter>,
    version_calls: Family<VersionCallLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    // Long on purpose: one registration per metric, read as the list of
    // what the service exports (each name and help text where it is made).
    fn default() -> Self {
        let mut registry = Registry::with_prefix("claimsmith");
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Logins by client, grant (sign_in, refresh) and outcome (minted, denied, failed)",
            logins.clone(),
        );
        let plugin_duration =
            Family::<PluginLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                plugin_duration_histogram,
            );
        registry.register(
            "plugin_call_duration_seconds",
            "Wall-clock time of each plugin call, waiting for an instance slot included",
            plugin_duration.clone(),
        );
        let plugin_fuel = Family::<PluginLabels, Counter>::default();
        registry.register(
            "plugin_fuel_consumed",
            "Fuel (about one unit per wasm instruction) the plugin's calls used",
            plugin_fuel.clone(),
        );
        let plugin_calls = Family::<PluginCallLabels, Counter>::default();
        registry.register(
            "plugin_calls",
            "Plugin calls by status (succeeded, denied, skipped, failed)",
            plugin_calls.clone(),
        );
        let instance_slots_in_use = Gauge::default();
        registry.register(
            "instance_slots_in_use",
            "Plugin instances running now, of the pool's max_concurrent_instances",
            instance_slots_in_use.clone(),
        );
        let chain_reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "chain_reloads",
            "Plugin chain reloads, by outcome (swapped, refused)",
            chain_reloads.clone(),
        );
        let limit_trips = Family::<LimitLabels, Counter>::default();
        registry.register(
            "plugin_limit_trips",
            "Plugin calls stopped by a limit: fuel, memory, wall_clock or instance_pool",
            limit_trips.clone(),
        );
        let upstream_duration =
            Family::<UpstreamLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                upstream_duration_histogram,
            );
        registry.register(
            "upstream_code_exchange_duration_seconds",
            "The upstream code exchange and id token check at /callback, by connection and \
             outcome (ok, error)",
            upstream_duration.clone(),
        );
        let database_duration =
            Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                database_duration_histogram,
            );
        registry.register(
            "database_duration_seconds",
            "Database operations of the login path, by operation",
            database_duration.clone(),
        );
        let logins_started = Counter::default();
        registry.register(
            "logins_started",
            "Sign-ins sent to the upstream; the pending ones live in browsers' cookies, so \
             pending = started - sign-in logins - upstream failures",
            logins_started.clone(),
        );
        let shadow_runs = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "shadow_runs",
            "Shadow runs of a candidate plugin version, by outcome (identical, different, \
             failed, dropped)",
            shadow_runs.clone(),
        );
        let version_calls = Family::<VersionCallLabels, Counter>::default();
        registry.register(
            "plugin_version_calls",
            "Calls of store plugins (source = \"store\") by version and status: a canary's \
             beside the deployed version's",
            version_calls.clone(),
        );
        Metrics {
            version_calls,
            shadow_runs,
            chain_reloads,
            limit_trips,
            upstream_duration,
            database_duration,
            logins_started,
            registry,
            logins,
            plugin_duration,
            plugin_fuel,
            plugin_calls,
            instance_slots_in_use,
        }
    }
}

impl Metrics {
    pub fn login(&self, client: &str, grant: Grant, outcome: &'static str) {
        self.logins
            .get_or_create(&LoginLabels {
                client: client.to_owned(),
                grant: match grant {
                    Grant::SignIn => "sign_in",
                    Grant::Refresh => "refresh",
                },
                outcome,
            })
            .inc();
    }

    /// One shadow run of `plugin`'s candidate `version` (or one dropped).
    pub fn shadow_run(&self, plugin: &str, version: u64, outcome: &'static str) {
        self.shadow_runs
            .get_or_create(&ShadowLabels {
                plugin: plugin.to_owned(),
                version,
                outcome,
            })
            .inc();
    }

    pub fn login_started(&self) {
        self.logins_started.inc();
    }

    /// One upstream code exchange at `connection` (a configured name).
    pub fn upstream_exchange(&self, connection: &str, ok: bool, took: std::time::Duration) {
        self.upstream_duration
            .get_or_create(&UpstreamLabels {
                connection: connection.to_owned(),
                outcome: if ok { "ok" } else { "error" },
            })
            .observe(took.as_secs_f64());
    }

    /// `work`, its time recorded as `operation`'s.
    pub async fn timed<T>(&self, operation: &'static str, work: impl Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let result = work.await;
        self.database(operation, started.elapsed());
        result
    }

    pub fn database(&self, operation: &'static str, took: std::time::Duration) {
        self.database_duration
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    pub fn chain_reload(&self, outcome: &'static str) {
        self.chain_reloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The plugin steps of one run of the chain (the host's own steps,
    /// userinfo and minting, are not plugin calls).
    pub fn steps(&self, steps: &[StepReport]) {
        let plugin_steps = steps.iter().filter(|step| {
            matches!(
                step.kind,
                StepKind::ProfileFetcher
                    | StepKind::PostLoginAction
                    | StepKind::CredentialsExchange
            )
        });
        for step in plugin_steps {
            let plugin = PluginLabels {
                plugin: step.name.clone(),
            };
            self.plugin_duration
                .get_or_create(&plugin)
                .observe(step.duration.as_secs_f64());
            if let Some(fuel) = step.fuel_consumed {
                self.plugin_fuel.get_or_create(&plugin).inc_by(fuel);
            }
            let status = match step.status {
                StepStatus::Succeeded => "succeeded",
                StepStatus::Denied { .. } => "denied",
                StepStatus::Skipped { .. } => "skipped",
                StepStatus::Failed { .. } => "failed",
            };
            if let Some(version) = step.version {
                self.version_calls
                    .get_or_create(&VersionCallLabels {
                        plugin: plugin.plugin.clone(),
                        version,
                        status,
                    })
                    .inc();
            }
            self.plugin_calls
                .get_or_create(&PluginCallLabels {
                    plugin: plugin.plugin,
                    status,
                })
                .inc();
            if let Some(limit) = step.limit_tripped {
                self.limit_trips
                    .get_or_create(&LimitLabels {
                        plugin: step.name.clone(),
                        limit,
                    })
                    .inc();
            }
        }
    }

    /// The text exposition (OpenMetrics), with the gauges read now.
    pub fn render(&self, instance_slots_in_use: u32) -> String {
        self.instance_slots_in_use
            .set(i64::from(instance_slots_in_use));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
