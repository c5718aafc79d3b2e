//! axum extractors for the identity the authentication layers establish (feature `axum`).
//!
//! [`Claims`] and [`ApiKey`] read the extensions [`JwtLayer`](crate::JwtLayer) and
//! [`ApiKeyLayer`](crate::ApiKeyLayer) insert. As a plain argument they answer `401` when the
//! request is anonymous (possible in `Optional` and `Permissive` modes); as `Option<_>` they
//! never reject.
//!
//! ```
//! use agentgw_auth::extract::Claims;
//!
//! async fn whoami(claims: Option<Claims>) -> String {
//!     match claims {
//!         Some(Claims(claims)) => claims.subject().unwrap_or("unknown").to_owned(),
//!         None => "anonymous".to_owned(),
//!     }
//! }
//! # let _ = axum::Router::<()>::new().route("/whoami", axum::routing::get(whoami));
//! ```

use std::convert::Infallible;

use agentgw_core::identity::{ApiKeyInfo, JwtClaims};
use agentgw_core::{Rejection, ResponseShape};
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

/// The verified JWT claims of the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims(pub JwtClaims);

/// The API key the request authenticated with (its metadata, never the key).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey(pub ApiKeyInfo);

/// The rejection of [`Claims`] and [`ApiKey`] on an anonymous request: `401`, shaped for the
/// route's protocol like every denial of the layers (a JSON-RPC error for MCP, an OpenAI or
/// Anthropic error for LLM routes) and counted in `agentgateway_rejected_requests_total`.
#[derive(Debug, Clone, PartialEq)]
pub struct Unauthenticated {
    layer: &'static str,
    shape: ResponseShape,
}

impl Unauthenticated {
    fn of(layer: &'static str, parts: &Parts) -> Self {
        Unauthenticated {
            layer,
            shape: ResponseShape::from_parts(parts.uri.path(), &parts.extensions),
        }
    }
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        Rejection::new(StatusCode::UNAUTHORIZED, self.layer, "unauthenticated")
            .respond_in(&self.shape)
            .map(axum_core::body::Body::new)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<JwtClaims>()
            .cloned()
            .map(Claims)
            .ok_or_else(|| Unauthenticated::of("jwt", parts))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<JwtClaims>().cloned().map(Claims))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiKey {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ApiKeyInfo>()
            .cloned()
            .map(ApiKey)
            .ok_or_else(|| Unauthenticated::of("api_key", parts))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ApiKey {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<ApiKeyInfo>().cloned().map(ApiKey))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn anonymous_mcp_call_gets_a_json_rpc_error() {
        use agentgw_core::rejection::RouteKind;
        let (mut parts, ()) = http::Request::post("/mcp").body(()).unwrap().into_parts();
        parts.extensions.insert(RouteKind::Mcp);
        let err = <Claims as FromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        let res = err.into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["jsonrpc"], "2.0");
        assert_eq!(json["error"]["data"]["layer"], "jwt");
    }

    #[tokio::test]
    async fn anonymous_is_401_or_none() {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        let err = <Claims as FromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!(err.into_response().status(), StatusCode::UNAUTHORIZED);
        let none = <ApiKey as OptionalFromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        assert!(none.is_none());

        parts
            .extensions
            .insert(ApiKeyInfo::new("bot", Default::default()));
        let ApiKey(info) = <ApiKey as FromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        assert_eq!(info.name(), "bot");
    }
}
