//! The tools of a plugin author: `claimsmith new` ([`scaffold`]) writes a
//! project, `claimsmith build` ([`build`]) compiles Rust, JavaScript and
//! Python sources into components with each language's SDK, and `claimsmith
//! inspect` ([`inspect`]) tells what a compiled component is.
//!
//! Owns the pinned toolchains, the staging of SDK files and the build cache.
//! It must not run logins or serve anything: what it builds is loaded by the
//! engine like any other component.

pub mod build;
pub mod inspect;
pub mod scaffold;
