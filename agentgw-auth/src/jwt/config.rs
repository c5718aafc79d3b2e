//! The `jwtAuthentication` configuration block.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::location::TokenLocation;
use crate::mode::Mode;
use crate::secret::SecretRef;

/// `jwtAuthentication`: the seed's block, plus optional fields with safe defaults.
///
/// ```yaml
/// jwtAuthentication:
///   mode: Strict                 # Strict | Optional | Permissive
///   providers:
///     - issuer: "https://auth.sklab.dev/realms/ai"
///       audiences: ["agentgateway"]
///       jwks:
///         remote:
///           jwksPath: "/protocol/openid-connect/certs"
///           cacheDuration: "5m"
///           backendRef: {kind: Service, name: keycloak, namespace: security, port: 8080}
///       maxTokenLifetime: 1h     # optional, off by default: refuse tokens valid for longer
///   # optional, with their defaults:
///   location: {header: {name: authorization, prefix: "Bearer "}}
///   passthrough: false           # keep the token on the upstream request
///   leeway: 60s                  # clock skew allowed for exp, nbf and iat
///   requireExpiration: true      # reject tokens without exp
///   maxTokenBytes: 8192          # larger tokens are rejected before any decoding
///   cacheSize: 4096              # verified tokens remembered (0 disables the cache)
/// ```
///
/// In code, start from [`JwtConfig::default`] and set fields with the builders named after
/// them:
///
/// ```
/// use std::time::Duration;
/// use agentgw_auth::jwt::{BackendRef, JwksSource, JwtConfig, JwtProvider, RemoteJwks};
/// use agentgw_auth::Mode;
///
/// let config = JwtConfig::default()
///     .mode(Mode::Strict)
///     .provider(
///         JwtProvider::new(
///             "https://auth.sklab.dev/realms/ai",
///             JwksSource::Remote(
///                 RemoteJwks::default()
///                     .jwks_path("/protocol/openid-connect/certs")
///                     .backend_ref(BackendRef::new("keycloak", 8080).namespace("security"))
///                     .cache_duration(Duration::from_secs(300)),
///             ),
///         )
///         .audiences(["agentgateway"]),
///     )
///     .leeway(Duration::from_secs(30));
/// assert_eq!(config.providers.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtConfig {
    /// What happens to requests without a token or with an invalid one.
    #[serde(default)]
    pub mode: Mode,
    /// Token issuers; a token is verified by the provider whose `issuer` equals its `iss`.
    /// At least one is needed to build the layer; absent in YAML (the seed's summary block
    /// writes `jwtAuthentication: {mode: Strict}`), an embedding application may supply them
    /// (the gateway takes them from the block at the other level, global or route).
    #[serde(default)]
    pub providers: Vec<JwtProvider>,
    /// Where the token is read.
    #[serde(default = "TokenLocation::bearer")]
    pub location: TokenLocation,
    /// Keep the token on the request sent upstream. By default a token is removed whenever one
    /// was found, valid or not (a `Permissive` layer forwards the request without it).
    #[serde(default)]
    pub passthrough: bool,
    /// Clock skew tolerated when checking `exp`, `nbf` and `iat`.
    #[serde(
        default = "default_leeway",
        deserialize_with = "agentgw_core::config::duration::deserialize"
    )]
    pub leeway: Duration,
    /// Whether a token must carry `exp`.
    #[serde(default = "default_true")]
    pub require_expiration: bool,
    /// Largest accepted token, in bytes; checked before any decoding.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// How many verified tokens are remembered; `0` disables the cache.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
}

/// One token issuer and where its keys come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtProvider {
    /// The exact `iss` of this provider's tokens.
    pub issuer: String,
    /// Accepted audiences: a token's `aud` (a string or a list) must contain one of them
    /// exactly. When absent, `aud` is not checked.
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// Where the verification keys come from.
    pub jwks: JwksSource,
    /// The longest lifetime accepted for this provider's tokens; `None` (the default) sets no
    /// limit.
    ///
    /// The lifetime is `exp - iat`. A token without `iat` is measured from now instead
    /// (`exp - now`, with the leeway added to the maximum for clock skew), so it is refused
    /// when it would stay valid for longer than the maximum from now on. With a maximum set, a
    /// token without `exp` is refused as `missing_expiration` even when `requireExpiration` is
    /// `false`: it would never expire.
    #[serde(
        default,
        deserialize_with = "agentgw_core::config::option_duration::deserialize"
    )]
    pub max_token_lifetime: Option<Duration>,
}

/// Where a provider's verification keys come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum JwksSource {
    /// A JWKS (or a PEM public key) in a file or in the configuration.
    Local(LocalJwks),
    /// A JWKS fetched over HTTP, cached and refreshed.
    Remote(RemoteJwks),
    /// A shared HMAC secret (HS256/384/512), 32 bytes or more. HMAC is accepted only from here,
    /// never from a JWKS.
    HmacSecret(SecretRef),
}

/// `jwks.local`: `{file: PATH}` or `{inline: JWKS}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum LocalJwks {
    /// A file holding a JWKS document or a PEM public key; re-read when it changes (checked
    /// every second by a task on the Tokio runtime the layer is built in).
    File(PathBuf),
    /// A JWKS: as a JSON string or as a YAML/JSON object; or a PEM public key as a string.
    Inline(InlineJwks),
}

/// The value of `jwks.local.inline`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum InlineJwks {
    /// JWKS JSON text or a PEM public key.
    Text(String),
    /// A JWKS written as a YAML/JSON object.
    Document(serde_json::Value),
}

/// `jwks.remote`: either `url`, or the seed's `jwksPath` with a `backendRef`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RemoteJwks {
    /// Full JWKS URL (`http` or `https`).
    #[serde(default)]
    pub url: Option<String>,
    /// Path of the JWKS on `backendRef`.
    #[serde(default)]
    pub jwks_path: Option<String>,
    /// The Kubernetes Service serving the JWKS, as `http://NAME.NAMESPACE.svc:PORT`.
    #[serde(default)]
    pub backend_ref: Option<BackendRef>,
    /// How long a fetched key set is used before it is fetched again.
    #[serde(
        default = "default_cache_duration",
        deserialize_with = "agentgw_core::config::duration::deserialize"
    )]
    pub cache_duration: Duration,
    /// Least time between two fetches triggered by tokens naming an unknown `kid`.
    #[serde(
        default = "default_min_refetch_interval",
        deserialize_with = "agentgw_core::config::duration::deserialize"
    )]
    pub min_refetch_interval: Duration,
    /// Timeout of one fetch.
    #[serde(
        default = "default_fetch_timeout",
        deserialize_with = "agentgw_core::config::duration::deserialize"
    )]
    pub timeout: Duration,
}

/// A Gateway API style reference to a Kubernetes Service.
///
/// `Default` has no name (reported as `backendRef.name` when the layer is built); in code,
/// `BackendRef::new("keycloak", 8080).namespace("security")`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct BackendRef {
    /// API group (only the core group, `""`, is supported).
    #[serde(default)]
    pub group: Option<String>,
    /// Kind (only `Service` is supported).
    #[serde(default)]
    pub kind: Option<String>,
    /// Service name.
    pub name: String,
    /// Service namespace; the gateway's own namespace (resolver search path) when absent.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Service port.
    pub port: u16,
}

impl BackendRef {
    /// The Service `name` on `port`, in the gateway's own namespace: shorthand for
    /// `BackendRef::default().name(name).port(port)`.
    pub fn new(name: impl Into<String>, port: u16) -> Self {
        BackendRef::default().name(name).port(port)
    }

    /// Sets the API group (only the core group, `""`, is supported).
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Sets the kind (only `Service` is supported).
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Sets the Service name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the Service namespace.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the Service port.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

fn default_true() -> bool {
    true
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_max_token_bytes() -> usize {
    8 * 1024
}

fn default_cache_size() -> usize {
    4096
}

fn default_cache_duration() -> Duration {
    Duration::from_secs(300)
}

fn default_min_refetch_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_fetch_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for JwtConfig {
    /// `Strict`, no providers, the token read from `Authorization: Bearer`, every other field
    /// at the default shown in the [type docs](JwtConfig). Building a layer from it reports the
    /// missing providers (`providers`).
    fn default() -> Self {
        JwtConfig {
            mode: Mode::default(),
            providers: Vec::new(),
            location: TokenLocation::bearer(),
            passthrough: false,
            leeway: default_leeway(),
            require_expiration: true,
            max_token_bytes: default_max_token_bytes(),
            cache_size: default_cache_size(),
        }
    }
}

impl JwtConfig {
    /// Sets what happens to requests without a token or with an invalid one (default
    /// `Strict`).
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Replaces the providers.
    #[must_use]
    pub fn providers(mut self, providers: impl IntoIterator<Item = JwtProvider>) -> Self {
        self.providers = providers.into_iter().collect();
        self
    }

    /// Adds one provider.
    #[must_use]
    pub fn provider(mut self, provider: JwtProvider) -> Self {
        self.providers.push(provider);
        self
    }

    /// Reads the token from `location` (default `Authorization: Bearer`).
    #[must_use]
    pub fn location(mut self, location: TokenLocation) -> Self {
        self.location = location;
        self
    }

    /// Keeps the token on the upstream request (default `false`: it is removed).
    #[must_use]
    pub fn passthrough(mut self, passthrough: bool) -> Self {
        self.passthrough = passthrough;
        self
    }

    /// Sets the clock skew tolerated for `exp`, `nbf` and `iat` (default 60 s).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets whether tokens must carry `exp` (default `true`).
    #[must_use]
    pub fn require_expiration(mut self, required: bool) -> Self {
        self.require_expiration = required;
        self
    }

    /// Sets the largest accepted token in bytes (default 8 KiB).
    #[must_use]
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Sets how many verified tokens are remembered (default 4096; `0` disables the cache).
    #[must_use]
    pub fn cache_size(mut self, entries: usize) -> Self {
        self.cache_size = entries;
        self
    }
}

impl JwtProvider {
    /// A provider for tokens with `iss == issuer`, keys from `jwks`, `aud` not checked. Both
    /// are required, so a provider has no `Default`.
    pub fn new(issuer: impl Into<String>, jwks: JwksSource) -> Self {
        JwtProvider {
            issuer: issuer.into(),
            audiences: None,
            jwks,
            max_token_lifetime: None,
        }
    }

    /// Sets the exact `iss` of this provider's tokens.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Requires `aud` to contain one of `audiences`.
    #[must_use]
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.audiences = Some(audiences.into_iter().map(Into::into).collect());
        self
    }

    /// Sets where the verification keys come from.
    #[must_use]
    pub fn jwks(mut self, jwks: JwksSource) -> Self {
        self.jwks = jwks;
        self
    }

    /// Refuses tokens whose lifetime (`exp - iat`, or `exp - now` without `iat`) is longer
    /// than `max` (default: no limit). See [`max_token_lifetime`](JwtProvider::max_token_lifetime)
    /// for the details.
    #[must_use]
    pub fn max_token_lifetime(mut self, max: Duration) -> Self {
        self.max_token_lifetime = Some(max);
        self
    }
}

impl JwksSource {
    /// Keys from a JWKS (or PEM) file, re-read when it changes.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        JwksSource::Local(LocalJwks::File(path.into()))
    }

    /// Keys from JWKS JSON text (or a PEM public key).
    pub fn inline(jwks: impl Into<String>) -> Self {
        JwksSource::Local(LocalJwks::Inline(InlineJwks::Text(jwks.into())))
    }

    /// Keys fetched from `url`, refreshed every five minutes.
    pub fn remote(url: impl Into<String>) -> Self {
        JwksSource::Remote(RemoteJwks::default().url(url))
    }

    /// An HMAC secret.
    pub fn hmac_secret(secret: SecretRef) -> Self {
        JwksSource::HmacSecret(secret)
    }
}

impl Default for RemoteJwks {
    /// No URL yet, cache duration 5 min, minimum refetch interval 10 s, timeout 5 s. Building a
    /// layer from it reports the missing URL (`url`).
    fn default() -> Self {
        RemoteJwks {
            url: None,
            jwks_path: None,
            backend_ref: None,
            cache_duration: default_cache_duration(),
            min_refetch_interval: default_min_refetch_interval(),
            timeout: default_fetch_timeout(),
        }
    }
}

impl RemoteJwks {
    /// Sets the full JWKS URL (`http` or `https`).
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets the path of the JWKS on [`backend_ref`](RemoteJwks::backend_ref).
    #[must_use]
    pub fn jwks_path(mut self, path: impl Into<String>) -> Self {
        self.jwks_path = Some(path.into());
        self
    }

    /// Sets the Kubernetes Service serving the JWKS.
    #[must_use]
    pub fn backend_ref(mut self, backend: BackendRef) -> Self {
        self.backend_ref = Some(backend);
        self
    }

    /// Sets how long a fetched key set is used before it is fetched again (default 5 min).
    #[must_use]
    pub fn cache_duration(mut self, every: Duration) -> Self {
        self.cache_duration = every;
        self
    }

    /// Sets the least time between two fetches triggered by unknown `kid`s (default 10 s).
    #[must_use]
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Sets the timeout of one fetch (default 5 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL to fetch; `Err` names the problem with the fields.
    pub(crate) fn resolve_url(&self) -> Result<String, (&'static str, String)> {
        let url = match (&self.url, &self.jwks_path, &self.backend_ref) {
            (Some(url), None, None) => url.clone(),
            (Some(_), _, _) => {
                return Err((
                    "url",
                    "give either url or jwksPath with backendRef, not both".into(),
                ));
            }
            (None, path, Some(backend)) => {
                if let Some(kind) = backend.kind.as_deref()
                    && kind != "Service"
                {
                    return Err((
                        "backendRef.kind",
                        format!("{kind:?} is not supported; use Service"),
                    ));
                }
                if backend.group.as_deref().is_some_and(|g| !g.is_empty()) {
                    return Err((
                        "backendRef.group",
                        "only the core group (\"\") is supported".into(),
                    ));
                }
                if backend.name.is_empty() {
                    return Err(("backendRef.name", "must not be empty".into()));
                }
                let path = path.as_deref().unwrap_or("/");
                if !path.starts_with('/') {
                    return Err(("jwksPath", "must start with '/'".into()));
                }
                let host = match &backend.namespace {
                    Some(namespace) => format!("{}.{namespace}.svc", backend.name),
                    None => backend.name.clone(),
                };
                format!("http://{host}:{}{path}", backend.port)
            }
            (None, Some(_), None) => {
                return Err(("backendRef", "jwksPath needs a backendRef".into()));
            }
            (None, None, None) => {
                return Err(("url", "give url, or jwksPath with backendRef".into()));
            }
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e| ("url", format!("invalid URL {url:?}: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(("url", format!("{url:?} is not an http(s) URL with a host")));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's `jwtAuthentication` block, verbatim.
    const SEED: &str = r#"
mode: Strict  # Strict, Optional, or Permissive
providers:
  - issuer: "https://auth.sklab.dev/realms/ai"
    audiences: ["agentgateway"]
    jwks:
      remote:
        jwksPath: "/protocol/openid-connect/certs"
        cacheDuration: "5m"
        backendRef:
          kind: Service
          name: keycloak
          namespace: security
          port: 8080
"#;

    #[test]
    fn seed_block_deserializes() {
        let config: JwtConfig = serde_saphyr::from_str(SEED).unwrap();
        assert_eq!(config.mode, Mode::Strict);
        assert_eq!(config.location, TokenLocation::bearer());
        assert_eq!(config.leeway, Duration::from_secs(60));
        assert_eq!(config.max_token_bytes, 8192);
        let provider = &config.providers[0];
        assert_eq!(provider.issuer, "https://auth.sklab.dev/realms/ai");
        assert_eq!(
            provider.audiences.as_deref(),
            Some(&["agentgateway".to_owned()][..])
        );
        let JwksSource::Remote(remote) = &provider.jwks else {
            panic!("remote expected")
        };
        assert_eq!(remote.cache_duration, Duration::from_secs(300));
        assert_eq!(
            remote.resolve_url().unwrap(),
            "http://keycloak.security.svc:8080/protocol/openid-connect/certs"
        );
    }

    #[test]
    fn builders_write_what_yaml_writes() {
        let from_yaml: JwtConfig = serde_saphyr::from_str(
            r#"
mode: Permissive
providers:
  - issuer: "https://auth.sklab.dev/realms/ai"
    audiences: ["agentgateway"]
    jwks:
      remote:
        jwksPath: "/protocol/openid-connect/certs"
        cacheDuration: "5m"
        minRefetchInterval: 30s
        timeout: 2s
        backendRef: {group: "", kind: Service, name: keycloak, namespace: security, port: 8080}
    maxTokenLifetime: 1h
location: {cookie: session}
passthrough: true
leeway: 30s
requireExpiration: false
maxTokenBytes: 4096
cacheSize: 0
"#,
        )
        .unwrap();
        let built = JwtConfig::default()
            .mode(Mode::Permissive)
            .providers([JwtProvider::new(
                "https://auth.sklab.dev/realms/ai",
                JwksSource::Remote(
                    RemoteJwks::default()
                        .jwks_path("/protocol/openid-connect/certs")
                        .cache_duration(Duration::from_secs(300))
                        .min_refetch_interval(Duration::from_secs(30))
                        .timeout(Duration::from_secs(2))
                        .backend_ref(
                            BackendRef::new("keycloak", 8080)
                                .group("")
                                .kind("Service")
                                .namespace("security"),
                        ),
                ),
            )
            .audiences(["agentgateway"])
            .max_token_lifetime(Duration::from_secs(3600))])
            .location(TokenLocation::Cookie("session".into()))
            .passthrough(true)
            .leeway(Duration::from_secs(30))
            .require_expiration(false)
            .max_token_bytes(4096)
            .cache_size(0);
        assert_eq!(built, from_yaml);
        let defaults: JwtConfig = serde_saphyr::from_str("providers: []").unwrap();
        assert_eq!(JwtConfig::default(), defaults);
    }

    #[test]
    fn local_sources() {
        let file: JwksSource = serde_saphyr::from_str("local: {file: /etc/jwks.json}").unwrap();
        assert_eq!(file, JwksSource::file("/etc/jwks.json"));
        let text: JwksSource = serde_saphyr::from_str("local: {inline: '{\"keys\": []}'}").unwrap();
        assert_eq!(text, JwksSource::inline(r#"{"keys": []}"#));
        let doc: JwksSource = serde_saphyr::from_str("local:\n  inline:\n    keys: []").unwrap();
        assert_eq!(
            doc,
            JwksSource::Local(LocalJwks::Inline(InlineJwks::Document(
                serde_json::json!({"keys": []})
            )))
        );
        let hmac: JwksSource = serde_saphyr::from_str("hmacSecret: {env: JWT_SECRET}").unwrap();
        assert_eq!(
            hmac,
            JwksSource::hmac_secret(SecretRef::Env("JWT_SECRET".into()))
        );
    }

    #[test]
    fn unknown_fields_are_errors() {
        let typo = SEED.replace("audiences", "audience");
        assert!(serde_saphyr::from_str::<JwtConfig>(&typo).is_err());
        let bad_mode = SEED.replace("mode: Strict", "mode: Lenient");
        assert!(serde_saphyr::from_str::<JwtConfig>(&bad_mode).is_err());
    }

    #[test]
    fn remote_url_resolution() {
        assert_eq!(
            RemoteJwks::default()
                .url("https://idp.example/jwks")
                .resolve_url()
                .unwrap(),
            "https://idp.example/jwks"
        );
        assert_eq!(
            RemoteJwks::default()
                .url("ftp://x/jwks")
                .resolve_url()
                .unwrap_err()
                .0,
            "url"
        );
        let mut both = RemoteJwks::default().url("https://idp.example/jwks");
        both.jwks_path = Some("/certs".into());
        assert_eq!(both.resolve_url().unwrap_err().0, "url");
        let mut ingress = RemoteJwks::default().url("x");
        ingress.url = None;
        ingress.jwks_path = Some("/certs".into());
        ingress.backend_ref = Some(BackendRef::new("kc", 80).kind("Ingress"));
        assert_eq!(ingress.resolve_url().unwrap_err().0, "backendRef.kind");
    }
}
