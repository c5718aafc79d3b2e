//! [`ToolSecurityService`]: inspects each MCP exchange.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::BoxError;
use agentgw_core::body::{BodyError, BodyLimit, RequestBody, buffer_request, collect};
use agentgw_core::identity::{ApiKeyInfo, BackendName, JwtClaims, PeerIdentity};
use agentgw_core::mcp::{self, Id, ResponseKind, codes};
use agentgw_core::metrics::record_rejection;
use agentgw_core::{Payload, ResponseShape};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use serde_json::{Value, json};
use tower_service::Service;

use crate::audit::LAYER;
use crate::body::{CancelFn, EventStreamBody, ToolSecurityBody};
use crate::denial::{Denial, rules};
use crate::exchange::{Exchange, Inspection, output_too_large, payload_of};
use crate::layer::ToolSecurityLayer;

/// The upstream key of requests without a [`BackendName`] extension.
const DEFAULT_UPSTREAM: &str = "default";

/// The service made by [`ToolSecurityLayer`]. See the [crate docs](crate).
#[derive(Clone)]
pub struct ToolSecurityService<S> {
    inner: S,
    layer: ToolSecurityLayer,
}

impl<S> ToolSecurityService<S> {
    pub(crate) fn new(inner: S, layer: ToolSecurityLayer) -> Self {
        Self { inner, layer }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for ToolSecurityService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolSecurityService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

type BoxedFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ToolSecurityBody<B>>, E>> + Send>>;

/// The response future of [`ToolSecurityService`].
pub struct ResponseFuture<B, E> {
    inner: BoxedFuture<B, E>,
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<ToolSecurityBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ToolSecurityService<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ToolSecurityBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The readied service handles this request; the clone is readied for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            inner: Box::pin(handle(self.layer.clone(), inner, req)),
        }
    }
}

async fn handle<S, ReqBody, ResBody>(
    layer: ToolSecurityLayer,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<ToolSecurityBody<ResBody>>, S::Error>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let upstream = req
        .extensions()
        .get::<BackendName>()
        .map_or_else(|| Arc::from(DEFAULT_UPSTREAM), |backend| backend.0.clone());
    // Who, how and where are only kept when audit events need them.
    let (subject, http_method, path) = if layer.auditor.is_on() {
        (
            subject_of(&req),
            req.method().to_string(),
            req.uri().path().to_owned(),
        )
    } else {
        (None, String::new(), String::new())
    };
    let mut exchange = Exchange::new(
        layer.policy.clone(),
        layer.auditor.clone(),
        upstream,
        subject,
        http_method,
        path,
    );
    if req.method() != Method::POST {
        // GET opens the server's stream (which may replay answers), DELETE ends a session.
        let response = inner.call(req.map(RequestBody::streaming)).await?;
        return Ok(respond(&layer, response, exchange, false, None, None).await);
    }

    let req = match buffer_request(req, layer.body_limit).await {
        Ok(req) => req,
        Err(rejection) => {
            rejection.record();
            let response = rejection.into_response(&ResponseShape::JsonRpc { id: Value::Null });
            return Ok(response.map(ToolSecurityBody::from_full));
        }
    };
    let payload = req.extensions().get::<Payload>().cloned();
    let Some(envelope) = payload.as_ref().and_then(Payload::mcp) else {
        return Ok(not_jsonrpc(payload.as_ref()));
    };
    if let Inspection::Deny(errors) = exchange.inspect(envelope) {
        return Ok(json_response(StatusCode::OK, &errors));
    }
    let batch = envelope.is_batch();
    let limits = exchange.policy().limits;
    let deadline = limits
        .max_execution_time
        .filter(|_| limits.enforce && exchange.has_pending_calls())
        .map(|max| tokio::time::Instant::now() + max);
    let cancel = deadline.map(|_| cancel_fn(&req, inner.clone()));

    let future = inner.call(req);
    let response = match deadline {
        None => future.await?,
        Some(deadline) => match tokio::time::timeout_at(deadline, future).await {
            Ok(response) => response?,
            Err(_) => return Ok(timed_out(exchange, batch, cancel)),
        },
    };
    Ok(respond(&layer, response, exchange, batch, deadline, cancel).await)
}

/// Inspects the upstream's answer: JSON bodies are read (bounded) and rewritten, event
/// streams are rewritten event by event, anything else passes through.
async fn respond<ResBody>(
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
    match mcp::response_kind(response.headers()) {
        ResponseKind::Other => {
            exchange.finish();
            response.map(ToolSecurityBody::inner)
        }
        ResponseKind::EventStream => {
            let (mut parts, body) = response.into_parts();
            parts.headers.remove(CONTENT_LENGTH);
            let max_event = layer.response_limit.bytes();
            let body = EventStreamBody::new(body, exchange, max_event, deadline, cancel);
            Response::from_parts(parts, ToolSecurityBody::events(body))
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
                            invalid_response("the upstream answer is too large to inspect"),
                            "invalid_response",
                        ),
                    };
                    let status = if single_call_limit.is_some() {
                        StatusCode::OK
                    } else {
                        StatusCode::BAD_GATEWAY
                    };
                    let errors = exchange.fail_all(&denial, outcome);
                    return json_response(status, &payload_of(errors, batch));
                }
                Err(BodyError::Read(error)) => {
                    tracing::warn!(%error, "the upstream answer could not be read");
                    let denial = invalid_response("the upstream answer could not be read");
                    let errors = exchange.fail_all(&denial, "invalid_response");
                    return json_response(StatusCode::BAD_GATEWAY, &payload_of(errors, batch));
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
                // An error status with a body that is not JSON-RPC: nothing to inspect.
                Err(_) if !parts.status.is_success() => bytes,
                Err(error) => {
                    tracing::warn!(%error, "the upstream answer is not JSON-RPC");
                    record_rejection(LAYER, rules::INVALID_RESPONSE);
                    let denial = invalid_response("the upstream answer is not valid JSON-RPC");
                    let errors = exchange.fail_all(&denial, "invalid_response");
                    return json_response(StatusCode::BAD_GATEWAY, &payload_of(errors, batch));
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

fn invalid_response(message: &str) -> Denial {
    Denial::forbidden(rules::INVALID_RESPONSE, message).with_code(codes::INTERNAL_ERROR)
}

/// The answer when the tool calls ran out of time: their errors (HTTP 200, so that MCP clients
/// report them as the calls' failures), and the calls cancelled upstream.
fn timed_out<B>(
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
    json_response(StatusCode::OK, &payload_of(errors, batch))
}

/// Sends `notifications/cancelled` upstream for the given calls, through the inner service
/// with the headers of the original request (session, credentials), in the background.
fn cancel_fn<S, ReqBody, ResBody>(req: &Request<RequestBody<ReqBody>>, inner: S) -> CancelFn
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    let uri = req.uri().clone();
    let version = req.version();
    let mut headers = req.headers().clone();
    headers.remove(CONTENT_LENGTH);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let extensions = req.extensions().clone();
    Box::new(move |ids: Vec<Id>| {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut inner = inner;
            for id in ids {
                let notification = json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": { "requestId": id.to_value(), "reason": "maxExecutionTime exceeded" },
                });
                let payload = Payload::from_json(notification);
                let mut request = Request::new(RequestBody::buffered(payload.bytes().clone()));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = uri.clone();
                *request.version_mut() = version;
                *request.headers_mut() = headers.clone();
                request
                    .headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(payload.len()));
                *request.extensions_mut() = extensions.clone();
                request.extensions_mut().insert(payload);
                if poll_fn(|cx| inner.poll_ready(cx)).await.is_err() {
                    return;
                }
                // The answer (202 Accepted) is not needed.
                let _ = inner.call(request).await;
            }
        });
    })
}

/// The caller's identity for audit: JWT subject, API key name, or client certificate.
fn subject_of<B>(req: &Request<B>) -> Option<String> {
    let extensions = req.extensions();
    extensions
        .get::<JwtClaims>()
        .and_then(|claims| claims.subject().map(str::to_owned))
        .or_else(|| {
            extensions
                .get::<ApiKeyInfo>()
                .map(|key| key.name().to_owned())
        })
        .or_else(|| {
            extensions
                .get::<PeerIdentity>()
                .and_then(|peer| peer.spiffe_id.clone().or_else(|| peer.common_name.clone()))
        })
}

/// The answer to a POST body that is not JSON-RPC: a parse error (400).
fn not_jsonrpc<B>(payload: Option<&Payload>) -> Response<ToolSecurityBody<B>> {
    let (code, message) = match payload.map(Payload::json) {
        Some(Ok(json)) => match mcp::from_value(json) {
            Err(error) => (error.code(), error.to_string()),
            Ok(_) => (codes::INVALID_REQUEST, "not a JSON-RPC request".to_owned()),
        },
        _ => (codes::PARSE_ERROR, "the body is not valid JSON".to_owned()),
    };
    record_rejection(LAYER, rules::INVALID_REQUEST);
    let body = mcp::error_response(
        &Id::Null,
        code,
        &message,
        Some(json!({ "status": 400, "layer": LAYER, "reason": rules::INVALID_REQUEST })),
    );
    json_response(StatusCode::BAD_REQUEST, &body)
}

fn json_response<B>(status: StatusCode, body: &Value) -> Response<ToolSecurityBody<B>> {
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
