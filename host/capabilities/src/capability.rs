//! The seam every host capability implements, as Spin's factors do: a
//! capability links its own imports and builds its own per-call state from
//! the plugin's grant. The engine names none of them; it links and prepares
//! the composed set ([`crate::Capabilities`]) and nothing else.

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::WasiHttpView;

use claimsmith_wit::World;

use crate::api::ActionEffects;
use crate::cache::ActionCache;
use crate::http::{HttpPolicy, Interceptor, OutboundHttp};
use crate::log::LogSink;
use crate::secrets::Secrets;
use crate::stdio::OutputBudget;

/// What one call of one plugin is granted and given, for each capability to
/// take its part from.
pub struct CallContext<'a> {
    pub plugin: &'a Arc<str>,
    /// The plugin's own secrets (config's `secrets`).
    pub secrets: &'a Secrets,
    /// The origins the plugin may reach (config's `allowed_origins`).
    pub http_policy: &'a Arc<HttpPolicy>,
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
    /// The plugin's `api.cache`, shared by its calls.
    pub cache: &'a ActionCache,
}

/// The data of a store that holds the composed capabilities (the engine's).
pub trait CapabilityView: WasiView + WasiHttpView + Send + 'static {
    fn capabilities(&mut self) -> &mut crate::Capabilities;
}

/// One host capability: what a plugin may import, and its state per call.
pub trait Capability: Sized + Send + 'static {
    /// Links this capability's imports into the linker of `world`'s plugins
    /// (one that only one world imports links nothing for the other).
    fn link<T: CapabilityView>(linker: &mut Linker<T>, world: World) -> wasmtime::Result<()>;

    /// This capability's state for one call, from what the call is granted.
    fn prepare(call: &mut CallContext<'_>) -> Self;
}

/// Capability `C` in the composed set: how a capability's import finds its
/// own state in a store (implemented for each member of the set).
pub trait Has<C> {
    fn get(&mut self) -> &mut C;
}
