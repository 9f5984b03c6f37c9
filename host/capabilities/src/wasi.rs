//! What WASI grants a plugin: nothing but clocks, randomness and captured
//! stdio. Linked because every language's standard library imports WASI;
//! the context built per call has no preopened directory, no environment,
//! no arguments, no socket and no name lookup.
//!
//! `wasi:http` is linked too, for JavaScript's `fetch()`: its requests go
//! through the `http` capability's policy, as `http.fetch` does.

use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtx;

use crate::capability::{CallContext, CapabilityView};
use crate::stdio::{PluginOutput, Stream};

pub fn link<T: CapabilityView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// The WASI context of one call.
pub fn context(call: &CallContext<'_>) -> WasiCtx {
    let output =
        |stream| PluginOutput::new(call.plugin.clone(), stream, call.output_budget.clone());
    let mut wasi = WasiCtx::builder();
    wasi.stdout(output(Stream::Stdout))
        .stderr(output(Stream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        // wasmtime-wasi's default too; said here so that no change of
        // default can open a socket.
        .socket_addr_check(|_, _| Box::pin(async { false }));
    if let Some(unix_seconds) = call.pinned_clock {
        wasi.wall_clock(PinnedClock(Duration::from_secs(unix_seconds)));
    }
    wasi.build()
}

/// A wall clock stopped at one instant, for reproducible runs.
struct PinnedClock(Duration);

impl wasmtime_wasi::HostWallClock for PinnedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}
