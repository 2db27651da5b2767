//! Fan-out over one bounded crossbeam channel per subscriber, drained by at most `max_threads` consumer threads.
//!
//! `publish` reads the subscriber list from an [`ArcSwap`] snapshot (no lock),
//! checks each subscriber's filter and sends a copy of the event into the
//! bounded channel of every subscriber that accepts it: `Clone::clone` for all
//! but the last, which takes the original (so one subscriber costs no clone).
//! Subscribers are spread over *shards*, one consumer thread each (the
//! consumer pool of `pool.rs`, shared with the channel-crate peers); a shard is
//! added (its thread spawned) on subscribe while there are fewer than
//! `max_threads`, so a bus with no more subscribers than threads gives every
//! subscriber a dedicated thread, and 500 subscribers on 2 threads are drained
//! 250 per thread, up to 128 events per subscriber per pass.
//!
//! Wake-up: a consumer with nothing to do blocks *inside crossbeam*, in a
//! (biased) `Select` over its shard's receivers and its control channel (under
//! `WaitStrategy::Park`; crossbeam then spins, yields and parks, the same shape
//! as `wait::Notifier`'s Park). `Yield` and `BusySpin` poll through
//! `Notifier::wait_until`, which never sleeps under them. So the publisher adds
//! nothing to crossbeam's own `send` to wake consumers: crossbeam's sender
//! already checks for a blocked receiver (one load, ordered by its SeqCst tail
//! CAS). The alternative, a per-shard sleeping flag checked by publishers
//! after a `SeqCst` fence (`Notifier::notify_all`), costs the publisher a fence
//! per event; `tests/channel.rs` measures both against raw crossbeam.
//!
//! Counters: per subscriber, `enqueued` (publisher side) and `done` (consumer
//! side: listener returned, panics included) on separate cache lines.
//! `enqueued` is a ticket counter: a publisher takes ticket `t` *before*
//! sending (a plain load + store when `BusConfig::producers == 1`, a
//! `fetch_add` otherwise) and sends only once `t < done + abandoned +
//! capacity` (checked against a publisher-side cached limit, so the common
//! case reads no consumer-written line; the consumer publishes `done` every
//! 32 events and at the end of each batch, so that line does not bounce
//! between the cores per event). So `capacity` bounds the events a
//! subscriber has accepted but not finished (queued or in its listener), a
//! ticket always finds room in the channel, and `flush` waits until `done`
//! reaches the `enqueued` it read at its start. `try_publish` is
//! all-or-nothing across racing producers: it reserves a ticket on every
//! accepting subscriber with a CAS that fails when there is no room; if any
//! fails it abandons the ones it took (`abandoned` counts them) and hands the
//! event back, nothing having been sent. With one producer it just checks
//! every accepting subscriber for room first (consumers only make room).
//!
//! Snapshot reads: `ArcSwap::load` costs two SeqCst read-modify-writes, more
//! than the rest of a one-subscriber publish, so each publishing thread
//! (up to `producers` of them, at most 16) owns a slot in the bus caching an
//! `Arc` of the snapshot, revalidated per publish by one load of a version
//! counter that `subscribe`/`unsubscribe` bump. The cached snapshot is
//! read in place while a `busy` flag of the slot is set (a publish from
//! inside a publish of the same thread, from an event's `clone`, finds it
//! set and reads the `ArcSwap`); moving it out of the slot and back per
//! publish cost 27 Ir/event (`fanout` at 1 subscriber: 365 then 338, the
//! plain `crossbeam_channel` peer 276; callgrind put 28 in the drop of the
//! moved-out snapshot alone). Threads without a slot use
//! `ArcSwap::load`. A slot is given back when its thread exits. A stale
//! cached snapshot keeps unsubscribed entries (their channel buffers)
//! allocated until that thread's next publish, its exit or the bus's drop.
//!
//! Consumer side: a consumer takes each event with crossbeam's `try_recv`,
//! and `drain` is the only caller of `try_recv` for the event type (`leave`
//! discards through `recv_timeout(0)`): with a second caller the compiler
//! kept `try_recv` out of line, a call and the event moved through memory
//! per delivery; inlined, 23 Ir/event less at fan-out 1 (338 then 315,
//! `drain_batch` with `try_recv` 88 then 66 per event in callgrind) and
//! about 22 per delivery at 16 to 500 subscribers.
//!
//! Event copies: each subscriber gets its own `E`. For a `HeavyEvent` (several
//! heap blocks) that is one deep clone per extra subscriber; publishing an
//! `Arc<HeavyEvent>`-like event instead makes each copy one reference-count
//! increment — `tests/channel.rs` (`heavy_vs_arc_heavy`, ignored) prints what
//! that buys on this machine.
//!
//! Config: `capacity` (per-subscriber bound, ≥ 1), `max_threads` (consumer
//! threads, ≥ 1), `wait` (consumers, blocked publishers, `flush`),
//! `producers` (1 selects the single-producer counters; it also sizes the
//! snapshot slots) and `topics` (filter validation) apply.
//!
//! # Guarantees
//! - **Ordering:** per producer, FIFO per subscriber (one channel per
//!   subscriber, drained by one thread, one call at a time); no order across
//!   producers or across subscribers.
//! - **Delivery:** exactly once to every subscriber whose filter accepts the
//!   event (filters are checked at publish: rejected subscribers are not
//!   enqueued). On unsubscribe, events still queued for it are discarded.
//!   Listener panics are caught (`util::call_isolated`), counted, and the
//!   event counts as delivered.
//! - **Backpressure:** `publish` blocks (per `BusConfig::wait`) while an
//!   accepting subscriber holds `capacity` unfinished events (queued or in
//!   its listener); `try_publish` never blocks and is
//!   all-or-nothing: either every accepting subscriber gets the event or none
//!   does and it is handed back in `Full`.
//! - **Allocations per event:** almost none of the bus's own at steady state
//!   (the channels are preallocated arrays), but not exactly zero for
//!   `SmallEvent`: a consumer that parks registers with crossbeam's `Select`,
//!   which now and then allocates (`tests/allocations.rs` prints the rate), so
//!   zero is not claimed; for `HeavyEvent`,
//!   n − 1 deep clones via `publish` and n via `publish_clone` (one clone
//!   plus n − 1) for n accepting subscribers, each clone 7–9 allocations.
//!   Subscribe allocates (channel, snapshot copy).
//! - **Threads:** one consumer thread per shard, at most
//!   `BusConfig::max_threads`, spawned on demand by `subscribe` and joined by
//!   `shutdown` or `Drop`; none for a bus that never had a subscriber.
//!
//! Based on: the "channel bus" of the Go event-bus articles (a buffered
//!   channel per subscriber), built on crossbeam-channel's bounded array flavor
//!   (Vyukov's bounded MPMC queue) and its `Select`.

use crate::pool::{Commands, Consumer, Member, Membership, Pool, Shard, drain_batch};
use crate::util::check_filter;
use crate::wait::Notifier;
use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId, WaitStrategy,
};
use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Select, Sender, TrySendError};
use crossbeam_utils::CachePadded;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// The `channel` strategy.
pub struct Channel;

impl Strategy for Channel {
    const NAME: &'static str = "channel";
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
        peer: false,
        thread_per_subscriber: false,
    };
    type Bus<E: Event, L: Listener<E>> = ChannelBus<E, L>;
}

/// Most publisher slots a bus keeps (see [`PublisherSlots`]).
const MAX_SLOTS: usize = 16;

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's publisher token (0: not assigned yet).
    static TOKEN: Cell<u64> = const { Cell::new(0) };
    /// The publisher slots this thread owns, released when it exits.
    static CLAIMS: RefCell<Claims> = const { RefCell::new(Claims(Vec::new())) };
}

fn thread_token() -> u64 {
    TOKEN.with(|t| match t.get() {
        0 => {
            let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
            t.set(token);
            token
        }
        token => token,
    })
}

/// Lets a thread give its slots back without knowing the event type.
trait ReleaseSlot: Send + Sync {
    fn release(&self, index: usize, token: u64);
}

/// Slots a thread owns: (the bus's slots, index, token).
struct Claims(Vec<(Weak<dyn ReleaseSlot>, usize, u64)>);

impl Drop for Claims {
    fn drop(&mut self) {
        for (slots, index, token) in self.0.drain(..) {
            if let Some(slots) = slots.upgrade() {
                slots.release(index, token);
            }
        }
    }
}

/// A publisher's cached snapshot and the version it was current at.
struct Cached<E> {
    version: u64,
    snapshot: Arc<Vec<Arc<Entry<E>>>>,
}

/// One publisher thread's cache: `publish` revalidates it with one load of
/// the bus's version instead of an `ArcSwap::load` (whose two SeqCst RMWs
/// cost more than the rest of a single-subscriber publish).
struct Slot<E> {
    /// The owning thread's token (0: free).
    owner: AtomicU64,
    /// Set while a publish of the owner reads `cached` in place: a
    /// re-entrant publish (from an event's `clone` or drop) then reads the
    /// `ArcSwap` instead, and nothing replaces the value being read.
    busy: Cell<bool>,
    cached: UnsafeCell<Option<Cached<E>>>,
}

// SAFETY: `busy` and `cached` are only touched by the thread whose token is
// in `owner` (claimed with an Acquire CAS, given back with a Release store
// after the owner's last access), or through `&mut` when the bus is dropped.
// The value (an `Arc` of entries holding `Sender<E>`) may move between
// threads: E: Send.
unsafe impl<E: Send> Sync for Slot<E> {}

/// A snapshot held for one publish: the entries of the calling thread's
/// cached snapshot, read in place (its slot is `busy` until this is
/// dropped), or a guard of the `ArcSwap`.
enum Snapshot<'a, E> {
    Cached { slot: &'a Slot<E>, entries: &'a [Arc<Entry<E>>] },
    Loaded(arc_swap::Guard<Arc<Vec<Arc<Entry<E>>>>>),
}

impl<E> Snapshot<'_, E> {
    #[inline]
    fn entries(&self) -> &[Arc<Entry<E>>] {
        match self {
            Snapshot::Cached { entries, .. } => entries,
            Snapshot::Loaded(guard) => guard,
        }
    }
}

impl<E> Drop for Snapshot<'_, E> {
    #[inline]
    fn drop(&mut self) {
        if let Snapshot::Cached { slot, .. } = self {
            slot.busy.set(false);
        }
    }
}

/// The per-thread snapshot caches of one bus (up to `producers` of them,
/// at most [`MAX_SLOTS`]); a thread without one reads the `ArcSwap`.
struct PublisherSlots<E> {
    slots: Box<[CachePadded<Slot<E>>]>,
}

impl<E: Event> ReleaseSlot for PublisherSlots<E> {
    fn release(&self, index: usize, token: u64) {
        let slot = &self.slots[index];
        if slot.owner.load(Ordering::Relaxed) == token {
            // SAFETY: this thread owns the slot (its token is in `owner`) and
            // is not inside `publish` (it is exiting).
            let cached = unsafe { (*slot.cached.get()).take() };
            drop(cached);
            slot.owner.store(0, Ordering::Release);
        }
    }
}

/// Publisher-written counters of one subscriber (one cache line).
#[derive(Debug, Default)]
struct PubSide {
    /// Tickets taken: events accepted for this subscriber.
    enqueued: AtomicU64,
    /// Cached `done + abandoned + capacity`: tickets below it have room.
    limit: AtomicU64,
    /// Tickets `try_publish` took and gave back (never sent).
    abandoned: AtomicU64,
}

/// What publishers and the consumer share about one subscriber.
struct Entry<E> {
    filter: Filter,
    tx: Sender<E>,
    member: Membership,
    /// Set by the consumer once listener and receiver are dropped.
    gone: AtomicBool,
    pubs: CachePadded<PubSide>,
    /// Events taken off the channel whose listener call returned (or panicked).
    done: CachePadded<AtomicU64>,
}

impl<E: Event> Member for Entry<E> {
    fn membership(&self) -> &Membership {
        &self.member
    }
}

/// One subscriber as its consumer thread holds it.
struct Local<E, L> {
    entry: Arc<Entry<E>>,
    rx: Receiver<E>,
    listener: L,
}

/// The `channel` bus: a bounded crossbeam channel per subscriber.
pub struct ChannelBus<E: Event, L: Listener<E>> {
    snapshot: ArcSwap<Vec<Arc<Entry<E>>>>,
    /// Bumped after every snapshot store.
    version: CachePadded<AtomicU64>,
    slots: Arc<PublisherSlots<E>>,
    pool: Pool<Entry<E>, Consume<E, L>>,
    capacity: usize,
    topics: usize,
    wait: WaitStrategy,
    single_producer: bool,
}

impl<E: Event, L: Listener<E>> ChannelBus<E, L> {
    /// Publishes `entries` as the new snapshot (registry lock held).
    fn install(&self, entries: &[Arc<Entry<E>>]) {
        self.snapshot.store(Arc::new(entries.to_vec()));
        self.version.fetch_add(1, Ordering::Release);
    }

    /// A current snapshot: the calling thread's cached one if it owns a slot
    /// and the version has not moved, else a fresh one.
    #[inline]
    fn snapshot(&self) -> Snapshot<'_, E> {
        let token = thread_token();
        let Some(slot) = self.slot_for(token) else {
            return Snapshot::Loaded(self.snapshot.load());
        };
        if slot.busy.get() {
            // A publish from inside a publish of this thread: the cached
            // snapshot is being read.
            return Snapshot::Loaded(self.snapshot.load());
        }
        slot.busy.set(true);
        let version = self.version.load(Ordering::Acquire);
        let cell = slot.cached.get();
        // SAFETY: this thread owns `slot` (see `Slot`) and has just marked
        // it busy, so no other access to the cell happens until the
        // returned snapshot is dropped.
        let current = matches!(unsafe { &*cell }, Some(cached) if cached.version == version);
        if !current {
            let fresh = Cached {
                version,
                // Stored before `version` was bumped: at least that new.
                snapshot: self.snapshot.load_full(),
            };
            // SAFETY: as above. The old snapshot is dropped after the cell
            // is written (its drop may run an event's drop, which may
            // publish: it finds the slot busy).
            let previous = unsafe { (*cell).replace(fresh) };
            drop(previous);
        }
        // SAFETY: as above; the cell holds `Some` and is not written while
        // the slot is busy, i.e. while the returned borrow lives.
        let entries = unsafe { &(*cell).as_ref().unwrap_unchecked().snapshot[..] };
        Snapshot::Cached { slot, entries }
    }

    /// The slot this thread owns, claiming a free one if needed.
    #[inline]
    fn slot_for(&self, token: u64) -> Option<&Slot<E>> {
        match self.slots.slots.iter().find(|s| s.owner.load(Ordering::Relaxed) == token) {
            Some(slot) => Some(slot),
            None => self.claim(token),
        }
    }

    #[cold]
    fn claim(&self, token: u64) -> Option<&Slot<E>> {
        let (index, slot) = self.slots.slots.iter().enumerate().find(|(_, s)| {
            s.owner.load(Ordering::Relaxed) == 0
                && s.owner.compare_exchange(0, token, Ordering::Acquire, Ordering::Relaxed).is_ok()
        })?;
        let slots: Weak<dyn ReleaseSlot> = Arc::downgrade(&self.slots) as Weak<PublisherSlots<E>>;
        let registered = CLAIMS.try_with(|claims| claims.borrow_mut().0.push((slots, index, token))).is_ok();
        if registered {
            Some(slot)
        } else {
            // The thread is exiting: nobody would give the slot back.
            slot.owner.store(0, Ordering::Release);
            None
        }
    }

    /// Sends to one subscriber, blocking while it holds `capacity` events
    /// not yet delivered.
    #[inline]
    fn send_to(&self, entry: &Entry<E>, event: E) {
        let enqueued = &entry.pubs.enqueued;
        let ticket = if self.single_producer {
            let ticket = enqueued.load(Ordering::Relaxed);
            enqueued.store(ticket + 1, Ordering::Release);
            ticket
        } else {
            enqueued.fetch_add(1, Ordering::Relaxed)
        };
        if ticket >= entry.pubs.limit.load(Ordering::Relaxed) && !self.has_room(entry, ticket) {
            self.send_blocking(entry, event, ticket);
        } else {
            self.send_with_room(entry, event);
        }
    }

    /// Whether `ticket` may send now; refreshes the cached limit.
    fn has_room(&self, entry: &Entry<E>, ticket: u64) -> bool {
        let limit =
            entry.done.load(Ordering::Acquire) + entry.pubs.abandoned.load(Ordering::Acquire) + self.capacity as u64;
        entry.pubs.limit.fetch_max(limit, Ordering::Relaxed);
        ticket < limit
    }

    /// Sends when the ticket guarantees room.
    #[inline]
    fn send_with_room(&self, entry: &Entry<E>, event: E) {
        match entry.tx.try_send(event) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            // Unreachable by the ticket invariant; wait rather than drop.
            Err(TrySendError::Full(event)) => self.send_when_not_full(entry, event),
        }
    }

    /// The slow path: waits (per `BusConfig::wait`) until `ticket` has room,
    /// or the subscriber goes away (then the event is not its to receive).
    #[cold]
    #[inline(never)]
    fn send_blocking(&self, entry: &Entry<E>, event: E, ticket: u64) {
        entry.member.shard.progress.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
            entry.member.is_removed() || self.has_room(entry, ticket)
        });
        if !entry.member.is_removed() {
            self.send_with_room(entry, event);
        }
    }

    /// Defensive: waits for the channel itself to have room.
    #[cold]
    #[inline(never)]
    fn send_when_not_full(&self, entry: &Entry<E>, mut event: E) {
        loop {
            entry.member.shard.progress.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
                entry.member.is_removed() || !entry.tx.is_full()
            });
            if entry.member.is_removed() {
                return;
            }
            match entry.tx.try_send(event) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => event = back,
            }
        }
    }

    /// Takes a ticket on `entry` if it has room now (several producers).
    fn reserve(&self, entry: &Entry<E>) -> bool {
        let enqueued = &entry.pubs.enqueued;
        let mut ticket = enqueued.load(Ordering::Relaxed);
        loop {
            if ticket >= entry.pubs.limit.load(Ordering::Relaxed) && !self.has_room(entry, ticket) {
                return false;
            }
            match enqueued.compare_exchange_weak(ticket, ticket + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => ticket = now,
            }
        }
    }

    /// Sends `event` to every accepting subscriber of `snapshot`, cloning for
    /// all but the last; `send` does the sending.
    #[inline]
    fn fan_out(snapshot: &[Arc<Entry<E>>], event: E, mut send: impl FnMut(&Entry<E>, E)) {
        let topic = event.topic();
        let mut pending: Option<&Entry<E>> = None;
        for entry in snapshot {
            if entry.filter.accepts(topic) {
                if let Some(previous) = pending {
                    send(previous, event.clone());
                }
                pending = Some(entry);
            }
        }
        if let Some(last) = pending {
            send(last, event);
        }
    }

    /// `try_publish` on one snapshot: all accepting subscribers or none.
    fn try_fan_out(&self, snapshot: &[Arc<Entry<E>>], event: E) -> Result<(), Full<E>> {
        let topic = event.topic();
        let wanted = |e: &Arc<Entry<E>>| e.filter.accepts(topic) && !e.member.is_removed();
        if self.single_producer {
            // No other publisher takes tickets, and consumers only make
            // room: a subscriber with room keeps it until we send.
            let full = |e: &Arc<Entry<E>>| {
                let ticket = e.pubs.enqueued.load(Ordering::Relaxed);
                ticket >= e.pubs.limit.load(Ordering::Relaxed) && !self.has_room(e, ticket)
            };
            if snapshot.iter().filter(|e| wanted(e)).any(full) {
                return Err(Full(event));
            }
        } else {
            for (at, entry) in snapshot.iter().enumerate() {
                if wanted(entry) && !self.reserve(entry) {
                    for taken in snapshot[..at].iter().filter(|e| wanted(e)) {
                        taken.pubs.abandoned.fetch_add(1, Ordering::Release);
                        taken.member.shard.progress.notify_all();
                    }
                    return Err(Full(event));
                }
            }
        }
        Self::fan_out(snapshot, event, |entry, event| {
            if entry.member.is_removed() {
                return;
            }
            if self.single_producer {
                self.send_to(entry, event);
            } else {
                self.send_with_room(entry, event);
            }
        });
        Ok(())
    }

    fn close(&mut self) -> BusStats {
        let stats = self.pool.close();
        self.snapshot.store(Arc::new(Vec::new()));
        stats
    }
}

impl<E: Event, L: Listener<E>> EventBus for ChannelBus<E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(Channel::NAME)?;
        Ok(ChannelBus {
            snapshot: ArcSwap::from_pointee(Vec::new()),
            version: CachePadded::new(AtomicU64::new(0)),
            slots: Arc::new(PublisherSlots {
                slots: (0..config.producers.clamp(1, MAX_SLOTS))
                    .map(|_| {
                        CachePadded::new(Slot {
                            owner: AtomicU64::new(0),
                            busy: Cell::new(false),
                            cached: UnsafeCell::new(None),
                        })
                    })
                    .collect(),
            }),
            pool: Pool::new(Channel::NAME, config.max_threads, Consume { wait: config.wait, _types: PhantomData }),
            capacity: config.capacity,
            topics: config.topics,
            wait: config.wait,
            single_producer: config.producers == 1,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(Channel::NAME, filter, self.topics)?;
        let id = self.pool.subscribe(
            |member| {
                let (tx, rx) = crossbeam_channel::bounded(self.capacity);
                let entry = Arc::new(Entry {
                    filter,
                    tx,
                    member,
                    gone: AtomicBool::new(false),
                    pubs: CachePadded::new(PubSide {
                        limit: AtomicU64::new(self.capacity as u64),
                        ..PubSide::default()
                    }),
                    done: CachePadded::new(AtomicU64::new(0)),
                });
                (entry.clone(), Local { entry, rx, listener })
            },
            |entries| self.install(entries),
        );
        Ok(id)
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let entry = self.pool.unsubscribe(id, |entries| self.install(entries))?;
        // From a listener (a consumer thread of this bus), waiting could wait
        // for this very thread: the `removed` flag alone then stops new calls.
        if !self.pool.on_consumer_thread() {
            entry.member.shard.progress.wait_until(self.wait, None, || entry.gone.load(Ordering::Acquire));
        }
        Ok(())
    }

    #[inline]
    fn publish(&self, event: E) {
        let snapshot = self.snapshot();
        Self::fan_out(snapshot.entries(), event, |entry, event| self.send_to(entry, event));
    }

    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        let snapshot = self.snapshot();
        self.try_fan_out(snapshot.entries(), event)
    }

    fn flush(&self) {
        let snapshot = self.snapshot.load_full();
        let own_thread = self.pool.on_consumer_thread();
        for entry in snapshot.iter() {
            if own_thread {
                // A listener flushing its own bus would wait for itself.
                break;
            }
            let target = entry.pubs.enqueued.load(Ordering::Acquire);
            entry.member.shard.progress.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
                entry.member.is_removed()
                    || entry.done.load(Ordering::Acquire) + entry.pubs.abandoned.load(Ordering::Acquire) >= target
            });
        }
    }

    fn stats(&self) -> BusStats {
        self.pool.stats()
    }

    fn shutdown(mut self) -> BusStats {
        self.close()
    }
}

impl<E: Event, L: Listener<E>> Drop for ChannelBus<E, L> {
    fn drop(&mut self) {
        self.close();
    }
}

/// The channel bus's half of the consumer pool.
struct Consume<E, L> {
    wait: WaitStrategy,
    _types: PhantomData<fn(E, L)>,
}

impl<E, L> Clone for Consume<E, L> {
    fn clone(&self) -> Self {
        Consume { wait: self.wait, _types: PhantomData }
    }
}

impl<E: Event, L: Listener<E>> Consumer for Consume<E, L> {
    type Local = Local<E, L>;

    fn member(local: &Local<E, L>) -> &Membership {
        &local.entry.member
    }

    /// Delivers up to [`BATCH`](crate::pool::BATCH) queued events to one subscriber; returns how many.
    fn drain(&self, local: &mut Local<E, L>, shard: &Shard) -> u64 {
        drain(local, shard)
    }

    /// Delivers until a command arrives, blocking in crossbeam's `Select`
    /// (under `Park`) or polling when idle.
    fn serve(&self, locals: &mut [Local<E, L>], commands: &Commands<Local<E, L>>, shard: &Shard) {
        let locals = &*locals;
        let mut select = (self.wait == WaitStrategy::Park).then(|| {
            let mut select = Select::new_biased();
            for local in locals {
                select.recv(&local.rx);
            }
            select.recv(commands);
            select
        });
        loop {
            let mut worked = false;
            for local in locals {
                worked |= drain(local, shard) > 0;
            }
            if !commands.is_empty() {
                shard.progress.notify_all();
                return;
            }
            if worked {
                shard.progress.notify_all_cheap();
                continue;
            }
            // Idle: a full notification (with its fence) for whoever waits on
            // `done`, then block until a channel or the control channel is ready.
            shard.progress.notify_all();
            match &mut select {
                Some(select) => {
                    select.ready();
                }
                None => shard
                    .doorbell
                    .wait_until(self.wait, None, || !commands.is_empty() || locals.iter().any(|l| !l.rx.is_empty())),
            }
        }
    }

    /// Drops a removed subscriber (listener after its last call, queued
    /// events with the receiver) and tells `unsubscribe` it is gone.
    fn leave(&self, local: Local<E, L>) {
        let entry = local.entry.clone();
        // Discard what is queued now; later sends see a disconnected
        // channel once the receiver is dropped. Through `recv_timeout`, not
        // `try_recv`: `drain` stays the only caller of `try_recv` for this
        // event type, which lets the compiler inline it into the delivery
        // loop (see "Consumer side" in the module doc). Only while not
        // empty: on an empty channel `recv_timeout` backs off (spins and
        // yields) before it reports the timeout.
        while !local.rx.is_empty() && local.rx.recv_timeout(std::time::Duration::ZERO).is_ok() {}
        drop(local);
        entry.gone.store(true, Ordering::Release);
    }
}

/// Delivers up to [`BATCH`](crate::pool::BATCH) queued events to one subscriber; returns how many.
#[inline]
fn drain<E: Event, L: Listener<E>>(local: &Local<E, L>, shard: &Shard) -> u64 {
    let entry = &*local.entry;
    drain_batch(
        &entry.done,
        shard,
        |_| if entry.member.is_removed() { None } else { local.rx.try_recv().ok() },
        |event| local.listener.on_event(event),
    )
}
