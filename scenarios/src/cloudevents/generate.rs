//! A seeded generator of realistic structured-mode CloudEvents.
//!
//! Each document is 200 B to 4 KB (log-uniform with a bias to the small end:
//! the median is near 450 B), carries the four required attributes, usually
//! `time`, `datacontenttype` and `subject`, 0–6 extensions (mostly the known
//! ones, now and then an unknown name; strings, integers and booleans), and
//! either nested JSON `data` (an order with line items, a customer and notes)
//! or, for about one event in six, `data_base64`. Strings carry unicode
//! (accents, CJK, emoji) as raw UTF-8; JSON escapes (`\"`, `\n`) appear only
//! inside `data`, so attribute strings can be borrowed by every decoder.
//! The same seed always gives the same documents.
//!
//! [`messages`] gives the same events in binary content mode: each
//! attribute a `ce-*` header (strings percent-encoded, so the accents and
//! spaces of `subject` and some extensions need decoding), `datacontenttype`
//! as `Content-Type`, `data` the body (its JSON text, or the bytes
//! `data_base64` encoded).

use base64::Engine;
use serde_json::{Map, Value, json};

/// The event types the generator uses; each becomes a route.
pub const TYPES: [&str; 8] = [
    "com.example.order.created",
    "com.example.order.paid",
    "com.example.order.shipped",
    "com.example.order.cancelled",
    "com.example.payment.authorized",
    "com.example.payment.refunded",
    "com.example.inventory.reserved",
    "com.example.customer.updated",
];

/// Smallest and largest generated document, bytes (approximately: the
/// generator stops adding content once past the drawn size).
pub const SIZE_RANGE: (usize, usize) = (200, 4096);

const WORDS: [&str; 12] =
    ["Zoë", "café", "naïve", "東京", "Straße", "señor", "🚀", "déjà vu", "Øresund", "İstanbul", "👩‍💻", "крем"];
const SOURCES: [&str; 4] = ["/shop/eu-west-1/orders", "/shop/us-east-2/payments", "urn:example:inventory", "/crm"];
const KNOWN: [&str; 10] = [
    "traceparent",
    "tracestate",
    "partitionkey",
    "sequence",
    "dataref",
    "authtype",
    "authid",
    "severitytext",
    "severitynumber",
    "sampled",
];
const UNKNOWN: [&str; 3] = ["tenant", "region", "priority"];

/// `count` documents from `seed`.
pub fn documents(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count).map(|i| document(&mut rng, i as u64)).collect()
}

/// The events of [`documents`]`(seed, count)` as binary-mode messages.
pub fn messages(seed: u64, count: usize) -> Vec<super::Message> {
    documents(seed, count)
        .iter()
        .map(|doc| super::binary::from_structured(doc).expect("generated documents are valid events"))
        .collect()
}

fn word(rng: &mut fastrand::Rng) -> &'static str {
    WORDS[rng.usize(..WORDS.len())]
}

fn hex(rng: &mut fastrand::Rng, digits: usize) -> String {
    (0..digits).map(|_| char::from_digit(rng.u32(..16), 16).expect("a hex digit")).collect()
}

/// The value of extension `name` (typed as the known set expects).
fn extension(rng: &mut fastrand::Rng, name: &str, i: u64) -> Value {
    match name {
        "traceparent" => json!(format!("00-{}-{}-01", hex(rng, 32), hex(rng, 16))),
        "tracestate" => json!(format!("vendor={},other={}", hex(rng, 8), hex(rng, 4))),
        "partitionkey" => json!(format!("customer-{}", rng.u32(..10_000))),
        "sequence" => json!(format!("{i:010}")),
        "dataref" => json!(format!("https://blobs.example.com/{}", hex(rng, 12))),
        "authtype" => json!(["user", "service_account", "app_user"][rng.usize(..3)]),
        "authid" => json!(format!("user-{}", rng.u32(..100_000))),
        "severitytext" => json!(["INFO", "WARN", "ERROR"][rng.usize(..3)]),
        "severitynumber" => json!(rng.i32(1..25)),
        "sampled" => json!(rng.bool()),
        "tenant" => json!(format!("tenant-{}", word(rng))),
        "region" => json!(["eu", "us", "ap"][rng.usize(..3)]),
        _ => json!(rng.i32(-5..5)),
    }
}

/// One order line of `data`.
fn line_item(rng: &mut fastrand::Rng) -> Value {
    json!({
        "sku": format!("SKU-{:06}", rng.u32(..1_000_000)),
        "name": format!("{} {}", word(rng), word(rng)),
        "quantity": rng.u32(1..10),
        "unit_price": { "amount": f64::from(rng.u32(100..100_000)) / 100.0, "currency": "EUR" },
        "tags": (0..rng.usize(0..3)).map(|_| word(rng)).collect::<Vec<_>>(),
        "gift": rng.bool(),
    })
}

fn document(rng: &mut fastrand::Rng, i: u64) -> Vec<u8> {
    let (lo, hi) = SIZE_RANGE;
    let u = rng.f64();
    let target = (lo as f64 * (hi as f64 / lo as f64).powf(u * u)) as usize;
    let ty = TYPES[rng.usize(..TYPES.len())];
    let mut event = Map::new();
    event.insert("specversion".into(), json!("1.0"));
    event.insert("id".into(), json!(format!("{}-{}-{}", hex(rng, 8), hex(rng, 4), hex(rng, 12))));
    event.insert("source".into(), json!(SOURCES[rng.usize(..SOURCES.len())]));
    event.insert("type".into(), json!(ty));
    if rng.u8(..10) < 9 {
        event.insert(
            "time".into(),
            json!(format!(
                "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                rng.u8(1..13),
                rng.u8(1..29),
                rng.u8(..24),
                rng.u8(..60),
                rng.u8(..60)
            )),
        );
    }
    if rng.bool() {
        event.insert("subject".into(), json!(format!("order/{} für {}", rng.u32(..1_000_000), word(rng))));
    }
    let extensions = rng.usize(0..=6);
    let mut names: Vec<&str> = KNOWN.to_vec();
    rng.shuffle(&mut names);
    names.truncate(extensions);
    if extensions > 0 && rng.u8(..8) == 0 {
        names[0] = UNKNOWN[rng.usize(..UNKNOWN.len())];
    }
    for name in names {
        let value = extension(rng, name, i);
        event.insert(name.into(), value);
    }
    let so_far = serde_json::to_vec(&event).expect("a JSON map serialises").len();
    if rng.u8(..6) == 0 {
        event.insert("datacontenttype".into(), json!("application/octet-stream"));
        let raw: Vec<u8> = (0..target.saturating_sub(so_far + 40) * 3 / 4).map(|_| rng.u8(..)).collect();
        event.insert("data_base64".into(), json!(base64::engine::general_purpose::STANDARD.encode(raw)));
    } else {
        event.insert("datacontenttype".into(), json!("application/json"));
        let mut items = Vec::new();
        let mut data = json!({
            "order_id": format!("ord-{}", rng.u64(..1_000_000_000)),
            "customer": {
                "id": rng.u32(..1_000_000),
                "name": format!("{} {}", word(rng), word(rng)),
                "vip": rng.bool(),
                "address": { "city": word(rng), "zip": format!("{:05}", rng.u32(..100_000)), "geo": [f64::from(rng.i32(-90_000..90_000)) / 1000.0, f64::from(rng.i32(-180_000..180_000)) / 1000.0] },
            },
            "note": format!("\"{}\"\n{}", word(rng), word(rng)),
            "items": [],
            "total": null,
        });
        let base = so_far + serde_json::to_vec(&data).expect("serialises").len() + 10;
        let mut size = base;
        while size < target {
            let item = line_item(rng);
            size += serde_json::to_vec(&item).expect("serialises").len() + 1;
            items.push(item);
        }
        data["items"] = Value::Array(items);
        data["total"] = json!(rng.u32(..10_000_000));
        event.insert("data".into(), data);
    }
    serde_json::to_vec(&Value::Object(event)).expect("a JSON value serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_documents() {
        assert_eq!(documents(7, 20), documents(7, 20));
        assert_ne!(documents(7, 20), documents(8, 20));
    }

    #[test]
    fn documents_cover_the_promised_shapes() {
        let docs = documents(42, 400);
        let sizes: Vec<usize> = docs.iter().map(Vec::len).collect();
        assert!(
            sizes.iter().all(|&s| (150..=4096 + 600).contains(&s)),
            "{:?}",
            (sizes.iter().min(), sizes.iter().max())
        );
        assert!(sizes.iter().any(|&s| s < 400) && sizes.iter().any(|&s| s > 2500));
        let text: Vec<String> = docs.iter().map(|d| String::from_utf8(d.clone()).expect("UTF-8")).collect();
        assert!(text.iter().any(|t| t.contains("data_base64")));
        assert!(text.iter().any(|t| t.contains("\"data\":{")));
        assert!(text.iter().any(|t| t.contains("🚀") || t.contains("東京")));
        assert!(
            text.iter().any(|t| t.contains("\"tenant\"") || t.contains("\"region\"") || t.contains("\"priority\""))
        );
        for t in &text {
            let v: Value = serde_json::from_str(t).expect("valid JSON");
            let extensions = v
                .as_object()
                .expect("object")
                .keys()
                .filter(|k| KNOWN.contains(&k.as_str()) || UNKNOWN.contains(&k.as_str()))
                .count();
            assert!(extensions <= 6);
        }
    }
}
