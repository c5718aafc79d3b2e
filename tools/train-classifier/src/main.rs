//! `train-classifier`: regenerates agentgw-guard's built-in prompt-injection model and prints
//! its leave-one-source-out figures.
//!
//! ```text
//! cargo run -p train-classifier --release -- \
//!     --data ../shared/data/prompt-injection/train.jsonl \
//!     --data tools/train-classifier/data/cyberseceval-english.jsonl \
//!     --data tools/train-classifier/data/cyberseceval-multilingual.jsonl \
//!     --data tools/train-classifier/data/fabric-patterns.jsonl \
//!     --data tools/train-classifier/data/xquad-multilingual.jsonl \
//!     --data tools/train-classifier/data/awesome-chatgpt-prompts-zh.jsonl \
//!     --data tools/train-classifier/data/bipia.jsonl \
//!     --data tools/train-classifier/data/quiet-exfiltration.jsonl \
//!     --holdout tools/train-classifier/data/bipia-text-attacks.jsonl \
//!     --holdout tools/train-classifier/data/quiet-exfiltration-multilingual.jsonl \
//!     --holdout tools/train-classifier/data/garak-multilingual.jsonl \
//!     --cue-dropout 0.3 --cue-head-bits 12 \
//!     --out agentgw-guard/src/classifier/model.bin [--eval loso|lolo]
//! ```
//!
//! Every run first scores each source group with a model trained on the other groups, and
//! shifts the final model's bias so that the default threshold 0.85 sits where those
//! held-out scores have a 3% false-positive rate. With `--cue-head-bits`, a cue head (a linear
//! model over the cue features alone) is fitted and held out the same way; each head is
//! calibrated on its own held-out scores, then the higher of the two is calibrated again, and
//! the shifts are folded into the heads' biases. `--eval loso` prints the figures as
//! Markdown tables (per held-out group, per category, threshold trade-off).

use std::collections::BTreeMap;
use std::process::ExitCode;

use agentgw_guard::classifier::features::FeatureSet;
use agentgw_guard::classifier::{Model, sigmoid};
use clap::Parser;
use train_classifier::{
    Options, Row, Sparse, cue_head_examples, cue_head_scorer, examples, leave_one_language_out,
    leave_one_language_out_with, leave_one_source_out, leave_one_source_out_with, rate, read_rows,
    roc_auc, shift_bias, threshold_at_fpr, train_rows,
};

/// The threshold the default configuration uses.
const DEFAULT_THRESHOLD: f32 = 0.85;

#[derive(Debug, Parser)]
#[command(about = "Train and evaluate agentgw-guard's prompt-injection classifier")]
struct Args {
    /// The labelled texts (JSON lines: text, label, source, category, optional language);
    /// repeat for several files.
    #[arg(long, required_unless_present = "model")]
    data: Vec<String>,
    /// Score the `--probe` texts with this model file (a `model.bin`) and exit, training
    /// nothing.
    #[arg(long)]
    model: Option<String>,
    /// Where to write the model (agentgw-guard/src/classifier/model.bin).
    #[arg(long)]
    out: Option<String>,
    /// `loso`: print leave-one-source-out figures (and per language); `lolo`: also
    /// leave-one-language-out figures of the rows with a language.
    #[arg(long)]
    eval: Option<String>,
    /// Further labelled texts scored by the final model only, never trained on.
    #[arg(long)]
    holdout: Vec<String>,
    /// A text to score with the final model (its score is printed); repeat for several.
    #[arg(long)]
    probe: Vec<String>,
    /// Write each row's held-out scores (calibrated; `lolo` with `--eval lolo`) as JSON lines,
    /// with its group, category, label and language, for further analysis.
    #[arg(long)]
    scores_out: Option<String>,
    /// Hash bits.
    #[arg(long, default_value_t = Options::default().bits)]
    bits: u8,
    /// Passes over the data.
    #[arg(long, default_value_t = Options::default().epochs)]
    epochs: u32,
    /// AdaGrad learning rate.
    #[arg(long, default_value_t = Options::default().learning_rate)]
    learning_rate: f32,
    /// L2 regularization.
    #[arg(long, default_value_t = Options::default().l2)]
    l2: f32,
    /// Source balance exponent (0: rows weigh the same; 1: sources weigh the same).
    #[arg(long, default_value_t = Options::default().source_balance)]
    source_balance: f32,
    /// Window length in tokens.
    #[arg(long, default_value_t = Options::default().window)]
    window: u32,
    /// Feature families: any of `u` (unigrams), `b` (bigrams), `c` (character n-grams), `k`
    /// (multilingual instruction-override cues).
    #[arg(long, default_value = "ubck")]
    features: String,
    /// Train on each window of a benign text as a negative of its own (measured worse).
    #[arg(long)]
    benign_windows: bool,
    /// Train long attacks on their best-scoring window after the first pass.
    #[arg(long)]
    attack_windows: bool,
    /// Train every long text on its best-scoring window after the first pass.
    #[arg(long)]
    max_windows: bool,
    /// How much more benign persona and system prompts weigh than other benign rows.
    #[arg(long, default_value_t = Options::default().hard_negative_weight)]
    hard_negative_weight: f32,
    /// The shuffling seed.
    #[arg(long, default_value_t = Options::default().seed)]
    seed: u64,
    /// Share of training steps on a text's cues alone (simulates unseen languages).
    #[arg(long, default_value_t = Options::default().cue_dropout)]
    cue_dropout: f32,
    /// Hidden units of a network head (0: linear model only).
    #[arg(long, default_value_t = 0)]
    hidden: usize,
    /// Embedding dimension of the network head.
    #[arg(long, default_value_t = Options::default().dim)]
    dim: usize,
    /// Initial embedding scale.
    #[arg(long, default_value_t = Options::default().embed_init)]
    embed_init: f32,
    /// Drop the linear term next to the network.
    #[arg(long)]
    no_wide: bool,
    /// Learning rate of the network's weights.
    #[arg(long, default_value_t = Options::default().deep_learning_rate)]
    deep_learning_rate: f32,
    /// Hash bits of a cue head: a second linear model over the cue features alone, whose
    /// logit a window takes when it is the higher (0: no cue head).
    #[arg(long, default_value_t = 0)]
    cue_head_bits: u8,
    /// The held-out false-positive rate the default threshold 0.85 is calibrated to.
    #[arg(long, default_value_t = 0.03)]
    calibrate_fpr: f32,
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-7, 1.0 - 1e-7);
    (p / (1.0 - p)).ln()
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("train-classifier: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if let Some(path) = &args.model {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let model = Model::from_bytes(&bytes).map_err(|e| format!("{path}: {e}"))?;
        for text in &args.probe {
            println!("probe {:.3}: {text}", model.score(text));
        }
        return Ok(());
    }
    let mut features = FeatureSet::from_bits(0).expect("empty set");
    for c in args.features.chars() {
        features = features.union(match c {
            'u' => FeatureSet::UNIGRAMS,
            'b' => FeatureSet::BIGRAMS,
            'c' => FeatureSet::CHAR_NGRAMS,
            'k' => FeatureSet::CUES,
            other => return Err(format!("--features: unknown family `{other}`")),
        });
    }
    let options = Options {
        bits: args.bits,
        features,
        window: args.window,
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        l2: args.l2,
        source_balance: args.source_balance,
        benign_windows: args.benign_windows,
        attack_windows: args.attack_windows,
        max_windows: args.max_windows,
        hard_negative_weight: args.hard_negative_weight,
        hidden: args.hidden,
        cue_dropout: args.cue_dropout,
        seed: args.seed,
        dim: args.dim,
        embed_init: args.embed_init,
        wide: !args.no_wide,
        deep_learning_rate: args.deep_learning_rate,
    };
    let mut rows = Vec::new();
    for path in &args.data {
        let data = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        rows.extend(read_rows(&data).map_err(|e| format!("{path}: {e}"))?);
    }
    let vectors = examples(&rows, &options);
    if args.cue_head_bits > 0 && !(8..=24).contains(&args.cue_head_bits) {
        return Err("--cue-head-bits: 0, or 8 to 24".into());
    }
    if args.cue_head_bits > 0 && options.hidden > 0 {
        return Err("--cue-head-bits and --hidden do not combine".into());
    }
    // The cue head's training options and examples.
    let cue_head = (args.cue_head_bits > 0).then(|| {
        let cue_options = Options {
            bits: args.cue_head_bits,
            features: FeatureSet::CUES,
            cue_dropout: 0.0,
            ..options.clone()
        };
        let examples = cue_head_examples(&rows, &options, args.cue_head_bits);
        (cue_options, examples)
    });
    let fit_cue_head = |o: &Options| {
        let o = o.clone();
        let main = options.clone();
        move |r: &[&Row], v: &[&Vec<Sparse>]| -> Box<dyn Fn(&str) -> f32> {
            Box::new(cue_head_scorer(train_rows(r, v, &o), &main))
        }
    };

    // Each head is calibrated on its held-out scores, then the higher of the two calibrated
    // logits is calibrated again: the shipped model folds the shifts into the heads' biases.
    let calibrate = |raw: &[f32]| -> f32 {
        let benign: Vec<f32> = rows
            .iter()
            .zip(raw)
            .filter(|(r, _)| !r.is_attack())
            .map(|(_, s)| *s)
            .collect();
        logit(DEFAULT_THRESHOLD) - logit(threshold_at_fpr(&benign, args.calibrate_fpr))
    };
    let main_raw = leave_one_source_out(&rows, &vectors, &options);
    let main_shift = calibrate(&main_raw);
    let cue_raw = cue_head
        .as_ref()
        .map(|(o, v)| leave_one_source_out_with(&rows, v, fit_cue_head(o)));
    let cue_shift = cue_raw.as_deref().map_or(0.0, calibrate);
    let combine = |main: &[f32], cue: Option<&[f32]>| -> Vec<f32> {
        main.iter()
            .enumerate()
            .map(|(i, &m)| {
                let m = logit(m) + main_shift;
                sigmoid(cue.map_or(m, |c| m.max(logit(c[i]) + cue_shift)))
            })
            .collect()
    };
    let raw = combine(&main_raw, cue_raw.as_deref());
    let shift = calibrate(&raw);
    let scores: Vec<f32> = raw.iter().map(|&s| sigmoid(logit(s) + shift)).collect();

    let mut lolo_scores = None;
    if let Some(mode) = &args.eval {
        if mode != "loso" && mode != "lolo" {
            return Err(format!(
                "--eval: unknown mode `{mode}` (expected `loso` or `lolo`)"
            ));
        }
        print_loso(&rows, &scores);
        print_languages(
            "Per language, leave-one-source-out (each row scored by a model trained without its source group)",
            &rows,
            &scores,
        );
        if mode == "lolo" {
            let main_lolo = leave_one_language_out(&rows, &vectors, &options);
            let cue_lolo = cue_head
                .as_ref()
                .map(|(o, v)| leave_one_language_out_with(&rows, v, fit_cue_head(o)));
            let lolo: Vec<f32> = combine(&main_lolo, cue_lolo.as_deref())
                .iter()
                .map(|&s| sigmoid(logit(s) + shift))
                .collect();
            print_languages(
                "Per language, leave-one-language-out (the language scored is never in training)",
                &rows,
                &lolo,
            );
            lolo_scores = Some(lolo);
        }
    }
    if let Some(path) = &args.scores_out {
        let mut out = String::new();
        for (i, row) in rows.iter().enumerate() {
            let line = serde_json::json!({
                "group": row.group(),
                "category": row.category,
                "attack": row.is_attack(),
                "language": row.language,
                "loso": scores[i],
                "lolo": lolo_scores.as_ref().map(|l| l[i]).filter(|s| !s.is_nan()),
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        std::fs::write(path, out).map_err(|e| format!("{path}: {e}"))?;
    }

    let holdouts: Vec<(String, Vec<Row>)> = args
        .holdout
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            Ok((
                path.clone(),
                read_rows(&text).map_err(|e| format!("{path}: {e}"))?,
            ))
        })
        .collect::<Result<_, String>>()?;

    let final_model = args.out.is_some() || !holdouts.is_empty() || !args.probe.is_empty();
    if final_model && options.hidden > 0 {
        return Err(
            "--hidden is an evaluation-only experiment: drop --out, --holdout and --probe".into(),
        );
    }
    if final_model {
        let all: Vec<&Row> = rows.iter().collect();
        let all_vectors: Vec<_> = vectors.iter().collect();
        let mut model = shift_bias(train_rows(&all, &all_vectors, &options), main_shift + shift);
        if let Some((o, v)) = &cue_head {
            let all_cue_vectors: Vec<_> = v.iter().collect();
            let head = shift_bias(train_rows(&all, &all_cue_vectors, o), cue_shift + shift);
            model = model.with_cue_head(head.into_cue_head());
        }
        for (path, rows) in &holdouts {
            print_holdout(path, rows, |text| model.score(text));
        }
        for text in &args.probe {
            println!("probe {:.3}: {text}", model.score(text));
        }
        if let Some(out) = &args.out {
            let bytes = model.to_bytes();
            std::fs::write(out, &bytes).map_err(|e| format!("{out}: {e}"))?;
            eprintln!(
                "wrote {out}: {} bytes, fnv64 {:016x}",
                bytes.len(),
                bytes
                    .iter()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b))
                        .wrapping_mul(0x100_0000_01b3))
            );
        }
    }
    Ok(())
}

fn split(rows: &[&Row], scores: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut attacks = Vec::new();
    let mut benign = Vec::new();
    for (row, &s) in rows.iter().zip(scores) {
        if row.is_attack() {
            attacks.push(s);
        } else {
            benign.push(s);
        }
    }
    (attacks, benign)
}

fn auc(x: f32) -> String {
    if x.is_nan() {
        "–".to_owned()
    } else {
        format!("{x:.3}")
    }
}

fn pct(x: f32) -> String {
    if x.is_nan() {
        "–".to_owned()
    } else {
        format!("{:.1}%", x * 100.0)
    }
}

fn print_loso(rows: &[Row], scores: &[f32]) {
    let all: Vec<&Row> = rows.iter().collect();
    let (attacks, benign) = split(&all, scores);
    let t = DEFAULT_THRESHOLD;

    println!("### Leave-one-source-out, per held-out source group\n");
    println!(
        "Each group scored by a model trained on the other groups. AUC: the group's attacks \
         against its benign texts; a group with one class only is ranked against the held-out \
         scores of the other class from every group. Threshold {t}.\n"
    );
    println!("| held-out group | attacks | benign | ROC AUC | TPR | FPR |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        groups.entry(row.group()).or_default().push(i);
    }
    let mut aucs = Vec::new();
    for (group, idx) in &groups {
        let g_rows: Vec<&Row> = idx.iter().map(|&i| &rows[i]).collect();
        let g_scores: Vec<f32> = idx.iter().map(|&i| scores[i]).collect();
        let (ga, gb) = split(&g_rows, &g_scores);
        let auc = match (ga.is_empty(), gb.is_empty()) {
            (false, false) => roc_auc(&ga, &gb),
            (false, true) => roc_auc(&ga, &benign),
            (true, false) => roc_auc(&attacks, &gb),
            (true, true) => f32::NAN,
        };
        aucs.push(auc);
        println!(
            "| {group} | {} | {} | {:.3} | {} | {} |",
            ga.len(),
            gb.len(),
            auc,
            pct(rate(&ga, t)),
            pct(rate(&gb, t))
        );
    }
    let mean_auc = aucs.iter().sum::<f32>() / aucs.len() as f32;
    println!(
        "| **all (pooled)** | {} | {} | {:.3} | {} | {} |",
        attacks.len(),
        benign.len(),
        roc_auc(&attacks, &benign),
        pct(rate(&attacks, t)),
        pct(rate(&benign, t))
    );
    println!("\nMean ROC AUC over held-out groups: {mean_auc:.3}.\n");

    println!("### Per category (held-out scores, threshold {t})\n");
    println!("| category | label | rows | flagged |");
    println!("|---|---|---:|---:|");
    let mut cats: BTreeMap<(&str, &str), Vec<f32>> = BTreeMap::new();
    for (row, &s) in rows.iter().zip(scores) {
        cats.entry((&row.label, &row.category)).or_default().push(s);
    }
    for ((label, cat), s) in &cats {
        println!("| {cat} | {label} | {} | {} |", s.len(), pct(rate(s, t)));
    }

    let cat_scores = |name: &str| -> Vec<f32> {
        rows.iter()
            .zip(scores)
            .filter(|(r, _)| r.category == name)
            .map(|(_, s)| *s)
            .collect()
    };
    let trigger = cat_scores("benign_trigger_word");
    let roleplay = cat_scores("roleplay_system_prompt");
    println!("\n### Threshold trade-off (held-out scores, all groups pooled)\n");
    println!("| threshold | TPR | FPR | FPR benign_trigger_word | FPR roleplay_system_prompt |");
    println!("|---:|---:|---:|---:|---:|");
    for t in [0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98] {
        println!(
            "| {t} | {} | {} | {} | {} |",
            pct(rate(&attacks, t)),
            pct(rate(&benign, t)),
            pct(rate(&trigger, t)),
            pct(rate(&roleplay, t))
        );
    }
    println!();
}

fn print_holdout(path: &str, rows: &[Row], score: impl Fn(&str) -> f32) {
    println!("### Held-out set `{path}` (final model, threshold {DEFAULT_THRESHOLD})\n");
    println!("| source | category | label | rows | flagged |");
    println!("|---|---|---|---:|---:|");
    let mut groups: BTreeMap<(&str, &str, &str), Vec<f32>> = BTreeMap::new();
    for row in rows {
        groups
            .entry((&row.source, &row.category, &row.label))
            .or_default()
            .push(score(&row.text));
    }
    for ((source, cat, label), s) in &groups {
        println!(
            "| {source} | {cat} | {label} | {} | {} |",
            s.len(),
            pct(rate(s, DEFAULT_THRESHOLD))
        );
    }
    println!();
}

fn print_languages(title: &str, rows: &[Row], scores: &[f32]) {
    let mut languages: BTreeMap<&str, (Vec<f32>, Vec<f32>)> = BTreeMap::new();
    for (row, &s) in rows.iter().zip(scores) {
        let Some(language) = row.language.as_deref() else {
            continue;
        };
        let entry = languages.entry(language).or_default();
        if row.is_attack() {
            entry.0.push(s);
        } else {
            entry.1.push(s);
        }
    }
    if languages.is_empty() {
        return;
    }
    println!("### {title} (threshold {DEFAULT_THRESHOLD})\n");
    println!("| language | attacks | TPR | benign | FPR | ROC AUC |");
    println!("|---|---:|---:|---:|---:|---:|");
    let (mut at_70, mut with_attacks) = (0, 0);
    for (language, (attacks, benign)) in &languages {
        let tpr = rate(attacks, DEFAULT_THRESHOLD);
        at_70 += usize::from(tpr >= 0.70);
        with_attacks += usize::from(!attacks.is_empty());
        println!(
            "| {language} | {} | {} | {} | {} | {} |",
            attacks.len(),
            pct(tpr),
            benign.len(),
            pct(rate(benign, DEFAULT_THRESHOLD)),
            auc(roc_auc(attacks, benign))
        );
    }
    println!("\nLanguages with TPR >= 70%: {at_70} of {with_attacks} with attacks.\n");
}
