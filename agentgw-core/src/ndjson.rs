//! Line-delimited JSON (`application/x-ndjson`, `application/jsonl`, `application/json-lines`):
//! an incremental line decoder for [`TransformBody`](crate::sse::TransformBody).
//!
//! Ollama streams `/api/chat` and `/api/generate` as one JSON object per line, and so do other
//! servers that do not speak Server-Sent Events. A layer that rewrites such a response must
//! see it line by line, as it arrives, without buffering the whole stream: the [`Decoder`]
//! cuts a byte stream, split anywhere, into [`Line`]s, and implements
//! [`Framing`] so that [`TransformBody`](crate::sse::TransformBody) runs a
//! [`Transform<Line>`](crate::sse::Transform) over a response exactly as it does over an event
//! stream.
//!
//! - Lines end with `\n`. A `\r` before it stays part of the line (JSON reads it as
//!   whitespace), so that an untouched line is written back byte for byte.
//! - Blank lines are lines too (with empty text): a transform decides what they mean.
//! - The last line may lack its `\n`; [`Decoder::finish`] returns it, and it is written back
//!   without one.
//! - A line longer than the configured limit is [`NdjsonError::LineTooLarge`] and bytes that
//!   are not UTF-8 are [`NdjsonError::InvalidUtf8`]: a transforming proxy fails closed. After
//!   an error the decoder is spent: every later call returns the same error.
//!
//! # Example
//!
//! ```
//! use agentgw_core::ndjson::{Decoder, Line};
//! use agentgw_core::sse::{Transform, TransformBody};
//! use agentgw_core::BoxError;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//!
//! /// Upper-cases every line.
//! struct Upper;
//!
//! impl Transform<Line> for Upper {
//!     fn frame(&mut self, mut line: Line, out: &mut Vec<Line>) -> Result<(), BoxError> {
//!         line.text = line.text.to_uppercase();
//!         out.push(line);
//!         Ok(())
//!     }
//!
//!     fn finish(&mut self, _out: &mut Vec<Line>) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), BoxError> {
//! // Any chunking yields the same lines.
//! let mut decoder = Decoder::new(1024);
//! let mut lines = Vec::new();
//! for chunk in [&b"{\"response\":\"Hel"[..], b"lo\"}\n{\"resp", b"onse\":\"!\"}"] {
//!     decoder.decode(chunk, &mut lines)?;
//! }
//! lines.extend(decoder.finish()?);
//! assert_eq!(
//!     lines,
//!     [Line::new("{\"response\":\"Hello\"}"), Line::unterminated("{\"response\":\"!\"}")]
//! );
//!
//! // A transform over a response body, line by line; untouched bytes stay as they were.
//! let upstream = Full::new(Bytes::from_static(b"{\"a\":\"x\"}\r\n{\"a\":\"y\"}"));
//! let body = TransformBody::new(upstream, Upper, Decoder::default());
//! assert_eq!(body.collect().await?.to_bytes(), "{\"A\":\"X\"}\r\n{\"A\":\"Y\"}");
//! # Ok(())
//! # }
//! ```

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::BoxError;
use crate::sse::Framing;

/// The default bound of [`Decoder::default`]: 1 MiB per line.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// A line buffer that grew past this capacity is released after use instead of kept.
const RETAINED_LINE_CAPACITY: usize = 64 * 1024;

/// Why a line-delimited stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NdjsonError {
    /// A line grew past the decoder's limit.
    #[error("JSON line exceeds the limit of {limit} bytes")]
    LineTooLarge {
        /// The configured limit, [`Decoder::max_line_bytes`].
        limit: usize,
    },
    /// The stream holds bytes that are not UTF-8.
    #[error("invalid UTF-8 in JSON line stream at byte offset {offset}")]
    InvalidUtf8 {
        /// Offset of the first invalid byte from the start of the stream.
        offset: u64,
    },
}

impl NdjsonError {
    /// A short, low-cardinality name of the error, for metric labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            NdjsonError::LineTooLarge { .. } => "line_too_large",
            NdjsonError::InvalidUtf8 { .. } => "invalid_utf8",
        }
    }
}

/// One line of a stream, without its `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// The text of the line (a `\r` before the `\n` included).
    pub text: String,
    /// Whether a `\n` follows the text on the wire: false only for a last line without one,
    /// or for text a transform writes as is (held-back text released into the stream).
    pub terminated: bool,
}

impl Line {
    /// A line ended by `\n`.
    pub fn new(text: impl Into<String>) -> Self {
        Line {
            text: text.into(),
            terminated: true,
        }
    }

    /// Text written as is, without a `\n` after it.
    pub fn unterminated(text: impl Into<String>) -> Self {
        Line {
            text: text.into(),
            terminated: false,
        }
    }

    /// Appends the wire form of the line to `out`: its text, then `\n` when terminated.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.text.len() + 1);
        out.put_slice(self.text.as_bytes());
        if self.terminated {
            out.put_u8(b'\n');
        }
    }
}

/// An incremental line decoder; see the [module docs](self).
pub struct Decoder {
    max_line_bytes: usize,
    /// The start of a line whose end has not arrived yet.
    line: Vec<u8>,
    /// Stream offset of the next chunk.
    consumed: u64,
    failed: Option<NdjsonError>,
}

impl Decoder {
    /// A decoder that fails with [`NdjsonError::LineTooLarge`] when a line (without its `\n`)
    /// grows past `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        Decoder {
            max_line_bytes,
            line: Vec::new(),
            consumed: 0,
            failed: None,
        }
    }

    /// The size bound of one line, in bytes.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Decodes the next chunk of the stream, pushing every line it completes to `out`.
    ///
    /// # Errors
    ///
    /// An oversized line or bytes that are not UTF-8. Lines completed before the offending one
    /// are in `out`, and the decoder returns the same error from every later call.
    pub fn decode(&mut self, chunk: &[u8], out: &mut Vec<Line>) -> Result<(), NdjsonError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.decode_lines(chunk, out);
        if let Err(err) = &result {
            self.fail(err.clone());
        }
        result
    }

    /// Ends the stream: returns the last line when it had no `\n` (never an empty one).
    ///
    /// # Errors
    ///
    /// The error the decoder failed with, or invalid UTF-8 in the last line. On success the
    /// decoder is ready for a new stream.
    pub fn finish(&mut self) -> Result<Option<Line>, NdjsonError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let start = self.consumed - self.line.len() as u64;
        let line = std::mem::take(&mut self.line);
        let result = if line.is_empty() {
            Ok(None)
        } else {
            String::from_utf8(line)
                .map(|text| Some(Line::unterminated(text)))
                .map_err(|err| NdjsonError::InvalidUtf8 {
                    offset: start + err.utf8_error().valid_up_to() as u64,
                })
        };
        match &result {
            Ok(_) => *self = Decoder::new(self.max_line_bytes),
            Err(err) => self.fail(err.clone()),
        }
        result
    }

    fn decode_lines(&mut self, chunk: &[u8], out: &mut Vec<Line>) -> Result<(), NdjsonError> {
        let base = self.consumed;
        self.consumed += chunk.len() as u64;
        let mut rest = chunk;
        while let Some(len) = rest.iter().position(|&b| b == b'\n') {
            let start = base + (chunk.len() - rest.len()) as u64 - self.line.len() as u64;
            self.check_size(self.line.len() + len)?;
            let text = if self.line.is_empty() {
                to_text(&rest[..len], start)?
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..len]);
                let text = to_text(&line, start);
                if line.capacity() <= RETAINED_LINE_CAPACITY {
                    line.clear();
                    self.line = line;
                }
                text?
            };
            out.push(Line::new(text));
            rest = &rest[len + 1..];
        }
        self.check_size(self.line.len() + rest.len())?;
        self.line.extend_from_slice(rest);
        Ok(())
    }

    fn check_size(&self, len: usize) -> Result<(), NdjsonError> {
        if len > self.max_line_bytes {
            return Err(NdjsonError::LineTooLarge {
                limit: self.max_line_bytes,
            });
        }
        Ok(())
    }

    /// Remembers the error and releases the buffer.
    fn fail(&mut self, err: NdjsonError) {
        *self = Decoder::new(self.max_line_bytes);
        self.failed = Some(err);
    }
}

/// The line's bytes as text; `start` is the stream offset of its first byte.
fn to_text(bytes: &[u8], start: u64) -> Result<String, NdjsonError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(err) => Err(NdjsonError::InvalidUtf8 {
            offset: start + err.valid_up_to() as u64,
        }),
    }
}

impl Default for Decoder {
    /// A decoder bounded by [`DEFAULT_MAX_LINE_BYTES`].
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_LINE_BYTES)
    }
}

impl fmt::Debug for Decoder {
    // Pending bytes may be sensitive (the point of decoding is often to mask them): print sizes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("max_line_bytes", &self.max_line_bytes)
            .field("pending_line_bytes", &self.line.len())
            .field("consumed", &self.consumed)
            .field("failed", &self.failed)
            .finish()
    }
}

impl Framing for Decoder {
    type Frame = Line;

    fn decode_chunk(&mut self, chunk: &[u8], out: &mut Vec<Line>) -> Result<(), BoxError> {
        self.decode(chunk, out).map_err(Into::into)
    }

    fn decode_end(&mut self, out: &mut Vec<Line>) -> Result<(), BoxError> {
        out.extend(self.finish()?);
        Ok(())
    }

    fn encode_frame(&self, line: &Line, out: &mut BytesMut) {
        line.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use proptest::prelude::*;

    use super::*;
    use crate::sse::{Transform, TransformBody};

    /// Decodes `stream` in chunks of the given sizes (cycled), stopping at the first error.
    fn decode_chunked(
        stream: &[u8],
        sizes: &[usize],
        max: usize,
    ) -> (Vec<Line>, Result<(), NdjsonError>) {
        let mut decoder = Decoder::new(max);
        let mut lines = Vec::new();
        let mut rest = stream;
        let mut sizes = sizes.iter().cycle();
        while !rest.is_empty() {
            let size = (*sizes.next().unwrap_or(&1)).min(rest.len());
            let (chunk, tail) = rest.split_at(size);
            if let Err(err) = decoder.decode(chunk, &mut lines) {
                return (lines, Err(err));
            }
            rest = tail;
        }
        match decoder.finish() {
            Ok(last) => {
                lines.extend(last);
                (lines, Ok(()))
            }
            Err(err) => (lines, Err(err)),
        }
    }

    fn encode_all(lines: &[Line]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for line in lines {
            line.encode(&mut out);
        }
        out.to_vec()
    }

    #[test]
    fn lines_blank_lines_carriage_returns_and_the_last_line() {
        let (lines, result) = decode_chunked(b"{\"a\":1}\r\n\n{\"b\":2}\nlast", &[3], 64);
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines,
            [
                Line::new("{\"a\":1}\r"),
                Line::new(""),
                Line::new("{\"b\":2}"),
                Line::unterminated("last")
            ]
        );
        let (lines, result) = decode_chunked(b"", &[1], 64);
        assert_eq!((lines, result), (vec![], Ok(())));
    }

    #[test]
    fn oversized_lines_fail_closed_and_the_decoder_stays_failed() {
        let mut decoder = Decoder::new(4);
        let mut lines = Vec::new();
        assert_eq!(decoder.decode(b"1234\n12", &mut lines), Ok(()));
        assert_eq!(lines, [Line::new("1234")]);
        let err = decoder.decode(b"345", &mut lines).unwrap_err();
        assert_eq!(err, NdjsonError::LineTooLarge { limit: 4 });
        assert_eq!(err.reason(), "line_too_large");
        assert_eq!(decoder.decode(b"\n", &mut lines), Err(err.clone()));
        assert_eq!(decoder.finish(), Err(err));
        // A long line with no newline yet is refused as soon as it passes the limit.
        let mut decoder = Decoder::new(4);
        assert!(decoder.decode(b"12345", &mut lines).is_err());
    }

    #[test]
    fn invalid_utf8_reports_its_offset() {
        let (_, result) = decode_chunked(b"ok\nab\xFFc\n", &[2], 64);
        assert_eq!(result, Err(NdjsonError::InvalidUtf8 { offset: 5 }));
        let (_, result) = decode_chunked(b"ok\nab\xFF", &[1], 64);
        assert_eq!(result, Err(NdjsonError::InvalidUtf8 { offset: 5 }));
        // A character split across chunks is fine.
        let (lines, result) = decode_chunked("é😀\n".as_bytes(), &[1], 64);
        assert_eq!(result, Ok(()));
        assert_eq!(lines, [Line::new("é😀")]);
    }

    struct Tag;

    impl Transform<Line> for Tag {
        fn frame(&mut self, mut line: Line, out: &mut Vec<Line>) -> Result<(), BoxError> {
            if line.text.contains("stop") {
                return Err("stopped".into());
            }
            line.text.push('!');
            out.push(line);
            Ok(())
        }

        fn finish(&mut self, out: &mut Vec<Line>) -> Result<(), BoxError> {
            out.push(Line::unterminated("<end>"));
            Ok(())
        }
    }

    #[tokio::test]
    async fn transform_body_runs_line_by_line() {
        let body = TransformBody::new(
            Full::new(Bytes::from_static(b"a\nb\nc")),
            Tag,
            Decoder::default(),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), "a!\nb!\nc!<end>");
        let body = TransformBody::new(
            Full::new(Bytes::from_static(b"a\nstop\nc\n")),
            Tag,
            Decoder::default(),
        );
        let err = body.collect().await.unwrap_err();
        assert_eq!(err.to_string(), "stopped");
        let body = TransformBody::new(
            Full::new(Bytes::from_static(b"aaaaaaaa\n")),
            Tag,
            Decoder::new(4),
        );
        let err = body.collect().await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<NdjsonError>(),
            Some(&NdjsonError::LineTooLarge { limit: 4 })
        );
    }

    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop::sample::select(vec![
            b'a', b'{', b'"', b'\n', b'\n', b'\r', b' ', 0xC3, 0xA9, 0xFF,
        ]);
        prop::collection::vec(byte, 0..64)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// However the stream is split, the same lines (or the same error) come out.
        #[test]
        fn any_chunking_decodes_like_one_shot(
            stream in stream(),
            sizes in prop::collection::vec(1usize..8, 1..16),
            max in prop::sample::select(vec![4usize, 16, DEFAULT_MAX_LINE_BYTES]),
        ) {
            let one_shot = decode_chunked(&stream, &[stream.len().max(1)], max);
            prop_assert_eq!(&decode_chunked(&stream, &sizes, max), &one_shot);
            prop_assert_eq!(&decode_chunked(&stream, &[1], max), &one_shot);
        }

        /// Decoded lines encode back to the stream, byte for byte.
        #[test]
        fn decoded_lines_encode_to_the_input(
            stream in stream(),
            sizes in prop::collection::vec(1usize..8, 1..16),
        ) {
            let (lines, result) = decode_chunked(&stream, &sizes, DEFAULT_MAX_LINE_BYTES);
            if result.is_ok() {
                prop_assert_eq!(encode_all(&lines), stream);
            }
        }
    }
}
