//! Conformance: the fixture set in `tests/data/cloudevents/` (one document
//! per file, each listed in `cases.toml` with the verdict it must get and
//! the spec rule it exercises) through every decoder, both representations
//! and both extension modes. Structured content mode only: it is the one
//! buslab decodes.

use buslab_scenarios::cloudevents::{
    Borrow, CloudEvent, DecodeError, Decoder, Decoders, Limits, MapExtensions, Own, StructExtensions,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    file: String,
    expect: String,
    rule: String,
    max_bytes: Option<usize>,
}

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cloudevents")
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(folder().join("cases.toml")).expect("cases.toml is readable");
    toml::from_str::<Cases>(&text).expect("cases.toml parses").case
}

/// Runs `body` on a thread with the stack the decoders need at the depth
/// limit (sonic-rs and serde_json recurse once per level).
fn with_decoding_stack(body: fn()) {
    std::thread::Builder::new()
        .stack_size(buslab_scenarios::cloudevents::decode::STACK_BYTES)
        .spawn(body)
        .expect("a thread")
        .join()
        .expect("the cases pass");
}

/// The slug of a verdict (`ok` for an event).
fn slug<E>(verdict: &Result<E, DecodeError>) -> &'static str {
    verdict.as_ref().map_or_else(|e| e.reason(), |_| "ok")
}

#[test]
fn every_case_gets_its_verdict_from_every_decoder_representation_and_mode() {
    with_decoding_stack(all_verdicts);
}

fn all_verdicts() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    for case in &cases {
        let doc = std::fs::read(folder().join(&case.file)).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let limits = Limits { max_bytes: case.max_bytes.unwrap_or(Limits::default().max_bytes) };
        for decoder in Decoder::ALL {
            let mut d = Decoders::default();
            let verdicts: [(&str, &str); 4] = [
                ("owned/struct", slug(&d.decode::<Own, StructExtensions<'static>>(decoder, &doc, limits))),
                ("owned/map", slug(&d.decode::<Own, MapExtensions<'static>>(decoder, &doc, limits))),
                (
                    "borrowed/struct",
                    slug(&Decoders::default().decode::<Borrow, StructExtensions<'_>>(decoder, &doc, limits)),
                ),
                ("borrowed/map", slug(&Decoders::default().decode::<Borrow, MapExtensions<'_>>(decoder, &doc, limits))),
            ];
            for (mode, got) in verdicts {
                assert_eq!(got, case.expect, "{} ({}), {} {mode}", case.file, case.rule, decoder.name());
            }
        }
    }
}

#[test]
fn valid_cases_decode_to_the_same_event_everywhere() {
    with_decoding_stack(same_events);
}

fn same_events() {
    for case in cases().iter().filter(|c| c.expect == "ok") {
        let doc = std::fs::read(folder().join(&case.file)).expect("readable");
        let events: Vec<CloudEvent<'static, StructExtensions<'static>>> = Decoder::ALL
            .iter()
            .map(|&d| Decoders::default().decode::<Own, _>(d, &doc, Limits::default()).expect("valid"))
            .collect();
        assert!(events.windows(2).all(|w| w[0] == w[1]), "{}: {events:?}", case.file);
    }
}

#[test]
fn every_fixture_file_is_a_listed_case_and_every_slug_is_exercised() {
    let listed: std::collections::BTreeSet<String> = cases().into_iter().map(|c| c.file).collect();
    let mut found = std::collections::BTreeSet::new();
    for dir in std::fs::read_dir(folder()).expect("the folder").flatten().filter(|e| e.path().is_dir()) {
        for file in std::fs::read_dir(dir.path()).expect("a subfolder").flatten() {
            let path = file.path();
            found.insert(path.strip_prefix(folder()).expect("under the folder").to_string_lossy().into_owned());
        }
    }
    assert_eq!(found, listed, "files and cases.toml differ");
    let expected: std::collections::BTreeSet<String> = cases().into_iter().map(|c| c.expect).collect();
    for reason in DecodeError::REASONS {
        assert!(expected.contains(reason), "no case for {reason}");
    }
}
