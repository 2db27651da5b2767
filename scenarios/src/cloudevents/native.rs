//! The native decoder: the event object scanned member by member, with no
//! serde visitor between the bytes and the event, and sonic-rs's parser
//! taking over where it is the cheaper tool.
//!
//! The serde decoders hand each value to a visitor through serde's generic
//! `Deserializer` protocol: every member goes through `deserialize_any` or
//! `deserialize_str`, a seed, a visitor and the decoder's error type, and
//! the reason a document is refused has to be smuggled out through a side
//! cell. Here the event object is scanned directly: a key is read in place
//! (sixteen bytes at a time), its name decides what the value must be, and
//! exactly that is read — a string in place, a literal. Each member then
//! goes to the same [`Members`] the serde visitor feeds, so the spec's
//! rules are the ones written once in [`super::rules`].
//!
//! # Design, and why
//! Each choice was measured against sonic-rs's own DOM parse into
//! `sonic_rs::Value` of the same documents after the same input copy (the
//! floor beside it in `benches/decode.rs`, group `native/*`; callgrind
//! instruction counts from `examples/native_floor.rs`).
//! - **One UTF-8 pass, sonic-rs's**: `sonic_rs::Read::from` validates the
//!   whole input (SIMD, run-time dispatch) and the verdict is read once;
//!   nothing downstream re-validates, so a plain string is borrowed with an
//!   unchecked slice.
//! - **The object's own bytes are scanned here, not through
//!   `sonic_rs::parser::Parser`**: its `Read` input bounds-checks every
//!   peek and dispatches on an enum (owned or borrowed input) each time,
//!   and the key iterators of `LazyValue` (`ObjectJsonIter`) keep each key
//!   in a buffer, one allocation per event. Attribute names and values are
//!   short: the plain-string scan (SSE2, sixteen bytes a step) is inlined
//!   and its escaped path kept cold.
//! - **sonic-rs where a real parser is needed and rare**: a string with
//!   escapes (validated by [`skip::string`], then unescaped by
//!   `Parser::parse_str` into a reused buffer) and an extension's number
//!   (`Parser::skip_number`, positioned where the scan is).
//! - **`data` by [`skip::value`], one forward pass, not sonic-rs's checked
//!   skip** (`Parser::skip_one(true)`): that skip recursed per value through
//!   the bounds-checked reader at about 14 instructions per byte — as much
//!   as the whole DOM parse, which reads a padded copy through a reader
//!   sonic-rs does not export — and still needed three more scans over
//!   `data` for what it does not check (depth, `\u` escapes and lone
//!   surrogates, numbers beyond binary64). [`skip::value`] checks the
//!   grammar and all three in the one pass, without recursion or
//!   allocation. This was the difference between 0.65× and 1.08× the DOM
//!   floor (see the figures below).
//! - **Refusals cost a second look, valid documents none**: the decoder
//!   only decides whether the document is valid; a refused one is named by
//!   [`super::rules::refusal`] (untimed, counted).
//!
//! # Figures
//! Native borrowed decode (struct extensions) against the DOM floor, same
//! input copy, same run, on a 2-core VM shared with other builds (uptime
//! load 2–5, so ranges), default portable build, release profile (fat LTO):
//! - before [`skip::value`] (sonic-rs's checked skip and three scans over
//!   `data`): 0.64–0.68× on the 400–600 B set (quick build, LTO off), and
//!   0.70–0.73× in the decode bench as last recorded before this work;
//! - after, 400–600 B set (mean 505 B): 0.92–0.96× interleaved
//!   (`examples/native_floor.rs`, medians of 200 rounds: native 0.88–1.14
//!   M documents/s, 447–576 MB/s) and 1.20× in criterion's `native/small`
//!   (0.72 M/s against 0.60 M/s; criterion runs them one after the other);
//!   callgrind: 6,457 instructions per document against the DOM's 6,575
//!   (10,370 before, in the quick build);
//! - after, generated corpus (mean 1,067 B): 1.03–1.04× interleaved (0.71–
//!   0.73 M/s, 752–778 MB/s), 1.14× in criterion (0.57 against 0.51 M/s).
//!
//! So the native decoder is at the DOM floor, not clearly past it, at
//! 500 B: what is left is spread thin (UTF-8 validation and the input copy,
//! which both sides pay; per-member name dispatch; the extension inserts;
//! bounds checks) rather than one pass to remove.
//!
//! With `RUSTFLAGS="-C target-cpu=x86-64-v3"` (sonic-rs's AVX2 path for
//! the DOM; this decoder's scans stay SSE2): 0.95–0.97× on the 400–600 B
//! set (native 0.85–0.87 M/s, 431–437 MB/s) and 1.11–1.14× on the
//! generated corpus, interleaved; 6,365 instructions per document against
//! the DOM's 6,393.
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
//! - **Same strictness**: the whole document is checked as UTF-8 first;
//!   `data` gets, in [`skip::value`], what the serde decoders get from
//!   their parser and the prescans over the whole document (depth, `\u`
//!   escapes, numbers beyond binary64); the rest of the document is read
//!   here, where an escaped string is checked by [`skip::string`] before it
//!   is unescaped, and a nested or non-integer extension value is refused
//!   anyway.
//! - **No panic** on any byte sequence (a property test feeds it random and
//!   mutated documents).
//!
//! Based on: sonic-rs's `ObjectJsonIter::parse_entry_lazy` (the same steps,
//! without the iterator's key buffer, which would be one allocation per
//! event, and without its bounds-checked reader for the object's own bytes).

use super::decode::{MAX_DEPTH, Strings};
use super::event::{CloudEvent, ExtValue, Extensions};
use super::rules::{Attribute, DecodeError, Members};
use super::skip::{self, plain_end};
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
/// whole of it (sonic-rs's check), then [`skip::value`] with at most
/// [`MAX_DEPTH`] − 1 levels — and nothing but whitespace after the value.
pub(crate) fn valid_data(input: &[u8]) -> bool {
    if Read::from(input).check_utf8_final().is_err() {
        return false;
    }
    skip::value(input, 0, MAX_DEPTH - 1)
        .is_some_and(|end| input[end..].iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')))
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
    /// escape (the path every attribute string of the generated corpus
    /// takes, inlined), unescaped by sonic-rs into `strings` when it has one.
    #[inline(always)]
    fn string<'b>(&mut self, strings: &'b mut Vec<u8>) -> Result<Reference<'de, 'b, str>, Stop> {
        let start = self.at;
        let end = plain_end(self.bytes, start);
        if self.bytes.get(end) != Some(&b'"') {
            return self.escaped(start, end, strings);
        }
        self.at = end + 1;
        // SAFETY: `text` is `bytes`, validated as UTF-8; `start` follows an
        // ASCII quote and `end` holds one, so both are character boundaries
        // within it (`end` < `bytes.len()` by the test above).
        Ok(Reference::Borrowed(unsafe { self.text.get_unchecked(start..end) }))
    }

    /// The rest of [`Scan::string`] when its body from `start` stopped
    /// being plain at `end` before the closing quote: at an escape, checked
    /// by [`skip::string`] (sonic-rs reads a `\u` escape's digits unchecked
    /// and lets a lone surrogate through) and then unescaped by sonic-rs;
    /// at a control character or the end of the document, refused.
    #[cold]
    #[inline(never)]
    fn escaped<'b>(
        &mut self,
        start: usize,
        end: usize,
        strings: &'b mut Vec<u8>,
    ) -> Result<Reference<'de, 'b, str>, Stop> {
        if self.bytes.get(end) != Some(&b'\\') || skip::string(self.bytes, start).is_none() {
            return Err(None);
        }
        self.parser.read.set_index(start);
        let s = self.parser.parse_str(strings).map_err(|_| None)?;
        self.at = self.parser.read.index();
        Ok(s)
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

    /// `data`: whether it holds a value (null is an absent `data`),
    /// validated and skipped in one pass ([`skip::value`]: grammar, depth —
    /// the event object is level 1 —, `\u` escapes and numbers beyond
    /// binary64, nothing built).
    #[inline]
    fn data(&mut self) -> Result<bool, Stop> {
        if self.peek() == Some(b'n') {
            self.at += 1;
            return self.literal(b"ull").map(|()| false);
        }
        self.at = skip::value(self.bytes, self.at, MAX_DEPTH - 1).ok_or(None)?;
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
