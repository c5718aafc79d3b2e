//! Secrets out of audit events: arguments and results are masked before they are recorded.

use std::sync::LazyLock;

use agentgw_guard::{Builtin, PatternSet};
use serde_json::{Map, Value};

/// What replaces a secret in an audit event.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// The longest string kept in an audit event, in characters; longer ones are cut.
const MAX_STRING_CHARS: usize = 1024;

/// Argument names whose values are always redacted (compared lower-cased, `-` as `_`).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "auth",
    "credential",
    "credentials",
    "private_key",
    "access_key",
    "client_secret",
    "cookie",
    "session",
];

/// Shapes of well-known secrets, plus the guard's PII builtins.
fn secret_patterns() -> PatternSet {
    let patterns = [
        ("openai-key", r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}"),
        ("aws-access-key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        (
            "github-token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})",
        ),
        ("slack-token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
        ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}"),
        (
            "private-key",
            r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----[\s\S]*?-----END [A-Z ]{0,20}PRIVATE KEY-----",
        ),
        (
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        ),
        ("bearer", r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}"),
        (
            "assignment",
            r"(?i)\b(?:password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*[^\s,;&]+",
        ),
    ];
    let mut builder = PatternSet::builder().default_replacement(REDACTED);
    for (name, pattern) in patterns {
        builder = builder.pattern(name, pattern);
    }
    for builtin in [
        Builtin::CreditCard,
        Builtin::Ssn,
        Builtin::CaSin,
        Builtin::Email,
    ] {
        builder = builder.builtin(builtin);
    }
    // Constant patterns, covered by the tests below.
    builder.build().expect("audit secret patterns compile")
}

static SECRETS: LazyLock<PatternSet> = LazyLock::new(secret_patterns);

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    SECRET_KEYS
        .iter()
        .any(|secret| key == *secret || key.ends_with(&format!("_{secret}")))
}

/// A copy of `value` fit for an audit event: values of secret-named members redacted, secrets
/// and PII in strings masked, long strings cut.
pub(crate) fn masked(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(mask_text(text)),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, child) in map {
                let child = if is_secret_key(key) && !child.is_null() {
                    Value::String(REDACTED.to_owned())
                } else {
                    masked(child)
                };
                out.insert(key.clone(), child);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// `text` with secrets masked, cut to the audit's string length.
pub(crate) fn mask_text(text: &str) -> String {
    let cut = match text.char_indices().nth(MAX_STRING_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    };
    let mut out = SECRETS.mask(cut).into_owned();
    if cut.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_members_and_shapes_are_masked() {
        let arguments = json!({
            "path": "notes.txt",
            "apiKey": "plain-looking-value",
            "X-Api-Key": "v",
            "headers": {"Authorization": "Bearer abc", "accept": "json"},
            "text": "key sk-abcdefghijklmnop1234 and AKIAABCDEFGHIJKLMNOP, mail jo@example.com",
            "card": "4111 1111 1111 1111",
            "n": 5,
            "db_password": null
        });
        let out = masked(&arguments);
        assert_eq!(out["path"], "notes.txt");
        assert_eq!(out["apiKey"], REDACTED);
        assert_eq!(out["X-Api-Key"], REDACTED);
        assert_eq!(out["headers"]["Authorization"], REDACTED);
        assert_eq!(out["headers"]["accept"], "json");
        assert_eq!(
            out["text"],
            "key [REDACTED] and [REDACTED], mail [REDACTED]"
        );
        assert_eq!(out["card"], REDACTED);
        assert_eq!(out["n"], 5);
        assert_eq!(out["db_password"], Value::Null);
    }

    #[test]
    fn private_keys_and_tokens_in_text() {
        let text = "conf: password=hunter2; token: eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4f\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----";
        let out = mask_text(text);
        assert!(
            !out.contains("hunter2") && !out.contains("SflKx") && !out.contains("MIIEow"),
            "{out}"
        );
    }

    #[test]
    fn long_strings_are_cut() {
        let out = mask_text(&"a".repeat(5000));
        assert_eq!(out.chars().count(), MAX_STRING_CHARS + 1);
        assert!(out.ends_with('…'));
    }
}
