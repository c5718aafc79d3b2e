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
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use agentgw_core::BoxError;
use agentgw_core::body::BodyReadTimeout;
use agentgw_core::identity::{ClientAddr, PeerIdentity};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Error, ServerLimits, TlsAcceptor};

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

/// Serves HTTP/1.1 and HTTP/2 connections, over TLS or plain TCP, with [`ServerLimits`]
/// applied to each: the accept loop behind every `serve*` function of this crate.
///
/// Clones share the connection limit: give the clones of one `Server` to the workers that
/// accept on one address (several `SO_REUSEPORT` listeners, one per thread) and
/// `maxConnections` counts their connections together.
///
/// What a client that breaks a limit sees is listed in [`ServerLimits`]' module docs
/// ([`limits`](crate::limits)). Accept errors (out of file descriptors, `EMFILE`/`ENFILE`) back
/// off from 5 ms up to 1 s and are logged at most once a second, with the number of errors in
/// between.
///
/// ```
/// use std::time::Duration;
/// use agentgw_tls::{Server, ServerLimits};
/// use axum::{Router, routing::get};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limits = ServerLimits::default()
///     .header_read_timeout(Some(Duration::from_secs(5)))
///     .max_connections(Some(1024));
/// let server = Server::new(&limits)?;
/// let app = Router::new().route("/", get(|| async { "hello" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// tokio::spawn(async move { server.serve(listener, app).await });
///
/// assert_eq!(reqwest::get(format!("http://{addr}/")).await?.text().await?, "hello");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Server {
    acceptor: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    permits: Option<Arc<Semaphore>>,
    body_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// `headerReadTimeout`, which also bounds the wait for a connection's first request
    /// (hyper's own timer starts only once the protocol is known).
    first_request_timeout: Option<Duration>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("tls", &self.acceptor.is_some())
            .field(
                "available_connections",
                &self.permits.as_ref().map(|p| p.available_permits()),
            )
            .field("body_timeout", &self.body_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Server {
    /// A plain-TCP server with the default [`ServerLimits`].
    fn default() -> Self {
        Server::new(&ServerLimits::default()).expect("the default limits are valid")
    }
}

impl Server {
    /// A plain-TCP server applying `limits`; [`Server::tls`] adds TLS. Fails when a limit is
    /// zero or out of range ([`ServerLimits::validate`]).
    pub fn new(limits: &ServerLimits) -> Result<Self, Error> {
        limits.validate()?;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        let header_bytes = usize::try_from(limits.max_header_bytes).unwrap_or(usize::MAX);
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_headers(limits.max_headers)
            .max_buf_size(header_bytes);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        Ok(Server {
            acceptor: None,
            builder,
            permits: limits
                .max_connections
                .map(|max| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS)))),
            body_timeout: limits.request_body_timeout,
            idle_timeout: limits.keep_alive_timeout,
            first_request_timeout: limits.header_read_timeout,
        })
    }

    /// Terminates TLS with `acceptor` on every connection (its handshake timeout applies), and
    /// puts the client's verified [`PeerIdentity`] in every request.
    #[must_use]
    pub fn tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.acceptor = Some(acceptor);
        self
    }

    /// Accepts connections on `listener` and serves them with `service`, forever.
    pub async fn serve<S, B>(&self, listener: TcpListener, service: S)
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.serve_with_shutdown(listener, service, std::future::pending())
            .await;
    }

    /// Like [`Server::serve`], until `signal` completes: then stops accepting, lets open
    /// connections finish their in-flight requests (HTTP/2 clients get a `GOAWAY`) and returns
    /// when all are closed. Bound the wait with `tokio::time::timeout` if needed.
    pub async fn serve_with_shutdown<S, B, F>(&self, listener: TcpListener, service: S, signal: F)
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        F: Future<Output = ()>,
    {
        let (stop, stopping) = watch::channel(false);
        let mut signal = std::pin::pin!(signal);
        let mut errors = AcceptErrors::default();
        loop {
            // A connection slot first: past the limit, clients wait in the listen backlog and
            // the connections already accepted keep their service.
            let permit = match &self.permits {
                None => None,
                Some(permits) => tokio::select! {
                    permit = permits.clone().acquire_owned() => permit.ok(),
                    () = &mut signal => break,
                },
            };
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => {
                        errors.reset();
                        accepted
                    }
                    Err(err) => {
                        tokio::select! {
                            () = errors.back_off(&err) => continue,
                            () = &mut signal => break,
                        }
                    }
                },
                () = &mut signal => break,
            };
            let _ = tcp.set_nodelay(true);
            let server = self.clone();
            let service = service.clone();
            let stopping = stopping.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let served = match &server.acceptor {
                    None => {
                        server
                            .connection(tcp, None, Some(remote), service, stopping)
                            .await
                    }
                    Some(acceptor) => {
                        // The acceptor bounds, logs and counts a failed handshake.
                        let Ok((stream, identity)) = acceptor.accept(tcp).await else {
                            return;
                        };
                        server
                            .connection(stream, identity, Some(remote), service, stopping)
                            .await
                    }
                };
                if let Err(err) = served {
                    tracing::debug!(error = %err, %remote, "connection ended with an error");
                }
            });
        }
        drop(listener);
        drop(stopping);
        let _ = stop.send(true);
        // Every connection task holds a receiver: this completes when the last one has ended.
        stop.closed().await;
    }

    /// Serves one established connection (TLS or not) with `service`: HTTP/1.1 or HTTP/2, as
    /// the client speaks, upgrades allowed, with `identity` and `remote` in every request and
    /// the limits of this server applied. For callers with an accept loop of their own (the
    /// connection limit is theirs to enforce).
    pub async fn serve_connection<IO, S, B>(
        &self,
        io: IO,
        identity: Option<PeerIdentity>,
        remote: Option<SocketAddr>,
        service: S,
    ) -> Result<(), BoxError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        // Never signalled: the sender stays alive for the whole connection.
        let (_stop, stopping) = watch::channel(false);
        self.connection(io, identity, remote, service, stopping)
            .await
    }

    /// One connection: `remote` (when known) goes into every request as [`ClientAddr`].
    async fn connection<IO, S, B>(
        &self,
        io: IO,
        identity: Option<PeerIdentity>,
        remote: Option<SocketAddr>,
        service: S,
        mut stopping: watch::Receiver<bool>,
    ) -> Result<(), BoxError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let timers = Timers {
            first_request: self.first_request_timeout,
            idle: self.idle_timeout,
        };
        let activity = (timers.first_request.is_some() || timers.idle.is_some())
            .then(|| Arc::new(Activity::new()));
        let service = LimitedService {
            inner: ConnectionInfoService::new(service, identity, remote),
            body_timeout: self.body_timeout,
            activity: activity.clone(),
        };
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        loop {
            let idle_deadline = match (&activity, closing) {
                (Some(activity), false) => activity.deadline(timers),
                _ => None,
            };
            tokio::select! {
                done = conn.as_mut() => return done,
                _ = stopping.changed(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = sleep_until_some(idle_deadline), if idle_deadline.is_some() => {
                    let Some(activity) = &activity else { continue };
                    if activity.is_expired(timers) {
                        tracing::debug!(?remote, "closing an idle connection");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// Sleeps until `deadline`; never completes for `None` (the `select!` branch is disabled then).
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Serves one established TLS connection with `service` (HTTP/1.1 or HTTP/2, as the client
/// speaks, upgrades allowed), inserting `identity` and `remote` into every request, with the
/// default [`ServerLimits`]. [`Server::serve_connection`] takes limits of your choosing.
pub async fn serve_connection<IO, S, B>(
    stream: TlsStream<IO>,
    identity: Option<PeerIdentity>,
    remote: Option<SocketAddr>,
    service: S,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Server::default()
        .serve_connection(stream, identity, remote, service)
        .await
}

/// Accepts connections on `listener` forever, runs each handshake (in the connection's own
/// task) and serves the connection with `service`, with the default [`ServerLimits`]. See
/// [`serve_with_shutdown`] and, for limits of your choosing, [`Server`].
pub async fn serve<S, B>(listener: TcpListener, acceptor: TlsAcceptor, service: S)
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Server::default()
        .tls(acceptor)
        .serve(listener, service)
        .await;
}

/// Like [`serve`], until `signal` completes: then stops accepting, lets open connections
/// finish their in-flight requests (HTTP/2 clients get a GOAWAY) and returns when all are
/// closed. Bound the wait with `tokio::time::timeout` if needed. The default [`ServerLimits`]
/// apply; [`Server`] takes others.
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
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    Server::default()
        .tls(acceptor)
        .serve_with_shutdown(listener, service, signal)
        .await;
}

/// Accepts plain TCP connections on `listener` forever and serves each with `service`
/// (HTTP/1.1, or HTTP/2 with prior knowledge), with the client's address as [`ClientAddr`] in
/// every request and the default [`ServerLimits`]. See [`serve_plain_with_shutdown`].
pub async fn serve_plain<S, B>(listener: TcpListener, service: S)
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Server::default().serve(listener, service).await;
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
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    Server::default()
        .serve_with_shutdown(listener, service, signal)
        .await;
}

/// Accept errors: back off (5 ms doubling to 1 s) and log at most once a second.
#[derive(Default)]
struct AcceptErrors {
    delay: Duration,
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    const FIRST_DELAY: Duration = Duration::from_millis(5);
    const MAX_DELAY: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(1);

    fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }

    async fn back_off(&mut self, err: &std::io::Error) {
        use std::io::ErrorKind;
        // The client's own failure (it reset the connection before we took it): next.
        if matches!(
            err.kind(),
            ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
        ) {
            return;
        }
        metrics::counter!(agentgw_core::metrics::ACCEPT_ERRORS_TOTAL).increment(1);
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|last| now.duration_since(last) >= Self::LOG_EVERY)
        {
            tracing::warn!(
                error = %err,
                errors_since_last_log = self.unlogged,
                "accept failed; backing off"
            );
            self.last_logged = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        self.delay = (self.delay * 2).clamp(Self::FIRST_DELAY, Self::MAX_DELAY);
        tokio::time::sleep(self.delay).await;
    }
}

/// The connection-level timers: how long a connection may wait for its first request, and how
/// long it may stay without a request in flight afterwards.
#[derive(Clone, Copy)]
struct Timers {
    first_request: Option<Duration>,
    idle: Option<Duration>,
}

/// What the connection timers need: whether a request came, requests in flight (until their
/// response body ends) and when the last one ended.
struct Activity {
    start: Instant,
    started: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds from `start` to the end of the last response.
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.started.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn idle_since(&self) -> Instant {
        self.start + Duration::from_millis(self.last_done_ms.load(Ordering::Relaxed))
    }

    /// The limit of the current state: before the first request the shorter of both timers,
    /// then the idle timer.
    fn limit(&self, timers: Timers) -> Option<Duration> {
        if self.started.load(Ordering::Relaxed) {
            timers.idle
        } else {
            match (timers.first_request, timers.idle) {
                (Some(first), Some(idle)) => Some(first.min(idle)),
                (first, idle) => first.or(idle),
            }
        }
    }

    /// When the connection will have waited too long, if nothing happens before.
    fn deadline(&self, timers: Timers) -> Option<Instant> {
        let limit = self.limit(timers)?;
        Some(if self.in_flight.load(Ordering::Relaxed) > 0 {
            Instant::now() + limit
        } else {
            self.idle_since() + limit
        })
    }

    fn is_expired(&self, timers: Timers) -> bool {
        self.limit(timers).is_some_and(|limit| {
            self.in_flight.load(Ordering::Relaxed) == 0 && self.idle_since().elapsed() >= limit
        })
    }
}

/// One request in flight on a connection with an idle timer; dropped with its response body.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_done_ms.store(ms, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The request body every `serve*` function hands the service: hyper's [`Incoming`], failing
/// with [`BodyReadTimeout`] when the client does not send the whole body within
/// [`ServerLimits::request_body_timeout`] of its request head.
///
/// A body that arrives with its head never arms a timer.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    timeout: BodyTimer,
}

#[derive(Debug)]
enum BodyTimer {
    Off,
    Idle { received: Instant, limit: Duration },
    Armed(Pin<Box<Sleep>>, Duration),
}

impl RequestBody {
    fn new(inner: Incoming, limit: Option<Duration>) -> Self {
        let timeout = match limit {
            Some(limit) if !http_body::Body::is_end_stream(&inner) => BodyTimer::Idle {
                received: Instant::now(),
                limit,
            },
            _ => BodyTimer::Off,
        };
        RequestBody { inner, timeout }
    }

    /// The body hyper received, without the timeout.
    pub fn into_inner(self) -> Incoming {
        self.inner
    }
}

impl http_body::Body for RequestBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if frame.is_none() {
                this.timeout = BodyTimer::Off;
            }
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if let BodyTimer::Idle { received, limit } = this.timeout {
            let sleep = Box::pin(tokio::time::sleep_until(received + limit));
            this.timeout = BodyTimer::Armed(sleep, limit);
        }
        if let BodyTimer::Armed(sleep, limit) = &mut this.timeout
            && sleep.as_mut().poll(cx).is_ready()
        {
            let limit = *limit;
            this.timeout = BodyTimer::Off;
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The service hyper calls: wraps each body in [`RequestBody`] and, with an idle timer, marks
/// the request in flight until its response body is gone.
#[derive(Clone)]
struct LimitedService<S> {
    inner: S,
    body_timeout: Option<Duration>,
    activity: Option<Arc<Activity>>,
}

impl<S, B> Service<Request<Incoming>> for LimitedService<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.as_ref().map(Activity::begin);
        let req = req.map(|body| RequestBody::new(body, self.body_timeout));
        TrackedFuture {
            inner: self.inner.call(req),
            in_flight,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`LimitedService`]: hands the in-flight mark to the body.
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|inner| TrackedBody {
            inner,
            _in_flight: in_flight,
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body holding its request's in-flight mark until it is dropped.
    struct TrackedBody<B> {
        #[pin]
        inner: B,
        _in_flight: Option<InFlight>,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
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
        Request<RequestBody>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
    > + Clone {
        tower::service_fn(move |req: Request<RequestBody>| {
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

    /// Starts `Server::new(limits)` on a loopback port with [`whoami`]; `/echo` answers with the
    /// request body (408 when it timed out, as a buffering layer would).
    async fn limited(limits: ServerLimits) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let whoami = whoami(served.clone());
        let service = tower::service_fn(move |req: Request<RequestBody>| {
            let mut whoami = whoami.clone();
            async move {
                if req.uri().path() != "/echo" {
                    return whoami.call(req).await;
                }
                match http_body_util::BodyExt::collect(req.into_body()).await {
                    Ok(body) => Ok(Response::new(Full::new(body.to_bytes()))),
                    Err(err) => {
                        let timed_out = BodyReadTimeout::is_cause_of(err.as_ref());
                        let mut res = Response::new(Full::new(Bytes::from(err.to_string())));
                        if timed_out {
                            *res.status_mut() = http::StatusCode::REQUEST_TIMEOUT;
                        }
                        Ok(res)
                    }
                }
            }
        });
        let server = Server::new(&limits).unwrap();
        tokio::spawn(async move { server.serve(listener, service).await });
        (addr, served)
    }

    /// Reads until the server closes the connection (a guard of 10 s keeps a broken limit from
    /// hanging the test) and returns what it sent.
    async fn read_until_closed(tcp: &mut TcpStream) -> String {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
            .await
            .expect("the server closes the connection")
            .ok();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_client_sending_half_a_head_is_cut_at_the_header_deadline() {
        let limits = ServerLimits::default().header_read_timeout(Some(Duration::from_millis(200)));
        let (addr, served) = limited(limits).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let answer = read_until_closed(&mut tcp).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(served.load(Ordering::SeqCst), 0);

        // A silent connection is cut the same way.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        read_until_closed(&mut silent).await;
    }

    #[tokio::test]
    async fn a_body_sent_too_slowly_fails_with_request_timeout() {
        let limits = ServerLimits::default().request_body_timeout(Some(Duration::from_millis(200)));
        let (addr, _) = limited(limits).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n{\"a\"")
            .await
            .unwrap();
        let answer = read_until_closed(&mut tcp).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("request body not received within"),
            "{answer}"
        );

        // A body that arrives in time is untouched.
        let client = reqwest::Client::new();
        let res = client
            .post(format!("http://{addr}/echo"))
            .body("{\"a\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "{\"a\":1}");
    }

    #[tokio::test]
    async fn idle_connections_close_after_the_keep_alive_timeout_but_streams_do_not() {
        let limits = ServerLimits::default()
            .header_read_timeout(None)
            .keep_alive_timeout(Some(Duration::from_millis(200)));
        let (addr, served) = limited(limits).await;

        // HTTP/1.1: one request, then silence.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut tcp).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // A request that takes longer than the idle timeout is not cut: it is in flight.
        let (_, answer) = exchange(addr, "/wait/600").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // HTTP/2: the server sends GOAWAY and closes the idle connection.
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let req = Request::builder()
            .uri(format!("http://{addr}/"))
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
        tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("the server closes an idle HTTP/2 connection")
            .unwrap()
            .unwrap();
        assert_eq!(served.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn past_max_connections_clients_wait_until_a_slot_frees() {
        let limits = ServerLimits::default()
            .header_read_timeout(None)
            .max_connections(Some(2));
        let (addr, _) = limited(limits).await;
        let first = TcpStream::connect(addr).await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        // Give the server the time to accept both.
        tokio::time::sleep(Duration::from_millis(100)).await;

        let third = tokio::spawn(exchange(addr, "/"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !third.is_finished(),
            "the third client waits in the backlog"
        );
        drop(first);
        let (_, answer) = tokio::time::timeout(Duration::from_secs(10), third)
            .await
            .expect("served once a slot is free")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn too_many_or_too_large_headers_are_refused_with_431() {
        let limits = ServerLimits::default()
            .max_headers(10)
            .max_header_bytes(16 * 1024);
        let (addr, served) = limited(limits).await;

        let many: String = (0..20).map(|i| format!("x-h{i}: v\r\n")).collect();
        let big = format!("x-big: {}\r\n", "a".repeat(20 * 1024));
        for extra in [many, big] {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let request = format!("GET / HTTP/1.1\r\nhost: x\r\n{extra}\r\n");
            let _ = tcp.write_all(request.as_bytes()).await;
            let answer = read_until_closed(&mut tcp).await;
            assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        }
        // Within the limits: served.
        let mut request = reqwest::Client::new().get(format!("http://{addr}/"));
        for i in 0..5 {
            request = request.header(format!("x-h{i}"), "v");
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
        assert_eq!(served.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn http2_clients_get_at_most_the_configured_concurrent_streams() {
        let limits = ServerLimits::default().http2_max_concurrent_streams(2);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (n, p) = (now.clone(), peak.clone());
        let service = tower::service_fn(move |_req: Request<RequestBody>| {
            let (now, peak) = (n.clone(), p.clone());
            async move {
                let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(current, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        });
        let server = Server::new(&limits).unwrap();
        tokio::spawn(async move { server.serve(listener, service).await });

        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let calls = (0..8).map(|_| client.get(format!("http://{addr}/")).send());
        for res in futures_util::future::join_all(calls).await {
            assert_eq!(res.unwrap().status(), 200);
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off_exponentially_up_to_a_second() {
        let mut errors = AcceptErrors::default();
        let emfile = std::io::Error::from_raw_os_error(24);
        let mut waits = Vec::new();
        for _ in 0..10 {
            let started = Instant::now();
            errors.back_off(&emfile).await;
            waits.push(started.elapsed().as_millis());
        }
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        // Logged at 0, 1.275 s and 2.275 s: the seven errors of the first second were counted,
        // not logged one by one, and the count went out with the next line.
        assert_eq!(errors.unlogged, 0);
        assert!(errors.last_logged.is_some());
        errors.reset();
        let started = Instant::now();
        errors.back_off(&emfile).await;
        assert_eq!(started.elapsed().as_millis(), 5);
        // A client's own reset costs no wait.
        let started = Instant::now();
        errors
            .back_off(&std::io::Error::from(std::io::ErrorKind::ConnectionAborted))
            .await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
