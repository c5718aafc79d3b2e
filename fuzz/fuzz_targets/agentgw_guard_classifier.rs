//! `agentgw_guard::classifier`: the built-in prompt-injection model on arbitrary text, and the
//! model format on arbitrary bytes.
//!
//! For any UTF-8 input: scoring never panics, the score is a probability (finite, in [0, 1])
//! and agrees with the logit, and scoring is deterministic; the built-in model (a main head and
//! a cue head) scores at least what its main head alone scores. For any bytes: reading them as
//! a model never panics, and a model read back from its own bytes is the same model.
#![no_main]

use std::sync::LazyLock;

use agentgw_guard::classifier::{Model, builtin, sigmoid};
use libfuzzer_sys::fuzz_target;

/// The built-in model without its cue head: its version-2 bytes cut before the cue head, with
/// the version-1 magic.
static MAIN_HEAD: LazyLock<Model> = LazyLock::new(|| {
    let model = builtin();
    let mut bytes = model.to_bytes();
    bytes.truncate(24 + (2 << model.bits()));
    bytes[7] = 1;
    Model::from_bytes(&bytes).expect("the main head alone is a version-1 model")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = Model::from_bytes(data) {
        assert_eq!(Model::from_bytes(&model.to_bytes()).as_ref(), Ok(&model));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let model = builtin();
    let score = model.score(text);
    assert!(score.is_finite() && (0.0..=1.0).contains(&score), "{score}");
    assert_eq!(score, sigmoid(model.logit(text)));
    assert_eq!(model.score(text), score);
    assert!(model.logit(text) >= MAIN_HEAD.logit(text));
});
