//! The documents a cloudevents cell decodes: generated from a seed, or an
//! engineer's own events (`--corpus PATH`), in either content mode:
//! - a newline-delimited JSON file: structured mode, one document per
//!   non-empty line;
//! - a `.http` file: binary mode, HTTP/1.1 messages back to back (headers,
//!   an empty line, a body of `Content-Length` bytes; the last body may
//!   run to the end of the file instead), as [`super::binary`] describes
//!   under "Corpus files";
//! - a directory: one structured document per `.json` file and the
//!   messages of every `.http` file, files sorted by name, not recursive.
//!
//! A cell measures its own content mode ([`Corpus::in_mode`]): a valid
//! event given in the other mode is converted ([`super::binary::from_structured`],
//! [`super::binary::to_structured`]), so both modes decode the same events;
//! an invalid one is kept as it is, and counted.
//!
//! Documents are kept as bytes, whatever they hold: an invalid one (bad UTF-8,
//! broken JSON, a spec violation) is still a document, counted by reason
//! when the corpus is classified, and left out of what is timed. Only an
//! unreadable path, a `.http` file that is not HTTP/1.1 messages, or an
//! empty corpus is an error.

use super::binary::{self, FramingError, Message};
use super::decode::{DecodeError, Decoders, Limits, Own};
use super::{ContentMode, Decoder, StructExtensions, generate};
use crate::results;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Most invalid documents a classification (and the results) name.
pub const MAX_INVALID_EXAMPLES: usize = 20;

/// Most bytes a corpus may hold in total (it is loaded into memory by every
/// measuring process).
pub const MAX_CORPUS_BYTES: u64 = 1 << 30;

/// What can go wrong loading a corpus.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No document was found.
    #[error("{path}: no documents (expected newline-delimited JSON, or a directory of .json files)")]
    Empty {
        /// The path.
        path: PathBuf,
    },
    /// A `.http` file is not a stream of HTTP/1.1 messages.
    #[error("{path}: not HTTP/1.1 messages: {source}")]
    Framing {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: FramingError,
    },
    /// The corpus is larger than [`MAX_CORPUS_BYTES`].
    #[error("{path}: the corpus exceeds {MAX_CORPUS_BYTES} bytes")]
    TooLarge {
        /// The path.
        path: PathBuf,
    },
}

/// One event as it travels, in either content mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A structured-mode JSON document, its bytes as read.
    Structured(Vec<u8>),
    /// A binary-mode message.
    Binary(Message),
}

impl Content {
    /// Its mode.
    pub fn mode(&self) -> ContentMode {
        match self {
            Content::Structured(_) => ContentMode::Structured,
            Content::Binary(_) => ContentMode::Binary,
        }
    }

    /// Its size, bytes: the document, or the message's header names,
    /// values and body ([`Message::len`]).
    pub fn len(&self) -> usize {
        match self {
            Content::Structured(bytes) => bytes.len(),
            Content::Binary(message) => message.len(),
        }
    }

    /// True when it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One document and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The event, as read.
    pub content: Content,
    /// `file:line` (NDJSON, `.http`), the file (directory of `.json`), or
    /// `#index` (generated).
    pub origin: String,
}

/// A set of documents with a name and a provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corpus {
    /// Short name (the file or directory name, or `generated`).
    pub name: String,
    /// `generated, seed N` or the path.
    pub source: String,
    /// The documents, in order.
    pub documents: Vec<Document>,
}

/// Invalid documents of a corpus, by reason, for one decoder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classification {
    /// Indices of the valid documents.
    pub valid: Vec<usize>,
    /// Invalid documents per reason slug.
    pub errors: BTreeMap<String, u64>,
    /// The first invalid documents (at most [`MAX_INVALID_EXAMPLES`]):
    /// `(origin, reason)`.
    pub examples: Vec<(String, &'static str)>,
}

impl Corpus {
    /// `count` generated documents from `seed`.
    pub fn generated(seed: u64, count: usize) -> Corpus {
        let documents = generate::documents(seed, count)
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| Document { content: Content::Structured(bytes), origin: format!("#{i}") })
            .collect();
        Corpus { name: "generated".into(), source: format!("generated, seed {seed}"), documents }
    }

    /// Loads `path`: a directory of `.json` files, or an NDJSON file.
    pub fn load(path: &Path) -> Result<Corpus, CorpusError> {
        let read_err = |source| CorpusError::Read { path: path.to_path_buf(), source };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let mut documents = Vec::new();
        let mut total = 0u64;
        let mut add = |content: Content, origin: String| {
            total += content.len() as u64;
            documents.push(Document { content, origin });
            total <= MAX_CORPUS_BYTES
        };
        let http = |file: &Path| file.extension().is_some_and(|e| e == "http");
        let messages = |file: &Path, bytes: &[u8]| {
            Message::parse_stream(bytes).map_err(|source| CorpusError::Framing { path: file.to_path_buf(), source })
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(read_err)? {
                let file = entry.map_err(read_err)?.path();
                if (file.extension().is_some_and(|e| e == "json") || http(&file)) && file.is_file() {
                    files.push(file);
                }
            }
            files.sort();
            for file in files {
                let bytes = std::fs::read(&file).map_err(|source| CorpusError::Read { path: file.clone(), source })?;
                let mut within = true;
                if http(&file) {
                    for (line, message) in messages(&file, &bytes)? {
                        within &= add(Content::Binary(message), format!("{}:{line}", file.display()));
                    }
                } else {
                    within = add(Content::Structured(bytes), file.display().to_string());
                }
                if !within {
                    return Err(CorpusError::TooLarge { path: path.to_path_buf() });
                }
            }
        } else if http(path) {
            if meta.len() > MAX_CORPUS_BYTES {
                return Err(CorpusError::TooLarge { path: path.to_path_buf() });
            }
            let bytes = std::fs::read(path).map_err(read_err)?;
            for (line, message) in messages(path, &bytes)? {
                add(Content::Binary(message), format!("{}:{line}", path.display()));
            }
        } else {
            if meta.len() > MAX_CORPUS_BYTES {
                return Err(CorpusError::TooLarge { path: path.to_path_buf() });
            }
            let text = std::fs::read(path).map_err(read_err)?;
            for (i, line) in text.split(|&b| b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                add(Content::Structured(line.to_vec()), format!("{}:{}", path.display(), i + 1));
            }
        }
        if documents.is_empty() {
            return Err(CorpusError::Empty { path: path.to_path_buf() });
        }
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        Ok(Corpus { name, source: path.display().to_string(), documents })
    }

    /// The corpus as a cell of content mode `mode` decodes it: every valid
    /// event given in the other mode converted to this one (its origin
    /// says so), every invalid one kept as it is (to be counted, under the
    /// reason its own mode gives).
    pub fn in_mode(&self, mode: ContentMode) -> Corpus {
        let mut decoders = Decoders::default();
        let limits = Limits { max_bytes: usize::MAX };
        let documents = self
            .documents
            .iter()
            .map(|doc| {
                let valid =
                    decoders.decode_content::<Own, StructExtensions<'static>>(Decoder::SerdeJson, &doc.content, limits);
                let converted = match (&doc.content, mode) {
                    (Content::Structured(bytes), ContentMode::Binary) if valid.is_ok() => {
                        binary::from_structured(bytes).map(Content::Binary)
                    }
                    (Content::Binary(message), ContentMode::Structured) if valid.is_ok() => {
                        binary::to_structured(message).map(Content::Structured)
                    }
                    _ => None,
                };
                match converted {
                    Some(content) => Document { content, origin: format!("{} (as {})", doc.origin, mode.name()) },
                    None => doc.clone(),
                }
            })
            .collect();
        Corpus { name: self.name.clone(), source: self.source.clone(), documents }
    }

    /// Decodes every document once with `decoder` (not timed), each in its
    /// own content mode: which are valid, and how many are invalid for each
    /// reason.
    pub fn classify(&self, decoder: Decoder, limits: Limits) -> Classification {
        let mut decoders = Decoders::default();
        let mut out = Classification::default();
        for (i, doc) in self.documents.iter().enumerate() {
            match decoders.decode_content::<Own, StructExtensions<'static>>(decoder, &doc.content, limits) {
                Ok(_) => out.valid.push(i),
                Err(e) => {
                    *out.errors.entry(e.reason().to_owned()).or_default() += 1;
                    if out.examples.len() < MAX_INVALID_EXAMPLES {
                        out.examples.push((doc.origin.clone(), e.reason()));
                    }
                }
            }
        }
        out
    }

    /// The corpus's description for results: name, source, counts and the
    /// size distribution (nearest-rank percentiles), with the invalid
    /// documents `classified` found ([`Corpus::classify`]).
    pub fn summary(&self, classified: &Classification) -> results::Corpus {
        let mut sizes: Vec<u64> = self.documents.iter().map(|d| d.content.len() as u64).collect();
        sizes.sort_unstable();
        let rank = |q: f64| {
            let i = ((q * sizes.len() as f64).ceil() as usize).clamp(1, sizes.len().max(1)) - 1;
            sizes.get(i).copied().unwrap_or(0)
        };
        results::Corpus {
            name: self.name.clone(),
            source: self.source.clone(),
            documents: sizes.len() as u64,
            invalid: classified.errors.values().sum(),
            total_bytes: sizes.iter().sum(),
            min_bytes: sizes.first().copied().unwrap_or(0),
            p50_bytes: rank(0.5),
            p90_bytes: rank(0.9),
            max_bytes: sizes.last().copied().unwrap_or(0),
            invalid_examples: classified
                .examples
                .iter()
                .map(|(origin, reason)| results::InvalidDocument {
                    origin: origin.clone(),
                    reason: (*reason).to_owned(),
                })
                .collect(),
        }
    }
}

/// Every reason slug a classification can count.
pub fn reasons() -> &'static [&'static str] {
    &DecodeError::REASONS
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;

    #[test]
    fn ndjson_lines_are_documents_named_by_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.ndjson");
        std::fs::write(&path, format!("{VALID}\n\n{VALID}\r\n{{\"broken\"\n  \n")).expect("write");
        let corpus = Corpus::load(&path).expect("loads");
        assert_eq!(corpus.name, "events.ndjson");
        assert_eq!(corpus.documents.len(), 3);
        assert_eq!(corpus.documents[1].content, Content::Structured(VALID.into()), "CR stripped");
        assert!(corpus.documents[2].origin.ends_with("events.ndjson:4"), "{}", corpus.documents[2].origin);
        for decoder in Decoder::ALL {
            let c = corpus.classify(decoder, Limits::default());
            assert_eq!(c.valid, [0, 1]);
            assert_eq!(c.errors.get("malformed-json"), Some(&1));
            assert!(c.examples[0].0.ends_with(":4"));
        }
    }

    #[test]
    fn a_directory_holds_one_document_per_json_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("b.json"),
            "{\n  \"specversion\": \"1.0\", \"id\": \"2\",\n  \"source\": \"/s\", \"type\": \"t\"\n}\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("a.json"), VALID).expect("write");
        std::fs::write(dir.path().join("c.json"), [0xFF, 0xFE]).expect("write");
        std::fs::write(dir.path().join("notes.txt"), "not an event").expect("write");
        let corpus = Corpus::load(dir.path()).expect("loads");
        assert_eq!(corpus.documents.len(), 3);
        assert!(corpus.documents[0].origin.ends_with("a.json"));
        let c = corpus.classify(Decoder::SonicRs, Limits::default());
        assert_eq!(c.valid, [0, 1], "a pretty-printed file is one document");
        assert_eq!(c.errors.get("invalid-utf8"), Some(&1));
        let s = corpus.summary(&c);
        assert_eq!((s.documents, s.invalid, s.min_bytes), (3, 1, 2));
        assert_eq!(s.invalid_examples.len(), 1);
        assert!(s.invalid_examples[0].origin.ends_with("c.json"), "{:?}", s.invalid_examples);
        assert_eq!(s.invalid_examples[0].reason, "invalid-utf8");
        assert_eq!(s.total_bytes, corpus.documents.iter().map(|d| d.content.len() as u64).sum::<u64>());
    }

    #[test]
    fn bad_paths_and_empty_corpora_are_errors_naming_the_path() {
        let e = Corpus::load(Path::new("/nonexistent/events.ndjson")).expect_err("missing");
        assert!(e.to_string().starts_with("/nonexistent/events.ndjson: cannot read"), "{e}");
        let dir = tempfile::tempdir().expect("temp dir");
        let e = Corpus::load(dir.path()).expect_err("empty dir");
        assert!(matches!(e, CorpusError::Empty { .. }), "{e}");
        let path = dir.path().join("blank.ndjson");
        std::fs::write(&path, "\n \n").expect("write");
        assert!(matches!(Corpus::load(&path), Err(CorpusError::Empty { .. })));
    }

    #[test]
    fn generated_corpora_are_valid_and_summarised() {
        let corpus = Corpus::generated(42, 200);
        assert_eq!(corpus.source, "generated, seed 42");
        let c = corpus.classify(Decoder::SerdeJson, Limits::default());
        assert_eq!(c.valid.len(), 200, "{:?}", c.examples);
        let s = corpus.summary(&c);
        assert_eq!((s.invalid, s.invalid_examples.len()), (0, 0));
        assert!(s.min_bytes <= s.p50_bytes && s.p50_bytes <= s.p90_bytes && s.p90_bytes <= s.max_bytes);
        assert!(s.min_bytes >= 150 && s.max_bytes <= 4700, "{s:?}");
    }
}
