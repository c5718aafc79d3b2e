//! Who is calling: the request extensions that connection handling and authentication layers
//! insert, and that policies read through [`crate::Attributes`].
//!
//! | extension | inserted by | read as (CEL) |
//! |---|---|---|
//! | [`ClientAddr`] | the server (gateway, or your hyper/axum accept loop) | `source.ip`, `source.port` |
//! | [`PeerIdentity`] | TLS acceptor with client certificate verification | `source.identity.*` |
//! | [`JwtClaims`] | the JWT layer | `jwt.*` |
//! | [`ApiKeyInfo`] | the API key layer | `apiKey.*` |
//! | [`BackendName`] | the gateway's router | `mcp.tool.target` |
//!
//! # Example
//!
//! ```
//! use agentgw_core::identity::{ClientAddr, JwtClaims};
//! use agentgw_core::Attributes;
//!
//! let claims = JwtClaims::from_value(serde_json::json!({"sub": "alice", "role": "admin"})).unwrap();
//! let req = http::Request::builder()
//!     .extension(claims)
//!     .extension(ClientAddr("10.1.2.3:5555".parse().unwrap()))
//!     .body(())
//!     .unwrap();
//! let attrs = Attributes::new(&req);
//! assert_eq!(attrs.jwt().unwrap().subject(), Some("alice"));
//! assert_eq!(attrs.source().unwrap().port(), 5555);
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde_json::{Map, Value};

/// The address of the peer that opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl ClientAddr {
    /// The IP address as text (`x-forwarded-for`, an authorization request), written on the
    /// stack without allocating.
    ///
    /// ```
    /// use agentgw_core::identity::ClientAddr;
    ///
    /// let addr = ClientAddr("10.0.0.7:4321".parse().unwrap());
    /// assert_eq!(addr.ip_text().as_str(), "10.0.0.7");
    /// ```
    pub fn ip_text(&self) -> IpText {
        IpText::new(self.0.ip())
    }
}

/// An IP address as text, held on the stack: what `Display` writes, without its formatting
/// machinery for IPv4 (this runs for every proxied request).
#[derive(Clone, Copy)]
pub struct IpText {
    /// The longest IPv6 text, with an embedded IPv4 address, is 45 bytes.
    bytes: [u8; 45],
    len: u8,
}

impl IpText {
    /// The text of `ip`.
    pub fn new(ip: IpAddr) -> Self {
        let mut text = IpText {
            bytes: [0; 45],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    if octet >= 100 {
                        text.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        text.push(b'0' + octet / 10 % 10);
                    }
                    text.push(b'0' + octet % 10);
                }
            }
            // 45 bytes hold any IPv6 text: this cannot fail.
            IpAddr::V6(_) => {
                let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{ip}"));
            }
        }
        text
    }

    fn push(&mut self, byte: u8) {
        self.bytes[usize::from(self.len)] = byte;
        self.len += 1;
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, dots, colons and hex letters are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let start = usize::from(self.len);
        let end = start + s.len();
        self.bytes
            .get_mut(start..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = u8::try_from(end).map_err(|_| std::fmt::Error)?;
        Ok(())
    }
}

impl std::fmt::Debug for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IpText").field(&self.as_str()).finish()
    }
}

impl std::fmt::Display for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verified claims of a JWT, shared cheaply.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtClaims(Arc<Map<String, Value>>);

impl JwtClaims {
    /// Claims from a JSON object map.
    pub fn new(claims: Map<String, Value>) -> Self {
        JwtClaims(Arc::new(claims))
    }

    /// Claims from a JSON value; `None` when it is not an object.
    pub fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Object(map) => Some(JwtClaims::new(map)),
            _ => None,
        }
    }

    /// One claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The `sub` claim when it is a string.
    pub fn subject(&self) -> Option<&str> {
        self.0.get("sub").and_then(Value::as_str)
    }

    /// The `iss` claim when it is a string.
    pub fn issuer(&self) -> Option<&str> {
        self.0.get("iss").and_then(Value::as_str)
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// The API key a request authenticated with: its name and configured metadata (team, role,
/// allowed models, ...). Never the key itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyInfo {
    name: Arc<str>,
    metadata: Arc<Map<String, Value>>,
}

impl ApiKeyInfo {
    /// Key info with `name` and `metadata`; `metadata` also receives `"name"`.
    pub fn new(name: impl Into<Arc<str>>, mut metadata: Map<String, Value>) -> Self {
        let name = name.into();
        metadata.insert("name".to_owned(), Value::String(name.to_string()));
        ApiKeyInfo {
            name,
            metadata: Arc::new(metadata),
        }
    }

    /// The key's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One metadata field (`"name"`, `"team"`, `"role"`, ...).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.metadata.get(field)
    }

    /// All metadata, including `"name"`.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.metadata
    }
}

/// The identity a verified TLS client certificate proves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Subject common name.
    pub common_name: Option<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
    /// The SPIFFE ID (the `spiffe://` URI SAN), when present.
    pub spiffe_id: Option<String>,
    /// Hex SHA-256 fingerprint of the leaf certificate.
    pub fingerprint_sha256: Option<String>,
}

impl PeerIdentity {
    /// The identity as a JSON object (as policies see it).
    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "commonName": self.common_name,
            "dnsNames": self.dns_names,
            "uris": self.uris,
            "spiffeId": self.spiffe_id,
            "fingerprintSha256": self.fingerprint_sha256,
        })
    }
}

/// The name of the backend (route target) a request is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendName(pub Arc<str>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_metadata_includes_name() {
        let mut meta = Map::new();
        meta.insert("team".into(), "ml".into());
        let info = ApiKeyInfo::new("ci-bot", meta);
        assert_eq!(info.name(), "ci-bot");
        assert_eq!(info.get("name"), Some(&Value::from("ci-bot")));
        assert_eq!(info.get("team"), Some(&Value::from("ml")));
    }

    #[test]
    fn claims_accessors() {
        let claims = JwtClaims::from_value(serde_json::json!({"sub": 5, "iss": "me"})).unwrap();
        assert_eq!(claims.subject(), None, "non-string sub is not a subject");
        assert_eq!(claims.issuer(), Some("me"));
        assert!(JwtClaims::from_value(Value::Null).is_none());
    }

    proptest::proptest! {
        /// Any address is written as `Display` writes it.
        #[test]
        fn ip_text_matches_display(
            v4 in proptest::prelude::any::<[u8; 4]>(),
            v6 in proptest::prelude::any::<u128>(),
        ) {
            for ip in [
                IpAddr::from(v4),
                IpAddr::from(std::net::Ipv6Addr::from(v6)),
                IpAddr::from(std::net::Ipv4Addr::from(v4).to_ipv6_mapped()),
            ] {
                let text = IpText::new(ip);
                proptest::prop_assert_eq!(text.as_str(), ip.to_string());
            }
        }
    }
}
