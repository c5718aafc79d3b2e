//! Audit events as RFC 5424 syslog messages over UDP or TCP (cargo feature `syslog`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::queue::{Queue, Worker, count_dropped};
use super::{AuditEvent, AuditSink, Decision, SyslogProtocol};

/// The sink label of dropped syslog events.
const SINK: &str = "syslog";
/// The largest UDP datagram sent; longer messages are cut (on a character boundary).
const MAX_DATAGRAM: usize = 8192;
/// The private enterprise number used for the structured data id (example range, RFC 5612).
const SD_ID: &str = "agentgw@32473";

/// Sends audit events to a syslog collector as RFC 5424 messages: one UDP datagram per event,
/// or octet-counted frames (RFC 6587) over one reused TCP connection.
///
/// The header carries the event's timestamp, the host name, the application name, the process
/// id and the event kind as MSGID; the structured data element `[agentgw@32473 ...]` carries
/// the layer, decision, rule and tool; the message is the event as JSON. Severity follows the
/// decision: warning for a denial, notice for a modification, informational otherwise.
///
/// Delivery happens in a background task behind a bounded queue: `record` never blocks, and
/// events that do not fit, or that cannot be sent, are counted in
/// `agentgateway_audit_dropped_total{sink="syslog"}`.
#[derive(Debug)]
pub struct SyslogSink {
    queue: Queue,
}

/// Options of a [`SyslogSink`].
#[derive(Debug, Clone)]
pub struct SyslogOptions {
    /// `udp` or `tcp`.
    pub protocol: SyslogProtocol,
    /// The facility, 0-23 (default 13, log audit).
    pub facility: u8,
    /// The APP-NAME field (default `agentgw`).
    pub app_name: String,
    /// Events held while delivery lags (default 10000).
    pub queue_size: usize,
    /// Timeout of a TCP connect or write (default 5 s).
    pub timeout: Duration,
}

impl Default for SyslogOptions {
    fn default() -> Self {
        Self {
            protocol: SyslogProtocol::Udp,
            facility: 13,
            app_name: "agentgw".to_owned(),
            queue_size: 10_000,
            timeout: Duration::from_secs(5),
        }
    }
}

impl SyslogSink {
    /// A sink sending to `address` (`host:port`, resolved when the first event is sent).
    pub fn new(address: impl Into<String>, options: SyslogOptions) -> Self {
        let address = address.into();
        let queue_size = options.queue_size;
        let worker: Worker =
            Box::new(move |receiver| Box::pin(deliver(address, options, receiver)));
        Self {
            queue: Queue::new(SINK, queue_size, worker),
        }
    }
}

impl AuditSink for SyslogSink {
    fn record(&self, event: &AuditEvent) {
        self.queue.push(event);
    }
}

async fn deliver(
    address: String,
    options: SyslogOptions,
    mut receiver: mpsc::Receiver<AuditEvent>,
) {
    let host = hostname();
    let proc_id = std::process::id().to_string();
    let mut transport = Transport::new(options.protocol, options.timeout);
    while let Some(event) = receiver.recv().await {
        let message = format_rfc5424(&event, options.facility, &host, &options.app_name, &proc_id);
        if let Err(error) = transport.send(&address, message).await {
            tracing::warn!(%error, address, "audit event could not be sent to syslog");
            count_dropped(SINK, 1);
        }
    }
}

enum Connection {
    None,
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream),
}

struct Transport {
    protocol: SyslogProtocol,
    timeout: Duration,
    connection: Connection,
}

impl Transport {
    fn new(protocol: SyslogProtocol, timeout: Duration) -> Self {
        Self {
            protocol,
            timeout,
            connection: Connection::None,
        }
    }

    async fn connect(&mut self, address: &str) -> std::io::Result<()> {
        let target = tokio::net::lookup_host(address)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{address} resolves to no address")))?;
        self.connection = match self.protocol {
            SyslogProtocol::Udp => {
                let local: SocketAddr = if target.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                Connection::Udp(UdpSocket::bind(local).await?, target)
            }
            SyslogProtocol::Tcp => {
                let stream = tokio::time::timeout(self.timeout, TcpStream::connect(target))
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                stream.set_nodelay(true)?;
                Connection::Tcp(stream)
            }
        };
        Ok(())
    }

    async fn send(&mut self, address: &str, message: String) -> std::io::Result<()> {
        // A broken TCP connection is replaced once per event.
        for attempt in 0..2 {
            if matches!(self.connection, Connection::None) {
                self.connect(address).await?;
            }
            let result = match &mut self.connection {
                Connection::Udp(socket, target) => {
                    let datagram = truncate_at_char(&message, MAX_DATAGRAM);
                    socket.send_to(datagram.as_bytes(), *target).await.map(drop)
                }
                Connection::Tcp(stream) => {
                    let frame = format!("{} {message}", message.len());
                    tokio::time::timeout(self.timeout, stream.write_all(frame.as_bytes()))
                        .await
                        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                }
                Connection::None => Ok(()),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(error) if attempt == 0 && self.protocol == SyslogProtocol::Tcp => {
                    tracing::debug!(%error, "syslog connection lost, reconnecting");
                    self.connection = Connection::None;
                }
                Err(error) => {
                    self.connection = Connection::None;
                    return Err(error);
                }
            }
        }
        Ok(())
    }
}

fn truncate_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .map_or_else(|| "-".to_owned(), |h| header_field(&h, 255))
}

/// A header field: printable ASCII without spaces, at most `max` characters, `-` when empty.
fn header_field(value: &str, max: usize) -> String {
    let field: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_owned()
    } else {
        field
    }
}

/// Escapes a structured-data parameter value (`"`, `\` and `]`).
fn sd_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Formats `event` as an RFC 5424 message (without transport framing).
pub fn format_rfc5424(
    event: &AuditEvent,
    facility: u8,
    hostname: &str,
    app_name: &str,
    proc_id: &str,
) -> String {
    let severity = match event.decision {
        Decision::Deny => 4,
        Decision::Modify => 5,
        Decision::Allow => 6,
    };
    let priority = u16::from(facility.min(23)) * 8 + severity;
    let mut out = format!(
        "<{priority}>1 {} {} {} {} {} [{SD_ID} layer=\"{}\" decision=\"{}\"",
        event.timestamp,
        header_field(hostname, 255),
        header_field(app_name, 48),
        header_field(proc_id, 128),
        header_field(event.event, 32),
        sd_value(event.layer),
        match event.decision {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Modify => "modify",
        },
    );
    for (name, value) in [
        ("rule", &event.rule),
        ("tool", &event.tool),
        ("subject", &event.subject),
    ] {
        if let Some(value) = value {
            let _ = write!(out, " {name}=\"{}\"", sd_value(value));
        }
    }
    out.push_str("] \u{feff}");
    out.push_str(&event.to_json_line());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        let mut event = AuditEvent::new("toolsec", "tool_call", Decision::Deny)
            .with_tool("kubectl-delete")
            .with_rule("allow\"list]")
            .with_subject("alice");
        event.timestamp = "2026-11-22T00:41:03.123Z".to_owned();
        event
    }

    #[test]
    fn rfc5424_format() {
        let message = format_rfc5424(&event(), 13, "gw-1", "agentgw", "42");
        let (header, json) = message
            .split_once(" \u{feff}")
            .expect("BOM before the message");
        assert_eq!(
            header,
            "<108>1 2026-11-22T00:41:03.123Z gw-1 agentgw 42 tool_call [agentgw@32473 layer=\"toolsec\" decision=\"deny\" rule=\"allow\\\"list\\]\" tool=\"kubectl-delete\" subject=\"alice\"]"
        );
        let parsed: serde_json::Value = serde_json::from_str(json).expect("JSON message");
        assert_eq!(parsed["tool"], "kubectl-delete");
        // Header fields never hold spaces.
        let message = format_rfc5424(&event(), 99, "my host", "", "");
        assert!(
            message.starts_with("<188>1 2026-11-22T00:41:03.123Z myhost - - tool_call "),
            "{message}"
        );
    }

    #[tokio::test]
    async fn udp_delivery() {
        let collector = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = collector.local_addr().unwrap().to_string();
        let sink = SyslogSink::new(address, SyslogOptions::default());
        sink.record(&event());
        let mut buf = vec![0; 65536];
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), collector.recv_from(&mut buf))
            .await
            .expect("a datagram arrives")
            .unwrap();
        let text = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(text.starts_with("<108>1 "), "{text}");
        assert!(text.contains("\"decision\":\"deny\""), "{text}");
    }

    #[tokio::test]
    async fn tcp_delivery_is_octet_counted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let sink = SyslogSink::new(
            address,
            SyslogOptions {
                protocol: SyslogProtocol::Tcp,
                ..SyslogOptions::default()
            },
        );
        sink.record(&event());
        sink.record(&event());
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut frames = Vec::new();
        while frames.len() < 2 {
            let mut buf = [0; 4096];
            let n = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
            )
            .await
            .expect("frames arrive")
            .unwrap();
            assert!(n > 0, "connection closed early");
            received.extend_from_slice(&buf[..n]);
            frames.clear();
            let mut rest = &received[..];
            while let Some(space) = rest.iter().position(|&b| b == b' ') {
                let len: usize = std::str::from_utf8(&rest[..space])
                    .unwrap()
                    .parse()
                    .unwrap();
                if rest.len() < space + 1 + len {
                    break;
                }
                frames.push(String::from_utf8(rest[space + 1..space + 1 + len].to_vec()).unwrap());
                rest = &rest[space + 1 + len..];
            }
        }
        assert!(
            frames.iter().all(|f| f.starts_with("<108>1 ")),
            "{frames:?}"
        );
    }

    #[test]
    fn without_a_runtime_events_are_dropped_not_blocked() {
        let sink = SyslogSink::new("127.0.0.1:9", SyslogOptions::default());
        sink.record(&event());
    }
}
