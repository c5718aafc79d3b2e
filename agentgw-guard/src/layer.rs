//! The tower layer: request guards before the inner service, response guards after it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::body::{BodyLimit, RequestBody, buffer_request, collect, replace_payload};
use agentgw_core::llm::{Direction, Format};
use agentgw_core::path::canonicalize_request;
use agentgw_core::rejection::RouteKind;
use agentgw_core::sse::{DEFAULT_MAX_EVENT_BYTES, Decoder, TransformBody};
use agentgw_core::{BoxError, Payload, Rejection, ResponseShape};
use agentgw_core::{content, ndjson};
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_LENGTH};
use http::{Extensions, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use tower_layer::Layer;
use tower_service::Service;

use crate::config::PromptGuardConfig;
use crate::error::GuardError;
use crate::guard::{Denial, Guards, LAYER};
use crate::transform::GuardTransform;

/// Applies prompt guards to the requests and responses of the inner service.
///
/// Request guards run on the buffered request body (its LLM text segments, or every string of
/// other JSON, or the raw text): a `Reject` match answers with the guard's rejection (403 by
/// default, an OpenAI-style error on LLM routes) without calling the inner service; `Mask`
/// matches are replaced and the rewritten body is forwarded. Response guards mask (or cut)
/// JSON and text responses, and event streams event by event. See the [crate docs](crate) for
/// examples.
///
/// Cheap to clone: the compiled guards are shared.
#[derive(Clone)]
pub struct PromptGuardLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    request: Guards,
    response: Arc<Guards>,
    limit: BodyLimit,
    max_event_bytes: usize,
}

impl PromptGuardLayer {
    /// Validates and compiles `config`.
    ///
    /// # Errors
    ///
    /// A [`GuardError`] naming the field at fault, e.g.
    /// `invalid regex in promptGuard.request[0].regex.matches[2].pattern: ...`.
    pub fn from_config(config: &PromptGuardConfig) -> Result<Self, GuardError> {
        let limit = config
            .max_body_bytes
            .map_or(BodyLimit::DEFAULT, BodyLimit::new);
        Ok(PromptGuardLayer {
            shared: Arc::new(Shared {
                request: Guards::compile(&config.request, Direction::Request)?,
                response: Arc::new(Guards::compile(&config.response, Direction::Response)?),
                limit,
                max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            }),
        })
    }

    /// Sets the largest event of a response stream (an SSE event, or a line of a JSON-lines
    /// stream), in bytes (default 1 MiB); a larger one ends the stream with an error.
    #[must_use]
    pub fn max_event_bytes(self, bytes: usize) -> Self {
        self.with(|shared| Shared {
            max_event_bytes: bytes,
            ..shared
        })
    }

    /// Sets the largest request or non-streamed response body inspected, in bytes.
    #[must_use]
    pub fn max_body_bytes(self, bytes: usize) -> Self {
        self.with(|shared| Shared {
            limit: BodyLimit::new(bytes),
            ..shared
        })
    }

    fn with(self, f: impl FnOnce(Shared) -> Shared) -> Self {
        let shared = Arc::try_unwrap(self.shared).unwrap_or_else(|shared| Shared {
            request: shared.request.clone(),
            response: Arc::clone(&shared.response),
            limit: shared.limit,
            max_event_bytes: shared.max_event_bytes,
        });
        PromptGuardLayer {
            shared: Arc::new(f(shared)),
        }
    }
}

impl fmt::Debug for PromptGuardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptGuardLayer")
            .field("request_guards", &self.shared.request.guards.len())
            .field("response_guards", &self.shared.response.guards.len())
            .field("limit", &self.shared.limit)
            .finish()
    }
}

impl<S> Layer<S> for PromptGuardLayer {
    type Service = PromptGuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PromptGuardService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`PromptGuardLayer`].
#[derive(Clone)]
pub struct PromptGuardService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for PromptGuardService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptGuardService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for PromptGuardService<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The readied service handles this request; the clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        ResponseFuture {
            inner: Box::pin(async move {
                let req = match guard_request(&shared, req).await {
                    Ok(req) => req,
                    Err(denied) => return Ok(denied.map(GuardBody::full)),
                };
                let shape = ResponseShape::for_request(&req);
                let res = inner.call(req).await?;
                Ok(guard_response(&shared, &shape, res).await)
            }),
        }
    }
}

type BoxFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<GuardBody<B>>, E>> + Send>>;

/// The response future of [`PromptGuardService`].
pub struct ResponseFuture<B, E> {
    inner: BoxFuture<B, E>,
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

type Denied = Response<Full<Bytes>>;

/// Buffers and guards the request; `Err` is the response that denies it.
async fn guard_request<B>(
    shared: &Shared,
    mut req: Request<B>,
) -> Result<Request<RequestBody<B>>, Denied>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // The path picks the LLM format the body is read in: read it as the upstream will.
    if let Err(rejection) = canonicalize_request(&mut req).map_err(|e| e.into_rejection(LAYER)) {
        rejection.record();
        return Err(rejection.into_response_for(&req));
    }
    if shared.request.is_empty() {
        let mut req = req.map(RequestBody::streaming);
        prefer_identity_encoding(shared, &mut req);
        return Ok(req);
    }
    let path = req.uri().path().to_owned();
    let route_kind = req.extensions().get::<RouteKind>().copied();
    let mut req = match buffer_request(req, shared.limit).await {
        Ok(req) => req,
        Err(rejection) => {
            rejection.record();
            let mut extensions = Extensions::new();
            if let Some(kind) = route_kind {
                extensions.insert(kind);
            }
            return Err(rejection.into_response(&ResponseShape::from_parts(&path, &extensions)));
        }
    };
    prefer_identity_encoding(shared, &mut req);
    let Some(payload) = req.extensions().get::<Payload>().cloned() else {
        return Ok(req);
    };
    let outcome = match payload.json() {
        Ok(json) => shared
            .request
            .apply_json(json, Format::from_path(&path), Direction::Request)
            .map(|json| json.map(Payload::from_json)),
        Err(_) => match payload.text() {
            Ok(text) => shared
                .request
                .apply(None, text)
                .map(|text| text.map(|t| Payload::new(Bytes::from(t)))),
            // Binary bodies are checked for rejections but never rewritten.
            Err(_) => shared
                .request
                .apply(None, &String::from_utf8_lossy(payload.bytes()))
                .map(|_| None),
        },
    };
    match outcome {
        Ok(None) => Ok(req),
        Ok(Some(payload)) => {
            replace_payload(&mut req, payload);
            Ok(req)
        }
        Err(denial) => {
            let rejection = rejection(&shared.request, &denial);
            Err(rejection.into_response_for(&req))
        }
    }
}

/// Response guards cannot read compressed bodies: ask the upstream for none.
fn prefer_identity_encoding<B>(shared: &Shared, req: &mut Request<B>) {
    if !shared.response.is_empty() {
        req.headers_mut()
            .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
}

fn rejection(guards: &Guards, denial: &Denial) -> Rejection {
    let rejection = guards.get(denial.guard).rejection(&denial.rule);
    rejection.record();
    rejection
}

fn uninspectable(reason: &'static str) -> Rejection {
    let rejection = Rejection::new(StatusCode::BAD_GATEWAY, LAYER, reason)
        .with_message("The response could not be inspected by the prompt guard");
    rejection.record();
    tracing::debug!(reason, "prompt guard failed closed on a response");
    rejection
}

/// What kind of body a response carries, from its headers.
enum Kind {
    EventStream,
    /// Line-delimited JSON: masked line by line, as a stream.
    JsonLines,
    Json,
    Text,
    Other,
}

fn kind(headers: &http::HeaderMap) -> Kind {
    match content::media_type(headers) {
        content::MediaType::EventStream => Kind::EventStream,
        content::MediaType::NdJson => Kind::JsonLines,
        content::MediaType::Json | content::MediaType::JsonSuffix => Kind::Json,
        content::MediaType::Text | content::MediaType::Missing => Kind::Text,
        // A type two parsers could read differently is not inspected as either.
        _ => Kind::Other,
    }
}

async fn guard_response<B>(
    shared: &Shared,
    shape: &ResponseShape,
    res: Response<B>,
) -> Response<GuardBody<B>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if shared.response.is_empty() {
        return res.map(GuardBody::inner);
    }
    let (mut parts, body) = res.into_parts();
    let no_body = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
        || body.is_end_stream();
    if no_body {
        return Response::from_parts(parts, GuardBody::inner(body));
    }
    let fail = |reason| {
        uninspectable(reason)
            .into_response(shape)
            .map(GuardBody::full)
    };
    // Every `Content-Encoding` field counts: `identity` in the first and `gzip` in a second
    // is still gzip to the client.
    if content::is_encoded(&parts.headers) {
        return fail("response_encoded");
    }
    let kind = kind(&parts.headers);
    if let Kind::EventStream = kind {
        parts.headers.remove(CONTENT_LENGTH);
        let transform = GuardTransform::new(Arc::clone(&shared.response));
        let body = TransformBody::new(body, transform, Decoder::new(shared.max_event_bytes));
        return Response::from_parts(parts, GuardBody::stream(body));
    }
    if let Kind::JsonLines = kind {
        parts.headers.remove(CONTENT_LENGTH);
        let transform = GuardTransform::new(Arc::clone(&shared.response));
        let decoder = ndjson::Decoder::new(shared.max_event_bytes);
        let body = TransformBody::new(body, transform, decoder);
        return Response::from_parts(
            parts,
            GuardBody {
                kind: BodyKind::Lines { body },
            },
        );
    }
    if let Kind::Other = kind {
        return fail("response_not_text");
    }
    let Ok(bytes) = collect(body, shared.limit).await else {
        return fail("response_unreadable");
    };
    // Clients parse JSON without looking at the type (`response.json()`): a text body that
    // opens like JSON is read as JSON, or an escaped secret would pass a text scan.
    let json = matches!(kind, Kind::Json) || content::starts_like_json(&bytes);
    let outcome = if json {
        match agentgw_core::json::parse_unique_keys(&bytes) {
            Ok(json) => shared
                .response
                .apply_json(&json, None, Direction::Response)
                .map(|json| {
                    json.and_then(|j| serde_json::to_vec(&j).ok())
                        .map(Bytes::from)
                }),
            Err(_) => return fail("response_invalid_json"),
        }
    } else {
        match std::str::from_utf8(&bytes) {
            Ok(text) => shared
                .response
                .apply(None, text)
                .map(|text| text.map(Bytes::from)),
            Err(_) => return fail("response_invalid_utf8"),
        }
    };
    let bytes = match outcome {
        Ok(None) => bytes,
        Ok(Some(rewritten)) => rewritten,
        Err(denial) => {
            return rejection(&shared.response, &denial)
                .into_response(shape)
                .map(GuardBody::full);
        }
    };
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Response::from_parts(parts, GuardBody::full(Full::new(bytes)))
}

pin_project! {
    /// The response body of [`PromptGuardService`]: the inner body untouched, a buffered
    /// (possibly masked) body, an event stream masked event by event, or a JSON-lines stream
    /// masked line by line.
    pub struct GuardBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyKindProj]
    enum BodyKind<B> {
        Inner { #[pin] body: B },
        Full { #[pin] body: Full<Bytes> },
        Stream { #[pin] body: TransformBody<B, GuardTransform> },
        Lines { #[pin] body: TransformBody<B, GuardTransform, ndjson::Decoder> },
    }
}

impl<B> GuardBody<B> {
    fn inner(body: B) -> Self {
        GuardBody {
            kind: BodyKind::Inner { body },
        }
    }

    fn full(body: Full<Bytes>) -> Self {
        GuardBody {
            kind: BodyKind::Full { body },
        }
    }

    fn stream(body: TransformBody<B, GuardTransform>) -> Self {
        GuardBody {
            kind: BodyKind::Stream { body },
        }
    }
}

impl<B> Body for GuardBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            BodyKindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            BodyKindProj::Full { body } => body.poll_frame(cx).map_err(|never| match never {}),
            BodyKindProj::Stream { body } => body.poll_frame(cx),
            BodyKindProj::Lines { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Full { body } => body.is_end_stream(),
            BodyKind::Stream { body } => body.is_end_stream(),
            BodyKind::Lines { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Full { body } => body.size_hint(),
            BodyKind::Stream { body } => body.size_hint(),
            BodyKind::Lines { body } => body.size_hint(),
        }
    }
}

impl<B> fmt::Debug for GuardBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            BodyKind::Inner { .. } => "inner",
            BodyKind::Full { .. } => "full",
            BodyKind::Stream { .. } => "stream",
            BodyKind::Lines { .. } => "lines",
        };
        f.debug_struct("GuardBody").field("kind", &kind).finish()
    }
}
