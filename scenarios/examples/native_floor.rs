//! The native decoder against its floor, sonic-rs's DOM parse into
//! `sonic_rs::Value` of the same documents after the same input copy, in
//! interleaved rounds (so that both see the same machine load), without
//! criterion: quick to build, and small enough to run under callgrind
//! (`--toggle-collect=native_floor::native` or `native_floor::value`).
//!
//! `cargo run --release -p buslab-scenarios --example native_floor -- [both|native|value|serde] [rounds] [small|generated]`
//! prints the median round of each as documents/s (and bytes/s for the
//! decoder) and the ratio native / DOM. `small` is the decode bench's
//! 400–600 B set, `generated` the catalog's corpus (seed 42).
use buslab_scenarios::cloudevents::decode::{Borrow, Decoders, Limits};
use buslab_scenarios::cloudevents::{Decoder, StructExtensions, generate};
use sonic_rs::JsonContainerTrait;
use std::hint::black_box;
use std::time::Instant;

#[inline(never)]
fn native(decoders: &mut Decoders, docs: &[Vec<u8>], decoder: Decoder) -> u64 {
    let mut sum = 0u64;
    for d in docs {
        let e =
            decoders.decode::<Borrow, StructExtensions<'_>>(decoder, black_box(d), Limits::default()).expect("valid");
        sum = sum.wrapping_add(e.checksum());
    }
    sum
}

#[inline(never)]
fn value(input: &mut Vec<u8>, docs: &[Vec<u8>]) -> u64 {
    let mut nodes = 0u64;
    for d in docs {
        input.clear();
        input.extend_from_slice(black_box(d));
        let v: sonic_rs::Value = sonic_rs::from_slice(input).expect("valid");
        nodes += v.as_object().map_or(0, |o| o.len()) as u64;
    }
    nodes
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("both");
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let corpus = args.get(3).map(String::as_str).unwrap_or("small");
    // The same two corpora as `benches/decode.rs`.
    let docs: Vec<Vec<u8>> = if corpus == "small" {
        generate::documents(7, 20_000).into_iter().filter(|d| (400..=600).contains(&d.len())).take(1000).collect()
    } else {
        generate::documents(42, 1000)
    };
    let bytes: usize = docs.iter().map(Vec::len).sum();
    let mut decoders = Decoders::default();
    let mut input = Vec::with_capacity(4096);
    let (mut tn, mut tv, mut ts) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        if mode == "both" || mode == "native" {
            let t = Instant::now();
            black_box(native(&mut decoders, &docs, Decoder::SonicRsNative));
            tn.push(t.elapsed().as_secs_f64());
        }
        if mode == "both" || mode == "value" {
            let t = Instant::now();
            black_box(value(&mut input, &docs));
            tv.push(t.elapsed().as_secs_f64());
        }
        if mode == "serde" {
            let t = Instant::now();
            black_box(native(&mut decoders, &docs, Decoder::SonicRs));
            ts.push(t.elapsed().as_secs_f64());
        }
    }
    let n = docs.len() as f64;
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (mn, mv, ms) = (med(&mut tn), med(&mut tv), med(&mut ts));
    println!(
        "{corpus}: {} docs, mean {} B | native {:.3} M/s ({:.0} MB/s) | value {:.3} M/s | serde {:.3} M/s | native/value {:.3}",
        docs.len(),
        bytes / docs.len(),
        n / mn / 1e6,
        bytes as f64 / mn / 1e6,
        n / mv / 1e6,
        n / ms / 1e6,
        mv / mn
    );
}
