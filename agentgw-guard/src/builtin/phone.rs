//! Phone numbers: E.164 forms, NANP, national numbers with a trunk prefix, bare ten digits.

use super::tables::{COUNTRY_CODES, NANP_AREA_CODES};

/// `+CC` then digit groups with optional single separators and `(0)` trunk markers.
pub(super) const INTERNATIONAL: &str =
    r"\b{start-half}\+[1-9][0-9]{0,2}(?:[ .\-]?(?:\([0-9]{1,5}\)|[0-9]{1,12})){1,6}\b{end-half}";
/// `(NPA) NXX-XXXX`, `NPA-NXX-XXXX`, `NPA.NXX.XXXX`, `NPA NXX XXXX`, with an optional `1-`.
pub(super) const NANP: &str = r"\b{start-half}(?:1[ .\-]?)?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}\b{end-half}";
/// National numbers starting with the trunk prefix 0: `(0118) 496 0850`, `0191 4960645`,
/// `080-3698-0270`, `01164960883`.
pub(super) const TRUNK: &str = r"\b{start-half}(?:\(0[1-9][0-9]{0,3}\) ?[0-9]{2,8}(?:[ .\-][0-9]{2,4}){0,3}|0[1-9][0-9]{0,4}(?:[ .\-][0-9]{2,8}){1,4}|0[1-9][0-9]{7,9})\b{end-half}";
/// Ten bare digits.
pub(super) const TEN: &str = r"\b{start-half}[0-9]{10}\b{end-half}";

/// Validates an international number, dropping trailing digit groups that make it too long
/// (`+1 202 555 0147 12 items`).
pub(super) fn international(hay: &str, start: usize, mut end: usize) -> Option<(usize, usize)> {
    loop {
        let value = &hay[start..end];
        if e164(&international_digits(value)) {
            return Some((start, end));
        }
        let cut = value.rfind([' ', '.', '-'])?;
        // Keep at least the country code and one group.
        if !value[..cut].contains([' ', '.', '-']) && value[..cut].len() <= 4 {
            return None;
        }
        end = start + cut;
        while hay[start..end].ends_with([' ', '.', '-']) {
            end -= 1;
        }
    }
}

/// The digits of `+44 (0)20 ...` without the `(0)` trunk marker.
fn international_digits(value: &str) -> Vec<u8> {
    value
        .replace("(0)", "")
        .bytes()
        .filter(u8::is_ascii_digit)
        .collect()
}

/// Whether `d` (digits after `+`) is a country code followed by a national number of a length
/// that country uses.
fn e164(d: &[u8]) -> bool {
    if !(7..=15).contains(&d.len()) {
        return false;
    }
    // Country codes are prefix-free: at most one of the three prefixes is a code.
    (1..=3).any(|cc_len| {
        let cc = number(&d[..cc_len]) as u16;
        let Ok(i) = COUNTRY_CODES.binary_search_by_key(&cc, |&(code, _)| code) else {
            return false;
        };
        let national = &d[cc_len..];
        if cc == 1 {
            return nanp(national);
        }
        national.len() < 32 && COUNTRY_CODES[i].1 & (1 << national.len()) != 0
    })
}

fn number(d: &[u8]) -> u32 {
    d.iter().fold(0, |acc, &b| acc * 10 + u32::from(b - b'0'))
}

/// A ten-digit NANP number: area code in service, exchange `[2-9]XX`. (`N11` exchanges are
/// valid in libphonenumber's plan and do occur.)
pub(super) fn nanp(d: &[u8]) -> bool {
    if d.len() != 10 {
        return false;
    }
    let area = number(&d[..3]) as usize;
    let in_service = NANP_AREA_CODES[area / 64] & (1 << (area % 64)) != 0;
    in_service && d[3] >= b'2'
}

/// A formatted NANP number (with an optional leading `1`).
pub(super) fn nanp_formatted(value: &str) -> bool {
    let d: Vec<u8> = value.bytes().filter(u8::is_ascii_digit).collect();
    match d.len() {
        10 => nanp(&d),
        11 => d[0] == b'1' && nanp(&d[1..]),
        _ => false,
    }
}

/// A national number with trunk prefix 0 (9 to 11 digits). Shapes that are other numbers are
/// refused: `07291-1413` (ZIP+4), `015-00-6285` (SSN), `032-976-201` (SIN), dates; nine bare
/// digits need a phone keyword before them.
pub(super) fn trunk(value: &str, context: impl FnOnce() -> bool) -> bool {
    let groups: Vec<usize> = value
        .split([' ', '.', '-', '(', ')'])
        .filter(|g| !g.is_empty())
        .map(str::len)
        .collect();
    let total: usize = groups.iter().sum();
    if !(9..=11).contains(&total) {
        return false;
    }
    if matches!(
        groups.as_slice(),
        [5, 4] | [3, 2, 4] | [3, 3, 3] | [2, 2, 4] | [4, 2, 2] | [2, 2, 2, 2]
    ) {
        return false;
    }
    groups.len() > 1 || total > 9 || context()
}

/// Ten bare digits: a NANP number, or any number after a phone keyword.
pub(super) fn ten(value: &str, context: impl FnOnce() -> bool) -> bool {
    let d = value.as_bytes();
    nanp(d) || (d[0] != b'0' && context())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_numbers() {
        for ok in [
            "+1 415 555 2671",
            "+44 20 7946 0958",
            "+49 (0) 1753 377274",
            "+33 (0)2 51 83 65 84",
            "+81 80-6363-0322",
            "+3187-8119956",
            "+61.2.1782.9477",
        ] {
            assert_eq!(international(ok, 0, ok.len()), Some((0, ok.len())), "{ok}");
        }
        for bad in ["+1 111 555 2671", "+44 12", "+999 123 456 789"] {
            assert_eq!(international(bad, 0, bad.len()), None, "{bad}");
        }
        let hay = "+1 415 555 2671 42";
        assert_eq!(international(hay, 0, hay.len()), Some((0, 15)));
    }

    #[test]
    fn nanp_numbers() {
        assert!(nanp_formatted("(415) 555-2671"));
        assert!(nanp_formatted("1-415-555-2671"));
        assert!(!nanp_formatted("(415) 155-2671"));
        assert!(!nanp_formatted("(111) 555-2671"));
    }

    #[test]
    fn trunk_numbers() {
        assert!(trunk("0191 4960645", || false));
        assert!(trunk("(0118) 496 0850", || false));
        assert!(!trunk("07291-1413", || true));
        assert!(!trunk("015-00-6285", || true));
        assert!(!trunk("092343197", || false));
        assert!(trunk("092343197", || true));
    }

    #[test]
    fn ten_digits() {
        assert!(ten("4155552671", || false));
        assert!(!ten("1622767305", || false));
        assert!(ten("1622767305", || true));
    }
}
