//! The response body of the layer: passed through, produced, or an event stream inspected
//! event by event.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use agentgw_core::BoxError;
use agentgw_core::mcp::{self, Envelope, Id};
use agentgw_core::metrics::record_rejection;
use agentgw_core::sse::{Decoder, Event, Frame, Transform, TransformBody};
use bytes::{Bytes, BytesMut};
use http_body::{Body, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::audit::LAYER;
use crate::denial::rules;
use crate::exchange::Exchange;

/// Called with the ids of tool calls cut off by the time limit, to cancel them upstream.
pub(crate) type CancelFn = Box<dyn FnOnce(Vec<Id>) + Send>;

pin_project! {
    /// The response body of [`ToolSecurityService`](crate::ToolSecurityService).
    ///
    /// A body the layer produced or read whole (a denial, an inspected JSON answer, an empty
    /// acknowledgement), or an event stream inspected event by event as it arrives. The
    /// upstream's body is never passed through uninspected.
    pub struct ToolSecurityBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Full { #[pin] body: Full<Bytes> },
        Events { #[pin] body: EventStreamBody<B> },
    }
}

impl<B> ToolSecurityBody<B> {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full {
                body: Full::new(bytes.into()),
            },
        }
    }

    pub(crate) fn from_full(body: Full<Bytes>) -> Self {
        Self {
            kind: Kind::Full { body },
        }
    }

    pub(crate) fn events(body: EventStreamBody<B>) -> Self {
        Self {
            kind: Kind::Events { body },
        }
    }
}

impl<B> fmt::Debug for ToolSecurityBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Full { .. } => "full",
            Kind::Events { .. } => "events",
        };
        f.debug_struct("ToolSecurityBody")
            .field("kind", &kind)
            .finish()
    }
}

impl<B> Body for ToolSecurityBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Full { body } => body.poll_frame(cx).map_err(|never| match never {}),
            KindProj::Events { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { body } => body.is_end_stream(),
            Kind::Events { body } => body.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { body } => body.size_hint(),
            Kind::Events { .. } => SizeHint::default(),
        }
    }
}

/// The exchange, shared by the stream transform and the deadline of the body.
pub(crate) type SharedExchange = Arc<Mutex<Exchange>>;

fn lock(exchange: &SharedExchange) -> MutexGuard<'_, Exchange> {
    exchange.lock().unwrap_or_else(|e| e.into_inner())
}

pin_project! {
    /// An MCP event stream inspected message by message, with the tool calls' time limit.
    pub(crate) struct EventStreamBody<B> {
        #[pin]
        inner: TransformBody<B, McpTransform>,
        exchange: SharedExchange,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        on_timeout: Option<CancelFn>,
        done: bool,
    }
}

impl<B> EventStreamBody<B> {
    pub(crate) fn new(
        body: B,
        exchange: Exchange,
        max_event_bytes: usize,
        deadline: Option<tokio::time::Instant>,
        on_timeout: Option<CancelFn>,
    ) -> Self {
        let exchange = Arc::new(Mutex::new(exchange));
        let transform = McpTransform {
            exchange: exchange.clone(),
        };
        Self {
            inner: TransformBody::new(body, transform, Decoder::new(max_event_bytes)),
            exchange,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            on_timeout,
            done: false,
        }
    }
}

impl<B> EventStreamBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            *this.deadline = None;
            let mut exchange = lock(this.exchange);
            if exchange.has_pending_calls() {
                let ids = exchange.pending_call_ids();
                let errors = exchange.time_out();
                exchange.finish();
                drop(exchange);
                *this.done = true;
                if let Some(cancel) = this.on_timeout.take() {
                    cancel(ids);
                }
                let mut out = BytesMut::new();
                for error in errors {
                    Frame::Event(Event::data(String::from_utf8_lossy(&error.to_bytes())))
                        .encode(&mut out);
                }
                return Poll::Ready(Some(Ok(http_body::Frame::data(out.freeze()))));
            }
        }
        let polled = this.inner.poll_frame(cx);
        if this.deadline.is_some() && !lock(this.exchange).has_pending_calls() {
            // Every call was answered: the time limit no longer applies.
            *this.deadline = None;
        }
        if let Poll::Ready(None) = polled {
            *this.done = true;
        }
        polled
    }
}

/// Rewrites each JSON-RPC message of an MCP event stream through the [`Exchange`].
pub(crate) struct McpTransform {
    exchange: SharedExchange,
}

impl Transform for McpTransform {
    fn frame(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), BoxError> {
        let Frame::Event(mut event) = frame else {
            out.push(frame);
            return Ok(());
        };
        match mcp::parse_sse_data(&event.data) {
            // Priming events (no data) keep resumption working.
            Ok(None) => out.push(Frame::Event(event)),
            Ok(Some(mut envelope)) => {
                let raw_len = (!envelope.is_batch()).then_some(event.data.len());
                let mut exchange = lock(&self.exchange);
                let mut changed = false;
                for message in envelope.messages_mut() {
                    changed |= exchange.on_message(message, raw_len);
                }
                drop(exchange);
                if changed {
                    event.data = envelope_text(&envelope);
                }
                out.push(Frame::Event(event));
            }
            Err(error) => {
                // A message that cannot be inspected is not forwarded: the client's parser
                // might read what ours could not.
                tracing::warn!(%error, "dropping an MCP event that is not JSON-RPC");
                record_rejection(LAYER, rules::INVALID_RESPONSE);
            }
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Frame>) -> Result<(), BoxError> {
        lock(&self.exchange).finish();
        Ok(())
    }
}

fn envelope_text(envelope: &Envelope) -> String {
    String::from_utf8_lossy(&envelope.to_bytes()).into_owned()
}
