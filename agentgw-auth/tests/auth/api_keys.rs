//! API keys over a real socket: metadata for policies, modes, locations, and revocation by
//! editing the key file.

use std::time::Duration;

use agentgw_auth::api_key::{ApiKeyConfig, ApiKeyEntry, ApiKeyError, ApiKeyLayer};
use agentgw_auth::{Mode, TokenLocation};
use agentgw_core::ConfigError as _;
use serde_json::{Value, json};

use crate::common::*;

async fn call(addr: std::net::SocketAddr, key: Option<&str>) -> reqwest::Response {
    let mut req = client().post(format!("http://{addr}/v1/chat/completions"));
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn metadata_reaches_upstream_and_the_key_does_not() {
    let layer = ApiKeyLayer::from_config(
        &ApiKeyConfig::default().key(
            ApiKeyEntry::new("ci-bot", "sk-live-123")
                .team("platform")
                .role("admin")
                .allowed_models(["gpt-4o"])
                .metadata("tier", "gold"),
        ),
    )
    .unwrap();
    let addr = serve(echo().layer(layer)).await;

    let res = call(addr, Some("sk-live-123")).await;
    assert_eq!(res.status(), 200);
    let seen: Value = res.json().await.unwrap();
    assert_eq!(
        seen["apiKey"],
        json!({"name": "ci-bot", "team": "platform", "role": "admin", "allowedModels": ["gpt-4o"], "tier": "gold"})
    );
    assert!(
        seen["xApiKey"].is_null(),
        "the key is removed before upstream"
    );

    for key in [Some("sk-live-124"), Some("SK-LIVE-123"), Some(""), None] {
        let res = call(addr, key).await;
        assert_eq!(res.status(), 401, "{key:?}");
        assert_eq!(res.headers()["www-authenticate"], "ApiKey");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
    }
}

#[tokio::test]
async fn revoking_a_key_in_the_file_takes_effect_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.yaml");
    let write = |keys: &[(&str, &str)]| {
        let entries: Vec<String> = keys
            .iter()
            .map(|(name, key)| format!("  - {{name: {name}, key: {key}, team: t-{name}}}"))
            .collect();
        std::fs::write(&path, format!("keys:\n{}\n", entries.join("\n"))).unwrap();
    };
    write(&[("alpha", "sk-alpha"), ("beta", "sk-beta")]);
    let interval = Duration::from_millis(5);
    let layer = ApiKeyLayer::from_config(
        &ApiKeyConfig::default()
            .file(&path)
            .reload_interval(interval),
    )
    .unwrap();
    let addr = serve(echo().layer(layer)).await;
    assert_eq!(call(addr, Some("sk-alpha")).await.status(), 200);
    assert_eq!(call(addr, Some("sk-beta")).await.status(), 200);

    write(&[("beta", "sk-beta"), ("gamma", "sk-gamma")]);
    let mut revoked = false;
    for _ in 0..1000 {
        if call(addr, Some("sk-alpha")).await.status() == 401 {
            revoked = true;
            break;
        }
        tokio::time::sleep(interval).await;
    }
    assert!(revoked, "the revocation was never picked up");
    assert_eq!(call(addr, Some("sk-beta")).await.status(), 200);
    let seen: Value = call(addr, Some("sk-gamma")).await.json().await.unwrap();
    assert_eq!(seen["apiKey"]["team"], "t-gamma", "added");

    // A broken edit keeps the last good keys, for as long as the file stays broken...
    std::fs::write(&path, "keys: [ {name: broken").unwrap();
    tokio::time::sleep(interval * 20).await;
    assert_eq!(call(addr, Some("sk-beta")).await.status(), 200);
    assert_eq!(call(addr, Some("sk-alpha")).await.status(), 401);
    // ...and the next good edit is picked up.
    write(&[("delta", "sk-delta")]);
    let mut added = false;
    for _ in 0..1000 {
        if call(addr, Some("sk-delta")).await.status() == 200 {
            added = true;
            break;
        }
        tokio::time::sleep(interval).await;
    }
    assert!(added, "the edit after the broken one was never picked up");
    assert_eq!(call(addr, Some("sk-beta")).await.status(), 401);
}

#[test]
fn a_key_file_needs_a_runtime_unless_reloading_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.yaml");
    std::fs::write(&path, "keys:\n  - {name: a, key: sk-a}\n").unwrap();
    // Outside a Tokio runtime the file cannot be watched...
    let err = ApiKeyLayer::from_config(&ApiKeyConfig::default().file(&path)).unwrap_err();
    assert!(
        matches!(err, agentgw_auth::Error::NoRuntime { .. }),
        "{err}"
    );
    assert_eq!(err.path(), "file");
    // ...but it can be read once, and keys in the configuration need no runtime at all.
    let fixed = ApiKeyLayer::from_config(
        &ApiKeyConfig::default()
            .file(&path)
            .reload_interval(Duration::ZERO),
    )
    .unwrap();
    assert!(fixed.check("sk-a").is_ok());
    let inline =
        ApiKeyLayer::from_config(&ApiKeyConfig::default().key(ApiKeyEntry::new("b", "sk-b")))
            .unwrap();
    assert!(inline.check("sk-b").is_ok());
}

#[tokio::test]
async fn bearer_location_and_modes() {
    let entry = || ApiKeyEntry::new("sdk", "sk-openai-style");
    let client = client();
    // (mode, key, status, key name upstream)
    let matrix = [
        (Mode::Strict, None, 401, None),
        (Mode::Strict, Some("sk-wrong"), 401, None),
        (Mode::Strict, Some("sk-openai-style"), 200, Some("sdk")),
        (Mode::Optional, None, 200, None),
        (Mode::Optional, Some("sk-wrong"), 401, None),
        (Mode::Optional, Some("sk-openai-style"), 200, Some("sdk")),
        (Mode::Permissive, None, 200, None),
        (Mode::Permissive, Some("sk-wrong"), 200, None),
        (Mode::Permissive, Some("sk-openai-style"), 200, Some("sdk")),
    ];
    for mode in [Mode::Strict, Mode::Optional, Mode::Permissive] {
        let layer = ApiKeyLayer::from_config(
            &ApiKeyConfig::default()
                .mode(mode)
                .location(TokenLocation::bearer())
                .key(entry()),
        )
        .unwrap();
        let addr = serve(echo().layer(layer)).await;
        for (_, key, status, name) in matrix.iter().filter(|row| row.0 == mode) {
            let mut req = client.get(format!("http://{addr}/v1/models"));
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status().as_u16(), *status, "{mode:?} {key:?}");
            if *status == 401 {
                let expected = if key.is_some() {
                    r#"Bearer error="invalid_token""#
                } else {
                    "Bearer"
                };
                assert_eq!(res.headers()["www-authenticate"], expected);
                continue;
            }
            let seen: Value = res.json().await.unwrap();
            assert_eq!(seen["apiKey"]["name"].as_str(), *name, "{mode:?} {key:?}");
            assert!(seen["authorization"].is_null());
        }
    }
}

#[tokio::test]
async fn expired_keys_are_rejected() {
    let layer = ApiKeyLayer::from_config(
        &ApiKeyConfig::default()
            .key(ApiKeyEntry::new("old", "sk-old").expires_at("2020-01-01T00:00:00Z"))
            .key(ApiKeyEntry::new("new", "sk-new").expires_at("2999-01-01T00:00:00Z")),
    )
    .unwrap();
    assert_eq!(layer.check("sk-old").unwrap_err(), ApiKeyError::Expired);
    assert_eq!(
        layer.check("sk-new").unwrap().get("expiresAt"),
        Some(&json!("2999-01-01T00:00:00Z"))
    );
    assert_eq!(layer.check("sk-none").unwrap_err(), ApiKeyError::UnknownKey);
}

#[test]
fn debug_and_errors_never_show_keys() {
    let layer = ApiKeyLayer::from_config(
        &ApiKeyConfig::default().key(ApiKeyEntry::new("bot", "sk-top-secret-key")),
    )
    .unwrap();
    let debug = format!("{layer:?}");
    assert!(!debug.contains("sk-top-secret-key"), "{debug}");

    let err = ApiKeyLayer::from_config(
        &ApiKeyConfig::default()
            .key(ApiKeyEntry::new("a", "sk-top-secret-key"))
            .key(ApiKeyEntry::new("b", "sk-top-secret-key")),
    )
    .unwrap_err();
    assert_eq!(err.path(), "keys[1].key");
    assert!(!err.to_string().contains("sk-top-secret-key"), "{err}");
}

/// An upstream that answers with the key it saw and the body it received.
fn body_echo() -> axum::Router {
    use agentgw_core::identity::ApiKeyInfo;
    axum::Router::new().fallback(axum::routing::any(
        |req: axum::extract::Request| async move {
            let key = req
                .extensions()
                .get::<ApiKeyInfo>()
                .map(|k| k.name().to_owned());
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap();
            axum::Json(json!({"apiKey": key, "body": String::from_utf8_lossy(&body)}))
        },
    ))
}

fn scoped_keys() -> ApiKeyConfig {
    ApiKeyConfig::default()
        .key(ApiKeyEntry::new("anywhere", "sk-anywhere"))
        .key(ApiKeyEntry::new("openai-only", "sk-openai").routes(["openai", "azure"]))
        .key(ApiKeyEntry::new("mcp-only", "sk-mcp").routes(["mcp"]))
        .key(ApiKeyEntry::new("mini", "sk-mini").models(["gpt-4o-mini*", "o3"]))
        .key(ApiKeyEntry::new("old", "sk-old").expires_at("2020-01-01T00:00:00Z"))
}

async fn post(addr: std::net::SocketAddr, key: &str, body: &str) -> (u16, Value) {
    let res = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn route_scope_admits_a_key_on_its_routes_only() {
    let layer = ApiKeyLayer::from_config(&scoped_keys())
        .unwrap()
        .route("openai");
    let addr = serve(body_echo().layer(layer)).await;
    let chat = r#"{"model":"gpt-4o","messages":[]}"#;

    for (key, name) in [("sk-anywhere", "anywhere"), ("sk-openai", "openai-only")] {
        let (status, seen) = post(addr, key, chat).await;
        assert_eq!((status, seen["apiKey"].as_str()), (200, Some(name)));
    }
    let (status, body) = post(addr, "sk-mcp", chat).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "api_key_route_not_allowed");
    assert_eq!(body["error"]["type"], "permission_error");
    assert!(!body.to_string().contains("sk-mcp"));

    // A layer that does not know its route cannot honour a route scope.
    let unnamed = ApiKeyLayer::from_config(&scoped_keys()).unwrap();
    let addr = serve(body_echo().layer(unnamed)).await;
    assert_eq!(post(addr, "sk-openai", chat).await.0, 403);
    assert_eq!(post(addr, "sk-anywhere", chat).await.0, 200);
}

#[tokio::test]
async fn model_scope_reads_the_body_and_forwards_it_unchanged() {
    let layer = ApiKeyLayer::from_config(&scoped_keys())
        .unwrap()
        .route("openai");
    let addr = serve(body_echo().layer(layer)).await;

    for allowed in [
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"model":"gpt-4o-mini-2024-07-18","messages":[]}"#,
        r#"{"model":"o3","input":"hi"}"#,
    ] {
        let (status, seen) = post(addr, "sk-mini", allowed).await;
        assert_eq!(status, 200, "{allowed}");
        assert_eq!(seen["apiKey"], "mini");
        assert_eq!(
            seen["body"], allowed,
            "the upstream gets the bytes the client sent"
        );
    }
    for denied in [
        r#"{"model":"gpt-4o","messages":[]}"#,
        r#"{"model":"o3-pro","messages":[]}"#,
        r#"{"model":"GPT-4O-MINI","messages":[]}"#,
        r#"{"messages":[]}"#,
        r#"{"model":["gpt-4o-mini"],"messages":[]}"#,
    ] {
        let (status, body) = post(addr, "sk-mini", denied).await;
        assert_eq!(status, 403, "{denied}");
        assert_eq!(
            body["error"]["code"], "api_key_model_not_allowed",
            "{denied}"
        );
    }
    // A key without `models` may ask for any model, and a request without a body names none.
    assert_eq!(
        post(addr, "sk-anywhere", r#"{"model":"gpt-4o"}"#).await.0,
        200
    );
    let res = client()
        .get(format!("http://{addr}/v1/models"))
        .header("x-api-key", "sk-mini")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A body that is not strict JSON is refused before any model could be read from it.
    let dup = r#"{"model":"gpt-4o-mini","model":"gpt-4o","messages":[]}"#;
    assert_eq!(post(addr, "sk-mini", dup).await.0, 400);
}

#[tokio::test]
async fn model_scope_reads_at_most_the_body_limit() {
    let layer = ApiKeyLayer::from_config(&scoped_keys())
        .unwrap()
        .body_limit(agentgw_core::BodyLimit::new(64));
    let addr = serve(body_echo().layer(layer)).await;
    let long = format!(r#"{{"model":"o3","input":"{}"}}"#, "x".repeat(100));
    assert_eq!(post(addr, "sk-mini", &long).await.0, 413);
    // Keys without `models` are never read, whatever the size.
    assert_eq!(post(addr, "sk-anywhere", &long).await.0, 200);
}

#[tokio::test]
async fn expired_and_out_of_scope_keys_get_their_own_reasons_over_mcp_too() {
    use agentgw_core::rejection::RouteKind;
    let layer = ApiKeyLayer::from_config(&scoped_keys())
        .unwrap()
        .route("mcp");
    let app = body_echo()
        .layer(layer)
        .layer(axum::Extension(RouteKind::Mcp));
    let addr = serve(app).await;
    let rpc = |key: &'static str| {
        client()
            .post(format!("http://{addr}/mcp"))
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#)
            .send()
    };
    let res = rpc("sk-mcp").await.unwrap();
    assert_eq!(res.status(), 200);
    // MCP messages select no model: a key with `models` is not held to them here.
    let res = rpc("sk-mini").await.unwrap();
    assert_eq!(res.status(), 200);
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["apiKey"], "mini");

    for (key, status, reason) in [
        ("sk-openai", 403, "api_key_route_not_allowed"),
        ("sk-old", 401, "expired_api_key"),
        ("sk-unknown", 401, "invalid_api_key"),
    ] {
        let res = rpc(key).await.unwrap();
        assert_eq!(res.status(), status, "{key}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["error"]["data"]["reason"], reason, "{key}");
        assert_eq!(body["error"]["data"]["layer"], "api_key");
    }
}

#[tokio::test]
async fn permissive_mode_forwards_out_of_scope_keys_anonymously() {
    let layer = ApiKeyLayer::from_config(&scoped_keys().mode(Mode::Permissive))
        .unwrap()
        .route("openai");
    let addr = serve(echo().layer(layer)).await;
    for key in ["sk-mcp", "sk-old"] {
        let res = call(addr, Some(key)).await;
        assert_eq!(res.status(), 200, "{key}");
        let seen: Value = res.json().await.unwrap();
        assert!(seen["apiKey"].is_null(), "{key}: {seen}");
        assert!(seen["xApiKey"].is_null(), "{key}: the key is still removed");
    }
    let (status, seen) = post(addr, "sk-mini", r#"{"model":"gpt-4o"}"#).await;
    assert_eq!(status, 200);
    assert!(seen["apiKey"].is_null(), "{seen}");
    let (_, seen) = post(addr, "sk-mini", r#"{"model":"o3"}"#).await;
    assert_eq!(seen["apiKey"]["name"], "mini");
}

#[tokio::test]
async fn a_key_is_refused_once_its_expiry_passes() {
    // Valid for one to two seconds from now (expiry has a resolution of one second).
    let expires = std::time::SystemTime::now() + Duration::from_secs(2);
    let expires = humantime::format_rfc3339_seconds(expires).to_string();
    let layer = ApiKeyLayer::from_config(
        &ApiKeyConfig::default().key(ApiKeyEntry::new("short", "sk-short").expires_at(expires)),
    )
    .unwrap();
    let addr = serve(echo().layer(layer)).await;
    assert_eq!(call(addr, Some("sk-short")).await.status(), 200);
    let mut refused = None;
    for _ in 0..200 {
        let res = call(addr, Some("sk-short")).await;
        if res.status() != 200 {
            refused = Some((res.status().as_u16(), res.json::<Value>().await.unwrap()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = refused.expect("the key never expired");
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "expired_api_key");
}

#[tokio::test]
async fn scopes_in_the_key_file_apply_and_change_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.yaml");
    std::fs::write(
        &path,
        "keys:\n  - {name: team-a, key: sk-team-a, routes: [openai], models: [\"gpt-4o*\"]}\n",
    )
    .unwrap();
    let interval = Duration::from_millis(5);
    let layer = ApiKeyLayer::from_config(
        &ApiKeyConfig::default()
            .file(&path)
            .reload_interval(interval),
    )
    .unwrap()
    .route("openai");
    let addr = serve(body_echo().layer(layer)).await;
    assert_eq!(
        post(addr, "sk-team-a", r#"{"model":"gpt-4o"}"#).await.0,
        200
    );
    assert_eq!(post(addr, "sk-team-a", r#"{"model":"o3"}"#).await.0, 403);

    // Narrowed to another route: refused here from the next reload on.
    std::fs::write(
        &path,
        "keys:\n  - {name: team-a, key: sk-team-a, routes: [anthropic]}\n",
    )
    .unwrap();
    let mut refused = false;
    for _ in 0..1000 {
        let (status, body) = post(addr, "sk-team-a", r#"{"model":"gpt-4o"}"#).await;
        if status == 403 {
            assert_eq!(body["error"]["code"], "api_key_route_not_allowed");
            refused = true;
            break;
        }
        tokio::time::sleep(interval).await;
    }
    assert!(refused, "the narrowed scope was never picked up");
}

#[test]
fn scope_errors_name_the_field() {
    let err = ApiKeyLayer::from_config(
        &ApiKeyConfig::default()
            .key(ApiKeyEntry::new("a", "sk-a"))
            .key(ApiKeyEntry::new("b", "sk-b").models(["gpt-4o", "gpt-*-mini"])),
    )
    .unwrap_err();
    assert_eq!(err.path(), "keys[1].models[1]");
    let err = ApiKeyLayer::from_config(
        &ApiKeyConfig::default().key(ApiKeyEntry::new("a", "sk-a").routes(Vec::<String>::new())),
    )
    .unwrap_err();
    assert_eq!(err.path(), "keys[0].routes");
}
