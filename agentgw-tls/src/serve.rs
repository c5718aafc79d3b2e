//! Serving any tower service (an axum `Router`, a stack of agentgw layers) over TLS with
//! hyper-util, HTTP/1.1 and HTTP/2, with the verified peer identity attached to each request.
//!
//! [`serve`] and [`serve_with_shutdown`] own the accept loop; [`serve_connection`] serves one
//! connection for callers with their own loop; [`ConnectionInfoLayer`] (and its service,
//! [`ConnectionInfoService`]) is the piece that inserts [`PeerIdentity`] and [`ClientAddr`] into
//! each request's extensions, for accept loops of your own.

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
use hyper_util::server::graceful::GracefulShutdown;
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
    serve_with_shutdown(listener, acceptor, service, std::future::pending::<()>()).await;
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
                    let (stream, identity) = match acceptor.accept(tcp).await {
                        Ok(accepted) => accepted,
                        Err(_) => return,
                    };
                    let service = TowerToHyperService::new(ConnectionInfoService::new(
                        service,
                        identity,
                        Some(remote),
                    ));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(err) = watcher.watch(conn.into_owned()).await {
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
