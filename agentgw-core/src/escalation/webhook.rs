//! [`WebhookEscalator`]: escalation events POSTed to an HTTP endpoint (cargo feature
//! `escalation`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};

use super::{EscalationEvent, EscalationFailure, EscalationFuture, Escalator, Verdict};

/// Events waiting to be notified; a full queue drops the newest.
const QUEUE_SIZE: usize = 1024;
/// Notifications in flight at once.
const CONCURRENT_POSTS: usize = 16;

/// POSTs each [`EscalationEvent`] as JSON to a URL.
///
/// - **notify**: the event waits in a bounded queue (1024 events) and a background task on
///   the Tokio runtime that notified first POSTs it (16 POSTs at a time); the answer is only
///   logged when it is not `2xx`. A full queue, or no runtime, drops the event.
/// - **decide**: the event (`"pending": true`) is POSTed at once; the endpoint answers `2xx`
///   with `{"decision": "allow"}` or `{"decision": "deny"}`. Any other status or body, a
///   connection error and the timeout are failures, which reject the request.
pub struct WebhookEscalator {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    queue: Queue,
}

impl std::fmt::Debug for WebhookEscalator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEscalator")
            .field("url", &self.url.as_str())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl WebhookEscalator {
    /// An escalator POSTing to `url` (an absolute `http` or `https` URL), each POST bounded by
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong with the URL, or that the HTTP client cannot be built.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let (url, client) = crate::post_client::client(url, timeout)?;
        Ok(WebhookEscalator {
            client,
            url,
            headers: HeaderMap::new(),
            queue: Queue::new(),
        })
    }

    /// Adds a header sent with every POST.
    ///
    /// # Errors
    ///
    /// An invalid name or value, named (never the value).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, String> {
        let (name, value) = crate::post_client::header(name, value)?;
        self.headers.insert(name, value);
        Ok(self)
    }

    fn post(&self, event: &EscalationEvent) -> reqwest::RequestBuilder {
        self.client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(event).unwrap_or_default())
    }
}

impl Escalator for WebhookEscalator {
    fn notify(&self, event: &EscalationEvent) -> Result<(), EscalationFailure> {
        self.queue.push(self.post(event), &event.id)
    }

    fn decide(&self, event: &EscalationEvent, timeout: Duration) -> EscalationFuture {
        let request = self.post(event).timeout(timeout);
        Box::pin(async move {
            let response = request.send().await.map_err(|error| {
                if error.is_timeout() {
                    EscalationFailure::Timeout
                } else {
                    EscalationFailure::Unavailable(format!("webhook unreachable: {error}"))
                }
            })?;
            let status = response.status();
            if !status.is_success() {
                return Err(EscalationFailure::Unavailable(format!(
                    "webhook answered {status}"
                )));
            }
            let body = response.bytes().await.map_err(|error| {
                if error.is_timeout() {
                    EscalationFailure::Timeout
                } else {
                    EscalationFailure::Unavailable(format!("webhook answer unreadable: {error}"))
                }
            })?;
            parse_decision(&body)
        })
    }
}

/// The webhook's answer: `{"decision": "allow"}` or `{"decision": "deny"}`.
fn parse_decision(body: &[u8]) -> Result<Verdict, EscalationFailure> {
    #[derive(Deserialize)]
    struct Answer {
        decision: String,
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| {
        EscalationFailure::Unavailable(
            r#"the webhook's answer is not {"decision": "allow"|"deny"}"#.to_owned(),
        )
    })?;
    match answer.decision.as_str() {
        "allow" => Ok(Verdict::Allow),
        "deny" => Ok(Verdict::Deny),
        _ => Err(EscalationFailure::Unavailable(
            "the webhook's decision is neither `allow` nor `deny`".to_owned(),
        )),
    }
}

/// Notifications waiting for the background task, which starts on the first one.
struct Queue {
    sender: mpsc::Sender<(reqwest::RequestBuilder, String)>,
    started: AtomicBool,
    receiver: Mutex<Option<mpsc::Receiver<(reqwest::RequestBuilder, String)>>>,
}

impl Queue {
    fn new() -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_SIZE);
        Queue {
            sender,
            started: AtomicBool::new(false),
            receiver: Mutex::new(Some(receiver)),
        }
    }

    fn push(&self, request: reqwest::RequestBuilder, id: &str) -> Result<(), EscalationFailure> {
        if !self.started.load(Ordering::Acquire) && !self.start() {
            return Err(EscalationFailure::Dropped);
        }
        self.sender
            .try_send((request, id.to_owned()))
            .map_err(|_| EscalationFailure::Dropped)
    }

    /// Spawns the delivery task on the current runtime; `false` when there is none.
    fn start(&self) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut receiver = self.receiver.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(receiver) = receiver.take() {
            runtime.spawn(deliver(receiver));
            self.started.store(true, Ordering::Release);
        }
        true
    }
}

async fn deliver(mut receiver: mpsc::Receiver<(reqwest::RequestBuilder, String)>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_POSTS));
    while let Some((request, id)) = receiver.recv().await {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            match request.send().await {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => {
                    tracing::warn!(%id, status = %response.status(), "escalation webhook refused an event");
                }
                Err(error) => tracing::warn!(%id, %error, "escalation webhook unreachable"),
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::{Direction, Escalation, EscalationConfig};

    #[test]
    fn decisions_are_allow_or_deny_and_nothing_else() {
        assert_eq!(
            parse_decision(br#"{"decision":"allow"}"#),
            Ok(Verdict::Allow)
        );
        assert_eq!(parse_decision(br#"{"decision":"deny"}"#), Ok(Verdict::Deny));
        for bad in [
            &br#"{"decision":"ALLOW"}"#[..],
            b"allow",
            b"",
            br#"{"ok":true}"#,
        ] {
            assert!(parse_decision(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_urls_and_headers_are_errors_naming_the_field() {
        use crate::config::ConfigError;
        let err =
            Escalation::from_config(&EscalationConfig::default().webhook("ftp://x/")).unwrap_err();
        assert_eq!(err.path(), "webhook");
        let err = Escalation::from_config(
            &EscalationConfig::default()
                .webhook("http://127.0.0.1:9/")
                .header("bad header", "v"),
        )
        .unwrap_err();
        assert_eq!(err.path(), "headers.bad header");
    }

    /// A real endpoint on a socket: it answers by the rule, `slow` never in time.
    #[tokio::test]
    async fn a_webhook_decides_and_is_notified() {
        /// Each POST: its `x-token` header and its event.
        type Seen = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;
        let seen: Seen = Arc::default();
        let recorded = Arc::clone(&seen);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let recorded = Arc::clone(&recorded);
                    async move {
                        let event: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let token = headers
                            .get("x-token")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        recorded.lock().unwrap().push((token, event.clone()));
                        match event["rule"].as_str() {
                            Some("slow") => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                (axum::http::StatusCode::OK, r#"{"decision":"allow"}"#)
                            }
                            Some("ok") => (axum::http::StatusCode::OK, r#"{"decision":"allow"}"#),
                            Some("broken") => {
                                (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "oops")
                            }
                            _ => (axum::http::StatusCode::OK, r#"{"decision":"deny"}"#),
                        }
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let config = EscalationConfig::default()
            .webhook(url)
            .block_pending(true)
            .timeout(Duration::from_millis(300))
            .header("x-token", "t0k");
        let escalation = Escalation::from_config(&config).unwrap();
        let event = |rule: &str| EscalationEvent::new("toolsec", rule, Direction::Request);
        assert_eq!(escalation.decide(event("ok")).await, Verdict::Allow);
        assert_eq!(escalation.decide(event("no")).await, Verdict::Deny);
        assert_eq!(escalation.decide(event("broken")).await, Verdict::Deny);
        assert_eq!(escalation.decide(event("slow")).await, Verdict::Deny);

        escalation.notify(event("notified"));
        for _ in 0..200 {
            if seen.lock().unwrap().len() == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 5, "four decisions and one notification");
        assert!(
            seen.iter()
                .all(|(token, _)| token.as_deref() == Some("t0k"))
        );
        assert_eq!(seen[0].1["pending"], true);
        assert_eq!(seen[4].1["rule"], "notified");
        assert_eq!(seen[4].1["pending"], false);
    }
}
