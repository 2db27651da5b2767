//! The `bus` crate (lock-free SPMC broadcast ring) behind a Mutex, since it takes one producer and `&mut` to subscribe; one reader per subscriber, drained by at most `max_threads` threads.
//!
//! A peer: `bus` 2.4 is a bounded broadcast ring with one writer and any
//! number of readers; every reader receives every event (each gets a clone,
//! the last one the original), and the writer blocks when the slowest reader
//! is a ring behind. Readers that wait park and are woken by a helper thread
//! the crate spawns (`bus_unparking`).
//!
//! The wrapping it needed, stated plainly:
//! - **A mutex around the writer.** `Bus::broadcast` and `Bus::add_rx` take
//!   `&mut self`, while `EventBus::publish` and `subscribe` take `&self` from
//!   any thread, so the `Bus` sits in a `Mutex` that *every* publish takes,
//!   one producer or several: multi-producer publishing and subscribing while
//!   others publish (churn) exist only through that lock. A publisher that
//!   waits for room waits holding it. `try_publish` uses `try_lock` and hands
//!   the event back if another thread holds the lock.
//! - **Counting.** The lock also counts the events sent; a subscriber's
//!   reader starts at the count when it was added (its join point), and its
//!   consumer counts the events it has passed, so that `flush` knows what
//!   each subscriber still owes. The crate has no such counter.
//! - **Consumer threads.** Readers are spread over at most `max_threads`
//!   threads (a new one while fewer exist and all have a subscriber, else the
//!   least loaded); each reads its readers in turn, up to 128 events each,
//!   with `try_recv`, and checks filters at delivery (the ring carries every
//!   event to every reader). Out of events under `WaitStrategy::Park`, a
//!   thread blocks in the crate's `recv_timeout` (1 ms, so that it sees
//!   control commands) on one of its readers — a broadcast reaches every
//!   reader, so any one wakes it; under `Yield`/`BusySpin` it polls.
//!   Publishers use the crate's blocking `broadcast` under `Park` (the crate
//!   spins, then parks until the last reader of the slot wakes it) and retry
//!   `try_broadcast` with a yielding or spinning backoff otherwise.
//! - **Unsubscribe** marks the subscriber removed (its listener is not called
//!   again) and its consumer drops the reader (which tells the crate it left)
//!   when it next reads its commands, discarding its events until then, so
//!   that it never holds the writer back.
//!
//! Config: `capacity` (ring size; the crate adds one slot), `max_threads`
//! (consumer threads), `wait` (as above) and `topics` (filter validation)
//! apply; `producers` does not (the lock serves one or many alike).
//!
//! # Guarantees
//! - **Ordering:** one total order (the ring's), seen by every subscriber,
//!   one call at a time; so per producer, FIFO per subscriber.
//! - **Delivery:** exactly once to every subscriber whose filter accepts the
//!   event (checked at delivery); a new subscriber gets the suffix from its
//!   join point. On unsubscribe, events not yet delivered are discarded.
//!   Listener panics are caught and counted.
//! - **Backpressure:** `publish` blocks while the slowest reader is a ring
//!   behind (holding the mutex, so other producers wait too); `try_publish`
//!   hands the event back when the ring is full or the mutex is taken.
//! - **Allocations per event:** none of ours, but the crate allocates now and
//!   then: a reader that blocks queues its thread handle on an unbounded
//!   channel (a block per 31 waits) and a blocked writer boxes its thread
//!   handle, so zero is not claimed (`tests/allocations.rs` prints the rate);
//!   for `HeavyEvent`, n − 1 deep clones (readers) via `publish` and n via
//!   `publish_clone` for n subscribers, whatever their filters.
//! - **Threads:** at most `BusConfig::max_threads` consumer threads, spawned
//!   by `subscribe` and joined by `shutdown` or `Drop`; plus the crate's own
//!   `bus_unparking` thread, spawned by `new`, which the crate does not let us
//!   join: it ends once the ring is dropped (at `shutdown`/`Drop`). Listeners
//!   run only on the consumer threads.
//!
//! Based on: `bus` 2.4.1 (crates.io, Jon Gjengset): a lock-free bounded
//!   single-producer broadcast ring with per-seat reader counts.

use crate::util::{call_isolated, check_filter, join_spawned};
use crate::wait::Notifier;
use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId, WaitStrategy,
};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use crossbeam_utils::{Backoff, CachePadded};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The `bus` strategy (a peer).
pub struct BusCrate;

impl Strategy for BusCrate {
    const NAME: &'static str = "bus";
    const CAPABILITIES: Capabilities = Capabilities {
        multi_producer: true,
        asynchronous: true,
        lossy: false,
        bounded: true,
        max_subscribers: None,
        dynamic_subscribe: true,
        native_topics: false,
        panics: PanicPolicy::Isolated,
        zero_alloc_small: false,
        zero_alloc_heavy: false,
        peer: true,
        thread_per_subscriber: false,
    };
    type Bus<E: Event, L: Listener<E>> = BusCrateBus<E, L>;
}

/// Most events a consumer delivers from one reader before it moves on.
const BATCH: u64 = 128;

/// The consumer publishes its `passed` count every this many events (and at
/// the end of each batch).
const PASSED_EVERY: u64 = 32;

/// How long a consumer blocks in the crate's `recv_timeout` before it looks
/// at its control channel again.
const IDLE_TIMEOUT: Duration = Duration::from_millis(1);

/// Distinguishes buses, so that a consumer thread knows whose listener it runs.
static NEXT_BUS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The bus whose consumer thread this is (0: none).
    static CONSUMER_OF: Cell<usize> = const { Cell::new(0) };
}

fn on_consumer_of(bus: usize) -> bool {
    CONSUMER_OF.with(|c| c.get() == bus)
}

/// The writer and the count of events it sent, under one mutex.
struct Sending<E> {
    bus: Option<::bus::Bus<E>>,
    sent: u64,
}

/// What the bus and a consumer share about one subscriber.
struct Entry {
    id: u64,
    filter: Filter,
    /// Events sent before its reader was added.
    joined_at: u64,
    shard: Arc<ShardShared>,
    /// Set by `unsubscribe`; the consumer checks it before every call.
    removed: AtomicBool,
    /// Events its reader has received since joining (delivered or filtered).
    passed: CachePadded<AtomicU64>,
}

#[derive(Default)]
struct ShardShared {
    /// Notified when the consumer passed events (for `flush`).
    progress: Notifier,
    /// Waited on by a polling (`Yield`/`BusySpin`) consumer; never notified
    /// because those strategies never sleep.
    idle: Notifier,
    panics: CachePadded<AtomicU64>,
}

/// One subscriber as its consumer holds it.
struct Local<E, L> {
    entry: Arc<Entry>,
    reader: ::bus::BusReader<E>,
    listener: L,
    /// The consumer's own copy of `entry.passed`.
    passed: u64,
}

enum Command<E, L> {
    Add(Local<E, L>),
    /// Drop every subscriber whose `removed` flag is set.
    Sweep,
    /// Deliver what is left (the writer is gone), then exit.
    Shutdown,
}

struct ShardHandle<E, L> {
    shared: Arc<ShardShared>,
    control: Sender<Command<E, L>>,
    thread: Option<JoinHandle<()>>,
    subscribers: usize,
}

struct Registry<E, L> {
    next_id: u64,
    entries: Vec<Arc<Entry>>,
    shards: Vec<ShardHandle<E, L>>,
    closed: bool,
}

/// The `bus` bus.
pub struct BusCrateBus<E: Event, L: Listener<E>> {
    sending: Mutex<Sending<E>>,
    /// `Sending::sent`, readable without the lock (consumers poll it).
    published: Arc<CachePadded<AtomicU64>>,
    registry: Mutex<Registry<E, L>>,
    max_threads: usize,
    topics: usize,
    wait: WaitStrategy,
    uid: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing that can panic runs while these locks are held (clones happen
    // in the readers).
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<E: Event, L: Listener<E>> BusCrateBus<E, L> {
    /// Index of the shard for a new subscriber, spawning one if allowed.
    fn pick_shard(&self, reg: &mut Registry<E, L>) -> usize {
        let least = reg.shards.iter().enumerate().min_by_key(|(_, s)| s.subscribers).map(|(i, s)| (i, s.subscribers));
        match least {
            Some((i, 0)) => i,
            Some((i, _)) if reg.shards.len() >= self.max_threads => i,
            _ => {
                let shared = Arc::new(ShardShared::default());
                let (control, commands) = crossbeam_channel::unbounded();
                let index = reg.shards.len();
                let thread = {
                    let shared = shared.clone();
                    let published = self.published.clone();
                    let (wait, uid) = (self.wait, self.uid);
                    std::thread::Builder::new()
                        .name(format!("buslab-bus-{index}"))
                        .spawn(move || consume(&shared, &commands, &published, wait, uid))
                        .expect("the OS must let the bus spawn its consumer thread")
                };
                reg.shards.push(ShardHandle { shared, control, thread: Some(thread), subscribers: 0 });
                index
            }
        }
    }

    /// Broadcasts under the lock, waiting for room per `BusConfig::wait`.
    fn broadcast(&self, sending: &mut Sending<E>, event: E) {
        let Some(bus) = sending.bus.as_mut() else {
            return;
        };
        if self.wait == WaitStrategy::Park {
            bus.broadcast(event);
        } else {
            let backoff = Backoff::new();
            let mut event = event;
            while let Err(back) = bus.try_broadcast(event) {
                event = back;
                if self.wait == WaitStrategy::Yield {
                    backoff.snooze();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        sending.sent += 1;
        self.published.store(sending.sent, Ordering::Release);
    }

    fn close(&mut self) -> BusStats {
        let reg = self.registry.get_mut().unwrap_or_else(|e| e.into_inner());
        if !reg.closed {
            reg.closed = true;
            // Dropping the writer closes the ring: readers get what is left,
            // then `Disconnected`; the crate's unparking thread ends.
            drop(self.sending.get_mut().unwrap_or_else(|e| e.into_inner()).bus.take());
            for shard in &reg.shards {
                let _ = shard.control.send(Command::Shutdown);
            }
            for shard in &mut reg.shards {
                if let Some(thread) = shard.thread.take() {
                    join_spawned(thread);
                }
            }
            reg.entries.clear();
        }
        stats(reg)
    }
}

fn stats<E, L>(reg: &Registry<E, L>) -> BusStats {
    BusStats { dropped: 0, listener_panics: reg.shards.iter().map(|s| s.shared.panics.load(Ordering::Relaxed)).sum() }
}

impl<E: Event, L: Listener<E>> EventBus for BusCrateBus<E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(BusCrate::NAME)?;
        if config.capacity == usize::MAX {
            return Err(BusError::Config {
                bus: BusCrate::NAME,
                field: "capacity",
                reason: "must be below usize::MAX (the crate adds a slot)".into(),
            });
        }
        Ok(BusCrateBus {
            sending: Mutex::new(Sending { bus: Some(::bus::Bus::new(config.capacity)), sent: 0 }),
            published: Arc::new(CachePadded::new(AtomicU64::new(0))),
            registry: Mutex::new(Registry { next_id: 0, entries: Vec::new(), shards: Vec::new(), closed: false }),
            max_threads: config.max_threads,
            topics: config.topics,
            wait: config.wait,
            uid: NEXT_BUS.fetch_add(1, Ordering::Relaxed),
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(BusCrate::NAME, filter, self.topics)?;
        let mut reg = lock(&self.registry);
        let index = self.pick_shard(&mut reg);
        let id = reg.next_id;
        reg.next_id += 1;
        let (reader, joined_at) = {
            let mut sending = lock(&self.sending);
            let sent = sending.sent;
            (sending.bus.as_mut().expect("present until shutdown").add_rx(), sent)
        };
        let shard = &mut reg.shards[index];
        let entry = Arc::new(Entry {
            id,
            filter,
            joined_at,
            shard: shard.shared.clone(),
            removed: AtomicBool::new(false),
            passed: CachePadded::new(AtomicU64::new(0)),
        });
        shard
            .control
            .send(Command::Add(Local { entry: entry.clone(), reader, listener, passed: 0 }))
            .expect("a consumer thread runs until shutdown");
        shard.subscribers += 1;
        reg.entries.push(entry);
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let mut reg = lock(&self.registry);
        let Some(at) = reg.entries.iter().position(|e| e.id == id.0) else {
            return Err(BusError::UnknownSubscription { bus: BusCrate::NAME, id });
        };
        let entry = reg.entries.remove(at);
        entry.removed.store(true, Ordering::SeqCst);
        let shard = reg
            .shards
            .iter_mut()
            .find(|s| Arc::ptr_eq(&s.shared, &entry.shard))
            .expect("every entry belongs to one of the bus's shards");
        shard.subscribers -= 1;
        shard.control.send(Command::Sweep).expect("a consumer thread runs until shutdown");
        Ok(())
    }

    #[inline]
    fn publish(&self, event: E) {
        let mut sending = lock(&self.sending);
        self.broadcast(&mut sending, event);
    }

    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        let mut sending = match self.sending.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(Full(event)),
        };
        let Some(bus) = sending.bus.as_mut() else {
            return Ok(());
        };
        bus.try_broadcast(event).map_err(Full)?;
        sending.sent += 1;
        self.published.store(sending.sent, Ordering::Release);
        Ok(())
    }

    fn flush(&self) {
        if on_consumer_of(self.uid) {
            // A listener flushing its own bus would wait for itself.
            return;
        }
        let target = self.published.load(Ordering::Acquire);
        let entries = lock(&self.registry).entries.clone();
        for entry in entries {
            entry.shard.progress.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
                entry.removed.load(Ordering::Acquire)
                    || entry.joined_at + entry.passed.load(Ordering::Acquire) >= target
            });
        }
    }

    fn stats(&self) -> BusStats {
        stats(&lock(&self.registry))
    }

    fn shutdown(mut self) -> BusStats {
        self.close()
    }
}

impl<E: Event, L: Listener<E>> Drop for BusCrateBus<E, L> {
    fn drop(&mut self) {
        self.close();
    }
}

/// A consumer thread.
fn consume<E: Event, L: Listener<E>>(
    shared: &ShardShared,
    commands: &Receiver<Command<E, L>>,
    published: &AtomicU64,
    wait: WaitStrategy,
    uid: usize,
) {
    CONSUMER_OF.with(|c| c.set(uid));
    let mut locals: Vec<Local<E, L>> = Vec::new();
    loop {
        let mut shutdown = false;
        loop {
            match commands.try_recv() {
                Ok(Command::Add(local)) => locals.push(local),
                Ok(Command::Sweep) => locals.retain(|l| !l.entry.removed.load(Ordering::Acquire)),
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => shutdown = true,
                Err(TryRecvError::Empty) => break,
            }
        }
        if shutdown {
            // The writer is gone: each reader yields what is left, then
            // `Disconnected`.
            for local in &mut locals {
                while drain(local, shared) > 0 {}
            }
            shared.progress.notify_all();
            return;
        }
        let mut worked = 0;
        for local in &mut locals {
            worked += drain(local, shared);
        }
        if worked > 0 {
            shared.progress.notify_all_cheap();
            continue;
        }
        shared.progress.notify_all();
        if locals.is_empty() {
            // Nothing to read until a command arrives.
            match commands.recv() {
                Ok(Command::Add(local)) => locals.push(local),
                Ok(Command::Sweep) => {}
                Ok(Command::Shutdown) | Err(_) => return,
            }
        } else if wait == WaitStrategy::Park {
            // Any reader receives every broadcast: block on the first one.
            let local = &mut locals[0];
            if let Ok(event) = local.reader.recv_timeout(IDLE_TIMEOUT) {
                deliver(local, &event, shared);
                local.entry.passed.store(local.passed, Ordering::Release);
            }
        } else {
            shared.idle.wait_until(wait, None, || {
                let target = published.load(Ordering::Acquire);
                !commands.is_empty() || locals.iter().any(|l| l.entry.joined_at + l.passed < target)
            });
        }
    }
}

/// Hands one received event to a subscriber (unless removed or filtered out).
#[inline]
fn deliver<E: Event, L: Listener<E>>(local: &mut Local<E, L>, event: &E, shared: &ShardShared) {
    local.passed += 1;
    if !local.entry.removed.load(Ordering::Acquire)
        && local.entry.filter.accepts(event.topic())
        && call_isolated(|| local.listener.on_event(event))
    {
        shared.panics.fetch_add(1, Ordering::Relaxed);
    }
}

/// Delivers up to [`BATCH`] events from one reader; returns how many.
fn drain<E: Event, L: Listener<E>>(local: &mut Local<E, L>, shared: &ShardShared) -> u64 {
    let start = local.passed;
    while local.passed - start < BATCH {
        let Ok(event) = local.reader.try_recv() else {
            break;
        };
        deliver(local, &event, shared);
        if local.passed.is_multiple_of(PASSED_EVERY) {
            local.entry.passed.store(local.passed, Ordering::Release);
        }
    }
    local.entry.passed.store(local.passed, Ordering::Release);
    local.passed - start
}
