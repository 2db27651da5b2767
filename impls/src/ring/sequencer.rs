//! The ring and its sequencing protocol, free of threads and listeners so
//! that loom can model it. Its items are `pub` only so that `model` can
//! re-export them under `--cfg buslab_loom`; the module itself is private.

use crate::sync::{AtomicU64, AtomicUsize, Cell, Mutex};
use crossbeam_utils::CachePadded;
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Set in an availability flag while its slot holds no event.
const VACANT: u64 = 1 << 63;

/// A preallocated ring of slots with its sequences.
///
/// Sequences count events from 0; sequence `s` lives in slot `s & mask`.
/// A producer may write sequence `s` only while `s < gate + capacity`,
/// where `gate` is at most every registered consumer's sequence (the next
/// it will read) and, with no consumer, at most the end of the
/// contiguously published prefix (so that two producers never write one
/// slot at once).
///
/// With one producer, everything below `cursor` is published, and slot
/// `i` holds an event once `cursor` passed `i` (sequences are written in
/// order; one whose copy panicked is not published, and the next claim
/// reuses it). With several, sequence `s` is published once
/// `available[s & mask]` (less `VACANT`) equals `s`; `VACANT` there says
/// the slot holds no event (never written, or its copy panicked).
/// Consumers never read a slot to learn what is published, so a listener
/// that ignores the event moves no slot memory between cores.
pub struct Core<E> {
    /// One producer: every sequence below it is published (the LMAX
    /// cursor). Several: unused.
    cursor: CachePadded<AtomicU64>,
    /// Several producers: the next sequence to claim.
    claim: CachePadded<AtomicU64>,
    /// The gate producers last computed, plus `capacity`: they may write
    /// any sequence below it (only grows; read on every claim).
    limit: CachePadded<AtomicU64>,
    /// How many consumers are registered (`gating[..consumers]`).
    consumers: CachePadded<AtomicUsize>,
    /// Each consumer's sequence: it has finished with everything below.
    gating: Box<[CachePadded<AtomicU64>]>,
    /// Several producers: per slot, the last sequence published there
    /// (`VACANT` set if the slot holds no event). Empty with one.
    available: Box<[AtomicU64]>,
    slots: Box<[Cell<MaybeUninit<E>>]>,
    mask: u64,
    multi: bool,
    /// Serialises gate refreshes against consumer registration.
    gate_lock: Mutex<()>,
    /// Several producers: end of the contiguous published prefix, as
    /// last scanned (under `gate_lock`).
    watermark: AtomicU64,
}

// SAFETY: a slot's value is written only by the producer that claimed
// its sequence and read (as `&E`, hence `E: Sync`) only by consumers
// after publication and before release; the sequences enforce this
// exclusion. Events move between threads, hence `E: Send`.
unsafe impl<E: Send + Sync> Sync for Core<E> {}
// SAFETY: as above; the core owns its events.
unsafe impl<E: Send + Sync> Send for Core<E> {}

impl<E> Core<E> {
    /// A ring of `capacity` (a power of two) empty slots, for up to
    /// `max_consumers` consumers, claimed by one producer or (`multi`)
    /// several.
    pub fn new(capacity: usize, max_consumers: usize, multi: bool) -> Self {
        assert!(capacity.is_power_of_two(), "the ring size must be a power of two");
        let available = if multi {
            // `u64::MAX`: vacant, and no sequence reaches `!VACANT`.
            (0..capacity).map(|_| AtomicU64::new(u64::MAX)).collect()
        } else {
            Box::default()
        };
        Core {
            cursor: CachePadded::new(AtomicU64::new(0)),
            claim: CachePadded::new(AtomicU64::new(0)),
            limit: CachePadded::new(AtomicU64::new(capacity as u64)),
            consumers: CachePadded::new(AtomicUsize::new(0)),
            gating: (0..max_consumers).map(|_| CachePadded::new(AtomicU64::new(0))).collect(),
            available,
            slots: (0..capacity).map(|_| Cell::new(MaybeUninit::uninit())).collect(),
            mask: capacity as u64 - 1,
            multi,
            gate_lock: Mutex::new(()),
            watermark: AtomicU64::new(0),
        }
    }

    /// The number of slots.
    #[inline(always)]
    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Whether several producers may claim (the multi-producer
    /// protocol).
    #[inline(always)]
    pub fn is_multi(&self) -> bool {
        self.multi
    }

    #[inline(always)]
    fn slot(&self, seq: u64) -> &Cell<MaybeUninit<E>> {
        // SAFETY: the index is masked below the length (a power of two).
        unsafe { self.slots.get_unchecked((seq & self.mask) as usize) }
    }

    /// Several producers: the availability flag of `seq`'s slot.
    #[inline(always)]
    fn flag(&self, seq: u64) -> &AtomicU64 {
        debug_assert!(self.multi);
        // SAFETY: with several producers there is one flag per slot, and
        // the index is masked below that.
        unsafe { self.available.get_unchecked((seq & self.mask) as usize) }
    }

    /// Every sequence below this has been claimed (with one producer:
    /// published).
    pub fn claimed(&self) -> u64 {
        if self.multi { self.claim.load(Acquire) } else { self.cursor.load(Acquire) }
    }

    /// Claims `n` (`1..=capacity`) sequences and returns the first, once
    /// there is room for all of them. While there is none it calls `wait`
    /// once with a `ready` check to poll until it returns true.
    #[cfg(buslab_loom)]
    #[inline(always)]
    pub fn claim(&self, n: u64, wait: impl FnOnce(&mut dyn FnMut() -> bool)) -> u64 {
        if self.multi { self.claim_in::<true>(n, wait) } else { self.claim_in::<false>(n, wait) }
    }

    /// [`Core::claim`] for a known protocol (`MULTI == self.is_multi()`).
    #[inline(always)]
    pub(crate) fn claim_in<const MULTI: bool>(&self, n: u64, wait: impl FnOnce(&mut dyn FnMut() -> bool)) -> u64 {
        debug_assert!(n >= 1 && n <= self.capacity());
        debug_assert_eq!(MULTI, self.multi);
        let start = if MULTI {
            self.claim.fetch_add(n, Relaxed)
        } else {
            // Only this producer writes the cursor.
            self.cursor.load(Relaxed)
        };
        let end = start + n;
        if !self.fits(end) {
            self.wait_for_room(end, wait);
        }
        start
    }

    #[cold]
    #[inline(never)]
    fn wait_for_room(&self, end: u64, wait: impl FnOnce(&mut dyn FnMut() -> bool)) {
        if !self.room(end) {
            wait(&mut || self.room(end));
        }
    }

    /// Claims `n` (`1..=capacity`) sequences if there is room for all of
    /// them now; returns the first.
    #[inline]
    pub fn try_claim(&self, n: u64) -> Option<u64> {
        debug_assert!(n >= 1 && n <= self.capacity());
        if !self.multi {
            let start = self.cursor.load(Relaxed);
            return (self.fits(start + n) || self.refresh(start + n)).then_some(start);
        }
        let mut start = self.claim.load(Relaxed);
        loop {
            let end = start + n;
            if !self.fits(end) && !self.refresh(end) {
                return None;
            }
            match self.claim.compare_exchange_weak(start, end, Relaxed, Relaxed) {
                Ok(_) => return Some(start),
                Err(now) => start = now,
            }
        }
    }

    /// Whether `..end` may be written under the cached gate.
    #[inline(always)]
    fn fits(&self, end: u64) -> bool {
        // Acquire: the producer that stored the gate acquired the
        // consumers' releases; this passes them on to this producer.
        end <= self.limit.load(Acquire)
    }

    /// Whether `..end` may be written, re-reading the consumers: without
    /// the lock first, and if that leaves room, under it (which is what
    /// makes the answer true).
    fn room(&self, end: u64) -> bool {
        if self.fits(end) {
            return true;
        }
        let n = self.consumers.load(Acquire);
        if n > 0 {
            let min = self.gating[..n].iter().fold(u64::MAX, |m, g| m.min(g.load(Acquire)));
            if end > min + self.capacity() {
                return false;
            }
        }
        self.refresh(end)
    }

    /// Recomputes the gate under `gate_lock`; true if `..end` fits.
    fn refresh(&self, end: u64) -> bool {
        let _lock = self.gate_lock.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.consumers.load(Relaxed);
        let gate = if n == 0 {
            self.watermark_locked()
        } else {
            self.gating[..n].iter().fold(u64::MAX, |m, g| m.min(g.load(Acquire)))
        };
        // Under the lock the gate only grows: a consumer's sequence only
        // grows, and a new one starts at the published prefix's end, which
        // no gate exceeds.
        let limit = gate + self.capacity();
        assert!(limit >= self.limit.load(Relaxed), "the gate went back");
        self.limit.store(limit, Release);
        end <= limit
    }

    /// The end of the contiguous published prefix (caller holds
    /// `gate_lock`).
    fn watermark_locked(&self) -> u64 {
        if !self.multi {
            return self.cursor.load(Acquire);
        }
        // Scan from a published sequence less than a ring behind: the last
        // scan's end or, if further, the furthest consumer's sequence
        // (scans stop once consumers exist, and the flag of a sequence
        // lapped since then would never match). Terminates: while the
        // lock is held no producer's gate grows, so at most `capacity`
        // more sequences can be published.
        let n = self.consumers.load(Relaxed);
        let mut w = self.gating[..n].iter().fold(self.watermark.load(Relaxed), |w, g| w.max(g.load(Acquire)));
        while self.flag(w).load(Acquire) & !VACANT == w {
            w += 1;
        }
        self.watermark.store(w, Relaxed);
        w
    }

    /// Whether the slot of `seq` (claimed, not yet written) holds an
    /// event.
    #[inline(always)]
    fn holds_event<const MULTI: bool>(&self, seq: u64) -> bool {
        if MULTI {
            // The flag was last written by the slot's previous producer,
            // which happened before this claim (through the gate).
            self.flag(seq).load(Relaxed) & VACANT == 0
        } else {
            seq >= self.capacity()
        }
    }

    /// Moves `event` into the slot of `seq`; returns the event it
    /// replaces, if any.
    ///
    /// # Safety
    /// The caller claimed `seq` (with [`Core::claim`] or
    /// [`Core::try_claim`]) and has not published it.
    #[cfg(buslab_loom)]
    #[inline(always)]
    pub unsafe fn put(&self, seq: u64, event: E) -> Option<E> {
        // SAFETY: the caller's promise.
        unsafe { if self.multi { self.put_in::<true>(seq, event) } else { self.put_in::<false>(seq, event) } }
    }

    /// [`Core::put`] for a known protocol (`MULTI == self.is_multi()`).
    ///
    /// # Safety
    /// As for [`Core::put`].
    #[inline(always)]
    pub(crate) unsafe fn put_in<const MULTI: bool>(&self, seq: u64, event: E) -> Option<E> {
        // Overwriting an event without drop glue needs no drop: skip the
        // question (a branch on the hot path).
        let full = std::mem::needs_drop::<E>() && self.holds_event::<MULTI>(seq);
        // SAFETY: a claimed, unpublished sequence's slot is this caller's
        // alone: consumers have released its previous sequence (the gate)
        // and do not read it before it is published. `full` says whether
        // it is initialised.
        unsafe {
            self.slot(seq).with_mut(|value| {
                if full {
                    Some(std::mem::replace(value.assume_init_mut(), event))
                } else {
                    value.write(event);
                    None
                }
            })
        }
    }

    /// Copies `source` into the slot of `seq` (with `clone_from` into the
    /// event it holds, reusing its buffers). If the copy panics, the slot
    /// is left as [`Core::abandon`] expects.
    ///
    /// # Safety
    /// As for [`Core::put`].
    #[cfg(buslab_loom)]
    #[inline(always)]
    pub unsafe fn put_clone(&self, seq: u64, source: &E)
    where
        E: Clone,
    {
        // SAFETY: the caller's promise.
        unsafe {
            if self.multi { self.put_clone_in::<true>(seq, source) } else { self.put_clone_in::<false>(seq, source) }
        }
    }

    /// [`Core::put_clone`] for a known protocol (`MULTI ==
    /// self.is_multi()`).
    ///
    /// # Safety
    /// As for [`Core::put`].
    #[inline(always)]
    pub(crate) unsafe fn put_clone_in<const MULTI: bool>(&self, seq: u64, source: &E)
    where
        E: Clone,
    {
        // Without drop glue, a fresh clone may overwrite the old event
        // (as for SmallEvent, whose clone is a copy).
        let full = std::mem::needs_drop::<E>() && self.holds_event::<MULTI>(seq);
        // SAFETY: as in `put`.
        unsafe {
            self.slot(seq).with_mut(|value| {
                if !full {
                    // If `clone` panics, nothing was written.
                    value.write(source.clone());
                } else if !MULTI {
                    // If `clone_from` panics, the slot still holds a valid
                    // event, and its sequence is not published.
                    value.assume_init_mut().clone_from(source);
                } else {
                    // If `clone_from` panics, the half-copied event (still
                    // a valid value) is dropped and the slot marked
                    // vacant, to be published so.
                    struct Vacate<'a, E>(&'a mut MaybeUninit<E>, &'a AtomicU64);
                    impl<E> Drop for Vacate<'_, E> {
                        fn drop(&mut self) {
                            self.1.fetch_or(VACANT, Relaxed);
                            // SAFETY: initialised (the flag said so); the
                            // flag now says it is not.
                            unsafe { self.0.assume_init_drop() };
                        }
                    }
                    let guard = Vacate(value, self.flag(seq));
                    guard.0.assume_init_mut().clone_from(source);
                    std::mem::forget(guard);
                }
            })
        }
    }

    /// Publishes the claimed sequences `start..end`, every one written
    /// with [`Core::put`] or [`Core::put_clone`].
    #[cfg(buslab_loom)]
    #[inline(always)]
    pub fn publish(&self, start: u64, end: u64) {
        if self.multi {
            self.publish_in::<true>(start, end);
        } else {
            self.publish_in::<false>(start, end);
        }
    }

    /// [`Core::publish`] for a known protocol (`MULTI ==
    /// self.is_multi()`).
    #[inline(always)]
    pub(crate) fn publish_in<const MULTI: bool>(&self, start: u64, end: u64) {
        if MULTI {
            for seq in start..end {
                self.flag(seq).store(seq, Release);
            }
        } else {
            self.cursor.store(end, Release);
        }
    }

    /// Ends a claim of `start..end` of which only `start..written` were
    /// written (a copy panicked). With one producer, publishes
    /// `start..written` and gives the rest back (the next claim starts
    /// at `written`). With several, publishes them all, the unwritten
    /// ones vacant (their old events dropped), so that consumers skip
    /// them rather than wait for them.
    #[cold]
    pub fn abandon(&self, start: u64, written: u64, end: u64) {
        if !self.multi {
            self.cursor.store(written, Release);
            return;
        }
        for seq in written..end {
            let flag = self.flag(seq);
            let old = flag.load(Relaxed);
            if old & VACANT == 0 {
                flag.store(old | VACANT, Relaxed);
                // SAFETY: claimed and unpublished (as in `put`), and
                // initialised (the flag said so; it now says not).
                unsafe { self.slot(seq).with_mut(|value| value.assume_init_drop()) };
            }
        }
        for seq in start..end {
            let vacant = if seq < written { 0 } else { VACANT };
            self.flag(seq).store(seq | vacant, Release);
        }
    }

    /// Registers a consumer; returns its index and the first sequence it
    /// reads, or `None` when `max_consumers` are registered. The consumer
    /// gates producers from then on (it is registered under the lock
    /// producers refresh their gate under, at a sequence no producer may
    /// yet lap).
    pub fn add_consumer(&self) -> Option<(usize, u64)> {
        let _lock = self.gate_lock.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.consumers.load(Relaxed);
        if n == self.gating.len() {
            return None;
        }
        let start = self.watermark_locked();
        // The invariant that keeps producers from lapping the new
        // consumer: they may write below `limit`.
        assert!(
            start + self.capacity() >= self.limit.load(Relaxed),
            "a new consumer would start where producers may lap it"
        );
        self.gating[n].store(start, Release);
        self.consumers.store(n + 1, Release);
        Some((n, start))
    }

    /// The end of the published range that starts at `next`, at most
    /// `next + max`.
    #[cfg(buslab_loom)]
    #[inline(always)]
    pub fn available(&self, next: u64, max: u64) -> u64 {
        if self.multi { self.available_in::<true>(next, max) } else { self.available_in::<false>(next, max) }
    }

    /// [`Core::available`] for a known protocol (`MULTI ==
    /// self.is_multi()`).
    #[inline(always)]
    pub(crate) fn available_in<const MULTI: bool>(&self, next: u64, max: u64) -> u64 {
        let limit = next + max;
        if MULTI {
            let mut end = next;
            while end < limit && self.flag(end).load(Acquire) & !VACANT == end {
                end += 1;
            }
            end
        } else {
            self.cursor.load(Acquire).min(limit)
        }
    }

    /// Calls `f` with the event of sequence `seq` (not if it was
    /// published vacant).
    ///
    /// # Safety
    /// `seq` is below what [`Core::available`] returned to the calling
    /// consumer, which has not released it.
    #[cfg(buslab_loom)]
    #[inline(always)]
    pub unsafe fn read(&self, seq: u64, f: impl FnOnce(&E)) {
        // SAFETY: the caller's promise.
        unsafe { if self.multi { self.read_in::<true>(seq, f) } else { self.read_in::<false>(seq, f) } }
    }

    /// [`Core::read`] for a known protocol (`MULTI == self.is_multi()`).
    ///
    /// # Safety
    /// As for [`Core::read`].
    #[inline(always)]
    pub(crate) unsafe fn read_in<const MULTI: bool>(&self, seq: u64, f: impl FnOnce(&E)) {
        // With several producers, this consumer acquired the flag in
        // `available`.
        if !MULTI || self.flag(seq).load(Relaxed) & VACANT == 0 {
            // SAFETY: published and not released, so no producer writes
            // it (the gate keeps them a ring behind this consumer); it
            // holds an event (one producer: published ones all do).
            unsafe { self.slot(seq).with(|value| f(value.assume_init_ref())) }
        }
    }

    /// Consumer `consumer` has finished with every sequence below `seq`.
    #[inline(always)]
    pub fn release(&self, consumer: usize, seq: u64) {
        self.gating[consumer].store(seq, Release);
    }

    /// Whether every registered consumer has finished with every sequence
    /// below `target`.
    pub fn consumed(&self, target: u64) -> bool {
        let n = self.consumers.load(Acquire);
        self.gating[..n].iter().all(|g| g.load(Acquire) >= target)
    }
}

impl<E> Drop for Core<E> {
    fn drop(&mut self) {
        let written = self.cursor.load(Relaxed);
        for (i, slot) in self.slots.iter().enumerate() {
            let full = if self.multi { self.available[i].load(Relaxed) & VACANT == 0 } else { (i as u64) < written };
            if full {
                // SAFETY: `&mut self`: nothing else accesses the slot, and
                // it holds an event (see `holds_event`).
                unsafe { slot.with_mut(|value| value.assume_init_drop()) };
            }
        }
    }
}
