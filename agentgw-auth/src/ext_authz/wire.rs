//! The `CheckRequest` of a request, written in protobuf's wire format straight from the
//! request's parts.
//!
//! Building envoy-types' `CheckRequest` (a `HashMap<String, String>` of the headers and a
//! `String` per field, about 30 allocations) and handing it to prost costs more than the rest
//! of the layer's work together. This writes the same bytes prost would write for that message
//! into one buffer sized up front: the lengths are computed in a first pass over the headers,
//! the bytes written in a second. The tests decode the output with prost and compare it with
//! envoy-types' message built field by field (the reference, kept in the tests), for fixed
//! cases and under proptest.
//!
//! Layout (field numbers of `envoy.service.auth.v3`):
//!
//! ```text
//! CheckRequest { 1: AttributeContext {
//!     1: Peer { 1: Address { 1: SocketAddress { 2: address, 3: port_value } }, 4: principal }
//!     4: Request { 2: HttpRequest {
//!         1: id, 2: method, 3: headers (map), 4: path, 5: host, 6: scheme, 9: size,
//!         10: protocol, 11: body | 12: raw_body } }
//!     10: context_extensions (map) } }
//! ```

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use http::header::COOKIE;
use http::header::GetAll;
use http::request::Parts;
use http::{HeaderName, HeaderValue};

use agentgw_core::identity::{ClientAddr, IpText, PeerIdentity};

use super::input::{self, BodyPrefix};

/// The header Envoy adds to say whether the body it sends is truncated.
const PARTIAL_BODY: &str = "x-envoy-auth-partial-body";

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wire type of varints.
const VARINT: u8 = 0;
/// Wire type of length-delimited fields (strings, bytes, messages, map entries).
const LEN: u8 = 2;

/// Writes `CheckRequest`s for one layer: what does not depend on the request is encoded once.
#[derive(Debug, Clone)]
pub(crate) struct CheckEncoder {
    /// `AttributeContext.context_extensions` (field 10), every entry encoded.
    context_extensions: Bytes,
    /// Send the body as `raw_body` (bytes) rather than `body` (UTF-8 text).
    pack_as_bytes: bool,
}

impl CheckEncoder {
    pub(crate) fn new(context_extensions: &HashMap<String, String>, pack_as_bytes: bool) -> Self {
        let mut encoded = Vec::new();
        for (key, value) in context_extensions {
            let entry = Entry {
                key: key.len(),
                value: value.len(),
            };
            encoded.reserve(field_len(entry.len()));
            put_key(&mut encoded, 10, LEN);
            put_varint(&mut encoded, entry.len() as u64);
            put_str(&mut encoded, 1, key.as_bytes());
            put_str(&mut encoded, 2, value.as_bytes());
        }
        CheckEncoder {
            context_extensions: Bytes::from(encoded),
            pack_as_bytes,
        }
    }

    /// The encoded `CheckRequest` for a request and the prefix of its body, if sent.
    pub(crate) fn encode(&self, parts: &Parts, body: Option<&BodyPrefix>) -> Bytes {
        let http = HttpRequest::of(parts, body, self.pack_as_bytes);
        let peer = Peer::of(parts);
        let http_len = http.len();
        let request_len = field_len(http_len);
        let attributes_len = peer.as_ref().map_or(0, |peer| field_len(peer.len()))
            + field_len(request_len)
            + self.context_extensions.len();
        let mut buf = Vec::with_capacity(field_len(attributes_len));

        put_key(&mut buf, 1, LEN); // CheckRequest.attributes
        put_varint(&mut buf, attributes_len as u64);
        if let Some(peer) = &peer {
            put_key(&mut buf, 1, LEN); // AttributeContext.source
            put_varint(&mut buf, peer.len() as u64);
            peer.write(&mut buf);
        }
        put_key(&mut buf, 4, LEN); // AttributeContext.request
        put_varint(&mut buf, request_len as u64);
        put_key(&mut buf, 2, LEN); // Request.http
        put_varint(&mut buf, http_len as u64);
        http.write(&mut buf);
        buf.extend_from_slice(&self.context_extensions);
        debug_assert_eq!(buf.len(), field_len(attributes_len));
        Bytes::from(buf)
    }
}

/// The `HttpRequest` fields of a request, borrowed from it.
struct HttpRequest<'a> {
    parts: &'a Parts,
    id: Option<&'a HeaderValue>,
    method: &'a str,
    path: &'a str,
    host: &'a str,
    scheme: &'a str,
    size: i64,
    protocol: &'static str,
    /// `(field, bytes)`: field 11 (text) or 12 (raw bytes).
    body: Option<(u32, Cow<'a, [u8]>)>,
    /// The value of `x-envoy-auth-partial-body`, when a body is sent.
    partial: Option<&'static str>,
    /// The encoded length of the header map (field 3, every entry).
    headers_len: usize,
}

impl<'a> HttpRequest<'a> {
    fn of(parts: &'a Parts, body: Option<&'a BodyPrefix>, pack_as_bytes: bool) -> Self {
        let mut http = HttpRequest {
            parts,
            id: parts.headers.get(X_REQUEST_ID),
            method: parts.method.as_str(),
            path: input::path_and_query(parts),
            host: input::host(parts),
            scheme: input::scheme(parts),
            size: input::size(parts, body),
            protocol: input::protocol(parts.version),
            body: body.map(|prefix| {
                if pack_as_bytes {
                    (12, Cow::Borrowed(&prefix.bytes[..]))
                } else {
                    (
                        11,
                        match prefix.text() {
                            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
                            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
                        },
                    )
                }
            }),
            partial: body.map(|prefix| if prefix.partial { "true" } else { "false" }),
            headers_len: 0,
        };
        let mut headers_len = 0;
        http.for_each_header(|entry, _| headers_len += field_len(entry.len()));
        http.headers_len = headers_len;
        http
    }

    /// Calls `f` with every entry of the header map, as Envoy fills it: the pseudo-headers,
    /// every header name with its values merged (`,`, or `; ` for `cookie`), then
    /// `x-envoy-auth-partial-body` when a body is sent (replacing the client's own).
    fn for_each_header(&self, mut f: impl FnMut(Entry, HeaderText<'_>)) {
        for (name, value) in [
            (":authority", self.host),
            (":method", self.method),
            (":path", self.path),
            (":scheme", self.scheme),
        ] {
            f(Entry::new(name, value.len()), HeaderText::Str(name, value));
        }
        let mut headers = self.parts.headers.iter().peekable();
        while let Some((name, first)) = headers.next() {
            // A name's values come one after the other (`HeaderMap` chains them).
            let mut values = 1;
            let mut len = first.len();
            let separator = if name == COOKIE { 2 } else { 1 };
            while let Some((_, value)) = headers.next_if(|(next, _)| *next == name) {
                values += 1;
                len += separator + value.len();
            }
            if self.partial.is_some() && name.as_str() == PARTIAL_BODY {
                continue;
            }
            let text = if values == 1 {
                HeaderText::Single(name.as_str(), first)
            } else {
                // Repeated names are rare: a second lookup beats collecting every value.
                HeaderText::Merged {
                    name: name.as_str(),
                    all: self.parts.headers.get_all(name),
                    cookie: separator == 2,
                }
            };
            f(Entry::new(name.as_str(), len), text);
        }
        if let Some(partial) = self.partial {
            f(
                Entry::new(PARTIAL_BODY, partial.len()),
                HeaderText::Str(PARTIAL_BODY, partial),
            );
        }
    }

    fn len(&self) -> usize {
        self.id.map_or(0, |id| str_len(id.len()))
            + str_len(self.method.len())
            + self.headers_len
            + str_len(self.path.len())
            + str_len(self.host.len())
            + str_len(self.scheme.len())
            + if self.size == 0 {
                0
            } else {
                1 + varint_len(self.size as u64)
            }
            + str_len(self.protocol.len())
            + self
                .body
                .as_ref()
                .map_or(0, |(_, body)| str_len(body.len()))
    }

    fn write(&self, buf: &mut Vec<u8>) {
        if let Some(id) = self.id {
            put_header_text(buf, 1, id);
        }
        put_str(buf, 2, self.method.as_bytes());
        self.for_each_header(|entry, text| {
            put_key(buf, 3, LEN);
            put_varint(buf, entry.len() as u64);
            put_str(buf, 1, text.name().as_bytes());
            text.write_value(buf, entry.value);
        });
        put_str(buf, 4, self.path.as_bytes());
        put_str(buf, 5, self.host.as_bytes());
        put_str(buf, 6, self.scheme.as_bytes());
        if self.size != 0 {
            put_key(buf, 9, VARINT);
            // int64: negative values take ten bytes, as two's complement.
            put_varint(buf, self.size as u64);
        }
        put_str(buf, 10, self.protocol.as_bytes());
        if let Some((field, body)) = &self.body {
            put_str(buf, *field, body);
        }
    }
}

/// The lengths of a map entry's key and value.
#[derive(Clone, Copy)]
struct Entry {
    key: usize,
    value: usize,
}

impl Entry {
    fn new(key: &str, value: usize) -> Self {
        Entry {
            key: key.len(),
            value,
        }
    }

    /// The entry message's length: key (field 1) and value (field 2), each omitted when empty.
    fn len(self) -> usize {
        str_len(self.key) + str_len(self.value)
    }
}

/// A header map entry's name and the text of its value.
enum HeaderText<'a> {
    /// A value that is text already (the pseudo-headers, the partial-body flag).
    Str(&'a str, &'a str),
    /// A header sent once.
    Single(&'a str, &'a HeaderValue),
    /// A header sent several times: its values, merged.
    Merged {
        name: &'a str,
        all: GetAll<'a, HeaderValue>,
        cookie: bool,
    },
}

impl HeaderText<'_> {
    fn name(&self) -> &str {
        match self {
            HeaderText::Str(name, _)
            | HeaderText::Single(name, _)
            | HeaderText::Merged { name, .. } => name,
        }
    }

    fn write_value(&self, buf: &mut Vec<u8>, len: usize) {
        if len == 0 {
            return;
        }
        put_key(buf, 2, LEN);
        put_varint(buf, len as u64);
        match self {
            HeaderText::Str(_, value) => buf.extend_from_slice(value.as_bytes()),
            HeaderText::Single(_, value) => push_header_text(buf, value),
            HeaderText::Merged { all, cookie, .. } => {
                let separator: &[u8] = if *cookie { b"; " } else { b"," };
                for (i, value) in all.iter().enumerate() {
                    if i > 0 {
                        buf.extend_from_slice(separator);
                    }
                    push_header_text(buf, value);
                }
            }
        }
    }
}

/// Appends a header value as Envoy sends it: UTF-8 as is; a value that is not valid UTF-8 with
/// every non-ASCII byte replaced by `!` (same length).
fn push_header_text(buf: &mut Vec<u8>, value: &HeaderValue) {
    let bytes = value.as_bytes();
    if std::str::from_utf8(bytes).is_ok() {
        buf.extend_from_slice(bytes);
    } else {
        buf.extend(bytes.iter().map(|&b| if b.is_ascii() { b } else { b'!' }));
    }
}

fn put_header_text(buf: &mut Vec<u8>, field: u32, value: &HeaderValue) {
    if value.is_empty() {
        return;
    }
    put_key(buf, field, LEN);
    put_varint(buf, value.len() as u64);
    push_header_text(buf, value);
}

/// `Peer` (the client): its socket address and principal.
struct Peer {
    /// The IP address as text, and the port.
    address: Option<(IpText, u16)>,
    principal: Option<String>,
}

impl Peer {
    fn of(parts: &Parts) -> Option<Self> {
        let addr = parts.extensions.get::<ClientAddr>();
        let identity = parts.extensions.get::<PeerIdentity>();
        if addr.is_none() && identity.is_none() {
            return None;
        }
        Some(Peer {
            address: addr.map(|addr| (addr.ip_text(), addr.0.port())),
            principal: identity.and_then(|id| {
                id.spiffe_id
                    .clone()
                    .or_else(|| id.uris.first().cloned())
                    .or_else(|| id.common_name.clone())
            }),
        })
    }

    /// `SocketAddress`: `address` (2) and `port_value` (3, in a oneof: written even when 0).
    fn socket_address_len(ip: &IpText, port: u16) -> usize {
        str_len(ip.as_bytes().len()) + 1 + varint_len(u64::from(port))
    }

    fn len(&self) -> usize {
        self.address.as_ref().map_or(0, |(ip, port)| {
            // Address { 1: SocketAddress }
            field_len(field_len(Self::socket_address_len(ip, *port)))
        }) + self
            .principal
            .as_ref()
            .map_or(0, |principal| str_len(principal.len()))
    }

    fn write(&self, buf: &mut Vec<u8>) {
        if let Some((ip, port)) = &self.address {
            let socket_len = Self::socket_address_len(ip, *port);
            put_key(buf, 1, LEN); // Peer.address
            put_varint(buf, field_len(socket_len) as u64);
            put_key(buf, 1, LEN); // Address.socket_address
            put_varint(buf, socket_len as u64);
            put_str(buf, 2, ip.as_bytes());
            put_key(buf, 3, VARINT);
            put_varint(buf, u64::from(*port));
        }
        if let Some(principal) = &self.principal {
            put_str(buf, 4, principal.as_bytes());
        }
    }
}

/// Bytes of a varint.
fn varint_len(value: u64) -> usize {
    // 7 bits per byte; 0 takes one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Every field number here is below 16: a key is one byte.
fn put_key(buf: &mut Vec<u8>, field: u32, wire_type: u8) {
    debug_assert!(field < 16);
    buf.push((field << 3) as u8 | wire_type);
}

/// Length of a length-delimited field holding `len` bytes (key, length, bytes).
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Length of a string field: omitted when empty, as proto3 does.
fn str_len(len: usize) -> usize {
    if len == 0 { 0 } else { field_len(len) }
}

fn put_str(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    put_key(buf, field, LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::Entry;

    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{
        Address, SocketAddress, address, socket_address,
    };
    use envoy_types::pb::envoy::service::auth::v3::{
        AttributeContext, CheckRequest, attribute_context,
    };
    use proptest::prelude::*;
    use prost::Message as _;

    /// What the encoder writes, decoded by prost; checked against the reference message.
    fn encoded(
        parts: &Parts,
        body: Option<&BodyPrefix>,
        pack_as_bytes: bool,
        context_extensions: &HashMap<String, String>,
    ) -> CheckRequest {
        let bytes = CheckEncoder::new(context_extensions, pack_as_bytes).encode(parts, body);
        let decoded = CheckRequest::decode(bytes.clone()).expect("the encoding decodes");
        let reference = check_request(parts, body, pack_as_bytes, context_extensions);
        assert_eq!(decoded, reference);
        // Not only the same message: the same length as prost's own encoding of it.
        assert_eq!(bytes.len(), reference.encoded_len());
        decoded
    }

    // The reference: envoy-types' message built field by field, the way the layer built it
    // before the encoder existed.

    /// The `CheckRequest` for a request: method, path, host, scheme, protocol, headers (merged per
    /// name, pseudo-headers included, as Envoy sends them), source address, body prefix and the
    /// configured context extensions.
    fn check_request(
        parts: &Parts,
        body: Option<&BodyPrefix>,
        pack_as_bytes: bool,
        context_extensions: &HashMap<String, String>,
    ) -> CheckRequest {
        let host = input::host(parts);
        let path = input::path_and_query(parts);
        let scheme = input::scheme(parts);
        let method = parts.method.as_str();
        // The pseudo-headers, every header name, and `x-envoy-auth-partial-body`.
        let mut headers = HashMap::with_capacity(parts.headers.keys_len() + 5);
        headers.insert(":authority".to_owned(), host.to_owned());
        headers.insert(":method".to_owned(), method.to_owned());
        headers.insert(":path".to_owned(), path.to_owned());
        headers.insert(":scheme".to_owned(), scheme.to_owned());
        for (name, value) in &parts.headers {
            match headers.entry(name.as_str().to_owned()) {
                Entry::Occupied(mut merged) => {
                    let merged = merged.get_mut();
                    merged.push_str(if name == COOKIE { "; " } else { "," });
                    push_header_text(merged, value);
                }
                Entry::Vacant(slot) => {
                    slot.insert(header_text(value));
                }
            }
        }
        let (body_text, raw_body) = match body {
            Some(prefix) => {
                headers.insert(
                    "x-envoy-auth-partial-body".to_owned(),
                    prefix.partial.to_string(),
                );
                if pack_as_bytes {
                    (String::new(), prefix.bytes.to_vec())
                } else {
                    (prefix.text().into_owned(), Vec::new())
                }
            }
            None => (String::new(), Vec::new()),
        };
        let http = attribute_context::HttpRequest {
            id: parts
                .headers
                .get(X_REQUEST_ID)
                .map(header_text)
                .unwrap_or_default(),
            method: method.to_owned(),
            headers,
            path: path.to_owned(),
            host: host.to_owned(),
            scheme: scheme.to_owned(),
            size: input::size(parts, body),
            protocol: input::protocol(parts.version).to_owned(),
            body: body_text,
            raw_body,
            ..Default::default()
        };
        CheckRequest {
            attributes: Some(AttributeContext {
                source: source(parts),
                request: Some(attribute_context::Request {
                    time: None,
                    http: Some(http),
                }),
                context_extensions: context_extensions.clone(),
                ..Default::default()
            }),
        }
    }

    /// The client as Envoy describes it: its socket address and, with a verified client
    /// certificate, its principal (SPIFFE ID, else first URI SAN, else subject CN).
    fn source(parts: &Parts) -> Option<attribute_context::Peer> {
        let addr = parts.extensions.get::<ClientAddr>();
        let identity = parts.extensions.get::<PeerIdentity>();
        if addr.is_none() && identity.is_none() {
            return None;
        }
        let address = addr.map(|ClientAddr(addr)| Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                protocol: socket_address::Protocol::Tcp as i32,
                address: addr.ip().to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                    addr.port(),
                ))),
                ..Default::default()
            })),
        });
        let principal = identity
            .and_then(|id| {
                id.spiffe_id
                    .clone()
                    .or_else(|| id.uris.first().cloned())
                    .or_else(|| id.common_name.clone())
            })
            .unwrap_or_default();
        Some(attribute_context::Peer {
            address,
            principal,
            ..Default::default()
        })
    }

    /// Header text as Envoy sends it: UTF-8, with bytes that are not replaced by `!`.
    fn header_text(value: &HeaderValue) -> String {
        let mut text = String::with_capacity(value.len());
        push_header_text(&mut text, value);
        text
    }

    fn push_header_text(text: &mut String, value: &HeaderValue) {
        match std::str::from_utf8(value.as_bytes()) {
            Ok(valid) => text.push_str(valid),
            Err(_) => text.extend(
                value
                    .as_bytes()
                    .iter()
                    .map(|&b| if b.is_ascii() { char::from(b) } else { '!' }),
            ),
        }
    }

    #[test]
    fn request_carries_what_envoy_sends() {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("/v1/chat/completions?stream=true")
            .header("host", "llm.example")
            .header("x-request-id", "req-7")
            .header("x-multi", "a")
            .header("x-multi", "b")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap())
            .extension(ClientAddr("10.0.0.9:4321".parse().unwrap()))
            .extension(PeerIdentity {
                spiffe_id: Some("spiffe://corp/agent".into()),
                ..Default::default()
            })
            .extension(agentgw_core::Payload::from_static(b"{\"model\":\"gpt\"}"))
            .body(())
            .unwrap()
            .into_parts();
        let ext = HashMap::from([("route".to_owned(), "openai".to_owned())]);
        let body = BodyPrefix::of(&parts, 5);
        let req = encoded(&parts, body.as_ref(), false, &ext);
        let attrs = req.attributes.unwrap();
        assert_eq!(attrs.context_extensions, ext);
        let peer = attrs.source.unwrap();
        assert_eq!(peer.principal, "spiffe://corp/agent");
        let Some(address::Address::SocketAddress(sock)) = peer.address.unwrap().address else {
            panic!("socket address expected");
        };
        assert_eq!(sock.address, "10.0.0.9");
        assert_eq!(
            sock.port_specifier,
            Some(socket_address::PortSpecifier::PortValue(4321))
        );
        let http = attrs.request.unwrap().http.unwrap();
        assert_eq!(http.method, "POST");
        assert_eq!(http.path, "/v1/chat/completions?stream=true");
        assert_eq!(http.host, "llm.example");
        assert_eq!(http.id, "req-7");
        assert_eq!(http.protocol, "HTTP/1.1");
        assert_eq!(http.size, 15);
        assert_eq!(http.body, "{\"mod");
        assert!(http.raw_body.is_empty());
        assert_eq!(http.headers["x-multi"], "a,b");
        assert_eq!(http.headers["cookie"], "a=1; b=2");
        assert_eq!(http.headers["x-bin"], "caf!");
        assert_eq!(http.headers[":path"], "/v1/chat/completions?stream=true");
        assert_eq!(http.headers[":authority"], "llm.example");
        assert_eq!(http.headers[":method"], "POST");
        assert_eq!(http.headers["x-envoy-auth-partial-body"], "true");

        let packed = encoded(&parts, body.as_ref(), true, &HashMap::new());
        let http = packed.attributes.unwrap().request.unwrap().http.unwrap();
        assert_eq!(http.raw_body, b"{\"mod");
        assert!(http.body.is_empty());
    }

    #[test]
    fn without_body_or_client_nothing_is_invented() {
        let (parts, ()) = http::Request::builder()
            .uri("/x")
            .body(())
            .unwrap()
            .into_parts();
        let attrs = encoded(&parts, None, false, &HashMap::new())
            .attributes
            .unwrap();
        assert!(attrs.source.is_none());
        let http = attrs.request.unwrap().http.unwrap();
        assert!(!http.headers.contains_key("x-envoy-auth-partial-body"));
        assert_eq!(http.size, -1);
    }

    prop_compose! {
        fn header_value()(bytes in prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(b"abc xyz=;,/0123456789".to_vec()),
                1 => 0x80u8..=0xff,
            ],
            0..24,
        )) -> HeaderValue {
            HeaderValue::from_bytes(&bytes).expect("visible ASCII, space and obs-text")
        }
    }

    fn header_name() -> impl Strategy<Value = HeaderName> {
        prop::sample::select(vec![
            "cookie",
            "x-request-id",
            "x-envoy-auth-partial-body",
            "authorization",
            "content-length",
            "x-a",
            "x-b",
            "host",
        ])
        .prop_map(HeaderName::from_static)
    }

    proptest! {
        /// Any request encodes to exactly the message the reference builds.
        #[test]
        fn encoding_matches_the_reference(
            method in prop::sample::select(vec!["GET", "POST", "DELETE", "PURGE"]),
            uri in prop::sample::select(vec![
                "/",
                "/v1/chat/completions?stream=true",
                "https://h2.example:8443/x?y=%20",
                "*",
            ]),
            headers in prop::collection::vec((header_name(), header_value()), 0..12),
            version in prop::sample::select(vec![
                http::Version::HTTP_10,
                http::Version::HTTP_11,
                http::Version::HTTP_2,
            ]),
            client in prop::option::of((any::<[u8; 4]>(), any::<u16>(), any::<bool>())),
            principal in prop::option::of("[a-z:/]{1,20}"),
            body in prop::option::of((prop::collection::vec(any::<u8>(), 0..64), 0usize..80)),
            pack_as_bytes in any::<bool>(),
            extensions in prop::collection::hash_map("[a-z]{0,6}", "[a-z]{0,6}", 0..3),
        ) {
            let mut builder = http::Request::builder().method(method).uri(uri).version(version);
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            if let Some((ip, port, v6)) = client {
                let ip: std::net::IpAddr = if v6 {
                    std::net::Ipv6Addr::from(u128::from(u32::from_be_bytes(ip)) << 64 | 1).into()
                } else {
                    std::net::Ipv4Addr::from(ip).into()
                };
                builder = builder.extension(ClientAddr(std::net::SocketAddr::new(ip, port)));
            }
            if let Some(principal) = principal {
                builder = builder.extension(PeerIdentity {
                    common_name: Some(principal),
                    ..Default::default()
                });
            }
            let max_bytes = body.as_ref().map(|(_, max)| *max);
            if let Some((body, _)) = body {
                builder = builder.extension(agentgw_core::Payload::new(Bytes::from(body)));
            }
            let (parts, ()) = builder.body(()).unwrap().into_parts();
            let prefix = max_bytes.and_then(|max| BodyPrefix::of(&parts, max));
            encoded(&parts, prefix.as_ref(), pack_as_bytes, &extensions);
        }
    }
}
