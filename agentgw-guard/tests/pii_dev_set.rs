//! Precision and recall of the builtin recognizers on the shared PII dev set.
//!
//! Reads `shared/data/pii/dev.jsonl` (2000 labeled lines: chat messages, JSON, CSV, logs; see
//! `shared/data/README.md`), scores every builtin by exact span and prints the numbers. Run
//! with `--nocapture` to see them.

use std::collections::BTreeMap;

use agentgw_guard::{Builtin, PatternSet, RuleKind};
use serde_json::Value;

const DEV_SET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/pii/dev.jsonl"
);

/// The floor each label must reach, precision and recall (the target is 0.995).
const FLOOR: f64 = 0.995;

fn load() -> Vec<Value> {
    let text = std::fs::read_to_string(DEV_SET).unwrap_or_else(|e| {
        panic!(
            "the PII dev set is missing at {DEV_SET} ({e}); it lives in the shared data \
             directory beside the checkout (shared/data/pii/dev.jsonl)"
        )
    });
    text.lines()
        .map(|line| serde_json::from_str(line).expect("dev set lines are JSON"))
        .collect()
}

fn all_builtins() -> PatternSet {
    Builtin::ALL
        .into_iter()
        .fold(PatternSet::builder(), |b, builtin| b.builtin(builtin))
        .build()
        .unwrap()
}

#[derive(Default, Debug)]
struct Score {
    gold: usize,
    predicted: usize,
    correct: usize,
}

impl Score {
    fn precision(&self) -> f64 {
        if self.predicted == 0 {
            1.0
        } else {
            self.correct as f64 / self.predicted as f64
        }
    }

    fn recall(&self) -> f64 {
        if self.gold == 0 {
            1.0
        } else {
            self.correct as f64 / self.gold as f64
        }
    }
}

#[test]
fn builtins_reach_the_precision_and_recall_floor_and_report_no_decoy() {
    let rows = load();
    let set = all_builtins();
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    let mut decoys_reported = Vec::new();
    let mut misses = Vec::new();
    let mut false_positives = Vec::new();

    for row in &rows {
        let text = row["text"].as_str().unwrap();
        let gold: Vec<(String, usize, usize)> = row["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["label"].as_str().unwrap().to_owned(),
                    s["byte_start"].as_u64().unwrap() as usize,
                    s["byte_end"].as_u64().unwrap() as usize,
                )
            })
            .collect();
        let predicted: Vec<(String, usize, usize)> = set
            .find_iter(text)
            .map(|m| {
                let RuleKind::Builtin(builtin) = set.rule(m.rule()).kind() else {
                    unreachable!("only builtins in this set")
                };
                (builtin.name().to_owned(), m.start(), m.end())
            })
            .collect();
        for (label, start, end) in &gold {
            let score = scores.entry(label.clone()).or_default();
            score.gold += 1;
            if predicted.contains(&(label.clone(), *start, *end)) {
                score.correct += 1;
            } else {
                misses.push(format!("{label} {:?} in {text:?}", &text[*start..*end]));
            }
        }
        for (label, start, end) in &predicted {
            scores.entry(label.clone()).or_default().predicted += 1;
            if !gold.contains(&(label.clone(), *start, *end)) {
                false_positives.push(format!("{label} {:?} in {text:?}", &text[*start..*end]));
            }
            for decoy in row["decoys"].as_array().unwrap() {
                let (ds, de) = (
                    decoy["byte_start"].as_u64().unwrap() as usize,
                    decoy["byte_end"].as_u64().unwrap() as usize,
                );
                if *start < de && ds < *end {
                    decoys_reported.push(format!(
                        "{label} {:?} ({}) in {text:?}",
                        &text[*start..*end],
                        decoy["category"]
                    ));
                }
            }
        }
    }

    println!("PII dev set ({} lines), exact spans:", rows.len());
    println!(
        "{:<14} {:>6} {:>9} {:>9} {:>9}",
        "label", "gold", "predicted", "precision", "recall"
    );
    for (label, score) in &scores {
        println!(
            "{label:<14} {:>6} {:>9} {:>9.4} {:>9.4}",
            score.gold,
            score.predicted,
            score.precision(),
            score.recall()
        );
    }
    for miss in misses.iter().take(20) {
        println!("missed: {miss}");
    }
    for fp in false_positives.iter().take(20) {
        println!("false positive: {fp}");
    }

    assert!(
        decoys_reported.is_empty(),
        "decoys reported: {decoys_reported:#?}"
    );
    for (label, score) in &scores {
        assert!(
            score.precision() >= FLOOR && score.recall() >= FLOOR,
            "{label}: precision {:.4}, recall {:.4} below {FLOOR}",
            score.precision(),
            score.recall()
        );
    }
    assert_eq!(scores.len(), 5, "every label is scored");
}

#[test]
fn streaming_masks_the_dev_set_exactly_like_buffered_masking() {
    let rows = load();
    let set = Builtin::ALL
        .into_iter()
        .fold(PatternSet::builder().streaming(true), |b, builtin| {
            b.builtin(builtin)
        })
        .build()
        .unwrap();
    let mut seed = 0x9e37_79b9_u32;
    for row in &rows {
        let text = row["text"].as_str().unwrap();
        let mut masker = set.stream_masker().unwrap();
        let mut out = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            // Pieces of 1 to 8 bytes, like the deltas of a model.
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let mut cut = (1 + seed as usize % 8).min(rest.len());
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            out += &masker.push(&rest[..cut]);
            rest = &rest[cut..];
        }
        out += &masker.finish();
        assert_eq!(out, set.mask(text), "{text:?}");
    }
}
