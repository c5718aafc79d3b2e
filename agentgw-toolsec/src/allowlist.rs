//! The tool allowlist: which tools a client sees and may call, with which arguments.

use std::collections::HashMap;
use std::sync::Arc;

use agentgw_guard::normalize;
use serde_json::Value;

use crate::config::{AllowlistConfig, ArgumentConstraint, RuleAction};
use crate::decode;
use crate::denial::{Denial, quoted, rules};
use crate::error::Error;
use crate::field::for_each_scalar;
use crate::glob::{Glob, lowered};

/// The compiled allowlist.
#[derive(Debug, Clone)]
pub(crate) struct Allowlist {
    exact: HashMap<String, usize>,
    wildcard: Vec<(Glob, usize)>,
    entries: Vec<Entry>,
    /// The action of a call of a tool not on the list.
    action: RuleAction,
}

#[derive(Debug, Clone)]
struct Entry {
    allowed: Vec<(String, Constraint)>,
    blocked: Vec<(String, Vec<Glob>)>,
    action: RuleAction,
}

#[derive(Debug, Clone)]
enum Constraint {
    OneOf(Vec<Value>),
    Range { min: Option<f64>, max: Option<f64> },
}

impl Allowlist {
    pub(crate) fn from_config(config: &AllowlistConfig, base: &str) -> Result<Self, Error> {
        let mut allowlist = Self {
            exact: HashMap::new(),
            wildcard: Vec::new(),
            entries: Vec::new(),
            action: config.action,
        };
        for (i, tool) in config.tools.iter().enumerate() {
            let path = format!("{base}.tools[{i}]");
            if tool.name.trim().is_empty() {
                return Err(Error::invalid(
                    format!("{path}.name"),
                    "the tool name is empty",
                ));
            }
            let mut allowed = Vec::new();
            for (argument, constraint) in &tool.allowed_arguments {
                let constraint = match constraint {
                    ArgumentConstraint::OneOf(values) if values.is_empty() => {
                        return Err(Error::invalid(
                            format!("{path}.allowedArguments.{argument}"),
                            "the list of allowed values is empty; no call could pass",
                        ));
                    }
                    ArgumentConstraint::OneOf(values) => Constraint::OneOf(values.clone()),
                    ArgumentConstraint::Range { min, max } => {
                        if let (Some(min), Some(max)) = (min, max)
                            && min > max
                        {
                            return Err(Error::invalid(
                                format!("{path}.allowedArguments.{argument}"),
                                format!("min ({min}) is greater than max ({max})"),
                            ));
                        }
                        Constraint::Range {
                            min: *min,
                            max: *max,
                        }
                    }
                };
                allowed.push((argument.clone(), constraint));
            }
            let mut blocked = Vec::new();
            for (argument, patterns) in &tool.blocked_arguments {
                if let Some(j) = patterns.iter().position(|p| p.is_empty()) {
                    return Err(Error::invalid(
                        format!("{path}.blockedArguments.{argument}[{j}]"),
                        "an empty pattern blocks nothing",
                    ));
                }
                let globs = patterns
                    .iter()
                    .map(|p| Glob::case_insensitive(&normalize(p)))
                    .collect();
                blocked.push((argument.clone(), globs));
            }
            let index = allowlist.entries.len();
            allowlist.entries.push(Entry {
                allowed,
                blocked,
                action: tool.action,
            });
            let glob = Glob::new(&tool.name);
            if glob.has_wildcards() {
                allowlist.wildcard.push((glob, index));
            } else if allowlist.exact.insert(tool.name.clone(), index).is_some() {
                return Err(Error::invalid(
                    format!("{path}.name"),
                    format!("tool `{}` is listed twice", tool.name),
                ));
            }
        }
        Ok(allowlist)
    }

    /// Names without wildcards, which are protected from spoofing.
    pub(crate) fn exact_names(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(String::as_str)
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        let index = self.exact.get(name).copied().or_else(|| {
            self.wildcard
                .iter()
                .find(|(glob, _)| glob.matches(name))
                .map(|(_, index)| *index)
        })?;
        self.entries.get(index)
    }

    /// Whether `name` is allowed at all.
    pub(crate) fn permits(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// Whether any refusal of the allowlist is escalated.
    pub(crate) fn escalates(&self) -> bool {
        self.action == RuleAction::Escalate
            || self
                .entries
                .iter()
                .any(|e| e.action == RuleAction::Escalate)
    }

    /// Checks a call of `name` with `arguments`; the escalated rules in `approved` were
    /// allowed by a decision and are skipped.
    pub(crate) fn check_call(
        &self,
        name: &str,
        arguments: Option<&Value>,
        approved: &[Arc<str>],
    ) -> Result<(), Denial> {
        let skipped = |action: RuleAction, rule: &str| {
            action == RuleAction::Escalate && approved.iter().any(|a| a.as_ref() == rule)
        };
        let Some(entry) = self.entry(name) else {
            if skipped(self.action, rules::ALLOWLIST) {
                return Ok(());
            }
            return Err(Denial::forbidden(
                rules::ALLOWLIST,
                format!("tool {} is not allowed", quoted(name)),
            )
            .escalated_by(self.action));
        };
        let argument = |key: &str| arguments.and_then(|args| args.get(key));
        for (key, constraint) in &entry.allowed {
            if let Some(value) = argument(key)
                && !constraint.admits(value)
                && !skipped(entry.action, rules::ARGUMENT_NOT_ALLOWED)
            {
                return Err(Denial::forbidden(
                    rules::ARGUMENT_NOT_ALLOWED,
                    format!(
                        "argument {} of tool {} is not an allowed value",
                        quoted(key),
                        quoted(name)
                    ),
                )
                .escalated_by(entry.action));
            }
        }
        for (key, globs) in &entry.blocked {
            if let Some(value) = argument(key)
                && is_blocked(value, globs)
                && !skipped(entry.action, rules::BLOCKED_ARGUMENT)
            {
                return Err(Denial::forbidden(
                    rules::BLOCKED_ARGUMENT,
                    format!(
                        "argument {} of tool {} matches a blocked pattern",
                        quoted(key),
                        quoted(name)
                    ),
                )
                .escalated_by(entry.action));
            }
        }
        Ok(())
    }
}

impl Constraint {
    fn admits(&self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Array(items)) => items.iter().all(|item| self.admits(item)),
            (Self::OneOf(allowed), value) => allowed.iter().any(|a| scalar_eq(a, value)),
            (Self::Range { min, max }, value) => {
                let number = match value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
                    _ => None,
                };
                number.is_some_and(|n| {
                    min.is_none_or(|min| n >= min) && max.is_none_or(|max| n <= max)
                })
            }
        }
    }
}

/// Equality of allowed scalars: numbers by value, and a string equals a number or boolean
/// written the same way (`"100"` and `100`).
fn scalar_eq(allowed: &Value, value: &Value) -> bool {
    match (allowed, value) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::String(text), other @ (Value::Number(_) | Value::Bool(_)))
        | (other @ (Value::Number(_) | Value::Bool(_)), Value::String(text)) => {
            spelled_as(other, text)
        }
        _ => false,
    }
}

/// Whether the number or boolean `value` is written `text` (`100` and `"100"`).
fn spelled_as(value: &Value, text: &str) -> bool {
    match value {
        Value::Number(number) => {
            number.to_string() == text || text.parse::<f64>().ok() == number.as_f64()
        }
        Value::Bool(flag) => text == if *flag { "true" } else { "false" },
        _ => false,
    }
}

/// Whether any text under `value`, as sent, decoded or normalized, or any path component of
/// it, matches a blocked glob.
fn is_blocked(value: &Value, globs: &[Glob]) -> bool {
    let matches = |text: &str| {
        let whole = lowered(text);
        let hit = |chars: &[char]| globs.iter().any(|glob| glob.matches_lowered(chars));
        hit(&whole)
            || (whole.contains(&'/') || whole.contains(&'\\'))
                && whole
                    .split(|c| matches!(c, '/' | '\\'))
                    .filter(|part| !part.is_empty())
                    .any(hit)
    };
    !for_each_scalar(value, &mut |text| {
        let blocked = decode::forms(&text).iter().any(|form| {
            let folded = normalize(form);
            matches(form) || (folded != *form && matches(&folded))
        });
        !blocked
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{SEED_ALLOWLIST, seed};
    use agentgw_core::ConfigError;
    use serde_json::json;

    fn seed_allowlist() -> Allowlist {
        let config = seed(SEED_ALLOWLIST).allowlist.expect("allowlist");
        Allowlist::from_config(&config, "allowlist").expect("compiles")
    }

    fn rule(result: Result<(), Denial>) -> Option<String> {
        result.err().map(|denial| denial.rule.to_string())
    }

    #[test]
    fn only_listed_tools_pass() {
        let allowlist = seed_allowlist();
        assert!(allowlist.permits("kubectl-get") && allowlist.permits("github-list-repos"));
        assert!(!allowlist.permits("kubectl-delete") && !allowlist.permits("kubectl-get-safe"));
        assert_eq!(
            rule(allowlist.check_call("kubectl-delete", None, &[])).as_deref(),
            Some("allowlist")
        );
        assert_eq!(
            rule(allowlist.check_call("github-list-repos", Some(&json!({"any": 1})), &[])),
            None
        );
    }

    #[test]
    fn value_lists_and_ranges() {
        let allowlist = seed_allowlist();
        let call = |name, args: Value| rule(allowlist.check_call(name, Some(&args), &[]));
        assert_eq!(
            call(
                "kubectl-get",
                json!({"resource": "pods", "namespace": "default"})
            ),
            None
        );
        assert_eq!(
            call("kubectl-get", json!({"resource": "pods"})),
            None,
            "absent argument"
        );
        assert_eq!(
            call("kubectl-get", json!({"resource": "secrets"})).as_deref(),
            Some("argument-not-allowed")
        );
        assert_eq!(
            call("kubectl-get", json!({"resource": ["pods", "services"]})),
            None
        );
        assert!(call("kubectl-get", json!({"resource": ["pods", "secrets"]})).is_some());
        assert!(call("kubectl-get", json!({"resource": {"$ne": "x"}})).is_some());
        assert_eq!(call("kubectl-logs", json!({"tail": 1000})), None);
        assert_eq!(call("kubectl-logs", json!({"tail": "200"})), None);
        assert!(call("kubectl-logs", json!({"tail": 1001})).is_some());
        assert!(call("kubectl-logs", json!({"tail": "lots"})).is_some());
        assert!(call("kubectl-logs", json!({"tail": "NaN"})).is_some());
    }

    #[test]
    fn blocked_globs_catch_encodings_and_path_components() {
        let allowlist = seed_allowlist();
        let call = |path: &str| {
            rule(allowlist.check_call("github-get-file", Some(&json!({"path": path})), &[]))
        };
        for blocked in [
            ".env",
            "config/.env",
            "/srv/app/.ENV",
            "certs/server.pem",
            "id.KEY",
            "deploy/my-secret-values.yaml",
            "deploy/SECRETS.txt",
            "certs%2Fserver.pem",
            "%2e%65nv",
            "ｓｅｃｒｅｔ.txt",
            "a\\b\\tls.key",
        ] {
            assert_eq!(
                call(blocked).as_deref(),
                Some("blocked-argument"),
                "{blocked}"
            );
        }
        for fine in [
            "README.md",
            "src/main.rs",
            ".envrc.example/readme",
            "keys.md",
        ] {
            assert_eq!(call(fine), None, "{fine}");
        }
    }

    #[test]
    fn wildcard_names() {
        let config: AllowlistConfig =
            serde_saphyr::from_str("tools:\n  - name: github-*\n  - name: ping\n").unwrap();
        let allowlist = Allowlist::from_config(&config, "allowlist").unwrap();
        assert!(allowlist.permits("github-anything") && allowlist.permits("ping"));
        assert!(!allowlist.permits("gitlab-x"));
        assert_eq!(allowlist.exact_names().collect::<Vec<_>>(), ["ping"]);
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let parse = |yaml: &str| {
            let config: AllowlistConfig = serde_saphyr::from_str(yaml).unwrap();
            Allowlist::from_config(&config, "allowlist").unwrap_err()
        };
        assert_eq!(
            parse("tools:\n  - name: a\n  - name: ' '\n").path(),
            "allowlist.tools[1].name"
        );
        assert_eq!(
            parse("tools:\n  - name: a\n    allowedArguments:\n      n: {min: 5, max: 1}\n").path(),
            "allowlist.tools[0].allowedArguments.n"
        );
        assert_eq!(
            parse("tools:\n  - name: a\n    allowedArguments:\n      n: []\n").path(),
            "allowlist.tools[0].allowedArguments.n"
        );
        assert_eq!(
            parse("tools:\n  - name: a\n    blockedArguments:\n      p: ['*.pem', '']\n").path(),
            "allowlist.tools[0].blockedArguments.p[1]"
        );
        assert_eq!(
            parse("tools:\n  - name: a\n  - name: a\n").path(),
            "allowlist.tools[1].name"
        );
    }
}
