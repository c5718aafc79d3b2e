//! The gateway's stdio backend (`backend: {stdio: ...}`) with a real stdio MCP server built on
//! the official Rust SDK (`mcp-stdio-probe`, a binary of this crate), driven over HTTP by
//! rmcp's Streamable HTTP client and by plain JSON-RPC POSTs. Every sandbox limit is checked
//! both ways: what it must stop is stopped, what it allows still works.

use std::net::TcpListener;

use agentgw_gateway::stack::Stack;
use agentgw_gateway::{Config, RunningGateway};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

use crate::common::loopback;

const PROBE: &str = env!("CARGO_BIN_EXE_mcp-stdio-probe");

/// One MCP route at `/PREFIX` for the probe, with `limits` as its `sandbox.limits` (YAML
/// flow mapping) and `stdio` extra keys.
fn route(prefix: &str, limits: &str, stdio: &str) -> String {
    format!(
        "  - name: {prefix}\n    pathPrefix: /{prefix}\n    backend:\n      stdio: {{command: \"{PROBE}\"{stdio}}}\n    policies:\n      ai:\n        toolSecurity:\n          sandbox:\n            mode: strict\n            limits: {limits}\n"
    )
}

fn config(routes: &[String]) -> Config {
    let text = format!("routes:\n{}", routes.concat());
    let mut config = Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.listen = loopback();
    config
}

async fn gateway(routes: &[String]) -> RunningGateway {
    agentgw_gateway::start(config(routes), None)
        .await
        .expect("gateway starts")
}

async fn client(gateway: &RunningGateway, prefix: &str) -> RunningService<RoleClient, ()> {
    let uri = format!("http://{}/{prefix}", gateway.addr());
    ().serve(StreamableHttpClientTransport::from_uri(uri))
        .await
        .expect("initialize through the gateway")
}

/// The text of a tool's result, or the JSON-RPC error of the call.
async fn call<H: rmcp::ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &'static str,
    arguments: Value,
) -> Result<String, ServiceError> {
    let Value::Object(arguments) = arguments else {
        panic!("arguments are an object");
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
        .await?;
    let content = serde_json::to_value(&result.content).unwrap();
    Ok(content[0]["text"].as_str().unwrap_or_default().to_owned())
}

fn error_code(error: &ServiceError) -> i32 {
    match error {
        ServiceError::McpError(data) => data.code.0,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

#[tokio::test]
async fn sockets_are_refused_without_network_access_and_work_with_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let gw = gateway(&[
        route("open", "{networkAccess: true}", ""),
        route("closed", "{networkAccess: false}", ""),
    ])
    .await;

    let open = client(&gw, "open").await;
    assert_eq!(
        call(&open, "connect", json!({"port": port})).await.unwrap(),
        "connected"
    );

    let closed = client(&gw, "closed").await;
    let refused = call(&closed, "connect", json!({"port": port}))
        .await
        .unwrap();
    assert!(refused.starts_with("error: "), "{refused}");
    assert!(refused.contains("Permission denied"), "{refused}");
    // The server itself works: only its sockets are refused.
    assert_eq!(
        call(&closed, "echo", json!({"text": "hi"})).await.unwrap(),
        "hi"
    );
}

#[tokio::test]
async fn files_are_confined_to_allowed_paths_and_read_only_means_no_writes() {
    let inside = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(inside.path().join("notes.txt"), "inside").unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside").unwrap();
    let allowed = inside.path().display().to_string();
    let gw = gateway(&[
        route(
            "ro",
            &format!("{{fileSystemAccess: {{readOnly: true, allowedPaths: [\"{allowed}\"]}}}}"),
            "",
        ),
        route(
            "rw",
            &format!("{{fileSystemAccess: {{readOnly: false, allowedPaths: [\"{allowed}\"]}}}}"),
            "",
        ),
        route("readonly", "{fileSystemAccess: readOnly}", ""),
    ])
    .await;
    let path = |dir: &tempfile::TempDir, name: &str| dir.path().join(name).display().to_string();

    let ro = client(&gw, "ro").await;
    let read = |client, p: String| call(client, "read-file", json!({"path": p}));
    let write = |client, p: String| call(client, "write-file", json!({"path": p, "text": "x"}));
    assert_eq!(
        read(&ro, path(&inside, "notes.txt")).await.unwrap(),
        "inside"
    );
    let denied = read(&ro, path(&outside, "secret.txt")).await.unwrap();
    assert!(denied.contains("Permission denied"), "{denied}");
    let denied = write(&ro, path(&inside, "new.txt")).await.unwrap();
    assert!(denied.contains("Permission denied"), "{denied}");
    assert!(!inside.path().join("new.txt").exists());

    let rw = client(&gw, "rw").await;
    assert_eq!(
        write(&rw, path(&inside, "new.txt")).await.unwrap(),
        "written"
    );
    assert_eq!(
        std::fs::read_to_string(inside.path().join("new.txt")).unwrap(),
        "x"
    );
    let denied = write(&rw, path(&outside, "new.txt")).await.unwrap();
    assert!(denied.contains("Permission denied"), "{denied}");
    let denied = read(&rw, path(&outside, "secret.txt")).await.unwrap();
    assert!(denied.contains("Permission denied"), "{denied}");

    // `readOnly` alone: everything readable, nothing writable.
    let readonly = client(&gw, "readonly").await;
    assert_eq!(
        read(&readonly, path(&outside, "secret.txt")).await.unwrap(),
        "outside"
    );
    let denied = write(&readonly, path(&outside, "other.txt")).await.unwrap();
    assert!(denied.contains("Permission denied"), "{denied}");
    assert!(!outside.path().join("other.txt").exists());
}

#[tokio::test]
async fn an_answer_over_max_output_size_fails_and_ends_the_session() {
    let gw = gateway(&[route("big", "{maxOutputSize: 16Ki}", "")]).await;
    // rmcp's client: the error reaches the caller as the error of that call.
    let client = client(&gw, "big").await;
    let small = call(&client, "big-output", json!({"bytes": 1000}))
        .await
        .unwrap();
    assert_eq!(small.len(), 1000);
    let error = call(&client, "big-output", json!({"bytes": 100_000}))
        .await
        .expect_err("over maxOutputSize");
    assert_eq!(error_code(&error), -32013, "{error}");

    // Plain JSON-RPC: the process is ended with its session.
    let url = format!("http://{}/big", gw.addr());
    let http = reqwest::Client::new();
    let session = initialize(&http, &url).await.expect("a session");
    let post = |id: u32, bytes: u32| {
        http.post(&url)
            .header("mcp-session-id", &session)
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "big-output", "arguments": {"bytes": bytes}}}))
            .send()
    };
    let too_big: Value = post(2, 100_000).await.unwrap().json().await.unwrap();
    assert_eq!(too_big["id"], 2, "{too_big}");
    assert_eq!(too_big["error"]["code"], -32013, "{too_big}");
    assert_eq!(post(3, 10).await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_call_over_max_execution_time_fails_and_ends_the_session() {
    let gw = gateway(&[route("slow", "{maxExecutionTime: 1s}", "")]).await;
    let url = format!("http://{}/slow", gw.addr());
    let http = reqwest::Client::new();
    let session = initialize(&http, &url).await.expect("a session");
    let post = |body: Value| {
        http.post(&url)
            .header("mcp-session-id", &session)
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
    };
    let sleep = |id: u32, ms: u32| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "sleep", "arguments": {"ms": ms}}})
    };
    let quick: Value = post(sleep(2, 10)).await.unwrap().json().await.unwrap();
    assert_eq!(quick["result"]["content"][0]["text"], "slept", "{quick}");

    let slow: Value = post(sleep(3, 30_000)).await.unwrap().json().await.unwrap();
    assert_eq!(slow["id"], 3, "{slow}");
    assert_eq!(slow["error"]["code"], -32004, "{slow}");
    // The process is killed with its session. The tool security layer in front enforces the
    // same limit and may answer first, so a request sent at once may still find the session
    // (and fail when it is ended); the one after is told to initialize again.
    let next = post(sleep(4, 30_000)).await.unwrap();
    if next.status() != 404 {
        let next: Value = next.json().await.unwrap();
        assert_eq!(next["error"]["data"]["reason"], "server-exited", "{next}");
    }
    assert_eq!(post(sleep(5, 10)).await.unwrap().status(), 404);
}

/// `initialize` over plain JSON-RPC (as an MCP client does it): the session id, or the
/// JSON-RPC error.
async fn initialize(http: &reqwest::Client, url: &str) -> Result<String, Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"}}});
    let res = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    let session = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let answer: Value = res.json().await.unwrap();
    match session {
        Some(session) if answer.get("result").is_some() => {
            let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            let res = http
                .post(url)
                .header("mcp-session-id", &session)
                .json(&initialized)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 202);
            Ok(session)
        }
        _ => Err(answer),
    }
}

#[tokio::test]
async fn sessions_are_limited_and_deleting_one_frees_its_place() {
    let gw = gateway(&[route("one", "{}", ", maxSessions: 1")]).await;
    let url = format!("http://{}/one", gw.addr());
    let http = reqwest::Client::new();
    let first = initialize(&http, &url).await.expect("the first session");
    let refused = initialize(&http, &url).await.expect_err("over maxSessions");
    assert_eq!(
        refused["error"]["data"]["reason"], "maxSessions",
        "{refused}"
    );
    assert_eq!(refused["error"]["data"]["status"], 503, "{refused}");

    let deleted = http
        .delete(&url)
        .header("mcp-session-id", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204, "{:?}", deleted.text().await);
    let ended = http
        .post(&url)
        .header("mcp-session-id", &first)
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 404);
    initialize(&http, &url)
        .await
        .expect("a session once the first is deleted");
}

#[tokio::test]
async fn resource_limits_apply_to_the_server_process() {
    let gw = gateway(&[
        route(
            "limited",
            "{maxOpenFiles: 64, maxCpuTime: 30s, maxMemory: 4Gi}",
            "",
        ),
        route("unlimited", "{}", ""),
    ])
    .await;
    let limited = client(&gw, "limited").await;
    let limits = call(&limited, "limits", json!({})).await.unwrap();
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(
        line("Max open files"),
        "Max open files 64 64 files",
        "{limits}"
    );
    assert_eq!(
        line("Max cpu time"),
        "Max cpu time 30 30 seconds",
        "{limits}"
    );
    assert_eq!(
        line("Max address space"),
        format!("Max address space {0} {0} bytes", 4u64 << 30),
        "{limits}"
    );
    let error = call(&limited, "open-files", json!({"count": 100}))
        .await
        .unwrap();
    assert!(error.contains("Too many open files"), "{error}");
    assert_eq!(
        call(&limited, "open-files", json!({"count": 10}))
            .await
            .unwrap(),
        "opened 10"
    );

    let unlimited = client(&gw, "unlimited").await;
    assert_eq!(
        call(&unlimited, "open-files", json!({"count": 100}))
            .await
            .unwrap(),
        "opened 100"
    );
}

/// An MCP client that hands over the progress messages it receives.
struct ProgressListener(tokio::sync::mpsc::UnboundedSender<Option<String>>);

impl rmcp::ClientHandler for ProgressListener {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        let _ = self.0.send(params.message);
    }
}

#[tokio::test]
async fn the_servers_notifications_reach_the_client_through_the_gateway() {
    let gw = gateway(&[route("chatty", "{networkAccess: false}", "")]).await;
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let uri = format!("http://{}/chatty", gw.addr());
    let client = ProgressListener(sender)
        .serve(StreamableHttpClientTransport::from_uri(uri))
        .await
        .expect("initialize through the gateway");
    // The client opens its stream (GET) on its own after initializing; a message the server
    // sends before that has nowhere to go, so ask until one arrives.
    let mut heard = None;
    for _ in 0..50 {
        let sent = call(&client, "progress", json!({"text": "from the probe"}))
            .await
            .unwrap();
        assert_eq!(sent, "sent");
        let wait = std::time::Duration::from_millis(200);
        if let Ok(message) = tokio::time::timeout(wait, received.recv()).await {
            heard = message;
            break;
        }
    }
    assert_eq!(heard, Some(Some("from the probe".to_owned())));
}

#[test]
fn stdio_keys_warn_on_http_upstreams_only_and_bad_paths_fail_with_their_path() {
    let http_route = "  - name: http\n    pathPrefix: /http\n    backend: {url: \"http://127.0.0.1:9\"}\n    kind: mcp\n    policies:\n      ai:\n        toolSecurity:\n          sandbox:\n            limits: {networkAccess: false, maxExecutionTime: 5s}\n".to_owned();
    let stdio_route = route("local", "{networkAccess: false, maxExecutionTime: 5s}", "");
    let stack = Stack::build(&config(&[http_route, stdio_route])).unwrap();
    let paths: Vec<&str> = stack.warnings().iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        ["routes[0].policies.ai.toolSecurity.sandbox.limits.networkAccess"]
    );
    assert!(stack.warnings()[0].message.contains("stdio"));

    // Permissive mode runs the server unrestricted, and says so.
    let permissive =
        route("local", "{networkAccess: false}", "").replace("mode: strict", "mode: permissive");
    let stack = Stack::build(&config(&[permissive])).unwrap();
    let paths: Vec<&str> = stack.warnings().iter().map(|w| w.path.as_str()).collect();
    assert_eq!(paths, ["routes[0].policies.ai.toolSecurity.sandbox.mode"]);

    let missing = route(
        "local",
        "{fileSystemAccess: {allowedPaths: [/no/such/dir]}}",
        "",
    );
    let errors = Stack::build(&config(&[missing]))
        .err()
        .expect("a missing path");
    assert!(
        errors.has_path(
            "routes[0].policies.ai.toolSecurity.sandbox.limits.fileSystemAccess.allowedPaths[0]"
        ),
        "{errors}"
    );
    let text = "routes:\n  - name: x\n    pathPrefix: /x\n    backend:\n      stdio: {command: agentgw-no-such-server}\n";
    let errors = Stack::build(&Config::from_yaml(text).unwrap())
        .err()
        .expect("no such program");
    assert!(
        errors.has_path("routes[0].backend.stdio.command"),
        "{errors}"
    );
}

/// `agentgw pin` reaches a stdio route's server the way the gateway does (started in the
/// route's sandbox) and pins its tools; a gateway loading the file passes them, and withholds
/// a tool once its pin no longer matches.
#[tokio::test]
async fn a_stdio_routes_tools_are_pinned_and_the_pins_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let pins_path = dir.path().join("pins.yaml");
    let pinning = format!(
        "          pinning:\n            file: {}\n            reloadInterval: 0s\n",
        pins_path.display()
    );
    let text = route("probe", "{networkAccess: false}", "").replace(
        "          sandbox:\n",
        &format!("{pinning}          sandbox:\n"),
    );
    let config = config(std::slice::from_ref(&text));

    let report = agentgw_gateway::pin::pin(&config, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.path, pins_path);
    for tool in ["echo", "connect", "read-file", "write-file"] {
        assert!(report.pins.get("probe", tool).is_some(), "{tool} pinned");
    }

    let listed = |gw: &RunningGateway| {
        let uri = format!("http://{}/probe", gw.addr());
        async move {
            let client = ().serve(StreamableHttpClientTransport::from_uri(uri)).await.unwrap();
            let tools = client.list_all_tools().await.unwrap();
            tools
                .iter()
                .map(|t| serde_json::to_value(t).unwrap())
                .collect::<Vec<Value>>()
        }
    };
    let names = |tools: &[Value]| -> Vec<String> {
        let mut names: Vec<String> = tools
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let gw = agentgw_gateway::start(config.clone(), None).await.unwrap();
    let definitions = listed(&gw).await;
    let pinned: Vec<String> = report
        .pins
        .tools("probe")
        .map(|(n, _)| n.to_owned())
        .collect();
    assert_eq!(names(&definitions), pinned);
    drop(gw);

    // A reviewed file where `echo`'s pin is of another definition: the gateway withholds it
    // and passes the rest.
    let mut changed = definitions.clone();
    for tool in &mut changed {
        if tool["name"] == "echo" {
            tool["description"] = json!("Returns the text, and more.");
        }
    }
    let mut pins = agentgw_toolsec::pins::PinFile::new();
    pins.pin_upstream("probe", &changed);
    std::fs::write(&pins_path, pins.to_yaml()).unwrap();
    let gw = agentgw_gateway::start(config, None).await.unwrap();
    let expected: Vec<String> = pinned.into_iter().filter(|n| n != "echo").collect();
    assert_eq!(names(&listed(&gw).await), expected);
}
