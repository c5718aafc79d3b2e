//! `agentgw_core::sse`: the incremental decoder and the encoder.
//!
//! Input layout: byte 0 picks the event size limit, byte 1 the number of split points (0..=15),
//! then two bytes per split point, then the stream itself. Checks:
//!
//! 1. Decoding the stream in one chunk and in the fuzzer-chosen chunks gives the same frames and
//!    the same result (error variant and offset included), for `decode` and `finish`.
//! 2. A spent decoder keeps returning its error, and an `InvalidUtf8` offset is the first invalid
//!    byte of the stream.
//! 3. Encoding the decoded frames and decoding the output gives the same frames back, without
//!    error, and encoding is a fixed point from then on.
#![no_main]

use agentgw_core::sse::{DEFAULT_MAX_EVENT_BYTES, Decoder, Frame, SseError};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// Frames pushed before the outcome, and the outcome of `decode` calls then `finish`.
#[derive(Debug, PartialEq)]
struct Decoded {
    frames: Vec<Frame>,
    result: Result<(), SseError>,
}

fn decode(max_event_bytes: usize, chunks: &[&[u8]]) -> Decoded {
    let mut decoder = Decoder::new(max_event_bytes);
    let mut frames = Vec::new();
    let mut result = Ok(());
    for chunk in chunks {
        result = decoder.decode(chunk, &mut frames);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = decoder.finish();
    }
    if let Err(err) = &result {
        // After an error the decoder is spent: the same error, no more frames.
        let before = frames.len();
        assert_eq!(
            decoder.decode(b"data: x\n\n", &mut frames).as_ref(),
            Err(err)
        );
        assert_eq!(decoder.finish().as_ref(), Err(err));
        assert_eq!(frames.len(), before, "a spent decoder produced frames");
    }
    Decoded { frames, result }
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut out = BytesMut::new();
    for frame in frames {
        frame.encode(&mut out);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    // Small limits exercise `EventTooLarge`; half the inputs use the default.
    let max_event_bytes = if limit < 128 {
        DEFAULT_MAX_EVENT_BYTES
    } else {
        usize::from(limit - 127)
    };
    let Some((&splits, rest)) = rest.split_first() else {
        return;
    };
    let splits = usize::from(splits % 16);
    if rest.len() < splits * 2 {
        return;
    }
    let (points, stream) = rest.split_at(splits * 2);
    let mut cuts: Vec<usize> = points
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        // Equal cuts give empty chunks, which must change nothing.
        chunks.push(&stream[start..cut]);
        start = cut;
    }
    chunks.push(&stream[start..]);

    let one_shot = decode(max_event_bytes, &[stream]);
    let chunked = decode(max_event_bytes, &chunks);
    assert_eq!(
        one_shot, chunked,
        "chunking changed the outcome: {chunks:?}"
    );
    let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
    if stream.len() <= 4096 {
        assert_eq!(one_shot, decode(max_event_bytes, &bytewise), "byte-wise");
    }
    // Every line before the failing one was checked, so the offset is the first invalid byte.
    if let Err(SseError::InvalidUtf8 { offset }) = one_shot.result {
        let first_invalid = std::str::from_utf8(stream).map_err(|err| err.valid_up_to() as u64);
        assert_eq!(first_invalid, Err(offset), "wrong offset of invalid UTF-8");
    }

    // Whatever decoded (even before an error) encodes to a stream that decodes to it again.
    let encoded = encode_all(&one_shot.frames);
    let again = decode(usize::MAX, &[&encoded]);
    assert_eq!(
        again.result,
        Ok(()),
        "re-encoded stream failed: {encoded:?}"
    );
    assert_eq!(
        again.frames, one_shot.frames,
        "re-encoded stream decodes differently: {encoded:?}"
    );
    assert_eq!(
        encode_all(&again.frames),
        encoded,
        "encoding is not a fixed point"
    );
    for frame in &one_shot.frames {
        assert_eq!(
            frame.to_bytes()[..],
            encode_all(std::slice::from_ref(frame))[..]
        );
    }
});
