//! Latency `ExtAuthLayer` adds over the authorization service's own latency, for gRPC and HTTP,
//! at 1 and 64 concurrent requests.
//!
//! Both sides run the same harness and reach the same in-process service on 127.0.0.1 through
//! the same client stack; only the layer's own work differs.
//!
//! **Both sides, per request**: build the incoming request a server would hand the gateway
//! (`POST /v1/chat/completions` with the 7 headers of a typical LLM API call, [`HEADERS`]),
//! time one call, push the latency. Each concurrent task owns its caller (a service or a
//! client, cloned once per task, never per request).
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
//!   from a prebuilt URI and header map, and reads the answer body.
//!
//! At start-up a recording server checks that both sides send the same thing: the same decoded
//! `CheckRequest` and `grpc-timeout`; the same method, URI and headers.
//!
//! **`layer`**: calls an [`ExtAuthService`] (`ready().await`, then `call`) wrapped around an
//! upstream that answers at once (a function returning a ready future: no allocation, no
//! boxing). The difference is what the layer does: build the check from the request (headers
//! map, URI), the call's timeout, span and metrics, the client's connection permit (HTTP),
//! decoding and interpreting the answer, forwarding, the boxed response future.
//!
//! No tracing subscriber and no metrics recorder are installed (as in a gateway whose
//! `ext_authz` span is below the log level). The process allocates with mimalloc, as the
//! `agentgw` binary does.
//!
//! With `--bench`, percentile tables (p50/p99 per request, 20 000 requests per cell at 1 in
//! flight and 320 000 at 64, the two sides alternating in 8 rounds) are printed before the
//! Criterion groups, for two layouts: `shared`, where one 2-worker runtime runs the callers, the
//! layer and the services, and `split`, where the services run on a 1-worker runtime of their
//! own and the callers and the layer on another.

// The allocator of the `agentgw` gateway binary, so that the layer's allocations cost here what
// they cost there (with glibc's malloc they cost more; see the crate README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgw_auth::ext_authz::{
    BackendRef, ExtAuthConfig, ExtAuthLayer, ExtAuthService, GrpcOptions, HttpOptions,
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
use tonic::GrpcMethod;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tower::{Layer, Service, ServiceExt, service_fn, util::ServiceFn};

const CONCURRENCY: [usize; 2] = [1, 64];

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
        uri: Uri,
        headers: HeaderMap,
    },
}

impl Caller {
    async fn call(&mut self) {
        let incoming = gateway_request();
        match self {
            Caller::Layer(service) => {
                let response = service.ready().await.unwrap().call(incoming).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
            Caller::Grpc { grpc, message } => {
                drop(black_box(incoming));
                let mut request = tonic::Request::new(message.clone());
                request.set_timeout(TIMEOUT);
                request.extensions_mut().insert(GrpcMethod::new(
                    "envoy.service.auth.v3.Authorization",
                    "Check",
                ));
                grpc.ready().await.unwrap();
                let response = grpc
                    .unary(
                        request,
                        PathAndQuery::from_static("/envoy.service.auth.v3.Authorization/Check"),
                        RawCodec,
                    )
                    .await
                    .unwrap();
                assert_eq!(&response.get_ref()[..], ALLOWED);
            }
            Caller::Http {
                client,
                uri,
                headers,
            } => {
                drop(black_box(incoming));
                let mut request = Request::new(Full::new(Bytes::new()));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = uri.clone();
                *request.headers_mut() = headers.clone();
                let response = client.request(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.into_body().collect().await.unwrap();
            }
        }
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
        client: Client::builder(TokioExecutor::new()).build(connector),
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

fn print_percentiles(rt: &Runtime, fixture: &Fixture, layout: &str) {
    const ROUNDS: usize = 8;
    for concurrency in CONCURRENCY {
        // About a second per round and side: short rounds measure the scheduler's hiccups.
        let requests = if concurrency == 1 { 20_000 } else { 320_000 };
        let per_task = requests / ROUNDS / concurrency;
        let mut direct_callers = vec![fixture.direct.clone(); concurrency];
        let mut layer_callers = vec![fixture.layer.clone(); concurrency];
        let (mut direct, mut layer) = (Vec::new(), Vec::new());
        let (mut direct_cpu, mut layer_cpu) = (Some(Duration::ZERO), Some(Duration::ZERO));
        // Alternate rounds so drift on a shared machine hits both sides alike.
        for _ in 0..ROUNDS {
            let (callers, latencies) = timed_run(rt, direct_callers, per_task, &mut direct_cpu);
            direct_callers = callers;
            direct.extend(latencies);
            let (callers, latencies) = timed_run(rt, layer_callers, per_task, &mut layer_cpu);
            layer_callers = callers;
            layer.extend(latencies);
        }
        let mut cells = Vec::new();
        for samples in [&mut direct, &mut layer] {
            samples.sort();
            cells.push((percentile(samples, 0.5), percentile(samples, 0.99)));
        }
        let (d, l) = (cells[0], cells[1]);
        let cpu = match (direct_cpu, layer_cpu) {
            (Some(d), Some(l)) => {
                let per_request = |cpu: Duration| cpu.as_secs_f64() * 1e6 / direct.len() as f64;
                let (d, l) = (per_request(d), per_request(l));
                format!(
                    " | CPU/request direct {d:.1} us layer {l:.1} us added {:.1} us",
                    l - d
                )
            }
            _ => String::new(),
        };
        println!(
            "{layout:>6} {:>4} c={concurrency:<3} direct p50 {:>7.1} us p99 {:>7.1} us | layer p50 {:>7.1} us p99 {:>7.1} us | added p50 {:>6.1} us ({:.2}x){cpu}",
            fixture.name,
            d.0,
            d.1,
            l.0,
            l.1,
            l.0 - d.0,
            l.0 / d.0
        );
    }
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
            print_percentiles(&rt, fixture, "shared");
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
            print_percentiles(&callers, fixture, "split");
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
                // One iteration = `concurrency` requests in flight at once: its time is the
                // latency of a request under that load.
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
