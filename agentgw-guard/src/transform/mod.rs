//! Response guards on streams (Server-Sent Events, JSON lines): masking deltas across events,
//! one holdback per position. [`events`] knows what the events of LLM streams mean;
//! [`frames`] lets one transform read SSE events and JSON lines alike.

mod events;
mod frames;

use std::fmt;
use std::sync::Arc;

use agentgw_core::BoxError;
use agentgw_core::llm::{self, DeltaKey};
use agentgw_core::ndjson::Line;
use agentgw_core::sse::{Event, Frame, Transform};
use serde_json::{Value, json};

use self::events::{Ending, ending, is_delta_kind, synthesize};
use self::frames::Unit;
use crate::escalate::Origin;
use crate::guard::{Denial, Guards, Reach, Visited, apply_rewrites};
use crate::leak::{LeakCheck, LeakScanner};
use crate::stream::StreamMasker;

/// Stream positions (choices, content blocks, tool calls) one stream may open; a stream with
/// more fails closed instead of growing without bound.
const MAX_POSITIONS: usize = 256;

/// The [`Transform`] applying response guards to an LLM stream: SSE events, or JSON lines
/// (each line is read like the data of an event).
///
/// Text increments are masked per [`DeltaKey`] with a [`StreamMasker`] chain (one masker per
/// response guard, in order); complete texts that events repeat are masked whole; the other
/// strings of an event with LLM text are masked by the guards that cover every scope, and JSON
/// events without LLM text have all their strings masked by every guard; non-JSON data is
/// masked as one text stream.
/// Held-back text is released into the position's next increment, or in an extra increment
/// event (shaped like the position's last one) before the event that ends the position. A
/// `Reject` match cuts the stream with an error event (an error line).
pub(crate) struct GuardTransform {
    guards: Arc<Guards>,
    /// The leak check of this response, when the request had a system prompt to protect.
    leak: Option<Box<LeakCheck>>,
    /// The request, for the events of escalated guards.
    origin: Option<Origin>,
    positions: Vec<(DeltaKey, Position)>,
    raw: Option<Position>,
    blocked: bool,
}

struct Position {
    /// Reads the model's text first, before the maskers.
    leak: Option<LeakScanner>,
    maskers: Vec<Option<StreamMasker>>,
    template: Option<Template>,
}

/// The last increment event of a position, reused to release held-back text.
struct Template {
    event: Option<String>,
    json: Value,
    delta_kind: bool,
}
impl GuardTransform {
    pub(crate) fn new(
        guards: Arc<Guards>,
        leak: Option<Box<LeakCheck>>,
        origin: Option<Origin>,
    ) -> GuardTransform {
        GuardTransform {
            guards,
            leak,
            origin,
            positions: Vec::new(),
            raw: None,
            blocked: false,
        }
    }

    /// A masker chain for a new position.
    fn new_position(&self, scope: Option<llm::Scope>) -> Position {
        Position {
            leak: self.leak.as_ref().map(|leak| leak.scanner()),
            maskers: self.guards.stream_maskers(Reach::from(scope)),
            template: None,
        }
    }

    fn position(&mut self, key: DeltaKey) -> Result<&mut Position, BoxError> {
        let index = match self.positions.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                if self.positions.len() >= MAX_POSITIONS {
                    return Err("prompt guard: too many stream positions to mask".into());
                }
                let position = self.new_position(Some(key.scope));
                self.positions.push((key, position));
                self.positions.len() - 1
            }
        };
        Ok(&mut self.positions[index].1)
    }

    /// Runs `text` through the position's leak scanner and masker chain; `last` ends the
    /// position.
    fn feed(
        guards: &Guards,
        leak: Option<&mut LeakCheck>,
        position: &mut Position,
        text: &str,
        last: bool,
    ) -> Result<String, Denial> {
        match (leak, &mut position.leak) {
            (Some(leak), Some(scanner)) => {
                let text = leak.feed(scanner, text, last)?;
                guards.feed(&mut position.maskers, &text, last)
            }
            _ => guards.feed(&mut position.maskers, text, last),
        }
    }

    fn block<U: Unit>(&mut self, denial: &Denial, out: &mut Vec<U::Frame>) {
        let rejection = self.guards.rejection(denial);
        rejection.record();
        tracing::debug!(rule = %denial.rule, "prompt guard cut a response stream");
        // A stream is not held for a decision: an escalated rule cuts it and notifies.
        if let (Some((label, escalation)), Some(origin)) =
            (self.guards.escalation(denial), &self.origin)
        {
            escalation.notify(origin.event(label, &denial.rule, llm::Direction::Response));
        }
        let kind = if rejection.status().is_client_error() {
            "permission_error"
        } else {
            "api_error"
        };
        let data = json!({
            "type": "error",
            "error": {
                "type": kind,
                "code": rejection.reason(),
                "message": rejection.message(),
            }
        });
        out.push(U::error(data.to_string()).into());
        self.blocked = true;
        self.positions.clear();
        self.raw = None;
    }

    /// Releases what positions matching `ending` still hold, as extra increment events.
    fn flush<U: Unit>(&mut self, ending: &Ending, out: &mut Vec<U::Frame>) -> Result<(), Denial> {
        let guards = Arc::clone(&self.guards);
        let mut i = 0;
        while i < self.positions.len() {
            if !ending.covers(&self.positions[i].0) {
                i += 1;
                continue;
            }
            let (key, mut position) = self.positions.swap_remove(i);
            let text = Self::feed(&guards, self.leak.as_deref_mut(), &mut position, "", true)?;
            if !text.is_empty()
                && let Some((name, data)) = synthesize(position.template.as_ref(), key, text)
            {
                out.push(U::synthesized(name, data).into());
            }
        }
        if matches!(ending, Ending::All) {
            self.flush_raw::<U>(out)?;
        }
        Ok(())
    }

    /// Releases what the raw text stream still holds.
    fn flush_raw<U: Unit>(&mut self, out: &mut Vec<U::Frame>) -> Result<(), Denial> {
        if let Some(mut raw) = self.raw.take() {
            let text = Self::feed(&self.guards, self.leak.as_deref_mut(), &mut raw, "", true)?;
            if !text.is_empty() {
                out.push(U::raw(text).into());
            }
        }
        Ok(())
    }

    fn event<U: Unit>(&mut self, mut event: U, out: &mut Vec<U::Frame>) -> Result<(), BoxError> {
        if event.is_done() {
            if let Err(denial) = self.flush::<U>(&Ending::All, out) {
                self.block::<U>(&denial, out);
                return Ok(());
            }
            out.push(event.into());
            return Ok(());
        }
        // Objects and arrays are structured events; anything else (`4111111111111111` parses
        // as a JSON number) is masked as text.
        let mut json = match serde_json::from_str::<Value>(event.data()) {
            Ok(json) if json.is_object() || json.is_array() => json,
            _ => return self.raw_event(event, out),
        };
        // Raw text between JSON lines is written in place: release it before this line.
        if U::INLINE_RAW
            && let Err(denial) = self.flush_raw::<U>(out)
        {
            self.block::<U>(&denial, out);
            return Ok(());
        }
        let ending = ending(&json);
        let guards = Arc::clone(&self.guards);

        let mut keys = Vec::new();
        let mut visited = Visited::default();
        llm::for_each_delta(&json, |delta| {
            keys.push(delta.key);
            visited.insert(delta.text);
        });
        let mut segments = 0;
        llm::for_each_event_segment(&json, |segment| {
            segments += 1;
            visited.insert(segment.text);
        });
        visited.seal();
        let delta_kind = is_delta_kind(&json);
        // Positions that take this event as the template to release held text with: the
        // first increment, or the first real increment after a block start. One clone per
        // position, not per event, taken once the event is masked.
        let mut templates = Vec::new();
        for key in &keys {
            let position = self.position(*key)?;
            if position
                .template
                .as_ref()
                .is_none_or(|t| !t.delta_kind && delta_kind)
            {
                templates.push(*key);
            }
        }

        // Every string beside the texts: by the guards that cover all scopes, or by every
        // guard when the event carries no LLM text at all.
        let reach = if keys.is_empty() && segments == 0 {
            Reach::All
        } else {
            Reach::Unscoped
        };
        let mut changed = 0;
        match guards.scan_others(&json, &visited, reach) {
            Ok(rewrites) => {
                if apply_rewrites(&mut json, rewrites) {
                    changed += 1;
                    // A mask of a field the walker decides on (a `type`) would change which
                    // strings are texts: refuse rather than forward an event read otherwise.
                    let mut again = Visited::default();
                    llm::for_each_delta(&json, |delta| again.insert(delta.text));
                    llm::for_each_event_segment(&json, |segment| again.insert(segment.text));
                    again.seal();
                    if again != visited {
                        return Err("prompt guard: masking changed how a stream event reads".into());
                    }
                }
            }
            Err(denial) => {
                self.block::<U>(&denial, out);
                return Ok(());
            }
        }

        let mut denial = None;
        changed += llm::rewrite_event_segments(&mut json, |scope, text| {
            if denial.is_some() {
                return None;
            }
            // A complete text an event repeats: checked whole (what it reproduces counts once).
            let leaked = match self.leak.as_deref_mut().map(|leak| leak.text(text)) {
                Some(Err(d)) => {
                    denial = Some(d);
                    return None;
                }
                Some(Ok(masked)) => masked,
                None => None,
            };
            let text = leaked.as_deref().unwrap_or(text);
            match guards.apply(Some(scope), text) {
                Ok(Some(masked)) => Some(masked),
                Ok(None) => leaked,
                Err(d) => {
                    denial = Some(d);
                    None
                }
            }
        });
        changed += llm::rewrite_deltas(&mut json, |key, text| {
            if denial.is_some() {
                return None;
            }
            let last = ending.covers(&key);
            // Every key has a position by now, unless a malformed chunk repeats a key after
            // ending it: that text gets a fresh masker rather than none.
            let index = match self.positions.iter().position(|(k, _)| *k == key) {
                Some(index) => index,
                None => {
                    let position = self.new_position(Some(key.scope));
                    self.positions.push((key, position));
                    self.positions.len() - 1
                }
            };
            let result = Self::feed(
                &guards,
                self.leak.as_deref_mut(),
                &mut self.positions[index].1,
                text,
                last,
            );
            if last {
                self.positions.swap_remove(index);
            }
            result.map_err(|d| denial = Some(d)).ok()
        });
        if denial.is_none()
            && let Err(d) = self.flush::<U>(&ending, out)
        {
            denial = Some(d);
        }
        if let Some(denial) = denial {
            self.block::<U>(&denial, out);
            return Ok(());
        }
        for key in templates {
            if let Some((_, position)) = self.positions.iter_mut().find(|(k, _)| *k == key) {
                position.template = Some(Template {
                    event: event.name().map(str::to_owned),
                    json: json.clone(),
                    delta_kind,
                });
            }
        }
        if changed > 0 {
            event.set_data(serde_json::to_string(&json)?);
        }
        out.push(event.into());
        Ok(())
    }

    /// Masks data that is not a JSON object or array as one text stream across frames.
    fn raw_event<U: Unit>(&mut self, event: U, out: &mut Vec<U::Frame>) -> Result<(), BoxError> {
        let input = event.raw_input();
        // Nothing to mask, and no held text it could continue: forward as is.
        if input.trim().is_empty() && (self.raw.is_none() || !U::INLINE_RAW) {
            out.push(event.into());
            return Ok(());
        }
        let mut raw = match self.raw.take() {
            Some(raw) => raw,
            None => self.new_position(None),
        };
        let result = Self::feed(
            &self.guards,
            self.leak.as_deref_mut(),
            &mut raw,
            &input,
            false,
        );
        self.raw = Some(raw);
        match result {
            Ok(text) => out.push(event.with_raw(text).into()),
            Err(denial) => self.block::<U>(&denial, out),
        }
        Ok(())
    }
}

impl Transform for GuardTransform {
    fn frame(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), BoxError> {
        if self.blocked {
            return Ok(());
        }
        match frame {
            Frame::Event(event) => self.event(event, out),
            comment @ Frame::Comment(_) => {
                out.push(comment);
                Ok(())
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), BoxError> {
        if self.blocked {
            return Ok(());
        }
        if let Err(denial) = self.flush::<Event>(&Ending::All, out) {
            self.block::<Event>(&denial, out);
        }
        Ok(())
    }
}

impl Transform<Line> for GuardTransform {
    fn frame(&mut self, line: Line, out: &mut Vec<Line>) -> Result<(), BoxError> {
        if self.blocked {
            return Ok(());
        }
        self.event(line, out)
    }

    fn finish(&mut self, out: &mut Vec<Line>) -> Result<(), BoxError> {
        if self.blocked {
            return Ok(());
        }
        if let Err(denial) = self.flush::<Line>(&Ending::All, out) {
            self.block::<Line>(&denial, out);
        }
        Ok(())
    }
}
impl fmt::Debug for GuardTransform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardTransform")
            .field("positions", &self.positions.len())
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}
#[cfg(test)]
mod tests {
    use agentgw_core::llm::Direction;

    use super::*;
    use crate::config::PromptGuardConfig;

    fn transform(yaml: &str) -> GuardTransform {
        let config: PromptGuardConfig = serde_saphyr::from_str(yaml).unwrap();
        GuardTransform::new(
            Arc::new(Guards::compile(&config.response, Direction::Response).unwrap()),
            None,
            None,
        )
    }

    const MASK: &str = "response:\n  - regex: {action: Mask, builtins: [CREDIT_CARD, EMAIL]}\n";

    fn run(transform: &mut GuardTransform, events: &[Event]) -> Vec<Event> {
        let mut out = Vec::new();
        for event in events {
            transform
                .frame(Frame::Event(event.clone()), &mut out)
                .unwrap();
        }
        transform.finish(&mut out).unwrap();
        out.into_iter()
            .map(|f| match f {
                Frame::Event(e) => e,
                Frame::Comment(c) => Event::data(c),
            })
            .collect()
    }

    fn json_event(value: Value) -> Event {
        Event::data(value.to_string())
    }

    #[test]
    fn a_final_delta_in_the_finishing_chunk_flushes_the_holdback() {
        let chunk = |text: &str, finish: Value| {
            json_event(
                json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}),
            )
        };
        let out = run(
            &mut transform(MASK),
            &[
                chunk("card 4111 1111 ", Value::Null),
                chunk("1111 1111", json!("stop")),
            ],
        );
        let texts: Vec<String> = out
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(&e.data).unwrap()["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(texts, ["card ", "<CREDIT_CARD>"]);
    }

    #[test]
    fn responses_api_deltas_and_done_texts_are_masked() {
        let delta = |text: &str| {
            json_event(json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": text}))
                .with_event("response.output_text.delta")
        };
        let done = json_event(
            json!({"type": "response.output_text.done", "output_index": 0, "content_index": 0,
                                     "text": "mail jo@example.com"}),
        )
        .with_event("response.output_text.done");
        let out = run(
            &mut transform(MASK),
            &[delta("mail jo@exa"), delta("mple.com"), done],
        );
        let kinds: Vec<&str> = out.iter().map(|e| e.event.as_deref().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done"
            ]
        );
        let json: Vec<Value> = out
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect();
        let streamed: String = json[..3]
            .iter()
            .map(|j| j["delta"].as_str().unwrap())
            .collect();
        assert_eq!(streamed, "mail <EMAIL>");
        assert_eq!(json[3]["text"], "mail <EMAIL>");
    }

    #[test]
    fn other_json_events_and_plain_data_are_masked_too() {
        let rpc = json_event(
            json!({"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": "jo@example.com"}]}}),
        );
        let out = run(
            &mut transform(MASK),
            &[
                rpc,
                Event::data("raw 4111 1111"),
                Event::data(" 1111 1111 end"),
            ],
        );
        let rpc: Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(rpc["result"]["content"][0]["text"], "<EMAIL>");
        let raw: String = out[1..].iter().map(|e| e.data.as_str()).collect();
        assert_eq!(raw, "raw <CREDIT_CARD> end");
    }

    /// Runs `events` and returns every output event's JSON.
    fn run_json(events: Vec<Value>) -> Vec<Value> {
        let events: Vec<Event> = events.into_iter().map(json_event).collect();
        run(&mut transform(MASK), &events)
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect()
    }

    /// The concatenation of `pointer` over `events`, skipping events without it.
    fn joined(events: &[Value], pointer: &str) -> String {
        events
            .iter()
            .filter_map(|e| e.pointer(pointer).and_then(Value::as_str))
            .collect()
    }

    /// Splits `text` into pieces of three characters.
    fn pieces(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        chars.chunks(3).map(|c| c.iter().collect()).collect()
    }

    const SECRET: &str = "card 4111 1111 1111 1111 and jo@example.com, bye";
    const MASKED: &str = "card <CREDIT_CARD> and <EMAIL>, bye";

    #[test]
    fn chat_reasoning_audio_and_tool_argument_deltas_are_masked_across_events() {
        for field in [
            "reasoning_content",
            "reasoning",
            "audio",
            "tool_calls",
            "content",
        ] {
            let mut events: Vec<Value> = pieces(SECRET)
                .iter()
                .map(|piece| {
                    let delta = match field {
                        "audio" => json!({"audio": {"id": "a", "transcript": piece}}),
                        "tool_calls" => {
                            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                        }
                        _ => json!({field: piece}),
                    };
                    json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]})
                })
                .collect();
            events.push(json!({"object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
            let out = run_json(events);
            let pointer = match field {
                "audio" => "/choices/0/delta/audio/transcript".to_owned(),
                "tool_calls" => "/choices/0/delta/tool_calls/0/function/arguments".to_owned(),
                _ => format!("/choices/0/delta/{field}"),
            };
            assert_eq!(joined(&out, &pointer), MASKED, "{field}");
            assert!(
                !serde_json::to_string(&out).unwrap().contains("1111"),
                "{field}"
            );
        }
    }

    #[test]
    fn anthropic_thinking_and_tool_input_deltas_are_masked_across_events() {
        for (kind, field) in [
            ("thinking_delta", "thinking"),
            ("input_json_delta", "partial_json"),
        ] {
            let mut events = vec![json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": ""}})];
            events.extend(pieces(SECRET).iter().map(|piece| {
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": kind, field: piece}})
            }));
            events.push(json!({"type": "content_block_stop", "index": 0}));
            let out = run_json(events);
            assert_eq!(joined(&out, &format!("/delta/{field}")), MASKED, "{kind}");
        }
    }

    #[test]
    fn responses_reasoning_audio_and_refusal_events_are_masked() {
        for (kind, done, done_field) in [
            (
                "response.reasoning_text.delta",
                "response.reasoning_text.done",
                Some("text"),
            ),
            (
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                Some("text"),
            ),
            (
                "response.refusal.delta",
                "response.refusal.done",
                Some("refusal"),
            ),
            (
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                Some("arguments"),
            ),
            (
                "response.audio.transcript.delta",
                "response.audio.transcript.done",
                None,
            ),
        ] {
            let mut events: Vec<Value> = pieces(SECRET)
                .iter()
                .map(|piece| {
                    json!({"type": kind, "output_index": 1, "content_index": 0,
                                    "summary_index": 0, "delta": piece})
                })
                .collect();
            let mut end =
                json!({"type": done, "output_index": 1, "content_index": 0, "summary_index": 0});
            if let Some(field) = done_field {
                end[field] = json!(SECRET);
            }
            events.push(end);
            let out = run_json(events);
            assert_eq!(joined(&out, "/delta"), MASKED, "{kind}");
            if let Some(field) = done_field {
                assert_eq!(out.last().unwrap()[field], MASKED, "{done}");
            }
            assert!(
                !serde_json::to_string(&out).unwrap().contains("1111"),
                "{kind}"
            );
        }
    }

    #[test]
    fn logprob_tokens_are_masked_across_events_with_consistent_bytes() {
        let mut events: Vec<Value> = pieces(SECRET)
            .iter()
            .map(|piece| {
                json!({"object": "chat.completion.chunk", "choices": [{"index": 0,
                    "delta": {"content": piece},
                    "logprobs": {"content": [{"token": piece, "logprob": -0.5, "bytes": piece.as_bytes(),
                        "top_logprobs": [{"token": piece, "logprob": -0.5, "bytes": piece.as_bytes()}]}]}}]})
            })
            .collect();
        events.push(json!({"object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]}));
        let out = run_json(events);
        assert_eq!(joined(&out, "/choices/0/delta/content"), MASKED);
        let mut tokens = String::new();
        for event in &out {
            for entry in event
                .pointer("/choices/0/logprobs/content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let token = entry["token"].as_str().unwrap();
                tokens.push_str(token);
                let bytes: Vec<u8> = entry["bytes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
                    .collect();
                assert_eq!(bytes, token.as_bytes());
            }
        }
        assert_eq!(tokens, MASKED);
        assert!(!serde_json::to_string(&out).unwrap().contains("1111"));
    }

    #[test]
    fn fields_beside_the_deltas_are_scanned() {
        let out = run_json(vec![
            json!({"object": "chat.completion.chunk", "model": "jo@example.com",
            "choices": [{"index": 0, "delta": {"content": "hi", "annotations": [{"note": "4111 1111 1111 1111"}]},
                         "finish_reason": "stop"}]}),
        ]);
        assert_eq!(out[0]["model"], "<EMAIL>");
        assert_eq!(
            out[0]["choices"][0]["delta"]["annotations"][0]["note"],
            "<CREDIT_CARD>"
        );
        assert_eq!(out[0]["choices"][0]["delta"]["content"], "hi");
        // A clean event is forwarded as it came.
        let clean = json!({"object": "chat.completion.chunk", "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]});
        let event = json_event(clean.clone());
        let out = run(&mut transform(MASK), std::slice::from_ref(&event));
        assert_eq!(out, [event]);
    }

    /// Runs JSON lines through the transform; returns the output bytes.
    fn run_lines(yaml: &str, lines: &[Line]) -> String {
        let mut t = transform(yaml);
        let mut out = Vec::new();
        for line in lines {
            Transform::<Line>::frame(&mut t, line.clone(), &mut out).unwrap();
        }
        Transform::<Line>::finish(&mut t, &mut out).unwrap();
        let mut bytes = bytes::BytesMut::new();
        for line in &out {
            line.encode(&mut bytes);
        }
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn ollama_lines_are_masked_across_lines() {
        for (field, pointer) in [("chat", "/message/content"), ("generate", "/response")] {
            let mut lines: Vec<Line> = pieces(SECRET)
                .iter()
                .map(|piece| {
                    let json = if field == "chat" {
                        json!({"model": "llama3", "message": {"role": "assistant", "content": piece}, "done": false})
                    } else {
                        json!({"model": "llama3", "response": piece, "done": false})
                    };
                    Line::new(json.to_string())
                })
                .collect();
            lines.push(Line::new(
                json!({"model": "llama3", "done": true, "eval_count": 9}).to_string(),
            ));
            let out = run_lines(MASK, &lines);
            let json: Vec<Value> = out
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(joined(&json, pointer), MASKED, "{field}");
            assert!(!out.contains("1111") && !out.contains("jo@"), "{out}");
            assert_eq!(
                json.last().unwrap()["done"],
                true,
                "the last line stays last"
            );
            assert_eq!(json.iter().filter(|j| j["done"] == true).count(), 1);
        }
    }

    #[test]
    fn plain_lines_are_masked_as_text_and_clean_lines_pass_untouched() {
        let lines = [
            Line::new("card 4111 1111 1111 1111"),
            Line::new(json!({"status": "ok"}).to_string()),
            Line::new(""),
            Line::new("mail jo@example.com"),
            Line::unterminated("bye"),
        ];
        let out = run_lines(MASK, &lines);
        assert_eq!(
            out,
            "card <CREDIT_CARD>\n{\"status\":\"ok\"}\n\nmail <EMAIL>\nbye"
        );
        // Lines nothing is masked in are forwarded byte for byte (spacing, `\r`).
        let clean = [
            Line::new("{\"status\":\"ok\",  \"n\":1}\r"),
            Line::new(""),
            Line::new("plain text"),
        ];
        assert_eq!(
            run_lines(MASK, &clean),
            "{\"status\":\"ok\",  \"n\":1}\r\n\nplain text\n"
        );
    }

    #[test]
    fn a_reject_cuts_a_line_stream_with_an_error_line() {
        let reject = "response:\n  - regex: {action: Reject, builtins: [EMAIL]}\n";
        let lines = [
            Line::new(json!({"response": "mail jo@exa", "done": false}).to_string()),
            Line::new(json!({"response": "mple.com", "done": false}).to_string()),
            Line::new(json!({"response": "after", "done": true}).to_string()),
        ];
        let out = run_lines(reject, &lines);
        assert!(!out.contains("jo@") && !out.contains("after"), "{out}");
        let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "EMAIL");
    }

    #[test]
    fn too_many_positions_fail_closed() {
        let mut t = transform(MASK);
        let mut out = Vec::new();
        let mut failed = false;
        for i in 0..=MAX_POSITIONS {
            let event = json_event(json!({"choices": [{"index": i, "delta": {"content": "x"}}]}));
            failed |= t.frame(Frame::Event(event), &mut out).is_err();
        }
        assert!(failed);
    }
}
