//! [`TransformBody`]: a response body decoded, transformed and encoded again, chunk by chunk.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, SizeHint};
use pin_project_lite::pin_project;

#[cfg(doc)]
use super::SseError;
use super::{Decoder, Framing, Transform};
use crate::BoxError;

pin_project! {
    /// A body that decodes a stream (an event stream by default; any [`Framing`], such as
    /// [`ndjson::Decoder`](crate::ndjson::Decoder)), runs a [`Transform`] on every frame and
    /// encodes the result, chunk by chunk.
    ///
    /// Each data frame of the inner body yields at most one data frame, holding the encoded
    /// output of the frames that chunk completed; nothing waits for the end of the stream.
    /// Trailers pass through after the transform's final output. A decode error (including
    /// [`SseError::Truncated`]), a transform error or an inner body error ends the body with that
    /// error: the stream fails closed and the transform is not called again.
    ///
    /// See the [module docs](self) for an example.
    pub struct TransformBody<B, T, D: Framing = Decoder> {
        #[pin]
        inner: B,
        pipeline: Pipeline<T, D>,
        trailers: Option<HeaderMap>,
        done: bool,
    }
}

impl<B, T, D: Framing> TransformBody<B, T, D> {
    /// Wraps `body`, decoding it with `decoder` and rewriting it with `transform`.
    pub fn new(body: B, transform: T, decoder: D) -> Self {
        TransformBody {
            inner: body,
            pipeline: Pipeline {
                transform,
                decoder,
                decoded: Vec::new(),
                transformed: Vec::new(),
                encoded: BytesMut::new(),
            },
            trailers: None,
            done: false,
        }
    }
}

impl<B, T, D> Body for TransformBody<B, T, D>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    D: Framing,
    T: Transform<D::Frame>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(trailers) = this.trailers.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
        }
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            let step = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(chunk) => this.pipeline.push(&chunk),
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => {
                            // Trailers end the body: flush first, then send them.
                            *this.done = true;
                            *this.trailers = Some(trailers);
                            this.pipeline.finish()
                        }
                        // A frame kind this body does not know: not part of the event stream.
                        Err(_) => continue,
                    },
                },
                Some(Err(err)) => Err(err.into()),
                None => {
                    *this.done = true;
                    this.pipeline.finish()
                }
            };
            match step {
                Ok(Some(bytes)) => return Poll::Ready(Some(Ok(http_body::Frame::data(bytes)))),
                Ok(None) if *this.done => {
                    let trailers = this.trailers.take();
                    return Poll::Ready(trailers.map(|t| Ok(http_body::Frame::trailers(t))));
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(error = %err, "stream transform failed closed");
                    *this.done = true;
                    *this.trailers = None;
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.is_end_stream() {
            SizeHint::with_exact(0)
        } else {
            SizeHint::default()
        }
    }
}

impl<B: fmt::Debug, T: fmt::Debug, D: Framing + fmt::Debug> fmt::Debug for TransformBody<B, T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransformBody")
            .field("inner", &self.inner)
            .field("transform", &self.pipeline.transform)
            .field("decoder", &self.pipeline.decoder)
            .field("done", &self.done)
            .finish()
    }
}

/// Decoder, transform and encoder, with buffers reused across chunks.
struct Pipeline<T, D: Framing> {
    transform: T,
    decoder: D,
    decoded: Vec<D::Frame>,
    transformed: Vec<D::Frame>,
    encoded: BytesMut,
}

impl<T: Transform<D::Frame>, D: Framing> Pipeline<T, D> {
    /// Runs one chunk through; returns its encoded output, if any.
    fn push(&mut self, chunk: &[u8]) -> Result<Option<Bytes>, BoxError> {
        let decoded = self.decoder.decode_chunk(chunk, &mut self.decoded);
        if let Err(err) = decoded {
            self.decoded.clear();
            return Err(err);
        }
        for frame in self.decoded.drain(..) {
            self.transform.frame(frame, &mut self.transformed)?;
        }
        Ok(self.flush())
    }

    /// Ends the stream; returns the transform's final output, if any.
    fn finish(&mut self) -> Result<Option<Bytes>, BoxError> {
        self.decoder.decode_end(&mut self.decoded)?;
        for frame in self.decoded.drain(..) {
            self.transform.frame(frame, &mut self.transformed)?;
        }
        self.transform.finish(&mut self.transformed)?;
        Ok(self.flush())
    }

    fn flush(&mut self) -> Option<Bytes> {
        for frame in self.transformed.drain(..) {
            self.decoder.encode_frame(&frame, &mut self.encoded);
        }
        if self.encoded.is_empty() {
            None
        } else {
            Some(self.encoded.split().freeze())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::sse::{Event, Frame, SseError, map_events};
    use futures_util::stream::{self, StreamExt};
    use http_body_util::{BodyExt, Full, StreamBody};

    type TestBody =
        StreamBody<stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, BoxError>>>>;

    fn body_of(frames: Vec<Result<http_body::Frame<Bytes>, BoxError>>) -> TestBody {
        StreamBody::new(stream::iter(frames))
    }

    fn one_byte_body(stream: &[u8]) -> TestBody {
        body_of(
            stream
                .iter()
                .map(|&b| Ok(http_body::Frame::data(Bytes::copy_from_slice(&[b]))))
                .collect(),
        )
    }

    fn uppercase() -> impl Transform {
        map_events(|mut event| {
            event.data = event.data.to_uppercase();
            Ok(Some(event))
        })
    }

    /// Collects every frame of `body`: the data chunks, the trailers and the error, if any.
    async fn drain<B>(body: B) -> (Vec<Bytes>, Option<HeaderMap>, Option<BoxError>)
    where
        B: Body<Data = Bytes, Error = BoxError>,
    {
        let mut body = std::pin::pin!(body);
        let mut chunks = Vec::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => chunks.push(data),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
                Err(err) => {
                    assert!(body.is_end_stream(), "an error ends the stream");
                    assert!(body.frame().await.is_none(), "nothing after an error");
                    return (chunks, trailers, Some(err));
                }
            }
        }
        assert!(body.is_end_stream());
        (chunks, trailers, None)
    }

    #[tokio::test]
    async fn transform_body_with_one_byte_chunks() {
        let stream = b"event: delta\ndata: hello\ndata: world\n\n: ping\n\ndata: [DONE]\n\n";
        let body = TransformBody::new(one_byte_body(stream), uppercase(), Decoder::default());
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), None);
        let (chunks, trailers, err) = drain(body).await;
        assert!(err.is_none(), "{err:?}");
        assert!(trailers.is_none());
        // One output chunk per completed frame: each arrives as soon as its input did.
        assert_eq!(
            chunks,
            [
                "event: delta\ndata: HELLO\ndata: WORLD\n\n",
                ": ping\n\n",
                "data: [DONE]\n\n"
            ]
        );
    }

    #[tokio::test]
    async fn transform_body_does_not_wait_for_the_end_of_the_stream() {
        let head = stream::iter(vec![
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"data: a\n\nda"))),
            Ok(http_body::Frame::data(Bytes::from_static(b"ta: b\n"))),
        ]);
        let inner = StreamBody::new(head.chain(stream::pending()));
        let mut body = std::pin::pin!(TransformBody::new(inner, uppercase(), Decoder::default()));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "data: A\n\n");
        // The next event is incomplete and upstream is silent: pending, not buffered to the end.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(body.as_mut().poll_frame(&mut cx).is_pending());
        assert!(!body.is_end_stream());
    }

    #[tokio::test]
    async fn transform_body_passes_trailers_after_final_output() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let inner = body_of(vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"data: a\n\n"))),
            Ok(http_body::Frame::trailers(trailers.clone())),
        ]);
        let body = TransformBody::new(inner, HoldLast::default(), Decoder::default());
        let (chunks, got_trailers, err) = drain(body).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(chunks, ["data: a (held)\n\n"]);
        assert_eq!(got_trailers, Some(trailers.clone()));

        // Nothing left to flush: the trailers come right after the last data.
        let inner = body_of(vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"data: a\n\n"))),
            Ok(http_body::Frame::trailers(trailers.clone())),
        ]);
        let body = TransformBody::new(inner, uppercase(), Decoder::default());
        let (chunks, got_trailers, err) = drain(body).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(chunks, ["data: A\n\n"]);
        assert_eq!(got_trailers, Some(trailers));
    }

    #[tokio::test]
    async fn transform_body_trailers_after_truncated_event_fail() {
        let inner = body_of(vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"data: a\n"))),
            Ok(http_body::Frame::trailers(HeaderMap::new())),
        ]);
        let body = TransformBody::new(inner, uppercase(), Decoder::default());
        let (chunks, trailers, err) = drain(body).await;
        assert!(chunks.is_empty());
        assert!(trailers.is_none(), "no trailers after an error");
        let err = err.expect("truncated stream fails");
        assert_eq!(err.downcast_ref::<SseError>(), Some(&SseError::Truncated));
    }

    /// Holds back the latest event and releases it, marked, when the next one arrives or at the
    /// end of the stream: the shape of a streaming masker.
    #[derive(Default)]
    struct HoldLast {
        held: Option<Event>,
    }

    impl Transform for HoldLast {
        fn frame(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), BoxError> {
            match frame {
                Frame::Event(event) => {
                    if let Some(mut previous) = self.held.replace(event) {
                        previous.data.push_str(" (held)");
                        out.push(previous.into());
                    }
                }
                comment => out.push(comment),
            }
            Ok(())
        }

        fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), BoxError> {
            if let Some(mut last) = self.held.take() {
                last.data.push_str(" (held)");
                out.push(last.into());
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn transform_body_flushes_held_content_at_end() {
        let body = TransformBody::new(
            one_byte_body(b"data: 1\n\ndata: 2\n\ndata: 3\n\n"),
            HoldLast::default(),
            Decoder::default(),
        );
        let (chunks, _, err) = drain(body).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            chunks,
            [
                "data: 1 (held)\n\n",
                "data: 2 (held)\n\n",
                "data: 3 (held)\n\n"
            ]
        );
    }

    #[tokio::test]
    async fn transform_body_propagates_inner_error() {
        let inner = body_of(vec![
            Ok(http_body::Frame::data(Bytes::from_static(
                b"data: a\n\ndata: b",
            ))),
            Err("upstream reset".into()),
            Ok(http_body::Frame::data(Bytes::from_static(b"\n\n"))),
        ]);
        let body = TransformBody::new(inner, uppercase(), Decoder::default());
        let (chunks, _, err) = drain(body).await;
        assert_eq!(chunks, ["data: A\n\n"]);
        assert_eq!(err.expect("inner error").to_string(), "upstream reset");
    }

    #[tokio::test]
    async fn transform_body_error_fails_closed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let reject = map_events(move |event| {
            counted.fetch_add(1, Ordering::SeqCst);
            if event.data.contains("secret") {
                return Err("event contains a secret".into());
            }
            Ok(Some(event))
        });
        let body = TransformBody::new(
            one_byte_body(b"data: fine\n\ndata: a secret\n\ndata: after\n\n"),
            reject,
            Decoder::default(),
        );
        let (chunks, _, err) = drain(body).await;
        assert_eq!(chunks, ["data: fine\n\n"]);
        assert_eq!(
            err.expect("transform error").to_string(),
            "event contains a secret"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2, "not called after failing");
    }

    #[tokio::test]
    async fn transform_body_decode_error_fails_closed() {
        let inner = Full::new(Bytes::from_static(
            b"data: ok\n\ndata: \xFF\n\ndata: more\n\n",
        ));
        let body = TransformBody::new(inner, uppercase(), Decoder::default());
        let (chunks, _, err) = drain(body).await;
        assert!(chunks.is_empty(), "the failing chunk yields nothing");
        let err = err.expect("decode error");
        assert_eq!(
            err.downcast_ref::<SseError>(),
            Some(&SseError::InvalidUtf8 { offset: 16 })
        );
    }

    #[tokio::test]
    async fn transform_body_size_hint_and_end_of_stream() {
        let inner = Full::new(Bytes::from_static(b"data: a\n\n"));
        let mut body = std::pin::pin!(TransformBody::new(inner, uppercase(), Decoder::default()));
        assert_eq!(body.size_hint().lower(), 0);
        assert_eq!(body.size_hint().upper(), None);
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data, "data: A\n\n");
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
