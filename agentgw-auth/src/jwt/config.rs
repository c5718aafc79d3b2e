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
///   # optional, with their defaults:
///   location: {header: {name: authorization, prefix: "Bearer "}}
///   passthrough: false           # keep the token on the upstream request
///   leeway: 60s                  # clock skew allowed for exp, nbf and iat
///   requireExpiration: true      # reject tokens without exp
///   maxTokenBytes: 8192          # larger tokens are rejected before any decoding
///   cacheSize: 4096              # verified tokens remembered (0 disables the cache)
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtConfig {
    /// What happens to requests without a token or with an invalid one.
    #[serde(default)]
    pub mode: Mode,
    /// Token issuers; a token is verified by the provider whose `issuer` equals its `iss`.
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
        deserialize_with = "crate::duration::deserialize"
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
    /// A file holding a JWKS document or a PEM public key; re-read when it changes.
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
        deserialize_with = "crate::duration::deserialize"
    )]
    pub cache_duration: Duration,
    /// Least time between two fetches triggered by tokens naming an unknown `kid`.
    #[serde(
        default = "default_min_refetch_interval",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub min_refetch_interval: Duration,
    /// Timeout of one fetch.
    #[serde(
        default = "default_fetch_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub timeout: Duration,
}

/// A Gateway API style reference to a Kubernetes Service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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

impl JwtConfig {
    /// A configuration in `mode` with no providers yet and every other field at its default.
    pub fn new(mode: Mode) -> Self {
        JwtConfig {
            mode,
            providers: Vec::new(),
            location: TokenLocation::bearer(),
            passthrough: false,
            leeway: default_leeway(),
            require_expiration: true,
            max_token_bytes: default_max_token_bytes(),
            cache_size: default_cache_size(),
        }
    }

    /// Adds a provider.
    pub fn provider(mut self, provider: JwtProvider) -> Self {
        self.providers.push(provider);
        self
    }

    /// Reads the token from `location`.
    pub fn location(mut self, location: TokenLocation) -> Self {
        self.location = location;
        self
    }

    /// Keeps the token on the upstream request.
    pub fn passthrough(mut self, passthrough: bool) -> Self {
        self.passthrough = passthrough;
        self
    }

    /// Sets the clock skew tolerated for `exp`, `nbf` and `iat`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets whether tokens must carry `exp`.
    pub fn require_expiration(mut self, required: bool) -> Self {
        self.require_expiration = required;
        self
    }

    /// Sets the largest accepted token in bytes.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Sets how many verified tokens are remembered (`0` disables the cache).
    pub fn cache_size(mut self, entries: usize) -> Self {
        self.cache_size = entries;
        self
    }
}

impl JwtProvider {
    /// A provider for tokens with `iss == issuer`, keys from `jwks`, `aud` not checked.
    pub fn new(issuer: impl Into<String>, jwks: JwksSource) -> Self {
        JwtProvider {
            issuer: issuer.into(),
            audiences: None,
            jwks,
        }
    }

    /// Requires `aud` to contain one of `audiences`.
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.audiences = Some(audiences.into_iter().map(Into::into).collect());
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
        JwksSource::Remote(RemoteJwks::url(url))
    }

    /// An HMAC secret.
    pub fn hmac_secret(secret: SecretRef) -> Self {
        JwksSource::HmacSecret(secret)
    }
}

impl RemoteJwks {
    /// A JWKS at `url`, with default cache duration (5 min), minimum refetch interval (10 s)
    /// and timeout (5 s).
    pub fn url(url: impl Into<String>) -> Self {
        RemoteJwks {
            url: Some(url.into()),
            jwks_path: None,
            backend_ref: None,
            cache_duration: default_cache_duration(),
            min_refetch_interval: default_min_refetch_interval(),
            timeout: default_fetch_timeout(),
        }
    }

    /// Sets how long a fetched key set is used before it is fetched again.
    pub fn cache_duration(mut self, every: Duration) -> Self {
        self.cache_duration = every;
        self
    }

    /// Sets the least time between two fetches triggered by unknown `kid`s.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Sets the timeout of one fetch.
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
            RemoteJwks::url("https://idp.example/jwks")
                .resolve_url()
                .unwrap(),
            "https://idp.example/jwks"
        );
        assert_eq!(
            RemoteJwks::url("ftp://x/jwks").resolve_url().unwrap_err().0,
            "url"
        );
        let mut both = RemoteJwks::url("https://idp.example/jwks");
        both.jwks_path = Some("/certs".into());
        assert_eq!(both.resolve_url().unwrap_err().0, "url");
        let mut ingress = RemoteJwks::url("x");
        ingress.url = None;
        ingress.jwks_path = Some("/certs".into());
        ingress.backend_ref = Some(BackendRef {
            group: None,
            kind: Some("Ingress".into()),
            name: "kc".into(),
            namespace: None,
            port: 80,
        });
        assert_eq!(ingress.resolve_url().unwrap_err().0, "backendRef.kind");
    }
}
