//! Canaries: a version of a `source = "store"` plugin served to a share of
//! the users instead of the deployed one, sticky by user id, and rolled
//! back by the host that sees its failure rate over the canary's window
//! pass its threshold.
//!
//! Owns the choice of build per user (an [`ActionChoice`] for the
//! pipeline), the window of each canary's recent calls and the decision to
//! roll back. The canary's terms are the store's; [`crate::store_plugins`]
//! loads its build and ends it when told to.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use claimsmith_core::{StepReport, StepStatus};
use claimsmith_engine::Plugin;
use claimsmith_pipeline::ActionChoice;
use claimsmith_store::Canary;

const PPM: u64 = 1_000_000;

/// This host's canaries, by plugin name.
#[derive(Default)]
pub(crate) struct Canaries {
    by_plugin: RwLock<HashMap<String, Arc<CanaryBuild>>>,
}

/// A canary's build and its recent calls on this host.
pub(crate) struct CanaryBuild {
    pub plugin: Arc<Plugin>,
    pub terms: Canary,
    window: CallWindow,
}

impl CanaryBuild {
    pub(crate) fn new(plugin: Arc<Plugin>, terms: Canary) -> Self {
        CanaryBuild {
            plugin,
            terms,
            window: CallWindow::default(),
        }
    }
}

/// When each call within a canary's window was made, and whether it failed.
#[derive(Default)]
struct CallWindow(Mutex<VecDeque<(Instant, bool)>>);

impl CallWindow {
    /// Notes one call; whether the failures within the window now pass
    /// `terms`' threshold (the window then starts afresh).
    fn note(&self, terms: &Canary, failed: bool, now: Instant) -> Option<Breach> {
        let mut calls = self.0.lock().unwrap_or_else(|p| p.into_inner());
        calls.push_back((now, failed));
        let window = Duration::from_secs(terms.window_secs);
        while calls
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > window)
        {
            calls.pop_front();
        }
        let made = calls.len() as u64;
        let failures = calls.iter().filter(|(_, failed)| *failed).count() as u64;
        let passed = made >= terms.min_calls.max(1)
            && failures.saturating_mul(PPM) > terms.max_failure_ppm.saturating_mul(made);
        if !passed {
            return None;
        }
        calls.clear();
        Some(Breach {
            plugin: terms.plugin.clone(),
            version: terms.version,
            calls: made,
            failures,
        })
    }
}

/// A canary whose failure rate passed its threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Breach {
    pub plugin: String,
    pub version: u64,
    pub calls: u64,
    pub failures: u64,
}

impl Canaries {
    pub(crate) fn set(&self, builds: HashMap<String, Arc<CanaryBuild>>) {
        *self.by_plugin.write().unwrap_or_else(|p| p.into_inner()) = builds;
    }

    pub(crate) fn get(&self, plugin: &str) -> Option<Arc<CanaryBuild>> {
        let builds = self.by_plugin.read().unwrap_or_else(|p| p.into_inner());
        builds.get(plugin).cloned()
    }

    pub(crate) fn is_empty(&self) -> bool {
        let builds = self.by_plugin.read().unwrap_or_else(|p| p.into_inner());
        builds.is_empty()
    }

    /// Counts a login's calls of canary builds (a failed or skipped step
    /// is a failure, a denial is not); the canaries to roll back.
    pub(crate) fn observe(&self, steps: &[StepReport]) -> Vec<Breach> {
        let now = Instant::now();
        steps
            .iter()
            .filter_map(|step| {
                let build = self.get(&step.name)?;
                (step.version == Some(build.terms.version)).then_some((build, step))
            })
            .filter_map(|(build, step)| {
                let failed = matches!(
                    step.status,
                    StepStatus::Failed { .. } | StepStatus::Skipped { .. }
                );
                build.window.note(&build.terms, failed, now)
            })
            .collect()
    }
}

impl ActionChoice for Canaries {
    fn instead(&self, plugin: &str, user_id: &str) -> Option<Arc<Plugin>> {
        let build = self.get(plugin)?;
        serves(&build.terms, user_id).then(|| build.plugin.clone())
    }
}

/// Whether `terms`' canary serves `user_id`: the same answer on every
/// login and every host, for `share_ppm` in a million of the users.
pub(crate) fn serves(terms: &Canary, user_id: &str) -> bool {
    let digest = Sha256::new()
        .chain_update(terms.plugin.as_bytes())
        .chain_update([0])
        .chain_update(user_id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) % PPM < terms.share_ppm
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(share_ppm: u64) -> Canary {
        Canary {
            plugin: "tier".to_owned(),
            version: 2,
            share_ppm,
            max_failure_ppm: 250_000,
            window_secs: 60,
            min_calls: 4,
            started_at: String::new(),
            started_by: String::new(),
        }
    }

    #[test]
    fn a_canary_serves_its_share_of_users_and_always_the_same_ones() {
        let users: Vec<String> = (0..10_000).map(|i| format!("okta|{i}")).collect();
        let served = |share| users.iter().filter(|u| serves(&terms(share), u)).count();
        assert_eq!(served(0), 0);
        assert_eq!(served(PPM), users.len());
        let tenth = served(PPM / 10);
        assert!((800..1200).contains(&tenth), "{tenth} of 10000 at a tenth");
        // Every host, of every release, must pick the same users, or a user
        // would switch versions from one login to the next: the choice is
        // pinned, not only consistent within this process.
        let first_served: Vec<usize> = (0..60)
            .filter(|i| serves(&terms(PPM / 10), &users[*i]))
            .collect();
        assert_eq!(first_served, [8, 14, 23, 30, 33, 51]);
        // A larger share keeps every user the smaller one served.
        assert!((users.iter()).all(|u| !serves(&terms(PPM / 10), u) || serves(&terms(PPM / 2), u)));
    }

    #[test]
    fn a_canary_is_rolled_back_once_its_window_fails_past_the_threshold() {
        let (window, terms) = (CallWindow::default(), terms(PPM));
        let start = Instant::now();
        // One failure in four is the threshold itself: not past it.
        for failed in [true, false, false, false] {
            assert_eq!(window.note(&terms, failed, start), None);
        }
        let breach = window
            .note(&terms, true, start)
            .expect("two in five is past a quarter");
        assert_eq!((breach.calls, breach.failures), (5, 2));
        // The window starts afresh, and calls older than it do not count.
        for failed in [true, true] {
            assert_eq!(
                window.note(&terms, failed, start),
                None,
                "fewer than min_calls"
            );
        }
        let later = start + Duration::from_secs(61);
        for failed in [true, true, true] {
            assert_eq!(
                window.note(&terms, failed, later),
                None,
                "fewer than min_calls"
            );
        }
        assert!(window.note(&terms, true, later).is_some());
    }
}
