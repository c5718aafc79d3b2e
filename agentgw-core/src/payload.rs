//! The request body read once and shared by every layer.
//!
//! A [`Payload`] holds the body bytes and computes, on first use and at most once, the parsed
//! JSON and the MCP view of it. It lives in the request extensions (see [`crate::body`]), so the
//! first layer that needs the body pays for reading and parsing it and every later layer reuses
//! the result. Cloning a `Payload` is a reference-count increment.
//!
//! # Example
//!
//! ```
//! use agentgw_core::Payload;
//!
//! let payload = Payload::from_static(br#"{"model":"gpt-4","messages":[]}"#);
//! // Parsed on first use, then cached.
//! assert_eq!(payload.json().unwrap()["model"], "gpt-4");
//!
//! // A rewrite produces a new payload whose JSON is already known (no second parse).
//! let mut json = payload.json().unwrap().clone();
//! json["model"] = "gpt-4o".into();
//! let rewritten = Payload::from_json(json);
//! assert_eq!(rewritten.bytes().as_ref(), br#"{"model":"gpt-4o","messages":[]}"#);
//!
//! // Invalid JSON is an error, never a panic.
//! assert!(Payload::from_static(b"{not json").json().is_err());
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;

use crate::json::plain;
use crate::mcp;

/// Why a payload has no JSON view: the body is not strict JSON (see [`crate::json`]).
pub use crate::json::JsonError as PayloadError;

/// A buffered request body with lazily parsed views. See the [module docs](self).
#[derive(Clone)]
pub struct Payload {
    inner: Arc<Inner>,
}

struct Inner {
    bytes: Bytes,
    json: OnceLock<Result<Value, PayloadError>>,
    mcp: OnceLock<Option<mcp::Envelope>>,
    /// The body read as a plain document ([`crate::json::plain`]), when it is one.
    plain: OnceLock<Option<Plain>>,
}

/// A plain body's top-level members, each parsed alone on first use.
struct Plain {
    document: plain::Document,
    /// One per member of `document` (none when it is not an object).
    values: Box<[OnceLock<Option<Value>>]>,
}

impl Payload {
    /// A payload of `bytes`. Nothing is parsed until asked for.
    pub fn new(bytes: Bytes) -> Self {
        Payload {
            inner: Arc::new(Inner {
                bytes,
                json: OnceLock::new(),
                mcp: OnceLock::new(),
                plain: OnceLock::new(),
            }),
        }
    }

    /// A payload of static bytes.
    pub fn from_static(bytes: &'static [u8]) -> Self {
        Payload::new(Bytes::from_static(bytes))
    }

    /// A payload made by serializing `json`; the parsed view is `json` itself, so a rewritten
    /// body is never parsed again.
    pub fn from_json(json: Value) -> Self {
        let bytes = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
        let json_cell = OnceLock::new();
        let _ = json_cell.set(Ok(json));
        Payload {
            inner: Arc::new(Inner {
                bytes,
                json: json_cell,
                mcp: OnceLock::new(),
                plain: OnceLock::new(),
            }),
        }
    }

    /// The body bytes, exactly as read (or as rewritten).
    pub fn bytes(&self) -> &Bytes {
        &self.inner.bytes
    }

    /// Length of the body in bytes.
    pub fn len(&self) -> usize {
        self.inner.bytes.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.bytes.is_empty()
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, PayloadError> {
        std::str::from_utf8(&self.inner.bytes).map_err(|e| PayloadError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        })
    }

    /// The body parsed as strict JSON ([`crate::json::parse`]: duplicate keys, case variants of
    /// the fields layers read, `NaN` and the like are errors), parsed on the first call and
    /// cached for every later one.
    pub fn json(&self) -> Result<&Value, &PayloadError> {
        self.inner
            .json
            .get_or_init(|| parse_json(&self.inner.bytes))
            .as_ref()
    }

    /// Whether the body is strict JSON, as [`json`](Self::json) decides, without building the
    /// tree when the body is plain ([`crate::json::plain`]): the verdict a layer needs when it
    /// reads the bytes itself or only some fields.
    ///
    /// ```
    /// use agentgw_core::Payload;
    ///
    /// assert!(Payload::from_static(br#"{"model":"gpt-4o"}"#).check().is_ok());
    /// let refused = Payload::from_static(br#"{"model":"a","Model":"b"}"#);
    /// assert_eq!(refused.check().unwrap_err().reason(), "json_duplicate_key");
    /// ```
    pub fn check(&self) -> Result<(), &PayloadError> {
        if let Some(json) = self.inner.json.get() {
            return json.as_ref().map(drop);
        }
        if self.plain().is_some() {
            return Ok(());
        }
        self.json().map(drop)
    }

    /// Whether the body is a strict JSON object (see [`check`](Self::check)).
    pub fn is_object(&self) -> bool {
        if let Some(json) = self.inner.json.get() {
            return json.as_ref().is_ok_and(Value::is_object);
        }
        match self.plain() {
            Some(plain) => plain.document.is_object(),
            None => self.json().is_ok_and(Value::is_object),
        }
    }

    /// The top-level member `name` of the body, when the body is a strict JSON object that has
    /// it (`Ok(None)` when it is strict JSON but not an object or has no such member). A plain
    /// body ([`crate::json::plain`]) is not parsed whole: the member alone is, on first use, and
    /// cached. The value is the one [`json`](Self::json) would hold.
    ///
    /// ```
    /// use agentgw_core::Payload;
    ///
    /// let payload = Payload::from_static(br#"{"model":"gpt-4o","messages":[]}"#);
    /// assert_eq!(payload.field("model").unwrap().unwrap(), "gpt-4o");
    /// assert!(payload.field("tools").unwrap().is_none());
    /// assert!(Payload::from_static(b"{not json").field("model").is_err());
    /// ```
    pub fn field(&self, name: &str) -> Result<Option<&Value>, &PayloadError> {
        if let Some(json) = self.inner.json.get() {
            return json.as_ref().map(|json| json.get(name));
        }
        let Some(plain) = self.plain() else {
            return self.json().map(|json| json.get(name));
        };
        let Some(members) = plain.document.members() else {
            return Ok(None);
        };
        let bytes = &self.inner.bytes;
        let Some(i) = plain.document.member(bytes, name.as_bytes()) else {
            return Ok(None);
        };
        let value = plain.values[i]
            .get_or_init(|| serde_json::from_slice(&bytes[members[i].1.clone()]).ok());
        match value {
            Some(value) => Ok(Some(value)),
            // A plain member always parses; should it not, the whole body decides.
            None => self.json().map(|json| json.get(name)),
        }
    }

    fn plain(&self) -> Option<&Plain> {
        self.inner
            .plain
            .get_or_init(|| {
                let text = std::str::from_utf8(&self.inner.bytes).ok()?;
                let document = plain::read(text, true, &mut plain::NoVisit)?;
                let members = document.members().map_or(0, <[_]>::len);
                Some(Plain {
                    values: (0..members).map(|_| OnceLock::new()).collect(),
                    document,
                })
            })
            .as_ref()
    }

    /// The body as a JSON-RPC envelope (an MCP message or batch), or `None` when the body is not
    /// JSON-RPC. Computed once from the cached JSON; a plain object without a `jsonrpc` member
    /// is answered `None` without parsing it whole.
    pub fn mcp(&self) -> Option<&mcp::Envelope> {
        self.inner
            .mcp
            .get_or_init(|| {
                // An object without a `jsonrpc` member is no JSON-RPC message: a plain one (a
                // chat request) need not be parsed whole to know.
                if self.inner.json.get().is_none()
                    && let Some(plain) = self.plain()
                    && plain.document.is_object()
                    && plain
                        .document
                        .member(&self.inner.bytes, b"jsonrpc")
                        .is_none()
                {
                    return None;
                }
                let json = self.json().ok()?;
                mcp::from_value(json).ok()
            })
            .as_ref()
    }

    /// Whether two payloads share the same storage (a clone of one another).
    pub fn ptr_eq(&self, other: &Payload) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, PayloadError> {
    crate::json::parse(bytes)
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies can hold secrets: show the size, never the content.
        f.debug_struct("Payload")
            .field("len", &self.inner.bytes.len())
            .field("json_parsed", &self.inner.json.get().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_parsed_once_and_shared_by_clones() {
        let payload = Payload::from_static(br#"{"a":[1,2,3]}"#);
        let clone = payload.clone();
        let first: *const Value = payload.json().unwrap();
        let second: *const Value = clone.json().unwrap();
        assert_eq!(first, second, "clones share one parsed value");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert_eq!(
            Payload::from_static(b"  ").json(),
            Err(&PayloadError::Empty)
        );
        assert!(matches!(
            Payload::from_static(b"{\"a\":\xff}").json(),
            Err(PayloadError::InvalidUtf8 { valid_up_to: 5 })
        ));
        match Payload::from_static(b"{\"a\":\n}").json() {
            Err(PayloadError::InvalidJson { line, .. }) => assert_eq!(*line, 2),
            other => panic!("expected InvalidJson, got {other:?}"),
        }
    }

    #[test]
    fn from_json_keeps_key_order() {
        let value: Value = serde_json::from_str(r#"{"z":1,"a":2,"m":3}"#).unwrap();
        let payload = Payload::from_json(value);
        assert_eq!(payload.bytes().as_ref(), br#"{"z":1,"a":2,"m":3}"#);
    }

    #[test]
    fn debug_never_shows_content() {
        let payload = Payload::from_static(b"sk-secret-key");
        let debug = format!("{payload:?}");
        assert!(!debug.contains("secret"));
        assert!(debug.contains("len: 13"));
    }

    #[test]
    fn fields_and_verdict_agree_with_the_whole_parse() {
        for body in [
            &br#"{"model":"gpt-4o","messages":[{"role":"user","content":"a\nb"}],"n":1.5}"#[..],
            br#"{"mod\u0065l":"x","messages":[]}"#,
            br#"{"model":"\ud800"}"#,
            br#"{"model":"a","Model":"b"}"#,
            br#"{"model":1e400}"#,
            br#"{"model":{"a":[1,2,{"b":null}]}}"#,
            br#"["model"]"#,
            br#""model""#,
            b"{not json",
            b"",
        ] {
            let lazy = Payload::new(Bytes::from_static(body));
            let whole = Payload::new(Bytes::from_static(body));
            let shown = String::from_utf8_lossy(body);
            let expected = whole.json();
            assert_eq!(lazy.check().is_ok(), expected.is_ok(), "{shown}");
            assert_eq!(
                lazy.is_object(),
                expected.is_ok_and(Value::is_object),
                "{shown}"
            );
            for name in ["model", "messages", "n", "absent"] {
                assert_eq!(
                    lazy.field(name).ok(),
                    expected.ok().map(|json| json.get(name)),
                    "{shown} {name}"
                );
            }
        }
    }

    #[test]
    fn a_plain_body_is_never_parsed_whole_for_a_field() {
        let payload = Payload::from_static(
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert!(payload.check().is_ok());
        assert_eq!(payload.field("model").unwrap().unwrap(), "gpt-4o");
        assert_eq!(
            payload.field("messages").unwrap().unwrap()[0]["content"],
            "hi"
        );
        assert!(payload.inner.json.get().is_none());
        // Once parsed whole, fields come from the tree.
        assert_eq!(payload.json().unwrap()["model"], "gpt-4o");
        assert_eq!(payload.field("model").unwrap().unwrap(), "gpt-4o");
    }

    #[test]
    fn mcp_view_only_for_json_rpc() {
        let rpc = Payload::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
        );
        assert!(rpc.mcp().is_some());
        let chat = Payload::from_static(br#"{"model":"gpt-4","messages":[]}"#);
        assert!(chat.mcp().is_none());
        // A plain object without `jsonrpc` is answered without parsing it whole.
        let plain_chat = Payload::from_static(br#"{"model":"m","messages":[]}"#);
        assert!(plain_chat.mcp().is_none());
        assert!(plain_chat.inner.json.get().is_none());
        let plain_rpc = Payload::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert!(plain_rpc.mcp().is_some());
    }
}
