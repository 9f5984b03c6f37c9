//! The host side of what a plugin may import, one module per WIT interface.
//!
//! Each capability is a small struct holding the state of one plugin
//! instance, created fresh for every invocation, and grants exactly what the
//! plugin's config grants: its own secrets, its own origins. Each implements
//! [`Capability`]: it reads its grant from the plugin's config entry
//! (`claimsmith_config::PluginSpec`, plain data), links its own imports and
//! builds its own state from that grant and the call's [`CallContext`]. The
//! set is composed in one place, below ([`Capabilities`], [`Grants`]); the
//! engine names no capability.
//!
//! Capabilities do not run plugins (that is the engine) and do not decide a
//! login's outcome (that is the pipeline): they record what the plugin asked
//! for. This crate reads the config's plain data and must not depend on the
//! engine or anything above it.

pub mod api;
pub mod cache;
pub mod capability;
pub mod http;
pub mod log;
pub mod redirect;
pub mod secrets;
pub mod stdio;
pub mod wasi;

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtx;

pub use capability::{CallContext, Capability, CapabilityView, Has};
use claimsmith_config::PluginSpec;
use claimsmith_core::World;

/// Declares the composed set: its struct, the struct of its grants, a
/// [`Has`] per member, and the granting, linking and preparing of every
/// member in order.
macro_rules! compose {
    ($($field:ident: $capability:ty),* $(,)?) => {
        /// The state of every host capability for one call.
        pub struct Capabilities {
            $(pub $field: $capability,)*
        }

        /// Every capability's grant to one plugin, made when it loads.
        pub struct Grants {
            $($field: <$capability as Capability>::Grant,)*
        }

        impl Grants {
            /// Each capability's grant, from the plugin's config entry.
            pub fn new(plugin: &PluginSpec) -> Self {
                Grants {
                    $($field: <$capability as Capability>::grant(plugin),)*
                }
            }
        }

        $(impl Has<$capability> for Capabilities {
            fn get(&mut self) -> &mut $capability {
                &mut self.$field
            }
        })*

        impl Capabilities {
            /// Links WASI and every capability `world`'s plugins may import.
            pub fn link<T: CapabilityView>(
                linker: &mut Linker<T>,
                world: World,
            ) -> wasmtime::Result<()> {
                wasi::link(linker)?;
                $(<$capability as Capability>::link(linker, world)?;)*
                Ok(())
            }

            /// The WASI context and every capability's state for one call
            /// of the plugin `grants` were made for.
            pub fn prepare(grants: &Grants, mut call: CallContext<'_>) -> (WasiCtx, Self) {
                let wasi = wasi::context(&call);
                let capabilities = Capabilities {
                    $($field: <$capability as Capability>::prepare(&grants.$field, &mut call),)*
                };
                (wasi, capabilities)
            }
        }
    };
}

// The one place the host's capabilities are composed. A new capability is a
// module implementing `Capability` and one line here.
compose! {
    log: log::LogCapability,
    secrets: secrets::Secrets,
    http: http::HttpCapability,
    api: api::ApiCapability,
    cache: cache::CacheCapability,
}

impl Capabilities {
    /// The `api` effects the call ended with, whatever its outcome.
    pub fn take_effects(&mut self) -> api::ActionEffects {
        std::mem::take(&mut self.api.effects)
    }

    /// What the host knows of a failed call that the plugin's own message
    /// may not say: why its last failed `wasi:http` request failed.
    pub fn failure_note(&self) -> Option<String> {
        self.http
            .last_failure()
            .map(|error| format!("its last failed request: {error}"))
    }

    /// What `wasi:http` (JavaScript's `fetch`) sends through: the `http`
    /// capability's policy.
    pub fn http_hooks(&mut self) -> &mut dyn wasmtime_wasi_http::WasiHttpHooks {
        &mut self.http
    }
}
