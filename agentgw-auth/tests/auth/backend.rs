//! Backend credentials end to end: the client's gateway key is removed, the provider key from a
//! mounted secret file is injected, and a rotation of that file takes effect without restart.

use std::time::Duration;

use agentgw_auth::SecretRef;
use agentgw_auth::api_key::{ApiKeyConfig, ApiKeyEntry, ApiKeyLayer};
use agentgw_auth::backend::{AuthToken, BackendAuthLayer};
use agentgw_core::ConfigError as _;
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn gateway_key_out_provider_key_in_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("OPENAI_API_KEY");
    std::fs::write(&secret, "sk-provider-1\n").unwrap();
    let token: AuthToken = serde_saphyr::from_str(&format!(
        "kind: SecretRef\nsecretRef: {{file: {}}}\nreloadInterval: 5ms",
        secret.display()
    ))
    .unwrap();
    let app = echo()
        .layer(BackendAuthLayer::from_config(&token).unwrap())
        .layer(
            ApiKeyLayer::from_config(
                &ApiKeyConfig::default().key(ApiKeyEntry::new("team-a", "gw-key")),
            )
            .unwrap(),
        );
    let addr = serve(app).await;
    let call = || async {
        client()
            .post(format!("http://{addr}/v1/chat/completions"))
            .header("x-api-key", "gw-key")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let seen = call().await;
    assert_eq!(seen["authorization"], "Bearer sk-provider-1");
    assert!(
        seen["xApiKey"].is_null(),
        "the gateway key never reaches the provider"
    );

    // External Secrets rewrites the mounted file.
    std::fs::write(&secret, "sk-provider-2\n").unwrap();
    for _ in 0..1000 {
        if call().await["authorization"] == "Bearer sk-provider-2" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the rotated provider key was never injected");
}

#[tokio::test]
async fn passthrough_forwards_the_callers_token() {
    let app = echo().layer(BackendAuthLayer::from_config(&AuthToken::Passthrough {}).unwrap());
    let addr = serve(app).await;
    let seen: Value = client()
        .get(format!("http://{addr}/openai"))
        .bearer_auth("user-openai-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["authorization"], "Bearer user-openai-key");
}

#[test]
fn env_secret_and_its_errors() {
    // PATH is set in every test environment; its value must not leak into Debug.
    let path_value = std::env::var("PATH").unwrap();
    let layer = BackendAuthLayer::secret(
        &SecretRef::Env("PATH".into()),
        agentgw_auth::CredentialHeader::x_api_key(),
    )
    .unwrap();
    let debug = format!("{layer:?}");
    assert!(!debug.contains(&path_value), "{debug}");
    assert!(debug.contains("env:PATH"), "{debug}");

    let err = BackendAuthLayer::secret(
        &SecretRef::Env("AGENTGW_SURELY_UNSET_VARIABLE".into()),
        agentgw_auth::CredentialHeader::bearer(),
    )
    .unwrap_err();
    assert_eq!(err.path(), "secretRef.env");
}
