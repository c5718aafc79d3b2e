//! Serving any tower service (an axum `Router`, a stack of agentgw layers) with hyper-util,
//! HTTP/1.1 and HTTP/2, over TLS with the verified peer identity attached to each request, or
//! over plain TCP.
//!
//! [`serve`] and [`serve_with_shutdown`] own the accept loop of a TLS listener;
//! [`serve_plain`] and [`serve_plain_with_shutdown`] are the same loop without TLS (behind a
//! load balancer that terminates it, for a health or metrics port, in tests);
//! [`serve_connection`] serves one TLS connection for callers with their own loop;
//! [`ConnectionInfoLayer`] (and its service, [`ConnectionInfoService`]) is the piece that inserts
//! [`PeerIdentity`] and [`ClientAddr`] into each request's extensions, for accept loops of your
//! own.

use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use agentgw_core::BoxError;
use agentgw_core::identity::{ClientAddr, PeerIdentity};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::server::TlsStream;
use tower_layer::Layer;
use tower_service::Service;

use crate::TlsAcceptor;

/// A per-connection [`Layer`] adding the connection's [`PeerIdentity`] and [`ClientAddr`] to
/// every request; build one per accepted connection from what
/// [`TlsAcceptor::accept`](crate::TlsAcceptor::accept) returned.
///
/// ```
/// use agentgw_core::identity::PeerIdentity;
/// use agentgw_tls::ConnectionInfoLayer;
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let identity = PeerIdentity { common_name: Some("billing".into()), ..Default::default() };
/// let mut svc = ServiceBuilder::new()
///     .layer(ConnectionInfoLayer::new(Some(identity), "10.0.0.7:4711".parse().ok()))
///     .service_fn(|req: http::Request<()>| async move {
///         let who = req.extensions().get::<PeerIdentity>().and_then(|id| id.common_name.clone());
///         Ok::<_, std::convert::Infallible>(who)
///     });
/// let who = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
/// assert_eq!(who.as_deref(), Some("billing"));
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfoLayer {
    identity: Option<PeerIdentity>,
    remote: Option<SocketAddr>,
}

impl ConnectionInfoLayer {
    /// A layer inserting `identity` and `remote` (each when present).
    pub fn new(identity: Option<PeerIdentity>, remote: Option<SocketAddr>) -> Self {
        ConnectionInfoLayer { identity, remote }
    }
}

impl<S> Layer<S> for ConnectionInfoLayer {
    type Service = ConnectionInfoService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConnectionInfoService::new(inner, self.identity.clone(), self.remote)
    }
}

/// Wraps a service so that every request carries the connection's [`PeerIdentity`] (when the
/// client presented a verified certificate) and [`ClientAddr`] as extensions. Clones are cheap
/// when the inner service's are; the identity is cloned into each request.
#[derive(Debug, Clone)]
pub struct ConnectionInfoService<S> {
    inner: S,
    identity: Option<PeerIdentity>,
    remote: Option<SocketAddr>,
}

impl<S> ConnectionInfoService<S> {
    /// `inner`, with `identity` and `remote` inserted into each request.
    pub fn new(inner: S, identity: Option<PeerIdentity>, remote: Option<SocketAddr>) -> Self {
        ConnectionInfoService {
            inner,
            identity,
            remote,
        }
    }
}

impl<S, B> Service<Request<B>> for ConnectionInfoService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(identity) = &self.identity {
            req.extensions_mut().insert(identity.clone());
        }
        if let Some(remote) = self.remote {
            req.extensions_mut().insert(ClientAddr(remote));
        }
        self.inner.call(req)
    }
}

/// Serves one established TLS connection with `service` (HTTP/1.1 or HTTP/2, as the client
/// speaks, upgrades allowed), inserting `identity` and `remote` into every request.
pub async fn serve_connection<IO, S, B>(
    stream: TlsStream<IO>,
    identity: Option<PeerIdentity>,
    remote: Option<SocketAddr>,
    service: S,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let service = TowerToHyperService::new(ConnectionInfoService::new(service, identity, remote));
    auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
}

/// Accepts connections on `listener` forever, runs each handshake (in the connection's own
/// task) and serves the connection with `service`. See [`serve_with_shutdown`].
pub async fn serve<S, B>(listener: TcpListener, acceptor: TlsAcceptor, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    accept_loop(listener, Some(acceptor), service, std::future::pending()).await;
}

/// Like [`serve`], until `signal` completes: then stops accepting, lets open connections
/// finish their in-flight requests (HTTP/2 clients get a GOAWAY) and returns when all are
/// closed. Bound the wait with `tokio::time::timeout` if needed.
///
/// Failed handshakes are logged at debug level and counted
/// ([`TLS_HANDSHAKES_TOTAL`](agentgw_core::metrics::TLS_HANDSHAKES_TOTAL)); they never stop the loop.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use agentgw_tls::{ClientAuthConfig, TlsAcceptor, TlsConfig};
/// use agentgw_core::identity::PeerIdentity;
/// use axum::{routing::get, Extension, Router};
///
/// let config = TlsConfig::new("/etc/tls/tls.crt", "/etc/tls/tls.key")
///     .client_auth(ClientAuthConfig::required("/etc/tls/clients-ca.crt"));
/// let acceptor = TlsAcceptor::from_config(&config)?;
/// let app = Router::new().route(
///     "/whoami",
///     get(|Extension(id): Extension<PeerIdentity>| async move { id.spiffe_id.unwrap_or_default() }),
/// );
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
/// agentgw_tls::serve_with_shutdown(listener, acceptor, app, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await;
/// # Ok(()) }
/// ```
pub async fn serve_with_shutdown<S, B, F>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    service: S,
    signal: F,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    accept_loop(listener, Some(acceptor), service, signal).await;
}

/// Accepts plain TCP connections on `listener` forever and serves each with `service`
/// (HTTP/1.1, or HTTP/2 with prior knowledge), with the client's address as [`ClientAddr`] in
/// every request. See [`serve_plain_with_shutdown`].
pub async fn serve_plain<S, B>(listener: TcpListener, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    accept_loop(listener, None, service, std::future::pending()).await;
}

/// [`serve_with_shutdown`] without TLS: the same accept loop, the same graceful shutdown when
/// `signal` completes, and [`ClientAddr`] in every request's extensions (there is no
/// [`PeerIdentity`] without a handshake).
///
/// ```
/// use agentgw_core::identity::ClientAddr;
/// use axum::{Extension, Router, routing::get};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = Router::new().route(
///     "/ip",
///     get(|Extension(ClientAddr(addr)): Extension<ClientAddr>| async move { addr.ip().to_string() }),
/// );
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = tokio::spawn(agentgw_tls::serve_plain_with_shutdown(listener, app, async {
///     let _ = stopped.await;
/// }));
///
/// let ip = reqwest::get(format!("http://{addr}/ip")).await?.text().await?;
/// assert_eq!(ip, "127.0.0.1");
/// stop.send(()).ok();
/// server.await?; // returns once the open connections are closed
/// # Ok(())
/// # }
/// ```
pub async fn serve_plain_with_shutdown<S, B, F>(listener: TcpListener, service: S, signal: F)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    accept_loop(listener, None, service, signal).await;
}

/// The accept loop of every `serve*` function: TLS when `acceptor` is set, plain TCP otherwise.
async fn accept_loop<S, B, F>(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    service: S,
    signal: F,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, remote) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let service = service.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let served = match acceptor {
                        None => serve_watched(tcp, None, remote, service, watcher).await,
                        Some(acceptor) => {
                            // The acceptor logs and counts a failed handshake.
                            let Ok((stream, identity)) = acceptor.accept(tcp).await else {
                                return;
                            };
                            serve_watched(stream, identity, remote, service, watcher).await
                        }
                    };
                    if let Err(err) = served {
                        tracing::debug!(error = %err, %remote, "connection ended with an error");
                    }
                });
            }
            () = &mut signal => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// One connection of the accept loop: HTTP/1.1 or HTTP/2, upgrades allowed, with the
/// connection's identity and address in every request, shut down gracefully through `watcher`.
async fn serve_watched<IO, S, B>(
    io: IO,
    identity: Option<PeerIdentity>,
    remote: SocketAddr,
    service: S,
    watcher: Watcher,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let service =
        TowerToHyperService::new(ConnectionInfoService::new(service, identity, Some(remote)));
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    watcher.watch(conn.into_owned()).await
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::Full;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Answers with the request's `ClientAddr` and whether it carries a `PeerIdentity`, after
    /// waiting the milliseconds given in the path (`/wait/300`).
    fn whoami(
        served: Arc<AtomicUsize>,
    ) -> impl Service<
        Request<Incoming>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        tower::service_fn(move |req: Request<Incoming>| {
            let served = served.clone();
            async move {
                if let Some(ms) = req.uri().path().strip_prefix("/wait/") {
                    let ms = ms.parse().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                served.fetch_add(1, Ordering::SeqCst);
                let addr = req.extensions().get::<ClientAddr>().map(|a| a.0);
                let identity = req.extensions().get::<PeerIdentity>().is_some();
                let text = format!("{addr:?} identity={identity}");
                Ok(Response::new(Full::new(Bytes::from(text))))
            }
        })
    }

    async fn exchange(addr: SocketAddr, path: &str) -> (SocketAddr, String) {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let local = tcp.local_addr().unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        (local, response)
    }

    #[tokio::test]
    async fn plain_tcp_requests_carry_the_client_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        tokio::spawn(serve_plain(listener, whoami(served.clone())));

        let (local, response) = exchange(addr, "/").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.ends_with(&format!("Some({local}) identity=false")),
            "{response}"
        );

        // HTTP/2 with prior knowledge on the same listener.
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let res = client.get(format!("http://{addr}/")).send().await.unwrap();
        assert_eq!(res.version(), http::Version::HTTP_2);
        assert!(res.text().await.unwrap().starts_with("Some(127.0.0.1:"));
        assert_eq!(served.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn plain_tcp_shutdown_finishes_in_flight_requests_then_returns() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_plain_with_shutdown(
            listener,
            whoami(served.clone()),
            async {
                let _ = stopped.await;
            },
        ));
        let in_flight = tokio::spawn(exchange(addr, "/wait/300"));
        // Let the request reach the service, then ask for the shutdown while it waits there.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the loop returns once the connection is closed")
            .unwrap();
        let (_, response) = in_flight.await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert_eq!(served.load(Ordering::SeqCst), 1);
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "listener closed after shutdown"
        );
    }
}
