//! Server-Sent Events: an incremental decoder, an encoder, and a body that transforms a stream
//! event by event.
//!
//! LLM providers stream completions as `text/event-stream` (OpenAI: `data: {...}` lines ending
//! with `data: [DONE]`; Anthropic: `event: content_block_delta` plus `data: {...}`), and MCP
//! servers answer over SSE too. Layers that inspect or rewrite those responses (streaming PII
//! masking, tool response sanitization) work on [`Frame`]s: the [`Decoder`] turns bytes, split
//! anywhere, into frames; [`Frame::encode`] turns frames back into bytes; [`TransformBody`] runs a
//! [`Transform`] between the two without ever buffering the whole stream. The framing is
//! pluggable ([`Framing`]): the same body runs a transform over line-delimited JSON with
//! [`ndjson::Decoder`](crate::ndjson::Decoder).
//!
//! # Decoding
//!
//! The [`Decoder`] follows the [WHATWG event stream interpretation] and is built for a proxy:
//!
//! - Lines end with `\n`, `\r\n` or `\r`; a `\r` ending one chunk and a `\n` starting the next are
//!   one line ending. Any split of a byte stream into chunks yields the same frames.
//! - `data:` lines are joined with `\n`; `event:`, `id:` (ignored when it contains NUL) and
//!   `retry:` (ignored unless it is all ASCII digits) are kept; one space after the colon is
//!   removed; a line without a colon is a field with an empty value; unknown fields are ignored;
//!   a byte order mark at the start of the stream is skipped.
//! - Comments (lines starting with `:`) are surfaced as [`Frame::Comment`] so that a proxy can
//!   forward keep-alives.
//! - A blank line dispatches an [`Event`] when the block set at least one field (`data`, `event`,
//!   a valid `id` or a valid `retry`). Browsers only dispatch blocks with data; a proxy must also
//!   forward `retry:`-only or `id:`-only blocks, so the decoder reports them as events with empty
//!   `data`.
//! - Limits and failures are errors, never panics nor unbounded growth: an event whose pending
//!   fields plus its current line exceed the configured size is [`SseError::EventTooLarge`];
//!   bytes that are not UTF-8 are [`SseError::InvalidUtf8`] with their stream offset.
//! - At the end of the stream the specification discards an unterminated event. A proxy must not
//!   drop bytes silently, so [`Decoder::finish`] returns [`SseError::Truncated`] when a partial
//!   line or the fields of an unterminated event are pending; a transforming proxy fails closed.
//!
//! After an error the decoder is spent: every later call returns the same error.
//!
//! # Encoding
//!
//! [`Frame::encode`] writes `event:`, `id:`, `retry:` and one `data:` line per line of the data
//! (split on `\n`, `\r\n` and `\r`), then a blank line; a comment is written as `: text` lines and
//! a blank line. Decoding the output gives the frames back (with line breaks in data normalized
//! to `\n`). Two details keep the encoder safe and the stream equivalent:
//!
//! - An event with empty `data` and some other field is written without a `data:` line, so a
//!   `retry:`-only block stays one (clients do not see an empty message). The one exception is
//!   an event with no field at all, written as `data:` (an empty message).
//! - `event` and `id` cannot hold line breaks in SSE: the encoder replaces each line break in
//!   them with a space, so no value can inject a field or an event into the stream.
//!
//! # Example
//!
//! Decode a stream split at awkward places, then encode the frames back:
//!
//! ```
//! use agentgw_core::sse::{Decoder, Event, Frame};
//! use bytes::BytesMut;
//!
//! let chunks: [&[u8]; 4] = [
//!     b"data: hel",
//!     b"lo\r",
//!     b"\ndata: world\n",
//!     b"\n: keep-alive\n\nevent: done\ndata: [DONE]\n\n",
//! ];
//! let mut decoder = Decoder::default();
//! let mut frames = Vec::new();
//! for chunk in chunks {
//!     decoder.decode(chunk, &mut frames)?;
//! }
//! decoder.finish()?;
//! assert_eq!(
//!     frames,
//!     [
//!         Frame::Event(Event::data("hello\nworld")),
//!         Frame::Comment("keep-alive".into()),
//!         Frame::Event(Event::data("[DONE]").with_event("done")),
//!     ]
//! );
//! assert!(matches!(&frames[2], Frame::Event(event) if event.is_done()));
//!
//! let mut encoded = BytesMut::new();
//! for frame in &frames {
//!     frame.encode(&mut encoded);
//! }
//! assert_eq!(
//!     &encoded[..],
//!     b"data: hello\ndata: world\n\n: keep-alive\n\nevent: done\ndata: [DONE]\n\n"
//! );
//! # Ok::<(), agentgw_core::sse::SseError>(())
//! ```
//!
//! Transform a response body event by event, here upper-casing the data:
//!
//! ```
//! use agentgw_core::sse::{map_events, Decoder, TransformBody};
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), agentgw_core::BoxError> {
//! let upstream = Full::new(Bytes::from_static(b"data: hello\n\n: ping\n\ndata: [DONE]\n\n"));
//! let upper = map_events(|mut event| {
//!     if !event.is_done() {
//!         event.data = event.data.to_uppercase();
//!     }
//!     Ok(Some(event))
//! });
//! let body = TransformBody::new(upstream, upper, Decoder::default());
//!
//! let bytes = body.collect().await?.to_bytes();
//! assert_eq!(bytes, "data: HELLO\n\n: ping\n\ndata: [DONE]\n\n");
//! # Ok(())
//! # }
//! ```
//!
//! [WHATWG event stream interpretation]: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

mod body;
mod decode;
mod encode;
mod event;
mod transform;

#[cfg(test)]
mod test_util;

pub use body::TransformBody;
pub use decode::{DEFAULT_MAX_EVENT_BYTES, Decoder, SseError};
pub use encode::encode;
pub use event::{Event, Frame};
pub use transform::{Framing, MapEvents, Transform, map_events};
