//! The decoders agree: every generated event decodes to identical typed
//! events with each of them (in both representations and both extension
//! modes), and random bytes or mutated documents never panic and are either
//! accepted by all, identically, or refused by all for the same reason (the
//! precedence documented on `DecodeError`).

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

/// Every decoder reaches the same verdict on `doc`: the same event, or a
/// refusal for the same reason.
fn assert_agree(doc: &[u8]) {
    let v = verdicts(doc);
    let shown = String::from_utf8_lossy(doc);
    for (d, verdict) in Decoder::ALL.iter().zip(&v).skip(1) {
        assert_eq!(verdict, &v[0], "{} vs {} on {shown}", d.name(), Decoder::ALL[0].name());
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

/// The decoders' common verdict as a slug (`ok` for an event), after
/// checking that they agree on it.
fn agreed_reason(doc: &str) -> &'static str {
    assert_agree(doc.as_bytes());
    verdicts(doc.as_bytes())[0].as_ref().map_or_else(|e| e.reason(), |_| "ok")
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
        "\"ext\":-0,",
        "\"id\":7,",
        "\"id\":\"\",",
        "\"specversion\":\"0.3\",",
        "\"data_base64\":\"!!\",",
        "\"sampled\":\"yes\",",
        "\"sampled\":true,",
        "\"tenant\":null,",
        "\"s\\u0075bject\":\"x\",",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "\u{ff}",
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

    /// Bytes drawn mostly from JSON's own alphabet reach deeper into the
    /// native decoder's member loop than uniform random bytes do.
    #[test]
    fn json_like_bytes_never_panic_and_are_refused_alike(
        bytes in prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(b"{}[]\":,\\ u0123456789abcdefnulltrue-+.eE".to_vec()),
                1 => any::<u8>(),
            ],
            0..200,
        ),
    ) {
        assert_agree(&bytes);
    }

    #[test]
    fn member_soup_is_judged_alike(
        members in prop::collection::vec(prop::sample::select(vec![
            "\"specversion\":\"1.0\"",
            "\"specversion\":\"0.3\"",
            "\"specversion\":null",
            "\"id\":\"1\"",
            "\"id\":\"\"",
            "\"id\":7",
            "\"source\":\"/s\"",
            "\"source\":[]",
            "\"type\":\"t\"",
            "\"type\":null",
            "\"subject\":\"caf\\u00e9\"",
            "\"data\":{\"a\":[1,2.5,null]}",
            "\"data\":null",
            "\"data_base64\":\"AAAA\"",
            "\"data_base64\":\"AAA\"",
            "\"sampled\":true",
            "\"sampled\":\"yes\"",
            "\"severitynumber\":3",
            "\"tenant\":\"a\"",
            "\"tenant\":null",
            "\"tenant\":1.5",
            "\"t\\u0065nant\":\"b\"",
            "\"Bad\":1",
            "\"x\":{}",
            "\"x\":-0",
            "\"x\":2147483648",
        ]), 0..9),
        broken_tail in any::<bool>(),
    ) {
        let mut doc = format!("{{{}}}", members.join(","));
        if broken_tail {
            doc.push_str(",]");
        }
        assert_agree(doc.as_bytes());
    }
}

/// The precedence documented on `DecodeError`, one case per pair of rules
/// it orders.
#[test]
fn the_documented_reason_wins_when_several_rules_break() {
    const INVALID: &str = "<0xFF>";
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let min = r#""specversion":"1.0","id":"1","source":"/s","type":"t""#;
    let cases: Vec<(String, &str)> = vec![
        // Rules 2-4, about the bytes, before any rule about the event.
        (format!("{{\"id\":7,{min},\"data\":{deep},\"x\":\"{INVALID}\"}}"), "invalid-utf8"),
        (format!("{{\"id\":7,{min},\"data\":{deep},}}"), "too-deep"),
        (format!("{{\"id\":7,{min},}}"), "malformed-json"),
        (format!("{{\"Bad\":1,{min},\"data\":1e999}}"), "malformed-json"),
        (format!("{{\"Bad\":1,{min},\"data\":\"\\ud800\"}}"), "malformed-json"),
        ("[1,".to_owned(), "malformed-json"),
        ("[1]".to_owned(), "not-an-object"),
        // Rule 6: the first member that breaks a rule, in document order.
        (format!("{{\"Bad\":1,\"id\":7,{min}}}"), "bad-attribute-name"),
        (format!("{{\"id\":7,\"Bad\":1,{min}}}"), "mistyped-attribute"),
        (format!("{{\"specversion\":\"0.3\",\"ext\":1.5,{min}}}"), "wrong-specversion"),
        (format!("{{\"data_base64\":\"AAA\",\"specversion\":\"0.3\",{min}}}"), "bad-base64"),
        // Within a member: a repeated context attribute before its value...
        (format!("{{{min},\"id\":7}}"), "duplicate-attribute"),
        // ...a bad name before the value...
        (format!("{{{min},\"Ext\":1.5}}"), "bad-attribute-name"),
        // ...and an extension's value before its repetition.
        (format!("{{{min},\"ext\":\"a\",\"ext\":1.5}}"), "bad-extension-value"),
        (format!("{{{min},\"ext\":\"a\",\"ext\":null}}"), "ok"),
        (format!("{{{min},\"sampled\":\"yes\",\"sampled\":true}}"), "duplicate-attribute"),
        // Rule 7, after the last member.
        (r#"{"data":1,"data_base64":"AAAA"}"#.to_owned(), "missing-specversion"),
        (r#"{"specversion":"1.0","source":"","data":1,"data_base64":"AAAA"}"#.to_owned(), "missing-id"),
        (r#"{"specversion":"1.0","id":"1","source":""}"#.to_owned(), "mistyped-attribute"),
        (r#"{"specversion":"1.0","id":"1","source":"/s","data":1,"data_base64":"AAAA"}"#.to_owned(), "missing-type"),
        (format!("{{{min},\"data\":1,\"data_base64\":\"AAAA\"}}"), "data-and-data-base64"),
    ];
    for (doc, want) in &cases {
        // Where the marker stands, a byte that is never UTF-8.
        let bytes = doc.replace(INVALID, "\u{1}").bytes().map(|b| if b == 1 { 0xFF } else { b }).collect::<Vec<_>>();
        assert_agree(&bytes);
        let got = verdicts(&bytes)[0].as_ref().map_or_else(|e| e.reason(), |_| "ok");
        assert_eq!(got, *want, "{}", String::from_utf8_lossy(&bytes));
    }
    // Oversized before everything.
    for d in Decoder::ALL {
        let e = Decoders::default().decode::<Own, StructExtensions<'static>>(d, b"[\xff", Limits { max_bytes: 1 });
        assert_eq!(e.err(), Some(DecodeError::Oversized), "{d:?}");
    }
}

#[test]
fn invalid_utf8_inside_skipped_data_is_refused_everywhere() {
    let doc = b"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"data\":{\"k\":\"\xff\"}}";
    assert_agree(doc);
    assert_eq!(verdicts(doc)[0].as_ref().err(), Some(&DecodeError::InvalidUtf8));
}
