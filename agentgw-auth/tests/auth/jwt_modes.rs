//! Strict, Optional and Permissive, each on a missing, an invalid and a valid token, over a
//! real socket; plus token locations and credential removal.

use agentgw_auth::jwt::{JwksSource, JwtConfig, JwtLayer, JwtProvider};
use agentgw_auth::{Mode, TokenLocation};
use serde_json::Value;

use crate::common::*;

fn layer(mode: Mode, signer: &Signer, configure: impl FnOnce(JwtConfig) -> JwtConfig) -> JwtLayer {
    let provider = JwtProvider::new(ISSUER, JwksSource::inline(jwks(&[signer]).to_string()))
        .audiences([AUDIENCE]);
    JwtLayer::from_config(&configure(
        JwtConfig::default().mode(mode).provider(provider),
    ))
    .unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Token {
    Missing,
    Invalid,
    Valid,
}

#[tokio::test]
async fn mode_matrix() {
    let signer = Signer::es256("k1");
    let valid = signer.token(&claims("alice"));
    let invalid = Signer::es256("k1").token(&claims("mallory")); // same kid, another key
    // (mode, token, expected status, expected subject upstream)
    let matrix = [
        (Mode::Strict, Token::Missing, 401, None),
        (Mode::Strict, Token::Invalid, 401, None),
        (Mode::Strict, Token::Valid, 200, Some("alice")),
        (Mode::Optional, Token::Missing, 200, None),
        (Mode::Optional, Token::Invalid, 401, None),
        (Mode::Optional, Token::Valid, 200, Some("alice")),
        (Mode::Permissive, Token::Missing, 200, None),
        (Mode::Permissive, Token::Invalid, 200, None),
        (Mode::Permissive, Token::Valid, 200, Some("alice")),
    ];
    let client = client();
    for mode in [Mode::Strict, Mode::Optional, Mode::Permissive] {
        let addr = serve(echo().layer(layer(mode, &signer, |c| c))).await;
        for (_, token, status, subject) in matrix.iter().filter(|row| row.0 == mode) {
            let mut req = client.get(format!("http://{addr}/v1/models"));
            match token {
                Token::Missing => {}
                Token::Invalid => req = req.bearer_auth(&invalid),
                Token::Valid => req = req.bearer_auth(&valid),
            }
            let res = req.send().await.unwrap();
            let case = format!("{mode:?} with {token:?} token");
            assert_eq!(res.status().as_u16(), *status, "{case}");
            if *status == 401 {
                let challenge = res.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                match token {
                    Token::Missing => assert_eq!(challenge, "Bearer", "{case}"),
                    _ => assert_eq!(challenge, r#"Bearer error="invalid_token""#, "{case}"),
                }
                continue;
            }
            let seen: Value = res.json().await.unwrap();
            assert_eq!(seen["sub"].as_str(), *subject, "{case}");
            assert!(
                seen["authorization"].is_null(),
                "{case}: the token must not reach upstream"
            );
        }
    }
}

#[tokio::test]
async fn claims_reach_the_handler_and_passthrough_keeps_the_token() {
    let signer = Signer::ed25519("ed");
    let token = signer.token(&claims("carol"));
    let addr = serve(echo().layer(layer(Mode::Strict, &signer, |c| c.passthrough(true)))).await;
    let seen: Value = client()
        .get(format!("http://{addr}/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["claims"]["role"], "user");
    assert_eq!(seen["claims"]["iss"], ISSUER);
    assert_eq!(seen["authorization"], format!("Bearer {token}"));
}

#[tokio::test]
async fn cookie_and_query_locations() {
    let signer = Signer::es256("k");
    let token = signer.token(&claims("dave"));
    let client = client();

    let cookie = layer(Mode::Strict, &signer, |c| {
        c.location(TokenLocation::Cookie("session".into()))
    });
    let addr = serve(echo().layer(cookie)).await;
    let seen: Value = client
        .get(format!("http://{addr}/x"))
        .header("cookie", format!("theme=dark; session={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["sub"], "dave");
    assert_eq!(
        seen["cookie"], "theme=dark",
        "only the token cookie is removed"
    );

    let query = layer(Mode::Strict, &signer, |c| {
        c.location(TokenLocation::QueryParameter("access_token".into()))
    });
    let addr = serve(echo().layer(query)).await;
    let res = client
        .get(format!("http://{addr}/sse?access_token={token}&stream=1"))
        .send()
        .await
        .unwrap();
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["sub"], "dave");
    assert_eq!(seen["uri"], "/sse?stream=1");

    // A bearer header is not looked at when the token lives in a cookie.
    let res = client
        .get(format!("http://{addr}/sse"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn two_tokens_are_rejected_even_in_optional_mode() {
    let signer = Signer::es256("k");
    let token = signer.token(&claims("erin"));
    let addr = serve(echo().layer(layer(Mode::Optional, &signer, |c| c))).await;
    let res = client()
        .get(format!("http://{addr}/x"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn mcp_route_gets_a_jsonrpc_error() {
    let signer = Signer::es256("k");
    let svc =
        echo()
            .layer(layer(Mode::Strict, &signer, |c| c))
            .layer(axum::middleware::map_request(
                |mut req: axum::extract::Request| async move {
                    req.extensions_mut()
                        .insert(agentgw_core::rejection::RouteKind::Mcp);
                    req
                },
            ));
    let addr = serve(svc).await;
    let res = client()
        .post(format!("http://{addr}/mcp"))
        .body(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["data"]["layer"], "jwt");
}
