//! `validation.classifier`: the texts of a definition scored with `agentgw-guard`'s offline
//! prompt-injection classifier.

use agentgw_guard::classifier::{Model, SCORE_HISTOGRAM, builtin};
use serde_json::Value;

use crate::comments::for_each_hidden;
use crate::config::DefinitionClassifierConfig;
use crate::error::Error;
use crate::field::for_each_string;

/// The `guard` label of the scores this crate records in [`SCORE_HISTOGRAM`].
const GUARD_LABEL: &str = "toolSecurity.validation";

/// A compiled `validation.classifier` block.
#[derive(Clone)]
pub(crate) struct DefinitionClassifier {
    model: &'static Model,
    threshold: f32,
}

impl std::fmt::Debug for DefinitionClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefinitionClassifier")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl DefinitionClassifier {
    /// The classifier of an enabled block at `path`; a threshold outside (0, 1] is an error.
    pub(crate) fn from_config(
        config: &DefinitionClassifierConfig,
        path: &str,
    ) -> Result<Option<Self>, Error> {
        if !config.enabled {
            return Ok(None);
        }
        let threshold = config
            .threshold
            .unwrap_or(DefinitionClassifierConfig::DEFAULT_THRESHOLD);
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(Error::invalid(
                format!("{path}.threshold"),
                format!("must be a number above 0 and at most 1, got {threshold}"),
            ));
        }
        Ok(Some(Self {
            model: builtin(),
            threshold: threshold as f32,
        }))
    }

    /// The highest score of a text of `value` when it reaches the threshold.
    pub(crate) fn flagged(&self, value: &Value) -> Option<f32> {
        let mut highest = 0.0_f32;
        for_each_scored_text(value, &mut |text| {
            let score = self.model.score(text);
            metrics::histogram!(SCORE_HISTOGRAM, "guard" => GUARD_LABEL).record(f64::from(score));
            highest = highest.max(score);
            highest < self.threshold
        });
        (highest >= self.threshold).then_some(highest)
    }
}

/// Calls `f` with each text of a definition a model reads as prose: the value itself when it
/// is a string (the `initialize` instructions), every `description`, `title` and
/// `instructions` at any depth, every string under `default`, `enum`, `examples` and `const`,
/// and, on their own, the contents of the comments and `<details>` blocks of these texts.
/// Names, types and other schema keywords are not prose and are left out. Stops when `f`
/// returns `false`; returns whether it never did.
pub(crate) fn for_each_scored_text<'a>(
    value: &'a Value,
    f: &mut impl FnMut(&'a str) -> bool,
) -> bool {
    match value {
        Value::String(text) => score_with_hidden(text, f),
        Value::Array(items) => items.iter().all(|item| walk(item, f)),
        Value::Object(_) => walk(value, f),
        _ => true,
    }
}

fn walk<'a>(value: &'a Value, f: &mut impl FnMut(&'a str) -> bool) -> bool {
    match value {
        Value::Object(map) => map.iter().all(|(key, child)| match (key.as_str(), child) {
            ("description" | "title" | "instructions", Value::String(text)) => {
                score_with_hidden(text, f)
            }
            ("default" | "enum" | "examples" | "const", _) => {
                for_each_string(child, false, &mut |text| score_with_hidden(text, f))
            }
            _ => walk(child, f),
        }),
        Value::Array(items) => items.iter().all(|item| walk(item, f)),
        _ => true,
    }
}

fn score_with_hidden<'a>(text: &'a str, f: &mut impl FnMut(&'a str) -> bool) -> bool {
    if text.trim().is_empty() {
        return true;
    }
    if !f(text) {
        return false;
    }
    let mut go_on = true;
    for_each_hidden(text, &mut |content, _| {
        if go_on && !content.trim().is_empty() {
            go_on = f(content);
        }
    });
    go_on
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prose_is_scored_names_and_types_are_not() {
        let tool = json!({
            "name": "search_code", "title": "Search code",
            "description": "Search code. <!-- hidden part -->",
            "inputSchema": {"type": "object", "properties": {
                "query": {"type": "string", "description": "The query"},
                "filter": {"type": "object", "properties": {
                    "lang": {"type": "string", "enum": ["rust", "go"], "description": "Language"}}},
                "mode": {"type": "string", "default": "fast"}}}
        });
        let mut texts = Vec::new();
        assert!(for_each_scored_text(&tool, &mut |t| {
            texts.push(t.to_owned());
            true
        }));
        texts.sort();
        assert_eq!(
            texts,
            [
                " hidden part ",
                "Language",
                "Search code",
                "Search code. <!-- hidden part -->",
                "The query",
                "fast",
                "go",
                "rust"
            ]
        );
        let mut seen = 0;
        assert!(!for_each_scored_text(&tool, &mut |_| {
            seen += 1;
            false
        }));
        assert_eq!(seen, 1, "stops at the first `false`");
        let instructions = json!("Use the search tool first.");
        let mut texts = Vec::new();
        for_each_scored_text(&instructions, &mut |t| {
            texts.push(t);
            true
        });
        assert_eq!(texts, ["Use the search tool first."]);
    }

    #[test]
    fn thresholds_are_checked() {
        let config = DefinitionClassifierConfig::default().threshold(1.5);
        let error =
            DefinitionClassifier::from_config(&config, "validation.classifier").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("validation.classifier.threshold: "),
            "{error}"
        );
        let off = DefinitionClassifierConfig::default().enabled(false);
        assert!(
            DefinitionClassifier::from_config(&off, "v")
                .unwrap()
                .is_none()
        );
    }
}
