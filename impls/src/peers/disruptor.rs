//! The `disruptor` crate (Rust port of the LMAX Disruptor), single- or multi-producer by `BusConfig::producers`; subscribers fixed at the first publish, grouped onto at most `max_threads` handler threads.
//!
//! A peer: `disruptor` 4.4 preallocates a ring of slots that producers
//! claim by sequence number and write in place; each *event handler* is a
//! thread the crate spawns, which reads the published range in batches and
//! releases it by storing its cursor. Producers wait for the slowest handler.
//!
//! Decisions, and the wrapping they needed, stated plainly:
//! - **One bus, both sequencers.** With `BusConfig::producers == 1` the bus
//!   is built with `build_single_producer` (a plain cursor, no atomic
//!   read-modify-write per claim), otherwise with `build_multi_producer` (a
//!   `fetch_add` claim and a per-slot availability array) — the same choice
//!   our `ring` makes from the same field, so each cell gets the sequencer
//!   its producer count needs and the list stays one bus per crate.
//! - **A lock per producer handle.** The crate's `Producer` publishes through
//!   `&mut self`; `EventBus::publish` takes `&self` from any thread. So the
//!   bus keeps its producer handles each behind a `Mutex`: one handle for the
//!   single-producer sequencer (every publish takes its uncontended lock),
//!   and for the multi-producer one `producers` clones (at most 16), a thread
//!   taking the first free one starting from its own. That lock is the price
//!   of the contract, not of the crate; the crate's own benchmarks publish
//!   without it.
//! - **Subscribers fixed at the first publish.** The crate fixes its handlers
//!   when it is built, so the bus collects subscribers and builds the
//!   disruptor on the first publish that finds one; a `subscribe` after that
//!   returns `BusError::SubscribersFixed` (hence `dynamic_subscribe: false`:
//!   churn cells are skipped). `unsubscribe` still works at any time: the
//!   subscriber is marked removed, its handler stops calling it and drops it
//!   at the next event. Publishing while nobody is subscribed delivers to
//!   nobody and does not build anything.
//! - **Handlers.** Subscribers are dealt round-robin onto `min(subscribers,
//!   max_threads)` groups; each group is one crate event handler (one thread)
//!   calling its subscribers in turn for each event, filters checked at
//!   delivery, panics caught (`util::deliver_isolated`). A slot holds an
//!   `Option<E>` (the crate's factory needs a value per slot): `publish`
//!   moves the event in, `publish_clone` copies with `Clone::clone_from` into
//!   the event the slot already holds. Handlers also store the last sequence
//!   of each batch in a counter of ours, which `flush` waits on (the crate's
//!   cursors are private).
//! - **Waiting.** The crate's handlers wait through its `WaitStrategy` trait;
//!   it ships `BusySpin`, `BusySpinWithSpinLoopHint` and `Sleep`, and its
//!   producers spin in `publish` while the ring is full. Busy-spinning
//!   collapses on a 2-core machine once threads outnumber cores, so the bus
//!   maps `BusConfig::wait` onto a strategy of ours (through the crate's
//!   trait) and waits for room with `try_publish` plus the same strategy:
//!   `BusySpin` → the crate's `BusySpinWithSpinLoopHint`; `Yield` →
//!   `thread::yield_now` per round; `Park` (the default) → *spin, yield,
//!   nap*: 100 spin hints, then `yield_now` for up to 1 ms, then the
//!   crate's `Sleep` of 50 µs per round. Nobody wakes a waiter (the crate's
//!   producers and handlers signal nothing), so `Park` naps rather than
//!   parks: an idle handler notices a new event up to a nap (plus timer
//!   slack) late. [`DisruptorBus::wait_used`] names the mapping in force.
//!
//! Config: `capacity` (ring size, rounded up to a power of two),
//! `producers` (the sequencer, and the number of handles), `max_threads`
//! (handler threads), `wait` (as above) and `topics` (filter validation)
//! apply. `flush` from inside one of its own listeners returns at once;
//! `shutdown` or dropping the bus there is not supported (the crate joins its
//! handlers, that one included, on drop).
//!
//! # Guarantees
//! - **Ordering:** every subscriber sees events in the ring's sequence order
//!   (so each producer's in publish order), one call at a time, always on
//!   its group's handler thread.
//! - **Delivery:** exactly once to every subscriber whose filter accepts the
//!   event and that was subscribed before the first publish and not
//!   unsubscribed; after `unsubscribe` returns no publish that starts later
//!   reaches it. Nothing is dropped. Listener panics are caught and counted.
//! - **Backpressure:** `publish` and `publish_clone` wait (per
//!   `BusConfig::wait`, as above) while the slowest handler is a ring
//!   behind; `try_publish` hands the event back when the ring is full or
//!   every producer handle is taken by another thread.
//! - **Allocations per event:** zero at steady state for `SmallEvent`; for
//!   `HeavyEvent`, zero via `publish_clone` once each slot has held an event
//!   of the same shape (`clone_from` reuses its buffers); via `publish` the
//!   caller's event is moved in and the slot's previous one freed by the
//!   publisher. Building the disruptor (first publish) allocates the ring.
//! - **Threads:** `min(subscribers, max_threads)` handler threads, spawned by
//!   the crate at the first publish and joined by it when `shutdown` or
//!   `Drop` drops the last producer handle, after they have handled every
//!   published event. None before the first publish.
//!
//! Based on: `disruptor` 4.4.0 (crates.io, Nicholas Schultz-Møller), after
//!   the LMAX Disruptor (Thompson et al., 2011).

use crate::util::{check_filter, deliver_isolated};
use crate::wait::Notifier;
use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId, WaitStrategy,
};
use ::disruptor::wait_strategies::WaitStrategy as CrateWait;
use ::disruptor::{MultiConsumerBarrier, MultiProducer, ProcessorSettings, Producer, Sequence, SingleProducer};
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::{Duration, Instant};

/// The `disruptor` strategy (a peer).
pub struct Disruptor;

impl Strategy for Disruptor {
    const NAME: &'static str = "disruptor";
    const CAPABILITIES: Capabilities = Capabilities {
        multi_producer: true,
        asynchronous: true,
        lossy: false,
        bounded: true,
        max_subscribers: None,
        dynamic_subscribe: false,
        native_topics: false,
        panics: PanicPolicy::Isolated,
        zero_alloc_small: true,
        zero_alloc_heavy: true,
        peer: true,
        thread_per_subscriber: false,
    };
    type Bus<E: Event, L: Listener<E>> = DisruptorBus<E, L>;
}

/// Spin hints before a `Park` waiter starts yielding.
const SPINS: u32 = 100;
/// How long a `Park` waiter yields before it naps: long enough that a handler
/// fed at least every millisecond never naps (a nap costs ~100 µs with timer
/// slack, and the crate's handlers release the ring only per batch).
const YIELD_FOR: Duration = Duration::from_millis(1);
/// One nap of a `Park` waiter (the crate's `Sleep` strategy).
const NAP: Duration = Duration::from_micros(50);
/// Most producer handles of the multi-producer sequencer.
const MAX_HANDLES: usize = 16;

/// `BusConfig::wait` as the crate's handlers and our producers use it.
#[derive(Clone, Copy)]
struct Waiting(WaitStrategy);

/// The progress of one `Park` wait: spins so far and when yielding began.
#[derive(Clone, Copy, Default)]
struct Nap {
    spins: u32,
    since: Option<Instant>,
}

impl Nap {
    /// One round of spin, then yield, then nap.
    fn step(&mut self) {
        if self.spins < SPINS {
            self.spins += 1;
            std::hint::spin_loop();
            return;
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() < YIELD_FOR {
            std::thread::yield_now();
        } else {
            ::disruptor::Sleep::new(NAP).wait_for(0);
        }
    }
}

thread_local! {
    /// A handler's current `Park` wait: the sequence it waits for and its
    /// progress (the crate calls `wait_for` once per round, statelessly).
    static HANDLER_WAIT: Cell<(Sequence, Nap)> = const { Cell::new((-1, Nap { spins: 0, since: None })) };
}

impl CrateWait for Waiting {
    #[inline]
    fn wait_for(&self, sequence: Sequence) {
        match self.0 {
            WaitStrategy::BusySpin => ::disruptor::BusySpinWithSpinLoopHint.wait_for(sequence),
            WaitStrategy::Yield => std::thread::yield_now(),
            WaitStrategy::Park => HANDLER_WAIT.with(|w| {
                let (waiting_for, mut nap) = w.get();
                if waiting_for != sequence {
                    nap = Nap::default();
                }
                nap.step();
                w.set((sequence, nap));
            }),
        }
    }
}

impl Waiting {
    /// A waiting loop of our own (producers waiting for room).
    fn until(self, mut ready: impl FnMut() -> bool) {
        let mut nap = Nap::default();
        while !ready() {
            match self.0 {
                WaitStrategy::BusySpin => std::hint::spin_loop(),
                WaitStrategy::Yield => std::thread::yield_now(),
                WaitStrategy::Park => nap.step(),
            }
        }
    }
}

/// Distinguishes buses, so that a handler thread knows whose listener it runs.
static NEXT_BUS: AtomicUsize = AtomicUsize::new(1);
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The bus whose handler thread this is (0: none).
    static HANDLER_OF: Cell<usize> = const { Cell::new(0) };
    /// Picks this thread's first producer handle.
    static THREAD_INDEX: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// One subscriber.
struct Sub<L> {
    id: u64,
    filter: Filter,
    listener: L,
    /// Set by `unsubscribe`; handlers check it before every call.
    removed: AtomicBool,
}

/// What a handler shares with the bus.
struct GroupState {
    /// The last sequence this handler finished (end of its last batch).
    processed: CachePadded<AtomicI64>,
}

/// A producer handle and the last sequence published through it.
struct Handle<P> {
    producer: Mutex<P>,
    last: AtomicI64,
}

type Slot<E> = Option<E>;

/// The producer handles of one sequencer, each on its own cache line.
type Handles<P> = Box<[CachePadded<Handle<P>>]>;

enum Producers<E> {
    Single(Handles<SingleProducer<Slot<E>, MultiConsumerBarrier>>),
    Multi(Handles<MultiProducer<Slot<E>, MultiConsumerBarrier>>),
}

/// The built disruptor.
struct Running<E> {
    producers: Producers<E>,
    groups: Vec<Arc<GroupState>>,
}

struct Registry<L> {
    next_id: u64,
    subs: Vec<Arc<Sub<L>>>,
    started: bool,
}

/// What every handler shares with the bus.
#[derive(Default)]
struct Shared {
    panics: CachePadded<AtomicU64>,
    /// Notified (cheaply) by handlers at the end of each batch, for `flush`.
    progress: Notifier,
}

/// The `disruptor` bus.
pub struct DisruptorBus<E: Event, L: Listener<E>> {
    running: OnceLock<Running<E>>,
    registry: Mutex<Registry<L>>,
    shared: Arc<Shared>,
    size: usize,
    producers: usize,
    max_threads: usize,
    topics: usize,
    wait: WaitStrategy,
    uid: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under these locks (a panicking `clone` in `publish_clone`)
    // leaves the producer consistent: the crate publishes a slot only after
    // the update returned.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locks the first free handle from this thread's own, or waits for its own.
fn with_handle<P, R>(handles: &[CachePadded<Handle<P>>], f: impl FnOnce(&mut P, &AtomicI64) -> R) -> R {
    let home = THREAD_INDEX.with(|i| *i) % handles.len();
    for i in 0..handles.len() {
        let handle = &handles[(home + i) % handles.len()];
        match handle.producer.try_lock() {
            Ok(mut producer) => return f(&mut producer, &handle.last),
            Err(TryLockError::Poisoned(e)) => return f(&mut e.into_inner(), &handle.last),
            Err(TryLockError::WouldBlock) => {}
        }
    }
    let handle = &handles[home];
    f(&mut lock(&handle.producer), &handle.last)
}

/// Like [`with_handle`], but `None` if every handle is taken.
fn try_with_handle<P, R>(handles: &[CachePadded<Handle<P>>], f: impl FnOnce(&mut P, &AtomicI64) -> R) -> Option<R> {
    let home = THREAD_INDEX.with(|i| *i) % handles.len();
    for i in 0..handles.len() {
        let handle = &handles[(home + i) % handles.len()];
        match handle.producer.try_lock() {
            Ok(mut producer) => return Some(f(&mut producer, &handle.last)),
            Err(TryLockError::Poisoned(e)) => return Some(f(&mut e.into_inner(), &handle.last)),
            Err(TryLockError::WouldBlock) => {}
        }
    }
    None
}

/// Publishes through one producer, waiting for room per `wait`.
#[inline]
fn publish_on<E, P: Producer<Slot<E>>>(
    producer: &mut P,
    last: &AtomicI64,
    wait: Waiting,
    mut write: impl FnMut(&mut Slot<E>),
) {
    let mut published = None;
    wait.until(|| {
        published = producer.try_publish(|slot| write(slot)).ok();
        published.is_some()
    });
    if let Some(sequence) = published {
        last.store(sequence, Ordering::Release);
    }
}

/// Publishes `event` through one producer if the ring has room now.
fn try_publish_on<E, P: Producer<Slot<E>>>(producer: &mut P, last: &AtomicI64, event: &mut Option<E>) -> bool {
    match producer.try_publish(|slot| *slot = event.take()) {
        Ok(sequence) => {
            last.store(sequence, Ordering::Release);
            true
        }
        Err(_) => false,
    }
}

impl<E: Event, L: Listener<E>> DisruptorBus<E, L> {
    /// Which wait strategy the handlers and waiting producers use, in words.
    pub fn wait_used(&self) -> &'static str {
        match self.wait {
            WaitStrategy::BusySpin => "busy_spin: the crate's BusySpinWithSpinLoopHint",
            WaitStrategy::Yield => "yield: thread::yield_now per round (ours, via the crate's WaitStrategy trait)",
            WaitStrategy::Park => {
                "park: 100 spin hints, yield_now for up to 1 ms, then the crate's Sleep(50 µs) per round \
                 (ours, via the crate's WaitStrategy trait)"
            }
        }
    }

    /// The running disruptor, building it if there are subscribers.
    #[inline]
    fn running(&self) -> Option<&Running<E>> {
        match self.running.get() {
            Some(running) => Some(running),
            None => self.start(),
        }
    }

    #[cold]
    #[inline(never)]
    fn start(&self) -> Option<&Running<E>> {
        let mut reg = lock(&self.registry);
        if let Some(running) = self.running.get() {
            return Some(running);
        }
        if reg.subs.is_empty() {
            return None;
        }
        let groups = reg.subs.len().min(self.max_threads);
        let mut members: Vec<Vec<Arc<Sub<L>>>> = (0..groups).map(|_| Vec::new()).collect();
        for (i, sub) in reg.subs.iter().enumerate() {
            members[i % groups].push(sub.clone());
        }
        let states: Vec<Arc<GroupState>> =
            (0..groups).map(|_| Arc::new(GroupState { processed: CachePadded::new(AtomicI64::new(-1)) })).collect();
        let handlers = members.into_iter().zip(&states).map(|(subs, state)| self.handler(subs, state.clone()));
        let wait = Waiting(self.wait);
        let producers = if self.producers == 1 {
            let mut builder = ::disruptor::build_single_producer(self.size, || None, wait).with_multi_consumer();
            for handler in handlers {
                builder = builder.thread_name("buslab-disruptor").handle_events_with(handler);
            }
            let producer = builder.build();
            Producers::Single(Box::new([CachePadded::new(Handle {
                producer: Mutex::new(producer),
                last: AtomicI64::new(-1),
            })]))
        } else {
            let mut builder = ::disruptor::build_multi_producer(self.size, || None, wait).with_multi_consumer();
            for handler in handlers {
                builder = builder.thread_name("buslab-disruptor").handle_events_with(handler);
            }
            let first = builder.build();
            let count = self.producers.min(MAX_HANDLES);
            let mut handles = Vec::with_capacity(count);
            for _ in 1..count {
                handles
                    .push(CachePadded::new(Handle { producer: Mutex::new(first.clone()), last: AtomicI64::new(-1) }));
            }
            handles.push(CachePadded::new(Handle { producer: Mutex::new(first), last: AtomicI64::new(-1) }));
            Producers::Multi(handles.into_boxed_slice())
        };
        reg.started = true;
        let _ = self.running.set(Running { producers, groups: states });
        self.running.get()
    }

    /// One group's event handler (runs on the crate's handler thread).
    fn handler(
        &self,
        mut subs: Vec<Arc<Sub<L>>>,
        state: Arc<GroupState>,
    ) -> impl FnMut(&Slot<E>, Sequence, bool) + Send + 'static {
        let shared = self.shared.clone();
        let uid = self.uid;
        let mut marked = false;
        move |slot: &Slot<E>, sequence: Sequence, end_of_batch: bool| {
            if !marked {
                HANDLER_OF.with(|h| h.set(uid));
                marked = true;
            }
            let event = slot.as_ref().expect("every published slot holds an event");
            let topic = event.topic();
            let mut removed = false;
            let panics = deliver_isolated(subs.len(), |i| {
                let sub = &subs[i];
                if sub.removed.load(Ordering::Acquire) {
                    removed = true;
                } else if sub.filter.accepts(topic) {
                    sub.listener.on_event(event);
                }
            });
            if panics > 0 {
                shared.panics.fetch_add(panics, Ordering::Relaxed);
            }
            if removed {
                // Drops the last owner of an unsubscribed listener, after its
                // last call.
                subs.retain(|s| !s.removed.load(Ordering::Acquire));
            }
            if end_of_batch {
                state.processed.store(sequence, Ordering::Release);
                shared.progress.notify_all_cheap();
            }
        }
    }

    fn close(&mut self) -> BusStats {
        // Dropping the last producer handle makes the crate's handlers finish
        // every published event, then joins them.
        drop(self.running.take());
        self.stats()
    }
}

impl<E: Event, L: Listener<E>> EventBus for DisruptorBus<E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(Disruptor::NAME)?;
        let size = config.capacity.checked_next_power_of_two().filter(|&s| s <= 1 << 32).ok_or_else(|| {
            BusError::Config { bus: Disruptor::NAME, field: "capacity", reason: "must be at most 2^32".into() }
        })?;
        Ok(DisruptorBus {
            running: OnceLock::new(),
            registry: Mutex::new(Registry { next_id: 0, subs: Vec::new(), started: false }),
            shared: Arc::default(),
            size,
            producers: config.producers,
            max_threads: config.max_threads,
            topics: config.topics,
            wait: config.wait,
            uid: NEXT_BUS.fetch_add(1, Ordering::Relaxed),
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(Disruptor::NAME, filter, self.topics)?;
        let mut reg = lock(&self.registry);
        if reg.started {
            return Err(BusError::SubscribersFixed { bus: Disruptor::NAME });
        }
        let id = reg.next_id;
        reg.next_id += 1;
        reg.subs.push(Arc::new(Sub { id, filter, listener, removed: AtomicBool::new(false) }));
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let mut reg = lock(&self.registry);
        let Some(at) = reg.subs.iter().position(|s| s.id == id.0) else {
            return Err(BusError::UnknownSubscription { bus: Disruptor::NAME, id });
        };
        let sub = reg.subs.remove(at);
        sub.removed.store(true, Ordering::SeqCst);
        Ok(())
    }

    #[inline]
    fn publish(&self, event: E) {
        let Some(running) = self.running() else {
            return;
        };
        let wait = Waiting(self.wait);
        let mut event = Some(event);
        let write = |slot: &mut Slot<E>| *slot = event.take();
        match &running.producers {
            Producers::Single(h) => with_handle(h, |p, last| publish_on(p, last, wait, write)),
            Producers::Multi(h) => with_handle(h, |p, last| publish_on(p, last, wait, write)),
        }
    }

    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        let Some(running) = self.running() else {
            return Ok(());
        };
        let mut event = Some(event);
        let published = match &running.producers {
            Producers::Single(h) => try_with_handle(h, |p, last| try_publish_on(p, last, &mut event)),
            Producers::Multi(h) => try_with_handle(h, |p, last| try_publish_on(p, last, &mut event)),
        };
        match published {
            Some(true) => Ok(()),
            _ => Err(Full(event.take().expect("not written: the crate calls the update only when it publishes"))),
        }
    }

    #[inline]
    fn publish_clone(&self, event: &E) {
        let Some(running) = self.running() else {
            return;
        };
        let wait = Waiting(self.wait);
        let write = |slot: &mut Slot<E>| match slot {
            Some(held) => held.clone_from(event),
            None => *slot = Some(event.clone()),
        };
        match &running.producers {
            Producers::Single(h) => with_handle(h, |p, last| publish_on(p, last, wait, write)),
            Producers::Multi(h) => with_handle(h, |p, last| publish_on(p, last, wait, write)),
        }
    }

    fn flush(&self) {
        if HANDLER_OF.with(|h| h.get() == self.uid) {
            // A listener flushing its own bus would wait for itself.
            return;
        }
        let Some(running) = self.running.get() else {
            return;
        };
        let target = match &running.producers {
            Producers::Single(h) => h.iter().map(|h| h.last.load(Ordering::Acquire)).max(),
            Producers::Multi(h) => h.iter().map(|h| h.last.load(Ordering::Acquire)).max(),
        }
        .unwrap_or(-1);
        for group in &running.groups {
            self.shared.progress.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
                group.processed.load(Ordering::Acquire) >= target
            });
        }
    }

    fn stats(&self) -> BusStats {
        BusStats { dropped: 0, listener_panics: self.shared.panics.load(Ordering::Relaxed) }
    }

    fn shutdown(mut self) -> BusStats {
        self.close()
    }
}

impl<E: Event, L: Listener<E>> Drop for DisruptorBus<E, L> {
    fn drop(&mut self) {
        self.close();
    }
}
