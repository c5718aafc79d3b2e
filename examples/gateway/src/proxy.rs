//! Forwarding to an upstream through reqwest.
//!
//! [`Upstream`] is the innermost service of every route: it strips the route prefix, joins the
//! rest of the path to the backend URL, removes hop-by-hop headers, appends `x-forwarded-for`,
//! moves the client's `host` to `x-forwarded-host` (the client sets `host` from the backend
//! URL), and streams both bodies. A backend that cannot be connected to is a 502
//! `upstream_connect`, any other failed exchange a 502 `upstream_error`, and a backend that does
//! not answer within its timeout (or cannot be connected to within its connect timeout) a 504
//! `upstream_timeout`, each rendered by [`agentgw_core::Rejection`] in the route's protocol.
//! Dropping the response future or body (the client went away) drops the upstream exchange.
//!
//! The exchange goes through a [`reqwest::Client`] called as a `tower::Service`, built for a
//! proxy: redirects are handed to the client rather than followed, nothing is decompressed, no
//! proxy is read from the environment, and `https://` backends use the route's rustls
//! configuration from [`agentgw_tls::client_config`] (custom CA, client certificate, ALPN `h2`
//! and `http/1.1`, on the workspace's aws-lc-rs provider); `http://` backends get HTTP/1.1, or
//! HTTP/2 with prior knowledge (h2c) when [`UpstreamOptions::http2`] is set. Over HTTP/2 the
//! requests of a route and worker share one connection: a backend that allows fewer concurrent
//! streams than there are requests in flight makes the rest wait for a free stream (HTTP/2's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`; hyper's servers allow 200 by default), so turn it on for
//! backends that allow as many streams as the route carries.
//! Two things reqwest does to every request: it adds `accept: */*` when the request has no
//! `accept`, and its URL type percent-encodes the few characters `http` accepts raw in a path but
//! a URL path may not hold (`"`, `<`, `>`, `` ` ``, `{`, `}`); the upstream reads the same path.
//! What reqwest costs per request is measured in `bench/README.md`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agentgw_core::identity::{ClientAddr, IpText};
use agentgw_core::{BoxError, Rejection, ResponseShape};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use reqwest::Url;
use tower::Service;

use crate::{ReqBody, ResBody};

const LAYER: &str = "upstream";

/// How long an idle connection to an upstream is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Most idle connections kept per upstream host, per route and worker. Without a cap, a burst
/// of long streams leaves one idle connection per stream behind when it ends (measured: 9,900
/// idle connections, about 500 MiB and 9,900 descriptors held for 90 s after a soak run); more
/// than this many concurrent requests are still served, their connections are just closed
/// instead of pooled when they finish.
const POOL_MAX_IDLE_PER_HOST: usize = 256;

/// How an [`Upstream`] reaches its backend.
#[derive(Clone, Debug)]
pub struct UpstreamOptions {
    /// How long the backend has to start answering (504 after); a streamed body may take longer.
    pub timeout: Duration,
    /// How long a new connection may take (504 after).
    pub connect_timeout: Duration,
    /// TLS settings for an `https://` backend (for example from [`agentgw_tls::client_config`]);
    /// required for `https://`, refused for `http://`.
    pub tls: Option<rustls::ClientConfig>,
    /// HTTP/2 with prior knowledge (h2c) to an `http://` backend; refused for `https://`,
    /// where ALPN chooses.
    pub http2: bool,
    /// Per-core workers: each gets its own client and connections (0: one for every thread).
    pub workers: usize,
}

std::thread_local! {
    /// The index of the per-core worker running on this thread, if any.
    static WORKER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Marks the current thread as per-core worker `index`: upstreams built with one client per
/// worker use that worker's client (and its connections) on this thread.
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
    /// The backend URL, parsed once; each request sets its path and query.
    base: Url,
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
        let base = Url::parse(backend_url).map_err(|e| format!("invalid backend URL: {e}"))?;
        let https = match base.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err("the backend URL must start with http:// or https://".to_owned()),
        };
        if base.host_str().is_none_or(str::is_empty) {
            return Err("backend URL needs a host".to_owned());
        }
        if base.query().is_some() {
            return Err("the backend URL cannot have a query".to_owned());
        }
        match (https, &options.tls) {
            (true, None) => return Err("an https:// backend needs TLS settings".to_owned()),
            (false, Some(_)) => return Err("TLS settings need an https:// backend".to_owned()),
            (true, Some(_)) if options.http2 => {
                return Err("https:// backends negotiate HTTP/2 through ALPN".to_owned());
            }
            _ => {}
        }
        let clients = (0..=options.workers)
            .map(|_| client(options))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Upstream {
            inner: Arc::new(Inner {
                clients: clients.into_boxed_slice(),
                base_path: base.path().trim_end_matches('/').to_owned(),
                base,
                prefix: crate::config::normalize_prefix(prefix)
                    .trim_end_matches('/')
                    .to_owned(),
                timeout: options.timeout,
            }),
        })
    }

    /// The upstream URL for a request: the backend's path joined with the request path after
    /// the route prefix, and the request's query.
    pub fn target_url(&self, uri: &Uri) -> Url {
        let path = uri.path();
        let rest = path
            .strip_prefix(self.inner.prefix.as_str())
            .unwrap_or(path);
        let base_path = self.inner.base_path.as_str();
        let mut joined = String::with_capacity(base_path.len() + rest.len() + 1);
        joined.push_str(base_path);
        if !rest.starts_with('/') && (!rest.is_empty() || base_path.is_empty()) {
            joined.push('/');
        }
        joined.push_str(rest);
        let mut url = self.inner.base.clone();
        url.set_path(&joined);
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
}

/// A reqwest client for one upstream: see the [module docs](self).
fn client(options: &UpstreamOptions) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .no_proxy()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd()
        .tcp_nodelay(true)
        .connect_timeout(options.connect_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST);
    let builder = match &options.tls {
        Some(tls) => builder.tls_backend_preconfigured(tls.clone()),
        None if options.http2 => builder.http2_prior_knowledge(),
        None => builder.http1_only(),
    };
    builder
        .build()
        .map_err(|e| format!("cannot build the upstream client: {e}"))
}

/// Takes the gateway's boxed request body as it is and answers with the client's boxed
/// response body.
impl Service<Request<ReqBody>> for Upstream {
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
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        agentgw_core::headers::strip_hop_by_hop(&mut headers);
        // The client sets `host` from the URL; the original goes in x-forwarded-host.
        if let Some(host) = headers.remove(header::HOST) {
            headers.insert(HeaderName::from_static("x-forwarded-host"), host);
        }
        if let Some(ClientAddr(addr)) = parts.extensions.get::<ClientAddr>() {
            append_forwarded_for(&mut headers, addr.ip());
        }
        let mut request = reqwest::Request::new(parts.method, self.target_url(&parts.uri));
        *request.headers_mut() = headers;
        *request.body_mut() = Some(reqwest::Body::wrap(body));

        let mut client = self.client();
        let sent = tokio::time::timeout(self.inner.timeout, client.call(request)).await;
        // The denial shape (OpenAI error, JSON-RPC error with the id) is only worked out when
        // the upstream fails.
        let reject = |status, reason| {
            let shape = ResponseShape::from_parts(parts.uri.path(), &parts.extensions);
            reject(status, reason, &shape)
        };
        match sent {
            Ok(Ok(response)) => {
                let mut response = Response::from(response)
                    .map(|body| body.map_err(BoxError::from).boxed_unsync());
                agentgw_core::headers::strip_hop_by_hop(response.headers_mut());
                response
            }
            Err(_elapsed) => {
                tracing::warn!(timeout = ?self.inner.timeout, "upstream timed out");
                reject(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
            }
            Ok(Err(err)) if err.is_connect() && err.is_timeout() => {
                tracing::warn!(error = %DisplayChain(&err), "upstream connect timed out");
                reject(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
            }
            Ok(Err(err)) if agentgw_core::body::BodyReadTimeout::is_cause_of(&err) => {
                // The client, not the upstream, was too slow: its body missed the server's
                // requestBodyTimeout while it was being forwarded.
                tracing::debug!(error = %DisplayChain(&err), "request body timed out");
                reject(StatusCode::REQUEST_TIMEOUT, "body_read_timeout")
            }
            Ok(Err(err)) => {
                let connect = err.is_connect();
                tracing::warn!(error = %DisplayChain(&err), connect, "upstream request failed");
                let reason = if connect {
                    "upstream_connect"
                } else {
                    "upstream_error"
                };
                reject(StatusCode::BAD_GATEWAY, reason)
            }
        }
    }
}

/// An error with its causes, `: `-separated (reqwest's own message names only the outermost).
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
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use bytes::Bytes;
    use http_body_util::Full;
    use tokio::net::TcpListener;

    use super::*;

    fn options(timeout: Duration) -> UpstreamOptions {
        UpstreamOptions {
            timeout,
            connect_timeout: Duration::from_millis(300),
            tls: None,
            http2: false,
            workers: 0,
        }
    }

    fn upstream(url: &str, prefix: &str) -> Upstream {
        Upstream::new(url, prefix, &options(Duration::from_secs(2))).unwrap()
    }

    fn request(uri: &str) -> Request<ReqBody> {
        let body = Full::new(Bytes::from_static(b"{}"))
            .map_err(|never| match never {})
            .boxed();
        let mut req = Request::post(uri).body(body).unwrap();
        req.extensions_mut()
            .insert(agentgw_core::rejection::RouteKind::Llm);
        req
    }

    async fn forward(upstream: &Upstream, uri: &str) -> (StatusCode, HeaderMap, String) {
        // `Upstream` is always ready; `oneshot` would not be `Send` in this async block (the
        // boxed error's erased lifetime, see `stack::call`).
        let res = upstream.clone().call(request(uri)).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// A backend that answers `/redirect` with a 302, `/hang` never (and records when that
    /// exchange is dropped), anything else with the client's address; it records the address
    /// of every request, so that connections can be counted.
    struct Backend {
        addr: SocketAddr,
        peers: Arc<Mutex<Vec<SocketAddr>>>,
        dropped: tokio::sync::mpsc::UnboundedReceiver<()>,
    }

    /// Sends on its channel when dropped: the backend's handler future was dropped.
    struct DropSignal(tokio::sync::mpsc::UnboundedSender<()>);

    impl Drop for DropSignal {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    async fn backend() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peers = Arc::new(Mutex::new(Vec::new()));
        let (dropped_tx, dropped) = tokio::sync::mpsc::unbounded_channel();
        let seen = peers.clone();
        let service = tower::service_fn(move |req: Request<agentgw_tls::RequestBody>| {
            let ClientAddr(peer) = *req.extensions().get::<ClientAddr>().unwrap();
            seen.lock().unwrap().push(peer);
            let signal = DropSignal(dropped_tx.clone());
            async move {
                let mut res = Response::new(Full::new(Bytes::from(peer.to_string())));
                match req.uri().path() {
                    "/redirect" => {
                        *res.status_mut() = StatusCode::FOUND;
                        res.headers_mut()
                            .insert(header::LOCATION, HeaderValue::from_static("/elsewhere"));
                    }
                    "/hang" => std::future::pending::<()>().await,
                    _ => {}
                }
                std::mem::forget(signal);
                Ok::<_, Infallible>(res)
            }
        });
        tokio::spawn(agentgw_tls::serve_plain(listener, service));
        Backend {
            addr,
            peers,
            dropped,
        }
    }

    #[test]
    fn prefix_is_stripped_and_joined() {
        let u = upstream("http://127.0.0.1:4000/v1", "/openai");
        let url = |p: &str| u.target_url(&p.parse().unwrap()).to_string();
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
        let url = |p: &str| root.target_url(&p.parse().unwrap()).to_string();
        assert_eq!(url("/"), "http://127.0.0.1:4000/");
        assert_eq!(url("/a/b"), "http://127.0.0.1:4000/a/b");

        // Percent-escapes are forwarded as written; the characters a URL path may not hold raw
        // (which `http` accepts) are percent-encoded, the same path to the upstream.
        assert_eq!(
            url("/a%20b/%C3%A9/{id}/\"q\"|^"),
            "http://127.0.0.1:4000/a%20b/%C3%A9/%7Bid%7D/%22q%22|^"
        );

        let slash = upstream("http://h:1/mcp/", "/tools/");
        assert_eq!(
            slash.target_url(&"/tools/".parse().unwrap()).to_string(),
            "http://h:1/mcp/"
        );
    }

    #[test]
    fn backend_urls_and_tls_settings_must_agree() {
        let opts = options(Duration::from_secs(1));
        let err = |url: &str, opts: &UpstreamOptions| Upstream::new(url, "/", opts).err();
        assert!(err("ftp://h/", &opts).unwrap().contains("http://"));
        assert!(err("https://h/", &opts).unwrap().contains("TLS settings"));
        assert!(err("http://h/?q=1", &opts).unwrap().contains("query"));
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

    /// A backend answering with the HTTP version of each request, over TLS (certificate for
    /// `localhost` from a CA of its own) when `tls` is set; with the `UpstreamOptions` that
    /// trust it.
    async fn version_backend(tls: bool) -> (String, UpstreamOptions, tempfile::TempDir) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let service = tower::service_fn(|req: Request<agentgw_tls::RequestBody>| async move {
            let version = format!("{:?}", req.version());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(version))))
        });
        let dir = tempfile::tempdir().unwrap();
        let mut options = options(Duration::from_secs(2));
        if !tls {
            tokio::spawn(agentgw_tls::serve_plain(listener, service));
            return (format!("http://127.0.0.1:{port}/"), options, dir);
        }
        let path = |name: &str| dir.path().join(name);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(path("ca.crt"), ca_cert.pem()).unwrap();
        std::fs::write(path("tls.crt"), cert.pem()).unwrap();
        std::fs::write(path("tls.key"), key.serialize_pem()).unwrap();
        let server = agentgw_tls::TlsConfig::new(path("tls.crt"), path("tls.key"));
        let acceptor = agentgw_tls::TlsAcceptor::from_config(&server).unwrap();
        tokio::spawn(agentgw_tls::serve(listener, acceptor, service));
        let client = agentgw_tls::UpstreamTlsConfig::simple(path("ca.crt"));
        options.tls = Some(agentgw_tls::client_config(&client).unwrap());
        (format!("https://localhost:{port}/"), options, dir)
    }

    #[tokio::test]
    async fn https_backends_get_http2_through_alpn_and_http_backends_http1() {
        let (url, options, _dir) = version_backend(true).await;
        let https = Upstream::new(&url, "/", &options).unwrap();
        assert_eq!(forward(&https, "/").await.2, "HTTP/2.0");

        let (url, options, _dir) = version_backend(false).await;
        let http = Upstream::new(&url, "/", &options).unwrap();
        assert_eq!(forward(&http, "/").await.2, "HTTP/1.1");
    }

    #[tokio::test]
    async fn http_backends_get_h2c_when_asked() {
        let (url, mut options, _dir) = version_backend(false).await;
        options.http2 = true;
        let h2c = Upstream::new(&url, "/", &options).unwrap();
        assert_eq!(forward(&h2c, "/").await.2, "HTTP/2.0");
        // Concurrent requests on the one connection.
        let (a, b, c) = tokio::join!(forward(&h2c, "/"), forward(&h2c, "/"), forward(&h2c, "/"));
        assert_eq!([a.2, b.2, c.2], ["HTTP/2.0"; 3]);

        let (url, mut options, _dir) = version_backend(true).await;
        options.http2 = true;
        let error = Upstream::new(&url, "/", &options).err().unwrap();
        assert!(error.contains("ALPN"), "{error}");
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_connection() {
        let backend = backend().await;
        let upstream = upstream(&format!("http://{}/", backend.addr), "/");
        for _ in 0..3 {
            let (status, _, _) = forward(&upstream, "/ok").await;
            assert_eq!(status, StatusCode::OK);
        }
        let peers = backend.peers.lock().unwrap().clone();
        assert_eq!(peers.len(), 3);
        assert!(peers.iter().all(|p| *p == peers[0]), "{peers:?}");
    }

    #[tokio::test]
    async fn redirects_go_back_to_the_client() {
        let backend = backend().await;
        let upstream = upstream(&format!("http://{}/", backend.addr), "/");
        let (status, headers, _) = forward(&upstream, "/redirect").await;
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(headers[header::LOCATION], "/elsewhere");
        assert_eq!(backend.peers.lock().unwrap().len(), 1, "redirect followed");
    }

    #[tokio::test]
    async fn a_dropped_exchange_is_dropped_upstream() {
        let mut backend = backend().await;
        let upstream = upstream(&format!("http://{}/", backend.addr), "/");
        let exchange = tokio::spawn(async move { forward(&upstream, "/hang").await });
        while backend.peers.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The client went away: the gateway drops its future, the backend sees the connection
        // close and drops the handler.
        exchange.abort();
        tokio::time::timeout(Duration::from_secs(5), backend.dropped.recv())
            .await
            .expect("the backend's exchange is dropped");
    }

    #[tokio::test]
    async fn a_slow_backend_is_a_504() {
        let backend = backend().await;
        let upstream = Upstream::new(
            &format!("http://{}/", backend.addr),
            "/",
            &options(Duration::from_millis(200)),
        )
        .unwrap();
        let (status, _, body) = forward(&upstream, "/hang").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert!(body.contains("upstream_timeout"), "{body}");
    }

    #[tokio::test]
    async fn connect_failures_are_502_and_connect_timeouts_504() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (status, _, body) = forward(&upstream(&format!("http://{closed}/"), "/"), "/").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(body.contains("upstream_connect"), "{body}");

        // A listener whose accept queue is full: Linux drops further SYNs, so connecting hangs.
        #[cfg(target_os = "linux")]
        {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let full = socket.listen(0).unwrap();
            let addr = full.local_addr().unwrap();
            let mut held = Vec::new();
            while let Ok(Ok(stream)) = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                held.push(stream);
            }
            let (status, _, body) = forward(&upstream(&format!("http://{addr}/"), "/"), "/").await;
            assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
            assert!(body.contains("upstream_timeout"), "{body}");
            drop((held, full));
        }
    }
}
