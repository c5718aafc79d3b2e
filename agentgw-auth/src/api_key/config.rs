//! The `apiKeyAuthentication` configuration block.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::location::TokenLocation;
use crate::mode::Mode;

/// `apiKeyAuthentication`: API keys from the configuration and/or a file.
///
/// ```yaml
/// apiKeyAuthentication:
///   mode: Strict                       # Strict | Optional | Permissive
///   location: {header: {name: x-api-key}}   # the default; or
///   # location: {header: {name: authorization, prefix: "Bearer "}}
///   keys:
///     - name: ci-bot
///       sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
///       team: platform
///       role: admin
///       allowedModels: [gpt-4o, claude-sonnet-4]
///       expiresAt: 2027-01-01T00:00:00Z
///   file: /etc/agentgw/api-keys.yaml   # `keys:` in the same shape; re-read when it changes
///   reloadInterval: 1s                 # how often the file is checked (the default)
///   passthrough: false                 # keep the key on the upstream request
/// ```
///
/// Keys are hashed (SHA-256) when loaded and compared in constant time; the plain key can be
/// given as `key` (kept in memory only until it is hashed), but `sha256` keeps it out of the
/// configuration entirely: `printf %s "$KEY" | sha256sum`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeyConfig {
    /// What happens to requests without a key or with an unknown one.
    #[serde(default)]
    pub mode: Mode,
    /// Where the key is read.
    #[serde(default = "TokenLocation::x_api_key")]
    pub location: TokenLocation,
    /// Keys in the configuration.
    #[serde(default)]
    pub keys: Vec<ApiKeyEntry>,
    /// A YAML or JSON file with `keys:` in the same shape, re-read when it changes; removing a
    /// key from it revokes the key without a restart.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// How often `file` is checked for changes.
    #[serde(
        default = "default_reload_interval",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub reload_interval: Duration,
    /// Keep the key on the upstream request (by default it is removed).
    #[serde(default)]
    pub passthrough: bool,
}

/// One API key and its metadata. Everything but the key is visible to policies as `apiKey.*`
/// (`apiKey.name`, `apiKey.team`, `apiKey.role`, `apiKey.allowedModels`, `apiKey.expiresAt` and
/// each `metadata` entry).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeyEntry {
    /// A unique name (logs, audit, `apiKey.name`).
    pub name: String,
    /// The key itself. Give either `key` or `sha256`.
    #[serde(default)]
    pub key: Option<SecretString>,
    /// Hex SHA-256 of the key.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Team (`apiKey.team`).
    #[serde(default)]
    pub team: Option<String>,
    /// Role (`apiKey.role`).
    #[serde(default)]
    pub role: Option<String>,
    /// Models the key may use (`apiKey.allowedModels`), for policies to enforce.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// RFC 3339 instant from which the key is rejected (`2027-01-01T00:00:00Z`).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Further fields for policies (`apiKey.<field>`).
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// The content of `apiKeyAuthentication.file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyFile {
    #[serde(default)]
    pub(crate) keys: Vec<ApiKeyEntry>,
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(1)
}

impl ApiKeyConfig {
    /// A configuration in `mode` with no keys, reading `x-api-key`.
    pub fn new(mode: Mode) -> Self {
        ApiKeyConfig {
            mode,
            location: TokenLocation::x_api_key(),
            keys: Vec::new(),
            file: None,
            reload_interval: default_reload_interval(),
            passthrough: false,
        }
    }

    /// Adds a key.
    pub fn key(mut self, entry: ApiKeyEntry) -> Self {
        self.keys.push(entry);
        self
    }

    /// Also reads keys from `path`, re-read when it changes.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Sets how often the key file is checked for changes.
    pub fn reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// Reads the key from `location`.
    pub fn location(mut self, location: TokenLocation) -> Self {
        self.location = location;
        self
    }

    /// Keeps the key on the upstream request.
    pub fn passthrough(mut self, passthrough: bool) -> Self {
        self.passthrough = passthrough;
        self
    }
}

impl ApiKeyEntry {
    /// A key named `name` with the plain `key`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        ApiKeyEntry {
            key: Some(SecretString::from(key.into())),
            ..ApiKeyEntry::hashed(name, "")
        }
    }

    /// A key named `name` given by the hex SHA-256 of the key.
    pub fn hashed(name: impl Into<String>, sha256_hex: impl Into<String>) -> Self {
        let sha256 = sha256_hex.into();
        ApiKeyEntry {
            name: name.into(),
            key: None,
            sha256: (!sha256.is_empty()).then_some(sha256),
            team: None,
            role: None,
            allowed_models: None,
            expires_at: None,
            metadata: Map::new(),
        }
    }

    /// Sets the team.
    pub fn team(mut self, team: impl Into<String>) -> Self {
        self.team = Some(team.into());
        self
    }

    /// Sets the role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// Sets the models the key may use.
    pub fn allowed_models<I: IntoIterator<Item = S>, S: Into<String>>(mut self, models: I) -> Self {
        self.allowed_models = Some(models.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the RFC 3339 instant from which the key is rejected.
    pub fn expires_at(mut self, instant: impl Into<String>) -> Self {
        self.expires_at = Some(instant.into());
        self
    }

    /// Adds a metadata field.
    pub fn metadata(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(field.into(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_block() {
        let config: ApiKeyConfig = serde_saphyr::from_str(
            r#"
mode: Optional
location: {header: {name: authorization, prefix: "Bearer "}}
keys:
  - name: ci-bot
    key: sk-test-123
    team: platform
    allowedModels: [gpt-4o]
    metadata: {tier: gold}
file: /etc/keys.yaml
reloadInterval: 5s
"#,
        )
        .unwrap();
        assert_eq!(config.mode, Mode::Optional);
        assert_eq!(config.location, TokenLocation::bearer());
        assert_eq!(config.keys[0].name, "ci-bot");
        assert_eq!(config.keys[0].metadata["tier"], "gold");
        assert_eq!(config.reload_interval, Duration::from_secs(5));
        assert!(serde_saphyr::from_str::<ApiKeyConfig>("keys: [{name: a, colour: b}]").is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let entry = ApiKeyEntry::new("ci-bot", "sk-very-secret-value");
        let config = ApiKeyConfig::new(Mode::Strict).key(entry);
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-very-secret-value"), "{debug}");
        assert!(debug.contains("ci-bot"));
    }
}
