//! `mcp-stdio-probe`: a stdio MCP server (the official Rust SDK, `rmcp`) whose tools try what
//! a sandbox must stop, so that tests can launch it behind the gateway's stdio backend.
//!
//! | tool | arguments | result text |
//! |---|---|---|
//! | `echo` | `text` | the text |
//! | `connect` | `port` | `connected` after a TCP connection to `127.0.0.1:port`, else `error: ...` |
//! | `read-file` | `path` | the file's contents, else `error: ...` |
//! | `write-file` | `path`, `text` | `written`, else `error: ...` |
//! | `big-output` | `bytes` | that many `x` |
//! | `sleep` | `ms` | `slept` after that long |
//! | `open-files` | `count` | `opened N` after opening `/dev/null` that many times at once, else `error: ...` |
//! | `limits` | | the process's `/proc/self/limits` |
//! | `progress` | `text` | `sent`, after sending the client a `notifications/progress` (token `probe`) with the text as its message |
//!
//! Failures are results (not JSON-RPC errors) so that a test reads the operating system's own
//! answer (`Permission denied (os error 13)`).

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, NumberOrString, PaginatedRequestParams, ProgressNotificationParam,
    ProgressToken, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Probe;

impl ServerHandler for Probe {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("mcp-stdio-probe", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = serde_json::from_value::<Vec<Tool>>(definitions())
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let empty = JsonObject::new();
        let args = request.arguments.as_ref().unwrap_or(&empty);
        let text = |name: &str| args.get(name).and_then(Value::as_str).unwrap_or_default();
        let number = |name: &str| args.get(name).and_then(Value::as_u64).unwrap_or_default();
        let outcome = match request.name.as_ref() {
            "echo" => text("text").to_owned(),
            "connect" => {
                let port = u16::try_from(number("port")).unwrap_or_default();
                match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    Ok(_) => "connected".to_owned(),
                    Err(e) => format!("error: {e}"),
                }
            }
            "read-file" => {
                std::fs::read_to_string(text("path")).unwrap_or_else(|e| format!("error: {e}"))
            }
            "write-file" => match std::fs::write(text("path"), text("text")) {
                Ok(()) => "written".to_owned(),
                Err(e) => format!("error: {e}"),
            },
            "big-output" => "x".repeat(usize::try_from(number("bytes")).unwrap_or_default()),
            "sleep" => {
                tokio::time::sleep(Duration::from_millis(number("ms"))).await;
                "slept".to_owned()
            }
            "open-files" => {
                let mut files = Vec::new();
                let mut outcome = String::new();
                for _ in 0..number("count") {
                    match std::fs::File::open("/dev/null") {
                        Ok(file) => files.push(file),
                        Err(e) => {
                            outcome = format!("error: {e}");
                            break;
                        }
                    }
                }
                if outcome.is_empty() {
                    outcome = format!("opened {}", files.len());
                }
                outcome
            }
            "limits" => std::fs::read_to_string("/proc/self/limits")
                .unwrap_or_else(|e| format!("error: {e}")),
            "progress" => {
                let token = ProgressToken(NumberOrString::String("probe".into()));
                let mut progress = ProgressNotificationParam::new(token, 1.0);
                progress.message = Some(text("text").to_owned());
                match context.peer.notify_progress(progress).await {
                    Ok(()) => "sent".to_owned(),
                    Err(e) => format!("error: {e}"),
                }
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool {other}"),
                    None,
                ));
            }
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(outcome)]).into())
    }
}

fn definitions() -> Value {
    let tool = |name: &str, description: &str, properties: Value| {
        json!({"name": name, "description": description,
               "inputSchema": {"type": "object", "properties": properties}})
    };
    let string = json!({"type": "string"});
    let integer = json!({"type": "integer", "minimum": 0});
    json!([
        tool("echo", "Returns the text.", json!({"text": string})),
        tool(
            "connect",
            "Opens a TCP connection to 127.0.0.1:port.",
            json!({"port": integer})
        ),
        tool("read-file", "Reads a file.", json!({"path": string})),
        tool(
            "write-file",
            "Writes a file.",
            json!({"path": string, "text": string})
        ),
        tool(
            "big-output",
            "Returns that many bytes.",
            json!({"bytes": integer})
        ),
        tool("sleep", "Waits ms milliseconds.", json!({"ms": integer})),
        tool(
            "open-files",
            "Opens /dev/null count times.",
            json!({"count": integer})
        ),
        tool("limits", "Returns /proc/self/limits.", json!({})),
        tool(
            "progress",
            "Sends the client a progress notification.",
            json!({"text": string})
        ),
    ])
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Probe.serve(rmcp::transport::stdio()).await?;
    server.waiting().await?;
    Ok(())
}
