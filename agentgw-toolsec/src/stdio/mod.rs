//! Stdio MCP servers behind Streamable HTTP, in a sandbox (cargo feature `stdio`).
//!
//! [`StdioBackend`] is a tower service that launches a local MCP server speaking JSON-RPC over
//! stdin/stdout and serves it as MCP Streamable HTTP, so the other layers of this crate (and
//! of agentgw) can sit in front of it as in front of any HTTP MCP server.
//!
//! - **Sessions.** A stdio server has one client, so every MCP session gets its own process:
//!   an `initialize` POST without `Mcp-Session-Id` starts one and its response carries the new
//!   session id (128 random bits); later POSTs name it; `DELETE` with it ends the session and
//!   kills the process. At most `maxSessions` run at once (default
//!   [`DEFAULT_MAX_SESSIONS`]); an `initialize` beyond is answered with a JSON-RPC error
//!   (`data.status` 503). A session without requests for `idleTimeout` (default
//!   [`DEFAULT_IDLE_TIMEOUT`]) is ended. An unknown or ended session gets HTTP 404, which
//!   tells MCP clients to initialize again. A server runs in its own process group, and ending
//!   its session kills the group: what a tool started does not outlive it.
//! - **Messages.** A POSTed request (or batch) is written to the server's stdin as one line of
//!   compact JSON; the response with the same id is the HTTP answer (`application/json`).
//!   Notifications and responses are written and answered `202 Accepted`. The server's own
//!   messages (its notifications, and its requests, which the client answers with a POST) go
//!   to the session's `GET` stream (`text/event-stream`, one event per message; a new `GET`
//!   replaces the stream); without one, a notification is dropped and a request answered by
//!   the bridge (`ping` with an empty result, anything else with "method not found") so that
//!   the server never waits. The server's stderr is logged line by line (`tracing`, at most
//!   4 KiB a line).
//! - **Time.** A request not answered within its time (`sandbox.limits.maxExecutionTime` for a
//!   `tools/call`; [`StdioBackend::request_timeout`], default 60 s, for the others and for a
//!   `tools/call` without it) fails with JSON-RPC error -32004 and **the session's process is
//!   killed**: cancellation in MCP is advisory, one stuck tool
//!   would hold the session and its CPU, and later requests could not be told from its late
//!   answers. The client's next request gets 404 and a new `initialize` starts afresh.
//! - **Output.** Messages are read with a bound (`sandbox.limits.maxOutputSize`, default
//!   [`DEFAULT_MAX_MESSAGE`]): a longer line is never held in memory; the waiting requests
//!   fail with JSON-RPC error -32013 and the process is killed.
//! - **Environment.** The server starts with an empty environment plus `PATH` and the
//!   configured `env`: the gateway's secrets are not inherited.
//!
//! # The sandbox (Linux)
//!
//! [`StdioBackend::sandbox`] takes the `sandbox` block of `toolSecurity` (mode `strict`):
//!
//! | key | enforced by |
//! |---|---|
//! | `networkAccess: false` | a seccomp filter: `socket(2)` of any family but `AF_UNIX` fails with `EACCES` (IPv4, IPv6, netlink, packet, vsock...), and so does `io_uring_setup`; where the kernel has them, Landlock also denies TCP bind/connect (Linux 6.7) and abstract Unix sockets outside the sandbox (6.12) |
//! | `fileSystemAccess: readOnly` | Landlock: everything readable, nothing writable, creatable, removable or truncatable (`/dev/null` excepted) |
//! | `fileSystemAccess: {allowedPaths, readOnly}` | Landlock: only files beneath `allowedPaths` (read-only unless `readOnly: false`), plus, read-only, what a program needs to start: its executable, `/usr`, `/lib*`, `/bin`, `/sbin`, `/etc/ld.so.*`, `/dev/urandom`, `/dev/random` (list any other path it needs, such as a script's directory) |
//! | `maxMemory`, `maxCpuTime`, `maxOpenFiles` | `RLIMIT_AS`, `RLIMIT_CPU`, `RLIMIT_NOFILE`, set on the process right after it starts |
//!
//! Both Landlock and seccomp restrict the thread that installs them and every process it then
//! starts, for good and without privileges (no root, no `CAP_SYS_ADMIN`, unlike a network
//! namespace). So each server is started from a short-lived thread that restricts itself
//! first; the gateway's own threads are untouched, and nothing here needs `unsafe` or
//! `pre_exec`. Resource limits are per process, so they are set with `prlimit` on the new
//! process: its own start-up runs before they land, but no request does (the first message is
//! written after). A sandboxed server also cannot signal processes outside its sandbox
//! (Landlock, Linux 6.12) and cannot gain privileges through set-uid programs
//! (`no_new_privs`).
//!
//! **Fail closed.** The restrictions are tried on a throwaway thread when the backend is
//! built: if this kernel cannot enforce them (Landlock below ABI 3, Linux 6.2, for
//! `fileSystemAccess`; no seccomp for `networkAccess: false`), [`StdioBackend::sandbox`]
//! fails naming the key, and a server is never started with less than was asked. On other
//! systems any of these keys is refused the same way. `mode: permissive` and `enabled: false`
//! restrict nothing.
//!
//! # Example
//!
//! A stdio server (here a few lines of `sh` that answer every request) served at `/mcp` with
//! axum: `initialize` opens a session, requests name it, a request without it is refused.
//!
//! ```
//! use agentgw_toolsec::config::{FileSystemAccess, SandboxConfig, SandboxLimits};
//! use agentgw_toolsec::stdio::{MCP_SESSION_ID, StdioBackend, StdioServerConfig};
//! use axum::Router;
//! use http_body_util::BodyExt;
//! use serde_json::{Value, json};
//! use tower::ServiceExt;
//!
//! // Answers each request with its own id.
//! const SERVER: &str = r#"while IFS= read -r line; do
//!   id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9][0-9]*\).*/\1/p')
//!   [ -n "$id" ] && printf '{"jsonrpc":"2.0","id":%s,"result":{"ok":true}}\n' "$id"
//! done"#;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = StdioServerConfig::new("sh").args(["-c", SERVER]).max_sessions(4);
//! let sandbox = SandboxConfig::default().limits(
//!     SandboxLimits::default()
//!         .network_access(false)
//!         .file_system_access(FileSystemAccess::read_only()),
//! );
//! let backend = StdioBackend::from_config(&config)
//!     .and_then(|backend| backend.sandbox(&sandbox))
//!     .expect("sh is installed and this kernel has Landlock and seccomp");
//! let app = Router::new().route_service("/mcp", backend.clone());
//!
//! let post = |body: Value, session: Option<&str>| {
//!     let mut req = http::Request::post("/mcp").header("content-type", "application/json");
//!     if let Some(session) = session {
//!         req = req.header(MCP_SESSION_ID, session);
//!     }
//!     req.body(axum::body::Body::from(body.to_string())).unwrap()
//! };
//!
//! // `initialize` starts a process and names its session.
//! let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
//! let res = app.clone().oneshot(post(init, None)).await.unwrap();
//! let session = res.headers()[MCP_SESSION_ID].to_str().unwrap().to_owned();
//! assert_eq!(backend.sessions(), 1);
//!
//! // A request in the session gets the server's answer.
//! let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
//!                   "params": {"name": "echo", "arguments": {}}});
//! let res = app.clone().oneshot(post(call.clone(), Some(&session))).await.unwrap();
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! let answer: Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(answer["id"], 2);
//! assert_eq!(answer["result"]["ok"], true);
//!
//! // Without a session: refused.
//! let res = app.clone().oneshot(post(call, None)).await.unwrap();
//! assert_eq!(res.status(), 400);
//!
//! // DELETE ends the session and its process.
//! let delete = http::Request::delete("/mcp").header(MCP_SESSION_ID, &session);
//! let res = app.oneshot(delete.body(axum::body::Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), 204);
//! assert_eq!(backend.sessions(), 0);
//! # }
//! ```

mod body;
mod config;
mod lines;
#[cfg(target_os = "linux")]
mod sandbox;
mod service;
mod session;

pub use body::StdioBody;
pub use config::{DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SESSIONS, StdioServerConfig};
pub use service::{
    DEFAULT_MAX_MESSAGE, DEFAULT_REQUEST_TIMEOUT, MCP_SESSION_ID, StdioBackend, StdioFuture,
};

/// Why a server could not be started in its sandbox.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SandboxError {
    /// Landlock refused or is missing.
    #[error("Landlock: {0}")]
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Landlock(String),
    /// The seccomp filter could not be built or installed.
    #[error("seccomp: {0}")]
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Seccomp(String),
    /// A resource limit could not be set.
    #[error("resource limit: {0}")]
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Rlimit(String),
    /// The process (or the thread starting it) could not be started.
    #[error("{0}")]
    Spawn(String),
}
