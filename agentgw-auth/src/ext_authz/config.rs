//! The `extAuth` configuration block, as the seed writes it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Deserializer};

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
    #[serde(default, deserialize_with = "optional_duration")]
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

impl BackendRef {
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DecisionCacheConfig {
    /// The attributes a key is made of: `method`, `host`, `path` (with the query), `source.ip`,
    /// `body` (the bytes sent to the service) and `header:<name>`, e.g. `header:authorization`.
    pub key: Vec<String>,
    /// How long a decision is reused (default `30s`).
    #[serde(default = "default_cache_ttl", deserialize_with = "duration")]
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

fn default_cache_ttl() -> Duration {
    Duration::from_secs(30)
}

fn default_cache_entries() -> usize {
    10_000
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?} ({e}); use e.g. 200ms, 1s"))
}

fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    duration(de).map(Some)
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
        assert!(err.to_string().contains("200ms"), "{err}");
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
