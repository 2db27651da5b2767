//! The per-subscriber fan-out that the `flume`, `kanal` and `std_mpsc` peers
//! share: one bounded channel *of the peer crate* per subscriber, drained by
//! at most `max_threads` consumer threads. Not a bus itself: each peer's
//! module doc states its guarantees; this one says how the wrapping works.
//!
//! This is the fan-out an engineer writes around a channel crate, kept as
//! plain as the [`EventBus`] contract allows, so that what differs between
//! the three peers is the crate:
//!
//! - **Publish.** The subscriber list is an [`ArcSwap`] snapshot, loaded once
//!   per publish (two SeqCst read-modify-writes; our `channel` bus caches it
//!   per publishing thread instead, so its figures do not pay this). Each
//!   subscriber whose filter accepts the event gets a copy (`clone` for all but
//!   the last, which takes the original) sent into its channel with the
//!   crate's `try_send`; if that finds the channel full, the publisher wakes
//!   the consumer and, under `WaitStrategy::Park`, blocks in the crate's own
//!   `send` (the crate parks and wakes it); under `Yield`/`BusySpin` it
//!   retries `try_send` with a yielding or spinning backoff.
//! - **Counters (ours).** Per subscriber, `enqueued` (publisher side, bumped
//!   after each send: a plain store with one producer, a `fetch_add` with
//!   several), `received` (consumer side, stored per event taken off the
//!   channel) and `done` (consumer side, listener returned; stored every 32
//!   events and at the end of each batch), on separate cache lines. The crates cannot say when a
//!   listener has *finished* an event, which `flush` must know; the counters
//!   also give the consumers something to wait on when they serve several
//!   subscribers.
//! - **Consumers.** Subscribers are spread over shards, one thread each: a new
//!   shard while fewer than `max_threads` exist and every shard has a
//!   subscriber, else the least loaded one. A consumer delivers up to 128
//!   events per subscriber in turn with the crate's `try_recv`. When it runs
//!   out and serves one subscriber under `Park`, it blocks in the crate's
//!   `recv_timeout` (1 ms, so that it sees control commands); otherwise it
//!   waits on a `wait::Notifier` doorbell that publishers ring cheaply (one
//!   relaxed load, no fence) after each send, re-checking every 200 µs
//!   (`Notifier::CHEAP_TIMEOUT`) in case a ring was missed; `flush` and a
//!   publisher that found a channel full ring it with a fence.
//! - **`try_publish`** checks first that every accepting subscriber's channel
//!   has room (by the counters: sent minus taken off, as `std` has no
//!   `is_full`), and hands the event back if one has not; then sends. With one producer that check is
//!   exact (consumers only make room), so it is all-or-nothing and never
//!   blocks. With several producers another one can take the last slot
//!   between the check and the send: the event, already with some
//!   subscribers, cannot be handed back, so that send waits for room.
//! - **Unsubscribe** marks the subscriber removed (its consumer skips its
//!   listener from then on and discards what is queued) and removes it from
//!   the snapshot; its consumer drops the receiver and the listener when it
//!   next reads its commands. It does not wait for that.

use crate::util::{call_isolated, check_filter, join_spawned};
use crate::wait::Notifier;
use crate::{BusConfig, BusError, BusStats, Event, EventBus, Filter, Full, Listener, SubscriptionId, WaitStrategy};
use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use crossbeam_utils::{Backoff, CachePadded};
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// One channel crate, as the fan-out uses it: a bounded channel with
/// blocking and non-blocking ends.
pub trait Queue<E>: Send + Sync + 'static {
    /// The stable name of the bus built on it (errors name it).
    const BUS: &'static str;
    /// The sending half; publishers share it.
    type Tx: Send + Sync + 'static;
    /// The receiving half; one consumer thread owns it.
    type Rx: Send + 'static;
    /// A channel holding at most `capacity` (≥ 1) events.
    fn bounded(capacity: usize) -> (Self::Tx, Self::Rx);
    /// Sends, blocking *in the crate* while the channel is full. `Err` when
    /// the receiver is gone (the event is then not anybody's to receive).
    fn send(tx: &Self::Tx, event: E) -> Result<(), Gone>;
    /// Sends if there is room now.
    fn try_send(tx: &Self::Tx, event: E) -> Result<(), TrySend<E>>;
    /// Receives if an event is queued.
    fn try_recv(rx: &Self::Rx) -> Recv<E>;
    /// Receives, blocking in the crate for at most `timeout`.
    fn recv_timeout(rx: &Self::Rx, timeout: Duration) -> Recv<E>;
}

/// The receiver of a channel is gone.
#[derive(Debug)]
pub struct Gone;

/// Why [`Queue::try_send`] did not send.
pub enum TrySend<E> {
    /// The channel is full; the event is handed back.
    Full(E),
    /// The receiver is gone.
    Gone,
}

/// What a receive found.
pub enum Recv<E> {
    /// An event.
    Event(E),
    /// Nothing queued (or the timeout passed).
    Empty,
    /// Every sender is gone and nothing is queued.
    Gone,
}

/// Most events a consumer delivers to one subscriber before it moves on.
const BATCH: u64 = 128;

/// The consumer publishes `done` every this many events (and at the end of
/// each batch), so that its cache line does not bounce per event.
const DONE_EVERY: u64 = 32;

/// How long a consumer serving one subscriber blocks in the crate's
/// `recv_timeout` before it looks at its control channel again.
const IDLE_TIMEOUT: Duration = Duration::from_millis(1);

/// Distinguishes buses, so that a consumer thread knows whose listener it runs.
static NEXT_BUS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The fan-out bus whose consumer thread this is (0: none).
    static CONSUMER_OF: Cell<usize> = const { Cell::new(0) };
}

fn on_consumer_of(bus: usize) -> bool {
    CONSUMER_OF.with(|c| c.get() == bus)
}

/// What publishers and the consumer share about one subscriber.
struct Entry<Q: Queue<E>, E> {
    id: u64,
    filter: Filter,
    tx: Q::Tx,
    shard: Arc<ShardShared>,
    /// Set by `unsubscribe`; the consumer checks it before every call.
    removed: AtomicBool,
    /// Events sent into the channel (publisher side).
    enqueued: CachePadded<AtomicU64>,
    /// Events taken off the channel (consumer side, stored per event): with
    /// `enqueued`, how full the channel is, which `std` cannot say.
    received: CachePadded<AtomicU64>,
    /// Events taken off the channel whose listener returned, panicked or was
    /// skipped because the subscriber was removed (consumer side).
    done: CachePadded<AtomicU64>,
    _event: PhantomData<fn(E)>,
}

/// What a shard's consumer shares with everyone else.
#[derive(Default)]
struct ShardShared {
    /// The consumer sleeps here when it has nothing to deliver.
    doorbell: Notifier,
    /// The consumer notifies here when it finished events (for `flush`).
    progress: Notifier,
    panics: CachePadded<AtomicU64>,
}

/// One subscriber as its consumer thread holds it.
struct Local<Q: Queue<E>, E, L> {
    entry: Arc<Entry<Q, E>>,
    rx: Q::Rx,
    listener: L,
}

enum Command<Q: Queue<E>, E, L> {
    Add(Local<Q, E, L>),
    /// Drop every subscriber whose `removed` flag is set.
    Sweep,
    /// Deliver everything queued, then exit.
    Shutdown,
}

struct ShardHandle<Q: Queue<E>, E, L> {
    shared: Arc<ShardShared>,
    control: Sender<Command<Q, E, L>>,
    thread: Option<JoinHandle<()>>,
    subscribers: usize,
}

struct Registry<Q: Queue<E>, E, L> {
    next_id: u64,
    entries: Vec<Arc<Entry<Q, E>>>,
    shards: Vec<ShardHandle<Q, E, L>>,
    closed: bool,
}

/// A fan-out bus over one bounded channel of crate `Q` per subscriber.
pub struct FanoutBus<Q: Queue<E>, E: Event, L: Listener<E>> {
    snapshot: ArcSwap<Vec<Arc<Entry<Q, E>>>>,
    registry: Mutex<Registry<Q, E, L>>,
    capacity: u64,
    max_threads: usize,
    topics: usize,
    wait: WaitStrategy,
    single_producer: bool,
    uid: usize,
}

impl<Q: Queue<E>, E: Event, L: Listener<E>> FanoutBus<Q, E, L> {
    fn registry(&self) -> MutexGuard<'_, Registry<Q, E, L>> {
        // Nothing that can panic runs while the lock is held.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Index of the shard for a new subscriber, spawning one if allowed.
    fn pick_shard(&self, reg: &mut Registry<Q, E, L>) -> usize {
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
                    let (wait, uid) = (self.wait, self.uid);
                    std::thread::Builder::new()
                        .name(format!("buslab-{}-{index}", Q::BUS))
                        .spawn(move || consume::<Q, E, L>(&shared, &commands, wait, uid))
                        .expect("the OS must let the bus spawn its consumer thread")
                };
                reg.shards.push(ShardHandle { shared, control, thread: Some(thread), subscribers: 0 });
                index
            }
        }
    }

    /// Counts one event sent to `entry` and rings its consumer's doorbell.
    #[inline]
    fn sent(&self, entry: &Entry<Q, E>) {
        if self.single_producer {
            let n = entry.enqueued.load(Ordering::Relaxed);
            entry.enqueued.store(n + 1, Ordering::Release);
        } else {
            entry.enqueued.fetch_add(1, Ordering::Release);
        }
        entry.shard.doorbell.notify_all_cheap();
    }

    /// Sends one copy, waiting (per `BusConfig::wait`) while the channel is full.
    #[inline]
    fn send_to(&self, entry: &Entry<Q, E>, event: E) {
        match Q::try_send(&entry.tx, event) {
            Ok(()) => self.sent(entry),
            Err(TrySend::Gone) => {}
            Err(TrySend::Full(event)) => self.send_when_full(entry, event),
        }
    }

    #[cold]
    #[inline(never)]
    fn send_when_full(&self, entry: &Entry<Q, E>, mut event: E) {
        // A consumer asleep with a missed cheap ring would otherwise sleep a
        // timeout out before making room.
        entry.shard.doorbell.notify_all();
        if self.wait == WaitStrategy::Park {
            if Q::send(&entry.tx, event).is_ok() {
                self.sent(entry);
            }
            return;
        }
        let backoff = Backoff::new();
        loop {
            if self.wait == WaitStrategy::Yield {
                backoff.snooze();
            } else {
                std::hint::spin_loop();
            }
            match Q::try_send(&entry.tx, event) {
                Ok(()) => return self.sent(entry),
                Err(TrySend::Gone) => return,
                Err(TrySend::Full(back)) => event = back,
            }
        }
    }

    /// Sends `event` to every accepting subscriber, cloning for all but the last.
    #[inline]
    fn fan_out(&self, entries: &[Arc<Entry<Q, E>>], event: E) {
        let topic = event.topic();
        let mut pending: Option<&Entry<Q, E>> = None;
        for entry in entries {
            if entry.filter.accepts(topic) {
                if let Some(previous) = pending {
                    self.send_to(previous, event.clone());
                }
                pending = Some(entry);
            }
        }
        if let Some(last) = pending {
            self.send_to(last, event);
        }
    }

    fn close(&mut self) -> BusStats {
        let reg = self.registry.get_mut().unwrap_or_else(|e| e.into_inner());
        if !reg.closed {
            reg.closed = true;
            for shard in &reg.shards {
                // The consumer holds its receivers until it has seen this.
                let _ = shard.control.send(Command::Shutdown);
                shard.shared.doorbell.notify_all();
            }
            for shard in &mut reg.shards {
                if let Some(thread) = shard.thread.take() {
                    join_spawned(thread);
                }
            }
            self.snapshot.store(Arc::new(Vec::new()));
            reg.entries.clear();
        }
        stats(reg)
    }
}

fn stats<Q: Queue<E>, E, L>(reg: &Registry<Q, E, L>) -> BusStats {
    BusStats { dropped: 0, listener_panics: reg.shards.iter().map(|s| s.shared.panics.load(Ordering::Relaxed)).sum() }
}

impl<Q: Queue<E>, E: Event, L: Listener<E>> EventBus for FanoutBus<Q, E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(Q::BUS)?;
        Ok(FanoutBus {
            snapshot: ArcSwap::from_pointee(Vec::new()),
            registry: Mutex::new(Registry { next_id: 0, entries: Vec::new(), shards: Vec::new(), closed: false }),
            capacity: config.capacity as u64,
            max_threads: config.max_threads,
            topics: config.topics,
            wait: config.wait,
            single_producer: config.producers == 1,
            uid: NEXT_BUS.fetch_add(1, Ordering::Relaxed),
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(Q::BUS, filter, self.topics)?;
        let mut reg = self.registry();
        let index = self.pick_shard(&mut reg);
        let id = reg.next_id;
        reg.next_id += 1;
        let capacity = usize::try_from(self.capacity).expect("came from a usize");
        let (tx, rx) = Q::bounded(capacity);
        let shard = &mut reg.shards[index];
        let entry = Arc::new(Entry {
            id,
            filter,
            tx,
            shard: shard.shared.clone(),
            removed: AtomicBool::new(false),
            enqueued: CachePadded::new(AtomicU64::new(0)),
            received: CachePadded::new(AtomicU64::new(0)),
            done: CachePadded::new(AtomicU64::new(0)),
            _event: PhantomData,
        });
        shard
            .control
            .send(Command::Add(Local { entry: entry.clone(), rx, listener }))
            .expect("a consumer thread runs until shutdown");
        shard.shared.doorbell.notify_all();
        shard.subscribers += 1;
        reg.entries.push(entry);
        self.snapshot.store(Arc::new(reg.entries.clone()));
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let mut reg = self.registry();
        let Some(at) = reg.entries.iter().position(|e| e.id == id.0) else {
            return Err(BusError::UnknownSubscription { bus: Q::BUS, id });
        };
        let entry = reg.entries.remove(at);
        self.snapshot.store(Arc::new(reg.entries.clone()));
        entry.removed.store(true, Ordering::SeqCst);
        let shard = reg
            .shards
            .iter_mut()
            .find(|s| Arc::ptr_eq(&s.shared, &entry.shard))
            .expect("every entry belongs to one of the bus's shards");
        shard.subscribers -= 1;
        shard.control.send(Command::Sweep).expect("a consumer thread runs until shutdown");
        shard.shared.doorbell.notify_all();
        Ok(())
    }

    #[inline]
    fn publish(&self, event: E) {
        let snapshot = self.snapshot.load();
        self.fan_out(&snapshot, event);
    }

    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        let snapshot = self.snapshot.load();
        let topic = event.topic();
        let full = snapshot.iter().any(|e| {
            e.filter.accepts(topic)
                && !e.removed.load(Ordering::Acquire)
                && e.enqueued.load(Ordering::Acquire).saturating_sub(e.received.load(Ordering::Acquire))
                    >= self.capacity
        });
        if full {
            return Err(Full(event));
        }
        self.fan_out(&snapshot, event);
        Ok(())
    }

    fn flush(&self) {
        if on_consumer_of(self.uid) {
            // A listener flushing its own bus would wait for itself.
            return;
        }
        let snapshot = self.snapshot.load_full();
        for entry in snapshot.iter() {
            let target = entry.enqueued.load(Ordering::Acquire);
            entry.shard.doorbell.notify_all();
            entry.shard.progress.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
                entry.removed.load(Ordering::Acquire) || entry.done.load(Ordering::Acquire) >= target
            });
        }
    }

    fn stats(&self) -> BusStats {
        stats(&self.registry())
    }

    fn shutdown(mut self) -> BusStats {
        self.close()
    }
}

impl<Q: Queue<E>, E: Event, L: Listener<E>> Drop for FanoutBus<Q, E, L> {
    fn drop(&mut self) {
        self.close();
    }
}

/// A shard's consumer thread.
fn consume<Q: Queue<E>, E: Event, L: Listener<E>>(
    shared: &ShardShared,
    commands: &Receiver<Command<Q, E, L>>,
    wait: WaitStrategy,
    uid: usize,
) {
    CONSUMER_OF.with(|c| c.set(uid));
    let mut locals: Vec<Local<Q, E, L>> = Vec::new();
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
            // No publisher is left (shutdown and drop take the bus by value).
            while locals.iter().map(|l| drain(l, shared)).sum::<u64>() > 0 {}
            shared.progress.notify_all();
            return;
        }
        let worked: u64 = locals.iter().map(|l| drain(l, shared)).sum();
        if worked > 0 {
            shared.progress.notify_all_cheap();
            continue;
        }
        // Idle: a full notification for whoever waits on `done`, then wait.
        shared.progress.notify_all();
        match locals.as_slice() {
            [] => {
                // Nothing to deliver until a command arrives.
                if let Ok(command) = commands.recv() {
                    match command {
                        Command::Add(local) => locals.push(local),
                        Command::Sweep => {}
                        Command::Shutdown => return,
                    }
                } else {
                    return;
                }
            }
            [local] if wait == WaitStrategy::Park && commands.is_empty() => {
                // One subscriber: block in the crate's own receive.
                if let Recv::Event(event) = Q::recv_timeout(&local.rx, IDLE_TIMEOUT) {
                    deliver_one(local, event, shared);
                }
            }
            _ => shared.doorbell.wait_until(wait, Some(Notifier::CHEAP_TIMEOUT), || {
                !commands.is_empty()
                    || locals
                        .iter()
                        .any(|l| l.entry.enqueued.load(Ordering::Acquire) > l.entry.done.load(Ordering::Relaxed))
            }),
        }
    }
}

/// Delivers one event received outside [`drain`].
fn deliver_one<Q: Queue<E>, E: Event, L: Listener<E>>(local: &Local<Q, E, L>, event: E, shared: &ShardShared) {
    let entry = &*local.entry;
    entry.received.fetch_add(1, Ordering::Release);
    if !entry.removed.load(Ordering::Acquire) && call_isolated(|| local.listener.on_event(&event)) {
        shared.panics.fetch_add(1, Ordering::Relaxed);
    }
    entry.done.fetch_add(1, Ordering::Release);
}

/// Delivers up to [`BATCH`] queued events to one subscriber (discarding them
/// if it was removed); returns how many it took.
fn drain<Q: Queue<E>, E: Event, L: Listener<E>>(local: &Local<Q, E, L>, shared: &ShardShared) -> u64 {
    let entry = &*local.entry;
    let start = entry.done.load(Ordering::Relaxed);
    let end = start + BATCH;
    let mut done = start;
    loop {
        let panicked = call_isolated(|| {
            while done < end {
                let Recv::Event(event) = Q::try_recv(&local.rx) else {
                    break;
                };
                // Counted before the call, so that a panicking call counts.
                done += 1;
                entry.received.store(done, Ordering::Release);
                if !entry.removed.load(Ordering::Acquire) {
                    local.listener.on_event(&event);
                }
                if done.is_multiple_of(DONE_EVERY) {
                    entry.done.store(done, Ordering::Release);
                }
            }
        });
        entry.done.store(done, Ordering::Release);
        if !panicked {
            return done - start;
        }
        shared.panics.fetch_add(1, Ordering::Relaxed);
    }
}
