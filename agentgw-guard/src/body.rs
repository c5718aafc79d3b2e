//! [`GuardBody`] and [`GuardStream`]: response bodies masked as they stream.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::sse::{Decoder, TransformBody};
use agentgw_core::{BoxError, ResponseBody, ndjson};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Either;
use pin_project_lite::pin_project;

use crate::audit::{Audit, Audited};
use crate::escalate::Origin;
use crate::layer::Shared;
use crate::leak::LeakCheck;
use crate::transform::GuardTransform;

/// The response body of [`PromptGuardService`](crate::PromptGuardService): the inner body
/// untouched, a buffered (possibly masked) body or a denial, or a stream guarded as it flows
/// ([`GuardStream`]).
pub type GuardBody<B> = ResponseBody<B, GuardStream<B>>;

pin_project! {
    /// A response stream guarded as it flows: a `text/event-stream` masked event by event, or
    /// a JSON-lines stream (`application/x-ndjson`, `application/jsonl`) masked line by line.
    ///
    /// Text split across events is still masked; only the shortest suffix that could become
    /// a match is held back. A `Reject` match ends the stream with an error event (an error
    /// line); a stream that cannot be inspected (an event over the size limit, invalid
    /// framing) ends with a body error. An `Escalate` match cuts the stream the same way and
    /// notifies the guard's escalation destination; a stream is never held for a decision
    /// (`blockPending` holds buffered answers only).
    pub struct GuardStream<B> {
        #[pin]
        inner: Either<
            TransformBody<B, Audited<GuardTransform>>,
            TransformBody<B, Audited<GuardTransform>, ndjson::Decoder>,
        >,
    }
}

impl<B> GuardStream<B> {
    /// An event stream guarded event by event (audited into `audit`, if any).
    pub(crate) fn sse(
        body: B,
        shared: &Shared,
        audit: Option<Audit>,
        leak: Option<Box<LeakCheck>>,
        origin: Option<Origin>,
    ) -> Self {
        let transform = GuardTransform::new(Arc::clone(&shared.response), leak, origin);
        let transform = Audited::new(transform, audit);
        let decoder = Decoder::new(shared.max_event_bytes);
        GuardStream {
            inner: Either::Left(TransformBody::new(body, transform, decoder)),
        }
    }

    /// A JSON-lines stream guarded line by line (audited into `audit`, if any).
    pub(crate) fn json_lines(
        body: B,
        shared: &Shared,
        audit: Option<Audit>,
        leak: Option<Box<LeakCheck>>,
        origin: Option<Origin>,
    ) -> Self {
        let transform = GuardTransform::new(Arc::clone(&shared.response), leak, origin);
        let transform = Audited::new(transform, audit);
        let decoder = ndjson::Decoder::new(shared.max_event_bytes);
        GuardStream {
            inner: Either::Right(TransformBody::new(body, transform, decoder)),
        }
    }
}

impl<B> Body for GuardStream<B>
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
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> fmt::Debug for GuardStream<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let framing = match &self.inner {
            Either::Left(_) => "event-stream",
            Either::Right(_) => "json-lines",
        };
        f.debug_struct("GuardStream")
            .field("framing", &framing)
            .finish_non_exhaustive()
    }
}
