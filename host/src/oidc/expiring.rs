//! Entries that expire after a fixed time: the authorization codes waiting to
//! be exchanged, and the codes already exchanged (to spot a replay).
//!
//! Bounded, because a flood must not grow memory without end: when full, the
//! oldest entry makes room (a code is good for a minute at most, so the oldest
//! is the nearest to expiry anyway). Every operation is O(1) amortised:
//! entries expire in insertion order (one time-to-live for all), so expired
//! ones are dropped from the front of a queue, never by scanning the map.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct Expiring<T> {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Entries<T>>,
}

struct Entries<T> {
    by_key: HashMap<String, (Instant, T)>,
    /// Keys in insertion order, so in expiry order. A key taken early stays
    /// here until its turn comes; the map no longer has it then.
    order: VecDeque<(Instant, String)>,
}

/// The most entries of one kind held at once.
pub(crate) const MAX_EXPIRING_ENTRIES: usize = 100_000;

impl<T> Expiring<T> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, MAX_EXPIRING_ENTRIES)
    }

    fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        Expiring {
            ttl,
            capacity,
            inner: Mutex::new(Entries {
                by_key: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `value` under `key`, dropping what expired and, when full, the
    /// oldest entry.
    pub(crate) fn insert(&self, key: String, value: T) {
        let now = Instant::now();
        let mut entries = self.lock();
        let Entries { by_key, order } = &mut *entries;
        while let Some((expires, _)) = order.front() {
            if *expires > now && order.len() < self.capacity {
                break;
            }
            if let Some((expires, oldest)) = order.pop_front() {
                // Only if the map still holds that very entry (not a newer one
                // under a reused key).
                if by_key.get(&oldest).is_some_and(|(e, _)| *e == expires) {
                    by_key.remove(&oldest);
                }
            }
        }
        let expires = now + self.ttl;
        order.push_back((expires, key.clone()));
        by_key.insert(key, (expires, value));
    }

    /// The entry under `key` if it has not expired; gone afterwards either way.
    pub(crate) fn take(&self, key: &str) -> Option<T> {
        let (expires, value) = self.lock().by_key.remove(key)?;
        (expires > Instant::now()).then_some(value)
    }

    /// A copy of the entry under `key` if it has not expired; it stays.
    pub(crate) fn get(&self, key: &str) -> Option<T>
    where
        T: Clone,
    {
        let entries = self.lock();
        let (expires, value) = entries.by_key.get(key)?;
        (*expires > Instant::now()).then(|| value.clone())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let entries = self.lock();
        entries.by_key.len().max(entries.order.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_taken_once_and_expire() {
        let codes = Expiring::new(Duration::from_millis(50));
        codes.insert("a".into(), 1);
        codes.insert("b".into(), 2);
        assert_eq!(codes.get("a"), Some(1));
        assert_eq!(codes.take("a"), Some(1));
        assert_eq!(codes.take("a"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(codes.take("b"), None, "expired");
    }

    #[test]
    fn a_full_store_evicts_the_oldest_and_stays_bounded() {
        let codes = Expiring::with_capacity(Duration::from_secs(60), 100);
        for i in 0..10_000 {
            codes.insert(format!("flood-{i}"), i);
        }
        assert!(codes.len() <= 100, "{} entries held", codes.len());
        codes.insert("real".into(), -1);
        assert_eq!(codes.take("real"), Some(-1), "the newest entry always fits");
        assert_eq!(codes.get("flood-0"), None, "the oldest made room");
        assert_eq!(codes.get("flood-9999"), Some(9999));
    }

    #[test]
    fn taken_entries_do_not_pile_up_in_the_queue() {
        let codes = Expiring::with_capacity(Duration::from_secs(60), 10);
        for i in 0..1000 {
            codes.insert(format!("k{i}"), i);
            assert_eq!(codes.take(&format!("k{i}")), Some(i));
        }
        assert!(codes.len() <= 10);
    }
}
