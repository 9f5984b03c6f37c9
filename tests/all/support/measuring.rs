//! Tests that compare timings hold the machine against the heavy ones.
//!
//! On two cores a flood of logins, a killed host restarting or a property
//! test's hundreds of cases beside a measurement become what it measures.
//! A test that measures takes [`measuring`] (alone among the heavy tests);
//! a heavy test takes [`heavy`] (beside other heavy tests, never beside a
//! measurement). Light tests take neither.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static MACHINE: RwLock<()> = RwLock::const_new(());

/// Held by a test while it measures time.
pub async fn measuring() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// Held by a heavy test while it runs.
pub async fn heavy() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// [`heavy`], for a test that runs outside an async runtime.
pub fn heavy_blocking() -> RwLockReadGuard<'static, ()> {
    MACHINE.blocking_read()
}
