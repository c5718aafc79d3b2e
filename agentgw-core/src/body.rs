//! Bounded body collection and the body types layers hand on.
//!
//! A layer that needs to read a request body calls [`buffer_request`]: the first such layer in a
//! stack reads the body (never more than the [`BodyLimit`]), stores it as a [`Payload`] in the
//! request extensions, and hands the inner service the same bytes as a [`RequestBody`]. Every
//! later layer finds the [`Payload`] and reads nothing. A layer that rewrites the body calls
//! [`replace_payload`] so the bytes, the cached JSON and `content-length` stay in step.
//!
//! A request no body-reading policy touches is never buffered: its body streams through as
//! [`RequestBody::Streaming`].
//!
//! # Example
//!
//! ```
//! use agentgw_core::body::{buffer_request, BodyLimit};
//! use agentgw_core::Payload;
//! use http::{Request, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use bytes::Bytes;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let req = Request::new(Full::new(Bytes::from_static(br#"{"model":"gpt-4"}"#)));
//! let req = buffer_request(req, BodyLimit::new(1024)).await.unwrap();
//!
//! // Later layers read the cached payload instead of the body.
//! let payload = req.extensions().get::<Payload>().unwrap();
//! assert_eq!(payload.json().unwrap()["model"], "gpt-4");
//!
//! // The inner service still receives the same bytes.
//! let bytes = req.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(&bytes[..], br#"{"model":"gpt-4"}"#);
//!
//! // Over the limit is a 413 rejection, not an unbounded read.
//! let big = Request::new(Full::new(Bytes::from(vec![b'x'; 2048])));
//! let rejection = buffer_request(big, BodyLimit::new(1024)).await.unwrap_err();
//! assert_eq!(rejection.status(), StatusCode::PAYLOAD_TOO_LARGE);
//! # }
//! ```

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderValue, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use pin_project_lite::pin_project;

use crate::BoxError;
use crate::content::{MediaType, content_codings, media_type, starts_like_json};
use crate::decode::{DecodeLimits, EncodedBodies, decode, unsupported_encoding};
use crate::json::JsonError;
use crate::llm::Format;
use crate::mcp;
use crate::payload::Payload;
use crate::rejection::{Rejection, RouteKind};

/// The largest body a layer reads into memory, in bytes.
///
/// The default is 16 MiB. Bodies larger than the limit are rejected with `413 Payload Too Large`
/// before (when `content-length` says so) or while they are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyLimit(usize);

impl BodyLimit {
    /// The default limit: 16 MiB.
    pub const DEFAULT: BodyLimit = BodyLimit(16 * 1024 * 1024);

    /// A limit of `bytes` bytes.
    pub const fn new(bytes: usize) -> Self {
        BodyLimit(bytes)
    }

    /// The limit in bytes.
    pub const fn bytes(self) -> usize {
        self.0
    }
}

impl Default for BodyLimit {
    fn default() -> Self {
        BodyLimit::DEFAULT
    }
}

/// The error a request body yields when the client did not send it in time: set by the server
/// (for example `agentgw-tls`'s `requestBodyTimeout`), found by [`BodyError::into_rejection`]
/// anywhere in a read error's source chain and answered with `408 Request Timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request body not received within {0:?}")]
pub struct BodyReadTimeout(pub std::time::Duration);

impl BodyReadTimeout {
    /// Whether `err`, or one of its sources, is a [`BodyReadTimeout`].
    pub fn is_cause_of(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(err);
        while let Some(err) = next {
            if err.is::<BodyReadTimeout>() {
                return true;
            }
            // `io::Error::source` skips the error it wraps: look inside it.
            if let Some(inner) = err
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                && BodyReadTimeout::is_cause_of(inner)
            {
                return true;
            }
            next = err.source();
        }
        false
    }
}

/// Why a body could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the configured limit.
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// The underlying body failed (for example, the client disconnected).
    #[error("failed to read body: {0}")]
    Read(#[source] BoxError),
}

impl BodyError {
    /// The rejection a client sees for this error: 413 for [`BodyError::TooLarge`], 408 for a
    /// [`BodyReadTimeout`], 400 otherwise.
    pub fn into_rejection(self, layer: &'static str) -> Rejection {
        match self {
            BodyError::TooLarge { .. } => {
                Rejection::new(StatusCode::PAYLOAD_TOO_LARGE, layer, "body_too_large")
                    .with_message("request body too large")
            }
            BodyError::Read(err) if BodyReadTimeout::is_cause_of(err.as_ref()) => {
                Rejection::new(StatusCode::REQUEST_TIMEOUT, layer, "body_read_timeout")
                    .with_message("request body not received in time")
            }
            BodyError::Read(_) => Rejection::new(StatusCode::BAD_REQUEST, layer, "body_read_error")
                .with_message("failed to read request body"),
        }
    }
}

/// Collects `body` into one [`Bytes`], reading at most `limit` bytes.
///
/// A body whose size hint already exceeds the limit is refused without reading it.
pub async fn collect<B>(body: B, limit: BodyLimit) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > limit.0 as u64 {
        return Err(BodyError::TooLarge { limit: limit.0 });
    }
    match Limited::new(body, limit.0).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(BodyError::TooLarge { limit: limit.0 }),
        Err(err) => Err(BodyError::Read(err)),
    }
}

/// The future of [`buffer_request`], boxed so that a layer's named response future can hold it
/// (an `async fn`'s future has no name). See [`buffer_request_boxed`].
pub type BufferFuture<B> =
    Pin<Box<dyn std::future::Future<Output = Result<Request<RequestBody<B>>, Rejection>> + Send>>;

/// [`buffer_request`] as a [`BufferFuture`]: one allocation per buffered request, next to a body
/// read that costs far more.
pub fn buffer_request_boxed<B>(req: Request<B>, limit: BodyLimit) -> BufferFuture<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Box::pin(buffer_request(req, limit))
}

/// Makes sure `req` carries a [`Payload`], reading the body (bounded by `limit`) if no earlier
/// layer did, and interpreting it the one way every layer and the upstream will.
///
/// On success the returned request has a [`Payload`] extension and a body that yields exactly the
/// payload's bytes. On the way, in this order:
///
/// 1. a body over the limit is a 413 [`Rejection`]; a body that fails to read is a 400;
/// 2. a `Content-Encoding` other than `identity` is decoded (bounded, see [`crate::decode`]) and
///    the decoded body is what is inspected *and forwarded*, without `Content-Encoding`; with
///    [`EncodedBodies::Refuse`] in the request extensions, or an unknown coding, it is a 415;
/// 3. a body that is meant to be JSON must be strict JSON ([`crate::json`]), or it is a 400: on
///    LLM and MCP routes (a [`RouteKind`] extension, or an LLM API path), with a JSON (or
///    ambiguous) `Content-Type`, or when the body starts like JSON (`{`, `[`, a byte-order mark,
///    UTF-16). Such a body is never scanned as raw text and forwarded. The verdict and any
///    parsed value are cached in the [`Payload`]: nothing parses it twice.
///
/// See the [module docs](self) for an example.
pub async fn buffer_request<B>(
    req: Request<B>,
    limit: BodyLimit,
) -> Result<Request<RequestBody<B>>, Rejection>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if req.extensions().get::<Payload>().is_some() {
        // An outer layer already buffered: the body it handed on is the payload's bytes.
        return Ok(req.map(RequestBody::streaming));
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit.0 as u64) {
        return Err(BodyError::TooLarge { limit: limit.0 }.into_rejection(LAYER));
    }
    let codings = content_codings(req.headers()).map_err(|_| unsupported_encoding(LAYER))?;
    let policy = req
        .extensions()
        .get::<EncodedBodies>()
        .copied()
        .unwrap_or_default();
    if !codings.is_empty() && policy == EncodedBodies::Refuse {
        return Err(unsupported_encoding(LAYER));
    }
    let (mut parts, body) = req.into_parts();
    let mut bytes = collect(body, limit)
        .await
        .map_err(|e| e.into_rejection(LAYER))?;
    if !codings.is_empty() {
        bytes = decode(&bytes, &codings, &DecodeLimits::new(limit))
            .map_err(|e| e.into_rejection(LAYER))?;
        parts.headers.remove(CONTENT_ENCODING);
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len() as u64));
    }
    let payload = Payload::new(bytes.clone());
    // The verdict only: a plain body is not parsed into a tree until a layer needs one.
    if json_expected(&parts, &bytes)
        && let Err(err) = payload.check()
    {
        return Err(not_strict_json(err));
    }
    parts.extensions.insert(payload);
    Ok(Request::from_parts(parts, RequestBody::buffered(bytes)))
}

/// The layer name on rejections of [`buffer_request`].
const LAYER: &str = "body";

/// Whether a body must be read as JSON. See [`buffer_request`].
fn json_expected(parts: &http::request::Parts, bytes: &[u8]) -> bool {
    if matches!(
        parts.extensions.get::<RouteKind>(),
        Some(RouteKind::Llm | RouteKind::Mcp)
    ) {
        return true;
    }
    let media = media_type(&parts.headers);
    if media.is_json() || media == MediaType::Ambiguous {
        return true;
    }
    if Format::from_path(parts.uri.path()).is_some() {
        return true;
    }
    starts_like_json(bytes)
}

fn not_strict_json(err: &JsonError) -> Rejection {
    let message = match err {
        JsonError::Empty => "request body is empty",
        JsonError::InvalidUtf8 { .. } => "request body is not UTF-8 JSON",
        JsonError::DuplicateKey { .. } => {
            "request body has a duplicate key (compared ignoring ASCII case)"
        }
        JsonError::FieldCase { .. } => "request body has a field name in the wrong case",
        _ => "request body is not valid JSON",
    };
    Rejection::new(StatusCode::BAD_REQUEST, LAYER, err.reason())
        .with_message(message)
        .with_jsonrpc_code(mcp::codes::PARSE_ERROR)
}

/// Replaces the body of `req` with `payload`: the body yields the payload's bytes, the
/// [`Payload`] extension is updated and `content-length` is set to the new length.
pub fn replace_payload<B>(req: &mut Request<RequestBody<B>>, payload: Payload) {
    let len = payload.bytes().len();
    *req.body_mut() = RequestBody::buffered(payload.bytes().clone());
    req.extensions_mut().insert(payload);
    req.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len as u64));
}

pin_project! {
    /// A request body as a layer hands it on: the original stream, or bytes read into memory.
    #[project = RequestBodyProj]
    // pin-project-lite accepts no doc comments on variant fields; each field is the variant's body.
    #[allow(missing_docs)]
    #[derive(Debug)]
    pub enum RequestBody<B> {
        /// The body as it came, not read by this layer.
        Streaming {
            #[pin]
            body: B,
        },
        /// Bytes a layer read (and possibly rewrote).
        Buffered {
            #[pin]
            body: Full<Bytes>,
        },
    }
}

impl<B> RequestBody<B> {
    /// A body passed through unread.
    pub fn streaming(body: B) -> Self {
        RequestBody::Streaming { body }
    }

    /// A body made of `bytes`.
    pub fn buffered(bytes: impl Into<Bytes>) -> Self {
        RequestBody::Buffered {
            body: Full::new(bytes.into()),
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            RequestBodyProj::Streaming { body } => body.poll_frame(cx),
            RequestBodyProj::Buffered { body } => body.poll_frame(cx).map_err(never),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Streaming { body } => body.is_end_stream(),
            RequestBody::Buffered { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Streaming { body } => body.size_hint(),
            RequestBody::Buffered { body } => body.size_hint(),
        }
    }
}

pin_project! {
    /// The response body of every agentgw layer: the inner service's body passed through, bytes
    /// the layer produced (a denial, a rewritten answer), or the inner body transformed as it
    /// streams (`T`, for example an [`sse::TransformBody`](crate::sse::TransformBody) that masks
    /// event by event).
    ///
    /// Layers name it with their own transform (`ResponseBody<B, GuardStream<B>>`); a layer that
    /// never transforms uses the default [`NoTransform`]. Errors of the inner body and of the
    /// transform are boxed, as hyper and axum expect.
    #[project = ResponseBodyProj]
    // pin-project-lite accepts no doc comments on variant fields; each field is the variant's body.
    #[allow(missing_docs)]
    #[derive(Debug)]
    pub enum ResponseBody<B, T = NoTransform> {
        /// The inner service's body, passed through.
        Inner {
            #[pin]
            body: B,
        },
        /// Bytes produced by the layer.
        Full {
            #[pin]
            body: Full<Bytes>,
        },
        /// The inner service's body, transformed while it streams.
        Transformed {
            #[pin]
            body: T,
        },
    }
}

impl<B, T> ResponseBody<B, T> {
    /// Passes the inner service's body through.
    pub fn inner(body: B) -> Self {
        ResponseBody::Inner { body }
    }

    /// A body made of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody::Full {
            body: Full::new(bytes.into()),
        }
    }

    /// A transformed body.
    pub fn transformed(body: T) -> Self {
        ResponseBody::Transformed { body }
    }
}

impl<B, T> From<Full<Bytes>> for ResponseBody<B, T> {
    fn from(body: Full<Bytes>) -> Self {
        ResponseBody::Full { body }
    }
}

impl<B, T> Body for ResponseBody<B, T>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    T: Body<Data = Bytes>,
    T::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            ResponseBodyProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            ResponseBodyProj::Full { body } => body.poll_frame(cx).map_err(never),
            ResponseBodyProj::Transformed { body } => body.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Inner { body } => body.is_end_stream(),
            ResponseBody::Full { body } => body.is_end_stream(),
            ResponseBody::Transformed { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Inner { body } => body.size_hint(),
            ResponseBody::Full { body } => body.size_hint(),
            ResponseBody::Transformed { body } => body.size_hint(),
        }
    }
}

/// The transform of a [`ResponseBody`] whose layer never transforms: it has no value.
#[derive(Debug, Clone, Copy)]
pub enum NoTransform {}

impl Body for NoTransform {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match *self {}
    }
}

fn never<E>(never: Infallible) -> E {
    match never {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body_util::StreamBody;

    fn chunked(
        parts: Vec<&'static [u8]>,
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>>> {
        StreamBody::new(stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, BoxError>(Frame::data(Bytes::from_static(p)))),
        ))
    }

    #[tokio::test]
    async fn collects_chunked_body_within_limit() {
        let body = chunked(vec![b"hel", b"lo ", b"world"]);
        let bytes = collect(body, BodyLimit::new(11)).await.unwrap();
        assert_eq!(&bytes[..], b"hello world");
    }

    #[tokio::test]
    async fn chunked_body_over_limit_is_too_large() {
        let body = chunked(vec![b"hel", b"lo ", b"world"]);
        let err = collect(body, BodyLimit::new(10)).await.unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 10 }));
    }

    #[tokio::test]
    async fn declared_length_over_limit_is_rejected_before_reading() {
        let req = Request::builder()
            .header(CONTENT_LENGTH, "999999")
            .body(chunked(vec![b"x"]))
            .unwrap();
        let Err(rejection) = buffer_request(req, BodyLimit::new(100)).await else {
            panic!("a declared length over the limit must be rejected");
        };
        assert_eq!(rejection.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn read_error_is_bad_request() {
        let body = StreamBody::new(stream::iter(vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Err::<Frame<Bytes>, BoxError>("client went away".into()),
        ]));
        let Err(rejection) = buffer_request(Request::new(body), BodyLimit::default()).await else {
            panic!("a body that fails to read must be rejected");
        };
        assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_body_the_client_sent_too_slowly_is_request_timeout() {
        let timeout = BodyReadTimeout(std::time::Duration::from_secs(1));
        // Wrapped once more, as a server's body error would be.
        let wrapped: BoxError = Box::new(std::io::Error::other(timeout));
        let body = StreamBody::new(stream::iter(vec![
            Ok(Frame::data(Bytes::from_static(b"{"))),
            Err::<Frame<Bytes>, BoxError>(wrapped),
        ]));
        let Err(rejection) = buffer_request(Request::new(body), BodyLimit::default()).await else {
            panic!("a body that timed out must be rejected");
        };
        assert_eq!(rejection.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(rejection.reason(), "body_read_timeout");
    }

    #[tokio::test]
    async fn second_layer_reuses_payload_without_reading() {
        let req = Request::new(chunked(vec![b"{\"a\":", b"1}"]));
        let req = buffer_request(req, BodyLimit::default()).await.unwrap();
        let first = req.extensions().get::<Payload>().unwrap().clone();
        // A second layer with a limit smaller than the body still succeeds: nothing is re-read.
        let req = buffer_request(req, BodyLimit::new(1)).await.unwrap();
        let second = req.extensions().get::<Payload>().unwrap();
        assert!(first.ptr_eq(second));
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"a\":1}");
    }

    #[tokio::test]
    async fn replace_payload_updates_body_extension_and_length() {
        let req = Request::builder()
            .header(CONTENT_LENGTH, "7")
            .body(chunked(vec![b"{\"a\":1}"]))
            .unwrap();
        let mut req = buffer_request(req, BodyLimit::default()).await.unwrap();
        replace_payload(&mut req, Payload::new(Bytes::from_static(b"{\"a\":22}")));
        assert_eq!(req.headers()[CONTENT_LENGTH], "8");
        assert_eq!(
            req.extensions().get::<Payload>().unwrap().json().unwrap()["a"],
            22
        );
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"a\":22}");
    }

    #[tokio::test]
    async fn response_body_forwards_inner_and_full() {
        let inner: ResponseBody<Full<Bytes>> = ResponseBody::inner(Full::new(Bytes::from("in")));
        assert_eq!(inner.size_hint().exact(), Some(2));
        assert_eq!(&inner.collect().await.unwrap().to_bytes()[..], b"in");
        let full: ResponseBody<Full<Bytes>> = ResponseBody::full("out");
        assert_eq!(&full.collect().await.unwrap().to_bytes()[..], b"out");
    }
}
