//! The `extAuth` configuration block, as the seed writes it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

/// The default time one authorization call may take (`timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// The default most connections the HTTP protocol opens to the service
/// (`http.maxConnections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

/// The `extAuth` block: where the authorization service is, which protocol it speaks and what
/// happens when it cannot answer.
///
/// Field names follow the seed (`backendRef`, `grpc: {}`, `failureModeAllow`); `http: {}` in place
/// of `grpc: {}` selects the plain HTTP protocol. Build the layer with
/// [`ExtAuthLayer::from_config`](super::ExtAuthLayer::from_config).
///
/// ```
/// use agentgw_auth::ext_authz::{BackendRef, ExtAuthConfig};
///
/// let config: ExtAuthConfig = serde_json::from_value(serde_json::json!({
///     "backendRef": {"name": "ext-authz-service", "namespace": "security", "port": 9000},
///     "grpc": {},
///     "failureModeAllow": false,
///     "timeout": "150ms",
///     "includeRequestBody": {"maxRequestBytes": 4096},
///     "contextExtensions": {"route": "openai"}
/// }))
/// .unwrap();
/// assert_eq!(config.backend_ref.uri(), "http://ext-authz-service.security:9000");
/// ```
///
/// In code, start from [`ExtAuthConfig::default`] and set fields with the builders named after
/// them; `Default` names no service and no protocol, which building the layer reports
/// (`backendRef`, `grpc`):
///
/// ```
/// use std::time::Duration;
/// use agentgw_auth::ext_authz::{BackendRef, ExtAuthConfig, GrpcOptions, HttpOptions};
///
/// let grpc = ExtAuthConfig::default()
///     .backend_ref(BackendRef::url("http://127.0.0.1:9000"))
///     .grpc(GrpcOptions::default())
///     .timeout(Duration::from_millis(150))
///     .context_extension("route", "openai");
///
/// let http = ExtAuthConfig::default()
///     .backend_ref(BackendRef::service("authz", 8080).namespace("security"))
///     .http(HttpOptions::default().path_prefix("/authz").allowed_upstream_headers(["x-user"]))
///     .failure_mode_allow(true);
/// assert_eq!(http.backend_ref.uri(), "http://authz.security:8080");
/// # let _ = grpc;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ExtAuthConfig {
    /// The authorization service.
    pub backend_ref: BackendRef,
    /// `grpc: {}`: speak Envoy's `envoy.service.auth.v3.Authorization/Check`.
    #[serde(default)]
    pub grpc: Option<GrpcOptions>,
    /// `http: {...}`: send the request's method, path and selected headers to a plain HTTP
    /// service; a 2xx answer allows.
    #[serde(default)]
    pub http: Option<HttpOptions>,
    /// Forward the request when the service is down, slow or answers nonsense (default `false`:
    /// deny with [`status_on_error`](Self::status_on_error)).
    #[serde(default)]
    pub failure_mode_allow: bool,
    /// How long one authorization call may take, e.g. `200ms` (the default).
    #[serde(
        default,
        deserialize_with = "agentgw_core::config::option_duration::deserialize"
    )]
    pub timeout: Option<Duration>,
    /// Status of the denial sent when the service fails and `failureModeAllow` is `false`
    /// (default 403).
    #[serde(default)]
    pub status_on_error: Option<u16>,
    /// Send the start of the request body to the service.
    #[serde(default)]
    pub include_request_body: Option<IncludeRequestBody>,
    /// Key/value pairs sent with every check as `attributes.context_extensions` (gRPC only).
    #[serde(default)]
    pub context_extensions: BTreeMap<String, String>,
    /// Remember decisions for a while (off by default).
    #[serde(default)]
    pub cache: Option<DecisionCacheConfig>,
}

/// Where the authorization service listens.
///
/// Deserializes from `{url: "http://127.0.0.1:9000"}` or from the seed's
/// `{name, namespace, port}` (resolved as `name.namespace:port`; `namespace` may be omitted).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawBackendRef")]
pub enum BackendRef {
    /// An `http://host:port` URL.
    Url(String),
    /// A Kubernetes-style service reference.
    Service {
        /// Service name.
        name: String,
        /// Service namespace, appended to the name as a DNS label when present.
        namespace: Option<String>,
        /// Service port.
        port: u16,
    },
}

impl Default for BackendRef {
    /// An empty URL: no service yet (reported as `backendRef` when the layer is built).
    fn default() -> Self {
        BackendRef::Url(String::new())
    }
}

impl BackendRef {
    /// The service at `url` (`http://host:port`).
    pub fn url(url: impl Into<String>) -> Self {
        BackendRef::Url(url.into())
    }

    /// The Kubernetes-style service `name` on `port`, without a namespace (add one with
    /// [`namespace`](BackendRef::namespace)).
    pub fn service(name: impl Into<String>, port: u16) -> Self {
        BackendRef::Service {
            name: name.into(),
            namespace: None,
            port,
        }
    }

    /// Sets the namespace of a [`Service`](BackendRef::Service) reference (a URL has none and
    /// is returned unchanged).
    #[must_use]
    pub fn namespace(self, namespace: impl Into<String>) -> Self {
        match self {
            BackendRef::Service { name, port, .. } => BackendRef::Service {
                name,
                namespace: Some(namespace.into()),
                port,
            },
            url => url,
        }
    }

    /// The URL the layer connects to: the URL as written, or `http://name.namespace:port`.
    pub fn uri(&self) -> String {
        match self {
            BackendRef::Url(url) => url.clone(),
            BackendRef::Service {
                name,
                namespace: Some(namespace),
                port,
            } => format!("http://{name}.{namespace}:{port}"),
            BackendRef::Service {
                name,
                namespace: None,
                port,
            } => format!("http://{name}:{port}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBackendRef {
    url: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    port: Option<u16>,
}

impl TryFrom<RawBackendRef> for BackendRef {
    type Error = String;

    fn try_from(raw: RawBackendRef) -> Result<Self, String> {
        match raw {
            RawBackendRef {
                url: Some(url),
                name: None,
                namespace: None,
                port: None,
            } => Ok(BackendRef::Url(url)),
            RawBackendRef {
                url: None,
                name: Some(name),
                namespace,
                port: Some(port),
            } => Ok(BackendRef::Service {
                name,
                namespace,
                port,
            }),
            _ => Err(
                "set either `url` (e.g. http://127.0.0.1:9000) or `name` and `port` \
                 (with an optional `namespace`), not both"
                    .to_owned(),
            ),
        }
    }
}

/// Options of the gRPC protocol (`grpc: {}`); there are none yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct GrpcOptions {}

/// Options of the plain HTTP protocol (`http: {...}`).
///
/// The check is an HTTP request with the original method, to `pathPrefix` followed by the
/// original path and query, carrying `authorization`, the headers listed in `allowedHeaders`,
/// `x-forwarded-host` and `x-forwarded-for`. A 2xx answer allows: headers listed in
/// `allowedUpstreamHeaders` are copied onto the upstream request, and headers named in the
/// answer's `x-envoy-auth-headers-to-remove` (comma separated) are removed from it. Any other
/// status denies: the client receives that status, the answer's body, and its headers (only
/// those in `allowedClientHeaders` when that list is set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Prepended to the request path, e.g. `/authz`.
    #[serde(default)]
    pub path_prefix: String,
    /// Request headers sent to the service besides `authorization`.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Headers of an allowing answer copied onto the upstream request.
    #[serde(default)]
    pub allowed_upstream_headers: Vec<String>,
    /// Headers of a denying answer passed to the client (default: all but connection-level
    /// ones).
    #[serde(default)]
    pub allowed_client_headers: Option<Vec<String>>,
    /// Most connections open to the service at once (default 128); further checks wait for one.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

/// `includeRequestBody`: send the start of the request body with the check.
///
/// `Default` sends no byte (`maxRequestBytes: 0`, reported when the layer is built); in code,
/// `IncludeRequestBody::default().max_request_bytes(4096)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct IncludeRequestBody {
    /// At most this many bytes of the body are sent; a longer body is truncated and the check
    /// carries `x-envoy-auth-partial-body: true`. The whole body still goes upstream.
    pub max_request_bytes: usize,
    /// gRPC: send the bytes in `raw_body` instead of the UTF-8 `body` field.
    #[serde(default)]
    pub pack_as_bytes: bool,
}

/// `cache`: remember the service's decisions, keyed by request attributes.
///
/// Only decisions are cached (allow with its header changes, deny with its response), never
/// failures. The key must name every attribute the service decides on: a request that matches
/// a cached key gets the cached decision without a call.
///
/// `Default` has an empty key (reported as `cache.key` when the layer is built), a TTL of 30 s
/// and at most 10000 entries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DecisionCacheConfig {
    /// The attributes a key is made of: `method`, `host`, `path` (with the query), `source.ip`,
    /// `body` (the bytes sent to the service) and `header:<name>`, e.g. `header:authorization`.
    pub key: Vec<String>,
    /// How long a decision is reused (default `30s`).
    #[serde(
        default = "default_cache_ttl",
        deserialize_with = "agentgw_core::config::duration::deserialize"
    )]
    pub ttl: Duration,
    /// Most decisions kept (default 10000).
    #[serde(default = "default_cache_entries")]
    pub max_entries: usize,
}

/// One attribute of a decision-cache key. Parses from the strings of
/// [`DecisionCacheConfig::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheKeyPart {
    /// The request method.
    Method,
    /// The request host (URI authority or `Host`).
    Host,
    /// The path with its query.
    Path,
    /// The client IP address ([`ClientAddr`](agentgw_core::identity::ClientAddr)).
    SourceIp,
    /// The bytes of the body sent to the service.
    Body,
    /// Every value of one request header.
    Header(HeaderName),
}

impl FromStr for CacheKeyPart {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "method" => Ok(CacheKeyPart::Method),
            "host" => Ok(CacheKeyPart::Host),
            "path" => Ok(CacheKeyPart::Path),
            "source.ip" => Ok(CacheKeyPart::SourceIp),
            "body" => Ok(CacheKeyPart::Body),
            _ => match text.strip_prefix("header:") {
                Some(name) => HeaderName::from_str(name)
                    .map(CacheKeyPart::Header)
                    .map_err(|_| format!("{name:?} is not a valid header name")),
                None => Err(format!(
                    "unknown attribute {text:?}; use method, host, path, source.ip, body or \
                     header:<name>"
                )),
            },
        }
    }
}

impl fmt::Display for CacheKeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheKeyPart::Method => f.write_str("method"),
            CacheKeyPart::Host => f.write_str("host"),
            CacheKeyPart::Path => f.write_str("path"),
            CacheKeyPart::SourceIp => f.write_str("source.ip"),
            CacheKeyPart::Body => f.write_str("body"),
            CacheKeyPart::Header(name) => write!(f, "header:{name}"),
        }
    }
}

impl Default for ExtAuthConfig {
    /// No service and no protocol yet (both reported when the layer is built); every other
    /// field at its default: fail closed with 403, a 200 ms timeout, no body, no context
    /// extensions, no cache.
    fn default() -> Self {
        ExtAuthConfig {
            backend_ref: BackendRef::default(),
            grpc: None,
            http: None,
            failure_mode_allow: false,
            timeout: None,
            status_on_error: None,
            include_request_body: None,
            context_extensions: BTreeMap::new(),
            cache: None,
        }
    }
}

impl ExtAuthConfig {
    /// Sets the authorization service.
    #[must_use]
    pub fn backend_ref(mut self, backend_ref: BackendRef) -> Self {
        self.backend_ref = backend_ref;
        self
    }

    /// Speaks Envoy's gRPC `Authorization/Check` (and not the HTTP protocol).
    #[must_use]
    pub fn grpc(mut self, options: GrpcOptions) -> Self {
        self.grpc = Some(options);
        self.http = None;
        self
    }

    /// Speaks the plain HTTP protocol (and not gRPC).
    #[must_use]
    pub fn http(mut self, options: HttpOptions) -> Self {
        self.http = Some(options);
        self.grpc = None;
        self
    }

    /// Forwards requests when the service is down, slow or answers nonsense (default `false`:
    /// deny with [`status_on_error`](ExtAuthConfig::status_on_error)).
    #[must_use]
    pub fn failure_mode_allow(mut self, allow: bool) -> Self {
        self.failure_mode_allow = allow;
        self
    }

    /// Sets how long one call may take, connection included (default [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the status of the denial sent when the service fails (a 4xx or 5xx; default 403).
    #[must_use]
    pub fn status_on_error(mut self, status: u16) -> Self {
        self.status_on_error = Some(status);
        self
    }

    /// Sends the start of the request body with each check.
    #[must_use]
    pub fn include_request_body(mut self, body: IncludeRequestBody) -> Self {
        self.include_request_body = Some(body);
        self
    }

    /// Replaces the context extensions (gRPC only).
    #[must_use]
    pub fn context_extensions<K, V>(mut self, pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.context_extensions = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Adds one context extension (gRPC only).
    #[must_use]
    pub fn context_extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context_extensions.insert(key.into(), value.into());
        self
    }

    /// Remembers decisions as `cache` says.
    #[must_use]
    pub fn cache(mut self, cache: DecisionCacheConfig) -> Self {
        self.cache = Some(cache);
        self
    }
}

impl HttpOptions {
    /// Sets the prefix of the checked path, e.g. `/authz`.
    #[must_use]
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = prefix.into();
        self
    }

    /// Sets the request headers sent besides `authorization`.
    #[must_use]
    pub fn allowed_headers<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.allowed_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the headers of an allowing answer copied onto the upstream request.
    #[must_use]
    pub fn allowed_upstream_headers<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.allowed_upstream_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Passes only these headers of a denying answer to the client.
    #[must_use]
    pub fn allowed_client_headers<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.allowed_client_headers = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the most connections open to the service at once (default
    /// [`DEFAULT_MAX_CONNECTIONS`]).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }
}

impl IncludeRequestBody {
    /// Sends at most `max` bytes of the body.
    #[must_use]
    pub fn max_request_bytes(mut self, max: usize) -> Self {
        self.max_request_bytes = max;
        self
    }

    /// gRPC: sends the bytes in `raw_body` instead of the UTF-8 `body` field.
    #[must_use]
    pub fn pack_as_bytes(mut self, pack: bool) -> Self {
        self.pack_as_bytes = pack;
        self
    }
}

impl Default for DecisionCacheConfig {
    fn default() -> Self {
        DecisionCacheConfig {
            key: Vec::new(),
            ttl: default_cache_ttl(),
            max_entries: default_cache_entries(),
        }
    }
}

impl DecisionCacheConfig {
    /// Sets the attributes a key is made of (`method`, `host`, `path`, `source.ip`, `body`,
    /// `header:<name>`).
    #[must_use]
    pub fn key<S: Into<String>>(mut self, parts: impl IntoIterator<Item = S>) -> Self {
        self.key = parts.into_iter().map(Into::into).collect();
        self
    }

    /// Sets how long a decision is reused (default 30 s).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the most decisions kept (default 10000).
    #[must_use]
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max;
        self
    }
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(30)
}

fn default_cache_entries() -> usize {
    10_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_block_deserializes() {
        let config: ExtAuthConfig = serde_json::from_value(json!({
            "backendRef": {"name": "ext-authz-service", "namespace": "security", "port": 9000},
            "grpc": {},
            "failureModeAllow": false
        }))
        .unwrap();
        assert_eq!(config.grpc, Some(GrpcOptions {}));
        assert_eq!(config.http, None);
        assert!(!config.failure_mode_allow);
        assert_eq!(config.timeout, None);
        assert_eq!(
            config.backend_ref.uri(),
            "http://ext-authz-service.security:9000"
        );
    }

    #[test]
    fn yaml_with_every_optional_key() {
        let yaml = "
backendRef: {url: 'http://127.0.0.1:9000'}
http:
  pathPrefix: /authz
  allowedHeaders: [x-user]
  allowedUpstreamHeaders: [x-auth-user]
  allowedClientHeaders: [www-authenticate]
  maxConnections: 8
timeout: 1s
statusOnError: 503
includeRequestBody: {maxRequestBytes: 1024, packAsBytes: true}
cache: {key: ['header:authorization', path], ttl: 5m, maxEntries: 10}
";
        let config: ExtAuthConfig = serde_saphyr::from_str(yaml).unwrap();
        let http = config.http.unwrap();
        assert_eq!(http.path_prefix, "/authz");
        assert_eq!(
            http.allowed_client_headers.unwrap(),
            vec!["www-authenticate"]
        );
        assert_eq!(http.max_connections, Some(8));
        assert_eq!(config.timeout, Some(Duration::from_secs(1)));
        assert_eq!(config.status_on_error, Some(503));
        assert!(config.include_request_body.unwrap().pack_as_bytes);
        let cache = config.cache.unwrap();
        assert_eq!(cache.ttl, Duration::from_secs(300));
        assert_eq!(cache.max_entries, 10);
        assert_eq!(
            config.backend_ref,
            BackendRef::Url("http://127.0.0.1:9000".into())
        );
    }

    #[test]
    fn backend_ref_without_namespace() {
        let backend: BackendRef =
            serde_json::from_value(json!({"name": "authz", "port": 8080})).unwrap();
        assert_eq!(backend.uri(), "http://authz:8080");
    }

    #[test]
    fn backend_ref_must_pick_one_form() {
        for bad in [
            json!({"url": "http://a:1", "name": "a", "port": 1}),
            json!({"name": "a"}),
            json!({}),
        ] {
            let err = serde_json::from_value::<BackendRef>(bad).unwrap_err();
            assert!(err.to_string().contains("either `url`"), "{err}");
        }
        assert!(serde_json::from_value::<BackendRef>(json!({"url": "x", "host": "y"})).is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<ExtAuthConfig>(json!({
            "backendRef": {"url": "http://a:1"}, "grpc": {}, "failOpen": true
        }))
        .unwrap_err();
        assert!(err.to_string().contains("failOpen"), "{err}");
        assert!(
            serde_json::from_value::<ExtAuthConfig>(json!({
                "backendRef": {"url": "http://a:1"}, "grpc": {"authority": "x"}
            }))
            .is_err()
        );
    }

    #[test]
    fn bad_timeout_is_explained() {
        let err = serde_json::from_value::<ExtAuthConfig>(json!({
            "backendRef": {"url": "http://a:1"}, "grpc": {}, "timeout": "soon"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("invalid duration `soon`"), "{err}");
        // A number is seconds, as for every duration of every layer.
        let config: ExtAuthConfig = serde_json::from_value(json!({
            "backendRef": {"url": "http://a:1"}, "grpc": {}, "timeout": 0.25
        }))
        .unwrap();
        assert_eq!(config.timeout, Some(Duration::from_millis(250)));
    }

    #[test]
    fn builders_write_what_yaml_writes() {
        let yaml = "
backendRef: {name: authz, namespace: security, port: 9000}
http: {pathPrefix: /authz, allowedHeaders: [x-user], maxConnections: 8}
failureModeAllow: true
timeout: 1s
statusOnError: 503
includeRequestBody: {maxRequestBytes: 1024, packAsBytes: true}
cache: {key: ['header:authorization', path], ttl: 5m, maxEntries: 10}
";
        let from_yaml: ExtAuthConfig = serde_saphyr::from_str(yaml).unwrap();
        let built = ExtAuthConfig::default()
            .backend_ref(BackendRef::service("authz", 9000).namespace("security"))
            .grpc(GrpcOptions::default())
            .http(
                HttpOptions::default()
                    .path_prefix("/authz")
                    .allowed_headers(["x-user"])
                    .max_connections(8),
            )
            .failure_mode_allow(true)
            .timeout(Duration::from_secs(1))
            .status_on_error(503)
            .include_request_body(
                IncludeRequestBody::default()
                    .max_request_bytes(1024)
                    .pack_as_bytes(true),
            )
            .cache(
                DecisionCacheConfig::default()
                    .key(["header:authorization", "path"])
                    .ttl(Duration::from_secs(300))
                    .max_entries(10),
            );
        assert_eq!(built, from_yaml);
        assert_eq!(built.grpc, None, "choosing http drops grpc");
    }

    #[test]
    fn cache_key_parts_round_trip() {
        for text in [
            "method",
            "host",
            "path",
            "source.ip",
            "body",
            "header:x-user",
        ] {
            assert_eq!(text.parse::<CacheKeyPart>().unwrap().to_string(), text);
        }
        assert!("header:bad header".parse::<CacheKeyPart>().is_err());
        assert!(
            "jwt.sub"
                .parse::<CacheKeyPart>()
                .unwrap_err()
                .contains("header:<name>")
        );
    }
}
