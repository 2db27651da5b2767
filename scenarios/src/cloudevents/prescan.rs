//! Scans of the raw document that hold serde_json and sonic-rs to what
//! simd-json refuses while it builds its tape, wherever it is — including in
//! the `data` the other two skip without looking at its values.
//!
//! Each scan is a cheap pass over the bytes that settles almost every
//! document (one vectorised loop, or `memchr`), followed by an exact scan
//! only when that pass finds something suspicious. None of them allocates.

/// Whether `doc` opens more than `limit` arrays or objects inside one
/// another (strings are skipped; malformed input gives some answer, never a
/// panic). Counting the opening brackets first (a loop the compiler
/// vectorises) settles almost every document without the exact scan.
pub(crate) fn nests_deeper(doc: &[u8], limit: usize) -> bool {
    // `[` (0x5B) and `{` (0x7B) differ only in bit 0x20. Byte counters per
    // chunk of 255 keep the loop in SIMD lanes.
    let opens: usize = doc
        .chunks(255)
        .map(|chunk| usize::from(chunk.iter().fold(0u8, |n, &b| n + u8::from((b | 0x20) == b'{'))))
        .sum();
    if opens <= limit {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in doc {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether a `\\u` escape of `doc` lacks its four hexadecimal digits, or is
/// a UTF-16 surrogate without its partner (a high one not followed by `\\u`
/// and a low one, or a low one alone). simd-json refuses both wherever they
/// are; sonic-rs skips the strings of `data` without looking at their
/// escapes, and JSON's grammar allows a lone surrogate, but it encodes no
/// character. Only backslashes are visited (`memchr`), so an escape-free
/// document costs one SIMD pass.
pub(crate) fn bad_unicode_escape(doc: &[u8]) -> bool {
    let hex = |at: usize| -> Option<u16> {
        let digits = doc.get(at..at + 4)?;
        // `from_str_radix` alone would take a sign.
        digits.iter().all(u8::is_ascii_hexdigit).then_some(())?;
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let mut from = 0;
    while let Some(found) = memchr::memchr(b'\\', &doc[from..]) {
        let at = from + found;
        match doc.get(at + 1) {
            Some(b'u') => match hex(at + 2) {
                Some(0xD800..=0xDBFF) => {
                    let low = (doc.get(at + 6..at + 8) == Some(b"\\u")).then(|| hex(at + 8)).flatten();
                    if !matches!(low, Some(0xDC00..=0xDFFF)) {
                        return true;
                    }
                    from = at + 12;
                }
                Some(0xDC00..=0xDFFF) | None => return true,
                Some(_) => from = at + 6,
            },
            // Any other escape is two bytes (a bad one the parser refuses).
            _ => from = at + 2,
        }
        if from >= doc.len() {
            break;
        }
    }
    false
}

/// Bytes the fast pass of [`number_out_of_range`] classifies at once.
const BLOCK: usize = 64;

/// Whether a number of `doc`, outside strings, lies beyond binary64's range:
/// its magnitude rounds to infinity (`1e309`, `-1e9999`, an integer of 310
/// digits). A number that underflows is in range (`1e-9999` rounds to
/// zero), and so is one with more digits than binary64 keeps
/// (`0.1000000000000000055511151231257827`, `18446744073709551616`).
///
/// Such a number has an exponent of three digits or more, or an integer
/// part of at least 210 digits (with at most two exponent digits its value
/// is below 10^(digits + 99)). The fast pass turns each block of [`BLOCK`]
/// bytes into a bitmask of its digits (SSE2 on x86-64) and looks for either
/// shape: a digit, a non-digit, any byte, two digits (`1e999`, `1e+99`, but
/// also `80.711`); or a block of digits only. A match is a number only if
/// the non-digit is `e` or `E` and the bytes around it could bound a number
/// token (hexadecimal ids such as `"3fe1234a"` match, but are not tokens);
/// then the exact scan walks the document, skipping strings, and parses
/// each number (`str::parse::<f64>`, correctly rounded, no allocation).
#[inline(never)] // out of `Decoders::decode`, whose simd-json path grew when it was inlined
pub(crate) fn number_out_of_range(doc: &[u8]) -> bool {
    let mut next = block_digits(doc, 0);
    let mut at = 0;
    while at < doc.len() {
        let digits = next;
        if digits == u64::MAX {
            return exact_out_of_range(doc);
        }
        next = block_digits(doc, at + BLOCK);
        // Bit j: whether byte at + j + k is a digit.
        let digit_at = |k: u32| (digits >> k) | (next << (64 - k));
        let mut exponents = digits & !digit_at(1) & digit_at(3) & digit_at(4);
        while exponents != 0 {
            if bounds_a_number(doc, at + exponents.trailing_zeros() as usize + 1) {
                return exact_out_of_range(doc);
            }
            exponents &= exponents - 1;
        }
        at += BLOCK;
    }
    false
}

/// A bitmask of the digits among the [`BLOCK`] bytes of `doc` from `at`
/// (bit j for byte `at + j`; bytes past the end are not digits).
#[inline(always)]
fn block_digits(doc: &[u8], at: usize) -> u64 {
    match doc.get(at..) {
        Some(rest) if rest.len() >= BLOCK => digit_mask(rest[..BLOCK].try_into().expect("a whole block")),
        Some(rest) if !rest.is_empty() => {
            let mut block = [0u8; BLOCK];
            block[..rest.len()].copy_from_slice(rest);
            digit_mask(&block)
        }
        _ => 0,
    }
}

/// [`block_digits`] of one whole block, 16 bytes per SSE2 step.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn digit_mask(block: &[u8; BLOCK]) -> u64 {
    use std::arch::x86_64::{_mm_add_epi8, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let mut digits = 0u64;
    for (k, lane) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of the x86-64 baseline, `lane` is 16 readable
        // bytes, and `_mm_loadu_si128` needs no alignment.
        let lane_digits = unsafe {
            let v = _mm_loadu_si128(lane.as_ptr().cast());
            // Adding 0x50 maps b'0'..=b'9' to -128..=-119, and nothing else below -118.
            _mm_movemask_epi8(_mm_cmpgt_epi8(_mm_set1_epi8(-118), _mm_add_epi8(v, _mm_set1_epi8(0x50))))
        };
        digits |= u64::from(lane_digits as u16) << (16 * k);
    }
    digits
}

/// [`block_digits`] of one whole block, a byte at a time.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn digit_mask_bytewise(block: &[u8; BLOCK]) -> u64 {
    block.iter().enumerate().fold(0, |digits, (j, &b)| digits | u64::from(is_digit(b)) << j)
}

#[cfg(not(target_arch = "x86_64"))]
use digit_mask_bytewise as digit_mask;

#[inline(always)]
fn is_digit(b: u8) -> bool {
    b.wrapping_sub(b'0') < 10
}

/// Whether the `e` or `E` at `e` sits in a token the grammar allows as a
/// number with a multi-digit exponent: digits (and a point, and a sign)
/// back to a byte that may precede a value, a sign and digits forward to a
/// byte that may follow one.
fn bounds_a_number(doc: &[u8], e: usize) -> bool {
    if doc[e] | 0x20 != b'e' {
        return false;
    }
    let mut after = e + 1;
    if matches!(doc.get(after), Some(b'+' | b'-')) {
        after += 1;
    }
    while doc.get(after).is_some_and(|&b| is_digit(b)) {
        after += 1;
    }
    if !matches!(doc.get(after), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')) {
        return false;
    }
    let mut before = e;
    while before > 0 && (is_digit(doc[before - 1]) || doc[before - 1] == b'.') {
        before -= 1;
    }
    if before > 0 && doc[before - 1] == b'-' {
        before -= 1;
    }
    before == 0 || matches!(doc[before - 1], b':' | b',' | b'[' | b' ' | b'\t' | b'\r' | b'\n')
}

/// The exact scan: every number outside strings, parsed. A token that does
/// not parse is left to the decoder, which refuses it as malformed anyway.
fn exact_out_of_range(doc: &[u8]) -> bool {
    let mut at = 0;
    while let Some(&b) = doc.get(at) {
        match b {
            b'"' => {
                at += 1;
                while let Some(&c) = doc.get(at) {
                    match c {
                        b'\\' => at += 2,
                        b'"' => break,
                        _ => at += 1,
                    }
                }
                at += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = at;
                while doc.get(at).is_some_and(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')) {
                    at += 1;
                }
                let value = std::str::from_utf8(&doc[start..at]).ok().and_then(|t| t.parse::<f64>().ok());
                if value.is_some_and(f64::is_infinite) {
                    return true;
                }
            }
            _ => at += 1,
        }
    }
    false
}

/// The ordinal of the first member of the top-level object whose value is
/// the number token `-0`, if any. `doc` is expected to be well-formed JSON
/// (simd-json has accepted it); anything else gives some answer, never a
/// panic.
pub(crate) fn first_negative_zero_member(doc: &[u8]) -> Option<usize> {
    let ws = |at: &mut usize| {
        while doc.get(*at).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
            *at += 1;
        }
    };
    // Past the string opening at `at`.
    let string = |at: &mut usize| {
        *at += 1;
        while let Some(&c) = doc.get(*at) {
            *at += if c == b'\\' { 2 } else { 1 };
            if c == b'"' {
                return;
            }
        }
    };
    let mut at = 0;
    ws(&mut at);
    if doc.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    for member in 0.. {
        ws(&mut at);
        if doc.get(at) != Some(&b'"') {
            return None;
        }
        string(&mut at);
        ws(&mut at);
        at += 1; // the colon
        ws(&mut at);
        if doc.get(at..at + 2) == Some(b"-0")
            && !doc.get(at + 2).is_some_and(|&b| is_digit(b) || matches!(b, b'.' | b'e' | b'E'))
        {
            return Some(member);
        }
        // Past the value: to the comma or brace that closes it at depth 0.
        let mut depth = 0usize;
        loop {
            match doc.get(at) {
                None => return None,
                Some(b'"') => {
                    string(&mut at);
                    continue;
                }
                Some(b'[' | b'{') => depth += 1,
                Some(b']' | b'}') if depth > 0 => depth -= 1,
                Some(b',') if depth == 0 => break,
                Some(b'}') => return None,
                _ => {}
            }
            at += 1;
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_beyond_binary64_are_found_outside_strings_only() {
        let nines = "9".repeat(400);
        let max = format!("{:.0}", f64::MAX);
        for (doc, want) in [
            ("[1e309]".to_owned(), true),
            ("[1e9999]".to_owned(), true),
            ("[-1e9999]".to_owned(), true),
            ("[1E+400]".to_owned(), true),
            ("1e999".to_owned(), true),
            ("{\"a\":1.7976931348623159e308}".to_owned(), true),
            (format!("[{nines}]"), true),
            (format!("[-{nines}]"), true),
            (format!("[{}5e100]", "1".repeat(209)), true),
            ("[1e308]".to_owned(), false),
            ("[1.7976931348623158e308]".to_owned(), false),
            (format!("[{max}]"), false),
            (format!("[{max}.9]"), false),
            (format!("[{max}0]"), true),
            ("[1e-9999]".to_owned(), false),
            ("[0e99999]".to_owned(), false),
            ("[18446744073709551616]".to_owned(), false),
            ("[0.1000000000000000055511151231257827]".to_owned(), false),
            (format!("[0.{nines}]"), false),
            (format!("[{}e99]", "1".repeat(209)), false),
            ("[\"1e999\"]".to_owned(), false),
            ("[\"a 1e999 b\"]".to_owned(), false),
            ("[\"\\\" 1e999 \"]".to_owned(), false),
            (format!("[\"{nines}\"]"), false),
            ("[\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"]".to_owned(), false),
            ("[3fe1234]".to_owned(), false),
            (String::new(), false),
            ("1e9".to_owned(), false),
        ] {
            assert_eq!(number_out_of_range(doc.as_bytes()), want, "{doc}");
        }
    }

    #[test]
    fn negative_zero_members_are_found_by_ordinal() {
        for (doc, want) in [
            (r#"{"a":-0}"#, Some(0)),
            (r#"{"a":"-0","b":[-0],"c":{"d":-0},"e" : -0 }"#, Some(3)),
            (r#"{"a":-0.0,"b":-0e1,"c":-01,"d":0}"#, None),
            (r#"{"a\"":1,"b":-0,"c":-0}"#, Some(1)),
            ("[-0]", None),
            ("{\"a\":", None),
            ("", None),
        ] {
            assert_eq!(first_negative_zero_member(doc.as_bytes()), want, "{doc}");
        }
    }

    #[test]
    fn the_sse2_digit_mask_matches_the_bytewise_one() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let block: [u8; BLOCK] = std::array::from_fn(|_| rng.u8(..));
            assert_eq!(digit_mask(&block), digit_mask_bytewise(&block), "{block:?}");
        }
        let every: [u8; BLOCK] = std::array::from_fn(|j| j as u8);
        for base in [0u8, 64, 128, 192] {
            let block = every.map(|b| b.wrapping_add(base));
            assert_eq!(digit_mask(&block), digit_mask_bytewise(&block), "{block:?}");
        }
    }

    #[test]
    fn the_fast_pass_finds_a_number_at_every_offset_of_a_block() {
        for pad in 0..2 * BLOCK + 3 {
            let doc = format!("[{}1e999]", " ".repeat(pad));
            assert!(number_out_of_range(doc.as_bytes()), "{pad}");
            let doc = format!("[{}{}]", " ".repeat(pad), "7".repeat(310));
            assert!(number_out_of_range(doc.as_bytes()), "{pad}");
        }
    }
}
