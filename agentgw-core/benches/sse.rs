//! Throughput of the SSE codec on a realistic OpenAI completion stream.
//!
//! `cargo bench -p agentgw-core --bench sse`

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use agentgw_core::sse::{Decoder, Frame, TransformBody, map_events};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body::Body;
use http_body_util::StreamBody;

/// Stream size, as the issue asks: 10 MB.
const STREAM_BYTES: usize = 10 * 1024 * 1024;
/// Upstream read size: small, to stress the incremental path.
const CHUNK_BYTES: usize = 64;

const WORDS: [&str; 8] = [
    "The",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " the",
    " lazy dog.\\n",
];

/// OpenAI `chat.completion.chunk` events of one word each, ended by `data: [DONE]`.
fn openai_stream(target_bytes: usize) -> Vec<u8> {
    let mut stream = Vec::with_capacity(target_bytes + 512);
    let mut i = 0usize;
    while stream.len() < target_bytes {
        let word = WORDS[i % WORDS.len()];
        stream.extend_from_slice(
            format!(
                "data: {{\"id\":\"chatcmpl-AbC123xYz\",\"object\":\"chat.completion.chunk\",\
                 \"created\":1732000000,\"model\":\"gpt-4o-mini-2024-07-18\",\
                 \"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{{\"index\":0,\
                 \"delta\":{{\"content\":\"{word}\"}},\"logprobs\":null,\
                 \"finish_reason\":null}}]}}\n\n"
            )
            .as_bytes(),
        );
        i += 1;
    }
    stream.extend_from_slice(b"data: [DONE]\n\n");
    stream
}

fn chunked(stream: &[u8]) -> Vec<Bytes> {
    stream
        .chunks(CHUNK_BYTES)
        .map(Bytes::copy_from_slice)
        .collect()
}

fn decode(c: &mut Criterion) {
    let stream = openai_stream(STREAM_BYTES);
    let chunks = chunked(&stream);
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(10);
    group.bench_function("decode_openai_10MB_64B_chunks", |b| {
        b.iter(|| {
            let mut decoder = Decoder::default();
            let mut frames: Vec<Frame> = Vec::with_capacity(8);
            let mut events = 0usize;
            for chunk in &chunks {
                decoder.decode(chunk, &mut frames).expect("valid stream");
                events += frames.len();
                frames.clear();
            }
            decoder.finish().expect("complete stream");
            black_box(events)
        });
    });
    group.finish();
}

fn transform_identity(c: &mut Criterion) {
    let stream = openai_stream(STREAM_BYTES);
    let chunks = chunked(&stream);
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(10);
    group.bench_function("transform_body_identity_10MB_64B_chunks", |b| {
        b.iter(|| {
            let frames = chunks
                .iter()
                .cloned()
                .map(|chunk| Ok::<_, Infallible>(http_body::Frame::data(chunk)));
            let inner = StreamBody::new(futures_util::stream::iter(frames));
            let mut body = pin!(TransformBody::new(
                inner,
                map_events(|event| Ok(Some(event))),
                Decoder::default(),
            ));
            // The inner stream is always ready: a no-op waker drives it without a runtime.
            let mut cx = Context::from_waker(Waker::noop());
            let mut out_bytes = 0usize;
            loop {
                match body.as_mut().poll_frame(&mut cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        out_bytes += frame.data_ref().map_or(0, Bytes::len);
                    }
                    Poll::Ready(None) => break,
                    Poll::Ready(Some(Err(err))) => panic!("transform failed: {err}"),
                    Poll::Pending => panic!("an in-memory body is never pending"),
                }
            }
            assert_eq!(out_bytes, stream.len(), "identity keeps every byte");
            black_box(out_bytes)
        });
    });
    group.finish();
}

criterion_group!(benches, decode, transform_identity);
criterion_main!(benches);
