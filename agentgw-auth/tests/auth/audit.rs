//! Authentication failures are audited through the sink given to `audit_sink`, with the
//! reason the metrics use and never the credential.

use std::convert::Infallible;
use std::sync::Arc;

use agentgw_auth::api_key::{ApiKeyConfig, ApiKeyEntry, ApiKeyLayer};
use agentgw_auth::jwt::{JwksSource, JwtConfig, JwtLayer, JwtProvider};
use agentgw_core::audit::{AuditEvent, Decision, MemorySink};
use agentgw_core::identity::PeerIdentity;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};

use crate::common::*;

/// A service that answers 200 to a request with any body (the API key layer hands its inner
/// service a `RequestBody`, the JWT layer the body as it came).
#[derive(Clone)]
struct Ok200;

impl<B> tower::Service<Request<B>> for Ok200 {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        std::future::ready(Ok(Response::new(Full::default())))
    }
}

/// The status `layer` answers `req` with, in front of a service that answers 200.
async fn status<L, B>(layer: &L, req: Request<Full<Bytes>>) -> StatusCode
where
    L: Layer<Ok200>,
    L::Service: tower::Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
{
    layer.layer(Ok200).oneshot(req).await.unwrap().status()
}

fn request(header: Option<(&str, &str)>) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/v1/chat/completions?api_key=query-secret");
    if let Some((name, value)) = header {
        builder = builder.header(name, value);
    }
    builder.body(Full::default()).unwrap()
}

fn assert_authentication_denial(event: &AuditEvent, layer: &str, rule: &str) {
    assert_eq!(
        (event.layer, event.event, event.decision),
        (layer, "authentication", Decision::Deny)
    );
    assert_eq!(event.rule.as_deref(), Some(rule));
    assert_eq!(
        (event.method.as_deref(), event.path.as_deref()),
        (Some("POST"), Some("/v1/chat/completions"))
    );
}

#[tokio::test]
async fn api_key_failures_are_audited_without_the_key() {
    let sink = MemorySink::default();
    let config = ApiKeyConfig::default().key(ApiKeyEntry::new("ci-bot", "sk-live-123"));
    let layer = ApiKeyLayer::from_config(&config)
        .unwrap()
        .audit_sink(Arc::new(sink.clone()));

    let valid = request(Some(("x-api-key", "sk-live-123")));
    assert_eq!(status(&layer, valid).await, StatusCode::OK);
    assert!(sink.events().is_empty(), "an accepted key is not audited");

    let wrong = request(Some(("x-api-key", "sk-live-guessed-456")));
    assert_eq!(status(&layer, wrong).await, StatusCode::UNAUTHORIZED);
    let mut missing = request(None);
    // A verified client certificate names the caller even without a key.
    missing.extensions_mut().insert(PeerIdentity {
        common_name: Some("billing-service".to_owned()),
        ..PeerIdentity::default()
    });
    assert_eq!(status(&layer, missing).await, StatusCode::UNAUTHORIZED);

    let events = sink.take();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_authentication_denial(&events[0], "api_key", "unknown_key");
    assert_eq!(events[0].subject, None, "an unknown key names nobody");
    assert_authentication_denial(&events[1], "api_key", "missing_api_key");
    assert_eq!(events[1].subject.as_deref(), Some("billing-service"));
    for event in &events {
        let line = event.to_json_line();
        for secret in ["sk-live", "query-secret"] {
            assert!(!line.contains(secret), "{secret} leaked into {line}");
        }
    }
}

#[tokio::test]
async fn api_key_scope_denials_are_audited_with_the_key_name_and_their_reason() {
    let sink = MemorySink::default();
    let config = ApiKeyConfig::default()
        .key(ApiKeyEntry::new("team-a", "sk-team-a").routes(["anthropic"]))
        .key(ApiKeyEntry::new("team-b", "sk-team-b").models(["claude-*"]))
        .key(ApiKeyEntry::new("old", "sk-old").expires_at("2020-01-01T00:00:00Z"));
    let layer = ApiKeyLayer::from_config(&config)
        .unwrap()
        .route("openai")
        .audit_sink(Arc::new(sink.clone()));
    let chat = |key: &str, model: &str| {
        Request::post("/v1/chat/completions")
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(Full::from(format!(
                r#"{{"model":"{model}","messages":[]}}"#
            )))
            .unwrap()
    };
    assert_eq!(
        status(&layer, chat("sk-team-b", "claude-sonnet-4")).await,
        StatusCode::OK
    );
    assert!(sink.events().is_empty(), "an accepted key is not audited");
    assert_eq!(
        status(&layer, chat("sk-team-a", "gpt-4o")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&layer, chat("sk-team-b", "gpt-4o")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&layer, chat("sk-old", "gpt-4o")).await,
        StatusCode::UNAUTHORIZED
    );

    let events = sink.take();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_authentication_denial(&events[0], "api_key", "route_not_allowed");
    assert_eq!(events[0].subject.as_deref(), Some("team-a"));
    assert_authentication_denial(&events[1], "api_key", "model_not_allowed");
    assert_eq!(events[1].subject.as_deref(), Some("team-b"));
    assert_authentication_denial(&events[2], "api_key", "expired_key");
    for event in &events {
        let line = event.to_json_line();
        assert!(!line.contains("sk-"), "a key leaked into {line}");
    }
}

#[tokio::test]
async fn jwt_failures_are_audited_with_their_reason_and_without_the_token() {
    let signer = Signer::es256("k1");
    let provider = JwtProvider::new(ISSUER, JwksSource::inline(jwks(&[&signer]).to_string()))
        .audiences([AUDIENCE]);
    let sink = MemorySink::default();
    let layer = JwtLayer::from_config(&JwtConfig::default().provider(provider))
        .unwrap()
        .audit_sink(Arc::new(sink.clone()));

    let valid = format!("Bearer {}", signer.token(&claims("alice")));
    assert_eq!(
        status(&layer, request(Some(("authorization", &valid)))).await,
        StatusCode::OK
    );
    assert!(sink.events().is_empty(), "a valid token is not audited");

    let mut stale = claims("alice");
    stale["exp"] = (now() - 3600).into();
    stale["iat"] = (now() - 7200).into();
    let expired = signer.token(&stale);
    let bearer = format!("Bearer {expired}");
    assert_eq!(
        status(&layer, request(Some(("authorization", &bearer)))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&layer, request(None)).await,
        StatusCode::UNAUTHORIZED
    );

    let events = sink.take();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_authentication_denial(&events[0], "jwt", "expired");
    assert_eq!(
        events[0].subject, None,
        "claims of a token that failed verification are not trusted"
    );
    assert_authentication_denial(&events[1], "jwt", "missing_token");
    let signature = expired.rsplit('.').next().unwrap();
    for event in &events {
        let line = event.to_json_line();
        assert!(
            !line.contains(&expired) && !line.contains(signature) && !line.contains("query-secret"),
            "a credential leaked into {line}"
        );
    }
}
