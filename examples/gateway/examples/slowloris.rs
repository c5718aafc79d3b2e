//! Slow clients that hold a server's connections: each sends the start of a request and then
//! one byte every few seconds, and reconnects when the server cuts it. Prints every few seconds
//! how many connections are open and how many the server cut, after how long, and how.
//!
//! ```sh
//! cargo run --release -p agentgw-gateway --example slowloris -- \
//!     --addr 127.0.0.1:8080 --connections 1000 --interval 3s --duration 60s
//! ```
//!
//! `--mode headers` (the default) sends `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n` and
//! then the bytes of more header lines (`X-Slow-1: a\r\n`, ...), one per interval: the request
//! head is never finished, which a server's header read timeout must end. `--mode body` sends a
//! whole head with `Content-Length: 1000000` and then one body byte per interval, which a request
//! body timeout must end (the path and host are `--path` and `--host`; `--header` adds lines to
//! the head, e.g. a bearer token so that the body gets past authentication). A connection the
//! server cuts is opened again at once, but a slot opens at most one connection per interval.
//!
//! Output, one line per report (`--report-every`), then a summary when `--duration` is over or on
//! Ctrl-C / SIGTERM. The summary's last line is machine-readable:
//! `RESULT open=N connections=N cut=N cut_p50_ms=N cut_max_ms=N refused=N answered=N
//! held_longest_ms=N` (`held_longest_ms` is the longest time a connection still open at the end
//! has been held; `answered` counts cuts where the server sent an answer, e.g. a 408, first).
//! Exits non-zero only when no connection could ever be opened. Raise the open-file limit
//! (`ulimit -n`) above `--connections` first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Hold many connections open with half-sent requests.
#[derive(Debug, Parser)]
#[command(name = "slowloris")]
struct Args {
    /// The server to hold connections to.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Connections to keep open at once.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Time between two bytes on one connection, e.g. `3s`, `500ms`.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Stop after this long (`0s`: run until Ctrl-C or SIGTERM).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time between two report lines.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    report_every: Duration,
    /// Time over which the first connections are opened.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    ramp: Duration,
    /// What is left unfinished: the request head, or the body.
    #[arg(long, value_enum, default_value_t = Mode::Headers)]
    mode: Mode,
    /// Request path.
    #[arg(long, default_value = "/v1/chat/completions")]
    path: String,
    /// `Host` header.
    #[arg(long, default_value = "x")]
    host: String,
    /// Another header line sent in the head, e.g. `--header "Authorization: Bearer $TOKEN"`
    /// (so that a body reaches the layers behind authentication); repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Never finish the request head.
    Headers,
    /// Send a whole head announcing a large body, then the body a byte at a time.
    Body,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Headers => "headers",
            Mode::Body => "body",
        }
    }
}

/// How a connection ended, from the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cut {
    /// The server closed the connection (EOF).
    Closed,
    /// The server reset the connection, or a write failed.
    Reset,
}

#[derive(Debug, Default)]
struct Stats {
    /// Connections open now.
    open: AtomicU64,
    /// Connections opened so far.
    opened: AtomicU64,
    /// Connection attempts the server refused or that failed.
    refused: AtomicU64,
    /// Cuts where the server wrote something (an error answer) before closing.
    answered: AtomicU64,
    /// Cuts since the last report, with how long each connection had been held.
    recent_cuts: Mutex<Vec<(Cut, Duration)>>,
    /// Every cut of the run: kind, held time.
    all_cuts: Mutex<Vec<(Cut, Duration)>>,
    /// Status lines of the answers the server sent before cutting, and how many of each.
    answers: Mutex<BTreeMap<String, u64>>,
    /// When each open connection was opened (by slot), to report the longest-held one.
    opened_at: Mutex<Vec<Option<Instant>>>,
}

impl Stats {
    fn record_cut(&self, cut: Cut, held: Duration, answer: Option<String>) {
        self.recent_cuts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((cut, held));
        self.all_cuts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((cut, held));
        if let Some(answer) = answer {
            self.answered.fetch_add(1, Ordering::Relaxed);
            *self
                .answers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(answer)
                .or_default() += 1;
        }
    }

    fn set_opened(&self, slot: usize, at: Option<Instant>) {
        self.opened_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[slot] = at;
    }

    fn held_longest(&self) -> Duration {
        let now = Instant::now();
        self.opened_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .flatten()
            .map(|at| now - *at)
            .max()
            .unwrap_or_default()
    }
}

/// The bytes sent first, and the endless sequence of single bytes that follows.
struct Script {
    head: Vec<u8>,
    mode: Mode,
}

impl Script {
    fn new(args: &Args) -> Self {
        let mut head = format!("POST {} HTTP/1.1\r\nHost: {}\r\n", args.path, args.host);
        for header in &args.headers {
            head.push_str(header.trim());
            head.push_str("\r\n");
        }
        if args.mode == Mode::Body {
            head.push_str("Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n");
        }
        Self {
            head: head.into_bytes(),
            mode: args.mode,
        }
    }

    /// The next byte after the head: header lines `X-Slow-<k>: a\r\n` (`line` holds the rest
    /// of the current one, reversed), or body spaces.
    fn next_byte(&self, line: &mut Vec<u8>, line_number: &mut usize) -> u8 {
        match self.mode {
            Mode::Body => b' ',
            Mode::Headers => {
                if line.is_empty() {
                    *line_number += 1;
                    *line = format!("X-Slow-{line_number}: a\r\n").into_bytes();
                    line.reverse();
                }
                line.pop().unwrap_or(b'a')
            }
        }
    }
}

/// One slot: keeps a connection open, reconnecting whenever the server cuts it.
async fn hold(slot: usize, args: Arc<Args>, script: Arc<Script>, stats: Arc<Stats>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut stream = match TcpStream::connect(args.addr).await {
            Ok(stream) => stream,
            Err(_) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let opened = Instant::now();
        stats.opened.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        stats.set_opened(slot, Some(opened));
        let (cut, answer) = drip(&mut stream, &args, &script).await;
        stats.open.fetch_sub(1, Ordering::Relaxed);
        stats.set_opened(slot, None);
        let held = opened.elapsed();
        stats.record_cut(cut, held, answer);
        // A slot opens at most one connection per interval: a server that answers at once (a
        // 401 before the body, a 400) gets a slow client, not a connection flood.
        if held < args.interval {
            tokio::time::sleep(args.interval - held).await;
        }
    }
}

/// Sends the head, then a byte per interval, until the server closes or resets the connection;
/// returns how it ended and the status line of what the server sent, if anything.
async fn drip(stream: &mut TcpStream, args: &Args, script: &Script) -> (Cut, Option<String>) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.split();
    if writer.write_all(&script.head).await.is_err() {
        return (Cut::Reset, None);
    }
    let mut received = Vec::new();
    let mut buffer = [0_u8; 1024];
    let mut line = Vec::new();
    let mut line_number = 0;
    // Spread the writes of all connections over the interval.
    let first = args.interval.mul_f64(rand_fraction());
    let mut next_write = tokio::time::Instant::now() + first;
    loop {
        tokio::select! {
            read = reader.read(&mut buffer) => match read {
                Ok(0) => return (Cut::Closed, status_line(&received)),
                Ok(n) => {
                    if received.len() < 256 {
                        received.extend_from_slice(&buffer[..n]);
                    }
                }
                Err(_) => return (Cut::Reset, status_line(&received)),
            },
            () = tokio::time::sleep_until(next_write) => {
                let byte = script.next_byte(&mut line, &mut line_number);
                if writer.write_all(&[byte]).await.is_err() {
                    return (Cut::Reset, status_line(&received));
                }
                next_write += args.interval;
            }
        }
    }
}

fn status_line(received: &[u8]) -> Option<String> {
    if received.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(received);
    Some(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// A number in [0, 1) that differs between calls, without a random number crate.
fn rand_fraction() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1_u64 << 53) as f64
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}

/// min / p50 / max of held times, in milliseconds.
fn spread(cuts: &[(Cut, Duration)]) -> Option<(u128, u128, u128)> {
    let mut held: Vec<Duration> = cuts.iter().map(|(_, held)| *held).collect();
    if held.is_empty() {
        return None;
    }
    held.sort();
    Some((
        millis(held[0]),
        millis(held[held.len() / 2]),
        millis(held[held.len() - 1]),
    ))
}

fn report(stats: &Stats, started: Instant) {
    let cuts = std::mem::take(
        &mut *stats
            .recent_cuts
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let total = stats
        .all_cuts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    let held = spread(&cuts).map_or_else(String::new, |(min, p50, max)| {
        format!(" held before cut min/p50/max {min}/{p50}/{max} ms")
    });
    println!(
        "t={}s open={} opened={} cut={} (+{}){} refused={} longest_open={}s",
        started.elapsed().as_secs(),
        stats.open.load(Ordering::Relaxed),
        stats.opened.load(Ordering::Relaxed),
        total,
        cuts.len(),
        held,
        stats.refused.load(Ordering::Relaxed),
        stats.held_longest().as_secs(),
    );
}

fn summary(stats: &Stats, args: &Args, started: Instant) {
    let cuts = stats
        .all_cuts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let closed = cuts.iter().filter(|(cut, _)| *cut == Cut::Closed).count();
    let reset = cuts.len() - closed;
    let (min, p50, max) = spread(&cuts).unwrap_or_default();
    let answers = stats
        .answers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    println!(
        "summary after {}s: {} slow connections ({} mode, a byte every {:?}), {} open now, \
         {} opened in all",
        started.elapsed().as_secs(),
        args.connections,
        args.mode.name(),
        args.interval,
        stats.open.load(Ordering::Relaxed),
        stats.opened.load(Ordering::Relaxed),
    );
    println!(
        "cut by the server: {} ({closed} closed, {reset} reset), held before the cut \
         min/p50/max {min}/{p50}/{max} ms; connection attempts refused or failed: {}",
        cuts.len(),
        stats.refused.load(Ordering::Relaxed),
    );
    for (line, count) in &answers {
        println!("answered before the cut: {count} x {line:?}");
    }
    println!(
        "RESULT open={} connections={} cut={} cut_p50_ms={p50} cut_max_ms={max} refused={} \
         answered={} held_longest_ms={}",
        stats.open.load(Ordering::Relaxed),
        stats.opened.load(Ordering::Relaxed),
        cuts.len(),
        stats.refused.load(Ordering::Relaxed),
        stats.answered.load(Ordering::Relaxed),
        millis(stats.held_longest()),
    );
}

async fn stop_signal(duration: Duration) {
    let timer = async {
        if duration.is_zero() {
            std::future::pending::<()>().await;
        } else {
            tokio::time::sleep(duration).await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = timer => {}
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Arc::new(Args::parse());
    let script = Arc::new(Script::new(&args));
    let stats = Arc::new(Stats {
        opened_at: Mutex::new(vec![None; args.connections]),
        ..Stats::default()
    });
    let started = Instant::now();
    println!(
        "{} slow connections to {} ({} mode, a byte every {:?})",
        args.connections,
        args.addr,
        args.mode.name(),
        args.interval
    );

    let spawner = {
        let (args, script, stats) = (args.clone(), script.clone(), stats.clone());
        tokio::spawn(async move {
            let pause = args.ramp / u32::try_from(args.connections.max(1)).unwrap_or(u32::MAX);
            for slot in 0..args.connections {
                tokio::spawn(hold(slot, args.clone(), script.clone(), stats.clone()));
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        })
    };
    let reporter = {
        let stats = stats.clone();
        let every = args.report_every;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                report(&stats, started);
            }
        })
    };

    stop_signal(args.duration).await;
    spawner.abort();
    reporter.abort();
    summary(&stats, &args, started);
    if stats.opened.load(Ordering::Relaxed) == 0 {
        eprintln!("slowloris: no connection to {} could be opened", args.addr);
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
