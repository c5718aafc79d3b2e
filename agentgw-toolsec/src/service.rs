//! [`ToolSecurityService`]: inspects each MCP exchange.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::BoxError;
use agentgw_core::body::{BodyLimit, RequestBody, buffer_request, collect};
use agentgw_core::escalation::{Direction, EscalationEvent};
use agentgw_core::identity::{ApiKeyInfo, BackendName, JwtClaims, PeerIdentity};
use agentgw_core::mcp::{self, Id, codes};
use agentgw_core::rejection::Denied;
use agentgw_core::{Payload, ResponseShape};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use serde_json::Value;
use tower_service::Service;

use crate::audit::LAYER;
use crate::body::ToolSecurityBody;
use crate::denial::{Denial, rules};
use crate::exchange::{Exchange, Inspection};
use crate::future::ResponseFuture;
use crate::layer::ToolSecurityLayer;
use crate::response::{errors_response, json_response, refuse, respond, timed_out};
use crate::upstream::{ClientHead, cancel_fn, fetch_tools};

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
        ResponseFuture::new(handle(self.layer.clone(), inner, req))
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
        let response = err.into_rejection(LAYER).respond_in(&UNKNOWN_ID);
        return Ok(response.map(ToolSecurityBody::from));
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
    if let Some(escalation) = &layer.escalation {
        let origin =
            EscalationEvent::new(LAYER, String::new(), Direction::Request).with_request(&req);
        exchange.escalate_with(escalation.clone(), origin);
    }
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
            return Ok(rejection
                .respond_in(&UNKNOWN_ID)
                .map(ToolSecurityBody::from));
        }
    };
    let payload = req.extensions().get::<Payload>().cloned();
    let Some(envelope) = payload.as_ref().and_then(Payload::mcp) else {
        return Ok(not_jsonrpc(payload.as_ref()));
    };
    let unlisted = exchange.unlisted_tools(envelope);
    #[cfg(feature = "redis")]
    crate::shared_pins::prepare(&layer.policy, &mut exchange, envelope, !unlisted.is_empty()).await;
    if !unlisted.is_empty() {
        // The readied instance sends the listing; it is readied again for the request.
        let head = ClientHead::of(&req);
        if let Err(reason) = fetch_tools(&layer, &mut inner, &head, &mut exchange, unlisted).await {
            tracing::warn!(reason, "could not list the upstream's tools before a call");
        }
        poll_fn(|cx| inner.poll_ready(cx)).await?;
    }
    // `blockPending`: the escalated refusals wait for their decisions first.
    let approvals = exchange.decide_escalations(envelope).await;
    match exchange.inspect_approved(envelope, &approvals) {
        Inspection::Forward => {}
        Inspection::Refuse { id, denial } => return Ok(refuse(denial, &id)),
        // Every request of the batch has its error: the client reads each as that request's.
        Inspection::DenyBatch { errors, rule } => {
            let mut response = json_response(StatusCode::OK, &errors);
            response.extensions_mut().insert(Denied {
                layer: LAYER,
                reason: rule.to_string().into(),
            });
            return Ok(response);
        }
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

/// A request other than a POST, with its body checked to be empty. A body is refused with the
/// JSON-RPC error of each request it carries (see [`errors_response`]; a 400 when it carries
/// none): JSON-RPC messages are POSTed, and a server that read one from a GET would run it
/// uninspected.
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
    let denial = Denial::forbidden(
        rules::INVALID_REQUEST,
        format!(
            "a {} request must not carry a body: JSON-RPC messages are sent with POST",
            parts.method
        ),
    )
    .with_code(codes::INVALID_REQUEST);
    let (ids, batch): (Vec<Id>, bool) = match mcp::parse(&bytes) {
        Ok(envelope) => (
            envelope
                .messages()
                .iter()
                .filter_map(|message| match message {
                    mcp::Message::Request { id, .. } => Some(id.clone()),
                    _ => None,
                })
                .collect(),
            envelope.is_batch(),
        ),
        Err(_) => (Vec::new(), false),
    };
    let errors = if ids.is_empty() {
        vec![(Id::Null, denial)]
    } else {
        ids.into_iter().map(|id| (id, denial.clone())).collect()
    };
    Err(errors_response(errors, batch, StatusCode::BAD_REQUEST))
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

/// The answer to a POST body that is not JSON-RPC: a parse error (400, no id to answer).
fn not_jsonrpc<B>(payload: Option<&Payload>) -> Response<ToolSecurityBody<B>> {
    let (code, message) = match payload.map(Payload::json) {
        Some(Ok(json)) => match mcp::from_value(json) {
            Err(error) => (error.code(), error.to_string()),
            Ok(_) => (codes::INVALID_REQUEST, "not a JSON-RPC request".to_owned()),
        },
        _ => (codes::PARSE_ERROR, "the body is not valid JSON".to_owned()),
    };
    let denial = Denial::forbidden(rules::INVALID_REQUEST, message).with_code(code);
    refuse(denial, &Id::Null)
}

/// The shape of a rejection that answers no request id (the body was not read or is not
/// JSON-RPC): a JSON-RPC error with a `null` id, with the rejection's HTTP status.
const UNKNOWN_ID: ResponseShape = ResponseShape::JsonRpc { id: Value::Null };

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use agentgw_core::rejection::Denied;
    use http_body_util::{BodyExt, Full};
    use serde_json::json;
    use tower_layer::Layer;

    use super::*;
    use crate::config::{AllowedTool, AllowlistConfig, ToolSecurityConfig, UnlistedTools};

    async fn upstream(
        _: Request<RequestBody<Full<Bytes>>>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        unreachable!("every request of these tests is refused before the upstream")
    }

    fn post(body: Value) -> Request<Full<Bytes>> {
        Request::post("/mcp")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    fn call(id: u64, tool: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": tool, "arguments": {}}})
    }

    #[tokio::test]
    async fn refusals_are_marked_denied_for_outer_layers() {
        use tower::ServiceExt;

        let config = ToolSecurityConfig::default()
            .allowlist(AllowlistConfig::default().tools([AllowedTool::new("get-weather")]))
            .unlisted_tools(UnlistedTools::Allow);
        let layer = ToolSecurityLayer::from_config(&config).unwrap();
        let service = layer.layer(tower::service_fn(upstream));

        // One request: core's rejection, HTTP 200 with the request's id.
        let response = service
            .clone()
            .oneshot(post(call(1, "rm-rf")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let denied = response.extensions().get::<Denied>().unwrap();
        assert_eq!((denied.layer, denied.reason.as_ref()), (LAYER, "allowlist"));

        // A batch: an error per request, marked denied with the first refused rule.
        let batch = json!([call(2, "get-weather"), call(3, "rm-rf")]);
        let response = service.oneshot(post(batch)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let denied = response.extensions().get::<Denied>().unwrap();
        assert_eq!(denied.reason.as_ref(), "allowlist");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let errors: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(errors.as_array().map(Vec::len), Some(2));
    }
}
