//! The seam every host capability implements, as Spin's factors do: a
//! capability reads its grant from the plugin's config entry, links its own
//! imports and builds its own per-call state from that grant. The engine
//! names none of them; it grants, links and prepares the composed set
//! ([`crate::Capabilities`]) and nothing else.

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::WasiHttpView;

use claimsmith_config::PluginSpec;
use claimsmith_core::World;

use crate::api::ActionEffects;
use crate::http::{Interceptor, OutboundHttp};
use crate::log::LogSink;
use crate::redirect::RedirectContext;
use crate::stdio::OutputBudget;

/// What one call of one plugin is given, beside the plugin's grants, for
/// each capability to take its part from.
pub struct CallContext<'a> {
    pub plugin: &'a Arc<str>,
    /// The engine's one HTTP client.
    pub http: &'a OutboundHttp,
    /// Answers the plugin's HTTP instead of the network (local runs, tests).
    pub interceptor: Option<&'a Interceptor>,
    /// Collects the plugin's log lines (the console's Try it).
    pub log_sink: Option<&'a LogSink>,
    /// Pins the wall clock the plugin reads, in unix seconds (golden tests).
    pub pinned_clock: Option<u64>,
    /// When the plugin's requests must have ended: before the call's own
    /// deadline, so that it can still handle a timeout.
    pub requests_deadline: tokio::time::Instant,
    /// Shared by stdout, stderr and `log`.
    pub output_budget: OutputBudget,
    /// The `api` effects the call starts from (those of the actions before).
    pub effects: ActionEffects,
    /// What `api.redirect` may do: nothing outside a sign-in's actions.
    pub redirect: Option<Arc<RedirectContext>>,
}

/// The data of a store that holds the composed capabilities (the engine's).
pub trait CapabilityView: WasiView + WasiHttpView + Send + 'static {
    fn capabilities(&mut self) -> &mut crate::Capabilities;
}

/// One host capability: what a plugin may import, and its state per call.
pub trait Capability: Sized + Send + 'static {
    /// What this capability keeps of one plugin's config entry, made once
    /// when the plugin loads and shared by its calls (its origins, its
    /// secrets, its cache).
    type Grant: Send + Sync + 'static;

    /// The grant of `plugin`, from its config entry.
    fn grant(plugin: &PluginSpec) -> Self::Grant;

    /// Links this capability's imports into the linker of `world`'s plugins
    /// (one that only one world imports links nothing for the other).
    fn link<T: CapabilityView>(linker: &mut Linker<T>, world: World) -> wasmtime::Result<()>;

    /// This capability's state for one call, from the plugin's grant and
    /// what the call is given.
    fn prepare(grant: &Self::Grant, call: &mut CallContext<'_>) -> Self;
}

/// Capability `C` in the composed set: how a capability's import finds its
/// own state in a store (implemented for each member of the set).
pub trait Has<C> {
    fn get(&mut self) -> &mut C;
}
