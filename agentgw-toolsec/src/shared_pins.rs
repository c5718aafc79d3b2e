//! Learned pins shared by every replica through Redis (`pinning.redis`, cargo feature `redis`).
//!
//! One hash per upstream, `{keyPrefix}{upstream}`, maps each tool name to the hex SHA-256 of
//! its pinned definition. Before a `tools/list` answer is inspected, the layer reads the
//! upstream's hash ([`RedisPins::load`]); a listed tool is compared with the shared pin. A tool
//! with no shared pin yet is exposed and claimed with `HSETNX` right after the listing
//! ([`RedisPins::claim`]): the first replica to claim it wins, every replica compares with that
//! pin from then on, and a replica whose claim lost to a different definition withholds the
//! tool at once. When Redis cannot be reached within the timeout, tools are withheld (rule
//! `pin-store-unavailable`): the layer fails closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentgw_core::audit::AuditEvent;
use agentgw_core::mcp::{Envelope, Message, methods};
use agentgw_core::metrics::{TOOL_VALIDATION_REJECTED_TOTAL, labels};
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::audit::{Auditor, mask_text};
use crate::denial::rules;
use crate::digest::Digest;
use crate::exchange::Exchange;
use crate::pin_store::SharedSnapshot;
use crate::policy::Policy;

/// The Redis client of one layer.
pub(crate) struct RedisPins {
    client: redis::Client,
    /// Made on first use, on the runtime (the layer may be built before one runs).
    connection: tokio::sync::OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisPins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPins")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisPins {
    /// A client of `url` that connects on first use (and reconnects after a failure); every
    /// operation gives up after `timeout`.
    pub(crate) fn new(url: &str, prefix: String, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        Ok(Self {
            client,
            connection: tokio::sync::OnceCell::new(),
            prefix,
            timeout,
        })
    }

    /// The connection manager: connects on first use and reconnects after a failure.
    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let manager = self
            .connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(manager.clone())
    }

    fn key(&self, upstream: &str) -> String {
        format!("{}{upstream}", self.prefix)
    }

    /// The shared pins of `upstream`, or [`SharedSnapshot::Unavailable`] (logged) when Redis
    /// does not answer in time or holds something that is not a pin.
    pub(crate) async fn load(&self, upstream: &str) -> SharedSnapshot {
        let key = self.key(upstream);
        let read = tokio::time::timeout(self.timeout, async {
            let mut connection = self.connection().await?;
            connection.hgetall::<_, HashMap<String, String>>(&key).await
        })
        .await;
        match read {
            Ok(Ok(pins)) => match parse(pins) {
                Ok(pins) => SharedSnapshot::Loaded(pins),
                Err(tool) => {
                    tracing::error!(key, tool, "a shared tool pin is not a SHA-256: withholding");
                    SharedSnapshot::Unavailable
                }
            },
            Ok(Err(error)) => {
                tracing::warn!(%error, key, "cannot read the shared tool pins: withholding");
                SharedSnapshot::Unavailable
            }
            Err(_) => {
                tracing::warn!(
                    key,
                    "the shared tool pins did not arrive in time: withholding"
                );
                SharedSnapshot::Unavailable
            }
        }
    }

    /// Pins each of `claims` at `upstream` unless another definition is pinned already
    /// (`HSETNX`, in one transaction with the read-back), and returns the pins that hold now
    /// for the claimed tools.
    pub(crate) async fn claim(
        &self,
        upstream: &str,
        claims: &[(String, Digest)],
    ) -> Result<HashMap<String, Digest>, String> {
        let key = self.key(upstream);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (tool, digest) in claims {
            pipe.hset_nx(&key, tool, hex::encode(digest)).ignore();
        }
        pipe.hgetall(&key);
        let written = tokio::time::timeout(self.timeout, async {
            let mut connection = self.connection().await?;
            pipe.query_async::<(HashMap<String, String>,)>(&mut connection)
                .await
        })
        .await
        .map_err(|_| "Redis did not answer in time".to_owned())?
        .map_err(|e| e.to_string())?;
        let pins =
            parse(written.0).map_err(|tool| format!("the pin of {tool} is not a SHA-256"))?;
        Ok(claims
            .iter()
            .filter_map(|(tool, _)| Some((tool.clone(), *pins.get(tool)?)))
            .collect())
    }
}

/// Hex digests by tool, or the first tool whose value is not one.
fn parse(pins: HashMap<String, String>) -> Result<HashMap<String, Digest>, String> {
    pins.into_iter()
        .map(|(tool, value)| {
            let mut digest = [0u8; 32];
            match value.len() == 64 && hex::decode_to_slice(&value, &mut digest).is_ok() {
                true => Ok((tool, digest)),
                false => Err(tool),
            }
        })
        .collect()
}

/// Reads the shared pins of the exchange's upstream before its answer is inspected, when the
/// client lists tools or the layer will list them for a call (`unlistedTools: Fetch`).
pub(crate) async fn prepare(
    policy: &Policy,
    exchange: &mut Exchange,
    envelope: &Envelope,
    fetching: bool,
) {
    let Some(store) = policy.shared_pins() else {
        return;
    };
    let lists = envelope.messages().iter().any(|message| {
        matches!(message, Message::Request { method, .. } if method == methods::TOOLS_LIST)
    });
    if lists || fetching {
        let snapshot = store.load(exchange.upstream()).await;
        exchange.set_shared_pins(snapshot);
    }
}

/// Claims `claims` (tools exposed without a shared pin) as the shared pins of `upstream`, in
/// the background. A tool whose claim lost to a different definition, or could not be written,
/// is withheld at once in this layer (calls refused), counted, and audited with `event`; the
/// next listing compares it with the shared pin (or claims it again).
pub(crate) fn settle(
    policy: Arc<Policy>,
    upstream: Arc<str>,
    claims: Vec<(String, Digest)>,
    auditor: Arc<Auditor>,
    event: AuditEvent,
) {
    let Some(store) = policy.shared_pins().cloned() else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let (lost, rule, detail): (Vec<&(String, Digest)>, _, _) =
            match store.claim(&upstream, &claims).await {
                Ok(pins) => (
                    claims
                        .iter()
                        .filter(|(tool, digest)| pins.get(tool) != Some(digest))
                        .collect(),
                    rules::DEFINITION_CHANGED,
                    "another replica pinned a different definition first",
                ),
                Err(error) => {
                    tracing::warn!(%error, upstream = %upstream, "cannot write shared tool pins: withholding the new tools");
                    (
                        claims.iter().collect(),
                        rules::PIN_STORE_UNAVAILABLE,
                        "the shared pin store could not be written",
                    )
                }
            };
        for (tool, digest) in lost {
            if !policy.withhold_pinned(&upstream, tool, digest, rule) {
                continue;
            }
            metrics::counter!(TOOL_VALIDATION_REJECTED_TOTAL, labels::RULE => rule).increment(1);
            if auditor.is_on() {
                auditor.record(
                    &event
                        .clone()
                        .with_tool(mask_text(tool))
                        .with_rule(rule)
                        .with_detail("detail", detail),
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ToolSecurityConfig;
    use serde_json::json;

    /// A `redis-server` on a free loopback port, killed when dropped.
    struct Server {
        child: std::process::Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn redis_server() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it (apt-get install redis-server)")
            });
        let server = Server {
            child,
            port,
            _dir: dir,
        };
        let url = format!("redis://127.0.0.1:{port}/");
        for _ in 0..500 {
            let up = redis::Client::open(url.as_str())
                .and_then(|client| client.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok();
            if up {
                return server;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start");
    }

    #[tokio::test]
    async fn a_lost_claim_withholds_the_tool_at_once() {
        let server = redis_server();
        let url = format!("redis://127.0.0.1:{}/", server.port);
        let yaml = format!("pinning: {{redis: {{url: \"{url}\", keyPrefix: \"t:\"}}}}\n");
        let config: ToolSecurityConfig = serde_saphyr::from_str(&yaml).unwrap();
        let policy = Arc::new(Policy::from_config(&config).unwrap());
        let upstream: Arc<str> = Arc::from("mcp");
        let tool = json!({"name": "get-weather", "description": "Weather.",
                          "inputSchema": {"type": "object"}});
        // The listing saw no shared pin: the tool is exposed and to be claimed.
        let snapshot = policy.shared_pins().unwrap().load("mcp").await;
        let mut result = json!({"tools": [tool]});
        let (outcome, claims) =
            policy.process_tools_list_shared(&upstream, &mut result, Some(&snapshot));
        assert_eq!(outcome.exposed, 1);
        assert_eq!(claims.len(), 1);
        assert!(policy.check_call("mcp", "get-weather", None).is_ok());
        // Meanwhile another replica pinned a different definition.
        let mut connection = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let other = hex::encode([7u8; 32]);
        redis::cmd("HSET")
            .arg("t:mcp")
            .arg("get-weather")
            .arg(&other)
            .query::<()>(&mut connection)
            .unwrap();
        let audit = agentgw_core::audit::MemorySink::default();
        let auditor = Arc::new(
            Auditor::from_config(None)
                .unwrap()
                .with_sink(Arc::new(audit.clone())),
        );
        let event = AuditEvent::new(
            "toolsec",
            "tool_validation",
            agentgw_core::audit::Decision::Deny,
        );
        settle(policy.clone(), upstream.clone(), claims, auditor, event);
        while policy.check_call("mcp", "get-weather", None).is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let denial = policy.check_call("mcp", "get-weather", None).unwrap_err();
        assert_eq!(denial.rule.as_ref(), rules::DEFINITION_CHANGED);
        assert_eq!(
            audit.events()[0].rule.as_deref(),
            Some(rules::DEFINITION_CHANGED)
        );
        // The shared pin is the other replica's.
        let pinned: String = redis::cmd("HGET")
            .arg("t:mcp")
            .arg("get-weather")
            .query(&mut connection)
            .unwrap();
        assert_eq!(pinned, other);
    }

    #[test]
    fn the_client_is_built_without_a_runtime() {
        // `--check-config` builds layers before any runtime runs: nothing connects yet.
        let config: ToolSecurityConfig =
            serde_saphyr::from_str("pinning: {redis: {url: \"redis://127.0.0.1:1/\"}}\n").unwrap();
        assert!(Policy::from_config(&config).is_ok());
    }

    #[test]
    fn pins_that_are_not_digests_are_refused() {
        let good = hex::encode([1u8; 32]);
        let parsed = parse(HashMap::from([("a".to_owned(), good)])).unwrap();
        assert_eq!(parsed["a"], [1u8; 32]);
        let bad = parse(HashMap::from([("b".to_owned(), "xyz".to_owned())]));
        assert_eq!(bad.unwrap_err(), "b");
    }
}
