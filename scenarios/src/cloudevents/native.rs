//! The native decoder: sonic-rs's own parser driven member by member, with
//! no serde visitor between the bytes and the event.
//!
//! The serde decoders hand each value to a visitor through serde's generic
//! `Deserializer` protocol: every member goes through `deserialize_any` or
//! `deserialize_str`, a seed, a visitor and the decoder's error type, and
//! the reason a document is refused has to be smuggled out through a side
//! cell. Here the loop over the event object is written against
//! `sonic_rs::parser::Parser` directly (its raw, public API): it reads a key,
//! decides from the name what the value must be, and reads exactly that —
//! a string in place, a literal, a number's text, or a checked skip for
//! `data` — then hands it to the same [`Members`] the serde visitor feeds,
//! so the spec's rules are the ones written once in [`super::rules`].
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
//!   `IgnoredAny` uses), and the scans of [`super::decode`] for depth,
//!   `\u` escapes and numbers beyond binary64 run before it, as for the
//!   serde sonic-rs decoder.
//! - **No panic** on any byte sequence (a property test feeds it random and
//!   mutated documents).
//!
//! Based on: sonic-rs's `ObjectJsonIter::parse_entry_lazy` (the same steps,
//! without the iterator's per-call key buffer, which would be one
//! allocation per event).

use super::decode::Strings;
use super::event::{CloudEvent, ExtValue, Extensions};
use super::rules::{Attribute, DecodeError, Members};
use sonic_rs::Read;
use sonic_rs::parser::{Parser, Reference};
use sonic_rs::reader::Reader;
use std::borrow::Cow;

/// Why the native decoder stopped: `Some` with the event rule a member or
/// the end of the object broke, `None` when the parser refused the bytes.
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
    let mut parser = Parser::new(Read::from(input));
    if parser.read.check_utf8_final().is_err() {
        return Err(None);
    }
    match parser.skip_space() {
        Some(b'{') => {}
        Some(_) => return Err(Some(DecodeError::NotAnObject)),
        None => return Err(None),
    }
    let mut members = Members::<'o, X>::default();
    let mut first = true;
    loop {
        match (parser.skip_space(), first) {
            (Some(b'}'), _) => break,
            (Some(b'"'), true) => first = false,
            (Some(b','), false) if parser.skip_space() == Some(b'"') => {}
            _ => return Err(None),
        }
        let key = parser.parse_str(strings).map_err(|_| None)?;
        let attribute = members.attribute(&key).map_err(Some)?;
        // An extension keeps its name (an escaped one is copied out of the
        // buffer the value may need next); the others are done with it.
        let name: Option<Cow<'o, str>> = (attribute == Attribute::Extension).then(|| match key {
            Reference::Borrowed(s) => S::borrowed(s),
            Reference::Copied(s) => Cow::Owned(s.to_owned()),
        });
        if parser.skip_space() != Some(b':') {
            return Err(None);
        }
        match attribute {
            Attribute::Data => members.data(data(&mut parser)?),
            Attribute::Specversion => {
                let value = match string_or_null(&mut parser, strings, attribute)? {
                    Some(Reference::Borrowed(s)) => Some(s),
                    Some(Reference::Copied(s)) => Some(s),
                    None => None,
                };
                members.specversion(value).map_err(Some)?;
            }
            Attribute::Extension => {
                let value = extension::<S>(&mut parser, strings)?;
                members.extension(name.expect("an extension keeps its name"), value).map_err(Some)?;
            }
            _ => {
                let value = string_or_null(&mut parser, strings, attribute)?.map(|s| match s {
                    Reference::Borrowed(s) => S::borrowed(s),
                    Reference::Copied(s) => Cow::Owned(s.to_owned()),
                });
                members.string(attribute, value).map_err(Some)?;
            }
        }
    }
    if parser.skip_space().is_some() {
        return Err(None);
    }
    members.finish().map_err(Some)
}

/// A string attribute's value: a string, or null (`None`); any other value
/// is [`DecodeError::Mistyped`].
#[inline]
fn string_or_null<'de, 'b>(
    parser: &mut Parser<Read<'de>>,
    strings: &'b mut Vec<u8>,
    attribute: Attribute,
) -> Result<Option<Reference<'de, 'b, str>>, Stop> {
    match parser.skip_space() {
        Some(b'"') => parser.parse_str(strings).map(Some).map_err(|_| None),
        Some(b'n') => parser.parse_literal("ull").map(|()| None).map_err(|_| None),
        Some(_) => Err(Some(DecodeError::Mistyped(attribute.name()))),
        None => Err(None),
    }
}

/// `data`: whether it holds a value (null is an absent `data`), skipped
/// with sonic-rs's checked skip (every string, number and bracket
/// validated; nothing built).
#[inline]
fn data(parser: &mut Parser<Read<'_>>) -> Result<bool, Stop> {
    if parser.skip_space_peek() == Some(b'n') {
        parser.skip_space();
        return parser.parse_literal("ull").map(|()| false).map_err(|_| None);
    }
    parser.skip_one(true).map(|_| true).map_err(|_| None)
}

/// An extension's value: a string, a boolean, an integer in `i32` range, or
/// null (`None`); anything else is [`DecodeError::BadExtensionValue`].
#[inline]
fn extension<'de, 'o, S: Strings<'de, 'o>>(
    parser: &mut Parser<Read<'de>>,
    strings: &mut Vec<u8>,
) -> Result<Option<ExtValue<'o>>, Stop> {
    let literal = |parser: &mut Parser<Read<'de>>, rest: &str, value: Option<ExtValue<'o>>| {
        parser.parse_literal(rest).map(|()| value).map_err(|_| None)
    };
    match parser.skip_space() {
        Some(b'"') => match parser.parse_str(strings).map_err(|_| None)? {
            Reference::Borrowed(s) => Ok(Some(ExtValue::String(S::borrowed(s)))),
            Reference::Copied(s) => Ok(Some(ExtValue::String(Cow::Owned(s.to_owned())))),
        },
        Some(b't') => literal(parser, "rue", Some(ExtValue::Boolean(true))),
        Some(b'f') => literal(parser, "alse", Some(ExtValue::Boolean(false))),
        Some(b'n') => literal(parser, "ull", None),
        Some(first @ (b'-' | b'0'..=b'9')) => {
            let text = parser.skip_number(first).map_err(|_| None)?;
            integer(text).map(|i| Some(ExtValue::Integer(i))).ok_or(Some(DecodeError::BadExtensionValue))
        }
        Some(_) => Err(Some(DecodeError::BadExtensionValue)),
        None => Err(None),
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
