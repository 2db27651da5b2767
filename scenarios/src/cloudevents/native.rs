//! The native decoder: sonic-rs's own parser driven member by member, with
//! no serde visitor between the bytes and the event.
//!
//! The serde decoders hand each value to a visitor through serde's generic
//! `Deserializer` protocol: every member goes through `deserialize_any` or
//! `deserialize_str`, a seed, a visitor and the decoder's error type, and
//! the reason a document is refused has to be smuggled out through a side
//! cell. Here the event object is scanned directly: a key is read in place
//! (sixteen bytes at a time), its name decides what the value must be, and
//! exactly that is read — a string in place, a literal — with
//! `sonic_rs::parser::Parser` (its raw, public API, positioned where the
//! scan is) taking over for what needs a real parser: a string with
//! escapes, an extension's number, and `data` (sonic-rs's checked skip).
//! Each member then goes to the same [`Members`] the serde visitor feeds, so
//! the spec's rules are the ones written once in [`super::rules`].
//!
//! # Guarantees
//! - **Same verdicts**: valid with the same event, or refused with the same
//!   reason, as every serde decoder (`tests/cloudevents_decoders.rs` holds
//!   them to it), by the precedence of [`super::rules`].
//! - **Borrowed in place**: strings without escapes point into the input
//!   buffer; an escaped string is unescaped into a reused buffer and then
//!   copied into its own heap block (as in the serde sonic-rs decoder).
//! - **Allocations per event**: none for a valid document in the borrowed
//!   representation with struct extensions (at most two unknown ones, and
//!   no escaped attribute strings); the owned representation allocates one
//!   block per string it keeps, the map mode its hash map. The `specversion`
//!   value and context attribute names are compared in place, never kept.
//! - **Same strictness**: the whole document is checked as UTF-8 first,
//!   `data` is skipped with sonic-rs's checked skip (the one its serde
//!   `IgnoredAny` uses), and the scans the serde sonic-rs decoder runs over
//!   the whole document for depth, `\u` escapes and numbers beyond binary64
//!   run over `data` alone: the rest of the document is read here, where an
//!   escaped string is scanned for bad `\u` escapes before it is unescaped,
//!   and a nested or non-integer extension value is refused anyway.
//! - **No panic** on any byte sequence (a property test feeds it random and
//!   mutated documents).
//!
//! Based on: sonic-rs's `ObjectJsonIter::parse_entry_lazy` (the same steps,
//! without the iterator's key buffer, which would be one allocation per
//! event, and without its bounds-checked reader for the object's own bytes).

use super::decode::{MAX_DEPTH, Strings};
use super::event::{CloudEvent, ExtValue, Extensions};
use super::prescan::{bad_unicode_escape, nests_deeper, number_out_of_range};
use super::rules::{Attribute, DecodeError, Members};
use sonic_rs::Read;
use sonic_rs::parser::{Parser, Reference};
use sonic_rs::reader::Reader;
use std::borrow::Cow;

/// Why the native decoder stopped: `Some` with the event rule a member or
/// the end of the object broke, `None` when the bytes are not JSON.
/// [`super::rules::refusal`] turns either into the reason by precedence.
pub(crate) type Stop = Option<DecodeError>;

/// Decodes `input` (a whole document) into an event whose strings `S`
/// places; `strings` is the reused buffer escaped strings are unescaped in.
#[inline]
pub(crate) fn decode<'de, 'o, S, X>(input: &'de [u8], strings: &mut Vec<u8>) -> Result<CloudEvent<'o, X>, Stop>
where
    S: Strings<'de, 'o>,
    X: Extensions<'o>,
{
    // `Read::from` a byte slice validates the whole of it as UTF-8 (SIMD)
    // and remembers where it failed; strings skipped inside `data` are not
    // checked again, so the verdict is read here, once.
    let parser = Parser::new(Read::from(input));
    if parser.read.check_utf8_final().is_err() {
        return Err(None);
    }
    // SAFETY: sonic-rs has just validated the whole of `input` as UTF-8.
    let text = unsafe { std::str::from_utf8_unchecked(input) };
    let mut scan = Scan { text, bytes: input, at: 0, parser };
    match scan.next() {
        Some(b'{') => {}
        Some(_) => return Err(Some(DecodeError::NotAnObject)),
        None => return Err(None),
    }
    let mut event = CloudEvent::<'o, X>::default();
    let mut members = Members::new(&mut event);
    let mut first = true;
    loop {
        match (scan.next(), first) {
            (Some(b'}'), _) => break,
            (Some(b'"'), true) => first = false,
            (Some(b','), false) if scan.next() == Some(b'"') => {}
            _ => return Err(None),
        }
        let key = scan.string(strings)?;
        let attribute = members.attribute(&key).map_err(Some)?;
        // An extension keeps its name (an escaped one is copied out of the
        // buffer the value may need next); the others are done with it.
        let name: Option<Cow<'o, str>> = (attribute == Attribute::Extension).then(|| cow::<S>(key));
        if scan.next() != Some(b':') {
            return Err(None);
        }
        match attribute {
            Attribute::Data => members.data(scan.data()?),
            Attribute::Specversion => {
                let value = scan.string_or_null(strings, attribute)?;
                members.specversion(value.as_deref()).map_err(Some)?;
            }
            Attribute::Extension => {
                let value = scan.extension::<S>(strings)?;
                members.extension(name.expect("an extension keeps its name"), value).map_err(Some)?;
            }
            _ => {
                let value = scan.string_or_null(strings, attribute)?.map(cow::<S>);
                members.string(attribute, value).map_err(Some)?;
            }
        }
    }
    if scan.next().is_some() {
        return Err(None);
    }
    members.finish().map_err(Some)?;
    Ok(event)
}

/// Whether `input`, a binary-mode body (`data` alone), is JSON: the same
/// checks as `data` gets inside a structured document — UTF-8 over the
/// whole of it, at most [`MAX_DEPTH`] − 1 levels, sonic-rs's checked skip,
/// then `\u` escapes and numbers beyond binary64 — and nothing but
/// whitespace after the value.
pub(crate) fn valid_data(input: &[u8]) -> bool {
    let mut parser = Parser::new(Read::from(input));
    if parser.read.check_utf8_final().is_err() || nests_deeper(input, MAX_DEPTH - 1) {
        return false;
    }
    if parser.skip_one(true).is_err() || parser.skip_space().is_some() {
        return false;
    }
    !bad_unicode_escape(input) && !number_out_of_range(input)
}

/// A string for the event: borrowed as `S` places it, or copied out of the
/// unescaping buffer.
#[inline]
fn cow<'de, 'o, S: Strings<'de, 'o>>(s: Reference<'de, '_, str>) -> Cow<'o, str> {
    match s {
        Reference::Borrowed(s) => S::borrowed(s),
        Reference::Copied(s) => Cow::Owned(s.to_owned()),
    }
}

/// The top-level object, scanned byte by byte: its structure, names,
/// literals and unescaped strings are simple enough to read directly, and
/// sonic-rs's parser (positioned where the scan is) takes over for what is
/// not — a string with escapes, a number, and `data`.
struct Scan<'de> {
    text: &'de str,
    bytes: &'de [u8],
    at: usize,
    parser: Parser<Read<'de>>,
}

impl<'de> Scan<'de> {
    /// The next byte that is not JSON whitespace, consumed.
    #[inline]
    fn next(&mut self) -> Option<u8> {
        self.peek().inspect(|_| self.at += 1)
    }

    /// The next byte that is not JSON whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// `rest` of a literal whose first byte was consumed.
    #[inline]
    fn literal(&mut self, rest: &[u8]) -> Result<(), Stop> {
        if self.bytes.get(self.at..self.at + rest.len()) != Some(rest) {
            return Err(None);
        }
        self.at += rest.len();
        Ok(())
    }

    /// A string whose opening quote was consumed: borrowed when it has no
    /// escape, unescaped by sonic-rs into `strings` when it has one.
    #[inline]
    fn string<'b>(&mut self, strings: &'b mut Vec<u8>) -> Result<Reference<'de, 'b, str>, Stop> {
        let start = self.at;
        let end = plain_end(self.bytes, start);
        match self.bytes.get(end) {
            Some(b'"') => {
                self.at = end + 1;
                // Both ends sit at an ASCII quote, so on character boundaries.
                Ok(Reference::Borrowed(&self.text[start..end]))
            }
            Some(b'\\') => {
                // sonic-rs reads a `\u` escape's digits unchecked: refuse a
                // bad one (or a lone surrogate) first, in the rest of the
                // document (rare: attribute strings seldom carry escapes).
                if bad_unicode_escape(&self.bytes[start..]) {
                    return Err(None);
                }
                self.parser.read.set_index(start);
                let s = self.parser.parse_str(strings).map_err(|_| None)?;
                self.at = self.parser.read.index();
                Ok(s)
            }
            // A control character, or the end of the document.
            _ => Err(None),
        }
    }

    /// A string attribute's value: a string, or null (`None`); any other
    /// value is [`DecodeError::Mistyped`].
    #[inline]
    fn string_or_null<'b>(
        &mut self,
        strings: &'b mut Vec<u8>,
        attribute: Attribute,
    ) -> Result<Option<Reference<'de, 'b, str>>, Stop> {
        match self.next() {
            Some(b'"') => self.string(strings).map(Some),
            Some(b'n') => self.literal(b"ull").map(|()| None),
            Some(_) => Err(Some(DecodeError::Mistyped(attribute.name()))),
            None => Err(None),
        }
    }

    /// `data`: whether it holds a value (null is an absent `data`), skipped
    /// with sonic-rs's checked skip (every string, number and bracket
    /// validated; nothing built).
    #[inline]
    fn data(&mut self) -> Result<bool, Stop> {
        if self.peek() == Some(b'n') {
            self.at += 1;
            return self.literal(b"ull").map(|()| false);
        }
        // What simd-json refuses while building its tape and sonic-rs's
        // skip lets through, checked over `data` alone: its nesting (the
        // event object is level 1) before the skip recurses into it, then
        // its `\u` escapes and numbers.
        let start = self.at;
        if nests_deeper(&self.bytes[start..], MAX_DEPTH - 1) {
            return Err(None);
        }
        self.parser.read.set_index(start);
        self.parser.skip_one(true).map_err(|_| None)?;
        self.at = self.parser.read.index();
        let raw = &self.bytes[start..self.at];
        if bad_unicode_escape(raw) || number_out_of_range(raw) {
            return Err(None);
        }
        Ok(true)
    }

    /// An extension's value: a string, a boolean, an integer in `i32`
    /// range, or null (`None`); anything else is
    /// [`DecodeError::BadExtensionValue`].
    #[inline]
    fn extension<'o, S: Strings<'de, 'o>>(&mut self, strings: &mut Vec<u8>) -> Result<Option<ExtValue<'o>>, Stop> {
        match self.next() {
            Some(b'"') => self.string(strings).map(|s| Some(ExtValue::String(cow::<S>(s)))),
            Some(b't') => self.literal(b"rue").map(|()| Some(ExtValue::Boolean(true))),
            Some(b'f') => self.literal(b"alse").map(|()| Some(ExtValue::Boolean(false))),
            Some(b'n') => self.literal(b"ull").map(|()| None),
            Some(first @ (b'-' | b'0'..=b'9')) => {
                self.parser.read.set_index(self.at);
                let text = self.parser.skip_number(first).map_err(|_| None)?;
                self.at = self.parser.read.index();
                integer(text).map(|i| Some(ExtValue::Integer(i))).ok_or(Some(DecodeError::BadExtensionValue))
            }
            Some(_) => Err(Some(DecodeError::BadExtensionValue)),
            None => Err(None),
        }
    }
}

/// Where the string body starting at `at` stops being plain: the first
/// quote, backslash or control character (or the end). Sixteen bytes at a
/// time with SSE2 on x86-64, then eight at a time (SWAR: the lowest
/// flagged byte of each test is exact, since a borrow only runs upwards
/// from a byte that matched), then one at a time.
#[inline]
fn plain_end(bytes: &[u8], mut at: usize) -> usize {
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

/// The `i32` a well-formed number token denotes, if it is an integer in
/// range, as the serde decoders see it: a fraction or an exponent makes a
/// float even when its value is whole (`1.0`, `1e2`), and so does `-0`
/// (serde_json, simd-json and sonic-rs all read it as the float `-0.0`).
#[inline]
fn integer(text: &str) -> Option<i32> {
    if text == "-0" || text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn integers_are_whole_tokens_in_i32_range() {
        for (text, want) in [
            ("0", Some(0)),
            ("-7", Some(-7)),
            ("2147483647", Some(i32::MAX)),
            ("-2147483648", Some(i32::MIN)),
            ("2147483648", None),
            ("-0", None),
            ("1.0", None),
            ("1e2", None),
            ("1E2", None),
            ("18446744073709551616", None),
        ] {
            assert_eq!(integer(text), want, "{text}");
        }
    }
}
