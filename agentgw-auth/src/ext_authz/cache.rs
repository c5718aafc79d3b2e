//! The optional decision cache.
//!
//! A key is the SHA-256 of the configured request attributes, each written with a tag and a
//! length so that no two different attribute lists hash the same input. Entries live for the
//! configured TTL. The cache is bounded: a fixed number of shards, each a map behind its own
//! mutex; a full shard first drops expired entries, then an arbitrary one (keys are uniformly
//! distributed, so this is random eviction). Only decisions of the service are inserted, never
//! failures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::request::Parts;
use sha2::{Digest as _, Sha256};

use agentgw_core::identity::ClientAddr;

use super::config::CacheKeyPart;
use super::decision::Verdict;
use super::input::{self, BodyPrefix};

const SHARDS: usize = 16;

/// The SHA-256 of a request's key attributes.
pub(crate) type CacheKey = [u8; 32];

struct Entry {
    verdict: Verdict,
    expires: Instant,
}

pub(crate) struct DecisionCache {
    parts: Vec<CacheKeyPart>,
    ttl: Duration,
    per_shard: usize,
    shards: Vec<Mutex<HashMap<CacheKey, Entry>>>,
}

impl DecisionCache {
    pub(crate) fn new(parts: Vec<CacheKeyPart>, ttl: Duration, max_entries: usize) -> Self {
        let shards = SHARDS.min(max_entries.max(1));
        DecisionCache {
            parts,
            ttl,
            per_shard: max_entries.div_ceil(shards).max(1),
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// The key of a request.
    pub(crate) fn key(&self, parts: &Parts, body: Option<&BodyPrefix>) -> CacheKey {
        let mut hasher = Sha256::new();
        let mut field = |tag: u8, bytes: &[u8]| {
            hasher.update([tag]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        for part in &self.parts {
            match part {
                CacheKeyPart::Method => field(1, parts.method.as_str().as_bytes()),
                CacheKeyPart::Host => field(2, input::host(parts).as_bytes()),
                CacheKeyPart::Path => field(3, input::path_and_query(parts).as_bytes()),
                CacheKeyPart::SourceIp => match parts.extensions.get::<ClientAddr>() {
                    Some(ClientAddr(addr)) => field(4, addr.ip().to_string().as_bytes()),
                    None => field(5, b""),
                },
                CacheKeyPart::Body => match body {
                    Some(prefix) => field(6, &prefix.bytes),
                    None => field(7, b""),
                },
                CacheKeyPart::Header(name) => {
                    field(8, name.as_str().as_bytes());
                    for value in parts.headers.get_all(name) {
                        field(9, value.as_bytes());
                    }
                    field(10, b"");
                }
            }
        }
        hasher.finalize().into()
    }

    pub(crate) fn get(&self, key: &CacheKey) -> Option<Verdict> {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.get(key)?;
        (entry.expires > Instant::now()).then(|| entry.verdict.clone())
    }

    pub(crate) fn insert(&self, key: CacheKey, verdict: Verdict) {
        let now = Instant::now();
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, entry| entry.expires > now);
            let victim = shard.keys().next().copied();
            if let Some(victim) = victim.filter(|_| shard.len() >= self.per_shard) {
                shard.remove(&victim);
            }
        }
        shard.insert(
            key,
            Entry {
                verdict,
                expires: now + self.ttl,
            },
        );
    }

    fn shard(&self, key: &CacheKey) -> &Mutex<HashMap<CacheKey, Entry>> {
        &self.shards[usize::from(key[0]) % self.shards.len()]
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ext_authz::decision::Allow;

    fn parts(auth: &str, path: &str) -> Parts {
        http::Request::builder()
            .uri(path)
            .header("authorization", auth)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn allow() -> Verdict {
        Verdict::Allow(Arc::new(Allow::default()))
    }

    fn by_token() -> Vec<CacheKeyPart> {
        vec![CacheKeyPart::Header(http::header::AUTHORIZATION)]
    }

    #[test]
    fn key_covers_only_the_configured_attributes() {
        let cache = DecisionCache::new(by_token(), Duration::from_secs(60), 10);
        assert_eq!(
            cache.key(&parts("a", "/x"), None),
            cache.key(&parts("a", "/y"), None)
        );
        assert_ne!(
            cache.key(&parts("a", "/x"), None),
            cache.key(&parts("b", "/x"), None)
        );
        let both = DecisionCache::new(
            vec![
                CacheKeyPart::Header(http::header::AUTHORIZATION),
                CacheKeyPart::Path,
            ],
            Duration::from_secs(60),
            10,
        );
        assert_ne!(
            both.key(&parts("a", "/x"), None),
            both.key(&parts("a", "/y"), None)
        );
    }

    #[test]
    fn values_cannot_be_shifted_between_attributes() {
        let cache = DecisionCache::new(
            vec![CacheKeyPart::Method, CacheKeyPart::Path],
            Duration::from_secs(60),
            10,
        );
        let a = http::Request::builder()
            .method("GE")
            .uri("/T/x")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let b = http::Request::builder()
            .method("GET")
            .uri("/x")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_ne!(cache.key(&a, None), cache.key(&b, None));
    }

    #[test]
    fn entries_expire() {
        let cache = DecisionCache::new(by_token(), Duration::from_millis(30), 10);
        let key = cache.key(&parts("a", "/"), None);
        cache.insert(key, allow());
        assert!(cache.get(&key).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn size_is_bounded() {
        let cache = DecisionCache::new(by_token(), Duration::from_secs(60), 32);
        for i in 0..1000 {
            cache.insert(cache.key(&parts(&format!("t{i}"), "/"), None), allow());
        }
        assert!(cache.len() <= 32, "{} entries", cache.len());
        let tiny = DecisionCache::new(by_token(), Duration::from_secs(60), 1);
        tiny.insert(tiny.key(&parts("a", "/"), None), allow());
        tiny.insert(tiny.key(&parts("b", "/"), None), allow());
        assert_eq!(tiny.len(), 1);
        assert!(tiny.get(&tiny.key(&parts("b", "/"), None)).is_some());
    }
}
