//! Claimsmith's end-to-end tests: real compiled plugins through the real
//! host, real databases, real HTTP servers on loopback.
//!
//! One binary with a module per area, as wasmtime's `tests/all`: wasmtime,
//! sqlx and axum link once instead of once per file. `support` holds what the
//! modules share (the compiled plugins, configs written as users write them,
//! the service harness). Needs the plugins built: `cargo xtask test` builds
//! them first.

mod support;

mod authoring;
mod canary;
mod capture;
mod chain;
mod cli_logs;
mod console;
mod console_browser;
mod credentials_exchange;
mod edge;
mod golden;
mod hostile;
mod hot_swap;
mod http;
mod limits;
mod load_driver;
mod management;
mod plugin_logs;
mod plugin_store;
mod properties;
mod redirect;
mod roles;
mod seed;
mod service;
mod several_hosts;
mod shadow;
mod startup;
mod telemetry;
mod try_it;
