//! The allocation pass's counter: a global allocator that hands every call
//! to the system's and, once switched on, counts what the pass reports —
//! blocks and bytes allocated and the peak of live bytes.
//!
//! It counts as dhat's heap profiler does (which the pass used before,
//! with the same figures): every `alloc` is a block
//! of its size, every `realloc` a new block of its new size that moves the
//! live bytes by the difference, and the peak is the most live bytes seen
//! after an allocation. dhat also records a backtrace for every
//! allocation, which the pass never reads and which cost microseconds per
//! allocation: a quick run's allocation pass took 5–10 s for each of the
//! heavy-payload cells at 16 subscribers (a cloned heavy event is several
//! allocations per delivery). Here an allocation costs three relaxed
//! atomic additions and a `fetch_max`.
//!
//! Switched on ([`switch_on`]) at the start of the allocation pass's child
//! process, before it allocates anything it measures; elsewhere the one
//! cost is a predictable branch per call.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

/// The counting allocator (install it with `#[global_allocator]`).
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static BLOCKS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

/// The environment variable that makes a `buslab probe` process count
/// from its first line (the runner sets it for the allocation pass).
pub const SWITCH: &str = "BUSLAB_COUNT_ALLOCATIONS";

/// Starts counting (for the rest of the process).
pub fn switch_on() {
    ON.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// `(blocks allocated, bytes allocated, peak live bytes)` since
/// [`switch_on`], or `None` when counting is off.
pub fn stats() -> Option<(u64, u64, u64)> {
    ON.load(Relaxed).then(|| (BLOCKS.load(Relaxed), BYTES.load(Relaxed), PEAK.load(Relaxed).max(0) as u64))
}

/// Counts a new block of `size` bytes that moves the live bytes by `delta`.
fn count(size: usize, delta: i64) {
    BLOCKS.fetch_add(1, Relaxed);
    BYTES.fetch_add(size as u64, Relaxed);
    let live = LIVE.fetch_add(delta, Relaxed) + delta;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call goes to `System` with the caller's arguments, and its
// result is returned unchanged; the counting touches only atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc(layout) };
        if ON.load(Relaxed) && !ptr.is_null() {
            count(layout.size(), layout.size() as i64);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if ON.load(Relaxed) && !ptr.is_null() {
            count(layout.size(), layout.size() as i64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ON.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as i64, Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if ON.load(Relaxed) && !new.is_null() {
            count(new_size, new_size as i64 - layout.size() as i64);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counters move as the module doc says (the allocator is called
    /// directly: the test binary's global allocator is the system's).
    #[test]
    fn counts_blocks_bytes_and_the_peak() {
        switch_on();
        let (blocks, bytes, _) = stats().expect("on");
        let small = Layout::from_size_align(100, 8).expect("layout");
        // SAFETY: each pointer is freed once, with the layout it has.
        unsafe {
            let a = Counting.alloc(small);
            let b = Counting.realloc(a, small, 300);
            let (blocks2, bytes2, peak) = stats().expect("on");
            assert_eq!((blocks2 - blocks, bytes2 - bytes), (2, 400), "an alloc and a realloc are two blocks");
            assert!(peak >= 300, "300 bytes were live: {peak}");
            Counting.dealloc(b, Layout::from_size_align(300, 8).expect("layout"));
        }
    }
}
