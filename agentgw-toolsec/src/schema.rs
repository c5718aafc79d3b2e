//! `tools/call` arguments against the tool's `inputSchema`.
//!
//! Schemas come from tool servers, which are not trusted. They are compiled with `jsonschema`
//! built without its network and file features, and with an offline retriever on top: a
//! `$ref` to anything outside the schema fails to compile instead of being fetched (no SSRF,
//! no local file reads). `pattern` keywords run on the linear-time `regex` engine, so a
//! schema cannot make validation backtrack for long. Formats are annotations, as in JSON
//! Schema 2020-12.

use std::fmt;
use std::sync::Arc;

use jsonschema::{PatternOptions, Validator};
use serde_json::Value;

/// A compiled `inputSchema`.
#[derive(Clone)]
pub(crate) struct InputSchema {
    validator: Arc<Validator>,
}

impl fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputSchema").finish_non_exhaustive()
    }
}

impl InputSchema {
    /// Compiles `schema`; the error says why it cannot be used (an unresolvable `$ref`, an
    /// invalid keyword value).
    pub(crate) fn compile(schema: &Value) -> Result<Self, String> {
        jsonschema::options()
            .offline()
            .should_validate_formats(false)
            .with_pattern_options(PatternOptions::regex())
            .build(schema)
            .map(|validator| Self {
                validator: Arc::new(validator),
            })
            .map_err(|error| error.masked().to_string())
    }

    /// `Ok` when `arguments` (an absent object reads as `{}`) are valid; otherwise where and
    /// which keyword failed, without quoting the value.
    pub(crate) fn validate(&self, arguments: Option<&Value>) -> Result<(), String> {
        let empty = Value::Object(serde_json::Map::new());
        let instance = arguments.unwrap_or(&empty);
        match self.validator.iter_errors(instance).next() {
            None => Ok(()),
            Some(error) => {
                let location = error.instance_path().to_string();
                let location = if location.is_empty() { "/" } else { &location };
                Err(format!("{} (at {location})", error.masked()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn arguments_are_validated() {
        let schema = InputSchema::compile(&json!({
            "type": "object",
            "properties": {"tail": {"type": "integer", "maximum": 1000}, "name": {"type": "string", "pattern": "^[a-z]+$"}},
            "required": ["name"],
            "additionalProperties": false
        }))
        .expect("compiles");
        assert_eq!(
            schema.validate(Some(&json!({"name": "abc", "tail": 10}))),
            Ok(())
        );
        let error = schema
            .validate(Some(&json!({"name": "abc", "tail": "secret-value-9"})))
            .expect_err("wrong type");
        assert!(error.contains("/tail"), "{error}");
        assert!(
            !error.contains("secret-value-9"),
            "values are not echoed: {error}"
        );
        assert!(schema.validate(Some(&json!({"name": "ABC"}))).is_err());
        assert!(
            schema
                .validate(Some(&json!({"name": "a", "extra": 1})))
                .is_err()
        );
        assert!(schema.validate(None).is_err(), "missing required argument");
    }

    #[test]
    fn remote_refs_are_never_fetched() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        let server = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_millis(500);
            while std::time::Instant::now() < deadline {
                if let Ok((mut stream, _)) = listener.accept() {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let mut buf = [0; 1024];
                    let _ = stream.read(&mut buf);
                    let body = r#"{"type":"string"}"#;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        for reference in [
            format!("http://127.0.0.1:{port}/schema.json"),
            format!("http://127.0.0.1:{port}/defs.json#/definitions/x"),
            "file:///etc/passwd".to_owned(),
        ] {
            let schema = json!({"type": "object", "properties": {"a": {"$ref": reference}}});
            let error = InputSchema::compile(&schema).expect_err("a remote $ref is refused");
            assert!(!error.is_empty());
        }
        server.join().expect("server thread");
        assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing was fetched");
    }

    #[test]
    fn local_refs_work() {
        let schema = InputSchema::compile(&json!({
            "type": "object",
            "$defs": {"ns": {"type": "string", "maxLength": 3}},
            "properties": {"namespace": {"$ref": "#/$defs/ns"}}
        }))
        .expect("local $ref compiles");
        assert!(schema.validate(Some(&json!({"namespace": "abc"}))).is_ok());
        assert!(
            schema
                .validate(Some(&json!({"namespace": "abcd"})))
                .is_err()
        );
    }

    #[test]
    fn invalid_schemas_are_errors() {
        assert!(InputSchema::compile(&json!({"type": "no-such-type"})).is_err());
        assert!(InputSchema::compile(&json!({"pattern": "(unclosed"})).is_err());
    }
}
