//! Reviewed tool pins over real sockets: `agentgw pin` lists the MCP mocks (stateless JSON, and
//! a session answering with event streams) and writes the pin file; gateways loading it pass
//! the pinned tools, withhold a tool whose definition differs from its pin and a tool the file
//! does not pin, and a restarted gateway still does (nothing is re-pinned from traffic).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Output;

use agentgw_gateway::{Config, RunningGateway};
use agentgw_test_support::{self as mock, McpOptions, MockServer, TOOL_NAMES};
use agentgw_toolsec::pins::PinFile;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_agentgw");

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A configuration with MCP routes `tools` (stateless JSON mock) and `k8s` (session mock with
/// event streams), tool security following the pin file `pins`.
fn config_yaml(tools_url: &str, k8s_url: &str, pins: &Path) -> String {
    format!(
        r#"
policies:
  ai:
    toolSecurity:
      pinning:
        file: {pins}
        reloadInterval: 0s
routes:
  - name: tools
    pathPrefix: /tools
    kind: mcp
    backend: {{url: "{tools_url}/mcp"}}
  - name: k8s
    pathPrefix: /k8s
    kind: mcp
    backend: {{url: "{k8s_url}/mcp"}}
"#,
        pins = pins.display(),
    )
}

async fn agentgw_pin(config: &Path, extra: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("pin")
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn gateway(yaml: &str) -> RunningGateway {
    let mut config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"));
    config.listen = loopback();
    agentgw_gateway::start(config, None)
        .await
        .expect("gateway starts")
}

/// Sends one JSON-RPC request to the stateless route `/tools` and returns the answer.
async fn rpc(gw: &RunningGateway, message: Value) -> Value {
    reqwest::Client::new()
        .post(format!("http://{}/tools", gw.addr()))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(message.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|text| serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}")))
        .unwrap()
}

/// Sends one JSON-RPC request straight to a stateless mock.
async fn rpc_to(mock: &MockServer, message: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{}/mcp", mock.url()))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(message.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|text| serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}")))
        .unwrap()
}

async fn listed(gw: &RunningGateway) -> Vec<String> {
    let answer = rpc(
        gw,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn call_weather(gw: &RunningGateway) -> Value {
    rpc(
        gw,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "get-weather", "arguments": {"city": "Oslo"}}}),
    )
    .await
}

struct Mocks {
    tools: MockServer,
    k8s: MockServer,
}

async fn mocks() -> Mocks {
    Mocks {
        tools: mock::mcp(loopback(), McpOptions::default()).await.unwrap(),
        k8s: mock::mcp(
            loopback(),
            McpOptions {
                sse: true,
                require_session: true,
            },
        )
        .await
        .unwrap(),
    }
}

#[tokio::test]
async fn the_pin_file_is_written_from_the_upstreams_and_enforced_by_every_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let pins_path = dir.path().join("pins.yaml");
    let config_path = dir.path().join("agentgw.yaml");
    let mocks = mocks().await;
    let yaml = config_yaml(&mocks.tools.url(), &mocks.k8s.url(), &pins_path);
    std::fs::write(&config_path, &yaml).unwrap();

    // `agentgw pin` lists both upstreams (JSON, and a session answering with event streams).
    let out = agentgw_pin(&config_path, &[]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    assert!(stdout.contains("+ k8s/get-weather: new tool"), "{stdout}");
    assert!(stdout.contains("+ tools/read-file: new tool"), "{stdout}");
    assert!(stdout.contains("(12 tools, 12 changes)"), "{stdout}");
    let written = std::fs::read_to_string(&pins_path).unwrap();
    let pins = PinFile::from_yaml(&written).unwrap();
    for upstream in ["k8s", "tools"] {
        let names: Vec<&str> = pins.tools(upstream).map(|(name, _)| name).collect();
        let mut expected = TOOL_NAMES.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }
    assert_eq!(
        pins.get("tools", "get-weather").unwrap().description(),
        Some("Get the current weather for a city.")
    );
    // Nothing changed upstream: the same file, no changes.
    let again = agentgw_pin(&config_path, &[]).await;
    assert!(
        text(&again.stdout).contains("(12 tools, 0 changes)"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(std::fs::read_to_string(&pins_path).unwrap(), written);

    // A gateway loading the file passes the pinned tools (the poisoned one is still withheld by
    // the definition checks) and their calls.
    let gw = gateway(&yaml).await;
    let mut expected: Vec<String> = TOOL_NAMES
        .iter()
        .filter(|name| **name != "add-numbers")
        .map(|name| (*name).to_owned())
        .collect();
    assert_eq!(listed(&gw).await, expected);
    let answer = call_weather(&gw).await;
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Weather in Oslo")),
        "{answer}"
    );
    gw.shutdown().await;

    // The pins are the digests the layer computes of what the upstream lists.
    let listing = rpc_to(
        &mocks.tools,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    let upstream_tools = listing["result"]["tools"].as_array().unwrap().clone();
    let mut same = PinFile::new();
    same.pin_upstream("k8s", &upstream_tools);
    same.pin_upstream("tools", &upstream_tools);
    assert_eq!(same, pins);

    // The reviewed file now differs from what the upstream serves: `get-weather` was reviewed
    // with another definition (the upstream changed it since: a rug pull) and `read-file` is
    // not pinned.
    let mut reviewed_tools = upstream_tools.clone();
    reviewed_tools.retain(|tool| tool["name"] != "read-file");
    for tool in &mut reviewed_tools {
        if tool["name"] == "get-weather" {
            tool["description"] = json!("Get the weather.");
        }
    }
    let mut reviewed = PinFile::new();
    reviewed.pin_upstream("k8s", &upstream_tools);
    reviewed.pin_upstream("tools", &reviewed_tools);
    std::fs::write(&pins_path, reviewed.to_yaml()).unwrap();

    // Every gateway started with it, first or restarted, withholds both and refuses the call:
    // the changed definition is never pinned from traffic.
    expected.retain(|name| name != "get-weather" && name != "read-file");
    for _ in 0..2 {
        let gw = gateway(&yaml).await;
        assert_eq!(listed(&gw).await, expected);
        assert_eq!(
            listed(&gw).await,
            expected,
            "still withheld at the next listing"
        );
        let answer = call_weather(&gw).await;
        assert_eq!(
            answer["error"]["data"]["reason"], "definition-changed",
            "{answer}"
        );
        gw.shutdown().await;
    }
    let before = mocks
        .tools
        .received_requests()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("tools/call"))
        .count();
    assert_eq!(
        before, 1,
        "only the call of the first gateway reached the upstream"
    );

    // `agentgw pin` shows what the new review would change back.
    let out = agentgw_pin(&config_path, &[]).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("~ tools/get-weather: definition changed"),
        "{stdout}"
    );
    assert!(stdout.contains("+ tools/read-file: new tool"), "{stdout}");
}

#[tokio::test]
async fn an_unreachable_upstream_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pins_path = dir.path().join("pins.yaml");
    let config_path = dir.path().join("agentgw.yaml");
    let mocks = mocks().await;
    let closed = {
        let listener = TcpListener::bind(loopback()).unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    std::fs::write(
        &config_path,
        config_yaml(&mocks.tools.url(), &closed, &pins_path),
    )
    .unwrap();
    let out = agentgw_pin(&config_path, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("route k8s: "), "{stderr}");
    assert!(stderr.contains("no file written"), "{stderr}");
    assert!(!pins_path.exists());

    // `--output` picks another file; without a configured file it is required.
    let other = dir.path().join("other.yaml");
    let learned = config_yaml(&mocks.tools.url(), &mocks.k8s.url(), &pins_path).replace(
        &format!(
            "        file: {}\n        reloadInterval: 0s\n",
            pins_path.display()
        ),
        "        maxTools: 100\n",
    );
    std::fs::write(&config_path, learned).unwrap();
    let out = agentgw_pin(&config_path, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("pass --output PATH"),
        "{}",
        text(&out.stderr)
    );
    let out = agentgw_pin(&config_path, &["--output", other.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        PinFile::load(&other)
            .unwrap()
            .get("k8s", "list-pods")
            .is_some()
    );
}
