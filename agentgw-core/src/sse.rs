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

use std::fmt;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, SizeHint};
use pin_project_lite::pin_project;

use crate::BoxError;

/// The default bound of [`Decoder::default`]: 1 MiB per event.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// The byte order mark a stream may start with.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A line buffer that grew past this capacity is released after use instead of kept.
const RETAINED_LINE_CAPACITY: usize = 64 * 1024;

/// Why an event stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// An event (its pending fields plus its current line) grew past the decoder's limit.
    #[error("SSE event exceeds the limit of {limit} bytes")]
    EventTooLarge {
        /// The configured limit, [`Decoder::max_event_bytes`].
        limit: usize,
    },
    /// The stream holds bytes that are not UTF-8.
    #[error("invalid UTF-8 in SSE stream at byte offset {offset}")]
    InvalidUtf8 {
        /// Offset of the first invalid byte from the start of the stream.
        offset: u64,
    },
    /// The stream ended inside an event: a partial line or fields not followed by a blank line.
    #[error("SSE stream ended inside an event (no blank line terminates it)")]
    Truncated,
}

impl SseError {
    /// A short, low-cardinality name of the error, for metric labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SseError::EventTooLarge { .. } => "event_too_large",
            SseError::InvalidUtf8 { .. } => "invalid_utf8",
            SseError::Truncated => "truncated",
        }
    }
}

/// One dispatched event of a stream.
///
/// `None` means the field was absent; `data` is empty when the event had no `data:` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The event type (`event:`); `None` means the default type, `message`.
    pub event: Option<String>,
    /// The data: the values of the `data:` lines joined with `\n`.
    pub data: String,
    /// The event id (`id:`).
    pub id: Option<String>,
    /// The reconnection time in milliseconds (`retry:`).
    pub retry: Option<u64>,
}

impl Event {
    /// An event of the default type carrying `data`.
    pub fn data(data: impl Into<String>) -> Self {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// Sets the event type (`event:`).
    #[must_use]
    pub fn with_event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// Sets the event id (`id:`).
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the reconnection time in milliseconds (`retry:`).
    #[must_use]
    pub fn with_retry(mut self, millis: u64) -> Self {
        self.retry = Some(millis);
        self
    }

    /// The event type, `message` when none (or an empty one) was given.
    pub fn event_type(&self) -> &str {
        match self.event.as_deref() {
            None | Some("") => "message",
            Some(event) => event,
        }
    }

    /// Whether this is OpenAI's end-of-stream sentinel: data exactly `[DONE]`.
    pub fn is_done(&self) -> bool {
        self.data == "[DONE]"
    }

    /// Appends the wire form of the event to `out`; see the module docs for the format.
    pub fn encode(&self, out: &mut BytesMut) {
        let value_len = self.data.len()
            + self.event.as_ref().map_or(0, String::len)
            + self.id.as_ref().map_or(0, String::len);
        out.reserve(value_len + 32);

        if let Some(event) = &self.event {
            put_single_line_field(out, b"event", event);
        }
        if let Some(id) = &self.id {
            put_single_line_field(out, b"id", id);
        }
        if let Some(retry) = self.retry {
            out.put_slice(b"retry: ");
            out.put_slice(retry.to_string().as_bytes());
            out.put_u8(b'\n');
        }
        let has_other_field = self.event.is_some() || self.id.is_some() || self.retry.is_some();
        if !self.data.is_empty() || !has_other_field {
            for_each_line(&self.data, |line| put_field(out, b"data", line));
        }
        out.put_u8(b'\n');
    }
}

/// One item of an event stream: an event, or a comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A dispatched event.
    Event(Event),
    /// A comment (a line starting with `:`), without the colon and one following space.
    /// Servers send comments as keep-alives.
    Comment(String),
}

impl Frame {
    /// Appends the wire form of the frame to `out`; see the module docs for the format.
    ///
    /// A comment containing line breaks is written as one comment line per line.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Event(event) => event.encode(out),
            Frame::Comment(text) => {
                out.reserve(text.len() + 4);
                for_each_line(text, |line| put_field(out, b"", line));
                out.put_u8(b'\n');
            }
        }
    }

    /// The wire form of the frame.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

impl From<Event> for Frame {
    fn from(event: Event) -> Self {
        Frame::Event(event)
    }
}

/// Appends the wire form of `frame` to `out`; the same as [`Frame::encode`].
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    frame.encode(out);
}

/// Writes `name: value\n`, or `name:\n` for an empty value.
fn put_field(out: &mut BytesMut, name: &[u8], value: &str) {
    out.put_slice(name);
    out.put_u8(b':');
    if !value.is_empty() {
        out.put_u8(b' ');
        out.put_slice(value.as_bytes());
    }
    out.put_u8(b'\n');
}

/// Writes a field whose value cannot span lines, replacing each line break with a space so that
/// the value cannot inject other fields or events.
fn put_single_line_field(out: &mut BytesMut, name: &[u8], value: &str) {
    if find_line_end(value.as_bytes()).is_none() {
        put_field(out, name, value);
        return;
    }
    out.put_slice(name);
    out.put_u8(b':');
    out.put_u8(b' ');
    let mut first = true;
    for_each_line(value, |line| {
        if !mem::take(&mut first) {
            out.put_u8(b' ');
        }
        out.put_slice(line.as_bytes());
    });
    out.put_u8(b'\n');
}

/// Calls `f` with every line of `text`, split on `\n`, `\r\n` and `\r` (always at least once).
fn for_each_line(text: &str, mut f: impl FnMut(&str)) {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(len) = find_line_end(&bytes[start..]) {
        let end = start + len;
        // Line breaks are ASCII, so these indices are char boundaries.
        f(&text[start..end]);
        start = end + 1;
        if bytes[end] == b'\r' && bytes.get(start) == Some(&b'\n') {
            start += 1;
        }
    }
    f(&text[start..]);
}

/// Index of the first `\r` or `\n` in `bytes`.
///
/// Scans eight bytes at a time: a word holds a line break when `word ^ broadcast(break)` has a
/// zero byte. The zero-byte test can flag bytes above a real zero, never below, so the lowest
/// flag of a little-endian word is the first match.
#[inline]
fn find_line_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const LF: u64 = u64::from_le_bytes([b'\n'; 8]);
    const CR: u64 = u64::from_le_bytes([b'\r'; 8]);
    let has_zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;

    let mut words = bytes.chunks_exact(8);
    for (i, word) in words.by_ref().enumerate() {
        let mut le = [0; 8];
        le.copy_from_slice(word);
        let word = u64::from_le_bytes(le);
        let found = has_zero_byte(word ^ LF) | has_zero_byte(word ^ CR);
        if found != 0 {
            return Some(i * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    let tail = words.remainder();
    let tail_start = bytes.len() - tail.len();
    tail.iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map(|pos| tail_start + pos)
}

/// An incremental event stream decoder.
///
/// Feed it chunks with [`decode`](Decoder::decode), however the stream was split, and call
/// [`finish`](Decoder::finish) at the end of the stream. See the module docs for the rules.
pub struct Decoder {
    max_event_bytes: usize,
    /// The start of a line whose end has not arrived yet.
    line: Vec<u8>,
    /// Stream offset of the first byte of the current line.
    line_start: u64,
    /// Stream offset of the next chunk.
    consumed: u64,
    /// The last chunk ended with `\r`: a `\n` starting the next chunk belongs to that line end.
    after_cr: bool,
    /// No line has completed yet: the next line may start with a byte order mark.
    at_stream_start: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    failed: Option<SseError>,
}

impl Decoder {
    /// A decoder that fails with [`SseError::EventTooLarge`] when an event (its pending fields
    /// plus its current line, in bytes) grows past `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Decoder {
            max_event_bytes,
            line: Vec::new(),
            line_start: 0,
            consumed: 0,
            after_cr: false,
            at_stream_start: true,
            data: String::new(),
            has_data: false,
            event: None,
            id: None,
            retry: None,
            failed: None,
        }
    }

    /// The size bound of one event, in bytes.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Decodes the next chunk of the stream, pushing every frame it completes to `out`.
    ///
    /// On error, frames completed before the offending line are in `out`, and the decoder
    /// returns the same error from every later call.
    pub fn decode(&mut self, chunk: &[u8], out: &mut Vec<Frame>) -> Result<(), SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.decode_chunk(chunk, out);
        if let Err(err) = &result {
            self.fail(err.clone());
        }
        result
    }

    /// Ends the stream.
    ///
    /// Returns [`SseError::Truncated`] when the stream ended inside an event (a partial line, or
    /// fields not yet dispatched by a blank line); see the module docs. On success the decoder
    /// is ready for a new stream.
    pub fn finish(&mut self) -> Result<(), SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let mut partial = self.line.as_slice();
        if self.at_stream_start {
            partial = partial.strip_prefix(BOM).unwrap_or(partial);
        }
        if !partial.is_empty() || self.has_pending_fields() {
            self.fail(SseError::Truncated);
            return Err(SseError::Truncated);
        }
        *self = Decoder::new(self.max_event_bytes);
        Ok(())
    }

    fn decode_chunk(&mut self, chunk: &[u8], out: &mut Vec<Frame>) -> Result<(), SseError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let base = self.consumed;
        self.consumed += chunk.len() as u64;
        let mut pos = 0;
        if mem::take(&mut self.after_cr) && chunk[0] == b'\n' {
            pos = 1;
            self.line_start = base + 1;
        }
        while pos < chunk.len() {
            let rest = &chunk[pos..];
            let Some(len) = find_line_end(rest) else {
                self.check_size(self.line.len() + rest.len())?;
                self.line.extend_from_slice(rest);
                break;
            };
            let end = pos + len;
            let mut next = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.line.is_empty() {
                self.process_line(&chunk[pos..end], out)?;
            } else {
                self.check_size(self.line.len() + len)?;
                let mut line = mem::take(&mut self.line);
                line.extend_from_slice(&chunk[pos..end]);
                let result = self.process_line(&line, out);
                if line.capacity() <= RETAINED_LINE_CAPACITY {
                    line.clear();
                    self.line = line;
                }
                result?;
            }
            self.line_start = base + next as u64;
            pos = next;
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<Frame>) -> Result<(), SseError> {
        self.check_size(line.len())?;
        let mut line = line;
        let mut offset = self.line_start;
        if mem::take(&mut self.at_stream_start)
            && let Some(rest) = line.strip_prefix(BOM)
        {
            line = rest;
            offset += BOM.len() as u64;
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|err| SseError::InvalidUtf8 {
            offset: offset + err.valid_up_to() as u64,
        })?;
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Frame::Comment(strip_one_space(comment).to_owned()));
            return Ok(());
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, strip_one_space(value)),
            None => (line, ""),
        };
        match name {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // More digits than a u64 holds: ignored, like any invalid retry value.
                if let Ok(millis) = value.parse() {
                    self.retry = Some(millis);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Frame>) {
        if !self.has_pending_fields() {
            return;
        }
        self.has_data = false;
        out.push(Frame::Event(Event {
            event: self.event.take(),
            data: mem::take(&mut self.data),
            id: self.id.take(),
            retry: self.retry.take(),
        }));
    }

    fn has_pending_fields(&self) -> bool {
        self.has_data || self.event.is_some() || self.id.is_some() || self.retry.is_some()
    }

    fn pending_field_bytes(&self) -> usize {
        self.data.len()
            + self.event.as_ref().map_or(0, String::len)
            + self.id.as_ref().map_or(0, String::len)
    }

    fn check_size(&self, line_len: usize) -> Result<(), SseError> {
        if self.pending_field_bytes().saturating_add(line_len) > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    /// Remembers the error and releases the buffers.
    fn fail(&mut self, err: SseError) {
        let max_event_bytes = self.max_event_bytes;
        *self = Decoder::new(max_event_bytes);
        self.failed = Some(err);
    }
}

impl Default for Decoder {
    /// A decoder bounded by [`DEFAULT_MAX_EVENT_BYTES`].
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl fmt::Debug for Decoder {
    // Pending bytes may be sensitive (the point of decoding is often to mask them): print sizes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("max_event_bytes", &self.max_event_bytes)
            .field("pending_line_bytes", &self.line.len())
            .field("pending_field_bytes", &self.pending_field_bytes())
            .field("consumed", &self.consumed)
            .field("failed", &self.failed)
            .finish()
    }
}

fn strip_one_space(value: &str) -> &str {
    value.strip_prefix(' ').unwrap_or(value)
}

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

    use futures_util::stream::{self, StreamExt};
    use http_body_util::{BodyExt, Full, StreamBody};
    use proptest::prelude::*;

    fn decode_chunks(decoder: &mut Decoder, chunks: &[&[u8]]) -> Result<Vec<Frame>, SseError> {
        let mut frames = Vec::new();
        for chunk in chunks {
            decoder.decode(chunk, &mut frames)?;
        }
        decoder.finish()?;
        Ok(frames)
    }

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<Frame>, SseError> {
        decode_chunks(&mut Decoder::default(), chunks)
    }

    fn one_byte_chunks(stream: &[u8]) -> Vec<&[u8]> {
        stream.chunks(1).collect()
    }

    fn event(data: &str) -> Frame {
        Frame::Event(Event::data(data))
    }

    fn encode_all(frames: &[Frame]) -> BytesMut {
        let mut out = BytesMut::new();
        for frame in frames {
            encode(frame, &mut out);
        }
        out
    }

    #[test]
    fn every_line_ending_ends_lines() {
        for stream in [
            &b"data: a\ndata: b\n\ndata: c\n\n"[..],
            b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
            b"data: a\rdata: b\r\rdata: c\r\r",
            b"data: a\r\ndata: b\r\rdata: c\n\r\n",
        ] {
            let expected = vec![event("a\nb"), event("c")];
            assert_eq!(decode_all(&[stream]).unwrap(), expected, "{stream:?}");
            assert_eq!(decode_all(&one_byte_chunks(stream)).unwrap(), expected);
        }
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_ending() {
        // Were the `\n` a second line ending, it would be a blank line dispatching "a" alone.
        let frames = decode_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]).unwrap();
        assert_eq!(frames, vec![event("a\nb")]);
        // A `\r` at the end of a chunk followed by anything else is still a line ending.
        let frames = decode_all(&[b"data: a\r", b"data: b\r", b"\r"]).unwrap();
        assert_eq!(frames, vec![event("a\nb")]);
        // An empty chunk between the halves changes nothing.
        let frames = decode_all(&[b"data: a\r", b"", b"\n\n"]).unwrap();
        assert_eq!(frames, vec![event("a")]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let frames = decode_all(&[b"data: first\ndata:\ndata:  third\ndata\n\n"]).unwrap();
        assert_eq!(frames, vec![event("first\n\n third\n")]);
    }

    #[test]
    fn fields_are_parsed_per_spec() {
        let stream = b"event: update\nid: 42\nretry: 1500\ndata:no-space\nunknown: x\n\n";
        let frames = decode_all(&[stream]).unwrap();
        assert_eq!(
            frames,
            vec![Frame::Event(
                Event::data("no-space")
                    .with_event("update")
                    .with_id("42")
                    .with_retry(1500)
            )]
        );
        let Frame::Event(event) = &frames[0] else {
            panic!("expected an event");
        };
        assert_eq!(event.event_type(), "update");
        assert_eq!(Event::data("x").event_type(), "message");
    }

    #[test]
    fn field_without_colon_has_empty_value() {
        let frames = decode_all(&[b"data\ndata\n\nevent\ndata: x\n\n"]).unwrap();
        assert_eq!(
            frames,
            vec![event("\n"), Frame::Event(Event::data("x").with_event(""))]
        );
    }

    #[test]
    fn id_with_nul_is_ignored() {
        let frames = decode_all(&[b"id: a\0b\ndata: x\n\nid: ok\ndata: y\n\n"]).unwrap();
        assert_eq!(
            frames,
            vec![event("x"), Frame::Event(Event::data("y").with_id("ok"))]
        );
    }

    #[test]
    fn retry_accepts_digits_only() {
        let stream = b"retry: 10\ndata: a\n\nretry: 1o\ndata: b\n\nretry: -5\ndata: c\n\n\
                       retry:\ndata: d\n\nretry: 99999999999999999999999\ndata: e\n\nretry:7\n\n";
        let frames = decode_all(&[stream]).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::Event(Event::data("a").with_retry(10)),
                event("b"),
                event("c"),
                event("d"),
                event("e"),
                Frame::Event(Event::default().with_retry(7)),
            ]
        );
    }

    #[test]
    fn comments_are_surfaced() {
        let frames = decode_all(&[b": keep-alive\n\n:\n:no space\ndata: a\n:  two\n\n"]).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::Comment("keep-alive".into()),
                Frame::Comment(String::new()),
                Frame::Comment("no space".into()),
                Frame::Comment(" two".into()),
                event("a"),
            ]
        );
    }

    #[test]
    fn blocks_without_fields_dispatch_nothing_but_retry_or_id_alone_do() {
        let frames = decode_all(&[b"\n\nunknown: 1\n\nretry: 3000\n\nid: 7\n\n"]).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::Event(Event::default().with_retry(3000)),
                Frame::Event(Event::default().with_id("7")),
            ]
        );
    }

    #[test]
    fn bom_at_stream_start_is_skipped() {
        let stream = b"\xEF\xBB\xBFdata: a\n\n";
        assert_eq!(decode_all(&[stream]).unwrap(), vec![event("a")]);
        assert_eq!(
            decode_all(&one_byte_chunks(stream)).unwrap(),
            vec![event("a")]
        );
        // Only at the start: later it is part of the line (here, of the field name).
        let frames = decode_all(&[b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"]).unwrap();
        assert_eq!(frames, vec![event("a")]);
        // A stream that is nothing but a BOM is empty, not truncated.
        assert_eq!(decode_all(&[BOM]).unwrap(), vec![]);
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut decoder = Decoder::new(16);
        let mut frames = Vec::new();
        decoder
            .decode(b"data: 0123456789\n\n", &mut frames)
            .unwrap();
        assert_eq!(frames, vec![event("0123456789")]);

        // The data accumulates across lines...
        let err = decoder
            .decode(b"data: 0123456789\ndata: abc\n", &mut frames)
            .unwrap_err();
        assert_eq!(err, SseError::EventTooLarge { limit: 16 });
        assert_eq!(err.to_string(), "SSE event exceeds the limit of 16 bytes");
        assert_eq!(err.reason(), "event_too_large");
        // ...and the decoder stays failed.
        assert_eq!(decoder.decode(b"\n", &mut frames), Err(err.clone()));
        assert_eq!(decoder.finish(), Err(err));
        assert_eq!(frames.len(), 1);
    }

    #[test]
    fn partial_line_is_bounded() {
        let mut decoder = Decoder::new(64);
        let mut frames = Vec::new();
        let mut result = Ok(());
        for _ in 0..100 {
            result = decoder.decode(b"data: no line end in sight ", &mut frames);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::EventTooLarge { limit: 64 }));
        assert!(decoder.line.capacity() <= 64, "buffer released on error");
        // One long comment line counts too.
        let mut decoder = Decoder::new(8);
        assert_eq!(
            decoder.decode(b": a long comment\n", &mut frames),
            Err(SseError::EventTooLarge { limit: 8 })
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_with_offset() {
        let err = decode_all(&[b"data: ok\n\ndata: caf\xC3\n\n"]).unwrap_err();
        assert_eq!(err, SseError::InvalidUtf8 { offset: 19 });
        assert_eq!(
            err.to_string(),
            "invalid UTF-8 in SSE stream at byte offset 19"
        );
        // Same offset however the stream is chunked.
        let err = decode_all(&one_byte_chunks(b"data: ok\n\ndata: caf\xC3\n\n")).unwrap_err();
        assert_eq!(err, SseError::InvalidUtf8 { offset: 19 });
        // A multi-byte character split across chunks is fine.
        let frames = decode_all(&[b"data: caf\xC3", b"\xA9\n\n"]).unwrap();
        assert_eq!(frames, vec![event("café")]);
    }

    #[test]
    fn truncated_stream_is_an_error() {
        for stream in [
            &b"data: {\"partial\": tr"[..],
            b"data: complete line, no blank line\n",
            b"data: a\n\nevent: x\n",
            b": comment without line end",
        ] {
            let mut decoder = Decoder::default();
            let mut frames = Vec::new();
            decoder.decode(stream, &mut frames).unwrap();
            assert_eq!(decoder.finish(), Err(SseError::Truncated), "{stream:?}");
        }
        // Complete streams, and the `\r` awaiting a possible `\n`, are fine.
        assert_eq!(decode_all(&[b"data: a\n\n"]).unwrap(), vec![event("a")]);
        assert_eq!(decode_all(&[b"data: a\r\r"]).unwrap(), vec![event("a")]);
        assert_eq!(decode_all(&[b""]).unwrap(), vec![]);
        assert_eq!(decode_all(&[b"unknown: x\n"]).unwrap(), vec![]);
    }

    #[test]
    fn finish_makes_the_decoder_ready_for_a_new_stream() {
        let mut decoder = Decoder::default();
        let frames = decode_chunks(&mut decoder, &[b"data: a\n\n"]).unwrap();
        assert_eq!(frames, vec![event("a")]);
        let frames = decode_chunks(&mut decoder, &[b"\xEF\xBB\xBFdata: b\n\n"]).unwrap();
        assert_eq!(frames, vec![event("b")]);
    }

    #[test]
    fn openai_stream() {
        let stream = concat!(
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",",
            "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",",
            "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: [DONE]\n\n",
        );
        let frames = decode_all(&one_byte_chunks(stream.as_bytes())).unwrap();
        assert_eq!(frames.len(), 3);
        let contents: Vec<String> = frames[..2]
            .iter()
            .map(|frame| {
                let Frame::Event(event) = frame else {
                    panic!("expected an event, got {frame:?}");
                };
                assert!(!event.is_done());
                let json: serde_json::Value = serde_json::from_str(&event.data).unwrap();
                json["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(contents, ["Hel", "lo"]);
        assert!(matches!(&frames[2], Frame::Event(event) if event.is_done()));
        // Re-encoding gives the upstream bytes back.
        assert_eq!(&encode_all(&frames)[..], stream.as_bytes());
    }

    #[test]
    fn anthropic_stream() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,",
            "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let frames = decode_all(&[stream.as_bytes()]).unwrap();
        let types: Vec<&str> = frames
            .iter()
            .map(|frame| match frame {
                Frame::Event(event) => event.event_type(),
                Frame::Comment(_) => "comment",
            })
            .collect();
        assert_eq!(
            types,
            [
                "message_start",
                "content_block_delta",
                "ping",
                "message_stop"
            ]
        );
        let Frame::Event(delta) = &frames[1] else {
            panic!("expected an event");
        };
        let json: serde_json::Value = serde_json::from_str(&delta.data).unwrap();
        assert_eq!(json["delta"]["text"], "Hi");
        assert_eq!(&encode_all(&frames)[..], stream.as_bytes());
    }

    #[test]
    fn encode_writes_fields_and_blank_line() {
        let frame = Frame::Event(
            Event::data("line 1\r\nline 2\r line 3\n")
                .with_event("delta")
                .with_id("7")
                .with_retry(250),
        );
        assert_eq!(
            frame.to_bytes(),
            "event: delta\nid: 7\nretry: 250\ndata: line 1\ndata: line 2\ndata:  line 3\ndata:\n\n"
        );
        assert_eq!(Frame::Comment(String::new()).to_bytes(), ":\n\n");
        assert_eq!(Frame::Comment("a\nb".into()).to_bytes(), ": a\n: b\n\n");
        assert_eq!(Frame::from(Event::default()).to_bytes(), "data:\n\n");
        // Empty data beside another field writes no `data:` line: clients see no message.
        assert_eq!(
            Frame::from(Event::default().with_retry(3000)).to_bytes(),
            "retry: 3000\n\n"
        );
        assert_eq!(
            Frame::from(Event::default().with_id("")).to_bytes(),
            "id:\n\n"
        );
    }

    #[test]
    fn encode_cannot_inject_lines_through_event_or_id() {
        let frame = Frame::Event(
            Event::data("x")
                .with_event("a\n\ndata: injected\r\n")
                .with_id("1\revent: evil"),
        );
        let bytes = frame.to_bytes();
        assert_eq!(
            bytes,
            "event: a  data: injected \nid: 1 event: evil\ndata: x\n\n"
        );
        assert_eq!(
            decode_all(&[&bytes]).unwrap(),
            vec![Frame::Event(
                Event::data("x")
                    .with_event("a  data: injected ")
                    .with_id("1 event: evil")
            )]
        );
    }

    #[test]
    fn debug_does_not_print_pending_content() {
        let mut decoder = Decoder::default();
        decoder
            .decode(b"data: sk-secret-key\ndata: partial", &mut Vec::new())
            .unwrap();
        let debug = format!("{decoder:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(!debug.contains("partial"), "{debug}");
        assert!(debug.contains("pending_line_bytes: 13"), "{debug}");
    }

    // ---- TransformBody ----

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
    async fn map_events_can_drop_events_and_keeps_comments() {
        let drop_pings = map_events(|event| Ok((event.event_type() != "ping").then_some(event)));
        let inner = Full::new(Bytes::from_static(
            b"event: ping\ndata: {}\n\n: hi\n\ndata: keep\n\n",
        ));
        let body = TransformBody::new(inner, Box::new(drop_pings), Decoder::default());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, ": hi\n\ndata: keep\n\n");
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

    // ---- properties ----

    /// A text value drawn from characters that stress the decoder.
    fn text(breaks: bool) -> impl Strategy<Value = String> {
        let mut chars = vec!['a', 'Z', ' ', ':', 'é', '\0', '😀', '\u{feff}', '[', '"'];
        if breaks {
            chars.extend(['\n', '\r']);
        }
        prop::collection::vec(prop::sample::select(chars), 0..8)
            .prop_map(|chars| chars.into_iter().collect())
    }

    /// One raw line (without its line ending) of a generated stream.
    fn raw_line() -> impl Strategy<Value = Vec<u8>> {
        let name = prop::sample::select(vec!["data", "event", "id", "retry", "dat", "other", ""]);
        prop_oneof![
            4 => (name, prop::sample::select(vec!["", ":", ": "]), text(false)).prop_map(
                |(name, colon, value)| format!("{name}{colon}{value}").into_bytes()
            ),
            1 => "[0-9]{1,4}".prop_map(|n| format!("retry: {n}").into_bytes()),
            1 => text(false).prop_map(|t| format!(":{t}").into_bytes()),
            3 => Just(Vec::new()),
            1 => prop::collection::vec(any::<u8>(), 0..4),
        ]
    }

    fn raw_stream() -> impl Strategy<Value = Vec<u8>> {
        let ending = prop::sample::select(vec!["\n", "\r\n", "\r"]);
        (
            any::<bool>(),
            prop::collection::vec((raw_line(), ending), 0..24),
            any::<bool>(),
        )
            .prop_map(|(bom, lines, last_unterminated)| {
                let mut stream = if bom { BOM.to_vec() } else { Vec::new() };
                let count = lines.len();
                for (i, (line, ending)) in lines.into_iter().enumerate() {
                    stream.extend_from_slice(&line);
                    if !(last_unterminated && i + 1 == count) {
                        stream.extend_from_slice(ending.as_bytes());
                    }
                }
                stream
            })
    }

    /// Decodes `stream` in chunks of the given sizes (cycled), stopping at the first error.
    fn decode_chunked(
        stream: &[u8],
        sizes: &[usize],
        max_event_bytes: usize,
    ) -> (Vec<Frame>, Result<(), SseError>) {
        let mut decoder = Decoder::new(max_event_bytes);
        let mut frames = Vec::new();
        let mut rest = stream;
        let mut sizes = sizes.iter().cycle();
        while !rest.is_empty() {
            let size = (*sizes.next().unwrap_or(&1)).min(rest.len());
            let (chunk, tail) = rest.split_at(size);
            if let Err(err) = decoder.decode(chunk, &mut frames) {
                return (frames, Err(err));
            }
            rest = tail;
        }
        let result = decoder.finish();
        (frames, result)
    }

    fn normalize_breaks(text: &str) -> String {
        text.replace("\r\n", "\n").replace('\r', "\n")
    }

    fn frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            text(false).prop_map(Frame::Comment),
            (
                prop::option::of(text(false)),
                text(true),
                prop::option::of(text(false).prop_map(|id| id.replace('\0', ""))),
                prop::option::of(any::<u64>()),
            )
                .prop_map(|(event, data, id, retry)| Frame::Event(Event {
                    event,
                    data,
                    id,
                    retry
                })),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_chunking_decodes_like_one_shot(
            stream in raw_stream(),
            sizes in prop::collection::vec(1usize..8, 1..16),
            max_event_bytes in prop::sample::select(vec![12usize, 40, DEFAULT_MAX_EVENT_BYTES]),
        ) {
            let one_shot = decode_chunked(&stream, &[stream.len().max(1)], max_event_bytes);
            prop_assert_eq!(&decode_chunked(&stream, &sizes, max_event_bytes), &one_shot);
            prop_assert_eq!(&decode_chunked(&stream, &[1], max_event_bytes), &one_shot);
        }

        #[test]
        fn find_line_end_finds_the_first_break(
            bytes in prop::collection::vec(
                prop::sample::select(vec![b'a', b'\n', b'\r', 0x00, 0x0b, 0x0c, 0x0e, 0x8a, 0x8d, 0xff]),
                0..40,
            ),
        ) {
            let naive = bytes.iter().position(|&b| b == b'\n' || b == b'\r');
            prop_assert_eq!(find_line_end(&bytes), naive);
        }

        #[test]
        fn decoded_frames_survive_reencoding(stream in raw_stream()) {
            let (frames, result) = decode_chunked(&stream, &[stream.len().max(1)], 1 << 20);
            if result.is_ok() {
                let encoded = encode_all(&frames);
                let (again, result) = decode_chunked(&encoded, &[encoded.len().max(1)], 1 << 20);
                prop_assert_eq!(result, Ok(()));
                prop_assert_eq!(again, frames);
            }
        }

        #[test]
        fn encode_then_decode_gives_the_frames(
            frames in prop::collection::vec(frame(), 0..8),
            sizes in prop::collection::vec(1usize..16, 1..8),
        ) {
            let encoded = encode_all(&frames);
            let expected: Vec<Frame> = frames
                .into_iter()
                .map(|frame| match frame {
                    Frame::Event(mut event) => {
                        event.data = normalize_breaks(&event.data);
                        Frame::Event(event)
                    }
                    comment => comment,
                })
                .collect();
            let (decoded, result) = decode_chunked(&encoded, &sizes, 1 << 20);
            prop_assert_eq!(result, Ok(()));
            prop_assert_eq!(decoded, expected);
        }
    }
}
