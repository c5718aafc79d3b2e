//! The edge under hostile clients (issue #16): the `server` limits over real sockets through the
//! whole gateway, and one gateway per listen address.

use std::num::NonZeroUsize;
use std::time::Duration;

use agentgw_gateway::{StartError, Workers};
use agentgw_test_support as mock;
use agentgw_tls::ServerLimits;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{chat, config, loopback};

const ROUTES: &str = r#"
routes:
  - name: plain
    pathPrefix: /plain
    kind: llm
    backend: {url: "${OPENAI}/v1", timeout: 5s}
  - name: guarded
    pathPrefix: /guarded
    kind: llm
    backend: {url: "${OPENAI}/v1", timeout: 5s}
    policies:
      ai:
        promptGuard:
          request:
            - regex:
                action: Reject
                matches:
                  - pattern: "ignore.*previous.*instructions"
                    name: injection
"#;

/// Reads until the gateway closes the connection; a 10 s guard keeps a broken limit from
/// hanging the test.
async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("the gateway closes the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_clients_are_cut_at_their_deadlines_while_others_are_served() {
    let openai = mock::openai(loopback()).await.unwrap();
    let mcp = mock::mcp(loopback(), Default::default()).await.unwrap();
    let mut config = config(ROUTES, &openai, &mcp);
    config.server = ServerLimits::default()
        .header_read_timeout(Some(Duration::from_millis(300)))
        .request_body_timeout(Some(Duration::from_millis(300)));
    let gw = agentgw_gateway::start(config, None).await.unwrap();
    let addr = gw.addr();

    // Half a request head, then nothing: cut at the header deadline.
    let mut half_head = TcpStream::connect(addr).await.unwrap();
    half_head
        .write_all(b"POST /plain/chat/completions HTTP/1.1\r\nhost: gw\r\n")
        .await
        .unwrap();
    // Half a body, on a route that inspects it and on one that streams it to the upstream.
    let mut half_bodies = Vec::new();
    for path in ["/guarded/chat/completions", "/plain/chat/completions"] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n\
             content-length: 400\r\n\r\n{{\"model\":"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        half_bodies.push(tcp);
    }

    // Meanwhile a well-behaved client is served.
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/plain/chat/completions"))
        .header("content-type", "application/json")
        .body(chat("hello", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let answer = read_until_closed(&mut half_head).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    for mut tcp in half_bodies {
        let answer = read_until_closed(&mut tcp).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("body_read_timeout") || answer.contains("in time"),
            "{answer}"
        );
    }
    // Nothing of the slow requests reached the upstream.
    assert_eq!(openai.request_count(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_second_gateway_on_a_busy_address_fails_to_start() {
    let openai = mock::openai(loopback()).await.unwrap();
    let mcp = mock::mcp(loopback(), Default::default()).await.unwrap();
    let config = config(ROUTES, &openai, &mcp);
    let per_core = Workers::PerCore(NonZeroUsize::new(2).unwrap());
    let first = agentgw_gateway::start_with(config.clone(), None, per_core)
        .await
        .unwrap();

    // Whatever the worker layout of the second one.
    let mut taken = config.clone();
    taken.listen = first.addr();
    for workers in [per_core, Workers::Current] {
        let err = agentgw_gateway::start_with(taken.clone(), None, workers)
            .await
            .err()
            .expect("the address is taken");
        assert!(
            matches!(err, StartError::AddressInUse { addr } if addr == first.addr()),
            "{err}"
        );
        assert!(err.to_string().contains("another process"), "{err}");
    }
    // The first one still gets every connection.
    for _ in 0..10 {
        let res = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
            .post(format!("http://{}/plain/chat/completions", first.addr()))
            .header("content-type", "application/json")
            .body(chat("still mine", false))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    first.shutdown().await;

    // A listener of another program on the address: per-core workers do not join it either.
    let foreign = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    taken.listen = foreign.local_addr().unwrap();
    let err = agentgw_gateway::start_with(taken.clone(), None, per_core)
        .await
        .err()
        .expect("the address is taken");
    assert!(matches!(err, StartError::AddressInUse { .. }), "{err}");
    drop(foreign);
    // Free again: it starts.
    let gw = agentgw_gateway::start_with(taken, None, per_core)
        .await
        .unwrap();
    gw.shutdown().await;
}

/// A JWKS endpoint on loopback serving one HMAC key.
async fn jwks_server() -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({
                "keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Polls `url` until `accept` holds for its status and body (at most 10 s).
async fn wait_for(url: &str, accept: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let res = reqwest::get(url).await.unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        if accept(status, &body) || tokio::time::Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_route_with_a_dead_dependency_keeps_the_gateway_ready_unless_required() {
    let openai = mock::openai(loopback()).await.unwrap();
    let mcp = mock::mcp(loopback(), Default::default()).await.unwrap();
    // Ports nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let jwks = jwks_server().await;
    let yaml = |required: bool| {
        format!(
            r#"
routes:
  - name: jwt-dead
    pathPrefix: /a
    kind: llm
    backend: {{url: "${{OPENAI}}/v1"}}
    requiredForReadiness: {required}
    policies:
      traffic:
        jwtAuthentication:
          providers:
            - issuer: https://idp.example
              jwks: {{remote: {{url: "http://{dead_addr}/jwks", timeout: 1s}}}}
  - name: jwt-live
    pathPrefix: /b
    kind: llm
    backend: {{url: "${{OPENAI}}/v1"}}
    requiredForReadiness: true
    policies:
      traffic:
        jwtAuthentication:
          providers:
            - issuer: https://idp.example
              jwks: {{remote: {{url: "http://{jwks}/jwks"}}}}
  - name: authz-dead
    pathPrefix: /c
    kind: llm
    backend: {{url: "${{OPENAI}}/v1"}}
    policies:
      traffic:
        extAuth:
          backendRef: {{url: "http://{dead_addr}"}}
          http: {{}}
"#
        )
    };
    let mut config = config(&yaml(false), &openai, &mcp);
    config.health = Some(loopback());
    let gw = agentgw_gateway::start(config.clone(), None).await.unwrap();
    let health = gw.health_addr().unwrap();

    // Ready as soon as the required route's keys are in, although two routes' services are down.
    let (status, body) = wait_for(&format!("http://{health}/readyz"), |s, _| s == 200).await;
    assert_eq!(status, 200, "{body}");
    // Liveness stays terse.
    let (status, body) = wait_for(&format!("http://{health}/healthz"), |_, _| true).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // A request through the dead authorization service marks it down.
    let res = reqwest::Client::new()
        .post(format!("http://{}/c/chat/completions", gw.addr()))
        .body(chat("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (_, body) = wait_for(&format!("http://{health}/healthz?verbose"), |_, body| {
        body.contains(r#""state": "down""#) && !body.contains(r#""state": "pending""#)
    })
    .await;
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["ready"], true, "{report:#}");
    let state = |route: usize| report["routes"][route]["dependencies"][0]["state"].clone();
    assert_eq!(report["routes"][0]["name"], "jwt-dead");
    assert_eq!(report["routes"][0]["dependencies"][0]["kind"], "jwks");
    assert_eq!(state(0), "down", "{report:#}");
    assert_eq!(state(1), "up", "{report:#}");
    assert_eq!(report["routes"][2]["dependencies"][0]["kind"], "ext_authz");
    assert_eq!(
        report["routes"][2]["dependencies"][0]["target"],
        format!("http://{dead_addr}")
    );
    assert_eq!(state(2), "down", "{report:#}");
    assert_eq!(report["routes"][1]["requiredForReadiness"], true);
    gw.shutdown().await;

    // Marked required, the dead JWKS takes the gateway out of rotation, and says why.
    let mut config = crate::common::config(&yaml(true), &openai, &mcp);
    config.health = Some(loopback());
    let gw = agentgw_gateway::start(config, None).await.unwrap();
    let health = gw.health_addr().unwrap();
    let (status, body) = wait_for(&format!("http://{health}/readyz"), |_, body| {
        body.contains("is down")
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains(&format!(
            "route jwt-dead: jwks http://{dead_addr}/jwks is down"
        )),
        "{body}"
    );
    gw.shutdown().await;
}
