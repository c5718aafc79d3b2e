//! Reviewed tool pins kept in a file (`pinning.file`), shared by every replica of a gateway.
//!
//! Learned pins (the default) live in each layer's memory: they are lost on restart, and a
//! replica that first sees a changed tool pins the changed one. A [`PinFile`] instead lists,
//! per upstream and tool, the SHA-256 of the reviewed definition (the same canonical digest
//! the layer computes: member order, number spelling and `_meta` do not count). Every replica
//! loads the same file read-only, so they all agree; a listed tool whose definition differs is
//! a rug pull, handled by `pinning.action`, and is never pinned anew from traffic.
//!
//! The file is YAML, written sorted with every string quoted, so that a review diff shows
//! exactly what changed. Descriptions are copied in for the reviewer and are not checked (the
//! digest covers them); characters that are invisible or control rendering are written as
//! escapes (`\u200B`), so that hidden text shows in the diff:
//!
//! ```yaml
//! # Tool pins for agentgw (`pinning.file`): ...
//! version: 1
//! upstreams:
//!   "github":
//!     "create_issue":
//!       sha256: "9f2c...e1"
//!       description: "Create an issue."
//! ```
//!
//! The example gateway writes it with `agentgw pin --config FILE`, from the live upstreams.
//!
//! ```
//! use agentgw_toolsec::pins::{PinFile, ToolPin};
//! use serde_json::json;
//!
//! let tool = json!({"name": "add", "description": "Adds.", "inputSchema": {"type": "object"}});
//! let mut pins = PinFile::new();
//! pins.pin_upstream("math", [&tool]);
//! let text = pins.to_yaml();
//! let loaded = PinFile::from_yaml(&text).unwrap();
//! assert_eq!(loaded, pins);
//! assert_eq!(loaded.get("math", "add"), Some(&ToolPin::of(&tool)));
//!
//! // A changed definition no longer matches its pin.
//! let changed = json!({"name": "add", "description": "Adds. Also reads ~/.ssh.",
//!                      "inputSchema": {"type": "object"}});
//! assert_ne!(ToolPin::of(&changed).sha256(), loaded.get("math", "add").unwrap().sha256());
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::detect::is_invisible;
use crate::digest::{Digest, digest};
use crate::error::Error;

/// The version of the file format written and read.
const FORMAT_VERSION: u32 = 1;

/// Top-level members of a definition that do not count in its digest.
pub(crate) const UNPINNED_MEMBERS: &[&str] = &["_meta"];

/// The digest the layer pins for a tool definition.
pub(crate) fn definition_digest(tool: &Value) -> Digest {
    digest(tool, UNPINNED_MEMBERS)
}

/// The pin of one tool: the SHA-256 of its definition, and its description for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPin {
    sha256: Digest,
    description: Option<String>,
}

impl ToolPin {
    /// The pin of `tool` (one entry of a `tools/list` result), as the layer computes it.
    pub fn of(tool: &Value) -> Self {
        Self {
            sha256: definition_digest(tool),
            description: tool
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }

    /// The SHA-256 of the definition, as 64 lowercase hex digits.
    pub fn sha256(&self) -> String {
        hex::encode(self.sha256)
    }

    /// The description recorded for the reviewer (not checked: the digest covers it).
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    pub(crate) fn digest(&self) -> &Digest {
        &self.sha256
    }
}

/// Pins of tools per upstream: what a pin file holds. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinFile {
    upstreams: BTreeMap<String, BTreeMap<String, ToolPin>>,
}

/// How a pin differs between two versions of a pin file ([`PinFile::changes_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinChange {
    /// A tool that was not pinned before.
    Added {
        /// The upstream (the gateway's route name).
        upstream: String,
        /// The tool.
        tool: String,
    },
    /// A pinned tool whose definition changed.
    Changed {
        /// The upstream.
        upstream: String,
        /// The tool.
        tool: String,
    },
    /// A tool that is no longer pinned.
    Removed {
        /// The upstream.
        upstream: String,
        /// The tool.
        tool: String,
    },
}

impl fmt::Display for PinChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Added { upstream, tool } => write!(f, "+ {upstream}/{tool}: new tool"),
            Self::Changed { upstream, tool } => {
                write!(f, "~ {upstream}/{tool}: definition changed")
            }
            Self::Removed { upstream, tool } => write!(f, "- {upstream}/{tool}: no longer listed"),
        }
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    #[serde(default)]
    upstreams: BTreeMap<String, Option<BTreeMap<String, RawPin>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    sha256: String,
    #[serde(default)]
    description: Option<String>,
}

impl PinFile {
    /// An empty pin file: no tool of any upstream is pinned.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins `tools` (the entries of an upstream's `tools/list` results) as the tools of
    /// `upstream`, replacing what was pinned for it. Entries without a string `name` are
    /// skipped (the layer withholds them anyway).
    pub fn pin_upstream<'a>(
        &mut self,
        upstream: impl Into<String>,
        tools: impl IntoIterator<Item = &'a Value>,
    ) {
        let pins = tools
            .into_iter()
            .filter_map(|tool| {
                let name = tool.get("name")?.as_str()?;
                Some((name.to_owned(), ToolPin::of(tool)))
            })
            .collect();
        self.upstreams.insert(upstream.into(), pins);
    }

    /// The pin of `tool` at `upstream`, if the file has one.
    pub fn get(&self, upstream: &str, tool: &str) -> Option<&ToolPin> {
        self.upstreams.get(upstream)?.get(tool)
    }

    /// The upstreams with pins, sorted.
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.upstreams.keys().map(String::as_str)
    }

    /// The pinned tools of `upstream`, sorted by name.
    pub fn tools<'a>(&'a self, upstream: &str) -> impl Iterator<Item = (&'a str, &'a ToolPin)> {
        self.upstreams
            .get(upstream)
            .into_iter()
            .flatten()
            .map(|(name, pin)| (name.as_str(), pin))
    }

    /// What differs from `older`, sorted by upstream and tool. An upstream this file has no
    /// entry for is compared as if it had none of `older`'s tools.
    pub fn changes_since(&self, older: &PinFile) -> Vec<PinChange> {
        let empty = BTreeMap::new();
        let mut upstreams: Vec<&String> = self
            .upstreams
            .keys()
            .chain(older.upstreams.keys())
            .collect();
        upstreams.sort_unstable();
        upstreams.dedup();
        let mut changes = Vec::new();
        for upstream in upstreams {
            let new = self.upstreams.get(upstream).unwrap_or(&empty);
            let old = older.upstreams.get(upstream).unwrap_or(&empty);
            let mut tools: Vec<&String> = new.keys().chain(old.keys()).collect();
            tools.sort_unstable();
            tools.dedup();
            for tool in tools {
                let (upstream, name) = (upstream.clone(), tool.clone());
                match (old.get(tool), new.get(tool)) {
                    (None, Some(_)) => changes.push(PinChange::Added {
                        upstream,
                        tool: name,
                    }),
                    (Some(_), None) => changes.push(PinChange::Removed {
                        upstream,
                        tool: name,
                    }),
                    (Some(a), Some(b)) if a.sha256 != b.sha256 => {
                        changes.push(PinChange::Changed {
                            upstream,
                            tool: name,
                        });
                    }
                    _ => {}
                }
            }
        }
        changes
    }

    /// Reads a pin file written by [`to_yaml`](Self::to_yaml) (or by hand, in the same shape).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] when the text is not YAML of this shape (unknown or duplicate
    /// keys included), the `version` is not 1, or a `sha256` is not 64 hex digits; the path
    /// names the entry (`upstreams.github.create_issue.sha256`).
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        let raw: RawFile = serde_saphyr::from_str(text)
            .map_err(|e| Error::invalid("", format!("not a pin file: {e}")))?;
        if raw.version != FORMAT_VERSION {
            return Err(Error::invalid(
                "version",
                format!(
                    "version {} is not supported (this build reads version {FORMAT_VERSION})",
                    raw.version
                ),
            ));
        }
        let mut upstreams = BTreeMap::new();
        for (upstream, tools) in raw.upstreams {
            let mut pins = BTreeMap::new();
            for (tool, pin) in tools.unwrap_or_default() {
                let mut sha256 = [0u8; 32];
                let valid = pin.sha256.len() == 64
                    && hex::decode_to_slice(&pin.sha256, &mut sha256).is_ok();
                if !valid {
                    return Err(Error::invalid(
                        format!("upstreams.{upstream}.{tool}.sha256"),
                        "not a SHA-256 (64 hex digits)",
                    ));
                }
                pins.insert(
                    tool,
                    ToolPin {
                        sha256,
                        description: pin.description,
                    },
                );
            }
            upstreams.insert(upstream, pins);
        }
        Ok(Self { upstreams })
    }

    /// Reads the pin file at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] at `pinning.file`, naming the file and what is wrong with it
    /// (it cannot be read, or [`from_yaml`](Self::from_yaml) refuses it).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(
                "pinning.file",
                format!("{}: cannot read: {e}", path.display()),
            )
        })?;
        Self::from_yaml(&text).map_err(|e| file_error(path, &e))
    }

    /// The file's text: sorted, every string double-quoted, invisible characters escaped.
    pub fn to_yaml(&self) -> String {
        let mut out = String::from(
            "# Tool pins for agentgw (`pinning.file`): the SHA-256 of each tool's definition, per\n\
             # upstream (route name). Written by `agentgw pin`; review every change before deploying\n\
             # it. Descriptions are copied for review only: the digest covers the whole definition.\n",
        );
        let _ = writeln!(out, "version: {FORMAT_VERSION}");
        if self.upstreams.is_empty() {
            out.push_str("upstreams: {}\n");
            return out;
        }
        out.push_str("upstreams:\n");
        for (upstream, tools) in &self.upstreams {
            let _ = write!(out, "  {}:", quote(upstream));
            if tools.is_empty() {
                out.push_str(" {}\n");
                continue;
            }
            out.push('\n');
            for (tool, pin) in tools {
                let _ = writeln!(out, "    {}:", quote(tool));
                let _ = writeln!(out, "      sha256: \"{}\"", pin.sha256());
                if let Some(description) = &pin.description {
                    let _ = writeln!(out, "      description: {}", quote(description));
                }
            }
        }
        out
    }
}

/// `error` of the file at `path`, at `pinning.file`.
pub(crate) fn file_error(path: &Path, error: &Error) -> Error {
    use agentgw_core::ConfigError as _;
    let location = if error.path().is_empty() {
        String::new()
    } else {
        format!(" at {}", error.path())
    };
    Error::invalid(
        "pinning.file",
        format!("{}{location}: {}", path.display(), error.reason()),
    )
}

/// `text` as a YAML double-quoted scalar. Characters YAML does not allow in a stream, and
/// characters that are invisible or control rendering, are escaped so a reviewer sees them.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_invisible(c) || !yaml_printable(c) => {
                let code = u32::from(c);
                if code <= 0xffff {
                    let _ = write!(out, "\\u{code:04X}");
                } else {
                    let _ = write!(out, "\\U{code:08X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// YAML 1.2's printable set (`c-printable`), minus the byte order mark.
fn yaml_printable(c: char) -> bool {
    matches!(c,
        '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fefe}'
        | '\u{ff00}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ConfigError as _;
    use serde_json::json;

    fn tool(name: &str, description: &str) -> Value {
        json!({"name": name, "description": description, "inputSchema": {"type": "object"}})
    }

    #[test]
    fn written_sorted_and_stable() {
        let mut pins = PinFile::new();
        pins.pin_upstream("zeta", [&tool("b", "B."), &tool("a", "A \"quoted\".")]);
        pins.pin_upstream("alpha", []);
        let text = pins.to_yaml();
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "version: 1",
                "upstreams:",
                "  \"alpha\": {}",
                "  \"zeta\":",
                "    \"a\":",
                &format!(
                    "      sha256: \"{}\"",
                    ToolPin::of(&tool("a", "A \"quoted\".")).sha256()
                ),
                "      description: \"A \\\"quoted\\\".\"",
                "    \"b\":",
                &format!(
                    "      sha256: \"{}\"",
                    ToolPin::of(&tool("b", "B.")).sha256()
                ),
                "      description: \"B.\"",
            ]
        );
        assert_eq!(PinFile::from_yaml(&text).unwrap().to_yaml(), text);
    }

    #[test]
    fn hidden_characters_show_as_escapes() {
        let mut pins = PinFile::new();
        pins.pin_upstream(
            "u",
            [&tool("t", "Adds.\u{200b}Then\u{202e} reads\u{e0041}")],
        );
        let text = pins.to_yaml();
        assert!(
            text.contains(r#"description: "Adds.\u200BThen\u202E reads\U000E0041""#),
            "{text}"
        );
        assert_eq!(PinFile::from_yaml(&text).unwrap(), pins);
    }

    #[test]
    fn the_pin_is_the_layers_digest() {
        let a = json!({"name": "t", "description": "x", "_meta": {"seen": 1}});
        let b = json!({"description": "x", "name": "t", "_meta": {"seen": 2}});
        assert_eq!(ToolPin::of(&a), ToolPin::of(&b));
        assert_eq!(ToolPin::of(&a).sha256().len(), 64);
        assert_ne!(ToolPin::of(&a), ToolPin::of(&tool("t", "y")));
    }

    #[test]
    fn bad_files_name_the_entry() {
        let err = PinFile::from_yaml(
            "version: 1\nupstreams:\n  gh:\n    issue:\n      sha256: \"abc\"\n",
        )
        .unwrap_err();
        assert_eq!(err.path(), "upstreams.gh.issue.sha256");
        let err = PinFile::from_yaml("version: 2\nupstreams: {}\n").unwrap_err();
        assert_eq!(err.path(), "version");
        let err = PinFile::from_yaml("version: 1\nupstream: {}\n").unwrap_err();
        assert!(err.reason().contains("not a pin file"), "{err}");
        let sha = "0".repeat(64);
        let duplicate = format!(
            "version: 1\nupstreams:\n  gh:\n    a: {{sha256: \"{sha}\"}}\n    a: {{sha256: \"{sha}\"}}\n"
        );
        assert!(
            PinFile::from_yaml(&duplicate).is_err(),
            "duplicate keys are ambiguous"
        );
        let hand_written =
            format!("version: 1\nupstreams:\n  gh:\n    a: {{sha256: {sha}}}\n  empty:\n");
        let pins = PinFile::from_yaml(&hand_written).unwrap();
        assert_eq!(pins.get("gh", "a").unwrap().sha256(), sha);
        assert_eq!(pins.upstreams().collect::<Vec<_>>(), ["empty", "gh"]);
    }

    #[test]
    fn changes_are_listed_per_tool() {
        let mut old = PinFile::new();
        old.pin_upstream(
            "gh",
            [
                &tool("keep", "K."),
                &tool("edit", "E."),
                &tool("gone", "G."),
            ],
        );
        let mut new = PinFile::new();
        new.pin_upstream(
            "gh",
            [
                &tool("keep", "K."),
                &tool("edit", "E!"),
                &tool("added", "A."),
            ],
        );
        let changes: Vec<String> = new
            .changes_since(&old)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "+ gh/added: new tool",
                "~ gh/edit: definition changed",
                "- gh/gone: no longer listed"
            ]
        );
        assert!(new.changes_since(&new).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn any_text_round_trips(
            upstream in "\\PC{1,12}",
            name in "\\PC{1,12}",
            description in proptest::prelude::any::<String>(),
        ) {
            let mut pins = PinFile::new();
            pins.pin_upstream(upstream.clone(), [&json!({"name": name, "description": description})]);
            let text = pins.to_yaml();
            let loaded = PinFile::from_yaml(&text).map_err(|e| {
                proptest::test_runner::TestCaseError::fail(format!("{e}\n{text}"))
            })?;
            proptest::prop_assert_eq!(loaded, pins);
        }
    }
}
