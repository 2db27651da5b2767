//! Binary content mode: every decoder reaches the same verdict on every
//! message — generated ones decode to identical events, random and mutated
//! ones never panic and are accepted by all, identically, or refused by all
//! for the same reason (the precedence "In binary content mode" on
//! `DecodeError`) — and both modes carry the same events.

use buslab_scenarios::cloudevents::{
    Borrow, CloudEvent, Content, ContentMode, Corpus, DecodeError, Decoder, Decoders, ExtValue, Limits, MapExtensions,
    Message, Own, StructExtensions, generate,
};
use proptest::prelude::*;

type Owned = CloudEvent<'static, StructExtensions<'static>>;

/// Every decoder's verdict on `message` (owned, struct mode), after checking
/// that the borrowed representation and the map mode agree with it.
fn verdicts(message: &Message) -> Vec<Result<Owned, DecodeError>> {
    Decoder::ALL
        .iter()
        .map(|&d| {
            let mut decoders = Decoders::default();
            let owned = decoders.decode_binary::<Own, StructExtensions<'static>>(d, message, Limits::default());
            let map = decoders.decode_binary::<Own, MapExtensions<'static>>(d, message, Limits::default());
            assert_eq!(owned.as_ref().map(Owned::checksum).ok(), map.as_ref().map(|e| e.checksum()).ok());
            assert_eq!(owned.as_ref().err(), map.as_ref().err(), "{d:?}: map and struct disagree");
            let mut decoders = Decoders::default();
            let borrowed = decoders.decode_binary::<Borrow, StructExtensions<'_>>(d, message, Limits::default());
            assert_eq!(owned.as_ref().map(Owned::checksum).ok(), borrowed.as_ref().map(|e| e.checksum()).ok());
            assert_eq!(owned.as_ref().err(), borrowed.as_ref().err(), "{d:?}: borrowed and owned disagree");
            owned
        })
        .collect()
}

fn assert_agree(message: &Message) {
    let v = verdicts(message);
    for (d, verdict) in Decoder::ALL.iter().zip(&v).skip(1) {
        assert_eq!(verdict, &v[0], "{} vs {} on {message:?}", d.name(), Decoder::ALL[0].name());
    }
}

#[test]
fn every_generated_message_decodes_identically() {
    for message in generate::messages(7, 300) {
        let v = verdicts(&message);
        let first = v[0].as_ref().expect("generated messages are valid");
        assert!(v.iter().all(|r| r.as_ref() == Ok(first)), "{message:?}");
    }
}

/// An extension value as a binary-mode header carries it.
fn as_string(value: &ExtValue<'_>) -> String {
    match value {
        ExtValue::String(s) => s.to_string(),
        ExtValue::Integer(i) => i.to_string(),
        ExtValue::Boolean(b) => b.to_string(),
    }
}

/// Every attribute, extension values as strings.
fn attributes(event: &CloudEvent<'_, MapExtensions<'_>>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        event.extensions.0.iter().map(|(k, v)| (k.to_string(), as_string(v))).collect();
    for (name, value) in [
        ("id", Some(&event.id)),
        ("source", Some(&event.source)),
        ("type", Some(&event.ty)),
        ("datacontenttype", event.datacontenttype.as_ref()),
        ("dataschema", event.dataschema.as_ref()),
        ("subject", event.subject.as_ref()),
        ("time", event.time.as_ref()),
    ] {
        if let Some(v) = value {
            out.push((name.to_owned(), v.to_string()));
        }
    }
    out.sort();
    out
}

#[test]
fn both_modes_carry_the_same_events() {
    let corpus = Corpus::generated(11, 300);
    let binary = corpus.in_mode(ContentMode::Binary);
    let back = binary.in_mode(ContentMode::Structured);
    let mut decoders = Decoders::default();
    let mut percent_encoded = 0;
    for ((s, b), r) in corpus.documents.iter().zip(&binary.documents).zip(&back.documents) {
        assert_eq!(b.content.mode(), ContentMode::Binary);
        assert_eq!(r.content.mode(), ContentMode::Structured);
        let Content::Binary(message) = &b.content else { unreachable!("converted") };
        percent_encoded += usize::from(message.headers().any(|(_, v)| v.contains(&b'%')));
        let decode = |d: &mut Decoders, c: &Content| {
            d.decode_content::<Own, MapExtensions<'static>>(Decoder::SonicRsNative, c, Limits::default())
                .expect("valid in every mode")
        };
        let (es, eb, er) =
            (decode(&mut decoders, &s.content), decode(&mut decoders, &b.content), decode(&mut decoders, &r.content));
        assert_eq!(attributes(&es), attributes(&eb), "{}", b.origin);
        assert_eq!(attributes(&eb), attributes(&er), "{}", r.origin);
        // An empty `data_base64` is an empty body: no data in binary mode.
        let has_data =
            |e: &CloudEvent<'_, MapExtensions<'_>>| e.data || e.data_base64.as_deref().is_some_and(|b| !b.is_empty());
        assert_eq!((has_data(&es), eb.data), (eb.data, has_data(&er)), "{}", b.origin);
        assert!(eb.extensions.0.values().all(|v| matches!(v, ExtValue::String(_))), "header values are strings");
    }
    assert!(percent_encoded * 2 > corpus.documents.len(), "most generated messages need decoding: {percent_encoded}");
}

#[test]
fn invalid_documents_stay_as_they_are_in_either_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, "{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}\n").expect("write");
    let corpus = Corpus::load(&path).expect("loads").in_mode(ContentMode::Binary);
    assert_eq!(corpus.documents[0].content.mode(), ContentMode::Structured, "not converted");
    assert_eq!(corpus.classify(Decoder::SimdJson, Limits::default()).errors.get("wrong-specversion"), Some(&1));
}

#[test]
fn a_corpus_of_http_files_loads_and_converts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut stream = Vec::new();
    for message in generate::messages(3, 5) {
        stream.extend_from_slice(&message.to_wire());
    }
    std::fs::write(dir.path().join("a.http"), &stream).expect("write");
    std::fs::write(dir.path().join("b.json"), generate::documents(4, 1).remove(0)).expect("write");
    let corpus = Corpus::load(dir.path()).expect("loads");
    assert_eq!(corpus.documents.len(), 6);
    assert!(corpus.documents[0].origin.ends_with("a.http:1"), "{}", corpus.documents[0].origin);
    let line: usize = corpus.documents[1].origin.rsplit(':').next().and_then(|l| l.parse().ok()).expect("a line");
    assert!(line > 5, "the second message starts after the first's headers: {}", corpus.documents[1].origin);
    let c = corpus.classify(Decoder::SonicRs, Limits::default());
    assert_eq!(c.valid.len(), 6, "{:?}", c.examples);
    let structured = corpus.in_mode(ContentMode::Structured);
    assert!(structured.documents.iter().all(|d| d.content.mode() == ContentMode::Structured));
    assert_eq!(structured.classify(Decoder::SimdJson, Limits::default()).valid.len(), 6);
    let file = dir.path().join("a.http");
    assert_eq!(Corpus::load(&file).expect("a single .http file").documents.len(), 5);
    std::fs::write(&file, "ce-id 1\n\n").expect("write");
    let e = Corpus::load(&file).expect_err("not HTTP");
    assert!(e.to_string().contains("a.http: not HTTP/1.1 messages: line 1"), "{e}");
}

/// A change to a message's headers or body.
#[derive(Clone, Debug)]
enum Mutation {
    /// Splice a fragment into header `usize`'s value at a position.
    Value(usize, usize, &'static str),
    /// Splice a fragment into header `usize`'s name.
    Name(usize, usize, &'static str),
    /// Drop a header.
    Drop(usize),
    /// Repeat a header, its name's case flipped.
    Repeat(usize),
    /// Add a header.
    Add(&'static str, &'static str),
    /// Overwrite a body byte.
    Body(usize, u8),
    /// Cut the body.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragments = prop::sample::select(vec![
        "%",
        "%2",
        "%zz",
        "%41",
        "%C0%A0",
        "%E2%82",
        "%F0%9F%98%80",
        "\"",
        "\\",
        " ",
        "\t",
        "\u{e9}",
        "\u{1}",
        "_",
        "A",
        "-",
        "1.0",
    ]);
    let names = prop::sample::select(vec![
        "ce-id",
        "ce-specversion",
        "CE-Type",
        "ce-source",
        "ce-data",
        "ce-datacontenttype",
        "ce-data_base64",
        "ce-",
        "content-type",
        "Content-Type",
        "ce-ext",
        "x-other",
    ]);
    let values = prop::sample::select(vec![
        "",
        "1.0",
        "0.3",
        "x",
        "application/json",
        "text/plain",
        "\"q\"",
        "%zz",
        "%C0%A0",
        "a%20b",
        "\u{ff}",
    ]);
    prop_oneof![
        (any::<usize>(), any::<usize>(), fragments.clone()).prop_map(|(h, i, f)| Mutation::Value(h, i, f)),
        (any::<usize>(), any::<usize>(), fragments).prop_map(|(h, i, f)| Mutation::Name(h, i, f)),
        any::<usize>().prop_map(Mutation::Drop),
        any::<usize>().prop_map(Mutation::Repeat),
        (names, values).prop_map(|(n, v)| Mutation::Add(n, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Body(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(message: &Message, m: &Mutation) -> Message {
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = message.headers().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
    let mut body = message.body().to_vec();
    let n = headers.len().max(1);
    match *m {
        Mutation::Value(h, i, f) | Mutation::Name(h, i, f) if !headers.is_empty() => {
            let (name, value) = &mut headers[h % n];
            let target = if matches!(m, Mutation::Value(..)) { value } else { name };
            let at = i % (target.len() + 1);
            target.splice(at..at, f.bytes());
        }
        Mutation::Drop(h) if !headers.is_empty() => {
            headers.remove(h % n);
        }
        Mutation::Repeat(h) if !headers.is_empty() => {
            let (name, value) = headers[h % n].clone();
            let flipped = name
                .iter()
                .map(|b| if b.is_ascii_lowercase() { b.to_ascii_uppercase() } else { b.to_ascii_lowercase() });
            headers.push((flipped.collect(), value));
        }
        Mutation::Add(name, value) => headers.push((name.into(), value.into())),
        Mutation::Body(i, b) if !body.is_empty() => {
            let at = i % body.len();
            body[at] = b;
        }
        Mutation::Truncate(i) if !body.is_empty() => body.truncate(i % body.len()),
        _ => {}
    }
    Message::new(headers, &body)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn mutated_messages_never_panic_and_decoders_agree(
        seed in 0u64..1_000,
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut message = generate::messages(seed, 1).remove(0);
        for m in &mutations {
            message = apply(&message, m);
        }
        assert_agree(&message);
    }

    #[test]
    fn random_headers_and_bodies_never_panic_and_are_judged_alike(
        headers in prop::collection::vec(
            (
                prop_oneof![
                    2 => prop::sample::select(vec!["ce-id", "ce-specversion", "ce-source", "ce-type", "content-type", "ce-x"])
                        .prop_map(|s| s.as_bytes().to_vec()),
                    1 => prop::collection::vec(any::<u8>(), 0..8),
                ],
                prop::collection::vec(any::<u8>(), 0..12),
            ),
            0..8,
        ),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        assert_agree(&Message::new(headers, &body));
    }

    #[test]
    fn random_streams_never_panic_the_framing(bytes in prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(b"ce-id: \r\n:Content-Length0123456789 HTTP/1.1\"%".to_vec()),
            1 => any::<u8>(),
        ],
        0..200,
    )) {
        if let Ok(messages) = Message::parse_stream(&bytes) {
            for (_, message) in &messages {
                assert_agree(message);
            }
        }
    }

    #[test]
    fn json_bodies_are_judged_like_structured_data(
        seed in 0u64..1_000,
        at in any::<usize>(),
        byte in prop::sample::select(b"{}[]\",:\\0123456789eE.-+ \xff".to_vec()),
    ) {
        // A generated message with a JSON body, one byte of it changed: its
        // verdict is the structured document's with that `data`.
        let message = generate::messages(seed, 8)
            .into_iter()
            .find(|m| m.headers().any(|(n, v)| n == b"Content-Type" && v == b"application/json"))
            .expect("five in six generated events carry JSON data");
        let mut body = message.body().to_vec();
        let i = at % body.len();
        body[i] = byte;
        let headers: Vec<_> = message.headers().collect();
        let message = Message::new(headers, &body);
        assert_agree(&message);
        let binary = verdicts(&message)[0].as_ref().map(|_| "ok").unwrap_or_else(|e| e.reason());
        let mut doc = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"#.to_vec();
        doc.extend_from_slice(&body);
        doc.push(b'}');
        let structured = Decoders::default()
            .decode::<Own, StructExtensions<'static>>(Decoder::SerdeJson, &doc, Limits::default())
            .map(|_| "ok")
            .unwrap_or_else(|e| e.reason());
        // A body that is several values, or ends inside a string, is not
        // one `data` member once embedded: those are malformed in both.
        if structured != "malformed-json" {
            prop_assert_eq!(binary, structured);
        }
    }
}
