//! What the events of LLM streams mean to a masker: which positions an event ends, which events
//! are increments, and how to release held-back text in an event shaped like the stream's own.

use agentgw_core::llm::{self, DeltaKey};
use serde_json::{Value, json};

use super::Template;

/// Which positions an event ends.
pub(super) enum Ending {
    None,
    All,
    Indexes(Vec<u32>),
}

impl Ending {
    pub(super) fn covers(&self, key: &DeltaKey) -> bool {
        match self {
            Ending::None => false,
            Ending::All => true,
            Ending::Indexes(indexes) => indexes.contains(&key.index),
        }
    }
}
/// Whether an event is an increment (and so a good template for releasing held text), as
/// opposed to the start of a content block or part that carries initial text.
pub(super) fn is_delta_kind(json: &Value) -> bool {
    !matches!(
        json.get("type").and_then(Value::as_str),
        Some(
            "content_block_start"
                | "response.content_part.added"
                | "response.reasoning_summary_part.added"
        )
    )
}

/// Which stream positions `json` ends: a choice's `finish_reason`, Anthropic's
/// `content_block_stop` and `message_delta`/`message_stop`, Responses' `*.done` and
/// terminal events.
pub(super) fn ending(json: &Value) -> Ending {
    let index = |key: &str| {
        json.get(key)
            .and_then(Value::as_u64)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    match json.get("type").and_then(Value::as_str) {
        Some("content_block_stop") => Ending::Indexes(vec![index("index")]),
        // The transcript has no output index; its position's index is 2^32 - 1 (see
        // `DeltaKey`).
        Some("response.audio.transcript.done") => Ending::Indexes(vec![u32::MAX]),
        Some(
            "message_delta"
            | "message_stop"
            | "error"
            | "response.completed"
            | "response.incomplete"
            | "response.failed",
        ) => Ending::All,
        Some(kind) if kind.starts_with("response.") && kind.ends_with(".done") => {
            Ending::Indexes(vec![index("output_index")])
        }
        Some(_) => Ending::None,
        // Ollama's last line.
        None if json.get("done") == Some(&Value::Bool(true)) => Ending::All,
        None => {
            let Some(choices) = json.get("choices").and_then(Value::as_array) else {
                return Ending::None;
            };
            let ended: Vec<u32> = choices
                .iter()
                .enumerate()
                .filter(|(_, c)| c.get("finish_reason").is_some_and(|r| !r.is_null()))
                .map(|(i, c)| {
                    c.get("index")
                        .and_then(Value::as_u64)
                        .map_or(i as u32, |n| u32::try_from(n).unwrap_or(u32::MAX))
                })
                .collect();
            if ended.is_empty() {
                Ending::None
            } else {
                Ending::Indexes(ended)
            }
        }
    }
}

/// An increment event releasing `text` at `key`, shaped like the position's last increment:
/// its event type and data.
pub(super) fn synthesize(
    template: Option<&Template>,
    key: DeltaKey,
    text: String,
) -> Option<(Option<String>, String)> {
    let template = template?;
    let from = |field: &str| template.json.get(field).cloned().unwrap_or(Value::Null);
    let mut json = match template.json.get("type").and_then(Value::as_str) {
        Some("content_block_start") => {
            let thinking = template
                .json
                .pointer("/content_block/type")
                .and_then(Value::as_str)
                == Some("thinking");
            let delta = if thinking {
                json!({"type": "thinking_delta", "thinking": ""})
            } else {
                json!({"type": "text_delta", "text": ""})
            };
            json!({"type": "content_block_delta", "index": key.index, "delta": delta})
        }
        Some("response.content_part.added") => {
            let kind = match template.json.pointer("/part/type").and_then(Value::as_str) {
                Some("refusal") => "response.refusal.delta",
                Some("reasoning_text") => "response.reasoning_text.delta",
                _ => "response.output_text.delta",
            };
            json!({
                "type": kind,
                "item_id": from("item_id"),
                "output_index": from("output_index"),
                "content_index": from("content_index"),
                "delta": "",
            })
        }
        Some("response.reasoning_summary_part.added") => json!({
            "type": "response.reasoning_summary_text.delta",
            "item_id": from("item_id"),
            "output_index": from("output_index"),
            "summary_index": from("summary_index"),
            "delta": "",
        }),
        _ => template.json.clone(),
    };
    let event_name = match json.get("type").and_then(Value::as_str) {
        Some(kind) if template.event.is_some() => Some(kind.to_owned()),
        _ => template.event.clone(),
    };
    let mut text = Some(text);
    llm::rewrite_deltas(&mut json, |k, _| {
        Some(if k == key {
            text.take().unwrap_or_default()
        } else {
            String::new()
        })
    });
    // Finishing fields of the template must not end the position early.
    if let Some(choices) = json.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            if let Some(reason) = choice.get_mut("finish_reason") {
                *reason = Value::Null;
            }
        }
    }
    // An Ollama template line must not end the stream either.
    if let Some(done) = json.get_mut("done")
        && done.is_boolean()
    {
        *done = Value::Bool(false);
    }
    let data = serde_json::to_string(&json).ok()?;
    Some((event_name, data))
}
