//! One MCP session: one server process, its pipes, and the requests waiting for its answers.
//!
//! A session is a task that owns the process. Requests reach it over a channel; it writes
//! them to the server's stdin (through a writer task, so that a server that stops reading
//! cannot stall it), reads the server's stdout line by line (through a reader task, bounded by
//! the largest message), hands each response to the request with the same id and the server's
//! own messages to the client's stream (`GET`), and ends the
//! process when a request runs out of time, a message is too large, the session is idle or
//! closed, or the backend is dropped.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::lines::{Line, Overflow, read_line};
use super::service::Sessions;

/// Why a request got no answer from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer within the request's time; the server was ended.
    Timeout,
    /// The server wrote a message over the size limit; the server was ended.
    TooLarge,
    /// The server exited, or the session was ended, before answering.
    Ended,
    /// The server is not reading its input fast enough.
    Busy,
    /// A request with the same id is still waiting for its answer.
    DuplicateId,
}

/// Where a request's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<Bytes, Failure>>;

/// The requests waiting for an answer, by id, with their deadlines.
type Pending = HashMap<String, (Instant, Reply)>;

/// A message for the server.
pub(crate) enum Command {
    /// A request: `reply` gets the server's answer (one JSON line) or why there is none
    /// within `timeout`.
    Request {
        id: String,
        line: Bytes,
        reply: Reply,
        timeout: Duration,
    },
    /// A notification or a response to the server: nothing comes back.
    Send(Bytes),
    /// Opens the client's stream of the server's own messages (its requests and
    /// notifications), replacing the one open before.
    Listen(oneshot::Sender<mpsc::Receiver<Bytes>>),
}

/// The handle the backend keeps: dropping every clone of it ends the session.
#[derive(Clone)]
pub(crate) struct SessionHandle {
    commands: mpsc::Sender<Command>,
}

impl SessionHandle {
    /// Sends `command`; fails when the session has ended.
    pub(crate) fn send(&self, command: Command) -> Result<(), Failure> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Failure::Busy,
            mpsc::error::TrySendError::Closed(_) => Failure::Ended,
        })
    }

    /// Whether the session has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }
}

/// How a session runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    /// The largest message the server may write.
    pub(crate) max_message: usize,
    /// How long the session may go without a request.
    pub(crate) idle_timeout: Duration,
}

/// Queued messages per session: beyond this, a request is refused (the server is not keeping
/// up) rather than buffered without bound.
const QUEUE: usize = 256;

/// Server messages waiting for the client's stream: beyond this, a notification is dropped and
/// a request answered by the bridge.
const STREAM_QUEUE: usize = 64;

/// The longest line of the server's stderr that is logged whole.
const STDERR_LINE: usize = 4096;

/// Starts the task that runs `child` as session `id`; it removes itself from `sessions` when
/// it ends.
pub(crate) fn start(
    id: Arc<str>,
    mut child: Child,
    limits: SessionLimits,
    sessions: Weak<Sessions>,
) -> SessionHandle {
    let (commands, receiver) = mpsc::channel(QUEUE);
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(drain_stderr(Arc::clone(&id), stderr));
    }
    tokio::spawn(async move {
        let group = child.id();
        let end = run(&id, &mut child, stdin, stdout, receiver, limits).await;
        // The server leads its own process group: what it started (a tool's subprocess) ends
        // with it.
        #[cfg(target_os = "linux")]
        if let Some(group) = group
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = group;
        // kill_on_drop would do it too; killing here also reaps the process now.
        let _ = child.kill().await;
        tracing::debug!(session = %id, reason = end, "stdio MCP session ended");
        if let Some(sessions) = sessions.upgrade() {
            sessions.remove(&id);
        }
    });
    SessionHandle { commands }
}

async fn run(
    id: &str,
    child: &mut Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    mut commands: mpsc::Receiver<Command>,
    limits: SessionLimits,
) -> &'static str {
    let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
        return "no pipes";
    };
    let (to_server, writes) = mpsc::channel::<Bytes>(QUEUE);
    tokio::spawn(write_stdin(stdin, writes));
    let (lines_tx, mut lines) = mpsc::channel::<Line>(16);
    tokio::spawn(read_stdout(stdout, limits.max_message, lines_tx));

    let mut pending = Pending::new();
    let mut listener: Option<mpsc::Sender<Bytes>> = None;
    let mut last_request = Instant::now();
    let mut exited = false;
    let end = loop {
        let next_deadline = pending.values().map(|(deadline, _)| *deadline).min();
        let idle_at = last_request + limits.idle_timeout;
        tokio::select! {
            command = commands.recv() => match command {
                None => break "closed",
                Some(Command::Request { id: request, line, reply, timeout }) => {
                    last_request = Instant::now();
                    match pending.entry(request) {
                        Entry::Occupied(_) => {
                            let _ = reply.send(Err(Failure::DuplicateId));
                        }
                        Entry::Vacant(_) if to_server.try_send(line).is_err() => {
                            let _ = reply.send(Err(Failure::Busy));
                        }
                        Entry::Vacant(place) => {
                            place.insert((last_request + timeout, reply));
                        }
                    }
                }
                Some(Command::Send(line)) => {
                    last_request = Instant::now();
                    if to_server.try_send(line).is_err() {
                        tracing::warn!(session = %id, "stdio MCP server is not reading: message dropped");
                    }
                }
                Some(Command::Listen(reply)) => {
                    let (events, stream) = mpsc::channel(STREAM_QUEUE);
                    listener = Some(events);
                    let _ = reply.send(stream);
                }
            },
            line = lines.recv() => match line {
                None => break "stdout closed",
                Some(Line::TooLong(_)) => {
                    // Closed first: a client told of the failure finds the session gone.
                    commands.close();
                    fail_all(&mut pending, Failure::TooLarge);
                    break "message over the size limit";
                }
                Some(Line::Whole(line)) => {
                    if let Some(key) = response_id(&line) {
                        match pending.remove(&key) {
                            Some((_, reply)) => {
                                let _ = reply.send(Ok(Bytes::from(line)));
                            }
                            None => tracing::debug!(session = %id, "stdio MCP server answered no pending request"),
                        }
                    } else {
                        // The server's own request or notification: to the client's stream
                        // when one is open; else the bridge answers a request itself.
                        let line = Bytes::from(line);
                        let relayed = listener
                            .as_ref()
                            .is_some_and(|events| events.try_send(line.clone()).is_ok());
                        if !relayed && let Some(answer) = answer(&line) {
                            let _ = to_server.try_send(answer);
                        }
                    }
                }
            },
            // What the server wrote before it exited is still read: the session ends when its
            // output does.
            status = child.wait(), if !exited => {
                tracing::info!(session = %id, ?status, "stdio MCP server exited");
                exited = true;
            }
            () = sleep_until(next_deadline) => {
                commands.close();
                let now = Instant::now();
                let expired: Vec<String> = pending
                    .iter()
                    .filter(|(_, (deadline, _))| *deadline <= now)
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in expired {
                    if let Some((_, reply)) = pending.remove(&key) {
                        let _ = reply.send(Err(Failure::Timeout));
                    }
                }
                break "request timed out";
            }
            () = tokio::time::sleep_until(idle_at), if pending.is_empty() => break "idle",
        }
    };
    commands.close();
    fail_all(&mut pending, Failure::Ended);
    end
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn fail_all(pending: &mut Pending, failure: Failure) {
    for (_, (_, reply)) in pending.drain() {
        let _ = reply.send(Err(failure));
    }
}

/// The key of a JSON-RPC id (`1` and `"1"` differ).
pub(crate) fn id_key(id: &Value) -> String {
    id.to_string()
}

/// The id of a JSON-RPC response (a message with an id and no method).
fn response_id(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        id: Option<Value>,
        method: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = serde_json::from_slice(line).ok()?;
    match (probe.id, probe.method) {
        (Some(id), None) if !id.is_null() => Some(id_key(&id)),
        _ => None,
    }
}

/// The answer to a request the server sends its client while the client has no stream open
/// (`GET`) to receive it: `ping` gets an empty result and anything else "method not found",
/// instead of leaving the server waiting.
fn answer(line: &[u8]) -> Option<Bytes> {
    #[derive(serde::Deserialize)]
    struct Request {
        id: Option<Value>,
        method: Option<String>,
    }
    let request: Request = serde_json::from_slice(line).ok()?;
    let (Some(id), Some(method)) = (request.id, request.method) else {
        return None;
    };
    let reply = if method == "ping" {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}})
    } else {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": agentgw_core::mcp::codes::METHOD_NOT_FOUND,
            "message": "the gateway's stdio bridge does not relay server-to-client requests",
        }})
    };
    let mut bytes = serde_json::to_vec(&reply).ok()?;
    bytes.push(b'\n');
    Some(Bytes::from(bytes))
}

async fn write_stdin(mut stdin: ChildStdin, mut lines: mpsc::Receiver<Bytes>) {
    while let Some(line) = lines.recv().await {
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}

async fn read_stdout(stdout: ChildStdout, max: usize, lines: mpsc::Sender<Line>) {
    let mut reader = BufReader::new(stdout);
    loop {
        match read_line(&mut reader, max, Overflow::Stop).await {
            Ok(Some(line)) => {
                let stop = matches!(line, Line::TooLong(_));
                if lines.send(line).await.is_err() || stop {
                    return;
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

async fn drain_stderr(id: Arc<str>, stderr: ChildStderr) {
    let mut reader = BufReader::new(stderr);
    while let Ok(Some(line)) = read_line(&mut reader, STDERR_LINE, Overflow::Truncate).await {
        let (Line::Whole(text) | Line::TooLong(text)) = line;
        tracing::info!(session = %id, "stdio MCP server: {}", String::from_utf8_lossy(&text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_told_from_requests_and_notifications() {
        assert_eq!(
            response_id(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
            Some("7".into())
        );
        assert_eq!(
            response_id(br#"{"jsonrpc":"2.0","id":"7","error":{"code":1,"message":"x"}}"#),
            Some("\"7\"".into())
        );
        assert_eq!(
            response_id(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            None
        );
        assert_eq!(
            response_id(br#"{"jsonrpc":"2.0","method":"notifications/message"}"#),
            None
        );
        assert_eq!(response_id(b"not json"), None);
    }

    #[test]
    fn server_requests_are_answered_by_the_bridge() {
        let pong = answer(br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#).unwrap();
        let pong: Value = serde_json::from_slice(&pong).unwrap();
        assert_eq!(pong["id"], 3);
        assert!(pong["result"].is_object());
        let refused =
            answer(br#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage"}"#).unwrap();
        let refused: Value = serde_json::from_slice(&refused).unwrap();
        assert_eq!(refused["error"]["code"], -32601);
        assert!(answer(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#).is_none());
        assert!(answer(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_none());
    }
}
