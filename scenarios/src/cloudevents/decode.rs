//! Decoding: one `serde` visitor, written once, driven by each of the three
//! serde JSON decoders, and the native sonic-rs decoder
//! ([`Decoder::SonicRsNative`]), which drives sonic-rs's parser directly;
//! all four check every spec rule as the attributes stream by, through the
//! same rules.
//!
//! The visitor is a [`DeserializeSeed`] so that it can note *why* it refused
//! a document in a side cell: each decoder wraps the refusal in its own error
//! type, and the reason survives as a typed [`DecodeError`] with a stable
//! slug.
//!
//! # Fair treatment of the decoders
//! simd-json parses in place: it needs the document in a mutable buffer. So
//! every decoder gets the same treatment: [`Decoders::decode`] copies the
//! document into a reused buffer (the copy is inside what is timed for all
//! of them), then the chosen decoder parses that buffer. simd-json runs through
//! `fill_tape_padded` with a reused tape and reused buffers, so that it
//! allocates nothing per document either; its SIMD path is chosen at run
//! time. sonic-rs chooses its SIMD path at compile time (see
//! [`sonic_rs_features`]); serde_json is scalar.
//!
//! Where the decoders differ in strictness, the stricter rule holds for all:
//! the whole document must be UTF-8 (serde_json would not look inside the
//! `data` it skips, so it gets a `std::str::from_utf8` first; sonic-rs
//! validates the whole input when it makes its reader but reports it only
//! for strings it reads, so its reader's verdict is read first), nest at most
//! [`MAX_DEPTH`] levels, carry no `\u` escape without four hexadecimal
//! digits and no lone UTF-16 surrogate escape, and no number beyond
//! binary64's range (all checked before serde_json and both sonic-rs
//! decoders parse, by scans that settle a typical document in one SIMD pass
//! each; simd-json checks them in its tape builder).
//!
//! # Numbers
//! RFC 8259 (§6) allows any number literal and lets an implementation limit
//! range and precision; IEEE 754 binary64 is what it names for
//! interoperability. simd-json refuses a number whose magnitude rounds to
//! infinity (`1e309`, `-1e9999`, an integer of 310 digits) wherever it is,
//! and has no option to accept it. So the rule for all three is binary64's
//! range: such a number makes the document [`DecodeError::MalformedJson`],
//! even inside the `data` serde_json and sonic-rs skip. Every other number
//! is accepted: one that underflows rounds to zero (`1e-9999`), one with
//! more digits than binary64 keeps is rounded
//! (`0.1000000000000000055511151231257827`), and an integer beyond 64 bits
//! becomes a float (`18446744073709551616`: simd-json's `big-int-as-float`
//! feature, as serde_json and sonic-rs do), so it is a
//! [`DecodeError::BadExtensionValue`] as an extension, like `1.5`. serde_json
//! is built with `float_roundtrip`, so that it rounds as the other two at
//! the edge (`1.7976931348623158e308` is `f64::MAX`, `…59e308` infinite).
//! An extension's integer is a token without fraction or exponent, and not
//! `-0`: serde_json and sonic-rs read `-0` as the float -0.0 (a sign no
//! `i32` keeps), so it is a [`DecodeError::BadExtensionValue`] like `-0.0`;
//! simd-json reads it as 0, so on its path an extension that is 0 (rare)
//! has its token looked up in the text.
//!
//! # Which reason wins
//! A document that breaks several rules is refused for the same reason by
//! every decoder, by the precedence documented on [`DecodeError`]: each
//! decoder decides whether a document is valid its own way (simd-json
//! validates the whole document before the visitor sees any of it,
//! serde_json and sonic-rs stream), and a refused document's reason is then
//! named from its bytes and the rule the decoder stopped at, untimed. The
//! property tests in `tests/cloudevents_decoders.rs` hold every decoder to
//! the same verdict and the same reason.

use super::Decoder;
use super::binary::{self, Message};
use super::event::{CloudEvent, ExtValue, Extensions};
use super::native;
use super::prescan::{bad_unicode_escape, first_negative_zero_member, nests_deeper, number_out_of_range};
use super::rules::{Attribute, Members, binary_refusal, refusal};
pub use super::rules::{DecodeError, valid_base64};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use sonic_rs::reader::Reader;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

/// Deepest nesting of a document (its own object included) any decoder
/// accepts. simd-json enforces it in its tape builder; for serde_json and
/// sonic-rs a scan enforces it before parsing — sonic-rs skips `data`
/// recursively and would otherwise exhaust the stack on a hostile document
/// (about 1 KiB of stack per level in release builds, 33 KiB in debug
/// builds: the harness gives its producer threads [`STACK_BYTES`]).
pub const MAX_DEPTH: usize = 128;

/// The stack a thread decoding documents of up to [`MAX_DEPTH`] levels needs
/// (with room for a debug build).
pub const STACK_BYTES: usize = 16 << 20;

/// Default size limit of one document, bytes: 64 KiB, the size the CloudEvents
/// spec requires intermediaries to forward.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// How strings land in the event: borrowed from the input where the decoder
/// can (`'o = 'de`), or always copied (`'o = 'static`).
pub trait Strings<'de, 'o> {
    /// A string that lives as long as the input.
    fn borrowed(s: &'de str) -> Cow<'o, str>;
}

/// Borrow from the input where possible.
pub struct Borrow;
impl<'de> Strings<'de, 'de> for Borrow {
    #[inline]
    fn borrowed(s: &'de str) -> Cow<'de, str> {
        Cow::Borrowed(s)
    }
}

/// Copy every string.
pub struct Own;
impl<'de> Strings<'de, 'static> for Own {
    #[inline]
    fn borrowed(s: &'de str) -> Cow<'static, str> {
        Cow::Owned(s.to_owned())
    }
}

/// Notes the reason of a refusal and returns the decoder's error for it.
fn refuse<E: de::Error>(why: &Cell<Option<DecodeError>>, error: DecodeError) -> E {
    why.set(Some(error));
    E::custom(error.reason())
}

/// A string (or null → `None`) for attribute `name`.
struct StrSeed<'w, 'o, S> {
    why: &'w Cell<Option<DecodeError>>,
    name: &'static str,
    _s: PhantomData<fn() -> (S, &'o ())>,
}

impl<'de, 'o, S: Strings<'de, 'o>> DeserializeSeed<'de> for StrSeed<'_, 'o, S> {
    type Value = Option<Cow<'o, str>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'o, S: Strings<'de, 'o>> Visitor<'de> for StrSeed<'_, 'o, S> {
    type Value = Option<Cow<'o, str>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string for `{}`", self.name)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(S::borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::Mistyped(self.name)))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::Mistyped(self.name)))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::Mistyped(self.name)))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::Mistyped(self.name)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(refuse(self.why, DecodeError::Mistyped(self.name)))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(refuse(self.why, DecodeError::Mistyped(self.name)))
    }
}

/// An attribute name: borrowed where the decoder allows (extension names
/// are kept).
struct KeySeed<'o, S>(PhantomData<fn() -> (S, &'o ())>);

impl<'de, 'o, S: Strings<'de, 'o>> DeserializeSeed<'de> for KeySeed<'o, S> {
    type Value = Cow<'o, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'o, S: Strings<'de, 'o>> Visitor<'de> for KeySeed<'o, S> {
    type Value = Cow<'o, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(S::borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// An extension value (null → `None`: the attribute is absent).
struct ExtSeed<'w, 'o, S> {
    why: &'w Cell<Option<DecodeError>>,
    /// Whether a 0 here may be the token `-0` (simd-json's path: see
    /// [`NegativeZero`]), with the member's ordinal.
    zero: Option<(&'w NegativeZero<'w>, usize)>,
    _s: PhantomData<fn() -> (S, &'o ())>,
}

impl<S> ExtSeed<'_, '_, S> {
    /// An integer value: in `i32` range, and not `-0` (see "Numbers").
    fn integer<E: de::Error, I: TryInto<i32> + PartialEq + Default>(
        self,
        v: I,
    ) -> Result<Option<ExtValue<'static>>, E> {
        if v == I::default() && self.zero.is_some_and(|(zero, member)| zero.first_member() == Some(member)) {
            return Err(refuse(self.why, DecodeError::BadExtensionValue));
        }
        v.try_into().map(|i| Some(ExtValue::Integer(i))).map_err(|_| refuse(self.why, DecodeError::BadExtensionValue))
    }
}

/// Where the document's first top-level member whose value is the token
/// `-0` is (its ordinal), found in the text the first time it is asked:
/// simd-json reads `-0` as the integer 0, where serde_json and sonic-rs
/// read the float -0.0, so its path asks when an extension is 0 (rarely)
/// and refuses the value as they do.
struct NegativeZero<'d> {
    document: &'d [u8],
    first: std::cell::OnceCell<Option<usize>>,
}

impl NegativeZero<'_> {
    fn first_member(&self) -> Option<usize> {
        *self.first.get_or_init(|| first_negative_zero_member(self.document))
    }
}

impl<'de, 'o, S: Strings<'de, 'o>> DeserializeSeed<'de> for ExtSeed<'_, 'o, S> {
    type Value = Option<ExtValue<'o>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'o, S: Strings<'de, 'o>> Visitor<'de> for ExtSeed<'_, 'o, S> {
    type Value = Option<ExtValue<'o>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an integer or a boolean")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(ExtValue::String(S::borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(ExtValue::String(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(ExtValue::String(Cow::Owned(v))))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(ExtValue::Boolean(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.integer(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.integer(v)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::BadExtensionValue))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(refuse(self.why, DecodeError::BadExtensionValue))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(refuse(self.why, DecodeError::BadExtensionValue))
    }
}

/// `data`: null (absent) or any JSON value, validated and skipped
/// (`deserialize_ignored_any`: no value is built, no number converted).
struct DataSkip;

impl<'de> DeserializeSeed<'de> for DataSkip {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for DataSkip {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        <de::IgnoredAny as de::Deserialize>::deserialize(d)?;
        Ok(true)
    }
}

/// Ties types to an output lifetime, owning nothing.
type Marker<'o, T> = PhantomData<fn() -> (T, &'o ())>;

/// The whole event.
struct EventSeed<'w, 'o, S, X> {
    why: &'w Cell<Option<DecodeError>>,
    /// Set on simd-json's path only (see [`NegativeZero`]).
    zero: Option<&'w NegativeZero<'w>>,
    _types: Marker<'o, (S, X)>,
}

impl<'de, 'o, S: Strings<'de, 'o>, X: Extensions<'o>> DeserializeSeed<'de> for EventSeed<'_, 'o, S, X> {
    type Value = CloudEvent<'o, X>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'o, S: Strings<'de, 'o>, X: Extensions<'o>> Visitor<'de> for EventSeed<'_, 'o, S, X> {
    type Value = CloudEvent<'o, X>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CloudEvents JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let why = self.why;
        let fail = |error| refuse::<A::Error>(why, error);
        let mut event = CloudEvent::<'o, X>::default();
        let mut members = Members::new(&mut event);
        let mut ordinal = 0;
        while let Some(key) = map.next_key_seed(KeySeed::<'o, S>(PhantomData))? {
            let member = ordinal;
            ordinal += 1;
            let attribute = members.attribute(&key).map_err(fail)?;
            let applied = match attribute {
                // A null `data` is an absent one.
                Attribute::Data => {
                    members.data(map.next_value_seed(DataSkip)?);
                    Ok(())
                }
                Attribute::Extension => {
                    let zero = self.zero.map(|zero| (zero, member));
                    let value = map.next_value_seed(ExtSeed::<'_, 'o, S> { why, zero, _s: PhantomData })?;
                    members.extension(key, value)
                }
                _ => {
                    let value =
                        map.next_value_seed(StrSeed::<'_, 'o, S> { why, name: attribute.name(), _s: PhantomData })?;
                    members.string(attribute, value)
                }
            };
            applied.map_err(fail)?;
        }
        members.finish().map_err(fail)?;
        Ok(event)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::NotAnObject))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::NotAnObject))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::NotAnObject))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::NotAnObject))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::NotAnObject))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::NotAnObject))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(refuse(self.why, DecodeError::NotAnObject))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(refuse(self.why, DecodeError::NotAnObject))
    }
}

/// Limits a document must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest document, bytes.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: DEFAULT_MAX_BYTES }
    }
}

/// The reusable state of the decoders: the mutable input buffer every
/// decoder parses from, simd-json's tape and buffers, the buffer the
/// native decoder unescapes strings into, and those binary mode decodes
/// header values into. One per thread.
pub struct Decoders {
    input: Vec<u8>,
    strings: Vec<u8>,
    simd_buffers: simd_json::Buffers,
    /// For a binary-mode body, which is `data` alone: one level less.
    simd_data_buffers: simd_json::Buffers,
    simd_tape: Option<simd_json::Tape<'static>>,
    headers: Vec<u8>,
    slots: Vec<binary::Slot>,
}

impl Default for Decoders {
    fn default() -> Self {
        Decoders {
            input: Vec::with_capacity(4096 + simd_json::INPUT_PADDING),
            strings: Vec::with_capacity(256),
            simd_buffers: simd_json::Buffers::with_max_depth(4096, MAX_DEPTH),
            simd_data_buffers: simd_json::Buffers::with_max_depth(4096, MAX_DEPTH - 1),
            simd_tape: Some(simd_json::Tape::null()),
            headers: Vec::with_capacity(1024),
            slots: Vec::with_capacity(32),
        }
    }
}

impl fmt::Debug for Decoders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoders").field("input_capacity", &self.input.capacity()).finish_non_exhaustive()
    }
}

impl Decoders {
    /// Copies `document` into the reused mutable buffer (every decoder pays
    /// this copy) and decodes it with `decoder` into the representation
    /// `S` picks: [`Borrow`] ties the event to this `Decoders` (the buffer),
    /// [`Own`] makes it independent.
    pub fn decode<'s, 'o, S, X>(
        &'s mut self,
        decoder: Decoder,
        document: &[u8],
        limits: Limits,
    ) -> Result<CloudEvent<'o, X>, DecodeError>
    where
        S: Strings<'s, 'o>,
        X: Extensions<'o>,
    {
        if document.len() > limits.max_bytes {
            return Err(DecodeError::Oversized);
        }
        let len = document.len();
        self.input.clear();
        self.input.extend_from_slice(document);
        let why = Cell::new(None);
        let zero = NegativeZero { document, first: std::cell::OnceCell::new() };
        let simd = decoder == Decoder::SimdJson;
        let seed = EventSeed::<'_, 'o, S, X> { why: &why, zero: simd.then_some(&zero), _types: PhantomData };
        if matches!(decoder, Decoder::SerdeJson | Decoder::SonicRs)
            && (nests_deeper(document, MAX_DEPTH) || bad_unicode_escape(document) || number_out_of_range(document))
        {
            // What simd-json refuses while building its tape, and the others
            // would let through in the `data` they skip (the native decoder
            // runs the same scans over `data` alone).
            return Err(refusal(document, None));
        }
        let result = match decoder {
            Decoder::SerdeJson => {
                // serde_json checks UTF-8 only in the strings it reads, not
                // in those it skips (`data`): check the whole document first,
                // as simd-json and sonic-rs do, then parse it as a `str`.
                let Ok(text) = std::str::from_utf8(&self.input) else { return Err(refusal(document, None)) };
                let mut de = serde_json::Deserializer::from_str(text);
                seed.deserialize(&mut de).and_then(|event| de.end().map(|()| event)).map_err(|_| ())
            }
            Decoder::SonicRs => {
                // sonic-rs validates the whole input as UTF-8 (SIMD) when it
                // makes its reader, but reports it only in the strings it
                // reads, not in those it skips (`data`): its verdict is read
                // here, as the native decoder does (found by
                // `invalid_utf8_inside_skipped_data_is_refused_everywhere`).
                let read = sonic_rs::Read::from(&self.input[..]);
                if read.check_utf8_final().is_err() {
                    return Err(refusal(document, None));
                }
                let mut de = sonic_rs::Deserializer::new(read);
                seed.deserialize(&mut de).and_then(|event| de.end().map(|()| event)).map_err(|_| ())
            }
            // Returned from here: through `result` the event would be moved
            // (copied) once more.
            Decoder::SonicRsNative => {
                return native::decode::<S, X>(&self.input, &mut self.strings)
                    .map_err(|noted| refusal(document, noted));
            }
            Decoder::SimdJson => {
                self.input.resize(len + simd_json::INPUT_PADDING, b' ');
                let mut tape = self.simd_tape.take().unwrap_or_else(simd_json::Tape::null).reset();
                let parsed = simd_json::fill_tape_padded(&mut self.input, len, &mut self.simd_buffers, &mut tape);
                match parsed {
                    Err(_) => {
                        self.simd_tape = Some(tape.reset());
                        Err(())
                    }
                    Ok(()) => {
                        let mut de = simd_json::Deserializer::from_tape(tape);
                        let event = seed.deserialize(&mut de).map_err(|_| ());
                        self.simd_tape = Some(de.into_tape().reset());
                        event
                    }
                }
            }
        };
        result.map_err(|()| refusal(document, why.get()))
    }

    /// Decodes `content` in its own mode: [`Decoders::decode`] or
    /// [`Decoders::decode_binary`].
    #[inline]
    pub fn decode_content<'s, 'o, S, X>(
        &'s mut self,
        decoder: Decoder,
        content: &'s super::Content,
        limits: Limits,
    ) -> Result<CloudEvent<'o, X>, DecodeError>
    where
        S: Strings<'s, 'o>,
        X: Extensions<'o>,
    {
        match content {
            super::Content::Structured(document) => self.decode::<S, X>(decoder, document, limits),
            super::Content::Binary(message) => self.decode_binary::<S, X>(decoder, message, limits),
        }
    }

    /// Decodes a binary-mode `message` ([`binary`]) into the representation
    /// `S` picks: [`Borrow`] ties the event to the message (values that
    /// need no decoding) and to this `Decoders` (decoded ones), [`Own`]
    /// makes it independent. The headers are read the same way whatever the
    /// decoder; `decoder` checks the body when it is JSON (copied into the
    /// reused mutable buffer first, as a structured document is), which,
    /// being `data` alone, may nest [`MAX_DEPTH`] − 1 levels, as `data` may
    /// in a structured document.
    pub fn decode_binary<'s, 'o, S, X>(
        &'s mut self,
        decoder: Decoder,
        message: &'s Message,
        limits: Limits,
    ) -> Result<CloudEvent<'o, X>, DecodeError>
    where
        S: Strings<'s, 'o>,
        X: Extensions<'o>,
    {
        if message.len() > limits.max_bytes {
            return Err(DecodeError::Oversized);
        }
        let Decoders { input, simd_data_buffers, simd_tape, headers, slots, .. } = self;
        let (json, event) = binary::decode::<S, X>(message, headers, slots);
        let body = json.then(|| message.body());
        let event = event.map_err(|noted| binary_refusal(body, Some(noted)))?;
        if let Some(body) = body
            && !valid_data(decoder, body, input, simd_data_buffers, simd_tape)
        {
            return Err(binary_refusal(Some(body), None));
        }
        Ok(event)
    }
}

/// Whether `body`, a binary-mode message's body, is JSON nesting at most
/// [`MAX_DEPTH`] − 1 levels, as `decoder` checks it: copied into `input`
/// first, and held to the same stricter rules as a structured document's
/// `data` (see "Fair treatment of the decoders").
fn valid_data(
    decoder: Decoder,
    body: &[u8],
    input: &mut Vec<u8>,
    simd_buffers: &mut simd_json::Buffers,
    simd_tape: &mut Option<simd_json::Tape<'static>>,
) -> bool {
    use serde::Deserialize;
    input.clear();
    input.extend_from_slice(body);
    let prescan = || nests_deeper(body, MAX_DEPTH - 1) || bad_unicode_escape(body) || number_out_of_range(body);
    match decoder {
        Decoder::SerdeJson => {
            let Ok(text) = std::str::from_utf8(input) else { return false };
            if prescan() {
                return false;
            }
            let mut de = serde_json::Deserializer::from_str(text);
            de::IgnoredAny::deserialize(&mut de).is_ok() && de.end().is_ok()
        }
        Decoder::SonicRs => {
            // sonic-rs's serde skip does not report invalid UTF-8 in the
            // strings it skips, and the whole body is skipped: its reader's
            // verdict is read first (see `Decoders::decode`).
            let read = sonic_rs::Read::from(&input[..]);
            if read.check_utf8_final().is_err() || prescan() {
                return false;
            }
            let mut de = sonic_rs::Deserializer::new(read);
            de::IgnoredAny::deserialize(&mut de).is_ok() && de.end().is_ok()
        }
        Decoder::SonicRsNative => native::valid_data(input),
        Decoder::SimdJson => {
            let len = input.len();
            input.resize(len + simd_json::INPUT_PADDING, b' ');
            let mut tape = simd_tape.take().unwrap_or_else(simd_json::Tape::null).reset();
            let valid = simd_json::fill_tape_padded(input, len, simd_buffers, &mut tape).is_ok();
            *simd_tape = Some(tape.reset());
            valid
        }
    }
}

/// The extension container as a family over lifetimes, so that generic code
/// can name `StructExtensions<'a>` for any `'a`.
pub trait ExtensionsFamily: 'static {
    /// The container for strings living `'a`.
    type Of<'a>: Extensions<'a>;
}

/// [`super::StructExtensions`] as a family.
pub struct StructFamily;
impl ExtensionsFamily for StructFamily {
    type Of<'a> = super::StructExtensions<'a>;
}

/// [`super::MapExtensions`] as a family.
pub struct MapFamily;
impl ExtensionsFamily for MapFamily {
    type Of<'a> = super::MapExtensions<'a>;
}

/// sonic-rs's SIMD path is fixed when it is compiled: the target features it
/// may use (`avx2`, `sse4.2`, `pclmulqdq` on x86-64; `neon` on AArch64) and
/// whether this build enabled them, for the run metadata.
pub fn sonic_rs_features() -> Vec<(&'static str, bool)> {
    vec![
        ("avx2", cfg!(target_feature = "avx2")),
        ("sse4.2", cfg!(target_feature = "sse4.2")),
        ("pclmulqdq", cfg!(target_feature = "pclmulqdq")),
        ("neon", cfg!(target_feature = "neon")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::{MapExtensions, StructExtensions};

    fn decode_all(doc: &str) -> Vec<Result<CloudEvent<'static, StructExtensions<'static>>, DecodeError>> {
        Decoder::ALL
            .iter()
            .map(|&d| {
                Decoders::default().decode::<Own, StructExtensions<'static>>(d, doc.as_bytes(), Limits::default())
            })
            .collect()
    }

    fn reason(doc: &str) -> &'static str {
        let results = decode_all(doc);
        let reasons: Vec<_> = results.iter().map(|r| r.as_ref().map(|_| "ok").unwrap_or_else(|e| e.reason())).collect();
        assert!(reasons.windows(2).all(|w| w[0] == w[1]), "decoders disagree on {doc}: {reasons:?}");
        reasons[0]
    }

    const MIN: &str = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t""#;

    fn with(extra: &str) -> String {
        format!("{MIN}{extra}}}")
    }

    #[test]
    fn a_minimal_event_decodes_alike_everywhere() {
        assert_eq!(reason(&with("")), "ok");
        let events = decode_all(&with(r#","traceparent":"00-ab","sampled":true,"severitynumber":9,"xyz":"q""#));
        let first = events[0].as_ref().expect("valid");
        assert_eq!(first.extensions.traceparent.as_deref(), Some("00-ab"));
        assert_eq!(first.extensions.sampled, Some(true));
        assert_eq!(first.extensions.severitynumber, Some(9));
        assert_eq!(first.extensions.other.len(), 1);
        assert!(events.iter().all(|e| e.as_ref() == Ok(first)));
    }

    #[test]
    fn spec_rules_are_enforced_with_their_reasons() {
        for (doc, want) in [
            (r#"{"id":"1","source":"/s","type":"t"}"#.to_owned(), "missing-specversion"),
            (r#"{"specversion":"0.3","id":"1","source":"/s","type":"t"}"#.to_owned(), "wrong-specversion"),
            (r#"{"specversion":"1.0","source":"/s","type":"t"}"#.to_owned(), "missing-id"),
            (r#"{"specversion":"1.0","id":"1","type":"t"}"#.to_owned(), "missing-source"),
            (r#"{"specversion":"1.0","id":"1","source":"/s"}"#.to_owned(), "missing-type"),
            (r#"{"specversion":"1.0","id":7,"source":"/s","type":"t"}"#.to_owned(), "mistyped-attribute"),
            (r#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#.to_owned(), "mistyped-attribute"),
            (with(r#","Bad":"x""#), "bad-attribute-name"),
            (with(r#","a_b":"x""#), "bad-attribute-name"),
            (with(r#","ext":1.5"#), "bad-extension-value"),
            (with(r#","ext":4294967296"#), "bad-extension-value"),
            // simd-json reads `-0` as 0, the others as -0.0: found by the agreement proptest.
            (with(r#","ext":-0"#), "bad-extension-value"),
            (with(r#","ext":0,"other":-0"#), "bad-extension-value"),
            (with(r#","ext":{"a":1}"#), "bad-extension-value"),
            (with(r#","ext":[1]"#), "bad-extension-value"),
            (with(r#","id":"2""#), "duplicate-attribute"),
            (with(r#","ext":"a","ext":"b""#), "duplicate-attribute"),
            (with(r#","sampled":true,"sampled":"yes""#), "duplicate-attribute"),
            (with(r#","sampled":"yes","sampled":true"#), "duplicate-attribute"),
            (with(r#","data":{"a":1},"data_base64":"AAAA""#), "data-and-data-base64"),
            (with(r#","data_base64":"not base64!""#), "bad-base64"),
            (with(r#","data_base64":"AAA""#), "bad-base64"),
            ("[1,2]".to_owned(), "not-an-object"),
            ("\"event\"".to_owned(), "not-an-object"),
            ("{\"specversion\":\"1.0\"".to_owned(), "malformed-json"),
            (format!("{} trailing", with("")), "malformed-json"),
            (String::new(), "malformed-json"),
        ] {
            assert_eq!(reason(&doc), want, "{doc}");
        }
    }

    #[test]
    fn nulls_are_absent_attributes() {
        assert_eq!(reason(&with(r#","subject":null,"ext":null,"data":null"#)), "ok");
        assert_eq!(reason(r#"{"specversion":"1.0","id":null,"source":"/s","type":"t"}"#), "missing-id");
        let events = decode_all(&with(r#","data":null,"data_base64":"AAAA""#));
        assert!(!events[0].as_ref().expect("null data is absent").data);
    }

    #[test]
    fn invalid_utf8_and_oversized_documents_are_refused() {
        let mut doc = with(r#","subject":"xx""#).into_bytes();
        let at = doc.len() - 3;
        doc[at] = 0xFF;
        for d in Decoder::ALL {
            let e = Decoders::default().decode::<Own, StructExtensions<'static>>(d, &doc, Limits::default());
            assert_eq!(e.err(), Some(DecodeError::InvalidUtf8), "{d:?}");
            let e = Decoders::default().decode::<Own, StructExtensions<'static>>(
                d,
                with("").as_bytes(),
                Limits { max_bytes: 10 },
            );
            assert_eq!(e.err(), Some(DecodeError::Oversized));
        }
    }

    #[test]
    fn borrowed_events_point_into_the_buffer_except_escaped_strings() {
        let doc = with(r#","subject":"caf\u00e9","time":"2026-01-01T00:00:00Z""#);
        for d in Decoder::ALL {
            let mut decoders = Decoders::default();
            let event =
                decoders.decode::<Borrow, StructExtensions<'_>>(d, doc.as_bytes(), Limits::default()).expect("valid");
            assert_eq!(event.subject.as_deref(), Some("café"));
            // simd-json unescapes in place, so even the escaped string is borrowed.
            let want = if d == Decoder::SimdJson { 5 } else { 4 };
            assert_eq!(event.borrowed_strings(), want, "{d:?}");
        }
    }

    #[test]
    fn map_and_struct_modes_hold_the_same_extensions() {
        let doc = with(r#","traceparent":"t","priority":3,"sampled":false"#);
        let mut decoders = Decoders::default();
        let s =
            decoders.decode::<Own, StructExtensions<'static>>(Decoder::SerdeJson, doc.as_bytes(), Limits::default());
        let m = decoders.decode::<Own, MapExtensions<'static>>(Decoder::SerdeJson, doc.as_bytes(), Limits::default());
        let (s, m) = (s.expect("valid"), m.expect("valid"));
        assert_eq!((s.extensions.len(), m.extensions.len()), (3, 3));
        assert_eq!(s.extensions.digest(), m.extensions.digest());
        assert_eq!(m.extensions.0.get("priority"), Some(&ExtValue::Integer(3)));
    }

    #[test]
    fn data_is_validated_and_skipped_up_to_the_depth_limit() {
        assert_eq!(reason(&with(r#","data":{"a":[1,2.5e3,{"b":"\u00e9"}],"c":null}"#)), "ok");
        assert_eq!(reason(&with(r#","data":{"a":[1,]}"#)), "malformed-json");
        assert_eq!(reason(&with(r#","data":[01]"#)), "malformed-json");
        assert_eq!(reason(&with(r#","data":"\x""#)), "malformed-json");
        // The event's own object is level 1.
        let nested = |levels: usize| with(&format!(r#","data":{}1{}"#, "[".repeat(levels), "]".repeat(levels)));
        // sonic-rs recurses once per level: give it the stack the harness gives.
        let deep = std::thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn(move || [reason(&nested(MAX_DEPTH - 1)), reason(&nested(MAX_DEPTH)), reason(&nested(20_000))])
            .expect("a thread")
            .join()
            .expect("no stack overflow");
        assert_eq!(deep, ["ok", "too-deep", "too-deep"]);
        let quoted = with(&format!(r#","data":["{}"],"subject":"{}""#, "[".repeat(200), "{".repeat(200)));
        assert_eq!(reason(&quoted), "ok", "brackets in strings do not nest");
    }

    #[test]
    fn bad_unicode_escapes_are_refused_by_all_three_even_in_skipped_data() {
        assert_eq!(reason(&with(r#","data":{"k":"\ud83d\ude80"}"#)), "ok", "a pair is a character");
        assert_eq!(reason(&with(r#","data":{"k":"\\ud800"}"#)), "ok", "an escaped backslash, then text");
        assert_eq!(reason(&with(r#","data":{"k":"\u00E9\u00e9\uFFFF"}"#)), "ok", "hex digits of either case");
        for lone in [r#"\ud800"#, r#"\udc00"#, r#"\ud800\u0041"#, r#"\ud800x"#, r#"\ud8"#] {
            assert_eq!(reason(&with(&format!(r#","data":{{"k":"{lone}"}}"#))), "malformed-json", "{lone}");
        }
        // Found by fuzzing: sonic-rs skipped these in `data` unchecked.
        for short in [r#"\useñor"#, r#"\uİstanbul"#, r#"\u+123"#, r#"\u12"#, r#"\u12g4"#, r#"\u"#] {
            assert_eq!(reason(&with(&format!(r#","data":{{"k":"{short}"}}"#))), "malformed-json", "{short}");
        }
    }

    #[test]
    fn base64_check_matches_the_base64_crate() {
        use base64::Engine;
        for s in ["", "AAAA", "AAA=", "AA==", "AB==", "A===", "AAA", "ab+/", "ab-_", "QUJD", "QUI=", "QUJ="] {
            let crate_ok = base64::engine::general_purpose::STANDARD.decode(s).is_ok();
            assert_eq!(valid_base64(s), crate_ok, "{s:?}");
        }
    }
}
