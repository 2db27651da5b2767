//! The three decoders agree: every generated event decodes to identical typed
//! events with each of them (in both representations and both extension
//! modes), and random bytes or mutated documents never panic and are either
//! accepted by all three, identically, or refused by all three.

use buslab_scenarios::cloudevents::{
    Borrow, CloudEvent, DecodeError, Decoder, Decoders, Extensions, Limits, MapExtensions, Own, StructExtensions,
    generate,
};
use proptest::prelude::*;

type Owned = CloudEvent<'static, StructExtensions<'static>>;

/// Every decoder's verdict on `doc` (owned, struct mode), after checking that
/// the borrowed representation and the map mode agree with it.
fn verdicts(doc: &[u8]) -> Vec<Result<Owned, DecodeError>> {
    Decoder::ALL
        .iter()
        .map(|&d| {
            let mut decoders = Decoders::default();
            let owned = decoders.decode::<Own, StructExtensions<'static>>(d, doc, Limits::default());
            let map = decoders.decode::<Own, MapExtensions<'static>>(d, doc, Limits::default());
            assert_eq!(owned.as_ref().map(|e| e.extensions.digest()), map.as_ref().map(|e| e.extensions.digest()));
            assert_eq!(owned.as_ref().map(Owned::checksum).ok(), map.as_ref().map(|e| e.checksum()).ok());
            let mut decoders = Decoders::default();
            let borrowed = decoders.decode::<Borrow, StructExtensions<'_>>(d, doc, Limits::default());
            assert_eq!(owned.as_ref().map(Owned::checksum).ok(), borrowed.as_ref().map(|e| e.checksum()).ok());
            assert_eq!(owned.as_ref().err(), borrowed.as_ref().err(), "{d:?}: borrowed and owned disagree");
            owned
        })
        .collect()
}

fn assert_agree(doc: &[u8]) {
    let v = verdicts(doc);
    let shown = String::from_utf8_lossy(doc);
    match (&v[0], &v[1], &v[2]) {
        (Ok(a), Ok(b), Ok(c)) => {
            assert_eq!(a, b, "serde_json vs simd_json on {shown}");
            assert_eq!(a, c, "serde_json vs sonic_rs on {shown}");
        }
        (Err(_), Err(_), Err(_)) => {}
        _ => panic!("decoders disagree on {shown}: {:?}", v.iter().map(|r| r.as_ref().err()).collect::<Vec<_>>()),
    }
}

#[test]
fn every_generated_event_decodes_identically() {
    for doc in generate::documents(7, 300) {
        let v = verdicts(&doc);
        let first = v[0].as_ref().expect("generated events are valid");
        assert!(v.iter().all(|r| r.as_ref() == Ok(first)), "{}", String::from_utf8_lossy(&doc));
    }
}

/// The first generated document (from `seed`) whose `data` is a JSON object.
fn document_with_data(seed: u64) -> String {
    generate::documents(seed, 50)
        .into_iter()
        .map(|d| String::from_utf8(d).expect("generated documents are UTF-8"))
        .find(|d| d.contains("\"data\":{"))
        .expect("one in six documents carries data_base64, not all fifty")
}

/// Each decoder's verdict as a slug (`ok` for an event), after checking
/// that all three agree on it and, where they accept, on the event.
fn agreed_reason(doc: &str) -> &'static str {
    assert_agree(doc.as_bytes());
    let reasons: Vec<_> =
        verdicts(doc.as_bytes()).iter().map(|v| v.as_ref().map_or_else(|e| e.reason(), |_| "ok")).collect();
    assert!(reasons.windows(2).all(|w| w[0] == w[1]), "decoders disagree on {doc}: {reasons:?}");
    reasons[0]
}

#[test]
fn numbers_beyond_binary64_are_malformed_everywhere_and_others_are_not() {
    let doc = document_with_data(544);
    // The number in `data` (skipped by serde_json and sonic-rs), as an
    // extension value, as a context attribute, and at the top level.
    let places = |n: &str| {
        [
            doc.replacen("\"data\":{", &format!("\"data\":{{\"n\":[{n}],"), 1),
            doc.replacen('{', &format!("{{\"ext\":{n},"), 1),
            doc.replacen('{', &format!("{{\"subject\":{n},"), 1),
            n.to_owned(),
        ]
    };
    let nines = "9".repeat(400);
    let max = format!("{:.0}", f64::MAX);
    let beyond = [
        "1e9999".to_owned(),
        "-1e9999".to_owned(),
        "1E+309".to_owned(),
        "1.7976931348623159e308".to_owned(),
        nines.clone(),
        format!("-{nines}"),
        format!("{max}0"),
    ];
    for n in &beyond {
        for (place, doc) in places(n).iter().enumerate() {
            assert_eq!(agreed_reason(doc), "malformed-json", "{n} at place {place}");
        }
    }
    let within = [
        "1e-9999".to_owned(),
        "-1e-9999".to_owned(),
        "0e99999".to_owned(),
        "1e308".to_owned(),
        "1.7976931348623158e308".to_owned(),
        max,
        "0.1000000000000000055511151231257827".to_owned(),
        "18446744073709551616".to_owned(),
        "-9223372036854775809".to_owned(),
        format!("0.{nines}"),
    ];
    for n in &within {
        let [data, ext, attribute, top] = places(n);
        assert_eq!(agreed_reason(&data), "ok", "{n} in data");
        assert_eq!(agreed_reason(&ext), "bad-extension-value", "{n} as an extension");
        assert_eq!(agreed_reason(&attribute), "mistyped-attribute", "{n} as subject");
        assert_eq!(agreed_reason(&top), "not-an-object", "{n} alone");
    }
}

#[test]
fn the_mutation_proptest_once_found_1e999_spliced_into_data() {
    // Its minimal failing input (simd-json refused, the others accepted).
    let mut doc = generate::documents(544, 1).remove(0);
    for m in [Mutation::Insert(682094441507687819, 35), Mutation::Splice(14787842255225812654, "1e999")] {
        apply(&mut doc, &m);
    }
    assert!(String::from_utf8_lossy(&doc).contains("1e999"));
    assert_agree(&doc);
}

/// A byte-level mutation of a document.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Delete(usize),
    Insert(usize, u8),
    Truncate(usize),
    Splice(usize, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragments = prop::sample::select(vec![
        "\"",
        "\\",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "null",
        "1e999",
        "1e-999",
        "99999999999999999999",
        "-0",
        "\"data\":1,",
        "\"data_base64\":\"AA==\",",
        "\"specversion\":\"1.0\",",
        "\"id\":\"x\",",
        "\"Id\":1,",
        "\u{e9}",
        "\\ud800",
        "\u{0}",
        "\"ext\":1.5,",
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), fragments).prop_map(|(i, s)| Mutation::Splice(i, s)),
    ]
}

fn apply(doc: &mut Vec<u8>, m: &Mutation) {
    if doc.is_empty() {
        return;
    }
    match *m {
        Mutation::Flip(i, b) => {
            let i = i % doc.len();
            doc[i] = b;
        }
        Mutation::Delete(i) => {
            doc.remove(i % doc.len());
        }
        Mutation::Insert(i, b) => doc.insert(i % (doc.len() + 1), b),
        Mutation::Truncate(i) => doc.truncate(i % doc.len()),
        Mutation::Splice(i, s) => {
            let at = i % (doc.len() + 1);
            doc.splice(at..at, s.bytes());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_base64_check_agrees_with_the_base64_crate(s in "[A-Za-z0-9+/=]{0,13}") {
        use base64::Engine;
        let decodes = base64::engine::general_purpose::STANDARD.decode(&s).is_ok();
        prop_assert_eq!(buslab_scenarios::cloudevents::decode::valid_base64(&s), decodes, "{}", s);
    }

    #[test]
    fn random_bytes_never_panic_and_are_refused_alike(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        assert_agree(&bytes);
    }

    #[test]
    fn mutated_documents_never_panic_and_decoders_agree(
        seed in 0u64..1_000,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut doc = generate::documents(seed, 1).remove(0);
        for m in &mutations {
            apply(&mut doc, m);
        }
        assert_agree(&doc);
    }
}
