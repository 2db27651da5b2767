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
//! - **A one-flag guard around the producer end.** `Producer::push` takes
//!   `&mut self`, `EventBus::publish` takes `&self`; so the producer end
//!   sits behind a flag taken with one atomic swap and released with one
//!   store per `publish` (per chunk for `publish_batch`), cheaper than a
//!   `Mutex` (whose unlock is a second read-modify-write). It also keeps the
//!   bus sound if two threads publish despite the declaration: they take
//!   turns (a waiter spins briefly, then yields). The crate's own benchmarks
//!   have no such guard.
//! - **Waiting, which the crate leaves to its user.** The consumer thread
//!   reads what is queued in chunks (`read_chunk`, at most a quarter of the
//!   ring), calls the listener on each event of the chunk's two slices in
//!   place (with `Filter::All`, nothing but the call; a topic filter is one
//!   compare), then commits the chunk (so the ring frees a slot only once
//!   its listener returned) and stores how many it has finished. When the
//!   ring is empty it waits on a `wait::Notifier` doorbell the producer
//!   rings cheaply (one relaxed load) after each push; a producer that finds
//!   the ring full (`push` hands the event back) first wakes the consumer
//!   with a fenced notification, then waits on the consumer's progress
//!   notifier. Both waits follow `BusConfig::wait` (the default `Park` spins
//!   briefly, yields, then sleeps, re-checking every
//!   `Notifier::CHEAP_TIMEOUT` in case a cheap wake-up was missed): never a
//!   spin storm on 2 cores.
//! - **Nothing else per event.** `publish` is the guard, the crate's `push`,
//!   a count for `flush` and the cheap doorbell; `publish_clone` pushes the
//!   clone the same way. Whether publishing has started is read from that
//!   count, not stored per publish. The consumer reads the unsubscribe flag
//!   once per chunk, after reading it (an event published after
//!   `unsubscribe` returned lies in a chunk that sees the flag), not once
//!   per event. Measured (callgrind, fat LTO, `spsc`, harness included):
//!   122 Ir per event before these three, with an index loop choosing
//!   between the chunk's slices and the filter and flag checked per event.
//! - **Flush** reads the events pushed so far (counted under the guard) and
//!   waits until the consumer has finished as many.
//! - **Subscribers fixed at the first publish.** `subscribe` builds the ring
//!   and spawns the consumer thread; after the first publish that finds the
//!   subscriber, `subscribe` returns `BusError::SubscribersFixed`
//!   (`dynamic_subscribe: false`). `unsubscribe` drops the producer end (so no
//!   later publish reaches the ring); the consumer skips the listener for what
//!   is still queued, then returns, dropping it.
//! - **`publish_batch`** writes each run of free slots with the crate's
//!   `write_chunk_uninit(..).fill_from_iter(..)`, one guard and one commit
//!   per run, as the crate's users publish chunks.
//!
//! Config: `capacity` (ring size, exact), `wait` (as above) and `topics`
//! (filter validation) apply; `max_threads` does not (one consumer thread),
//! nor does `producers` (one, guarded).
//!
//! # Guarantees
//! - **Ordering:** FIFO: the subscriber sees events in push order, one call
//!   at a time, always on the consumer thread.
//! - **Delivery:** exactly once to the subscriber if its filter accepts the
//!   event (checked at delivery) and it was subscribed before the first
//!   publish and not unsubscribed; after `unsubscribe` returns no publish that
//!   starts later reaches it, and what was queued is discarded (a chunk
//!   the consumer had already read when the flag was set is delivered). Publishing
//!   without a subscriber delivers to nobody. Listener panics are caught and
//!   counted.
//! - **Backpressure:** `publish`, `publish_clone` and `publish_batch` wait
//!   (per `BusConfig::wait`) while the ring is full; `try_publish` hands the
//!   event back when the ring is full or the guard is held by another
//!   thread.
//! - **Allocations per event:** zero at steady state for `SmallEvent` (the
//!   ring is allocated by `subscribe`; waiting sleeps on a condition
//!   variable, which does not allocate); for `HeavyEvent`, one deep clone via
//!   `publish_clone`, none via `publish` (the caller's event is moved in), and
//!   the consumer frees each event after its listener returned.
//! - **Threads:** one consumer thread per subscription, spawned by
//!   `subscribe`; it returns once the producer end is dropped (by
//!   `unsubscribe`, `shutdown` or `Drop`) and the ring is drained, and is
//!   joined by `shutdown` or `Drop`.
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
use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

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

/// A value only one thread at a time may use, behind one flag: taken with a
/// swap, released with a store.
struct Guarded<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `Guard`, and at most one
// `Guard` exists at a time (the flag's swap hands it to one thread; its
// release store publishes the value's writes to the next one).
unsafe impl<T: Send> Sync for Guarded<T> {}

/// Access to a [`Guarded`] value; releases it when dropped (also on unwind).
struct Guard<'a, T>(&'a Guarded<T>);

impl<T> Guarded<T> {
    fn new(value: T) -> Self {
        Guarded { busy: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Takes the value, waiting (spin, then yield) while another thread has it.
    #[inline]
    fn lock(&self) -> Guard<'_, T> {
        if self.busy.swap(true, Ordering::Acquire) {
            self.lock_contended();
        }
        Guard(self)
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
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

    /// Takes the value if no other thread has it.
    fn try_lock(&self) -> Option<Guard<'_, T>> {
        (!self.busy.swap(true, Ordering::Acquire)).then_some(Guard(self))
    }

    fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the flag (see `Guarded`'s `Sync`).
        unsafe { &*self.0.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds the flag, and `&mut self` makes this the
        // only reference through it.
        unsafe { &mut *self.0.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
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
    /// Events whose listener returned (or were skipped), consumer side.
    done: CachePadded<AtomicU64>,
    /// Set by `unsubscribe`: the consumer skips the listener from then on.
    removed: AtomicBool,
}

/// The producer end of the current subscription.
struct Outlet<E> {
    producer: Producer<E>,
    link: Arc<Link>,
    /// Events pushed so far.
    pushed: u64,
}

/// What publishers share, behind the guard.
struct Sending<E> {
    outlet: Option<Outlet<E>>,
    /// Set when an outlet that had carried events is dropped (the live
    /// one's own count says so while it lives): no publish pays a store
    /// for it.
    started: bool,
}

impl<E> Sending<E> {
    /// Whether an event has reached a subscriber: the subscribers are then
    /// fixed.
    fn started(&self) -> bool {
        self.started || self.outlet.as_ref().is_some_and(|o| o.pushed > 0)
    }

    /// Drops the outlet (abandoning its ring), remembering whether it had
    /// carried events.
    fn take_outlet(&mut self) -> Option<Outlet<E>> {
        self.started = self.started();
        self.outlet.take()
    }
}

struct Registry {
    next_id: u64,
    /// The live subscription's id and link.
    live: Option<(u64, Arc<Link>)>,
    /// Every consumer thread ever spawned, joined at shutdown.
    threads: Vec<JoinHandle<()>>,
    closed: bool,
}

/// The `rtrb` bus.
pub struct RtrbBus<E: Event, L: Listener<E>> {
    sending: CachePadded<Guarded<Sending<E>>>,
    registry: Mutex<Registry>,
    panics: Arc<CachePadded<AtomicU64>>,
    capacity: usize,
    topics: usize,
    wait: WaitStrategy,
    uid: usize,
    _listener: PhantomData<fn(L)>,
}

impl<E: Event> Outlet<E> {
    /// Waits (per `wait`) until the ring has room for at least one event.
    #[cold]
    #[inline(never)]
    fn wait_for_room(&self, wait: WaitStrategy) {
        // A consumer asleep with a missed cheap ring would otherwise sleep a
        // timeout out before making room.
        self.link.doorbell.notify_all();
        let producer = &self.producer;
        self.link.progress.wait_until(wait, Some(Notifier::CHEAP_TIMEOUT), || !producer.is_full());
    }

    /// Pushes one event, waiting for room: the crate's `push`, and when it
    /// hands the event back (ring full), the cold path.
    #[inline(always)]
    fn push(&mut self, event: E, wait: WaitStrategy) {
        if let Err(::rtrb::PushError::Full(event)) = self.producer.push(event) {
            self.push_when_full(event, wait);
        }
        self.pushed += 1;
        self.link.doorbell.notify_all_cheap();
    }

    /// Waits for room, then pushes (the ring was full).
    #[cold]
    #[inline(never)]
    fn push_when_full(&mut self, mut event: E, wait: WaitStrategy) {
        loop {
            self.wait_for_room(wait);
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
    wait: WaitStrategy,
    uid: usize,
) {
    CONSUMER_OF.with(|c| c.set(uid));
    let most = (consumer.buffer().capacity() / 4).max(1);
    let mut done = 0;
    loop {
        let ready = consumer.slots();
        if ready == 0 {
            if consumer.is_abandoned() && consumer.is_empty() {
                break;
            }
            // Idle: a full notification for whoever waits on `done`, then wait.
            link.progress.notify_all();
            link.doorbell
                .wait_until(wait, Some(Notifier::CHEAP_TIMEOUT), || !consumer.is_empty() || consumer.is_abandoned());
            continue;
        }
        let n = ready.min(most);
        let chunk = consumer.read_chunk(n).expect("`slots` said this many are readable");
        // Read after the chunk: an event published after `unsubscribe`
        // returned is in a chunk that sees the flag.
        if !link.removed.load(Ordering::Acquire) {
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
        }
        chunk.commit_all();
        done += n as u64;
        link.done.store(done, Ordering::Release);
        link.progress.notify_all_cheap();
    }
    drop(listener);
    link.progress.notify_all();
}

impl<E: Event, L: Listener<E>> RtrbBus<E, L> {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Nothing that can panic runs while the lock is held.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&mut self) -> BusStats {
        // Without the producer end, the consumer delivers what is queued,
        // then returns.
        if let Some(outlet) = self.sending.get_mut().outlet.take() {
            let link = outlet.link.clone();
            drop(outlet);
            link.doorbell.notify_all();
        }
        let reg = self.registry.get_mut().unwrap_or_else(|e| e.into_inner());
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
            sending: CachePadded::new(Guarded::new(Sending { outlet: None, started: false })),
            registry: Mutex::new(Registry { next_id: 0, live: None, threads: Vec::new(), closed: false }),
            panics: Arc::default(),
            capacity: config.capacity,
            topics: config.topics,
            wait: config.wait,
            uid: NEXT_BUS.fetch_add(1, Ordering::Relaxed),
            _listener: PhantomData,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(Rtrb::NAME, filter, self.topics)?;
        let mut reg = self.registry();
        let mut sending = self.sending.lock();
        if sending.started() {
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
            let (wait, uid) = (self.wait, self.uid);
            std::thread::Builder::new()
                .name(format!("buslab-{}-{id}", Rtrb::NAME))
                .spawn(move || consume(consumer, filter, listener, &link, &panics, wait, uid))
                .expect("the OS must let the bus spawn its consumer thread")
        };
        reg.threads.push(thread);
        reg.live = Some((id, link.clone()));
        sending.outlet = Some(Outlet { producer, link, pushed: 0 });
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let mut reg = self.registry();
        let Some((_, link)) = reg.live.take_if(|(live, _)| *live == id.0) else {
            return Err(BusError::UnknownSubscription { bus: Rtrb::NAME, id });
        };
        link.removed.store(true, Ordering::SeqCst);
        // Dropping the producer end abandons the ring: no later publish
        // reaches it, and the consumer returns once it has drained it.
        let outlet = self.sending.lock().take_outlet();
        drop(outlet);
        link.doorbell.notify_all();
        Ok(())
    }

    #[inline(always)]
    fn publish(&self, event: E) {
        if let Some(outlet) = &mut self.sending.lock().outlet {
            outlet.push(event, self.wait);
        }
    }

    #[inline(always)]
    fn publish_clone(&self, event: &E) {
        if let Some(outlet) = &mut self.sending.lock().outlet {
            outlet.push(event.clone(), self.wait);
        }
    }

    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        let Some(mut sending) = self.sending.try_lock() else {
            return Err(Full(event));
        };
        let Some(outlet) = &mut sending.outlet else {
            return Ok(());
        };
        match outlet.producer.push(event) {
            Ok(()) => {
                outlet.pushed += 1;
                outlet.link.doorbell.notify_all_cheap();
                Ok(())
            }
            Err(::rtrb::PushError::Full(event)) => Err(Full(event)),
        }
    }

    fn publish_batch(&self, events: &[E]) {
        let mut sending = self.sending.lock();
        let Some(outlet) = &mut sending.outlet else {
            return;
        };
        let mut rest = events;
        while !rest.is_empty() {
            let free = outlet.producer.slots().min(rest.len());
            if free == 0 {
                outlet.wait_for_room(self.wait);
                continue;
            }
            let chunk = outlet.producer.write_chunk_uninit(free).expect("`slots` said this many are free");
            // Moves in as many clones as it takes; a panicking clone commits
            // those already written.
            let written = chunk.fill_from_iter(rest[..free].iter().cloned());
            outlet.pushed += written as u64;
            outlet.link.doorbell.notify_all_cheap();
            rest = &rest[written..];
        }
    }

    fn flush(&self) {
        if CONSUMER_OF.with(|c| c.get() == self.uid) {
            // A listener flushing its own bus would wait for itself.
            return;
        }
        let (link, target) = {
            let sending = self.sending.lock();
            let Some(outlet) = &sending.outlet else {
                return;
            };
            (outlet.link.clone(), outlet.pushed)
        };
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
