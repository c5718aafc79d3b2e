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
///       allowedModels: [gpt-4o, claude-sonnet-4]   # data for policies (apiKey.allowedModels)
///       expiresAt: 2027-01-01T00:00:00Z   # refused from then on: 401 expired_api_key
///       routes: [openai]                  # usable on these routes only: 403 otherwise
///       models: [gpt-4o, "gpt-4o-mini*"]  # may request only these models: 403 otherwise
///   file: /etc/agentgw/api-keys.yaml   # `keys:` in the same shape; re-read when it changes
///   reloadInterval: 1s                 # how often the file is checked (the default)
///   passthrough: false                 # keep the key on the upstream request
/// ```
///
/// Keys are hashed (SHA-256) when loaded and compared in constant time; the plain key can be
/// given as `key` (kept in memory only until it is hashed), but `sha256` keeps it out of the
/// configuration entirely: `printf %s "$KEY" | sha256sum`.
///
/// In code, start from [`ApiKeyConfig::default`] and set fields with the builders named after
/// them:
///
/// ```
/// use agentgw_auth::api_key::{ApiKeyConfig, ApiKeyEntry};
/// use agentgw_auth::{Mode, TokenLocation};
///
/// let config = ApiKeyConfig::default()
///     .mode(Mode::Optional)
///     .location(TokenLocation::bearer())
///     .key(ApiKeyEntry::new("ci-bot", "sk-example").team("platform"));
/// assert_eq!(config.keys.len(), 1);
/// ```
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
    /// How often `file` is checked for changes, by a task on the Tokio runtime the layer is
    /// built in; `0s` reads the file once and needs no runtime.
    #[serde(
        default = "default_reload_interval",
        deserialize_with = "agentgw_core::config::duration::deserialize"
    )]
    pub reload_interval: Duration,
    /// Keep the key on the upstream request (by default it is removed).
    #[serde(default)]
    pub passthrough: bool,
}

/// One API key and its metadata. Everything but the key is visible to policies as `apiKey.*`
/// (`apiKey.name`, `apiKey.team`, `apiKey.role`, `apiKey.allowedModels`, `apiKey.expiresAt`,
/// `apiKey.routes`, `apiKey.models` and each `metadata` entry).
///
/// Three fields scope what the key may do, enforced by the layer itself:
///
/// - `expiresAt`: from this instant on the key is refused (`401`, `expired_api_key`);
/// - `routes`: the names of the routes the key may be used on (the layer's
///   [`route`](super::ApiKeyLayer::route)); elsewhere it is refused (`403`,
///   `api_key_route_not_allowed`). Absent: every route;
/// - `models`: the models the key may request, by the `model` field of the JSON request body,
///   exactly or by a prefix ending in `*` (`gpt-4o*`; `*` alone allows any). A request naming
///   another model, or a request body without a `model`, is refused (`403`,
///   `api_key_model_not_allowed`); a request without a body and the messages of an MCP route
///   name no model and pass. Absent: every model, and the body is not read for this key.
///
/// `allowedModels`, unlike `models`, is only data for policies (`apiKey.allowedModels`).
///
/// `Default` is an entry without name and key, for the builders:
/// `ApiKeyEntry::default().name("ci-bot").sha256(HEX).team("platform")`.
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// Names of the routes the key may be used on (`apiKey.routes`); `None`: every route.
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Models the key may request (`apiKey.models`): exact ids, or prefixes ending in `*`;
    /// `None`: every model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
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

impl Default for ApiKeyConfig {
    /// `Strict`, no keys, the key read from `x-api-key`, a key file checked every second,
    /// keys removed from the upstream request. Building a layer from it reports the missing
    /// keys (`keys`).
    fn default() -> Self {
        ApiKeyConfig {
            mode: Mode::default(),
            location: TokenLocation::x_api_key(),
            keys: Vec::new(),
            file: None,
            reload_interval: default_reload_interval(),
            passthrough: false,
        }
    }
}

impl ApiKeyConfig {
    /// Sets what happens to requests without a key or with an unknown one (default `Strict`).
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Reads the key from `location` (default `x-api-key`).
    #[must_use]
    pub fn location(mut self, location: TokenLocation) -> Self {
        self.location = location;
        self
    }

    /// Replaces the configured keys.
    #[must_use]
    pub fn keys(mut self, entries: impl IntoIterator<Item = ApiKeyEntry>) -> Self {
        self.keys = entries.into_iter().collect();
        self
    }

    /// Adds one key.
    #[must_use]
    pub fn key(mut self, entry: ApiKeyEntry) -> Self {
        self.keys.push(entry);
        self
    }

    /// Also reads keys from `path`, re-read when it changes.
    #[must_use]
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Sets how often the key file is checked for changes (default 1 s; zero: read once).
    #[must_use]
    pub fn reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// Keeps the key on the upstream request (default `false`: it is removed).
    #[must_use]
    pub fn passthrough(mut self, passthrough: bool) -> Self {
        self.passthrough = passthrough;
        self
    }
}

impl ApiKeyEntry {
    /// A key named `name` with the plain `key`: shorthand for
    /// `ApiKeyEntry::default().name(name).key(key)`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        ApiKeyEntry::default().name(name).key(key)
    }

    /// A key named `name` given by the hex SHA-256 of the key: shorthand for
    /// `ApiKeyEntry::default().name(name).sha256(sha256_hex)` (an empty `sha256_hex` leaves
    /// the entry without a key, which building the layer reports).
    pub fn hashed(name: impl Into<String>, sha256_hex: impl Into<String>) -> Self {
        let sha256 = sha256_hex.into();
        let entry = ApiKeyEntry::default().name(name);
        if sha256.is_empty() {
            entry
        } else {
            entry.sha256(sha256)
        }
    }

    /// Sets the unique name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the plain key (hashed when the layer is built).
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(SecretString::from(key.into()));
        self
    }

    /// Sets the hex SHA-256 of the key.
    #[must_use]
    pub fn sha256(mut self, sha256_hex: impl Into<String>) -> Self {
        self.sha256 = Some(sha256_hex.into());
        self
    }

    /// Sets the team.
    #[must_use]
    pub fn team(mut self, team: impl Into<String>) -> Self {
        self.team = Some(team.into());
        self
    }

    /// Sets the role.
    #[must_use]
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// Sets the models the key may use.
    #[must_use]
    pub fn allowed_models<I: IntoIterator<Item = S>, S: Into<String>>(mut self, models: I) -> Self {
        self.allowed_models = Some(models.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the RFC 3339 instant from which the key is rejected.
    #[must_use]
    pub fn expires_at(mut self, instant: impl Into<String>) -> Self {
        self.expires_at = Some(instant.into());
        self
    }

    /// Restricts the key to the routes named `routes`.
    #[must_use]
    pub fn routes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, routes: I) -> Self {
        self.routes = Some(routes.into_iter().map(Into::into).collect());
        self
    }

    /// Restricts the key to requests for `models` (exact ids, or prefixes ending in `*`).
    #[must_use]
    pub fn models<I: IntoIterator<Item = S>, S: Into<String>>(mut self, models: I) -> Self {
        self.models = Some(models.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a metadata field.
    #[must_use]
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
    fn defaults_and_builders_match_the_yaml_block() {
        let default = ApiKeyConfig::default();
        let empty: ApiKeyConfig = serde_saphyr::from_str("{}").unwrap();
        assert_eq!(default.mode, Mode::Strict);
        assert_eq!(default.location, TokenLocation::x_api_key());
        assert_eq!(default.reload_interval, Duration::from_secs(1));
        assert!(!default.passthrough && default.keys.is_empty() && default.file.is_none());
        assert_eq!(
            (default.mode, &default.location, default.reload_interval),
            (empty.mode, &empty.location, empty.reload_interval)
        );

        let yaml: ApiKeyConfig = serde_saphyr::from_str(
            r#"
mode: Optional
location: {header: {name: authorization, prefix: "Bearer "}}
keys: [{name: ci-bot, sha256: "00", team: platform, role: admin, allowedModels: [gpt-4o], expiresAt: "2027-01-01T00:00:00Z", routes: [openai], models: [gpt-4o, "o3*"], metadata: {tier: gold}}]
file: /etc/keys.yaml
reloadInterval: 5s
passthrough: true
"#,
        )
        .unwrap();
        let built = ApiKeyConfig::default()
            .mode(Mode::Optional)
            .location(TokenLocation::bearer())
            .keys([ApiKeyEntry::hashed("ci-bot", "00")
                .team("platform")
                .role("admin")
                .allowed_models(["gpt-4o"])
                .expires_at("2027-01-01T00:00:00Z")
                .routes(["openai"])
                .models(["gpt-4o", "o3*"])
                .metadata("tier", "gold")])
            .file("/etc/keys.yaml")
            .reload_interval(Duration::from_secs(5))
            .passthrough(true);
        // `ApiKeyEntry` holds a secret and has no `PartialEq`: compare what `Debug` shows.
        assert_eq!(format!("{built:?}"), format!("{yaml:?}"));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let entry = ApiKeyEntry::new("ci-bot", "sk-very-secret-value");
        let config = ApiKeyConfig::default().key(entry);
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-very-secret-value"), "{debug}");
        assert!(debug.contains("ci-bot"));
    }
}
