//! Latency `ExtAuthLayer` adds over the authorization service's own latency, for gRPC and HTTP:
//! one request at a time, and under an open-loop load below saturation.
//!
//! Both sides run the same harness and reach the same in-process service on 127.0.0.1 through
//! the same client stack; only the layer's own work differs.
//!
//! **Both sides, per request**: build the incoming request a server would hand the gateway
//! (`POST /v1/chat/completions` with the 7 headers of a typical LLM API call, [`HEADERS`]),
//! time one call, push the latency. Callers (a service or a client) are cloned once per task or
//! kept in a pool, never cloned per request.
//!
//! **`direct`** (the auth call alone): drops the incoming request unread and sends the check
//! the layer would send for it, prepared once, byte for byte the same on the wire:
//!
//! - gRPC: the `CheckRequest` is encoded once at start-up; each call sends those bytes with
//!   tonic's `Grpc::unary` over a `Channel` (the client the generated `AuthorizationClient`
//!   wraps, with the same method extension and `grpc-timeout` the layer sets) and compares the
//!   answer's bytes with the encoded `OK` (no protobuf decoding: a few tens of nanoseconds
//!   the layer's side pays and this side does not).
//! - HTTP: hyper-util's pooled client (`nodelay`) sends `POST {url}/v1/chat/completions` with
//!   the headers the layer sends (`authorization`, `x-forwarded-host`, `content-length: 0`),
//!   from a prebuilt URI and header map, and reads the answer body; like the layer, it keeps
//!   to 128 calls (so connections) at once with a semaphore permit per call.
//!
//! At start-up a recording server checks that both sides send the same thing: the same decoded
//! `CheckRequest` and `grpc-timeout`; the same method, URI and headers.
//!
//! **`layer`**: calls an [`ExtAuthService`] (`ready().await`, then `call`) wrapped around an
//! upstream that answers at once (a function returning a ready future: no allocation, no
//! boxing). The difference is what the layer does: build the check from the request (headers
//! map, URI), the call's timeout, span and metrics, decoding and interpreting the answer,
//! forwarding, the boxed response future.
//!
//! No tracing subscriber and no metrics recorder are installed (as in a gateway whose
//! `ext_authz` span is below the log level). The process allocates with mimalloc, as the
//! `agentgw` binary does.
//!
//! With `--bench`, percentile tables are printed before the Criterion groups, two rows per
//! protocol:
//!
//! - **1 in flight**: p50/p99 of 20 000 requests per side, the two sides alternating in 8
//!   rounds.
//! - **open loop**: first the direct call's capacity (requests per second with 64 calls always
//!   in flight, the sides alternating, 2 x 0.5 s each), then requests sent at a fixed rate,
//!   `EXT_AUTHZ_LOAD` (0.2 by default, see [`load`]) times that capacity, for 8 rounds of 1 s
//!   per side, alternating. A pacer thread (real-time priority where allowed,
//!   [`make_punctual_pacer`]) spawns each request at its scheduled instant whether or not
//!   earlier ones have finished, and a request's latency runs from that instant, not from when
//!   it was sent, so a late pacer or a queue counts (no coordinated omission). Both sides get
//!   the same rate: the layer's at a slightly higher CPU utilisation, as it would in a gateway.
//!   A row reports failed calls, or more than [`BACKLOG_LIMIT`] requests in flight, as
//!   saturation: its rate was not below saturation. The second line of a row gives the CPU per
//!   request, how busy other processes kept the machine (the run's conditions), how late the
//!   pacer was and the most requests in flight.
//!
//! Two layouts: `shared`, where one 2-worker runtime runs the callers, the layer and the
//! services, and `split`, where the services run on a 1-worker runtime of their own and the
//! callers and the layer on another.

// The allocator of the `agentgw` gateway binary, so that the layer's allocations cost here what
// they cost there (with glibc's malloc they cost more; see the crate README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgw_auth::ext_authz::{
    BackendRef, DEFAULT_MAX_CONNECTIONS, ExtAuthConfig, ExtAuthLayer, ExtAuthService, GrpcOptions,
    HttpOptions,
};
use agentgw_core::RequestBody;
use bytes::{Buf, BufMut, Bytes};
use criterion::{BenchmarkId, Criterion, criterion_group};
use envoy_types::ext_authz::v3::CheckResponseExt as _;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;
use tonic::GrpcMethod;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tower::{Layer, Service, ServiceExt, service_fn, util::ServiceFn};

/// Requests in flight in the Criterion groups.
const CONCURRENCY: [usize; 2] = [1, 64];

/// Calls always in flight when measuring a side's capacity: enough to keep both cores busy.
const SATURATING: usize = 64;

/// The layer's timeout, also sent by the direct gRPC side as `grpc-timeout`.
const TIMEOUT: Duration = Duration::from_secs(5);

const PATH: &str = "/v1/chat/completions";

/// Headers of a typical LLM API call.
const HEADERS: [(&str, &str); 7] = [
    ("host", "llm.example.com"),
    (
        "authorization",
        "Bearer sk-test-0123456789abcdefghijklmnopqrstuvwxyz",
    ),
    ("content-type", "application/json"),
    ("accept", "text/event-stream"),
    ("user-agent", "OpenAI/Python 1.55.0"),
    ("x-request-id", "4f7c2a1e-9b3d-4e8f-a6c5-1d2e3f405162"),
    ("x-stainless-lang", "python"),
];

/// The encoded `CheckResponse { status: Some(Status { code: OK }) }`: field 1, empty message.
const ALLOWED: &[u8] = &[0x0a, 0x00];

/// The incoming request both sides build for every call.
fn gateway_request() -> Request<Empty<Bytes>> {
    let mut request = Request::post(PATH);
    for (name, value) in HEADERS {
        request = request.header(name, value);
    }
    request.body(Empty::new()).unwrap()
}

type Upstream = ServiceFn<
    fn(Request<RequestBody<Empty<Bytes>>>) -> Ready<Result<Response<Empty<Bytes>>, Infallible>>,
>;

/// The upstream behind the layer: answers at once.
fn upstream() -> Upstream {
    fn answer(
        _req: Request<RequestBody<Empty<Bytes>>>,
    ) -> Ready<Result<Response<Empty<Bytes>>, Infallible>> {
        ready(Ok(Response::new(Empty::new())))
    }
    service_fn(answer)
}

type Gateway = ExtAuthService<Upstream>;

/// One side's way to make one check; each concurrent task owns one.
#[derive(Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per task, built once, never moved per request"
)]
enum Caller {
    Layer(Gateway),
    Grpc {
        grpc: tonic::client::Grpc<Channel>,
        message: Bytes,
    },
    Http {
        client: Client<HttpConnector, Full<Bytes>>,
        /// One per call in flight, as many as the layer's default `http.maxConnections`: bounds
        /// the connections as the layer does. Without a bound, an open-loop burst opens a
        /// connection per request in flight, and the connects cost more than the calls.
        permits: Arc<Semaphore>,
        uri: Uri,
        headers: HeaderMap,
    },
}

impl Caller {
    /// One check; panics if it fails.
    async fn call(&mut self) {
        if let Err(failure) = self.try_call().await {
            panic!("{failure}");
        }
    }

    /// One check; a failure (a transport error, or anything but an allow) is described.
    async fn try_call(&mut self) -> Result<(), String> {
        let incoming = gateway_request();
        match self {
            Caller::Layer(service) => {
                let response = service.ready().await.unwrap().call(incoming).await.unwrap();
                if response.status() != StatusCode::OK {
                    let status = response.status();
                    let body = response.into_body().collect().await.map(|b| b.to_bytes());
                    return Err(format!("the layer answered {status}: {body:?}"));
                }
            }
            Caller::Grpc { grpc, message } => {
                drop(black_box(incoming));
                let mut request = tonic::Request::new(message.clone());
                request.set_timeout(TIMEOUT);
                request.extensions_mut().insert(GrpcMethod::new(
                    "envoy.service.auth.v3.Authorization",
                    "Check",
                ));
                grpc.ready().await.map_err(|err| err.to_string())?;
                let response = grpc
                    .unary(
                        request,
                        PathAndQuery::from_static("/envoy.service.auth.v3.Authorization/Check"),
                        RawCodec,
                    )
                    .await
                    .map_err(|status| format!("direct gRPC call: {status:?}"))?;
                assert_eq!(&response.get_ref()[..], ALLOWED);
            }
            Caller::Http {
                client,
                permits,
                uri,
                headers,
            } => {
                drop(black_box(incoming));
                let _permit = permits.acquire().await.unwrap();
                let mut request = Request::new(Full::new(Bytes::new()));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = uri.clone();
                *request.headers_mut() = headers.clone();
                let response = client
                    .request(request)
                    .await
                    .map_err(|err| format!("direct HTTP call: {err:?}"))?;
                if response.status() != StatusCode::OK {
                    return Err(format!("the service answered {}", response.status()));
                }
                response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|err| format!("direct HTTP call: {err:?}"))?;
            }
        }
        Ok(())
    }
}

/// A gRPC codec for messages that are already encoded: writes and reads raw bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The `CheckRequest` the layer sends for [`gateway_request`], built by hand.
fn equivalent_check() -> CheckRequest {
    let mut headers: HashMap<String, String> = HEADERS
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    headers.insert(":authority".into(), "llm.example.com".into());
    headers.insert(":method".into(), "POST".into());
    headers.insert(":path".into(), PATH.into());
    headers.insert(":scheme".into(), "http".into());
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                time: None,
                http: Some(attribute_context::HttpRequest {
                    id: HEADERS[5].1.into(),
                    method: "POST".into(),
                    headers,
                    path: PATH.into(),
                    host: "llm.example.com".into(),
                    scheme: "http".into(),
                    size: -1,
                    protocol: "HTTP/1.1".into(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

/// Protobuf encoding of the fields [`equivalent_check`] sets (the recording server checks the
/// result decodes to it).
fn encode_check(check: &CheckRequest) -> Bytes {
    fn varint(buf: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        buf.push(value as u8);
    }
    fn delimited(buf: &mut Vec<u8>, field: u64, data: &[u8]) {
        if !data.is_empty() {
            varint(buf, (field << 3) | 2);
            varint(buf, data.len() as u64);
            buf.extend_from_slice(data);
        }
    }
    let attributes = check.attributes.as_ref().unwrap();
    let http = attributes.request.as_ref().unwrap().http.as_ref().unwrap();
    let mut fields = Vec::new();
    delimited(&mut fields, 1, http.id.as_bytes());
    delimited(&mut fields, 2, http.method.as_bytes());
    for (name, value) in &http.headers {
        let mut entry = Vec::new();
        delimited(&mut entry, 1, name.as_bytes());
        delimited(&mut entry, 2, value.as_bytes());
        delimited(&mut fields, 3, &entry);
    }
    delimited(&mut fields, 4, http.path.as_bytes());
    delimited(&mut fields, 5, http.host.as_bytes());
    delimited(&mut fields, 6, http.scheme.as_bytes());
    varint(&mut fields, 9 << 3);
    varint(&mut fields, http.size as u64);
    delimited(&mut fields, 10, http.protocol.as_bytes());
    let mut request = Vec::new();
    delimited(&mut request, 2, &fields);
    let mut context = Vec::new();
    delimited(&mut context, 4, &request);
    let mut message = Vec::new();
    delimited(&mut message, 1, &context);
    Bytes::from(message)
}

struct AllowAll;

#[tonic::async_trait]
impl Authorization for AllowAll {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse::with_status(
            tonic::Status::ok(""),
        )))
    }
}

/// A check as received: the message and its `grpc-timeout`.
type Received = (CheckRequest, Option<String>);

/// Allows and records each check.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl Authorization for Recorder {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .map(|v| v.to_str().unwrap().to_owned());
        self.0.lock().unwrap().push((request.into_inner(), timeout));
        AllowAll
            .check(tonic::Request::new(CheckRequest::default()))
            .await
    }
}

/// A non-blocking listener on 127.0.0.1 and its URL, for a server another runtime will run.
fn bind() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn serve_grpc<A: Authorization>(authz: A, server: &Handle) -> String {
    let (listener, url) = bind();
    server.spawn(async move {
        let incoming =
            tonic::transport::server::TcpIncoming::from(TcpListener::from_std(listener).unwrap())
                .with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .serve_with_incoming(AuthorizationServer::new(authz), incoming)
            .await
    });
    url
}

/// One protocol's two callers (prototypes, cloned once per task).
struct Fixture {
    name: &'static str,
    direct: Caller,
    layer: Caller,
}

fn grpc_callers(url: &str) -> (Caller, Caller) {
    let config = ExtAuthConfig::default()
        .backend_ref(BackendRef::url(url))
        .grpc(GrpcOptions::default())
        .timeout(TIMEOUT);
    let layer = ExtAuthLayer::from_config(&config)
        .unwrap()
        .layer(upstream());
    let channel = Endpoint::from_shared(url.to_owned())
        .unwrap()
        .tcp_nodelay(true)
        .connect_lazy();
    let direct = Caller::Grpc {
        grpc: tonic::client::Grpc::new(channel),
        message: encode_check(&equivalent_check()),
    };
    (direct, Caller::Layer(layer))
}

fn grpc_fixture(rt: &Runtime, server: &Handle) -> Fixture {
    rt.block_on(async {
        // Both sides send the same check.
        let recorder = Recorder::default();
        let (mut direct, mut layer) = grpc_callers(&serve_grpc(recorder.clone(), server));
        direct.call().await;
        layer.call().await;
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, equivalent_check(), "direct check");
        assert_eq!(seen[1].0, equivalent_check(), "layer check");
        assert_eq!(seen[0].1, seen[1].1, "grpc-timeout");

        let (direct, layer) = grpc_callers(&serve_grpc(AllowAll, server));
        Fixture {
            name: "grpc",
            direct,
            layer,
        }
    })
}

type Seen = Arc<Mutex<Vec<(Method, Uri, Vec<(String, String)>)>>>;

fn serve_http(seen: Option<Seen>, server: &Handle) -> String {
    let (listener, url) = bind();
    let app = axum::Router::new().fallback(move |request: Request<axum::body::Body>| {
        if let Some(seen) = &seen {
            let mut headers: Vec<_> = request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            headers.sort();
            seen.lock()
                .unwrap()
                .push((request.method().clone(), request.uri().clone(), headers));
        }
        async { StatusCode::OK }
    });
    server.spawn(async move { axum::serve(TcpListener::from_std(listener).unwrap(), app).await });
    url
}

fn http_callers(url: &str) -> (Caller, Caller) {
    let config = ExtAuthConfig::default()
        .backend_ref(BackendRef::url(url))
        .http(HttpOptions::default())
        .timeout(TIMEOUT);
    let layer = ExtAuthLayer::from_config(&config)
        .unwrap()
        .layer(upstream());
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static(HEADERS[1].1),
    );
    headers.insert(
        HeaderName::from_static("x-forwarded-host"),
        HeaderValue::from_static(HEADERS[0].1),
    );
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(0));
    let direct = Caller::Http {
        client: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(DEFAULT_MAX_CONNECTIONS)
            .build(connector),
        permits: Arc::new(Semaphore::new(DEFAULT_MAX_CONNECTIONS)),
        uri: format!("{url}{PATH}").parse().unwrap(),
        headers,
    };
    (direct, Caller::Layer(layer))
}

fn http_fixture(rt: &Runtime, server: &Handle) -> Fixture {
    rt.block_on(async {
        // Both sides send the same request.
        let seen = Seen::default();
        let (mut direct, mut layer) = http_callers(&serve_http(Some(seen.clone()), server));
        direct.call().await;
        layer.call().await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], seen[1], "direct and layer checks differ");

        let (direct, layer) = http_callers(&serve_http(None, server));
        Fixture {
            name: "http",
            direct,
            layer,
        }
    })
}

/// Makes `per_task` calls with each caller, the callers concurrently (inline when there is one);
/// returns the callers and every latency.
async fn run(callers: Vec<Caller>, per_task: usize) -> (Vec<Caller>, Vec<Duration>) {
    if let [_] = callers.as_slice() {
        let mut callers = callers;
        let mut latencies = Vec::with_capacity(per_task);
        for _ in 0..per_task {
            let t = Instant::now();
            callers[0].call().await;
            latencies.push(t.elapsed());
        }
        return (callers, latencies);
    }
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|mut caller| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    caller.call().await;
                    latencies.push(t.elapsed());
                }
                (caller, latencies)
            })
        })
        .collect();
    let mut callers = Vec::with_capacity(tasks.len());
    let mut all = Vec::with_capacity(per_task * tasks.len());
    for task in tasks {
        let (caller, latencies) = task.await.unwrap();
        callers.push(caller);
        all.extend(latencies);
    }
    (callers, all)
}

/// CPU time used so far by every thread of this process (client, server and layer alike), from
/// Linux's `/proc/self/task/*/schedstat`; `None` elsewhere.
fn process_cpu() -> Option<Duration> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// The machine's and this process's counters that describe a run's conditions, from Linux's
/// `/proc/stat` and `/proc/self/stat`.
#[derive(Clone, Copy, Default)]
struct Conditions {
    /// Busy CPU time of the whole machine, steal included, in clock ticks (1/100 s).
    machine_ticks: u64,
    /// Busy CPU time of this process, its exited threads included, in clock ticks.
    own_ticks: u64,
    /// Page faults of this process that waited for the disk (code or memory paged out).
    own_major_faults: u64,
}

impl Conditions {
    /// The counters now; `None` elsewhere than on Linux.
    fn now() -> Option<Self> {
        let machine = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu = machine
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|ticks| ticks.parse().ok())
            .collect::<Option<Vec<u64>>>()?;
        // user nice system idle iowait irq softirq steal
        let [user, nice, system, _, _, irq, softirq, steal, ..] = cpu[..] else {
            return None;
        };
        let process = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command name, from the state (field 3): majflt is field 12,
        // utime and stime 14 and 15.
        let fields: Vec<&str> = process.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Conditions {
            machine_ticks: user + nice + system + irq + softirq + steal,
            own_ticks: field(14)? + field(15)?,
            own_major_faults: field(12)?,
        })
    }

    /// What happened between `self` and `later`: other processes' ticks and our major faults.
    fn since(self, later: Self) -> (u64, u64) {
        let machine = later.machine_ticks.saturating_sub(self.machine_ticks);
        let own = later.own_ticks.saturating_sub(self.own_ticks);
        let faults = later.own_major_faults.saturating_sub(self.own_major_faults);
        (machine.saturating_sub(own), faults)
    }
}

/// Runs `callers` and adds the CPU time the process used meanwhile to `cpu`.
fn timed_run(
    rt: &Runtime,
    callers: Vec<Caller>,
    per_task: usize,
    cpu: &mut Option<Duration>,
) -> (Vec<Caller>, Vec<Duration>) {
    let before = process_cpu();
    let result = rt.block_on(run(callers, per_task));
    *cpu = match (*cpu, before, process_cpu()) {
        (Some(sum), Some(before), Some(after)) => Some(sum + after.saturating_sub(before)),
        _ => None,
    };
    result
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Sorted samples' p50 and p99, in microseconds.
fn p50_p99(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort_unstable();
    (percentile(samples, 0.5), percentile(samples, 0.99))
}

/// CPU time per request, in microseconds, or `None` where the process's CPU time is unknown.
fn per_request(cpu: Option<Duration>, requests: usize) -> Option<f64> {
    cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / requests as f64)
}

/// One request at a time: the auth call's own latency and what the layer adds to it.
fn print_one_in_flight(rt: &Runtime, fixture: &Fixture, layout: &str) {
    const ROUNDS: usize = 8;
    const REQUESTS: usize = 20_000;
    let mut direct_callers = vec![fixture.direct.clone()];
    let mut layer_callers = vec![fixture.layer.clone()];
    let (mut direct, mut layer) = (Vec::new(), Vec::new());
    let (mut direct_cpu, mut layer_cpu) = (Some(Duration::ZERO), Some(Duration::ZERO));
    // Alternate rounds so drift on a shared machine hits both sides alike.
    for _ in 0..ROUNDS {
        let (callers, latencies) =
            timed_run(rt, direct_callers, REQUESTS / ROUNDS, &mut direct_cpu);
        direct_callers = callers;
        direct.extend(latencies);
        let (callers, latencies) = timed_run(rt, layer_callers, REQUESTS / ROUNDS, &mut layer_cpu);
        layer_callers = callers;
        layer.extend(latencies);
    }
    let (d, l) = (p50_p99(&mut direct), p50_p99(&mut layer));
    let cpu = match (
        per_request(direct_cpu, direct.len()),
        per_request(layer_cpu, layer.len()),
    ) {
        (Some(d), Some(l)) => {
            format!(
                " | CPU/request direct {d:.1} us layer {l:.1} us added {:.1} us",
                l - d
            )
        }
        _ => String::new(),
    };
    println!(
        "{layout:>6} {:>4} 1 in flight: direct p50 {:>7.1} us p99 {:>7.1} us | layer p50 {:>7.1} us p99 {:>7.1} us | added p50 {:>6.1} us ({:.2}x){cpu}",
        fixture.name,
        d.0,
        d.1,
        l.0,
        l.1,
        l.0 - d.0,
        l.0 / d.0
    );
}

/// The open-loop rate as a share of the direct call's closed-loop capacity: `EXT_AUTHZ_LOAD`,
/// 0.2 unless set. Half that capacity is not below saturation in an open loop: requests that
/// arrive one by one do not share wake-ups and system calls as 64 queued ones do, so each
/// costs more CPU (1.2 to 3 times as much, measured), and at 0.5 the queues grow without bound
/// on both sides; at 0.25 the process is 35-70% busy, and a pause of the machine sometimes
/// queues enough to move a row's p50 (see the crate README).
fn load() -> f64 {
    let Ok(value) = std::env::var("EXT_AUTHZ_LOAD") else {
        return 0.2;
    };
    match value.parse::<f64>() {
        Ok(load) if load > 0.0 && load.is_finite() => load,
        _ => panic!("EXT_AUTHZ_LOAD={value}: expected a positive fraction such as 0.2"),
    }
}

/// Requests per second `prototype`'s clones complete with [`SATURATING`] calls always in
/// flight (closed loop) for `duration`.
fn capacity(rt: &Runtime, prototype: &Caller, duration: Duration) -> f64 {
    rt.block_on(async {
        let started = Instant::now();
        let deadline = started + duration;
        let tasks: Vec<_> = (0..SATURATING)
            .map(|_| {
                let mut caller = prototype.clone();
                tokio::spawn(async move {
                    let mut done = 0_u64;
                    while Instant::now() < deadline {
                        caller.call().await;
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let mut done = 0;
        for task in tasks {
            done += task.await.unwrap();
        }
        done as f64 / started.elapsed().as_secs_f64()
    })
}

/// One side's callers for the open-loop rows: a request takes an idle one, or clones the
/// prototype when every caller is busy, and gives it back when answered.
struct Pool {
    prototype: Caller,
    idle: Mutex<Vec<Caller>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// How many calls failed, and the first failure.
    failures: Mutex<(usize, Option<String>)>,
}

impl Pool {
    fn new(prototype: &Caller) -> Arc<Self> {
        Arc::new(Pool {
            prototype: prototype.clone(),
            idle: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            failures: Mutex::new((0, None)),
        })
    }

    /// Counts a request in flight; returns how many are.
    fn start(&self) -> usize {
        let in_flight = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.most_in_flight.fetch_max(in_flight, Ordering::Relaxed);
        in_flight
    }

    fn take(&self) -> Caller {
        let idle = self.idle.lock().unwrap().pop();
        idle.unwrap_or_else(|| self.prototype.clone())
    }

    /// Gives `caller` back and counts its request done.
    fn finish(&self, caller: Caller, outcome: Result<(), String>) {
        self.idle.lock().unwrap().push(caller);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Err(failure) = outcome {
            let mut failures = self.failures.lock().unwrap();
            failures.0 += 1;
            failures.1.get_or_insert(failure);
        }
    }
}

/// Makes the calling thread a punctual pacer where Linux allows it: its sleeps end within 1 us
/// of the time asked instead of the default 50 us (`/proc/<tid>/timerslack_ns`), and it runs as
/// soon as they end (`chrt --fifo`: real-time priority, so that busy workers do not keep it
/// waiting for a scheduler slice; it sleeps between requests and spawns each in about a
/// microsecond). Returns false where either is refused: the pacer then runs late more often,
/// and the latencies, counted from the scheduled instants, include that on both sides alike.
fn make_punctual_pacer() -> bool {
    let Ok(thread) = std::fs::read_link("/proc/thread-self") else {
        return false;
    };
    let Some(tid) = thread.file_name() else {
        return false;
    };
    let slack = std::path::Path::new("/proc")
        .join(tid)
        .join("timerslack_ns");
    let slack_set = std::fs::write(slack, "1000").is_ok();
    let real_time = std::process::Command::new("chrt")
        .args(["--fifo", "--pid", "1"])
        .arg(tid)
        .status()
        .is_ok_and(|status| status.success());
    slack_set && real_time
}

/// Requests in flight at which an open-loop round stops: about half a second of arrivals
/// without an answer, so the rate is not below saturation (a backlog that deep trips the gRPC
/// server's flood protection, which closes the connection). A pause of the machine of a few
/// tens of milliseconds, which happens here, queues a few hundred.
const BACKLOG_LIMIT: usize = 10_000;

/// One side's open-loop samples, summed over rounds.
struct OpenLoopSide {
    pool: Arc<Pool>,
    latencies: Vec<Duration>,
    lateness: Vec<Duration>,
    /// This process's CPU time.
    cpu: Option<Duration>,
    /// Clock ticks other processes (and the hypervisor) kept the machine's CPUs busy, and
    /// this process's major page faults.
    others: Option<(u64, u64)>,
    wall: Duration,
    /// Whether the pacer was punctual in every round.
    punctual: bool,
    /// Whether a round stopped at [`BACKLOG_LIMIT`].
    overloaded: bool,
    /// Each round's p50, in microseconds.
    round_p50s: Vec<f64>,
}

impl OpenLoopSide {
    fn new(prototype: &Caller) -> Self {
        OpenLoopSide {
            pool: Pool::new(prototype),
            latencies: Vec::new(),
            lateness: Vec::new(),
            cpu: Some(Duration::ZERO),
            others: Some((0, 0)),
            wall: Duration::ZERO,
            punctual: true,
            overloaded: false,
            round_p50s: Vec::new(),
        }
    }

    /// One open-loop round: `count` requests at `rate` per second from now on, whether or not
    /// earlier ones have been answered. A pacer thread spawns each request onto `rt` at its
    /// scheduled instant, and the request's latency runs from that instant.
    fn round(&mut self, rt: &Runtime, rate: f64, count: usize) {
        let (started, cpu, conditions) = (Instant::now(), process_cpu(), Conditions::now());
        let runtime = rt.handle().clone();
        let pool = Arc::clone(&self.pool);
        let pacer = std::thread::spawn(move || {
            let punctual = make_punctual_pacer();
            let start = Instant::now() + Duration::from_millis(1);
            let mut requests = Vec::with_capacity(count);
            let mut lateness = Vec::with_capacity(count);
            for i in 0..count {
                let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                lateness.push(scheduled.elapsed());
                if pool.start() > BACKLOG_LIMIT {
                    pool.in_flight.fetch_sub(1, Ordering::Relaxed);
                    return (requests, lateness, punctual, true);
                }
                let pool = Arc::clone(&pool);
                requests.push(runtime.spawn(async move {
                    let mut caller = pool.take();
                    let outcome = caller.try_call().await;
                    let latency = scheduled.elapsed();
                    pool.finish(caller, outcome);
                    latency
                }));
            }
            (requests, lateness, punctual, false)
        });
        let (requests, lateness, punctual, overloaded) = pacer.join().unwrap();
        let mut round = rt.block_on(async {
            let mut round = Vec::with_capacity(requests.len());
            for request in requests {
                round.push(request.await.unwrap());
            }
            round
        });
        self.latencies.extend_from_slice(&round);
        self.round_p50s.push(p50_p99(&mut round).0);
        self.lateness.extend(lateness);
        self.punctual &= punctual;
        self.overloaded |= overloaded;
        self.cpu = match (self.cpu, cpu, process_cpu()) {
            (Some(sum), Some(before), Some(after)) => Some(sum + after.saturating_sub(before)),
            _ => None,
        };
        self.others = match (self.others, conditions, Conditions::now()) {
            (Some((ticks, faults)), Some(before), Some(after)) => {
                let (more_ticks, more_faults) = before.since(after);
                Some((ticks + more_ticks, faults + more_faults))
            }
            _ => None,
        };
        self.wall += started.elapsed();
    }

    /// The share of the machine's `cores` other processes kept busy, in percent.
    fn others_busy(&self, cores: f64) -> Option<f64> {
        Some(self.others?.0 as f64 / 100.0 / self.wall.as_secs_f64() / cores * 100.0)
    }
}

/// Open loop below saturation: the direct call's capacity, then both sides at [`load`] times
/// that rate; the added p50/p99 against the 50 us target.
fn print_open_loop(rt: &Runtime, fixture: &Fixture, layout: &str) {
    const ROUNDS: usize = 8;
    const ROUND: Duration = Duration::from_secs(1);
    const TARGET_US: f64 = 50.0;
    let (mut direct_capacity, mut layer_capacity) = (0.0, 0.0);
    for _ in 0..2 {
        direct_capacity += capacity(rt, &fixture.direct, ROUND / 2) / 2.0;
        layer_capacity += capacity(rt, &fixture.layer, ROUND / 2) / 2.0;
    }
    let load = load();
    let rate = direct_capacity * load;
    let count = (rate * ROUND.as_secs_f64()) as usize;
    let mut direct = OpenLoopSide::new(&fixture.direct);
    let mut layer = OpenLoopSide::new(&fixture.layer);
    // Alternate rounds so drift on a shared machine hits both sides alike.
    for _ in 0..ROUNDS {
        direct.round(rt, rate, count);
        layer.round(rt, rate, count);
        if direct.overloaded || layer.overloaded {
            break;
        }
    }
    let (d, l) = (
        p50_p99(&mut direct.latencies),
        p50_p99(&mut layer.latencies),
    );
    let (added_p50, added_p99) = (l.0 - d.0, l.1 - d.1);
    // Added p50 round by round (the rounds alternate): a pause of the machine that queues
    // requests in one round moves that round only.
    let mut round_added: Vec<f64> = (direct.round_p50s.iter())
        .zip(&layer.round_p50s)
        .map(|(d, l)| l - d)
        .collect();
    round_added.sort_by(f64::total_cmp);
    let round_added = round_added
        .iter()
        .map(|added| format!("{added:.0}"))
        .collect::<Vec<_>>()
        .join(" ");
    let failures = |side: &OpenLoopSide| side.pool.failures.lock().unwrap().clone();
    let verdict = match (failures(&direct), failures(&layer)) {
        _ if direct.overloaded || layer.overloaded => format!(
            "no answer, saturated: more than {BACKLOG_LIMIT} requests in flight (direct {}, layer {})",
            direct.overloaded, layer.overloaded
        ),
        ((0, _), (0, _)) if added_p50 < TARGET_US => "met".to_owned(),
        ((0, _), (0, _)) => "not met".to_owned(),
        // A backlog deep enough to make calls fail: the rate was not below saturation.
        ((d, first_d), (l, first_l)) => format!(
            "no answer, saturated: {d} direct and {l} layer calls failed, first: {}",
            first_d.or(first_l).unwrap_or_default()
        ),
    };
    println!(
        "{layout:>6} {:>4} open loop at {rate:.0}/s ({load:.2} x direct capacity {direct_capacity:.0}/s; layer capacity {layer_capacity:.0}/s): direct p50 {:>7.1} us p99 {:>7.1} us | layer p50 {:>7.1} us p99 {:>7.1} us | added p50 {added_p50:>6.1} us p99 {added_p99:>6.1} us | < {TARGET_US} us added at p50: {verdict}",
        fixture.name, d.0, d.1, l.0, l.1,
    );
    let requests = direct.latencies.len().min(layer.latencies.len());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cpu = match (
        per_request(direct.cpu, direct.latencies.len()),
        per_request(layer.cpu, layer.latencies.len()),
    ) {
        (Some(d), Some(l)) => format!(
            "CPU/request direct {d:.1} us layer {l:.1} us added {:.1} us, this process busy {:.0}% / {:.0}% of {cores} cores | ",
            l - d,
            d * rate * 1e-4 / cores,
            l * rate * 1e-4 / cores,
        ),
        _ => String::new(),
    };
    let others = match (
        direct.others_busy(cores),
        layer.others_busy(cores),
        direct.others,
        layer.others,
    ) {
        (Some(d), Some(l), Some((_, d_faults)), Some((_, l_faults))) => format!(
            "other processes busy {d:.0}% / {l:.0}%, major page faults {d_faults} / {l_faults} | "
        ),
        _ => String::new(),
    };
    let (dl, ll) = (p50_p99(&mut direct.lateness), p50_p99(&mut layer.lateness));
    println!(
        "{layout:>6} {:>4}   {requests} requests per side, added p50 by round (sorted) {round_added} us | {cpu}{others}{} pacer late p50 {:.1} / {:.1} us, p99 {:.1} / {:.1} us | most in flight {} / {}",
        fixture.name,
        if direct.punctual && layer.punctual {
            "real-time"
        } else {
            "normal-priority"
        },
        dl.0,
        ll.0,
        dl.1,
        ll.1,
        direct.pool.most_in_flight.load(Ordering::Relaxed),
        layer.pool.most_in_flight.load(Ordering::Relaxed),
    );
}

fn runtime(workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Connects and warms both paths of each fixture.
fn warm(rt: &Runtime, fixtures: &[Fixture]) {
    for fixture in fixtures {
        rt.block_on(async {
            let (mut direct, mut layer) = (fixture.direct.clone(), fixture.layer.clone());
            for _ in 0..200 {
                direct.call().await;
                layer.call().await;
            }
        });
    }
}

fn bench(c: &mut Criterion) {
    // `shared`: one 2-worker runtime runs the callers, the layer and the services, which
    // compete for both cores.
    let rt = runtime(2);
    let fixtures = [
        grpc_fixture(&rt, rt.handle()),
        http_fixture(&rt, rt.handle()),
    ];
    warm(&rt, &fixtures);
    if std::env::args().any(|a| a == "--bench") {
        for fixture in &fixtures {
            print_one_in_flight(&rt, fixture, "shared");
            print_open_loop(&rt, fixture, "shared");
        }
        // `split`: the services on a 1-worker runtime of their own, the callers and the layer
        // on another, as in a deployment where the service does not share the gateway's CPU.
        let (callers, services) = (runtime(1), runtime(1));
        let split = [
            grpc_fixture(&callers, services.handle()),
            http_fixture(&callers, services.handle()),
        ];
        warm(&callers, &split);
        for fixture in &split {
            print_one_in_flight(&callers, fixture, "split");
            print_open_loop(&callers, fixture, "split");
        }
    }
    for fixture in &fixtures {
        let mut group = c.benchmark_group(format!("ext_authz/{}", fixture.name));
        group
            .sample_size(30)
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
        for concurrency in CONCURRENCY {
            for (side, prototype) in [("direct", &fixture.direct), ("layer", &fixture.layer)] {
                // One iteration = `concurrency` requests started at once, timed until the
                // last is answered: at 64, a measure of throughput on saturated cores (the
                // queue, not the layer's latency; the open-loop rows measure that).
                group.bench_function(BenchmarkId::new(side, concurrency), |b| {
                    let mut callers = vec![prototype.clone(); concurrency];
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            let mut total = Duration::ZERO;
                            for _ in 0..iters {
                                let started = Instant::now();
                                callers = run(std::mem::take(&mut callers), 1).await.0;
                                total += started.elapsed();
                            }
                            total
                        })
                    });
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
