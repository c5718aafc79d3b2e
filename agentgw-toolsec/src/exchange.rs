//! One HTTP exchange with an MCP server: the requests the client sent, and what to do with each
//! message of the answer (JSON body or event stream alike).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use agentgw_core::audit::{AuditEvent, Decision};
use agentgw_core::escalation::{Escalation, EscalationEvent, Verdict};
use agentgw_core::mcp::{self, Envelope, ErrorObject, Id, Message, codes, methods};
use agentgw_core::metrics::{record_rejection, record_tool_call};
use serde_json::{Value, json};

use crate::audit::{Auditor, CLASSIFIER_SCORE, LAYER, mask_text, masked};
use crate::denial::{Denial, rules};
use crate::pin_store::SharedSnapshot;
use crate::policy::{DefinitionOutcome, ListOutcome, Policy};

/// A `tools/call` waiting for its answer.
#[derive(Debug)]
struct PendingCall {
    tool: String,
    /// Masked arguments, kept only when the audit records them.
    arguments: Option<Value>,
}

/// The state of one exchange.
#[derive(Debug)]
pub(crate) struct Exchange {
    policy: Arc<Policy>,
    auditor: Arc<Auditor>,
    upstream: Arc<str>,
    subject: Option<String>,
    http_method: String,
    path: String,
    started: Instant,
    calls: HashMap<Id, PendingCall>,
    lists: HashMap<Id, ()>,
    /// The shared pins read for this exchange (`pinning.redis`).
    shared_pins: Option<SharedSnapshot>,
    /// `toolSecurity.escalation`, and what its events say about the request.
    escalation: Option<(Escalation, Box<EscalationEvent>)>,
}

/// The escalated rules decisions allowed, per `tools/call` request id.
pub(crate) type Approvals = HashMap<Id, Vec<Arc<str>>>;

/// The outcome of checking the client's messages.
pub(crate) enum Inspection {
    /// Forward the request.
    Forward,
    /// Refuse the payload with this one denial, answering request `id` (`null` when the
    /// payload is refused as a whole): a core [`Rejection`](agentgw_core::Rejection), not yet
    /// counted.
    Refuse {
        /// The id of the refused request.
        id: Id,
        /// Why.
        denial: Denial,
    },
    /// Answer a batch with JSON-RPC errors, one per request of the batch (counted).
    DenyBatch {
        /// The batch of errors.
        errors: Value,
        /// The rule of the first refused request.
        rule: Arc<str>,
    },
}

impl Exchange {
    pub(crate) fn new(
        policy: Arc<Policy>,
        auditor: Arc<Auditor>,
        upstream: Arc<str>,
        subject: Option<String>,
        http_method: String,
        path: String,
    ) -> Self {
        Self {
            policy,
            auditor,
            upstream,
            subject,
            http_method,
            path,
            started: Instant::now(),
            calls: HashMap::new(),
            lists: HashMap::new(),
            shared_pins: None,
            escalation: None,
        }
    }

    /// Escalates the refusals of `Escalate` rules through `escalation`; `origin` describes
    /// the request (route, method, path, caller).
    pub(crate) fn escalate_with(&mut self, escalation: Escalation, origin: EscalationEvent) {
        self.escalation = Some((escalation, Box::new(origin)));
    }

    /// The escalation event of `denial`, a refusal of a call of `tool`.
    fn escalation_event(origin: &EscalationEvent, denial: &Denial, tool: &str) -> EscalationEvent {
        let mut event = EscalationEvent::new(
            LAYER,
            denial.rule.to_string(),
            agentgw_core::escalation::Direction::Request,
        )
        .with_tool(mask_text(tool));
        event.route = origin.route.clone();
        event.method = origin.method.clone();
        event.path = origin.path.clone();
        event.caller = origin.caller.clone();
        event
    }

    /// With `blockPending`: asks for a decision about every refusal of an `Escalate` rule of
    /// the calls of `envelope`, one after the other (each bounded by the escalation's
    /// timeout); the rules allowed, per call. A call whose decision allows a rule is checked
    /// again without it, and may be escalated again for another rule.
    pub(crate) async fn decide_escalations(&self, envelope: &Envelope) -> Approvals {
        let mut approvals = Approvals::new();
        let Some((escalation, origin)) = &self.escalation else {
            return approvals;
        };
        if !escalation.blocks_pending() {
            return approvals;
        }
        for message in envelope.messages() {
            let Message::Request { id, .. } = message else {
                continue;
            };
            let Ok(Some(call)) = message.try_tool_call() else {
                continue;
            };
            let mut approved: Vec<Arc<str>> = Vec::new();
            while let Err(denial) = self.policy.check_call_approved(
                &self.upstream,
                call.name,
                call.arguments,
                &approved,
            ) {
                if !denial.escalate || approved.contains(&denial.rule) {
                    break;
                }
                let event = Self::escalation_event(origin, &denial, call.name);
                match escalation.decide(event).await {
                    Verdict::Allow => approved.push(denial.rule),
                    Verdict::Deny => break,
                }
            }
            if !approved.is_empty() {
                approvals.insert(id.clone(), approved);
            }
        }
        approvals
    }

    /// The upstream this exchange talks to.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The shared pins to compare the listings of this exchange with (`pinning.redis`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn set_shared_pins(&mut self, snapshot: SharedSnapshot) {
        self.shared_pins = Some(snapshot);
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether a `tools/call` is waiting for its answer.
    pub(crate) fn has_pending_calls(&self) -> bool {
        !self.calls.is_empty()
    }

    /// Ids of the calls still waiting.
    pub(crate) fn pending_call_ids(&self) -> Vec<Id> {
        self.calls.keys().cloned().collect()
    }

    /// Names of the tools the calls of `envelope` invoke that must be listed before the calls
    /// can be decided (`unlistedTools: Fetch`).
    pub(crate) fn unlisted_tools(&self, envelope: &Envelope) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for message in envelope.messages() {
            if let Ok(Some(call)) = message.try_tool_call()
                && self.policy.needs_listing(&self.upstream, call.name)
                && !names.iter().any(|name| name == call.name)
            {
                names.push(call.name.to_owned());
            }
        }
        names
    }

    /// Checks the client's messages; remembers the calls and lists whose answers to inspect.
    #[cfg(test)]
    pub(crate) fn inspect(&mut self, envelope: &Envelope) -> Inspection {
        self.inspect_approved(envelope, &Approvals::new())
    }

    /// [`inspect`](Self::inspect), skipping the escalated rules decisions allowed. The
    /// refusal of an `Escalate` rule nobody waited for (no `blockPending`) is notified.
    pub(crate) fn inspect_approved(
        &mut self,
        envelope: &Envelope,
        approvals: &Approvals,
    ) -> Inspection {
        let smuggling_notification = envelope.messages().iter().find_map(|message| {
            let Message::Notification { method, .. } = message else {
                return None;
            };
            if method == methods::TOOLS_CALL {
                // It invokes nothing by the book, but a lenient server might run it unchecked.
                return Some("a tools/call must be a request with an id".to_owned());
            }
            mcp::methods::lookalike(method).map(case_variant_message)
        });
        if let Some(message) = smuggling_notification {
            let denial = Denial::forbidden(rules::INVALID_REQUEST, message)
                .with_code(codes::INVALID_REQUEST);
            return Inspection::Refuse {
                id: Id::Null,
                denial,
            };
        }
        let mut denials: Vec<(Id, Denial)> = Vec::new();
        let mut labels_allowed = Vec::new();
        for message in envelope.messages() {
            let Message::Request { id, method, .. } = message else {
                continue;
            };
            if let Some(known) = mcp::methods::lookalike(method) {
                // A server that folds case would run it without the checks of `known`.
                let denial = Denial::forbidden(rules::INVALID_REQUEST, case_variant_message(known))
                    .with_code(codes::INVALID_REQUEST);
                denials.push((id.clone(), denial));
                continue;
            }
            match method.as_str() {
                methods::TOOLS_LIST => {
                    self.lists.insert(id.clone(), ());
                }
                methods::TOOLS_CALL => match message.try_tool_call() {
                    Err(error) => {
                        let denial = Denial::forbidden(rules::INVALID_REQUEST, error.to_string())
                            .with_code(error.code());
                        denials.push((id.clone(), denial));
                    }
                    Ok(None) => {}
                    Ok(Some(call)) => {
                        let label = self.policy.tool_label(call.name);
                        let approved = approvals.get(id).map_or(&[][..], Vec::as_slice);
                        match self.policy.check_call_approved(
                            &self.upstream,
                            call.name,
                            call.arguments,
                            approved,
                        ) {
                            Ok(()) => {
                                labels_allowed.push(label);
                                let arguments = self
                                    .auditor
                                    .includes_arguments()
                                    .then(|| call.arguments.map(masked).unwrap_or(Value::Null));
                                self.calls.insert(
                                    id.clone(),
                                    PendingCall {
                                        tool: call.name.to_owned(),
                                        arguments,
                                    },
                                );
                            }
                            Err(denial) => {
                                if denial.escalate
                                    && let Some((escalation, origin)) = &self.escalation
                                    && !escalation.blocks_pending()
                                {
                                    escalation
                                        .notify(Self::escalation_event(origin, &denial, call.name));
                                }
                                record_tool_call(&label, false);
                                let escalate = denial.escalate;
                                self.audit_call(
                                    call.name,
                                    Decision::Deny,
                                    Some(&denial.rule),
                                    "denied",
                                    call.arguments,
                                    |event| match escalate {
                                        true => event.with_detail("escalate", true),
                                        false => event,
                                    },
                                );
                                denials.push((id.clone(), denial));
                            }
                        }
                    }
                },
                _ => {}
            }
        }
        if denials.is_empty() {
            for label in labels_allowed {
                record_tool_call(&label, true);
            }
            return Inspection::Forward;
        }
        for label in labels_allowed {
            record_tool_call(&label, false);
        }
        if !envelope.is_batch()
            && let Some((id, denial)) = denials.pop()
        {
            return Inspection::Refuse { id, denial };
        }
        for (_, denial) in &denials {
            record_rejection(LAYER, &denial.rule);
        }
        Inspection::DenyBatch {
            errors: denial_payload(envelope, &denials),
            rule: denials[0].1.rule.clone(),
        }
    }

    /// Applies the policy to one message of the server's answer; `raw_len` is its size as
    /// sent (`None` when unknown, e.g. inside a batch). Returns whether it changed.
    ///
    /// Answers are matched to the requests of this exchange loosely (see
    /// [`Id::loosely_matches`]), as lenient clients match them; every answer is inspected
    /// whatever it answers: a `tools` list is validated, the texts of prompts, resources and
    /// instructions are checked, and every text is sanitized.
    pub(crate) fn on_message(&mut self, message: &mut Message, raw_len: Option<usize>) -> bool {
        match message {
            Message::Response { id, result } => {
                if let Some((id, call)) = take_loosely(&mut self.calls, id) {
                    return self.on_call_result(id, call, message, raw_len);
                }
                let listed = take_loosely(&mut self.lists, id).is_some();
                if listed || result.get("tools").is_some() {
                    if mcp::tools_from_list_result(result).is_none() {
                        let denial =
                            invalid_answer("the upstream's tools/list answer has no tool list");
                        record_rejection(LAYER, &denial.rule);
                        *message = error_message(id.clone(), &denial);
                        return true;
                    }
                    let outcome = self.record_list(result);
                    if let Some(denial) = outcome.rejected {
                        record_rejection(LAYER, &denial.rule);
                        *message = error_message(id.clone(), &denial);
                        return true;
                    }
                    return outcome.changed;
                }
                let outcome = self.policy.check_definitions(result);
                self.audit_definitions(&outcome);
                if let Some(denial) = outcome.rejected {
                    record_rejection(LAYER, &denial.rule);
                    *message = error_message(id.clone(), &denial);
                    return true;
                }
                outcome.changed | self.policy.sanitize_result(result).changed()
            }
            Message::Error { id, error } => {
                take_loosely(&mut self.lists, id);
                let sanitized = self.policy.sanitize_error(error);
                if let Some((_, call)) = take_loosely(&mut self.calls, id) {
                    let decision = if sanitized.changed() {
                        Decision::Modify
                    } else {
                        Decision::Allow
                    };
                    self.audit_call(&call.tool, decision, None, "error", None, |event| {
                        event.with_detail("errorCode", error.code)
                    });
                }
                sanitized.changed()
            }
            // Requests from the server (`sampling/createMessage`, `elicitation/create`) and
            // its notifications carry text the client's model or user reads.
            Message::Request { params, .. } | Message::Notification { params, .. } => params
                .as_mut()
                .is_some_and(|params| self.policy.sanitize_result(params).changed()),
        }
    }

    /// Validates and records a `tools/list` result (the client's, or one the layer fetched).
    pub(crate) fn record_list(&mut self, result: &mut Value) -> ListOutcome {
        let (outcome, claims) = self.policy.process_tools_list_shared(
            &self.upstream,
            result,
            self.shared_pins.as_ref(),
        );
        self.audit_list(&outcome);
        #[cfg(feature = "redis")]
        if !claims.is_empty() {
            crate::shared_pins::settle(
                self.policy.clone(),
                self.upstream.clone(),
                claims,
                self.auditor.clone(),
                self.event("tool_validation", Decision::Deny),
            );
        }
        #[cfg(not(feature = "redis"))]
        drop(claims);
        outcome
    }

    fn on_call_result(
        &mut self,
        id: Id,
        call: PendingCall,
        message: &mut Message,
        raw_len: Option<usize>,
    ) -> bool {
        let limits = self.policy.limits;
        if let Some(max) = limits.max_output_size {
            let size = raw_len.unwrap_or_else(|| message.to_bytes().len());
            if size > max {
                let outcome = if limits.enforce {
                    "too_large"
                } else {
                    "result"
                };
                let decision = if limits.enforce {
                    Decision::Deny
                } else {
                    Decision::Allow
                };
                self.audit_call(
                    &call.tool,
                    decision,
                    Some(rules::OUTPUT_SIZE),
                    outcome,
                    None,
                    |event| {
                        event
                            .with_detail("outputBytes", size)
                            .with_detail("limitExceeded", "maxOutputSize")
                    },
                );
                if limits.enforce {
                    record_rejection(LAYER, rules::OUTPUT_SIZE);
                    *message = error_message(id, &output_too_large(max));
                    return true;
                }
                return false;
            }
        }
        let Message::Response { result, .. } = message else {
            return false;
        };
        let classified = self.policy.classify_result(result);
        if classified.rejected {
            let denial = injection_refusal();
            self.audit_call(
                &call.tool,
                Decision::Deny,
                Some(&denial.rule),
                "injection",
                None,
                |event| with_score(event, classified.highest),
            );
            record_rejection(LAYER, &denial.rule);
            *message = error_message(id, &denial);
            return true;
        }
        let sanitized = self.policy.sanitize_result(result);
        if self.auditor.is_on() {
            let decision = if sanitized.changed() || classified.flagged() {
                Decision::Modify
            } else {
                Decision::Allow
            };
            let response = self.auditor.includes_response().then(|| masked(result));
            let is_error = result
                .get("isError")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let over_time = limits
                .max_execution_time
                .is_some_and(|max| self.started.elapsed() > max);
            let arguments = call.arguments;
            let rule = classified
                .flagged()
                .then_some(rules::PROMPT_INJECTION_CLASSIFIER);
            self.audit_call(&call.tool, decision, rule, "result", None, |mut event| {
                event = with_score(event, classified.highest).with_detail("isError", is_error);
                if classified.removed > 0 {
                    event = event.with_detail("classifierRemoved", classified.removed);
                }
                if sanitized.changed() {
                    event = event.with_detail(
                        "sanitized",
                        json!({"removed": sanitized.removed, "masked": sanitized.masked, "truncated": sanitized.truncated}),
                    );
                }
                if over_time {
                    event = event.with_detail("limitExceeded", "maxExecutionTime");
                }
                if let Some(arguments) = arguments {
                    event = event.with_detail("arguments", arguments);
                }
                if let Some(response) = response {
                    event = event.with_detail("response", response);
                }
                event
            });
        }
        sanitized.changed() || classified.flagged()
    }

    /// Errors for every call still waiting, because the time limit passed; the calls are
    /// forgotten. The errors are audited, not yet counted.
    pub(crate) fn time_out(&mut self) -> Vec<(Id, Denial)> {
        let max = self.policy.limits.max_execution_time.unwrap_or_default();
        let denial = Denial::forbidden(
            rules::EXECUTION_TIME,
            format!(
                "the tool call did not finish within {}",
                humantime::format_duration(max)
            ),
        )
        .with_code(codes::TIMEOUT);
        self.fail_calls(&denial, "timeout")
    }

    /// Errors for every call still waiting, with `denial`, audited with `outcome` (not yet
    /// counted: see [`counted`]).
    pub(crate) fn fail_calls(
        &mut self,
        denial: &Denial,
        outcome: &'static str,
    ) -> Vec<(Id, Denial)> {
        let calls: Vec<(Id, PendingCall)> = self.calls.drain().collect();
        let mut errors = Vec::with_capacity(calls.len());
        for (id, call) in calls {
            self.audit_call(
                &call.tool,
                Decision::Deny,
                Some(&denial.rule),
                outcome,
                None,
                |e| e,
            );
            errors.push((id, denial.clone()));
        }
        errors
    }

    /// Errors for every request still waiting (calls and lists), e.g. when the answer cannot
    /// be read; audited, not yet counted.
    pub(crate) fn fail_all(&mut self, denial: &Denial, outcome: &'static str) -> Vec<(Id, Denial)> {
        let mut errors = self.fail_calls(denial, outcome);
        for (id, ()) in self.lists.drain() {
            errors.push((id, denial.clone()));
        }
        errors
    }

    /// The answer ended: calls that got no answer are audited as such.
    pub(crate) fn finish(&mut self) {
        let calls: Vec<(Id, PendingCall)> = self.calls.drain().collect();
        for (_, call) in calls {
            self.audit_call(
                &call.tool,
                Decision::Allow,
                None,
                "no_response",
                None,
                |e| e,
            );
        }
        self.lists.clear();
    }

    fn audit_call(
        &self,
        tool: &str,
        decision: Decision,
        rule: Option<&str>,
        outcome: &'static str,
        raw_arguments: Option<&Value>,
        extra: impl FnOnce(AuditEvent) -> AuditEvent,
    ) {
        if !self.auditor.is_on() {
            return;
        }
        let mut event = self
            .event("tool_call", decision)
            .with_tool(mask_text(tool))
            .with_latency(self.started.elapsed())
            .with_detail("outcome", outcome);
        if let Some(rule) = rule {
            event = event.with_rule(rule);
        }
        if let Some(arguments) = raw_arguments.filter(|_| self.auditor.includes_arguments()) {
            event = event.with_detail("arguments", masked(arguments));
        }
        self.auditor.record(&extra(event));
    }

    fn audit_list(&self, outcome: &ListOutcome) {
        if !self.auditor.is_on() {
            return;
        }
        for finding in &outcome.findings {
            let decision = if finding.removed {
                Decision::Deny
            } else {
                Decision::Allow
            };
            let mut event = self
                .event("tool_validation", decision)
                .with_tool(mask_text(&finding.tool))
                .with_rule(finding.rule.as_ref());
            if let Some(detail) = &finding.detail {
                event = event.with_detail("detail", mask_text(detail));
            }
            self.auditor.record(&with_score(event, finding.score));
        }
        let decision = match (&outcome.rejected, outcome.changed) {
            (Some(_), _) => Decision::Deny,
            (None, true) => Decision::Modify,
            (None, false) => Decision::Allow,
        };
        let mut event = self
            .event("tool_list", decision)
            .with_detail("listed", outcome.listed)
            .with_detail(
                "exposed",
                if outcome.rejected.is_some() {
                    0
                } else {
                    outcome.exposed
                },
            )
            .with_detail("notAllowlisted", outcome.not_allowlisted);
        if let Some(denial) = &outcome.rejected {
            event = event.with_rule(denial.rule.as_ref());
        }
        self.auditor.record(&event);
    }

    fn audit_definitions(&self, outcome: &DefinitionOutcome) {
        if !self.auditor.is_on() {
            return;
        }
        for finding in &outcome.findings {
            let mut event = self
                .event("definition_validation", Decision::Deny)
                .with_rule(finding.rule.as_ref())
                .with_detail("kind", finding.kind);
            if !finding.name.is_empty() {
                event = event.with_detail("name", mask_text(&finding.name));
            }
            self.auditor.record(&with_score(event, finding.score));
        }
    }

    fn event(&self, kind: &'static str, decision: Decision) -> AuditEvent {
        let mut event = AuditEvent::new(LAYER, kind, decision)
            .with_request(self.http_method.clone(), self.path.clone())
            .with_detail("upstream", self.upstream.as_ref());
        if let Some(subject) = &self.subject {
            event = event.with_subject(subject.clone());
        }
        event
    }
}

/// Removes the entry of `id`, or else of an id that loosely matches it, from `entries`.
fn take_loosely<V>(entries: &mut HashMap<Id, V>, id: &Id) -> Option<(Id, V)> {
    if let Some(entry) = entries.remove_entry(id) {
        return Some(entry);
    }
    let key = entries.keys().find(|key| key.loosely_matches(id))?.clone();
    entries.remove_entry(&key)
}

fn case_variant_message(known: &str) -> String {
    format!("MCP method names are case-sensitive: a case variant of `{known}` is refused")
}

/// The denial of an answer the layer cannot inspect.
pub(crate) fn invalid_answer(message: &str) -> Denial {
    Denial::forbidden(rules::INVALID_RESPONSE, message).with_code(codes::INTERNAL_ERROR)
}

/// The denial of a `tools/call` result the prompt-injection classifier flagged
/// (`responseSanitization.classifier.action: Reject`); never echoes the text.
pub(crate) fn injection_refusal() -> Denial {
    Denial::forbidden(
        rules::PROMPT_INJECTION_CLASSIFIER,
        "the tool result was withheld: the prompt-injection classifier flagged its text",
    )
}

/// `event` with the detail `classifierScore`, when a text was scored.
fn with_score(event: AuditEvent, score: Option<f32>) -> AuditEvent {
    match score {
        Some(score) => event.with_detail(CLASSIFIER_SCORE, score),
        None => event,
    }
}

/// The denial of `tools/call` output over `max` bytes.
pub(crate) fn output_too_large(max: usize) -> Denial {
    Denial::forbidden(
        rules::OUTPUT_SIZE,
        format!("the tool output exceeds the limit of {max} bytes"),
    )
    .with_code(codes::PAYLOAD_TOO_LARGE)
}

/// The JSON-RPC error messages of `errors`, each counted in
/// `agentgateway_rejected_requests_total` as it is sent.
pub(crate) fn counted(errors: Vec<(Id, Denial)>) -> Vec<Message> {
    errors
        .into_iter()
        .map(|(id, denial)| {
            record_rejection(LAYER, &denial.rule);
            error_message(id, &denial)
        })
        .collect()
}

/// A JSON-RPC error message for `denial`, naming the layer and rule in `data`.
pub(crate) fn error_message(id: Id, denial: &Denial) -> Message {
    Message::Error {
        id,
        error: ErrorObject {
            code: denial.code,
            message: denial.message.clone(),
            data: Some(denial.data()),
        },
    }
}

/// The answer to a payload with denied requests: the error of each denied request, and for
/// the other requests of a batch an error saying the batch was refused.
fn denial_payload(envelope: &Envelope, denials: &[(Id, Denial)]) -> Value {
    let collateral = Denial::forbidden(
        denials[0].1.rule.clone(),
        "not processed: another message of the batch was refused",
    )
    .with_code(codes::INVALID_REQUEST);
    let mut messages = Vec::new();
    for message in envelope.messages() {
        let Message::Request { id, .. } = message else {
            continue;
        };
        let denial = denials
            .iter()
            .find(|(denied, _)| denied == id)
            .map_or(&collateral, |(_, denial)| denial);
        messages.push(error_message(id.clone(), denial).into_value());
    }
    if envelope.is_batch() {
        Value::Array(messages)
    } else {
        messages.pop().unwrap_or(Value::Null)
    }
}

/// `messages` as a JSON-RPC payload: one message, or a batch when `batch` or several.
pub(crate) fn payload_of(mut messages: Vec<Message>, batch: bool) -> Value {
    if messages.len() == 1 && !batch {
        messages
            .pop()
            .map(Message::into_value)
            .unwrap_or(Value::Null)
    } else {
        Value::Array(messages.into_iter().map(Message::into_value).collect())
    }
}
