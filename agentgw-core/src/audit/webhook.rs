//! Audit events POSTed to an HTTP endpoint in batches (cargo feature `webhook`).

use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::mpsc;

use super::queue::{Queue, Worker, count_dropped};
use super::{AuditEvent, AuditSink};

/// The sink label of dropped webhook events.
const SINK: &str = "webhook";

/// POSTs audit events to a URL as JSON arrays, in batches.
///
/// Events wait in a bounded queue; a background task sends a batch when it holds
/// `batch_size` events or when its oldest event has waited `flush_interval`. `record` never
/// blocks: events that do not fit in the queue, and batches the endpoint does not accept
/// (an error or a non-2xx status), are counted in
/// `agentgateway_audit_dropped_total{sink="webhook"}`.
#[derive(Debug)]
pub struct WebhookSink {
    queue: Queue,
}

/// Options of a [`WebhookSink`].
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Extra request headers (an authorization token, a tenant).
    pub headers: HeaderMap,
    /// Most events per POST (default 100).
    pub batch_size: usize,
    /// Longest an event waits for its batch to fill (default 1 s).
    pub flush_interval: Duration,
    /// Timeout of one POST (default 5 s).
    pub timeout: Duration,
    /// Events held while delivery lags (default 10000).
    pub queue_size: usize,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            headers: HeaderMap::new(),
            batch_size: 100,
            flush_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            queue_size: 10_000,
        }
    }
}

impl WebhookOptions {
    /// Adds a request header; an invalid name or value is an error naming it.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, String> {
        let (name, value) = crate::post_client::header(name, value)?;
        self.headers.insert(name, value);
        Ok(self)
    }
}

impl WebhookSink {
    /// A sink POSTing to `url` (checked to be an absolute `http` or `https` URL).
    pub fn new(url: &str, options: WebhookOptions) -> Result<Self, String> {
        let (url, client) = crate::post_client::client(url, options.timeout)?;
        let queue_size = options.queue_size;
        let worker: Worker =
            Box::new(move |receiver| Box::pin(deliver(client, url, options, receiver)));
        Ok(Self {
            queue: Queue::new(SINK, queue_size, worker),
        })
    }
}

impl AuditSink for WebhookSink {
    fn record(&self, event: &AuditEvent) {
        self.queue.push(event);
    }
}

async fn deliver(
    client: reqwest::Client,
    url: reqwest::Url,
    options: WebhookOptions,
    mut receiver: mpsc::Receiver<AuditEvent>,
) {
    let batch_size = options.batch_size.max(1);
    let mut batch = Vec::with_capacity(batch_size);
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + options.flush_interval;
        while batch.len() < batch_size {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(event)) => batch.push(event),
                Ok(None) | Err(_) => break,
            }
        }
        let body = serde_json::to_vec(&batch).unwrap_or_default();
        let sent = client
            .post(url.clone())
            .headers(options.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(status = %response.status(), "audit webhook refused a batch");
                count_dropped(SINK, batch.len());
            }
            Err(error) => {
                tracing::warn!(%error, "audit webhook unreachable");
                count_dropped(SINK, batch.len());
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Decision;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn events_arrive_in_batches() {
        /// Each POST: its `x-token` header and JSON body.
        type Received = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;
        let received: Received = Arc::default();
        let seen = received.clone();
        let app = axum::Router::new().route(
            "/audit",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let seen = seen.clone();
                    async move {
                        let token = headers
                            .get("x-token")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let json = serde_json::from_slice(&body).unwrap_or_default();
                        seen.lock().unwrap().push((token, json));
                        "ok"
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/audit", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let options = WebhookOptions {
            batch_size: 2,
            flush_interval: Duration::from_millis(50),
            ..WebhookOptions::default()
        }
        .header("x-token", "t0k")
        .unwrap();
        let sink = WebhookSink::new(&url, options).unwrap();
        for tool in ["a", "b", "c"] {
            sink.record(&AuditEvent::new("toolsec", "tool_call", Decision::Allow).with_tool(tool));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let total: usize = received
                .lock()
                .unwrap()
                .iter()
                .map(|(_, batch)| batch.as_array().map_or(0, Vec::len))
                .sum();
            if total == 3 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "events were not delivered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let batches = received.lock().unwrap().clone();
        assert_eq!(batches[0].0.as_deref(), Some("t0k"));
        assert_eq!(
            batches[0].1.as_array().unwrap().len(),
            2,
            "a full batch is sent at once"
        );
        assert_eq!(batches[0].1[0]["tool"], "a");
    }

    #[test]
    fn bad_urls_are_errors() {
        assert!(WebhookSink::new("not a url", WebhookOptions::default()).is_err());
        assert!(WebhookSink::new("ftp://x/y", WebhookOptions::default()).is_err());
        assert!(WebhookOptions::default().header("bad header", "v").is_err());
    }
}
