//! The typed CloudEvent: attributes as fields, extensions as struct fields or
//! in a map, `data` as a digest.
//!
//! One type serves both representations: [`CloudEvent<'a, X>`] holds its
//! strings as `Cow<'a, str>`. The *borrowed* representation points into the
//! input buffer (`Cow::Borrowed`, except for strings JSON escapes forced the
//! decoder to rewrite); the *owned* one is `CloudEvent<'static, X>`, every
//! string copied into its own heap block (`Cow::Owned`, a `String`), so it
//! outlives the input and can cross any bus.
//!
//! `data` is validated by the decoder and skipped, not materialised (the
//! event records only that it is present): routing needs the attributes, and
//! a handler that needs typed data decodes it with its own type, which is
//! outside what buslab measures. Skipping is also the only treatment all
//! decoders can give alike: simd-json rewrites the input in place, so
//! it cannot hand out `data`'s raw text, and a materialised tree would
//! measure each decoder's tree type rather than its parsing.

use super::ExtensionMode;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::HashMap;

/// An extension attribute's value: the spec allows a string, an integer
/// (32-bit signed) or a boolean.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExtValue<'a> {
    /// A string.
    String(Cow<'a, str>),
    /// An integer in `i32` range.
    Integer(i32),
    /// A boolean.
    Boolean(bool),
}

impl ExtValue<'_> {
    fn digest(&self) -> u64 {
        match self {
            ExtValue::String(s) => str_digest(s),
            ExtValue::Integer(i) => mix(1, *i as u64),
            ExtValue::Boolean(b) => mix(2, u64::from(*b)),
        }
    }
}

/// Where a decoder puts extension attributes: [`StructExtensions`] (known
/// ones in typed fields) or [`MapExtensions`] (all in a hash map).
pub trait Extensions<'a>: Default + Clone + std::fmt::Debug + PartialEq + Send + Sync {
    /// Which mode this is.
    const MODE: ExtensionMode;
    /// Takes one extension attribute; `Err(())` when `name` is already set
    /// (a duplicate attribute).
    #[allow(clippy::result_unit_err)] // the caller turns it into its own typed error
    fn insert(&mut self, name: Cow<'a, str>, value: ExtValue<'a>) -> Result<(), ()>;
    /// Extension attributes held.
    fn len(&self) -> usize;
    /// True when there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// An order-independent digest of names and values (for checksums).
    fn digest(&self) -> u64;
}

/// Known extensions in typed fields; anything else (an unknown name, or a
/// known name with a value of another type) in a small inline list that
/// spills to the heap only past two entries.
///
/// The known set: the spec's documented extensions `traceparent`,
/// `tracestate` (distributed tracing), `partitionkey` (partitioning),
/// `sequence` (sequence), `dataref` (claim check), `authtype` and `authid`
/// (auth context), `severitytext` and `severitynumber` (severity), and one
/// application-defined boolean, `sampled`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StructExtensions<'a> {
    /// W3C trace context `traceparent`.
    pub traceparent: Option<Cow<'a, str>>,
    /// W3C trace context `tracestate`.
    pub tracestate: Option<Cow<'a, str>>,
    /// Partition key.
    pub partitionkey: Option<Cow<'a, str>>,
    /// Sequence (a string per the spec).
    pub sequence: Option<Cow<'a, str>>,
    /// Claim-check reference.
    pub dataref: Option<Cow<'a, str>>,
    /// Auth type.
    pub authtype: Option<Cow<'a, str>>,
    /// Auth principal.
    pub authid: Option<Cow<'a, str>>,
    /// Severity text.
    pub severitytext: Option<Cow<'a, str>>,
    /// Severity number.
    pub severitynumber: Option<i32>,
    /// Application-defined: the event was sampled.
    pub sampled: Option<bool>,
    /// Everything else, in document order.
    pub other: SmallVec<[(Cow<'a, str>, ExtValue<'a>); 2]>,
}

impl<'a> Extensions<'a> for StructExtensions<'a> {
    const MODE: ExtensionMode = ExtensionMode::Struct;

    #[inline]
    fn insert(&mut self, name: Cow<'a, str>, value: ExtValue<'a>) -> Result<(), ()> {
        fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), ()> {
            if slot.is_some() {
                return Err(());
            }
            *slot = Some(value);
            Ok(())
        }
        // A known name first set with a value of another type lives in
        // `other`: setting its field now would accept a repetition the map
        // mode refuses.
        if !self.other.is_empty() && self.other.iter().any(|(n, _)| *n == name) {
            return Err(());
        }
        match (name.as_ref(), value) {
            ("traceparent", ExtValue::String(s)) => set(&mut self.traceparent, s),
            ("tracestate", ExtValue::String(s)) => set(&mut self.tracestate, s),
            ("partitionkey", ExtValue::String(s)) => set(&mut self.partitionkey, s),
            ("sequence", ExtValue::String(s)) => set(&mut self.sequence, s),
            ("dataref", ExtValue::String(s)) => set(&mut self.dataref, s),
            ("authtype", ExtValue::String(s)) => set(&mut self.authtype, s),
            ("authid", ExtValue::String(s)) => set(&mut self.authid, s),
            ("severitytext", ExtValue::String(s)) => set(&mut self.severitytext, s),
            ("severitynumber", ExtValue::Integer(i)) => set(&mut self.severitynumber, i),
            ("sampled", ExtValue::Boolean(b)) => set(&mut self.sampled, b),
            (_, value) => {
                if self.named(&name) {
                    return Err(());
                }
                self.other.push((name, value));
                Ok(())
            }
        }
    }

    fn len(&self) -> usize {
        self.fields().filter(|(_, v)| v.is_some()).count() + self.other.len()
    }

    fn digest(&self) -> u64 {
        // Field by field (not through `fields()`, which builds values): this
        // runs twice per delivery, in the producer and in the handler.
        let mut sum = 0u64;
        let mut add = |name: &str, value: u64| sum = sum.wrapping_add(mix(str_digest(name), value));
        for (name, value) in [
            ("traceparent", &self.traceparent),
            ("tracestate", &self.tracestate),
            ("partitionkey", &self.partitionkey),
            ("sequence", &self.sequence),
            ("dataref", &self.dataref),
            ("authtype", &self.authtype),
            ("authid", &self.authid),
            ("severitytext", &self.severitytext),
        ] {
            if let Some(v) = value {
                add(name, str_digest(v));
            }
        }
        if let Some(i) = self.severitynumber {
            add("severitynumber", ExtValue::Integer(i).digest());
        }
        if let Some(b) = self.sampled {
            add("sampled", ExtValue::Boolean(b).digest());
        }
        for (n, v) in &self.other {
            add(n, v.digest());
        }
        sum
    }
}

impl StructExtensions<'_> {
    /// A known name whose field is already set (with its own type).
    fn named(&self, name: &str) -> bool {
        self.fields().any(|(n, v)| n == name && v.is_some())
    }

    /// The known fields as `(name, value)`.
    fn fields(&self) -> impl Iterator<Item = (&'static str, Option<ExtValue<'_>>)> {
        fn s<'v>(v: &'v Option<Cow<'_, str>>) -> Option<ExtValue<'v>> {
            v.as_deref().map(|s| ExtValue::String(Cow::Borrowed(s)))
        }
        [
            ("traceparent", s(&self.traceparent)),
            ("tracestate", s(&self.tracestate)),
            ("partitionkey", s(&self.partitionkey)),
            ("sequence", s(&self.sequence)),
            ("dataref", s(&self.dataref)),
            ("authtype", s(&self.authtype)),
            ("authid", s(&self.authid)),
            ("severitytext", s(&self.severitytext)),
            ("severitynumber", self.severitynumber.map(ExtValue::Integer)),
            ("sampled", self.sampled.map(ExtValue::Boolean)),
        ]
        .into_iter()
    }
}

/// Every extension in a `HashMap` (std's SipHash): the dynamic-map handling
/// the case study replaced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MapExtensions<'a>(pub HashMap<Cow<'a, str>, ExtValue<'a>>);

impl<'a> Extensions<'a> for MapExtensions<'a> {
    const MODE: ExtensionMode = ExtensionMode::Map;

    #[inline]
    fn insert(&mut self, name: Cow<'a, str>, value: ExtValue<'a>) -> Result<(), ()> {
        match self.0.entry(name) {
            std::collections::hash_map::Entry::Occupied(_) => Err(()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(value);
                Ok(())
            }
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn digest(&self) -> u64 {
        self.0.iter().map(|(n, v)| mix(str_digest(n), v.digest())).fold(0, u64::wrapping_add)
    }
}

/// A CloudEvents 1.0 event, decoded and validated. `specversion` is not
/// kept: a decoded event is always "1.0".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CloudEvent<'a, X> {
    /// `id` (non-empty).
    pub id: Cow<'a, str>,
    /// `source` (non-empty URI-reference).
    pub source: Cow<'a, str>,
    /// `type` (non-empty).
    pub ty: Cow<'a, str>,
    /// `datacontenttype`.
    pub datacontenttype: Option<Cow<'a, str>>,
    /// `dataschema`.
    pub dataschema: Option<Cow<'a, str>>,
    /// `subject`.
    pub subject: Option<Cow<'a, str>>,
    /// `time`.
    pub time: Option<Cow<'a, str>>,
    /// `data` is present (and not null); validated, then skipped.
    pub data: bool,
    /// `data_base64`, checked to be base64 but not decoded.
    pub data_base64: Option<Cow<'a, str>>,
    /// Extension attributes.
    pub extensions: X,
}

/// An event whose strings are its own.
pub type OwnedEvent<X> = CloudEvent<'static, X>;

impl<'a, X: Extensions<'a>> CloudEvent<'a, X> {
    /// A digest of the whole event (every attribute, the data digest and the
    /// extensions), cheap enough to compute per delivery: lengths and end
    /// bytes of strings, not their every byte.
    pub fn checksum(&self) -> u64 {
        let opt = |s: &Option<Cow<'_, str>>| s.as_deref().map_or(0x5555, str_digest);
        let mut h = mix(str_digest(&self.id), str_digest(&self.source));
        h = mix(h, str_digest(&self.ty));
        h = mix(h, opt(&self.datacontenttype) ^ opt(&self.dataschema).rotate_left(8));
        h = mix(h, opt(&self.subject) ^ opt(&self.time).rotate_left(16));
        h = mix(h, u64::from(self.data));
        h = mix(h, opt(&self.data_base64));
        mix(h, self.extensions.digest())
    }

    /// Strings borrowed from the input (the rest were copied).
    pub fn borrowed_strings(&self) -> usize {
        let b = |s: &Cow<'_, str>| usize::from(matches!(s, Cow::Borrowed(_)));
        let o = |s: &Option<Cow<'_, str>>| s.as_ref().map_or(0, b);
        b(&self.id)
            + b(&self.source)
            + b(&self.ty)
            + o(&self.datacontenttype)
            + o(&self.dataschema)
            + o(&self.subject)
            + o(&self.time)
            + o(&self.data_base64)
    }
}

/// One step of the digests: a multiply-xorshift mix (fast, not
/// cryptographic; it only has to make accidental collisions unlikely).
#[inline]
pub(crate) fn mix(h: u64, x: u64) -> u64 {
    let v = (h ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    v ^ (v >> 31)
}

/// A string's digest: its length and its first and last bytes (O(1)).
#[inline]
pub(crate) fn str_digest(s: &str) -> u64 {
    let b = s.as_bytes();
    let ends = match b {
        [] => 0,
        [first, .., last] => u64::from(*first) << 8 | u64::from(*last),
        [only] => u64::from(*only),
    };
    mix(b.len() as u64, ends)
}
