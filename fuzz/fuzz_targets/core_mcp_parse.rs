//! `agentgw_core::mcp`: JSON-RPC 2.0 parsing and re-serialization.
//!
//! Checks, on arbitrary bytes:
//!
//! 1. `parse` never panics, and its answer is the same as `from_value` on the parsed JSON (the
//!    borrowing path) and `Envelope::try_from` (the moving path), and as serde's `Deserialize`.
//! 2. A parsed envelope serializes (`to_bytes`) to bytes that parse to the same envelope, and
//!    `to_value` / `into_value` / serde agree with `to_bytes`.
//! 3. The accessors (`kind`, `id`, `method`, `tool_call`, the tools/list helpers, `Display` of
//!    ids) never panic, and `tool_call` agrees with `try_tool_call`.
//! 4. `parse_sse_data` agrees with `parse` on text that is not blank.
#![no_main]

use agentgw_core::mcp::{self, Envelope, Message, PendingRequests, ToolDef};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check_message(message: &Message) {
    let _ = message.kind().as_str();
    let _ = message.method();
    let _ = message.params();
    let _ = message.result();
    let _ = message.error();
    if let Some(id) = message.id() {
        // `Display` writes the id as JSON.
        let shown: Value = serde_json::from_str(&id.to_string()).expect("id displays as JSON");
        assert_eq!(mcp::Id::from_value(&shown).as_ref(), Some(id));
        assert_eq!(mcp::Id::from_value(&id.to_value()).as_ref(), Some(id));
        let response = mcp::error_response(id, mcp::codes::FORBIDDEN, "denied", None);
        let response = mcp::from_value(&response).expect("error_response is valid JSON-RPC");
        assert_eq!(response.as_single().and_then(Message::id), Some(id));
    }
    match message.try_tool_call() {
        Ok(call) => assert_eq!(message.tool_call(), call),
        Err(err) => {
            assert!(message.tool_call().is_none());
            let _ = (err.code(), err.reason(), err.to_string());
        }
    }
    if let Some(result) = message.result()
        && mcp::is_tools_list_result(result)
    {
        let tools = mcp::tools_from_list_result(result).expect("a tools/list result");
        for tool in tools {
            let _ = ToolDef::from_value(tool);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed = mcp::parse(data);

    // The three validation paths agree.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            let borrowed = mcp::from_value(&value);
            let moved = Envelope::try_from(value.clone());
            let serde = serde_json::from_value::<Envelope>(value);
            match &parsed {
                Ok(envelope) => {
                    assert_eq!(borrowed.as_ref().ok(), Some(envelope));
                    assert_eq!(moved.as_ref().ok(), Some(envelope));
                    assert_eq!(serde.as_ref().ok(), Some(envelope));
                }
                Err(err) => {
                    let borrowed = borrowed.expect_err("parse failed, from_value did not");
                    let moved = moved.expect_err("parse failed, try_from did not");
                    assert!(serde.is_err(), "parse failed, Deserialize did not");
                    assert_eq!(borrowed.to_string(), err.to_string());
                    assert_eq!(moved.to_string(), err.to_string());
                }
            }
        }
        if !text.trim_ascii().is_empty() {
            let sse = mcp::parse_sse_data(text);
            match (&parsed, sse) {
                (Ok(envelope), Ok(Some(from_sse))) => assert_eq!(envelope, &from_sse),
                (Err(err), Err(from_sse)) => assert_eq!(err.to_string(), from_sse.to_string()),
                (parsed, sse) => panic!("parse {parsed:?} but parse_sse_data {sse:?}"),
            }
        }
    }

    let envelope = match parsed {
        Ok(envelope) => envelope,
        Err(err) => {
            let _ = (err.code(), err.reason(), err.to_string());
            return;
        }
    };
    for message in envelope.messages() {
        check_message(message);
    }
    let mut pending = PendingRequests::new(4);
    pending.track(&envelope);
    assert!(pending.len() <= pending.capacity());
    for message in envelope.messages() {
        let _ = pending.resolve(message);
    }

    // Serialize and parse again: the same envelope.
    let bytes = envelope.to_bytes();
    let reparsed = mcp::parse(&bytes)
        .unwrap_or_else(|err| panic!("to_bytes gave unparsable {bytes:?}: {err}"));
    assert_eq!(reparsed, envelope, "round trip through {bytes:?}");
    assert_eq!(reparsed.to_bytes(), bytes, "to_bytes is not a fixed point");

    // Every serialization path writes the same JSON.
    let value: Value = serde_json::from_slice(&bytes).expect("to_bytes is JSON");
    assert_eq!(envelope.to_value(), value);
    assert_eq!(
        serde_json::to_value(&envelope).expect("serde serializes"),
        value
    );
    assert_eq!(envelope.clone().into_value(), value);
    if let Some(single) = envelope.as_single() {
        assert_eq!(single.to_bytes(), bytes);
    }
});
