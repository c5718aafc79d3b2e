//! `pinning`: tool definitions remembered at first sight, or read from a reviewed pin file,
//! so that a changed one is caught.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{FlagAction, yes};

/// `pinning`: the first definition of each tool (per upstream) is remembered by its SHA-256; a
/// later `tools/list` with a different definition is flagged.
///
/// With `file`, the pins come from a reviewed [pin file](crate::pins) instead (the same file
/// for every replica, written by `agentgw pin`): nothing is learned from traffic, a definition
/// that differs from its pin is flagged on every listing, and a tool the file does not pin is
/// handled by `unpinned`.
///
/// ```yaml
/// pinning:
///   file: /etc/agentgw/pins/pins.yaml
///   action: Remove          # a changed definition (the default)
///   unpinned: Remove        # a tool the file does not pin (the default)
///   reloadInterval: 10s     # how often the file is checked for a new version (the default)
/// ```
///
/// [`Default`] is the value of `pinning: {}`: on, learned in memory, changed tools removed, at
/// most 10000 tools (the same as an absent block).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PinningConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What happens to a changed definition.
    #[serde(default)]
    pub action: FlagAction,
    /// The most tools remembered over all upstreams (default 10000); beyond it new tools are
    /// withheld rather than left unpinned.
    #[serde(default)]
    pub max_tools: Option<usize>,
    /// A reviewed pin file (see [`crate::pins`]), read at construction and again whenever it
    /// changes; a relative path is relative to the working directory. Without it, pins are
    /// learned in memory.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// With `file`: what happens to a listed tool the file does not pin (default `Remove`:
    /// withheld and audited under rule `unpinned-tool`; `Allow`: listed and audited, never
    /// pinned).
    #[serde(default)]
    pub unpinned: Option<FlagAction>,
    /// With `file`: how often the file is checked for a new version (default 10s; `0s`: read
    /// once). A new version applies from the next `tools/list`; one that does not load is
    /// logged and the previous one stays.
    #[serde(default, with = "agentgw_core::config::option_duration")]
    pub reload_interval: Option<Duration>,
    /// Learned pins shared by every replica through Redis (cargo feature `redis`): the first
    /// definition any replica sees is pinned for all of them. Not with `file`.
    #[serde(default)]
    pub redis: Option<RedisPinsConfig>,
}

/// The key of a Kubernetes Secret holding the Redis URL when `secretRef` names none.
pub const REDIS_SECRET_KEY: &str = "url";

/// `pinning.redis`: where the shared pins live.
///
/// ```yaml
/// pinning:
///   redis:
///     url: redis://redis.ai-system.svc:6379/0   # rediss:// for TLS
///     keyPrefix: "agentgw:pins:"                  # one hash per upstream: PREFIX + route name
///     timeout: 1s                                 # after it, tools are withheld (fail closed)
/// ```
///
/// A URL with a password belongs in a secret, not in the configuration: `secretRef` instead
/// of `url` reads it once at start-up from an environment variable, a file, or a Kubernetes
/// Secret (key `url` unless given), as every secret of the family is named
/// ([`SecretRef`](agentgw_core::config::SecretRef)):
///
/// ```yaml
/// pinning:
///   redis:
///     secretRef: {name: redis-pins, key: url}     # SECRETS_DIR/redis-pins/url
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisPinsConfig {
    /// The Redis URL (`redis://[user:password@]host:port/db`, `rediss://` for TLS). Its
    /// password, if any, is not printed by `Debug`. Exactly one of `url` and `secretRef`.
    #[serde(default)]
    pub url: Option<String>,
    /// Where the Redis URL is read from, once, when the layer is built (a Kubernetes Secret's
    /// default key is `url`). Exactly one of `url` and `secretRef`.
    #[serde(default)]
    pub secret_ref: Option<agentgw_core::config::SecretRef>,
    /// The prefix of the hash of each upstream (default `agentgw:pins:`).
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// How long a read or write of pins may take (default 1s); past it, or when Redis is
    /// unreachable, tools are withheld and audited (rule `pin-store-unavailable`).
    #[serde(default, with = "agentgw_core::config::option_duration")]
    pub timeout: Option<Duration>,
}

impl RedisPinsConfig {
    /// Shared pins at `url`, with the default prefix and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            secret_ref: None,
            key_prefix: None,
            timeout: None,
        }
    }

    /// Shared pins at the URL `secret` holds (read when the layer is built), with the default
    /// prefix and timeout.
    pub fn from_secret(secret: agentgw_core::config::SecretRef) -> Self {
        Self {
            url: None,
            secret_ref: Some(secret),
            key_prefix: None,
            timeout: None,
        }
    }

    /// The same settings with a Kubernetes Secret read from `dir` (the directory the Secrets
    /// are mounted in); see [`SecretRef::in_dir`](agentgw_core::config::SecretRef::in_dir).
    #[must_use]
    pub fn secrets_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.secret_ref = self.secret_ref.map(|secret| secret.in_dir(dir));
        self
    }

    /// Sets `keyPrefix`.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// Sets `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl std::fmt::Debug for RedisPinsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `scheme://user:password@host`: everything before the `@` may be a credential.
        let url = self.url.as_ref().map(|url| match url.rsplit_once('@') {
            Some((_, host)) => format!("<redacted>@{host}"),
            None => url.clone(),
        });
        f.debug_struct("RedisPinsConfig")
            .field("url", &url)
            .field(
                "secret_ref",
                &self
                    .secret_ref
                    .as_ref()
                    .map(|secret| secret.describe(REDIS_SECRET_KEY)),
            )
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for PinningConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            action: FlagAction::default(),
            max_tools: None,
            file: None,
            unpinned: None,
            reload_interval: None,
            redis: None,
        }
    }
}

impl PinningConfig {
    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `action`.
    #[must_use]
    pub fn action(mut self, action: FlagAction) -> Self {
        self.action = action;
        self
    }

    /// Sets `maxTools`.
    #[must_use]
    pub fn max_tools(mut self, max_tools: usize) -> Self {
        self.max_tools = Some(max_tools);
        self
    }

    /// Sets `file`.
    #[must_use]
    pub fn file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Sets `unpinned`.
    #[must_use]
    pub fn unpinned(mut self, action: FlagAction) -> Self {
        self.unpinned = Some(action);
        self
    }

    /// Sets `redis`.
    #[must_use]
    pub fn redis(mut self, redis: RedisPinsConfig) -> Self {
        self.redis = Some(redis);
        self
    }

    /// Sets `reloadInterval`.
    #[must_use]
    pub fn reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = Some(interval);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::seed;

    #[test]
    fn builders_match_the_yaml() {
        let built = PinningConfig::default()
            .action(FlagAction::Allow)
            .max_tools(50);
        let parsed = seed("pinning: {action: Allow, maxTools: 50}\n");
        assert_eq!(parsed.pinning, Some(built));
        assert_eq!(
            seed("pinning: {}\n").pinning,
            Some(PinningConfig::default())
        );
        assert!(!PinningConfig::default().enabled(false).enabled);
        let built = PinningConfig::default()
            .file("/etc/agentgw/pins.yaml")
            .unpinned(FlagAction::Allow)
            .reload_interval(std::time::Duration::from_secs(30));
        let parsed =
            seed("pinning: {file: /etc/agentgw/pins.yaml, unpinned: Allow, reloadInterval: 30s}\n");
        assert_eq!(parsed.pinning, Some(built));
        let built = PinningConfig::default().redis(
            RedisPinsConfig::new("redis://:hunter2@redis:6379")
                .key_prefix("gw:")
                .timeout(std::time::Duration::from_millis(500)),
        );
        let parsed = seed(
            "pinning: {redis: {url: \"redis://:hunter2@redis:6379\", keyPrefix: \"gw:\", timeout: 500ms}}\n",
        );
        assert_eq!(parsed.pinning, Some(built));
        let printed = format!("{parsed:?}");
        assert!(
            !printed.contains("hunter2") && printed.contains("redis:6379"),
            "{printed}"
        );

        // The URL from a secret instead: the builder, the YAML and what `Debug` shows.
        let secret = agentgw_core::config::SecretRef::Kubernetes(
            agentgw_core::config::SecretName::new("redis-pins"),
        );
        let built = PinningConfig::default().redis(RedisPinsConfig::from_secret(secret.clone()));
        let parsed = seed("pinning: {redis: {secretRef: {name: redis-pins}}}\n");
        assert_eq!(parsed.pinning, Some(built));
        let printed = format!("{parsed:?}");
        assert!(
            printed.contains("secret:redis-pins (/var/run/secrets/agentgw/redis-pins/url)"),
            "{printed}"
        );
        let moved = RedisPinsConfig::from_secret(secret).secrets_dir("/etc/agentgw/secrets");
        assert!(
            format!("{moved:?}").contains("/etc/agentgw/secrets/redis-pins/url"),
            "{moved:?}"
        );
    }
}
