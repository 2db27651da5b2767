//! Disruptor-style ring: preallocated slots claimed by sequence number, read in batches by at most `max_threads` consumer threads.
//!
//! The ring holds `BusConfig::capacity` slots (rounded up to a power of
//! two), allocated once. A producer claims sequence numbers, writes the
//! slots they map to (`publish` moves the event in; `publish_clone` and
//! `publish_batch` copy with `Clone::clone_from` into the event the slot
//! already holds, reusing its buffers) and publishes them. With
//! `BusConfig::producers == 1` the claim is a plain cursor (no
//! read-modify-write) and publishing is one release store of that cursor,
//! once per call (so once per `publish_batch` chunk). With more producers
//! they claim with `fetch_add` (a CAS for `try_publish`, all-or-nothing) and
//! mark each slot in a separate availability array, as LMAX's
//! `MultiProducerSequencer` does, so that consumers read only published
//! slots, in sequence order. Either way consumers learn what is published
//! without touching the slots, so a listener that ignores the event moves
//! no slot memory between cores. Producers cache the slowest consumer's
//! sequence and re-read the consumers' sequences only when they might wrap.
//!
//! Subscribers are spread over consumer threads: a new thread while fewer
//! than `max_threads` run and every thread already serves someone, else the
//! least loaded thread. Each thread serves its *group* with one gating
//! sequence: it reads the available range (at most a quarter of the ring),
//! delivers it to every subscriber of the group in turn (filters checked at
//! delivery), then stores its sequence once. A new thread is registered as
//! gating under the lock producers take on their slow path, starting at the
//! end of the published prefix, which no producer's cached limit can lap (a
//! loom model checks this, with the claims, availability and gating).
//! Waiting goes through `wait::Notifier`. Producers notify with
//! `notify_all_cheap` (no fence per event) and consumers likewise after each
//! batch, so sleepers re-check every `Notifier::CHEAP_TIMEOUT`; a producer
//! about to wait for room, and `flush`, first wake consumers with a fenced
//! `notify_all`, so a missed cheap wake-up can delay only the last events of
//! a burst nobody flushes, by at most that timeout. After a batch
//! shorter than its maximum a consumer pauses about a quarter of a
//! microsecond before reading the cursor again (not with `BusySpin`), so that
//! a consumer that keeps up does not pull the cursor's cache line across on
//! every publish.
//!
//! # Guarantees
//! - **Ordering:** every subscriber sees events in the ring's sequence order
//!   (so each producer's in publish order), one call at a time, always on
//!   the same consumer thread.
//! - **Delivery:** exactly once to every subscriber subscribed throughout; a
//!   new subscriber gets a gap-free suffix; after `unsubscribe` returns no
//!   publish that starts later reaches it, and its listener is dropped after
//!   its last call. Nothing is dropped. A listener panic (or a panic in its
//!   `Drop` on a consumer thread) is caught and counted. If a `clone` panics
//!   in `publish_clone`/`publish_batch`, the panic reaches the publisher and
//!   the events not copied are not delivered; the ring does not stall.
//! - **Backpressure:** `publish`, `publish_clone` and `publish_batch` wait
//!   (per `BusConfig::wait`) while the slowest consumer thread is a ring
//!   behind; `try_publish` hands the event back in `Full` instead. A stuck
//!   listener stalls every producer once the ring is full.
//! - **Allocations per event:** zero at steady state for SmallEvent (any
//!   way in). HeavyEvent: zero via `publish_clone`/`publish_batch` once each
//!   slot has held an event of the same shape (strings and item list at
//!   least as long; `Vec::clone_from` frees surplus items, so a longer event
//!   after a shorter one allocates the difference); via `publish` the event
//!   is moved in as allocated by the caller, and the slot's previous event
//!   is freed on the publishing thread.
//! - **Threads:** at most `BusConfig::max_threads` consumer threads, spawned
//!   by `subscribe` as needed and kept until `shutdown` or drop, which
//!   deliver everything published and join them. Listeners run only there.
//!
//! Applicable `BusConfig` fields: `capacity` (ring size, rounded up to a
//! power of two), `wait`, `max_threads`, `producers` (1 selects the
//! single-producer claim; publishing from two threads at once is then a
//! contract violation, detected only in debug builds) and `topics` (filter
//! validation). `flush` from inside a listener would wait for itself.
//!
//! Based on: the LMAX Disruptor (Thompson, Farley, Barker, Gee, Stewart,
//! "Disruptor: High performance alternative to bounded queues", 2011; its
//! `SingleProducerSequencer`, `MultiProducerSequencer` and
//! `BatchEventProcessor`) and the Rust `disruptor` crate.

use crate::util::{call_isolated, deliver_isolated};
use crate::wait::Notifier;
use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId, WaitStrategy,
};
use crossbeam_utils::CachePadded;
use sequencer::Core;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `ring` strategy.
pub struct Ring;

impl Strategy for Ring {
    const NAME: &'static str = "ring";
    const CAPABILITIES: Capabilities = Capabilities {
        multi_producer: true,
        asynchronous: true,
        lossy: false,
        bounded: true,
        max_subscribers: None,
        dynamic_subscribe: true,
        native_topics: false,
        panics: PanicPolicy::Isolated,
        zero_alloc_small: true,
        zero_alloc_heavy: true,
        peer: false,
        thread_per_subscriber: false,
    };
    type Bus<E: Event, L: Listener<E>> = RingBus<E, L>;
}

/// The protocol's shared-memory primitives: `std`'s, or `loom`'s under
/// `--cfg buslab_loom` so that the model in `tests/loom_ring.rs` checks the real
/// code.
mod sync {
    #[cfg(buslab_loom)]
    pub(crate) use loom::sync::Mutex;
    #[cfg(buslab_loom)]
    pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize};
    #[cfg(not(buslab_loom))]
    pub(crate) use std::sync::Mutex;
    #[cfg(not(buslab_loom))]
    pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};

    /// An `UnsafeCell` whose accesses loom checks for data races.
    pub(crate) struct Cell<T> {
        #[cfg(buslab_loom)]
        inner: loom::cell::UnsafeCell<T>,
        #[cfg(not(buslab_loom))]
        inner: std::cell::UnsafeCell<T>,
    }

    impl<T> Cell<T> {
        pub(crate) fn new(value: T) -> Self {
            Cell {
                #[cfg(buslab_loom)]
                inner: loom::cell::UnsafeCell::new(value),
                #[cfg(not(buslab_loom))]
                inner: std::cell::UnsafeCell::new(value),
            }
        }

        /// Reads the value.
        ///
        /// # Safety
        /// No other thread may write the value during the call.
        #[inline(always)]
        pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
            #[cfg(buslab_loom)]
            {
                // SAFETY: the caller excludes concurrent writers.
                self.inner.with(|p| f(unsafe { &*p }))
            }
            #[cfg(not(buslab_loom))]
            {
                // SAFETY: the caller excludes concurrent writers.
                f(unsafe { &*self.inner.get() })
            }
        }

        /// Writes the value.
        ///
        /// # Safety
        /// No other thread may access the value during the call.
        #[inline(always)]
        pub(crate) unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            #[cfg(buslab_loom)]
            {
                // SAFETY: the caller excludes every other access.
                self.inner.with_mut(|p| f(unsafe { &mut *p }))
            }
            #[cfg(not(buslab_loom))]
            {
                // SAFETY: the caller excludes every other access.
                f(unsafe { &mut *self.inner.get() })
            }
        }
    }
}

/// The ring and its sequencing protocol, free of threads and listeners so
/// that loom can model it. Its items are `pub` only so that `model` can
/// re-export them under `--cfg buslab_loom`; the module itself is private.
mod sequencer {
    use super::sync::{AtomicU64, AtomicUsize, Cell, Mutex};
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
                if self.multi {
                    self.put_clone_in::<true>(seq, source)
                } else {
                    self.put_clone_in::<false>(seq, source)
                }
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
                let full =
                    if self.multi { self.available[i].load(Relaxed) & VACANT == 0 } else { (i as u64) < written };
                if full {
                    // SAFETY: `&mut self`: nothing else accesses the slot, and
                    // it holds an event (see `holds_event`).
                    unsafe { slot.with_mut(|value| value.assume_init_drop()) };
                }
            }
        }
    }
}

/// The sequencing core, exposed for the loom model only.
#[cfg(buslab_loom)]
pub mod model {
    pub use super::sequencer::Core;
}

/// One subscriber.
struct Sub<L> {
    filter: Filter,
    listener: L,
}

/// What one consumer thread serves, as the control side sees it.
struct GroupSlot<L> {
    /// Bumped (under `subs`' lock) on every change of `subs`.
    generation: CachePadded<AtomicU64>,
    subs: Mutex<Vec<(u64, Arc<Sub<L>>)>>,
}

/// Shared by the bus handle and its consumer threads.
struct Shared<E, L> {
    core: Core<E>,
    groups: Box<[GroupSlot<L>]>,
    /// Consumer threads wait here for events.
    events: CachePadded<Notifier>,
    /// Producers wait here for room, `flush` for progress.
    room: CachePadded<Notifier>,
    wait: WaitStrategy,
    /// The most events a consumer delivers before releasing them.
    batch: u64,
    /// `spin_loop` rounds a consumer pauses after a batch shorter than
    /// `batch` (see [`coalescing_spins`]); 0 with `BusySpin`.
    coalesce: u32,
    panics: CachePadded<AtomicU64>,
    stop: AtomicBool,
    stop_at: AtomicU64,
}

/// How long a consumer thread pauses after delivering a batch shorter than
/// its maximum, before it reads the cursor again. Without it, a consumer
/// that keeps up re-reads the cursor after every event or two, and the
/// cursor's cache line moves between the cores on nearly every publish;
/// pausing lets a run of events build up (and costs an event at most this
/// much latency). Not used with `WaitStrategy::BusySpin` (lowest latency).
const COALESCE: Duration = Duration::from_nanos(250);

/// `spin_loop` rounds that take about [`COALESCE`] on this machine (a
/// `pause` takes from a few to ~140 cycles depending on the CPU), measured
/// once per process.
fn coalescing_spins() -> u32 {
    static SPINS: OnceLock<u32> = OnceLock::new();
    *SPINS.get_or_init(|| {
        const ROUNDS: u32 = 1_000;
        let start = Instant::now();
        for _ in 0..ROUNDS {
            std::hint::spin_loop();
        }
        let per_round = start.elapsed().as_nanos().max(1) as f64 / f64::from(ROUNDS);
        (COALESCE.as_nanos() as f64 / per_round).clamp(1.0, 4_096.0) as u32
    })
}

/// Subscription bookkeeping, under one lock.
#[derive(Default)]
struct Control {
    threads: Vec<JoinHandle<()>>,
    /// Subscribers per consumer thread.
    load: Vec<usize>,
    /// Subscription → its consumer thread.
    subs: HashMap<u64, usize>,
    next_id: u64,
}

/// The `ring` bus.
pub struct RingBus<E, L> {
    shared: Arc<Shared<E, L>>,
    control: Mutex<Control>,
    max_threads: usize,
    topics: usize,
    /// Set while a single-producer publish runs (debug builds check that
    /// there is only one at a time).
    #[cfg(debug_assertions)]
    publishing: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves the data consistent (every
    // critical section is a few pushes/removes), so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends a claim of `start..end` on drop: publishes it, or, if a `clone`
/// panicked after `start..written` were written, hands it to
/// `Core::abandon` (which publishes what was written and never leaves a
/// claimed sequence unpublished, so the ring cannot stall).
struct Publication<'a, E: Event, L, const MULTI: bool> {
    shared: &'a Shared<E, L>,
    start: u64,
    written: u64,
    end: u64,
}

impl<E: Event, L, const MULTI: bool> Drop for Publication<'_, E, L, MULTI> {
    #[inline(always)]
    fn drop(&mut self) {
        let core = &self.shared.core;
        if self.written == self.end {
            core.publish_in::<MULTI>(self.start, self.end);
        } else {
            core.abandon(self.start, self.written, self.end);
        }
        // No fence per event: consumers that sleep re-check every
        // `CHEAP_TIMEOUT`.
        self.shared.events.notify_all_cheap();
    }
}

/// In debug builds, the single-producer check's guard (see `solo`).
struct Solo<'a>(Option<&'a AtomicBool>);

impl Drop for Solo<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(flag) = self.0 {
            flag.store(false, Ordering::Release);
        }
    }
}

impl<E: Event, L: Listener<E>> RingBus<E, L> {
    /// Claims `n` sequences, waiting for room as the bus's wait strategy
    /// says.
    #[inline(always)]
    fn claim<const MULTI: bool>(&self, n: u64) -> u64 {
        let shared = &*self.shared;
        shared.core.claim_in::<MULTI>(n, |ready| {
            // A consumer may have gone to sleep just as a cheap notification
            // passed it by; wake it for real before waiting on it.
            shared.events.notify_all();
            shared.room.wait_until(shared.wait, Some(Notifier::CHEAP_TIMEOUT), ready)
        })
    }

    /// In debug builds, checks that a single-producer bus is not published
    /// to from two threads at once.
    #[inline(always)]
    fn solo(&self) -> Solo<'_> {
        #[cfg(debug_assertions)]
        if !self.shared.core.is_multi() {
            assert!(
                !self.publishing.swap(true, Ordering::Acquire),
                "ring: two threads published at once on a bus built with producers == 1"
            );
            return Solo(Some(&self.publishing));
        }
        Solo(None)
    }

    /// Moves `event` into the claimed, unpublished sequence `seq` and
    /// publishes it.
    #[inline(always)]
    fn put<const MULTI: bool>(&self, seq: u64, event: E) {
        let shared = &*self.shared;
        // SAFETY: `seq` is claimed and unpublished.
        let old = unsafe { shared.core.put_in::<MULTI>(seq, event) };
        shared.core.publish_in::<MULTI>(seq, seq + 1);
        shared.events.notify_all_cheap();
        // The replaced event is dropped after publication.
        drop(old);
    }

    #[inline(always)]
    fn publish_in<const MULTI: bool>(&self, event: E) {
        let seq = self.claim::<MULTI>(1);
        self.put::<MULTI>(seq, event);
    }

    #[inline(always)]
    fn try_publish_in<const MULTI: bool>(&self, event: E) -> Result<(), Full<E>> {
        let Some(seq) = self.shared.core.try_claim(1) else {
            // As in `claim`: a full ring must not wait on a consumer that
            // slept through a cheap notification.
            self.shared.events.notify_all();
            return Err(Full(event));
        };
        self.put::<MULTI>(seq, event);
        Ok(())
    }

    /// Claims `events.len()` (`1..=capacity`) sequences and copies `events`
    /// into them.
    #[inline(always)]
    fn publish_clones<const MULTI: bool>(&self, events: &[E]) {
        let start = self.claim::<MULTI>(events.len() as u64);
        let mut publication = Publication::<E, L, MULTI> {
            shared: &self.shared,
            start,
            written: start,
            end: start + events.len() as u64,
        };
        for event in events {
            // SAFETY: `publication.written` is claimed and unpublished.
            unsafe { self.shared.core.put_clone_in::<MULTI>(publication.written, event) };
            publication.written += 1;
        }
        // Dropping `publication` publishes.
    }

    fn spawn_group(&self, control: &mut Control, id: u64, sub: Arc<Sub<L>>) -> std::io::Result<()> {
        let index = control.threads.len();
        let group = &self.shared.groups[index];
        {
            let mut subs = lock(&group.subs);
            subs.push((id, sub));
            group.generation.fetch_add(1, Ordering::Release);
        }
        let (start_tx, start_rx) = mpsc::sync_channel(1);
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ring-consumer-{index}"))
            .spawn(move || consume(&shared, index, start_rx));
        let handle = match spawned {
            Ok(handle) => handle,
            Err(e) => {
                lock(&group.subs).clear();
                return Err(e);
            }
        };
        let (registered, start) =
            self.shared.core.add_consumer().expect("one consumer per thread, and fewer threads than max_threads");
        debug_assert_eq!(registered, index);
        start_tx.send(start).expect("the consumer thread waits for its start");
        control.threads.push(handle);
        control.load.push(1);
        control.subs.insert(id, index);
        Ok(())
    }
}

/// The per-thread copy of a group's subscribers.
struct Group<L> {
    generation: u64,
    all: Vec<Arc<Sub<L>>>,
    topical: Vec<Arc<Sub<L>>>,
}

impl<L> Group<L> {
    /// Re-reads the group's subscribers. The old copies are dropped after
    /// the lock is released (a listener's `Drop` may use the bus), and a
    /// panic in a listener's `Drop` is caught; returns the panics caught.
    fn resync(&mut self, slot: &GroupSlot<L>) -> u64 {
        let (mut all, mut topical) = (Vec::new(), Vec::new());
        {
            let subs = lock(&slot.subs);
            self.generation = slot.generation.load(Ordering::Acquire);
            for (_, sub) in subs.iter() {
                match sub.filter {
                    Filter::All => all.push(sub.clone()),
                    Filter::Topic(_) => topical.push(sub.clone()),
                }
            }
        }
        let old = (std::mem::replace(&mut self.all, all), std::mem::replace(&mut self.topical, topical));
        u64::from(call_isolated(|| drop(old)))
    }

    /// Delivers `start..end` to every subscriber, one subscriber at a time;
    /// returns the panics caught.
    #[inline(always)]
    fn deliver<E: Event, const MULTI: bool>(&self, core: &Core<E>, start: u64, end: u64) -> u64
    where
        L: Listener<E>,
    {
        let n = (end - start) as usize;
        let mut panics = 0;
        for sub in &self.all {
            let listener = &sub.listener;
            panics += deliver_isolated(n, |k| {
                // SAFETY: `start..end` is published and not yet released by
                // this consumer.
                unsafe { core.read_in::<MULTI>(start + k as u64, |event| listener.on_event(event)) }
            });
        }
        for sub in &self.topical {
            let Filter::Topic(topic) = sub.filter else {
                continue;
            };
            let listener = &sub.listener;
            panics += deliver_isolated(n, |k| {
                // SAFETY: as above.
                unsafe {
                    core.read_in::<MULTI>(start + k as u64, |event| {
                        if event.topic() == topic {
                            listener.on_event(event);
                        }
                    })
                }
            });
        }
        panics
    }
}

/// A consumer thread: serves group `index` from the sequence it is sent.
fn consume<E: Event, L: Listener<E>>(shared: &Shared<E, L>, index: usize, start: mpsc::Receiver<u64>) {
    let Ok(next) = start.recv() else {
        return;
    };
    if shared.core.is_multi() {
        consume_in::<E, L, true>(shared, index, next);
    } else {
        consume_in::<E, L, false>(shared, index, next);
    }
}

fn consume_in<E: Event, L: Listener<E>, const MULTI: bool>(shared: &Shared<E, L>, index: usize, mut next: u64) {
    let core = &shared.core;
    let slot = &shared.groups[index];
    let mut group = Group { generation: 0, all: Vec::new(), topical: Vec::new() };
    let mut panics = group.resync(slot);
    loop {
        let mut end = next;
        let known = group.generation;
        shared.events.wait_until(shared.wait, Some(Notifier::CHEAP_TIMEOUT), || {
            end = core.available_in::<MULTI>(next, shared.batch);
            end > next || slot.generation.load(Ordering::Relaxed) != known || shared.stop.load(Ordering::Acquire)
        });
        // After reading the range: a subscription change that happened before
        // any event of the range was published is seen here.
        if slot.generation.load(Ordering::Acquire) != group.generation {
            panics += group.resync(slot);
        }
        if end > next {
            panics += group.deliver::<E, MULTI>(core, next, end);
            if panics > 0 {
                // Before the release below, so that `flush` sees the count.
                shared.panics.fetch_add(panics, Ordering::Relaxed);
                panics = 0;
            }
            core.release(index, end);
            shared.room.notify_all_cheap();
            let short = end - next < shared.batch;
            next = end;
            if short {
                for _ in 0..shared.coalesce {
                    std::hint::spin_loop();
                }
            }
        } else if shared.stop.load(Ordering::Acquire) && next >= shared.stop_at.load(Ordering::Relaxed) {
            // The listeners this thread holds are dropped here (a panicking
            // `Drop` caught and counted).
            panics += u64::from(call_isolated(|| drop(group)));
            shared.panics.fetch_add(panics, Ordering::Relaxed);
            return;
        }
    }
}

fn config_error(field: &'static str, reason: impl Into<String>) -> BusError {
    BusError::Config { bus: Ring::NAME, field, reason: reason.into() }
}

impl<E: Event, L: Listener<E>> EventBus for RingBus<E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(Ring::NAME)?;
        let capacity = config
            .capacity
            .checked_next_power_of_two()
            .filter(|&c| c <= 1 << 32)
            .ok_or_else(|| config_error("capacity", "must be at most 2^32"))?;
        let groups = (0..config.max_threads)
            .map(|_| GroupSlot { generation: CachePadded::new(AtomicU64::new(0)), subs: Mutex::new(Vec::new()) })
            .collect();
        let shared = Shared {
            core: Core::new(capacity, config.max_threads, config.producers > 1),
            groups,
            events: CachePadded::new(Notifier::new()),
            room: CachePadded::new(Notifier::new()),
            wait: config.wait,
            batch: (capacity as u64 / 4).max(1),
            coalesce: match config.wait {
                WaitStrategy::BusySpin => 0,
                WaitStrategy::Park | WaitStrategy::Yield => coalescing_spins(),
            },
            panics: CachePadded::new(AtomicU64::new(0)),
            stop: AtomicBool::new(false),
            stop_at: AtomicU64::new(0),
        };
        Ok(RingBus {
            shared: Arc::new(shared),
            control: Mutex::new(Control::default()),
            max_threads: config.max_threads,
            topics: config.topics,
            #[cfg(debug_assertions)]
            publishing: AtomicBool::new(false),
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        crate::util::check_filter(Ring::NAME, filter, self.topics)?;
        let sub = Arc::new(Sub { filter, listener });
        let mut control = lock(&self.control);
        let id = control.next_id;
        control.next_id += 1;
        // A new thread while fewer than `max_threads` run and every thread
        // already serves someone; else the least loaded thread.
        let least = (0..control.load.len()).min_by_key(|&i| control.load[i]);
        let spawn = match least {
            None => true,
            Some(i) => control.load[i] > 0 && control.threads.len() < self.max_threads,
        };
        if spawn {
            match self.spawn_group(&mut control, id, sub.clone()) {
                Ok(()) => return Ok(SubscriptionId(id)),
                Err(e) if least.is_none() => {
                    return Err(config_error("max_threads", format!("cannot spawn a consumer thread: {e}")));
                }
                // Fall back on an existing thread.
                Err(_) => {}
            }
        }
        let index = least.expect("a consumer thread exists when none is spawned");
        let group = &self.shared.groups[index];
        {
            let mut subs = lock(&group.subs);
            subs.push((id, sub));
            group.generation.fetch_add(1, Ordering::Release);
        }
        control.load[index] += 1;
        control.subs.insert(id, index);
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let mut control = lock(&self.control);
        let Some(index) = control.subs.remove(&id.0) else {
            return Err(BusError::UnknownSubscription { bus: Ring::NAME, id });
        };
        control.load[index] -= 1;
        let group = &self.shared.groups[index];
        let removed = {
            let mut subs = lock(&group.subs);
            let at = subs.iter().position(|(sid, _)| *sid == id.0).expect("the control map and the group agree");
            let removed = subs.swap_remove(at);
            group.generation.fetch_add(1, Ordering::Release);
            removed
        };
        drop(control);
        // Wake the thread so that it drops its copy of the listener soon.
        self.shared.events.notify_all();
        drop(removed);
        Ok(())
    }

    #[inline]
    fn publish(&self, event: E) {
        let _solo = self.solo();
        if self.shared.core.is_multi() {
            self.publish_in::<true>(event);
        } else {
            self.publish_in::<false>(event);
        }
    }

    #[inline]
    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        let _solo = self.solo();
        if self.shared.core.is_multi() {
            self.try_publish_in::<true>(event)
        } else {
            self.try_publish_in::<false>(event)
        }
    }

    #[inline]
    fn publish_clone(&self, event: &E) {
        let _solo = self.solo();
        let events = std::slice::from_ref(event);
        if self.shared.core.is_multi() {
            self.publish_clones::<true>(events);
        } else {
            self.publish_clones::<false>(events);
        }
    }

    fn publish_batch(&self, events: &[E]) {
        let _solo = self.solo();
        let chunk = self.shared.batch as usize;
        let multi = self.shared.core.is_multi();
        for events in events.chunks(chunk) {
            if multi {
                self.publish_clones::<true>(events);
            } else {
                self.publish_clones::<false>(events);
            }
        }
    }

    fn flush(&self) {
        let shared = &*self.shared;
        let target = shared.core.claimed();
        // As in `claim`: no consumer sleeps through the last events.
        shared.events.notify_all();
        shared.room.wait_until(shared.wait, Some(Notifier::CHEAP_TIMEOUT), || shared.core.consumed(target));
    }

    fn stats(&self) -> BusStats {
        BusStats { dropped: 0, listener_panics: self.shared.panics.load(Ordering::Relaxed) }
    }

    fn shutdown(self) -> BusStats {
        self.join_all();
        self.stats()
    }
}

impl<E, L> RingBus<E, L> {
    /// Stops and joins the consumer threads after they delivered everything
    /// published, then drops every listener. Idempotent.
    fn join_all(&self) {
        let threads = std::mem::take(&mut lock(&self.control).threads);
        if !threads.is_empty() {
            // No publish runs (we own the bus), so `claimed` is final.
            let shared = &self.shared;
            shared.stop_at.store(shared.core.claimed(), Ordering::Relaxed);
            shared.stop.store(true, Ordering::Release);
            shared.events.notify_all();
            for thread in threads {
                // A consumer thread catches listener panics; an error here
                // would be a bug in this module, and there is nothing left to
                // deliver it to.
                let _ = thread.join();
            }
        }
        // Drop every listener now, on this thread.
        for group in self.shared.groups.iter() {
            let subs = std::mem::take(&mut *lock(&group.subs));
            drop(subs);
        }
        lock(&self.control).subs.clear();
    }
}

impl<E, L> Drop for RingBus<E, L> {
    fn drop(&mut self) {
        self.join_all();
    }
}
