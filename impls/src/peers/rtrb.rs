//! The `rtrb` crate (wait-free single-producer single-consumer ring) carrying events from one producer to one subscriber's thread.
//!
//! A peer: `rtrb` 0.4 is a bounded ring with one `Producer` and one
//! `Consumer` end, each `Send` but not `Sync`, wait-free, with no blocking of
//! its own: it is the single-subscriber hand-off at its physical limit, which
//! our `ring` is held to. It declares one producer (`multi_producer:
//! false`) and one subscriber (`max_subscribers: Some(1)`), so cells with more
//! of either are skipped with that reason.
//!
//! The wrapping it needed, stated plainly:
//! - **One publisher at a time, as the `ring` bus's single-producer path.**
//!   `Producer::push` takes `&mut self`, `EventBus::publish` takes `&self`.
//!   A bus built with `BusConfig::producers == 1` (every cell this peer
//!   runs) reaches the producer end with no lock, on the contract that one
//!   thread publishes at a time (publishing from two at once is then a
//!   contract violation the bus does not detect in release builds; debug
//!   builds assert it, as `ring` does). With more producers declared,
//!   publishers take turns at a one-flag gate (one swap, one store).
//!   Control calls never touch the producer end: `subscribe` publishes a
//!   pointer to it (made once, freed by `shutdown`/`Drop`), `unsubscribe`
//!   clears that pointer and flags the subscription removed, and `flush`
//!   reads counts the publisher stores.
//! - **Waiting, which the crate leaves to its user.** The consumer thread
//!   reads what is queued in chunks (`read_chunk`, at most a quarter of the
//!   ring), calls the listener on each event of the chunk's two slices in
//!   place (with `Filter::All`, nothing but the call; a topic filter is one
//!   compare), then commits the chunk (so the ring frees a slot only once
//!   its listener returned) and stores how many it has finished. After a
//!   chunk shorter than its maximum it pauses ~250 ns (spinning, as `ring`
//!   does; not with `BusySpin`) so that a run of events builds up. When the
//!   ring is empty it polls for up to 1 ms (spinning, then yielding its
//!   core; `wait::IDLE_POLL`, as `ring`'s consumers, while the producers
//!   and this thread fit the cores), then waits on a `wait::Notifier`
//!   doorbell the producer rings cheaply (one relaxed load) after each
//!   push; a producer that finds the ring full (`push` hands the event
//!   back) first wakes the consumer with a fenced notification, then waits
//!   on the consumer's progress notifier. Both waits follow `BusConfig::wait` (the default `Park` spins
//!   briefly, yields, then sleeps, re-checking every
//!   `Notifier::CHEAP_TIMEOUT` in case a cheap wake-up was missed): never a
//!   spin storm on 2 cores.
//! - **Nothing else per event.** `publish` is a load of the outlet pointer,
//!   the crate's `push`, a count for `flush` (a load and a store: one
//!   writer) and the cheap doorbell; `publish_clone` pushes the clone the
//!   same way. The consumer reads the unsubscribe flag once per chunk,
//!   after reading it (an event published after `unsubscribe` returned
//!   lies in a chunk that sees the flag), not once per event.
//! - **Why, measured.** (1) `examples/spsc_floor.rs` (the harness's
//!   `spsc` loop of `publish_clone` + `flush` with a checksumming listener,
//!   3 M events per round, median of 5 rounds, before/after binaries
//!   alternated, 2-core VM, load 0.8–1.6): with a per-publish flag swap (a
//!   locked instruction, which waits for the previous push's stores — the
//!   tail index and slot lines the consumer keeps reading — to leave the
//!   store buffer) and no pause, 10.7–18.9 M events/s while `ring` made
//!   72–88 M in the same runs; without the swap, 22–23 M; with the pause
//!   but the swap, 8–9 M; without the swap and with the pause, 61–81 M
//!   (`ring` 59–94 M). The crate's own loops made 16–36 M there (push, and
//!   pop or `read_chunk`, both spinning: a consumer that takes each event
//!   as it lands pulls the slot and index lines across on nearly every
//!   push) and 42–66 M with the same pause; the 144–171 M/s measured apart
//!   is its benchmark's regime with the consumer a whole queue behind.
//!   (2) `buslab run --quick --pass throughput`, `spsc` and `batch`, 4
//!   rounds alternating the binaries (load 0.0–0.9): `spsc` 12.1–14.0 M
//!   before, 69.5–86.5 M after (`ring` 85–102 M: `ring` ÷ `rtrb` from
//!   6.9–7.6× to 1.16–1.22×); `batch`/1 47.5–65.8 M before, 58.6–73.8 M
//!   after (`ring` ÷ `rtrb` from 0.98–1.36× to 0.91–1.12×). (3) The idle
//!   polling, same method, 3 runs each (load 0.9–1.5): open-loop latency
//!   p50 at 2,000 and 20,000 events/s (`spsc` via a scenario file) from
//!   42–1,788 µs to 0.5–0.8 µs (`ring`'s 0.6–0.9 µs); throughput medians
//!   `spsc` 62–82 M before, 73–80 M after, `batch`/1 58–73 M before,
//!   71–78 M after.
//! - **Flush** reads the events pushed so far and waits until the consumer
//!   has finished as many.
//! - **Subscribers fixed at the first publish.** `subscribe` builds the ring
//!   and spawns the consumer thread; once an event has been pushed to a
//!   subscriber, `subscribe` returns `BusError::SubscribersFixed`
//!   (`dynamic_subscribe: false`). After `unsubscribe` no later publish
//!   finds the producer end; the consumer skips the listener for what is
//!   still queued and returns, dropping it and its end of the ring (a
//!   publisher still waiting for room then sees the flag and stops).
//! - **`publish_batch`** writes each run of free slots with the crate's
//!   `write_chunk_uninit(..).fill_from_iter(..)`, one commit per run, as
//!   the crate's users publish chunks.
//!
//! Config: `capacity` (ring size, exact), `wait` (as above), `producers`
//! (one: no gate) and `topics` (filter validation) apply; `max_threads`
//! does not (one consumer thread).
//!
//! # Guarantees
//! - **Ordering:** FIFO: the subscriber sees events in push order, one call
//!   at a time, always on the consumer thread.
//! - **Delivery:** exactly once to the subscriber if its filter accepts the
//!   event (checked at delivery) and it was subscribed before the first
//!   publish and not unsubscribed; after `unsubscribe` returns no publish that
//!   starts later reaches it, and what was queued is discarded (a chunk
//!   the consumer had already read when the flag was set is delivered; a
//!   publish under way may push into the abandoned ring). Publishing
//!   without a subscriber delivers to nobody. Listener panics are caught and
//!   counted.
//! - **Backpressure:** `publish`, `publish_clone` and `publish_batch` wait
//!   (per `BusConfig::wait`) while the ring is full; `try_publish` hands the
//!   event back when the ring is full (or, with several producers
//!   declared, another thread is publishing).
//! - **Allocations per event:** zero at steady state for `SmallEvent` (the
//!   ring is allocated by `subscribe`; waiting sleeps on a condition
//!   variable, which does not allocate); for `HeavyEvent`, one deep clone via
//!   `publish_clone`, none via `publish` (the caller's event is moved in), and
//!   the consumer frees each event after its listener returned.
//! - **Threads:** one consumer thread per subscription, spawned by
//!   `subscribe`; it returns once its subscription is removed
//!   (`unsubscribe`), or the producer end is dropped (`shutdown` or `Drop`)
//!   and the ring is drained, and is joined by `shutdown` or `Drop`, which
//!   also free the producer ends.
//!
//! Based on: `rtrb` 0.4.1 (crates.io, Matthias Geier), after Lamport's
//!   single-producer single-consumer queue with cached head and tail indices.

use crate::util::{check_filter, deliver_each_isolated, join_spawned};
use crate::wait::Notifier;
use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId, WaitStrategy,
};
use ::rtrb::{Consumer, Producer, RingBuffer};
use crossbeam_utils::{Backoff, CachePadded};
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The `rtrb` strategy (a peer).
pub struct Rtrb;

impl Strategy for Rtrb {
    const NAME: &'static str = "rtrb";
    const CAPABILITIES: Capabilities = Capabilities {
        multi_producer: false,
        asynchronous: true,
        lossy: false,
        bounded: true,
        max_subscribers: Some(1),
        dynamic_subscribe: false,
        native_topics: false,
        panics: PanicPolicy::Isolated,
        zero_alloc_small: true,
        zero_alloc_heavy: false,
        peer: true,
        thread_per_subscriber: false,
    };
    type Bus<E: Event, L: Listener<E>> = RtrbBus<E, L>;
}

/// Distinguishes buses, so that a consumer thread knows whose listener it runs.
static NEXT_BUS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The bus whose consumer thread this is (0: none).
    static CONSUMER_OF: Cell<usize> = const { Cell::new(0) };
}

/// Publishers' turns at the producer end: one flag, taken with a swap and
/// released with a store.
#[derive(Default)]
struct Gate {
    busy: AtomicBool,
}

/// A turn at the producer end; ends when dropped (also on unwind).
struct Turn<'a>(&'a AtomicBool);

impl Gate {
    /// Takes a turn, waiting (spin, then yield) while another thread has one.
    #[inline]
    fn enter(&self) -> Turn<'_> {
        if self.busy.swap(true, Ordering::Acquire) {
            self.enter_contended();
        }
        Turn(&self.busy)
    }

    #[cold]
    #[inline(never)]
    fn enter_contended(&self) {
        let backoff = Backoff::new();
        loop {
            while self.busy.load(Ordering::Relaxed) {
                backoff.snooze();
            }
            if !self.busy.swap(true, Ordering::Acquire) {
                return;
            }
        }
    }

    /// Takes a turn if no other thread has one.
    fn try_enter(&self) -> Option<Turn<'_>> {
        (!self.busy.swap(true, Ordering::Acquire)).then_some(Turn(&self.busy))
    }
}

impl Drop for Turn<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What the consumer thread shares with the bus about one subscription.
#[derive(Default)]
struct Link {
    /// The consumer sleeps here when the ring is empty.
    doorbell: Notifier,
    /// Notified when the consumer finished events (room for a producer, and
    /// progress for `flush`) or returned.
    progress: Notifier,
    /// Events pushed so far; written by the publisher alone (a load and a
    /// store, no read-modify-write), read by `flush` and `subscribe`.
    pushed: CachePadded<AtomicU64>,
    /// Events whose listener returned (or were skipped), consumer side.
    done: CachePadded<AtomicU64>,
    /// Set by `unsubscribe`: the consumer skips the listener from then on
    /// and returns.
    removed: AtomicBool,
}

/// The producer end of one subscription, used by one publisher at a time.
struct Outlet<E> {
    producer: Producer<E>,
    link: Arc<Link>,
}

/// A raw pointer to an outlet, owned by the registry (freed by `close`).
struct OutletPtr<E>(*mut Outlet<E>);

// SAFETY: the outlet is `Send` (its producer end and link are); the registry
// only frees it in `close`, which has the bus exclusively.
unsafe impl<E: Send> Send for OutletPtr<E> {}

struct Registry<E> {
    next_id: u64,
    /// The live subscription's id and link.
    live: Option<(u64, Arc<Link>)>,
    /// Every outlet ever made, with its link, freed by `close` (never
    /// earlier: a publisher may still be using one that `unsubscribe` has
    /// just retired).
    outlets: Vec<(OutletPtr<E>, Arc<Link>)>,
    /// Every consumer thread ever spawned, joined at shutdown.
    threads: Vec<JoinHandle<()>>,
    closed: bool,
}

impl<E> Registry<E> {
    /// Whether an event has reached a subscriber: the subscribers are then
    /// fixed.
    fn started(&self) -> bool {
        self.outlets.iter().any(|(_, link)| link.pushed.load(Ordering::Acquire) > 0)
    }
}

/// The `rtrb` bus.
pub struct RtrbBus<E: Event, L: Listener<E>> {
    /// The live subscription's producer end (null: none).
    outlet: CachePadded<AtomicPtr<Outlet<E>>>,
    /// Publishers take turns here when the bus was built for several
    /// (`BusConfig::producers > 1`); with one, debug builds check that
    /// there is only one at a time.
    gate: CachePadded<Gate>,
    /// `BusConfig::producers == 1`: publishing takes no turn.
    solo: bool,
    registry: Mutex<Registry<E>>,
    panics: Arc<CachePadded<AtomicU64>>,
    capacity: usize,
    topics: usize,
    wait: WaitStrategy,
    /// How long the idle consumer polls before it sleeps under `Park`:
    /// `wait::IDLE_POLL` when the producers and the consumer thread fit the
    /// cores, else zero.
    idle_poll: Duration,
    uid: usize,
    _listener: PhantomData<fn(L)>,
}

// SAFETY: the outlets behind the raw pointers are used by one publisher at a
// time (the gate, or the single-producer contract) and freed only by `close`
// (`&mut self`); everything else is `Sync`.
unsafe impl<E: Event, L: Listener<E>> Sync for RtrbBus<E, L> {}
// SAFETY: as above; the registry frees the outlets on whichever thread
// drops the bus.
unsafe impl<E: Event, L: Listener<E>> Send for RtrbBus<E, L> {}

impl<E: Event> Outlet<E> {
    /// Waits (per `wait`) until the ring has room for at least one event;
    /// false if the subscription was removed (the consumer may be gone).
    #[cold]
    #[inline(never)]
    fn wait_for_room(&self, wait: WaitStrategy) -> bool {
        // A consumer asleep with a missed cheap ring would otherwise sleep a
        // timeout out before making room.
        self.link.doorbell.notify_all();
        let (producer, link) = (&self.producer, &*self.link);
        link.progress.wait_until(wait, Some(Notifier::CHEAP_TIMEOUT), || {
            !producer.is_full() || link.removed.load(Ordering::Acquire)
        });
        !link.removed.load(Ordering::Acquire)
    }

    /// Counts `n` more events pushed (one writer: a load and a store).
    #[inline(always)]
    fn count(&self, n: u64) {
        let pushed = &self.link.pushed;
        pushed.store(pushed.load(Ordering::Relaxed) + n, Ordering::Release);
    }

    /// Pushes one event, waiting for room: the crate's `push`, and when it
    /// hands the event back (ring full), the cold path.
    #[inline(always)]
    fn push(&mut self, event: E, wait: WaitStrategy) {
        if let Err(::rtrb::PushError::Full(event)) = self.producer.push(event) {
            self.push_when_full(event, wait);
        }
        self.count(1);
        self.link.doorbell.notify_all_cheap();
    }

    /// Waits for room, then pushes (the ring was full). A subscription
    /// removed meanwhile gets nothing.
    #[cold]
    #[inline(never)]
    fn push_when_full(&mut self, mut event: E, wait: WaitStrategy) {
        loop {
            if !self.wait_for_room(wait) {
                return;
            }
            match self.producer.push(event) {
                Ok(()) => return,
                Err(::rtrb::PushError::Full(back)) => event = back,
            }
        }
    }
}

/// The consumer thread of one subscription: reads what is queued in chunks,
/// calls the listener on each event in place, then commits the chunk.
fn consume<E: Event, L: Listener<E>>(
    mut consumer: Consumer<E>,
    filter: Filter,
    listener: L,
    link: &Link,
    panics: &AtomicU64,
    (wait, idle_poll): (WaitStrategy, Duration),
    uid: usize,
) {
    CONSUMER_OF.with(|c| c.set(uid));
    let most = (consumer.buffer().capacity() / 4).max(1);
    let coalesce = crate::wait::coalescing_spins(wait);
    let mut done = 0;
    loop {
        let ready = consumer.slots();
        if ready == 0 {
            if consumer.is_abandoned() && consumer.is_empty() || link.removed.load(Ordering::Acquire) {
                break;
            }
            // Idle: a full notification for whoever waits on `done`, then wait.
            link.progress.notify_all();
            link.doorbell.wait_polling(wait, idle_poll, Some(Notifier::CHEAP_TIMEOUT), || {
                !consumer.is_empty() || consumer.is_abandoned() || link.removed.load(Ordering::Relaxed)
            });
            continue;
        }
        let n = ready.min(most);
        let chunk = consumer.read_chunk(n).expect("`slots` said this many are readable");
        // Read after the chunk: an event published after `unsubscribe`
        // returned is in a chunk that sees the flag.
        if link.removed.load(Ordering::Acquire) {
            break;
        }
        let (first, second) = chunk.as_slices();
        let caught = match filter {
            Filter::All => {
                let deliver = |event: &E, listener: &L| listener.on_event(event);
                deliver_each_isolated(first, &listener, deliver) + deliver_each_isolated(second, &listener, deliver)
            }
            Filter::Topic(topic) => {
                let deliver = move |event: &E, listener: &L| {
                    if event.topic() == topic {
                        listener.on_event(event);
                    }
                };
                deliver_each_isolated(first, &listener, deliver) + deliver_each_isolated(second, &listener, deliver)
            }
        };
        if caught > 0 {
            panics.fetch_add(caught, Ordering::Relaxed);
        }
        chunk.commit_all();
        done += n as u64;
        link.done.store(done, Ordering::Release);
        link.progress.notify_all_cheap();
        if n < most {
            // A short chunk: let a run of events build up before reading
            // the producer's index again (see `wait::coalescing_spins`).
            for _ in 0..coalesce {
                std::hint::spin_loop();
            }
        }
    }
    // Dropping the consumer end abandons the ring: a publisher still
    // holding the producer end finds no room once it is full, and sees
    // `removed`.
    drop(consumer);
    drop(listener);
    link.progress.notify_all();
}

impl<E: Event, L: Listener<E>> RtrbBus<E, L> {
    fn registry(&self) -> MutexGuard<'_, Registry<E>> {
        // Nothing that can panic runs while the lock is held.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A publisher's turn: none with one producer in release builds; in
    /// debug builds, a check that no other thread publishes at once.
    #[inline(always)]
    fn turn(&self) -> Option<Turn<'_>> {
        if !self.solo {
            return Some(self.gate.enter());
        }
        #[cfg(debug_assertions)]
        {
            let turn = self.gate.try_enter();
            assert!(turn.is_some(), "rtrb: two threads published at once on a bus built with producers == 1");
            turn
        }
        #[cfg(not(debug_assertions))]
        None
    }

    /// Runs `f` on the live subscription's producer end, if there is one,
    /// as the one publisher (the caller holds its turn).
    #[inline(always)]
    fn with_outlet<R>(&self, _turn: &Option<Turn<'_>>, f: impl FnOnce(&mut Outlet<E>) -> R) -> Option<R> {
        let outlet = self.outlet.load(Ordering::Acquire);
        if outlet.is_null() {
            return None;
        }
        // SAFETY: outlets are freed only by `close` (`&mut self`); one
        // publisher at a time reaches an outlet (the turn, or with
        // `producers == 1` the contract that one thread publishes at a
        // time), and nothing else takes a reference to it while the bus is
        // shared (`flush` and `subscribe` read its link through the
        // registry's `Arc`).
        Some(f(unsafe { &mut *outlet }))
    }

    fn close(&mut self) -> BusStats {
        *self.outlet.get_mut() = std::ptr::null_mut();
        let reg = self.registry.get_mut().unwrap_or_else(|e| e.into_inner());
        // Without the producer end, the consumer delivers what is queued,
        // then returns.
        for (OutletPtr(outlet), link) in reg.outlets.drain(..) {
            // SAFETY: made by `Box::into_raw` in `subscribe`, freed once here;
            // no publisher runs (`&mut self`).
            drop(unsafe { Box::from_raw(outlet) });
            link.doorbell.notify_all();
        }
        if !reg.closed {
            reg.closed = true;
            reg.threads.drain(..).for_each(join_spawned);
        }
        self.stats()
    }
}

impl<E: Event, L: Listener<E>> EventBus for RtrbBus<E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(Rtrb::NAME)?;
        Ok(RtrbBus {
            outlet: CachePadded::new(AtomicPtr::new(std::ptr::null_mut())),
            gate: CachePadded::default(),
            solo: config.producers == 1,
            registry: Mutex::new(Registry {
                next_id: 0,
                live: None,
                outlets: Vec::new(),
                threads: Vec::new(),
                closed: false,
            }),
            panics: Arc::default(),
            capacity: config.capacity,
            topics: config.topics,
            wait: config.wait,
            idle_poll: crate::wait::idle_poll(config.producers + 1), // the producers and the one consumer thread
            uid: NEXT_BUS.fetch_add(1, Ordering::Relaxed),
            _listener: PhantomData,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(Rtrb::NAME, filter, self.topics)?;
        let mut reg = self.registry();
        if reg.started() {
            return Err(BusError::SubscribersFixed { bus: Rtrb::NAME });
        }
        if reg.live.is_some() {
            return Err(BusError::SubscriberLimit { bus: Rtrb::NAME, limit: 1 });
        }
        let (producer, consumer) = RingBuffer::new(self.capacity);
        let link = Arc::new(Link::default());
        let id = reg.next_id;
        reg.next_id += 1;
        let thread = {
            let (link, panics) = (link.clone(), self.panics.clone());
            let (wait, idle_poll, uid) = (self.wait, self.idle_poll, self.uid);
            std::thread::Builder::new()
                .name(format!("buslab-{}-{id}", Rtrb::NAME))
                .spawn(move || consume(consumer, filter, listener, &link, &panics, (wait, idle_poll), uid))
                .expect("the OS must let the bus spawn its consumer thread")
        };
        reg.threads.push(thread);
        reg.live = Some((id, link.clone()));
        let outlet = Box::into_raw(Box::new(Outlet { producer, link: link.clone() }));
        reg.outlets.push((OutletPtr(outlet), link));
        self.outlet.store(outlet, Ordering::Release);
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let mut reg = self.registry();
        let Some((_, link)) = reg.live.take_if(|(live, _)| *live == id.0) else {
            return Err(BusError::UnknownSubscription { bus: Rtrb::NAME, id });
        };
        // No publish that starts from now on finds the outlet; the consumer
        // skips the listener for what is queued and returns.
        self.outlet.store(std::ptr::null_mut(), Ordering::SeqCst);
        link.removed.store(true, Ordering::SeqCst);
        link.doorbell.notify_all();
        link.progress.notify_all();
        Ok(())
    }

    #[inline(always)]
    fn publish(&self, event: E) {
        let turn = self.turn();
        self.with_outlet(&turn, |outlet| outlet.push(event, self.wait));
    }

    #[inline(always)]
    fn publish_clone(&self, event: &E) {
        let turn = self.turn();
        self.with_outlet(&turn, |outlet| outlet.push(event.clone(), self.wait));
    }

    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        let turn = if self.solo {
            self.turn()
        } else {
            match self.gate.try_enter() {
                Some(turn) => Some(turn),
                None => return Err(Full(event)),
            }
        };
        self.with_outlet(&turn, |outlet| match outlet.producer.push(event) {
            Ok(()) => {
                outlet.count(1);
                outlet.link.doorbell.notify_all_cheap();
                Ok(())
            }
            Err(::rtrb::PushError::Full(event)) => {
                // A consumer asleep with a missed cheap ring must not be
                // waited on.
                outlet.link.doorbell.notify_all();
                Err(Full(event))
            }
        })
        .unwrap_or(Ok(()))
    }

    fn publish_batch(&self, events: &[E]) {
        let turn = self.turn();
        self.with_outlet(&turn, |outlet| {
            let mut rest = events;
            while !rest.is_empty() {
                let free = outlet.producer.slots().min(rest.len());
                if free == 0 {
                    if !outlet.wait_for_room(self.wait) {
                        return;
                    }
                    continue;
                }
                let chunk = outlet.producer.write_chunk_uninit(free).expect("`slots` said this many are free");
                // Moves in as many clones as it takes; a panicking clone commits
                // those already written.
                let written = chunk.fill_from_iter(rest[..free].iter().cloned());
                outlet.count(written as u64);
                outlet.link.doorbell.notify_all_cheap();
                rest = &rest[written..];
            }
        });
    }

    fn flush(&self) {
        if CONSUMER_OF.with(|c| c.get() == self.uid) {
            // A listener flushing its own bus would wait for itself.
            return;
        }
        let Some(link) = self.registry().live.as_ref().map(|(_, link)| link.clone()) else {
            return;
        };
        let target = link.pushed.load(Ordering::Acquire);
        link.doorbell.notify_all();
        link.progress.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
            link.removed.load(Ordering::Acquire) || link.done.load(Ordering::Acquire) >= target
        });
    }

    fn stats(&self) -> BusStats {
        BusStats { dropped: 0, listener_panics: self.panics.load(Ordering::Relaxed) }
    }

    fn shutdown(mut self) -> BusStats {
        self.close()
    }
}

impl<E: Event, L: Listener<E>> Drop for RtrbBus<E, L> {
    fn drop(&mut self) {
        self.close();
    }
}
