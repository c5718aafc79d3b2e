//! An existing axum application protected by agentgw layers of every crate.
//!
//! The application serves what an AI platform typically serves:
//!
//! - `POST /v1/chat/completions`: an OpenAI-compatible chat completion handler ([`chat`]) that
//!   echoes the last user message and adds a support address, as one JSON answer or, with
//!   `"stream": true`, as server-sent events;
//! - `/mcp`: an MCP server built on the official Rust SDK, `rmcp`'s `StreamableHttpService`,
//!   with three tools: `get-weather`, `read-file` and `delete-file` ([`tools`]).
//!
//! Each route gets its own `tower::ServiceBuilder` stack of layers, outermost first:
//!
//! | route | configured | layers |
//! |---|---|---|
//! | `/v1/chat/completions` | in code, with the config builders ([`llm_policies`]) | API key, CEL RBAC, prompt guard (reject injections, mask emails and card numbers in answers) |
//! | `/mcp` | from YAML ([`McpPolicies`]: [`DEFAULT_MCP_POLICIES`] or `--config FILE`) | API key, CEL RBAC, prompt guard, tool security |
//!
//! Authentication is outermost, so that RBAC sees the key's role (`apiKey.role`). Tool security
//! sits on the MCP route only: it refuses whatever is not JSON-RPC.
//!
//! [`run`] serves the application on a listener; the binary binds `127.0.0.1:PORT` and prints
//! `curl` commands that show what is allowed and what is denied.

use agentgw_auth::api_key::ApiKeyEntry;
use agentgw_auth::{ApiKeyConfig, ApiKeyLayer, Mode, TokenLocation};
use agentgw_core::{BoxError, ConfigError};
use agentgw_guard::{
    Action, Builtin, GuardConfig, MatchConfig, PromptGuardConfig, PromptGuardLayer, RegexConfig,
};
use agentgw_rbac::{CelPolicyLayer, PolicyConfig, RbacConfig};
use agentgw_toolsec::{ToolSecurityConfig, ToolSecurityLayer};
use axum::Router;
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

pub mod chat;
pub mod tools;

/// The demo key of `alice`, an admin: any model, every tool.
pub const ALICE_KEY: &str = "sk-demo-alice";

/// The demo key of `bob`, a user: `gpt-4o-mini` only, no `delete-file`.
pub const BOB_KEY: &str = "sk-demo-bob";

/// The policies of the MCP route the binary uses without `--config`: `mcp-policies.yaml`.
pub const DEFAULT_MCP_POLICIES: &str = include_str!("../mcp-policies.yaml");

/// What [`app`] and [`run`] serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// The YAML policies of the MCP route, in the shape of [`McpPolicies`].
    pub mcp_policies: String,
}

impl Default for Options {
    /// The embedded [`DEFAULT_MCP_POLICIES`].
    fn default() -> Self {
        Options {
            mcp_policies: DEFAULT_MCP_POLICIES.to_owned(),
        }
    }
}

/// The layers of the chat route.
#[derive(Debug, Clone)]
pub struct LlmPolicies {
    /// Who may call.
    pub api_key: ApiKeyLayer,
    /// Which key may use which model.
    pub rbac: CelPolicyLayer,
    /// What prompts and answers may contain.
    pub prompt_guard: PromptGuardLayer,
}

/// The policies of the chat route, written in code with each crate's config builders.
///
/// - API keys in `Authorization: Bearer`, as OpenAI clients send them: [`ALICE_KEY`] (role
///   `admin`) and [`BOB_KEY`] (role `user`, allowed model `gpt-4o-mini`);
/// - RBAC: admins use any model, others the models of their key (`apiKey.allowedModels`);
/// - prompt guard: requests that try a prompt injection are rejected; email addresses and
///   payment card numbers in answers are masked, streamed answers included.
///
/// Errors name the field, prefixed with the block: `llm.rbac.policy.matchExpressions[1]: ...`.
pub fn llm_policies() -> Result<LlmPolicies, BoxError> {
    let api_key = ApiKeyConfig::default()
        .mode(Mode::Strict)
        .location(TokenLocation::bearer())
        .keys([
            ApiKeyEntry::new("alice", ALICE_KEY).role("admin"),
            ApiKeyEntry::new("bob", BOB_KEY)
                .role("user")
                .allowed_models(["gpt-4o-mini"]),
        ]);
    let rbac = RbacConfig::default().policy(PolicyConfig::default().match_expressions([
        r#"apiKey.role == "admin""#,
        "request.body.model in apiKey.allowedModels",
    ]));
    let prompt_guard = PromptGuardConfig::default()
        .request([GuardConfig::default().regex(
            RegexConfig::default()
                .action(Action::Reject)
                .matches([MatchConfig::default()
                    .pattern("ignore (all )?previous instructions")
                    .name("prompt-injection")]),
        )])
        .response([GuardConfig::default().regex(
            RegexConfig::default()
                .action(Action::Mask)
                .builtins([Builtin::Email, Builtin::CreditCard]),
        )]);
    Ok(LlmPolicies {
        api_key: ApiKeyLayer::from_config(&api_key).map_err(at("llm.apiKeyAuthentication"))?,
        rbac: CelPolicyLayer::from_config(&rbac).map_err(at("llm.rbac"))?,
        prompt_guard: PromptGuardLayer::from_config(&prompt_guard)
            .map_err(at("llm.promptGuard"))?,
    })
}

/// The policies of the MCP route, as YAML: one block per crate, each the crate's own config
/// type. See `mcp-policies.yaml` for an example.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpPolicies {
    /// `agentgw-auth`: who may call.
    pub api_key_authentication: ApiKeyConfig,
    /// `agentgw-rbac`: who may call which tool (no rules: everyone, everything).
    #[serde(default)]
    pub rbac: RbacConfig,
    /// `agentgw-guard`: what tool arguments may contain (no guards: anything).
    #[serde(default)]
    pub prompt_guard: PromptGuardConfig,
    /// `agentgw-toolsec`: tool definitions, arguments and results (`{}`: the builtin
    /// tool-poisoning detectors only).
    #[serde(default)]
    pub tool_security: ToolSecurityConfig,
}

/// The layers of the MCP route.
#[derive(Debug, Clone)]
pub struct McpLayers {
    /// Who may call.
    pub api_key: ApiKeyLayer,
    /// Who may call which tool.
    pub rbac: CelPolicyLayer,
    /// What tool arguments may contain.
    pub prompt_guard: PromptGuardLayer,
    /// Tool definitions, arguments and results.
    pub tool_security: ToolSecurityLayer,
}

impl McpPolicies {
    /// Parses the YAML policies. Errors say where: `rbac.policy: unknown field ... at line 3`.
    pub fn from_yaml(yaml: &str) -> Result<Self, BoxError> {
        serde_saphyr::from_str(yaml).map_err(|e| format!("MCP policies: {e}").into())
    }

    /// Builds the layers, each checked and compiled up front. Errors name the field:
    /// `mcp.toolSecurity.inputValidation.rules[0].arguments[0].reject[0].pattern: ...`.
    pub fn layers(&self) -> Result<McpLayers, BoxError> {
        Ok(McpLayers {
            api_key: ApiKeyLayer::from_config(&self.api_key_authentication)
                .map_err(at("mcp.apiKeyAuthentication"))?,
            rbac: CelPolicyLayer::from_config(&self.rbac).map_err(at("mcp.rbac"))?,
            prompt_guard: PromptGuardLayer::from_config(&self.prompt_guard)
                .map_err(at("mcp.promptGuard"))?,
            tool_security: ToolSecurityLayer::from_config(&self.tool_security)
                .map_err(at("mcp.toolSecurity"))?,
        })
    }
}

/// Turns a layer's configuration error into one line naming the full field path.
fn at<E: ConfigError>(block: &'static str) -> impl Fn(E) -> BoxError {
    move |error| error.at(block).into()
}

/// The application with its policies: the chat route behind the stack built in code, the MCP
/// server behind the stack built from `options.mcp_policies`, and an unprotected `/healthz`.
///
/// Call it inside a Tokio runtime: the API key layers watch for key changes on it.
pub fn app(options: &Options) -> Result<Router, BoxError> {
    let llm = llm_policies()?;
    let mcp = McpPolicies::from_yaml(&options.mcp_policies)?.layers()?;

    let llm_stack = ServiceBuilder::new()
        .layer(llm.api_key)
        .layer(llm.rbac)
        .layer(llm.prompt_guard);
    let mcp_stack = ServiceBuilder::new()
        .layer(mcp.api_key)
        .layer(mcp.rbac)
        .layer(mcp.prompt_guard)
        .layer(mcp.tool_security);

    Ok(Router::new()
        .route(
            "/v1/chat/completions",
            post(chat::completions).layer(llm_stack),
        )
        .nest_service("/mcp", mcp_stack.service(tools::server()))
        .route("/healthz", get(|| async { "ok" })))
}

/// Serves [`app`] on `listener` until the listener fails.
pub async fn run(listener: TcpListener, options: Options) -> Result<(), BoxError> {
    let app = app(&options)?;
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_error_names_the_field_from_the_route() {
        let yaml = DEFAULT_MCP_POLICIES.replace("\\\\.\\\\./", "[unclosed");
        let err = McpPolicies::from_yaml(&yaml)
            .unwrap()
            .layers()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "mcp.toolSecurity.inputValidation.rules[0].arguments[0].reject[0].pattern: "
            ),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_block_is_refused() {
        let err = McpPolicies::from_yaml("apiKeyAuthentication: {}\nrbca: {}\n").unwrap_err();
        assert!(err.to_string().contains("rbca"), "{err}");
    }
}
