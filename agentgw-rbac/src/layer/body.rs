//! The response body: passed through, a denial, or a `tools/list` result with the tools the
//! caller may not call removed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::mcp::{self, ToolDef};
use agentgw_core::metrics::record_rejection;
use agentgw_core::sse::{self, Frame as SseFrame, Transform, TransformBody};
use agentgw_core::{Attributes, BoxError, ResponseBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::policy::{CelPolicy, LAYER};

/// The response body of [`CelPolicyService`](crate::CelPolicyService).
///
/// The inner service's body unchanged; a body the layer produced (a denial, a filtered JSON
/// answer to an MCP `tools/list` request, read whole and bounded by the layer's body limit); or
/// an event stream answering `tools/list`, from which the tools the caller may not call are
/// removed event by event ([`ToolListStream`]).
pub type RbacBody<B> = ResponseBody<B, ToolListStream<B>>;

pin_project! {
    /// An MCP event stream answering a `tools/list` request, from which the tools the caller
    /// may not call are removed event by event ([`CelPolicy::tool_visible`]).
    ///
    /// An event whose list cannot be filtered is replaced by a JSON-RPC error carrying the
    /// request's id; an event that is not JSON-RPC is dropped.
    pub struct ToolListStream<B> {
        #[pin]
        inner: TransformBody<B, SseToolFilter>,
    }
}

impl<B> ToolListStream<B> {
    pub(crate) fn new(body: B, filter: Box<ToolFilter>) -> Self {
        ToolListStream {
            inner: TransformBody::new(body, SseToolFilter(filter), sse::Decoder::default()),
        }
    }
}

impl<B> Body for ToolListStream<B>
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

impl<B> std::fmt::Debug for ToolListStream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolListStream").finish_non_exhaustive()
    }
}

/// Removes from the response to one `tools/list` request the tools its caller may not call.
pub(crate) struct ToolFilter {
    policy: Arc<CelPolicy>,
    /// The head of the `tools/list` request (with its extensions: claims, payload, ...).
    request: http::request::Parts,
    /// The request's JSON-RPC id: only the response carrying it is filtered.
    id: mcp::Id,
}

impl ToolFilter {
    pub(crate) fn new(policy: Arc<CelPolicy>, request: http::request::Parts, id: mcp::Id) -> Self {
        ToolFilter {
            policy,
            request,
            id,
        }
    }

    /// The JSON-RPC id of the `tools/list` request.
    pub(crate) fn id(&self) -> &mcp::Id {
        &self.id
    }

    /// Filters one message in place; the number of tools removed. The answer to the request
    /// (its id, or an id a lenient client would take for it) and any result carrying `tools`
    /// must hold a list of tool definitions (objects with a string `name`): anything else is
    /// an error, never forwarded unfiltered.
    fn filter_message(&self, message: &mut mcp::Message) -> Result<usize, &'static str> {
        let mcp::Message::Response { id, result } = message else {
            return Ok(0);
        };
        if !id.loosely_matches(&self.id) && result.get("tools").is_none() {
            return Ok(0);
        }
        let Some(tools) = mcp::tools_from_list_result_mut(result) else {
            return Err("the upstream's tools/list answer has no tool list");
        };
        if !tools.iter().all(|tool| ToolDef::from_value(tool).is_some()) {
            return Err("the upstream's tools/list answer has an entry that is not a tool");
        }
        let attrs = Attributes::from_parts(&self.request);
        let before = tools.len();
        tools.retain(|tool| {
            ToolDef::from_value(tool).is_some_and(|def| self.policy.tool_visible(&attrs, def.name))
        });
        let removed = before - tools.len();
        if removed > 0 {
            tracing::debug!(removed, "RBAC policy hid tools from a tools/list result");
        }
        Ok(removed)
    }

    fn filter_envelope(&self, envelope: &mut mcp::Envelope) -> Result<usize, &'static str> {
        let mut removed = 0;
        for message in envelope.messages_mut() {
            removed += self.filter_message(message)?;
        }
        Ok(removed)
    }

    /// Filters a whole JSON response body. An empty body passes; a body that is not JSON-RPC,
    /// or whose list is not a list of tools, is an error.
    pub(crate) fn filter_json(&self, bytes: Bytes) -> Result<Bytes, &'static str> {
        if bytes.trim_ascii().is_empty() {
            return Ok(bytes);
        }
        let mut envelope =
            mcp::parse(&bytes).map_err(|_| "the upstream's tools/list answer is not JSON-RPC")?;
        if self.filter_envelope(&mut envelope)? > 0 {
            Ok(envelope.to_bytes())
        } else {
            Ok(bytes)
        }
    }

    /// The JSON-RPC error, carrying the request's id, that replaces an answer the filter
    /// cannot read.
    pub(crate) fn error_message(&self, message: &'static str) -> serde_json::Value {
        mcp::error_response(
            &self.id,
            mcp::codes::INTERNAL_ERROR,
            message,
            Some(serde_json::json!({ "status": 502, "layer": LAYER, "reason": INVALID_RESPONSE })),
        )
    }
}

/// The rejection reason of an upstream `tools/list` answer the layer cannot filter.
pub(crate) const INVALID_RESPONSE: &str = "invalid_upstream_response";

/// Filters the `tools/list` result carried by an event of an MCP event stream.
pub(crate) struct SseToolFilter(Box<ToolFilter>);

impl Transform for SseToolFilter {
    fn frame(&mut self, frame: SseFrame, out: &mut Vec<SseFrame>) -> Result<(), BoxError> {
        let SseFrame::Event(mut event) = frame else {
            out.push(frame);
            return Ok(());
        };
        // Every event with data is read, whatever its type: a client may read it too.
        match mcp::parse_sse_data(&event.data) {
            Ok(None) => out.push(SseFrame::Event(event)),
            Ok(Some(mut envelope)) => {
                match self.0.filter_envelope(&mut envelope) {
                    Ok(0) => {}
                    Ok(_) => event.data = String::from_utf8(envelope.to_bytes().to_vec())?,
                    Err(message) => {
                        record_rejection(LAYER, INVALID_RESPONSE);
                        event.data = self.0.error_message(message).to_string();
                    }
                }
                out.push(SseFrame::Event(event));
            }
            Err(_) => {
                // Not forwarded: the client's parser might read a list ours could not.
                tracing::warn!("dropping an event of a tools/list answer that is not JSON-RPC");
                record_rejection(LAYER, INVALID_RESPONSE);
            }
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<SseFrame>) -> Result<(), BoxError> {
        Ok(())
    }
}
