//! The layer under `axum::Router::layer`, over real sockets on 127.0.0.1.

use std::net::SocketAddr;

use agentgw_core::Payload;
use agentgw_core::body::BodyLimit;
use agentgw_core::identity::JwtClaims;
use agentgw_rbac::{CelPolicyLayer, RbacConfig};
use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// Inserts the claims of the `x-test-claims` header, standing in for the JWT layer.
fn claims_layer() -> tower::util::MapRequestLayer<fn(Request<Body>) -> Request<Body>> {
    fn insert(mut req: Request<Body>) -> Request<Body> {
        if let Some(claims) = req
            .headers()
            .get("x-test-claims")
            .and_then(|v| serde_json::from_slice::<Value>(v.as_bytes()).ok())
            .and_then(JwtClaims::from_value)
        {
            req.extensions_mut().insert(claims);
        }
        req
    }
    tower::util::MapRequestLayer::new(insert as fn(Request<Body>) -> Request<Body>)
}

fn policy(yaml: &str) -> CelPolicyLayer {
    let config: RbacConfig = serde_saphyr::from_str(yaml).unwrap();
    CelPolicyLayer::from_config(&config).unwrap()
}

/// Echoes the body; says whether a layer buffered it.
async fn echo(req: Request<Body>) -> Response<Body> {
    let buffered = req.extensions().get::<Payload>().is_some();
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    Response::builder()
        .header("x-buffered", if buffered { "yes" } else { "no" })
        .body(Body::from(bytes))
        .unwrap()
}

const TOOLS: &str = r#"{"tools":[
    {"name":"kubectl-get","description":"read","inputSchema":{"type":"object"}},
    {"name":"kubectl-delete","description":"delete","inputSchema":{"type":"object"}},
    {"name":"list-pods","inputSchema":{"type":"object"}}]}"#;

/// A small MCP server: answers `tools/list` (as an event stream when `?sse` is in the URI)
/// and `tools/call`.
async fn mcp_server(req: Request<Body>) -> Response<Body> {
    let sse = req.uri().query().is_some_and(|q| q.contains("sse"));
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    let message: Value = serde_json::from_slice(&bytes).unwrap();
    let result: Value = match message["method"].as_str() {
        Some("tools/list") => serde_json::from_str(TOOLS).unwrap(),
        _ => json!({"content": [{"type": "text", "text": "called"}]}),
    };
    let response = json!({"jsonrpc": "2.0", "id": message["id"], "result": result}).to_string();
    if sse {
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(format!(
                ": ping\n\nevent: message\ndata: {response}\n\n"
            )))
            .unwrap()
    } else {
        Response::builder()
            .header("content-type", "application/json")
            .header("content-length", response.len())
            .body(Body::from(response))
            .unwrap()
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
        }
    }

    async fn post(
        &self,
        path: &str,
        claims: Option<Value>,
        body: Value,
    ) -> (StatusCode, http::HeaderMap, Bytes) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(claims) = claims {
            request = request.header("x-test-claims", claims.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.bytes().await.unwrap())
    }
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

const SEED_JWT: &str = r#"
policy:
  matchExpressions:
    - 'jwt.role == "admin"'
    - 'jwt.role == "user" && request.path.startsWith("/openai") && request.body.model == "gpt-3.5-turbo"'
"#;

#[tokio::test]
async fn seed_jwt_policy_allows_and_denies_llm_requests() {
    let app = Router::new()
        .route("/openai/v1/chat/completions", post(echo))
        .layer(policy(SEED_JWT))
        .layer(claims_layer());
    let client = Client::new(serve(app).await);
    let path = "/openai/v1/chat/completions";

    let cheap = json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]});
    let (status, headers, body) = client
        .post(path, Some(json!({"role": "user"})), cheap.clone())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json_of(&body),
        cheap,
        "the handler receives the body unchanged"
    );
    assert_eq!(headers["x-buffered"], "yes");

    let (status, _, _) = client
        .post(
            path,
            Some(json!({"role": "admin"})),
            json!({"model": "gpt-4"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, headers, body) = client
        .post(
            path,
            Some(json!({"role": "user"})),
            json!({"model": "gpt-4"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["content-type"], "application/json");
    let error = json_of(&body);
    assert_eq!(error["error"]["type"], "permission_error");
    assert_eq!(error["error"]["code"], "no_rule_matched");
    assert_eq!(error["error"]["message"], "request denied by RBAC policy");

    let (status, _, _) = client.post(path, None, cheap).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no JWT, no access");
}

#[tokio::test]
async fn header_rules_leave_the_body_streaming() {
    let app = Router::new()
        .route("/v1/chat/completions", post(echo))
        .layer(policy(
            r#"policy: {matchExpressions: ['request.headers["x-llm"] in ["openai", "anthropic", "gemini"]']}"#,
        ));
    let addr = serve(app).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");

    let response = http
        .post(&url)
        .header("X-LLM", "anthropic")
        .body("not even json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-buffered"],
        "no",
        "a header rule never reads the body"
    );
    assert_eq!(response.bytes().await.unwrap(), "not even json");

    let response = http
        .post(&url)
        .header("x-llm", "mistral")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "missing header: the rule fails, which denies"
    );
}

const SEED_MCP: &str = r#"
policy:
  matchExpressions:
    - 'mcp.tool.name in ["kubectl-delete", "helm-uninstall"] && jwt.role == "admin"'
    - 'mcp.tool.name in ["kubectl-get", "kubectl-describe", "list-pods"] && jwt.sub != ""'
    - 'mcp.method in ["initialize", "tools/list"]'
"#;

fn call(id: Value, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

#[tokio::test]
async fn mcp_tool_calls_are_checked_and_denials_are_json_rpc_errors() {
    let app = Router::new()
        .route("/mcp", post(mcp_server))
        .layer(policy(SEED_MCP))
        .layer(claims_layer());
    let client = Client::new(serve(app).await);
    let user = || Some(json!({"sub": "alice", "role": "user"}));

    let (status, _, body) = client
        .post("/mcp", user(), call(json!(3), "kubectl-get"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["result"]["content"][0]["text"], "called");

    // The denial is a JSON-RPC error for the request's id, answered with HTTP 200 (an MCP
    // client reports it as the call's error, not a transport failure); the status it stands
    // for is in `error.data.status`.
    let (status, _, body) = client
        .post("/mcp", user(), call(json!("req-9"), "kubectl-delete"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let error = json_of(&body);
    assert_eq!(error["jsonrpc"], "2.0");
    assert_eq!(error["id"], "req-9", "the denial carries the request id");
    assert_eq!(error["error"]["code"], -32003);
    assert_eq!(error["error"]["data"]["status"], 403);
    assert_eq!(error["error"]["data"]["layer"], "rbac");
    assert_eq!(error["error"]["data"]["reason"], "no_rule_matched");
    assert!(error.get("result").is_none());

    let admin = Some(json!({"sub": "root", "role": "admin"}));
    let (status, _, _) = client
        .post("/mcp", admin.clone(), call(json!(4), "kubectl-delete"))
        .await;
    assert_eq!(status, StatusCode::OK);

    // A batch could carry calls past the tool rules: denied, even for an admin.
    let batch = json!([
        call(json!(5), "kubectl-get"),
        call(json!(6), "kubectl-delete")
    ]);
    // No single id to answer: the HTTP status says it.
    let (status, _, body) = client.post("/mcp", admin, batch).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let error = json_of(&body);
    assert_eq!(error["id"], Value::Null);
    assert_eq!(error["error"]["data"]["status"], 403);
    assert_eq!(error["error"]["data"]["reason"], "jsonrpc_batch");
}

#[tokio::test]
async fn case_variants_of_mcp_methods_cannot_dodge_the_rules() {
    // `mcp.method != "tools/call"` would be true for `Tools/Call`, which a server that folds
    // method names runs as a tool call.
    let app = Router::new()
        .route("/mcp", post(mcp_server))
        .layer(policy(
            "policy:\n  matchExpressions:\n    - 'mcp.method != \"tools/call\"'\n",
        ))
        .layer(claims_layer());
    let client = Client::new(serve(app).await);
    for method in ["Tools/Call", "TOOLS/CALL", " tools/call"] {
        let mut request = call(json!(7), "kubectl-delete");
        request["method"] = json!(method);
        let (status, _, body) = client.post("/mcp", None, request).await;
        assert_eq!(status, StatusCode::OK, "{method}");
        let error = json_of(&body);
        assert_eq!(error["id"], 7, "{method}");
        assert_eq!(error["error"]["code"], -32600);
        assert_eq!(error["error"]["data"]["status"], 400, "{method}");
        assert_eq!(error["error"]["data"]["reason"], "jsonrpc_method_case");
    }
    let list = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"});
    let (status, _, _) = client.post("/mcp", None, list).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = client.post("/mcp", None, call(json!(9), "x")).await;
    assert_eq!(status, StatusCode::OK);
    let error = json_of(&body);
    assert_eq!(error["id"], 9);
    assert_eq!(error["error"]["data"]["status"], 403);
}

fn tool_names(result: &Value) -> Vec<&str> {
    result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn tools_list_results_hide_tools_the_caller_cannot_call() {
    let app = Router::new()
        .route("/mcp", post(mcp_server))
        .layer(policy(SEED_MCP))
        .layer(claims_layer());
    let client = Client::new(serve(app).await);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});

    let (status, headers, body) = client
        .post(
            "/mcp",
            Some(json!({"sub": "a", "role": "user"})),
            list.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers
            .get("content-length")
            .is_none_or(|l| l.to_str().unwrap() == body.len().to_string())
    );
    let response = json_of(&body);
    assert_eq!(response["id"], 1);
    assert_eq!(
        tool_names(&response["result"]),
        ["kubectl-get", "list-pods"]
    );

    let (_, _, body) = client
        .post(
            "/mcp",
            Some(json!({"sub": "r", "role": "admin"})),
            list.clone(),
        )
        .await;
    assert_eq!(
        tool_names(&json_of(&body)["result"]),
        ["kubectl-get", "kubectl-delete", "list-pods"]
    );

    // Streamed responses are filtered event by event; other events pass unchanged.
    let (status, headers, body) = client
        .post("/mcp?sse", Some(json!({"sub": "a", "role": "user"})), list)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.starts_with(": ping\n\n"), "{text}");
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    assert_eq!(
        tool_names(&json_of(data.as_bytes())["result"]),
        ["kubectl-get", "list-pods"]
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_rejected_before_the_handler() {
    let app = Router::new()
        .route("/v1/chat/completions", post(echo))
        .layer(policy(SEED_JWT).body_limit(BodyLimit::new(64)))
        .layer(claims_layer());
    let client = Client::new(serve(app).await);
    let big = json!({"model": "gpt-3.5-turbo", "padding": "x".repeat(200)});
    let (status, _, body) = client
        .post("/v1/chat/completions", Some(json!({"role": "admin"})), big)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(&body)["error"]["code"], "body_too_large");
}

type Headers = Vec<(&'static str, &'static str)>;

/// A `tools/list` server answering with `headers` and `body` (the request id replaces `ID`).
async fn list_server(headers: Headers, body: &'static str) -> SocketAddr {
    let app = Router::new()
        .route(
            "/mcp",
            post(move |bytes: Bytes| {
                let headers = headers.clone();
                async move {
                    let request: Value = serde_json::from_slice(&bytes).unwrap();
                    let body = body.replace("ID", &request["id"].to_string());
                    let mut response = Response::builder();
                    for (name, value) in headers {
                        response = response.header(name, value);
                    }
                    response.body(Body::from(body)).unwrap()
                }
            }),
        )
        .layer(policy(SEED_MCP))
        .layer(claims_layer());
    serve(app).await
}

#[tokio::test]
async fn tools_list_answers_that_cannot_be_filtered_become_502_errors() {
    const JSON: (&str, &str) = ("content-type", "application/json");
    let listed = r#"{"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"kubectl-delete"},{"name":"list-pods"}]}}"#;
    let cases: Vec<(&str, Headers, &'static str)> = vec![
        (
            "not JSON",
            vec![JSON],
            "{\"tools\": [{\"name\": \"kubectl-delete\"}",
        ),
        (
            "not JSON-RPC",
            vec![JSON],
            r#"{"tools":[{"name":"kubectl-delete"}]}"#,
        ),
        (
            "gzip",
            vec![JSON, ("content-encoding", "gzip")],
            r#"{"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"kubectl-delete"}]}}"#,
        ),
        (
            "text/plain",
            vec![("content-type", "text/plain")],
            r#"{"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"kubectl-delete"}]}}"#,
        ),
        (
            "untyped",
            vec![],
            r#"{"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"kubectl-delete"}]}}"#,
        ),
        (
            "tools not a list",
            vec![JSON],
            r#"{"jsonrpc":"2.0","id":ID,"result":{"tools":{"name":"kubectl-delete"}}}"#,
        ),
        (
            "a nameless tool",
            vec![JSON],
            r#"{"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"list-pods"},{"name":7}]}}"#,
        ),
        (
            "no tools",
            vec![JSON],
            r#"{"jsonrpc":"2.0","id":ID,"result":{}}"#,
        ),
    ];
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"});
    let user = json!({"sub": "a", "role": "user"});
    for (case, headers, body) in cases {
        let client = Client::new(list_server(headers, body).await);
        // A JSON-RPC error for the request's id (HTTP 200, see `agentgw_core::rejection`),
        // standing for a 502.
        let (status, headers, bytes) = client.post("/mcp", Some(user.clone()), list.clone()).await;
        assert_eq!(status, StatusCode::OK, "{case}");
        assert_eq!(headers["content-type"], "application/json", "{case}");
        let error = json_of(&bytes);
        assert_eq!(error["id"], 4, "{case}");
        assert_eq!(error["error"]["code"], -32603, "{case}");
        assert_eq!(error["error"]["data"]["status"], 502, "{case}");
        assert!(error.get("result").is_none(), "{case}");
        assert!(
            !String::from_utf8_lossy(&bytes).contains("kubectl-delete"),
            "{case}"
        );
    }

    // Filtered: JSON with a charset, an answer whose id is the request's id as a string (a
    // lenient client's answer to request 4), and an empty untyped acknowledgement.
    let client = Client::new(
        list_server(
            vec![("content-type", "application/json; charset=utf-8")],
            listed,
        )
        .await,
    );
    let (status, _, bytes) = client.post("/mcp", Some(user.clone()), list.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tool_names(&json_of(&bytes)["result"]), ["list-pods"]);
    let stringly = r#"{"jsonrpc":"2.0","id":"4","result":{"tools":[{"name":"kubectl-delete"},{"name":"list-pods"}]}}"#;
    let client = Client::new(list_server(vec![JSON], stringly).await);
    let (_, _, bytes) = client.post("/mcp", Some(user.clone()), list.clone()).await;
    assert_eq!(tool_names(&json_of(&bytes)["result"]), ["list-pods"]);
    let client = Client::new(list_server(vec![], "").await);
    let (status, _, bytes) = client.post("/mcp", Some(user.clone()), list.clone()).await;
    assert_eq!((status, bytes.len()), (StatusCode::OK, 0));
}

#[tokio::test]
async fn streamed_tools_list_events_that_cannot_be_filtered_are_not_forwarded() {
    let body = concat!(
        "event: other\ndata: {\"jsonrpc\":\"2.0\",\"id\":ID,\"result\":{\"tools\":[{\"name\":\"kubectl-delete\"},{\"name\":\"list-pods\"}]}}\n\n",
        "data: {\"tools\":[{\"name\":\"kubectl-delete\"}]\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":ID,\"result\":{\"tools\":\"kubectl-delete\"}}\n\n",
    );
    let client = Client::new(list_server(vec![("content-type", "text/event-stream")], body).await);
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"});
    let (status, _, bytes) = client
        .post("/mcp", Some(json!({"sub": "a", "role": "user"})), list)
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(!text.contains("kubectl-delete"), "{text}");
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(|d| json_of(d.as_bytes()))
        .collect();
    assert_eq!(data.len(), 2, "the unparsable event is dropped: {text}");
    assert_eq!(
        tool_names(&data[0]["result"]),
        ["list-pods"],
        "every event type is filtered"
    );
    assert_eq!(
        (data[1]["id"].as_i64(), data[1]["error"]["code"].as_i64()),
        (Some(4), Some(-32603))
    );
}

/// A policy built with the config builders and compiled for the kind of route it guards, as
/// the gateway does: `from_policy` takes the compiled policy.
#[tokio::test]
async fn a_policy_built_in_code_and_compiled_for_an_mcp_route() {
    use agentgw_core::ConfigError;
    use agentgw_core::rejection::RouteKind;
    use agentgw_rbac::{CelPolicy, CompileOptions, PolicyConfig, RuleConfig};

    let config = RbacConfig::default().policy(
        PolicyConfig::default()
            .deny([RuleConfig::default()
                .name("no-shell")
                .expression(r#"mcp.tool.name == "shell""#)])
            .require(["has(jwt.sub)"]),
    );
    // On an LLM route a rule on MCP tools can never apply: a load-time error naming the rule.
    let err =
        CelPolicy::compile(&config, &CompileOptions::new().route(RouteKind::Llm)).unwrap_err();
    assert_eq!(err.path(), "policy.deny[0]");
    assert!(
        err.reason().contains("where no MCP tool call exists"),
        "{err}"
    );

    let policy = CelPolicy::compile(&config, &CompileOptions::new().route(RouteKind::Mcp)).unwrap();
    let app = Router::new()
        .route("/mcp", post(mcp_server))
        .layer(CelPolicyLayer::from_policy(policy).body_limit(BodyLimit::new(4096)))
        .layer(claims_layer());
    let client = Client::new(serve(app).await);
    let alice = || Some(json!({"sub": "alice"}));

    let (status, _, body) = client.post("/mcp", alice(), call(json!(1), "ls")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["result"]["content"][0]["text"], "called");

    let (status, _, body) = client.post("/mcp", alice(), call(json!(2), "shell")).await;
    assert_eq!(status, StatusCode::OK);
    let error = json_of(&body);
    assert_eq!(error["id"], 2);
    assert_eq!(error["error"]["data"]["status"], 403);
    assert_eq!(error["error"]["data"]["reason"], "no-shell");

    // Anonymous: the requirement is not met.
    let (_, _, body) = client.post("/mcp", None, call(json!(3), "ls")).await;
    assert_eq!(json_of(&body)["error"]["data"]["reason"], "require[0]");

    // Over the body limit: 413, before the body (and so its id) is read.
    let big = call(json!(4), &"x".repeat(8192));
    let (status, _, _) = client.post("/mcp", alice(), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn a_rule_built_without_an_expression_names_its_path() {
    use agentgw_core::ConfigError;
    use agentgw_rbac::{Error, PolicyConfig, RuleConfig};

    let config = RbacConfig::default().policy(
        PolicyConfig::default()
            .allow(["true"])
            .require([RuleConfig::default()]),
    );
    let err = CelPolicyLayer::from_config(&config).unwrap_err();
    assert!(matches!(err, Error::Compile { .. }), "{err}");
    assert_eq!(err.path(), "policy.require[0]");
    assert_eq!(
        err.to_string(),
        format!("policy.require[0]: {}", err.reason())
    );
}
