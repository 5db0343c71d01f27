//! Caches by number. A response future carries its cache's number, not a handle on it, and
//! looks the cache up only after a `401`: a request then bumps no reference count but its
//! header's (a handle would cost an atomic read-modify-write per request, and another when
//! the future drops).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, Weak};

use super::{CredentialCache, Shared};

/// The number of a live cache. Never reused, so a stale number finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CacheKey(u64);

static NEXT: AtomicU64 = AtomicU64::new(1);

static CACHES: LazyLock<Mutex<HashMap<u64, Weak<Shared>>>> = LazyLock::new(Mutex::default);

/// Numbers the cache being made (see `Arc::new_cyclic`) and lists it until [`unregister`]
/// (called when it drops).
pub(super) fn register(shared: &Weak<Shared>) -> CacheKey {
    let key = NEXT.fetch_add(1, Ordering::Relaxed);
    crate::sync::lock(&CACHES).insert(key, Weak::clone(shared));
    CacheKey(key)
}

pub(super) fn unregister(key: CacheKey) {
    crate::sync::lock(&CACHES).remove(&key.0);
}

impl CacheKey {
    /// The cache numbered so, if it is still alive.
    pub(crate) fn find(self) -> Option<CredentialCache> {
        // The upgraded handle leaves the lock's scope before it can drop: a last handle
        // dropping unregisters, which takes the lock again.
        let shared = crate::sync::lock(&CACHES)
            .get(&self.0)
            .and_then(Weak::upgrade);
        shared.map(|shared| CredentialCache { shared })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::RefreshPolicy;
    use crate::source::{ApiKey, SharedTokenSource};

    fn cache() -> CredentialCache {
        let source = ApiKey::new("key").map(SharedTokenSource::from);
        CredentialCache::new(source.expect("a valid key"), RefreshPolicy::default())
    }

    #[test]
    fn a_cache_is_found_while_alive_and_forgotten_once_dropped() {
        let (first, second) = (cache(), cache());
        assert_ne!(first.key(), second.key());
        let found = first.key().find().map(|found| found.shared);
        assert!(found.is_some_and(|found| Arc::ptr_eq(&found, &first.shared)));

        let key = first.key();
        drop(first);
        assert!(key.find().is_none());
        assert!(!crate::sync::lock(&CACHES).contains_key(&key.0));
        assert!(second.key().find().is_some());
    }

    #[test]
    fn a_handle_found_keeps_the_cache_listed_until_it_drops() {
        let cache = cache();
        let key = cache.key();
        let found = key.find();
        drop(cache);
        assert!(key.find().is_some(), "the found handle is the last one now");
        // Dropping the last handle unregisters, taking the lock `find` took and released.
        drop(found);
        assert!(key.find().is_none());
    }
}
