//! Listeners, the request dispatcher, health and metrics endpoints, reload and shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agentgw_core::config::{ConfigError as _, join};
use agentgw_core::{BoxError, Rejection, ResponseShape};
use agentgw_tls::TlsAcceptor;
use arc_swap::ArcSwap;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
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
    let proxy = tower::service_fn(move |req| {
        let shared = dispatch_shared.clone();
        async move { Ok::<_, Infallible>(dispatch(&shared, req).await) }
    });
    if workers == Workers::Current {
        for listener in proxy_listeners {
            tasks.spawn(serve(
                listener,
                tls.clone(),
                proxy.clone(),
                shutdown_rx.clone(),
                grace,
            ));
        }
    } else {
        for (index, listener) in proxy_listeners.into_iter().enumerate() {
            let served = serve(
                listener,
                tls.clone(),
                proxy.clone(),
                shutdown_rx.clone(),
                grace,
            );
            let done =
                spawn_worker(index, served).map_err(|source| StartError::Bind { addr, source })?;
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
        let metrics = tower::service_fn(move |req: Request<Incoming>| {
            let res = metrics_endpoint(handle.as_ref(), &req);
            async move { Ok::<_, Infallible>(res) }
        });
        tasks.spawn(serve(listener, None, metrics, shutdown_rx.clone(), grace));
    }

    let mut health_addr = None;
    if let Some(want) = config.health {
        let listener = bind(want, false).await?;
        health_addr = listener.local_addr().ok();
        let health_shared = shared.clone();
        let health = tower::service_fn(move |req: Request<Incoming>| {
            let res = health_endpoint(&health_shared, &req);
            async move { Ok::<_, Infallible>(res) }
        });
        tasks.spawn(serve(listener, None, health, shutdown_rx, grace));
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

/// Binds `addr`; with `reuse_port`, several listeners (one per worker) can share it. The
/// listener is registered with a runtime by the [`serve`] that runs it.
async fn bind(addr: SocketAddr, reuse_port: bool) -> Result<std::net::TcpListener, StartError> {
    let listen = async || -> std::io::Result<std::net::TcpListener> {
        if !reuse_port {
            return TcpListener::bind(addr).await?.into_std();
        }
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        socket.listen(4096)?.into_std()
    };
    listen()
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Runs `served` (a listener's [`serve`]) as per-core worker `index`, on its own thread with a
/// current-thread runtime; the returned receiver completes when the worker has stopped (after
/// draining).
fn spawn_worker(
    index: usize,
    served: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("agentgw-worker-{index}"))
        .spawn(move || {
            crate::proxy::enter_worker(index);
            runtime.block_on(served);
            // Connection tasks still running past the grace period are dropped with the runtime.
            drop(runtime);
            let _ = done.send(());
        })?;
    Ok(done_rx)
}

/// Serves `listener` (through `tls` when set) with `service` through agentgw-tls's accept loop
/// until `shutdown` turns true, then lets open connections finish for at most `grace`.
async fn serve<S, B>(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // Registered with the runtime that runs this future (a per-core worker's own).
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => return tracing::error!(error = %err, "cannot listen"),
    };
    let mut stopping = shutdown.clone();
    let signal = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let mut served: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match tls {
        Some(acceptor) => Box::pin(agentgw_tls::serve_with_shutdown(
            listener, acceptor, service, signal,
        )),
        None => Box::pin(agentgw_tls::serve_plain_with_shutdown(
            listener, service, signal,
        )),
    };
    tokio::select! {
        () = &mut served => return,
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    if tokio::time::timeout(grace, served).await.is_err() {
        tracing::warn!(?grace, "grace period over; closing remaining connections");
    }
}

/// Routes a request to its route's stack; the accept loop put the client's address (and TLS
/// identity) in its extensions.
async fn dispatch(shared: &Shared, req: Request<Incoming>) -> Response<ResBody> {
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
    let req: Request<ReqBody> = req.map(|body| body.map_err(box_error).boxed());
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
