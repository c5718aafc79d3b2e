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
