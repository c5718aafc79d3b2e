//! `agentgw pin --config FILE [--output PATH]`: writes the tool pin file (`pinning.file`) from
//! the live upstreams.
//!
//! Every `kind: mcp` route's backend is reached the way the gateway reaches it (its URL, TLS
//! settings and `authToken`; a `stdio` server started in the route's sandbox, as the gateway
//! starts it): `initialize`, `notifications/initialized`, then `tools/list` page by page. Each tool is pinned under the route's name with the digest the tool security
//! layer computes ([`agentgw_toolsec::pins`]), and the file is written sorted, so that a review
//! diff shows exactly what changed; the changes against the file already there are returned
//! for printing. An unreachable upstream or a refused listing fails the whole run and no file
//! is written: a pin file never silently lacks an upstream.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentgw_core::body::BodyLimit;
use agentgw_core::config::ConfigError as _;
use agentgw_core::mcp::{self, Id};
use agentgw_toolsec::pins::{PinChange, PinFile};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::config::{Config, Route, RouteKind};
use crate::proxy::{Upstream, UpstreamOptions};
use crate::stack::{RouteService, boxed, stdio_backend, with_secrets_dir, wrap};
use crate::{ReqBody, ResBody};

/// The most `tools/list` pages read from one upstream.
const MAX_PAGES: usize = 100;
/// The largest answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// The protocol version offered in `initialize`.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// The session header of MCP Streamable HTTP.
const SESSION_HEADER: &str = "mcp-session-id";

/// Why `agentgw pin` wrote no file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The configuration has no `kind: mcp` route.
    #[error("no route has kind: mcp: there are no tools to pin")]
    NoMcpRoutes,
    /// No `--output` was given and the configuration does not name exactly one pin file.
    #[error("{0}")]
    Output(String),
    /// A route's backend cannot be built from the configuration.
    #[error("{path}: {reason}")]
    Config {
        /// The field at fault.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A route's upstream could not be listed.
    #[error("route {route}: {reason}")]
    Upstream {
        /// The route's name.
        route: String,
        /// What failed.
        reason: String,
    },
    /// The file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The pin file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What a run of `agentgw pin` did.
#[derive(Debug)]
pub struct PinReport {
    /// The file written.
    pub path: PathBuf,
    /// The pins written.
    pub pins: PinFile,
    /// What differs from the file that was there (every tool is `Added` when there was none).
    pub changes: Vec<PinChange>,
    /// Why the file that was there could not be compared, when it could not be read.
    pub previous_unreadable: Option<String>,
}

/// The pin file `config` names: `output` when given, otherwise the one `pinning.file` of its
/// `toolSecurity` blocks.
///
/// # Errors
///
/// [`PinError::Output`] when there is no `output` and the blocks name no file or several.
pub fn output_path(config: &Config, output: Option<&Path>) -> Result<PathBuf, PinError> {
    if let Some(output) = output {
        return Ok(output.to_owned());
    }
    let files: BTreeSet<&Path> = std::iter::once(&config.policies)
        .chain(config.routes.iter().map(|route| &route.policies))
        .filter_map(|policies| policies.ai.tool_security.as_ref())
        .filter_map(|tool_security| tool_security.pinning.as_ref()?.file.as_deref())
        .collect();
    match files.len() {
        1 => Ok(files
            .into_iter()
            .next()
            .map(Path::to_owned)
            .unwrap_or_default()),
        0 => Err(PinError::Output(
            "the configuration names no toolSecurity.pinning.file: pass --output PATH".to_owned(),
        )),
        _ => Err(PinError::Output(format!(
            "the configuration names several pin files ({}): pass --output PATH",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Lists the tools of every `kind: mcp` route of `config` and writes them to `output` (see
/// [`output_path`]), replacing the file atomically.
///
/// # Errors
///
/// A [`PinError`]; nothing is written then.
pub async fn pin(config: &Config, output: Option<&Path>) -> Result<PinReport, PinError> {
    let path = output_path(config, output)?;
    let routes: Vec<(usize, &Route)> = config
        .routes
        .iter()
        .enumerate()
        .filter(|(_, route)| route.kind == Some(RouteKind::Mcp))
        .collect();
    if routes.is_empty() {
        return Err(PinError::NoMcpRoutes);
    }
    let mut pins = PinFile::new();
    for (index, route) in routes {
        let service = backend(config, route, index)?;
        let tools = list_tools(service, route)
            .await
            .map_err(|reason| PinError::Upstream {
                route: route.name.clone(),
                reason,
            })?;
        pins.pin_upstream(route.name.clone(), &tools);
    }
    let (previous, previous_unreadable) = match std::fs::exists(&path) {
        Ok(false) => (PinFile::new(), None),
        _ => match PinFile::load(&path) {
            Ok(previous) => (previous, None),
            Err(error) => (PinFile::new(), Some(error.reason())),
        },
    };
    let changes = pins.changes_since(&previous);
    write_atomically(&path, pins.to_yaml().as_bytes()).map_err(|source| PinError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(PinReport {
        path,
        pins,
        changes,
        previous_unreadable,
    })
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over `path`: a reader
/// (a replica following the file) never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// The route's backend as the gateway reaches it: URL, TLS and credentials, or its stdio
/// server in the route's sandbox; no policy layer.
fn backend(config: &Config, route: &Route, index: usize) -> Result<RouteService, PinError> {
    if let Some(stdio) = &route.backend.stdio {
        // The gateway reports the sandbox's warnings when it starts; pinning only lists tools.
        let mut warnings = Vec::new();
        let server = stdio_backend(config, route, index, stdio, &mut warnings).map_err(|e| {
            PinError::Config {
                path: e.path,
                reason: e.message,
            }
        })?;
        return Ok(boxed(server));
    }
    let path = format!("routes[{index}].backend");
    let fail = |field: &str, reason: String| PinError::Config {
        path: format!("{path}.{field}"),
        reason,
    };
    let https = route.backend.url.starts_with("https://");
    let tls = match &route.backend.tls {
        Some(tls) => Some(
            agentgw_tls::client_config(&tls.clone().secrets_dir(&config.secrets_dir))
                .map_err(|e| fail(&format!("tls.{}", e.path()), e.reason()))?,
        ),
        None if https => Some(
            agentgw_tls::client_config(&agentgw_tls::UpstreamTlsConfig::system_roots())
                .map_err(|e| fail("url", e.reason()))?,
        ),
        None => None,
    };
    let options = UpstreamOptions {
        timeout: route.backend.timeout,
        connect_timeout: route.backend.connect_timeout,
        tls,
        http2: route.backend.http2,
        workers: 0,
    };
    let upstream = Upstream::new(&route.backend.url, &route.path_prefix, &options)
        .map_err(|reason| fail("url", reason))?;
    let mut service: RouteService = tower::util::BoxCloneSyncService::new(upstream);
    if let Some(token) = &route.backend.auth_token {
        let layer = agentgw_auth::BackendAuthLayer::from_config(&with_secrets_dir(token, config))
            .map_err(|e| fail(&format!("authToken.{}", e.path()), e.reason()))?;
        service = wrap(service, layer);
    }
    Ok(service)
}

/// Every tool the route's upstream lists, in its order.
async fn list_tools(service: RouteService, route: &Route) -> Result<Vec<Value>, String> {
    let mut client = Client {
        service,
        prefix: route.path_prefix.clone(),
        session: None,
        timeout: route.backend.timeout,
    };
    let initialize = json!({
        "jsonrpc": "2.0", "id": "agentgw-pin-initialize", "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "agentgw-pin", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    client.request(initialize, "initialize").await?;
    client
        .notify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await?;
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..MAX_PAGES {
        let mut list = json!({"jsonrpc": "2.0", "id": format!("agentgw-pin-list-{page}"),
                              "method": "tools/list"});
        if let Some(cursor) = &cursor {
            list["params"] = json!({ "cursor": cursor });
        }
        let result = client.request(list, "tools/list").await?;
        let listed =
            mcp::tools_from_list_result(&result).ok_or("the tools/list answer has no tool list")?;
        tools.extend(listed.iter().cloned());
        cursor = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() {
            client.close().await;
            return Ok(tools);
        }
    }
    client.close().await;
    Err(format!("tools/list has more than {MAX_PAGES} pages"))
}

/// A minimal MCP Streamable HTTP client over a route's backend service.
struct Client {
    service: RouteService,
    prefix: String,
    session: Option<HeaderValue>,
    timeout: Duration,
}

impl Client {
    fn post(&self, message: &Value) -> Request<ReqBody> {
        let body = Full::new(Bytes::from(message.to_string()))
            .map_err(|never: Infallible| match never {})
            .boxed();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.prefix.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .body(body)
            .unwrap_or_default();
        if let Some(session) = &self.session {
            request
                .headers_mut()
                .insert(SESSION_HEADER, session.clone());
        }
        request
    }

    async fn send(&self, request: Request<ReqBody>) -> Result<Response<ResBody>, String> {
        let response = self
            .service
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        if response.status().is_server_error() {
            // The gateway's own 502/504 for an unreachable or silent upstream.
            return Err(format!(
                "the upstream is unreachable or failed (HTTP {})",
                response.status()
            ));
        }
        if !response.status().is_success() {
            return Err(format!("the upstream answered HTTP {}", response.status()));
        }
        Ok(response)
    }

    /// Sends request `message` and returns its result.
    async fn request(&mut self, message: Value, method: &str) -> Result<Value, String> {
        let id = Id::String(message["id"].as_str().unwrap_or_default().to_owned());
        let response = self.send(self.post(&message)).await?;
        if let Some(session) = response.headers().get(SESSION_HEADER) {
            self.session = Some(session.clone());
        }
        match tokio::time::timeout(self.timeout, answer(response, &id)).await {
            Ok(Ok(Some(result))) => Ok(result),
            Ok(Ok(None)) => Err(format!("the upstream did not answer {method}")),
            Ok(Err(reason)) => Err(format!("{method}: {reason}")),
            Err(_) => Err(format!("{method}: no answer within {:?}", self.timeout)),
        }
    }

    async fn notify(&self, message: Value) -> Result<(), String> {
        self.send(self.post(&message)).await.map(drop)
    }

    /// Ends the session, if the upstream opened one.
    async fn close(&self) {
        let Some(session) = &self.session else {
            return;
        };
        let body = http_body_util::Empty::new()
            .map_err(|never: Infallible| match never {})
            .boxed();
        let Ok(request) = Request::builder()
            .method(Method::DELETE)
            .uri(self.prefix.as_str())
            .header(SESSION_HEADER, session.clone())
            .body(body)
        else {
            return;
        };
        let _ = self.service.clone().oneshot(request).await;
    }
}

/// The result of the answer to `id` in `response` (a JSON body or an event stream); `None`
/// when the answer ends without it.
async fn answer(response: Response<ResBody>, id: &Id) -> Result<Option<Value>, String> {
    match mcp::read_answer(response, id, BodyLimit::new(MAX_ANSWER_BYTES)).await {
        Ok(Some(Ok(result))) => Ok(Some(result)),
        Ok(Some(Err(error))) => Err(format!("JSON-RPC error {}: {}", error.code, error.message)),
        Ok(None) => Ok(None),
        Err(error) => Err(error.to_string()),
    }
}
