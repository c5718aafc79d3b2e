//! The layers of every crate, configured from YAML as a user would, and the servers they guard:
//! an axum app with an LLM handler and an `rmcp` MCP server, and an ext_authz service.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use agentgw_auth::ext_authz::ExtAuthLayer;
use agentgw_auth::{ApiKeyLayer, BackendAuthLayer, JwtLayer};
use agentgw_core::BoxError;
use agentgw_core::tool_metrics::ToolMetricsLayer;
use agentgw_guard::PromptGuardLayer;
use agentgw_rbac::CelPolicyLayer;
use agentgw_tls::ConnectionInfoLayer;
use agentgw_toolsec::ToolSecurityLayer;
use axum::Json;
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{Value, json};
use tower::Service;

/// `inner` behind `layers` (a [`Layers`]) in the order named (outermost first), built with one
/// `tower::ServiceBuilder`.
macro_rules! stack {
    ($layers:expr; $($layer:ident),+; $inner:expr) => {
        tower::ServiceBuilder::new()
            $(.layer($layers.$layer.clone()))+
            .service($inner)
    };
}

/// The gateway's order (outermost first): tool-call metrics (they count the denials of every
/// layer inside), connection info, JWT, API key, ext_authz, RBAC, prompt guard, tool security,
/// backend credentials.
macro_rules! gateway_order {
    ($layers:expr, $inner:expr) => {
        stack!($layers; tool_metrics, info, jwt, api_key, ext_authz, rbac, guard, toolsec, backend; $inner)
    };
}

/// The policy layers in the opposite order. Tool-call metrics and connection info stay
/// outermost (they observe the whole exchange and the connection) and backend credentials
/// innermost (they must not be taken for the client's credentials); between them the order is
/// free.
macro_rules! reversed_order {
    ($layers:expr, $inner:expr) => {
        stack!($layers; tool_metrics, info, toolsec, guard, rbac, ext_authz, api_key, jwt, backend; $inner)
    };
}

/// LLM routes: every layer but tool security, which refuses what is not JSON-RPC.
macro_rules! llm_order {
    ($layers:expr, $inner:expr) => {
        stack!($layers; tool_metrics, info, jwt, api_key, ext_authz, rbac, guard, backend; $inner)
    };
}

/// [`llm_order!`] reversed where the order is free.
macro_rules! llm_reversed_order {
    ($layers:expr, $inner:expr) => {
        stack!($layers; tool_metrics, info, guard, rbac, ext_authz, api_key, jwt, backend; $inner)
    };
}

/// The API key of the one user.
pub(crate) const KEY: &str = "alice-key-123";

/// The request body the innermost service of [`Erase`] receives.
pub(crate) type AnyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Where the layers' dependencies are.
pub(crate) struct Settings {
    ext_authz: SocketAddr,
}

impl Settings {
    /// No ext_authz service (a closed port): for tests that never reach it.
    pub(crate) fn offline() -> Settings {
        Settings {
            ext_authz: "127.0.0.1:9".parse().unwrap(),
        }
    }
}

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// One layer of each kind, each from its configuration.
pub(crate) struct Layers {
    pub(crate) tool_metrics: ToolMetricsLayer,
    pub(crate) info: ConnectionInfoLayer,
    pub(crate) jwt: JwtLayer,
    pub(crate) api_key: ApiKeyLayer,
    pub(crate) ext_authz: ExtAuthLayer,
    pub(crate) rbac: CelPolicyLayer,
    pub(crate) guard: PromptGuardLayer,
    pub(crate) toolsec: ToolSecurityLayer,
    pub(crate) backend: BackendAuthLayer,
    _files: tempfile::TempDir,
}

impl Layers {
    /// Builds every layer (inside the runtime: some start background refreshes).
    pub(crate) async fn new(settings: &Settings) -> Layers {
        let files = tempfile::tempdir().unwrap();
        let hmac = files.path().join("hmac");
        std::fs::write(&hmac, "a-shared-secret-of-enough-length-0123456789").unwrap();
        let upstream_key = files.path().join("upstream-key");
        std::fs::write(&upstream_key, "sk-upstream\n").unwrap();
        let jwt = yaml(&format!(
            "mode: Optional\nproviders:\n  - issuer: https://auth.example\n    jwks: {{hmacSecret: {{file: {}}}}}\n",
            hmac.display()
        ));
        let api_key =
            yaml("mode: Strict\nkeys:\n  - name: alice\n    key: alice-key-123\n    role: user\n");
        let ext_authz = yaml(&format!(
            "backendRef: {{url: \"http://{}\"}}\nhttp: {{allowedHeaders: [x-deny]}}\nfailureModeAllow: false\n",
            settings.ext_authz
        ));
        let rbac = yaml(
            r#"
policy:
  deny:
    - name: no-delete
      expression: 'has(mcp.tool) && mcp.tool.name == "delete-everything"'
    - name: no-o1-pro
      expression: 'has(request.body.model) && request.body.model == "o1-pro"'
"#,
        );
        let guard = yaml(
            r#"
request:
  - regex:
      action: Reject
      matches:
        - pattern: "(?i)ignore (all )?previous instructions"
          name: injection
response:
  - regex:
      action: Mask
      builtins: [EMAIL]
"#,
        );
        let toolsec = yaml(
            r#"
inputValidation:
  enabled: true
  rules:
    - tool: "*"
      arguments:
        - field: "*"
          reject:
            - pattern: "\\.\\./"
              name: path-traversal
"#,
        );
        let backend = yaml(&format!(
            "kind: SecretRef\nsecretRef: {{file: {}}}\nprovider: openai\n",
            upstream_key.display()
        ));
        Layers {
            tool_metrics: ToolMetricsLayer::new(),
            info: ConnectionInfoLayer::new(None, None),
            jwt: JwtLayer::from_config(&jwt).expect("jwt"),
            api_key: ApiKeyLayer::from_config(&api_key).expect("api key"),
            ext_authz: ExtAuthLayer::from_config(&ext_authz).expect("ext_authz"),
            rbac: CelPolicyLayer::from_config(&rbac).expect("rbac"),
            guard: PromptGuardLayer::from_config(&guard).expect("prompt guard"),
            toolsec: ToolSecurityLayer::from_config(&toolsec).expect("tool security"),
            backend: BackendAuthLayer::from_config(&backend).expect("backend auth"),
            _files: files,
        }
    }
}

/// Accepts any request body (the layers wrap it in their own types), boxes it for `S`, and
/// forwards readiness unchanged.
#[derive(Clone)]
pub(crate) struct Erase<S>(pub S);

impl<S, B> Service<Request<B>> for Erase<S>
where
    S: Service<Request<AnyBody>>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> S::Future {
        self.0
            .call(req.map(|body| body.map_err(Into::into).boxed_unsync()))
    }
}

/// Which order the layers are stacked in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Order {
    /// [`gateway_order!`] and [`llm_order!`].
    Gateway,
    /// [`reversed_order!`] and [`llm_reversed_order!`].
    Reversed,
}

/// The servers of one test: the guarded app on `base`, and the ext_authz service.
pub(crate) struct Env {
    pub(crate) base: String,
    calls: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn listen() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

impl Env {
    /// Starts the ext_authz service and the app behind the layers stacked in `order`.
    pub(crate) async fn start(order: Order) -> Env {
        // ext_authz (HTTP): denies requests that carry `x-deny`.
        let (listener, ext_authz) = listen().await;
        let auth = axum::Router::new().fallback(|headers: HeaderMap| async move {
            if headers.contains_key("x-deny") {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::OK
            }
        });
        let mut tasks = vec![tokio::spawn(async move {
            let _ = axum::serve(listener, auth).await;
        })];

        let calls = Arc::new(AtomicUsize::new(0));
        let server_calls = calls.clone();
        let mcp = StreamableHttpService::new(
            move || {
                Ok(Tools {
                    calls: server_calls.clone(),
                })
            },
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        let llm_app = axum::Router::new()
            .route("/v1/chat/completions", post(llm))
            .route("/v1/messages", post(llm));
        let layers = Layers::new(&Settings { ext_authz }).await;
        let guarded = match order {
            Order::Gateway => axum::Router::new()
                .route_service("/mcp", gateway_order!(layers, mcp))
                .fallback_service(llm_order!(layers, llm_app)),
            Order::Reversed => axum::Router::new()
                .route_service("/mcp", reversed_order!(layers, mcp))
                .fallback_service(llm_reversed_order!(layers, llm_app)),
        };
        let (listener, addr) = listen().await;
        tasks.push(tokio::spawn(async move {
            let _layers = layers;
            let _ = axum::serve(listener, guarded).await;
        }));
        Env {
            base: format!("http://{addr}"),
            calls,
            tasks,
        }
    }

    /// An `rmcp` client session through the stack, with the API key.
    pub(crate) async fn mcp_client(&self) -> RunningService<RoleClient, ()> {
        let headers = HashMap::from([(
            http::HeaderName::from_static("x-api-key"),
            http::HeaderValue::from_static(KEY),
        )]);
        let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", self.base))
            .custom_headers(headers);
        let transport = StreamableHttpClientTransport::from_config(config);
        ().serve(transport)
            .await
            .expect("initialize through every layer")
    }

    /// How many `tools/call` requests reached the MCP server.
    pub(crate) fn tool_calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The LLM handler: answers with an email address (to be masked) and the credentials it saw.
async fn llm(headers: HeaderMap) -> Json<Value> {
    let seen = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map_or(Value::Null, Value::from)
    };
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Write to jo@example.com."}}],
        "seen": {"authorization": seen("authorization"), "x-api-key": seen("x-api-key")},
    }))
}

/// `tools/call` parameters.
pub(crate) fn call_params(name: &'static str, arguments: Value) -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new(name);
    params.arguments = arguments.as_object().cloned();
    params
}

/// The MCP server: two tools, and a count of the calls that reached it.
#[derive(Clone)]
struct Tools {
    calls: Arc<AtomicUsize>,
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let object =
            |name: &str| json!({"type": "object", "properties": {name: {"type": "string"}}});
        serde_json::from_value(json!({"tools": [
            {"name": "get-weather", "description": "Get the weather of a city.", "inputSchema": object("city")},
            {"name": "read-file", "description": "Read a file of the workspace.", "inputSchema": object("path")},
        ]}))
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        let text = format!("{} with {args}", request.name);
        Ok(CallToolResult::success(vec![rmcp::model::ContentBlock::text(text)]).into())
    }
}
