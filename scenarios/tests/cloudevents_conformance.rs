//! Conformance: the fixture set in `tests/data/cloudevents/` (one event per
//! file, a structured-mode document `.json` or a binary-mode message
//! `.http`, each listed in `cases.toml` with the verdict it must get and
//! the spec rule it exercises) through every decoder, both representations
//! and both extension modes.

use buslab_scenarios::cloudevents::{
    Borrow, CloudEvent, Content, DecodeError, Decoder, Decoders, Limits, MapExtensions, Message, Own, StructExtensions,
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

/// The event in `file`: a `.http` file holds one binary-mode message.
fn content(file: &str) -> Content {
    let bytes = std::fs::read(folder().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    if !file.ends_with(".http") {
        return Content::Structured(bytes);
    }
    let mut messages = Message::parse_stream(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(messages.len(), 1, "{file}: one message per file");
    Content::Binary(messages.remove(0).1)
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
        let doc = content(&case.file);
        let limits = Limits { max_bytes: case.max_bytes.unwrap_or(Limits::default().max_bytes) };
        for decoder in Decoder::ALL {
            let mut d = Decoders::default();
            let verdicts: [(&str, &str); 4] = [
                ("owned/struct", slug(&d.decode_content::<Own, StructExtensions<'static>>(decoder, &doc, limits))),
                ("owned/map", slug(&d.decode_content::<Own, MapExtensions<'static>>(decoder, &doc, limits))),
                (
                    "borrowed/struct",
                    slug(&Decoders::default().decode_content::<Borrow, StructExtensions<'_>>(decoder, &doc, limits)),
                ),
                (
                    "borrowed/map",
                    slug(&Decoders::default().decode_content::<Borrow, MapExtensions<'_>>(decoder, &doc, limits)),
                ),
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
        let doc = content(&case.file);
        let events: Vec<CloudEvent<'static, StructExtensions<'static>>> = Decoder::ALL
            .iter()
            .map(|&d| Decoders::default().decode_content::<Own, _>(d, &doc, Limits::default()).expect("valid"))
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
    let mode = |c: &Case| if c.file.ends_with(".http") { "binary" } else { "structured" };
    let expected: std::collections::BTreeSet<(&str, String)> =
        cases().iter().map(|c| (mode(c), c.expect.clone())).collect();
    // Rules about JSON members and `data_base64`, which binary mode has not.
    let structured_only = ["not-an-object", "bad-extension-value", "data-and-data-base64", "bad-base64"];
    for reason in DecodeError::REASONS {
        if reason != "bad-header-value" {
            assert!(expected.contains(&("structured", reason.to_owned())), "no structured case for {reason}");
        }
        if !structured_only.contains(&reason) {
            assert!(expected.contains(&("binary", reason.to_owned())), "no binary case for {reason}");
        }
    }
}

/// Binary-mode values are decoded as the HTTP binding says, and borrowed
/// from the message where they need no decoding.
#[test]
fn binary_values_decode_to_what_the_binding_says() {
    let doc = content("valid/percent-encoded.http");
    let Content::Binary(message) = &doc else { unreachable!("a .http file") };
    let mut decoders = Decoders::default();
    let event = decoders
        .decode_binary::<Borrow, MapExtensions<'_>>(Decoder::SonicRsNative, message, Limits::default())
        .expect("valid");
    assert_eq!(event.subject.as_deref(), Some("Euro € 😀"));
    assert_eq!(event.extensions.0.get("tenant").map(|v| format!("{v:?}")), Some("String(\"€A\")".to_owned()));
    assert_eq!(event.borrowed_strings(), 4, "id, source, type from the message; subject decoded (and borrowed)");
    let doc = content("valid/extension-strings.http");
    let event = decoders.decode_content::<Own, StructExtensions<'static>>(Decoder::SimdJson, &doc, Limits::default());
    let event = event.expect("valid");
    assert_eq!((event.extensions.severitynumber, event.extensions.sampled), (None, None), "strings, not typed");
    assert_eq!(event.extensions.sequence.as_deref(), Some("0000000001"), "a string extension keeps its field");
    assert_eq!(event.extensions.other.len(), 2);
    let doc = content("valid/quoted-string.http");
    let event = decoders.decode_content::<Own, StructExtensions<'static>>(Decoder::SerdeJson, &doc, Limits::default());
    assert_eq!(event.expect("valid").subject.as_deref(), Some("a \"quoted\" value!"));
}
