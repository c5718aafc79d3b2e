//! From configuration to a stack of layers per route.
//!
//! Every route becomes one boxed service: the [`Upstream`] at the bottom,
//! the route's and the global policies' layers around it in the order of the request path
//! (authentication outermost, then RBAC, prompt guard, tool security), and a small layer that
//! tells the inner layers which route and protocol they serve. [`Stack`] holds the routes and
//! picks one by longest path prefix; the server swaps whole stacks atomically on reload.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use agentgw_core::audit::AuditSink;
use agentgw_core::body::BodyLimit;
use agentgw_core::config::{ConfigError as _, ConfigWarning, join};
use agentgw_core::health::Dependency;
use agentgw_core::identity::BackendName;
use agentgw_core::tool_metrics::ToolMetricsLayer;
use agentgw_core::{BoxError, ResponseShape};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use crate::config::{
    Config, ConfigError, ConfigErrors, Policies, Route, RouteKind, normalize_prefix,
};
use crate::proxy::{self, Upstream};
use crate::{ReqBody, ResBody};

/// One route's whole stack, type-erased.
pub type RouteService = BoxCloneSyncService<Request<ReqBody>, Response<ResBody>, Infallible>;

/// The run-time dependencies a layer reports (its JWKS endpoints, its authorization service),
/// read by `/readyz` and `/healthz?verbose`.
pub type DependencyCheck = Arc<dyn Fn() -> Vec<Dependency> + Send + Sync>;

/// The dependencies of one route's layers, and whether readiness waits for them.
#[derive(Clone)]
pub struct RouteHealth {
    /// The route's name.
    pub name: Arc<str>,
    /// `requiredForReadiness`: the gateway is not ready while one of these is not up.
    pub required: bool,
    checks: Vec<DependencyCheck>,
}

impl RouteHealth {
    /// Every dependency of the route's layers, with its state now.
    pub fn dependencies(&self) -> Vec<Dependency> {
        self.checks.iter().flat_map(|check| check()).collect()
    }

    /// Whether every dependency is up.
    pub fn is_up(&self) -> bool {
        self.checks
            .iter()
            .all(|check| check().iter().all(|d| d.state.is_up()))
    }
}

/// A compiled route.
#[derive(Clone)]
pub struct CompiledRoute {
    /// Route name (metrics label).
    pub name: Arc<str>,
    prefix: String,
    /// The route's layers and upstream; [`CompiledRoute::call`] adds what they expect to find
    /// in the request.
    service: RouteService,
    kind: Option<agentgw_core::rejection::RouteKind>,
    encoded_bodies: agentgw_core::decode::EncodedBodies,
    backend: BackendName,
    /// The route's request metrics.
    pub metrics: Arc<RouteMetrics>,
}

/// Metric handles of one route, registered once instead of looked up per request.
pub struct RouteMetrics {
    route: Arc<str>,
    duration: metrics::Histogram,
    by_status: Box<[OnceLock<metrics::Counter>]>,
}

impl RouteMetrics {
    fn new(route: Arc<str>) -> Self {
        let duration = metrics::histogram!(
            agentgw_core::metrics::REQUEST_DURATION_SECONDS,
            agentgw_core::metrics::labels::ROUTE => route.to_string()
        );
        RouteMetrics {
            route,
            duration,
            by_status: (100..600).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts one request with its status and latency.
    pub fn record(&self, status: http::StatusCode, elapsed: std::time::Duration) {
        self.duration.record(elapsed.as_secs_f64());
        let index = usize::from(status.as_u16()).saturating_sub(100);
        let counter = self.by_status.get(index).map(|slot| {
            slot.get_or_init(|| {
                metrics::counter!(
                    agentgw_core::metrics::REQUESTS_TOTAL,
                    agentgw_core::metrics::labels::ROUTE => self.route.to_string(),
                    agentgw_core::metrics::labels::STATUS => status.as_str().to_owned()
                )
            })
        });
        if let Some(counter) = counter {
            counter.increment(1);
        }
    }
}

impl CompiledRoute {
    /// Serves `req` on this route: tells the layers the route's protocol (the shape of their
    /// denials) and backend name, then calls the route's stack. Inserting these here rather
    /// than in a layer of the stack saves a level of boxing on every request.
    pub fn call(&self, mut req: Request<ReqBody>) -> RouteFuture {
        if let Some(kind) = self.kind {
            req.extensions_mut().insert(kind);
        }
        req.extensions_mut().insert(self.encoded_bodies);
        req.extensions_mut().insert(self.backend.clone());
        call(self.service.clone(), req)
    }
}

/// How a [`Stack`] is built beyond its configuration.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StackOptions {
    /// Number of per-core workers that serve the stack: each upstream gets one client (and
    /// connection pool) per worker besides the shared one. `0` for a stack served from one
    /// multi-threaded runtime.
    pub workers: usize,
}

impl StackOptions {
    /// Options for a stack served by `workers` per-core workers.
    pub fn workers(workers: usize) -> Self {
        StackOptions { workers }
    }
}

/// All routes of one configuration, ready to serve.
#[derive(Clone)]
pub struct Stack {
    routes: Vec<CompiledRoute>,
    health: Vec<RouteHealth>,
    warnings: Vec<ConfigWarning>,
}

impl Stack {
    /// Builds every route's layers; reports every configuration error with its path.
    pub fn build(config: &Config) -> Result<Stack, ConfigErrors> {
        Self::build_with(config, &StackOptions::default())
    }

    /// [`Stack::build`] with options.
    pub fn build_with(config: &Config, options: &StackOptions) -> Result<Stack, ConfigErrors> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut routes = Vec::new();
        let mut health = Vec::new();
        // One sink for every layer of every route (remote ones share one queue and connection).
        let audit = config.audit.as_ref().and_then(|audit| {
            audit
                .sink()
                .map_err(|e| errors.push(ConfigError::new(join("audit", e.path()), e.reason())))
                .ok()
        });
        for (i, route) in config.routes.iter().enumerate() {
            let mut checks = Vec::new();
            let mut found = Found {
                checks: &mut checks,
                warnings: &mut warnings,
            };
            let built = build_route(config, options, route, i, audit.as_ref(), &mut found);
            health.push(RouteHealth {
                name: Arc::from(route.name.as_str()),
                required: route.required_for_readiness,
                checks,
            });
            match built {
                Ok(service) => routes.push(CompiledRoute {
                    name: Arc::from(route.name.as_str()),
                    kind: route.kind.map(agentgw_core::rejection::RouteKind::from),
                    encoded_bodies: config.request_encoding,
                    backend: BackendName(Arc::from(route.name.as_str())),
                    metrics: Arc::new(RouteMetrics::new(Arc::from(route.name.as_str()))),
                    prefix: normalize_prefix(&route.path_prefix)
                        .trim_end_matches('/')
                        .to_owned(),
                    service,
                }),
                Err(mut errs) => errors.append(&mut errs),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        // Longest prefix first, so the first match is the most specific.
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        // The global block's warnings were found once per route.
        let mut seen = std::collections::HashSet::new();
        warnings.retain(|w: &ConfigWarning| seen.insert(w.path.clone()));
        for warning in &warnings {
            tracing::warn!(field = %warning.path, "configuration: {}", warning.message);
        }
        Ok(Stack {
            routes,
            health,
            warnings,
        })
    }

    /// What the configuration asks for that loads but is applied differently than it reads
    /// (each with its full field path): a streamed response pattern of unbounded length,
    /// `includeArguments` below `audit.level: full`, sandbox keys for stdio servers on an HTTP
    /// upstream. `--check-config` prints them; each is also logged when the stack is built.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// The route serving `path`: the longest prefix that matches on a segment boundary.
    pub fn route(&self, path: &str) -> Option<&CompiledRoute> {
        self.routes.iter().find(|r| {
            r.prefix.is_empty()
                || path
                    .strip_prefix(r.prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// Whether every dependency of the routes marked `requiredForReadiness` is up. A route
    /// that is not marked never takes the gateway out of rotation: its requests fail on their
    /// own (401 without keys, the ext_authz failure mode) while other routes serve.
    pub fn is_ready(&self) -> bool {
        self.health
            .iter()
            .filter(|route| route.required)
            .all(RouteHealth::is_up)
    }

    /// Every route's dependencies, in configuration order.
    pub fn health(&self) -> &[RouteHealth] {
        &self.health
    }
}

fn build_route(
    config: &Config,
    options: &StackOptions,
    route: &Route,
    index: usize,
    audit: Option<&Arc<dyn AuditSink>>,
    found: &mut Found<'_>,
) -> Result<RouteService, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let backend_path = format!("routes[{index}].backend");
    let https = route.backend.url.starts_with("https://");
    if route.backend.tls.is_some() && !https {
        errors.push(ConfigError::new(
            format!("{backend_path}.tls"),
            "a tls block needs an https:// backend URL".to_owned(),
        ));
    }
    let tls = match &route.backend.tls {
        Some(tls) => Some(
            agentgw_tls::client_config(&tls.clone().secrets_dir(&config.secrets_dir)).map_err(
                |e| ConfigError::new(join(&format!("{backend_path}.tls"), e.path()), e.reason()),
            ),
        ),
        // An https:// backend without a `tls` block: verified against the system's roots.
        None if https => Some(
            agentgw_tls::client_config(&agentgw_tls::UpstreamTlsConfig::system_roots())
                .map_err(|e| ConfigError::new(format!("{backend_path}.url"), e.reason())),
        ),
        None => None,
    };
    // An error is reported with the other errors of the route below.
    let tls = tls.and_then(|tls| tls.map_err(|error| errors.push(error)).ok());
    let mut service = if let Some(stdio) = &route.backend.stdio {
        let backend = stdio_backend(config, route, index, stdio, found.warnings)
            .map_err(|error| vec![error])?;
        boxed(backend)
    } else if https && tls.is_none() {
        // The TLS error is in `errors` already. The route is never served, but its layers are
        // still built so that their errors are reported too.
        boxed(tower::service_fn(|_: Request<ReqBody>| async {
            Ok::<_, Infallible>(Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            ))
        }))
    } else {
        let upstream_options = proxy::UpstreamOptions {
            timeout: route.backend.timeout,
            connect_timeout: route.backend.connect_timeout,
            // On an http:// backend, a `tls` block is an error reported above.
            tls: tls.filter(|_| https),
            http2: route.backend.http2,
            workers: options.workers,
        };
        let upstream = Upstream::new(&route.backend.url, &route.path_prefix, &upstream_options)
            .map_err(|e| vec![ConfigError::new(format!("{backend_path}.url"), e)])?;
        // Already speaks our bodies: boxed as it is, without `boxed`'s response mapping.
        BoxCloneSyncService::new(upstream)
    };

    if let Some(token) = &route.backend.auth_token {
        match agentgw_auth::BackendAuthLayer::from_config(&with_secrets_dir(token, config)) {
            Ok(layer) => service = wrap(service, layer),
            Err(e) => errors.push(ConfigError::new(
                join(&format!("{backend_path}.authToken"), e.path()),
                e.reason(),
            )),
        }
    }

    // Layers are applied innermost first, following the request path backwards: tool security,
    // prompt guard, RBAC, then authentication outermost. For each kind the route's block sits
    // inside the global block.
    let route_path = format!("routes[{index}].policies");
    let blocks = [
        (&route.policies, route_path.as_str()),
        (&config.policies, "policies"),
    ];
    let limit = BodyLimit::new(config.max_body_bytes);
    for kind in LayerKind::INNERMOST_FIRST {
        for (policies, path) in blocks {
            let target = Target {
                path,
                route: &route.name,
                limit,
                route_kind: route.kind,
                audit,
                stdio: route.backend.stdio.is_some(),
                secrets_dir: &config.secrets_dir,
            };
            service = apply(kind, service, policies, &target, &mut errors, found);
        }
    }
    // The backend's model, outside every policy layer: they all see the model the upstream
    // receives.
    if route.backend.model.is_some() || route.backend.allowed_models.is_some() {
        let config = agentgw_auth::BackendModelConfig {
            model: route.backend.model.clone(),
            allowed_models: route.backend.allowed_models.clone(),
        };
        match agentgw_auth::BackendModelLayer::from_config(&config) {
            Ok(layer) => service = wrap(service, layer.body_limit(limit)),
            Err(e) => errors.push(ConfigError::new(join(&backend_path, e.path()), e.reason())),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    if route.kind == Some(RouteKind::Mcp) {
        // Tool calls are counted on every MCP route; tool security counts the calls it
        // inspects itself. Outside every policy layer, so that their denials count as such.
        let tool_security =
            route.policies.ai.tool_security.is_some() || config.policies.ai.tool_security.is_some();
        if !tool_security {
            service = wrap(service, ToolMetricsLayer::new().body_limit(limit));
        }
        // JSON-RPC messages are small, and every denial must carry the request's id: read the
        // body once here, so any layer (and the 502/504 of the upstream) can answer with it.
        service = buffer_body(service, BodyLimit::new(config.max_body_bytes));
    }
    Ok(service)
}

/// `token` with its Kubernetes Secret (`secretRef: {name}`) read from the configured
/// `secretsDir`.
pub(crate) fn with_secrets_dir(
    token: &agentgw_auth::AuthToken,
    config: &Config,
) -> agentgw_auth::AuthToken {
    match token.clone() {
        agentgw_auth::AuthToken::SecretRef {
            secret_ref,
            provider,
            header,
            reload_interval,
        } => agentgw_auth::AuthToken::SecretRef {
            secret_ref: secret_ref.in_dir(&config.secrets_dir),
            provider,
            header,
            reload_interval,
        },
        other => other,
    }
}

/// The stdio server of `route`, in the sandbox of the route's `ai.toolSecurity.sandbox` (else
/// the global block's), each request bounded by the backend's `timeout` (a `tools/call` by
/// `maxExecutionTime`, when set).
pub(crate) fn stdio_backend(
    config: &Config,
    route: &Route,
    index: usize,
    stdio: &agentgw_toolsec::stdio::StdioServerConfig,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<agentgw_toolsec::stdio::StdioBackend, ConfigError> {
    let backend = agentgw_toolsec::stdio::StdioBackend::from_config(stdio)
        .map_err(|e| {
            ConfigError::new(
                join(&format!("routes[{index}].backend.stdio"), e.path()),
                e.reason(),
            )
        })?
        .request_timeout(route.backend.timeout)
        .max_body(config.max_body_bytes);
    fn sandbox_of(policies: &Policies) -> Option<&agentgw_toolsec::config::SandboxConfig> {
        policies
            .ai
            .tool_security
            .as_ref()
            .and_then(|t| t.sandbox.as_ref())
    }
    let (sandbox, block) = match sandbox_of(&route.policies) {
        Some(sandbox) => (
            Some(sandbox),
            format!("routes[{index}].policies.ai.toolSecurity"),
        ),
        None => (
            sandbox_of(&config.policies),
            "policies.ai.toolSecurity".to_owned(),
        ),
    };
    let Some(sandbox) = sandbox else {
        return Ok(backend);
    };
    let restricts = agentgw_toolsec::config::STDIO_ONLY_LIMITS
        .iter()
        .any(|field| sandbox.limits.is_set(field));
    if restricts
        && (!sandbox.enabled || sandbox.mode == agentgw_toolsec::config::SandboxMode::Permissive)
    {
        warnings.push(ConfigWarning::new(
            format!("{block}.sandbox.mode"),
            format!(
                "the stdio server of route {:?} runs unrestricted: networkAccess, \
                 fileSystemAccess and the resource limits apply in strict mode only",
                route.name
            ),
        ));
    }
    backend
        .sandbox(sandbox)
        .map_err(|e| ConfigError::new(join(&block, e.path()), e.reason()))
}

/// `config` for the tool security layer of a route: its Redis URL secret read from the
/// gateway's `secretsDir`; and on a stdio route, the sandbox keys that restrict the server's
/// process are the stdio backend's (see `stdio_backend`), so the layer does not see them (nor
/// warn that they do not apply to an HTTP upstream).
fn tool_security_config<'c>(
    config: &'c agentgw_toolsec::ToolSecurityConfig,
    stdio: bool,
    secrets_dir: &std::path::Path,
) -> std::borrow::Cow<'c, agentgw_toolsec::ToolSecurityConfig> {
    let mut config = std::borrow::Cow::Borrowed(config);
    if let Some(sandbox) = config.sandbox.as_ref().filter(|_| stdio) {
        let mut sandbox = sandbox.clone();
        sandbox.limits.network_access = None;
        sandbox.limits.file_system_access = None;
        sandbox.limits.max_memory = None;
        sandbox.limits.max_cpu_time = None;
        sandbox.limits.max_open_files = None;
        config.to_mut().sandbox = Some(sandbox);
    }
    let redis = config.pinning.as_ref().and_then(|p| p.redis.as_ref());
    if let Some(redis) = redis.filter(|r| r.secret_ref.is_some()) {
        let redis = redis.clone().secrets_dir(secrets_dir);
        if let Some(pinning) = config.to_mut().pinning.as_mut() {
            pinning.redis = Some(redis);
        }
    }
    config
}

/// Reads the request body into a [`agentgw_core::Payload`] before `service` sees it (a
/// request other than POST without a body passes as it is).
fn buffer_body(service: RouteService, limit: BodyLimit) -> RouteService {
    BoxCloneSyncService::new(tower::service_fn(move |req: Request<ReqBody>| {
        let service = service.clone();
        async move {
            // A DELETE (end of an MCP session) or GET (the server's stream) without a body
            // carries no JSON-RPC message to read.
            if req.method() != http::Method::POST && req.body().is_end_stream() {
                return call(service, req).await;
            }
            let shape = ResponseShape::for_request(&req);
            match buffer(req, limit).await {
                Ok(req) => call(service, req.map(|body| body.boxed())).await,
                Err(rejection) => {
                    rejection.record();
                    Ok(rejection
                        .into_response(&shape)
                        .map(|body| body.map_err(|never| match never {}).boxed_unsync()))
                }
            }
        }
    }))
}

/// The kinds of policy layers, in the order they wrap the upstream (innermost first).
#[derive(Debug, Clone, Copy)]
enum LayerKind {
    ToolSecurity,
    PromptGuard,
    Rbac,
    ExtAuth,
    ApiKey,
    Jwt,
}

impl LayerKind {
    const INNERMOST_FIRST: [LayerKind; 6] = [
        LayerKind::ToolSecurity,
        LayerKind::PromptGuard,
        LayerKind::Rbac,
        LayerKind::ExtAuth,
        LayerKind::ApiKey,
        LayerKind::Jwt,
    ];
}

/// What building a route reports beside its service: its layers' run-time dependencies and
/// their configuration warnings.
struct Found<'a> {
    checks: &'a mut Vec<DependencyCheck>,
    warnings: &'a mut Vec<ConfigWarning>,
}

/// Where a policy block is applied: its config path, the body limit, the route's kind and the
/// audit sink of `audit.destinations`.
struct Target<'a> {
    path: &'a str,
    /// The route's name (`routes[].name`), for API keys scoped to routes.
    route: &'a str,
    limit: BodyLimit,
    route_kind: Option<RouteKind>,
    audit: Option<&'a Arc<dyn AuditSink>>,
    /// The route's backend is a stdio server: the sandbox keys for stdio servers apply.
    stdio: bool,
    /// Where Kubernetes Secrets named by a policy block are mounted (`secretsDir`).
    secrets_dir: &'a std::path::Path,
}

/// `$layer` with the gateway's audit sink, when `audit` is configured.
macro_rules! audited {
    ($layer:expr, $target:expr) => {
        match $target.audit {
            Some(sink) => $layer.audit_sink(Arc::clone(sink)),
            None => $layer,
        }
    };
}

/// Wraps `service` in the layer of `kind` that one policy block configures, if any.
fn apply(
    kind: LayerKind,
    service: RouteService,
    policies: &Policies,
    target: &Target<'_>,
    errors: &mut Vec<ConfigError>,
    found: &mut Found<'_>,
) -> RouteService {
    let checks = &mut *found.checks;
    let (path, limit) = (target.path, target.limit);
    // A layer's error names a field relative to its block; `fail(block, &e)` puts it in place.
    let mut fail = |block: &str, field: &str, message: String| {
        errors.push(ConfigError::new(
            join(&format!("{path}.{block}"), field),
            message,
        ));
    };
    match kind {
        LayerKind::ToolSecurity => match &policies.ai.tool_security {
            Some(config) => match agentgw_toolsec::ToolSecurityLayer::from_config(
                &tool_security_config(config, target.stdio, target.secrets_dir),
            ) {
                Ok(layer) => {
                    let block = format!("{path}.ai.toolSecurity");
                    found
                        .warnings
                        .extend(layer.warnings().iter().map(|w| w.at(&block)));
                    wrap(service, audited!(layer.body_limit(limit), target))
                }
                Err(e) => {
                    fail("ai.toolSecurity", e.path(), e.reason());
                    service
                }
            },
            None => service,
        },
        LayerKind::PromptGuard => match &policies.ai.prompt_guard {
            Some(config) => match agentgw_guard::PromptGuardLayer::from_config(config) {
                Ok(layer) => {
                    let block = format!("{path}.ai.promptGuard");
                    found
                        .warnings
                        .extend(layer.warnings().iter().map(|w| w.at(&block)));
                    wrap(service, audited!(layer.body_limit(limit), target))
                }
                Err(e) => {
                    fail("ai.promptGuard", e.path(), e.reason());
                    service
                }
            },
            None => service,
        },
        LayerKind::Rbac => match &policies.rbac {
            Some(config) => {
                // On a route of known kind, rules that can never apply there (mcp.* on an LLM
                // route) are load-time errors.
                let mut options = agentgw_rbac::CompileOptions::new();
                if let Some(kind) = target.route_kind {
                    options = options.route(kind.into());
                }
                match agentgw_rbac::CelPolicy::compile(config, &options) {
                    Ok(policy) => wrap(
                        service,
                        audited!(
                            agentgw_rbac::CelPolicyLayer::from_policy(policy).body_limit(limit),
                            target
                        ),
                    ),
                    Err(e) => {
                        fail("rbac", e.path(), e.reason());
                        service
                    }
                }
            }
            None => service,
        },
        LayerKind::ExtAuth => match &policies.traffic.ext_auth {
            Some(config) => match agentgw_auth::ext_authz::ExtAuthLayer::from_config(config) {
                Ok(layer) => {
                    let reported = layer.clone();
                    checks.push(Arc::new(move || reported.dependencies()));
                    wrap(service, audited!(layer.body_limit(limit), target))
                }
                Err(e) => {
                    fail("traffic.extAuth", e.path(), e.reason());
                    service
                }
            },
            None => service,
        },
        LayerKind::ApiKey => match &policies.traffic.api_key_authentication {
            Some(config) => match agentgw_auth::ApiKeyLayer::from_config(config) {
                Ok(layer) => {
                    let layer = layer.route(target.route).body_limit(limit);
                    wrap(service, audited!(layer, target))
                }
                Err(e) => {
                    fail("traffic.apiKeyAuthentication", e.path(), e.reason());
                    service
                }
            },
            None => service,
        },
        LayerKind::Jwt => match &policies.traffic.jwt_authentication {
            Some(config) => match agentgw_auth::JwtLayer::from_config(config) {
                Ok(layer) => {
                    let reported = layer.clone();
                    checks.push(Arc::new(move || reported.dependencies()));
                    wrap(service, audited!(layer, target))
                }
                Err(e) => {
                    fail("traffic.jwtAuthentication", e.path(), e.reason());
                    service
                }
            },
            None => service,
        },
    }
}

/// Boxes any service that speaks our request and response bodies.
pub fn boxed<S, B>(service: S) -> RouteService
where
    S: Service<Request<ReqBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BoxCloneSyncService::new(
        service.map_response(|res: Response<B>| {
            res.map(|body| body.map_err(Into::into).boxed_unsync())
        }),
    )
}

/// Applies `layer` around `service`, whatever request body type the layer hands inward.
pub fn wrap<L, B>(service: RouteService, layer: L) -> RouteService
where
    L: Layer<Inner>,
    L::Service: Service<Request<ReqBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as Service<Request<ReqBody>>>::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    boxed(layer.layer(Inner(service)))
}

/// The inner side of a wrapped layer: accepts any request body and boxes it.
#[derive(Clone)]
pub struct Inner(RouteService);

impl<B> Service<Request<B>> for Inner
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = <RouteService as Service<Request<ReqBody>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.0
            .call(req.map(|body| body.map_err(Into::into).boxed()))
    }
}

/// The future of a route call, boxed.
pub type RouteFuture = Pin<Box<dyn Future<Output = Result<Response<ResBody>, Infallible>> + Send>>;

/// Calls `service` once it is ready. The future is boxed outside of any `async` block: rustc
/// cannot prove `Send` for tower's generic `Oneshot` inside one, through the boxed error's
/// erased lifetime.
pub fn call(service: RouteService, req: Request<ReqBody>) -> RouteFuture {
    Box::pin(service.oneshot(req))
}

fn buffer(req: Request<ReqBody>, limit: BodyLimit) -> agentgw_core::body::BufferFuture<ReqBody> {
    agentgw_core::body::buffer_request_boxed(req, limit)
}
