//! The Wasm engine: compiles, caches, links and runs plugin components.
//!
//! Owns wasmtime. A plugin is compiled once at load (or read back from the
//! on-disk cache), checked against the world its config names, and linked
//! once (`InstancePre`). Every invocation then gets a fresh instance from the
//! pooling allocator, so nothing a plugin keeps in globals outlives one login,
//! and runs bounded by fuel, a memory cap and a wall-clock timeout. Plugins
//! run on tokio: a plugin waiting on `fetch` holds no thread and a busy one
//! yields every [`FUEL_YIELD_INTERVAL`] units and every [`EPOCH_TICK`] (the
//! second counts time spent in host calls too, which fuel does not see), so
//! its timeout ends it on time. What its host calls keep for it (WASI
//! resources, wasi:http header fields) is bounded as its memory is.
//!
//! It sets what WASI grants every plugin (no files, no environment, no
//! sockets, no name lookup; clocks, randomness and captured stdio only), and
//! builds each instance's capabilities from the plugin's grant. It does not
//! decide what a plugin is granted (config does, and the capabilities enforce
//! it) nor what its results mean for the login (the pipeline does).

mod cache;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ComponentExportIndex, Linker, ResourceTable};
use wasmtime::{
    Config, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use claimsmith_capabilities::api::ActionEffects;
use claimsmith_capabilities::http::{self, Interceptor, OutboundHttp};
use claimsmith_capabilities::redirect::RedirectContext;
use claimsmith_capabilities::stdio::output_budget;
use claimsmith_capabilities::{CallContext, Capabilities, CapabilityView, Grants};
use claimsmith_wit::{action, exchange, fetcher};

pub use claimsmith_config::{EngineSettings, Limits, PluginSource, PluginSpec};
pub use claimsmith_core::World;

pub use claimsmith_wit::action::claimsmith::plugin::event_types::{
    Authorization as EventAuthorization, Client as EventClient, Connection as EventConnection,
    Event, Request as EventRequest, User as EventUser,
};
pub use claimsmith_wit::exchange::claimsmith::plugin::exchange_types::{
    AccessToken as ExchangeAccessToken, ExchangeEvent, Request as ExchangeRequest, ResourceServer,
    Transaction as ExchangeTransaction,
};
pub use claimsmith_wit::fetcher::claimsmith::plugin::profile_types::FetchContext;

/// The export of a post-login action that resumes after a redirect.
const CONTINUE_EXPORT: &str = "on-continue-post-login";

/// A busy plugin hands its thread back to tokio this often (in fuel units,
/// roughly wasm instructions), so it cannot starve other logins.
pub const FUEL_YIELD_INTERVAL: u64 = 100_000;

/// How often the engine's epoch advances: a running plugin yields to tokio
/// at least this often, whatever it spends its time on, so that its timeout
/// fires on time even while it loops on host calls that cost little fuel.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// The most WASI resources (streams, pollables, wasi:http fields, ...) one
/// call may hold at once: they live in host memory, outside the memory cap.
/// A plugin's `fetch` needs a handful.
pub const MAX_RESOURCES: usize = 1024;

/// The most bytes one wasi:http `fields` (a request's or response's headers)
/// may hold; with [`MAX_RESOURCES`], what headers may take of host memory.
pub const MAX_FIELDS_BYTES: usize = 16 * 1024;

/// How much of a freed instance's memory (and tables) stays mapped and is
/// reset in place rather than returned to the OS, so the next login does
/// not page-fault it back in. With `PAGEMAP_SCAN` only the pages an instance
/// dirtied are reset, so a large value costs a small plugin nothing; the
/// vendored wasmtime's reset (vendor/README.md) spends all of it however
/// scattered those pages are. Measured in one bench run: with 1 MiB and
/// 48.0.8's reset JavaScript's geo-claims took 650 µs and Python's 1.85 ms,
/// a fifth of the samples in page faults; with 16 MiB and the vendored
/// reset, 438 µs and 0.89 ms (README, "Where a JavaScript call's time
/// goes"). Rust's, which dirties a few pages, stays about 14.5 µs.
const KEEP_RESIDENT_BYTES: usize = 16 * 1024 * 1024;

/// Set (to anything) in the environment, the engine writes
/// `/tmp/perf-PID.map`, so that `perf report` names the plugins' compiled
/// functions (README, "Profiling a plugin").
const PERF_MAP_VARIABLE: &str = "CLAIMSMITH_PERF_MAP";

/// The largest profile a fetcher may return (real ones are a few kilobytes):
/// every action of the login gets a copy.
pub const MAX_PROFILE_BYTES: usize = 1024 * 1024;

/// What a plugin may import at all, by name prefix: WASI, which every
/// language's standard library imports, and the contract (`wit/`). Which of
/// these a plugin is granted is then up to its world's linker.
const GRANTED_IMPORTS: [&str; 2] = ["wasi:", "claimsmith:plugin/"];

/// Which bound an invocation hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    #[error("fuel budget of {0} units")]
    Fuel(u64),
    #[error("memory cap of {} MiB", .0 / (1024 * 1024))]
    Memory(u64),
    #[error("wall-clock timeout of {} ms", .0.as_millis())]
    WallClock(Duration),
}

/// Why a plugin could not be loaded; the host refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{plugin}`: cannot read {}: {source}", path.display())]
    Read {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin `{plugin}` ({}) is not a valid WebAssembly component: {reason}", path.display())]
    Compile {
        plugin: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "plugin `{plugin}`: {} has sha256 {actual}, but the config pins {expected}; \
         refusing a file that is not the pinned build", path.display()
    )]
    NotThePinnedBuild {
        plugin: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("plugin `{plugin}` imports something Claimsmith does not grant: {reason}")]
    UngrantedImport { plugin: String, reason: String },
    #[error(
        "plugin `{plugin}` is configured as a {expected} but does not implement that world: {reason}"
    )]
    WrongWorld {
        plugin: String,
        expected: World,
        reason: String,
    },
    #[error("cannot set up the Wasm engine: {0}")]
    Engine(String),
}

/// Why one invocation failed. The host carries on either way.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin `{plugin}` exceeded its {limit}")]
    LimitExceeded { plugin: String, limit: Limit },
    #[error("plugin `{plugin}` trapped: {reason}")]
    Trapped { plugin: String, reason: String },
    #[error("plugin `{plugin}` failed: {message}")]
    Failed { plugin: String, message: String },
    #[error(
        "plugin `{plugin}` returned a profile of {bytes} bytes, over the cap of {MAX_PROFILE_BYTES}"
    )]
    ProfileTooLarge { plugin: String, bytes: usize },
    #[error("plugin `{plugin}` returned invalid JSON as {what}: {reason}")]
    InvalidJson {
        plugin: String,
        what: &'static str,
        reason: String,
    },
    /// Every slot of the instance pool (`slots` of them) stayed busy for the
    /// plugin's whole timeout: the host is overloaded. Never skipped by
    /// `on_error = "continue"`, or load would switch actions (a deny, say) off.
    #[error(
        "plugin `{plugin}` could not run: every slot of the instance pool (size {slots}) stayed busy for its whole timeout"
    )]
    Capacity { plugin: String, slots: u32 },
}

impl PluginError {
    /// Whether the plugin itself failed, as opposed to the host around it.
    pub fn is_plugin_fault(&self) -> bool {
        !matches!(self, PluginError::Capacity { .. })
    }
}

/// Per-call choices of the caller.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// Answers the plugin's HTTP instead of the network (local runs, tests).
    pub interceptor: Option<Interceptor>,
    /// Pins the wall clock the plugin reads, in unix seconds (golden tests).
    pub pinned_clock: Option<u64>,
    /// Collects the plugin's log lines (the console's Try it).
    pub log_sink: Option<claimsmith_capabilities::log::LogSink>,
    /// What `api.redirect` may do: set for a sign-in's actions only.
    pub redirect: Option<Arc<RedirectContext>>,
}

/// A finished invocation: its outcome, and what it cost whatever the outcome.
#[derive(Debug)]
pub struct Invocation<T> {
    pub output: Result<T, PluginError>,
    pub fuel_consumed: u64,
    pub duration: Duration,
}

/// The Wasm engine, shared by all plugins and logins.
pub struct Engine {
    wasmtime: wasmtime::Engine,
    /// Components already compiled by this engine, by wasm digest: loading
    /// the same plugin again (another config, a golden case) costs nothing.
    compiled: Mutex<HashMap<String, Component>>,
    fetcher_linker: Linker<StoreState>,
    action_linker: Linker<StoreState>,
    exchange_linker: Linker<StoreState>,
    cache: Option<Arc<cache::CompileCache>>,
    http: OutboundHttp,
    slots: Arc<InstanceSlots>,
}

/// One permit per instance the pool holds: callers wait for a slot instead
/// of failing on a full pool.
struct InstanceSlots {
    free: tokio::sync::Semaphore,
    /// The pool's size, which a capacity error reports.
    total: u32,
}

impl Engine {
    pub fn new(settings: &EngineSettings, http: OutboundHttp) -> Result<Self, LoadError> {
        let engine_error = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        let instances = settings.max_concurrent_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            .total_stacks(instances)
            // Components built from other languages bring several core
            // modules, memories and tables each.
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .total_core_instances(instances.saturating_mul(32))
            .total_memories(instances.saturating_mul(4))
            .total_tables(instances.saturating_mul(8))
            .max_memory_size(usize::try_from(settings.max_memory_bytes).unwrap_or(usize::MAX))
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            // Linux 6.7+: reset only the pages an instance dirtied (swapped
            // out or not), keeping them mapped; elsewhere wasmtime falls back
            // to memset + madvise.
            .pagemap_scan(wasmtime::Enabled::Auto);
        let cache = settings.cache_dir.as_ref().and_then(|dir| {
            cache::CompileCache::open(dir.clone())
                .inspect_err(|error| {
                    tracing::warn!(dir = %dir.display(), error = format!("{error:#}"), "compile cache not used: plugins compile on every start");
                })
                .ok()
                .map(Arc::new)
        });
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if std::env::var_os(PERF_MAP_VARIABLE).is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if let Some(cache) = &cache {
            config
                .enable_incremental_compilation(Arc::new(cache::FunctionCache(cache.clone())))
                .map_err(engine_error)?;
        }
        let wasmtime = wasmtime::Engine::new(&config).map_err(engine_error)?;
        spawn_epoch_ticker(&wasmtime).map_err(|e| LoadError::Engine(e.to_string()))?;

        let mut fetcher_linker = Linker::new(&wasmtime);
        Capabilities::link(&mut fetcher_linker, World::ProfileFetcher).map_err(engine_error)?;
        let mut action_linker = Linker::new(&wasmtime);
        Capabilities::link(&mut action_linker, World::PostLoginAction).map_err(engine_error)?;
        let mut exchange_linker = Linker::new(&wasmtime);
        Capabilities::link(&mut exchange_linker, World::CredentialsExchange)
            .map_err(engine_error)?;

        Ok(Engine {
            wasmtime,
            compiled: Mutex::default(),
            fetcher_linker,
            action_linker,
            exchange_linker,
            cache,
            http,
            slots: Arc::new(InstanceSlots {
                free: tokio::sync::Semaphore::new(instances as usize),
                total: instances,
            }),
        })
    }

    /// Compiles (or reads back from the cache), checks and links a plugin.
    pub fn load(&self, spec: PluginSpec) -> Result<Plugin, LoadError> {
        let plugin = spec.name.clone();
        let (wasm, digest) = read_pinned_wasm(&spec)?;
        let component = self
            .compile(&wasm, &digest)
            .map_err(|e| LoadError::Compile {
                plugin: plugin.clone(),
                path: spec.path.clone(),
                reason: format!("{e:#}"),
            })?;

        // Exports first: a plugin built for the other world also imports
        // what that world grants, and "wrong world" is the useful message.
        let exports = self.check_world_exports(&spec, &component)?;
        // Before linking, and whatever the linkers come to hold: a plugin
        // reaches WASI and the contract, nothing else the host may link.
        self.check_imports_granted(&spec, &component)?;
        let prepared = self.prepare(&spec, &component, &exports)?;
        tracing::info!(plugin, world = %spec.world, sha256 = %digest, "plugin loaded");
        Ok(Plugin {
            grants: Grants::new(&spec),
            name: Arc::from(spec.name),
            version: spec.version,
            sha256: digest,
            world: spec.world,
            limits: spec.limits,
            http: self.http.clone(),
            wasmtime: self.wasmtime.clone(),
            slots: self.slots.clone(),
            prepared,
        })
    }
}

impl Engine {
    /// The component's export names, once they include its world's export.
    fn check_world_exports(
        &self,
        spec: &PluginSpec,
        component: &Component,
    ) -> Result<Vec<String>, LoadError> {
        let expected_export = world_export(spec.world);
        let exports = export_names(&self.wasmtime, component);
        if !exports.iter().any(|name| name == expected_export) {
            return Err(LoadError::WrongWorld {
                plugin: spec.name.clone(),
                expected: spec.world,
                reason: describe_world_mismatch(
                    &exports,
                    &format!("it does not export `{expected_export}`"),
                ),
            });
        }
        Ok(exports)
    }

    /// Refuses a component that imports anything but WASI and the contract.
    fn check_imports_granted(
        &self,
        spec: &PluginSpec,
        component: &Component,
    ) -> Result<(), LoadError> {
        let component_type = component.component_type();
        let foreign = component_type
            .imports(&self.wasmtime)
            .map(|(name, _)| name)
            .find(|name| !GRANTED_IMPORTS.iter().any(|p| name.starts_with(p)));
        if let Some(import) = foreign {
            return Err(LoadError::UngrantedImport {
                plugin: spec.name.clone(),
                reason: format!(
                    "`{import}`, which is neither WASI (`wasi:*`) nor the Claimsmith contract (`claimsmith:plugin/*`)"
                ),
            });
        }
        Ok(())
    }

    /// Links the component with its world's linker, once for every invocation.
    fn prepare(
        &self,
        spec: &PluginSpec,
        component: &Component,
        exports: &[String],
    ) -> Result<Prepared, LoadError> {
        let linker = match spec.world {
            World::ProfileFetcher => &self.fetcher_linker,
            World::PostLoginAction => &self.action_linker,
            World::CredentialsExchange => &self.exchange_linker,
        };
        let ungranted = |e: wasmtime::Error| LoadError::UngrantedImport {
            plugin: spec.name.clone(),
            reason: format!("{e:#}"),
        };
        let pre = linker.instantiate_pre(component).map_err(ungranted)?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            plugin: spec.name.clone(),
            expected: spec.world,
            reason: describe_world_mismatch(exports, &format!("{e:#}")),
        };
        Ok(match spec.world {
            World::ProfileFetcher => {
                Prepared::ProfileFetcher(fetcher::ProfileFetcherPre::new(pre).map_err(wrong_world)?)
            }
            World::PostLoginAction => Prepared::PostLoginAction {
                continue_export: component.get_export_index(None, CONTINUE_EXPORT),
                pre: action::PostLoginActionPre::new(pre).map_err(wrong_world)?,
            },
            World::CredentialsExchange => Prepared::CredentialsExchange(
                exchange::CredentialsExchangePre::new(pre).map_err(wrong_world)?,
            ),
        })
    }

    /// Forgets every compiled component but those of `digests` (the chain
    /// serving now): a swapped-out chain's components are freed once the
    /// last login on them ends, instead of living as long as the engine.
    pub fn keep_compiled_only<'a>(&self, digests: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = digests.into_iter().collect();
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|digest, _| keep.contains(digest.as_str()));
    }

    fn compile(&self, wasm: &[u8], digest: &str) -> wasmtime::Result<Component> {
        let memo = |compiled: &Mutex<HashMap<String, Component>>| {
            compiled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(digest)
                .cloned()
        };
        if let Some(component) = memo(&self.compiled) {
            return Ok(component);
        }
        let component = match &self.cache {
            Some(cache) => {
                let (component, source) = cache.component(&self.wasmtime, wasm, digest)?;
                tracing::debug!(digest, ?source, "plugin component ready");
                component
            }
            None => Component::new(&self.wasmtime, wasm)?,
        };
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.to_owned(), component.clone());
        Ok(component)
    }
}

/// What a component is, as `claimsmith inspect` shows it.
#[derive(Debug, Clone)]
pub struct ComponentDescription {
    /// The world its exports implement, when they implement one.
    pub world: Option<World>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// How long Cranelift took to compile it (no cache).
    pub compile_time: Duration,
    /// The source language, from the producers sections, when they say.
    pub language: Option<String>,
    /// Every producers entry as `(field, name, version)`, without repeats.
    pub producers: Vec<(String, String, String)>,
}

impl Engine {
    /// Compiles `wasm` without the cache and names its imports, exports and
    /// world; `load` is what checks the imports against the grants.
    pub fn describe(&self, wasm: &[u8]) -> Result<ComponentDescription, String> {
        let started = Instant::now();
        let component = Component::new(&self.wasmtime, wasm).map_err(|e| format!("{e:#}"))?;
        let compile_time = started.elapsed();
        let component_type = component.component_type();
        let imports = component_type
            .imports(&self.wasmtime)
            .map(|(name, _)| name.to_owned())
            .collect();
        let exports = export_names(&self.wasmtime, &component);
        let world = implemented_world(&exports);
        let producers = producers(wasm);
        Ok(ComponentDescription {
            world,
            imports,
            exports,
            compile_time,
            language: source_language(&producers, wasm),
            producers,
        })
    }
}

/// `(field, name, version)` of every producers section, in the component and
/// its nested modules, without repeats.
/// The source language a component's producers sections name, without
/// compiling it (what the plugin store records of a pushed version).
pub fn component_language(wasm: &[u8]) -> Option<String> {
    source_language(&producers(wasm), wasm)
}

fn producers(wasm: &[u8]) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
            continue;
        };
        let wasmparser::KnownCustom::Producers(reader) = section.as_known() else {
            continue;
        };
        for field in reader.into_iter().flatten() {
            for value in field.values.into_iter().flatten() {
                let entry = (
                    field.name.to_owned(),
                    value.name.to_owned(),
                    value.version.to_owned(),
                );
                if !found.contains(&entry) {
                    found.push(entry);
                }
            }
        }
    }
    found
}

/// The language a plugin was written in. The componentizers of JavaScript
/// and Python embed an engine written in other languages (C++, Rust), so
/// their own marks come first; componentize-py leaves no producers entry, but
/// its runtime's symbols are in the component.
fn source_language(producers: &[(String, String, String)], wasm: &[u8]) -> Option<String> {
    let has = |wanted_field: &str, needle: &str| {
        producers.iter().any(|(field, name, _)| {
            field == wanted_field && name.to_ascii_lowercase().contains(needle)
        })
    };
    if has("language", "javascript")
        || has("processed-by", "componentizejs")
        || has("processed-by", "componentize-js")
    {
        return Some("JavaScript".to_owned());
    }
    if has("language", "python")
        || wasm
            .windows(PYTHON_RUNTIME_MARK.len())
            .any(|window| window == PYTHON_RUNTIME_MARK)
    {
        return Some("Python".to_owned());
    }
    if has("language", "rust") || has("processed-by", "wit-bindgen-rust") {
        return Some("Rust".to_owned());
    }
    producers
        .iter()
        .find(|(field, _, _)| field == "language")
        .map(|(_, name, _)| name.clone())
}

const PYTHON_RUNTIME_MARK: &[u8] = b"componentize_py_runtime";

/// The plugin's file and its digest, refused unless it is the pinned build.
fn read_pinned_wasm(spec: &PluginSpec) -> Result<(Vec<u8>, String), LoadError> {
    let wasm = std::fs::read(&spec.path).map_err(|source| LoadError::Read {
        plugin: spec.name.clone(),
        path: spec.path.clone(),
        source,
    })?;
    let digest = hex::encode(Sha256::digest(&wasm));
    if let Some(pinned) = spec.sha256.as_ref().filter(|pinned| **pinned != digest) {
        return Err(LoadError::NotThePinnedBuild {
            plugin: spec.name.clone(),
            path: spec.path.clone(),
            expected: pinned.clone(),
            actual: digest,
        });
    }
    Ok((wasm, digest))
}

fn export_names(engine: &wasmtime::Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Every world, in the order a component's exports are matched against them.
const WORLDS: [World; 3] = [
    World::PostLoginAction,
    World::CredentialsExchange,
    World::ProfileFetcher,
];

/// The function a component of `world` exports.
fn world_export(world: World) -> &'static str {
    match world {
        World::ProfileFetcher => "fetch-profile",
        World::PostLoginAction => "on-execute-post-login",
        World::CredentialsExchange => "on-execute-credentials-exchange",
    }
}

/// The world whose function `exports` include, if any.
fn implemented_world(exports: &[String]) -> Option<World> {
    WORLDS
        .into_iter()
        .find(|world| exports.iter().any(|name| name == world_export(*world)))
}

/// Says what is wrong, and names the world the component does implement
/// when it implements another one.
fn describe_world_mismatch(exports: &[String], problem: &str) -> String {
    let hint = implemented_world(exports)
        .map(|world| format!(" (it exports `{}`: it is a {world})", world_export(world)))
        .unwrap_or_default();
    format!("{problem}; its exports are [{}]{hint}", exports.join(", "))
}

enum Prepared {
    ProfileFetcher(fetcher::ProfileFetcherPre<StoreState>),
    PostLoginAction {
        pre: action::PostLoginActionPre<StoreState>,
        /// `on-continue-post-login`, which a component built for the world
        /// `resumable-post-login-action` has (every SDK's) and one built for
        /// `post-login-action` does not.
        continue_export: Option<ComponentExportIndex>,
    },
    CredentialsExchange(exchange::CredentialsExchangePre<StoreState>),
}

/// A loaded plugin, ready to be invoked any number of times concurrently.
pub struct Plugin {
    name: Arc<str>,
    /// The store's version number, for a `source = "store"` plugin.
    version: Option<u64>,
    /// Of the file it was loaded from (lowercase hex).
    sha256: String,
    world: World,
    limits: Limits,
    /// What each capability granted it (its `api.cache` among them: kept
    /// while this load of the plugin lives).
    grants: Grants,
    http: OutboundHttp,
    wasmtime: wasmtime::Engine,
    slots: Arc<InstanceSlots>,
    prepared: Prepared,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store's version this is, for a `source = "store"` plugin.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The SHA-256 of the component as loaded: what `sha256` pins.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Instances of the engine's pool (shared by all its plugins) in use now.
    pub fn instance_slots_in_use(&self) -> u32 {
        let free = u32::try_from(self.slots.free.available_permits()).unwrap_or(u32::MAX);
        self.slots.total.saturating_sub(free)
    }

    pub fn world(&self) -> World {
        self.world
    }

    /// Runs `fetch-profile` in a fresh instance; the profile must be a JSON object.
    pub async fn fetch_profile(
        &self,
        context: &FetchContext,
        options: &CallOptions,
    ) -> Invocation<Map<String, Value>> {
        let Prepared::ProfileFetcher(pre) = &self.prepared else {
            return self.not_a(World::ProfileFetcher);
        };
        let (invocation, called) = self
            .invoke(ActionEffects::default(), options, async |store| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_fetch_profile(&mut *store, context).await
            })
            .await;
        let output = invocation.output.and_then(|returned| {
            let profile_json = returned.map_err(|message| self.failed(message, called.note))?;
            // Before parsing: the actions after it would each get a copy.
            if profile_json.len() > MAX_PROFILE_BYTES {
                return Err(PluginError::ProfileTooLarge {
                    plugin: self.name.to_string(),
                    bytes: profile_json.len(),
                });
            }
            profile_from_json(&profile_json).map_err(|reason| PluginError::InvalidJson {
                plugin: self.name.to_string(),
                what: "the profile",
                reason,
            })
        });
        Invocation {
            output,
            fuel_consumed: invocation.fuel_consumed,
            duration: invocation.duration,
        }
    }

    /// Runs `on-execute-post-login` in a fresh instance, starting from the
    /// effects of the actions before it; returns the effects with this
    /// action's changes applied.
    pub async fn on_execute_post_login(
        &self,
        event: &Event,
        effects: ActionEffects,
        options: &CallOptions,
    ) -> Invocation<ActionEffects> {
        let Prepared::PostLoginAction { pre, .. } = &self.prepared else {
            return self.not_a(World::PostLoginAction);
        };
        self.run_action(effects, options, async |store| {
            let instance = pre.instantiate_async(&mut *store).await?;
            instance
                .call_on_execute_post_login(&mut *store, event)
                .await
        })
        .await
    }

    /// Whether the plugin has `on-continue-post-login` (Auth0's
    /// `onContinuePostLogin`).
    pub fn continues_post_login(&self) -> bool {
        matches!(
            &self.prepared,
            Prepared::PostLoginAction {
                continue_export: Some(_),
                ..
            }
        )
    }

    /// Runs `on-continue-post-login` in a fresh instance, as
    /// [`Plugin::on_execute_post_login`] runs its sign-in export. Check
    /// [`Plugin::continues_post_login`] first: a plugin without the export
    /// fails here.
    pub async fn on_continue_post_login(
        &self,
        event: &Event,
        effects: ActionEffects,
        options: &CallOptions,
    ) -> Invocation<ActionEffects> {
        let Prepared::PostLoginAction {
            pre,
            continue_export: Some(export),
        } = &self.prepared
        else {
            return self.not_a_resumable();
        };
        self.run_action(effects, options, async |store| {
            let instance = pre.instance_pre().instantiate_async(&mut *store).await?;
            let continued =
                instance.get_typed_func::<(&Event,), (Result<(), String>,)>(&mut *store, export)?;
            let (returned,) = continued.call_async(&mut *store, (event,)).await?;
            Ok(returned)
        })
        .await
    }

    /// Runs `on-execute-credentials-exchange` in a fresh instance, starting
    /// from the effects of the actions before it; returns the effects with
    /// this action's changes applied.
    pub async fn on_execute_credentials_exchange(
        &self,
        event: &ExchangeEvent,
        effects: ActionEffects,
        options: &CallOptions,
    ) -> Invocation<ActionEffects> {
        let Prepared::CredentialsExchange(pre) = &self.prepared else {
            return self.not_a(World::CredentialsExchange);
        };
        self.run_action(effects, options, async |store| {
            let instance = pre.instantiate_async(&mut *store).await?;
            instance
                .call_on_execute_credentials_exchange(&mut *store, event)
                .await
        })
        .await
    }

    /// One action's call: its effects on success, and on a failure after a
    /// denial too.
    async fn run_action(
        &self,
        effects: ActionEffects,
        options: &CallOptions,
        call: impl AsyncFnOnce(&mut Store<StoreState>) -> wasmtime::Result<Result<(), String>>,
    ) -> Invocation<ActionEffects> {
        let (invocation, Called { effects, note }) = self.invoke(effects, options, call).await;
        let returned = invocation
            .output
            .and_then(|returned| returned.map_err(|message| self.failed(message, note)));
        let output = match returned {
            Ok(()) => Ok(effects),
            // A denial stands even if the action then fails: failing must
            // never be a way to turn a "no" into a skipped step.
            Err(error) if effects.denial.is_some() && error.is_plugin_fault() => {
                tracing::warn!(%error, "action failed after denying; the denial stands");
                Ok(effects)
            }
            Err(error) => Err(error),
        };
        Invocation {
            output,
            fuel_consumed: invocation.fuel_consumed,
            duration: invocation.duration,
        }
    }

    fn not_a<T>(&self, world: World) -> Invocation<T> {
        self.refused(format!("is a {}, not a {world}", self.world))
    }

    fn not_a_resumable<T>(&self) -> Invocation<T> {
        self.refused(format!("does not export `{CONTINUE_EXPORT}`"))
    }

    fn refused<T>(&self, why: String) -> Invocation<T> {
        Invocation {
            output: Err(self.failed(why, None)),
            fuel_consumed: 0,
            duration: Duration::ZERO,
        }
    }

    /// One invocation in a fresh store, within the plugin's limits. Returns
    /// the export's result with its cost, and what the store ended with
    /// whatever the result ([`Called`]).
    #[tracing::instrument(level = "debug", name = "plugin", skip_all, fields(plugin = &*self.name))]
    async fn invoke<R>(
        &self,
        effects: ActionEffects,
        options: &CallOptions,
        call: impl AsyncFnOnce(&mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> (Invocation<R>, Called) {
        let started = Instant::now();
        let finish = |output, fuel_consumed| Invocation {
            output,
            fuel_consumed,
            duration: started.elapsed(),
        };
        // One deadline for the wait for a slot and the call together: the
        // timeout bounds how long the login waits on this plugin, whatever
        // the time went on.
        let deadline = tokio::time::Instant::from_std(started) + self.limits.timeout;
        // Wait for a free instance slot rather than fail on a full pool.
        let Ok(Ok(_slot)) = tokio::time::timeout_at(deadline, self.slots.free.acquire()).await
        else {
            let busy = PluginError::Capacity {
                plugin: self.name.to_string(),
                slots: self.slots.total,
            };
            return (
                finish(Err(busy), 0),
                Called {
                    effects,
                    note: None,
                },
            );
        };
        let requests_deadline = deadline - http::timeout_margin(self.limits.timeout);
        let state = StoreState::new(self, effects, options, requests_deadline);
        let mut store = Store::new(&self.wasmtime, state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let budget = store
            .set_fuel(self.limits.fuel)
            .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL)));
        if let Err(error) = budget {
            let effects = store.data_mut().capabilities.take_effects();
            let called = Called {
                effects,
                note: None,
            };
            return (finish(Err(self.trapped(error)), 0), called);
        }

        let outcome = tokio::time::timeout_at(deadline, call(&mut store)).await;
        let fuel_consumed = self
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let limit = |limit| PluginError::LimitExceeded {
            plugin: self.name.to_string(),
            limit,
        };
        let output = match outcome {
            Err(_elapsed) => Err(limit(Limit::WallClock(self.limits.timeout))),
            // Fuel first: a refused growth earlier may have been survived.
            Ok(Err(error)) if error.downcast_ref() == Some(&wasmtime::Trap::OutOfFuel) => {
                Err(limit(Limit::Fuel(self.limits.fuel)))
            }
            Ok(Err(_)) if store.data().memory.cap_hit => {
                Err(limit(Limit::Memory(self.limits.memory_bytes)))
            }
            Ok(Err(error)) => Err(self.trapped(error)),
            Ok(Ok(output)) => Ok(output),
        };
        let capabilities = &mut store.data_mut().capabilities;
        let note = capabilities.failure_note();
        let effects = capabilities.take_effects();
        (finish(output, fuel_consumed), Called { effects, note })
    }

    /// The plugin's own failure, with what the host knows of it (`note`).
    fn failed(&self, message: String, note: Option<String>) -> PluginError {
        let message = match note {
            Some(note) => format!("{message} ({note})"),
            None => message,
        };
        PluginError::Failed {
            plugin: self.name.to_string(),
            message,
        }
    }

    /// The trap itself ("wasm `unreachable` instruction executed"); the wasm
    /// backtrace goes to the debug log, not to apps and audit rows.
    fn trapped(&self, error: wasmtime::Error) -> PluginError {
        tracing::debug!(plugin = &*self.name, "trap: {error:?}");
        PluginError::Trapped {
            plugin: self.name.to_string(),
            reason: error.root_cause().to_string(),
        }
    }
}

/// What a call left besides its output: the `api` effects it ended with, and
/// the host's note on its failure ([`Capabilities::failure_note`]).
struct Called {
    effects: ActionEffects,
    note: Option<String>,
}

/// A call's resource table, holding at most [`MAX_RESOURCES`].
fn bounded_resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    table
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] on a thread of its own,
/// until the engine is dropped. A thread rather than a tokio task: it must
/// tick while every worker runs plugins.
fn spawn_epoch_ticker(engine: &wasmtime::Engine) -> std::io::Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("claimsmith-epoch".to_owned())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
}

/// The profile a fetcher returned: it must be a JSON object.
pub fn profile_from_json(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(profile)) => Ok(profile),
        Ok(other) => Err(format!("expected a JSON object, got {}", json_kind(&other))),
        Err(e) => Err(e.to_string()),
    }
}

/// "a string", "an object", ...: for messages about a JSON value.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The data of one store: one plugin instance's WASI context, resources,
/// memory cap and capabilities.
struct StoreState {
    wasi: WasiCtx,
    wasi_http: WasiHttpCtx,
    table: ResourceTable,
    memory: MemoryCap,
    capabilities: Capabilities,
}

impl StoreState {
    fn new(
        plugin: &Plugin,
        effects: ActionEffects,
        options: &CallOptions,
        requests_deadline: tokio::time::Instant,
    ) -> Self {
        let (wasi, capabilities) = Capabilities::prepare(
            &plugin.grants,
            CallContext {
                plugin: &plugin.name,
                http: &plugin.http,
                interceptor: options.interceptor.as_ref(),
                log_sink: options.log_sink.as_ref(),
                pinned_clock: options.pinned_clock,
                redirect: options.redirect.clone(),
                requests_deadline,
                output_budget: output_budget(plugin.name.clone()),
                effects,
            },
        );
        let mut wasi_http = WasiHttpCtx::new();
        wasi_http.set_field_size_limit(MAX_FIELDS_BYTES);
        StoreState {
            wasi,
            wasi_http,
            table: bounded_resource_table(),
            memory: MemoryCap {
                max_bytes: plugin.limits.memory_bytes,
                total_bytes: 0,
                cap_hit: false,
            },
            capabilities,
        }
    }
}

impl CapabilityView for StoreState {
    fn capabilities(&mut self) -> &mut Capabilities {
        &mut self.capabilities
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.wasi_http,
            table: &mut self.table,
            hooks: self.capabilities.http_hooks(),
        }
    }
}

/// Refuses memory growth past the plugin's cap and remembers that it did, so
/// the trap that follows (an allocator aborting) is reported as the limit.
/// The cap is on all of an instance's memories together: a component may
/// have several.
struct MemoryCap {
    max_bytes: u64,
    total_bytes: u64,
    cap_hit: bool,
}

/// Tables hold function references; no plugin needs more.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current) as u64;
        let total = self.total_bytes.saturating_add(growth);
        if total > self.max_bytes {
            self.cap_hit = true;
            return Ok(false);
        }
        self.total_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_RESOURCES, bounded_resource_table};

    #[test]
    fn componentizers_name_the_source_language_before_their_engine() {
        let entry = |field: &str, name: &str| (field.to_owned(), name.to_owned(), String::new());
        let js = [
            entry("language", "C11"),
            entry("processed-by", "ComponentizeJS"),
        ];
        assert_eq!(
            super::source_language(&js, b"").as_deref(),
            Some("JavaScript")
        );
        // componentize-py: a Rust runtime, recognised by its symbols.
        let py = [entry("language", "Rust")];
        let py_wasm = b"...componentize_py_runtime...";
        assert_eq!(
            super::source_language(&py, py_wasm).as_deref(),
            Some("Python")
        );
        let rust = [entry("processed-by", "wit-bindgen-rust")];
        assert_eq!(super::source_language(&rust, b"").as_deref(), Some("Rust"));
        assert_eq!(super::source_language(&[], b""), None);
    }

    #[test]
    fn only_the_components_kept_stay_compiled() {
        let dir = tempfile::tempdir().unwrap();
        let spec = |name: &str, wasm: &[u8]| {
            let path = dir.path().join(format!("{name}.wasm"));
            std::fs::write(&path, wasm).unwrap();
            super::PluginSpec {
                name: name.to_owned(),
                path,
                sha256: None,
                source: super::PluginSource::File,
                version: None,
                world: super::World::PostLoginAction,
                capture: false,
                limits: Default::default(),
                secrets: Default::default(),
                http: Default::default(),
                redirect_origins: Vec::new(),
            }
        };
        let http = claimsmith_capabilities::http::OutboundHttp::new().unwrap();
        let engine = super::Engine::new(&Default::default(), http).unwrap();
        // Components of no world: compiled, then refused.
        let empty = b"\0asm\x0d\x00\x01\x00".to_vec();
        let mut other = empty.clone();
        other.extend_from_slice(&[0, 5, 4, b'n', b'o', b't', b'e']);
        for (name, wasm) in [("old", &empty), ("new", &other)] {
            assert!(engine.load(spec(name, wasm)).is_err());
        }
        let digest = |wasm: &[u8]| {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(wasm))
        };
        let compiled = || {
            let mut digests: Vec<String> =
                engine.compiled.lock().unwrap().keys().cloned().collect();
            digests.sort();
            digests
        };
        let mut both = vec![digest(&empty), digest(&other)];
        both.sort();
        assert_eq!(compiled(), both);
        engine.keep_compiled_only([digest(&other).as_str()]);
        assert_eq!(compiled(), vec![digest(&other)]);
    }

    #[test]
    fn a_call_holds_at_most_max_resources() {
        let mut table = bounded_resource_table();
        for n in 0..MAX_RESOURCES {
            assert!(table.push(n).is_ok(), "resource {n}");
        }
        let refused = table.push(MAX_RESOURCES).unwrap_err();
        assert!(refused.to_string().contains("no free keys"), "{refused}");
    }
}
