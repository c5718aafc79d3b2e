//! Many long server-sent-event streams at once through the gateway: opens `--streams` chat
//! completions with `"stream": true` over `--ramp`, each asking the upstream mock (the
//! `mock_upstream` example) for a stream of `--duration` at one event per `--chunk-delay`, and
//! checks every event that comes back.
//!
//! ```sh
//! cargo run --release -p agentgw-gateway --example sse_soak -- \
//!     --url http://127.0.0.1:8080/v1/chat/completions --token "$TOKEN" \
//!     --streams 10000 --duration 300s --chunk-delay 300ms --ramp 60s
//! ```
//!
//! The request carries the mock's steering headers: `x-mock-chunks` (duration / delay content
//! events), `x-mock-chunk-delay-ms`, and `x-mock-pii: 1` (unless `--no-pii`), so that every
//! repetition of the answer carries a card number, an email address, a phone number and a social
//! security number for the gateway's response guard to mask.
//!
//! A stream fails when the answer is not `200 text/event-stream`, the connection breaks, nothing
//! arrives for `--stall-timeout`, an event is not JSON or is an error, the stream ends without
//! `data: [DONE]`, fewer events arrive than the mock sent (a role event, the content events, a
//! finish event and `[DONE]`), or (with PII, unless `--unmasked`) any of the mock's personal
//! data comes through unmasked.
//!
//! Output: one line per `--report-every` (`t=..s open=N opening=N ok=N failed=N events=N
//! events/s=N`), a summary of the failures by kind with one example each, and a last
//! machine-readable line `RESULT streams=N ok=N failed=N events=N masked=N leaked=N
//! events_min=N events_max=N duration_min_s=N duration_max_s=N`. Exits non-zero when any stream
//! failed. Raise the open-file limit (`ulimit -n`) above `--streams` first (over HTTP/1.1; with
//! `--http2` the streams share connections, `--streams-per-connection` on each).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use agentgw_test_support::{CHUNK_DELAY_HEADER, CHUNKS_HEADER, PII_HEADER};
use clap::Parser;
use serde_json::Value;

/// Open many long SSE chat streams and check them.
#[derive(Debug, Parser)]
#[command(name = "sse_soak")]
struct Args {
    /// The chat completions URL (through the gateway).
    #[arg(long, default_value = "http://127.0.0.1:8080/v1/chat/completions")]
    url: String,
    /// Bearer token sent with every request.
    #[arg(long)]
    token: Option<String>,
    /// File holding the bearer token (instead of `--token`).
    #[arg(long, conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
    /// Streams open at once (after the ramp).
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// How long each stream lasts.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time between two events of a stream (the mock's chunk delay).
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    chunk_delay: Duration,
    /// Time over which the streams are opened, evenly spaced.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    ramp: Duration,
    /// Time between two report lines.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    report_every: Duration,
    /// A stream that receives nothing for this long fails.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    stall_timeout: Duration,
    /// Do not ask the mock for personal data (no masking work in the gateway).
    #[arg(long)]
    no_pii: bool,
    /// The gateway does not mask responses: personal data passing through is not a failure.
    #[arg(long)]
    unmasked: bool,
    /// Speak HTTP/2 without TLS (h2c, prior knowledge) to the gateway: the streams share
    /// connections, `--streams-per-connection` on each, instead of one HTTP/1.1 connection each.
    #[arg(long)]
    http2: bool,
    /// With `--http2`: streams multiplexed on one connection (keep it within the gateway's
    /// `server.http2MaxConcurrentStreams`, 256 by default).
    #[arg(long, default_value_t = 200, requires = "http2")]
    streams_per_connection: usize,
}

/// The mock's personal data (`agentgw_test_support::PII_TEXT`), piece by piece: none of it may
/// reach the client when the gateway masks responses.
const RAW_PII: &[&str] = &[
    "4111 1111 1111 1111",
    "jane.doe@example.com",
    "415-555-0132",
    "536-22-8417",
];

#[derive(Debug, Default)]
struct Stats {
    /// Requests sent, response headers not yet received.
    opening: AtomicU64,
    /// Streams receiving events.
    open: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    events: AtomicU64,
    masked: AtomicU64,
    leaked: AtomicU64,
    /// Failures by kind: count and the first message.
    failures: Mutex<BTreeMap<&'static str, (u64, String)>>,
    /// Per finished stream: events received, and how long the stream lasted.
    finished: Mutex<Vec<(u64, Duration)>>,
}

impl Stats {
    fn fail(&self, kind: &'static str, message: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = failures.entry(kind).or_insert((0, message));
        entry.0 += 1;
    }
}

/// Why a stream failed: a short kind for the summary, and the details.
struct Failure(&'static str, String);

/// What one stream must satisfy.
struct Expect {
    content_events: u64,
    /// Ask the mock for personal data.
    pii: bool,
    /// Fail a stream when that personal data arrives unmasked.
    check_masked: bool,
}

/// Decrements a gauge when dropped, so that every way out of a stream leaves it right.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Gauge(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run_stream(
    client: reqwest::Client,
    args: Arc<Args>,
    token: Option<Arc<str>>,
    expect: Arc<Expect>,
    stats: Arc<Stats>,
) {
    let started = Instant::now();
    match stream(&client, &args, token.as_deref(), &expect, &stats).await {
        Ok(events) => {
            stats.ok.fetch_add(1, Ordering::Relaxed);
            stats
                .finished
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((events, started.elapsed()));
        }
        Err(Failure(kind, message)) => stats.fail(kind, message),
    }
}

async fn stream(
    client: &reqwest::Client,
    args: &Args,
    token: Option<&str>,
    expect: &Expect,
    stats: &Stats,
) -> Result<u64, Failure> {
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Tell me a long story."}]}"#;
    let mut request = client
        .post(&args.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(CHUNKS_HEADER, expect.content_events.to_string())
        .header(CHUNK_DELAY_HEADER, args.chunk_delay.as_millis().to_string())
        .body(body);
    if expect.pii {
        request = request.header(PII_HEADER, "1");
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }

    let opening = Gauge::up(&stats.opening);
    let sent = tokio::time::timeout(args.stall_timeout, request.send()).await;
    drop(opening);
    let mut response = match sent {
        Err(_) => return Err(Failure("no_answer", "no response headers in time".into())),
        Ok(Err(error)) => return Err(Failure("request", format!("{error:#}"))),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if status != http::StatusCode::OK || !content_type.starts_with("text/event-stream") {
        let text = response.text().await.unwrap_or_default();
        let kind = if status == http::StatusCode::OK {
            "not_a_stream"
        } else {
            "status"
        };
        let head: String = text.chars().take(300).collect();
        return Err(Failure(kind, format!("{status} {content_type}: {head}")));
    }

    let _open = Gauge::up(&stats.open);
    let mut pending: Vec<u8> = Vec::new();
    let mut content = String::new();
    let mut events = 0_u64;
    let mut done = false;
    loop {
        let chunk = match tokio::time::timeout(args.stall_timeout, response.chunk()).await {
            Err(_) => {
                return Err(Failure(
                    "stalled",
                    format!("nothing for {:?} after {events} events", args.stall_timeout),
                ));
            }
            Ok(Err(error)) => {
                return Err(Failure(
                    "broken",
                    format!("after {events} events: {error:#}"),
                ));
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        pending.extend_from_slice(&chunk);
        while let Some(end) = find_event_end(&pending) {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            events += 1;
            stats.events.fetch_add(1, Ordering::Relaxed);
            let data = event_data(&event[..end]);
            if data == "[DONE]" {
                done = true;
                continue;
            }
            let json: Value = serde_json::from_str(&data).map_err(|error| {
                Failure("bad_event", format!("{error}: {}", truncate(&data, 200)))
            })?;
            if json.get("error").is_some() {
                return Err(Failure("error_event", truncate(&data, 300)));
            }
            if let Some(piece) = json
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
            {
                content.push_str(piece);
            }
        }
    }
    if !done {
        return Err(Failure(
            "truncated",
            format!("ended without [DONE] after {events} events"),
        ));
    }
    if expect.check_masked {
        let leaked: Vec<&str> = RAW_PII
            .iter()
            .copied()
            .filter(|raw| content.contains(raw))
            .collect();
        if !leaked.is_empty() {
            stats.leaked.fetch_add(1, Ordering::Relaxed);
            return Err(Failure("pii_leaked", format!("unmasked: {leaked:?}")));
        }
        let masks = content.matches("<CREDIT_CARD>").count();
        stats.masked.fetch_add(masks as u64, Ordering::Relaxed);
    }
    // The role event, the content events, the finish event and [DONE]. Masking may hold text
    // back (an event's content shrinks or empties) and release it in an extra event, but never
    // drops an event.
    let least = expect.content_events + 3;
    if events < least {
        return Err(Failure(
            "missing_events",
            format!("{events} events, at least {least} expected"),
        ));
    }
    Ok(events)
}

/// Index of the blank line ending the first complete event (`\n\n`), if one is complete.
fn find_event_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(2).position(|pair| pair == b"\n\n")
}

/// The `data:` lines of an event, joined with newlines.
fn event_data(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    let mut data = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    data
}

fn truncate(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

fn report(stats: &Stats, started: Instant, last_events: &mut u64, every: Duration) {
    let events = stats.events.load(Ordering::Relaxed);
    let rate = (events - *last_events) as f64 / every.as_secs_f64();
    *last_events = events;
    println!(
        "t={}s open={} opening={} ok={} failed={} events={} events/s={:.0}",
        started.elapsed().as_secs(),
        stats.open.load(Ordering::Relaxed),
        stats.opening.load(Ordering::Relaxed),
        stats.ok.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        events,
        rate,
    );
}

fn summary(stats: &Stats, args: &Args) {
    let failures = stats
        .failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for (kind, (count, example)) in &failures {
        println!("failed: {count} x {kind}, e.g. {example}");
    }
    let finished = stats
        .finished
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let events_min = finished.iter().map(|(e, _)| *e).min().unwrap_or(0);
    let events_max = finished.iter().map(|(e, _)| *e).max().unwrap_or(0);
    let duration_min = finished.iter().map(|(_, d)| *d).min().unwrap_or_default();
    let duration_max = finished.iter().map(|(_, d)| *d).max().unwrap_or_default();
    println!(
        "RESULT streams={} ok={} failed={} events={} masked={} leaked={} events_min={} \
         events_max={} duration_min_s={:.1} duration_max_s={:.1}",
        args.streams,
        stats.ok.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.events.load(Ordering::Relaxed),
        stats.masked.load(Ordering::Relaxed),
        stats.leaked.load(Ordering::Relaxed),
        events_min,
        events_max,
        duration_min.as_secs_f64(),
        duration_max.as_secs_f64(),
    );
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Arc::new(Args::parse());
    let token: Option<Arc<str>> = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.as_str().into()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(token) => Some(token.trim().into()),
            Err(error) => {
                eprintln!("sse_soak: cannot read {}: {error}", path.display());
                return std::process::ExitCode::FAILURE;
            }
        },
        (None, None) => None,
    };
    let delay_ms = args.chunk_delay.as_millis().max(1);
    let expect = Arc::new(Expect {
        content_events: u64::try_from(args.duration.as_millis() / delay_ms)
            .unwrap_or(u64::MAX)
            .max(1),
        pii: !args.no_pii,
        check_masked: !args.no_pii && !args.unmasked,
    });
    // HTTP/1.1: one client, one connection per stream, none reused, so none kept. HTTP/2: one
    // client per `--streams-per-connection` streams, each with its one connection.
    let clients = if args.http2 {
        args.streams
            .div_ceil(args.streams_per_connection.max(1))
            .max(1)
    } else {
        1
    };
    let clients = match (0..clients)
        .map(|_| {
            let builder = reqwest::Client::builder()
                .tcp_nodelay(true)
                .connect_timeout(Duration::from_secs(10));
            if args.http2 {
                builder.http2_prior_knowledge()
            } else {
                builder.pool_max_idle_per_host(0)
            }
            .build()
        })
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(clients) => clients,
        Err(error) => {
            eprintln!("sse_soak: cannot build the HTTP client: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "{} streams to {} over {:?}, each {} content events {:?} apart (~{:?}), PII {}",
        args.streams,
        args.url,
        args.ramp,
        expect.content_events,
        args.chunk_delay,
        args.duration,
        match (expect.pii, expect.check_masked) {
            (false, _) => "off",
            (true, true) => "on, checked masked",
            (true, false) => "on, not checked",
        },
    );

    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let reporter = {
        let stats = stats.clone();
        let every = args.report_every;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            let mut last_events = 0;
            ticks.tick().await;
            loop {
                ticks.tick().await;
                report(&stats, started, &mut last_events, every);
            }
        })
    };

    let mut tasks = tokio::task::JoinSet::new();
    let pause = args.ramp / u32::try_from(args.streams.max(1)).unwrap_or(u32::MAX);
    let mut next = tokio::time::Instant::now();
    for index in 0..args.streams {
        let client = if args.http2 {
            &clients[index / args.streams_per_connection.max(1)]
        } else {
            &clients[0]
        };
        tasks.spawn(run_stream(
            client.clone(),
            args.clone(),
            token.clone(),
            expect.clone(),
            stats.clone(),
        ));
        next += pause;
        tokio::time::sleep_until(next).await;
    }
    while tasks.join_next().await.is_some() {}
    reporter.abort();
    report(&stats, started, &mut 0, started.elapsed());
    summary(&stats, &args);
    if stats.failed.load(Ordering::Relaxed) > 0 {
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
