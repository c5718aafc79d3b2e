//! Denials as the response a client of that protocol understands: one policy for every layer.
//!
//! Every layer denies with a [`Rejection`]: an HTTP status, the layer and rule that decided (for
//! metrics, logs and audit) and a user-facing message. [`Rejection::into_response`] renders it in
//! the [`ResponseShape`] of the route, and that rendering is the only place where the policy
//! below is decided, so a request denied by any layer looks the same to its client:
//!
//! | shape | HTTP status | body |
//! |---|---|---|
//! | [`OpenAi`](ResponseShape::OpenAi) (LLM routes) | the rejection's | `{"error":{"message","type","code"}}` |
//! | [`Anthropic`](ResponseShape::Anthropic) (`/v1/messages`) | the rejection's | `{"type":"error","error":{"type","message"}}` |
//! | [`JsonRpc`](ResponseShape::JsonRpc) (MCP), request id known | **200**, except 401 | `{"jsonrpc":"2.0","id","error":{"code","message","data":{"status","layer","reason"}}}` |
//! | [`JsonRpc`](ResponseShape::JsonRpc), no id (notification, batch, unreadable body) | the rejection's | the same JSON-RPC error with `"id": null` |
//! | [`Plain`](ResponseShape::Plain) | the rejection's | `{"error":{"message","code"}}` |
//!
//! Why HTTP 200 for MCP: the official MCP clients (the TypeScript, Python and Rust SDKs) treat a
//! non-2xx answer on the Streamable HTTP transport as a transport failure, which ends the call
//! with a connection-level error and can tear the session down; a JSON-RPC error answering the
//! request's id is handed to the caller as the error of that one request, which an agent can
//! show and recover from. The HTTP status the denial stands for stays visible in
//! `error.data.status`. Two exceptions keep their HTTP status: 401, because the MCP
//! authorization specification requires it (with `WWW-Authenticate`) for clients to start their
//! OAuth flow; and messages without an id, which have no JSON-RPC response to carry the error.
//!
//! Anthropic's error shape is chosen for Anthropic's Messages API paths (`/v1/messages`,
//! [`llm::Format::from_path`](crate::llm::Format::from_path)), OpenAI's for every other LLM
//! route.
//!
//! A rejection never carries the matched secret or pattern: the message is the configured one or
//! a generic one, and the rule is the rule's *name*.
//!
//! # Example
//!
//! ```
//! use agentgw_core::{Rejection, ResponseShape};
//! use http::StatusCode;
//! use http_body_util::BodyExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let rejection = Rejection::new(StatusCode::FORBIDDEN, "prompt_guard", "prompt-injection-1")
//!     .with_message("Request blocked due to policy violation");
//!
//! // An OpenAI client sees an OpenAI error.
//! let res = rejection.clone().into_response(&ResponseShape::OpenAi);
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(json["error"]["message"], "Request blocked due to policy violation");
//! assert_eq!(json["error"]["type"], "permission_error");
//!
//! // An MCP client sees a JSON-RPC error with its request id.
//! let shape = ResponseShape::JsonRpc { id: serde_json::json!(7) };
//! let body = rejection.into_response(&shape).into_body().collect().await.unwrap().to_bytes();
//! let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(json["id"], 7);
//! assert_eq!(json["error"]["code"], -32003);
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::payload::Payload;

/// Marks a response as a layer's denial, in the response extensions, so that an outer layer
/// (metrics, audit, a gateway's access log) tells a denial from an upstream's answer without
/// parsing the body: an MCP denial is an HTTP 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The layer that denied.
    pub layer: &'static str,
    /// The rule or reason.
    pub reason: Cow<'static, str>,
}

/// How a rejection is rendered for the client of a route.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ResponseShape {
    /// OpenAI-compatible error JSON: `{"error":{"message","type","code"}}`.
    OpenAi,
    /// Anthropic's error JSON: `{"type":"error","error":{"type","message"}}`.
    Anthropic,
    /// A JSON-RPC 2.0 error response carrying the request's `id` (MCP).
    JsonRpc {
        /// The id of the request being answered (`null` when unknown).
        id: Value,
    },
    /// A plain JSON error object.
    #[default]
    Plain,
}

/// The kind of traffic a route carries, when the application knows it.
///
/// Insert it into the request extensions to decide the [`ResponseShape`] of rejections instead
/// of having it sniffed from the path and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// OpenAI/Anthropic-style LLM API.
    Llm,
    /// MCP (JSON-RPC over Streamable HTTP).
    Mcp,
    /// Anything else.
    Other,
}

impl ResponseShape {
    /// Picks the shape for `req`: the [`RouteKind`] extension when present; otherwise JSON-RPC
    /// when the buffered body is JSON-RPC, OpenAI when the path or body looks like an LLM API,
    /// plain JSON otherwise.
    ///
    /// A request whose body no layer has read yet (an authentication layer in front of the
    /// others) is recognized as MCP by its headers: an `Mcp-Session-Id` or
    /// `Mcp-Protocol-Version`, or the `Accept` of a Streamable HTTP POST (both
    /// `application/json` and `text/event-stream`). Its id is not known then: the error carries
    /// `"id": null` and keeps its HTTP status.
    pub fn for_request<B>(req: &Request<B>) -> Self {
        let shape = Self::from_parts(req.uri().path(), req.extensions());
        if shape == ResponseShape::Plain
            && req.extensions().get::<RouteKind>().is_none()
            && req.extensions().get::<Payload>().is_none()
            && looks_like_mcp(req.headers())
        {
            return ResponseShape::JsonRpc { id: Value::Null };
        }
        shape
    }

    /// Like [`ResponseShape::for_request`], from a path and the request extensions.
    pub fn from_parts(path: &str, extensions: &http::Extensions) -> Self {
        let payload = extensions.get::<Payload>();
        let rpc_id = || {
            payload
                .and_then(|p| p.json().ok())
                .and_then(|j| j.get("id"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        match extensions.get::<RouteKind>() {
            Some(RouteKind::Llm) => return llm_shape(path),
            Some(RouteKind::Mcp) => return ResponseShape::JsonRpc { id: rpc_id() },
            Some(RouteKind::Other) => return ResponseShape::Plain,
            None => {}
        }
        if let Some(json) = payload.and_then(|p| p.json().ok()) {
            if json.get("jsonrpc").is_some() {
                return ResponseShape::JsonRpc { id: rpc_id() };
            }
            if json
                .as_array()
                .is_some_and(|batch| batch.first().is_some_and(|m| m.get("jsonrpc").is_some()))
            {
                return ResponseShape::JsonRpc { id: Value::Null };
            }
            if json.get("model").is_some() {
                return llm_shape(path);
            }
        }
        if looks_like_llm_path(path) {
            llm_shape(path)
        } else {
            ResponseShape::Plain
        }
    }
}

/// Whether the headers are those of an MCP Streamable HTTP client.
fn looks_like_mcp(headers: &HeaderMap) -> bool {
    if headers.contains_key("mcp-session-id") || headers.contains_key("mcp-protocol-version") {
        return true;
    }
    let accepts = |media: &str| {
        headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                item.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
            })
    };
    accepts("application/json") && accepts("text/event-stream")
}

/// Anthropic's shape on Anthropic's paths, OpenAI's elsewhere.
fn llm_shape(path: &str) -> ResponseShape {
    match crate::llm::Format::from_path(path) {
        Some(crate::llm::Format::AnthropicMessages) => ResponseShape::Anthropic,
        _ => ResponseShape::OpenAi,
    }
}

fn looks_like_llm_path(path: &str) -> bool {
    const SUFFIXES: [&str; 5] = [
        "/chat/completions",
        "/completions",
        "/responses",
        "/messages",
        "/embeddings",
    ];
    let path = path.trim_end_matches('/');
    SUFFIXES.iter().any(|s| path.ends_with(s))
}

/// A policy decision to deny a request. See the [module docs](self).
#[derive(Clone)]
pub struct Rejection {
    status: StatusCode,
    layer: &'static str,
    reason: Cow<'static, str>,
    message: Cow<'static, str>,
    headers: HeaderMap,
    raw_body: Option<(HeaderValue, Bytes)>,
    jsonrpc_code: Option<i64>,
}

impl Rejection {
    /// A rejection with `status`, decided by `layer` (e.g. `"jwt"`) under `reason` (a rule name
    /// or a short, low-cardinality reason such as `"expired"`).
    pub fn new(
        status: StatusCode,
        layer: &'static str,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Rejection {
            status,
            layer,
            reason: reason.into(),
            message: Cow::Borrowed(default_message(status)),
            headers: HeaderMap::new(),
            raw_body: None,
            jsonrpc_code: None,
        }
    }

    /// Sets the message the client sees.
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header (e.g. `WWW-Authenticate`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sends `body` with `content_type` as it is to clients of the [`Plain`](ResponseShape::Plain)
    /// shape, instead of a rendered error (used to relay an external authorization service's
    /// denial unchanged). LLM and MCP clients still get their protocol's error, which they can
    /// read.
    pub fn with_raw_body(mut self, content_type: HeaderValue, body: Bytes) -> Self {
        self.raw_body = Some((content_type, body));
        self
    }

    /// Overrides the JSON-RPC error code used for MCP clients.
    pub fn with_jsonrpc_code(mut self, code: i64) -> Self {
        self.jsonrpc_code = Some(code);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The layer that decided.
    pub fn layer(&self) -> &'static str {
        self.layer
    }

    /// The rule name or short reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The message the client sees.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Extra response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The JSON-RPC error code an MCP client sees.
    pub fn jsonrpc_code(&self) -> i64 {
        self.jsonrpc_code.unwrap_or(match self.status {
            StatusCode::UNAUTHORIZED => crate::mcp::codes::UNAUTHORIZED,
            StatusCode::FORBIDDEN => crate::mcp::codes::FORBIDDEN,
            StatusCode::PAYLOAD_TOO_LARGE => crate::mcp::codes::PAYLOAD_TOO_LARGE,
            StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => crate::mcp::codes::TIMEOUT,
            s if s.is_client_error() => crate::mcp::codes::INVALID_REQUEST,
            _ => crate::mcp::codes::INTERNAL_ERROR,
        })
    }

    /// Counts this rejection in `agentgateway_rejected_requests_total{layer, reason}`.
    pub fn record(&self) {
        crate::metrics::record_rejection(self.layer, &self.reason);
    }

    /// Renders the rejection for a client expecting `shape`.
    pub fn into_response(mut self, shape: &ResponseShape) -> Response<Full<Bytes>> {
        let status = self.http_status(shape);
        let raw_body = match shape {
            ResponseShape::Plain => self.raw_body.take(),
            _ => None,
        };
        let (content_type, body) = match raw_body {
            Some(raw) => raw,
            None => (
                HeaderValue::from_static("application/json"),
                Bytes::from(self.render(shape).to_string()),
            ),
        };
        let mut res = Response::new(Full::new(body));
        *res.status_mut() = status;
        res.extensions_mut().insert(Denied {
            layer: self.layer,
            reason: self.reason.clone(),
        });
        res.headers_mut().insert(CONTENT_TYPE, content_type);
        for (name, value) in &self.headers {
            res.headers_mut().append(name, value.clone());
        }
        res
    }

    /// Renders the rejection for the request it answers (see [`ResponseShape::for_request`]).
    pub fn into_response_for<B>(self, req: &Request<B>) -> Response<Full<Bytes>> {
        let shape = ResponseShape::for_request(req);
        self.into_response(&shape)
    }

    /// What every layer does with a denial: counts it ([`record`](Rejection::record)), logs it
    /// at debug level and renders it in the shape of `req` (whose body may already be buffered,
    /// so that a JSON-RPC error carries the request's id).
    pub fn respond_to<B>(self, req: &Request<B>) -> Response<Full<Bytes>> {
        let shape = ResponseShape::for_request(req);
        self.respond_in(&shape)
    }

    /// Like [`respond_to`](Rejection::respond_to), in a shape the layer already knows (a
    /// response-side denial, after the request is gone).
    pub fn respond_in(self, shape: &ResponseShape) -> Response<Full<Bytes>> {
        self.record();
        tracing::debug!(
            layer = self.layer,
            reason = %self.reason,
            status = self.status.as_u16(),
            "request denied"
        );
        self.into_response(shape)
    }

    /// The HTTP status of the response in `shape`: the rejection's status, except for a JSON-RPC
    /// request with an id, which is answered with 200 and its JSON-RPC error (unless the status
    /// is 401; see the [module documentation](self)).
    pub fn http_status(&self, shape: &ResponseShape) -> StatusCode {
        match shape {
            ResponseShape::JsonRpc { id }
                if !id.is_null() && self.status != StatusCode::UNAUTHORIZED =>
            {
                StatusCode::OK
            }
            _ => self.status,
        }
    }

    fn render(&self, shape: &ResponseShape) -> Value {
        match shape {
            ResponseShape::OpenAi => json!({
                "error": {
                    "message": self.message,
                    "type": openai_error_type(self.status),
                    "code": self.reason,
                }
            }),
            ResponseShape::Anthropic => json!({
                "type": "error",
                "error": {
                    "type": anthropic_error_type(self.status),
                    "message": self.message,
                }
            }),
            ResponseShape::JsonRpc { id } => json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {
                    "code": self.jsonrpc_code(),
                    "message": self.message,
                    "data": { "status": self.status.as_u16(), "layer": self.layer, "reason": self.reason },
                }
            }),
            ResponseShape::Plain => json!({
                "error": { "message": self.message, "code": self.reason }
            }),
        }
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("status", &self.status)
            .field("layer", &self.layer)
            .field("reason", &self.reason)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} denied by {} ({}): {}",
            self.status.as_u16(),
            self.layer,
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for Rejection {}

fn default_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "authentication required",
        StatusCode::FORBIDDEN => "request denied by policy",
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large",
        StatusCode::BAD_GATEWAY => "upstream unavailable",
        StatusCode::GATEWAY_TIMEOUT => "upstream timed out",
        StatusCode::TOO_MANY_REQUESTS => "too many requests",
        s if s.is_server_error() => "internal error",
        _ => "request rejected",
    }
}

fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::NOT_FOUND => "not_found_error",
        StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        StatusCode::SERVICE_UNAVAILABLE => "overloaded_error",
        s if s.is_server_error() => "api_error",
        _ => "invalid_request_error",
    }
}

fn openai_error_type(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::NOT_FOUND => "not_found_error",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        s if s.is_server_error() => "api_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(res: Response<Full<Bytes>>) -> Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn openai_shape() {
        let res = Rejection::new(StatusCode::UNAUTHORIZED, "jwt", "missing_token")
            .with_header(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            )
            .into_response(&ResponseShape::OpenAi);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[http::header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        let json = body_json(res).await;
        assert_eq!(json["error"]["type"], "authentication_error");
        assert_eq!(json["error"]["code"], "missing_token");
        assert_eq!(json["error"]["message"], "authentication required");
    }

    #[tokio::test]
    async fn jsonrpc_shape_carries_id() {
        let shape = ResponseShape::JsonRpc { id: json!("abc") };
        let json = body_json(
            Rejection::new(StatusCode::FORBIDDEN, "toolsec", "not_allowlisted")
                .into_response(&shape),
        )
        .await;
        assert_eq!(json["jsonrpc"], "2.0");
        assert_eq!(json["id"], "abc");
        assert_eq!(json["error"]["code"], -32003);
        assert_eq!(json["error"]["data"]["layer"], "toolsec");
    }

    #[tokio::test]
    async fn jsonrpc_denial_with_an_id_is_http_200_for_every_status_but_401() {
        let shape = ResponseShape::JsonRpc { id: json!(7) };
        for status in [
            StatusCode::FORBIDDEN,
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::BAD_GATEWAY,
        ] {
            let res = Rejection::new(status, "rbac", "rule").into_response(&shape);
            assert_eq!(res.status(), StatusCode::OK, "{status}");
            let json = body_json(res).await;
            assert_eq!(json["id"], 7);
            assert_eq!(json["error"]["data"]["status"], status.as_u16());
        }
        let res = Rejection::new(StatusCode::UNAUTHORIZED, "jwt", "missing")
            .with_header(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            )
            .into_response(&shape);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().contains_key(http::header::WWW_AUTHENTICATE));
        assert_eq!(res.extensions().get::<Denied>().unwrap().layer, "jwt");
        // Without an id there is no JSON-RPC response to carry the error.
        let res = Rejection::new(StatusCode::BAD_REQUEST, "core", "parse")
            .into_response(&ResponseShape::JsonRpc { id: Value::Null });
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn anthropic_shape_on_anthropic_paths() {
        let req = Request::builder()
            .uri("/anthropic/v1/messages")
            .extension(RouteKind::Llm)
            .body(())
            .unwrap();
        assert_eq!(ResponseShape::for_request(&req), ResponseShape::Anthropic);
        let res = Rejection::new(StatusCode::FORBIDDEN, "prompt_guard", "injection")
            .with_message("blocked")
            .into_response(&ResponseShape::Anthropic);
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let json = body_json(res).await;
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["type"], "permission_error");
        assert_eq!(json["error"]["message"], "blocked");
        let req = Request::builder()
            .uri("/v1/chat/completions")
            .extension(RouteKind::Llm)
            .body(())
            .unwrap();
        assert_eq!(ResponseShape::for_request(&req), ResponseShape::OpenAi);
    }

    #[tokio::test]
    async fn raw_body_is_only_relayed_to_plain_clients() {
        let rejection = Rejection::new(StatusCode::FORBIDDEN, "ext_auth", "denied")
            .with_raw_body(HeaderValue::from_static("text/plain"), Bytes::from("nope"));
        let json = body_json(rejection.clone().into_response(&ResponseShape::OpenAi)).await;
        assert_eq!(json["error"]["code"], "denied");
        let json =
            body_json(rejection.into_response(&ResponseShape::JsonRpc { id: json!(1) })).await;
        assert_eq!(json["id"], 1);
    }

    #[tokio::test]
    async fn raw_body_is_relayed_unchanged_to_plain_clients() {
        let res = Rejection::new(StatusCode::IM_A_TEAPOT, "ext_auth", "denied")
            .with_raw_body(
                HeaderValue::from_static("text/plain"),
                Bytes::from("go away"),
            )
            .into_response(&ResponseShape::Plain);
        assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/plain");
        assert_eq!(
            &res.into_body().collect().await.unwrap().to_bytes()[..],
            b"go away"
        );
    }

    #[test]
    fn shape_detection() {
        let mcp = Request::builder()
            .uri("/mcp")
            .extension(Payload::from_static(
                br#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#,
            ))
            .body(())
            .unwrap();
        assert_eq!(
            ResponseShape::for_request(&mcp),
            ResponseShape::JsonRpc { id: json!(5) }
        );

        let chat = Request::builder()
            .uri("/openai/v1/chat/completions")
            .body(())
            .unwrap();
        assert_eq!(ResponseShape::for_request(&chat), ResponseShape::OpenAi);

        let other = Request::builder().uri("/healthz").body(()).unwrap();
        assert_eq!(ResponseShape::for_request(&other), ResponseShape::Plain);

        let forced = Request::builder()
            .uri("/healthz")
            .extension(RouteKind::Llm)
            .body(())
            .unwrap();
        assert_eq!(ResponseShape::for_request(&forced), ResponseShape::OpenAi);

        // Before any layer read the body: an MCP client is known by its headers.
        let unread = Request::builder()
            .uri("/tools")
            .header("accept", "application/json, text/event-stream")
            .body(())
            .unwrap();
        assert_eq!(
            ResponseShape::for_request(&unread),
            ResponseShape::JsonRpc { id: Value::Null }
        );
        let session = Request::builder()
            .uri("/tools")
            .header("mcp-session-id", "abc")
            .body(())
            .unwrap();
        assert!(matches!(
            ResponseShape::for_request(&session),
            ResponseShape::JsonRpc { .. }
        ));
        let json_only = Request::builder()
            .uri("/tools")
            .header("accept", "application/json")
            .body(())
            .unwrap();
        assert_eq!(ResponseShape::for_request(&json_only), ResponseShape::Plain);
    }
}
