//! Denials are audited through the sink given to `CelPolicyLayer::audit_sink`.

use std::convert::Infallible;
use std::sync::Arc;

use agentgw_core::RequestBody;
use agentgw_core::audit::{Decision, MemorySink};
use agentgw_core::identity::JwtClaims;
use agentgw_rbac::{CelPolicyLayer, RbacConfig};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

const POLICY: &str = r#"
policy:
  matchExpressions:
    - 'mcp.method in ["initialize", "tools/list"]'
  allow:
    - name: read-only-tools
      expression: 'mcp.tool.name in ["kubectl-get", "list-pods"]'
  deny:
    - name: no-deletes
      expression: 'mcp.tool.name.startsWith("kubectl-delete")'
"#;

type Body = Full<bytes::Bytes>;

async fn ok(_: Request<RequestBody<Body>>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Full::default()))
}

fn call(tool: &str) -> Request<Body> {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": {"token": "sk-live-abcdefghijklmnop"}}});
    Request::post("/mcp?access_token=hunter2")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", "Bearer sk-live-abcdefghijklmnop")
        .extension(JwtClaims::from_value(json!({"sub": "alice"})).unwrap())
        .body(Full::new(body.to_string().into()))
        .unwrap()
}

#[tokio::test]
async fn a_denied_tool_call_is_one_authorization_event_without_secrets() {
    let config: RbacConfig = serde_saphyr::from_str(POLICY).unwrap();
    let sink = MemorySink::default();
    let layer = CelPolicyLayer::from_config(&config)
        .unwrap()
        .audit_sink(Arc::new(sink.clone()));
    let service = ServiceBuilder::new().layer(layer).service_fn(ok);

    let allowed = service.clone().oneshot(call("kubectl-get")).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert!(
        sink.events().is_empty(),
        "an allowed request is not audited"
    );

    let denied = service.oneshot(call("kubectl-delete-pod")).await.unwrap();
    let body = denied.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["id"], 7, "a JSON-RPC error: {answer}");
    assert!(answer["error"].is_object(), "{answer}");
    let events = sink.take();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(
        (event.layer, event.event, event.decision),
        ("rbac", "authorization", Decision::Deny)
    );
    assert_eq!(event.rule.as_deref(), Some("no-deletes"));
    assert_eq!(event.subject.as_deref(), Some("alice"));
    assert_eq!(event.tool.as_deref(), Some("kubectl-delete-pod"));
    assert_eq!(
        (event.method.as_deref(), event.path.as_deref()),
        (Some("POST"), Some("/mcp"))
    );
    let line = event.to_json_line();
    let parsed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(parsed["rule"], "no-deletes");
    for secret in ["sk-live", "hunter2", "Bearer"] {
        assert!(!line.contains(secret), "{secret} leaked into {line}");
    }
}
