//! The bare gateway: routing, proxying, streaming, limits, errors, health, metrics, shutdown.

use std::time::Duration;

use agentgw_test_support as mock;
use http::StatusCode;
use serde_json::Value;

use crate::common::{Harness, chat, join_deltas, loopback, sse_data};

const ROUTES: &str = r#"
routes:
  - name: openai
    pathPrefix: /openai
    kind: llm
    backend: {url: "${OPENAI}/v1", timeout: 2s}
  - name: mcp
    pathPrefix: /mcp
    kind: mcp
    backend: {url: "${MCP}/mcp", timeout: 2s}
"#;

#[tokio::test]
async fn chat_completion_is_proxied() {
    let h = Harness::start(ROUTES).await;
    let res = reqwest::Client::new()
        .post(h.url("/openai/chat/completions"))
        .header("content-type", "application/json")
        .body(chat("Hello there", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "You said: Hello there"
    );
    assert_eq!(h.openai.request_count(), 1);
}

#[tokio::test]
async fn streamed_completion_arrives_intact_and_in_order() {
    let h = Harness::start(ROUTES).await;
    let text = "The quick brown fox jumps over the lazy dog, 0123456789 times.";
    let res = reqwest::Client::new()
        .post(h.url("/openai/chat/completions"))
        .header("content-type", "application/json")
        .body(chat(text, true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let data = sse_data(res).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    // The mock splits the answer into many small chunks: they must be joined in order.
    assert!(data.len() > 10, "expected many events, got {}", data.len());
    assert_eq!(join_deltas(&data), format!("You said: {text}"));
}

#[tokio::test]
async fn http2_clients_are_served() {
    let h = Harness::start(ROUTES).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = client
        .post(h.url("/openai/chat/completions"))
        .header("content-type", "application/json")
        .body(chat("over h2", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "You said: over h2"
    );
}

#[tokio::test]
async fn ten_mib_request_body_passes_through() {
    let h = Harness::start(ROUTES).await;
    let big = "a".repeat(10 * 1024 * 1024);
    let body = chat(&big, false);
    let len = body.len();
    let res = reqwest::Client::new()
        .post(h.url("/openai/chat/completions"))
        .header("content-type", "application/json")
        .header(mock::ECHO_HEADERS_HEADER, "1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["received_body_len"], len);
    let content = json["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.len(), "You said: ".len() + big.len());
}

#[tokio::test]
async fn headers_are_rewritten_for_the_upstream() {
    let h = Harness::start(ROUTES).await;
    let res = reqwest::Client::new()
        .post(h.url("/openai/chat/completions?trace=1"))
        .header("content-type", "application/json")
        .header(mock::ECHO_HEADERS_HEADER, "1")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("x-forwarded-for", "203.0.113.7")
        .header("authorization", "Bearer client-token")
        .body(chat("headers", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    let headers = &json["received_headers"];
    assert!(
        headers.get("x-hop").is_none(),
        "connection-named header forwarded: {headers}"
    );
    assert!(
        headers.get("keep-alive").is_none(),
        "keep-alive forwarded: {headers}"
    );
    assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(headers["host"], h.openai.addr().to_string());
    assert_eq!(headers["x-forwarded-host"], h.gateway.addr().to_string());
    assert_eq!(headers["authorization"], "Bearer client-token");
    assert_eq!(json["received_path"], "/v1/chat/completions?trace=1");
}

#[tokio::test]
async fn mcp_route_is_proxied() {
    let h = Harness::start(ROUTES).await;
    let res = reqwest::Client::new()
        .post(h.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["id"], 3);
    assert!(
        json["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(h.mcp.request_count(), 1);
}

#[tokio::test]
async fn unknown_path_is_404() {
    let h = Harness::start(ROUTES).await;
    let res = reqwest::get(h.url("/nowhere")).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Prefixes match on segment boundaries only.
    let res = reqwest::get(h.url("/openaiX/chat/completions"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn upstream_down_is_502_in_the_route_protocol() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = format!(
        r#"
routes:
  - name: dead-llm
    pathPrefix: /openai
    kind: llm
    backend: {{url: "http://{closed}/v1", timeout: 2s}}
  - name: dead-mcp
    pathPrefix: /mcp
    kind: mcp
    backend: {{url: "http://{closed}/mcp", timeout: 2s}}
"#
    );
    let h = Harness::start(&yaml).await;
    let res = reqwest::Client::new()
        .post(h.url("/openai/chat/completions"))
        .body(chat("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["error"]["type"], "api_error");
    assert_eq!(json["error"]["code"], "upstream_connect");

    let res = reqwest::Client::new()
        .post(h.url("/mcp"))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":"req-9","method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    // MCP: the error of that one request (HTTP 200), which MCP clients report as the call's
    // error rather than a transport failure; the 502 it stands for is in `error.data.status`.
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["jsonrpc"], "2.0");
    assert_eq!(json["id"], "req-9");
    assert_eq!(json["error"]["data"]["status"], 502, "{json}");

    // A notification has no response to carry an error: the HTTP status says it.
    let res = reqwest::Client::new()
        .post(h.url("/mcp"))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let yaml = ROUTES.replace("timeout: 2s", "timeout: 300ms");
    let h = Harness::start(&yaml).await;
    let res = reqwest::Client::new()
        .post(h.url("/openai/chat/completions"))
        .header(mock::DELAY_HEADER, "3000")
        .body(chat("slow", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["error"]["code"], "upstream_timeout");

    // Within the timeout the same route answers.
    let res = reqwest::Client::new()
        .post(h.url("/openai/chat/completions"))
        .header(mock::DELAY_HEADER, "10")
        .body(chat("fast", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let openai = mock::openai(loopback()).await.unwrap();
    let mcp = mock::mcp(loopback(), Default::default()).await.unwrap();
    let mut config = crate::common::config(ROUTES, &openai, &mcp);
    config.metrics = Some(loopback());
    config.health = Some(loopback());
    let gw = agentgw_gateway::start(config, None).await.unwrap();
    let health = gw.health_addr().unwrap();
    let metrics = gw.metrics_addr().unwrap();

    let res = reqwest::get(format!("http://{health}/healthz"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = reqwest::get(format!("http://{health}/readyz"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let res = reqwest::Client::new()
        .post(format!("http://{}/openai/chat/completions", gw.addr()))
        .body(chat("count me", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"agentgateway_requests_total{route="openai",status="200"}"#),
        "metrics output:\n{text}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let h = Harness::start(ROUTES).await;
    let url = h.url("/openai/chat/completions");
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header(mock::DELAY_HEADER, "400")
            .body(chat("finish me", false))
            .send()
            .await
    });
    // Let the request reach the upstream, then shut down while it waits there.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let addr = h.gateway.addr();
    h.gateway.shutdown().await;
    let res = in_flight
        .await
        .unwrap()
        .expect("in-flight request completes");
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "You said: finish me"
    );
    // New connections are refused after shutdown.
    assert!(
        reqwest::get(format!("http://{addr}/openai/x"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn reload_swaps_the_stack_and_keeps_it_on_bad_config() {
    let openai = mock::openai(loopback()).await.unwrap();
    let mcp = mock::mcp(loopback(), Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentgw.yaml");
    let yaml = ROUTES
        .replace("${OPENAI}", &openai.url())
        .replace("${MCP}", &mcp.url());
    let yaml = format!("listen: 127.0.0.1:0\n{yaml}");
    std::fs::write(&path, &yaml).unwrap();
    let config = agentgw_gateway::Config::load(&path).unwrap();
    let gw = agentgw_gateway::start(config, Some(path.clone()))
        .await
        .unwrap();
    let post = |p: &str| {
        reqwest::Client::new()
            .post(format!("http://{}{p}", gw.addr()))
            .body(chat("reload", false))
            .send()
    };
    assert_eq!(
        post("/openai/chat/completions").await.unwrap().status(),
        StatusCode::OK
    );

    // A broken file: reload fails with the field path and the old stack keeps serving.
    std::fs::write(
        &path,
        yaml.replace("pathPrefix: /openai", "pathPrefix: openai"),
    )
    .unwrap();
    let errors = gw.reload().unwrap_err();
    assert!(errors.has_path("routes[0].pathPrefix"), "{errors}");
    assert_eq!(
        post("/openai/chat/completions").await.unwrap().status(),
        StatusCode::OK
    );

    // A valid change takes effect.
    std::fs::write(
        &path,
        yaml.replace("pathPrefix: /openai", "pathPrefix: /llm"),
    )
    .unwrap();
    gw.reload().unwrap();
    assert_eq!(
        post("/llm/chat/completions").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        post("/openai/chat/completions").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn per_core_workers_serve_reload_and_drain() {
    let openai = mock::openai(loopback()).await.unwrap();
    let mcp = mock::mcp(loopback(), Default::default()).await.unwrap();
    let config = crate::common::config(ROUTES, &openai, &mcp);
    let workers = agentgw_gateway::Workers::PerCore(std::num::NonZeroUsize::new(2).unwrap());
    let gw = agentgw_gateway::start_with(config.clone(), None, workers)
        .await
        .unwrap();
    let addr = gw.addr();
    // A fresh connection per request, so the kernel spreads them over both workers' listeners.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let post = |path: &str, text: String, stream: bool| {
        client
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .body(chat(&text, stream))
            .send()
    };
    let answers = futures_util::future::join_all(
        (0..40).map(|i| post("/openai/chat/completions", format!("request {i}"), false)),
    )
    .await;
    for (i, res) in answers.into_iter().enumerate() {
        let json: Value = res.unwrap().json().await.unwrap();
        assert_eq!(
            json["choices"][0]["message"]["content"],
            format!("You said: request {i}")
        );
    }
    let streamed = post("/openai/chat/completions", "streamed".into(), true)
        .await
        .unwrap();
    assert_eq!(join_deltas(&sse_data(streamed).await), "You said: streamed");

    // A reload reaches every worker.
    let mut moved = config.clone();
    moved.routes[0].path_prefix = "/llm".into();
    gw.apply(&moved).unwrap();
    for _ in 0..10 {
        let res = post("/llm/chat/completions", "moved".into(), false)
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = post("/openai/chat/completions", "gone".into(), false)
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }

    // Shutdown lets an in-flight request finish, then stops both workers.
    let slow = tokio::spawn(
        client
            .post(format!("http://{addr}/llm/chat/completions"))
            .header(mock::DELAY_HEADER, "300")
            .body(chat("finish me", false))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.shutdown().await;
    let res = slow.await.unwrap().expect("in-flight request completes");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        reqwest::get(format!("http://{addr}/llm/x")).await.is_err(),
        "a worker still accepts after shutdown"
    );
}

/// A chat request for `model`.
fn chat_for(model: &str) -> String {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

#[tokio::test]
async fn a_backend_model_pins_the_model_every_layer_and_the_upstream_see() {
    // The CEL rule asks for the pinned model: it passes only because the pin runs first, and
    // the upstream (the mock answers with the model it was asked for) gets the same.
    let h = Harness::start(
        r#"
routes:
  - name: pinned
    pathPrefix: /pinned
    kind: llm
    backend: {url: "${OPENAI}/v1", timeout: 2s, model: gpt-4}
    policies:
      rbac: {policy: {matchExpressions: ['request.body.model == "gpt-4"']}}
  - name: listed
    pathPrefix: /listed
    kind: llm
    backend: {url: "${OPENAI}/v1", timeout: 2s, allowedModels: [gpt-4o, gpt-4o-mini]}
"#,
    )
    .await;
    let client = reqwest::Client::new();
    let send = |path: &str, model: &str| {
        client
            .post(h.url(path))
            .header("content-type", "application/json")
            .body(chat_for(model))
            .send()
    };

    let res = send("/pinned/chat/completions", "gpt-3.5-turbo")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["model"], "gpt-4");

    let res = send("/listed/chat/completions", "gpt-4o-mini")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["model"], "gpt-4o-mini");

    let before = h.openai.request_count();
    let res = send("/listed/chat/completions", "o1").await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["error"]["code"], "model_not_allowed", "{json}");
    assert_eq!(
        h.openai.request_count(),
        before,
        "a refused model never reaches the upstream"
    );
}
