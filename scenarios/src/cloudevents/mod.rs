//! CloudEvents 1.0 over HTTP, in structured-mode JSON and in binary mode:
//! typed events, four decoders, the spec's rules, a seeded generator and
//! corpus loading — the `cloudevents` payload kind.
//!
//! A `cloudevents` cell decodes documents into a [`CloudEvent`] and routes
//! them by `type` through a bus. Four axes vary per cell:
//! - [`Decoder`]: `serde_json`, `simd_json`, `sonic_rs` (one serde visitor
//!   driven by each) and `sonic_rs_native` (sonic-rs's parser driven
//!   directly, no serde); see [`decode`] for how each is given the same
//!   mutable input copy, and [`DecodeError`] for the reasons a document is
//!   refused and which one wins;
//! - [`ContentMode`]: `structured` (the event is one JSON document) or
//!   `binary` (attributes in `ce-*` headers, `data` the body: [`binary`];
//!   the decoder checks the body when it is JSON);
//! - [`Representation`]: `owned` (every string copied) or `borrowed` (strings
//!   point into the input buffer);
//! - [`ExtensionMode`]: `struct` (known extensions in typed fields) or `map`
//!   (every extension in a `HashMap`).
//!
//! Event types map to topics with [`TypeTopics`], built from the corpus.

pub mod binary;
pub mod corpus;
pub mod decode;
pub mod event;
pub mod generate;
mod native;
mod prescan;
mod rules;
mod skip;

pub use binary::Message;
pub use corpus::{Content, Corpus, CorpusError};
pub use decode::{Borrow, DecodeError, Decoders, Limits, Own};
pub use event::{CloudEvent, ExtValue, Extensions, MapExtensions, OwnedEvent, StructExtensions};

use serde::{Deserialize, Serialize};

/// A JSON decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decoder {
    /// `serde_json`: scalar, the reference.
    SerdeJson,
    /// `simd-json`: SIMD, parses in place (run-time CPU detection).
    SimdJson,
    /// `sonic-rs`: SIMD chosen at compile time.
    SonicRs,
    /// `sonic-rs`'s parser driven member by member without serde: the same
    /// rules, no visitor (the native decoder).
    SonicRsNative,
}

impl Decoder {
    /// Every decoder.
    pub const ALL: [Decoder; 4] = [Decoder::SerdeJson, Decoder::SimdJson, Decoder::SonicRs, Decoder::SonicRsNative];

    /// The name used in files, cell keys and reports.
    pub fn name(self) -> &'static str {
        match self {
            Decoder::SerdeJson => "serde_json",
            Decoder::SimdJson => "simd_json",
            Decoder::SonicRs => "sonic_rs",
            Decoder::SonicRsNative => "sonic_rs_native",
        }
    }

    /// The decoder named `name`.
    pub fn from_name(name: &str) -> Option<Decoder> {
        Decoder::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// How the event travels: the HTTP binding's content modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentMode {
    /// The whole event is one JSON document (the JSON event format).
    Structured,
    /// Attributes in `ce-*` headers and `Content-Type`, `data` the body
    /// ([`binary`]).
    Binary,
}

impl ContentMode {
    /// Both modes.
    pub const ALL: [ContentMode; 2] = [ContentMode::Structured, ContentMode::Binary];

    /// The name used in files, cell keys and reports.
    pub fn name(self) -> &'static str {
        match self {
            ContentMode::Structured => "structured",
            ContentMode::Binary => "binary",
        }
    }

    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<ContentMode> {
        ContentMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// How a decoded event holds its strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Representation {
    /// Every string copied into its own heap block: the event outlives the
    /// input and crosses any bus.
    Owned,
    /// Strings borrowed from the input buffer: no copy, but the event cannot
    /// outlive the buffer, so only buses that deliver in-line, within the
    /// publish call, can carry it.
    Borrowed,
}

impl Representation {
    /// Both representations.
    pub const ALL: [Representation; 2] = [Representation::Owned, Representation::Borrowed];

    /// The name used in files, cell keys and reports.
    pub fn name(self) -> &'static str {
        match self {
            Representation::Owned => "owned",
            Representation::Borrowed => "borrowed",
        }
    }

    /// The representation named `name`.
    pub fn from_name(name: &str) -> Option<Representation> {
        Representation::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Where extension attributes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtensionMode {
    /// Known extensions in typed struct fields ([`StructExtensions`]).
    Struct,
    /// Every extension in a hash map ([`MapExtensions`]).
    Map,
}

impl ExtensionMode {
    /// Both modes.
    pub const ALL: [ExtensionMode; 2] = [ExtensionMode::Struct, ExtensionMode::Map];

    /// The name used in files, cell keys and reports.
    pub fn name(self) -> &'static str {
        match self {
            ExtensionMode::Struct => "struct",
            ExtensionMode::Map => "map",
        }
    }

    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<ExtensionMode> {
        ExtensionMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One cell's choice on the four CloudEvents axes: a *variant* in the
/// README's glossary (decoder × content mode × representation × extension
/// handling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Variant {
    /// The decoder.
    pub decoder: Decoder,
    /// The content mode (structured in points stored before the axis).
    #[serde(default = "structured")]
    pub mode: ContentMode,
    /// The representation.
    pub representation: Representation,
    /// The extension handling.
    pub extensions: ExtensionMode,
}

fn structured() -> ContentMode {
    ContentMode::Structured
}

fn structured_only() -> Vec<ContentMode> {
    vec![ContentMode::Structured]
}

/// A `cloudevents` scenario's settings (the `[cloudevents]` table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Decoders swept.
    pub decoders: Vec<Decoder>,
    /// Content modes swept (structured only in settings stored before the
    /// axis).
    #[serde(default = "structured_only")]
    pub modes: Vec<ContentMode>,
    /// Representations swept.
    pub representations: Vec<Representation>,
    /// Extension modes swept.
    pub extensions: Vec<ExtensionMode>,
    /// Generated documents (when no `--corpus` is given).
    pub documents: usize,
    /// Generator seed.
    pub seed: u64,
    /// Size limit of one document, bytes.
    pub max_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            decoders: Decoder::ALL.to_vec(),
            modes: ContentMode::ALL.to_vec(),
            representations: Representation::ALL.to_vec(),
            extensions: ExtensionMode::ALL.to_vec(),
            documents: 1000,
            seed: 42,
            max_bytes: decode::DEFAULT_MAX_BYTES,
        }
    }
}

impl Settings {
    /// Every combination: decoders outer, then content modes,
    /// representations, extension modes inner.
    pub fn variants(&self) -> Vec<Variant> {
        let mut out = Vec::new();
        for &decoder in &self.decoders {
            for &mode in &self.modes {
                for &representation in &self.representations {
                    for &extensions in &self.extensions {
                        out.push(Variant { decoder, mode, representation, extensions });
                    }
                }
            }
        }
        out
    }

    /// The limits documents are held to.
    pub fn limits(&self) -> Limits {
        Limits { max_bytes: self.max_bytes }
    }
}

/// Most distinct types that get a topic of their own; the rest share the
/// last topic.
pub const MAX_TYPE_TOPICS: usize = 64;

/// Maps an event's `type` to a topic: the types of the corpus's valid
/// documents, most frequent first (ties by name), each a topic of its own up
/// to [`MAX_TYPE_TOPICS`]; any other type goes to the last topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeTopics {
    /// Sorted by name, for binary search.
    sorted: Vec<(Box<str>, u16)>,
    topics: usize,
}

impl TypeTopics {
    /// The routes for the types in `types` (with repetitions: frequency
    /// decides which types get their own topic).
    pub fn new<'a>(types: impl IntoIterator<Item = &'a str>) -> TypeTopics {
        let mut counts: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for ty in types {
            *counts.entry(ty).or_default() += 1;
        }
        let mut by_count: Vec<(&str, u64)> = counts.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let own = if by_count.len() > MAX_TYPE_TOPICS { MAX_TYPE_TOPICS - 1 } else { by_count.len() };
        let mut sorted: Vec<(Box<str>, u16)> =
            by_count.iter().take(own).enumerate().map(|(i, (ty, _))| (Box::from(*ty), i as u16)).collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let topics = if by_count.len() > MAX_TYPE_TOPICS { MAX_TYPE_TOPICS } else { own.max(1) };
        TypeTopics { sorted, topics }
    }

    /// Number of topics (at least 1).
    pub fn topics(&self) -> usize {
        self.topics
    }

    /// The topic of `ty`.
    #[inline]
    pub fn topic(&self, ty: &str) -> u16 {
        match self.sorted.binary_search_by(|(t, _)| (**t).cmp(ty)) {
            Ok(i) => self.sorted[i].1,
            Err(_) => (self.topics - 1) as u16,
        }
    }

    /// The type of each topic that has one of its own, by topic.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<(u16, &str)> = self.sorted.iter().map(|(t, i)| (*i, &**t)).collect();
        names.sort_unstable();
        names.into_iter().map(|(_, t)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in Decoder::ALL {
            assert_eq!(Decoder::from_name(d.name()), Some(d));
        }
        for r in Representation::ALL {
            assert_eq!(Representation::from_name(r.name()), Some(r));
        }
        for m in ExtensionMode::ALL {
            assert_eq!(ExtensionMode::from_name(m.name()), Some(m));
        }
        for m in ContentMode::ALL {
            assert_eq!(ContentMode::from_name(m.name()), Some(m));
        }
        assert_eq!(Settings::default().variants().len(), 32);
    }

    #[test]
    fn types_map_to_topics_by_frequency() {
        let routes = TypeTopics::new(["b", "a", "b", "c", "b", "a"]);
        assert_eq!(routes.topics(), 3);
        assert_eq!((routes.topic("b"), routes.topic("a"), routes.topic("c")), (0, 1, 2));
        assert_eq!(routes.topic("unknown"), 2, "unknown types share the last topic");
        assert_eq!(routes.names(), ["b", "a", "c"]);
        let many: Vec<String> = (0..100).map(|i| format!("t{i:03}")).collect();
        let routes = TypeTopics::new(many.iter().map(String::as_str));
        assert_eq!(routes.topics(), MAX_TYPE_TOPICS);
        assert_eq!(routes.topic("t099"), (MAX_TYPE_TOPICS - 1) as u16);
        assert_eq!(TypeTopics::new([]).topics(), 1);
    }
}
