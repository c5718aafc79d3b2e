//! `stdio`: how to launch a stdio MCP server.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// How many sessions (processes) a [`StdioBackend`](super::StdioBackend) runs at once unless
/// `maxSessions` says otherwise.
pub const DEFAULT_MAX_SESSIONS: usize = 16;

/// How long a session may go without a request before its process is ended, unless
/// `idleTimeout` says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// `stdio`: the MCP server to launch, one process per MCP session.
///
/// ```yaml
/// command: mcp-server-git          # a path, or a name looked up in the gateway's PATH
/// args: [--repository, /srv/repo]
/// env: {GIT_TERMINAL_PROMPT: "0"}  # the server's whole environment, with PATH
/// maxSessions: 16                  # processes at once; an initialize beyond is refused
/// idleTimeout: 5m                  # a session without requests for this long is ended
/// ```
///
/// The server starts with an empty environment plus `PATH` (the gateway's) and `env`: the
/// gateway's own variables (API keys, tokens) are not passed on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct StdioServerConfig {
    /// The program: a path, or a name looked up in `PATH` when the backend is built.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables set for it (beside `PATH`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The most sessions (server processes) at once; default [`DEFAULT_MAX_SESSIONS`].
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// A session without requests for this long is ended and its process killed; default
    /// [`DEFAULT_IDLE_TIMEOUT`].
    #[serde(
        default = "default_idle_timeout",
        with = "agentgw_core::config::duration"
    )]
    pub idle_timeout: Duration,
}

fn default_max_sessions() -> usize {
    DEFAULT_MAX_SESSIONS
}

fn default_idle_timeout() -> Duration {
    DEFAULT_IDLE_TIMEOUT
}

impl StdioServerConfig {
    /// Runs `command` without arguments, with the default limits.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Sets `args`.
    #[must_use]
    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Adds one variable to `env`.
    #[must_use]
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Sets `maxSessions`.
    #[must_use]
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// Sets `idleTimeout`.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_matches_the_builders() {
        let parsed: StdioServerConfig = serde_saphyr::from_str(
            "command: mcp-server\nargs: [--root, /srv]\nenv: {A: b}\nmaxSessions: 2\nidleTimeout: 30s\n",
        )
        .unwrap();
        let built = StdioServerConfig::new("mcp-server")
            .args(["--root", "/srv"])
            .env("A", "b")
            .max_sessions(2)
            .idle_timeout(Duration::from_secs(30));
        assert_eq!(parsed, built);
        let minimal: StdioServerConfig = serde_saphyr::from_str("command: x\n").unwrap();
        assert_eq!(minimal, StdioServerConfig::new("x"));
        let error = serde_saphyr::from_str::<StdioServerConfig>("command: x\ncwd: /\n")
            .expect_err("unknown field");
        assert!(error.to_string().contains("cwd"), "{error}");
    }
}
