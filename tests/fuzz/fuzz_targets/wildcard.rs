//! The wildcard matcher against a naive reference: the first line of the
//! input is the pattern, the rest the text; both matchers must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waybill_core::rules::{Pattern, fold_char};

/// `*` any run, `?` one character, the rest literal, after folding each
/// character; by dynamic programming over (pattern, text) positions.
fn reference(pattern: &str, text: &str, fold: bool) -> bool {
    let f = |c: char| if fold { fold_char(c) } else { c };
    let p: Vec<char> = pattern.chars().map(f).collect();
    let t: Vec<char> = text.chars().map(f).collect();
    if p.is_empty() {
        // Case-insensitive patterns treat empty as `*`; exact-case ones match only "".
        return fold || t.is_empty();
    }
    // at[j]: the pattern so far matches t[..j].
    let mut at = vec![false; t.len() + 1];
    at[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            next[j] = match pc {
                '*' => at[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && at[j - 1],
                c => j > 0 && at[j - 1] && t[j - 1] == c,
            };
        }
        at = next;
    }
    at[t.len()]
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, text) = s.split_once('\n').unwrap_or((s, ""));
    for fold in [true, false] {
        let compiled = if fold {
            Pattern::new(pattern)
        } else {
            Pattern::case_sensitive(pattern)
        };
        assert_eq!(
            compiled.matches(text),
            reference(pattern, text, fold),
            "pattern {pattern:?} text {text:?} fold {fold}"
        );
    }
});
