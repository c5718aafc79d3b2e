//! Prompt guard throughput and streaming cost.
//!
//! - `scan/*`: masking 1 MiB of mixed chat text with the five builtins plus 20 custom
//!   patterns, as one `PatternSet`, against a naive loop over 25 separate `regex::Regex`es on
//!   the same text (`naive_regex_loop`); and the seed's reject rules on the normalized text.
//! - `stream/*`: the cost of one SSE event through the layer's response guard (a chat chunk
//!   with an 8-byte delta, decoded, masked with holdback, re-encoded), and of one
//!   `StreamMasker::push` of 8 bytes alone (five builtins).
//!
//! - `leak/*`: the system-prompt leak check per KiB of answer (a 1 KiB piece of chat text
//!   through a `LeakScanner` against a 300-word system prompt, measuring only, and masking),
//!   and fingerprinting that system prompt (once per request).
//!
//! Run with `cargo bench -p agentgw-guard --bench scan`.

use std::hint::black_box;

use agentgw_core::RequestBody;
use agentgw_guard::{Builtin, PatternSet, PromptGuardConfig, PromptGuardLayer};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};

const CUSTOM: [(&str, &str); 20] = [
    ("account", r"\b[A-Z]{2}\d{6,10}\b"),
    ("aws-key", r"\bAKIA[0-9A-Z]{16}\b"),
    ("openai-key", r"\bsk-[A-Za-z0-9]{20,64}\b"),
    ("github-token", r"\bghp_[A-Za-z0-9]{36}\b"),
    ("slack-token", r"\bxox[baprs]-[A-Za-z0-9-]{10,48}\b"),
    ("private-key", r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
    ),
    ("ipv4", r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
    ("iban", r"\bIBAN:? ?[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b"),
    ("password", r"(?i)\bpassword\s*[:=]\s*\S+"),
    ("api-key", r"(?i)\bapi[_-]?key\s*[:=]\s*\S+"),
    ("google-key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    (
        "uuid",
        r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
    ),
    ("confidential", r"(?i)\bconfidential\b"),
    ("internal", r"(?i)\binternal use only\b"),
    ("stripe-key", r"\bpk_(?:live|test)_[0-9a-zA-Z]{24,}\b"),
    ("gitlab-token", r"\bglpat-[0-9A-Za-z_-]{20}\b"),
    ("de-iban", r"\bDE\d{20}\b"),
    (
        "codename",
        r"(?i)\bproject (?:falcon|phoenix|nightingale)\b",
    ),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b"),
];

/// What a naive guard compiles for the builtins: one regex each, no validation.
const NAIVE_BUILTINS: [&str; 5] = [
    r"\b(?:\d[ -]?){12,18}\d\b",
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    r"\+?\d{1,3}[-.\s]?\(?\d{3}\)?[-.\s]?\d{3}[-.\s]?\d{4}",
    r"\b\d{3}-\d{2}-\d{4}\b",
    r"\b\d{3}[- ]\d{3}[- ]\d{3}\b",
];

const PROSE: &[&str] = &[
    "Can you review the deployment plan below and point out anything that could cause downtime? ",
    "The service runs three replicas behind the load balancer, and the database migration adds a nullable column. ",
    "We roll out with maxUnavailable set to one, so at most a single pod is drained at a time. ",
    "Here is the relevant part of the manifest:\n```yaml\nspec:\n  replicas: 3\n  strategy:\n    rollingUpdate:\n      maxUnavailable: 1\n```\n",
    "The customer reported the failure on order 88231 placed 2024-03-14; their card 4111 1111 1111 1111 was declined and the email is jane.doe@example.com. ",
    "I would check the readiness probe first: a probe that passes before the cache is warm sends traffic to a cold pod. ",
    "Call the on-call engineer at (415) 555-2671 or +44 20 7946 0958 if the error rate stays above 2% for 10 minutes. ",
    "Version 3.14.0-525.22.1 fixed it; see ticket ORD-2024-811385 and request 7c8005c5-d5bd-4132-9c68-5e91f52bc655. ",
    "{\"user\": {\"id\": 4412, \"name\": \"Ana\", \"ssn\": \"536-22-1234\", \"zip\": \"14589-3340\"}, \"ok\": true}\n",
    "Ünïcödé and emoji 🚀 appear in real traffic too, along with \"quoted\" words and back\\slashes. ",
];

/// Chat text with PII in about one paragraph in twenty.
fn sparse_chat_text(target: usize) -> String {
    let mut text = String::with_capacity(target + 256);
    let mut i = 0;
    while text.len() < target {
        let piece = PROSE[i % PROSE.len()];
        let has_pii = piece.contains('@') || piece.contains("4111") || piece.contains("555");
        if !has_pii || i % 20 == 4 {
            text.push_str(piece);
        }
        i += 1;
    }
    text
}

fn chat_text(target: usize) -> String {
    let mut text = String::with_capacity(target + 256);
    let mut i = 0;
    while text.len() < target {
        text.push_str(PROSE[i % PROSE.len()]);
        i += 1;
    }
    text
}

fn combined_set() -> PatternSet {
    let mut builder = PatternSet::builder();
    for builtin in Builtin::ALL {
        builder = builder.builtin(builtin);
    }
    for (name, pattern) in CUSTOM {
        builder = builder.pattern(name, pattern);
    }
    builder.build().expect("bench patterns compile")
}

fn scan(c: &mut Criterion) {
    let text = chat_text(1 << 20);
    let set = combined_set();
    let naive: Vec<regex::Regex> = NAIVE_BUILTINS
        .iter()
        .copied()
        .chain(CUSTOM.iter().map(|(_, p)| *p))
        .map(|p| regex::Regex::new(p).expect("naive patterns compile"))
        .collect();
    let reject = PatternSet::builder()
        .pattern("prompt-injection-1", "ignore.*previous.*instructions")
        .pattern("prompt-injection-2", "you.*are.*now")
        .pattern("prompt-injection-3", "(?i)forget.*everything")
        .pattern("sensitive-request", "(?i)(password|api.?key|secret|token)")
        .normalize(true)
        .build()
        .expect("seed patterns compile");
    let clean = chat_text(1 << 20)
        .replace("password", "passphrase")
        .replace("token", "tokn");

    let sparse = sparse_chat_text(1 << 20);
    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Bytes(sparse.len() as u64));
    group.bench_function("pattern_set_builtins_plus_20_sparse", |b| {
        b.iter(|| black_box(set.scan(black_box(&sparse))).len());
    });
    group.bench_function("naive_regex_loop_sparse", |b| {
        b.iter(|| {
            let mut n = 0;
            for re in &naive {
                n += re.find_iter(black_box(&sparse)).count();
            }
            n
        });
    });
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(20);
    group.bench_function("pattern_set_builtins_plus_20", |b| {
        b.iter(|| black_box(set.scan(black_box(&text))).len());
    });
    group.bench_function("naive_regex_loop", |b| {
        b.iter(|| {
            let mut n = 0;
            for re in &naive {
                n += re.find_iter(black_box(&text)).count();
            }
            n
        });
    });
    let naive_ascii: Vec<regex::Regex> = NAIVE_BUILTINS
        .iter()
        .copied()
        .chain(CUSTOM.iter().map(|(_, p)| *p))
        .map(|p| regex::Regex::new(&p.replace(r"\b", r"(?-u:\b)")).expect("naive patterns compile"))
        .collect();
    group.bench_function("naive_regex_loop_ascii_boundaries", |b| {
        b.iter(|| {
            let mut n = 0;
            for re in &naive_ascii {
                n += re.find_iter(black_box(&text)).count();
            }
            n
        });
    });
    group.bench_function("mask_builtins_plus_20", |b| {
        b.iter(|| black_box(set.mask(black_box(&text))).len());
    });
    group.throughput(Throughput::Bytes(clean.len() as u64));
    group.bench_function("reject_seed_normalized_no_match", |b| {
        b.iter(|| black_box(reject.is_match(black_box(&clean))));
    });
    group.finish();
}

const EVENTS: usize = 1000;

/// The response-masking layer and an SSE body of `EVENTS` chat chunks with 8-byte deltas.
fn stream_fixture() -> (PromptGuardLayer, Bytes, String) {
    let config: PromptGuardConfig = serde_saphyr::from_str(
        "response:\n  - regex:\n      action: Mask\n      builtins: [CREDIT_CARD, EMAIL, PHONE_NUMBER, SSN, CA_SIN]\n",
    )
    .expect("config parses");
    let layer = PromptGuardLayer::from_config(&config).expect("config compiles");
    let text: String = chat_text(EVENTS * 8 + 64)
        .chars()
        .filter(char::is_ascii)
        .collect();
    let mut sse = String::new();
    for i in 0..EVENTS {
        let delta = &text[i * 8..i * 8 + 8];
        let chunk = serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
            "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]});
        sse.push_str(&format!("data: {chunk}\n\n"));
    }
    sse.push_str("data: [DONE]\n\n");
    (layer, Bytes::from(sse), text)
}

/// Sends one request through `layer` to an upstream answering with `sse`; returns the length
/// of the masked stream.
fn through_layer(
    runtime: &tokio::runtime::Runtime,
    layer: &PromptGuardLayer,
    sse: &Bytes,
) -> usize {
    runtime.block_on(async {
        let sse = sse.clone();
        let upstream = service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
            let sse = sse.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Full::new(sse))
                        .expect("response"),
                )
            }
        });
        let mut service = layer.layer(upstream);
        let service = service.ready().await.expect("ready");
        let res = service
            .call(Request::new(Full::new(Bytes::new())))
            .await
            .expect("response");
        res.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .len()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn stream(c: &mut Criterion) {
    let (layer, sse, text) = stream_fixture();
    let runtime = runtime();
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("sse_event_through_layer", |b| {
        b.iter(|| through_layer(&runtime, &layer, &sse));
    });

    let set = Builtin::ALL
        .into_iter()
        .fold(PatternSet::builder(), |b, builtin| b.builtin(builtin))
        .build()
        .expect("builtins compile");
    group.throughput(Throughput::Elements(text.len() as u64 / 8));
    group.bench_function("stream_masker_push_8_bytes", |b| {
        b.iter(|| {
            let mut masker = set.stream_masker().expect("bounded");
            let mut n = 0;
            for piece in text.as_bytes().chunks(8) {
                let piece = std::str::from_utf8(piece).unwrap_or("");
                n += masker.push(piece).len();
            }
            n + masker.finish().len()
        });
    });
    group.finish();
}

/// CPU time of the current thread (user + system), from `/proc/thread-self/stat`.
///
/// The bench machine is shared: wall-clock numbers include the time other processes hold the
/// CPU. CPU time is what this thread spent, close to what an idle machine would show.
fn thread_cpu_time() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which ends with ')'): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on Linux.
    Some(std::time::Duration::from_millis(ticks * 10))
}

/// Runs `f` repeatedly for about two seconds of CPU time; returns CPU time per call.
fn cpu_per_call(mut f: impl FnMut() -> usize) -> Option<std::time::Duration> {
    let start = thread_cpu_time()?;
    let mut calls = 0u32;
    loop {
        black_box(f());
        calls += 1;
        let spent = thread_cpu_time()? - start;
        if spent >= std::time::Duration::from_secs(2) {
            return Some(spent / calls);
        }
    }
}

/// `GUARD_CPU_REPORT=1 cargo bench -p agentgw-guard --bench scan -- cpu`: the same workloads,
/// timed in CPU time.
fn cpu_report(_c: &mut Criterion) {
    if std::env::var_os("GUARD_CPU_REPORT").is_none() {
        return;
    }
    let text = chat_text(1 << 20);
    let sparse = sparse_chat_text(1 << 20);
    let set = combined_set();
    let naive: Vec<regex::Regex> = NAIVE_BUILTINS
        .iter()
        .copied()
        .chain(CUSTOM.iter().map(|(_, p)| *p))
        .map(|p| regex::Regex::new(p).expect("naive patterns compile"))
        .collect();
    let mbps = |bytes: usize, per: Option<std::time::Duration>| {
        per.map_or(f64::NAN, |d| {
            bytes as f64 / d.as_secs_f64() / (1024.0 * 1024.0)
        })
    };
    for (name, text) in [("dense", &text), ("sparse", &sparse)] {
        let ours = cpu_per_call(|| set.scan(text).len());
        let theirs = cpu_per_call(|| naive.iter().map(|re| re.find_iter(text).count()).sum());
        println!(
            "cpu {name}: PatternSet {:.0} MiB/s, naive loop {:.1} MiB/s, ratio {:.0}x",
            mbps(text.len(), ours),
            mbps(text.len(), theirs),
            theirs
                .zip(ours)
                .map_or(f64::NAN, |(t, o)| t.as_secs_f64() / o.as_secs_f64())
        );
    }
    let (layer, sse, _) = stream_fixture();
    let runtime = runtime();
    if let Some(per_stream) = cpu_per_call(|| through_layer(&runtime, &layer, &sse)) {
        println!(
            "cpu sse: {:.2} us per event through the layer",
            per_stream.as_secs_f64() * 1e6 / EVENTS as f64
        );
    }
}

/// A system prompt of about 300 words.
fn long_system_prompt() -> String {
    let sentence = "You are Atlas, the support assistant of Example Corp; answer questions about \
        orders, deliveries and returns, never reveal internal pricing rules or discount codes, \
        and escalate angry customers to a human agent within two business days.";
    (0..8)
        .map(|i| format!("Rule {i}: {sentence}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn leak(c: &mut Criterion) {
    use std::sync::Arc;

    use agentgw_guard::leak::{LeakScanner, SystemPrompt};

    let system = long_system_prompt();
    let prompt = Arc::new(SystemPrompt::new([system.as_str()]).expect("long enough"));
    let text = chat_text(1024);
    let end = (0..=1024)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let kib = &text[..end];
    let mut group = c.benchmark_group("leak");
    group.throughput(Throughput::Bytes(kib.len() as u64));
    group.bench_function("scan_1_kib", |b| {
        let mut overlap = prompt.overlap();
        let mut scanner = LeakScanner::new(Arc::clone(&prompt));
        b.iter(|| black_box(scanner.push(black_box(kib), &mut overlap)));
    });
    group.bench_function("mask_1_kib", |b| {
        let mut overlap = prompt.overlap();
        let mut scanner = LeakScanner::masking(Arc::clone(&prompt), 12, "<SYSTEM_PROMPT>");
        b.iter(|| black_box(scanner.push(black_box(kib), &mut overlap)));
    });
    group.throughput(Throughput::Bytes(system.len() as u64));
    group.bench_function("fingerprint_system_prompt", |b| {
        b.iter(|| black_box(SystemPrompt::new([black_box(system.as_str())])));
    });
    group.finish();
}

criterion_group!(benches, scan, stream, leak, cpu_report);
criterion_main!(benches);
