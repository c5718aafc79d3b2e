//! [`ExtAuthLayer`], its builder, and the check every request goes through.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode, Uri};
use metrics::{Key, Label, Metadata};
use tower_layer::Layer;
use tracing::field::Empty;
use tracing::{Instrument as _, Span};

use agentgw_core::{BodyLimit, Rejection};

use super::cache::DecisionCache;
use super::config::{BackendRef, CacheKeyPart, ExtAuthConfig};
use super::decision::{Allow, CheckError, Deny, Verdict};
use super::grpc::GrpcClient;
use super::http_client::{HttpClient, HttpSettings};
use super::input::BodyPrefix;
use super::service::ExtAuthService;
use super::{CHECK_DURATION_SECONDS, CHECKS_TOTAL, LAYER};
use crate::Error;

/// The default time one authorization call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// A deadline that never comes, for timeouts too large to add to an instant (as `tokio` does).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The default most connections the HTTP protocol opens to the service.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

/// Asks an external authorization service about every request before it is forwarded.
///
/// Config only, cheap to clone (the connection pool and cache are shared). Build it with
/// [`ExtAuthLayer::grpc`], [`ExtAuthLayer::http`] or [`ExtAuthLayer::from_config`]. See the
/// [module docs](super) for an example.
#[derive(Clone)]
pub struct ExtAuthLayer {
    shared: Arc<Shared>,
    body_limit: BodyLimit,
}

impl ExtAuthLayer {
    /// Starts a layer that calls Envoy's `envoy.service.auth.v3.Authorization/Check` at `uri`
    /// (`http://host:port`).
    pub fn grpc(uri: impl Into<String>) -> ExtAuthBuilder {
        ExtAuthBuilder::new(Protocol::Grpc, uri.into())
    }

    /// Starts a layer that calls a plain HTTP authorization service at `uri`
    /// (`http://host:port`, optionally with a path prefix).
    pub fn http(uri: impl Into<String>) -> ExtAuthBuilder {
        ExtAuthBuilder::new(Protocol::Http, uri.into())
    }

    /// Builds the layer from the `extAuth` configuration block.
    ///
    /// Errors name the offending field relative to the block, e.g. `backendRef.url` or
    /// `http.allowedHeaders[1]`. No connection is made here: the service is first contacted by
    /// the first request.
    pub fn from_config(config: &ExtAuthConfig) -> Result<Self, Error> {
        let uri = config.backend_ref.uri();
        let mut builder = match (&config.grpc, &config.http) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "http",
                    "set either `grpc: {}` or `http: {}`, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "grpc",
                    "choose the protocol: `grpc: {}` (Envoy ext_authz) or `http: {}` (plain HTTP)",
                ));
            }
            (Some(_), None) => ExtAuthLayer::grpc(uri),
            (None, Some(http)) => {
                let mut builder = ExtAuthLayer::http(uri).path_prefix(&http.path_prefix);
                for name in header_names("http.allowedHeaders", &http.allowed_headers)? {
                    builder = builder.allowed_header(name);
                }
                for name in header_names(
                    "http.allowedUpstreamHeaders",
                    &http.allowed_upstream_headers,
                )? {
                    builder = builder.allowed_upstream_header(name);
                }
                if let Some(names) = &http.allowed_client_headers {
                    builder = builder
                        .allowed_client_headers(header_names("http.allowedClientHeaders", names)?);
                }
                if let Some(max) = http.max_connections {
                    builder = builder.max_connections(max);
                }
                builder
            }
        };
        builder.uri_field = match config.backend_ref {
            BackendRef::Url(_) => "backendRef.url",
            BackendRef::Service { .. } => "backendRef.name",
        };
        builder = builder.failure_mode_allow(config.failure_mode_allow);
        if let Some(timeout) = config.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(code) = config.status_on_error {
            let status = StatusCode::from_u16(code)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .ok_or_else(|| {
                    Error::invalid(
                        "statusOnError",
                        format!("{code} is not a 4xx or 5xx status"),
                    )
                })?;
            builder = builder.status_on_error(status);
        }
        if let Some(body) = &config.include_request_body {
            builder = builder
                .include_request_body(body.max_request_bytes)
                .pack_body_as_bytes(body.pack_as_bytes);
        }
        for (key, value) in &config.context_extensions {
            builder = builder.context_extension(key, value);
        }
        if let Some(cache) = &config.cache {
            let key = cache
                .key
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    text.parse::<CacheKeyPart>()
                        .map_err(|reason| Error::invalid(format!("cache.key[{i}]"), reason))
                })
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.decision_cache(cache.ttl, cache.max_entries, key);
        }
        builder.build()
    }

    /// The most body bytes read into memory when `includeRequestBody` is set (default
    /// [`BodyLimit::DEFAULT`]); a larger body is a 413. The whole body is read once and shared
    /// with later layers; only `maxRequestBytes` of it go to the service.
    pub fn body_limit(mut self, limit: BodyLimit) -> Self {
        self.body_limit = limit;
        self
    }
}

impl<S> Layer<S> for ExtAuthLayer {
    type Service = ExtAuthService<S>;

    fn layer(&self, inner: S) -> ExtAuthService<S> {
        ExtAuthService::new(inner, self.shared.clone(), self.body_limit)
    }
}

impl fmt::Debug for ExtAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtAuthLayer")
            .field("shared", &self.shared)
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    Http,
}

/// Builds an [`ExtAuthLayer`]; start with [`ExtAuthLayer::grpc`] or [`ExtAuthLayer::http`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ExtAuthBuilder {
    protocol: Protocol,
    uri: String,
    uri_field: &'static str,
    timeout: Duration,
    failure_mode_allow: bool,
    status_on_error: StatusCode,
    max_request_bytes: Option<usize>,
    pack_as_bytes: bool,
    context_extensions: HashMap<String, String>,
    path_prefix: String,
    allowed_headers: Vec<HeaderName>,
    allowed_upstream_headers: Vec<HeaderName>,
    allowed_client_headers: Option<Vec<HeaderName>>,
    max_connections: Option<usize>,
    cache: Option<(Duration, usize, Vec<CacheKeyPart>)>,
}

impl ExtAuthBuilder {
    fn new(protocol: Protocol, uri: String) -> Self {
        ExtAuthBuilder {
            protocol,
            uri,
            uri_field: "backendRef.url",
            timeout: DEFAULT_TIMEOUT,
            failure_mode_allow: false,
            status_on_error: StatusCode::FORBIDDEN,
            max_request_bytes: None,
            pack_as_bytes: false,
            context_extensions: HashMap::new(),
            path_prefix: String::new(),
            allowed_headers: Vec::new(),
            allowed_upstream_headers: Vec::new(),
            allowed_client_headers: None,
            max_connections: None,
            cache: None,
        }
    }

    /// How long one call may take, connection included (default 200 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Forward requests when the service is down, slow or answers nonsense (default: deny).
    pub fn failure_mode_allow(mut self, allow: bool) -> Self {
        self.failure_mode_allow = allow;
        self
    }

    /// The status of the denial sent when the service fails (default 403).
    pub fn status_on_error(mut self, status: StatusCode) -> Self {
        self.status_on_error = status;
        self
    }

    /// Send at most `max_bytes` of the request body with each check.
    pub fn include_request_body(mut self, max_bytes: usize) -> Self {
        self.max_request_bytes = Some(max_bytes);
        self
    }

    /// gRPC: send the body in `raw_body` (bytes) instead of `body` (UTF-8 text).
    pub fn pack_body_as_bytes(mut self, pack: bool) -> Self {
        self.pack_as_bytes = pack;
        self
    }

    /// gRPC: add a context extension sent with every check.
    pub fn context_extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context_extensions.insert(key.into(), value.into());
        self
    }

    /// HTTP: prepend `prefix` to the request path.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = prefix.to_owned();
        self
    }

    /// HTTP: also send this request header (`authorization` is always sent).
    pub fn allowed_header(mut self, name: HeaderName) -> Self {
        self.allowed_headers.push(name);
        self
    }

    /// HTTP: copy this header of an allowing answer onto the upstream request.
    pub fn allowed_upstream_header(mut self, name: HeaderName) -> Self {
        self.allowed_upstream_headers.push(name);
        self
    }

    /// HTTP: pass only these headers of a denying answer to the client (default: all but
    /// connection-level ones).
    pub fn allowed_client_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.allowed_client_headers = Some(names.into_iter().collect());
        self
    }

    /// HTTP: open at most `max` connections to the service (default 128); further checks wait
    /// for a free one within their timeout.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// Reuse decisions for `ttl`, keeping at most `max_entries`, keyed by `key`.
    pub fn decision_cache(
        mut self,
        ttl: Duration,
        max_entries: usize,
        key: impl IntoIterator<Item = CacheKeyPart>,
    ) -> Self {
        self.cache = Some((ttl, max_entries, key.into_iter().collect()));
        self
    }

    /// Validates the settings and builds the layer. No connection is made.
    pub fn build(self) -> Result<ExtAuthLayer, Error> {
        if self.timeout.is_zero() {
            return Err(Error::invalid("timeout", "must be greater than zero"));
        }
        if self.max_request_bytes == Some(0) {
            return Err(Error::invalid(
                "includeRequestBody.maxRequestBytes",
                "must be at least 1",
            ));
        }
        let uri = self.backend_uri()?;
        let client = match self.protocol {
            Protocol::Grpc => {
                self.refuse_http_options()?;
                if !matches!(uri.path(), "" | "/") {
                    return Err(Error::invalid(
                        self.uri_field,
                        format!("a gRPC service URL has no path (got {:?})", uri.path()),
                    ));
                }
                let endpoint = tonic::transport::Endpoint::from(uri)
                    .connect_timeout(self.timeout)
                    .tcp_nodelay(true);
                Client::Grpc(GrpcClient::new(
                    endpoint,
                    &self.context_extensions,
                    self.pack_as_bytes,
                    self.timeout,
                ))
            }
            Protocol::Http => {
                if !self.context_extensions.is_empty() {
                    return Err(Error::invalid(
                        "contextExtensions",
                        "only sent over gRPC: the HTTP protocol has no field for them",
                    ));
                }
                let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
                if max_connections == 0 {
                    return Err(Error::invalid("http.maxConnections", "must be at least 1"));
                }
                if !self.path_prefix.is_empty() && !self.path_prefix.starts_with('/') {
                    return Err(Error::invalid("http.pathPrefix", "must start with `/`"));
                }
                let base = format!(
                    "{}://{}{}{}",
                    uri.scheme_str().unwrap_or("http"),
                    uri.authority().map_or("", |a| a.as_str()),
                    uri.path().trim_end_matches('/'),
                    self.path_prefix.trim_end_matches('/'),
                );
                let mut forward = vec![http::header::AUTHORIZATION];
                forward.extend(
                    self.allowed_headers
                        .iter()
                        .filter(|&n| n != http::header::AUTHORIZATION)
                        .cloned(),
                );
                let settings = HttpSettings {
                    base,
                    forward,
                    upstream: self.allowed_upstream_headers.clone(),
                    client: self.allowed_client_headers.clone(),
                    max_connections,
                };
                Client::Http(HttpClient::new(settings, self.timeout))
            }
        };
        let cache = match self.cache {
            None => None,
            Some((ttl, max_entries, key)) => {
                if key.is_empty() {
                    return Err(Error::invalid(
                        "cache.key",
                        "name at least one attribute, e.g. header:authorization",
                    ));
                }
                if self.max_request_bytes.is_some() && !key.contains(&CacheKeyPart::Body) {
                    return Err(Error::invalid(
                        "cache.key",
                        "the body is sent to the service (includeRequestBody), so its decision \
                         may depend on it: add `body` to the key",
                    ));
                }
                if ttl.is_zero() {
                    return Err(Error::invalid("cache.ttl", "must be greater than zero"));
                }
                if max_entries == 0 {
                    return Err(Error::invalid("cache.maxEntries", "must be at least 1"));
                }
                Some(DecisionCache::new(key, ttl, max_entries))
            }
        };
        Ok(ExtAuthLayer {
            shared: Arc::new(Shared {
                client,
                timeout: self.timeout,
                failure_mode_allow: self.failure_mode_allow,
                status_on_error: self.status_on_error,
                max_request_bytes: self.max_request_bytes,
                cache,
            }),
            body_limit: BodyLimit::DEFAULT,
        })
    }

    fn backend_uri(&self) -> Result<Uri, Error> {
        let field = self.uri_field;
        let uri: Uri = self
            .uri
            .parse()
            .map_err(|e| Error::invalid(field, format!("invalid URL {:?}: {e}", self.uri)))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(Error::invalid(
                    field,
                    "https is not supported yet: use http:// (a cluster-local service or a TLS \
                     sidecar)",
                ));
            }
            _ => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "{:?} must start with http://, e.g. http://127.0.0.1:9000",
                        self.uri
                    ),
                ));
            }
        }
        if uri.authority().is_none_or(|a| a.host().is_empty()) {
            return Err(Error::invalid(field, format!("{:?} has no host", self.uri)));
        }
        if uri.query().is_some() {
            return Err(Error::invalid(
                field,
                format!("{:?} must not have a query", self.uri),
            ));
        }
        Ok(uri)
    }

    fn refuse_http_options(&self) -> Result<(), Error> {
        let set = [
            ("http.pathPrefix", !self.path_prefix.is_empty()),
            ("http.allowedHeaders", !self.allowed_headers.is_empty()),
            (
                "http.allowedUpstreamHeaders",
                !self.allowed_upstream_headers.is_empty(),
            ),
            (
                "http.allowedClientHeaders",
                self.allowed_client_headers.is_some(),
            ),
            ("http.maxConnections", self.max_connections.is_some()),
        ];
        match set.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(Error::invalid(*field, "only used by the HTTP protocol")),
            None => Ok(()),
        }
    }
}

fn header_names(field: &str, names: &[String]) -> Result<Vec<HeaderName>, Error> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::invalid(
                    format!("{field}[{i}]"),
                    format!("{name:?} is not a header name"),
                )
            })
        })
        .collect()
}

/// The protocol client.
#[allow(clippy::large_enum_variant, reason = "one per layer, behind an Arc")]
pub(crate) enum Client {
    Grpc(GrpcClient),
    Http(HttpClient),
}

impl Client {
    fn protocol(&self) -> &'static str {
        match self {
            Client::Grpc(_) => "grpc",
            Client::Http(_) => "http",
        }
    }

    /// The metric keys of this protocol's common path.
    fn keys(&self) -> &'static HotKeys {
        match self {
            Client::Grpc(_) => &GRPC_KEYS,
            Client::Http(_) => &HTTP_KEYS,
        }
    }
}

/// Metric keys every allowed request records, built at compile time: `metrics::counter!` with
/// label values that are not literals allocates the key's labels on every call.
struct HotKeys {
    allowed: Key,
    duration: Key,
}

macro_rules! hot_keys {
    ($protocol:literal) => {{
        static ALLOWED: [Label; 3] = [
            Label::from_static_parts("protocol", $protocol),
            Label::from_static_parts("outcome", "allowed"),
            Label::from_static_parts("reason", "ok"),
        ];
        static PROTOCOL: [Label; 1] = [Label::from_static_parts("protocol", $protocol)];
        HotKeys {
            allowed: Key::from_static_parts(CHECKS_TOTAL, &ALLOWED),
            duration: Key::from_static_parts(CHECK_DURATION_SECONDS, &PROTOCOL),
        }
    }};
}

static GRPC_KEYS: HotKeys = hot_keys!("grpc");
static HTTP_KEYS: HotKeys = hot_keys!("http");
/// What `metrics::counter!` would pass as metadata from this module.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// What the layer decided for one request.
#[allow(
    clippy::large_enum_variant,
    reason = "a short-lived return value, moved once"
)]
pub(crate) enum Outcome {
    /// Forward, with these changes.
    Allow(Arc<Allow>),
    /// Forward unchanged: the service failed and `failureModeAllow` is set.
    FailOpen,
    /// Answer with this denial.
    Reject(Rejection),
}

/// Everything a layer's services share.
pub(crate) struct Shared {
    client: Client,
    timeout: Duration,
    failure_mode_allow: bool,
    status_on_error: StatusCode,
    max_request_bytes: Option<usize>,
    cache: Option<DecisionCache>,
}

impl Shared {
    /// Whether the body must be buffered before the check.
    pub(crate) fn needs_body(&self) -> bool {
        self.max_request_bytes.is_some()
    }

    /// Checks the request: from the cache when it holds a decision, else by calling the
    /// service (bounded by the timeout). Counts and traces the outcome.
    pub(crate) async fn decide(&self, parts: &Parts) -> Outcome {
        let protocol = self.client.protocol();
        let body = self
            .max_request_bytes
            .and_then(|max| BodyPrefix::of(parts, max));
        let span = tracing::debug_span!(
            "ext_authz",
            protocol,
            cached = Empty,
            outcome = Empty,
            reason = Empty,
            latency_us = Empty
        );
        let key = self.cache.as_ref().map(|c| c.key(parts, body.as_ref()));
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(verdict) = cache.get(key)
        {
            span.record("cached", true);
            let _entered = span.enter();
            return self.settle(verdict, &span);
        }
        let started = Instant::now();
        // One clock read for both the latency and the deadline (what `timeout` would read again).
        let deadline = started
            .checked_add(self.timeout)
            .unwrap_or_else(|| started + FAR_FUTURE);
        let call = async {
            match &self.client {
                Client::Grpc(grpc) => {
                    grpc.check(parts, body.as_ref(), self.timeout, self.status_on_error)
                        .await
                }
                Client::Http(http) => http.check(parts, body.as_ref()).await,
            }
        };
        let result = tokio::time::timeout_at(deadline.into(), call.instrument(span.clone()))
            .await
            .unwrap_or(Err(CheckError::Timeout(self.timeout)));
        let latency = started.elapsed();
        metrics::with_recorder(|recorder| {
            recorder.register_histogram(&self.client.keys().duration, &METADATA)
        })
        .record(latency.as_secs_f64());
        span.record("latency_us", latency.as_micros() as u64);
        let _entered = span.enter();
        match result {
            Ok(verdict) => {
                if let (Some(cache), Some(key)) = (&self.cache, key) {
                    cache.insert(key, verdict.clone());
                }
                self.settle(verdict, &span)
            }
            Err(err) => self.fail(err, &span),
        }
    }

    fn settle(&self, verdict: Verdict, span: &Span) -> Outcome {
        let protocol = self.client.protocol();
        match verdict {
            Verdict::Allow(allow) => {
                metrics::with_recorder(|recorder| {
                    recorder.register_counter(&self.client.keys().allowed, &METADATA)
                })
                .increment(1);
                span.record("outcome", "allowed");
                Outcome::Allow(allow)
            }
            Verdict::Deny(deny) => {
                count(protocol, "denied", "denied");
                span.record("outcome", "denied");
                tracing::debug!(
                    status = deny.status.as_u16(),
                    "ext_authz denied the request"
                );
                Outcome::Reject(rejection(&deny, "denied"))
            }
        }
    }

    /// The denial for a decision whose changes cannot be applied (`None`: forward unchanged).
    pub(crate) fn fail_after_decision(&self, err: CheckError) -> Option<Rejection> {
        match self.fail(err, &Span::current()) {
            Outcome::Reject(rejection) => Some(rejection),
            Outcome::Allow(_) | Outcome::FailOpen => None,
        }
    }

    fn fail(&self, err: CheckError, span: &Span) -> Outcome {
        let protocol = self.client.protocol();
        let reason = err.reason();
        span.record("reason", reason);
        if self.failure_mode_allow {
            count(protocol, "failed_open", reason);
            span.record("outcome", "failed_open");
            tracing::warn!(error = %err, "ext_authz check failed; forwarding (failureModeAllow)");
            return Outcome::FailOpen;
        }
        count(protocol, "failed_closed", reason);
        span.record("outcome", "failed_closed");
        tracing::warn!(error = %err, "ext_authz check failed; denying");
        match err {
            CheckError::Service {
                response: Some(deny),
                ..
            } => Outcome::Reject(rejection(&deny, reason)),
            _ => Outcome::Reject(Rejection::new(self.status_on_error, LAYER, reason)),
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match &self.client {
            Client::Grpc(grpc) => grpc.uri().to_string(),
            Client::Http(http) => http.base().to_owned(),
        };
        f.debug_struct("ExtAuth")
            .field("protocol", &self.client.protocol())
            .field("backend", &backend)
            .field("timeout", &self.timeout)
            .field("failure_mode_allow", &self.failure_mode_allow)
            .field("status_on_error", &self.status_on_error)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

/// The denial the service described: its status and headers, and its body as it came (a
/// denial without a body gets the protocol-shaped error of the route instead, so LLM and MCP
/// clients still understand it).
fn rejection(deny: &Deny, reason: &'static str) -> Rejection {
    let mut rejection = Rejection::new(deny.status, LAYER, reason);
    for (name, value) in &deny.headers {
        rejection = rejection.with_header(name.clone(), value.clone());
    }
    if !deny.body.is_empty() {
        let content_type = deny
            .content_type
            .clone()
            .unwrap_or_else(|| HeaderValue::from_static("text/plain; charset=utf-8"));
        rejection = rejection.with_raw_body(content_type, Bytes::clone(&deny.body));
    }
    rejection
}

fn count(protocol: &'static str, outcome: &'static str, reason: &'static str) {
    metrics::counter!(
        CHECKS_TOTAL,
        "protocol" => protocol,
        "outcome" => outcome,
        "reason" => reason
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext_authz::config::ExtAuthConfig;
    use http::header::CONTENT_TYPE;
    use serde_json::json;

    fn from_json(value: serde_json::Value) -> Result<ExtAuthLayer, Error> {
        let config: ExtAuthConfig = serde_json::from_value(value).unwrap();
        ExtAuthLayer::from_config(&config)
    }

    fn field_of(value: serde_json::Value) -> String {
        from_json(value).unwrap_err().field().to_owned()
    }

    #[test]
    fn seed_and_url_forms_build_without_a_runtime() {
        from_json(json!({
            "backendRef": {"name": "ext-authz-service", "namespace": "security", "port": 9000},
            "grpc": {},
            "failureModeAllow": false
        }))
        .unwrap();
        let layer = from_json(json!({
            "backendRef": {"url": "http://127.0.0.1:9000/base/"},
            "http": {"pathPrefix": "/check/", "allowedHeaders": ["x-user"]},
            "timeout": "50ms",
        }))
        .unwrap();
        let debug = format!("{layer:?}");
        assert!(
            debug.contains("http://127.0.0.1:9000/base/check"),
            "{debug}"
        );
        assert!(debug.contains("50ms"), "{debug}");
    }

    #[test]
    fn errors_name_the_field() {
        let grpc = |extra: serde_json::Value| {
            let mut v = json!({"backendRef": {"url": "http://127.0.0.1:9000"}, "grpc": {}});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        assert_eq!(
            field_of(json!({"backendRef": {"url": "http://a:1"}})),
            "grpc"
        );
        assert_eq!(
            field_of(json!({"backendRef": {"url": "http://a:1"}, "grpc": {}, "http": {}})),
            "http"
        );
        assert_eq!(
            field_of(json!({"backendRef": {"url": "127.0.0.1:9000"}, "grpc": {}})),
            "backendRef.url"
        );
        assert_eq!(
            field_of(json!({"backendRef": {"url": "https://a:1"}, "grpc": {}})),
            "backendRef.url"
        );
        assert_eq!(
            field_of(json!({"backendRef": {"url": "http://a:1/x"}, "grpc": {}})),
            "backendRef.url"
        );
        assert_eq!(
            field_of(json!({"backendRef": {"name": "bad name", "port": 1}, "grpc": {}})),
            "backendRef.name"
        );
        assert_eq!(field_of(grpc(json!({"timeout": "0s"}))), "timeout");
        assert_eq!(
            field_of(grpc(json!({"statusOnError": 200}))),
            "statusOnError"
        );
        assert_eq!(
            field_of(grpc(json!({"includeRequestBody": {"maxRequestBytes": 0}}))),
            "includeRequestBody.maxRequestBytes"
        );
        assert_eq!(field_of(grpc(json!({"cache": {"key": []}}))), "cache.key");
        assert_eq!(
            field_of(grpc(json!({"cache": {"key": ["method", "jwt.sub"]}}))),
            "cache.key[1]"
        );
        assert_eq!(
            field_of(grpc(
                json!({"includeRequestBody": {"maxRequestBytes": 8}, "cache": {"key": ["path"]}})
            )),
            "cache.key"
        );
        assert_eq!(
            field_of(grpc(json!({"cache": {"key": ["path"], "maxEntries": 0}}))),
            "cache.maxEntries"
        );
        let http = json!({"backendRef": {"url": "http://a:1"}, "http": {"allowedHeaders": ["ok", "not ok"]}});
        assert_eq!(field_of(http), "http.allowedHeaders[1]");
        let http = json!({"backendRef": {"url": "http://a:1"}, "http": {}, "contextExtensions": {"a": "b"}});
        assert_eq!(field_of(http), "contextExtensions");
        let http = json!({"backendRef": {"url": "http://a:1"}, "http": {"maxConnections": 0}});
        assert_eq!(field_of(http), "http.maxConnections");
        let http = json!({"backendRef": {"url": "http://a:1"}, "http": {"pathPrefix": "x"}});
        assert_eq!(field_of(http), "http.pathPrefix");
    }

    #[test]
    fn http_options_are_refused_for_grpc() {
        let err = ExtAuthLayer::grpc("http://127.0.0.1:1")
            .allowed_header(HeaderName::from_static("x-user"))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "http.allowedHeaders");
    }

    #[test]
    fn rejection_relays_the_denial() {
        let deny = Deny {
            status: StatusCode::UNAUTHORIZED,
            headers: vec![(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic"),
            )],
            content_type: None,
            body: Bytes::from_static(b"who are you"),
        };
        let res = rejection(&deny, "denied").into_response(&agentgw_core::ResponseShape::OpenAi);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[http::header::WWW_AUTHENTICATE], "Basic");
        assert_eq!(res.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        let empty = Deny {
            body: Bytes::new(),
            ..deny
        };
        let res = rejection(&empty, "denied").into_response(&agentgw_core::ResponseShape::OpenAi);
        assert_eq!(
            res.headers()[CONTENT_TYPE],
            "application/json",
            "protocol-shaped error"
        );
    }
}
