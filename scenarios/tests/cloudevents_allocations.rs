//! The native decoder allocates nothing per event on valid documents in the
//! borrowed representation with struct extensions (its `# Guarantees`),
//! counted with a counting global allocator. Alone in its binary: the
//! counter is global, and no other test may allocate while it counts.

use buslab_scenarios::cloudevents::{Borrow, Corpus, Decoder, Decoders, Limits, Own, StructExtensions};
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
fn native_borrowed_struct_decoding_allocates_nothing_per_event() {
    let docs: Vec<Vec<u8>> = Corpus::generated(42, 1000).documents.into_iter().map(|d| d.bytes).collect();
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
