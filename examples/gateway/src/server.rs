//! Listeners, the request dispatcher, health and metrics endpoints, reload and shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agentgw_core::config::{ConfigError as _, join};
use agentgw_core::{BoxError, Rejection, ResponseShape};
use agentgw_tls::{RequestBody, Server, TlsAcceptor};
use arc_swap::ArcSwap;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
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
    /// Another process (or another gateway) already listens on the address.
    #[error(
        "cannot listen on {addr}: another process is already listening there \
         (stop it or choose another address)"
    )]
    AddressInUse {
        /// The address.
        addr: SocketAddr,
    },
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

/// Bucket bounds of every `*_seconds` histogram: from a fast layer's millisecond to a long
/// model answer's two minutes.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Buckets rather than the exporter's default summaries: buckets add up across
            // replicas (`histogram_quantile` over `sum by (le)`), quantiles of summaries do not.
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), DURATION_BUCKETS)
                .ok()
                .and_then(|builder| builder.install_recorder().ok());
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
    let server = |tls: Option<TlsAcceptor>| {
        let server = Server::new(&config.server).map_err(|e| {
            ConfigErrors::from(ConfigError::new(join("server", e.path()), e.reason()))
        })?;
        Ok::<_, ConfigErrors>(match tls {
            Some(acceptor) => server.tls(acceptor),
            None => server,
        })
    };
    // One server for the proxy address: its workers share the connection limit.
    let proxy_server = server(tls)?;
    let mut proxy_listeners = vec![bind(config.listen, workers.count() > 0).await?];
    let addr = proxy_listeners[0]
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    for _ in 1..workers.count() {
        // The same (resolved) address: the kernel spreads new connections over the workers.
        proxy_listeners.push(bind_reuse_port(addr)?);
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
                proxy_server.clone(),
                proxy.clone(),
                shutdown_rx.clone(),
                grace,
            ));
        }
    } else {
        for (index, listener) in proxy_listeners.into_iter().enumerate() {
            let served = serve(
                listener,
                proxy_server.clone(),
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
        let metrics = tower::service_fn(move |req: Request<RequestBody>| {
            let res = metrics_endpoint(handle.as_ref(), &req);
            async move { Ok::<_, Infallible>(res) }
        });
        tasks.spawn(serve(
            listener,
            server(None)?,
            metrics,
            shutdown_rx.clone(),
            grace,
        ));
    }

    let mut health_addr = None;
    if let Some(want) = config.health {
        let listener = bind(want, false).await?;
        health_addr = listener.local_addr().ok();
        let health_shared = shared.clone();
        let health = tower::service_fn(move |req: Request<RequestBody>| {
            let res = health_endpoint(&health_shared, &req);
            async move { Ok::<_, Infallible>(res) }
        });
        tasks.spawn(serve(listener, server(None)?, health, shutdown_rx, grace));
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

/// Binds `addr` for this process alone; with `reuse_port`, further listeners of our own workers
/// can join it ([`bind_reuse_port`]). The listener is registered with a runtime by the
/// [`serve`] that runs it.
///
/// `SO_REUSEPORT` would also let a second gateway started on the same address bind it and
/// silently take part of the connections. So before joining a port group, a probe socket
/// without `SO_REUSEPORT` binds the address: it fails while any other socket listens there,
/// and the start fails with [`StartError::AddressInUse`]. (Two gateways started within the
/// same microseconds could both pass the probe; anything started later fails.)
async fn bind(addr: SocketAddr, reuse_port: bool) -> Result<std::net::TcpListener, StartError> {
    let in_use = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            StartError::AddressInUse { addr }
        } else {
            StartError::Bind { addr, source }
        }
    };
    if !reuse_port {
        return TcpListener::bind(addr)
            .await
            .and_then(TcpListener::into_std)
            .map_err(in_use);
    }
    if addr.port() != 0 {
        let probe = tcp_socket(addr).map_err(in_use)?;
        probe.set_reuseaddr(true).map_err(in_use)?;
        probe.bind(addr).map_err(in_use)?;
        drop(probe);
    }
    bind_reuse_port(addr).map_err(|err| match err {
        StartError::Bind { source, .. } => in_use(source),
        other => other,
    })
}

/// Binds one more listener of our own `SO_REUSEPORT` group on `addr`.
fn bind_reuse_port(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    let listen = || -> std::io::Result<std::net::TcpListener> {
        let socket = tcp_socket(addr)?;
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        socket.listen(4096)?.into_std()
    };
    listen().map_err(|source| StartError::Bind { addr, source })
}

fn tcp_socket(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
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

/// Serves `listener` with `service` through agentgw-tls's accept loop (`server` carries the
/// limits, the shared connection count and TLS) until `shutdown` turns true, then lets open
/// connections finish for at most `grace`.
async fn serve<S, B>(
    listener: std::net::TcpListener,
    server: Server,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) where
    S: tower::Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
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
    let served = server.serve_with_shutdown(listener, service, signal);
    let mut served = std::pin::pin!(served);
    tokio::select! {
        () = &mut served => return,
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    if tokio::time::timeout(grace, &mut served).await.is_err() {
        tracing::warn!(?grace, "grace period over; closing remaining connections");
    }
}

/// Routes a request to its route's stack; the accept loop put the client's address (and TLS
/// identity) in its extensions.
async fn dispatch(shared: &Shared, req: Request<RequestBody>) -> Response<ResBody> {
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
    let req: Request<ReqBody> = req.map(BodyExt::boxed);
    let response = match route.call(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    route.metrics.record(response.status(), started.elapsed());
    response
}

fn metrics_endpoint(
    handle: Option<&PrometheusHandle>,
    req: &Request<RequestBody>,
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

/// `/healthz`: the process is alive (200 always); with `?verbose`, a JSON report of readiness
/// and of every route's dependencies. `/readyz`: 200 when the configuration is loaded, the
/// gateway is not draining and every dependency of the routes marked `requiredForReadiness` is
/// up; 503 with the reasons otherwise.
fn health_endpoint(shared: &Shared, req: &Request<RequestBody>) -> Response<ResBody> {
    let stack = shared.stack.load();
    let draining = shared.draining.load(Ordering::SeqCst);
    let loaded = shared.loaded.load(Ordering::SeqCst);
    match req.uri().path() {
        "/healthz" if !wants_verbose(req.uri().query()) => text(StatusCode::OK, "ok\n"),
        "/healthz" => {
            let routes: Vec<_> = stack
                .health()
                .iter()
                .map(|route| {
                    serde_json::json!({
                        "name": &*route.name,
                        "requiredForReadiness": route.required,
                        "dependencies": route.dependencies(),
                    })
                })
                .collect();
            let report = serde_json::json!({
                "status": "ok",
                "ready": loaded && !draining && stack.is_ready(),
                "draining": draining,
                "routes": routes,
            });
            let mut res = text(StatusCode::OK, &format!("{report:#}\n"));
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            res
        }
        "/readyz" => {
            let mut reasons = Vec::new();
            if !loaded {
                reasons.push("configuration not loaded".to_owned());
            }
            if draining {
                reasons.push("draining".to_owned());
            }
            for route in stack.health().iter().filter(|route| route.required) {
                for dependency in route.dependencies() {
                    if !dependency.state.is_up() {
                        reasons.push(format!(
                            "route {}: {} {} is {}",
                            route.name,
                            dependency.kind,
                            dependency.target,
                            dependency.state.as_str()
                        ));
                    }
                }
            }
            if reasons.is_empty() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("not ready: {}\n", reasons.join("; ")),
                )
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Whether the query asks for the verbose report (`?verbose`, `?verbose=1`, `?verbose=true`).
fn wants_verbose(query: Option<&str>) -> bool {
    query.is_some_and(|query| {
        query
            .split('&')
            .any(|pair| matches!(pair, "verbose" | "verbose=" | "verbose=1" | "verbose=true"))
    })
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
