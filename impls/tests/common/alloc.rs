//! A counting global allocator, for the tests that count allocations per
//! event. A test binary installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: common::alloc::CountingAlloc = common::alloc::CountingAlloc;
//! ```
//!
//! It forwards every call to [`System`] and counts each `alloc`,
//! `alloc_zeroed` and `realloc` twice over:
//!
//! - per thread, always: [`this_thread`] (tests running in parallel on
//!   other threads do not disturb it);
//! - process-wide, [`counted`]: the calls made on threads that opted in
//!   with [`count_this_thread`], and on every thread while
//!   [`count_every_thread`] is on.
//!
//! Reading a count without the allocator installed panics, so that a
//! forgotten `#[global_allocator]` cannot pass for zero allocations.

use super::Boxed;
use buslab_impls::payload::{HeavyEvent, Payload, SmallEvent};
use buslab_impls::{BusConfig, EventBus, Filter, Strategy};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The counting allocator (see the [module docs](self)).
pub struct CountingAlloc;

static COUNTED: AtomicU64 = AtomicU64::new(0);
static EVERY_THREAD: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static THIS_THREAD: Cell<u64> = const { Cell::new(0) };
    static OPTED_IN: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    // `try_with`: the allocator may run while this thread's locals are torn
    // down.
    let _ = THIS_THREAD.try_with(|n| n.set(n.get() + 1));
    if OPTED_IN.try_with(Cell::get).unwrap_or(false) || EVERY_THREAD.load(Ordering::Relaxed) {
        COUNTED.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches no
// heap memory (const-initialised thread-local `Cell`s and atomics).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[track_caller]
fn assert_installed() {
    assert!(
        INSTALLED.load(Ordering::Relaxed),
        "common::alloc::CountingAlloc is not this test binary's #[global_allocator]"
    );
}

/// Allocations this thread has made so far.
pub fn this_thread() -> u64 {
    assert_installed();
    THIS_THREAD.with(Cell::get)
}

/// Process-wide allocations counted so far (see the [module docs](self)).
pub fn counted() -> u64 {
    assert_installed();
    COUNTED.load(Ordering::SeqCst)
}

/// Counts the current thread's allocations in [`counted`] (or stops).
pub fn count_this_thread(on: bool) {
    OPTED_IN.with(|c| c.set(on));
}

/// Counts every thread's allocations in [`counted`] (or stops). Tests that
/// turn it on count each other's allocations: run them one at a time.
pub fn count_every_thread(on: bool) {
    EVERY_THREAD.store(on, Ordering::SeqCst);
}

/// Allocations made on every thread while `f` runs (run such tests with
/// `--test-threads=1`: the count is process-wide).
pub fn allocations_while(f: impl FnOnce()) -> u64 {
    let before = counted();
    count_every_thread(true);
    f();
    count_every_thread(false);
    counted() - before
}

/// Heap allocations per call of `publish` over `n` calls after as many
/// calls of warm-up, flushing after each (run with `--test-threads=1`).
pub fn allocations_per_event<B: EventBus>(bus: &B, n: u64, mut publish: impl FnMut(&B, u64)) -> f64 {
    for seq in 0..n {
        publish(bus, seq);
    }
    bus.flush();
    let allocations = allocations_while(|| {
        for seq in 0..n {
            publish(bus, seq);
        }
        bus.flush();
    });
    allocations as f64 / n as f64
}

/// Prints the allocations per event of `S`'s bus built with `config`, to
/// 1 and 4 no-op subscribers, for `n` events of each kind: `SmallEvent`
/// via `publish`, `HeavyEvent` via `publish` (moving prepared events in,
/// so that only the bus's own clones count) and via `publish_clone`; and
/// what one `HeavyEvent` clone costs, for scale. Asserts no event was
/// dropped (give a lossy bus room for all of them).
pub fn print_allocations_per_event<S: Strategy>(config: &BusConfig, n: u64) {
    let heavy_template = HeavyEvent::make(0, 7, 0);
    let mut copy = None;
    let per_clone = allocations_while(|| copy = Some(heavy_template.clone()));
    drop(copy);
    println!("{}: one HeavyEvent clone (template): {per_clone} allocations", S::NAME);
    for subscribers in [1, 4] {
        let small = S::Bus::<SmallEvent, Boxed<SmallEvent>>::new(config).expect("valid config");
        let heavy = S::Bus::<HeavyEvent, Boxed<HeavyEvent>>::new(config).expect("valid config");
        for _ in 0..subscribers {
            small.subscribe(Filter::All, Box::new(|_: &SmallEvent| ())).expect("subscribe");
            heavy.subscribe(Filter::All, Box::new(|_: &HeavyEvent| ())).expect("subscribe");
        }
        let a = allocations_per_event(&small, n, |b, seq| b.publish(SmallEvent::make(0, seq, 0)));
        println!("  SmallEvent, {subscribers} subscriber(s), publish: {a:.3} per event");
        let events: Vec<HeavyEvent> = (0..2 * n).map(|_| heavy_template.clone()).collect();
        let events = Mutex::new(events);
        let a = allocations_per_event(&heavy, n, |b, _| {
            let e = events.lock().expect("not poisoned").pop().expect("enough");
            b.publish(e)
        });
        println!("  HeavyEvent, {subscribers} subscriber(s), publish: {a:.3} per event");
        let a = allocations_per_event(&heavy, n, |b, _| b.publish_clone(&heavy_template));
        println!("  HeavyEvent, {subscribers} subscriber(s), publish_clone: {a:.3} per event");
        assert_eq!(small.shutdown().dropped, 0);
        assert_eq!(heavy.shutdown().dropped, 0);
    }
}
