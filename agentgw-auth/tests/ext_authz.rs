//! `ExtAuthLayer` against real authorization services on 127.0.0.1: a tonic Envoy ext_authz
//! server and an axum HTTP server, both in-process, counting the connections they accept.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use agentgw_auth::ext_authz::{
    BackendRef, DecisionCacheConfig, ExtAuthConfig, ExtAuthLayer, HttpOptions,
};
use agentgw_core::identity::ClientAddr;
use agentgw_core::{RequestBody, ResponseBody};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use envoy_types::ext_authz::v3::CheckResponseExt as _;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderValue as PbHeader, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest as CheckedHttp;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, Service, ServiceExt, service_fn};

// ---------------------------------------------------------------------------------------------
// Connection counting

/// Connections an authorization server accepted, has open now, and had open at most at once.
#[derive(Default, Debug)]
struct Conns {
    accepted: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
}

impl Conns {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Waits until every accepted connection is closed; false after 5 s.
    async fn all_closed(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.open() > 0 {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// A server-side TCP stream that keeps [`Conns`] up to date.
struct Counted {
    io: TcpStream,
    conns: Arc<Conns>,
}

impl Counted {
    fn new(io: TcpStream, conns: Arc<Conns>) -> Self {
        conns.accepted.fetch_add(1, Ordering::SeqCst);
        let open = conns.open.fetch_add(1, Ordering::SeqCst) + 1;
        conns.peak.fetch_max(open, Ordering::SeqCst);
        Counted { io, conns }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.conns.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Counted {
    type ConnectInfo = ();

    fn connect_info(&self) {}
}

struct CountingListener {
    inner: TcpListener,
    conns: Arc<Conns>,
}

impl axum::serve::Listener for CountingListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            if let Ok((io, addr)) = self.inner.accept().await {
                return (Counted::new(io, self.conns.clone()), addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let (listener, addr) = listen().await;
    drop(listener);
    addr
}

/// A TCP server that answers every connection with bytes that are not HTTP.
async fn garbage_server() -> SocketAddr {
    let (listener, addr) = listen().await;
    tokio::spawn(async move {
        while let Ok((mut io, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = io
                    .write_all(b"\x00\x01garbage, not a protocol\r\n\r\n")
                    .await;
                let _ = io.shutdown().await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// The gRPC authorization server (tonic, envoy-types)

type Decide = dyn Fn(&CheckRequest) -> Result<CheckResponse, tonic::Status> + Send + Sync;

#[derive(Clone)]
struct GrpcAuthz {
    decide: Arc<Decide>,
    delay_ms: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    last: Arc<Mutex<Option<CheckRequest>>>,
}

#[tonic::async_trait]
impl Authorization for GrpcAuthz {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst) as u64;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let request = request.into_inner();
        let response = (self.decide)(&request);
        *self.last.lock().unwrap() = Some(request);
        response.map(tonic::Response::new)
    }
}

struct GrpcServer {
    addr: SocketAddr,
    url: String,
    authz: GrpcAuthz,
    conns: Arc<Conns>,
}

impl GrpcServer {
    fn calls(&self) -> usize {
        self.authz.calls.load(Ordering::SeqCst)
    }

    fn set_delay(&self, delay: Duration) {
        self.authz
            .delay_ms
            .store(delay.as_millis() as usize, Ordering::SeqCst);
    }

    /// The `http` attributes of the last check.
    fn last_http(&self) -> CheckedHttp {
        self.last_check()
            .attributes
            .unwrap()
            .request
            .unwrap()
            .http
            .unwrap()
    }

    fn last_check(&self) -> CheckRequest {
        self.authz
            .last
            .lock()
            .unwrap()
            .clone()
            .expect("a check was made")
    }
}

async fn grpc_server(
    decide: impl Fn(&CheckRequest) -> Result<CheckResponse, tonic::Status> + Send + Sync + 'static,
) -> GrpcServer {
    let authz = GrpcAuthz {
        decide: Arc::new(decide),
        delay_ms: Arc::default(),
        calls: Arc::default(),
        last: Arc::default(),
    };
    let (listener, addr) = listen().await;
    let conns = Arc::new(Conns::default());
    let incoming = accept_counted(listener, conns.clone());
    let service = AuthorizationServer::new(authz.clone());
    tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(service, incoming));
    GrpcServer {
        addr,
        url: format!("http://{addr}"),
        authz,
        conns,
    }
}

fn accept_counted(
    listener: TcpListener,
    conns: Arc<Conns>,
) -> impl futures_util::Stream<Item = io::Result<Counted>> {
    futures_util::stream::unfold((listener, conns), |(listener, conns)| async move {
        let accepted = listener
            .accept()
            .await
            .map(|(io, _)| Counted::new(io, conns.clone()));
        Some((accepted, (listener, conns)))
    })
}

fn request_headers(check: &CheckRequest) -> &HashMap<String, String> {
    &check
        .attributes
        .as_ref()
        .unwrap()
        .request
        .as_ref()
        .unwrap()
        .http
        .as_ref()
        .unwrap()
        .headers
}

/// Allows `x-user: alice`, denies everyone else with 403 and no body.
fn alice_only(check: &CheckRequest) -> Result<CheckResponse, tonic::Status> {
    let status = match request_headers(check).get("x-user").map(String::as_str) {
        Some("alice") => tonic::Status::ok(""),
        _ => tonic::Status::permission_denied("not alice"),
    };
    Ok(CheckResponse::with_status(status))
}

fn allow_all(_: &CheckRequest) -> Result<CheckResponse, tonic::Status> {
    Ok(CheckResponse::with_status(tonic::Status::ok("")))
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(PbHeader {
            key: key.into(),
            value: value.into(),
            raw_value: Vec::new(),
        }),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP authorization server (axum)

/// A request the HTTP authorization service received.
#[derive(Debug, Clone)]
struct Seen {
    method: http::Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
}

type Answer = dyn Fn(&Seen) -> Response<Body> + Send + Sync;

struct HttpServer {
    url: String,
    conns: Arc<Conns>,
    calls: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicUsize>,
    last: Arc<Mutex<Option<Seen>>>,
}

impl HttpServer {
    fn last(&self) -> Seen {
        self.last.lock().unwrap().clone().expect("a check was made")
    }
}

async fn http_server(
    answer: impl Fn(&Seen) -> Response<Body> + Send + Sync + 'static,
) -> HttpServer {
    let answer: Arc<Answer> = Arc::new(answer);
    let calls = Arc::new(AtomicUsize::new(0));
    let delay_ms = Arc::new(AtomicUsize::new(0));
    let last: Arc<Mutex<Option<Seen>>> = Arc::default();
    let (handler_calls, handler_delay, handler_last) =
        (calls.clone(), delay_ms.clone(), last.clone());
    let app = Router::new().fallback(move |req: Request<Body>| {
        let (answer, calls, delay, last) = (
            answer.clone(),
            handler_calls.clone(),
            handler_delay.clone(),
            handler_last.clone(),
        );
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let (parts, body) = req.into_parts();
            let seen = Seen {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                body: body.collect().await.unwrap().to_bytes(),
            };
            let delay = delay.load(Ordering::SeqCst) as u64;
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let response = answer(&seen);
            *last.lock().unwrap() = Some(seen);
            response
        }
    });
    let (listener, addr) = listen().await;
    let conns = Arc::new(Conns::default());
    let listener = CountingListener {
        inner: listener,
        conns: conns.clone(),
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    HttpServer {
        url: format!("http://{addr}"),
        conns,
        calls,
        delay_ms,
        last,
    }
}

fn respond(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<Body> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The gateway: an axum app behind the layer, on a real socket, echoing what it received

/// Serves `layer` in front of an upstream that echoes method, path, headers and body as JSON.
async fn gateway(layer: ExtAuthLayer) -> String {
    let app = Router::new()
        .fallback(|req: Request<Body>| async move {
            let (parts, body) = req.into_parts();
            let mut headers = serde_json::Map::new();
            for name in parts.headers.keys() {
                let values: Vec<Value> = parts
                    .headers
                    .get_all(name)
                    .iter()
                    .map(|v| Value::from(v.to_str().unwrap()))
                    .collect();
                headers.insert(name.to_string(), Value::Array(values));
            }
            let body = body.collect().await.unwrap().to_bytes();
            axum::Json(json!({
                "method": parts.method.as_str(),
                "uri": parts.uri.to_string(),
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            }))
        })
        .layer(layer)
        .layer(tower::util::MapRequestLayer::new(
            |mut req: Request<Body>| {
                if let Some(ConnectInfo(addr)) =
                    req.extensions().get::<ConnectInfo<SocketAddr>>().copied()
                {
                    req.extensions_mut().insert(ClientAddr(addr));
                }
                req
            },
        ));
    let (listener, addr) = listen().await;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The echoed upstream request.
async fn echoed(res: reqwest::Response) -> Value {
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the request must reach the upstream"
    );
    res.json().await.unwrap()
}

fn echoed_header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

fn grpc_config(url: &str, extra: Value) -> ExtAuthConfig {
    let mut config = json!({"backendRef": {"url": url}, "grpc": {}, "failureModeAllow": false});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(config).unwrap()
}

fn http_config(url: &str, http: Value, extra: Value) -> ExtAuthConfig {
    let mut config = json!({"backendRef": {"url": url}, "http": http, "failureModeAllow": false});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(config).unwrap()
}

fn layer(config: &ExtAuthConfig) -> ExtAuthLayer {
    ExtAuthLayer::from_config(config).unwrap()
}

// ---------------------------------------------------------------------------------------------
// gRPC

#[tokio::test]
async fn grpc_allows_and_the_check_describes_the_request() {
    let authz = grpc_server(alice_only).await;
    let config = grpc_config(
        &authz.url,
        json!({"contextExtensions": {"route": "openai", "tier": "gold"}}),
    );
    let gw = gateway(layer(&config)).await;
    let res = client()
        .post(format!("{gw}/v1/chat/completions?stream=true"))
        .header("x-user", "alice")
        .header("x-request-id", "req-42")
        .body("{}")
        .send()
        .await
        .unwrap();
    let echo = echoed(res).await;
    assert_eq!(echo["uri"], "/v1/chat/completions?stream=true");
    assert_eq!(
        echo["body"], "{}",
        "without includeRequestBody the body streams through"
    );

    let check = authz.last_check();
    let attrs = check.attributes.clone().unwrap();
    assert_eq!(attrs.context_extensions["route"], "openai");
    assert_eq!(attrs.context_extensions["tier"], "gold");
    let source = attrs.source.unwrap().address.unwrap().address.unwrap();
    let envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(source) = source
    else {
        panic!("the source is a socket address");
    };
    assert_eq!(source.address, "127.0.0.1");
    let http = authz.last_http();
    assert_eq!(http.method, "POST");
    assert_eq!(http.path, "/v1/chat/completions?stream=true");
    assert_eq!(http.host, gw.trim_start_matches("http://"));
    assert_eq!(http.id, "req-42");
    assert_eq!(http.headers["x-user"], "alice");
    assert_eq!(http.headers[":method"], "POST");
    assert!(http.body.is_empty(), "no body unless includeRequestBody");

    let res = client()
        .post(format!("{gw}/v1/chat/completions"))
        .header("x-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "denied",
        "a denial without body is an OpenAI error here"
    );
    assert_eq!(body["error"]["type"], "permission_error");
}

#[tokio::test]
async fn grpc_denial_status_headers_and_body_reach_the_client_as_they_came() {
    let authz = grpc_server(|_| {
        let mut response = CheckResponse::with_status(tonic::Status::unauthenticated("no"));
        response.set_http_response(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: 418 }),
            headers: vec![
                header("content-type", "application/problem+json"),
                header("www-authenticate", "Bearer realm=\"agents\""),
                header("x-deny-reason", "budget"),
            ],
            body: r#"{"title":"over budget"}"#.into(),
        }));
        Ok(response)
    })
    .await;
    let gw = gateway(layer(&grpc_config(&authz.url, json!({})))).await;
    let res = client()
        .get(format!("{gw}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"agents\"");
    assert_eq!(res.headers()["x-deny-reason"], "budget");
    assert_eq!(res.text().await.unwrap(), r#"{"title":"over budget"}"#);
}

#[tokio::test]
async fn grpc_ok_response_rewrites_the_upstream_request_and_the_response() {
    let authz = grpc_server(|_| {
        let mut response = CheckResponse::with_status(tonic::Status::ok(""));
        let mut appended = header("x-groups", "admins");
        appended.append_action =
            envoy_types::ext_authz::v3::pb::HeaderAppendAction::AppendIfExistsOrAdd as i32;
        #[allow(deprecated)]
        {
            appended.append = Some(envoy_types::pb::google::protobuf::BoolValue { value: true });
        }
        response.set_http_response(HttpResponse::OkResponse(OkHttpResponse {
            headers: vec![header("x-user", "alice"), appended],
            headers_to_remove: vec!["authorization".into(), "host".into()],
            response_headers_to_add: vec![header("x-ratelimit-remaining", "41")],
            query_parameters_to_set: vec![envoy_types::ext_authz::v3::pb::QueryParameter {
                key: "tenant".into(),
                value: "acme corp".into(),
            }],
            query_parameters_to_remove: vec!["api_key".into()],
            ..Default::default()
        }));
        Ok(response)
    })
    .await;
    let gw = gateway(layer(&grpc_config(&authz.url, json!({})))).await;
    let res = client()
        .get(format!("{gw}/v1/models?api_key=s3cret&limit=5"))
        .header("authorization", "Bearer client-token")
        .header("x-user", "spoofed")
        .header("x-groups", "users")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-ratelimit-remaining"], "41");
    let echo = echoed(res).await;
    assert_eq!(
        echoed_header(&echo, "x-user"),
        Some("alice"),
        "set replaces the client's value"
    );
    assert_eq!(echo["headers"]["x-groups"], json!(["users", "admins"]));
    assert!(
        echo["headers"].get("authorization").is_none(),
        "removed before forwarding"
    );
    assert!(
        echo["headers"].get("host").is_some(),
        "host is never removed"
    );
    assert_eq!(echo["uri"], "/v1/models?limit=5&tenant=acme%20corp");
}

#[tokio::test]
async fn grpc_body_prefix_is_sent_and_the_whole_body_forwarded() {
    let authz = grpc_server(allow_all).await;
    let config = grpc_config(
        &authz.url,
        json!({"includeRequestBody": {"maxRequestBytes": 16}}),
    );
    let gw = gateway(layer(&config)).await;
    let body = r#"{"model":"gpt-4o","messages":[]}"#;
    let echo = echoed(
        client()
            .post(format!("{gw}/v1/chat/completions"))
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["body"], body, "the upstream gets the whole body");
    let http = authz.last_http();
    assert_eq!(http.body, &body[..16]);
    assert_eq!(http.size, body.len() as i64);
    assert_eq!(http.headers["x-envoy-auth-partial-body"], "true");

    let echo = echoed(
        client()
            .post(format!("{gw}/v1/x"))
            .body("short")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["body"], "short");
    let http = authz.last_http();
    assert_eq!(http.body, "short");
    assert_eq!(http.headers["x-envoy-auth-partial-body"], "false");

    // packAsBytes sends the prefix in raw_body.
    let config = grpc_config(
        &authz.url,
        json!({"includeRequestBody": {"maxRequestBytes": 4, "packAsBytes": true}}),
    );
    let gw = gateway(layer(&config)).await;
    echoed(
        client()
            .post(format!("{gw}/x"))
            .body(vec![0xff, 0xfe, 0, 1, 2])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(authz.last_http().raw_body, [0xff, 0xfe, 0, 1]);
}

#[tokio::test]
async fn grpc_denial_without_body_is_a_jsonrpc_error_for_mcp() {
    let authz = grpc_server(alice_only).await;
    let config = grpc_config(
        &authz.url,
        json!({"includeRequestBody": {"maxRequestBytes": 1024}}),
    );
    let gw = gateway(layer(&config)).await;
    let res = client()
        .post(format!("{gw}/mcp"))
        .json(
            &json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {"name": "rm"}}),
        )
        .send()
        .await
        .unwrap();
    // Core's one denial policy: an MCP request with an id is answered with HTTP 200 and a
    // JSON-RPC error for that id (what MCP clients hand to the caller as a tool error); the
    // status the denial stands for travels in `error.data.status`.
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], 77);
    assert_eq!(body["error"]["data"]["layer"], "ext_auth");
    assert_eq!(body["error"]["data"]["status"], 403);
}

#[tokio::test]
async fn grpc_slow_server_times_out() {
    let authz = grpc_server(allow_all).await;
    authz.set_delay(Duration::from_secs(2));
    let closed = grpc_config(&authz.url, json!({"timeout": "100ms"}));
    let gw = gateway(layer(&closed)).await;
    let started = Instant::now();
    let res = client()
        .get(format!("{gw}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "timeout");

    let open = grpc_config(
        &authz.url,
        json!({"timeout": "100ms", "failureModeAllow": true}),
    );
    let gw = gateway(layer(&open)).await;
    echoed(
        client()
            .get(format!("{gw}/v1/models"))
            .send()
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn grpc_server_down_fails_closed_or_open_as_configured() {
    let down = format!("http://{}", closed_port().await);
    let gw = gateway(layer(&grpc_config(&down, json!({})))).await;
    let res = client()
        .get(format!("{gw}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");

    let gw = gateway(layer(&grpc_config(&down, json!({"statusOnError": 503})))).await;
    let res = client()
        .get(format!("{gw}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    let gw = gateway(layer(&grpc_config(
        &down,
        json!({"failureModeAllow": true}),
    )))
    .await;
    let echo = echoed(
        client()
            .get(format!("{gw}/v1/models"))
            .header("x-user", "x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        echoed_header(&echo, "x-user"),
        Some("x"),
        "forwarded unchanged"
    );
}

#[tokio::test]
async fn grpc_error_response_is_a_failure() {
    let authz = grpc_server(|_| {
        let mut response = CheckResponse::with_status(tonic::Status::internal("engine down"));
        response.set_http_response(HttpResponse::ErrorResponse(DeniedHttpResponse {
            status: None,
            headers: vec![header("retry-after", "5")],
            body: "policy engine unavailable".into(),
        }));
        Ok(response)
    })
    .await;
    let gw = gateway(layer(&grpc_config(
        &authz.url,
        json!({"statusOnError": 503}),
    )))
    .await;
    let res = client().get(format!("{gw}/x")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "5");
    assert_eq!(res.text().await.unwrap(), "policy engine unavailable");

    let gw = gateway(layer(&grpc_config(
        &authz.url,
        json!({"failureModeAllow": true}),
    )))
    .await;
    echoed(client().get(format!("{gw}/x")).send().await.unwrap()).await;
}

/// A gRPC server that answers every call with a well-framed message that is not protobuf.
async fn grpc_garbage_server() -> String {
    let (listener, _addr) = listen().await;
    let addr = listener.local_addr().unwrap();
    let service = service_fn(|_req: Request<tonic::body::Body>| async {
        let mut frame = vec![0u8, 0, 0, 0, 12];
        frame.extend_from_slice(b"\xff\xff\xff\xffgarbage!");
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let frames = futures_util::stream::iter(vec![
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(frame))),
            Ok(http_body::Frame::trailers(trailers)),
        ]);
        let response = Response::builder()
            .header("content-type", "application/grpc")
            .body(http_body_util::StreamBody::new(frames))
            .unwrap();
        Ok::<_, Infallible>(response)
    });
    let incoming = accept_counted(listener, Arc::new(Conns::default()));
    tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(service, incoming));
    format!("http://{addr}")
}

#[tokio::test]
async fn grpc_garbage_answers_fail_closed_or_open() {
    let undecodable = grpc_garbage_server().await;
    let not_http = format!("http://{}", garbage_server().await);
    for url in [&undecodable, &not_http] {
        let gw = gateway(layer(&grpc_config(url, json!({})))).await;
        let res = client().get(format!("{gw}/x")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{url}");
        let gw = gateway(layer(&grpc_config(url, json!({"failureModeAllow": true})))).await;
        echoed(client().get(format!("{gw}/x")).send().await.unwrap()).await;
    }
    // A decodable response without a status is neither an allow nor a denial.
    let authz = grpc_server(|_| Ok(CheckResponse::default())).await;
    let gw = gateway(layer(&grpc_config(&authz.url, json!({})))).await;
    let res = client().get(format!("{gw}/x")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_response");
}

/// 1000 concurrent requests through the layer: every one allowed, one pooled HTTP/2
/// connection to the service, and no connection left once the layer is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_1000_concurrent_requests_share_one_connection() {
    let authz = grpc_server(alice_only).await;
    let service =
        layer(&grpc_config(&authz.url, json!({"timeout": "10s"}))).layer(service_fn(echo_inner));
    let statuses = run_concurrently(&service, 1000).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{:?}",
        count_statuses(&statuses)
    );
    assert_eq!(authz.calls(), 1000);
    println!(
        "gRPC: {} connection(s) for 1000 concurrent checks",
        authz.conns.accepted()
    );
    assert_eq!(authz.conns.accepted(), 1, "one multiplexed connection");
    drop(service);
    assert!(
        authz.conns.all_closed().await,
        "{} connections leaked",
        authz.conns.open()
    );
}

async fn echo_inner(req: Request<RequestBody<Body>>) -> Result<Response<Body>, Infallible> {
    let user = req.headers().get("x-user").cloned();
    let mut res = Response::new(Body::from("upstream"));
    if let Some(user) = user {
        res.headers_mut().insert("x-user", user);
    }
    Ok(res)
}

/// Sends `n` requests at once through clones of `service` (each readied first) and returns
/// their statuses.
async fn run_concurrently<S>(service: &S, n: usize) -> Vec<StatusCode>
where
    S: Service<Request<Body>, Response = Response<ResponseBody<Body>>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                let req = Request::get("/v1/models")
                    .header("x-user", "alice")
                    .header("authorization", "Bearer t")
                    .body(Body::empty())
                    .unwrap();
                service.oneshot(req).await.unwrap().status()
            })
        })
        .collect();
    let mut statuses = Vec::with_capacity(n);
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

fn count_statuses(statuses: &[StatusCode]) -> HashMap<u16, usize> {
    let mut counts = HashMap::new();
    for status in statuses {
        *counts.entry(status.as_u16()).or_default() += 1;
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// Allows `authorization: Bearer good` (answering `x-user`), denies the rest with 401.
fn bearer_good(seen: &Seen) -> Response<Body> {
    match seen.headers.get("authorization").map(|v| v.as_bytes()) {
        Some(b"Bearer good") => respond(
            200,
            &[
                ("x-user", "alice"),
                ("x-not-copied", "1"),
                ("x-envoy-auth-headers-to-remove", "authorization, x-api-key"),
            ],
            "",
        ),
        _ => respond(
            401,
            &[
                ("www-authenticate", "Bearer error=\"invalid_token\""),
                ("content-type", "application/json"),
            ],
            r#"{"message":"bad token"}"#,
        ),
    }
}

#[tokio::test]
async fn http_allows_and_copies_configured_headers_upstream() {
    let authz = http_server(bearer_good).await;
    let config = http_config(
        &authz.url,
        json!({"pathPrefix": "/authz", "allowedHeaders": ["x-tenant"], "allowedUpstreamHeaders": ["x-user"]}),
        json!({}),
    );
    let gw = gateway(layer(&config)).await;
    let res = client()
        .put(format!("{gw}/v1/files?purpose=batch"))
        .header("authorization", "Bearer good")
        .header("x-api-key", "k")
        .header("x-tenant", "acme")
        .header("x-private", "not for the auth service")
        .body("file")
        .send()
        .await
        .unwrap();
    let echo = echoed(res).await;
    assert_eq!(echoed_header(&echo, "x-user"), Some("alice"));
    assert!(
        echo["headers"].get("x-not-copied").is_none(),
        "only allowedUpstreamHeaders"
    );
    assert!(
        echo["headers"].get("authorization").is_none(),
        "x-envoy-auth-headers-to-remove"
    );
    assert!(echo["headers"].get("x-api-key").is_none());
    assert_eq!(echo["body"], "file");

    let seen = authz.last();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.uri, "/authz/v1/files?purpose=batch");
    assert_eq!(seen.headers["authorization"], "Bearer good");
    assert_eq!(seen.headers["x-tenant"], "acme");
    assert!(
        seen.headers.get("x-private").is_none(),
        "only selected headers are sent"
    );
    assert_eq!(
        seen.headers["x-forwarded-host"],
        gw.trim_start_matches("http://")
    );
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert!(seen.body.is_empty(), "no body unless includeRequestBody");
}

#[tokio::test]
async fn http_denial_keeps_status_headers_and_body() {
    let authz = http_server(bearer_good).await;
    let gw = gateway(layer(&http_config(&authz.url, json!({}), json!({})))).await;
    let res = client()
        .get(format!("{gw}/v1/models"))
        .header("authorization", "Bearer bad")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.text().await.unwrap(), r#"{"message":"bad token"}"#);

    // A redirect to a login page is a denial too, passed on with its Location.
    let login = http_server(|_| respond(302, &[("location", "https://login.example/")], "")).await;
    let gw = gateway(layer(&http_config(&login.url, json!({}), json!({})))).await;
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects.get(format!("{gw}/ui")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "https://login.example/");

    // allowedClientHeaders filters what the client sees.
    let config = http_config(
        &authz.url,
        json!({"allowedClientHeaders": ["content-type"]}),
        json!({}),
    );
    let gw = gateway(layer(&config)).await;
    let res = client()
        .get(format!("{gw}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("www-authenticate").is_none());
}

#[tokio::test]
async fn http_body_prefix_is_sent_and_the_whole_body_forwarded() {
    let authz = http_server(|_| respond(200, &[], "")).await;
    let config = http_config(
        &authz.url,
        json!({}),
        json!({"includeRequestBody": {"maxRequestBytes": 10}}),
    );
    let gw = gateway(layer(&config)).await;
    // A JSON content type: the body must be strict JSON for any body-reading layer.
    let body = r#"["0123456789abcdefghij"]"#;
    let echo = echoed(
        client()
            .post(format!("{gw}/v1/embeddings"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["body"], body);
    let seen = authz.last();
    assert_eq!(&seen.body[..], br#"["01234567"#);
    assert_eq!(seen.headers["x-envoy-auth-partial-body"], "true");
    assert_eq!(seen.headers["content-type"], "application/json");
}

#[tokio::test]
async fn http_slow_server_times_out() {
    let authz = http_server(|_| respond(200, &[], "")).await;
    authz.delay_ms.store(2000, Ordering::SeqCst);
    let gw = gateway(layer(&http_config(
        &authz.url,
        json!({}),
        json!({"timeout": "100ms"}),
    )))
    .await;
    let started = Instant::now();
    let res = client().get(format!("{gw}/x")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "timeout");

    let config = http_config(
        &authz.url,
        json!({}),
        json!({"timeout": "100ms", "failureModeAllow": true}),
    );
    let gw = gateway(layer(&config)).await;
    echoed(client().get(format!("{gw}/x")).send().await.unwrap()).await;
}

#[tokio::test]
async fn http_server_down_fails_closed_or_open() {
    let down = format!("http://{}", closed_port().await);
    let gw = gateway(layer(&http_config(&down, json!({}), json!({})))).await;
    let res = client().get(format!("{gw}/x")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");

    let gw = gateway(layer(&http_config(
        &down,
        json!({}),
        json!({"failureModeAllow": true}),
    )))
    .await;
    echoed(client().get(format!("{gw}/x")).send().await.unwrap()).await;
}

#[tokio::test]
async fn http_garbage_answer_fails_closed_or_open() {
    let garbage = format!("http://{}", garbage_server().await);
    let gw = gateway(layer(&http_config(&garbage, json!({}), json!({})))).await;
    let res = client().get(format!("{gw}/x")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_response");

    let gw = gateway(layer(&http_config(
        &garbage,
        json!({}),
        json!({"failureModeAllow": true}),
    )))
    .await;
    echoed(client().get(format!("{gw}/x")).send().await.unwrap()).await;
}

/// 1000 concurrent requests: all allowed, never more than `maxConnections` open to the
/// service, connections reused by a second burst, and none left once the layer is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1000_concurrent_requests_stay_within_the_pool() {
    const MAX: usize = 16;
    let authz = http_server(|_| respond(200, &[], "")).await;
    let config = ExtAuthConfig::default()
        .backend_ref(BackendRef::url(&authz.url))
        .http(HttpOptions::default().max_connections(MAX))
        .timeout(Duration::from_secs(10));
    let service = layer(&config).layer(service_fn(echo_inner));
    let statuses = run_concurrently(&service, 1000).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{:?}",
        count_statuses(&statuses)
    );
    assert_eq!(authz.calls.load(Ordering::SeqCst), 1000);
    assert!(
        authz.conns.peak() <= MAX,
        "{} connections open at once",
        authz.conns.peak()
    );
    let first_burst = authz.conns.accepted();
    println!(
        "HTTP: {first_burst} accepted, {} at once",
        authz.conns.peak()
    );
    assert!(
        first_burst <= 2 * MAX,
        "{first_burst} connections for 1000 checks"
    );

    let statuses = run_concurrently(&service, 1000).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    assert!(
        authz.conns.accepted() - first_burst <= MAX,
        "the second burst reuses pooled connections ({} new)",
        authz.conns.accepted() - first_burst
    );
    drop(service);
    assert!(
        authz.conns.all_closed().await,
        "{} connections leaked",
        authz.conns.open()
    );
}

// ---------------------------------------------------------------------------------------------
// Behaviour common to both protocols

/// The inner service is called on the instance `poll_ready` readied, not on a fresh clone.
#[tokio::test]
async fn the_readied_inner_service_is_the_one_called() {
    #[derive(Default)]
    struct NeedsReady {
        ready: bool,
    }

    // A clone is a new instance: it has not been readied.
    impl Clone for NeedsReady {
        fn clone(&self) -> Self {
            NeedsReady { ready: false }
        }
    }

    impl Service<Request<RequestBody<Body>>> for NeedsReady {
        type Response = Response<Body>;
        type Error = &'static str;
        type Future = std::future::Ready<Result<Response<Body>, &'static str>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: Request<RequestBody<Body>>) -> Self::Future {
            let ready = std::mem::take(&mut self.ready);
            std::future::ready(if ready {
                Ok(Response::new(Body::empty()))
            } else {
                Err("called without poll_ready")
            })
        }
    }

    let authz = grpc_server(allow_all).await;
    let mut service = layer(&grpc_config(&authz.url, json!({}))).layer(NeedsReady::default());
    for _ in 0..3 {
        let ready = service.ready().await.unwrap();
        let res = ready.call(Request::new(Body::empty())).await;
        assert_eq!(res.unwrap().status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn decisions_are_cached_by_the_configured_key_only_when_enabled() {
    let authz = grpc_server(alice_only).await;
    let cached = grpc_config(
        &authz.url,
        json!({"cache": {"key": ["header:x-user", "path"], "ttl": "300ms", "maxEntries": 100}}),
    );
    let service = layer(&cached).layer(service_fn(echo_inner));
    let call = |user: &'static str, path: &'static str| {
        let service = service.clone();
        async move {
            let req = Request::get(path)
                .header("x-user", user)
                .body(Body::empty())
                .unwrap();
            service.oneshot(req).await.unwrap().status()
        }
    };
    assert_eq!(call("alice", "/a").await, StatusCode::OK);
    assert_eq!(call("alice", "/a").await, StatusCode::OK);
    assert_eq!(
        authz.calls(),
        1,
        "the second request is served from the cache"
    );
    assert_eq!(call("mallory", "/a").await, StatusCode::FORBIDDEN);
    assert_eq!(call("mallory", "/a").await, StatusCode::FORBIDDEN);
    assert_eq!(authz.calls(), 2, "denials are cached too");
    assert_eq!(call("alice", "/b").await, StatusCode::OK);
    assert_eq!(authz.calls(), 3, "a different path is a different key");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(call("alice", "/a").await, StatusCode::OK);
    assert_eq!(authz.calls(), 4, "expired entries are asked again");

    // Failures are never cached: a timed-out check is asked again.
    authz.set_delay(Duration::from_millis(500));
    let config = grpc_config(&authz.url, json!({}))
        .timeout(Duration::from_millis(50))
        .cache(
            DecisionCacheConfig::default()
                .key(["header:x-user"])
                .ttl(Duration::from_secs(60))
                .max_entries(10),
        );
    let service = layer(&config).layer(service_fn(echo_inner));
    let req = || {
        Request::get("/")
            .header("x-user", "alice")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        service.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    authz.set_delay(Duration::ZERO);
    assert_eq!(
        service.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::OK
    );

    // Off by default: every request is checked.
    let before = authz.calls();
    let service = layer(&grpc_config(&authz.url, json!({}))).layer(service_fn(echo_inner));
    for _ in 0..3 {
        service.clone().oneshot(req()).await.unwrap();
    }
    assert_eq!(authz.calls() - before, 3);
}

#[test]
fn every_outcome_is_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let authz = grpc_server(alice_only).await;
            let down = format!("http://{}", closed_port().await);
            let send = |layer: ExtAuthLayer, user: &'static str| async move {
                let req = Request::get("/v1/models")
                    .header("x-user", user)
                    .body(Body::empty())
                    .unwrap();
                layer
                    .layer(service_fn(echo_inner))
                    .oneshot(req)
                    .await
                    .unwrap()
                    .status()
            };
            let checked = layer(&grpc_config(&authz.url, json!({})));
            assert_eq!(send(checked.clone(), "alice").await, StatusCode::OK);
            assert_eq!(send(checked, "mallory").await, StatusCode::FORBIDDEN);
            assert_eq!(
                send(layer(&grpc_config(&down, json!({}))), "alice").await,
                StatusCode::FORBIDDEN
            );
            let open = layer(&grpc_config(&down, json!({"failureModeAllow": true})));
            assert_eq!(send(open, "alice").await, StatusCode::OK);
        })
    });

    let mut counters: HashMap<(String, Vec<(String, String)>), u64> = HashMap::new();
    let mut latencies = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let mut labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        match value {
            DebugValue::Counter(n) => {
                counters.insert((key.key().name().to_owned(), labels), n);
            }
            DebugValue::Histogram(samples) => latencies += samples.len(),
            DebugValue::Gauge(_) => {}
        }
    }
    let get = |name: &str, labels: &[(&str, &str)]| {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        counters
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0)
    };
    let rejected = "agentgateway_rejected_requests_total";
    assert_eq!(
        get(rejected, &[("layer", "ext_auth"), ("reason", "denied")]),
        1
    );
    assert_eq!(
        get(
            rejected,
            &[("layer", "ext_auth"), ("reason", "unavailable")]
        ),
        1
    );
    let checks = agentgw_core::metrics::EXT_AUTH_CHECKS_TOTAL;
    let outcome = |outcome: &'static str, reason: &'static str| {
        get(
            checks,
            &[
                ("protocol", "grpc"),
                ("outcome", outcome),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(outcome("allowed", "ok"), 1);
    assert_eq!(outcome("denied", "denied"), 1);
    assert_eq!(outcome("failed_closed", "unavailable"), 1);
    assert_eq!(outcome("failed_open", "unavailable"), 1);
    assert_eq!(latencies, 4, "every call's latency is recorded");
}

#[tokio::test]
async fn seed_service_reference_resolves_as_name_namespace_port() {
    // `localhost` stands in for a cluster DNS name: `name.namespace` resolves the same way.
    let authz = grpc_server(allow_all).await;
    let config: ExtAuthConfig = serde_json::from_value(json!({
        "backendRef": {"name": "localhost", "port": authz.addr.port()},
        "grpc": {},
        "failureModeAllow": false
    }))
    .unwrap();
    let service = layer(&config).layer(service_fn(echo_inner));
    let res = service.oneshot(Request::new(Body::empty())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(authz.calls(), 1);
}

#[tokio::test]
async fn works_under_service_builder_with_a_streaming_body() {
    let authz = http_server(|_| respond(204, &[], "")).await;
    let service = tower::ServiceBuilder::new()
        .layer(layer(
            &ExtAuthConfig::default()
                .backend_ref(BackendRef::url(&authz.url))
                .http(HttpOptions::default()),
        ))
        .service(service_fn(|req: Request<RequestBody<Body>>| async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(Response::new(Body::from(body)))
        }));
    let chunks = futures_util::stream::iter(vec![Ok::<_, Infallible>("a"), Ok("b"), Ok("c")]);
    let res = service
        .oneshot(Request::new(Body::from_stream(chunks)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        &res.into_body().collect().await.unwrap().to_bytes()[..],
        b"abc"
    );
}

// ---------------------------------------------------------------------------------------------
// Audit

#[tokio::test]
async fn every_check_is_audited_with_its_outcome_status_and_cache_use() {
    use agentgw_core::audit::{Decision, MemorySink};

    let authz = grpc_server(alice_only).await;
    let sink = MemorySink::default();
    let cached = grpc_config(
        &authz.url,
        json!({"cache": {"key": ["header:x-user"], "ttl": "60s", "maxEntries": 10}}),
    );
    let service = layer(&cached)
        .audit_sink(Arc::new(sink.clone()))
        .layer(service_fn(echo_inner));
    let call = |user: &'static str| {
        let service = service.clone();
        async move {
            let req = Request::post("/v1/chat/completions?key=query-secret")
                .header("x-user", user)
                .header("authorization", "Bearer sk-live-secret-token")
                .body(Body::empty())
                .unwrap();
            service.oneshot(req).await.unwrap().status()
        }
    };
    assert_eq!(call("alice").await, StatusCode::OK);
    assert_eq!(call("alice").await, StatusCode::OK);
    assert_eq!(call("mallory").await, StatusCode::FORBIDDEN);

    let down = format!("http://{}", closed_port().await);
    let failing = layer(&grpc_config(&down, json!({})))
        .audit_sink(Arc::new(sink.clone()))
        .layer(service_fn(echo_inner));
    let req = Request::get("/v1/models").body(Body::empty()).unwrap();
    assert_eq!(
        failing.oneshot(req).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let open = layer(&grpc_config(&down, json!({"failureModeAllow": true})))
        .audit_sink(Arc::new(sink.clone()))
        .layer(service_fn(echo_inner));
    let req = Request::get("/v1/models").body(Body::empty()).unwrap();
    assert_eq!(open.oneshot(req).await.unwrap().status(), StatusCode::OK);

    let events = sink.take();
    let seen: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.decision,
                e.details["outcome"].as_str().unwrap(),
                e.details["cached"].as_bool().unwrap(),
                e.rule.as_deref(),
                e.details.get("status").and_then(Value::as_u64),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Decision::Allow, "allowed", false, None, None),
            (Decision::Allow, "allowed", true, None, None),
            (Decision::Deny, "denied", false, Some("denied"), Some(403)),
            (
                Decision::Deny,
                "failed_closed",
                false,
                Some("unavailable"),
                Some(403)
            ),
            (
                Decision::Allow,
                "failed_open",
                false,
                Some("unavailable"),
                None
            ),
        ]
    );
    for event in &events {
        assert_eq!((event.layer, event.event), ("ext_auth", "ext_authz"));
        let line = event.to_json_line();
        assert!(
            !line.contains("sk-live") && !line.contains("query-secret"),
            "a credential leaked into {line}"
        );
    }
    assert_eq!(events[0].path.as_deref(), Some("/v1/chat/completions"));
}
