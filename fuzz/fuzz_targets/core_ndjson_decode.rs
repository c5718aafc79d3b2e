//! `agentgw_core::ndjson`: the incremental line decoder of JSON-lines streams.
//!
//! Input layout: byte 0 picks the line size limit, byte 1 the number of split points (0..=15),
//! then two bytes per split point, then the stream itself. Checks:
//!
//! 1. Decoding the stream in one chunk and in the fuzzer-chosen chunks gives the same lines and
//!    the same result (error variant and offset included), for `decode` and `finish`.
//! 2. A spent decoder keeps returning its error and pushes no more lines.
//! 3. Without an error, encoding the lines gives the stream back byte for byte, and no line is
//!    longer than the limit.
#![no_main]

use agentgw_core::ndjson::{Decoder, Line, NdjsonError};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
struct Decoded {
    lines: Vec<Line>,
    result: Result<(), NdjsonError>,
}

fn decode(max_line_bytes: usize, chunks: &[&[u8]]) -> Decoded {
    let mut decoder = Decoder::new(max_line_bytes);
    let mut lines = Vec::new();
    let mut result = Ok(());
    for chunk in chunks {
        result = decoder.decode(chunk, &mut lines);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        match decoder.finish() {
            Ok(last) => lines.extend(last),
            Err(err) => result = Err(err),
        }
    }
    if let Err(err) = &result {
        let before = lines.len();
        assert_eq!(decoder.decode(b"{}\n", &mut lines).as_ref(), Err(err));
        assert_eq!(decoder.finish().as_ref().map(|_| ()), Err(err));
        assert_eq!(lines.len(), before, "a spent decoder pushes nothing");
    }
    Decoded { lines, result }
}

fuzz_target!(|data: &[u8]| {
    let [limit, splits, rest @ ..] = data else {
        return;
    };
    let max_line_bytes = 1 + usize::from(*limit) * 4;
    let splits = usize::from(*splits % 16);
    if rest.len() < splits * 2 {
        return;
    }
    let (positions, stream) = rest.split_at(splits * 2);
    let mut cuts: Vec<usize> = positions
        .chunks(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(&stream[start..cut]);
        start = cut;
    }
    chunks.push(&stream[start..]);

    let whole = decode(max_line_bytes, &[stream]);
    let split = decode(max_line_bytes, &chunks);
    assert_eq!(whole, split);

    if whole.result.is_ok() {
        let mut encoded = BytesMut::new();
        for line in &whole.lines {
            assert!(line.text.len() <= max_line_bytes, "line over the limit");
            line.encode(&mut encoded);
        }
        assert_eq!(&encoded[..], stream, "lines re-encode to the stream");
    }
});
