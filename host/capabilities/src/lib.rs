//! The host side of what a plugin may import, one module per WIT interface.
//!
//! Each capability is a small struct holding the state of one plugin
//! instance, created fresh for every invocation, and grants exactly what the
//! plugin's config grants: its own secrets, its own origins. Capabilities do
//! not run plugins (that is the engine) and do not decide a login's outcome
//! (that is the pipeline): they record what the plugin asked for. This crate
//! must not depend on the engine, the config or anything above them.

pub mod api;
pub mod http;
pub mod log;
pub mod secrets;
pub mod stdio;
