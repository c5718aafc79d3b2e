//! `agentgw_guard::StreamMasker`: masking text that arrives in pieces.
//!
//! Input: byte 0 is the number of cuts, two bytes per cut, then the text. For a raw set (every
//! builtin, a bounded custom pattern, phrases) and a normalizing set, pushing the text in the
//! fuzzer's pieces and finishing gives exactly `PatternSet::mask` of the whole text, and the
//! held-back text of the raw set never exceeds the longest possible match plus the look-ahead.
#![no_main]

use agentgw_guard::{Builtin, PatternSet};
use libfuzzer_sys::fuzz_target;

fn sets() -> &'static [PatternSet; 2] {
    static SETS: std::sync::OnceLock<[PatternSet; 2]> = std::sync::OnceLock::new();
    SETS.get_or_init(|| {
        let raw = Builtin::ALL
            .into_iter()
            .fold(PatternSet::builder(), |b, builtin| b.builtin(builtin))
            .pattern("account", r"\b[A-Z]{2}\d{6,10}\b")
            .phrase("topic", "internal roadmap")
            .streaming(true)
            .build()
            .expect("fuzz patterns compile");
        let normalized = PatternSet::builder()
            .builtin(Builtin::CreditCard)
            .builtin(Builtin::Email)
            .pattern("inj", r"ignore.{0,20}instructions")
            .phrase("prev", "previous")
            .phrase("fi", "fine")
            .normalize(true)
            .streaming(true)
            .build()
            .expect("fuzz patterns compile");
        [raw, normalized]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&ncuts, rest)) = data.split_first() else {
        return;
    };
    let ncuts = usize::from(ncuts % 16);
    if rest.len() < 2 * ncuts {
        return;
    }
    let (cut_bytes, text) = rest.split_at(2 * ncuts);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (text.len() + 1))
        .collect();
    cuts.sort_unstable();
    for set in sets() {
        let bound = if set.is_normalizing() {
            usize::MAX
        } else {
            set.max_match_len().expect("bounded") + 8
        };
        let mut masker = set.stream_masker().expect("bounded");
        let mut out = String::new();
        let mut last = 0;
        for &cut in &cuts {
            let mut cut = cut.max(last);
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            out += &masker.push(&text[last..cut]);
            assert!(
                masker.held() <= bound,
                "holdback {} > {bound}",
                masker.held()
            );
            last = cut;
        }
        out += &masker.push(&text[last..]);
        out += &masker.finish();
        assert_eq!(out, set.mask(text), "streamed and buffered masking differ");
    }
});
