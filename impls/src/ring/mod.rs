//! Disruptor-style ring: preallocated slots claimed by sequence number, read in batches by at most `max_threads` consumer threads.
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
//! # Design, and why
//! The module is three parts: `sequencer.rs` (the ring of slots and the
//! sequences that hand them between producers and consumers, free of threads
//! and listeners so that a loom model checks it), the consumer groups
//! (`consumer.rs`: threads, subscribers, batch delivery) and the bus that
//! ties them to the `EventBus` contract (this file).
//!
//! - **Preallocated slots, a power of two.** The ring holds
//!   `BusConfig::capacity` slots rounded up to a power of two, allocated
//!   once: a sequence maps to its slot with a mask, and no event costs an
//!   allocation. `publish` moves the event in; `publish_clone` and
//!   `publish_batch` copy with `Clone::clone_from` into the event the slot
//!   already holds, reusing its buffers (zero allocations for heavy events).
//! - **One producer: a plain cursor.** With `BusConfig::producers == 1` the
//!   claim is a load of the producer's own cursor (no read-modify-write) and
//!   publishing is one release store of it, once per call — so once per
//!   `publish_batch` chunk, which is where a ring beats a queue that hands
//!   items over one at a time (LMAX's `SingleProducerSequencer`).
//! - **Several producers: `fetch_add` and availability flags.** Producers
//!   claim with one `fetch_add` (a CAS for `try_publish`, all-or-nothing)
//!   and mark each slot in a separate availability array, as LMAX's
//!   `MultiProducerSequencer` does: no producer waits for another to finish
//!   its copy before claiming, and consumers read only published slots, in
//!   sequence order. A cursor advanced in claim order would make every
//!   producer spin on the previous one's publication — on 2 cores, on a
//!   descheduled thread.
//! - **Consumers never touch a slot to learn what is published** (the cursor
//!   or the flags say), so a listener that ignores the event moves no slot
//!   memory between cores.
//! - **A cached gate.** Producers keep `limit` (the slowest consumer's
//!   sequence plus the capacity, only growing) and re-read the consumers'
//!   sequences only when a claim would pass it: the common claim reads one
//!   line that changes once per refresh, not per event.
//! - **Consumer groups, at most `max_threads` threads.** The harness gives a
//!   bus the cores the producers leave; a thread per subscriber would
//!   oversubscribe them at fan-out 16 and beyond. Subscribers are spread:
//!   a new thread while fewer than `max_threads` run and every thread already
//!   serves someone, else the least loaded thread. Each thread serves its
//!   *group* with one gating sequence: it reads the available range (at most
//!   a quarter of the ring, so producers get room back before the ring
//!   fills), delivers it to every subscriber of the group in turn (one
//!   listener over the whole range keeps its state in cache; filters are
//!   checked at delivery), then stores its sequence once. A new thread is
//!   registered as gating under the lock producers take on their slow path,
//!   starting at the end of the published prefix, which no producer's cached
//!   limit can lap (the loom model checks this, with the claims, availability
//!   and gating).
//! - **Waiting without a fence per event.** Waiting goes through
//!   `wait::Notifier`. Producers notify with `notify_all_cheap` (one relaxed
//!   load, no fence) and consumers likewise after each batch, so sleepers
//!   re-check every `Notifier::CHEAP_TIMEOUT`; a producer about to wait for
//!   room, and `flush`, first wake consumers with a fenced `notify_all`, so
//!   a missed cheap wake-up can delay only the last events of a burst nobody
//!   flushes, by at most that timeout. The default `Park` spins briefly,
//!   yields, then sleeps: no spin storm on 2 cores.
//! - **Polling before sleeping.** While `producers + max_threads` fit the
//!   cores, an idle consumer keeps polling (spinning, then yielding its core
//!   to any runnable thread) for 1 ms before it sleeps
//!   (`wait::IDLE_POLL`); with more threads than cores it sleeps after
//!   a few yields, leaving the cores to the producers. A sleeping consumer
//!   costs each event at a low rate a futex wake-up and a reschedule (or the
//!   200 µs re-check when the cheap wake-up was missed). No fence or barrier
//!   is added to the producer: its wake-up stays the relaxed load of the
//!   sleeper count. An earlier attempt (branch `ringlat`) made wake-ups
//!   exact with `membarrier` on every consumer sleep; latency fell as here,
//!   but throughput fell to 0.41–0.74× in `mpmc`, `spsc`, `fanout` and
//!   `heavy-payload` cells (the barrier interrupts the producers' cores).
//!   Measured (release, `buslab run --quick`, before/after binaries
//!   alternated, 2-core VM, load 0.9–2.0): open-loop latency p50 of `ring`
//!   at 2,000 and 20,000 events/s (a scenario file of `fanout` at 1 and 128
//!   subscribers and `slow-subscriber`, 3 runs each) from 26–1,972 µs to
//!   0.5–3.0 µs (one run 14 µs), the `disruptor` peer reading 0.5–3.8 µs in
//!   the same runs; `fanout`/500 at 20,000 events/s from 36–2,298 µs to
//!   2.1–11.6 µs. Throughput (5 runs each, `spsc`, `mpmc`, `fanout`,
//!   `batch`, `heavy-payload`): medians 0.95–1.36× before, the `null`
//!   reference moving 0.92–1.23× in the same runs (`heavy-payload` 0.95
//!   and 0.97×, `null` 0.94 and 0.92×).
//! - **A coalescing pause.** After a batch shorter than its maximum a
//!   consumer pauses about a quarter of a microsecond before reading the
//!   cursor again (not with `BusySpin`), so that a consumer that keeps up
//!   does not pull the cursor's cache line across on every publish; an
//!   event waits at most that long.
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

use crate::wait::Notifier;
use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId, WaitStrategy,
};
use consumer::{GroupSlot, Sub, consume};
use crossbeam_utils::CachePadded;
use sequencer::Core;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

mod consumer;
mod sequencer;

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

/// The sequencing core, exposed for the loom model only.
#[cfg(buslab_loom)]
pub mod model {
    pub use super::sequencer::Core;
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
    /// How long an idle consumer polls before it sleeps under `Park`:
    /// [`crate::wait::IDLE_POLL`] when producers and consumer threads together
    /// fit the cores, else zero (a polling consumer would take turns from
    /// producers that need the core).
    idle_poll: Duration,
    /// The most events a consumer delivers before releasing them.
    batch: u64,
    /// `spin_loop` rounds a consumer pauses after a batch shorter than
    /// `batch` (see [`crate::wait::coalescing_spins`]); 0 with `BusySpin`.
    coalesce: u32,
    panics: CachePadded<AtomicU64>,
    stop: AtomicBool,
    stop_at: AtomicU64,
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
            idle_poll: crate::wait::idle_poll(config.producers + config.max_threads),
            batch: (capacity as u64 / 4).max(1),
            coalesce: crate::wait::coalescing_spins(config.wait),
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
