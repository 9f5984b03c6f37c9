//! Failed client authentications at the token and revocation endpoints,
//! counted per registered client and caller address: past a few failures in
//! a window, that caller is refused for that client until the window ends,
//! right secret or not, so that a secret cannot be guessed at line speed.
//!
//! Counting by address as well as client means a stranger who knows a
//! client id cannot lock the client's own servers out: their failures
//! count against the stranger's address only, and the right secret from
//! anywhere else is never refused because of them. Only registered client
//! ids are counted, and at most [`MAX_TRACKED`] callers at once, so the map
//! stays small whatever the traffic.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per client and caller per window.
const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Callers tracked at once; past it, windows that ended are dropped first,
/// then the oldest.
const MAX_TRACKED: usize = 4096;

#[derive(Default)]
pub(crate) struct FailedAuthentications {
    by_caller: Mutex<HashMap<(String, IpAddr), (Instant, u32)>>,
}

impl FailedAuthentications {
    /// How long `caller` must still wait before authenticating as
    /// `client_id`, if it is locked out now.
    pub(crate) fn locked_for(&self, client_id: &str, caller: IpAddr) -> Option<Duration> {
        let by_caller = self.by_caller.lock().unwrap_or_else(|e| e.into_inner());
        let (started, failures) = by_caller.get(&(client_id.to_owned(), caller))?;
        let left = WINDOW.checked_sub(started.elapsed())?;
        (*failures >= MAX_FAILURES).then_some(left)
    }

    pub(crate) fn record_failure(&self, client_id: &str, caller: IpAddr) {
        let mut by_caller = self.by_caller.lock().unwrap_or_else(|e| e.into_inner());
        let key = (client_id.to_owned(), caller);
        if !by_caller.contains_key(&key) && by_caller.len() >= MAX_TRACKED {
            make_room(&mut by_caller);
        }
        let entry = by_caller.entry(key).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        if entry.1 == MAX_FAILURES {
            tracing::warn!(
                client = client_id,
                %caller,
                "too many failed client authentications: this caller is refused for a minute"
            );
        }
    }
}

/// Drops the windows that ended, or else the oldest one.
fn make_room(by_caller: &mut HashMap<(String, IpAddr), (Instant, u32)>) {
    by_caller.retain(|_, (started, _)| started.elapsed() < WINDOW);
    if by_caller.len() >= MAX_TRACKED {
        let oldest = by_caller
            .iter()
            .min_by_key(|(_, (started, _))| *started)
            .map(|(key, _)| key.clone());
        if let Some(oldest) = oldest {
            by_caller.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRANGER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
    const APP_SERVER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_caller_is_locked_after_too_many_failures_and_others_are_not() {
        let failures = FailedAuthentications::default();
        for _ in 0..MAX_FAILURES - 1 {
            failures.record_failure("web", STRANGER);
        }
        assert_eq!(failures.locked_for("web", STRANGER), None);
        failures.record_failure("web", STRANGER);
        assert!(failures.locked_for("web", STRANGER).is_some());
        assert_eq!(failures.locked_for("spa", STRANGER), None, "another client");
        assert_eq!(
            failures.locked_for("web", APP_SERVER),
            None,
            "the client's own server, elsewhere, is not locked out by a stranger"
        );
    }

    #[test]
    fn a_flood_of_callers_keeps_the_map_bounded_and_the_latest_counted() {
        let failures = FailedAuthentications::default();
        for n in 0..(MAX_TRACKED as u32 + 100) {
            failures.record_failure("web", IpAddr::V4(std::net::Ipv4Addr::from(n)));
        }
        let tracked = failures.by_caller.lock().unwrap().len();
        assert_eq!(tracked, MAX_TRACKED);
        for _ in 0..MAX_FAILURES {
            failures.record_failure("web", STRANGER);
        }
        assert!(failures.locked_for("web", STRANGER).is_some());
    }
}
