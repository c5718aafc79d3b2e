//! [`StdioBackend`]: Streamable HTTP in front of stdio MCP server processes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use agentgw_core::mcp::codes;
use agentgw_core::{BoxError, Rejection, ResponseShape};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;
use tower_service::Service;

use super::SandboxError;
use super::body::StdioBody;
use super::config::StdioServerConfig;
use super::session::{self, Command, Failure, SessionHandle, SessionLimits};
use crate::Error;
use crate::config::{SandboxConfig, SandboxMode};

/// The `Mcp-Session-Id` header.
pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// The layer name in denials and metrics (`agentgateway_rejected_requests_total{layer}`).
const LAYER: &str = "stdio";

/// The largest message a server may write when `sandbox.limits.maxOutputSize` does not say.
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The longest a request waits for the server's answer unless
/// [`StdioBackend::request_timeout`] (or, for a `tools/call`, `sandbox.limits.maxExecutionTime`)
/// says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A tower service that speaks MCP Streamable HTTP and runs a stdio MCP server per session.
/// See the [module docs](super) for what it does and an example.
///
/// Clones share the sessions; dropping the last clone ends every session and kills its
/// process.
#[derive(Clone)]
pub struct StdioBackend {
    settings: Arc<Settings>,
    sessions: Arc<Sessions>,
}

impl std::fmt::Debug for StdioBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioBackend")
            .field("command", &self.settings.program)
            .field("sessions", &self.sessions())
            .finish_non_exhaustive()
    }
}

/// How servers are started and run.
#[derive(Clone)]
struct Settings {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    path_var: Option<OsString>,
    max_sessions: usize,
    idle_timeout: Duration,
    request_timeout: Duration,
    tool_timeout: Option<Duration>,
    max_message: usize,
    max_body: usize,
    #[cfg(target_os = "linux")]
    restrictions: super::sandbox::Restrictions,
}

/// The running sessions; each session's task holds it weakly, to remove itself.
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<Arc<str>, SessionHandle>>);

impl Sessions {
    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, SessionHandle>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StdioBackend {
    /// A backend for the server `config` describes, without a sandbox. Errors name the field
    /// relative to the `stdio` block: `command` when the program cannot be found, `maxSessions`
    /// when it is 0.
    pub fn from_config(config: &StdioServerConfig) -> Result<Self, Error> {
        let path_var = std::env::var_os("PATH");
        let program = resolve(&config.command, path_var.as_deref())
            .map_err(|message| Error::invalid("command", message))?;
        if config.max_sessions == 0 {
            return Err(Error::invalid("maxSessions", "must be at least 1"));
        }
        if config.idle_timeout.is_zero() {
            return Err(Error::invalid("idleTimeout", "must be longer than 0"));
        }
        Ok(Self {
            settings: Arc::new(Settings {
                program,
                args: config.args.clone(),
                env: config
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                path_var,
                max_sessions: config.max_sessions,
                idle_timeout: config.idle_timeout,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                tool_timeout: None,
                max_message: DEFAULT_MAX_MESSAGE,
                max_body: DEFAULT_MAX_MESSAGE,
                #[cfg(target_os = "linux")]
                restrictions: Default::default(),
            }),
            sessions: Arc::default(),
        })
    }

    /// Enforces `sandbox` (the `sandbox` block of `toolSecurity`) on every server process, and
    /// checks that this kernel can: errors name the field relative to the `toolSecurity` block
    /// (`sandbox.limits.fileSystemAccess.allowedPaths[0]`, `sandbox.limits.networkAccess`).
    ///
    /// With `mode: strict` (the default): `maxExecutionTime` bounds every `tools/call`
    /// (instead of [`request_timeout`](Self::request_timeout)), `maxOutputSize` every message
    /// of the server, and `networkAccess`, `fileSystemAccess`, `maxMemory`, `maxCpuTime`,
    /// `maxOpenFiles` restrict the process. `mode: permissive` and `enabled: false` restrict
    /// nothing (the tool security layer still records violations in permissive mode).
    pub fn sandbox(self, sandbox: &SandboxConfig) -> Result<Self, Error> {
        let limits = &sandbox.limits;
        let at = |field: &str| format!("sandbox.limits.{field}");
        if limits.max_execution_time.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid(
                at("maxExecutionTime"),
                "must be longer than 0",
            ));
        }
        for (field, zero) in [
            ("maxOutputSize", limits.max_output_size == Some(0)),
            ("maxMemory", limits.max_memory == Some(0)),
            ("maxOpenFiles", limits.max_open_files == Some(0)),
            (
                "maxCpuTime",
                limits.max_cpu_time.is_some_and(|t| t.is_zero()),
            ),
        ] {
            if zero {
                return Err(Error::invalid(at(field), "must be greater than 0"));
            }
        }
        if let Some(paths) = limits
            .file_system_access
            .as_ref()
            .and_then(|access| access.allowed_paths.as_ref())
        {
            for (i, path) in paths.iter().enumerate() {
                let field = at(&format!("fileSystemAccess.allowedPaths[{i}]"));
                if !path.is_absolute() {
                    return Err(Error::invalid(field, "must be an absolute path"));
                }
                if !path.exists() {
                    return Err(Error::invalid(
                        field,
                        format!("{} does not exist", path.display()),
                    ));
                }
            }
        }
        if !sandbox.enabled || sandbox.mode == SandboxMode::Permissive {
            return Ok(self);
        }
        let mut this = self;
        let settings = Arc::make_mut(&mut this.settings);
        settings.tool_timeout = limits.max_execution_time;
        if let Some(size) = limits.max_output_size {
            settings.max_message = usize::try_from(size).unwrap_or(usize::MAX);
        }
        restrict(settings, sandbox)?;
        Ok(this)
    }

    /// The longest a request waits for the server's answer (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]; a `tools/call` waits `sandbox.limits.maxExecutionTime`
    /// instead, when set). A request not answered in time fails with JSON-RPC error -32004
    /// and ends its session's process. `initialize` waits this long too, process start
    /// included.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.settings).request_timeout = timeout;
        self
    }

    /// The largest request body read (default 16 MiB); larger requests get `413`.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.settings).max_body = bytes;
        self
    }

    /// How many sessions (server processes) are running.
    pub fn sessions(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Ends every session and kills their processes.
    pub fn close_all(&self) {
        self.sessions.lock().clear();
    }
}

#[cfg(target_os = "linux")]
fn restrict(settings: &mut Settings, sandbox: &SandboxConfig) -> Result<(), Error> {
    let restrictions = super::sandbox::Restrictions::new(&sandbox.limits, &settings.program);
    restrictions.probe().map_err(|e| {
        let field = match e {
            SandboxError::Seccomp(_) => "sandbox.limits.networkAccess",
            _ => "sandbox.limits.fileSystemAccess",
        };
        Error::invalid(field, format!("cannot be enforced on this system: {e}"))
    })?;
    settings.restrictions = restrictions;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn restrict(_: &mut Settings, sandbox: &SandboxConfig) -> Result<(), Error> {
    for field in crate::config::STDIO_ONLY_LIMITS {
        let restricts = match field {
            "networkAccess" => sandbox.limits.network_access == Some(false),
            "fileSystemAccess" => sandbox
                .limits
                .file_system_access
                .as_ref()
                .is_some_and(|a| a.restricts()),
            other => sandbox.limits.is_set(other),
        };
        if restricts {
            return Err(Error::invalid(
                format!("sandbox.limits.{field}"),
                "cannot be enforced on this system: stdio servers are sandboxed on Linux only",
            ));
        }
    }
    Ok(())
}

/// The program `command` names: a path (relative to the working directory), or a name looked
/// up in `PATH`. It must be an executable file.
fn resolve(command: &str, path_var: Option<&std::ffi::OsStr>) -> Result<PathBuf, String> {
    if command.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    let candidate = Path::new(command);
    let found = if candidate.components().count() > 1 || candidate.is_absolute() {
        Some(candidate.to_path_buf())
    } else {
        path_var.and_then(|paths| {
            std::env::split_paths(paths)
                .map(|dir| dir.join(command))
                .find(|path| is_executable(path))
        })
    };
    match found {
        Some(path) if is_executable(&path) => path
            .canonicalize()
            .map_err(|e| format!("{}: {e}", path.display())),
        Some(path) => Err(format!("{} is not an executable file", path.display())),
        None => Err(format!("{command:?} is not found in PATH")),
    }
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// The response future of [`StdioBackend`]. Boxed: a round trip through a process's pipes
/// costs far more than the allocation.
pub struct StdioFuture {
    inner: BoxedAnswer,
}

/// What [`StdioFuture`] holds.
type BoxedAnswer = Pin<Box<dyn Future<Output = Result<Response<StdioBody>, Infallible>> + Send>>;

impl Future for StdioFuture {
    type Output = Result<Response<StdioBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for StdioFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioFuture").finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for StdioBackend
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<StdioBody>;
    type Error = Infallible;
    type Future = StdioFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> StdioFuture {
        let backend = self.clone();
        StdioFuture {
            inner: Box::pin(async move {
                let res = match *req.method() {
                    Method::GET => {
                        let session = req.headers().get(&MCP_SESSION_ID).cloned();
                        drop(req);
                        listen(&backend, session).await
                    }
                    _ => serve(backend, req).await.map(StdioBody::from),
                };
                Ok(res)
            }),
        }
    }
}

/// A denial outside of any JSON-RPC request (no id): the HTTP status is the client's answer.
fn transport_error(
    status: StatusCode,
    reason: &'static str,
    message: &'static str,
) -> Response<Full<Bytes>> {
    Rejection::new(status, LAYER, reason)
        .with_message(message)
        .respond_in(&ResponseShape::JsonRpc { id: Value::Null })
}

async fn serve<B>(backend: StdioBackend, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let session_id = req
        .headers()
        .get(&MCP_SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match *req.method() {
        Method::POST => {}
        Method::DELETE => {
            let Some(id) = session_id else {
                return transport_error(
                    StatusCode::BAD_REQUEST,
                    "missing-session",
                    "DELETE needs an Mcp-Session-Id header",
                );
            };
            // Dropping the handle ends the session and kills its process.
            return match backend.sessions.lock().remove(id.as_str()) {
                Some(_) => {
                    let mut res = Response::new(Full::default());
                    *res.status_mut() = StatusCode::NO_CONTENT;
                    res
                }
                None => session_not_found(),
            };
        }
        _ => {
            let mut res = transport_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this MCP endpoint takes POST (messages), GET (the server's stream) and DELETE \
                 (end a session)",
            );
            res.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static("POST, GET, DELETE"),
            );
            return res;
        }
    }
    let body = match Limited::new(req.into_body(), backend.settings.max_body)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                transport_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "request body too large",
                )
            } else {
                transport_error(
                    StatusCode::BAD_REQUEST,
                    "body-unreadable",
                    "unreadable request body",
                )
            };
        }
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return transport_error(
            StatusCode::BAD_REQUEST,
            "parse-error",
            "the body is not JSON",
        );
    };
    let initialize = message.get("method").and_then(Value::as_str)
        == Some(agentgw_core::mcp::methods::INITIALIZE);
    let (session, new_id) = match (session_id, initialize) {
        (None, true) => match start_session(&backend).await {
            Ok((id, handle)) => (handle, Some(id)),
            Err(failure) => {
                let id = message.get("id").cloned().unwrap_or(Value::Null);
                return start_failure(failure, id);
            }
        },
        (Some(id), false) => match backend.sessions.lock().get(id.as_str()) {
            Some(handle) if !handle.is_closed() => (handle.clone(), None),
            _ => return session_not_found(),
        },
        (None, false) => {
            return transport_error(
                StatusCode::BAD_REQUEST,
                "missing-session",
                "an Mcp-Session-Id header is required (from the initialize response)",
            );
        }
        (Some(_), true) => {
            return transport_error(
                StatusCode::BAD_REQUEST,
                "initialize-in-session",
                "initialize starts a session: send it without an Mcp-Session-Id",
            );
        }
    };
    let mut res = match message {
        Value::Array(batch) if !batch.is_empty() => {
            let answers = futures_util::future::join_all(
                batch
                    .into_iter()
                    .map(|message| exchange(&backend.settings, &session, message)),
            )
            .await;
            let answers: Vec<Value> = answers
                .into_iter()
                .flatten()
                .filter_map(|answer| serde_json::from_slice(&answer).ok())
                .collect();
            if answers.is_empty() {
                accepted()
            } else {
                json_response(Bytes::from(Value::Array(answers).to_string()))
            }
        }
        message @ Value::Object(_) => match exchange(&backend.settings, &session, message).await {
            Some(answer) => json_response(answer),
            None => accepted(),
        },
        _ => {
            return transport_error(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "the body is not a JSON-RPC message",
            );
        }
    };
    if let Some(id) = new_id
        && let Ok(value) = HeaderValue::from_str(&id)
    {
        res.headers_mut().insert(MCP_SESSION_ID, value);
    }
    res
}

/// `GET`: the stream of the server's own messages in the request's session.
async fn listen(backend: &StdioBackend, session_id: Option<HeaderValue>) -> Response<StdioBody> {
    let session = session_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|id| backend.sessions.lock().get(id).cloned());
    let Some(session) = session else {
        let res = if session_id.is_some() {
            session_not_found()
        } else {
            transport_error(
                StatusCode::BAD_REQUEST,
                "missing-session",
                "GET needs an Mcp-Session-Id header",
            )
        };
        return res.map(StdioBody::from);
    };
    let (reply, stream) = tokio::sync::oneshot::channel();
    let opened = match session.send(Command::Listen(reply)) {
        Ok(()) => stream.await.ok(),
        Err(_) => None,
    };
    let Some(events) = opened else {
        return session_not_found().map(StdioBody::from);
    };
    let mut res = Response::new(StdioBody::events(events));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    res.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    res
}

/// Sends one message to the session's server; a request's answer is the server's response (or
/// a JSON-RPC error saying why there is none), a notification's is `None`.
async fn exchange(settings: &Settings, session: &SessionHandle, message: Value) -> Option<Bytes> {
    let tool_call = message.get("method").and_then(Value::as_str)
        == Some(agentgw_core::mcp::methods::TOOLS_CALL);
    let timeout = match settings.tool_timeout {
        Some(limit) if tool_call => limit,
        _ => settings.request_timeout,
    };
    let id = message
        .get("id")
        .filter(|id| !id.is_null() && message.get("method").is_some())
        .cloned();
    // Compact JSON: one message per line, whatever the client's formatting.
    let mut line = serde_json::to_vec(&message).unwrap_or_default();
    line.push(b'\n');
    let Some(id) = id else {
        let _ = session.send(Command::Send(Bytes::from(line)));
        return None;
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let sent = session.send(Command::Request {
        id: session::id_key(&id),
        line: Bytes::from(line),
        reply,
        timeout,
    });
    let result = match sent {
        Ok(()) => answer.await.unwrap_or(Err(Failure::Ended)),
        Err(failure) => Err(failure),
    };
    Some(match result {
        Ok(answer) => answer,
        Err(failure) => {
            let rejection = failure_rejection(failure);
            rejection.record();
            let res = rejection.into_response(&ResponseShape::JsonRpc { id });
            // The body of a rendered rejection is one JSON object.
            res.into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default()
        }
    })
}

fn failure_rejection(failure: Failure) -> Rejection {
    match failure {
        Failure::Timeout => Rejection::new(StatusCode::GATEWAY_TIMEOUT, LAYER, "maxExecutionTime")
            .with_jsonrpc_code(codes::TIMEOUT)
            .with_message("the tool server did not answer in time; its session was ended"),
        Failure::TooLarge => Rejection::new(StatusCode::BAD_GATEWAY, LAYER, "maxOutputSize")
            .with_jsonrpc_code(codes::PAYLOAD_TOO_LARGE)
            .with_message("the tool server's answer exceeds the size limit; its session was ended"),
        Failure::Ended => Rejection::new(StatusCode::BAD_GATEWAY, LAYER, "server-exited")
            .with_message("the tool server's session ended before it answered"),
        Failure::Busy => Rejection::new(StatusCode::SERVICE_UNAVAILABLE, LAYER, "server-busy")
            .with_message("the tool server is not keeping up with its requests"),
        Failure::DuplicateId => Rejection::new(StatusCode::BAD_REQUEST, LAYER, "duplicate-id")
            .with_message("a request with this id is still waiting for its answer"),
    }
}

/// Why a session could not start.
enum StartFailure {
    Full,
    Spawn(String),
}

fn start_failure(failure: StartFailure, id: Value) -> Response<Full<Bytes>> {
    let rejection = match failure {
        StartFailure::Full => Rejection::new(StatusCode::SERVICE_UNAVAILABLE, LAYER, "maxSessions")
            .with_message("the tool server's session limit is reached; try again later"),
        StartFailure::Spawn(error) => {
            tracing::error!(%error, "cannot start the stdio MCP server");
            Rejection::new(StatusCode::BAD_GATEWAY, LAYER, "spawn-failed")
                .with_message("the tool server could not be started")
        }
    };
    rejection.respond_in(&ResponseShape::JsonRpc { id })
}

fn session_not_found() -> Response<Full<Bytes>> {
    transport_error(
        StatusCode::NOT_FOUND,
        "session-not-found",
        "unknown or ended session: initialize a new one",
    )
}

fn accepted() -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::default());
    *res.status_mut() = StatusCode::ACCEPTED;
    res
}

fn json_response(body: Bytes) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// Reserves a place, starts a server process and its session task.
async fn start_session(backend: &StdioBackend) -> Result<(String, SessionHandle), StartFailure> {
    let settings = &backend.settings;
    let id = new_session_id().map_err(StartFailure::Spawn)?;
    // The count is checked again once the process runs (two initializes may race); the
    // process of the loser is killed when its handle drops.
    if backend.sessions() >= settings.max_sessions {
        return Err(StartFailure::Full);
    }
    let child = spawn(settings)
        .await
        .map_err(|e| StartFailure::Spawn(e.to_string()))?;
    let id: Arc<str> = Arc::from(id);
    let limits = SessionLimits {
        max_message: settings.max_message,
        idle_timeout: settings.idle_timeout,
    };
    let handle = session::start(
        Arc::clone(&id),
        child,
        limits,
        Arc::downgrade(&backend.sessions),
    );
    let mut sessions = backend.sessions.lock();
    if sessions.len() >= settings.max_sessions {
        return Err(StartFailure::Full);
    }
    sessions.insert(Arc::clone(&id), handle.clone());
    Ok((id.to_string(), handle))
}

fn new_session_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a session id: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn command(shared: &Settings) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(&shared.program);
    command
        .args(&shared.args)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so that ending a session ends what the server started too.
    #[cfg(unix)]
    command.process_group(0);
    if let Some(path) = &shared.path_var {
        command.env("PATH", path);
    }
    command.envs(shared.env.iter().map(|(k, v)| (k, v)));
    command
}

/// Starts the server process: on Linux from a thread that first restricts itself (the
/// restrictions are inherited by the process and stay on that thread, which then ends).
#[cfg(target_os = "linux")]
async fn spawn(shared: &Settings) -> Result<tokio::process::Child, SandboxError> {
    let mut command = command(shared);
    let restrictions = shared.restrictions.clone();
    let runtime = tokio::runtime::Handle::current();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let sandboxed = !restrictions.is_empty();
    let start = move || {
        let result = restrictions.apply().and_then(|()| {
            let _entered = runtime.enter();
            command
                .spawn()
                .map_err(|e| SandboxError::Spawn(e.to_string()))
        });
        let _ = sender.send(result);
    };
    if sandboxed {
        std::thread::Builder::new()
            .name("agentgw-stdio-spawn".into())
            .spawn(start)
            .map_err(|e| SandboxError::Spawn(e.to_string()))?;
    } else {
        start();
    }
    let child = receiver
        .await
        .map_err(|_| SandboxError::Spawn("the spawning thread ended".into()))??;
    // The resource limits land before the first message is written to the server: what runs
    // without them is the program's own start-up, never a request.
    if let Some(pid) = child.id() {
        shared.restrictions.limit(pid)?;
    }
    Ok(child)
}

#[cfg(not(target_os = "linux"))]
async fn spawn(shared: &Settings) -> Result<tokio::process::Child, SandboxError> {
    command(shared)
        .spawn()
        .map_err(|e| SandboxError::Spawn(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_resolve_through_path_or_fail_with_the_field() {
        let path = std::env::var_os("PATH");
        let sh = resolve("sh", path.as_deref()).expect("sh is in PATH");
        assert!(sh.is_absolute());
        assert!(resolve("/bin/sh", None).is_ok());
        let missing = resolve("agentgw-no-such-program", path.as_deref()).unwrap_err();
        assert!(missing.contains("not found in PATH"), "{missing}");
        let directory = resolve("/usr", None).unwrap_err();
        assert!(directory.contains("not an executable file"), "{directory}");
        let error = StdioBackend::from_config(&StdioServerConfig::new("agentgw-no-such-program"))
            .unwrap_err();
        assert_eq!(agentgw_core::ConfigError::path(&error), "command");
        let error =
            StdioBackend::from_config(&StdioServerConfig::new("sh").max_sessions(0)).unwrap_err();
        assert_eq!(agentgw_core::ConfigError::path(&error), "maxSessions");
    }

    /// A stdio server in `sh`: answers every request with its own id, until `exit` is called.
    /// `ask` sends the client a notification and a request, and answers with the client's
    /// reply; `spawn` starts a `sleep` in the background and answers with its pid.
    const ECHO: &str = r#"while IFS= read -r line; do
      case "$line" in *'"exit"'*) exit 0;; esac
      id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9][0-9]*\).*/\1/p')
      case "$line" in *'"spawn"'*)
        sleep 1000 &
        printf '{"jsonrpc":"2.0","id":%s,"result":{"pid":%s}}\n' "$id" "$!"
        continue;;
      esac
      case "$line" in *'"ask"'*)
        printf '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"asking"}}\n'
        printf '{"jsonrpc":"2.0","id":"s1","method":"roots/list"}\n'
        IFS= read -r reply
        printf '{"jsonrpc":"2.0","id":%s,"result":{"reply":%s}}\n' "$id" "$reply"
        continue;;
      esac
      [ -n "$id" ] && printf '{"jsonrpc":"2.0","id":%s,"result":{"ok":true}}\n' "$id"
    done"#;

    fn echo_server() -> StdioServerConfig {
        StdioServerConfig::new("sh").args(["-c", ECHO])
    }

    fn post(body: Value, session: Option<&str>) -> Request<Full<Bytes>> {
        let mut req = Request::post("/mcp").header(CONTENT_TYPE, "application/json");
        if let Some(session) = session {
            req = req.header(MCP_SESSION_ID, session);
        }
        req.body(Full::new(Bytes::from(body.to_string()))).unwrap()
    }

    async fn send(backend: &StdioBackend, req: Request<Full<Bytes>>) -> (StatusCode, Value) {
        let mut backend = backend.clone();
        let res = Service::call(&mut backend, req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn initialize(backend: &StdioBackend) -> String {
        let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"});
        let mut b = backend.clone();
        let res = Service::call(&mut b, post(init, None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.headers()[MCP_SESSION_ID].to_str().unwrap().to_owned()
    }

    fn request(id: u32, method: &str) -> Value {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method})
    }

    #[tokio::test]
    async fn messages_outside_a_session_are_refused_with_http_statuses() {
        let backend = StdioBackend::from_config(&echo_server()).unwrap();
        let (status, _) = send(&backend, post(request(1, "tools/list"), None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = send(&backend, post(request(1, "tools/list"), Some("nope"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let get = Request::get("/mcp").body(Full::<Bytes>::default()).unwrap();
        let (status, _) = send(&backend, get).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let get = Request::get("/mcp")
            .header(MCP_SESSION_ID, "nope")
            .body(Full::<Bytes>::default())
            .unwrap();
        let (status, _) = send(&backend, get).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let put = Request::put("/mcp").body(Full::<Bytes>::default()).unwrap();
        let (status, _) = send(&backend, put).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let junk = Request::post("/mcp")
            .body(Full::new(Bytes::from("{")))
            .unwrap();
        let (status, _) = send(&backend, junk).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let big = StdioBackend::from_config(&echo_server())
            .unwrap()
            .max_body(8);
        let (status, _) = send(&big, post(request(1, "initialize"), None)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        // None of these started a process.
        assert_eq!(backend.sessions(), 0);
    }

    #[tokio::test]
    async fn a_batch_gets_one_answer_per_request_and_notifications_202() {
        let backend = StdioBackend::from_config(&echo_server()).unwrap();
        let session = initialize(&backend).await;
        let notification =
            serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let (status, _) = send(&backend, post(notification.clone(), Some(&session))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let batch = Value::Array(vec![
            request(2, "tools/list"),
            notification,
            request(3, "ping"),
        ]);
        let (status, answers) = send(&backend, post(batch, Some(&session))).await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<&Value> = answers
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["id"])
            .collect();
        assert_eq!(ids, [2, 3]);
    }

    #[tokio::test]
    async fn the_servers_own_messages_go_to_the_get_stream() {
        let backend = StdioBackend::from_config(&echo_server()).unwrap();
        let session = initialize(&backend).await;
        // No stream open: the bridge answers the server's request, so it never waits.
        let (_, answer) = send(&backend, post(request(2, "ask"), Some(&session))).await;
        assert_eq!(
            answer["result"]["reply"]["error"]["code"], -32601,
            "{answer}"
        );

        let get = Request::get("/mcp")
            .header(MCP_SESSION_ID, &session)
            .body(Full::<Bytes>::default())
            .unwrap();
        let mut service = backend.clone();
        let res = Service::call(&mut service, get).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
        let mut events = res.into_body();
        let asking = tokio::spawn({
            let (backend, session) = (backend.clone(), session.clone());
            async move { send(&backend, post(request(3, "ask"), Some(&session))).await }
        });
        let mut next_event = async || {
            let frame = events.frame().await.unwrap().unwrap();
            let data = frame.into_data().unwrap();
            let text = std::str::from_utf8(&data).unwrap().to_owned();
            let json = text
                .strip_prefix("data: ")
                .unwrap()
                .strip_suffix("\n\n")
                .unwrap();
            serde_json::from_str::<Value>(json).unwrap()
        };
        assert_eq!(next_event().await["method"], "notifications/message");
        let question = next_event().await;
        assert_eq!(question["method"], "roots/list");
        assert_eq!(question["id"], "s1");
        // The client answers with a POST; the server gets it and finishes its request.
        let reply = serde_json::json!({"jsonrpc": "2.0", "id": "s1", "result": {"roots": []}});
        let (status, _) = send(&backend, post(reply, Some(&session))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (_, answer) = asking.await.unwrap();
        assert_eq!(
            answer["result"]["reply"]["result"]["roots"],
            serde_json::json!([])
        );
    }

    #[tokio::test]
    async fn an_idle_session_ends_and_then_is_not_found() {
        let backend =
            StdioBackend::from_config(&echo_server().idle_timeout(Duration::from_millis(100)))
                .unwrap();
        let session = initialize(&backend).await;
        assert_eq!(backend.sessions(), 1);
        tokio::time::timeout(Duration::from_secs(30), async {
            while backend.sessions() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the idle session ends");
        let (status, _) = send(&backend, post(request(2, "tools/list"), Some(&session))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_server_that_exits_ends_its_session() {
        let backend = StdioBackend::from_config(&echo_server()).unwrap();
        let session = initialize(&backend).await;
        // The server exits instead of answering: the request fails, the session is gone.
        let (status, answer) = send(&backend, post(request(2, "exit"), Some(&session))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["id"], 2);
        assert_eq!(
            answer["error"]["data"]["reason"], "server-exited",
            "{answer}"
        );
        let (status, _) = send(&backend, post(request(3, "tools/list"), Some(&session))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Dropping the backend would end the others; DELETE ends one.
        let other = initialize(&backend).await;
        let delete = Request::delete("/mcp")
            .header(MCP_SESSION_ID, &other)
            .body(Full::<Bytes>::default())
            .unwrap();
        let (status, _) = send(&backend, delete).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(backend.sessions(), 0);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn ending_a_session_ends_what_its_server_started() {
        let backend = StdioBackend::from_config(&echo_server()).unwrap();
        let session = initialize(&backend).await;
        let (_, answer) = send(&backend, post(request(2, "spawn"), Some(&session))).await;
        let pid = answer["result"]["pid"].as_u64().expect("a pid");
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        };
        assert!(alive());
        let delete = Request::delete("/mcp")
            .header(MCP_SESSION_ID, &session)
            .body(Full::<Bytes>::default())
            .unwrap();
        assert_eq!(send(&backend, delete).await.0, StatusCode::NO_CONTENT);
        tokio::time::timeout(Duration::from_secs(30), async {
            while alive() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the server's background process is killed with it");
    }

    #[test]
    fn session_ids_are_random_and_long() {
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
