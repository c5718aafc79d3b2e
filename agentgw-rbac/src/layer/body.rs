//! The response body: passed through, a denial, or a `tools/list` result with the tools the
//! caller may not call removed.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use agentgw_core::mcp::{self, ToolDef};
use agentgw_core::sse::{self, Frame as SseFrame, Transform, TransformBody};
use agentgw_core::{Attributes, BoxError};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::policy::CelPolicy;
use std::sync::Arc;

pin_project! {
    /// The response body of [`CelPolicyService`](crate::CelPolicyService).
    ///
    /// The inner service's body unchanged; the JSON of a denial; or the response to an MCP
    /// `tools/list` request, from which tools the caller may not call are removed: a JSON body
    /// is read (bounded by the layer's body limit), filtered and sent as one chunk, an event
    /// stream is filtered event by event.
    pub struct RbacBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner {
            #[pin]
            body: B,
        },
        Full {
            #[pin]
            body: Full<Bytes>,
        },
        Json {
            #[pin]
            body: B,
            collected: BytesMut,
            limit: usize,
            filter: Box<ToolFilter>,
            trailers: Option<HeaderMap>,
            done: bool,
        },
        Sse {
            #[pin]
            body: TransformBody<B, SseToolFilter>,
        },
    }
}

impl<B> RbacBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        RbacBody {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn full(body: Full<Bytes>) -> Self {
        RbacBody {
            kind: Kind::Full { body },
        }
    }

    pub(crate) fn filtered_json(body: B, filter: Box<ToolFilter>, limit: usize) -> Self {
        RbacBody {
            kind: Kind::Json {
                body,
                collected: BytesMut::new(),
                limit,
                filter,
                trailers: None,
                done: false,
            },
        }
    }

    pub(crate) fn filtered_sse(body: B, filter: Box<ToolFilter>) -> Self {
        RbacBody {
            kind: Kind::Sse {
                body: TransformBody::new(body, SseToolFilter(filter), sse::Decoder::default()),
            },
        }
    }
}

impl<B> Body for RbacBody<B>
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
            KindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Full { body } => body.poll_frame(cx).map_err(|never| match never {}),
            KindProj::Sse { body } => body.poll_frame(cx),
            KindProj::Json {
                mut body,
                collected,
                limit,
                filter,
                trailers,
                done,
            } => {
                if *done {
                    return Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))));
                }
                loop {
                    match ready!(body.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => {
                                if collected.len() + data.len() > *limit {
                                    *done = true;
                                    return Poll::Ready(Some(Err(format!(
                                        "tools/list response exceeds the limit of {limit} bytes"
                                    )
                                    .into())));
                                }
                                collected.extend_from_slice(&data);
                            }
                            Err(frame) => {
                                if let Ok(t) = frame.into_trailers() {
                                    *trailers = Some(t);
                                }
                            }
                        },
                        Some(Err(error)) => {
                            *done = true;
                            return Poll::Ready(Some(Err(error.into())));
                        }
                        None => {
                            *done = true;
                            let bytes = filter.filter_json(collected.split().freeze());
                            return Poll::Ready(Some(Ok(Frame::data(bytes))));
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { body } => body.is_end_stream(),
            Kind::Sse { body } => body.is_end_stream(),
            Kind::Json { done, trailers, .. } => *done && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { body } => body.size_hint(),
            Kind::Sse { body } => body.size_hint(),
            Kind::Json { .. } => SizeHint::default(),
        }
    }
}

impl<B> std::fmt::Debug for RbacBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Full { .. } => "full",
            Kind::Json { .. } => "filtered json",
            Kind::Sse { .. } => "filtered event stream",
        };
        f.debug_struct("RbacBody").field("kind", &kind).finish()
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

    /// Filters one message in place; the number of tools removed.
    fn filter_message(&self, message: &mut mcp::Message) -> usize {
        if message.id() != Some(&self.id) {
            return 0;
        }
        let Some(tools) = message
            .result_mut()
            .and_then(mcp::tools_from_list_result_mut)
        else {
            return 0;
        };
        let attrs = Attributes::from_parts(&self.request);
        let before = tools.len();
        tools.retain(|tool| {
            ToolDef::from_value(tool).is_none_or(|def| self.policy.tool_visible(&attrs, def.name))
        });
        let removed = before - tools.len();
        if removed > 0 {
            tracing::debug!(removed, "RBAC policy hid tools from a tools/list result");
        }
        removed
    }

    fn filter_envelope(&self, envelope: &mut mcp::Envelope) -> usize {
        envelope
            .messages_mut()
            .iter_mut()
            .map(|m| self.filter_message(m))
            .sum()
    }

    /// Filters a JSON response body; bodies that are not JSON-RPC pass unchanged.
    fn filter_json(&self, bytes: Bytes) -> Bytes {
        let Ok(mut envelope) = mcp::parse(&bytes) else {
            return bytes;
        };
        if self.filter_envelope(&mut envelope) > 0 {
            envelope.to_bytes()
        } else {
            bytes
        }
    }
}

/// Filters the `tools/list` result carried by an event of an MCP event stream.
pub(crate) struct SseToolFilter(Box<ToolFilter>);

impl Transform for SseToolFilter {
    fn frame(&mut self, frame: SseFrame, out: &mut Vec<SseFrame>) -> Result<(), BoxError> {
        match frame {
            SseFrame::Event(mut event) if event.event_type() == "message" => {
                if let Ok(Some(mut envelope)) = mcp::parse_sse_data(&event.data)
                    && self.0.filter_envelope(&mut envelope) > 0
                {
                    event.data = String::from_utf8(envelope.to_bytes().to_vec())?;
                }
                out.push(SseFrame::Event(event));
            }
            other => out.push(other),
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<SseFrame>) -> Result<(), BoxError> {
        Ok(())
    }
}
