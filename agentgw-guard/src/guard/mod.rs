//! Compiled guards and how they apply to texts and streams of text; [`json`] applies them to
//! JSON payloads.

pub(crate) mod classifier;
mod json;
pub(crate) mod lexical;

pub(crate) use json::{Visited, apply_rewrites, rewrite_strings};

use std::borrow::Cow;

use agentgw_core::Rejection;
use agentgw_core::llm::{Direction, Scope};
use agentgw_core::metrics::PROMPT_GUARD_MATCHES_TOTAL;
use http::StatusCode;

use std::sync::Arc;

use agentgw_core::audit::AuditSink;
use agentgw_core::config::ConfigError;
use agentgw_core::escalation::{Escalation, EscalationConfig};

use crate::config::{Action, GuardConfig, RegexConfig};
use crate::error::Error;
use crate::leak::LeakGuard;
use crate::pattern_set::{PatternSet, RuleId};
use crate::stream::StreamMasker;
use classifier::ClassifierGuard;

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
    /// No `scopes` configured: the guard also inspects strings that are no text segment.
    all_scopes: bool,
    status: StatusCode,
    message: Option<String>,
    direction: Direction,
    /// Where an `Escalate` guard's events go (its `escalation` block).
    pub(crate) escalation: Option<Escalation>,
}

/// Which guard of a [`Guards`] decided something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuardId {
    /// The `regex` guard at this index of [`Guards::guards`].
    Rules(usize),
    /// The `classifier` guard at this index of [`Guards::classifiers`].
    Classifier(usize),
    /// The `systemPromptLeak` guard.
    Leak,
}

/// A guard's decision to reject.
#[derive(Debug, Clone)]
pub(crate) struct Denial {
    pub(crate) guard: GuardId,
    pub(crate) rule: String,
}

impl Guard {
    /// Compiles the guard at `path` (`request[0]`, relative to the `promptGuard` block).
    pub(crate) fn compile(
        config: &GuardConfig,
        path: &str,
        label: String,
        direction: Direction,
    ) -> Result<Guard, Error> {
        let regex = &config.regex;
        let regex_path = format!("{path}.regex");
        let normalize = regex.normalize.unwrap_or(regex.action.denies());
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
        if let Some(phone) = &regex.phone_number {
            builder = builder.phone_regions(phone.regions.iter().cloned());
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
                return Err(Error::UnknownReplacement {
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

        let (status, message) = reject_response(config, path)?;
        let escalation =
            compile_escalation(config.escalation.as_ref(), regex.action, path, "regex")?;
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
            all_scopes: config.scopes.is_none(),
            status,
            message,
            direction,
            escalation,
        })
    }

    pub(crate) fn applies_to(&self, scope: Option<Scope>) -> bool {
        scope.is_none_or(|s| self.scopes & (1 << s as u8) != 0)
    }

    /// Whether the guard applies to text of `reach`.
    fn reaches(&self, reach: Reach) -> bool {
        match reach {
            Reach::Scope(scope) => self.applies_to(Some(scope)),
            Reach::Unscoped => self.all_scopes,
            Reach::All => true,
        }
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
        crate::audit::count(rule, self.action);
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

/// Which guards inspect a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A text segment of this scope: the guards that inspect the scope.
    Scope(Scope),
    /// A string of an LLM payload outside its text segments (ids, tool names, metadata,
    /// fields no walker knows): the guards without `scopes`, which inspect everything.
    Unscoped,
    /// A body (or event) that is no LLM payload: every guard.
    All,
}

impl From<Option<Scope>> for Reach {
    fn from(scope: Option<Scope>) -> Reach {
        scope.map_or(Reach::All, Reach::Scope)
    }
}

/// The status and message of a guard's rejections, from its `response`.
pub(crate) fn reject_response(
    config: &GuardConfig,
    path: &str,
) -> Result<(StatusCode, Option<String>), Error> {
    let response = config.response.clone().unwrap_or_default();
    let status = match response.status_code {
        None => StatusCode::FORBIDDEN,
        Some(code) => StatusCode::from_u16(code)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or_else(|| Error::InvalidStatus {
                path: format!("{path}.response.statusCode"),
                status: code,
            })?,
    };
    Ok((status, response.message))
}

/// Compiles the `escalation` block of the guard at `path` whose action (at `{path}.{kind}`)
/// is `action`.
pub(crate) fn compile_escalation(
    config: Option<&EscalationConfig>,
    action: Action,
    path: &str,
    kind: &str,
) -> Result<Option<Escalation>, Error> {
    let Some(config) = config else {
        return Ok(None);
    };
    let block = format!("{path}.escalation");
    if action != Action::Escalate {
        return Err(Error::InvalidEscalation {
            path: block,
            message: format!(
                "is only read by `action: Escalate`, and `{path}.{kind}.action` is `{action:?}`"
            ),
        });
    }
    Escalation::from_config(config)
        .map(Some)
        .map_err(|error| Error::InvalidEscalation {
            path: agentgw_core::config::join(&block, error.path()),
            message: error.reason(),
        })
}

/// Guards of one direction, applied in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Guards {
    pub(crate) guards: Vec<Guard>,
    /// The `systemPromptLeak` guard (response guards only). It reads the model's text before
    /// the other guards mask it, wherever it sits in the list.
    pub(crate) leak: Option<Arc<LeakGuard>>,
    /// The `escalation` of the leak guard.
    pub(crate) leak_escalation: Option<Escalation>,
    /// The `classifier` guards (request guards only), applied after the others.
    pub(crate) classifiers: Vec<ClassifierGuard>,
}

impl Guards {
    pub(crate) fn compile(configs: &[GuardConfig], direction: Direction) -> Result<Guards, Error> {
        let side = match direction {
            Direction::Request => "request",
            Direction::Response => "response",
        };
        let mut guards = Vec::new();
        let mut leak: Option<Arc<LeakGuard>> = None;
        let mut leak_escalation = None;
        let mut classifiers = Vec::new();
        for (i, config) in configs.iter().enumerate() {
            let path = format!("{side}[{i}]");
            let label = config.name.clone().unwrap_or_else(|| path.clone());
            if let Some(classifier) = &config.classifier {
                let compiled =
                    ClassifierGuard::compile(config, classifier, &path, label.clone(), direction)?;
                match compiled {
                    Some(compiled) => {
                        classifiers.push(compiled);
                        continue;
                    }
                    // A disabled classifier: the guard is whatever else it has, or nothing.
                    None if config.regex == RegexConfig::default()
                        && config.system_prompt_leak.is_none() =>
                    {
                        continue;
                    }
                    None => {}
                }
            }
            let Some(leak_config) = &config.system_prompt_leak else {
                guards.push(Guard::compile(config, &path, label, direction)?);
                continue;
            };
            let invalid = |message: &str| Error::InvalidSystemPromptLeak {
                path: format!("{path}.systemPromptLeak"),
                message: message.to_owned(),
            };
            if direction == Direction::Request {
                return Err(invalid(
                    "is a response guard: it reads the model's answer; move it under `response`",
                ));
            }
            if config.regex != RegexConfig::default() {
                return Err(invalid(
                    "a guard has either `regex` or `systemPromptLeak`; make them two guards",
                ));
            }
            if let Some(first) = &leak {
                return Err(invalid(&format!(
                    "only one `systemPromptLeak` guard per route; `{}` is one already",
                    first.label
                )));
            }
            let (status, message) = reject_response(config, &path)?;
            leak_escalation = compile_escalation(
                config.escalation.as_ref(),
                leak_config.action,
                &path,
                "systemPromptLeak",
            )?;
            leak = Some(Arc::new(LeakGuard::compile(
                leak_config,
                &path,
                label,
                status,
                message,
            )?));
        }
        Ok(Guards {
            guards,
            leak,
            leak_escalation,
            classifiers,
        })
    }

    /// The escalation of the guard that decided `denial`, with the guard's label.
    pub(crate) fn escalation(&self, denial: &Denial) -> Option<(&str, &Escalation)> {
        match denial.guard {
            GuardId::Leak => {
                let leak = self.leak.as_ref()?;
                self.leak_escalation
                    .as_ref()
                    .map(|escalation| (leak.label.as_str(), escalation))
            }
            GuardId::Classifier(i) => {
                let guard = self.classifiers.get(i)?;
                guard
                    .escalation
                    .as_ref()
                    .map(|escalation| (guard.label.as_str(), escalation))
            }
            GuardId::Rules(i) => {
                let guard = self.guards.get(i)?;
                guard
                    .escalation
                    .as_ref()
                    .map(|escalation| (guard.label.as_str(), escalation))
            }
        }
    }

    /// Whether any guard escalates to a destination.
    pub(crate) fn escalates(&self) -> bool {
        self.leak_escalation.is_some()
            || self.guards.iter().any(|g| g.escalation.is_some())
            || self.classifiers.iter().any(|g| g.escalation.is_some())
    }

    /// The same guards, their escalations audited into `sink`.
    pub(crate) fn with_audit_sink(&self, sink: &Arc<dyn AuditSink>) -> Guards {
        let mut guards = self.clone();
        for guard in &mut guards.guards {
            guard.escalation = guard
                .escalation
                .take()
                .map(|escalation| escalation.audit_sink(Arc::clone(sink)));
        }
        guards.leak_escalation = guards
            .leak_escalation
            .take()
            .map(|escalation| escalation.audit_sink(Arc::clone(sink)));
        for guard in &mut guards.classifiers {
            guard.escalation = guard
                .escalation
                .take()
                .map(|escalation| escalation.audit_sink(Arc::clone(sink)));
        }
        guards
    }

    /// The rejection that answers `denial`.
    pub(crate) fn rejection(&self, denial: &Denial) -> Rejection {
        match denial.guard {
            GuardId::Rules(i) => self.get(i).rejection(&denial.rule),
            GuardId::Classifier(i) => self.classifiers[i].rejection(),
            GuardId::Leak => self
                .leak
                .as_ref()
                .expect("a leak denial comes from the configured leak guard")
                .rejection(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.guards.is_empty() && self.classifiers.is_empty()
    }

    /// Whether any guard (a `regex` or a `classifier` guard) inspects text of `reach`.
    pub(crate) fn any_reaches(&self, reach: Reach) -> bool {
        self.guards.iter().any(|guard| guard.reaches(reach))
            || self.classifiers.iter().any(|guard| guard.reaches(reach))
    }

    pub(crate) fn get(&self, i: usize) -> &Guard {
        &self.guards[i]
    }

    /// Applies every guard in order to one text of `scope` (`None`: not an LLM payload, every
    /// guard applies). Returns the masked text when a mask changed it, or the first denial.
    pub(crate) fn apply(&self, scope: Option<Scope>, text: &str) -> Result<Option<String>, Denial> {
        self.apply_to(Reach::from(scope), text)
    }

    /// Whether any guard, whatever its scopes, matches `text` (and would mask or refuse it).
    pub(crate) fn matches_any(&self, text: &str) -> bool {
        self.guards
            .iter()
            .any(|guard| guard.set.find(text).is_some())
    }

    /// Applies the guards of `reach` in order to one text; see [`apply`](Self::apply).
    pub(crate) fn apply_to(&self, reach: Reach, text: &str) -> Result<Option<String>, Denial> {
        let mut current = Cow::Borrowed(text);
        for (i, guard) in self.guards.iter().enumerate() {
            if !guard.reaches(reach) {
                continue;
            }
            match guard.action {
                Action::Reject | Action::Escalate => {
                    // Only an escalating guard has approvals: others never look them up.
                    let found = if guard.escalation.is_some()
                        && crate::escalate::guard_has_approvals(GuardId::Rules(i))
                    {
                        // A decision allowed some rules of this guard: the first other match.
                        guard.set.find_iter(&current).find(|m| {
                            !crate::escalate::is_approved(
                                GuardId::Rules(i),
                                guard.set.rule(m.rule()).name(),
                            )
                        })
                    } else {
                        guard.set.find(&current)
                    };
                    if let Some(m) = found {
                        guard.record(m.rule());
                        return Err(Denial {
                            guard: GuardId::Rules(i),
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
        for (i, classifier) in self.classifiers.iter().enumerate() {
            let guard = GuardId::Classifier(i);
            if !classifier.reaches(reach)
                || (classifier.escalation.is_some()
                    && crate::escalate::is_approved(guard, classifier::CLASSIFIER_RULE))
            {
                continue;
            }
            if classifier.flags(&current) {
                return Err(Denial {
                    guard,
                    rule: classifier::CLASSIFIER_RULE.to_owned(),
                });
            }
        }
        Ok(match current {
            Cow::Borrowed(_) => None,
            Cow::Owned(text) => Some(text),
        })
    }

    /// A streaming masker chain for text of `reach`: one masker per guard, `None` for the
    /// guards that do not apply. Response guards are compiled with their streaming automata,
    /// so every applicable response guard gets a masker.
    pub(crate) fn stream_maskers(&self, reach: Reach) -> Vec<Option<StreamMasker>> {
        self.guards
            .iter()
            .map(|guard| {
                guard
                    .reaches(reach)
                    .then(|| guard.set.stream_masker().ok())
                    .flatten()
            })
            .collect()
    }

    /// Runs the next piece of a text through a masker chain from
    /// [`stream_maskers`](Self::stream_maskers); `last` ends the text. Returns what can be
    /// released now, or the denial of a `Reject` guard that matched.
    pub(crate) fn feed(
        &self,
        maskers: &mut [Option<StreamMasker>],
        text: &str,
        last: bool,
    ) -> Result<String, Denial> {
        let mut current = text.to_owned();
        for (i, masker) in maskers.iter_mut().enumerate() {
            let Some(masker) = masker else { continue };
            let guard = self.get(i);
            let mut hit = None;
            let mut on_match = |rule| {
                guard.record(rule);
                if guard.action.denies() {
                    hit.get_or_insert(rule);
                }
            };
            let mut out = masker.push_with(&current, &mut on_match);
            if last {
                out.push_str(&masker.finish_with(&mut on_match));
            }
            if let Some(rule) = hit {
                return Err(Denial {
                    guard: GuardId::Rules(i),
                    rule: guard.set.rule(rule).name().to_owned(),
                });
            }
            current = out;
        }
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::config::PromptGuardConfig;

    pub(super) fn guards(yaml: &str, direction: Direction) -> Guards {
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
            assert!(
                matches!(denied, Err(Denial { guard: GuardId::Rules(1), ref rule }) if rule == "injection")
            );
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
    fn rejections_carry_status_message_and_rule_but_no_text() {
        let guards = guards(
            "response:\n  - response: {message: nope, statusCode: 451}\n    regex: {action: Reject, builtins: [EMAIL]}\n",
            Direction::Response,
        );
        let denial = guards.apply(None, "mail a@b.io").unwrap_err();
        let rejection = guards.rejection(&denial);
        assert_eq!(
            rejection.status(),
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS
        );
        assert_eq!(rejection.message(), "nope");
        assert_eq!(rejection.reason(), "EMAIL");
        assert_eq!(rejection.layer(), LAYER);
    }
}
