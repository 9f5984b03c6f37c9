//! Failed client authentications at the token and revocation endpoints,
//! counted per registered client: past a few failures in a window, the client
//! is refused until the window ends, right secret or not, so that its secret
//! cannot be guessed at line speed.
//!
//! Only registered client ids are counted, so the map is as small as the
//! config. The price: someone who knows a client id can lock that client out
//! for a window; the log says when it happens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per client per window.
const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct FailedAuthentications {
    by_client: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailedAuthentications {
    /// How long `client_id` must still wait, if it is locked out now.
    pub(crate) fn locked_for(&self, client_id: &str) -> Option<Duration> {
        let by_client = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        let (started, failures) = by_client.get(client_id)?;
        let left = WINDOW.checked_sub(started.elapsed())?;
        (*failures >= MAX_FAILURES).then_some(left)
    }

    pub(crate) fn record_failure(&self, client_id: &str) {
        let mut by_client = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        let entry = by_client
            .entry(client_id.to_owned())
            .or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        if entry.1 == MAX_FAILURES {
            tracing::warn!(
                client = client_id,
                "too many failed client authentications: the client is refused for a minute"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_locked_after_too_many_failures_and_others_are_not() {
        let failures = FailedAuthentications::default();
        for _ in 0..MAX_FAILURES - 1 {
            failures.record_failure("web");
        }
        assert_eq!(failures.locked_for("web"), None);
        failures.record_failure("web");
        assert!(failures.locked_for("web").is_some());
        assert_eq!(failures.locked_for("spa"), None);
    }
}
