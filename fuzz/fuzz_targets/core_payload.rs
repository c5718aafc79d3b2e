//! `agentgw_core::Payload`: the shared request body and its cached views.
//!
//! Checks, on arbitrary bytes:
//!
//! 1. `text`, `json` and `mcp` never panic, and are cached: a second call (and a clone's call)
//!    returns the very same value.
//! 2. `json` accepts a subset of what serde_json accepts (strict JSON, see `agentgw_core::json`)
//!    and reads it the same (blank bodies are `Empty`), and for strict JSON `mcp` is `Some`
//!    exactly when `mcp::parse` accepts the body, with the same envelope.
//! 3. `Payload::from_json` of the parsed JSON holds bytes that parse to that JSON.
#![no_main]

use agentgw_core::Payload;
use agentgw_core::mcp;
use agentgw_core::payload::PayloadError;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let payload = Payload::new(Bytes::copy_from_slice(data));
    assert_eq!(payload.len(), data.len());
    assert_eq!(payload.is_empty(), data.is_empty());
    assert_eq!(payload.bytes().as_ref(), data);
    assert_eq!(payload.text().ok(), std::str::from_utf8(data).ok());
    let _ = format!("{payload:?}");

    let clone = payload.clone();
    assert!(clone.ptr_eq(&payload));
    let json = payload.json();
    assert!(std::ptr::eq(
        json.map_or(std::ptr::null(), |v| v),
        clone.json().map_or(std::ptr::null(), |v| v)
    ));

    let expected = serde_json::from_slice::<Value>(data);
    match json {
        // Strict JSON is a subset of what serde_json reads, and reads the same.
        Ok(value) => assert_eq!(Some(value), expected.as_ref().ok()),
        Err(PayloadError::Empty) => assert!(data.iter().all(u8::is_ascii_whitespace)),
        Err(PayloadError::InvalidUtf8 { valid_up_to }) => match std::str::from_utf8(data) {
            Err(err) => assert_eq!(*valid_up_to, err.valid_up_to()),
            Ok(_) => assert!(data.starts_with(b"\xef\xbb\xbf") && *valid_up_to == 0),
        },
        Err(err @ PayloadError::InvalidJson { .. }) => {
            assert!(std::str::from_utf8(data).is_ok());
            let _ = err.to_string();
        }
        // Duplicate keys and case variants: serde_json may well read these; strict JSON does not.
        Err(err) => {
            assert!(std::str::from_utf8(data).is_ok());
            let _ = err.to_string();
        }
    }

    let envelope = payload.mcp();
    assert!(std::ptr::eq(
        envelope.map_or(std::ptr::null(), |e| e),
        clone.mcp().map_or(std::ptr::null(), |e| e)
    ));
    if json.is_ok() {
        assert_eq!(envelope, mcp::parse(data).ok().as_ref());
    }

    if let Ok(value) = json {
        let rebuilt = Payload::from_json(value.clone());
        assert_eq!(rebuilt.json().ok(), Some(value));
        let reparsed: Value =
            serde_json::from_slice(rebuilt.bytes()).expect("from_json writes JSON");
        assert_eq!(&reparsed, value, "from_json bytes: {:?}", rebuilt.bytes());
        assert_eq!(rebuilt.mcp(), envelope);
    }
});
