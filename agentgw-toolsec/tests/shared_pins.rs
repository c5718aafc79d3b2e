//! Pins shared by replicas through a real Redis (`pinning.redis`, feature `redis`): each test
//! starts its own `redis-server` on a free loopback port, and replicas are separate servers on
//! 127.0.0.1, each with its own layer, in front of one MCP server (rmcp, event streams), used by
//! real rmcp clients.
//!
//! Needs `redis-server` on the `PATH` (Debian: `apt-get install redis-server`).

#![cfg(feature = "redis")]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use agentgw_core::audit::MemorySink;
use agentgw_toolsec::pins::ToolPin;
use common::{
    BENIGN, Client, ServerState, call, client, layer, mcp_service, rpc_error, tool_names,
};
use redis::Commands as _;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use serde_json::{Value, json};

/// A `redis-server` of this test, stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::start_on(port)
    }

    fn start_on(port: u16) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): the shared pin tests need it on the PATH \
                     (Debian: apt-get install redis-server)"
                )
            });
        let redis = Redis {
            child,
            port,
            _dir: dir,
        };
        // Wait until it answers (it starts in milliseconds; the bound is only against a hang).
        for _ in 0..500 {
            if redis.connection().is_some() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn connection(&self) -> Option<redis::Connection> {
        let mut connection = redis::Client::open(self.url())
            .ok()?
            .get_connection()
            .ok()?;
        redis::cmd("PING").query::<String>(&mut connection).ok()?;
        Some(connection)
    }

    /// The shared pins of upstream `default` under `prefix`.
    fn pins(&self, prefix: &str) -> std::collections::HashMap<String, String> {
        self.connection()
            .expect("redis answers")
            .hgetall(format!("{prefix}default"))
            .unwrap()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One replica: its own layer (from `yaml`) in front of its own rmcp server over the shared
/// upstream `state`, on its own port.
struct Replica {
    url: String,
    audit: MemorySink,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn replica(state: &ServerState, yaml: &str) -> Replica {
    let audit = MemorySink::default();
    let layer = layer(yaml).audit_sink(Arc::new(audit.clone()));
    let service = mcp_service(state.clone(), StreamableHttpServerConfig::default());
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Replica { url, audit, task }
}

fn config(redis: &Redis, prefix: &str) -> String {
    format!(
        "pinning:\n  redis: {{url: \"{}\", keyPrefix: \"{prefix}\", timeout: 2s}}\n",
        redis.url()
    )
}

fn definition(state: &ServerState, name: &str) -> Value {
    state
        .tools
        .lock()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["name"] == name)
        .cloned()
        .unwrap()
}

async fn weather(client: &Client) -> Result<String, String> {
    call(client, "get-weather", json!({"city": "Oslo"}))
        .await
        .map(|result| common::first_text(&result))
        .map_err(|error| {
            let data = rpc_error(error).data.unwrap_or_default();
            data["reason"].as_str().unwrap_or_default().to_owned()
        })
}

/// Waits until the claims of a first listing are in Redis (they are written right after it).
async fn wait_for_pins(redis: &Redis, prefix: &str, count: usize) {
    while redis.pins(prefix).len() < count {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_agree_on_the_first_pin_and_a_rug_pull_is_caught_by_every_replica() {
    let redis = Redis::start();
    let state = ServerState::new();
    let yaml = config(&redis, "agree:");

    // Replica A sees the tools first: the benign ones are exposed and pinned for everyone,
    // with the digest a pin file would hold.
    let a = replica(&state, &yaml).await;
    let client_a = client(&a.url).await;
    assert_eq!(tool_names(&client_a).await, BENIGN);
    wait_for_pins(&redis, "agree:", BENIGN.len()).await;
    let shared = redis.pins("agree:");
    assert_eq!(
        shared.len(),
        BENIGN.len(),
        "withheld tools are not pinned: {shared:?}"
    );
    assert_eq!(
        shared["get-weather"],
        ToolPin::of(&definition(&state, "get-weather")).sha256()
    );

    // Replica B, started later, agrees: the same tools, nothing new to pin. It reads the
    // Redis URL from a secret (`secretRef`), as a deployment with a password would.
    let secrets = tempfile::tempdir().unwrap();
    let url_file = secrets.path().join("url");
    std::fs::write(&url_file, format!("{}\n", redis.url())).unwrap();
    let yaml_b = format!(
        "pinning:\n  redis: {{secretRef: {{file: \"{}\"}}, keyPrefix: \"agree:\", timeout: 2s}}\n",
        url_file.display()
    );
    let b = replica(&state, &yaml_b).await;
    let client_b = client(&b.url).await;
    assert_eq!(tool_names(&client_b).await, BENIGN);
    assert!(
        weather(&client_b)
            .await
            .unwrap()
            .starts_with("Weather in Oslo")
    );

    // The upstream changes get-weather (a rug pull). A replica that never saw the tool before
    // (C, started after the change) compares with the shared pin and withholds it, as do A
    // and B; the shared pin stays the first definition.
    let before = state.calls();
    // A quiet change the definition checks do not flag: only the pin catches it.
    state.set_description(
        "get-weather",
        "Get the current weather for a city, in Fahrenheit.",
    );
    let c = replica(&state, &yaml).await;
    let client_c = client(&c.url).await;
    let expected: Vec<&str> = BENIGN
        .iter()
        .copied()
        .filter(|n| *n != "get-weather")
        .collect();
    for replica_client in [&client_c, &client_a, &client_b] {
        assert_eq!(tool_names(replica_client).await, expected);
        assert_eq!(
            weather(replica_client).await.unwrap_err(),
            "definition-changed"
        );
    }
    assert_eq!(
        state.calls(),
        before,
        "no refused call reached the upstream"
    );
    assert_eq!(redis.pins("agree:")["get-weather"], shared["get-weather"]);
    let flagged = c.audit.events().into_iter().any(|event| {
        event.rule.as_deref() == Some("definition-changed")
            && event.tool.as_deref() == Some("get-weather")
    });
    assert!(flagged, "the rug pull is audited");

    // Reverting the upstream restores the tool everywhere.
    state.set_description("get-weather", "Get the current weather for a city.");
    assert_eq!(tool_names(&client_c).await, BENIGN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_withholds_tools() {
    let mut redis = Redis::start();
    let state = ServerState::new();
    let yaml = config(&redis, "closed:");
    let a = replica(&state, &yaml).await;
    let client_a = client(&a.url).await;
    assert_eq!(tool_names(&client_a).await, BENIGN);
    wait_for_pins(&redis, "closed:", BENIGN.len()).await;

    // Redis goes away: listings withhold every tool, calls are refused before the upstream.
    redis.stop();
    let before = state.calls();
    let b = replica(&state, &yaml).await;
    let client_b = client(&b.url).await;
    for replica_client in [&client_a, &client_b] {
        assert!(tool_names(replica_client).await.is_empty());
        assert_eq!(
            weather(replica_client).await.unwrap_err(),
            "pin-store-unavailable"
        );
    }
    assert_eq!(state.calls(), before);
    let audited = b
        .audit
        .events()
        .into_iter()
        .any(|event| event.rule.as_deref() == Some("pin-store-unavailable"));
    assert!(audited, "withholding is audited");

    // Redis is back (empty): the replicas reconnect and the tools are pinned and listed again.
    let port = redis.port;
    drop(redis);
    let _redis = Redis::start_on(port);
    // Each replica's first operation may still meet the broken connection (withheld, fail
    // closed) while it reconnects; its withheld tools come back with a listing after that.
    for replica_client in [&client_b, &client_a] {
        while tool_names(replica_client).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(tool_names(replica_client).await, BENIGN);
    }
    assert!(
        weather(&client_a)
            .await
            .unwrap()
            .starts_with("Weather in Oslo")
    );
}
