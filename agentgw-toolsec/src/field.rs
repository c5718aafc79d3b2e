//! Dotted field paths into JSON (`inputSchema.properties.*.default`) and walks over the text
//! they select.
//!
//! JSON parsed by `serde_json` is at most 128 levels deep, so the recursive walks here are
//! bounded.

use std::borrow::Cow;

use serde_json::Value;

/// A parsed field path: members separated by `.`, `*` for any member of an object or element
/// of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Any,
}

impl FieldPath {
    /// Parses `text`; an empty path or an empty segment (`a..b`) is an error.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("the field path is empty".to_owned());
        }
        let segments = text
            .split('.')
            .map(|segment| match segment.trim() {
                "" => Err(format!("`{text}` has an empty segment")),
                "*" => Ok(Segment::Any),
                key => Ok(Segment::Key(key.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { segments })
    }

    /// Whether the path is just `*`.
    pub(crate) fn is_any(&self) -> bool {
        self.segments == [Segment::Any]
    }

    /// Calls `f` with every value the path selects in `root`.
    pub(crate) fn for_each_value<'a>(&self, root: &'a Value, f: &mut impl FnMut(&'a Value)) {
        select(root, &self.segments, f);
    }
}

fn select<'a>(value: &'a Value, segments: &[Segment], f: &mut impl FnMut(&'a Value)) {
    let Some((first, rest)) = segments.split_first() else {
        f(value);
        return;
    };
    match (first, value) {
        (Segment::Key(key), Value::Object(map)) => {
            if let Some(child) = map.get(key) {
                select(child, rest, f);
            }
        }
        (Segment::Key(key), Value::Array(items)) => {
            if let Some(child) = key.parse::<usize>().ok().and_then(|i| items.get(i)) {
                select(child, rest, f);
            }
        }
        (Segment::Any, Value::Object(map)) => {
            for child in map.values() {
                select(child, rest, f);
            }
        }
        (Segment::Any, Value::Array(items)) => {
            for child in items {
                select(child, rest, f);
            }
        }
        _ => {}
    }
}

/// Calls `f` with every string under `value` (the value itself if it is one); with
/// `include_keys`, object member names too.
pub(crate) fn for_each_string<'a>(
    value: &'a Value,
    include_keys: bool,
    f: &mut impl FnMut(&'a str) -> bool,
) -> bool {
    match value {
        Value::String(text) => f(text),
        Value::Array(items) => items
            .iter()
            .all(|item| for_each_string(item, include_keys, f)),
        Value::Object(map) => map.iter().all(|(key, child)| {
            (!include_keys || f(key)) && for_each_string(child, include_keys, f)
        }),
        _ => true,
    }
}

/// Calls `f` with the text of every string, number and boolean under `value`; stops when `f`
/// returns `false` and returns whether it ran to the end.
pub(crate) fn for_each_scalar<'a>(
    value: &'a Value,
    f: &mut impl FnMut(Cow<'a, str>) -> bool,
) -> bool {
    match value {
        Value::String(text) => f(Cow::Borrowed(text)),
        Value::Number(number) => f(Cow::Owned(number.to_string())),
        Value::Bool(flag) => f(Cow::Borrowed(if *flag { "true" } else { "false" })),
        Value::Null => true,
        Value::Array(items) => items.iter().all(|item| for_each_scalar(item, f)),
        Value::Object(map) => map.values().all(|child| for_each_scalar(child, f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(path: &str, value: &Value) -> Vec<String> {
        let path = FieldPath::parse(path).expect("valid path");
        let mut out = Vec::new();
        path.for_each_value(value, &mut |v| {
            for_each_string(v, false, &mut |s| {
                out.push(s.to_owned());
                true
            });
        });
        out
    }

    #[test]
    fn paths_select_values() {
        let tool = json!({
            "name": "run",
            "description": "Runs",
            "inputSchema": {"properties": {
                "cmd": {"type": "string", "default": "; rm -rf /"},
                "env": {"default": ["A=1", "B=$(id)"]},
                "n": {"default": 3}
            }}
        });
        assert_eq!(strings("description", &tool), ["Runs"]);
        assert_eq!(
            strings("inputSchema.properties.*.default", &tool),
            ["; rm -rf /", "A=1", "B=$(id)"]
        );
        assert_eq!(
            strings("inputSchema.properties.cmd.type", &tool),
            ["string"]
        );
        assert!(strings("missing.path", &tool).is_empty());
        assert_eq!(
            strings("inputSchema.properties.env.default.1", &tool),
            ["B=$(id)"]
        );
        assert!(FieldPath::parse("*").unwrap().is_any());
        assert!(FieldPath::parse("").is_err() && FieldPath::parse("a..b").is_err());
    }

    #[test]
    fn scalars_and_keys() {
        let value = json!({"a": 1, "b": [true, null, "x"], "c": {"d": 2.5}});
        let mut seen = Vec::new();
        for_each_scalar(&value, &mut |s| {
            seen.push(s.into_owned());
            true
        });
        assert_eq!(seen, ["1", "true", "x", "2.5"]);
        let mut keys = Vec::new();
        for_each_string(&value, true, &mut |s| {
            keys.push(s.to_owned());
            true
        });
        assert_eq!(keys, ["a", "b", "x", "c", "d"]);
        // Stops early.
        let mut count = 0;
        assert!(!for_each_scalar(&value, &mut |_| {
            count += 1;
            count < 2
        }));
        assert_eq!(count, 2);
    }
}
