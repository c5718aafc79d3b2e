//! `agentgw --demo`: the embedded configuration in front of the built-in mock upstreams, offline.

use std::net::SocketAddr;

use crate::config::{Config, ConfigErrors};
use crate::mock::{self, McpOptions, MockServer};

/// The embedded demo configuration (`examples/gateway/demo.yaml`).
pub const DEMO_CONFIG: &str = include_str!("../demo.yaml");

/// The demo's mock upstreams and the configuration pointing at them.
pub struct Demo {
    /// The OpenAI-compatible mock.
    pub openai: MockServer,
    /// The MCP mock.
    pub mcp: MockServer,
    /// The demo configuration, with the mocks' addresses filled in.
    pub config: Config,
}

/// Why the demo could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A mock upstream could not start.
    #[error("cannot start a mock upstream: {0}")]
    Mock(#[from] std::io::Error),
    /// The embedded configuration is invalid (a bug).
    #[error("embedded demo configuration is invalid:\n{0}")]
    Config(#[from] ConfigErrors),
}

/// Starts the mock upstreams on loopback and builds the demo configuration. `listen`, when set,
/// replaces the proxy address; `ephemeral_ports` binds metrics and health to free ports (tests).
pub async fn prepare(listen: Option<SocketAddr>, ephemeral_ports: bool) -> Result<Demo, DemoError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let openai = mock::openai(loopback).await?;
    let mcp = mock::mcp(loopback, McpOptions::default()).await?;
    let text = DEMO_CONFIG
        .replace("${OPENAI_MOCK}", &openai.url())
        .replace("${MCP_MOCK}", &mcp.url());
    let mut config = Config::from_yaml(&text)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if ephemeral_ports {
        config.metrics = Some(loopback);
        config.health = Some(loopback);
    }
    Ok(Demo {
        openai,
        mcp,
        config,
    })
}

/// Ready-to-paste curl commands that show each active layer allowing and denying.
pub fn curl_examples(
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    health: Option<SocketAddr>,
) -> String {
    let base = format!("http://{addr}");
    let mut out = String::new();
    out.push_str("Try these (the upstreams are built-in mocks on loopback):\n\n");
    out.push_str("# A chat completion, proxied to the mock (it echoes your message):\n");
    out.push_str(&format!(
        "curl -s {base}/openai/chat/completions -H 'content-type: application/json' \\\n  -d '{{\"model\":\"gpt-4\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello there\"}}]}}'\n\n"
    ));
    out.push_str("# The same, streamed as Server-Sent Events:\n");
    out.push_str(&format!(
        "curl -sN {base}/openai/chat/completions -H 'content-type: application/json' \\\n  -d '{{\"model\":\"gpt-4\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello there\"}}]}}'\n\n"
    ));
    out.push_str("# MCP: list the mock server's tools (JSON-RPC over Streamable HTTP):\n");
    out.push_str(&format!(
        "curl -s {base}/mcp -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \\\n  -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'\n\n"
    ));
    out.push_str("# No route: a 404 from the gateway itself:\n");
    out.push_str(&format!("curl -si {base}/nowhere\n\n"));
    if let Some(health) = health {
        out.push_str(&format!(
            "# Health and readiness:\ncurl -s http://{health}/healthz http://{health}/readyz\n\n"
        ));
    }
    if let Some(metrics) = metrics {
        out.push_str(&format!(
            "# Prometheus metrics:\ncurl -s http://{metrics}/metrics | grep agentgateway_\n"
        ));
    }
    out
}
