//! Helpers shared by the tests of this module: decoding in chunks, encoding, generated streams.

use bytes::BytesMut;
use proptest::prelude::*;

use super::decode::BOM;
use super::*;

pub(super) fn decode_chunks(
    decoder: &mut Decoder,
    chunks: &[&[u8]],
) -> Result<Vec<Frame>, SseError> {
    let mut frames = Vec::new();
    for chunk in chunks {
        decoder.decode(chunk, &mut frames)?;
    }
    decoder.finish()?;
    Ok(frames)
}

pub(super) fn decode_all(chunks: &[&[u8]]) -> Result<Vec<Frame>, SseError> {
    decode_chunks(&mut Decoder::default(), chunks)
}

pub(super) fn one_byte_chunks(stream: &[u8]) -> Vec<&[u8]> {
    stream.chunks(1).collect()
}

pub(super) fn event(data: &str) -> Frame {
    Frame::Event(Event::data(data))
}

pub(super) fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut out = BytesMut::new();
    for frame in frames {
        encode(frame, &mut out);
    }
    out
}

/// A text value drawn from characters that stress the decoder.
pub(super) fn text(breaks: bool) -> impl Strategy<Value = String> {
    let mut chars = vec!['a', 'Z', ' ', ':', 'é', '\0', '😀', '\u{feff}', '[', '"'];
    if breaks {
        chars.extend(['\n', '\r']);
    }
    prop::collection::vec(prop::sample::select(chars), 0..8)
        .prop_map(|chars| chars.into_iter().collect())
}

/// One raw line (without its line ending) of a generated stream.
pub(super) fn raw_line() -> impl Strategy<Value = Vec<u8>> {
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

pub(super) fn raw_stream() -> impl Strategy<Value = Vec<u8>> {
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
pub(super) fn decode_chunked(
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
