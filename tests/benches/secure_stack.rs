//! CPU the security stack of `bench/load.sh`'s `agentgw-secure` target adds per request, in
//! process: JWT (a cached token), a CEL rule on a claim and the body, a request prompt guard
//! (Reject, two builtins) and response masking (four builtin PII recognizers), stacked with
//! `tower::ServiceBuilder` in the gateway's order around a service that answers load.sh's chat
//! completion at once. `bare` is the same exchange without the layers.
//!
//! The token is HS256 where load.sh uses RS256: after the first request both are served from
//! the verifier's cache, so the signature algorithm does not show in the steady state.
//!
//! `cargo bench -p agentgw-tests --bench secure_stack`

use std::convert::Infallible;

use agentgw_auth::JwtLayer;
use agentgw_guard::PromptGuardLayer;
use agentgw_rbac::CelPolicyLayer;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};

const REQUEST: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello, how are you today?"}]}"#;
const RESPONSE: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! I am doing well, thank you for asking. How can I help you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":13,"completion_tokens":18,"total_tokens":31},"system_fingerprint":"fp_bench"}"#;
const SECRET: &str = "a-shared-secret-of-enough-length-0123456789";

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Answers every request, whatever its body type, with load.sh's chat completion.
#[derive(Clone, Copy)]
struct Upstream;

impl<B> Service<Request<B>> for Upstream {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut res = Response::new(Full::new(Bytes::from_static(RESPONSE.as_bytes())));
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        std::future::ready(Ok(res))
    }
}

fn request(token: &str) -> Request<Full<Bytes>> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from_static(REQUEST.as_bytes())))
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let hmac = files.path().join("hmac");
    std::fs::write(&hmac, SECRET).unwrap();
    let (jwt, rbac, guard, request_guard, response_guard) = runtime.block_on(async {
        let jwt = JwtLayer::from_config(&yaml(&format!(
            "mode: Strict\nproviders:\n  - issuer: https://auth.bench.example\n    audiences: [agentgw-bench]\n    jwks: {{hmacSecret: {{file: {}}}}}\n",
            hmac.display()
        )))
        .unwrap();
        let rbac = CelPolicyLayer::from_config(&yaml(
            "policy:\n  matchExpressions:\n    - 'jwt.role == \"user\" && request.body.model in [\"gpt-4o-mini\", \"gpt-4o\"]'\n",
        ))
        .unwrap();
        let guard = PromptGuardLayer::from_config(&yaml(
            r#"
request:
  - regex:
      action: Reject
      matches:
        - {name: prompt-injection, pattern: "(?i)ignore.*previous.*instructions"}
      builtins: [CREDIT_CARD, SSN]
response:
  - regex:
      action: Mask
      builtins: [CREDIT_CARD, EMAIL, PHONE_NUMBER, SSN]
"#,
        ))
        .unwrap();
        let request_guard = PromptGuardLayer::from_config(&yaml(
            r#"
request:
  - regex:
      action: Reject
      matches:
        - {name: prompt-injection, pattern: "(?i)ignore.*previous.*instructions"}
      builtins: [CREDIT_CARD, SSN]
"#,
        ))
        .unwrap();
        let response_guard = PromptGuardLayer::from_config(&yaml(
            r#"
response:
  - regex:
      action: Mask
      builtins: [CREDIT_CARD, EMAIL, PHONE_NUMBER, SSN]
"#,
        ))
        .unwrap();
        (jwt, rbac, guard, request_guard, response_guard)
    });
    let claims = serde_json::json!({
        "iss": "https://auth.bench.example", "aud": "agentgw-bench", "sub": "bench",
        "role": "user", "exp": jsonwebtoken::get_current_timestamp() + 86_400,
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();

    let only_jwt = tower::ServiceBuilder::new()
        .layer(jwt.clone())
        .service(Upstream);
    let only_cel = tower::ServiceBuilder::new()
        .layer(jwt.clone())
        .layer(rbac.clone())
        .service(Upstream);
    let only_request_guard = tower::ServiceBuilder::new()
        .layer(request_guard)
        .service(Upstream);
    let only_response_guard = tower::ServiceBuilder::new()
        .layer(response_guard)
        .service(Upstream);
    let secure = tower::ServiceBuilder::new()
        .layer(jwt)
        .layer(rbac)
        .layer(guard)
        .service(Upstream);
    let bare = Upstream;

    let mut group = c.benchmark_group("secure_stack");
    group.bench_function("bare", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let res = bare.oneshot(request(&token)).await.unwrap();
                res.into_body().collect().await.unwrap().to_bytes()
            })
        });
    });
    macro_rules! one {
        ($name:literal, $svc:expr) => {
            group.bench_function($name, |b| {
                b.iter(|| {
                    runtime.block_on(async {
                        let res = $svc.clone().oneshot(request(&token)).await.unwrap();
                        assert_eq!(res.status(), 200);
                        res.into_body().collect().await.unwrap().to_bytes()
                    })
                });
            });
        };
    }
    one!("jwt", only_jwt);
    one!("jwt_cel", only_cel);
    one!("request_guard", only_request_guard);
    one!("response_masking", only_response_guard);
    group.bench_function("jwt_cel_guard_masking", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let res = secure.clone().oneshot(request(&token)).await.unwrap();
                assert_eq!(res.status(), 200);
                res.into_body().collect().await.unwrap().to_bytes()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
