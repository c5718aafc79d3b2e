//! Mock upstreams for agentgw's tests and demo: an OpenAI-compatible chat API and an MCP server.
//!
//! `agentgw --demo` runs the example gateway in front of these servers so that it works
//! offline, and the end-to-end tests use them as real upstreams on real sockets. This crate is
//! not published: it is test infrastructure, not a layer.
//!
//! Both mocks are deterministic and can be steered per request with `x-mock-*` headers:
//!
//! | header | mock | effect |
//! |---|---|---|
//! | [`DELAY_HEADER`] `x-mock-delay-ms: N` | both | delays the response headers by `N` ms (timeout tests) |
//! | [`CHUNK_DELAY_HEADER`] `x-mock-chunk-delay-ms: N` | OpenAI | sleeps `N` ms between two streamed events |
//! | [`CHUNKS_HEADER`] `x-mock-chunks: N` | OpenAI | streams exactly `N` content events, repeating the answer (long streams for soak tests) |
//! | [`PII_HEADER`] `x-mock-pii: 1` | both | appends [`PII_TEXT`] to the answer or tool result |
//! | [`ECHO_HEADERS_HEADER`] `x-mock-echo-headers: 1` | OpenAI | adds `received_headers`, `received_path` and `received_body_len` to the response |
//!
//! The OpenAI mock ([`openai`]) answers `POST /v1/chat/completions` (and `/chat/completions`)
//! with `"You said: " + <text of the last user message>`, as one `chat.completion` object or,
//! with `"stream": true`, as `chat.completion.chunk` server-sent events cut into pieces of
//! [`STREAM_PIECE_CHARS`] characters. A last user message containing the word `pii` also turns
//! on [`PII_TEXT`]. `GET /v1/models` lists [`MODEL_IDS`].
//!
//! The MCP mock ([`mcp`]) is a server of the official Rust MCP SDK (`rmcp`) speaking MCP
//! Streamable HTTP at `/mcp`. It offers the tools listed in [`TOOL_NAMES`], among them a
//! poisoned tool ([`POISONED_TOOL_DESCRIPTION`]) and a tool whose result carries a prompt
//! injection ([`INJECTED_PAGE_TEXT`]); [`McpOptions`] chooses JSON or event-stream answers and
//! whether sessions are required.
//!
//! Every request a mock receives is recorded, so a test can check what reached the upstream
//! (see [`MockServer::received_requests`]), and every answer carries [`SERVER_HEADER`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use agentgw_test_support::{self as mock, McpOptions};
//!
//! let llm = mock::openai("127.0.0.1:0".parse().unwrap()).await?;
//! let tools = mock::mcp("127.0.0.1:0".parse().unwrap(), McpOptions { sse: true, ..Default::default() }).await?;
//! assert!(llm.url().starts_with("http://127.0.0.1:"));
//!
//! let answer: serde_json::Value = reqwest::Client::new()
//!     .post(format!("{}/v1/chat/completions", llm.url()))
//!     .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
//!     .send()
//!     .await
//!     .unwrap()
//!     .json()
//!     .await
//!     .unwrap();
//! assert_eq!(answer["choices"][0]["message"]["content"], "You said: hi");
//! assert_eq!(llm.request_count(), 1);
//! assert_eq!(tools.request_count(), 0);
//! llm.shutdown().await;
//! tools.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

mod mcp;
mod openai;
mod server;
mod webhook;

pub use mcp::{
    INJECTED_PAGE_TEXT, MCP_SESSION_HEADER, McpOptions, POISONED_TOOL_DESCRIPTION, TOOL_NAMES, mcp,
};
pub use openai::{
    CHUNK_DELAY_HEADER, CHUNKS_HEADER, ECHO_HEADERS_HEADER, MAX_STREAM_CHUNKS, MODEL_IDS,
    STREAM_PIECE_CHARS, openai,
};
pub use server::{MockServer, ReceivedRequest};
pub use webhook::{EscalationHook, SLOW_HOOK_DELAY};

/// Largest request body the mocks accept: 64 MiB (axum's default limit is 2 MB); a larger one
/// is answered `413 Payload Too Large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Longest delay [`DELAY_HEADER`] and [`CHUNK_DELAY_HEADER`] accept: ten minutes.
pub const MAX_DELAY: Duration = Duration::from_secs(600);

/// `x-mock-delay-ms: N`: delay the response headers by `N` milliseconds (at most [`MAX_DELAY`]).
/// Any other value is refused with HTTP 400, shaped as the mock's protocol shapes errors.
pub const DELAY_HEADER: &str = "x-mock-delay-ms";

/// `x-mock-pii: 1` (or `true`): append [`PII_TEXT`] to the answer or to the tool result.
pub const PII_HEADER: &str = "x-mock-pii";

/// Header every mock response carries, naming the mock (`openai` or `mcp`).
pub const SERVER_HEADER: &str = "x-mock-server";

/// Synthetic personal data the mocks add on request: a test credit card number (valid Luhn),
/// an email address, a US phone number and a US social security number.
pub const PII_TEXT: &str =
    "Card 4111 1111 1111 1111, email jane.doe@example.com, call +1 415-555-0132, SSN 536-22-8417";
