//! The pluggable parts of [`TransformBody`]: how a stream is framed ([`Framing`]) and how its
//! frames are rewritten ([`Transform`], [`map_events`]).

use std::fmt;

use bytes::BytesMut;

#[cfg(doc)]
use super::TransformBody;
use super::{Decoder, Event, Frame};
use crate::BoxError;

/// How a streamed body is cut into frames and put back together: the pluggable part of
/// [`TransformBody`].
///
/// [`Decoder`] frames Server-Sent Events ([`Frame`]); [`ndjson::Decoder`](crate::ndjson::Decoder)
/// frames line-delimited JSON. Decoding must not depend on how the stream was split into
/// chunks, and must be bounded: an oversized frame is an error, never unbounded growth.
pub trait Framing: Send + 'static {
    /// One unit of the stream: an event, a line.
    type Frame;

    /// Decodes the next chunk, pushing every frame it completes to `out`.
    ///
    /// # Errors
    ///
    /// The stream cannot be framed (too large, not UTF-8, ...); the body fails closed.
    fn decode_chunk(&mut self, chunk: &[u8], out: &mut Vec<Self::Frame>) -> Result<(), BoxError>;

    /// Ends the stream, pushing a last frame the end completes (an unterminated last line).
    ///
    /// # Errors
    ///
    /// The stream ended where it must not (inside an SSE event).
    fn decode_end(&mut self, out: &mut Vec<Self::Frame>) -> Result<(), BoxError>;

    /// Appends the wire form of `frame` to `out`.
    fn encode_frame(&self, frame: &Self::Frame, out: &mut BytesMut);
}

impl Framing for Decoder {
    type Frame = Frame;

    fn decode_chunk(&mut self, chunk: &[u8], out: &mut Vec<Frame>) -> Result<(), BoxError> {
        self.decode(chunk, out).map_err(Into::into)
    }

    fn decode_end(&mut self, _out: &mut Vec<Frame>) -> Result<(), BoxError> {
        self.finish().map_err(Into::into)
    }

    fn encode_frame(&self, frame: &Frame, out: &mut BytesMut) {
        frame.encode(out);
    }
}

/// Rewrites a stream frame by frame; run by [`TransformBody`]. `F` is the frame of the
/// [`Framing`]: an SSE [`Frame`] unless said otherwise.
///
/// A transform may hold frames back (to see what follows) and release them later; whatever it
/// still holds at the end of the stream it emits from [`finish`](Transform::finish). An error
/// ends the stream with that error, and the transform is not called again.
pub trait Transform<F = Frame>: Send + 'static {
    /// Called for every decoded frame; push zero or more frames to `out`.
    fn frame(&mut self, frame: F, out: &mut Vec<F>) -> Result<(), BoxError>;

    /// Called once at the end of the stream (after the last frame) to flush held-back content.
    fn finish(&mut self, out: &mut Vec<F>) -> Result<(), BoxError>;
}

impl<F, T: Transform<F> + ?Sized> Transform<F> for Box<T> {
    fn frame(&mut self, frame: F, out: &mut Vec<F>) -> Result<(), BoxError> {
        (**self).frame(frame, out)
    }

    fn finish(&mut self, out: &mut Vec<F>) -> Result<(), BoxError> {
        (**self).finish(out)
    }
}

/// A stateless [`Transform`] applying a closure to every event; built by [`map_events`].
#[derive(Clone)]
pub struct MapEvents<F> {
    f: F,
}

/// A [`Transform`] that passes every event through `f` and comments unchanged.
///
/// `f` returns the event to forward, `None` to drop it, or an error to end the stream.
pub fn map_events<F>(f: F) -> MapEvents<F>
where
    F: FnMut(Event) -> Result<Option<Event>, BoxError> + Send + 'static,
{
    MapEvents { f }
}

impl<F> Transform for MapEvents<F>
where
    F: FnMut(Event) -> Result<Option<Event>, BoxError> + Send + 'static,
{
    fn frame(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), BoxError> {
        match frame {
            Frame::Event(event) => {
                if let Some(event) = (self.f)(event)? {
                    out.push(Frame::Event(event));
                }
            }
            comment @ Frame::Comment(_) => out.push(comment),
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Frame>) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<F> fmt::Debug for MapEvents<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapEvents").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::TransformBody;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn map_events_can_drop_events_and_keeps_comments() {
        let drop_pings = map_events(|event| Ok((event.event_type() != "ping").then_some(event)));
        let inner = Full::new(Bytes::from_static(
            b"event: ping\ndata: {}\n\n: hi\n\ndata: keep\n\n",
        ));
        let body = TransformBody::new(inner, Box::new(drop_pings), Decoder::default());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, ": hi\n\ndata: keep\n\n");
    }
}
