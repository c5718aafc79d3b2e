//! An escalation webhook on 127.0.0.1 for the escalation tests of every crate: it records the
//! events it receives and answers `{"decision": "allow"|"deny"}` by the path it was given.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};

/// How long `/slow` waits before it answers: far beyond any escalation timeout (at most 60 s
/// is allowed, tests configure a second or less).
pub const SLOW_HOOK_DELAY: Duration = Duration::from_secs(30);

/// A recording escalation webhook. Its [`url`](Self::url)s decide by path:
///
/// | path | decision |
/// |---|---|
/// | `/allow` | allow |
/// | `/deny` (or any other single segment) | deny |
/// | `/slow` | allow, after [`SLOW_HOOK_DELAY`] |
/// | `/allow-rule/{rule}` | allow an event whose `rule` is `{rule}`, deny any other |
///
/// Every POSTed body is recorded as JSON (a body that is not JSON is recorded as a string).
#[derive(Debug)]
pub struct EscalationHook {
    base: String,
    events: Arc<Mutex<Vec<Value>>>,
}

/// The decision of the hook for `event`, posted to `mode` (the path after `/`).
async fn decide(mode: &str, event: &Value) -> &'static str {
    let allow = match mode.split_once('/') {
        Some(("allow-rule", rule)) => event["rule"] == rule,
        Some(_) => false,
        None if mode == "slow" => {
            tokio::time::sleep(SLOW_HOOK_DELAY).await;
            true
        }
        None => mode == "allow",
    };
    if allow { "allow" } else { "deny" }
}

impl EscalationHook {
    /// Starts the hook on a free port of 127.0.0.1; it runs until the runtime stops.
    pub async fn start() -> std::io::Result<Self> {
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let seen = Arc::clone(&events);
        let app = Router::new().route(
            "/{*mode}",
            post(move |Path(mode): Path<String>, body: Bytes| {
                let seen = Arc::clone(&seen);
                async move {
                    let event = serde_json::from_slice(&body)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
                    seen.lock().expect("hook events").push(event.clone());
                    axum::Json(json!({ "decision": decide(&mode, &event).await }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { base, events })
    }

    /// The hook's URL for `mode` (`allow`, `deny`, `slow`, `allow-rule/<rule>`).
    pub fn url(&self, mode: &str) -> String {
        format!("{}/{mode}", self.base)
    }

    /// The events received so far, in order.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().expect("hook events").clone()
    }

    /// The events, once at least `n` have arrived or after five seconds (notifications are
    /// delivered in the background).
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            if self.events.lock().expect("hook events").len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.events()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn decides_by_path_and_records_every_event() {
        let hook = EscalationHook::start().await.unwrap();
        let client = reqwest::Client::new();
        for (mode, rule, expected) in [
            ("allow", "a", "allow"),
            ("deny", "a", "deny"),
            ("allow-rule/injection", "injection", "allow"),
            ("allow-rule/injection", "other", "deny"),
        ] {
            let answer: Value = client
                .post(hook.url(mode))
                .json(&json!({ "rule": rule }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(answer["decision"], expected, "{mode} {rule}");
        }
        let rules: Vec<Value> = hook
            .wait_for(4)
            .await
            .iter()
            .map(|e| e["rule"].clone())
            .collect();
        assert_eq!(rules, ["a", "a", "injection", "other"]);
    }
}
