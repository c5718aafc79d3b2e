//! The gateway's YAML configuration.
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! metrics: 127.0.0.1:9092      # Prometheus text at /metrics
//! health: 127.0.0.1:9093       # /healthz (live), /readyz (ready)
//! audit:                       # audit events of every layer; none when absent
//!   destinations:              # stdout | syslog | webhook, each gets every event
//!     - type: stdout
//!     - {type: syslog, address: "127.0.0.1:514", protocol: udp}
//! policies: {}                 # applied to every route, same shape as a route's policies
//! routes:
//!   - name: openai
//!     pathPrefix: /openai
//!     kind: llm                # llm | mcp | other: how denials are shaped (sniffed when absent)
//!     backend:
//!       url: http://127.0.0.1:4000/v1
//!       timeout: 60s
//!     policies: {}             # the `spec` of a seed TrafficPolicy, minus targetRefs
//! ```
//!
//! Unknown fields are errors that name their path; durations accept `30s`, `5m`, `1h`. After
//! the structure is read, [`Config::validate`] checks the values and reports every problem it
//! finds, each with its field path.
//!
//! # Seed 000 as written
//!
//! Every gateway fragment of seed 000 loads unchanged:
//!
//! - A `TrafficPolicy`'s `spec` is a route's `policies` (its `targetRefs` are accepted and not
//!   used: the route or the global block it sits in is its target).
//! - A `Backend`'s `spec` (`type: AI`, `ai.llm.openai: {authToken, model}`) is a route's
//!   `backend`: `authToken` and `model` become the backend's own, the URL defaults to
//!   `https://api.openai.com/v1`, and the route is an `llm` route.
//! - A `BackendConfigPolicy`'s `spec.tls` is a backend's `tls` (`caCertificates`,
//!   `clientCertificate` as Kubernetes Secrets).
//! - `secretRef: {name, key}` reads the Secret mounted under `secretsDir` (default
//!   `/var/run/secrets/agentgw`): the file `secretsDir/NAME/KEY`.
//! - The flat "defense in depth" block (`jwtAuthentication`, `rbac`, `promptGuard` side by
//!   side) is a `policies` block: `jwtAuthentication`, `apiKeyAuthentication` and `extAuth`
//!   there are `traffic.*`, `promptGuard` and `toolSecurity` are `ai.*`. A `jwtAuthentication`
//!   without `providers` takes them from the block at the other level (the global block's
//!   from each route's, or a route's from the global one); the modes must agree.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use agentgw_core::ConfigError as _;
use serde::Deserialize;

/// The whole gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Address of the proxy listener.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// TLS for the proxy listener (seed 004's `gateway.tls` and `mtls`, camelCase).
    #[serde(default)]
    pub tls: Option<agentgw_tls::TlsConfig>,
    /// Address of the Prometheus `/metrics` listener; none when absent.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// Address of the `/healthz` and `/readyz` listener; none when absent.
    #[serde(default)]
    pub health: Option<SocketAddr>,
    /// Timeouts and limits of every listener (`server: {headerReadTimeout, requestBodyTimeout,
    /// keepAliveTimeout, maxConnections, maxHeaders, maxHeaderBytes,
    /// http2MaxConcurrentStreams}`); safe defaults when absent, see
    /// [`agentgw_tls::ServerLimits`].
    #[serde(default)]
    pub server: agentgw_tls::ServerLimits,
    /// How long in-flight requests may take to finish at shutdown.
    #[serde(
        default = "default_grace",
        deserialize_with = "agentgw_core::config::duration::deserialize"
    )]
    pub shutdown_grace_period: Duration,
    /// Largest request body a body-reading layer buffers, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// What body-reading layers do with a request body that has a `Content-Encoding`:
    /// `Decode` (default: inspect and forward the decoded body, bounded) or `Refuse` (415).
    #[serde(default)]
    pub request_encoding: agentgw_core::decode::EncodedBodies,
    /// Where the audit events of every layer go (`audit: {destinations: [...]}`: `stdout`,
    /// `syslog`, `webhook`; see `agentgw_core::audit` for the event schema). No events when
    /// absent; a `toolSecurity.audit.destination` of its own still wins for tool security.
    #[serde(default)]
    pub audit: Option<agentgw_core::audit::AuditConfig>,
    /// Where Kubernetes Secrets named by `secretRef: {name, key}` are mounted: key `KEY` of
    /// Secret `NAME` is the file `secretsDir/NAME/KEY` (default `/var/run/secrets/agentgw`).
    #[serde(default = "default_secrets_dir")]
    pub secrets_dir: std::path::PathBuf,
    /// Policies applied to every route (before the route's own).
    #[serde(default)]
    pub policies: Policies,
    /// Routes, matched by longest path prefix.
    pub routes: Vec<Route>,
}

/// One route: requests whose path starts with `path_prefix` go to `backend`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// Route name, used in metrics and logs.
    pub name: String,
    /// Path prefix; matched on segment boundaries and stripped before forwarding.
    pub path_prefix: String,
    /// What kind of traffic the route carries; decides the shape of denials.
    #[serde(default)]
    pub kind: Option<RouteKind>,
    /// Where requests go.
    pub backend: Backend,
    /// The route's policies.
    #[serde(default)]
    pub policies: Policies,
    /// Whether `/readyz` waits for this route's dependencies (its JWKS endpoints, its
    /// authorization service). Default `false`: one route's unreachable dependency fails that
    /// route's requests but does not take the whole gateway out of rotation.
    #[serde(default)]
    pub required_for_readiness: bool,
}

/// The kind of traffic on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// OpenAI/Anthropic-style LLM API: denials are OpenAI errors.
    Llm,
    /// MCP: denials are JSON-RPC errors.
    Mcp,
    /// Anything else: plain JSON errors.
    Other,
}

impl From<RouteKind> for agentgw_core::rejection::RouteKind {
    fn from(kind: RouteKind) -> Self {
        match kind {
            RouteKind::Llm => agentgw_core::rejection::RouteKind::Llm,
            RouteKind::Mcp => agentgw_core::rejection::RouteKind::Mcp,
            RouteKind::Other => agentgw_core::rejection::RouteKind::Other,
        }
    }
}

/// The upstream of a route.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    /// Base URL; the request path after the route prefix is appended to its path. Required,
    /// except with `ai.llm.openai` (default `https://api.openai.com/v1`) or `stdio`.
    #[serde(default)]
    pub url: String,
    /// A local MCP server the gateway launches, one process per MCP session, and serves as
    /// Streamable HTTP: `stdio: {command, args, env, maxSessions, idleTimeout}` (see
    /// `agentgw_toolsec::stdio`). The route is an `mcp` route; the route's
    /// `ai.toolSecurity.sandbox` (else the global one's) restricts the process, and `timeout`
    /// bounds each request (a `tools/call` gets `maxExecutionTime` when set). Instead of `url`.
    #[serde(default)]
    pub stdio: Option<agentgw_toolsec::stdio::StdioServerConfig>,
    /// How long to wait for the upstream's response headers (a streamed body may take longer).
    #[serde(
        default = "default_timeout",
        deserialize_with = "agentgw_core::config::duration::deserialize"
    )]
    pub timeout: Duration,
    /// How long to wait for a TCP connection to the upstream.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "agentgw_core::config::duration::deserialize"
    )]
    pub connect_timeout: Duration,
    /// The credential sent upstream: `{kind: Passthrough}` or `{kind: SecretRef, secretRef:
    /// {env: NAME} | {file: PATH}}`.
    #[serde(default)]
    pub auth_token: Option<agentgw_auth::AuthToken>,
    /// TLS to the upstream (seed 000's `BackendConfigPolicy.tls`, with files).
    #[serde(default)]
    pub tls: Option<agentgw_tls::UpstreamTlsConfig>,
    /// Speak HTTP/2 without TLS (h2c, prior knowledge) to an `http://` backend: every request
    /// of a route and worker shares one connection instead of taking one each. `https://`
    /// backends negotiate HTTP/2 through ALPN and refuse this field.
    #[serde(default)]
    pub http2: bool,
    /// Seed 000's Backend `model`: every request's `model` becomes this one (`llm` routes).
    #[serde(default)]
    pub model: Option<String>,
    /// The models a request may name (`llm` routes); any other is a 403 `model_not_allowed`.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Seed 000's Backend `type`: `AI` (only with `ai`).
    #[serde(default, rename = "type")]
    pub backend_type: Option<BackendType>,
    /// Seed 000's Backend `ai` block: `ai: {llm: {openai: {authToken, model}}}`. Its
    /// `authToken` and `model` become the backend's own (giving either twice is an error), the
    /// URL defaults to the provider's, and the route is an `llm` route.
    #[serde(default)]
    pub ai: Option<AiBackend>,
}

/// Seed 000's Backend `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum BackendType {
    /// An LLM provider (`ai.llm`).
    #[serde(rename = "AI")]
    Ai,
}

/// `backend.ai`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiBackend {
    /// `ai.llm`: the provider.
    pub llm: LlmBackend,
}

/// `backend.ai.llm`: one provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmBackend {
    /// OpenAI (`https://api.openai.com/v1` unless `url` says otherwise).
    pub openai: LlmProviderBackend,
}

/// A provider of `backend.ai.llm`: its credential and model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmProviderBackend {
    /// The credential sent upstream, as `backend.authToken`.
    #[serde(default)]
    pub auth_token: Option<agentgw_auth::AuthToken>,
    /// The model every request gets, as `backend.model`.
    #[serde(default)]
    pub model: Option<String>,
}

/// The URL of `ai.llm.openai` when the backend gives none.
pub const OPENAI_URL: &str = "https://api.openai.com/v1";

/// Policies of a route, or of every route. Each block follows the field names of the seed's
/// `TrafficPolicy.spec`; each layer crate adds its block here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policies {
    /// A seed TrafficPolicy's `targetRefs`: accepted so that a `spec` loads as written, and not
    /// used (the route, or the global block, the policies sit in is their target).
    #[serde(default)]
    pub target_refs: Option<Vec<serde::de::IgnoredAny>>,
    /// `traffic`: authentication blocks.
    #[serde(default)]
    pub traffic: TrafficPolicies,
    /// `rbac`: CEL policies (`rbac: {policy: {matchExpressions: [...]}}`).
    #[serde(default)]
    pub rbac: Option<agentgw_rbac::RbacConfig>,
    /// `ai`: prompt guards and tool security.
    #[serde(default)]
    pub ai: AiPolicies,
    /// The flat spelling of the seed's "defense in depth" block: `traffic.jwtAuthentication`.
    #[serde(default)]
    pub jwt_authentication: Option<agentgw_auth::JwtConfig>,
    /// The flat spelling of `traffic.apiKeyAuthentication`.
    #[serde(default)]
    pub api_key_authentication: Option<agentgw_auth::ApiKeyConfig>,
    /// The flat spelling of `traffic.extAuth`.
    #[serde(default)]
    pub ext_auth: Option<agentgw_auth::ext_authz::ExtAuthConfig>,
    /// The flat spelling of `ai.promptGuard`.
    #[serde(default)]
    pub prompt_guard: Option<agentgw_guard::PromptGuardConfig>,
    /// The flat spelling of `ai.toolSecurity`.
    #[serde(default)]
    pub tool_security: Option<agentgw_toolsec::ToolSecurityConfig>,
}

impl Policies {
    /// Moves the flat blocks to their places (`jwtAuthentication` to
    /// `traffic.jwtAuthentication`, ...); a block given both ways is an error at `path`.
    fn unflatten(&mut self, path: &str, errors: &mut Vec<ConfigError>) {
        fn place<T>(
            flat: &mut Option<T>,
            nested: &mut Option<T>,
            path: &str,
            (flat_name, nested_name): (&str, &str),
            errors: &mut Vec<ConfigError>,
        ) {
            if let Some(block) = flat.take() {
                if nested.is_some() {
                    errors.push(ConfigError::new(
                        format!("{path}.{flat_name}"),
                        format!("given twice: here and as {path}.{nested_name}; keep one"),
                    ));
                } else {
                    *nested = Some(block);
                }
            }
        }
        place(
            &mut self.jwt_authentication,
            &mut self.traffic.jwt_authentication,
            path,
            ("jwtAuthentication", "traffic.jwtAuthentication"),
            errors,
        );
        place(
            &mut self.api_key_authentication,
            &mut self.traffic.api_key_authentication,
            path,
            ("apiKeyAuthentication", "traffic.apiKeyAuthentication"),
            errors,
        );
        place(
            &mut self.ext_auth,
            &mut self.traffic.ext_auth,
            path,
            ("extAuth", "traffic.extAuth"),
            errors,
        );
        place(
            &mut self.prompt_guard,
            &mut self.ai.prompt_guard,
            path,
            ("promptGuard", "ai.promptGuard"),
            errors,
        );
        place(
            &mut self.tool_security,
            &mut self.ai.tool_security,
            path,
            ("toolSecurity", "ai.toolSecurity"),
            errors,
        );
    }
}

/// `policies.traffic`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicies {
    /// JWT authentication (`mode`, `providers`).
    #[serde(default)]
    pub jwt_authentication: Option<agentgw_auth::JwtConfig>,
    /// API key authentication.
    #[serde(default)]
    pub api_key_authentication: Option<agentgw_auth::ApiKeyConfig>,
    /// External authorization (Envoy ext_authz over gRPC, or plain HTTP).
    #[serde(default)]
    pub ext_auth: Option<agentgw_auth::ext_authz::ExtAuthConfig>,
}

/// `policies.ai`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiPolicies {
    /// Prompt guards (`request`, `response`).
    #[serde(default)]
    pub prompt_guard: Option<agentgw_guard::PromptGuardConfig>,
    /// MCP tool security.
    #[serde(default)]
    pub tool_security: Option<agentgw_toolsec::ToolSecurityConfig>,
}

fn default_secrets_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(agentgw_auth::DEFAULT_SECRETS_DIR)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_body() -> usize {
    agentgw_core::BodyLimit::DEFAULT.bytes()
}

/// One configuration problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Field path, e.g. `routes[0].backend.url`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// Whether any error is reported at `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(err: ConfigError) -> Self {
        ConfigErrors(vec![err])
    }
}

impl Config {
    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigErrors> {
        let mut path = String::new();
        let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
            serde_path_to_error::deserialize::<_, Config>(de).map_err(|err| {
                path = err.path().to_string();
                err.into_inner()
            })
        });
        let mut config =
            parsed.map_err(|err| ConfigError::new(path, clean_yaml_error(&err.to_string())))?;
        config.resolve_seed_shapes()?;
        config.validate()?;
        Ok(config)
    }

    /// Turns the seed's spellings into the gateway's own (see the [module docs](self)): flat
    /// policy blocks, `ai.llm` backends, `jwtAuthentication` without providers.
    fn resolve_seed_shapes(&mut self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        self.policies.unflatten("policies", &mut errors);
        for (i, route) in self.routes.iter_mut().enumerate() {
            route
                .policies
                .unflatten(&format!("routes[{i}].policies"), &mut errors);
            let backend = &mut route.backend;
            let at = |field: &str| format!("routes[{i}].backend.{field}");
            if backend.backend_type.is_some() && backend.ai.is_none() {
                errors.push(ConfigError::new(at("type"), "type: AI needs an `ai` block"));
            }
            if let Some(ai) = backend.ai.take() {
                let openai = ai.llm.openai;
                if let Some(token) = openai.auth_token {
                    if backend.auth_token.is_some() {
                        errors.push(ConfigError::new(
                            at("ai.llm.openai.authToken"),
                            "given twice: here and as backend.authToken; keep one",
                        ));
                    }
                    backend.auth_token = Some(token);
                }
                if let Some(model) = openai.model {
                    if backend.model.is_some() {
                        errors.push(ConfigError::new(
                            at("ai.llm.openai.model"),
                            "given twice: here and as backend.model; keep one",
                        ));
                    }
                    backend.model = Some(model);
                }
                if backend.url.is_empty() {
                    OPENAI_URL.clone_into(&mut backend.url);
                }
                match route.kind {
                    None => route.kind = Some(RouteKind::Llm),
                    Some(RouteKind::Llm) => {}
                    Some(_) => errors.push(ConfigError::new(
                        format!("routes[{i}].kind"),
                        "an ai.llm backend serves an llm route",
                    )),
                }
            } else if backend.stdio.is_some() {
                match route.kind {
                    None => route.kind = Some(RouteKind::Mcp),
                    Some(RouteKind::Mcp) => {}
                    Some(_) => errors.push(ConfigError::new(
                        format!("routes[{i}].kind"),
                        "a stdio backend serves an mcp route",
                    )),
                }
                if !backend.url.is_empty() {
                    errors.push(ConfigError::new(
                        at("url"),
                        "a backend is a url or a stdio server, not both",
                    ));
                }
            } else if backend.url.is_empty() {
                errors.push(ConfigError::new(at("url"), "required"));
            }
        }
        self.complete_jwt_providers(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// A `jwtAuthentication` without providers takes them from the block at the other level:
    /// the global block's from each route's, a route's from the global one. The modes must
    /// agree; the global block then authenticates through each route's.
    fn complete_jwt_providers(&mut self, errors: &mut Vec<ConfigError>) {
        let global = self.policies.traffic.jwt_authentication.clone();
        const FIELD: &str = "traffic.jwtAuthentication";
        for (i, route) in self.routes.iter_mut().enumerate() {
            let own = &mut route.policies.traffic.jwt_authentication;
            match (&global, own.as_mut()) {
                (Some(global), Some(own))
                    if global.providers.is_empty() || own.providers.is_empty() =>
                {
                    if global.mode != own.mode {
                        errors.push(ConfigError::new(
                            format!("routes[{i}].policies.{FIELD}.mode"),
                            format!(
                                "is {:?} while policies.{FIELD} (which shares its providers \
                                 with this route) says {:?}",
                                own.mode, global.mode
                            ),
                        ));
                    }
                    if own.providers.is_empty() {
                        own.providers.clone_from(&global.providers);
                    }
                }
                (Some(global), None) if global.providers.is_empty() => {
                    errors.push(ConfigError::new(
                        format!("policies.{FIELD}.providers"),
                        format!(
                            "none here, and route {:?} has no jwtAuthentication of its own to \
                             take them from",
                            route.name
                        ),
                    ));
                }
                _ => {}
            }
        }
        let global_without_providers = self
            .policies
            .traffic
            .jwt_authentication
            .as_ref()
            .is_some_and(|jwt| jwt.providers.is_empty());
        if global_without_providers && !self.routes.is_empty() {
            // Every route authenticates with the global mode and its own providers.
            self.policies.traffic.jwt_authentication = None;
        }
    }

    /// Reads, parses and validates a YAML file.
    pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", file.display())))?;
        Config::from_yaml(&text)
    }

    /// Checks the values, reporting every problem with its path.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        if let Err(err) = self.server.validate() {
            errors.push(ConfigError::new(
                agentgw_core::config::join("server", err.path()),
                err.reason(),
            ));
        }
        if self.routes.is_empty() {
            errors.push(ConfigError::new("routes", "at least one route is required"));
        }
        let mut names = HashSet::new();
        let mut prefixes = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = |field: &str| format!("routes[{i}].{field}");
            if route.name.trim().is_empty() {
                errors.push(ConfigError::new(at("name"), "must not be empty"));
            } else if !names.insert(route.name.as_str()) {
                errors.push(ConfigError::new(
                    at("name"),
                    format!("duplicate route name {:?}", route.name),
                ));
            }
            if !route.path_prefix.starts_with('/') {
                errors.push(ConfigError::new(at("pathPrefix"), "must start with '/'"));
            } else if !prefixes.insert(normalize_prefix(&route.path_prefix)) {
                errors.push(ConfigError::new(
                    at("pathPrefix"),
                    format!("duplicate path prefix {:?}", route.path_prefix),
                ));
            }
            if route.backend.stdio.is_some() {
                for (set, field) in [
                    (route.backend.tls.is_some(), "tls"),
                    (route.backend.http2, "http2"),
                    (route.backend.auth_token.is_some(), "authToken"),
                ] {
                    if set {
                        errors.push(ConfigError::new(
                            at(&format!("backend.{field}")),
                            "has no effect on a stdio backend",
                        ));
                    }
                }
            } else if let Err(message) = validate_backend_url(&route.backend.url) {
                errors.push(ConfigError::new(at("backend.url"), message));
            }
            if route.backend.timeout.is_zero() {
                errors.push(ConfigError::new(
                    at("backend.timeout"),
                    "must be greater than zero",
                ));
            }
            let pins_model =
                route.backend.model.is_some() || route.backend.allowed_models.is_some();
            if pins_model && route.kind != Some(RouteKind::Llm) {
                errors.push(ConfigError::new(
                    at(if route.backend.model.is_some() {
                        "backend.model"
                    } else {
                        "backend.allowedModels"
                    }),
                    "applies to llm routes (kind: llm)",
                ));
            }
            if route.backend.http2 && route.backend.url.starts_with("https://") {
                errors.push(ConfigError::new(
                    at("backend.http2"),
                    "https:// backends negotiate HTTP/2 through ALPN; http2 is for http:// backends",
                ));
            }
        }
        let mut ports = Vec::new();
        ports.push(("listen", self.listen));
        if let Some(addr) = self.metrics {
            ports.push(("metrics", addr));
        }
        if let Some(addr) = self.health {
            ports.push(("health", addr));
        }
        for (i, (name, addr)) in ports.iter().enumerate() {
            if addr.port() != 0 && ports[..i].iter().any(|(_, other)| other == addr) {
                errors.push(ConfigError::new(
                    *name,
                    format!("address {addr} is already used"),
                ));
            }
        }
        if self.max_body_bytes == 0 {
            errors.push(ConfigError::new(
                "maxBodyBytes",
                "must be greater than zero",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// `/openai/` and `/openai` are the same prefix.
pub(crate) fn normalize_prefix(prefix: &str) -> &str {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

fn validate_backend_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("unsupported scheme {other:?}; use http or https")),
        None => return Err(format!("URL {url:?} needs a scheme (http:// or https://)")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("URL {url:?} has no host"));
    }
    if uri.query().is_some() {
        return Err("a backend URL must not have a query".to_owned());
    }
    Ok(())
}

/// serde-saphyr's messages can carry a source snippet; keep them on one readable block.
fn clean_yaml_error(message: &str) -> String {
    message.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
listen: 127.0.0.1:8080
routes:
  - name: openai
    pathPrefix: /openai
    backend:
      url: http://127.0.0.1:4000/v1
      timeout: 30s
"#;

    #[test]
    fn minimal_config_with_defaults() {
        let config = Config::from_yaml(MINIMAL).unwrap();
        assert_eq!(config.routes[0].backend.timeout, Duration::from_secs(30));
        assert_eq!(
            config.routes[0].backend.connect_timeout,
            Duration::from_secs(5)
        );
        assert_eq!(config.shutdown_grace_period, Duration::from_secs(30));
        assert!(config.metrics.is_none());
    }

    #[test]
    fn unknown_field_names_its_path() {
        let text = MINIMAL.replace("timeout: 30s", "timeout: 30s\n      colour: blue");
        let errors = Config::from_yaml(&text).unwrap_err();
        assert!(errors.has_path("routes[0].backend.colour"), "{errors}");
        assert!(errors.to_string().contains("colour"), "{errors}");
    }

    #[test]
    fn backend_models_need_an_llm_route() {
        let llm = MINIMAL.replace("pathPrefix: /openai", "pathPrefix: /openai\n    kind: llm");
        let config =
            Config::from_yaml(&llm.replace("timeout: 30s", "timeout: 30s\n      model: gpt-4"))
                .unwrap();
        assert_eq!(config.routes[0].backend.model.as_deref(), Some("gpt-4"));
        let config = Config::from_yaml(&llm.replace(
            "timeout: 30s",
            "timeout: 30s\n      allowedModels: [gpt-4o, o1]",
        ))
        .unwrap();
        assert_eq!(
            config.routes[0]
                .backend
                .allowed_models
                .as_ref()
                .unwrap()
                .len(),
            2
        );

        let errors =
            Config::from_yaml(&MINIMAL.replace("timeout: 30s", "timeout: 30s\n      model: gpt-4"))
                .unwrap_err();
        assert!(errors.has_path("routes[0].backend.model"), "{errors}");
    }

    #[test]
    fn http2_is_for_cleartext_backends() {
        let config =
            Config::from_yaml(&MINIMAL.replace("timeout: 30s", "timeout: 30s\n      http2: true"))
                .unwrap();
        assert!(config.routes[0].backend.http2);
        let text = MINIMAL
            .replace("timeout: 30s", "timeout: 30s\n      http2: true")
            .replace("http://", "https://");
        let errors = Config::from_yaml(&text).unwrap_err();
        assert!(errors.has_path("routes[0].backend.http2"), "{errors}");
    }

    #[test]
    fn bad_duration_names_its_path() {
        let text = MINIMAL.replace("timeout: 30s", "timeout: soon");
        let errors = Config::from_yaml(&text).unwrap_err();
        assert!(errors.has_path("routes[0].backend.timeout"), "{errors}");
        assert!(errors.to_string().contains("30s"), "{errors}");
    }

    #[test]
    fn durations_follow_the_one_rule_of_core() {
        let config = Config::from_yaml(
            "shutdownGracePeriod: 1m 30s\nroutes:\n  - name: a\n    pathPrefix: /a\n    backend: {url: \"http://127.0.0.1:1\", timeout: 2.5, connectTimeout: 250ms}\n",
        )
        .unwrap();
        assert_eq!(config.shutdown_grace_period, Duration::from_secs(90));
        assert_eq!(
            config.routes[0].backend.timeout,
            Duration::from_millis(2500)
        );
        assert_eq!(
            config.routes[0].backend.connect_timeout,
            Duration::from_millis(250)
        );
        let errors = Config::from_yaml(
            "routes:\n  - name: a\n    pathPrefix: /a\n    backend: {url: \"http://127.0.0.1:1\", timeout: 5 parsecs}\n",
        )
        .unwrap_err();
        assert!(errors.has_path("routes[0].backend.timeout"), "{errors}");
    }

    #[test]
    fn validation_reports_every_error() {
        let text = r#"
routes:
  - name: a
    pathPrefix: openai
    backend: {url: "ftp://x"}
  - name: a
    pathPrefix: /b
    backend: {url: "http://"}
"#;
        let errors = Config::from_yaml(text).unwrap_err();
        assert!(errors.has_path("routes[0].pathPrefix"), "{errors}");
        assert!(errors.has_path("routes[0].backend.url"), "{errors}");
        assert!(errors.has_path("routes[1].name"), "{errors}");
        assert!(errors.has_path("routes[1].backend.url"), "{errors}");
        assert_eq!(errors.0.len(), 4, "{errors}");
    }

    #[test]
    fn server_limits_default_safe_and_are_checked_with_their_path() {
        let config = Config::from_yaml(MINIMAL).unwrap();
        assert_eq!(config.server, agentgw_tls::ServerLimits::default());
        assert_eq!(
            config.server.header_read_timeout,
            Some(Duration::from_secs(30))
        );
        let text = format!("server:\n  headerReadTimeout: 5s\n  maxConnections: 64\n{MINIMAL}");
        let config = Config::from_yaml(&text).unwrap();
        assert_eq!(
            config.server.header_read_timeout,
            Some(Duration::from_secs(5))
        );
        assert_eq!(config.server.max_connections, Some(64));

        let text = format!("server:\n  maxConnections: 0\n{MINIMAL}");
        let errors = Config::from_yaml(&text).unwrap_err();
        assert!(errors.has_path("server.maxConnections"), "{errors}");
        let text = format!("server:\n  maxConections: 10\n{MINIMAL}");
        let errors = Config::from_yaml(&text).unwrap_err();
        assert!(errors.to_string().contains("maxConections"), "{errors}");
    }

    #[test]
    fn unknown_policy_block_is_an_error() {
        let text = format!("{MINIMAL}    policies:\n      magic: {{}}\n");
        let errors = Config::from_yaml(&text).unwrap_err();
        assert!(errors.has_path("routes[0].policies.magic"), "{errors}");
    }

    #[test]
    fn seed_backend_spec_becomes_the_backend() {
        let text = "secretsDir: /etc/agentgw/secrets\nroutes:\n  - name: openai\n    pathPrefix: /openai\n    backend:\n      type: AI\n      ai:\n        llm:\n          openai:\n            authToken:\n              kind: SecretRef\n              secretRef:\n                name: openai-secret\n            model: \"gpt-4\"\n";
        let config = Config::from_yaml(text).unwrap();
        let route = &config.routes[0];
        assert_eq!(route.backend.url, OPENAI_URL);
        assert_eq!(route.backend.model.as_deref(), Some("gpt-4"));
        assert_eq!(route.kind, Some(RouteKind::Llm));
        assert!(route.backend.auth_token.is_some());
        assert_eq!(config.secrets_dir, Path::new("/etc/agentgw/secrets"));

        let twice = text.replace("type: AI", "type: AI\n      model: o1");
        let errors = Config::from_yaml(&twice).unwrap_err();
        assert!(
            errors.has_path("routes[0].backend.ai.llm.openai.model"),
            "{errors}"
        );
        let errors = Config::from_yaml(
            "routes:\n  - name: a\n    pathPrefix: /a\n    backend: {timeout: 5s}\n",
        )
        .unwrap_err();
        assert!(errors.has_path("routes[0].backend.url"), "{errors}");
        assert_eq!(
            Config::from_yaml(MINIMAL).unwrap().secrets_dir,
            Path::new(agentgw_auth::DEFAULT_SECRETS_DIR)
        );
    }

    #[test]
    fn flat_policy_blocks_and_target_refs_are_accepted() {
        let text = format!(
            "policies:\n  targetRefs: [{{kind: Gateway, name: agentgateway}}]\n  promptGuard:\n    request:\n      - regex: {{action: Reject, matches: [{{pattern: \"ignore.*instructions\"}}]}}\n{MINIMAL}"
        );
        let config = Config::from_yaml(&text).unwrap();
        assert!(config.policies.ai.prompt_guard.is_some());
        assert!(config.policies.prompt_guard.is_none());
        let twice = text.replace(
            "  promptGuard:",
            "  ai: {promptGuard: {request: []}}\n  promptGuard:",
        );
        let errors = Config::from_yaml(&twice).unwrap_err();
        assert!(errors.has_path("policies.promptGuard"), "{errors}");
    }

    #[test]
    fn jwt_without_providers_takes_them_from_the_other_level() {
        let route_jwt = "    policies:\n      traffic:\n        jwtAuthentication:\n          mode: MODE\n          providers:\n            - issuer: https://issuer.example\n              jwks: {local: {inline: '{\"keys\": []}'}}\n";
        let text = format!(
            "policies:\n  jwtAuthentication:\n    mode: Strict\n{MINIMAL}{}",
            route_jwt.replace("MODE", "Strict")
        );
        let config = Config::from_yaml(&text).unwrap();
        assert!(config.policies.traffic.jwt_authentication.is_none());
        let own = config.routes[0]
            .policies
            .traffic
            .jwt_authentication
            .as_ref()
            .unwrap();
        assert_eq!(own.providers.len(), 1);

        let text = format!(
            "policies:\n  jwtAuthentication:\n    mode: Strict\n{MINIMAL}{}",
            route_jwt.replace("MODE", "Permissive")
        );
        let errors = Config::from_yaml(&text).unwrap_err();
        assert!(
            errors.has_path("routes[0].policies.traffic.jwtAuthentication.mode"),
            "{errors}"
        );
        let text = format!("policies:\n  jwtAuthentication:\n    mode: Strict\n{MINIMAL}");
        let errors = Config::from_yaml(&text).unwrap_err();
        assert!(
            errors.has_path("policies.traffic.jwtAuthentication.providers"),
            "{errors}"
        );
    }

    #[test]
    fn a_stdio_backend_is_an_mcp_route_without_a_url() {
        let text = "routes:\n  - name: files\n    pathPrefix: /files\n    backend:\n      stdio: {command: sh, args: [-c, cat], maxSessions: 2}\n";
        let config = Config::from_yaml(text).unwrap();
        let route = &config.routes[0];
        assert_eq!(route.kind, Some(RouteKind::Mcp));
        let stdio = route.backend.stdio.as_ref().unwrap();
        assert_eq!((stdio.command.as_str(), stdio.max_sessions), ("sh", 2));

        let both = text.replace("backend:\n", "backend:\n      url: http://127.0.0.1:1\n");
        let errors = Config::from_yaml(&both).unwrap_err();
        assert!(errors.has_path("routes[0].backend.url"), "{errors}");
        let llm = text.replace("pathPrefix: /files", "pathPrefix: /files\n    kind: llm");
        let errors = Config::from_yaml(&llm).unwrap_err();
        assert!(errors.has_path("routes[0].kind"), "{errors}");
        let http2 = text.replace("backend:\n", "backend:\n      http2: true\n");
        let errors = Config::from_yaml(&http2).unwrap_err();
        assert!(errors.has_path("routes[0].backend.http2"), "{errors}");
        let unknown = text.replace("maxSessions: 2", "maxSesions: 2");
        let errors = Config::from_yaml(&unknown).unwrap_err();
        assert!(errors.to_string().contains("maxSesions"), "{errors}");
    }

    #[test]
    fn yaml_syntax_error_is_reported() {
        let errors = Config::from_yaml("routes: [").unwrap_err();
        assert_eq!(errors.0.len(), 1);
    }
}
