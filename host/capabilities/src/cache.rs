//! Auth0's `api.cache` (`claimsmith:plugin/cache`): short-lived strings an
//! action keeps across its calls, held by the host for each loaded plugin
//! ([`ActionCache`]) since every call is a fresh instance.
//!
//! Each host keeps its own, in memory: Auth0's cache is best effort too ("an
//! entry may not be available in later transactions"), and what Actions
//! cache (a Management API token, an upstream answer) is worth less than a
//! database round trip on every call would cost. An entry never reaches
//! another action: each plugin has its own cache, and a reload of the
//! plugin (a hot swap) starts it empty. Auth0's limits hold per action.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use claimsmith_config::PluginSpec;
use claimsmith_core::World;
use claimsmith_wit::action::claimsmith::plugin::cache as wit;
use wasmtime::component::{HasSelf, Linker};

use crate::{CallContext, Capability, CapabilityView, Has};

/// Auth0's Actions cache limits.
pub const MAX_KEY_BYTES: usize = 64;
pub const MAX_VALUE_BYTES: usize = 4096;
pub const MAX_ENTRIES: usize = 20;
/// Keys and values together, per action.
pub const MAX_TOTAL_BYTES: usize = 8192;
pub const DEFAULT_TTL_MS: u64 = 15 * 60 * 1000;
pub const MAX_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// One plugin's entries, shared by its calls.
#[derive(Debug, Clone, Default)]
pub struct ActionCache(Arc<Mutex<HashMap<String, wit::Entry>>>);

impl ActionCache {
    /// The live entry at `key` at `now` (ms).
    fn get(&self, key: &str, now: u64) -> Option<wit::Entry> {
        let entries = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(key)
            .filter(|entry| entry.expires_at > now)
            .cloned()
    }

    fn set(
        &self,
        key: String,
        value: String,
        expires_at: u64,
        now: u64,
    ) -> Result<wit::Entry, wit::CacheError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(wit::CacheError::InvalidKey);
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(wit::CacheError::ValueTooLarge);
        }
        let mut entries = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|_, entry| entry.expires_at > now);
        let others = entries.iter().filter(|(k, _)| **k != key);
        let count = others.clone().count() + 1;
        let bytes = others
            .map(|(k, entry)| k.len() + entry.value.len())
            .sum::<usize>()
            + key.len()
            + value.len();
        if count > MAX_ENTRIES || bytes > MAX_TOTAL_BYTES {
            return Err(wit::CacheError::CacheFull);
        }
        let entry = wit::Entry { value, expires_at };
        entries.insert(key, entry.clone());
        Ok(entry)
    }

    fn delete(&self, key: &str) -> bool {
        let mut entries = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.remove(key).is_some()
    }
}

/// When an entry set at `now` expires: the earlier of `ttl` and
/// `expires_at`, 15 minutes when neither is given, at most 24 hours.
fn expiry(now: u64, ttl: Option<u64>, expires_at: Option<u64>) -> Result<u64, wit::CacheError> {
    let by_ttl = ttl.map(|ttl| now.saturating_add(ttl));
    let asked = match (by_ttl, expires_at) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => now.saturating_add(DEFAULT_TTL_MS),
    };
    if asked <= now {
        return Err(wit::CacheError::InvalidLifetime);
    }
    Ok(asked.min(now.saturating_add(MAX_TTL_MS)))
}

/// One call's view of its plugin's cache, at the call's clock.
pub struct CacheCapability {
    cache: ActionCache,
    /// Milliseconds since the Unix epoch: pinned in golden cases.
    now: u64,
}

impl wit::Host for CacheCapability {
    fn get(&mut self, key: String) -> Option<wit::Entry> {
        self.cache.get(&key, self.now)
    }

    fn set(
        &mut self,
        key: String,
        value: String,
        ttl_ms: Option<u64>,
        expires_at: Option<u64>,
    ) -> Result<wit::Entry, wit::CacheError> {
        let expires_at = expiry(self.now, ttl_ms, expires_at)?;
        self.cache.set(key, value, expires_at, self.now)
    }

    fn delete(&mut self, key: String) -> bool {
        self.cache.delete(&key)
    }
}

/// Only actions import `cache`.
impl Capability for CacheCapability {
    /// The plugin's own cache, shared by its calls and no other plugin's.
    type Grant = ActionCache;

    fn grant(_plugin: &PluginSpec) -> ActionCache {
        ActionCache::default()
    }

    fn link<T: CapabilityView>(linker: &mut Linker<T>, world: World) -> wasmtime::Result<()> {
        match world {
            World::PostLoginAction | World::CredentialsExchange => {
                wit::add_to_linker::<T, HasSelf<CacheCapability>>(linker, |state: &mut T| {
                    state.capabilities().get()
                })
            }
            World::ProfileFetcher => Ok(()),
        }
    }

    fn prepare(cache: &ActionCache, call: &mut CallContext<'_>) -> Self {
        let now = match call.pinned_clock {
            Some(seconds) => seconds.saturating_mul(1000),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| {
                    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
                }),
        };
        CacheCapability {
            cache: cache.clone(),
            now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_the_earlier_lifetime_within_the_bounds() {
        assert_eq!(expiry(1000, None, None), Ok(1000 + DEFAULT_TTL_MS));
        assert_eq!(expiry(1000, Some(500), Some(1200)), Ok(1200));
        assert_eq!(expiry(1000, Some(100), Some(5000)), Ok(1100));
        assert_eq!(expiry(1000, Some(u64::MAX), None), Ok(1000 + MAX_TTL_MS));
        assert_eq!(
            expiry(1000, Some(0), None),
            Err(wit::CacheError::InvalidLifetime)
        );
        assert_eq!(
            expiry(1000, None, Some(999)),
            Err(wit::CacheError::InvalidLifetime)
        );
    }

    #[test]
    fn a_value_is_read_back_until_it_expires_and_deleted_on_request() {
        let cache = ActionCache::default();
        cache.set("token".into(), "abc".into(), 2000, 1000).unwrap();
        assert_eq!(
            cache.get("token", 1999).map(|e| e.value),
            Some("abc".into())
        );
        assert!(cache.get("token", 2000).is_none(), "expired");
        cache.set("token".into(), "def".into(), 3000, 1000).unwrap();
        assert!(cache.delete("token"));
        assert!(!cache.delete("token"));
        assert!(cache.get("token", 1000).is_none());
    }

    #[test]
    fn auth0s_limits_hold_per_action() {
        let cache = ActionCache::default();
        let set = |key: &str, value: &str| cache.set(key.into(), value.into(), 10_000, 0).err();
        assert_eq!(set("", "x"), Some(wit::CacheError::InvalidKey));
        assert_eq!(set(&"k".repeat(65), "x"), Some(wit::CacheError::InvalidKey));
        assert_eq!(
            set("k", &"v".repeat(4097)),
            Some(wit::CacheError::ValueTooLarge)
        );
        for n in 0..MAX_ENTRIES {
            assert_eq!(set(&format!("key{n}"), "v"), None);
        }
        assert_eq!(set("one-more", "v"), Some(wit::CacheError::CacheFull));
        // Replacing an entry is not one more.
        assert_eq!(set("key0", "w"), None);
        // Nor may keys and values pass 8 KiB together.
        let cache = ActionCache::default();
        cache.set("a".into(), "v".repeat(4096), 10_000, 0).unwrap();
        assert_eq!(
            cache.set("b".into(), "v".repeat(4096), 10_000, 0).err(),
            Some(wit::CacheError::CacheFull)
        );
        // Expired entries make room.
        let room = ActionCache::default();
        room.set("old".into(), "v".repeat(4096), 10, 0).unwrap();
        room.set("new".into(), "v".repeat(4096), 10_000, 20)
            .unwrap();
        room.set("newer".into(), "v".repeat(3000), 10_000, 20)
            .unwrap();
    }

    #[test]
    fn each_plugin_has_its_own_entries() {
        let mine = ActionCache::default();
        let theirs = ActionCache::default();
        mine.set("k".into(), "mine".into(), 10_000, 0).unwrap();
        assert!(theirs.get("k", 0).is_none());
    }
}
