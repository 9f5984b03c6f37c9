//! Claimsmith runs the post-login step of an identity platform as WebAssembly
//! plugins: between "the upstream login succeeded" and "our tokens are minted"
//! it runs a profile fetcher and a chain of post-login actions, each a
//! component built against the WIT contract in `wit/`.
//!
//! This crate is the `claimsmith` command ([`cli`]; [`plugins_cli`] is its
//! client of a deployment's plugin store), its logging ([`telemetry`]) and
//! the demo ([`demo`], with the `demo` feature). The work
//! is done by the layered crates under `host/`, re-exported here under the
//! names the command and the end-to-end tests use; the README's Layout
//! section draws the layers. In the order a login goes through them:
//! - [`config`] reads and checks the TOML configuration.
//! - [`bindings`] are the host bindings generated from the WIT contract.
//! - [`engine`] compiles, caches, links and runs the components, each call in a
//!   fresh, bounded instance; [`capabilities`] is the host side of what a
//!   plugin may import.
//! - [`pipeline`] chains the plugins for one login and decides its outcome.
//! - [`tokens`] mints the JWTs, [`keyring`] decides which key signs,
//!   [`sealing`] encrypts what others keep for the host.
//! - [`store`] keeps users, the audit trail, refresh tokens, codes and keys.
//! - [`replay`] and [`golden`] check plugins against recorded logins in CI.
//! - [`oidc`] is the login service over HTTP.
//! - [`build`], [`scaffold`] and [`inspect`] are the authoring tools.

pub use claimsmith_authoring::{build, inspect, scaffold};
pub use claimsmith_capabilities as capabilities;
pub use claimsmith_config as config;
pub use claimsmith_engine as engine;
pub use claimsmith_golden::{self as golden, replay};
pub use claimsmith_keys as keyring;
pub use claimsmith_pipeline as pipeline;
pub use claimsmith_server::{self as oidc, metrics};
pub use claimsmith_store as store;
pub use claimsmith_tokens::{self as tokens, sealing};
pub use claimsmith_wit as bindings;

pub mod cli;
#[cfg(feature = "demo")]
pub mod demo;
pub mod plugins_cli;
pub mod telemetry;
