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
use tower::{Layer, ServiceExt, service_fn};

use crate::common::*;

type Reply = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;
type Inner = tower::util::ServiceFn<fn(Request<Full<Bytes>>) -> Reply>;

/// The status `layer` answers `req` with, in front of a service that answers 200.
async fn status<L, B>(layer: &L, req: Request<Full<Bytes>>) -> StatusCode
where
    L: Layer<Inner>,
    L::Service: tower::Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
{
    fn ok(_: Request<Full<Bytes>>) -> Reply {
        std::future::ready(Ok(Response::new(Full::default())))
    }
    let inner: Inner = service_fn(ok as fn(Request<Full<Bytes>>) -> Reply);
    layer.layer(inner).oneshot(req).await.unwrap().status()
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
