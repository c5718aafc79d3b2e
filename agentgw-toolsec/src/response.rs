//! The answer the client gets: the upstream's, inspected and rewritten, or the layer's own
//! JSON-RPC errors in its place.

use agentgw_core::body::{BodyError, BodyLimit, collect};
use agentgw_core::mcp::{self, Id, ResponseKind, codes};
use agentgw_core::rejection::Denied;
use agentgw_core::{BoxError, ResponseShape};
use bytes::Bytes;
use http::header::{
    CONTENT_DISPOSITION, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_LOCATION,
    CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED,
};
use http::{HeaderValue, Response, StatusCode};
use http_body::Body;
use serde_json::Value;

use crate::audit::LAYER;
use crate::body::{CancelFn, ToolSecurityBody, ToolSecurityStream};
use crate::denial::{Denial, rules};
use crate::exchange::{Exchange, counted, invalid_answer, output_too_large, payload_of};
use crate::layer::ToolSecurityLayer;

/// Inspects the upstream's answer: JSON bodies are read (bounded) and rewritten, event
/// streams are rewritten event by event. What cannot be inspected is not forwarded: a
/// successful answer that is neither JSON nor an event stream (or is encoded) becomes the
/// JSON-RPC errors of the requests waiting ([`uninspectable`]); an error status keeps its
/// status and headers, and a body that is not JSON-RPC is replaced by a JSON-RPC error. Empty
/// answers without a content type (the `202 Accepted` of a notification) pass.
pub(crate) async fn respond<ResBody>(
    layer: &ToolSecurityLayer,
    response: Response<ResBody>,
    mut exchange: Exchange,
    batch: bool,
    deadline: Option<tokio::time::Instant>,
    cancel: Option<CancelFn>,
) -> Response<ToolSecurityBody<ResBody>>
where
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let success = response.status().is_success();
    match mcp::response_kind(response.headers()) {
        ResponseKind::EventStream if success => {
            let (mut parts, body) = response.into_parts();
            parts.headers.remove(CONTENT_LENGTH);
            let max_event = layer.response_limit.bytes();
            let body = ToolSecurityStream::new(body, exchange, max_event, deadline, cancel);
            Response::from_parts(parts, ToolSecurityBody::transformed(body))
        }
        ResponseKind::Untyped => {
            let (parts, body) = response.into_parts();
            // Nothing is held: a body with any data in it is refused.
            let collected = match deadline {
                None => collect(body, BodyLimit::new(0)).await,
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, collect(body, BodyLimit::new(0))).await
                    {
                        Ok(collected) => collected,
                        Err(_) => return timed_out(exchange, batch, cancel),
                    }
                }
            };
            match collected {
                Ok(empty) => {
                    exchange.finish();
                    Response::from_parts(parts, ToolSecurityBody::full(empty))
                }
                Err(_) => uninspectable(
                    parts,
                    exchange,
                    batch,
                    "the upstream answer has a body but no content type",
                ),
            }
        }
        ResponseKind::Unsupported | ResponseKind::EventStream => {
            let (parts, _) = response.into_parts();
            uninspectable(
                parts,
                exchange,
                batch,
                "the upstream answer has a content type or encoding that cannot be inspected",
            )
        }
        ResponseKind::Json => {
            let (mut parts, body) = response.into_parts();
            let limits = exchange.policy().limits;
            let single_call_limit = limits
                .max_output_size
                .filter(|_| limits.enforce && !batch && exchange.has_pending_calls());
            let limit = match single_call_limit {
                Some(max) => BodyLimit::new(max.min(layer.response_limit.bytes())),
                None => layer.response_limit,
            };
            let collected = match deadline {
                None => collect(body, limit).await,
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, collect(body, limit)).await {
                        Ok(collected) => collected,
                        Err(_) => return timed_out(exchange, batch, cancel),
                    }
                }
            };
            let bytes = match collected {
                Ok(bytes) => bytes,
                Err(BodyError::TooLarge { .. }) => {
                    let (denial, outcome) = match single_call_limit {
                        Some(max) => (output_too_large(max), "too_large"),
                        None => (
                            invalid_answer("the upstream answer is too large to inspect"),
                            "invalid_response",
                        ),
                    };
                    let errors = exchange.fail_all(&denial, outcome);
                    return errors_response(errors, batch, StatusCode::BAD_GATEWAY);
                }
                Err(BodyError::Read(error)) => {
                    tracing::warn!(%error, "the upstream answer could not be read");
                    let denial = invalid_answer("the upstream answer could not be read");
                    let errors = exchange.fail_all(&denial, "invalid_response");
                    return errors_response(errors, batch, StatusCode::BAD_GATEWAY);
                }
            };
            if bytes.trim_ascii().is_empty() {
                // Some servers acknowledge notifications with an empty `200 application/json`.
                exchange.finish();
                return Response::from_parts(parts, ToolSecurityBody::full(bytes));
            }
            let bytes = match mcp::parse(&bytes) {
                Ok(mut envelope) => {
                    let raw_len = (!envelope.is_batch()).then_some(bytes.len());
                    let mut changed = false;
                    for message in envelope.messages_mut() {
                        changed |= exchange.on_message(message, raw_len);
                    }
                    if changed { envelope.to_bytes() } else { bytes }
                }
                Err(error) => {
                    tracing::warn!(%error, "the upstream answer is not JSON-RPC");
                    return uninspectable(
                        parts,
                        exchange,
                        batch,
                        "the upstream answer is not valid JSON-RPC",
                    );
                }
            };
            exchange.finish();
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            Response::from_parts(parts, ToolSecurityBody::full(bytes))
        }
    }
}

/// The answer in place of an upstream answer the layer cannot inspect: a JSON-RPC error for
/// each request waiting (one with a `null` id when none is). In place of a success, the
/// failure of one request is a [`refuse`] (HTTP 200 with its id, `data.status` 502) and a
/// batch's is a 502; an upstream error status is kept (a 404 tells the client its session is
/// gone). The upstream's other headers (`Mcp-Session-Id`) are kept either way.
pub(crate) fn uninspectable<B>(
    parts: http::response::Parts,
    mut exchange: Exchange,
    batch: bool,
    message: &str,
) -> Response<ToolSecurityBody<B>> {
    let upstream_failed = !parts.status.is_success();
    let message = if upstream_failed {
        format!("{message} (upstream status {})", parts.status.as_u16())
    } else {
        message.to_owned()
    };
    let denial = invalid_answer(&message);
    let mut errors = exchange.fail_all(&denial, "invalid_response");
    exchange.finish();
    if errors.is_empty() {
        errors.push((Id::Null, denial));
    }
    let mut response = if upstream_failed {
        json_response(parts.status, &payload_of(counted(errors), batch))
    } else {
        errors_response(errors, batch, StatusCode::BAD_GATEWAY)
    };
    // The headers that described the upstream's body do not describe this one.
    const BODY_HEADERS: [http::HeaderName; 9] = [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        CONTENT_ENCODING,
        CONTENT_LANGUAGE,
        CONTENT_LOCATION,
        CONTENT_RANGE,
        CONTENT_DISPOSITION,
        ETAG,
        LAST_MODIFIED,
    ];
    for (name, value) in &parts.headers {
        if !BODY_HEADERS.contains(name) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// The answer when the tool calls ran out of time: their errors (a single call's is a
/// [`refuse`]: HTTP 200, so that MCP clients report it as the call's failure; a batch's are
/// sent with HTTP 200 too, each request having its error), and the calls cancelled upstream.
pub(crate) fn timed_out<B>(
    mut exchange: Exchange,
    batch: bool,
    cancel: Option<CancelFn>,
) -> Response<ToolSecurityBody<B>> {
    let ids = exchange.pending_call_ids();
    let mut errors = exchange.time_out();
    // Other requests of the batch (a `tools/list` next to the call) get an error as well.
    let denial = Denial::forbidden(rules::EXECUTION_TIME, "the request did not finish in time")
        .with_code(codes::TIMEOUT);
    errors.extend(exchange.fail_all(&denial, "timeout"));
    exchange.finish();
    if let Some(cancel) = cancel {
        cancel(ids);
    }
    errors_response(errors, batch, StatusCode::OK)
}

/// The answer to one request refused with `denial` on its own: core's
/// [`Rejection`](agentgw_core::Rejection), counted and rendered with the policy of every
/// agentgw layer (a JSON-RPC error with the request's id, HTTP 200 when there is an id).
pub(crate) fn refuse<B>(denial: Denial, id: &Id) -> Response<ToolSecurityBody<B>> {
    let shape = ResponseShape::JsonRpc { id: id.to_value() };
    denial
        .into_rejection()
        .respond_in(&shape)
        .map(ToolSecurityBody::from)
}

/// The layer's own JSON-RPC errors, one per request waiting: the error of a single request is
/// a [`refuse`]; a batch's errors (or several) are sent as a batch with `batch_status`, each
/// counted, the response marked [`Denied`].
pub(crate) fn errors_response<B>(
    mut errors: Vec<(Id, Denial)>,
    batch: bool,
    batch_status: StatusCode,
) -> Response<ToolSecurityBody<B>> {
    if !batch
        && errors.len() == 1
        && let Some((id, denial)) = errors.pop()
    {
        return refuse(denial, &id);
    }
    let reason = errors.first().map(|(_, denial)| denial.rule.to_string());
    let mut response = json_response(batch_status, &payload_of(counted(errors), batch));
    if let Some(reason) = reason {
        response.extensions_mut().insert(Denied {
            layer: LAYER,
            reason: reason.into(),
        });
    }
    response
}

pub(crate) fn json_response<B>(status: StatusCode, body: &Value) -> Response<ToolSecurityBody<B>> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let mut response = Response::new(ToolSecurityBody::full(bytes.clone()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agentgw_core::mcp::codes;
    use http_body_util::{BodyExt, Empty};
    use serde_json::json;

    use super::*;
    use crate::audit::Auditor;
    use crate::config::{ToolSecurityConfig, UnlistedTools};
    use crate::exchange::Inspection;
    use crate::policy::Policy;

    type Body = ToolSecurityBody<Empty<Bytes>>;

    async fn json(response: Response<Body>) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn exchange() -> Exchange {
        let config = ToolSecurityConfig::default().unlisted_tools(UnlistedTools::Allow);
        Exchange::new(
            Arc::new(Policy::from_config(&config).unwrap()),
            Arc::new(Auditor::off()),
            Arc::from("default"),
            None,
            String::new(),
            String::new(),
        )
    }

    #[tokio::test]
    async fn one_request_is_refused_as_every_agentgw_denial() {
        let denial = Denial::forbidden(rules::ALLOWLIST, "tool `x` is not allowed");
        let response: Response<Body> = errors_response(
            vec![(Id::Number(4.into()), denial)],
            false,
            StatusCode::BAD_GATEWAY,
        );
        assert_eq!(response.status(), StatusCode::OK);
        let denied = response
            .extensions()
            .get::<Denied>()
            .expect("marked denied");
        assert_eq!((denied.layer, denied.reason.as_ref()), (LAYER, "allowlist"));
        let error = json(response).await;
        assert_eq!(error["id"], 4);
        assert_eq!(error["error"]["code"], codes::FORBIDDEN);
        assert_eq!(error["error"]["data"]["status"], 403);
    }

    #[tokio::test]
    async fn a_batch_gets_an_error_per_request_with_the_batch_status() {
        let denial = invalid_answer("unreadable");
        let errors = vec![
            (Id::Number(1.into()), denial.clone()),
            (Id::Number(2.into()), denial),
        ];
        let response: Response<Body> = errors_response(errors, true, StatusCode::BAD_GATEWAY);
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert!(response.extensions().get::<Denied>().is_some());
        let errors = json(response).await;
        assert_eq!(errors.as_array().map(Vec::len), Some(2));
        assert_eq!(errors[1]["error"]["data"]["status"], 502);
    }

    #[tokio::test]
    async fn an_uninspectable_answer_keeps_the_upstream_headers_but_not_its_body_headers() {
        let mut exchange = exchange();
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                          "params": {"name": "get-weather", "arguments": {}}});
        let envelope = mcp::from_value(&call).unwrap();
        assert!(matches!(exchange.inspect(&envelope), Inspection::Forward));
        let (mut parts, ()) = Response::new(()).into_parts();
        parts
            .headers
            .insert("mcp-session-id", HeaderValue::from_static("s-1"));
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        parts
            .headers
            .insert(ETAG, HeaderValue::from_static("\"v1\""));
        let response: Response<Body> = uninspectable(parts, exchange, false, "not JSON");
        assert_eq!(response.status(), StatusCode::OK, "one request: its error");
        assert_eq!(response.headers()["mcp-session-id"], "s-1");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert!(response.headers().get(ETAG).is_none());
        let error = json(response).await;
        assert_eq!(error["id"], 7);
        assert_eq!(error["error"]["data"]["reason"], rules::INVALID_RESPONSE);
    }
}
