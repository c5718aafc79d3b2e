//! The [`Decoder`]: bytes, split anywhere, to [`Frame`]s, bounded and fail-closed.

use std::fmt;
use std::mem;

use super::{Event, Frame};

/// The default bound of [`Decoder::default`]: 1 MiB per event.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// The byte order mark a stream may start with.
pub(super) const BOM: &[u8] = b"\xEF\xBB\xBF";

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

/// Index of the first `\r` or `\n` in `bytes`.
///
/// Scans eight bytes at a time: a word holds a line break when `word ^ broadcast(break)` has a
/// zero byte. The zero-byte test can flag bytes above a real zero, never below, so the lowest
/// flag of a little-endian word is the first match.
#[inline]
pub(super) fn find_line_end(bytes: &[u8]) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::Frame;
    use crate::sse::test_util::*;
    use proptest::prelude::*;

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
    }
}
