//! A validating skip of one JSON value in one forward pass, without
//! recursion and without allocation: the native decoder's way through
//! `data` (and through a binary-mode JSON body).
//!
//! It checks in that one pass everything the other decoders check of
//! `data` in several: the grammar (RFC 8259: structure, literals, number
//! syntax, string escapes, no control character in a string), nesting at
//! most a given depth, every `\u` escape with four hexadecimal digits and
//! no lone UTF-16 surrogate, and no number beyond binary64's range. UTF-8
//! is the caller's: the whole document is validated once, before.
//!
//! Why not sonic-rs's own checked skip (`Parser::skip_one(true)`), which
//! the native decoder used first: measured with callgrind on the decode
//! bench's 400–600 B documents, it cost about 14 instructions per byte of
//! `data` (a call per value, the `Read` input's bounds checks and enum
//! dispatch on every peek), as much per byte as sonic-rs's whole DOM parse
//! of the document (which reads a padded copy, a reader sonic-rs does not
//! export), and three more scans over `data` were needed beside it (depth,
//! `\u` escapes, numbers beyond binary64), since the skip checks none of
//! them. This pass does all four in one.
//!
//! Nesting is tracked in a 128-bit stack (a bit per open container: object
//! or array), so the depth limit is at most 128 levels
//! ([`super::decode::MAX_DEPTH`]).

/// Where the JSON value starting at `at` (after optional whitespace) ends,
/// if `bytes` holds a well-formed one there nesting at most `depth` arrays
/// and objects (`depth` ≤ 128), with every `\u` escape complete and paired
/// and every number within binary64's range. `None` otherwise (never a
/// panic, whatever the bytes).
#[inline]
pub(crate) fn value(bytes: &[u8], mut at: usize, depth: usize) -> Option<usize> {
    debug_assert!(depth <= 128, "the stack holds 128 levels");
    // Bit 0: whether the innermost open container is an object.
    let mut objects: u128 = 0;
    let mut open = 0usize;
    'value: loop {
        // A value is expected at `at`.
        match next(bytes, &mut at)? {
            b'"' => at = string(bytes, at)?,
            b'{' => {
                open += 1;
                if open > depth {
                    return None;
                }
                objects = objects << 1 | 1;
                match next(bytes, &mut at)? {
                    b'"' => {
                        at = member_name_rest(bytes, at)?;
                        continue 'value;
                    }
                    b'}' => {
                        open -= 1;
                        objects >>= 1;
                    }
                    _ => return None,
                }
            }
            b'[' => {
                open += 1;
                if open > depth {
                    return None;
                }
                objects <<= 1;
                if peek(bytes, &mut at)? == b']' {
                    at += 1;
                    open -= 1;
                    objects >>= 1;
                } else {
                    continue 'value;
                }
            }
            b't' => at = literal(bytes, at, b"rue")?,
            b'f' => at = literal(bytes, at, b"alse")?,
            b'n' => at = literal(bytes, at, b"ull")?,
            b'-' | b'0'..=b'9' => at = number(bytes, at - 1)?,
            _ => return None,
        }
        // A value is complete: close containers until one goes on.
        loop {
            if open == 0 {
                return Some(at);
            }
            let in_object = objects & 1 == 1;
            match next(bytes, &mut at)? {
                b',' if in_object => {
                    if next(bytes, &mut at)? != b'"' {
                        return None;
                    }
                    at = member_name_rest(bytes, at)?;
                    continue 'value;
                }
                b',' => continue 'value,
                b'}' if in_object => {}
                b']' if !in_object => {}
                _ => return None,
            }
            open -= 1;
            objects >>= 1;
        }
    }
}

/// The next byte that is not JSON whitespace, consumed.
#[inline(always)]
fn next(bytes: &[u8], at: &mut usize) -> Option<u8> {
    let b = peek(bytes, at)?;
    *at += 1;
    Some(b)
}

/// The next byte that is not JSON whitespace, not consumed.
#[inline(always)]
fn peek(bytes: &[u8], at: &mut usize) -> Option<u8> {
    loop {
        let b = *bytes.get(*at)?;
        if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            return Some(b);
        }
        *at += 1;
    }
}

/// A member's name whose opening quote was consumed, and its colon: where
/// its value may start.
#[inline(always)]
fn member_name_rest(bytes: &[u8], at: usize) -> Option<usize> {
    let mut at = string(bytes, at)?;
    (next(bytes, &mut at)? == b':').then_some(at)
}

/// `rest` of a literal whose first byte was consumed.
#[inline(always)]
fn literal(bytes: &[u8], at: usize, rest: &[u8]) -> Option<usize> {
    (bytes.get(at..at + rest.len())? == rest).then_some(at + rest.len())
}

/// Past the closing quote of a string whose opening quote was consumed:
/// no control character, every escape one of JSON's, every `\u` escape
/// with four hexadecimal digits, a surrogate only in a high–low pair.
#[inline(always)]
pub(crate) fn string(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at = plain_end(bytes, at);
        match *bytes.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => at = escape(bytes, at)?,
            // A control character.
            _ => return None,
        }
    }
}

/// Past the escape whose backslash is at `at`.
#[inline]
fn escape(bytes: &[u8], at: usize) -> Option<usize> {
    match *bytes.get(at + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(at + 2),
        b'u' => match hex4(bytes, at + 2)? {
            0xD800..=0xDBFF => {
                if bytes.get(at + 6..at + 8)? != b"\\u" || !matches!(hex4(bytes, at + 8)?, 0xDC00..=0xDFFF) {
                    return None;
                }
                Some(at + 12)
            }
            0xDC00..=0xDFFF => None,
            _ => Some(at + 6),
        },
        _ => None,
    }
}

/// The four hexadecimal digits at `at`, as a number.
#[inline]
fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    bytes.get(at..at + 4)?.iter().try_fold(0u16, |n, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        Some(n << 4 | u16::from(digit))
    })
}

/// Past the number token starting at `start`: `-? (0 | [1-9][0-9]*)
/// (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, whose magnitude does not round to
/// infinity. Only a token with an integer part of 210 digits or more, or
/// an exponent of three digits or more, can (with at most two exponent
/// digits its value is below 10^(digits + 99) ≤ 10^308); only such a
/// token is parsed (`str::parse::<f64>`, correctly rounded).
#[inline]
fn number(bytes: &[u8], start: usize) -> Option<usize> {
    let digits = |at: &mut usize| {
        let from = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at - from
    };
    let mut at = start + usize::from(bytes.get(start) == Some(&b'-'));
    let integer = match bytes.get(at)? {
        b'0' => {
            at += 1;
            1
        }
        b'1'..=b'9' => digits(&mut at),
        _ => return None,
    };
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if digits(&mut at) == 0 {
            return None;
        }
    }
    let mut exponent = 0;
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        exponent = digits(&mut at);
        if exponent == 0 {
            return None;
        }
    }
    if integer >= 210 || exponent >= 3 {
        // The token is ASCII digits, signs, a point and `e`.
        let text = std::str::from_utf8(&bytes[start..at]).ok()?;
        if text.parse::<f64>().ok()?.is_infinite() {
            return None;
        }
    }
    Some(at)
}

/// Where the string body starting at `at` stops being plain: the first
/// quote, backslash or control character (or the end). Sixteen bytes at a
/// time with SSE2 on x86-64, then eight at a time (SWAR: the lowest
/// flagged byte of each test is exact, since a borrow only runs upwards
/// from a byte that matched), then one at a time.
#[inline(always)]
pub(crate) fn plain_end(bytes: &[u8], mut at: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = bytes.get(at..at + 16) {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of the x86-64 baseline, `chunk` is 16
        // readable bytes, and `_mm_loadu_si128` needs no alignment.
        let found = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // Unsigned v <= 0x1f exactly when max(v, 0x1f) is 0x1f.
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
        };
        if found != 0 {
            return at + found.trailing_zeros() as usize;
        }
        at += 16;
    }
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let found = zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | below_space;
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return at;
        }
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::prescan::{bad_unicode_escape, nests_deeper, number_out_of_range};

    /// The reference verdict: serde_json validating into `IgnoredAny`, and
    /// the prescans that hold it to simd-json's strictness.
    fn reference(text: &str, depth: usize) -> bool {
        let b = text.as_bytes();
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
            && !nests_deeper(b, depth)
            && !bad_unicode_escape(b)
            && !number_out_of_range(b)
    }

    fn skips(text: &str, depth: usize) -> bool {
        let b = text.as_bytes();
        value(b, 0, depth).is_some_and(|end| b[end..].iter().all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')))
    }

    #[test]
    fn values_are_judged_as_the_reference_judges_them() {
        let nines = "9".repeat(400);
        for text in [
            "1",
            "-0",
            "0.5e-3",
            "1E+2",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "1x",
            "true",
            "tru",
            "nul",
            "null ",
            " [ ] ",
            "[1,]",
            "[,1]",
            "[1 2]",
            "{}",
            "{ }",
            r#"{"a":1,"b":[true,false,null,{"c":"d"}]}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{1:2}"#,
            r#"{"a":1]"#,
            r#"[1}"#,
            r#""\"\\\/\b\f\n\r\t\u00e9""#,
            r#""\x""#,
            "\"a\u{1}b\"",
            "\"\u{7f}é東🚀\"",
            r#""\ud83d\ude80""#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#""\ud800\\u0041""#,
            r#""\u12g4""#,
            r#""\u12""#,
            "[1e308]",
            "[1e309]",
            "[-1e9999]",
            "[1e-9999]",
            "[0e99999]",
            "[1e007]",
            &format!("[{nines}]"),
            &format!("[0.{nines}]"),
            &format!("[{}e99]", "1".repeat(209)),
            &format!("[{}5e100]", "1".repeat(209)),
            "[18446744073709551616]",
            "\"unterminated",
            "[",
            "{",
            "",
        ] {
            assert_eq!(skips(text, 128), reference(text, 128), "{text:?}");
        }
    }

    #[test]
    fn depth_is_limited() {
        for depth in [1, 5, 127, 128] {
            for levels in [(depth - 1).max(1), depth, depth + 1] {
                let arrays = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
                assert_eq!(skips(&arrays, depth), levels <= depth, "{arrays}");
                let objects = format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
                assert_eq!(skips(&objects, depth), levels <= depth, "{objects}");
            }
        }
        assert!(!skips(&"[".repeat(100_000), 128));
    }

    #[test]
    fn random_mutations_of_valid_values_agree_with_the_reference() {
        let seeds = [
            r#"{"a":[1,2.5e3,{"b":"\u00e9\ud83d\ude80"}],"c":null,"d":true,"e":"x\"y"}"#,
            r#"[{"sku":"SKU-1","q":-3,"p":{"amount":12.5,"currency":"EUR"},"tags":["é","東"]}]"#,
        ];
        let alphabet = b"{}[]:,\"\\u0123456789abcdefABCDEF.eE+- \ntrufalsn\x01";
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let mut doc = seeds[rng.usize(..seeds.len())].as_bytes().to_vec();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..doc.len());
                match rng.u8(..3) {
                    0 => doc[at] = alphabet[rng.usize(..alphabet.len())],
                    1 => doc.insert(at, alphabet[rng.usize(..alphabet.len())]),
                    _ => {
                        doc.remove(at);
                    }
                }
            }
            let Ok(text) = std::str::from_utf8(&doc) else { continue };
            assert_eq!(skips(text, 128), reference(text, 128), "{text:?}");
        }
    }

    #[test]
    fn plain_ends_at_the_first_quote_backslash_or_control_byte() {
        for len in 0..70 {
            let body = "é".repeat(len / 2) + &"a".repeat(len % 2);
            for stop in ["\"", "\\", "\n", "\u{1f}", ""] {
                let text = format!("{body}{stop}x\"");
                let want = if stop.is_empty() { body.len() + 1 } else { body.len() };
                assert_eq!(plain_end(text.as_bytes(), 0), want, "{text:?}");
            }
        }
        assert_eq!(plain_end(b"abc", 0), 3);
        assert_eq!(plain_end(b"\x7f\x80\xff\"", 0), 3, "DEL and high bytes are plain");
    }
}
