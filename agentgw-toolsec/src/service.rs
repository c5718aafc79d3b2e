//! [`ToolSecurityService`]: inspects each MCP exchange.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agentgw_core::BoxError;
use agentgw_core::body::{BodyError, BodyLimit, RequestBody, buffer_request, collect};
use agentgw_core::identity::{ApiKeyInfo, BackendName, JwtClaims, PeerIdentity};
use agentgw_core::mcp::{self, Id, Message, ResponseKind, codes, methods};
use agentgw_core::metrics::record_rejection;
use agentgw_core::sse::{Decoder, Frame};
use agentgw_core::{Payload, ResponseShape};
use bytes::Bytes;
use http::header::{
    ACCEPT, CONTENT_DISPOSITION, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH,
    CONTENT_LOCATION, CONTENT_RANGE, CONTENT_TYPE, ETAG, EXPECT, LAST_MODIFIED, TRANSFER_ENCODING,
};
use http::{
    Extensions, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use http_body::Body;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower_service::Service;

use crate::audit::LAYER;
use crate::body::{CancelFn, EventStreamBody, ToolSecurityBody};
use crate::denial::{Denial, rules};
use crate::exchange::{
    Exchange, Inspection, error_message, invalid_answer, output_too_large, payload_of,
};
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
    mut req: Request<ReqBody>,
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
    // The path audited and forwarded is the one the upstream routes on.
    if let Err(err) = agentgw_core::path::canonicalize_request(&mut req) {
        let rejection = err.into_rejection(LAYER);
        rejection.record();
        let response = rejection.into_response(&ResponseShape::JsonRpc { id: Value::Null });
        return Ok(response.map(ToolSecurityBody::from_full));
    }
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
        // GET opens the server's stream (which may replay answers), DELETE ends a session:
        // neither carries a body, and a body on them would reach the server uninspected.
        let req = match without_body(req, layer.body_limit).await {
            Ok(req) => req,
            Err(response) => return Ok(response),
        };
        let response = inner.call(req).await?;
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
    let unlisted = exchange.unlisted_tools(envelope);
    if !unlisted.is_empty() {
        // The readied instance sends the listing; it is readied again for the request.
        let head = ClientHead::of(&req);
        if let Err(reason) = fetch_tools(&layer, &mut inner, &head, &mut exchange, unlisted).await {
            tracing::warn!(reason, "could not list the upstream's tools before a call");
        }
        poll_fn(|cx| inner.poll_ready(cx)).await?;
    }
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

/// A request other than a POST, with its body checked to be empty. A body is refused (400,
/// with the ids of the JSON-RPC requests it carries): JSON-RPC messages are POSTed, and a
/// server that read one from a GET would run it uninspected.
async fn without_body<B, ResBody>(
    req: Request<B>,
    limit: BodyLimit,
) -> Result<Request<RequestBody<B>>, Response<ToolSecurityBody<ResBody>>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if req.body().is_end_stream() {
        return Ok(req.map(RequestBody::streaming));
    }
    let (parts, body) = req.into_parts();
    let bytes = match collect(body, limit).await {
        Ok(bytes) if bytes.is_empty() => {
            return Ok(Request::from_parts(parts, RequestBody::buffered(bytes)));
        }
        Ok(bytes) => bytes,
        Err(_) => Bytes::new(),
    };
    record_rejection(LAYER, rules::INVALID_REQUEST);
    let denial = Denial::forbidden(
        rules::INVALID_REQUEST,
        format!(
            "a {} request must not carry a body: JSON-RPC messages are sent with POST",
            parts.method
        ),
    )
    .with_code(codes::INVALID_REQUEST);
    let ids: Vec<Id> = mcp::parse(&bytes)
        .map(|envelope| {
            envelope
                .messages()
                .iter()
                .filter_map(|message| match message {
                    mcp::Message::Request { id, .. } => Some(id.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let errors = if ids.is_empty() {
        vec![error_message(Id::Null, &denial)]
    } else {
        ids.into_iter()
            .map(|id| error_message(id, &denial))
            .collect()
    };
    let batch = errors.len() > 1;
    Err(json_response(
        StatusCode::BAD_REQUEST,
        &payload_of(errors, batch),
    ))
}

/// The most `tools/list` pages the layer requests to find the tools of a call.
const MAX_LIST_PAGES: usize = 32;
/// How long the layer waits for one page of its own `tools/list`.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// Lists the upstream's tools through `inner`, on the session and with the credentials of
/// `req`, page by page until every tool of `wanted` was seen (or the pages end); each page is
/// validated and recorded as a client's `tools/list` answer would be. `inner` is ready when
/// called and must be readied again afterwards.
async fn fetch_tools<S, ReqBody, ResBody>(
    layer: &ToolSecurityLayer,
    inner: &mut S,
    head: &ClientHead,
    exchange: &mut Exchange,
    mut wanted: Vec<String>,
) -> Result<(), &'static str>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let mut cursor: Option<String> = None;
    for page in 0..MAX_LIST_PAGES {
        if page > 0 {
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(|_| "the upstream service is not ready")?;
        }
        let id = format!("agentgw-toolsec-list-{page}");
        let mut list = json!({"jsonrpc": "2.0", "id": id, "method": methods::TOOLS_LIST});
        if let Some(cursor) = &cursor {
            list["params"] = json!({ "cursor": cursor });
        }
        let request = head.request(list);
        let answer = async {
            let response = inner
                .call(request)
                .await
                .map_err(|_| "the upstream failed")?;
            read_answer(response, &Id::String(id), layer.response_limit).await
        };
        let mut result = tokio::time::timeout(LIST_TIMEOUT, answer)
            .await
            .map_err(|_| "the upstream's tools/list timed out")??;
        let Some(tools) = mcp::tools_from_list_result(&result) else {
            return Err("the upstream's tools/list answer has no tool list");
        };
        wanted.retain(|name| {
            !tools
                .iter()
                .any(|tool| tool.get("name").and_then(Value::as_str) == Some(name))
        });
        // Every tool of the page is recorded, even those the call does not need.
        exchange.record_list(&mut result);
        let next = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .filter(|next| !next.is_empty() && cursor.as_deref() != Some(*next));
        match next {
            Some(next) if !wanted.is_empty() => cursor = Some(next.to_owned()),
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// The result of the answer to request `id` in `response` (a JSON body or an event stream).
async fn read_answer<B>(
    response: Response<B>,
    id: &Id,
    limit: BodyLimit,
) -> Result<Value, &'static str>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if !response.status().is_success() {
        return Err("the upstream answered with an error status");
    }
    let find = |envelope: mcp::Envelope| {
        envelope
            .into_messages()
            .into_iter()
            .find_map(|message| match message {
                Message::Response {
                    id: answered,
                    result,
                } if answered == *id => Some(Ok(result)),
                Message::Error { id: answered, .. } if answered == *id => {
                    Some(Err("the upstream answered tools/list with an error"))
                }
                _ => None,
            })
    };
    match mcp::response_kind(response.headers()) {
        ResponseKind::Json => {
            let bytes = collect(response.into_body(), limit)
                .await
                .map_err(|_| "the upstream's answer could not be read")?;
            let envelope =
                mcp::parse(&bytes).map_err(|_| "the upstream's answer is not JSON-RPC")?;
            find(envelope).unwrap_or(Err("the upstream did not answer tools/list"))
        }
        ResponseKind::EventStream => {
            let mut body = std::pin::pin!(response.into_body());
            let mut decoder = Decoder::new(limit.bytes());
            let mut frames = Vec::new();
            let mut read = 0usize;
            while let Some(frame) = body.as_mut().frame().await {
                let frame = frame.map_err(|_| "the upstream's answer could not be read")?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                read += data.len();
                if read > limit.bytes() {
                    return Err("the upstream's answer is too large");
                }
                decoder
                    .decode(&data, &mut frames)
                    .map_err(|_| "the upstream's event stream is malformed")?;
                for frame in frames.drain(..) {
                    let Frame::Event(event) = frame else {
                        continue;
                    };
                    if let Ok(Some(envelope)) = mcp::parse_sse_data(&event.data)
                        && let Some(answer) = find(envelope)
                    {
                        return answer;
                    }
                }
            }
            Err("the upstream did not answer tools/list")
        }
        ResponseKind::Untyped | ResponseKind::Unsupported => {
            Err("the upstream's answer has a content type that cannot be inspected")
        }
    }
}

/// Inspects the upstream's answer: JSON bodies are read (bounded) and rewritten, event
/// streams are rewritten event by event. What cannot be inspected is not forwarded: a
/// successful answer that is neither JSON nor an event stream (or is encoded) becomes a 502
/// JSON-RPC error; an error status keeps its status and headers, and a body that is not
/// JSON-RPC is replaced by a JSON-RPC error. Empty answers without a content type (the
/// `202 Accepted` of a notification) pass.
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
    let success = response.status().is_success();
    match mcp::response_kind(response.headers()) {
        ResponseKind::EventStream if success => {
            let (mut parts, body) = response.into_parts();
            parts.headers.remove(CONTENT_LENGTH);
            let max_event = layer.response_limit.bytes();
            let body = EventStreamBody::new(body, exchange, max_event, deadline, cancel);
            Response::from_parts(parts, ToolSecurityBody::events(body))
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
                    let denial = invalid_answer("the upstream answer could not be read");
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
/// each request waiting (one with a `null` id when none is), with status 502 in place of a
/// success, or the upstream's error status (and its other headers) kept.
fn uninspectable<B>(
    mut parts: http::response::Parts,
    mut exchange: Exchange,
    batch: bool,
    message: &str,
) -> Response<ToolSecurityBody<B>> {
    let status = if parts.status.is_success() {
        StatusCode::BAD_GATEWAY
    } else {
        parts.status
    };
    let message = if parts.status.is_success() {
        message.to_owned()
    } else {
        format!("{message} (upstream status {})", parts.status.as_u16())
    };
    let denial = invalid_answer(&message);
    let mut errors = exchange.fail_all(&denial, "invalid_response");
    exchange.finish();
    if errors.is_empty() {
        record_rejection(LAYER, rules::INVALID_RESPONSE);
        errors.push(error_message(Id::Null, &denial));
    }
    let body = Bytes::from(serde_json::to_vec(&payload_of(errors, batch)).unwrap_or_default());
    // The headers that described the upstream's body do not describe this one.
    for name in [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        CONTENT_ENCODING,
        CONTENT_LANGUAGE,
        CONTENT_LOCATION,
        CONTENT_RANGE,
        CONTENT_DISPOSITION,
        ETAG,
        LAST_MODIFIED,
    ] {
        parts.headers.remove(name);
    }
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    parts.status = status;
    Response::from_parts(parts, ToolSecurityBody::full(body))
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
    let head = ClientHead::of(req);
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
                let request = head.request(notification);
                if poll_fn(|cx| inner.poll_ready(cx)).await.is_err() {
                    return;
                }
                // The answer (202 Accepted) is not needed.
                let _ = inner.call(request).await;
            }
        });
    })
}

/// What the layer's own requests to the upstream take from the client's request: the URI,
/// version, headers (session, credentials) and extensions.
struct ClientHead {
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
}

impl ClientHead {
    fn of<B>(req: &Request<B>) -> Self {
        let mut headers = req.headers().clone();
        for name in [CONTENT_ENCODING, TRANSFER_ENCODING, EXPECT] {
            headers.remove(name);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        Self {
            uri: req.uri().clone(),
            version: req.version(),
            headers,
            extensions: req.extensions().clone(),
        }
    }

    /// A POST of `message` on the client's session.
    fn request<B>(&self, message: Value) -> Request<RequestBody<B>> {
        let payload = Payload::from_json(message);
        let mut request = Request::new(RequestBody::buffered(payload.bytes().clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(payload.len()));
        *request.extensions_mut() = self.extensions.clone();
        request.extensions_mut().insert(payload);
        request
    }
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
