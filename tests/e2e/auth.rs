//! Authentication through the gateway: JWT with an HMAC key, external authorization over HTTP
//! (a real auth server on loopback), and their claims and headers reaching RBAC and upstream.

use std::net::SocketAddr;

use agentgw_test_support as mock;
use axum::http::HeaderMap;
use http::StatusCode;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::{chat, config, loopback};

fn token(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn jwt_claims_reach_rbac_and_the_token_stays_at_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("jwt.key");
    let secret = "a-test-secret-of-reasonable-length-0123456789";
    std::fs::write(&secret_file, secret).unwrap();
    let openai = mock::openai(loopback()).await.unwrap();
    let mcp = mock::mcp(loopback(), Default::default()).await.unwrap();
    let yaml = format!(
        r#"
routes:
  - name: openai
    pathPrefix: /openai
    kind: llm
    backend: {{url: "${{OPENAI}}/v1"}}
    policies:
      traffic:
        jwtAuthentication:
          mode: Strict
          providers:
            - issuer: "https://auth.example/realms/ai"
              audiences: ["agentgateway"]
              jwks: {{hmacSecret: {{file: {}}}}}
      rbac:
        policy:
          matchExpressions:
            - 'jwt.role == "admin"'
            - 'jwt.role == "user" && request.path.startsWith("/openai") && request.body.model == "gpt-3.5-turbo"'
"#,
        secret_file.display()
    );
    let gw = agentgw_gateway::start(config(&yaml, &openai, &mcp), None)
        .await
        .unwrap();
    let url = format!("http://{}/openai/chat/completions", gw.addr());
    let claims = |role: &str| {
        json!({"iss": "https://auth.example/realms/ai", "aud": "agentgateway", "sub": "alice",
               "role": role, "exp": now() + 300})
    };
    let send = |bearer: Option<String>, model: &'static str| {
        let mut req = reqwest::Client::new()
            .post(url.clone())
            .header(mock::ECHO_HEADERS_HEADER, "1")
            .body(
                serde_json::to_vec(
                    &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
                )
                .unwrap(),
            );
        if let Some(bearer) = bearer {
            req = req.bearer_auth(bearer);
        }
        req.send()
    };

    // No token: 401 with a Bearer challenge.
    let res = send(None, "gpt-4").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    // A token signed with another key: 401.
    let forged = token(
        "some-other-secret-of-reasonable-length-0000",
        claims("admin"),
    );
    assert_eq!(
        send(Some(forged), "gpt-4").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Admin: allowed; the token is not forwarded upstream.
    let res = send(Some(token(secret, claims("admin"))), "gpt-4")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert!(
        json["received_headers"].get("authorization").is_none(),
        "{json}"
    );

    // User: only gpt-3.5-turbo (the seed's rule, reading the body).
    let user = token(secret, claims("user"));
    assert_eq!(
        send(Some(user.clone()), "gpt-3.5-turbo")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let res = send(Some(user), "gpt-4").await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["error"]["type"], "permission_error");
    gw.shutdown().await;
}

/// An HTTP authorization service: `x-user: alice` is allowed (and named upstream), anything
/// else gets a 403 with its own body.
async fn auth_server() -> SocketAddr {
    async fn check(headers: HeaderMap) -> axum::response::Response {
        use axum::response::IntoResponse;
        match headers.get("x-user").and_then(|v| v.to_str().ok()) {
            Some("alice") => ([("x-auth-user", "alice")], "").into_response(),
            _ => (
                StatusCode::FORBIDDEN,
                [("content-type", "text/plain")],
                "denied by policy X",
            )
                .into_response(),
        }
    }
    let app = axum::Router::new().fallback(check);
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn ext_auth_over_http_allows_denies_and_fails_closed() {
    let auth = auth_server().await;
    let openai = mock::openai(loopback()).await.unwrap();
    let mcp = mock::mcp(loopback(), Default::default()).await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = format!(
        r#"
routes:
  - name: openai
    pathPrefix: /openai
    kind: llm
    backend: {{url: "${{OPENAI}}/v1"}}
    policies:
      traffic:
        extAuth:
          backendRef: {{url: "http://{auth}"}}
          http: {{allowedHeaders: [x-user], allowedUpstreamHeaders: [x-auth-user]}}
          failureModeAllow: false
  - name: down
    pathPrefix: /down
    kind: llm
    backend: {{url: "${{OPENAI}}/v1"}}
    policies:
      traffic:
        extAuth:
          backendRef: {{url: "http://{closed}"}}
          http: {{}}
"#
    );
    let gw = agentgw_gateway::start(config(&yaml, &openai, &mcp), None)
        .await
        .unwrap();
    let post = |path: &str, user: &str| {
        reqwest::Client::new()
            .post(format!("http://{}{path}", gw.addr()))
            .header("x-user", user)
            .header(mock::ECHO_HEADERS_HEADER, "1")
            .body(chat("hi", false))
            .send()
    };
    let res = post("/openai/chat/completions", "alice").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["received_headers"]["x-auth-user"], "alice");

    // The service's denial keeps its status and reaches the LLM client as the error its SDK
    // reads (core's one denial policy), not as the service's raw text.
    let res = post("/openai/chat/completions", "mallory").await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["error"]["type"], "permission_error", "{json}");
    assert_eq!(json["error"]["code"], "denied", "{json}");

    // Service down: fail closed.
    let res = post("/down/chat/completions", "alice").await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(openai.request_count(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn backend_secret_replaces_the_client_credential_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("openai.key");
    std::fs::write(&key_file, "sk-provider-key-1").unwrap();
    let openai = mock::openai(loopback()).await.unwrap();
    let mcp = mock::mcp(loopback(), Default::default()).await.unwrap();
    let yaml = format!(
        r#"
routes:
  - name: openai
    pathPrefix: /openai
    kind: llm
    backend:
      url: "${{OPENAI}}/v1"
      authToken: {{kind: SecretRef, secretRef: {{file: {}}}, reloadInterval: 100ms}}
  - name: passthrough
    pathPrefix: /byok
    kind: llm
    backend:
      url: "${{OPENAI}}/v1"
      authToken: {{kind: Passthrough}}
"#,
        key_file.display()
    );
    let gw = agentgw_gateway::start(config(&yaml, &openai, &mcp), None)
        .await
        .unwrap();
    let received = |path: &'static str| {
        let url = format!("http://{}{path}", gw.addr());
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .bearer_auth("user-own-key")
                .header(mock::ECHO_HEADERS_HEADER, "1")
                .body(chat("hi", false))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let json: Value = res.json().await.unwrap();
            json["received_headers"]["authorization"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert_eq!(
        received("/openai/chat/completions").await,
        "Bearer sk-provider-key-1"
    );
    assert_eq!(
        received("/byok/chat/completions").await,
        "Bearer user-own-key"
    );

    // A rotated secret file takes effect without a restart.
    std::fs::write(&key_file, "sk-provider-key-2").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if received("/openai/chat/completions").await == "Bearer sk-provider-key-2" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rotated key never used"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    gw.shutdown().await;
}
