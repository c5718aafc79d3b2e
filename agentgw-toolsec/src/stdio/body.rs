//! [`StdioBody`]: a whole JSON answer, or the event stream of the server's own messages.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use tokio::sync::mpsc;

/// The response body of [`StdioBackend`](super::StdioBackend): one JSON message (or a
/// denial), or, for a `GET`, a `text/event-stream` with one event per message the server
/// sends its client, open until the session ends or the client opens another.
#[derive(Debug)]
pub struct StdioBody {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Whole(Full<Bytes>),
    Events(mpsc::Receiver<Bytes>),
}

impl StdioBody {
    pub(crate) fn events(messages: mpsc::Receiver<Bytes>) -> Self {
        Self {
            inner: Inner::Events(messages),
        }
    }
}

impl From<Full<Bytes>> for StdioBody {
    fn from(body: Full<Bytes>) -> Self {
        Self {
            inner: Inner::Whole(body),
        }
    }
}

impl Body for StdioBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().inner {
            Inner::Whole(body) => Pin::new(body).poll_frame(cx),
            Inner::Events(messages) => messages.poll_recv(cx).map(|message| {
                message.map(|message| {
                    // One message is one line of JSON: one `data:` line.
                    let mut event = BytesMut::with_capacity(message.len() + 8);
                    event.put_slice(b"data: ");
                    event.put_slice(&message);
                    event.put_slice(b"\n\n");
                    Ok(Frame::data(event.freeze()))
                })
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Whole(body) => body.is_end_stream(),
            Inner::Events(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Whole(body) => body.size_hint(),
            Inner::Events(_) => SizeHint::default(),
        }
    }
}
