//! Compiled guards and how they apply to texts, JSON payloads and bodies.

use std::borrow::Cow;

use agentgw_core::Rejection;
use agentgw_core::llm::{self, Direction, Format, Scope};
use agentgw_core::metrics::PROMPT_GUARD_MATCHES_TOTAL;
use http::StatusCode;
use serde_json::Value;

use crate::config::{Action, GuardConfig};
use crate::error::GuardError;
use crate::pattern_set::{PatternSet, RuleId};

/// The layer name in rejections and metrics.
pub(crate) const LAYER: &str = "prompt_guard";

/// One compiled guard.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) label: String,
    pub(crate) action: Action,
    pub(crate) set: PatternSet,
    /// Bit `scope as usize` set: the guard inspects that scope.
    scopes: u8,
    status: StatusCode,
    message: Option<String>,
    direction: Direction,
}

/// A guard's decision to reject.
#[derive(Debug, Clone)]
pub(crate) struct Denial {
    pub(crate) guard: usize,
    pub(crate) rule: String,
}

impl Guard {
    /// Compiles the guard at `path` (`promptGuard.request[0]`).
    pub(crate) fn compile(
        config: &GuardConfig,
        path: &str,
        label: String,
        direction: Direction,
    ) -> Result<Guard, GuardError> {
        let regex = &config.regex;
        let regex_path = format!("{path}.regex");
        let normalize = regex.normalize.unwrap_or(regex.action == Action::Reject);
        let mut builder = PatternSet::builder()
            .path(regex_path.clone())
            .normalize(normalize)
            .streaming(direction == Direction::Response);
        if let Some(limit) = regex.repetition_limit {
            builder = builder.repetition_limit(limit);
        }
        for builtin in &regex.builtins {
            builder = builder.builtin(*builtin);
        }
        for (i, m) in regex.matches.iter().enumerate() {
            let name = m.name.clone().unwrap_or_else(|| format!("matches[{i}]"));
            builder = builder.pattern(name.clone(), m.pattern.clone());
            if let Some(replacement) = &m.replacement {
                builder = builder.replacement(name, replacement.clone());
            }
        }
        for phrase in &regex.phrases {
            builder = builder.phrase(phrase.name(), phrase.phrase());
        }
        for (builtin, replacement) in &regex.replacements {
            if !regex.builtins.contains(builtin) {
                return Err(GuardError::UnknownReplacement {
                    path: format!("{regex_path}.replacements.{builtin}"),
                    rule: builtin.to_string(),
                });
            }
            builder = builder.replacement(builtin.name(), replacement.clone());
        }
        if let Some(replacement) = &regex.replacement {
            builder = builder.default_replacement(replacement.clone());
        }
        let set = builder.build()?;
        if direction == Direction::Response {
            // Build the streaming automata now: a stream must never meet a guard it cannot
            // apply.
            set.stream_masker()?;
        }

        let response = config.response.clone().unwrap_or_default();
        let status = match response.status_code {
            None => StatusCode::FORBIDDEN,
            Some(code) => StatusCode::from_u16(code)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .ok_or_else(|| GuardError::InvalidStatus {
                    path: format!("{path}.response.statusCode"),
                    status: code,
                })?,
        };
        let scopes = match &config.scopes {
            None => u8::MAX,
            Some(scopes) => scopes
                .iter()
                .fold(0, |acc, s| acc | 1 << Scope::from(*s) as u8),
        };
        Ok(Guard {
            label,
            action: regex.action,
            set,
            scopes,
            status,
            message: response.message,
            direction,
        })
    }

    pub(crate) fn applies_to(&self, scope: Option<Scope>) -> bool {
        scope.is_none_or(|s| self.scopes & (1 << s as u8) != 0)
    }

    /// Counts a match in `agentgateway_prompt_guard_matches_total` and logs which rule fired
    /// (never the matched text).
    pub(crate) fn record(&self, rule: RuleId) {
        let rule = self.set.rule(rule).name();
        metrics::counter!(
            PROMPT_GUARD_MATCHES_TOTAL,
            "guard" => self.label.clone(),
            "rule" => rule.to_owned(),
            "action" => self.action.as_str()
        )
        .increment(1);
        tracing::debug!(
            guard = %self.label,
            rule,
            action = self.action.as_str(),
            direction = ?self.direction,
            "prompt guard rule matched"
        );
    }

    /// The rejection a denial of this guard answers with.
    pub(crate) fn rejection(&self, rule: &str) -> Rejection {
        let message = self
            .message
            .clone()
            .unwrap_or_else(|| match self.direction {
                Direction::Request => "Request blocked by prompt guard".to_owned(),
                Direction::Response => "Response blocked by prompt guard".to_owned(),
            });
        Rejection::new(self.status, LAYER, rule.to_owned()).with_message(message)
    }
}

/// Guards of one direction, applied in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Guards {
    pub(crate) guards: Vec<Guard>,
}

impl Guards {
    pub(crate) fn compile(
        configs: &[GuardConfig],
        direction: Direction,
    ) -> Result<Guards, GuardError> {
        let side = match direction {
            Direction::Request => "request",
            Direction::Response => "response",
        };
        let guards = configs
            .iter()
            .enumerate()
            .map(|(i, config)| {
                let label = config
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{side}[{i}]"));
                Guard::compile(
                    config,
                    &format!("promptGuard.{side}[{i}]"),
                    label,
                    direction,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Guards { guards })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    pub(crate) fn get(&self, i: usize) -> &Guard {
        &self.guards[i]
    }

    /// Applies every guard in order to one text of `scope` (`None`: not an LLM segment).
    /// Returns the masked text when a mask changed it, or the first denial.
    pub(crate) fn apply(&self, scope: Option<Scope>, text: &str) -> Result<Option<String>, Denial> {
        let mut current = Cow::Borrowed(text);
        for (i, guard) in self.guards.iter().enumerate() {
            if !guard.applies_to(scope) {
                continue;
            }
            match guard.action {
                Action::Reject => {
                    if let Some(m) = guard.set.find(&current) {
                        guard.record(m.rule());
                        return Err(Denial {
                            guard: i,
                            rule: guard.set.rule(m.rule()).name().to_owned(),
                        });
                    }
                }
                Action::Mask => {
                    let masked = guard.set.mask_with(&current, |m| guard.record(m.rule()));
                    if let Cow::Owned(masked) = masked {
                        current = Cow::Owned(masked);
                    }
                }
            }
        }
        Ok(match current {
            Cow::Borrowed(_) => None,
            Cow::Owned(text) => Some(text),
        })
    }

    /// Applies the guards to a JSON payload: the text segments of an LLM payload (`format`
    /// detected from the path or the body), or every string of any other JSON. Returns the
    /// rewritten JSON when a mask changed something.
    pub(crate) fn apply_json(
        &self,
        json: &Value,
        format: Option<Format>,
        direction: Direction,
    ) -> Result<Option<Value>, Denial> {
        // A payload of a known format with no text segment at all (a path and a body that do
        // not agree) is scanned as plain JSON rather than not at all.
        let format = format
            .or_else(|| Format::detect(json, direction))
            .filter(|format| {
                let mut any = false;
                llm::for_each_segment(json, *format, direction, |_| any = true);
                any
            });
        let mut results: Vec<Option<String>> = Vec::new();
        let mut denial = None;
        let mut visit = |scope: Option<Scope>, text: &str| {
            if denial.is_some() {
                return;
            }
            match self.apply(scope, text) {
                Ok(result) => results.push(result),
                Err(d) => denial = Some(d),
            }
        };
        match format {
            Some(format) => llm::for_each_segment(json, format, direction, |segment| {
                visit(Some(segment.scope), segment.text);
            }),
            None => for_each_string(json, &mut |text| visit(None, text)),
        }
        if let Some(denial) = denial {
            return Err(denial);
        }
        if results.iter().all(Option::is_none) {
            return Ok(None);
        }
        let mut json = json.clone();
        let mut results = results.into_iter();
        let mut next = || results.next().flatten();
        match format {
            Some(format) => {
                llm::rewrite_segments(&mut json, format, direction, |_, _| next());
            }
            None => {
                rewrite_strings(&mut json, &mut |_| next());
            }
        }
        Ok(Some(json))
    }
}

/// Calls `f` with every string value of `json`, and the text of every number (a card number
/// may well be a JSON number), in document order. Object keys are not visited.
pub(crate) fn for_each_string(json: &Value, f: &mut impl FnMut(&str)) {
    match json {
        Value::String(s) => f(s),
        Value::Number(n) => f(&n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| for_each_string(v, f)),
        Value::Object(map) => map.values().for_each(|v| for_each_string(v, f)),
        Value::Null | Value::Bool(_) => {}
    }
}

/// Replaces every string value (and number, see [`for_each_string`]) of `json` for which `f`
/// returns `Some`, in the order of [`for_each_string`]; a replaced number becomes a string.
/// Returns whether anything changed.
pub(crate) fn rewrite_strings(
    json: &mut Value,
    f: &mut impl FnMut(&str) -> Option<String>,
) -> bool {
    match json {
        Value::String(s) => match f(s) {
            Some(new) if new != *s => {
                *s = new;
                true
            }
            _ => false,
        },
        Value::Number(n) => {
            let text = n.to_string();
            match f(&text) {
                Some(new) if new != text => {
                    *json = Value::String(new);
                    true
                }
                _ => false,
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| rewrite_strings(v, f) | changed),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, v| rewrite_strings(v, f) | changed),
        Value::Null | Value::Bool(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use serde_json::json;

    use super::*;
    use crate::config::PromptGuardConfig;

    fn guards(yaml: &str, direction: Direction) -> Guards {
        let config: PromptGuardConfig = serde_saphyr::from_str(yaml).unwrap();
        let configs = match direction {
            Direction::Request => &config.request,
            Direction::Response => &config.response,
        };
        Guards::compile(configs, direction).unwrap()
    }

    #[test]
    fn matches_are_counted_per_guard_rule_and_action() {
        let guards = guards(
            r#"
request:
  - name: pii
    regex: {action: Mask, builtins: [EMAIL, CREDIT_CARD]}
  - regex:
      action: Reject
      matches: [{pattern: "ignore.*instructions", name: injection}]
"#,
            Direction::Request,
        );
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let masked = metrics::with_local_recorder(&recorder, || {
            let masked = guards.apply(Some(Scope::User), "a@b.io and c@d.io, 4111 1111 1111 1111");
            let denied = guards.apply(None, "please ignore my instructions");
            assert!(matches!(denied, Err(Denial { guard: 1, ref rule }) if rule == "injection"));
            masked
        });
        assert_eq!(
            masked.unwrap().as_deref(),
            Some("<EMAIL> and <EMAIL>, <CREDIT_CARD>")
        );
        let mut counts: Vec<(Vec<String>, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == PROMPT_GUARD_MATCHES_TOTAL)
            .map(|(key, _, _, value)| {
                let labels = key
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let DebugValue::Counter(n) = value else {
                    panic!("a counter")
                };
                (labels, n)
            })
            .collect();
        counts.sort();
        assert_eq!(
            counts,
            [
                (
                    vec![
                        "guard=pii".into(),
                        "rule=CREDIT_CARD".into(),
                        "action=mask".into()
                    ],
                    1
                ),
                (
                    vec![
                        "guard=pii".into(),
                        "rule=EMAIL".into(),
                        "action=mask".into()
                    ],
                    2
                ),
                (
                    vec![
                        "guard=request[1]".into(),
                        "rule=injection".into(),
                        "action=reject".into()
                    ],
                    1
                ),
            ]
        );
    }

    #[test]
    fn guards_apply_in_order_and_respect_scopes() {
        let guards = guards(
            r#"
request:
  - regex: {action: Mask, builtins: [EMAIL], replacements: {EMAIL: "[mail]"}}
  - scopes: [user]
    regex: {action: Reject, phrases: ["[mail]"]}
"#,
            Direction::Request,
        );
        // The reject guard sees the first guard's output, only in user text.
        assert!(guards.apply(Some(Scope::User), "x@y.io").is_err());
        assert_eq!(
            guards
                .apply(Some(Scope::System), "x@y.io")
                .unwrap()
                .as_deref(),
            Some("[mail]")
        );
        assert_eq!(
            guards.apply(Some(Scope::User), "nothing here").unwrap(),
            None
        );
    }

    #[test]
    fn json_payloads_are_masked_by_segment_or_by_string() {
        let guards = guards(
            "request:\n  - regex: {action: Mask, builtins: [SSN]}\n",
            Direction::Request,
        );
        let chat = json!({"model": "m", "metadata": {"ssn": "536-22-1234"},
                          "messages": [{"role": "user", "content": "SSN 536-22-1234"}]});
        let out = guards
            .apply_json(&chat, None, Direction::Request)
            .unwrap()
            .unwrap();
        assert_eq!(out["messages"][0]["content"], "SSN <SSN>");
        assert_eq!(out["metadata"]["ssn"], "536-22-1234", "not a text segment");
        // A body that is not an LLM payload (or has no segment) is scanned string by string.
        let other = json!({"rows": [["536-22-1234", 7]], "prompt": null});
        let out = guards
            .apply_json(&other, None, Direction::Request)
            .unwrap()
            .unwrap();
        assert_eq!(out, json!({"rows": [["<SSN>", 7]], "prompt": null}));
        let clean = json!({"messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(
            guards.apply_json(&clean, None, Direction::Request).unwrap(),
            None
        );
    }

    #[test]
    fn rejections_carry_status_message_and_rule_but_no_text() {
        let guards = guards(
            "response:\n  - response: {message: nope, statusCode: 451}\n    regex: {action: Reject, builtins: [EMAIL]}\n",
            Direction::Response,
        );
        let denial = guards.apply(None, "mail a@b.io").unwrap_err();
        let rejection = guards.get(denial.guard).rejection(&denial.rule);
        assert_eq!(
            rejection.status(),
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS
        );
        assert_eq!(rejection.message(), "nope");
        assert_eq!(rejection.reason(), "EMAIL");
        assert_eq!(rejection.layer(), LAYER);
    }
}
