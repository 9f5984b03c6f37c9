//! Claimsmith runs the post-login step of an identity platform as WebAssembly
//! plugins: between "the upstream login succeeded" and "our tokens are minted"
//! it runs a profile fetcher and a chain of post-login actions, each a
//! component built against the WIT contract in `wit/`.
//!
//! How the pieces fit, in the order a login goes through them:
//! - [`config`] reads and checks the TOML configuration.
//! - [`bindings`] are the host bindings generated from the WIT contract,
//!   shared by the engine (which links them) and the capabilities (which
//!   implement them).
//! - [`engine`] compiles, caches, links and runs the components, each call in a
//!   fresh, bounded instance.
//! - [`capabilities`] is the host side of what a plugin may import: logging,
//!   its secrets, allow-listed HTTP and the post-login `api`.
//! - [`pipeline`] chains the plugins for one login and decides its outcome.
//! - [`tokens`] parses signing keys and mints the JWTs; [`keyring`] decides
//!   which key signs and which are published, for all hosts at once;
//!   [`sealing`] encrypts what others keep for the host (cookies, keys at
//!   rest, codes).
//! - [`store`] keeps users, the login audit trail, refresh tokens, codes and
//!   signing keys in SQLite or PostgreSQL (schema by the migrations in
//!   `migrations/`).
//! - [`replay`] reads recorded logins and answers their HTTP from canned
//!   exchanges; [`golden`] checks plugins against expected outcomes in CI.
//! - [`oidc`] is the login service: OIDC provider to the apps, OIDC client to
//!   the upstream providers.
//! - [`demo`] runs the service against the development provider and signs
//!   in once, as an app would.
//! - [`cli`] is the `claimsmith` command. For plugin authors: [`scaffold`]
//!   writes a new plugin project, [`build`] compiles plugin sources (Rust,
//!   JavaScript, Python) into components with each language's SDK, and
//!   [`inspect`] tells what a compiled plugin is.
//! - [`devprovider`] is a development upstream OIDC provider (demo, tests).

pub mod bindings;
pub mod build;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod demo;
pub mod devprovider;
pub mod engine;
pub mod golden;
pub mod inspect;
pub mod keyring;
pub mod metrics;
pub mod oidc;
pub mod pipeline;
pub mod replay;
pub mod scaffold;
pub mod sealing;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod tokens;
