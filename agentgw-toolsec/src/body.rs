//! The response body of the layer: bytes it produced, or an MCP event stream inspected event
//! by event.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use agentgw_core::mcp::{self, Envelope, Id};
use agentgw_core::metrics::record_rejection;
use agentgw_core::sse::{Decoder, Event, Frame, Transform, TransformBody};
use agentgw_core::{BoxError, ResponseBody};
use bytes::{Bytes, BytesMut};
use http_body::{Body, SizeHint};
use pin_project_lite::pin_project;

use crate::audit::LAYER;
use crate::denial::rules;
use crate::exchange::{Exchange, counted};

/// Called with the ids of tool calls cut off by the time limit, to cancel them upstream.
pub(crate) type CancelFn = Box<dyn FnOnce(Vec<Id>) + Send>;

/// The response body of [`ToolSecurityService`](crate::ToolSecurityService): agentgw-core's
/// [`ResponseBody`] with this layer's event-stream transform.
///
/// A body the layer produced or read whole and rewrote (a denial, an inspected JSON answer,
/// an empty acknowledgement) is `Full`; an event stream is [`ToolSecurityStream`], inspected
/// event by event as it arrives. The upstream's body is never passed through uninspected.
pub type ToolSecurityBody<B> = ResponseBody<B, ToolSecurityStream<B>>;

/// The exchange, shared by the stream transform and the deadline of the body.
pub(crate) type SharedExchange = Arc<Mutex<Exchange>>;

fn lock(exchange: &SharedExchange) -> MutexGuard<'_, Exchange> {
    exchange.lock().unwrap_or_else(|e| e.into_inner())
}

pin_project! {
    /// An MCP event stream (`text/event-stream` answer) inspected message by message as it
    /// arrives, with the tool calls' time limit: the transform of [`ToolSecurityBody`].
    ///
    /// Each event's JSON-RPC messages go through the same checks as a JSON answer (tool lists
    /// validated, results sanitized, oversized outputs replaced); an event that is not
    /// JSON-RPC is dropped; when `sandbox.limits.maxExecutionTime` passes with calls
    /// unanswered, their errors end the stream and the calls are cancelled upstream.
    pub struct ToolSecurityStream<B> {
        #[pin]
        inner: TransformBody<B, McpTransform>,
        exchange: SharedExchange,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        on_timeout: Option<CancelFn>,
        done: bool,
    }
}

impl<B> ToolSecurityStream<B> {
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

impl<B> fmt::Debug for ToolSecurityStream<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolSecurityStream")
            .field("done", &self.done)
            .field("deadline", &self.deadline.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> Body for ToolSecurityStream<B>
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
                let errors = counted(exchange.time_out());
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

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        // Events are rewritten as they arrive: the length is never known in advance.
        SizeHint::default()
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
