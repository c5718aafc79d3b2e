//! Latency `ExtAuthLayer` adds over the authorization service's own latency, for gRPC and HTTP,
//! at 1 and 64 concurrent requests.
//!
//! Baseline (`direct`): the same check sent straight to the same in-process service on
//! 127.0.0.1 with the same client stack (a tonic channel; hyper's pooled client). Measured
//! (`layer`): a request through `ExtAuthLayer` in front of an inner service that answers
//! immediately. The difference is what the layer adds: building the check from the request,
//! reading the decision, the timeout, the span and metrics, the boxed future.
//!
//! With `--bench`, a percentile table (p50/p99 per request, 20 000 requests per cell) is
//! printed before the Criterion groups.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agentgw_auth::ext_authz::ExtAuthLayer;
use agentgw_core::RequestBody;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group};
use envoy_types::ext_authz::v3::CheckResponseExt as _;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::runtime::Runtime;
use tonic::transport::{Channel, Endpoint};
use tower::{Layer, ServiceExt, service_fn, util::BoxCloneSyncService};

const CONCURRENCY: [usize; 2] = [1, 64];

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

type Gateway = BoxCloneSyncService<
    Request<Empty<Bytes>>,
    Response<agentgw_core::ResponseBody<Empty<Bytes>>>,
    Infallible,
>;

/// One protocol's two ways to get a decision.
struct Fixture {
    layer: Gateway,
    direct: Direct,
}

#[derive(Clone)]
#[allow(clippy::large_enum_variant, reason = "two values, built once")]
enum Direct {
    Grpc {
        channel: Channel,
        check: Box<CheckRequest>,
    },
    Http {
        client: Client<HttpConnector, Full<Bytes>>,
        url: String,
    },
}

impl Direct {
    async fn call(&self) {
        match self {
            Direct::Grpc { channel, check } => {
                let response = AuthorizationClient::new(channel.clone())
                    .check(CheckRequest::clone(check))
                    .await
                    .unwrap();
                assert_eq!(response.get_ref().status.as_ref().unwrap().code, 0);
            }
            Direct::Http { client, url } => {
                let mut request = Request::get(format!("{url}/v1/chat/completions"));
                for (name, value) in HEADERS.iter().filter(|(n, _)| *n == "authorization") {
                    request = request.header(*name, *value);
                }
                let request = request.body(Full::new(Bytes::new())).unwrap();
                let response = client.request(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.into_body().collect().await.unwrap();
            }
        }
    }
}

fn gateway_request() -> Request<Empty<Bytes>> {
    let mut request = Request::post("/v1/chat/completions");
    for (name, value) in HEADERS {
        request = request.header(name, value);
    }
    request.body(Empty::new()).unwrap()
}

async fn through_layer(layer: &Gateway) {
    let response = layer.clone().oneshot(gateway_request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

type Upstream =
    BoxCloneSyncService<Request<RequestBody<Empty<Bytes>>>, Response<Empty<Bytes>>, Infallible>;

/// The upstream: answers at once.
fn inner() -> Upstream {
    BoxCloneSyncService::new(service_fn(
        |_req: Request<RequestBody<Empty<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Empty::new()))
        },
    ))
}

/// The `CheckRequest` the layer sends for [`gateway_request`], built by hand.
fn equivalent_check() -> CheckRequest {
    let mut headers: HashMap<String, String> = HEADERS
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    headers.insert(":authority".into(), "llm.example.com".into());
    headers.insert(":method".into(), "POST".into());
    headers.insert(":path".into(), "/v1/chat/completions".into());
    headers.insert(":scheme".into(), "http".into());
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                time: None,
                http: Some(attribute_context::HttpRequest {
                    id: HEADERS[5].1.into(),
                    method: "POST".into(),
                    headers,
                    path: "/v1/chat/completions".into(),
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

fn grpc_fixture(rt: &Runtime) -> Fixture {
    rt.block_on(async {
        let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
            .unwrap()
            .with_nodelay(Some(true));
        let addr = incoming.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .serve_with_incoming(AuthorizationServer::new(AllowAll), incoming),
        );
        let url = format!("http://{addr}");
        let layer = ExtAuthLayer::grpc(&url)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
            .layer(inner());
        let channel = Endpoint::from_shared(url)
            .unwrap()
            .tcp_nodelay(true)
            .connect_lazy();
        Fixture {
            layer: BoxCloneSyncService::new(layer),
            direct: Direct::Grpc {
                channel,
                check: Box::new(equivalent_check()),
            },
        }
    })
}

fn http_fixture(rt: &Runtime) -> Fixture {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(|| async { StatusCode::OK });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{addr}");
        let layer = ExtAuthLayer::http(&url)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
            .layer(inner());
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Fixture {
            layer: BoxCloneSyncService::new(layer),
            direct: Direct::Http { client, url },
        }
    })
}

/// Runs `n` requests of `one` in `concurrency` tasks; returns the wall time and each latency.
async fn run<F, Fut>(one: F, n: usize, concurrency: usize) -> (Duration, Vec<Duration>)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    if concurrency == 1 {
        let mut latencies = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            one().await;
            latencies.push(t.elapsed());
        }
        return (started.elapsed(), latencies);
    }
    let per_task = n.div_ceil(concurrency);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    one().await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    (started.elapsed(), all)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn print_percentiles(rt: &Runtime, name: &str, fixture: &Fixture) {
    const N: usize = 20_000;
    for concurrency in CONCURRENCY {
        let mut cells = Vec::new();
        // Alternate rounds so drift on a shared machine hits both sides alike.
        let mut direct = Vec::new();
        let mut layer = Vec::new();
        for _ in 0..4 {
            let d = fixture.direct.clone();
            direct.extend(
                rt.block_on(run(
                    move || {
                        let d = d.clone();
                        async move { d.call().await }
                    },
                    N / 4,
                    concurrency,
                ))
                .1,
            );
            let l = fixture.layer.clone();
            layer.extend(
                rt.block_on(run(
                    move || {
                        let l = l.clone();
                        async move { through_layer(&l).await }
                    },
                    N / 4,
                    concurrency,
                ))
                .1,
            );
        }
        for samples in [&mut direct, &mut layer] {
            samples.sort();
            cells.push((percentile(samples, 0.5), percentile(samples, 0.99)));
        }
        let (d, l) = (cells[0], cells[1]);
        println!(
            "{name:>4} c={concurrency:<3} direct p50 {:>7.1} us p99 {:>7.1} us | layer p50 {:>7.1} us p99 {:>7.1} us | added p50 {:>6.1} us ({:.2}x)",
            d.0,
            d.1,
            l.0,
            l.1,
            l.0 - d.0,
            l.0 / d.0
        );
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fixtures = [("grpc", grpc_fixture(&rt)), ("http", http_fixture(&rt))];
    // Connect and warm both paths.
    for (_, fixture) in &fixtures {
        rt.block_on(async {
            for _ in 0..200 {
                fixture.direct.call().await;
                through_layer(&fixture.layer).await;
            }
        });
    }
    if std::env::args().any(|a| a == "--bench") {
        for (name, fixture) in &fixtures {
            print_percentiles(&rt, name, fixture);
        }
    }
    for (name, fixture) in &fixtures {
        let mut group = c.benchmark_group(format!("ext_authz/{name}"));
        group
            .sample_size(30)
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
        for concurrency in CONCURRENCY {
            // One iteration = `concurrency` requests in flight at once: its time is the latency
            // of a request under that load.
            group.bench_function(BenchmarkId::new("direct", concurrency), |b| {
                let direct = fixture.direct.clone();
                b.iter_custom(|iters| {
                    let direct = direct.clone();
                    rt.block_on(async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let d = direct.clone();
                            total += run(
                                move || {
                                    let d = d.clone();
                                    async move { d.call().await }
                                },
                                concurrency,
                                concurrency,
                            )
                            .await
                            .0;
                        }
                        total
                    })
                });
            });
            group.bench_function(BenchmarkId::new("layer", concurrency), |b| {
                let layer = fixture.layer.clone();
                b.iter_custom(|iters| {
                    let layer = layer.clone();
                    rt.block_on(async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let l = layer.clone();
                            total += run(
                                move || {
                                    let l = l.clone();
                                    async move { through_layer(&l).await }
                                },
                                concurrency,
                                concurrency,
                            )
                            .await
                            .0;
                        }
                        total
                    })
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
