//! [`ResponseFuture`]: the response future of [`ToolSecurityService`](crate::ToolSecurityService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use crate::body::ToolSecurityBody;

type BoxedFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ToolSecurityBody<B>>, E>> + Send>>;

/// The response future of [`ToolSecurityService`](crate::ToolSecurityService).
///
/// It is a boxed `async` block, unlike the named state machines of the other agentgw layers,
/// because the layer does its own I/O around the inner call: before it, it may send its own
/// `tools/list` requests through the inner service, page by page, readying it again between
/// them (`unlistedTools: Fetch`); after it, it reads a JSON answer (bounded) under the tool
/// calls' time limit and may send `notifications/cancelled`. Written by hand, that is a state
/// machine of a dozen states over the inner service's future and body; boxed, it costs one
/// allocation per request, small next to the request and answer parsing the layer does
/// anyway (`cargo bench -p agentgw-toolsec`: a checked `tools/call` costs about 16 µs more
/// than parsing it).
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<B, E> {
    inner: BoxedFuture<B, E>,
}

impl<B, E> ResponseFuture<B, E> {
    pub(crate) fn new(
        future: impl Future<Output = Result<Response<ToolSecurityBody<B>>, E>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Box::pin(future),
        }
    }
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
