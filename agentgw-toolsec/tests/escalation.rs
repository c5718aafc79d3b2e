//! `action: Escalate` on `tools/call` rules, over real sockets: a webhook on 127.0.0.1 records
//! every event and allows, denies or answers too late; an MCP upstream on 127.0.0.1 counts the
//! calls that reach it; the layer sits in front of it, called with reqwest.

use std::sync::{Arc, Mutex};

use agentgw_core::ConfigError;
use agentgw_core::audit::{AuditSink, MemorySink};
use agentgw_core::identity::{BackendName, JwtClaims};
use agentgw_test_support::EscalationHook;
use agentgw_toolsec::{ToolSecurityConfig, ToolSecurityLayer};
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use serde_json::{Value, json};
use tower::ServiceBuilder;

/// An MCP upstream that answers every `tools/call` with a text result and counts them, behind
/// the layer, a router that names the route `tools` and a stand-in for JWT authentication.
struct Gateway {
    url: String,
    calls: Arc<Mutex<usize>>,
}

async fn serve(layer: ToolSecurityLayer) -> Gateway {
    let calls: Arc<Mutex<usize>> = Arc::default();
    let counter = Arc::clone(&calls);
    let upstream = Router::new().route(
        "/mcp",
        post(move |body: Bytes| {
            let counter = Arc::clone(&counter);
            async move {
                let request: Value = serde_json::from_slice(&body).unwrap();
                *counter.lock().unwrap() += 1;
                axum::Json(json!({"jsonrpc": "2.0", "id": request["id"],
                    "result": {"content": [{"type": "text", "text": "done"}], "isError": false}}))
            }
        }),
    );
    let app = upstream.layer(
        ServiceBuilder::new()
            .map_request(|mut req: http::Request<axum::body::Body>| {
                let claims = JwtClaims::from_value(json!({"sub": "alice"})).unwrap();
                req.extensions_mut().insert(claims);
                req.extensions_mut().insert(BackendName(Arc::from("tools")));
                req
            })
            .layer(layer),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Gateway { url, calls }
}

impl Gateway {
    /// Calls `tool`; the JSON-RPC answer.
    async fn call(&self, tool: &str, arguments: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}});
        reqwest::Client::new()
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn calls(&self) -> usize {
        *self.calls.lock().unwrap()
    }
}

fn layer(yaml: &str) -> ToolSecurityLayer {
    let config: ToolSecurityConfig = serde_saphyr::from_str(yaml).unwrap();
    ToolSecurityLayer::from_config(&config).unwrap()
}

/// Escalated allowlist and input rules, with the webhook at `url`.
fn escalating(url: &str, block_pending: bool) -> ToolSecurityLayer {
    layer(&format!(
        r#"
unlistedTools: Allow
allowlist:
  action: Escalate
  tools:
    - name: read-file
      action: Escalate
      blockedArguments:
        path: ["*.pem", "*secret*"]
    - name: run
inputValidation:
  rules:
    - tool: run
      action: Escalate
      arguments:
        - field: "*"
          reject:
            - {{pattern: '\.\./', name: path-traversal}}
            - {{pattern: '[;&|]', name: shell-metacharacters}}
escalation:
  webhook: {url}
  blockPending: {block_pending}
  timeout: 300ms
  consoleNotification: true
"#
    ))
}

fn assert_refused(answer: &Value, rule: &str) {
    assert_eq!(answer["id"], 7, "{answer}");
    assert_eq!(answer["error"]["data"]["reason"], rule, "{answer}");
}

#[tokio::test]
async fn a_pending_call_goes_upstream_only_when_the_webhook_allows() {
    let webhook = EscalationHook::start().await.unwrap();

    let allowed = serve(escalating(&webhook.url("allow"), true)).await;
    let answer = allowed
        .call("read-file", json!({"path": "deploy/server.pem"}))
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "done", "{answer}");
    assert_eq!(allowed.calls(), 1);
    let events = webhook.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event["layer"], "toolsec");
    assert_eq!(event["rule"], "blocked-argument");
    assert_eq!(event["tool"], "read-file");
    assert_eq!(event["route"], "tools");
    assert_eq!(event["caller"]["subject"], "alice");
    assert_eq!(event["pending"], true);
    assert!(
        !event.to_string().contains("server.pem"),
        "no arguments: {event}"
    );

    // A tool not on the allowlist escalates too (`allowlist.action`).
    let answer = allowed.call("delete-everything", json!({})).await;
    assert!(answer.get("result").is_some(), "{answer}");
    assert_eq!(webhook.events()[1]["rule"], "allowlist");

    // A call no rule refuses never reaches the webhook.
    let before = webhook.events().len();
    allowed
        .call("read-file", json!({"path": "README.md"}))
        .await;
    assert_eq!(webhook.events().len(), before);

    for mode in ["deny", "slow"] {
        let held = serve(escalating(&webhook.url(mode), true)).await;
        let answer = held.call("read-file", json!({"path": "server.pem"})).await;
        assert_refused(&answer, "blocked-argument");
        assert_eq!(held.calls(), 0, "{mode}: the upstream was not reached");
    }
    let gone = serve(escalating("http://127.0.0.1:9/hook", true)).await;
    let answer = gone.call("read-file", json!({"path": "server.pem"})).await;
    assert_refused(&answer, "blocked-argument");
    assert_eq!(gone.calls(), 0);
}

#[tokio::test]
async fn an_allowed_input_rule_is_skipped_and_the_others_still_apply() {
    let webhook = EscalationHook::start().await.unwrap();
    // `/rules` allows `path-traversal` and denies anything else.
    let gateway = serve(escalating(&webhook.url("allow-rule/path-traversal"), true)).await;
    let answer = gateway.call("run", json!({"dir": "../up"})).await;
    assert!(answer.get("result").is_some(), "{answer}");
    let answer = gateway.call("run", json!({"dir": "../up; rm -rf /"})).await;
    assert_refused(&answer, "shell-metacharacters");
    let rules: Vec<Value> = webhook.events().iter().map(|e| e["rule"].clone()).collect();
    assert_eq!(
        rules,
        ["path-traversal", "path-traversal", "shell-metacharacters"]
    );
    assert_eq!(gateway.calls(), 1);
}

#[tokio::test]
async fn without_block_pending_the_call_is_refused_and_the_webhook_notified() {
    let webhook = EscalationHook::start().await.unwrap();
    let sink = MemorySink::default();
    let layer = escalating(&webhook.url("allow"), false)
        .audit_sink(Arc::new(sink.clone()) as Arc<dyn AuditSink>);
    let gateway = serve(layer).await;
    let answer = gateway
        .call("read-file", json!({"path": "my-secret.txt"}))
        .await;
    assert_refused(&answer, "blocked-argument");
    assert_eq!(gateway.calls(), 0);
    let events = webhook.wait_for(1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["pending"], false);
    assert_eq!(events[0]["tool"], "read-file");
    assert_eq!(events[0]["caller"]["subject"], "alice");
    assert!(!events[0].to_string().contains("my-secret"));

    let audited = sink.events();
    let escalation = audited
        .iter()
        .find(|e| e.event == "escalation")
        .expect("an escalation event");
    assert_eq!(escalation.details["outcome"], "notified");
    let refusal = audited
        .iter()
        .find(|e| e.event == "tool_call")
        .expect("the refusal");
    assert_eq!(refusal.details["escalate"], true);
}

#[test]
fn escalation_needs_a_rule_and_a_destination() {
    let build = |yaml: &str| {
        let config: ToolSecurityConfig = serde_saphyr::from_str(yaml).unwrap();
        ToolSecurityLayer::from_config(&config).map(|_| ())
    };
    let err = build("allowlist: {action: Escalate}\n").unwrap_err();
    assert_eq!(err.path(), "escalation");
    let err = build("escalation: {consoleNotification: true}\n").unwrap_err();
    assert_eq!(err.path(), "escalation");
    assert!(err.reason().contains("no rule escalates"), "{err}");
    let err =
        build("allowlist: {action: Escalate}\nescalation: {blockPending: true}\n").unwrap_err();
    assert_eq!(err.path(), "escalation.blockPending");
    build("allowlist: {action: Escalate}\nescalation: {consoleNotification: true}\n").unwrap();
}
