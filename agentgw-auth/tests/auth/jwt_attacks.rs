//! The attack matrix: every malicious or broken token with the exact reason it is rejected for,
//! checked through `JwtLayer::verify` and over a real socket (401, the generic challenge, no
//! detail in the body), next to the valid tokens that must pass.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use agentgw_auth::jwt::{JwksSource, JwtConfig, JwtError, JwtLayer, JwtProvider};
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt};

use crate::common::*;

struct Keys {
    rsa: Signer,
    es256: Signer,
    es384: Signer,
    ed: Signer,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    rsa: Signer::rsa("victim"),
    es256: Signer::es256("ec256"),
    es384: Signer::es384("ec384"),
    ed: Signer::ed25519("ed"),
});

fn layer_with(config: impl FnOnce(JwtConfig) -> JwtConfig) -> JwtLayer {
    let keys = &*KEYS;
    let set = jwks(&[&keys.rsa, &keys.es256, &keys.es384, &keys.ed]);
    let provider =
        JwtProvider::new(ISSUER, JwksSource::inline(set.to_string())).audiences([AUDIENCE]);
    JwtLayer::from_config(&config(JwtConfig::default().provider(provider))).unwrap()
}

fn layer() -> JwtLayer {
    layer_with(|c| c)
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

fn without(mut claims: Value, field: &str) -> Value {
    claims.as_object_mut().unwrap().remove(field);
    claims
}

fn replace_part(token: &str, index: usize, part: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = part;
    parts.join(".")
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

/// Valid claims plus a `nested` member `depth` arrays deep, as JSON text.
fn deeply_nested_claims(depth: usize) -> String {
    let mut text = claims("alice").to_string();
    text.pop();
    text.push_str(r#","nested":"#);
    text.push_str(&"[".repeat(depth));
    text.push_str(&"]".repeat(depth));
    text.push('}');
    text
}

/// A header with raw JSON text (for duplicate keys).
fn raw_header_token(header_json: &str, claims: &Value, signer: &Signer) -> String {
    let message = format!(
        "{}.{}",
        b64(header_json.as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signed = signer.sign(&json!({}), claims);
    // Reuse the signer only for a syntactically valid signature: it cannot match this header.
    format!("{message}.{}", signed.rsplit('.').next().unwrap())
}

/// Counts requests to the "attacker" URLs tokens point at; none may ever arrive.
async fn attacker_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new().fallback(get(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { axum::Json(json!({"keys": []})) }
    }));
    let addr = serve(router).await;
    (format!("http://{addr}"), hits)
}

fn attack_cases(attacker_url: &str) -> Vec<(&'static str, String, JwtError)> {
    let keys = &*KEYS;
    let good = claims("alice");
    let victim_token = keys.rsa.token(&good);
    let attacker = Signer::rsa_attacker("victim");
    let mut cases: Vec<(&'static str, String, JwtError)> = Vec::new();

    // alg none, in every spelling, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "kid": "victim", "typ": "JWT"});
        cases.push((
            "alg none, empty signature",
            raw_token(&header, &good, b""),
            JwtError::UnsupportedAlgorithm,
        ));
        cases.push((
            "alg none, victim signature kept",
            replace_part(&victim_token, 0, &b64(header.to_string().as_bytes())),
            JwtError::UnsupportedAlgorithm,
        ));
    }
    cases.push((
        "alg empty",
        raw_token(&json!({"alg": "", "kid": "victim"}), &good, b"x"),
        JwtError::UnsupportedAlgorithm,
    ));
    cases.push((
        "alg lowercase rs256",
        keys.rsa
            .sign(&json!({"alg": "rs256", "kid": "victim"}), &good),
        JwtError::UnsupportedAlgorithm,
    ));
    cases.push((
        "alg missing",
        raw_token(&json!({"kid": "victim"}), &good, b"x"),
        JwtError::Malformed,
    ));
    cases.push((
        "alg null",
        raw_token(&json!({"alg": null}), &good, b"x"),
        JwtError::Malformed,
    ));
    cases.push((
        "duplicate alg member",
        raw_header_token(
            r#"{"alg":"none","alg":"RS256","kid":"victim"}"#,
            &good,
            &keys.rsa,
        ),
        JwtError::Malformed,
    ));

    // HS256 signed with the RSA public key, in every form an attacker might try.
    let jwk_text = keys.rsa.jwk().to_string();
    let forms: [(&str, Vec<u8>); 3] = [
        ("PEM", keys.rsa.rsa_public_pem().into_bytes()),
        ("DER", keys.rsa.rsa_public_der()),
        ("JWK", jwk_text.into_bytes()),
    ];
    for (form, secret) in forms {
        let hs = Signer::hmac(&secret);
        let name: &'static str = match form {
            "PEM" => "HS256 with the RSA public key (PEM)",
            "DER" => "HS256 with the RSA public key (DER)",
            _ => "HS256 with the RSA public key (JWK)",
        };
        cases.push((
            name,
            hs.sign(&json!({"alg": "HS256", "kid": "victim"}), &good),
            JwtError::AlgorithmMismatch,
        ));
        cases.push((
            name,
            hs.sign(&json!({"alg": "HS256"}), &good),
            JwtError::AlgorithmMismatch,
        ));
    }

    // Signatures of zeros.
    cases.push((
        "ES256 signature of zeros",
        raw_token(&json!({"alg": "ES256", "kid": "ec256"}), &good, &[0; 64]),
        JwtError::InvalidSignature,
    ));
    cases.push((
        "ES384 signature of zeros",
        raw_token(&json!({"alg": "ES384", "kid": "ec384"}), &good, &[0; 96]),
        JwtError::InvalidSignature,
    ));
    cases.push((
        "RS256 signature of zeros",
        raw_token(&json!({"alg": "RS256", "kid": "victim"}), &good, &[0; 256]),
        JwtError::InvalidSignature,
    ));
    cases.push((
        "EdDSA signature of zeros",
        raw_token(&json!({"alg": "EdDSA", "kid": "ed"}), &good, &[0; 64]),
        JwtError::InvalidSignature,
    ));

    // Tampering.
    let admin = with(good.clone(), "role", json!("admin"));
    cases.push((
        "tampered payload",
        replace_part(&victim_token, 1, &b64(admin.to_string().as_bytes())),
        JwtError::InvalidSignature,
    ));
    let header = json!({"alg": "RS256", "kid": "victim", "typ": "at+jwt"});
    cases.push((
        "tampered header",
        replace_part(&victim_token, 0, &b64(header.to_string().as_bytes())),
        JwtError::InvalidSignature,
    ));
    let header = json!({"alg": "PS256", "kid": "victim", "typ": "JWT"});
    cases.push((
        "header alg switched RS256 -> PS256",
        replace_part(&victim_token, 0, &b64(header.to_string().as_bytes())),
        JwtError::InvalidSignature,
    ));
    cases.push((
        "signature truncated",
        victim_token[..victim_token.len() - 4].to_owned(),
        JwtError::InvalidSignature,
    ));

    // Keys the token brings or points at.
    cases.push((
        "attacker key with the victim's kid",
        attacker.token(&good),
        JwtError::InvalidSignature,
    ));
    let mut header = attacker.header();
    header["jwk"] = attacker.jwk();
    cases.push((
        "embedded jwk",
        attacker.sign(&header, &good),
        JwtError::InvalidSignature,
    ));
    let header = json!({"alg": "RS256", "jwk": attacker.jwk()});
    cases.push((
        "embedded jwk, no kid",
        attacker.sign(&header, &good),
        JwtError::InvalidSignature,
    ));
    let header =
        json!({"alg": "RS256", "kid": "attacker-kid", "jku": format!("{attacker_url}/jwks.json")});
    cases.push((
        "jku pointing at attacker",
        attacker.sign(&header, &good),
        JwtError::UnknownKey,
    ));
    let header =
        json!({"alg": "RS256", "kid": "victim", "jku": format!("{attacker_url}/jwks.json")});
    cases.push((
        "jku with victim kid",
        attacker.sign(&header, &good),
        JwtError::InvalidSignature,
    ));
    let header =
        json!({"alg": "RS256", "kid": "victim", "x5u": format!("{attacker_url}/cert.pem")});
    cases.push((
        "x5u pointing at attacker",
        attacker.sign(&header, &good),
        JwtError::InvalidSignature,
    ));
    let header = json!({"alg": "RS256", "kid": "victim", "x5c": [b64(&attacker.rsa_public_der())]});
    cases.push((
        "embedded x5c",
        attacker.sign(&header, &good),
        JwtError::InvalidSignature,
    ));

    // Time claims.
    let now = now();
    cases.push((
        "expired",
        keys.rsa
            .token(&with(good.clone(), "exp", json!(now - 3600))),
        JwtError::Expired,
    ));
    cases.push((
        "expired just past the leeway",
        keys.rsa.token(&with(good.clone(), "exp", json!(now - 61))),
        JwtError::Expired,
    ));
    cases.push((
        "nbf in the future",
        keys.rsa
            .token(&with(good.clone(), "nbf", json!(now + 3600))),
        JwtError::NotYetValid,
    ));
    cases.push((
        "iat in the future",
        keys.rsa
            .token(&with(good.clone(), "iat", json!(now + 3600))),
        JwtError::IssuedInFuture,
    ));
    cases.push((
        "missing exp",
        keys.rsa.token(&without(good.clone(), "exp")),
        JwtError::MissingExpiration,
    ));
    cases.push((
        "exp as a string",
        keys.rsa
            .token(&with(good.clone(), "exp", json!((now + 600).to_string()))),
        JwtError::InvalidClaim,
    ));
    cases.push((
        "nbf as a string",
        keys.rsa.token(&with(good.clone(), "nbf", json!("0"))),
        JwtError::InvalidClaim,
    ));
    cases.push((
        "negative exp",
        keys.rsa.token(&with(good.clone(), "exp", json!(-1))),
        JwtError::TimeClaimOutOfRange,
    ));
    cases.push((
        "exp 1e300, a token that never expires",
        keys.rsa.token(&with(good.clone(), "exp", json!(1e300))),
        JwtError::TimeClaimOutOfRange,
    ));
    cases.push((
        "exp 1e300 as written by hand",
        keys.rsa.sign_text(
            &keys.rsa.header(),
            &format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"alice","exp":1e300}}"#),
        ),
        JwtError::TimeClaimOutOfRange,
    ));
    cases.push((
        "exp after year 9999",
        keys.rsa
            .token(&with(good.clone(), "exp", json!(253_402_300_800_u64))),
        JwtError::TimeClaimOutOfRange,
    ));
    cases.push((
        "exp u64::MAX",
        keys.rsa.token(&with(good.clone(), "exp", json!(u64::MAX))),
        JwtError::TimeClaimOutOfRange,
    ));
    cases.push((
        "nbf 1e300",
        keys.rsa.token(&with(good.clone(), "nbf", json!(1e300))),
        JwtError::TimeClaimOutOfRange,
    ));
    cases.push((
        "negative nbf",
        keys.rsa.token(&with(good.clone(), "nbf", json!(-1e9))),
        JwtError::TimeClaimOutOfRange,
    ));
    cases.push((
        "iat after year 9999",
        keys.rsa.token(&with(good.clone(), "iat", json!(1e12))),
        JwtError::TimeClaimOutOfRange,
    ));

    // Issuer and audience.
    cases.push((
        "wrong iss",
        keys.rsa
            .token(&with(good.clone(), "iss", json!("https://evil.example"))),
        JwtError::UnknownIssuer,
    ));
    cases.push((
        "iss differing in case",
        keys.rsa
            .token(&with(good.clone(), "iss", json!(ISSUER.to_uppercase()))),
        JwtError::UnknownIssuer,
    ));
    cases.push((
        "missing iss",
        keys.rsa.token(&without(good.clone(), "iss")),
        JwtError::MissingIssuer,
    ));
    cases.push((
        "wrong aud",
        keys.rsa
            .token(&with(good.clone(), "aud", json!("other-service"))),
        JwtError::InvalidAudience,
    ));
    cases.push((
        "aud prefix only",
        keys.rsa
            .token(&with(good.clone(), "aud", json!("agentgateway-x"))),
        JwtError::InvalidAudience,
    ));
    cases.push((
        "aud list without ours",
        keys.rsa
            .token(&with(good.clone(), "aud", json!(["a", "b"]))),
        JwtError::InvalidAudience,
    ));
    cases.push((
        "missing aud",
        keys.rsa.token(&without(good.clone(), "aud")),
        JwtError::InvalidAudience,
    ));

    // Keys and headers.
    cases.push((
        "unknown kid",
        Signer::rsa("nobody").token(&good),
        JwtError::UnknownKey,
    ));
    let mut header = keys.rsa.header();
    header["crit"] = json!(["urn:example:unknown"]);
    header["urn:example:unknown"] = json!(true);
    cases.push((
        "crit with an unknown extension",
        keys.rsa.sign(&header, &good),
        JwtError::CriticalHeader,
    ));
    cases.push((
        "ES256 token naming the RSA kid",
        keys.es256
            .sign(&json!({"alg": "ES256", "kid": "victim"}), &good),
        JwtError::AlgorithmMismatch,
    ));
    cases.push((
        "ES384 token signed by the P-256 key",
        keys.es256
            .sign(&json!({"alg": "ES384", "kid": "ec256"}), &good),
        JwtError::AlgorithmMismatch,
    ));

    // Shape and size.
    cases.push((
        "1 MiB token",
        format!("{}.{}.{}", "a".repeat(1 << 19), "b".repeat(1 << 19), "c"),
        JwtError::TooLarge,
    ));
    cases.push((
        "deeply nested claims",
        keys.rsa
            .sign_text(&keys.rsa.header(), &deeply_nested_claims(2500)),
        JwtError::Malformed,
    ));
    cases.push((
        "two parts",
        victim_token.rsplit_once('.').unwrap().0.to_owned(),
        JwtError::Malformed,
    ));
    cases.push((
        "four parts",
        format!("{victim_token}.x"),
        JwtError::Malformed,
    ));
    cases.push((
        "padded base64",
        replace_part(
            &victim_token,
            1,
            &format!("{}=", victim_token.split('.').nth(1).unwrap()),
        ),
        JwtError::Malformed,
    ));
    cases.push((
        "claims not an object",
        keys.rsa.sign(&keys.rsa.header(), &json!(["iss", ISSUER])),
        JwtError::Malformed,
    ));
    cases.push((
        "header not JSON",
        format!("bm90IGpzb24.{}", victim_token.split_once('.').unwrap().1),
        JwtError::Malformed,
    ));
    cases.push((
        "empty header",
        format!(".{}", victim_token.split_once('.').unwrap().1),
        JwtError::Malformed,
    ));

    cases
}

#[tokio::test]
async fn attack_matrix_every_case_rejected_for_its_reason() {
    let (attacker_url, attacker_hits) = attacker_server().await;
    let layer = layer();
    let cases = attack_cases(&attacker_url);
    let mut failures = Vec::new();
    for (name, token, expected) in &cases {
        match layer.verify(token) {
            Err(error) if error == *expected => {}
            other => failures.push(format!("{name}: expected {expected:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        attacker_hits.load(Ordering::SeqCst),
        0,
        "a token made the gateway fetch a URL it named"
    );
}

#[tokio::test]
async fn attack_matrix_over_http_gives_nothing_away() {
    let (attacker_url, attacker_hits) = attacker_server().await;
    let addr = serve(echo().layer(layer())).await;
    let client = client();
    for (name, token, expected) in attack_cases(&attacker_url) {
        if expected == JwtError::TooLarge {
            continue; // hyper itself refuses a 1 MiB header; the layer's own check is above.
        }
        let res = client
            .post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{name}");
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#,
            "{name}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_token", "{name}");
        assert_eq!(body["error"]["type"], "authentication_error", "{name}");
        let text = body.to_string();
        assert!(
            !text.contains(expected.reason()),
            "{name}: body reveals the reason: {text}"
        );
    }
    assert_eq!(attacker_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn valid_tokens_pass() {
    let keys = &*KEYS;
    let layer = layer();
    let good = claims("alice");
    let now = now();
    let valid = [
        ("RS256", keys.rsa.token(&good)),
        (
            "PS256 with the same RSA key",
            Signer::rsa("victim").alg("PS256").token(&good),
        ),
        ("RS512", Signer::rsa("victim").alg("RS512").token(&good)),
        ("ES256", keys.es256.token(&good)),
        ("ES384", keys.es384.token(&good)),
        ("EdDSA", keys.ed.token(&good)),
        ("no kid, one RSA key", Signer::rsa("").token(&good)),
        (
            "expired within the leeway",
            keys.rsa.token(&with(good.clone(), "exp", json!(now - 30))),
        ),
        (
            "nbf within the leeway",
            keys.rsa.token(&with(good.clone(), "nbf", json!(now + 30))),
        ),
        (
            "aud as a list",
            keys.rsa
                .token(&with(good.clone(), "aud", json!(["x", AUDIENCE]))),
        ),
        (
            "fractional exp",
            keys.rsa
                .token(&with(good.clone(), "exp", json!(now as f64 + 600.5))),
        ),
        (
            "exp in the last second of year 9999",
            keys.rsa
                .token(&with(good.clone(), "exp", json!(253_402_300_799_u64))),
        ),
        (
            "moderately nested claims",
            keys.rsa.token(&with(good.clone(), "nested", nested(20))),
        ),
        (
            "unknown header members are ignored",
            keys.rsa
                .sign(&with(keys.rsa.header(), "x-custom", json!(1)), &good),
        ),
    ];
    for (name, token) in valid {
        let claims = layer
            .verify(&token)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(claims.subject(), Some("alice"), "{name}");
    }
}

#[tokio::test]
async fn nesting_beyond_any_limit_is_rejected_without_overflowing() {
    let layer = layer_with(|c| c.max_token_bytes(4 << 20));
    let token = KEYS
        .rsa
        .sign_text(&KEYS.rsa.header(), &deeply_nested_claims(500_000));
    assert_eq!(layer.verify(&token).unwrap_err(), JwtError::Malformed);
    // The same characters inside a string are just data.
    let deep_string = "[".repeat(500_000);
    let token = KEYS
        .rsa
        .token(&with(claims("alice"), "nested", json!(deep_string)));
    assert!(layer.verify(&token).is_ok());
}

#[tokio::test]
async fn missing_expiration_can_be_allowed() {
    let layer = layer_with(|c| c.require_expiration(false));
    let token = KEYS.rsa.token(&without(claims("bob"), "exp"));
    assert_eq!(layer.verify(&token).unwrap().subject(), Some("bob"));
    // A present exp is still checked.
    let expired = KEYS.rsa.token(&with(claims("bob"), "exp", json!(1)));
    assert_eq!(layer.verify(&expired).unwrap_err(), JwtError::Expired);
}

#[tokio::test]
async fn ambiguous_key_without_kid() {
    let a = Signer::es256("");
    let b = Signer::es256("");
    let provider = JwtProvider::new(ISSUER, JwksSource::inline(jwks(&[&a, &b]).to_string()));
    let layer = JwtLayer::from_config(&JwtConfig::default().provider(provider)).unwrap();
    assert_eq!(
        layer.verify(&a.token(&claims("x"))).unwrap_err(),
        JwtError::AmbiguousKey
    );
}

#[tokio::test]
async fn hmac_only_from_an_explicit_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = b"0123456789abcdef0123456789abcdef";
    let path = dir.path().join("secret");
    std::fs::write(&path, secret).unwrap();
    let hs = Signer::hmac(secret);
    // As a JWKS `oct` key: never trusted.
    let from_jwks = JwtProvider::new(
        ISSUER,
        JwksSource::inline(jwks(&[&hs, &KEYS.rsa]).to_string()),
    );
    let layer = JwtLayer::from_config(&JwtConfig::default().provider(from_jwks)).unwrap();
    assert_eq!(
        layer.verify(&hs.token(&claims("h"))).unwrap_err(),
        JwtError::AlgorithmMismatch
    );
    // As `hmacSecret`: accepted.
    let explicit = JwtProvider::new(
        ISSUER,
        JwksSource::hmac_secret(agentgw_auth::SecretRef::File(path)),
    );
    let layer = JwtLayer::from_config(&JwtConfig::default().provider(explicit)).unwrap();
    assert_eq!(
        layer.verify(&hs.token(&claims("h"))).unwrap().subject(),
        Some("h")
    );
    assert_eq!(
        layer.verify(&KEYS.rsa.token(&claims("h"))).unwrap_err(),
        JwtError::AlgorithmMismatch
    );
}

/// The layer of [`layer`] whose provider accepts tokens living at most one hour.
fn layer_with_max_lifetime() -> JwtLayer {
    layer_with(|config| {
        let provider = config.providers[0]
            .clone()
            .max_token_lifetime(std::time::Duration::from_secs(3600));
        config.providers([provider])
    })
}

#[tokio::test]
async fn lifetime_over_the_maximum_is_refused_over_http() {
    let addr = serve(echo().layer(layer_with_max_lifetime())).await;
    let client = client();
    let now = now();
    let send = |token: String| {
        client
            .post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth(token)
            .send()
    };
    let day = with(claims("alice"), "exp", json!(now + 86_400));
    let res = send(KEYS.rsa.token(&day)).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    let body = res.text().await.unwrap();
    assert!(!body.contains("lifetime"), "the reason leaks: {body}");

    let forever = with(claims("alice"), "exp", json!(1e300));
    assert_eq!(send(KEYS.rsa.token(&forever)).await.unwrap().status(), 401);

    let res = send(KEYS.rsa.token(&claims("alice"))).await.unwrap();
    assert_eq!(res.status(), 200, "a ten-minute token is within the hour");
    let echoed: Value = res.json().await.unwrap();
    assert_eq!(echoed["sub"], "alice");

    let hour_without_iat = without(with(claims("bob"), "exp", json!(now + 3600)), "iat");
    let res = send(KEYS.rsa.token(&hour_without_iat)).await.unwrap();
    assert_eq!(res.status(), 200, "without iat, measured from now");
    let day_without_iat = without(day, "iat");
    let res = send(KEYS.rsa.token(&day_without_iat)).await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn rejection_reason_is_counted() {
    let expired = KEYS.rsa.token(&with(claims("a"), "exp", json!(1)));
    assert_eq!(counted_reason(layer(), &expired).await, "expired");
    let forever = KEYS.rsa.token(&with(claims("a"), "exp", json!(1e300)));
    assert_eq!(
        counted_reason(layer(), &forever).await,
        "time_claim_out_of_range"
    );
    let day = KEYS
        .rsa
        .token(&with(claims("a"), "exp", json!(now() + 86_400)));
    assert_eq!(
        counted_reason(layer_with_max_lifetime(), &day).await,
        "lifetime_too_long"
    );
}

/// Sends `token` through `layer` and returns the `reason` label of the one rejection counted.
async fn counted_reason(layer: JwtLayer, token: &str) -> String {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut service = layer.layer(echo());
    let req = http::Request::get("/v1/models")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    ServiceExt::<http::Request<axum::body::Body>>::ready(&mut service)
        .await
        .unwrap();
    // The decision (and the metric) happens in `call`.
    let future = metrics::with_local_recorder(&recorder, || service.call(req));
    assert_eq!(future.await.unwrap().status(), 401);

    let counted: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "agentgateway_rejected_requests_total")
        .map(|(key, _, _, value)| {
            let labels: Vec<_> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (labels, value)
        })
        .collect();
    let [(labels, DebugValue::Counter(1))] = &counted[..] else {
        panic!("one rejection expected: {counted:?}")
    };
    let [(layer_key, layer), (reason_key, reason)] = &labels[..] else {
        panic!("labels layer and reason expected: {labels:?}")
    };
    assert_eq!(
        (&**layer_key, &**layer, &**reason_key),
        ("layer", "jwt", "reason")
    );
    reason.clone()
}

#[tokio::test]
async fn cached_token_still_expires_and_tracks_local_key_file() {
    // A local JWKS file: replacing the key invalidates cached verifications.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let old = Signer::rsa("k1");
    std::fs::write(&path, jwks(&[&old]).to_string()).unwrap();
    let provider = JwtProvider::new(ISSUER, JwksSource::file(&path));
    let layer = JwtLayer::from_config(&JwtConfig::default().provider(provider)).unwrap();
    let token = old.token(&claims("c"));
    assert!(layer.verify(&token).is_ok());
    assert!(layer.verify(&token).is_ok(), "cached");
    let new = Signer::rsa_spare("k2");
    std::fs::write(&path, jwks(&[&new]).to_string()).unwrap();
    // The file is checked every second and read once it held still: the new key set replaces
    // the old one, and the cached verification with it.
    let mut rotated = false;
    for _ in 0..100 {
        if matches!(layer.verify(&token), Err(JwtError::UnknownKey)) {
            rotated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(rotated, "the new key file was never picked up");
    assert!(layer.verify(&new.token(&claims("c"))).is_ok());
}

#[tokio::test]
async fn pem_public_key_as_local_source() {
    let signer = Signer::rsa("");
    let provider = JwtProvider::new(ISSUER, JwksSource::inline(signer.rsa_public_pem()));
    let layer = JwtLayer::from_config(&JwtConfig::default().provider(provider)).unwrap();
    assert_eq!(
        layer
            .verify(&signer.token(&claims("pem")))
            .unwrap()
            .subject(),
        Some("pem")
    );
    assert_eq!(
        layer
            .verify(&Signer::rsa_attacker("").token(&claims("pem")))
            .unwrap_err(),
        JwtError::InvalidSignature
    );
}
