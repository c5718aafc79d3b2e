//! `allowlist`: the tools a client may see and call, and the values their arguments may take.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{RuleAction, yes};

/// `allowlist`: only the listed tools are visible and callable.
///
/// [`Default`] is the value of `allowlist: {}`: on, with no tool listed (so no tool is
/// visible or callable).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AllowlistConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The allowed tools.
    #[serde(default)]
    pub tools: Vec<AllowedTool>,
    /// What a call of a tool not on the list does (default `Reject`; `Escalate`: see
    /// [`RuleAction`]). `tools/list` answers never show such tools either way.
    #[serde(default)]
    pub action: RuleAction,
}

impl Default for AllowlistConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tools: Vec::new(),
            action: RuleAction::Reject,
        }
    }
}

impl AllowlistConfig {
    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `tools`.
    #[must_use]
    pub fn tools(mut self, tools: impl IntoIterator<Item = AllowedTool>) -> Self {
        self.tools = tools.into_iter().collect();
        self
    }

    /// Sets `action`.
    #[must_use]
    pub fn action(mut self, action: RuleAction) -> Self {
        self.action = action;
        self
    }
}

/// One tool of `allowlist.tools`.
///
/// `name` has no default: start with [`AllowedTool::new`]; an empty name is refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AllowedTool {
    /// The tool name; `*` and `?` are wildcards.
    pub name: String,
    /// Per argument: the values it may take (`[a, b]`) or its numeric range (`{max: N}`,
    /// `{min: N}`). Arguments not listed are unconstrained; an absent argument passes.
    #[serde(default)]
    pub allowed_arguments: BTreeMap<String, ArgumentConstraint>,
    /// Per argument: glob patterns (`*.pem`, `*secret*`) its value, or any path component of
    /// it, must not match (case-insensitive, also after URL-decoding).
    #[serde(default)]
    pub blocked_arguments: BTreeMap<String, Vec<String>>,
    /// What a call whose arguments break `allowedArguments` or `blockedArguments` does
    /// (default `Reject`; `Escalate`: see [`RuleAction`]).
    #[serde(default)]
    pub action: RuleAction,
}

impl AllowedTool {
    /// The tool `name` (`*` and `?` are wildcards), its arguments unconstrained.
    pub fn new(name: impl Into<String>) -> Self {
        Self::default().name(name)
    }

    /// Sets `name`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets `action`.
    #[must_use]
    pub fn action(mut self, action: RuleAction) -> Self {
        self.action = action;
        self
    }

    /// Sets `allowedArguments`: argument name and constraint pairs.
    #[must_use]
    pub fn allowed_arguments<I, K>(mut self, arguments: I) -> Self
    where
        I: IntoIterator<Item = (K, ArgumentConstraint)>,
        K: Into<String>,
    {
        self.allowed_arguments = arguments
            .into_iter()
            .map(|(name, constraint)| (name.into(), constraint))
            .collect();
        self
    }

    /// Sets `blockedArguments`: argument name and glob list pairs.
    #[must_use]
    pub fn blocked_arguments<I, K, G, S>(mut self, arguments: I) -> Self
    where
        I: IntoIterator<Item = (K, G)>,
        K: Into<String>,
        G: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.blocked_arguments = arguments
            .into_iter()
            .map(|(name, globs)| (name.into(), globs.into_iter().map(Into::into).collect()))
            .collect();
        self
    }
}

/// What values an allowlisted argument may take.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgumentConstraint {
    /// One of these values (strings, numbers or booleans); for an array, every element.
    OneOf(Vec<Value>),
    /// A number within the bounds (both inclusive).
    Range {
        /// The smallest allowed value.
        min: Option<f64>,
        /// The largest allowed value.
        max: Option<f64>,
    },
}

impl ArgumentConstraint {
    /// One of `values` (`[pods, services]`).
    pub fn one_of<I, V>(values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        ArgumentConstraint::OneOf(values.into_iter().map(Into::into).collect())
    }

    /// A number no larger than `max` (`{max: N}`).
    pub fn at_most(max: f64) -> Self {
        ArgumentConstraint::Range {
            min: None,
            max: Some(max),
        }
    }

    /// A number no smaller than `min` (`{min: N}`).
    pub fn at_least(min: f64) -> Self {
        ArgumentConstraint::Range {
            min: Some(min),
            max: None,
        }
    }

    /// A number from `min` to `max`, both inclusive (`{min: A, max: B}`).
    pub fn between(min: f64, max: f64) -> Self {
        ArgumentConstraint::Range {
            min: Some(min),
            max: Some(max),
        }
    }
}

impl<'de> Deserialize<'de> for ArgumentConstraint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConstraintVisitor;

        impl<'de> Visitor<'de> for ConstraintVisitor {
            type Value = ArgumentConstraint;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of allowed values or a range such as `{max: 1000}`")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<Value>()? {
                    if value.is_array() || value.is_object() || value.is_null() {
                        return Err(de::Error::custom(
                            "allowed values must be strings, numbers or booleans",
                        ));
                    }
                    values.push(value);
                }
                Ok(ArgumentConstraint::OneOf(values))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut min, mut max) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "min" if min.is_none() => min = Some(map.next_value::<f64>()?),
                        "max" if max.is_none() => max = Some(map.next_value::<f64>()?),
                        "min" | "max" => return Err(de::Error::duplicate_field("min/max")),
                        other => return Err(de::Error::unknown_field(other, &["min", "max"])),
                    }
                }
                if min.is_none() && max.is_none() {
                    return Err(de::Error::custom("a range needs `min`, `max` or both"));
                }
                Ok(ArgumentConstraint::Range { min, max })
            }
        }

        deserializer.deserialize_any(ConstraintVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{SEED_ALLOWLIST, seed};

    #[test]
    fn seed_allowlist_block_deserializes() {
        let tools = seed(SEED_ALLOWLIST).allowlist.expect("allowlist").tools;
        assert_eq!(tools.len(), 5);
        assert_eq!(
            tools[0].allowed_arguments["resource"],
            ArgumentConstraint::OneOf(vec![
                "pods".into(),
                "services".into(),
                "deployments".into(),
                "configmaps".into()
            ])
        );
        assert_eq!(
            tools[2].allowed_arguments["tail"],
            ArgumentConstraint::Range {
                min: None,
                max: Some(1000.0)
            }
        );
        assert!(tools[3].allowed_arguments.is_empty() && tools[3].blocked_arguments.is_empty());
        assert_eq!(
            tools[4].blocked_arguments["path"],
            [".env", "*.pem", "*.key", "*secret*"]
        );
    }

    #[test]
    fn builders_match_the_yaml() {
        let built = AllowlistConfig::default().tools([
            AllowedTool::new("kubectl-get").allowed_arguments([
                ("resource", ArgumentConstraint::one_of(["pods", "services"])),
                ("replicas", ArgumentConstraint::between(1.0, 5.0)),
                ("since", ArgumentConstraint::at_least(0.0)),
            ]),
            AllowedTool::new("github-get-file").blocked_arguments([("path", ["*.pem", ".env"])]),
        ]);
        let parsed = seed(
            "allowlist:\n  tools:\n    - name: kubectl-get\n      allowedArguments:\n        \
             resource: [pods, services]\n        replicas: {min: 1, max: 5}\n        since: {min: 0}\n    \
             - name: github-get-file\n      blockedArguments:\n        path: [\"*.pem\", .env]\n",
        );
        assert_eq!(parsed.allowlist, Some(built));
        assert_eq!(
            seed("allowlist: {}\n").allowlist,
            Some(AllowlistConfig::default())
        );
    }
}
