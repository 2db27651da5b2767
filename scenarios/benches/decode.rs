//! CloudEvents decode cost per decoder × representation × extension mode
//! (criterion), without a bus: where the time of a `cloudevents` cell goes
//! before routing.
//!
//! Groups (filter with `cargo bench -p buslab-scenarios --bench decode -- <group>`):
//! - `generated/<decoder>/<representation>/<extensions>`: the catalog's
//!   generated corpus (seed 42, 200 B – 4 KB, median near 600 B);
//! - `small/<decoder>/<representation>/<extensions>`: the same generator's
//!   documents of 400–600 B only, the size the reference figures
//!   are quoted at.
//!
//! - `floor/<corpus>/<decoder>`: the decoder validating the whole document
//!   into `serde::de::IgnoredAny` (no event built, no spec rule checked,
//!   no copy): the ceiling a decode into a typed event can approach.
//! - `native/<corpus>/<row>`: the native sonic-rs decoder against its serde
//!   sibling (both borrowed, struct extensions) and against sonic-rs's own
//!   DOM parse into `sonic_rs::Value` of the same documents after the same
//!   input copy (`sonic_rs_value`: a full validating parse that builds a
//!   tree, no spec rule checked), measured one after the other in one run
//!   so that their ratios hold on a shared machine.
//!
//! Throughput is in documents and in bytes per second (criterion reports
//! one: documents, with the corpus's mean size printed beside it). Every
//! decode must succeed and the accumulated digest must be the same for every
//! decoder, or the bench panics: a decoder that decodes wrongly gets no
//! figure. Sonic-rs's SIMD path is fixed at compile time: build with
//! `RUSTFLAGS="-C target-cpu=native"` to give it AVX2.

use buslab_scenarios::cloudevents::decode::{
    Borrow, Decoders, ExtensionsFamily, Limits, MapFamily, Own, Strings, StructFamily,
};
use buslab_scenarios::cloudevents::{Decoder, Extensions, generate};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::de::IgnoredAny;
use sonic_rs::JsonContainerTrait;
use std::hint::black_box;

/// A digest of every attribute of one decoded event (so nothing is optimised
/// away, and decoders can be compared).
#[inline]
fn digest<F: ExtensionsFamily>(decoders: &mut Decoders, decoder: Decoder, doc: &[u8], owned: bool) -> u64 {
    fn one<'s, 'o, S: Strings<'s, 'o>, X: Extensions<'o>>(
        decoders: &'s mut Decoders,
        decoder: Decoder,
        doc: &[u8],
    ) -> u64 {
        let event = decoders.decode::<S, X>(decoder, doc, Limits::default()).expect("the corpus is valid");
        event.checksum()
    }
    if owned {
        one::<Own, F::Of<'static>>(decoders, decoder, doc)
    } else {
        one::<Borrow, F::Of<'_>>(decoders, decoder, doc)
    }
}

fn corpora() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let generated: Vec<Vec<u8>> = generate::documents(42, 1000);
    let small: Vec<Vec<u8>> =
        generate::documents(7, 20_000).into_iter().filter(|d| (400..=600).contains(&d.len())).take(1000).collect();
    vec![("generated", generated), ("small", small)]
}

fn bench<F: ExtensionsFamily>(c: &mut Criterion, mode: &str) {
    for (name, docs) in corpora() {
        let bytes: usize = docs.iter().map(Vec::len).sum();
        eprintln!("{name}: {} documents, mean {} B", docs.len(), bytes / docs.len().max(1));
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(docs.len() as u64));
        let mut reference = None;
        for decoder in Decoder::ALL {
            for owned in [true, false] {
                let mut decoders = Decoders::default();
                let check: u64 =
                    docs.iter().map(|d| digest::<F>(&mut decoders, decoder, d, owned)).fold(0, u64::wrapping_add);
                assert_eq!(*reference.get_or_insert(check), check, "{decoder:?} decodes differently");
                let id = format!("{}/{}/{mode}", decoder.name(), if owned { "owned" } else { "borrowed" });
                group.bench_function(BenchmarkId::from_parameter(id), |b| {
                    b.iter(|| {
                        let mut sum = 0u64;
                        for d in &docs {
                            sum = sum.wrapping_add(digest::<F>(&mut decoders, decoder, black_box(d), owned));
                        }
                        sum
                    })
                });
            }
        }
        group.finish();
    }
}

/// Validation alone, per decoder (simd-json through its reused tape, as in
/// [`Decoders`]).
fn floor(c: &mut Criterion) {
    for (name, docs) in corpora() {
        let mut group = c.benchmark_group(format!("floor/{name}"));
        group.throughput(Throughput::Elements(docs.len() as u64));
        group.bench_function("serde_json", |b| {
            b.iter(|| docs.iter().filter(|d| serde_json::from_slice::<IgnoredAny>(black_box(d)).is_ok()).count())
        });
        group.bench_function("sonic_rs", |b| {
            b.iter(|| docs.iter().filter(|d| sonic_rs::from_slice::<IgnoredAny>(black_box(d)).is_ok()).count())
        });
        let mut buffers = simd_json::Buffers::default();
        let mut input = Vec::new();
        let mut tape = Some(simd_json::Tape::null());
        group.bench_function("simd_json", |b| {
            b.iter(|| {
                let mut ok = 0;
                for d in &docs {
                    input.clear();
                    input.extend_from_slice(black_box(d));
                    input.resize(d.len() + simd_json::INPUT_PADDING, b' ');
                    let mut t = tape.take().expect("the tape is put back").reset();
                    ok += usize::from(simd_json::fill_tape_padded(&mut input, d.len(), &mut buffers, &mut t).is_ok());
                    tape = Some(t.reset());
                }
                assert_eq!(ok, docs.len(), "every document is valid JSON");
                ok
            })
        });
        group.finish();
    }
}

/// The native decoder, its serde sibling and sonic-rs's DOM parse, side by
/// side (see the module doc).
fn native(c: &mut Criterion) {
    for (name, docs) in corpora() {
        let mut group = c.benchmark_group(format!("native/{name}"));
        group.throughput(Throughput::Elements(docs.len() as u64));
        for decoder in [Decoder::SonicRsNative, Decoder::SonicRs] {
            let mut decoders = Decoders::default();
            group.bench_function(format!("{}/borrowed/struct", decoder.name()), |b| {
                b.iter(|| {
                    let mut sum = 0u64;
                    for d in &docs {
                        sum = sum.wrapping_add(digest::<StructFamily>(&mut decoders, decoder, black_box(d), false));
                    }
                    sum
                })
            });
        }
        let mut input: Vec<u8> = Vec::with_capacity(4096);
        group.bench_function("sonic_rs_value", |b| {
            b.iter(|| {
                let mut nodes = 0usize;
                for d in &docs {
                    input.clear();
                    input.extend_from_slice(black_box(d));
                    let value: sonic_rs::Value = sonic_rs::from_slice(&input).expect("the corpus is valid JSON");
                    nodes += value.as_object().map_or(0, |o| o.len());
                }
                nodes
            })
        });
        group.finish();
    }
}

fn decode(c: &mut Criterion) {
    bench::<StructFamily>(c, "struct");
    bench::<MapFamily>(c, "map");
}

criterion_group!(benches, decode, floor, native);
criterion_main!(benches);
