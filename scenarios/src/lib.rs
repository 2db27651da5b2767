//! Workloads as data: the scenario catalog (one TOML file per workload in
//! `catalog/`), user scenario files, and their validation; and the
//! CloudEvents workload ([`cloudevents`]): typed events, decoders, generator
//! and corpus.
//!
//! This crate sits between the buses (`buslab-impls`) and the harness that
//! measures them: it says *what* to run, never how to time it.
//!
//! # Dependencies and why
//! - `toml` (with `serde`): scenario files; its spans give line and column
//!   for every error.
//! - `sha2`: the SHA-256 of each scenario file, recorded with every run so
//!   that a changed workload is never compared with the old one unawares.
//! - `thiserror`: the typed [`ScenarioError`] and the CloudEvents errors.
//! - `serde_json`: the reference CloudEvents decoder, and the generator's
//!   JSON writer.
//! - `simd-json`: the in-place SIMD decoder (the second decoder the
//!   `cloudevents` payload compares; it reuses its tape and buffers, so it
//!   allocates nothing per document).
//! - `sonic-rs`: the third decoder, SIMD chosen at compile time (the target
//!   features are recorded with every run).
//! - `smallvec`: the inline list of unknown extensions in the struct
//!   representation (no heap block for up to two).
//! - `base64`: the generator's `data_base64`, and the reference the
//!   `data_base64` check is tested against.
//! - `fastrand`: the seeded CloudEvents generator.
//! - `memchr`: the SIMD search for `\u` escapes that lets serde_json and
//!   sonic-rs refuse lone surrogates in the `data` they skip, as simd-json
//!   does (already in the tree through serde_json).
//! - `proptest` (tests): random and mutated documents fed to every decoder.
#![deny(missing_docs)]

pub mod cloudevents;
pub mod metrics;
pub mod results;
pub mod spec;

pub use spec::{Bodies, Burst, BusParams, Churn, Origin, PayloadKind, Scenario, Slow, SweepPoint};

use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/catalog.rs"));

/// What can be wrong with a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The path.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's content is invalid.
    #[error("{file}:{line}:{column}: `{field}`: {message}")]
    Invalid {
        /// The path (or catalog name).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The field at fault (`-` when the TOML itself is malformed).
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Two scenarios have the same name.
    #[error("{file}: scenario name {name:?} is already used by {other}")]
    Duplicate {
        /// The later file.
        file: String,
        /// The name.
        name: String,
        /// Where it was first defined.
        other: String,
    },
}

/// The shipped catalog, parsed. Its files are validated by a test, so this
/// cannot fail in a released binary; an error here is a bug.
pub fn catalog() -> Result<Vec<Scenario>, ScenarioError> {
    CATALOG
        .iter()
        .map(|(file, text)| spec::parse(&format!("catalog/{file}"), text, Origin::Catalog((*file).to_owned())))
        .collect()
}

/// Reads and validates a user's scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { file: file.clone(), source })?;
    spec::parse(&file, &text, Origin::File(file.clone()))
}

/// The catalog plus `files`, refusing duplicate names.
pub fn catalog_with(files: &[impl AsRef<Path>]) -> Result<Vec<Scenario>, ScenarioError> {
    let mut all = catalog()?;
    for path in files {
        let scenario = load_file(path.as_ref())?;
        if let Some(other) = all.iter().find(|s| s.name == scenario.name) {
            return Err(ScenarioError::Duplicate {
                file: path.as_ref().display().to_string(),
                name: scenario.name,
                other: origin_name(&other.origin),
            });
        }
        all.push(scenario);
    }
    Ok(all)
}

/// A human name for where a scenario came from.
pub fn origin_name(origin: &Origin) -> String {
    match origin {
        Origin::Catalog(f) => format!("catalog/{f}"),
        Origin::File(f) => f.clone(),
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_valid_and_complete() {
        let catalog = catalog().expect("the catalog must parse");
        let names: Vec<_> = catalog.iter().map(|s| s.name.as_str()).collect();
        for want in [
            "spsc",
            "batch",
            "fanout",
            "mpmc",
            "burst",
            "slow-subscriber",
            "churn",
            "heavy-payload",
            "cloudevents",
            "cloudevents-buses",
            "cloudevents-extensions",
        ] {
            assert!(names.contains(&want), "catalog lacks {want}: {names:?}");
        }
        for (file, _) in CATALOG {
            let s = catalog.iter().find(|s| s.origin == Origin::Catalog((*file).to_owned())).expect("parsed");
            assert_eq!(format!("{}.toml", s.name), *file, "a catalog file is named after its scenario");
        }
    }

    #[test]
    fn a_user_file_with_a_catalog_name_is_refused() {
        let dir = std::env::temp_dir().join(format!("buslab-scenario-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("mine.toml");
        std::fs::write(&path, "name = \"spsc\"\nsubscribers = 2\n").expect("write");
        let err = catalog_with(&[&path]).expect_err("duplicate");
        assert!(err.to_string().contains("catalog/spsc.toml"), "{err}");
        std::fs::write(&path, "name = \"mine\"\nsubscribers = 2\n").expect("write");
        assert_eq!(catalog_with(&[&path]).expect("valid").last().map(|s| s.name.as_str()), Some("mine"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = load_file(Path::new("/nonexistent/buslab.toml")).expect_err("missing");
        assert!(err.to_string().starts_with("/nonexistent/buslab.toml: cannot read"), "{err}");
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
