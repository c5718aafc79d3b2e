//! Remote JWKS against a real JWKS server on 127.0.0.1: start-up and readiness, rotation,
//! on-demand refetch (coalesced and rate-limited), outages and cold starts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentgw_auth::jwt::{JwksSource, JwtConfig, JwtError, JwtLayer, JwtProvider, RemoteJwks};
use agentgw_core::ConfigError as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::Value;

use crate::common::*;

struct ServerState {
    jwks: Value,
    status: StatusCode,
    delay: Duration,
}

#[derive(Clone)]
struct JwksServer {
    state: Arc<Mutex<ServerState>>,
    hits: Arc<AtomicUsize>,
    url: String,
}

impl JwksServer {
    async fn start(jwks: Value) -> Self {
        let state = Arc::new(Mutex::new(ServerState {
            jwks,
            status: StatusCode::OK,
            delay: Duration::ZERO,
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (state.clone(), hits.clone());
        let router = Router::new().route(
            "/protocol/openid-connect/certs",
            get(move || {
                let (state, hits) = (s.clone(), h.clone());
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let (jwks, status, delay) = {
                        let state = state.lock().unwrap();
                        (state.jwks.clone(), state.status, state.delay)
                    };
                    tokio::time::sleep(delay).await;
                    (status, axum::Json(jwks))
                }
            }),
        );
        let addr = serve(router).await;
        JwksServer {
            state,
            hits,
            url: format!("http://{addr}/protocol/openid-connect/certs"),
        }
    }

    fn set_keys(&self, jwks: Value) {
        self.state.lock().unwrap().jwks = jwks;
    }

    fn set_status(&self, status: StatusCode) {
        self.state.lock().unwrap().status = status;
    }

    fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn layer(&self, cache_duration: Duration) -> JwtLayer {
        let remote = RemoteJwks::default()
            .url(&self.url)
            .cache_duration(cache_duration);
        let provider = JwtProvider::new(ISSUER, JwksSource::Remote(remote)).audiences([AUDIENCE]);
        JwtLayer::from_config(&JwtConfig::default().provider(provider)).unwrap()
    }
}

async fn ready(layer: &JwtLayer) {
    tokio::time::timeout(Duration::from_secs(10), layer.ready())
        .await
        .expect("keys were not fetched in time");
    assert!(layer.is_ready());
}

async fn status(addr: std::net::SocketAddr, token: &str) -> u16 {
    client()
        .get(format!("http://{addr}/v1/models"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn keys_are_fetched_at_start_and_readiness_follows() {
    let a = Signer::rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let layer = server.layer(Duration::from_secs(3600));
    ready(&layer).await;
    assert_eq!(server.hits(), 1);
    let addr = serve(echo().layer(layer)).await;
    assert_eq!(status(addr, &a.token(&claims("alice"))).await, 200);
}

#[tokio::test]
async fn the_seed_config_with_a_url_works() {
    let a = Signer::es256("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let yaml = format!(
        "mode: Strict\nproviders:\n  - issuer: \"{ISSUER}\"\n    audiences: [\"{AUDIENCE}\"]\n    jwks:\n      remote:\n        url: \"{}\"\n        cacheDuration: \"5m\"\n",
        server.url
    );
    let config: JwtConfig = serde_saphyr::from_str(&yaml).unwrap();
    let layer = JwtLayer::from_config(&config).unwrap();
    ready(&layer).await;
    assert!(layer.verify(&a.token(&claims("x"))).is_ok());
}

#[tokio::test]
async fn rotation_new_kid_is_fetched_on_demand() {
    let a = Signer::rsa("a");
    let b = Signer::es256("b");
    let server = JwksServer::start(jwks(&[&a])).await;
    let layer = server.layer(Duration::from_secs(3600));
    ready(&layer).await;
    let addr = serve(echo().layer(layer)).await;
    assert_eq!(status(addr, &a.token(&claims("alice"))).await, 200);

    // The IdP starts signing with a new key: tokens naming it are accepted without a restart,
    // long before the next scheduled refresh.
    server.set_keys(jwks(&[&a, &b]));
    let before = server.hits();
    assert_eq!(status(addr, &b.token(&claims("bob"))).await, 200);
    assert_eq!(
        server.hits(),
        before + 1,
        "the unknown kid triggered one fetch"
    );
    assert_eq!(status(addr, &a.token(&claims("alice2"))).await, 200);
    assert_eq!(status(addr, &b.token(&claims("bob2"))).await, 200);
    assert_eq!(server.hits(), before + 1, "known kids fetch nothing");
}

#[tokio::test]
async fn removed_key_stops_verifying_after_refresh() {
    let a = Signer::rsa("a");
    let b = Signer::rsa_spare("b");
    let server = JwksServer::start(jwks(&[&a, &b])).await;
    let layer = server.layer(Duration::from_millis(200));
    ready(&layer).await;
    let token = a.token(&claims("alice"));
    assert!(layer.verify(&token).is_ok());
    assert!(layer.verify(&token).is_ok(), "now cached");

    server.set_keys(jwks(&[&b]));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        layer.verify(&token).unwrap_err(),
        JwtError::UnknownKey,
        "the cache follows the key set"
    );
    assert!(layer.verify(&b.token(&claims("bob"))).is_ok());
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    let a = Signer::es256("a");
    let b = Signer::es256("b");
    let server = JwksServer::start(jwks(&[&a])).await;
    let layer = server.layer(Duration::from_secs(3600));
    ready(&layer).await;
    let addr = serve(echo().layer(layer)).await;

    server.set_keys(jwks(&[&a, &b]));
    server.set_delay(Duration::from_millis(300));
    let before = server.hits();
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let token = b.token(&claims(&format!("user{i}")));
            tokio::spawn(async move { status(addr, &token).await })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(server.hits(), before + 1, "twenty misses, one fetch");
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited() {
    let a = Signer::es256("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let layer = server.layer(Duration::from_secs(3600));
    ready(&layer).await;
    let addr = serve(echo().layer(layer)).await;
    let before = server.hits();
    for i in 0..5 {
        let forged = Signer::es256(&format!("forged-{i}")).token(&claims("mallory"));
        assert_eq!(status(addr, &forged).await, 401);
    }
    assert_eq!(
        server.hits(),
        before + 1,
        "one fetch per minRefetchInterval (10 s)"
    );
}

#[tokio::test]
async fn endpoint_down_stale_keys_keep_serving() {
    let a = Signer::es256("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let layer = server.layer(Duration::from_millis(100));
    ready(&layer).await;
    server.set_status(StatusCode::SERVICE_UNAVAILABLE);
    let before = server.hits();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(server.hits() > before, "refreshes kept trying");
    assert!(layer.is_ready());
    // A token never seen before (not cached) still verifies with the last good keys.
    assert!(layer.verify(&a.token(&claims("fresh"))).is_ok());

    // An invalid document is a failure too, not an empty key set.
    server.set_status(StatusCode::OK);
    server.set_keys(serde_json::json!({"not": "a jwks"}));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(layer.verify(&a.token(&claims("fresher"))).is_ok());
}

#[tokio::test]
async fn cold_start_without_keys_fails_closed_then_recovers() {
    let a = Signer::es256("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    server.set_status(StatusCode::SERVICE_UNAVAILABLE);
    let layer = server.layer(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!layer.is_ready());
    let token = a.token(&claims("alice"));
    assert_eq!(layer.verify(&token).unwrap_err(), JwtError::KeysUnavailable);
    let addr = serve(echo().layer(layer.clone())).await;
    assert_eq!(status(addr, &token).await, 401);

    server.set_status(StatusCode::OK);
    ready(&layer).await;
    assert_eq!(status(addr, &token).await, 200);
}

#[tokio::test]
async fn dropping_the_layer_stops_the_refresh_task() {
    let a = Signer::es256("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let layer = server.layer(Duration::from_millis(50));
    ready(&layer).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.hits() > 2, "refreshing while in use");
    drop(layer);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = server.hits();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        server.hits(),
        after_drop,
        "no fetches after the layer is gone"
    );
}

#[tokio::test]
async fn building_outside_a_runtime_is_an_error() {
    let result = std::thread::spawn(|| {
        let remote = RemoteJwks::default().url("http://127.0.0.1:9/jwks");
        let provider = JwtProvider::new(ISSUER, JwksSource::Remote(remote));
        JwtLayer::from_config(&JwtConfig::default().provider(provider)).map(|_| ())
    })
    .join()
    .unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.path(), "providers[0].jwks.remote");
}
