//! Listeners, the request dispatcher, health and metrics endpoints, reload and shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agentgw_core::config::{ConfigError as _, join};
use agentgw_core::identity::{ClientAddr, PeerIdentity};
use agentgw_core::{BoxError, Rejection, ResponseShape};
use agentgw_tls::TlsAcceptor;
use arc_swap::ArcSwap;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Config, ConfigError, ConfigErrors};
use crate::stack::{Stack, StackOptions};
use crate::{ReqBody, ResBody};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How the proxy listener's connections are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workers {
    /// On the Tokio runtime that called [`start_with`] (what tests and embedders use).
    #[default]
    Current,
    /// On `n` threads, each with its own current-thread runtime, its own `SO_REUSEPORT`
    /// listener on the proxy address and its own upstream connection pools: a request is
    /// accepted, checked, forwarded and answered on one thread, with no cross-thread wake-ups
    /// (the layout of nginx's worker processes). Health, metrics, reloads and layer background
    /// work (JWKS refresh) stay on the calling runtime.
    PerCore(std::num::NonZeroUsize),
}

impl Workers {
    fn count(self) -> usize {
        match self {
            Workers::Current => 0,
            Workers::PerCore(n) => n.get(),
        }
    }
}

struct Shared {
    stack: ArcSwap<Stack>,
    options: StackOptions,
    config_path: Option<PathBuf>,
    loaded: AtomicBool,
    draining: AtomicBool,
}

/// A running gateway. Dropping it does not stop it; call [`RunningGateway::shutdown`].
pub struct RunningGateway {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    health_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok();
            if handle.is_some() {
                agentgw_core::metrics::describe();
            }
            handle
        })
        .clone()
}

/// Binds the listeners of `config` and starts serving on the current runtime. `config_path` is
/// re-read on [`RunningGateway::reload`].
pub async fn start(
    config: Config,
    config_path: Option<PathBuf>,
) -> Result<RunningGateway, StartError> {
    start_with(config, config_path, Workers::Current).await
}

/// [`start`], serving the proxy listener as `workers` says.
pub async fn start_with(
    config: Config,
    config_path: Option<PathBuf>,
    workers: Workers,
) -> Result<RunningGateway, StartError> {
    if config.metrics.is_some() {
        // Before the stack is built: routes register their metric handles with the recorder.
        prometheus();
    }
    let options = StackOptions::workers(workers.count());
    let stack = Stack::build_with(&config, &options)?;
    let tls = match &config.tls {
        Some(tls) => {
            // The acceptor polls its files (tls.reloadInterval): renewed certificates are picked
            // up without a restart, and a broken new file keeps the old one in service.
            let acceptor = TlsAcceptor::from_config(tls).map_err(|e| {
                ConfigErrors::from(ConfigError::new(join("tls", e.path()), e.reason()))
            })?;
            Some(acceptor)
        }
        None => None,
    };
    let grace = config.shutdown_grace_period;
    let mut proxy_listeners = vec![bind(config.listen, workers.count() > 0).await?];
    let addr = proxy_listeners[0]
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    for _ in 1..workers.count() {
        // The same (resolved) address: the kernel spreads new connections over the workers.
        proxy_listeners.push(bind(addr, true).await?);
    }
    let shared = Arc::new(Shared {
        stack: ArcSwap::from_pointee(stack),
        options,
        config_path,
        loaded: AtomicBool::new(true),
        draining: AtomicBool::new(false),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let dispatch_shared = shared.clone();
    let handler = move |req, peer: &Peer| {
        let shared = dispatch_shared.clone();
        let peer = peer.clone();
        async move { dispatch(&shared, req, peer).await }
    };
    if workers == Workers::Current {
        for listener in proxy_listeners {
            tasks.spawn(serve(
                listener,
                tls.clone(),
                shutdown_rx.clone(),
                grace,
                handler.clone(),
            ));
        }
    } else {
        for (index, listener) in proxy_listeners.into_iter().enumerate() {
            let done = spawn_worker(
                index,
                listener,
                tls.clone(),
                shutdown_rx.clone(),
                grace,
                handler.clone(),
            )
            .map_err(|source| StartError::Bind { addr, source })?;
            tasks.spawn(async move {
                // The worker thread reports when its connections have drained.
                let _ = done.await;
            });
        }
    }

    let mut metrics_addr = None;
    if let Some(want) = config.metrics {
        let listener = bind(want, false).await?;
        metrics_addr = listener.local_addr().ok();
        let handle = prometheus();
        tasks.spawn(serve(
            listener,
            None,
            shutdown_rx.clone(),
            grace,
            move |req, _| {
                let handle = handle.clone();
                async move { metrics_endpoint(handle.as_ref(), &req) }
            },
        ));
    }

    let mut health_addr = None;
    if let Some(want) = config.health {
        let listener = bind(want, false).await?;
        health_addr = listener.local_addr().ok();
        let health_shared = shared.clone();
        tasks.spawn(serve(listener, None, shutdown_rx, grace, move |req, _| {
            let shared = health_shared.clone();
            async move { health_endpoint(&shared, &req) }
        }));
    }

    tracing::info!(%addr, metrics = ?metrics_addr, health = ?health_addr, "agentgw listening");
    Ok(RunningGateway {
        addr,
        metrics_addr,
        health_addr,
        shared,
        shutdown,
        tasks,
    })
}

impl RunningGateway {
    /// The proxy listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics listener's address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// Re-reads the configuration file and swaps the whole stack atomically. An invalid file
    /// keeps the running stack and returns why.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        let Some(path) = &self.shared.config_path else {
            return Err(
                crate::config::ConfigError::new("", "no configuration file to reload").into(),
            );
        };
        let config = Config::load(path)?;
        self.apply(&config)
    }

    /// Swaps in the stack of `config` (listener addresses are not changed by a reload).
    pub fn apply(&self, config: &Config) -> Result<(), ConfigErrors> {
        let stack = Stack::build_with(config, &self.shared.options)?;
        self.shared.stack.store(Arc::new(stack));
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// Stops accepting, lets in-flight requests finish within the grace period, and returns.
    pub async fn shutdown(mut self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until the gateway stops (it stops only through [`RunningGateway::shutdown`]).
    pub async fn wait(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Binds `addr`; with `reuse_port`, several listeners (one per worker) can share it.
async fn bind(addr: SocketAddr, reuse_port: bool) -> Result<TcpListener, StartError> {
    if !reuse_port {
        return TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source });
    }
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        socket.listen(4096)
    };
    listen().map_err(|source| StartError::Bind { addr, source })
}

/// Starts per-core worker `index` on its own thread with a current-thread runtime; the returned
/// receiver completes when the worker has stopped (after draining).
fn spawn_worker<H, F>(
    index: usize,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
    handler: H,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>>
where
    H: Fn(Request<Incoming>, &Peer) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<ResBody>> + Send + 'static,
{
    // Registered with this runtime's reactor until now: hand the socket over to the worker's.
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("agentgw-worker-{index}"))
        .spawn(move || {
            crate::proxy::enter_worker(index);
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, tls, shutdown, grace, handler).await,
                    Err(err) => tracing::error!(error = %err, index, "worker cannot listen"),
                }
            });
            // Connection tasks still running past the grace period are dropped with the runtime.
            drop(runtime);
            let _ = done.send(());
        })?;
    Ok(done_rx)
}

/// Who is on the other end of a connection.
#[derive(Clone)]
struct Peer {
    addr: SocketAddr,
    identity: Option<Arc<PeerIdentity>>,
}

/// Accepts connections on `listener` (through `tls` when set) and serves HTTP/1.1 and HTTP/2
/// with `handler` until `shutdown` turns true, then drains for at most `grace`.
async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    handler: H,
) where
    H: Fn(Request<Incoming>, &Peer) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<ResBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let result = match tls {
                        None => {
                            let peer = Peer { addr, identity: None };
                            let service = hyper::service::service_fn(move |req| {
                                let fut = handler(req, &peer);
                                async move { Ok::<_, Infallible>(fut.await) }
                            });
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Some(acceptor) => {
                            let (stream, identity) = match acceptor.accept(stream).await {
                                Ok(accepted) => accepted,
                                Err(err) => {
                                    tracing::debug!(error = %err, %addr, "TLS handshake failed");
                                    return;
                                }
                            };
                            let peer = Peer { addr, identity: identity.map(Arc::new) };
                            let service = hyper::service::service_fn(move |req| {
                                let fut = handler(req, &peer);
                                async move { Ok::<_, Infallible>(fut.await) }
                            });
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            watcher.watch(conn.into_owned()).await
                        }
                    };
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?grace, "grace period over; closing remaining connections");
    }
}

async fn dispatch(shared: &Shared, req: Request<Incoming>, peer: Peer) -> Response<ResBody> {
    let started = Instant::now();
    let stack = shared.stack.load_full();
    // One path for routing, every layer and the upstream: canonical, or refused here.
    let mut req = req;
    if let Err(rejection) =
        agentgw_core::path::canonicalize_request(&mut req).map_err(|e| e.into_rejection("router"))
    {
        rejection.record();
        return full(rejection.into_response(&ResponseShape::Plain));
    }
    let Some(route) = stack.route(req.uri().path()) else {
        let rejection = Rejection::new(StatusCode::NOT_FOUND, "router", "no_route")
            .with_message("no route for this path");
        return full(rejection.into_response(&ResponseShape::Plain));
    };
    let mut req: Request<ReqBody> = req.map(|body| body.map_err(box_error).boxed());
    req.extensions_mut().insert(ClientAddr(peer.addr));
    if let Some(identity) = peer.identity {
        req.extensions_mut().insert(PeerIdentity::clone(&identity));
    }
    let response = match route.call(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    route.metrics.record(response.status(), started.elapsed());
    response
}

fn metrics_endpoint(
    handle: Option<&PrometheusHandle>,
    req: &Request<Incoming>,
) -> Response<ResBody> {
    if req.uri().path() != "/metrics" {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    match handle {
        Some(handle) => {
            let mut res = text(StatusCode::OK, &handle.render());
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            res
        }
        None => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        ),
    }
}

fn health_endpoint(shared: &Shared, req: &Request<Incoming>) -> Response<ResBody> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let ready = shared.loaded.load(Ordering::SeqCst)
                && !shared.draining.load(Ordering::SeqCst)
                && shared.stack.load().is_ready();
            if ready {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<ResBody> {
    let mut res = Response::new(
        http_body_util::Full::new(bytes::Bytes::from(body.to_owned()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *res.status_mut() = status;
    res
}

fn full(res: Response<http_body_util::Full<bytes::Bytes>>) -> Response<ResBody> {
    res.map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

fn box_error(err: hyper::Error) -> BoxError {
    Box::new(err)
}
