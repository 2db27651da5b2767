//! The spec's rules on one event, written once: why a structured-mode
//! document or a binary-mode message is refused ([`DecodeError`]), which
//! reason wins when it breaks several, and the member-by-member checks
//! ([`Members`]) that every decoder drives — the serde visitor of
//! [`super::decode`], the native sonic-rs decoder of [`super::native`] and
//! the header reader of [`super::binary`] alike. The precedence is
//! documented on [`DecodeError`] ("Which reason wins").

use super::decode::MAX_DEPTH;
use super::event::{CloudEvent, ExtValue, Extensions};
use super::prescan::{bad_unicode_escape, nests_deeper, number_out_of_range};
use std::borrow::Cow;

/// Why a document is not a valid CloudEvent. [`DecodeError::reason`] is a
/// stable slug: results count errors under it.
///
/// # Which reason wins
/// A document that breaks several rules is counted under one reason, the
/// same whichever decoder refused it, by this order:
/// 1. `oversized`: the size is known before a byte is read;
/// 2. `invalid-utf8`: anywhere in the document;
/// 3. `too-deep`: arrays and objects nested deeper than
///    [`MAX_DEPTH`](super::decode::MAX_DEPTH), anywhere;
/// 4. `malformed-json`: anywhere (syntax, a truncated document, trailing
///    characters, a bad escape or a lone surrogate, a number beyond
///    binary64's range);
/// 5. `not-an-object`: the document is JSON, but not an object;
/// 6. the first member, in document order, that breaks a rule; within one
///    member: a repeated context attribute (`duplicate-attribute`), then an
///    extension name outside `[a-z0-9]+` (`bad-attribute-name`), then the
///    value (`mistyped-attribute`, `wrong-specversion`, `bad-base64`,
///    `bad-extension-value`), then a repeated extension
///    (`duplicate-attribute`: a null extension is an absent one, so a
///    repetition is known only once the value is read);
/// 7. after the last member: `missing-specversion`; then `id`, `source` and
///    `type`, in this order, each `missing-…` when absent or null and
///    `mistyped-attribute` when empty; then `data-and-data-base64`.
///
/// Rules 2–4 are about the bytes, 5–7 about the event: a document must be
/// JSON before it can be a CloudEvent, so its JSON is judged whole first,
/// even where a streaming decoder met an event rule before the syntax error
/// further on. Each decoder decides *whether* a document is valid its own
/// way, as fast as it can; once one refuses a document, the decoders name
/// the reason by this order from the bytes and the event rule the decoder
/// stopped at. That costs a second look at refused documents only, and
/// refused documents are counted, never timed.
///
/// ## In binary content mode
/// A binary-mode message ([`super::binary`]) follows the same order, read
/// for its parts: the attributes are its `ce-*` headers and its
/// `Content-Type` (the members, in header order), `data` is its body.
/// 1. `oversized`: header names, values and body together;
/// 2. – 4. `invalid-utf8`, `too-deep`, `malformed-json` are about the
///    body, and only when `Content-Type` is JSON (`application/json` or a
///    `+json` media type) and the body is not empty: `data` must be JSON
///    before the headers are judged, as in a structured document;
/// 5. `not-an-object` never applies (`data` may be any JSON value);
/// 6. the first header, in message order, that breaks a rule; within one
///    header: a repeated attribute (`duplicate-attribute`: a `ce-*` header
///    twice, or `Content-Type` twice), then the name (`bad-attribute-name`:
///    outside `[a-z0-9]+` once lower-cased — header names are
///    case-insensitive, so `CE-Subject` is `subject` — or `ce-data`,
///    `ce-data_base64` and `ce-datacontenttype`, which this mode carries
///    elsewhere), then the value's encoding (`bad-header-value`: a byte
///    outside printable ASCII, space and tab, a `%` without two hex digits,
///    a broken quoted string; then `invalid-utf8` when the percent-decoded
///    bytes are not UTF-8), then the value (`wrong-specversion`);
/// 7. after the last header: as in structured mode, without
///    `data-and-data-base64` (there is no `data_base64` in this mode).
///
/// Header values are strings, so `mistyped-attribute` means only an empty
/// `id`, `source` or `type`, and `bad-extension-value` never applies;
/// `bad-base64` never applies either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// Larger than the size limit.
    #[error("the document exceeds the size limit")]
    Oversized,
    /// The bytes are not UTF-8.
    #[error("the document is not valid UTF-8")]
    InvalidUtf8,
    /// Not JSON (syntax error, truncated, trailing characters).
    #[error("the document is not well-formed JSON")]
    MalformedJson,
    /// JSON, but not an object.
    #[error("the document is not a JSON object")]
    NotAnObject,
    /// A required attribute is absent (or null).
    #[error("the required attribute `{0}` is missing")]
    Missing(&'static str),
    /// An attribute has a value of the wrong JSON type, or is empty where the
    /// spec requires a non-empty string.
    #[error("the attribute `{0}` has a value of the wrong type or is empty")]
    Mistyped(&'static str),
    /// `specversion` is not "1.0".
    #[error("`specversion` is not \"1.0\"")]
    WrongSpecversion,
    /// An attribute name outside `[a-z0-9]+`.
    #[error("an attribute name is not lowercase a-z and 0-9")]
    BadAttributeName,
    /// An extension value that is not a string, an `i32` integer or a boolean.
    #[error("an extension value is not a string, a 32-bit integer or a boolean")]
    BadExtensionValue,
    /// The same attribute twice.
    #[error("an attribute appears twice")]
    DuplicateAttribute,
    /// Both `data` and `data_base64`.
    #[error("both `data` and `data_base64` are present")]
    DataAndDataBase64,
    /// `data_base64` is not base64.
    #[error("`data_base64` is not base64")]
    BadBase64,
    /// The document nests deeper than [`MAX_DEPTH`].
    #[error("the document nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Binary mode: a header value breaks the HTTP binding's encoding (a
    /// byte outside printable ASCII, space and tab; a `%` without two hex
    /// digits; a broken quoted string).
    #[error("a header value is not encoded as the HTTP binding requires")]
    BadHeaderValue,
}

impl DecodeError {
    /// The stable slug results count the error under.
    pub fn reason(self) -> &'static str {
        match self {
            DecodeError::Oversized => "oversized",
            DecodeError::InvalidUtf8 => "invalid-utf8",
            DecodeError::MalformedJson => "malformed-json",
            DecodeError::NotAnObject => "not-an-object",
            DecodeError::Missing("id") => "missing-id",
            DecodeError::Missing("source") => "missing-source",
            DecodeError::Missing("specversion") => "missing-specversion",
            // The only other required attribute.
            DecodeError::Missing(_) => "missing-type",
            DecodeError::Mistyped(_) => "mistyped-attribute",
            DecodeError::WrongSpecversion => "wrong-specversion",
            DecodeError::BadAttributeName => "bad-attribute-name",
            DecodeError::BadExtensionValue => "bad-extension-value",
            DecodeError::DuplicateAttribute => "duplicate-attribute",
            DecodeError::DataAndDataBase64 => "data-and-data-base64",
            DecodeError::BadBase64 => "bad-base64",
            DecodeError::TooDeep => "too-deep",
            DecodeError::BadHeaderValue => "bad-header-value",
        }
    }

    /// Every slug [`DecodeError::reason`] can return.
    pub const REASONS: [&'static str; 17] = [
        "oversized",
        "invalid-utf8",
        "malformed-json",
        "not-an-object",
        "missing-id",
        "missing-source",
        "missing-specversion",
        "missing-type",
        "mistyped-attribute",
        "wrong-specversion",
        "bad-attribute-name",
        "bad-extension-value",
        "duplicate-attribute",
        "data-and-data-base64",
        "bad-base64",
        "too-deep",
        "bad-header-value",
    ];
}

/// The reason a refused document is counted under (see "Which reason wins"
/// on [`DecodeError`]): the first of rules 2–4 the whole document breaks, else `noted`
/// (the event rule the decoder stopped at), else
/// [`DecodeError::MalformedJson`] (the decoder's parser refused what the
/// reference check accepts; the agreement tests forbid it).
#[cold]
pub(crate) fn refusal(document: &[u8], noted: Option<DecodeError>) -> DecodeError {
    json_error(document, MAX_DEPTH).or(noted).unwrap_or(DecodeError::MalformedJson)
}

/// The reason a refused binary-mode message is counted under: rules 2–4 on
/// its body when it is checked as JSON (`json_body`), else `noted`, else
/// [`DecodeError::MalformedJson`] (as [`refusal`]).
#[cold]
pub(crate) fn binary_refusal(json_body: Option<&[u8]>, noted: Option<DecodeError>) -> DecodeError {
    json_body.and_then(|body| json_error(body, MAX_DEPTH - 1)).or(noted).unwrap_or(DecodeError::MalformedJson)
}

/// Rules 2–4 on a whole JSON text nesting at most `depth` levels: UTF-8,
/// then depth, then well-formed JSON (the scans that hold every decoder to
/// what simd-json refuses, then serde_json validating into `IgnoredAny`).
fn json_error(document: &[u8], depth: usize) -> Option<DecodeError> {
    let Ok(text) = std::str::from_utf8(document) else { return Some(DecodeError::InvalidUtf8) };
    if nests_deeper(document, depth) {
        return Some(DecodeError::TooDeep);
    }
    let malformed = bad_unicode_escape(document)
        || number_out_of_range(document)
        || serde_json::from_str::<serde::de::IgnoredAny>(text).is_err();
    malformed.then_some(DecodeError::MalformedJson)
}

/// What a member of the event object sets, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attribute {
    /// `id`.
    Id,
    /// `source`.
    Source,
    /// `type`.
    Type,
    /// `specversion`.
    Specversion,
    /// `datacontenttype`.
    Datacontenttype,
    /// `dataschema`.
    Dataschema,
    /// `subject`.
    Subject,
    /// `time`.
    Time,
    /// `data` (any JSON value).
    Data,
    /// `data_base64`.
    DataBase64,
    /// Any other name: an extension attribute.
    Extension,
}

impl Attribute {
    /// The attribute named `name`.
    #[inline(always)]
    pub(crate) fn of(name: &str) -> Attribute {
        match name {
            "id" => Attribute::Id,
            "source" => Attribute::Source,
            "type" => Attribute::Type,
            "specversion" => Attribute::Specversion,
            "datacontenttype" => Attribute::Datacontenttype,
            "dataschema" => Attribute::Dataschema,
            "subject" => Attribute::Subject,
            "time" => Attribute::Time,
            "data" => Attribute::Data,
            "data_base64" => Attribute::DataBase64,
            _ => Attribute::Extension,
        }
    }

    /// The name errors report (`extension` for any extension).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Attribute::Id => "id",
            Attribute::Source => "source",
            Attribute::Type => "type",
            Attribute::Specversion => "specversion",
            Attribute::Datacontenttype => "datacontenttype",
            Attribute::Dataschema => "dataschema",
            Attribute::Subject => "subject",
            Attribute::Time => "time",
            Attribute::Data => "data",
            Attribute::DataBase64 => "data_base64",
            Attribute::Extension => "extension",
        }
    }
}

/// An event as its members stream by, in document order: each method
/// applies rule 6 of "Which reason wins" ([`DecodeError`]) to one member, and
/// [`Members::finish`] those of rule 7. Every decoder drives it the same
/// way: [`Members::attribute`] with the name, then the method for that
/// attribute's value.
pub(crate) struct Members<'e, 'o, X> {
    /// The event being filled, owned by the caller so that it is returned
    /// from where it was built: it is several hundred bytes, and each move
    /// is a copy.
    event: &'e mut CloudEvent<'o, X>,
    id: Option<Cow<'o, str>>,
    source: Option<Cow<'o, str>>,
    ty: Option<Cow<'o, str>>,
    specversion: bool,
    /// Context attributes seen, one bit per [`Attribute`].
    seen: u16,
}

impl<'e, 'o, X: Extensions<'o>> Members<'e, 'o, X> {
    /// Members that fill `event` (a default one).
    #[inline]
    pub(crate) fn new(event: &'e mut CloudEvent<'o, X>) -> Self {
        Members { event, id: None, source: None, ty: None, specversion: false, seen: 0 }
    }

    /// The attribute a member named `name` sets; refuses a context attribute
    /// seen before and an extension name outside `[a-z0-9]+`.
    #[inline(always)]
    pub(crate) fn attribute(&mut self, name: &str) -> Result<Attribute, DecodeError> {
        let attribute = Attribute::of(name);
        if attribute == Attribute::Extension {
            if !valid_name(name) {
                return Err(DecodeError::BadAttributeName);
            }
        } else {
            let bit = 1u16 << attribute as u16;
            if self.seen & bit != 0 {
                return Err(DecodeError::DuplicateAttribute);
            }
            self.seen |= bit;
        }
        Ok(attribute)
    }

    /// The value of a string attribute (`None`: null, an absent attribute):
    /// any [`Attribute`] but `Data` and `Extension`, which have their own
    /// methods. A decoder refuses a value of another JSON type itself, as
    /// [`DecodeError::Mistyped`] with [`Attribute::name`].
    #[inline(always)]
    pub(crate) fn string(&mut self, attribute: Attribute, value: Option<Cow<'o, str>>) -> Result<(), DecodeError> {
        match attribute {
            Attribute::Id => self.id = value,
            Attribute::Source => self.source = value,
            Attribute::Type => self.ty = value,
            Attribute::Specversion => self.specversion(value.as_deref())?,
            Attribute::Datacontenttype => self.event.datacontenttype = value,
            Attribute::Dataschema => self.event.dataschema = value,
            Attribute::Subject => self.event.subject = value,
            Attribute::Time => self.event.time = value,
            Attribute::DataBase64 => {
                if value.as_deref().is_some_and(|b| !valid_base64(b)) {
                    return Err(DecodeError::BadBase64);
                }
                self.event.data_base64 = value;
            }
            Attribute::Data | Attribute::Extension => {
                unreachable!("`data` and extensions have methods of their own")
            }
        }
        Ok(())
    }

    /// The value of `specversion` (`None`: null): it must be "1.0".
    #[inline(always)]
    pub(crate) fn specversion(&mut self, value: Option<&str>) -> Result<(), DecodeError> {
        match value {
            Some("1.0") => self.specversion = true,
            Some(_) => return Err(DecodeError::WrongSpecversion),
            None => {}
        }
        Ok(())
    }

    /// Whether `data` holds a value (a null `data` is an absent one); the
    /// decoder has validated and skipped it.
    #[inline]
    pub(crate) fn data(&mut self, present: bool) {
        self.event.data = present;
    }

    /// An extension's value (`None`: null, an absent attribute); refuses a
    /// name already set. A decoder refuses a value that is not a string, an
    /// `i32` integer or a boolean itself ([`DecodeError::BadExtensionValue`]).
    #[inline(always)]
    pub(crate) fn extension(&mut self, name: Cow<'o, str>, value: Option<ExtValue<'o>>) -> Result<(), DecodeError> {
        match value {
            Some(value) => self.event.extensions.insert(name, value).map_err(|()| DecodeError::DuplicateAttribute),
            None => Ok(()),
        }
    }

    /// Once every member is in: rule 7, and the required attributes set in
    /// the event.
    #[inline(always)]
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if !self.specversion {
            return Err(DecodeError::Missing("specversion"));
        }
        let required = |value: Option<Cow<'o, str>>, name: &'static str| match value {
            None => Err(DecodeError::Missing(name)),
            Some(v) if v.is_empty() => Err(DecodeError::Mistyped(name)),
            Some(v) => Ok(v),
        };
        self.event.id = required(self.id, "id")?;
        self.event.source = required(self.source, "source")?;
        self.event.ty = required(self.ty, "type")?;
        if self.event.data && self.event.data_base64.is_some() {
            return Err(DecodeError::DataAndDataBase64);
        }
        Ok(())
    }
}

/// An extension attribute's name: `[a-z0-9]+`.
#[inline]
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Standard base64 with padding (RFC 4648 §4), as the JSON format requires
/// for `data_base64`: checked, not decoded (range tests over 32-byte chunks,
/// which the compiler vectorises).
pub fn valid_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let body = match b {
        [rest @ .., b'=', b'='] => rest,
        [rest @ .., b'='] => rest,
        _ => b,
    };
    let symbol =
        |c: u8| c.is_ascii_uppercase() | c.is_ascii_lowercase() | c.is_ascii_digit() | (c == b'+') | (c == b'/');
    let mut chunks = body.chunks_exact(32);
    for chunk in &mut chunks {
        if !chunk.iter().fold(true, |ok, &c| ok & symbol(c)) {
            return false;
        }
    }
    if !chunks.remainder().iter().all(|&c| symbol(c)) {
        return false;
    }
    // The last symbol before padding must not carry bits the padding drops
    // (canonical encoding, as the `base64` crate requires).
    let pad = b.len() - body.len();
    match (pad, body.last()) {
        (0, _) | (_, None) => true,
        (1, Some(&c)) => sextet(c) & 0b11 == 0,
        (_, Some(&c)) => sextet(c) & 0b1111 == 0,
    }
}

/// The 6-bit value of a base64 symbol (already checked to be one).
fn sextet(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    }
}
