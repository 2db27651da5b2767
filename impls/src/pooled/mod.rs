//! Pooled bus: a fixed pool of preallocated, reference-counted event envelopes delivered by sharded worker threads; steady-state publish allocates nothing.
//!
//! The Rust image of Go's "pooled bus" (`sync.Pool` for envelopes and listener
//! containers). [`BusConfig::capacity`] envelopes are allocated once, at
//! construction; each holds an event slot and an atomic reference count. The
//! indices of free ones sit in a bounded lock-free FIFO (`crossbeam_queue::
//! ArrayQueue`, so every envelope is cycled through and warm after `capacity`
//! publishes). `publish` takes an envelope, moves the event in (`publish_clone`
//! copies with `clone_from` into the event the envelope already holds, reusing
//! its buffers), sets the count to the number of workers holding subscribers,
//! and pushes the index into each such worker's queue. The worker that drops
//! the count to zero (a plain store when it reads 1: no locked instruction in
//! the one-worker case) returns the envelope to the pool. The delivered event
//! is *kept* in the envelope, so that the next `publish_clone` reuses its heap
//! buffers; it is dropped when `publish` refills the envelope, or with the bus
//! (so up to `capacity` old events stay alive).
//!
//! Subscribers are sharded over at most [`BusConfig::max_threads`] workers (a
//! new subscriber joins the worker with the fewest; a worker's thread starts
//! with its first subscriber). The Go design's pooled listener container
//! becomes an immutable `Arc` snapshot per worker, rebuilt only by subscribe
//! and unsubscribe, so nothing is copied per event. A generation number,
//! published with the bitmask of non-empty workers in one atomic word and
//! stamped on each envelope by its publisher, tells a worker when to pick up a
//! newer snapshot and which subscribers are too new for an envelope. The
//! publish path takes no lock: an atomic load, a free-list pop, one queue push
//! per worker, one fence. A worker locks its snapshot only when the generation
//! moves. Worker queues hold `capacity` indices each; an envelope is queued at
//! most once per worker at a time, so a push never fails and the pool alone is
//! the bound. `flush` scans the pool and waits for every envelope in flight to
//! finish or be dispatched again (a per-envelope dispatch count); no counter
//! is shared per event.
//!
//! # Guarantees
//! - **Ordering:** per-producer FIFO to every subscriber: a producer pushes
//!   into each worker's FIFO queue in publish order and a worker calls a
//!   subscriber sequentially. No order across producers.
//! - **Delivery:** exactly once to every subscriber whose filter accepts the
//!   event (checked at delivery); lossless. A subscriber added while others
//!   publish gets a gap-free suffix of each producer's stream (an envelope
//!   reaches it only if its publisher saw the generation that added it); after
//!   `unsubscribe` returns no later publish reaches the listener, which is
//!   dropped after its last call (by its worker when it leaves the old
//!   snapshot, promptly: unsubscribe wakes it). A panicking listener is caught
//!   and counted; the others still get the event.
//! - **Backpressure:** bounded by the pool: `publish` blocks (as
//!   `BusConfig::wait` says) while all `capacity` envelopes are in flight;
//!   `try_publish` hands the event back in `Full` when the pool is empty (its
//!   only refusal, all-or-nothing). A stuck subscriber ends up holding every
//!   envelope, and so stops every producer.
//! - **Allocations per event:** 0 at steady state for SmallEvent (publish and
//!   publish_clone) and for HeavyEvent via publish_clone, once each envelope
//!   has carried one event (its first fill clones) and while the source's
//!   strings and item count fit what the kept event holds or once held
//!   (`HeavyEvent::clone_from` keeps surplus line items aside for a later,
//!   larger event): so also when consecutive events differ in size, once
//!   every envelope has carried the largest (`tests/pooled.rs` checks both). HeavyEvent via
//!   publish: none by the bus; the caller built the event, and the envelope's
//!   previous event is freed on the publishing thread. With no subscriber,
//!   the event is dropped at once and no envelope is taken.
//! - **Threads:** one worker per shard, at most `min(max_threads, 24)`,
//!   spawned by `subscribe` as shards fill; listeners run on them. `shutdown`
//!   and `Drop` let them drain their queues, then join them. A listener may
//!   subscribe, unsubscribe and try_publish, but must not call `flush`, nor a
//!   blocking `publish`, on its own bus (it could wait on itself).
//!
//! The module is two parts: `envelopes.rs` (the pool, its free list and the
//! hand-offs of an envelope between its owner and its holders, free of
//! threads so that a loom model checks it) and the bus, its workers and
//! their snapshots (this file).
//!
//! Configuration: `capacity` (pool size, 1..=2³²−1), `max_threads` (≥ 1),
//! `wait` (producers waiting for envelopes, idle workers, `flush`) and `topics`
//! (filters are checked against it) apply; `producers` does not (every path is
//! multi-producer).
//!
//! Based on: the "pooled bus" of the motivating Go articles (`sync.Pool` for
//! envelopes and listener containers); Dmitry Vyukov's bounded MPMC queue
//! (`crossbeam_queue::ArrayQueue`) for the free list and worker queues;
//! generation-stamped read-copy-update snapshots for the listener lists.

use crate::sync::ArrayQueue;
use crate::util::{call_isolated, deliver_isolated};
use crate::wait::{Notifier, WaitStrategy};
use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId,
};
use crossbeam_utils::CachePadded;
use envelopes::Envelopes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

mod envelopes;

/// The envelope pool, exposed for the loom model only.
#[cfg(buslab_loom)]
pub mod model {
    pub use super::envelopes::{Envelopes, Handout, Slot};
}

/// The `pooled` strategy.
pub struct Pooled;

impl Strategy for Pooled {
    const NAME: &'static str = "pooled";
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
    type Bus<E: Event, L: Listener<E>> = PooledBus<E, L>;
}

/// Bits of the routing word holding the bitmask of workers with subscribers.
const MASK_BITS: u32 = 24;
/// The most workers (one bit each in the routing word).
const MAX_WORKERS: usize = MASK_BITS as usize;
/// The routing word's mask part.
const MASK: u64 = (1 << MASK_BITS) - 1;
/// Generations must stay below this so that `gen << MASK_BITS` fits.
const GEN_LIMIT: u64 = 1 << (64 - MASK_BITS);
/// Envelopes a worker delivers between updates of its `processed` counter
/// (and wake-ups of waiting producers and flushers).
const BATCH: u64 = 64;

/// The generation part of a routing word.
#[inline]
fn generation(routing: u64) -> u64 {
    routing >> MASK_BITS
}

/// Locks, ignoring poisoning: every critical section leaves its data whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A subscriber: its listener, filter and the generation that added it.
struct Subscriber<L> {
    id: u64,
    filter: Filter,
    /// Envelopes stamped with an older generation are not delivered to it.
    since: u64,
    listener: L,
}

/// A worker's listener container: an immutable snapshot.
type Snapshot<L> = Arc<Vec<Arc<Subscriber<L>>>>;

/// One shard: its queue, counters and current listener snapshot.
struct Worker<L> {
    /// Indices of envelopes to deliver, in arrival order.
    queue: ArrayQueue<u32>,
    /// Producers wake the worker through this.
    wake: CachePadded<Notifier>,
    /// Listener calls that panicked (written by the worker only).
    panics: CachePadded<AtomicU64>,
    /// The snapshot subscribe/unsubscribe install; the worker clones it when
    /// the generation moves.
    snapshot: Mutex<Snapshot<L>>,
}

/// What the bus and its worker threads share.
struct Shared<E, L> {
    /// The envelopes and their free list.
    envelopes: Envelopes<E>,
    /// `generation << MASK_BITS | mask of workers with subscribers`.
    routing: CachePadded<AtomicU64>,
    /// Workers wake producers waiting for envelopes and `flush` through this.
    progress: CachePadded<Notifier>,
    workers: Box<[Worker<L>]>,
    shutdown: AtomicBool,
    wait: WaitStrategy,
}

/// Subscription bookkeeping, under the bus's control lock.
struct Control<L> {
    next_id: u64,
    generation: u64,
    /// Subscribers per worker (the source the snapshots are built from).
    shards: Vec<Vec<Arc<Subscriber<L>>>>,
    threads: Vec<Option<JoinHandle<()>>>,
}

/// The `pooled` bus: see the module doc.
pub struct PooledBus<E, L> {
    shared: Arc<Shared<E, L>>,
    control: Mutex<Control<L>>,
    topics: usize,
}

impl<E: Event, L: Listener<E>> PooledBus<E, L> {
    fn config_error(field: &'static str, reason: impl Into<String>) -> BusError {
        BusError::Config { bus: Pooled::NAME, field, reason: reason.into() }
    }

    /// Takes a free envelope and the routing word to publish it with, or
    /// `None` if nobody is subscribed (the event then has nowhere to go).
    /// Blocks for an envelope if `blocking`; otherwise `Err(())` when the pool
    /// is empty. `pending` are workers this producer pushed to without waking
    /// them yet (a batch); they are woken before this thread waits.
    #[inline]
    fn claim(&self, blocking: bool, pending: &mut u64) -> Result<Option<(u32, u64)>, ()> {
        let shared = &*self.shared;
        if shared.routing.load(Ordering::Acquire) & MASK == 0 {
            return Ok(None);
        }
        let index = match shared.envelopes.take() {
            Some(index) => index,
            None if !blocking => return Err(()),
            None => {
                self.wake_workers(std::mem::take(pending));
                let mut got = None;
                shared.progress.wait_until(shared.wait, None, || {
                    got = shared.envelopes.take();
                    got.is_some()
                });
                got.expect("wait_until returns once pop succeeded")
            }
        };
        // Read after the envelope is ours, so that a long wait does not
        // publish with a stale subscriber set.
        let routing = shared.routing.load(Ordering::Acquire);
        if routing & MASK == 0 {
            self.release(index);
            return Ok(None);
        }
        Ok(Some((index, routing)))
    }

    /// Gives an unused envelope back to the pool.
    #[cold]
    fn release(&self, index: u32) {
        let shared = &*self.shared;
        shared.envelopes.give_back(index);
        shared.progress.notify_all();
    }

    /// Fills a claimed envelope with `event` (moved in).
    ///
    /// # Safety
    /// `index` must come from [`Self::claim`] and not be dispatched yet.
    #[inline]
    unsafe fn fill(&self, index: u32, routing: u64, event: E) {
        // SAFETY: the caller owns the envelope.
        unsafe {
            self.shared.envelopes.fill(index, |slot| {
                slot.generation = generation(routing);
                slot.event = Some(event);
            })
        }
    }

    /// Hands a filled envelope to every worker in `routing`'s mask; returns
    /// the mask (the workers to wake).
    #[inline]
    fn dispatch(&self, index: u32, routing: u64) -> u64 {
        let shared = &*self.shared;
        let mask = routing & MASK;
        shared.envelopes.hand_out(index, mask.count_ones() as usize);
        let mut rest = mask;
        while rest != 0 {
            let worker = &shared.workers[rest.trailing_zeros() as usize];
            rest &= rest - 1;
            if worker.queue.push(index).is_err() {
                unreachable!("a worker queue has room for every envelope");
            }
        }
        mask
    }

    /// Wakes the workers in `mask` (one fence for all of them).
    #[inline]
    fn wake_workers(&self, mask: u64) {
        if mask == 0 {
            return;
        }
        // The Notifier protocol: the condition (a queued index) is set, then a
        // SeqCst fence, then the sleeper count is read.
        fence(Ordering::SeqCst);
        let mut rest = mask;
        while rest != 0 {
            let worker = &self.shared.workers[rest.trailing_zeros() as usize];
            rest &= rest - 1;
            worker.wake.notify_all_cheap();
        }
    }

    /// Copies `event` into a claimed envelope and dispatches it.
    #[inline]
    fn fill_clone_and_dispatch(&self, index: u32, routing: u64, event: &E) -> u64 {
        // SAFETY: `index` was just claimed and is not dispatched yet.
        unsafe {
            self.shared.envelopes.fill(index, |slot| {
                slot.generation = generation(routing);
                match &mut slot.event {
                    Some(kept) => kept.clone_from(event),
                    None => slot.event = Some(event.clone()),
                }
            })
        };
        self.dispatch(index, routing)
    }

    /// Publishes the bitmask and generation of `control`, after installing a
    /// fresh snapshot of shard `k`; returns the replaced snapshot (to drop
    /// once the control lock is released).
    fn install(&self, control: &Control<L>, k: usize) -> Snapshot<L> {
        let fresh = Arc::new(control.shards[k].clone());
        let old = std::mem::replace(&mut *lock(&self.shared.workers[k].snapshot), fresh);
        let mask = control
            .shards
            .iter()
            .enumerate()
            .filter(|(_, shard)| !shard.is_empty())
            .fold(0, |mask, (i, _)| mask | 1 << i);
        // Snapshot first, then the routing word: a producer that sees the new
        // generation stamps it on its envelope, and the worker that pops that
        // envelope then finds (at least) this snapshot.
        self.shared.routing.store(control.generation << MASK_BITS | mask, Ordering::SeqCst);
        // An idle worker picks up the snapshot now, dropping the old one (and
        // with it any listener just unsubscribed).
        self.shared.workers[k].wake.notify_all();
        old
    }

    fn next_generation(control: &mut Control<L>) -> u64 {
        control.generation += 1;
        assert!(control.generation < GEN_LIMIT, "pooled: 2^40 subscription changes exhaust the generation counter");
        control.generation
    }
}

/// A worker thread: delivers the envelopes of its queue to its subscribers
/// until shutdown finds the queue empty.
fn run_worker<E: Event, L: Listener<E>>(shared: Arc<Shared<E, L>>, k: usize) {
    let worker = &shared.workers[k];
    // The snapshot read after seeing generation `seen` holds every change up
    // to `seen` (install writes the snapshot before the routing word).
    let mut seen = generation(shared.routing.load(Ordering::Acquire));
    let mut snapshot = lock(&worker.snapshot).clone();
    let refresh = |snapshot: &mut Snapshot<L>, seen: &mut u64, upto: u64| {
        let fresh = lock(&worker.snapshot).clone();
        let old = std::mem::replace(snapshot, fresh);
        *seen = upto;
        // May drop unsubscribed listeners: isolate a panicking `Drop`.
        call_isolated(|| drop(old));
    };
    loop {
        let mut delivered = 0;
        let mut panics = 0;
        while delivered < BATCH {
            let Some(index) = worker.queue.pop() else {
                break;
            };
            // SAFETY: the index came through this worker's queue, so the
            // envelope is dispatched and `refs` (which includes this worker)
            // is not zero: nobody writes the slot until this worker's
            // decrement, after the read. The last worker to finish returns
            // the envelope, event and all.
            unsafe {
                shared.envelopes.read_and_finish(index, |slot| {
                    if slot.generation > seen {
                        refresh(&mut snapshot, &mut seen, slot.generation);
                    }
                    let event = slot.event.as_ref().expect("a dispatched envelope holds an event");
                    let topic = event.topic();
                    let stamp = slot.generation;
                    let subscribers = &snapshot[..];
                    panics += deliver_isolated(subscribers.len(), |i| {
                        let s = &subscribers[i];
                        if s.since <= stamp && s.filter.accepts(topic) {
                            s.listener.on_event(event);
                        }
                    });
                })
            };
            delivered += 1;
        }
        if delivered > 0 {
            if panics > 0 {
                worker.panics.fetch_add(panics, Ordering::Relaxed);
            }
            // Producers waiting for an envelope, and `flush`.
            shared.progress.notify_all();
            continue;
        }
        let now = generation(shared.routing.load(Ordering::Acquire));
        if now > seen {
            refresh(&mut snapshot, &mut seen, now);
            continue;
        }
        if shared.shutdown.load(Ordering::Acquire) {
            // Every publish happened before shutdown (it takes the bus by
            // value or `&mut`), so an empty queue now stays empty.
            if worker.queue.is_empty() {
                break;
            }
            continue;
        }
        worker.wake.wait_until(shared.wait, None, || {
            !worker.queue.is_empty()
                || shared.shutdown.load(Ordering::Acquire)
                || generation(shared.routing.load(Ordering::Acquire)) > seen
        });
    }
}

impl<E: Event, L: Listener<E>> EventBus for PooledBus<E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(Pooled::NAME)?;
        if u32::try_from(config.capacity).is_err() {
            return Err(Self::config_error("capacity", "must be in 1..=4294967295"));
        }
        let capacity = config.capacity;
        let workers = config.max_threads.min(MAX_WORKERS);
        let shared = Shared {
            envelopes: Envelopes::new(capacity),
            routing: CachePadded::new(AtomicU64::new(0)),
            progress: CachePadded::new(Notifier::new()),
            workers: (0..workers)
                .map(|_| Worker {
                    queue: ArrayQueue::new(capacity),
                    wake: CachePadded::new(Notifier::new()),
                    panics: CachePadded::new(AtomicU64::new(0)),
                    snapshot: Mutex::new(Arc::new(Vec::new())),
                })
                .collect(),
            shutdown: AtomicBool::new(false),
            wait: config.wait,
        };
        Ok(PooledBus {
            shared: Arc::new(shared),
            control: Mutex::new(Control {
                next_id: 0,
                generation: 0,
                shards: (0..workers).map(|_| Vec::new()).collect(),
                threads: (0..workers).map(|_| None).collect(),
            }),
            topics: config.topics,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        crate::util::check_filter(Pooled::NAME, filter, self.topics)?;
        let mut control = lock(&self.control);
        let k =
            (0..control.shards.len()).min_by_key(|&k| control.shards[k].len()).expect("a bus has at least one worker");
        if control.threads[k].is_none() {
            let shared = self.shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("pooled-worker-{k}"))
                .spawn(move || run_worker(shared, k))
                .map_err(|e| Self::config_error("max_threads", format!("could not spawn a worker: {e}")))?;
            control.threads[k] = Some(thread);
        }
        let id = control.next_id;
        control.next_id += 1;
        let since = Self::next_generation(&mut control);
        control.shards[k].push(Arc::new(Subscriber { id, filter, since, listener }));
        let old = self.install(&control, k);
        drop(control);
        drop(old);
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let mut control = lock(&self.control);
        let found = control
            .shards
            .iter()
            .enumerate()
            .find_map(|(k, shard)| shard.iter().position(|s| s.id == id.0).map(|position| (k, position)));
        let Some((k, position)) = found else {
            return Err(BusError::UnknownSubscription { bus: Pooled::NAME, id });
        };
        let removed = control.shards[k].remove(position);
        Self::next_generation(&mut control);
        let old = self.install(&control, k);
        drop(control);
        // The worker may still hold the listener in the snapshot it is using;
        // then it drops it when it moves on, after its last call.
        drop(old);
        drop(removed);
        Ok(())
    }

    fn publish(&self, event: E) {
        let mut pending = 0;
        let Ok(Some((index, routing))) = self.claim(true, &mut pending) else {
            // Nobody subscribed: the event is delivered to no one.
            return;
        };
        // SAFETY: `index` was just claimed and is not dispatched yet.
        unsafe { self.fill(index, routing, event) };
        let mask = self.dispatch(index, routing);
        self.wake_workers(mask);
    }

    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        let mut pending = 0;
        match self.claim(false, &mut pending) {
            Err(()) => Err(Full(event)),
            Ok(None) => Ok(()),
            Ok(Some((index, routing))) => {
                // SAFETY: `index` was just claimed and is not dispatched yet.
                unsafe { self.fill(index, routing, event) };
                let mask = self.dispatch(index, routing);
                self.wake_workers(mask);
                Ok(())
            }
        }
    }

    fn publish_clone(&self, event: &E) {
        let mut pending = 0;
        if let Ok(Some((index, routing))) = self.claim(true, &mut pending) {
            let mask = self.fill_clone_and_dispatch(index, routing, event);
            self.wake_workers(mask);
        }
    }

    /// One wake-up (fence) per batch rather than per event; workers are woken
    /// early if the producer must wait for an envelope.
    fn publish_batch(&self, events: &[E]) {
        let mut pending = 0;
        for event in events {
            if let Ok(Some((index, routing))) = self.claim(true, &mut pending) {
                pending |= self.fill_clone_and_dispatch(index, routing, event);
            }
        }
        self.wake_workers(pending);
    }

    /// Scans the pool: for each envelope in flight, waits until its
    /// deliveries are done (`refs` is zero) or it has been dispatched again
    /// (which needs them done). Both are permanent once seen, so a flush
    /// cannot be starved by producers that keep publishing.
    fn flush(&self) {
        let shared = &*self.shared;
        for handout in shared.envelopes.handouts() {
            if !handout.settled() {
                shared.progress.wait_until(shared.wait, None, || handout.settled());
            }
        }
    }

    fn stats(&self) -> BusStats {
        BusStats {
            dropped: 0,
            listener_panics: self.shared.workers.iter().map(|w| w.panics.load(Ordering::Relaxed)).sum(),
        }
    }

    fn shutdown(mut self) -> BusStats {
        self.stop();
        self.stats()
    }
}

impl<E, L> PooledBus<E, L> {
    /// Stops the workers once they have drained their queues, and joins them.
    /// Idempotent (`shutdown` calls it, then `Drop` again).
    fn stop(&mut self) {
        let threads: Vec<_> = self
            .control
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .threads
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for worker in self.shared.workers.iter() {
            worker.wake.notify_all();
        }
        for thread in threads {
            // Listener panics are caught inside the worker, so a worker only
            // ends by returning; there is nothing to report from `join`.
            let _ = thread.join();
        }
    }
}

impl<E, L> Drop for PooledBus<E, L> {
    fn drop(&mut self) {
        self.stop();
    }
}
