//! Canonical SHA-256 digests of JSON values, independent of member order and number spelling.

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub(crate) type Digest = [u8; 32];

/// The digest of `value` in a canonical encoding: object members sorted by name, every value
/// tagged with its type and strings with their length, so that distinct values never encode
/// alike. With `skip_top_level`, those members of a top-level object are left out.
pub(crate) fn digest(value: &Value, skip_top_level: &[&str]) -> Digest {
    let mut hasher = Sha256::new();
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map
                .keys()
                .filter(|key| !skip_top_level.contains(&key.as_str()))
                .collect();
            keys.sort_unstable();
            hasher.update(b"{");
            hasher.update((keys.len() as u64).to_le_bytes());
            for key in keys {
                write_str(&mut hasher, key);
                write(&mut hasher, &map[key]);
            }
        }
        other => write(&mut hasher, other),
    }
    hasher.finalize().into()
}

fn write_str(hasher: &mut Sha256, text: &str) {
    hasher.update((text.len() as u64).to_le_bytes());
    hasher.update(text.as_bytes());
}

fn write(hasher: &mut Sha256, value: &Value) {
    match value {
        Value::Null => hasher.update(b"n"),
        Value::Bool(flag) => hasher.update(if *flag { b"t" } else { b"f" }),
        Value::Number(number) => {
            hasher.update(b"#");
            // Integers and floats of equal value hash alike (`1` and `1.0`).
            match (number.as_i64(), number.as_u64(), number.as_f64()) {
                (Some(i), _, _) => hasher.update((i as f64).to_bits().to_le_bytes()),
                (None, Some(u), _) => hasher.update((u as f64).to_bits().to_le_bytes()),
                (None, None, Some(f)) => hasher.update(f.to_bits().to_le_bytes()),
                (None, None, None) => write_str(hasher, &number.to_string()),
            }
        }
        Value::String(text) => {
            hasher.update(b"s");
            write_str(hasher, text);
        }
        Value::Array(items) => {
            hasher.update(b"[");
            hasher.update((items.len() as u64).to_le_bytes());
            for item in items {
                write(hasher, item);
            }
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            hasher.update(b"{");
            hasher.update((entries.len() as u64).to_le_bytes());
            for (key, child) in entries {
                write_str(hasher, key);
                write(hasher, child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn member_order_does_not_matter() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"x":[1,2],"y":"z"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":{"y":"z","x":[1,2.0]},"a":1.0}"#).unwrap();
        assert_eq!(digest(&a, &[]), digest(&b, &[]));
    }

    #[test]
    fn any_change_matters() {
        let base = json!({"name": "t", "description": "Adds", "inputSchema": {"type": "object"}});
        let variants = [
            json!({"name": "t", "description": "Adds.", "inputSchema": {"type": "object"}}),
            json!({"name": "t", "description": "Adds", "inputSchema": {"type": "array"}}),
            json!({"name": "t", "description": "Adds", "inputSchema": {"type": "object"}, "title": "T"}),
            json!({"name": "t", "description": ["Adds"], "inputSchema": {"type": "object"}}),
            json!({"name": "t", "descriptio": "nAdds", "inputSchema": {"type": "object"}}),
        ];
        for variant in variants {
            assert_ne!(digest(&base, &[]), digest(&variant, &[]), "{variant}");
        }
    }

    #[test]
    fn skipped_members_do_not_matter() {
        let a = json!({"name": "t", "_meta": {"ts": 1}});
        let b = json!({"name": "t", "_meta": {"ts": 2}});
        assert_ne!(digest(&a, &[]), digest(&b, &[]));
        assert_eq!(digest(&a, &["_meta"]), digest(&b, &["_meta"]));
    }
}
