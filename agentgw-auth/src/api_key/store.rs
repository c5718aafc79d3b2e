//! Hashed API keys and their metadata.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use agentgw_core::identity::ApiKeyInfo;
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::config::{ApiKeyEntry, KeyFile};
use super::scope::Scope;

/// SHA-256 of an API key. Equality is constant-time.
#[derive(Clone, Copy)]
pub(crate) struct KeyHash([u8; 32]);

impl KeyHash {
    pub(crate) fn of(key: &str) -> Self {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }
}

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for KeyHash {}

impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A digest is already uniform; the bucket choice reveals nothing about the key.
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[derive(Clone)]
pub(crate) struct Record {
    pub(crate) info: ApiKeyInfo,
    /// Unix seconds from which the key is rejected.
    pub(crate) expires_at: Option<u64>,
    /// The key's `routes` and `models`; `None` for a key usable everywhere.
    pub(crate) scope: Option<Arc<Scope>>,
}

/// Keys by hash.
#[derive(Default)]
pub(crate) struct KeyTable {
    by_hash: HashMap<KeyHash, Record, BuildHasherDefault<PassThrough>>,
}

/// A problem with one entry: its field path (relative to the list) and what is wrong. Never
/// contains the key.
pub(crate) type EntryError = (String, String);

const RESERVED: [&str; 7] = [
    "name",
    "team",
    "role",
    "allowedModels",
    "expiresAt",
    "routes",
    "models",
];

impl KeyTable {
    /// Builds a table from `entries`; `field` is the list's path (`keys`), `other` a table whose
    /// names and keys must not repeat.
    pub(crate) fn build(
        entries: &[ApiKeyEntry],
        field: &str,
        other: Option<&KeyTable>,
    ) -> Result<KeyTable, EntryError> {
        let mut table = KeyTable::default();
        let mut names: Vec<&str> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let at = |sub: &str| format!("{field}[{i}].{sub}");
            if entry.name.trim().is_empty() {
                return Err((at("name"), "must not be empty".into()));
            }
            if names.contains(&entry.name.as_str())
                || other.is_some_and(|o| o.has_name(&entry.name))
            {
                return Err((at("name"), format!("duplicate key name {:?}", entry.name)));
            }
            names.push(&entry.name);
            let hash = match (&entry.key, &entry.sha256) {
                (Some(key), None) => {
                    let key = key.expose_secret();
                    if key.trim().is_empty() {
                        return Err((at("key"), "must not be empty".into()));
                    }
                    KeyHash::of(key)
                }
                (None, Some(hex)) => {
                    let mut digest = [0u8; 32];
                    hex::decode_to_slice(hex.trim(), &mut digest).map_err(|_| {
                        (
                            at("sha256"),
                            "must be 64 hexadecimal digits (a SHA-256)".to_owned(),
                        )
                    })?;
                    KeyHash(digest)
                }
                (Some(_), Some(_)) => {
                    return Err((at("key"), "give either key or sha256, not both".into()));
                }
                (None, None) => return Err((at("key"), "give key or sha256".into())),
            };
            if table.by_hash.contains_key(&hash) || other.is_some_and(|o| o.lookup(&hash).is_some())
            {
                return Err((
                    at("key"),
                    "the same key is configured under another name".into(),
                ));
            }
            let expires_at = match &entry.expires_at {
                None => None,
                Some(text) => Some(
                    humantime::parse_rfc3339_weak(text.trim())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_secs())
                        .ok_or_else(|| {
                            (
                                at("expiresAt"),
                                format!(
                                    "{text:?} is not an RFC 3339 time like 2027-01-01T00:00:00Z"
                                ),
                            )
                        })?,
                ),
            };
            let scope = Scope::build(entry.routes.as_deref(), entry.models.as_deref())
                .map_err(|(sub, reason)| (at(&sub), reason))?
                .map(Arc::new);
            if let Some(field) = entry
                .metadata
                .keys()
                .find(|k| RESERVED.contains(&k.as_str()))
            {
                return Err((
                    at(&format!("metadata.{field}")),
                    format!("{field:?} is set by the key's own field"),
                ));
            }
            let mut metadata = entry.metadata.clone();
            let mut set = |field: &str, value: Option<Value>| {
                if let Some(value) = value {
                    metadata.insert(field.to_owned(), value);
                }
            };
            set("team", entry.team.clone().map(Value::String));
            set("role", entry.role.clone().map(Value::String));
            set(
                "allowedModels",
                entry
                    .allowed_models
                    .as_ref()
                    .map(|m| Value::Array(m.iter().cloned().map(Value::String).collect())),
            );
            set("expiresAt", entry.expires_at.clone().map(Value::String));
            let strings = |list: &Vec<String>| {
                Value::Array(list.iter().cloned().map(Value::String).collect())
            };
            set("routes", entry.routes.as_ref().map(strings));
            set("models", entry.models.as_ref().map(strings));
            table.by_hash.insert(
                hash,
                Record {
                    info: ApiKeyInfo::new(entry.name.as_str(), metadata),
                    expires_at,
                    scope,
                },
            );
        }
        Ok(table)
    }

    /// Parses a key file (YAML or JSON with `keys:`), checking it against `other`.
    pub(crate) fn from_file(bytes: &[u8], other: &KeyTable) -> Result<KeyTable, String> {
        let entries = parse_key_file(bytes)?;
        KeyTable::build(&entries, "keys", Some(other))
            .map_err(|(field, reason)| format!("{field}: {reason}"))
    }

    pub(crate) fn lookup(&self, hash: &KeyHash) -> Option<&Record> {
        self.by_hash.get(hash)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_hash.len()
    }

    fn has_name(&self, name: &str) -> bool {
        self.by_hash.values().any(|r| r.info.name() == name)
    }
}

/// Parses a key file without ever quoting a key in the error: errors at a `key` field say only
/// where they are, and no source snippet is rendered.
fn parse_key_file(bytes: &[u8]) -> Result<Vec<ApiKeyEntry>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let mut path = String::new();
    let options = serde_saphyr::options! { with_snippet: false };
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, KeyFile>(de).map_err(|err| {
            path = err.path().to_string();
            err.into_inner()
        })
    });
    match parsed {
        Ok(file) => Ok(file.keys),
        Err(_) if path == "key" || path.ends_with(".key") => {
            Err(format!("{path}: invalid value (not shown: it is a key)"))
        }
        Err(err) => {
            let location = err
                .location()
                .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                .unwrap_or_default();
            Err(format!("{path}: {}{location}", err.without_snippet()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(yaml: &str) -> Vec<ApiKeyEntry> {
        parse_key_file(yaml.as_bytes()).unwrap()
    }

    #[test]
    fn plain_and_hashed_keys_match() {
        let hex = hex::encode(Sha256::digest(b"sk-two"));
        let table = KeyTable::build(
            &[
                ApiKeyEntry::new("one", "sk-one")
                    .team("ml")
                    .allowed_models(["gpt-4o"]),
                ApiKeyEntry::hashed("two", hex).role("admin"),
            ],
            "keys",
            None,
        )
        .unwrap();
        assert_eq!(table.len(), 2);
        let one = table.lookup(&KeyHash::of("sk-one")).unwrap();
        assert_eq!(one.info.name(), "one");
        assert_eq!(one.info.get("team"), Some(&Value::from("ml")));
        assert_eq!(
            one.info.get("allowedModels"),
            Some(&serde_json::json!(["gpt-4o"]))
        );
        assert_eq!(
            table.lookup(&KeyHash::of("sk-two")).unwrap().info.name(),
            "two"
        );
        assert!(table.lookup(&KeyHash::of("sk-three")).is_none());
    }

    #[test]
    fn only_scoped_keys_carry_a_scope_and_policies_see_it() {
        let table = KeyTable::build(
            &[
                ApiKeyEntry::new("open", "sk-open").allowed_models(["gpt-4o"]),
                ApiKeyEntry::new("scoped", "sk-scoped")
                    .routes(["openai"])
                    .models(["gpt-4o*"]),
            ],
            "keys",
            None,
        )
        .unwrap();
        let open = table.lookup(&KeyHash::of("sk-open")).unwrap();
        assert!(open.scope.is_none(), "allowedModels alone scopes nothing");
        assert_eq!(open.info.get("models"), None);
        let scoped = table.lookup(&KeyHash::of("sk-scoped")).unwrap();
        assert!(scoped.scope.as_ref().unwrap().restricts_models());
        assert_eq!(
            scoped.info.get("routes"),
            Some(&serde_json::json!(["openai"]))
        );
        assert_eq!(
            scoped.info.get("models"),
            Some(&serde_json::json!(["gpt-4o*"]))
        );
    }

    #[test]
    fn entry_errors_name_the_field_and_never_the_key() {
        let cases = [
            (vec![ApiKeyEntry::new("", "k")], "keys[0].name"),
            (
                vec![ApiKeyEntry::new("a", "k1"), ApiKeyEntry::new("a", "k2")],
                "keys[1].name",
            ),
            (
                vec![
                    ApiKeyEntry::new("a", "sk-dup"),
                    ApiKeyEntry::new("b", "sk-dup"),
                ],
                "keys[1].key",
            ),
            (vec![ApiKeyEntry::hashed("a", "zz")], "keys[0].sha256"),
            (vec![ApiKeyEntry::hashed("a", "")], "keys[0].key"),
            (
                vec![ApiKeyEntry::new("a", "k").expires_at("tomorrow")],
                "keys[0].expiresAt",
            ),
            (
                vec![ApiKeyEntry::new("a", "k").metadata("team", "x")],
                "keys[0].metadata.team",
            ),
            (
                vec![ApiKeyEntry::new("a", "k").metadata("models", "x")],
                "keys[0].metadata.models",
            ),
            (
                vec![
                    ApiKeyEntry::new("a", "k1"),
                    ApiKeyEntry::new("b", "k2").routes(Vec::<String>::new()),
                ],
                "keys[1].routes",
            ),
            (
                vec![ApiKeyEntry::new("a", "k").models(["gpt-4o", "g*t"])],
                "keys[0].models[1]",
            ),
        ];
        for (entries, field) in cases {
            let (at, reason) = KeyTable::build(&entries, "keys", None).err().unwrap();
            assert_eq!(at, field, "{reason}");
            assert!(!reason.contains("sk-dup"), "{reason}");
        }
    }

    #[test]
    fn file_keys_must_not_repeat_config_keys() {
        let config = KeyTable::build(&[ApiKeyEntry::new("a", "sk-a")], "keys", None).unwrap();
        let err = KeyTable::from_file(b"keys: [{name: a, key: sk-other}]", &config)
            .err()
            .unwrap();
        assert!(err.starts_with("keys[0].name"), "{err}");
        let err = KeyTable::from_file(b"keys: [{name: b, key: sk-a}]", &config)
            .err()
            .unwrap();
        assert!(err.starts_with("keys[0].key"), "{err}");
        assert!(!err.contains("sk-a"), "{err}");
    }

    #[test]
    fn file_parse_errors_do_not_quote_keys() {
        let err = parse_key_file(b"keys:\n  - name: a\n    key: [sk-leaked]\n")
            .err()
            .unwrap();
        assert!(!err.contains("sk-leaked"), "{err}");
        assert!(err.contains("keys[0].key"), "{err}");
        let err = parse_key_file(b"keys:\n  - name: a\n    key: sk-x\n    colour: red\n")
            .err()
            .unwrap();
        assert!(err.contains("colour"), "{err}");
        assert!(!err.contains("sk-x"), "{err}");
        assert_eq!(
            entries("{\"keys\": [{\"name\": \"j\", \"key\": \"k\"}]}")[0].name,
            "j"
        );
        assert!(entries("").is_empty());
    }
}
