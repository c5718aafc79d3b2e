//! The smallest useful gateway built from agentgw layers: `POST /v1/chat/completions` proxied to
//! an OpenAI-compatible upstream with reqwest (bodies stream both ways, redirects are not
//! followed), behind three layers: the client's API key (`Authorization: Bearer`, keys from a
//! file re-read when it changes), a prompt guard (injections rejected; email addresses and card
//! numbers masked in answers, streamed ones included) and the upstream's own credential.

use std::{path::PathBuf, sync::Arc, time::Duration};

use agentgw_auth::{ApiKeyConfig, ApiKeyLayer, BackendAuthLayer, CredentialHeader};
use agentgw_auth::{SecretRef, TokenLocation};
use agentgw_core::{BoxError, ConfigError, Rejection, ResponseShape, headers::strip_hop_by_hop};
use agentgw_guard::{PromptGuardConfig, PromptGuardLayer};
use axum::extract::{Request, State};
use axum::{body::Body, http::StatusCode, http::header, response::Response, routing::post};
use tower::ServiceBuilder;

/// What the prompt guard rejects in requests and masks in answers.
const GUARD: &str = r#"
request:
  - regex:
      action: Reject
      matches: [{pattern: "ignore (all )?previous instructions", name: prompt-injection}]
response:
  - regex: {action: Mask, builtins: [EMAIL, CREDIT_CARD]}
"#;

/// What the gateway forwards to, and who may use it.
#[derive(Debug, Clone)]
pub struct Options {
    /// The upstream's base URL, such as `https://api.openai.com/v1`.
    pub upstream: String,
    /// The clients' keys: a YAML file of `keys: [{name, key}]` (or `sha256` instead of `key`).
    pub keys: PathBuf,
    /// The upstream's API key, sent as `Authorization: Bearer`; `None` sends none.
    pub upstream_key: Option<SecretRef>,
}

struct Upstream {
    client: reqwest::Client,
    url: String,
}

/// Serves the gateway on `listener`. Configuration errors name the field that is wrong.
pub async fn run(listener: tokio::net::TcpListener, options: Options) -> Result<(), BoxError> {
    let keys = ApiKeyConfig::default()
        .location(TokenLocation::bearer())
        .file(&options.keys);
    let guard: PromptGuardConfig = serde_saphyr::from_str(GUARD)?;
    let backend = match &options.upstream_key {
        Some(secret) => BackendAuthLayer::secret(secret, CredentialHeader::bearer()),
        None => Ok(BackendAuthLayer::passthrough()),
    };
    let layers = ServiceBuilder::new()
        .layer(ApiKeyLayer::from_config(&keys).map_err(|e| e.at("keys"))?)
        .layer(PromptGuardLayer::from_config(&guard).map_err(|e| e.at("promptGuard"))?)
        .layer(backend.map_err(|e| e.at("upstreamKey"))?);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(120))
        .build()?;
    let url = options.upstream.trim_end_matches('/').to_owned() + "/chat/completions";
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(forward).layer(layers))
        .with_state(Arc::new(Upstream { client, url }));
    axum::serve(listener, app).await?;
    Ok(())
}

/// Sends the request, as the layers left it, to the upstream and streams its answer back.
async fn forward(State(upstream): State<Arc<Upstream>>, request: Request) -> Response {
    let shape = ResponseShape::for_request(&request);
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // reqwest sets `Host` from the URL; the response guard inspects identity-coded answers only.
    parts.headers.remove(header::HOST);
    parts.headers.remove(header::ACCEPT_ENCODING);
    let url = match parts.uri.query() {
        Some(query) => format!("{}?{query}", upstream.url),
        None => upstream.url.clone(),
    };
    let sent = upstream
        .client
        .request(parts.method, url)
        .headers(parts.headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let mut answer = Response::from(answer).map(Body::new);
            strip_hop_by_hop(answer.headers_mut());
            answer
        }
        Err(error) => {
            let (status, reason) = match error.is_timeout() {
                true => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
                false => (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
            };
            Rejection::new(status, "upstream", reason)
                .respond_in(&shape)
                .map(Body::new)
        }
    }
}
