//! The response future of [`ExtAuthService`](super::ExtAuthService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use crate::AuthBody;

type BoxedResponse<ResBody, E> =
    Pin<Box<dyn Future<Output = Result<Response<AuthBody<ResBody>>, E>> + Send>>;

/// The response future of [`ExtAuthService`](super::ExtAuthService).
///
/// Boxed, unlike the futures of the other agentgw layers: before the inner service is called
/// the layer awaits its own I/O (reading the body when `includeRequestBody` is set, then the
/// call to the authorization service through tonic's or hyper's client, under a timeout), and
/// those futures have no nameable types. The allocation is one per request, next to a network
/// round trip to the service that costs orders of magnitude more.
pub struct ResponseFuture<ResBody, E> {
    inner: BoxedResponse<ResBody, E>,
}

impl<ResBody, E> ResponseFuture<ResBody, E> {
    pub(super) fn new(inner: BoxedResponse<ResBody, E>) -> Self {
        ResponseFuture { inner }
    }
}

impl<ResBody, E> Future for ResponseFuture<ResBody, E> {
    type Output = Result<Response<AuthBody<ResBody>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<ResBody, E> fmt::Debug for ResponseFuture<ResBody, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
