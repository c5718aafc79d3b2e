//! `agentgw_guard::classifier`: the built-in prompt-injection model on arbitrary text.
//!
//! For any UTF-8 input: scoring never panics, the score is a probability (finite, in [0, 1])
//! and agrees with the logit, and scoring is deterministic.
#![no_main]

use agentgw_guard::classifier::{builtin, sigmoid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let model = builtin();
    let score = model.score(text);
    assert!(score.is_finite() && (0.0..=1.0).contains(&score), "{score}");
    assert_eq!(score, sigmoid(model.logit(text)));
    assert_eq!(model.score(text), score);
});
