//! The native decoder allocates nothing per event on valid documents in the
//! borrowed representation with struct extensions (its `# Guarantees`), nor
//! does any decoder on binary-mode messages (`binary.rs`'s), counted with a
//! counting global allocator. Alone in its binary: the counter is global,
//! and no other test may allocate while it counts (so its tests run one
//! after the other, from one test function).

use buslab_scenarios::cloudevents::{Borrow, Decoder, Decoders, Limits, Own, StructExtensions, generate};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn borrowed_struct_decoding_allocates_nothing_per_event() {
    native_structured();
    binary_every_decoder();
}

fn native_structured() {
    let docs: Vec<Vec<u8>> = generate::documents(42, 1000);
    let mut decoders = Decoders::default();
    let (mut inline, mut counted) = (0, 0);
    for doc in &docs {
        // Once to size the reused buffers, then counted.
        let spilled = {
            let event = decoders
                .decode::<Borrow, StructExtensions<'_>>(Decoder::SonicRsNative, doc, Limits::default())
                .expect("generated documents are valid");
            event.extensions.other.spilled()
        };
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let event = decoders
            .decode::<Borrow, StructExtensions<'_>>(Decoder::SonicRsNative, doc, Limits::default())
            .expect("generated documents are valid");
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        drop(event);
        counted += 1;
        // More than two unknown extensions spill the inline list to the heap.
        if !spilled {
            inline += 1;
            assert_eq!(allocations, 0, "{}", String::from_utf8_lossy(doc));
        }
    }
    assert!(inline * 10 >= counted * 9, "only {inline} of {counted} documents kept their extensions inline");
    // The counter counts: the owned representation copies every string.
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let owned = decoders.decode::<Own, StructExtensions<'static>>(Decoder::SonicRsNative, &docs[0], Limits::default());
    assert!(owned.is_ok() && ALLOCATIONS.load(Ordering::Relaxed) - before >= 3, "id, source and type are copied");
}

fn binary_every_decoder() {
    let messages = generate::messages(42, 1000);
    for decoder in Decoder::ALL {
        let mut decoders = Decoders::default();
        let (mut inline, mut counted) = (0, 0);
        for message in &messages {
            let spilled = {
                let event = decoders
                    .decode_binary::<Borrow, StructExtensions<'_>>(decoder, message, Limits::default())
                    .expect("generated messages are valid");
                event.extensions.other.spilled()
            };
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let event = decoders
                .decode_binary::<Borrow, StructExtensions<'_>>(decoder, message, Limits::default())
                .expect("generated messages are valid");
            let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
            drop(event);
            counted += 1;
            if !spilled {
                inline += 1;
                // serde_json's deserializer starts with an empty scratch
                // buffer each time, and grows it for an escaped string in
                // the body it checks (as in structured mode).
                let allowed = u64::from(decoder == Decoder::SerdeJson);
                assert!(allocations <= allowed, "{}: {allocations} allocations on {message:?}", decoder.name());
            }
        }
        // Header values are strings: `severitynumber` and `sampled` join the
        // unknown extensions outside the typed fields, so more spill.
        assert!(
            inline * 10 >= counted * 8,
            "{}: only {inline} of {counted} kept their extensions inline",
            decoder.name()
        );
    }
}
