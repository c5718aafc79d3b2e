//! Forwarding to an upstream.
//!
//! [`Upstream`] is the innermost service of every route: it strips the route prefix, joins the
//! rest of the path to the backend URL, removes hop-by-hop headers, appends `x-forwarded-for`,
//! lets the client set `host` from the backend URL, and streams both bodies. A connection failure
//! is a 502 and a backend that does not answer within its timeout (or cannot be connected to
//! within its connect timeout) a 504, both rendered by [`agentgw_core::Rejection`] in the route's
//! protocol. Dropping the response future or body (the client went away) drops the upstream
//! request.
//!
//! The clients are hyper's, used directly rather than through reqwest, which adds fixed work to
//! every request that a proxy does not need (its redirect layer turns the URI into a string and
//! parses it as a URL twice per exchange, the header map is copied, the response gets a URL of
//! its own): `http://` backends go through [`Http1Pool`], hyper's HTTP/1.1 connections with a
//! minimal pool; `https://` backends through hyper-util's pooled client with rustls (HTTP/1.1,
//! or HTTP/2 when the backend offers it). Measured with `examples/gateway/bench/load.sh`: see
//! `bench/README.md`.

use std::convert::Infallible;
use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agentgw_core::identity::{ClientAddr, IpText};
use agentgw_core::{BoxError, Rejection, ResponseShape};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::pool::{DEFAULT_MAX_IDLE, Http1Pool, PoolError};
use crate::{ReqBody, ResBody};

const LAYER: &str = "upstream";

/// How long an idle pooled connection to an `https://` upstream is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How an [`Upstream`] reaches its backend.
#[derive(Clone, Debug)]
pub struct UpstreamOptions {
    /// How long the backend has to start answering (504 after).
    pub timeout: Duration,
    /// How long a new connection may take (504 after).
    pub connect_timeout: Duration,
    /// TLS settings for an `https://` backend (for example from [`agentgw_tls::client_config`]);
    /// required for `https://`, refused for `http://`.
    pub tls: Option<rustls::ClientConfig>,
    /// Per-core workers: each gets its own connections (0: one pool for every thread).
    pub workers: usize,
}

/// The connections of one upstream on one thread.
#[derive(Clone, Debug)]
enum UpstreamClient {
    /// `http://` backends.
    Http(Http1Pool),
    /// `https://` backends (boxed: the legacy client is several times the pool's size).
    Https(Box<Client<HttpsConnector<HttpConnector>, ReqBody>>),
}

impl UpstreamClient {
    fn https(connect_timeout: Duration, mut tls: rustls::ClientConfig) -> Self {
        // The connector offers h2 and http/1.1 itself (and refuses a config that already does).
        tls.alpn_protocols.clear();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        // The https connector hands this one `https://` URIs.
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_all_versions()
            .wrap_connector(http);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        UpstreamClient::Https(Box::new(builder.build(https)))
    }

    async fn send(&self, req: Request<ReqBody>) -> Result<Response<ResBody>, SendError> {
        match self {
            UpstreamClient::Http(pool) => match pool.send(req).await {
                Ok(response) => {
                    Ok(response.map(|body| body.map_err(BoxError::from).boxed_unsync()))
                }
                Err(err) => Err(SendError::Http(err)),
            },
            UpstreamClient::Https(client) => match client.request(req).await {
                Ok(response) => {
                    Ok(response.map(|body| body.map_err(BoxError::from).boxed_unsync()))
                }
                Err(err) => Err(SendError::Https(err)),
            },
        }
    }
}

/// A failed exchange with the backend.
enum SendError {
    Http(PoolError),
    Https(hyper_util::client::legacy::Error),
}

impl SendError {
    fn is_connect(&self) -> bool {
        match self {
            SendError::Http(err) => err.is_connect(),
            SendError::Https(err) => err.is_connect(),
        }
    }

    /// Whether the connect timeout elapsed.
    fn connect_timed_out(&self) -> bool {
        match self {
            SendError::Http(err) => matches!(err, PoolError::ConnectTimeout { .. }),
            SendError::Https(err) => err.is_connect() && timed_out(err),
        }
    }

    fn error(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            SendError::Http(err) => err,
            SendError::Https(err) => err,
        }
    }
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
    clients: Box<[UpstreamClient]>,
    /// The backend's scheme and authority, parsed once.
    scheme: Scheme,
    authority: Authority,
    /// Backend base path without trailing slash (may be empty).
    base_path: String,
    /// Route prefix without trailing slash (empty for `/`).
    prefix: String,
    timeout: Duration,
}

impl Upstream {
    /// An upstream for `backend_url` (`http://` or `https://`, with an optional base path)
    /// behind the route prefix `prefix`.
    pub fn new(backend_url: &str, prefix: &str, options: &UpstreamOptions) -> Result<Self, String> {
        let base: Uri = backend_url
            .parse()
            .map_err(|e| format!("invalid backend URL: {e}"))?;
        let scheme = match base.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => return Err("the backend URL must start with http:// or https://".to_owned()),
        };
        let Some(authority) = base.authority().filter(|a| !a.host().is_empty()).cloned() else {
            return Err("backend URL needs a host".to_owned());
        };
        if base.query().is_some() {
            return Err("the backend URL cannot have a query".to_owned());
        }
        // One client shared by threads that are not workers, then one per per-core worker, so
        // that each worker keeps its upstream connections on its own runtime.
        let https = scheme == Scheme::HTTPS;
        let client = || match (https, &options.tls) {
            (false, None) => Ok(UpstreamClient::Http(Http1Pool::new(
                &authority,
                options.connect_timeout,
                DEFAULT_MAX_IDLE,
            ))),
            (true, Some(tls)) => Ok(UpstreamClient::https(options.connect_timeout, tls.clone())),
            (true, None) => Err("an https:// backend needs TLS settings".to_owned()),
            (false, Some(_)) => Err("TLS settings need an https:// backend".to_owned()),
        };
        let clients = (0..=options.workers)
            .map(|_| client())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Upstream {
            inner: Arc::new(Inner {
                clients: clients.into_boxed_slice(),
                scheme,
                authority,
                base_path: base.path().trim_end_matches('/').to_owned(),
                prefix: crate::config::normalize_prefix(prefix)
                    .trim_end_matches('/')
                    .to_owned(),
                timeout: options.timeout,
            }),
        })
    }

    /// The upstream URI for a request: the backend's path joined with the request path after
    /// the route prefix, and the request's query; with the backend's scheme and authority
    /// (parsed once) when `absolute`, else in origin form.
    fn target(&self, uri: &Uri, absolute: bool) -> Result<Uri, http::Error> {
        let path = uri.path();
        let rest = path
            .strip_prefix(self.inner.prefix.as_str())
            .unwrap_or(path);
        let base_path = self.inner.base_path.as_str();
        let query = uri.query();
        let mut joined =
            String::with_capacity(base_path.len() + rest.len() + 2 + query.map_or(0, str::len));
        joined.push_str(base_path);
        if !rest.starts_with('/') && (!rest.is_empty() || base_path.is_empty()) {
            joined.push('/');
        }
        joined.push_str(rest);
        if let Some(query) = query {
            joined.push('?');
            joined.push_str(query);
        }
        let path_and_query = PathAndQuery::try_from(joined)?;
        if !absolute {
            return Ok(Uri::from(path_and_query));
        }
        Uri::builder()
            .scheme(self.inner.scheme.clone())
            .authority(self.inner.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    /// The client of the current thread.
    fn client(&self) -> &UpstreamClient {
        let clients = &self.inner.clients;
        WORKER
            .with(std::cell::Cell::get)
            .and_then(|index| clients.get(index + 1))
            .unwrap_or(&clients[0])
    }

    /// The upstream URL for a request path and query.
    pub fn target_url(&self, uri: &Uri) -> String {
        self.target(uri, true)
            .map(|uri| uri.to_string())
            .unwrap_or_default()
    }
}

/// Takes the gateway's boxed request body as it is (a generic body would be boxed a second
/// time, and polled through two vtables) and answers with the client's boxed response body.
impl tower::Service<Request<ReqBody>> for Upstream {
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(req).await) })
    }
}

impl Upstream {
    async fn forward(self, req: Request<ReqBody>) -> Response<ResBody> {
        let client = self.client();
        // hyper's HTTP/1.1 connection sends the URI as given: origin form for the pool; the
        // https client picks its connection by scheme and authority and converts itself.
        let target = self.target(req.uri(), matches!(client, UpstreamClient::Https(_)));
        let (parts, body) = req.into_parts();
        // The denial shape (OpenAI error, JSON-RPC error with the id) is only worked out when
        // the upstream fails.
        let shape = || ResponseShape::from_parts(parts.uri.path(), &parts.extensions);
        let uri = match target {
            Ok(uri) => uri,
            Err(err) => {
                tracing::warn!(error = %err, "cannot build the upstream URI");
                return reject(StatusCode::BAD_GATEWAY, "bad_request_to_upstream", &shape());
            }
        };
        let mut headers = parts.headers;
        agentgw_core::headers::strip_hop_by_hop(&mut headers);
        // The client sets `host` from the URI; the original goes in x-forwarded-host.
        if let Some(host) = headers.remove(header::HOST) {
            headers.insert(HeaderName::from_static("x-forwarded-host"), host);
        }
        if let Some(ClientAddr(addr)) = parts.extensions.get::<ClientAddr>() {
            append_forwarded_for(&mut headers, addr.ip());
        }
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        // HTTP/1.1 unless the pooled connection negotiated HTTP/2 (an HTTP/2 client's request
        // still goes to an HTTP/1.1 upstream).
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = headers;
        let sent = tokio::time::timeout(self.inner.timeout, client.send(request)).await;
        let mut response = match sent {
            Ok(Ok(response)) => response,
            Err(_elapsed) => {
                tracing::warn!(timeout = ?self.inner.timeout, "upstream timed out");
                return reject(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", &shape());
            }
            Ok(Err(err)) if err.connect_timed_out() => {
                tracing::warn!(error = %DisplayChain(err.error()), "upstream connect timed out");
                return reject(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", &shape());
            }
            Ok(Err(err)) => {
                let connect = err.is_connect();
                tracing::warn!(error = %DisplayChain(err.error()), connect, "upstream request failed");
                let reason = if connect {
                    "upstream_connect"
                } else {
                    "upstream_error"
                };
                return reject(StatusCode::BAD_GATEWAY, reason, &shape());
            }
        };
        agentgw_core::headers::strip_hop_by_hop(response.headers_mut());
        response
    }
}

/// Whether an I/O timeout is among the causes of `err` (the connect timeout).
fn timed_out(err: &hyper_util::client::legacy::Error) -> bool {
    let mut source = err.source();
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// An error with its causes, `: `-separated (hyper-util's own message names only the outermost).
struct DisplayChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

fn reject(status: StatusCode, reason: &'static str, shape: &ResponseShape) -> Response<ResBody> {
    let rejection = Rejection::new(status, LAYER, reason);
    rejection.record();
    rejection
        .into_response(shape)
        .map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

fn append_forwarded_for(headers: &mut HeaderMap, ip: std::net::IpAddr) {
    let text = IpText::new(ip);
    let value = match headers.get(X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(existing) if !existing.trim_ascii().is_empty() => {
            let mut joined = Vec::with_capacity(existing.len() + 2 + text.as_bytes().len());
            joined.extend_from_slice(existing);
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(text.as_bytes());
            HeaderValue::from_bytes(&joined)
        }
        _ => HeaderValue::from_bytes(text.as_bytes()),
    };
    if let Ok(value) = value {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str, prefix: &str) -> Upstream {
        let options = UpstreamOptions {
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            tls: None,
            workers: 0,
        };
        Upstream::new(url, prefix, &options).unwrap()
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
    fn forwarded_for_is_appended() {
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, "10.0.0.1".parse().unwrap());
        append_forwarded_for(&mut headers, "127.0.0.1".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        append_forwarded_for(&mut headers, "::ffff:192.168.0.255".parse().unwrap());
        assert_eq!(
            headers["x-forwarded-for"],
            "10.0.0.1, 127.0.0.1, ::ffff:192.168.0.255"
        );
    }
}
