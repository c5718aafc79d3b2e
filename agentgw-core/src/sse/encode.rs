//! The encoder: [`Event`]s and [`Frame`]s back to their wire form, with line breaks that cannot
//! inject fields or events.

use std::mem;

use bytes::{BufMut, Bytes, BytesMut};

use super::decode::find_line_end;
use super::{Event, Frame};

impl Event {
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

#[cfg(test)]
mod tests {
    use crate::sse::test_util::*;
    use crate::sse::{Event, Frame};
    use proptest::prelude::*;

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
