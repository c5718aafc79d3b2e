//! agentgw layers of every crate in front of a bare `hyper` service, without axum.
//!
//! The application is two `tower` services and a `match` on the path:
//!
//! - `POST /v1/chat/completions`: a `service_fn` ([`chat::completions`]) that answers an
//!   OpenAI-compatible chat completion echoing the last user message, with a support address;
//! - `/mcp`: an MCP server on the official Rust SDK, `rmcp`'s `StreamableHttpService`, with
//!   three tools: `get-weather`, `read-file` and `delete-file` ([`tools`]).
//!
//! One YAML file ([`Policies`]: [`DEFAULT_POLICIES`] or `--config FILE`) configures one layer
//! of each crate; the same layers are stacked with `tower::ServiceBuilder` in front of both
//! services, outermost first: API key, CEL RBAC, prompt guard, and on the MCP route tool
//! security (which refuses whatever is not JSON-RPC).
//!
//! [`run`] accepts connections itself and serves each with `hyper-util`'s
//! `server::conn::auto::Builder` (HTTP/1.1 and HTTP/2) over `TokioIo`.

use std::convert::Infallible;

use agentgw_auth::{ApiKeyConfig, ApiKeyLayer};
use agentgw_core::{BoxError, ConfigError};
use agentgw_guard::{PromptGuardConfig, PromptGuardLayer};
use agentgw_rbac::{CelPolicyLayer, RbacConfig};
use agentgw_toolsec::{ToolSecurityConfig, ToolSecurityLayer};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use tokio::net::TcpListener;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt as _};

pub mod chat;
pub mod tools;

/// The demo key of `alice`, an admin: any model, every tool.
pub const ALICE_KEY: &str = "sk-demo-alice";

/// The demo key of `bob`, a user: `gpt-4o-mini` only, no `delete-file`.
pub const BOB_KEY: &str = "sk-demo-bob";

/// The policies the binary uses without `--config`: `policies.yaml`.
pub const DEFAULT_POLICIES: &str = include_str!("../policies.yaml");

/// What [`run`] serves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The YAML policies, in the shape of [`Policies`].
    pub policies: String,
}

impl Default for Options {
    /// The embedded [`DEFAULT_POLICIES`].
    fn default() -> Self {
        Options {
            policies: DEFAULT_POLICIES.to_owned(),
        }
    }
}

/// The policies, as YAML: one block per crate, each the crate's own config type. See
/// `policies.yaml` for an example.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policies {
    /// `agentgw-auth`: who may call.
    pub api_key_authentication: ApiKeyConfig,
    /// `agentgw-rbac`: who may do what (no rules: everyone, everything).
    #[serde(default)]
    pub rbac: RbacConfig,
    /// `agentgw-guard`: what prompts, tool arguments and answers may contain.
    #[serde(default)]
    pub prompt_guard: PromptGuardConfig,
    /// `agentgw-toolsec`: tool definitions, arguments and results of the MCP route (`{}`: the
    /// builtin tool-poisoning detectors only).
    #[serde(default)]
    pub tool_security: ToolSecurityConfig,
}

/// One layer of each crate, built from [`Policies`].
#[derive(Debug, Clone)]
pub struct Layers {
    /// Who may call.
    pub api_key: ApiKeyLayer,
    /// Who may do what.
    pub rbac: CelPolicyLayer,
    /// What prompts, tool arguments and answers may contain.
    pub prompt_guard: PromptGuardLayer,
    /// Tool definitions, arguments and results.
    pub tool_security: ToolSecurityLayer,
}

impl Policies {
    /// Parses the YAML policies. Errors say where: `rbac.policy: unknown field ... at line 3`.
    pub fn from_yaml(yaml: &str) -> Result<Self, BoxError> {
        serde_saphyr::from_str(yaml).map_err(|e| format!("policies: {e}").into())
    }

    /// Builds the layers, each checked and compiled up front. Errors name the field:
    /// `rbac.policy.deny[0]: CEL syntax error at line 1, column 14: ...`.
    ///
    /// Call it inside a Tokio runtime: the API key layer watches for key changes on it.
    pub fn layers(&self) -> Result<Layers, BoxError> {
        Ok(Layers {
            api_key: ApiKeyLayer::from_config(&self.api_key_authentication)
                .map_err(at("apiKeyAuthentication"))?,
            rbac: CelPolicyLayer::from_config(&self.rbac).map_err(at("rbac"))?,
            prompt_guard: PromptGuardLayer::from_config(&self.prompt_guard)
                .map_err(at("promptGuard"))?,
            tool_security: ToolSecurityLayer::from_config(&self.tool_security)
                .map_err(at("toolSecurity"))?,
        })
    }
}

/// Turns a layer's configuration error into one line naming the full field path.
fn at<E: ConfigError>(block: &'static str) -> impl Fn(E) -> BoxError {
    move |error| error.at(block).into()
}

/// The response body every route answers with.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A route: a stack of layers and the service behind it, boxed so that both routes have one
/// type (one allocation per request, next to the body reads the layers do).
pub type Route = BoxCloneService<Request<Incoming>, Response<ResponseBody>, BoxError>;

/// The two routes, each behind its `ServiceBuilder` stack of `layers`.
pub fn routes(layers: &Layers) -> (Route, Route) {
    let llm = ServiceBuilder::new()
        .map_response(boxed)
        .map_err(BoxError::from)
        .layer(layers.api_key.clone())
        .layer(layers.rbac.clone())
        .layer(layers.prompt_guard.clone())
        .service_fn(chat::completions);
    let mcp = ServiceBuilder::new()
        .map_response(boxed)
        .map_err(BoxError::from)
        .layer(layers.api_key.clone())
        .layer(layers.rbac.clone())
        .layer(layers.prompt_guard.clone())
        .layer(layers.tool_security.clone())
        .service(tools::server());
    (BoxCloneService::new(llm), BoxCloneService::new(mcp))
}

/// Gives the response body of either route one type.
fn boxed<B>(response: Response<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(|body| body.map_err(Into::into).boxed_unsync())
}

/// Picks the route of `request` by its path.
async fn route(
    request: Request<Incoming>,
    llm: Route,
    mcp: Route,
) -> Result<Response<ResponseBody>, BoxError> {
    match request.uri().path() {
        "/v1/chat/completions" => llm.oneshot(request).await,
        "/mcp" => mcp.oneshot(request).await,
        "/healthz" => Ok(plain(StatusCode::OK, "ok")),
        _ => Ok(plain(StatusCode::NOT_FOUND, "not found")),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

/// Serves the routes on `listener` until accepting fails: one task per connection, each
/// connection served by `hyper-util`'s auto (HTTP/1.1 and HTTP/2) builder.
pub async fn run(listener: TcpListener, options: Options) -> Result<(), BoxError> {
    let layers = Policies::from_yaml(&options.policies)?.layers()?;
    let (llm, mcp) = routes(&layers);
    loop {
        let (stream, _peer) = listener.accept().await?;
        let (llm, mcp) = (llm.clone(), mcp.clone());
        let service =
            hyper::service::service_fn(move |request| route(request, llm.clone(), mcp.clone()));
        tokio::spawn(async move {
            let connection = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = connection {
                eprintln!("connection error: {error}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_policy_error_names_the_field() {
        let yaml = DEFAULT_POLICIES.replace("has(mcp.tool) &&", "has(mcp.tool) &&&");
        let err = Policies::from_yaml(&yaml)
            .unwrap()
            .layers()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("rbac.policy.deny[1]"), "{err}");
    }

    #[test]
    fn an_unknown_block_is_refused() {
        let err = Policies::from_yaml("apiKeyAuthentication: {}\nrbca: {}\n").unwrap_err();
        assert!(err.to_string().contains("rbca"), "{err}");
    }
}
