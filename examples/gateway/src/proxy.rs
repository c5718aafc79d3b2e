//! Forwarding to a reqwest upstream.
//!
//! [`Upstream`] is the innermost service of every route: it strips the route prefix, joins the
//! rest of the path to the backend URL, removes hop-by-hop headers, appends `x-forwarded-for`,
//! lets the client set `host` from the backend URL, and streams both bodies. A connection failure
//! is a 502 and a backend that does not answer within its timeout a 504, both rendered by
//! [`agentgw_core::Rejection`] in the route's protocol. Dropping the response future or body (the
//! client went away) drops the upstream request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agentgw_core::identity::ClientAddr;
use agentgw_core::{BoxError, Rejection, ResponseShape};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::BodyExt;

use crate::ResBody;

const LAYER: &str = "upstream";

/// The settings of every upstream client; a route may add its own TLS configuration.
pub fn client_builder(connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout)
        // A proxy forwards the client's headers; it does not add its own `accept`.
        .default_headers(HeaderMap::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
}

std::thread_local! {
    /// The index of the per-core worker running on this thread, if any.
    static WORKER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Marks the current thread as per-core worker `index`: upstreams built with one client per
/// worker use that worker's client (and its connection pool) on this thread.
pub(crate) fn enter_worker(index: usize) {
    WORKER.with(|worker| worker.set(Some(index)));
}

/// The innermost service of a route: forwards to the backend. See the [module docs](self).
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    /// The shared client, then one client per per-core worker: a worker's connections stay on
    /// its own runtime, so an upstream exchange never wakes another thread.
    clients: Box<[reqwest::Client]>,
    /// The backend URL, parsed once: per request only its path and query change.
    base: url::Url,
    /// Backend base path without trailing slash (may be empty).
    base_path: String,
    /// Route prefix without trailing slash (empty for `/`).
    prefix: String,
    timeout: Duration,
}

impl Upstream {
    /// An upstream for `backend_url` behind the route prefix `prefix`, using `client` on every
    /// thread.
    pub fn new(
        client: reqwest::Client,
        backend_url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        Self::per_worker(vec![client], backend_url, prefix, timeout)
    }

    /// Like [`Upstream::new`] with one client per per-core worker: `clients[0]` serves threads
    /// that are not workers, `clients[i + 1]` worker `i`. `clients` must not be empty.
    pub fn per_worker(
        clients: Vec<reqwest::Client>,
        backend_url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let base = url::Url::parse(backend_url).map_err(|e| format!("invalid backend URL: {e}"))?;
        if !base.has_host() {
            return Err("backend URL needs a host".to_owned());
        }
        if clients.is_empty() {
            return Err("an upstream needs a client".to_owned());
        }
        let base_path = base.path().trim_end_matches('/').to_owned();
        Ok(Upstream {
            inner: Arc::new(Inner {
                clients: clients.into_boxed_slice(),
                base,
                base_path,
                prefix: crate::config::normalize_prefix(prefix)
                    .trim_end_matches('/')
                    .to_owned(),
                timeout,
            }),
        })
    }

    /// The upstream URL for a request, built from the parsed base URL (no re-parsing of the
    /// host per request).
    fn target(&self, uri: &Uri) -> url::Url {
        let path = uri.path();
        let rest = path
            .strip_prefix(self.inner.prefix.as_str())
            .unwrap_or(path);
        let base_path = self.inner.base_path.as_str();
        let mut url = self.inner.base.clone();
        if rest.is_empty() {
            url.set_path(if base_path.is_empty() { "/" } else { base_path });
        } else {
            let slash = if rest.starts_with('/') { "" } else { "/" };
            let mut joined = String::with_capacity(base_path.len() + slash.len() + rest.len());
            joined.push_str(base_path);
            joined.push_str(slash);
            joined.push_str(rest);
            url.set_path(&joined);
        }
        url.set_query(uri.query());
        url
    }

    /// The client of the current thread.
    fn client(&self) -> &reqwest::Client {
        let clients = &self.inner.clients;
        WORKER
            .with(std::cell::Cell::get)
            .and_then(|index| clients.get(index + 1))
            .unwrap_or(&clients[0])
    }

    /// The upstream URL for a request path and query.
    pub fn target_url(&self, uri: &Uri) -> String {
        self.target(uri).into()
    }
}

impl<B> tower::Service<Request<B>> for Upstream
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(req).await) })
    }
}

impl Upstream {
    async fn forward<B>(self, req: Request<B>) -> Response<ResBody>
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let url = self.target(req.uri());
        let (parts, body) = req.into_parts();
        // The denial shape (OpenAI error, JSON-RPC error with the id) is only worked out when
        // the upstream fails.
        let shape = || ResponseShape::from_parts(parts.uri.path(), &parts.extensions);
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        // reqwest sets `host` from the URL; the original goes in x-forwarded-host.
        if let Some(host) = headers.remove(header::HOST) {
            headers.insert(HeaderName::from_static("x-forwarded-host"), host);
        }
        if let Some(ClientAddr(addr)) = parts.extensions.get::<ClientAddr>() {
            append_forwarded_for(&mut headers, addr.ip());
        }
        // Built in place rather than through `RequestBuilder`, which would copy every header
        // into a new map.
        let mut request = reqwest::Request::new(parts.method.clone(), url);
        *request.headers_mut() = headers;
        if !body.is_end_stream() {
            *request.body_mut() = Some(reqwest::Body::wrap(body));
        }
        let client = self.client();
        let sent = tokio::time::timeout(self.inner.timeout, client.execute(request)).await;
        let response = match sent {
            Ok(Ok(response)) => response,
            Err(_elapsed) => {
                tracing::warn!(timeout = ?self.inner.timeout, "upstream timed out");
                return reject(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", &shape());
            }
            Ok(Err(err)) if err.is_timeout() => {
                tracing::warn!(error = %err, "upstream timed out");
                return reject(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", &shape());
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, connect = err.is_connect(), "upstream request failed");
                let reason = if err.is_connect() {
                    "upstream_connect"
                } else {
                    "upstream_error"
                };
                return reject(StatusCode::BAD_GATEWAY, reason, &shape());
            }
        };
        let mut response: Response<reqwest::Body> = response.into();
        strip_hop_by_hop(response.headers_mut());
        response.map(|body| body.map_err(BoxError::from).boxed_unsync())
    }
}

fn reject(status: StatusCode, reason: &'static str, shape: &ResponseShape) -> Response<ResBody> {
    let rejection = Rejection::new(status, LAYER, reason);
    rejection.record();
    rejection
        .into_response(shape)
        .map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

/// Headers that describe one hop and are never forwarded (RFC 9110 section 7.6.1), plus every
/// header the `connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names first: most messages carry no hop-by-hop header at all, and a
    // scan is cheaper than nine hashed removals.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        strip_connection_named(headers);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Removes the headers the `connection` header names.
fn strip_connection_named(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, ip: std::net::IpAddr) {
    let name = HeaderName::from_static("x-forwarded-for");
    let value = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {ip}"),
        _ => ip.to_string(),
    };
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str, prefix: &str) -> Upstream {
        Upstream::new(reqwest::Client::new(), url, prefix, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn prefix_is_stripped_and_joined() {
        let u = upstream("http://127.0.0.1:4000/v1", "/openai");
        let url = |p: &str| u.target_url(&p.parse().unwrap());
        assert_eq!(
            url("/openai/chat/completions"),
            "http://127.0.0.1:4000/v1/chat/completions"
        );
        assert_eq!(url("/openai"), "http://127.0.0.1:4000/v1");
        assert_eq!(
            url("/openai/models?x=1"),
            "http://127.0.0.1:4000/v1/models?x=1"
        );

        let root = upstream("http://127.0.0.1:4000/", "/");
        assert_eq!(
            root.target_url(&"/".parse().unwrap()),
            "http://127.0.0.1:4000/"
        );
        assert_eq!(
            root.target_url(&"/a/b".parse().unwrap()),
            "http://127.0.0.1:4000/a/b"
        );

        let slash = upstream("http://h:1/mcp/", "/tools/");
        assert_eq!(
            slash.target_url(&"/tools/".parse().unwrap()),
            "http://h:1/mcp/"
        );
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn each_hop_by_hop_header_alone_is_removed() {
        for name in [
            "connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "keep-alive",
            "proxy-connection",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("a/b"));
            strip_hop_by_hop(&mut headers);
            assert!(!headers.contains_key(name), "{name} was forwarded");
            assert!(headers.contains_key(header::CONTENT_TYPE));
        }
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, "10.0.0.1".parse().unwrap());
        append_forwarded_for(&mut headers, "127.0.0.1".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    }
}
