//! Scoped gateway keys through the real gateway over TCP: a key limited to routes, a key limited
//! to models, an expired key, and a key revoked by removing it from the watched key file, each
//! in front of the OpenAI and MCP mocks.

use std::net::SocketAddr;
use std::time::Duration;

use agentgw_gateway::{Config, RunningGateway};
use agentgw_test_support::{self as mock, McpOptions, MockServer};
use serde_json::{Value, json};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The gateway: one global API key block (inline keys and a watched file) over an LLM route
/// `openai`, a second LLM route `openai-batch` and an MCP route `tools`.
async fn gateway(
    keys_file: &std::path::Path,
    openai: &MockServer,
    mcp: &MockServer,
) -> RunningGateway {
    let yaml = format!(
        r#"
policies:
  traffic:
    apiKeyAuthentication:
      keys:
        - {{name: anywhere, key: sk-anywhere}}
        - {{name: batch-only, key: sk-batch, routes: [openai-batch]}}
        - {{name: mini, key: sk-mini, models: ["gpt-4o-mini*"]}}
        - {{name: old, key: sk-old, expiresAt: "2020-01-01T00:00:00Z"}}
      file: {file}
      reloadInterval: 10ms
routes:
  - name: openai
    pathPrefix: /openai
    kind: llm
    backend: {{url: "{openai}/v1"}}
  - name: openai-batch
    pathPrefix: /batch
    kind: llm
    backend: {{url: "{openai}/v1"}}
  - name: tools
    pathPrefix: /mcp
    kind: mcp
    backend: {{url: "{mcp}/mcp"}}
"#,
        file = keys_file.display(),
        openai = openai.url(),
        mcp = mcp.url(),
    );
    let mut config = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    config.listen = loopback();
    agentgw_gateway::start(config, None)
        .await
        .expect("gateway starts")
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn chat(&self, prefix: &str, key: &str, model: &str) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{prefix}/chat/completions", self.base))
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(
                json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (
            status,
            serde_json::from_str(&res.text().await.unwrap()).unwrap(),
        )
    }

    async fn tools_list(&self, key: &str) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/mcp", self.base))
            .header("x-api-key", key)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(
                json!({"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"}}})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        // A Streamable HTTP answer may come as one SSE event.
        let json = text
            .lines()
            .find_map(|line| line.strip_prefix("data:"))
            .unwrap_or(&text)
            .trim()
            .to_owned();
        (status, serde_json::from_str(&json).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn scoped_keys_are_enforced_per_route_model_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.yaml");
    std::fs::write(&keys, "keys:\n  - {name: rotating, key: sk-rotating}\n").unwrap();
    let openai = mock::openai(loopback()).await.unwrap();
    let mcp = mock::mcp(loopback(), McpOptions::default()).await.unwrap();
    let gw = gateway(&keys, &openai, &mcp).await;
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("http://{}", gw.addr()),
    };

    // Unscoped keys pass everywhere.
    assert_eq!(client.chat("/openai", "sk-anywhere", "gpt-4o").await.0, 200);
    assert_eq!(client.chat("/batch", "sk-anywhere", "gpt-4o").await.0, 200);
    assert_eq!(client.tools_list("sk-anywhere").await.0, 200);

    // Route scope: allowed on its route, a 403 with its reason elsewhere (OpenAI and JSON-RPC).
    assert_eq!(client.chat("/batch", "sk-batch", "gpt-4o").await.0, 200);
    let (status, body) = client.chat("/openai", "sk-batch", "gpt-4o").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "api_key_route_not_allowed");
    let (_, body) = client.tools_list("sk-batch").await;
    assert_eq!(body["id"], 3, "the JSON-RPC error answers the request's id");
    assert_eq!(body["error"]["data"]["reason"], "api_key_route_not_allowed");

    // Model scope: the `model` of the body decides; the mock saw only allowed requests.
    let before = openai.received_requests().len();
    let (status, answer) = client.chat("/openai", "sk-mini", "gpt-4o-mini").await;
    assert_eq!(status, 200);
    assert_eq!(answer["model"], "gpt-4o-mini");
    let (status, body) = client.chat("/openai", "sk-mini", "gpt-4o").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "api_key_model_not_allowed");
    let received = openai.received_requests();
    assert_eq!(
        received.len(),
        before + 1,
        "the refused request never reached the upstream"
    );
    let forwarded: Value = serde_json::from_slice(&received[before].body).unwrap();
    assert_eq!(forwarded["model"], "gpt-4o-mini");
    assert!(
        !received[before].headers.contains_key("x-api-key"),
        "the gateway key stays at the gateway"
    );
    // MCP messages select no model: the model-scoped key may use the MCP route.
    assert_eq!(client.tools_list("sk-mini").await.0, 200);

    // Expired: a 401 with its own reason.
    let (status, body) = client.chat("/openai", "sk-old", "gpt-4o").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "expired_api_key");

    // Revocation: removing the key from the watched file refuses it after the next reload.
    assert_eq!(client.chat("/openai", "sk-rotating", "gpt-4o").await.0, 200);
    std::fs::write(&keys, "keys:\n  - {name: rotated, key: sk-rotated}\n").unwrap();
    let mut revoked = None;
    for _ in 0..500 {
        let (status, body) = client.chat("/openai", "sk-rotating", "gpt-4o").await;
        if status != 200 {
            revoked = Some((status, body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = revoked.expect("the removed key was never refused");
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(client.chat("/openai", "sk-rotated", "gpt-4o").await.0, 200);
}
