//! Helpers shared by the end-to-end tests.

use std::net::SocketAddr;

use agentgw_core::sse::{Decoder, Frame};
use agentgw_gateway::{Config, RunningGateway};
use agentgw_test_support::{self as mock, McpOptions, MockServer};
use futures_util::StreamExt;

/// The mock upstreams and a gateway in front of them.
pub(crate) struct Harness {
    pub(crate) openai: MockServer,
    pub(crate) mcp: MockServer,
    pub(crate) gateway: RunningGateway,
}

impl Harness {
    /// Starts both mocks and a gateway whose config is `yaml` with `${OPENAI}`/`${MCP}`
    /// replaced by the mocks' URLs. Listeners use free ports.
    pub(crate) async fn start(yaml: &str) -> Harness {
        let openai = mock::openai(loopback()).await.expect("openai mock");
        let mcp = mock::mcp(loopback(), McpOptions::default())
            .await
            .expect("mcp mock");
        let gateway = gateway(yaml, &openai, &mcp).await;
        Harness {
            openai,
            mcp,
            gateway,
        }
    }

    /// `http://127.0.0.1:PORT` of the gateway.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.gateway.addr(), path)
    }
}

/// A gateway built from `yaml` in front of the given mocks.
pub(crate) async fn gateway(yaml: &str, openai: &MockServer, mcp: &MockServer) -> RunningGateway {
    let config = config(yaml, openai, mcp);
    agentgw_gateway::start(config, None)
        .await
        .expect("gateway starts")
}

/// Parses `yaml` with mock URLs substituted and ephemeral listener ports.
pub(crate) fn config(yaml: &str, openai: &MockServer, mcp: &MockServer) -> Config {
    let text = yaml
        .replace("${OPENAI}", &openai.url())
        .replace("${MCP}", &mcp.url());
    let mut config =
        Config::from_yaml(&text).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
    config.listen = loopback();
    config
}

pub(crate) fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A chat request body.
pub(crate) fn chat(content: &str, stream: bool) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "model": "gpt-4",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": content}
        ]
    }))
    .unwrap()
}

/// Reads an SSE response to its end and returns the `data` of every event, in order.
pub(crate) async fn sse_data(response: reqwest::Response) -> Vec<String> {
    let mut decoder = Decoder::default();
    let mut frames = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        decoder
            .decode(&chunk.expect("stream chunk"), &mut frames)
            .expect("valid SSE");
    }
    decoder.finish().expect("stream ends on an event boundary");
    frames
        .into_iter()
        .filter_map(|frame| match frame {
            Frame::Event(event) => Some(event.data),
            Frame::Comment(_) => None,
        })
        .collect()
}

/// Joins the `choices[0].delta.content` of OpenAI chunk events.
pub(crate) fn join_deltas(data: &[String]) -> String {
    data.iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}
