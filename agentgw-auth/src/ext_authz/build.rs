//! From an [`ExtAuthConfig`] to what every check shares: every field validated, the protocol
//! client and the decision cache built. No connection is made here.

use std::collections::HashMap;

use http::{HeaderName, StatusCode, Uri};

use super::cache::DecisionCache;
use super::check::{Client, Shared};
use super::config::{
    BackendRef, CacheKeyPart, DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT, ExtAuthConfig, HttpOptions,
};
use super::grpc::GrpcClient;
use super::http_client::{HttpClient, HttpSettings};
use crate::Error;

/// Validates `config` and builds the shared state of a layer. Errors name the field relative
/// to the `extAuth` block.
pub(super) fn shared(config: &ExtAuthConfig) -> Result<Shared, Error> {
    let protocol = match (&config.grpc, &config.http) {
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
        (Some(_), None) => None,
        (None, Some(http)) => Some(http),
    };
    let timeout = config.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(Error::invalid("timeout", "must be greater than zero"));
    }
    let status_on_error = match config.status_on_error {
        None => StatusCode::FORBIDDEN,
        Some(code) => StatusCode::from_u16(code)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or_else(|| {
                Error::invalid(
                    "statusOnError",
                    format!("{code} is not a 4xx or 5xx status"),
                )
            })?,
    };
    let max_request_bytes = config
        .include_request_body
        .as_ref()
        .map(|body| body.max_request_bytes);
    if max_request_bytes == Some(0) {
        return Err(Error::invalid(
            "includeRequestBody.maxRequestBytes",
            "must be at least 1",
        ));
    }
    let uri = backend_uri(&config.backend_ref)?;
    // For health reports: scheme, host and port only (never userinfo or a query).
    let target = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority()
            .map_or("", |a| a.as_str().rsplit('@').next().unwrap_or(""))
    );
    let client = match protocol {
        None => {
            let field = uri_field(&config.backend_ref);
            if !matches!(uri.path(), "" | "/") {
                return Err(Error::invalid(
                    field,
                    format!("a gRPC service URL has no path (got {:?})", uri.path()),
                ));
            }
            let endpoint = tonic::transport::Endpoint::from(uri)
                .connect_timeout(timeout)
                .tcp_nodelay(true);
            let context_extensions: HashMap<String, String> = config
                .context_extensions
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            let pack_as_bytes = config
                .include_request_body
                .as_ref()
                .is_some_and(|body| body.pack_as_bytes);
            Client::Grpc(GrpcClient::new(
                endpoint,
                &context_extensions,
                pack_as_bytes,
                timeout,
            ))
        }
        Some(http) => {
            if !config.context_extensions.is_empty() {
                return Err(Error::invalid(
                    "contextExtensions",
                    "only sent over gRPC: the HTTP protocol has no field for them",
                ));
            }
            Client::Http(HttpClient::new(http_settings(http, &uri)?, timeout))
        }
    };
    let cache = match &config.cache {
        None => None,
        Some(cache) => {
            let key = cache
                .key
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    text.parse::<CacheKeyPart>()
                        .map_err(|reason| Error::invalid(format!("cache.key[{i}]"), reason))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if key.is_empty() {
                return Err(Error::invalid(
                    "cache.key",
                    "name at least one attribute, e.g. header:authorization",
                ));
            }
            if max_request_bytes.is_some() && !key.contains(&CacheKeyPart::Body) {
                return Err(Error::invalid(
                    "cache.key",
                    "the body is sent to the service (includeRequestBody), so its decision \
                     may depend on it: add `body` to the key",
                ));
            }
            if cache.ttl.is_zero() {
                return Err(Error::invalid("cache.ttl", "must be greater than zero"));
            }
            if cache.max_entries == 0 {
                return Err(Error::invalid("cache.maxEntries", "must be at least 1"));
            }
            Some(DecisionCache::new(key, cache.ttl, cache.max_entries))
        }
    };
    Ok(Shared {
        target,
        state: Default::default(),
        client,
        timeout,
        failure_mode_allow: config.failure_mode_allow,
        status_on_error,
        max_request_bytes,
        cache,
    })
}

/// What the HTTP protocol sends and copies, from `http: {...}`.
fn http_settings(http: &HttpOptions, uri: &Uri) -> Result<HttpSettings, Error> {
    let max_connections = http.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(Error::invalid("http.maxConnections", "must be at least 1"));
    }
    if !http.path_prefix.is_empty() && !http.path_prefix.starts_with('/') {
        return Err(Error::invalid("http.pathPrefix", "must start with `/`"));
    }
    let base = format!(
        "{}://{}{}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path().trim_end_matches('/'),
        http.path_prefix.trim_end_matches('/'),
    );
    let mut forward = vec![http::header::AUTHORIZATION];
    forward.extend(
        header_names("http.allowedHeaders", &http.allowed_headers)?
            .into_iter()
            .filter(|name| name != http::header::AUTHORIZATION),
    );
    let upstream = header_names(
        "http.allowedUpstreamHeaders",
        &http.allowed_upstream_headers,
    )?;
    let client = match &http.allowed_client_headers {
        Some(names) => Some(header_names("http.allowedClientHeaders", names)?),
        None => None,
    };
    Ok(HttpSettings {
        base,
        forward,
        upstream,
        client,
        max_connections,
    })
}

/// The field a problem with the service's address is reported at.
fn uri_field(backend: &BackendRef) -> &'static str {
    match backend {
        BackendRef::Url(_) => "backendRef.url",
        BackendRef::Service { .. } => "backendRef.name",
    }
}

/// The service's `http://` URL, checked.
fn backend_uri(backend: &BackendRef) -> Result<Uri, Error> {
    if matches!(backend, BackendRef::Url(url) if url.is_empty()) {
        return Err(Error::invalid(
            "backendRef",
            "name the authorization service: `url: http://host:port`, or `name` and `port`",
        ));
    }
    let field = uri_field(backend);
    let text = backend.uri();
    let uri: Uri = text
        .parse()
        .map_err(|e| Error::invalid(field, format!("invalid URL {text:?}: {e}")))?;
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
                format!("{text:?} must start with http://, e.g. http://127.0.0.1:9000"),
            ));
        }
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(Error::invalid(field, format!("{text:?} has no host")));
    }
    if uri.query().is_some() {
        return Err(Error::invalid(
            field,
            format!("{text:?} must not have a query"),
        ));
    }
    Ok(uri)
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

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ConfigError as _;
    use serde_json::json;

    fn path_of(value: serde_json::Value) -> String {
        let config: ExtAuthConfig = serde_json::from_value(value).unwrap();
        shared(&config).err().unwrap().path().to_owned()
    }

    #[test]
    fn seed_and_url_forms_build_without_a_runtime() {
        let config: ExtAuthConfig = serde_json::from_value(json!({
            "backendRef": {"name": "ext-authz-service", "namespace": "security", "port": 9000},
            "grpc": {},
            "failureModeAllow": false
        }))
        .unwrap();
        shared(&config).unwrap();
        let config: ExtAuthConfig = serde_json::from_value(json!({
            "backendRef": {"url": "http://127.0.0.1:9000/base/"},
            "http": {"pathPrefix": "/check/", "allowedHeaders": ["x-user"]},
            "timeout": "50ms",
        }))
        .unwrap();
        let debug = format!("{:?}", shared(&config).unwrap());
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
            path_of(json!({"backendRef": {"url": "http://a:1"}})),
            "grpc"
        );
        assert_eq!(
            path_of(json!({"backendRef": {"url": "http://a:1"}, "grpc": {}, "http": {}})),
            "http"
        );
        assert_eq!(
            path_of(json!({"backendRef": {"url": "127.0.0.1:9000"}, "grpc": {}})),
            "backendRef.url"
        );
        assert_eq!(
            path_of(json!({"backendRef": {"url": "https://a:1"}, "grpc": {}})),
            "backendRef.url"
        );
        assert_eq!(
            path_of(json!({"backendRef": {"url": "http://a:1/x"}, "grpc": {}})),
            "backendRef.url"
        );
        assert_eq!(
            path_of(json!({"backendRef": {"name": "bad name", "port": 1}, "grpc": {}})),
            "backendRef.name"
        );
        assert_eq!(path_of(grpc(json!({"timeout": "0s"}))), "timeout");
        assert_eq!(
            path_of(grpc(json!({"statusOnError": 200}))),
            "statusOnError"
        );
        assert_eq!(
            path_of(grpc(json!({"includeRequestBody": {"maxRequestBytes": 0}}))),
            "includeRequestBody.maxRequestBytes"
        );
        assert_eq!(path_of(grpc(json!({"cache": {"key": []}}))), "cache.key");
        assert_eq!(
            path_of(grpc(json!({"cache": {"key": ["method", "jwt.sub"]}}))),
            "cache.key[1]"
        );
        assert_eq!(
            path_of(grpc(
                json!({"includeRequestBody": {"maxRequestBytes": 8}, "cache": {"key": ["path"]}})
            )),
            "cache.key"
        );
        assert_eq!(
            path_of(grpc(json!({"cache": {"key": ["path"], "maxEntries": 0}}))),
            "cache.maxEntries"
        );
        let http = json!({"backendRef": {"url": "http://a:1"}, "http": {"allowedHeaders": ["ok", "not ok"]}});
        assert_eq!(path_of(http), "http.allowedHeaders[1]");
        let http =
            json!({"backendRef": {"url": "http://a:1"}, "http": {"allowedClientHeaders": ["a b"]}});
        assert_eq!(path_of(http), "http.allowedClientHeaders[0]");
        let http = json!({"backendRef": {"url": "http://a:1"}, "http": {}, "contextExtensions": {"a": "b"}});
        assert_eq!(path_of(http), "contextExtensions");
        let http = json!({"backendRef": {"url": "http://a:1"}, "http": {"maxConnections": 0}});
        assert_eq!(path_of(http), "http.maxConnections");
        let http = json!({"backendRef": {"url": "http://a:1"}, "http": {"pathPrefix": "x"}});
        assert_eq!(path_of(http), "http.pathPrefix");
    }

    #[test]
    fn the_default_config_reports_what_is_missing() {
        use super::super::config::GrpcOptions;
        let err = shared(&ExtAuthConfig::default()).err().unwrap();
        assert_eq!(err.path(), "grpc");
        let err = shared(&ExtAuthConfig::default().grpc(GrpcOptions::default()))
            .err()
            .unwrap();
        assert_eq!(err.path(), "backendRef");
        assert!(err.reason().contains("url: http://host:port"), "{err}");
    }
}
