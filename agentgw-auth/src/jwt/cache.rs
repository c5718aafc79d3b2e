//! The verified-token cache.
//!
//! Keys are SHA-256 digests of whole tokens (the token itself is never stored, and a changed
//! byte anywhere in it is a different entry). Entries carry the claims, the provider that
//! verified them, the epoch of that provider's key set, and the instant the token stops being
//! valid (`exp` plus leeway). A hit needs all three to still hold, so entries expire with their
//! token and every entry of a provider goes stale the moment its key set changes.
//!
//! The cache is bounded: a fixed number of shards, each a small map behind its own mutex. A full
//! shard first drops expired entries, then an arbitrary one (the digests are uniformly
//! distributed, so this is random eviction). Only verified tokens are inserted, so a client
//! cannot fill the cache with garbage.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;

use agentgw_core::identity::JwtClaims;
use sha2::{Digest as _, Sha256};

const SHARDS: usize = 16;

/// SHA-256 of a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub(crate) fn of(token: &str) -> Self {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }

    fn shard(&self) -> usize {
        usize::from(self.0[0]) % SHARDS
    }
}

impl Hash for TokenDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already uniformly distributed: hash a slice of it directly.
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[8..16]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

/// A hasher that passes through the `u64` a [`TokenDigest`] writes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// A verified token.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) claims: JwtClaims,
    pub(crate) provider: usize,
    pub(crate) epoch: u64,
    /// Unix seconds from which the token is no longer accepted.
    pub(crate) expires_at: u64,
}

type Shard = HashMap<TokenDigest, Entry, BuildHasherDefault<PassThrough>>;

pub(crate) struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
}

impl TokenCache {
    /// A cache of about `capacity` entries; `0` disables caching.
    pub(crate) fn new(capacity: usize) -> Self {
        let shard_capacity = capacity.div_ceil(SHARDS);
        let shards = (0..if capacity == 0 { 0 } else { SHARDS })
            .map(|_| Mutex::new(Shard::default()))
            .collect();
        TokenCache {
            shards,
            shard_capacity,
        }
    }

    /// The entry for `digest` if it is still valid at `now` and `current_epoch` says its
    /// provider's keys have not changed.
    pub(crate) fn get(
        &self,
        digest: &TokenDigest,
        now: u64,
        current_epoch: impl FnOnce(usize) -> Option<u64>,
    ) -> Option<Entry> {
        let shard = self.shards.get(digest.shard())?;
        let entry = {
            let mut map = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let entry = map.get(digest)?;
            if now >= entry.expires_at {
                map.remove(digest);
                return None;
            }
            entry.clone()
        };
        (current_epoch(entry.provider) == Some(entry.epoch)).then_some(entry)
    }

    pub(crate) fn insert(&self, digest: TokenDigest, entry: Entry, now: u64) {
        let Some(shard) = self.shards.get(digest.shard()) else {
            return;
        };
        let mut map = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= self.shard_capacity && !map.contains_key(&digest) {
            map.retain(|_, e| now < e.expires_at);
            if map.len() >= self.shard_capacity
                && let Some(victim) = map.keys().next().copied()
            {
                map.remove(&victim);
            }
        }
        map.insert(digest, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: u64, expires_at: u64) -> Entry {
        Entry {
            claims: JwtClaims::from_value(serde_json::json!({"sub": "a"})).unwrap(),
            provider: 0,
            epoch,
            expires_at,
        }
    }

    #[test]
    fn hit_needs_same_epoch_and_unexpired_token() {
        let cache = TokenCache::new(100);
        let digest = TokenDigest::of("a.b.c");
        cache.insert(digest, entry(7, 1000), 10);
        assert!(cache.get(&digest, 999, |_| Some(7)).is_some());
        assert!(
            cache.get(&digest, 999, |_| Some(8)).is_none(),
            "keys changed"
        );
        assert!(cache.get(&digest, 999, |_| None).is_none(), "keys gone");
        assert!(
            cache
                .get(&TokenDigest::of("a.b.d"), 999, |_| Some(7))
                .is_none()
        );
        assert!(cache.get(&digest, 1000, |_| Some(7)).is_none(), "expired");
        assert_eq!(cache.len(), 0, "expired entries are dropped");
    }

    #[test]
    fn stays_bounded() {
        let cache = TokenCache::new(64);
        for i in 0..10_000 {
            cache.insert(
                TokenDigest::of(&format!("token-{i}")),
                entry(1, u64::MAX),
                0,
            );
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        let last = TokenDigest::of("token-9999");
        assert!(
            cache.get(&last, 0, |_| Some(1)).is_some(),
            "the newest entry is kept"
        );
    }

    #[test]
    fn zero_capacity_disables() {
        let cache = TokenCache::new(0);
        let digest = TokenDigest::of("t");
        cache.insert(digest, entry(1, u64::MAX), 0);
        assert!(cache.get(&digest, 0, |_| Some(1)).is_none());
    }
}
