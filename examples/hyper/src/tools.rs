//! The application's MCP server, on the official Rust MCP SDK (`rmcp`): three tools over a
//! pretend workspace. It knows nothing about the layers in front of it.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

/// The files of the pretend workspace: `README.md` names its maintainer's email address, which
/// tool security masks in the `read-file` result.
const FILES: [(&str, &str); 2] = [
    (
        "README.md",
        "# Demo workspace\nMaintainer: ops@example.com\n",
    ),
    ("notes.txt", "Ship the release on Friday.\n"),
];

/// The MCP server of the application, served over Streamable HTTP.
///
/// Stateless, with JSON answers: every POST stands alone, so a `tools/call` works with `curl`
/// as well as with an MCP client that initialized first.
pub fn server() -> StreamableHttpService<Workspace, LocalSessionManager> {
    StreamableHttpService::new(
        || Ok(Workspace),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true),
    )
}

/// The tools: `get-weather {city}`, `read-file {path}` and `delete-file {path}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Workspace;

/// A tool taking one string argument.
fn tool(name: &'static str, description: &'static str, argument: &str) -> Tool {
    let schema = json!({
        "type": "object",
        "properties": {argument: {"type": "string"}},
        "required": [argument],
    });
    Tool::new(
        name,
        description,
        Arc::new(schema.as_object().cloned().unwrap_or_default()),
    )
}

impl ServerHandler for Workspace {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![
            tool("get-weather", "Get the current weather of a city.", "city"),
            tool("read-file", "Read a file of the workspace.", "path"),
            tool("delete-file", "Delete a file of the workspace.", "path"),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let argument = |name: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|args| args.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ErrorData::invalid_params(format!("`{name}` is required"), None))
        };
        let text = match request.name.as_ref() {
            "get-weather" => format!("Sunny and 21 °C in {}.", argument("city")?),
            "read-file" => {
                let path = argument("path")?;
                match FILES.iter().find(|(name, _)| *name == path) {
                    Some((_, content)) => (*content).to_owned(),
                    None => {
                        let missing = ContentBlock::text(format!("no such file: {path}"));
                        return Ok(CallToolResult::error(vec![missing]).into());
                    }
                }
            }
            "delete-file" => format!(
                "Deleted {} (not really: this is a demo).",
                argument("path")?
            ),
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool: {other}"),
                    None,
                ));
            }
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}
