//! LLM payload views: parse + text-segment walk, rewrite, and streamed-chunk deltas.
//!
//! Run with `cargo bench -p agentgw-core --bench llm`.

use std::hint::black_box;

use agentgw_core::llm::{self, Direction, Format, Scope};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

const PROSE: &[&str] = &[
    "Can you review the deployment plan below and point out anything that could cause downtime? ",
    "The service runs three replicas behind the load balancer, and the database migration adds a nullable column. ",
    "We roll out with maxUnavailable set to one, so at most a single pod is drained at a time. ",
    "Here is the relevant part of the manifest:\n```yaml\nspec:\n  replicas: 3\n  strategy:\n    rollingUpdate:\n      maxUnavailable: 1\n```\n",
    "The customer reported the failure on order 88231; their card on file ends in 4111 and the email is jane.doe@example.com. ",
    "I would check the readiness probe first: a probe that passes before the cache is warm sends traffic to a cold pod. ",
    "Ünïcödé and emoji 🚀 appear in real traffic too, along with \"quoted\" words and back\\slashes. ",
];

/// A chat request of about `target` bytes: a system prompt, user/assistant turns, tool calls
/// with JSON arguments, tool results, and tool definitions, like an agent's conversation.
fn chat_request(target: usize) -> Vec<u8> {
    let tools = json!([
        {"type": "function", "function": {"name": "search_docs", "description": "Search the internal documentation.",
         "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                        "required": ["query"]}}},
        {"type": "function", "function": {"name": "get_order", "description": "Fetch an order by id.",
         "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}
    ]);
    let mut messages = vec![json!({"role": "system", "content":
        "You are a careful site-reliability assistant. Answer precisely, cite the documentation you used, and never reveal credentials."})];
    let mut request = json!({"model": "gpt-4o", "temperature": 0.2, "stream": true, "tools": tools, "messages": []});
    let mut turn = 0usize;
    loop {
        request["messages"] = Value::Array(messages.clone());
        if serde_json::to_vec(&request).map_or(0, |v| v.len()) >= target {
            break;
        }
        let prose =
            |n: usize| -> String { (0..n).map(|i| PROSE[(turn + i) % PROSE.len()]).collect() };
        messages.push(json!({"role": "user", "content": prose(2)}));
        if turn % 3 == 1 {
            let call_id = format!("call_{turn}");
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "get_order",
                 "arguments": format!("{{\"order_id\":\"{}\",\"include\":[\"payment\",\"shipping\"]}}", 88000 + turn)}}
            ]}));
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content":
                format!("{{\"order\":{},\"status\":\"failed\",\"card_last4\":\"4111\",\"note\":\"{}\"}}", 88000 + turn, prose(1).trim())}));
        }
        if turn % 4 == 2 {
            messages.push(json!({"role": "user", "content": [
                {"type": "text", "text": prose(1)},
                {"type": "image_url", "image_url": {"url": "https://example.com/screenshot.png", "detail": "low"}}
            ]}));
        }
        messages.push(json!({"role": "assistant", "content": prose(3)}));
        turn += 1;
    }
    serde_json::to_vec(&request).expect("serializable")
}

fn segment_bytes(json: &Value) -> usize {
    let mut total = 0;
    llm::for_each_segment(json, Format::OpenAiChat, Direction::Request, |segment| {
        total += segment.text.len();
    });
    total
}

fn parse_and_walk(c: &mut Criterion) {
    let mut group = c.benchmark_group("llm/chat_request");
    for (label, size) in [("4KiB", 4 << 10), ("256KiB", 256 << 10)] {
        let body = chat_request(size);
        let parsed: Value = serde_json::from_slice(&body).expect("valid JSON");
        group.throughput(Throughput::Bytes(body.len() as u64));

        group.bench_with_input(BenchmarkId::new("parse", label), &body, |b, body| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(body)).expect("valid JSON"));
        });
        group.bench_with_input(BenchmarkId::new("parse+walk", label), &body, |b, body| {
            b.iter(|| {
                let json: Value = serde_json::from_slice(black_box(body)).expect("valid JSON");
                segment_bytes(&json)
            });
        });
        group.bench_with_input(BenchmarkId::new("walk", label), &parsed, |b, json| {
            b.iter(|| segment_bytes(black_box(json)));
        });
        group.bench_with_input(BenchmarkId::new("detect", label), &parsed, |b, json| {
            b.iter(|| Format::detect(black_box(json), Direction::Request));
        });
        // A masker that finds nothing: parse + walk, and the original bytes are kept.
        group.bench_with_input(
            BenchmarkId::new("rewrite_body/unchanged", label),
            &body,
            |b, body| {
                b.iter(|| {
                    llm::rewrite_body(
                        black_box(body),
                        Some(Format::OpenAiChat),
                        Direction::Request,
                        |_, text| {
                            text.contains("sk-live-")
                                .then(|| text.replace("sk-live-", "[key]"))
                        },
                    )
                    .expect("valid JSON")
                });
            },
        );
        // A masker that rewrites some segments: parse + walk + rewrite + serialize.
        group.bench_with_input(
            BenchmarkId::new("rewrite_body/masked", label),
            &body,
            |b, body| {
                b.iter(|| {
                    llm::rewrite_body(
                        black_box(body),
                        Some(Format::OpenAiChat),
                        Direction::Request,
                        |scope, text| {
                            (scope != Scope::System && text.contains("4111"))
                                .then(|| text.replace("4111", "****"))
                        },
                    )
                    .expect("valid JSON")
                });
            },
        );
    }
    group.finish();
}

fn stream_chunks(c: &mut Criterion) {
    let mut group = c.benchmark_group("llm/stream_chunk");
    let chunks = [
        (
            "openai_chat",
            br#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_4d82","choices":[{"index":0,"delta":{"content":" the readiness probe"},"logprobs":null,"finish_reason":null}]}"#
                .as_slice(),
        ),
        (
            "anthropic",
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the readiness probe"}}"#
                .as_slice(),
        ),
        (
            "openai_responses",
            br#"{"type":"response.output_text.delta","sequence_number":17,"item_id":"msg_67c9","output_index":0,"content_index":0,"delta":" the readiness probe","logprobs":[]}"#
                .as_slice(),
        ),
    ];
    for (label, chunk) in chunks {
        group.throughput(Throughput::Bytes(chunk.len() as u64));
        // What a streaming masker pays per event: parse, rewrite the delta, serialize.
        group.bench_with_input(
            BenchmarkId::new("parse+rewrite+serialize", label),
            chunk,
            |b, chunk| {
                b.iter(|| {
                    let mut json: Value =
                        serde_json::from_slice(black_box(chunk)).expect("valid JSON");
                    llm::rewrite_deltas(&mut json, |_, text| Some(text.replace("probe", "check")));
                    serde_json::to_vec(&json).expect("serializable")
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, parse_and_walk, stream_chunks);
criterion_main!(benches);
