//! A fixed-capacity array of listener slots plus an atomic count; publish calls every listener in-line on the publisher's thread.
//!
//! # Guarantees
//! - **Ordering:** each subscriber receives a producer's events in publish
//!   order, on that producer's thread; events of different producers may
//!   reach one listener concurrently.
//! - **Delivery:** exactly once to every subscriber whose filter accepts the
//!   event and that was present for the whole publish; `publish` returns
//!   after every listener has returned, so `flush` is a no-op.
//! - **Backpressure:** none needed: the publisher runs the listeners, so a
//!   slow listener slows its publisher; `try_publish` never refuses.
//! - **Allocations per event:** zero, for any event type (events are passed by
//!   reference; pinning the epoch does not allocate). `subscribe` allocates
//!   nothing (the listener moves into its slot); `unsubscribe` allocates one
//!   deferred-destruction record.
//! - **Threads:** none.
//!
//! Based on: the fixed-size listener array of the Go event-bus articles
//! (64 slots and an atomic count; here 1024 so that 500-listener fan-out
//! fits), with crossbeam-epoch reclamation replacing Go's garbage collector.
//!
//! Applicable [`BusConfig`] fields: `topics` (filters are checked against it).
//! `capacity`, `wait`, `max_threads` and `producers` do not apply.
//!
//! # Design
//! The array has [`SLOTS`] slots allocated once. `publish` pins the epoch
//! once, loads the shape word (the high-water length and two flags), and
//! walks the slots calling each live one — no lock, no allocation, no
//! queue. Subscribers serialise among themselves on a mutex that publishers
//! never touch, so publishers are never blocked. Each choice below was
//! measured at `fanout` with 500 listeners, in instructions per listener
//! call (callgrind, whole harness included; the `null` reference then costs
//! about 23):
//! - **Listeners stored in place.** A slot is a state word followed by the
//!   listener itself, not a pointer to a boxed entry: a delivery reads the
//!   state and then the listener from the same line, with no dependent load
//!   (the boxed entries cost a load, a null check and a chase more per call,
//!   and a cache line elsewhere). In place is possible because a slot never
//!   moves: `unsubscribe` marks it retired (publishers then skip it), and
//!   the listener is dropped in place, and the slot freed for reuse, only
//!   once crossbeam-epoch says that no publish that could have seen it live
//!   is still running. Until then the slot is neither live nor free: a
//!   `subscribe` that finds every slot live or retired (a full array just
//!   after an unsubscribe) waits for the publishes that could still use a
//!   retired listener to return, like an RCU grace period — unless it is
//!   called from inside a publish (a listener), where that wait could not
//!   end, and it reports the limit instead.
//! - **The filter lives in the state word.** A live slot's state is
//!   `ALL` or one topic's own value, so one load tells both
//!   "occupied" and "accepts this topic".
//! - **One shape word.** After every change of a slot's state, the writer
//!   (under its mutex) recomputes one word from the states and stores it:
//!   the length (one past the highest live slot), `HOLES` (a slot below it
//!   is free or retired) and `FILTERED` (a live subscriber filters by
//!   topic). One word, so a publish never pairs a length with flags of
//!   another moment. Writers pay a scan of the slots; publishers one load.
//!   `subscribe` stores the shape that covers its slot *before* the slot's
//!   state goes live, never after: a publish that read an older, longer
//!   shape (with a hole, so it checks states) can see the state live and
//!   call the new listener; every later publish of its thread then reads
//!   the covering shape or a newer one. Stored after, an unsubscribe past
//!   the new slot could have shortened the length in between: the next
//!   publish read the shorter shape and skipped the subscriber it had just
//!   reached, a gap in its stream (conformance `stress_churn` failed 5 of
//!   40 debug runs that way, "expected seq 1, got 9"; the loom model
//!   `a_subscriber_reached_through_an_older_longer_shape_gets_every_later_publish`
//!   finds it). A publish that reads the covering shape before the state
//!   is stored may call the listener already: it was written before.
//! - **No state check while every slot is live.** A publish that reads
//!   neither flag calls every listener below the length without looking at
//!   its state (at 500 listeners, the load, compare and branch of each
//!   call). This is sound because a shape is stored after the listeners
//!   it covers were written and, on `unsubscribe`, after the state is
//!   retired and before the listener's drop is deferred: a publish that read a shape in which a slot was live pinned
//!   the epoch before that deferral, so the listener outlives its call even
//!   if it was retired meanwhile (a call in flight, as the contract allows),
//!   and its slot cannot be freed and taken by another subscriber. The loom
//!   model (`tests/loom_fixed_array.rs`) checks this, and fails if the
//!   shape is stored after the deferral or a publish drops its guard early.
//! - **The filter check is free when nothing filters.** A publish that
//!   reads `HOLES` without `FILTERED` runs a loop whose only test is
//!   `state == ALL`, the test it needs anyway to skip free and retired
//!   slots. With `FILTERED` the loop also compares the state with the
//!   event's topic. A filtered subscriber added during a publish that read
//!   no `FILTERED` misses that publish (no loop without that flag calls a
//!   topic slot), as the contract allows for a subscriber not present for
//!   the whole publish; once a publish has reached it, the shape covering
//!   it (with `FILTERED`) was stored before the state it saw, and every
//!   later publish of that thread reads that shape or a newer one, so the
//!   stream it receives has no gap.
//! - **Static dispatch.** The listener type is the bus's type parameter, so
//!   a statically typed listener (the harness's, a closure type) is called
//!   directly and inlined into the publish loop; only a listener type that
//!   is itself a trait object dispatches dynamically.
//! - **The loop keeps the event in registers.** Delivery goes through
//!   `util::deliver_each_isolated`, whose loop receives the event as a
//!   function argument and keeps its position in a register, so that the
//!   listener's stores do not force the event's fields to be reloaded for
//!   every listener (see that function).
//! - **Panics** are caught by one `catch_unwind` around the whole loop,
//!   re-entered after the slot that panicked: no cost on the happy path.
//!
//! Measured (fat LTO, callgrind, `fanout` at 500): 34.8 Ir per listener call
//! with boxed entries, 28.8 with the above but the state checked on every
//! call, against 22.8 for `null`. Of those 6, the state check (load,
//! compare, branch: 3) is gone while every slot is live: 26.1 (13,041 Ir
//! per event against 14,415 with the check, `buslab run --quick --pass
//! instructions`, 2026-12-03); two event fields spilled to the stack and
//! reloaded (2) and the loop's own step (1) remain.

use crate::sync::{AtomicBool, AtomicU32, AtomicUsize, Cell, Mutex, MutexGuard, epoch, yield_now};
use crate::util::deliver_each_isolated;
use crate::{
    BusConfig, BusError, Capabilities, Event, EventBus, Filter, Listener, PanicPolicy, Strategy, SubscriptionId, Topic,
};
use crossbeam_utils::CachePadded;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Number of listener slots (4 under `--cfg buslab_loom`, so that the
/// models in `tests/loom_fixed_array.rs` stay small).
pub const SLOTS: usize = if cfg!(buslab_loom) { 4 } else { 1024 };

/// The `fixed_array` strategy.
pub struct FixedArray;

impl Strategy for FixedArray {
    const NAME: &'static str = "fixed_array";
    const CAPABILITIES: Capabilities = Capabilities {
        multi_producer: true,
        asynchronous: false,
        lossy: false,
        bounded: false,
        max_subscribers: Some(SLOTS),
        dynamic_subscribe: true,
        native_topics: false,
        panics: PanicPolicy::Isolated,
        zero_alloc_small: true,
        zero_alloc_heavy: true,
        peer: false,
        thread_per_subscriber: false,
    };
    type Bus<E: Event, L: Listener<E>> = FixedArrayBus<E, L>;
}

/// The values of a slot's state word.
mod state {
    /// No listener: `subscribe` may take the slot.
    pub(super) const FREE: u32 = 0;
    /// Unsubscribed: publishers skip it, but one that pinned the epoch
    /// before the unsubscribe may still be calling its listener, which is
    /// dropped (and the slot freed) once none can be.
    pub(super) const RETIRED: u32 = 1;
    /// Live, for every topic.
    pub(super) const ALL: u32 = 2;
    /// Live, for topic `t` alone: `TOPIC + t`.
    pub(super) const TOPIC: u32 = 3;
}

/// The bits of the bus's shape word, which publishers read once per publish:
/// how far to walk the slots, and which loop to walk them with.
mod shape {
    /// One past the highest live slot (at most `SLOTS`).
    pub(super) const LEN: usize = 0xffff;
    /// Some slot below the length is free or retired.
    pub(super) const HOLES: usize = 1 << 16;
    /// Some live subscriber filters by topic.
    pub(super) const FILTERED: usize = 1 << 17;
}

/// The state word of a live subscriber with `filter`.
fn live(filter: Filter) -> u32 {
    match filter {
        Filter::All => state::ALL,
        Filter::Topic(t) => topic_state(t),
    }
}

/// The state word of a live subscriber of topic `t` alone.
#[inline(always)]
fn topic_state(t: Topic) -> u32 {
    state::TOPIC + u32::from(t)
}

/// One slot: its state, then the listener in place (initialised unless the
/// state is [`state::FREE`]).
struct Slot<L> {
    state: AtomicU32,
    listener: Cell<MaybeUninit<L>>,
}

impl<L> Slot<L> {
    /// The slot's listener.
    ///
    /// # Safety
    /// Under an epoch guard still held, the state was seen live (Acquire)
    /// or a shape without `HOLES` covering the slot was read (Acquire); or
    /// the caller has exclusive access and the state is not `FREE`.
    #[inline(always)]
    unsafe fn call<E>(&self, event: &E)
    where
        L: Listener<E>,
    {
        // SAFETY: a live state, and a shape covering the slot, are stored
        // (Release) after the listener was written, and the listener is
        // dropped only after every guard that could have seen either was
        // dropped (the caller's promise), so nobody writes it meanwhile.
        unsafe { self.listener.with(|listener| listener.assume_init_ref().on_event(event)) }
    }
}

/// A slot taken out of service, waiting until no publisher can hold it.
struct Retired {
    index: usize,
    /// Set by the epoch collector once every guard that could see the slot
    /// live has been dropped.
    safe: Arc<AtomicBool>,
}

/// What subscribe and unsubscribe keep to themselves, under the mutex.
struct Writer {
    /// The subscription id of each live slot.
    ids: Box<[Option<u64>]>,
    next_id: u64,
    retired: Vec<Retired>,
}

/// The `fixed_array` bus: see the module doc.
pub struct FixedArrayBus<E, L> {
    slots: Box<[Slot<L>]>,
    /// The slots' shape (see [`shape`]): the length, and whether any slot
    /// below it is not live or any live one filters. One word, so that a
    /// publish reads a length and flags that agree.
    shape: CachePadded<AtomicUsize>,
    panics: CachePadded<AtomicU64>,
    topics: usize,
    /// Serialises subscribe/unsubscribe (never taken by publishers).
    writer: Mutex<Writer>,
    _event: PhantomData<fn(&E)>,
}

// SAFETY: the bus owns the listeners in its slots; dropping the bus (or a
// retired slot) on another thread drops them there, and `L: Send`.
unsafe impl<E, L: Send + Sync> Send for FixedArrayBus<E, L> {}
// SAFETY: publishers on several threads call `&L` concurrently (`L: Sync`);
// a slot's listener is written only while its state is `FREE`, when no
// publisher reads it (see `Slot::call`), and under the writer mutex.
unsafe impl<E, L: Send + Sync> Sync for FixedArrayBus<E, L> {}

impl<E: Event, L: Listener<E>> FixedArrayBus<E, L> {
    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // Poisoning cannot leave the slots inconsistent: every change a
        // publisher sees is a single atomic store. Carry on with the data.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the listeners of retired slots the collector has declared
    /// safe, and frees those slots. Panic-safe: a slot is forgotten and
    /// marked free before its listener is dropped, so a listener whose drop
    /// panics is never dropped twice.
    fn sweep(&self, retired: &mut Vec<Retired>) {
        let mut i = 0;
        while i < retired.len() {
            if !retired[i].safe.load(Ordering::Acquire) {
                i += 1;
                continue;
            }
            let slot = &self.slots[retired.swap_remove(i).index];
            // Free before the drop: publishers skip a free slot as they skip
            // a retired one, and only writers (we hold the mutex) look for
            // free slots.
            slot.state.store(state::FREE, Ordering::Release);
            // SAFETY: `safe` is set by a deferred function that runs only
            // after every guard pinned before the slot was retired was
            // dropped; later publishers saw it retired and skipped it; we
            // hold the writer mutex, so nobody else writes the slot.
            unsafe { slot.listener.with_mut(|listener| listener.assume_init_drop()) };
        }
    }

    /// A free slot, if any. When every slot is live or retired, waits for
    /// the retired ones to be freed, i.e. for the publishes that could
    /// still be calling their listeners to return — unless this thread is
    /// itself inside such a publish (pinned), where waiting could never end.
    fn free_slot(&self, retired: &mut Vec<Retired>) -> Option<usize> {
        loop {
            self.sweep(retired);
            if let Some(index) = self.slots.iter().position(|s| s.state.load(Ordering::Relaxed) == state::FREE) {
                return Some(index);
            }
            if retired.is_empty() || epoch::is_pinned() {
                return None;
            }
            // Help the collector advance the epoch, then let the
            // publishers that hold it back run.
            epoch::pin().flush();
            yield_now();
        }
    }

    /// Recomputes the shape word from the slots' states and publishes it,
    /// counting slot `joining.0` as having state `joining.1` already.
    /// Called under the writer mutex: by `subscribe` before the joining
    /// slot goes live, by `unsubscribe` after the slot is retired and
    /// before its listener's drop is deferred (see "One shape word").
    fn reshape(&self, joining: Option<(usize, u32)>) {
        let (mut len, mut live, mut filtered) = (0, 0, false);
        for (index, slot) in self.slots.iter().enumerate() {
            let s = match joining {
                Some((at, s)) if at == index => s,
                // Relaxed: only writers (we hold the mutex) store states.
                _ => slot.state.load(Ordering::Relaxed),
            };
            if s >= state::ALL {
                len = index + 1;
                live += 1;
                filtered |= s >= state::TOPIC;
            }
        }
        let mut word = len;
        if live < len {
            word |= shape::HOLES;
        }
        if filtered {
            word |= shape::FILTERED;
        }
        self.shape.store(word, Ordering::Release);
    }

    #[inline]
    fn deliver(&self, event: &E) {
        let _guard = epoch::pin();
        let word = self.shape.load(Ordering::Acquire);
        let slots = &self.slots[..(word & shape::LEN).min(SLOTS)];
        let panics = if word & (shape::HOLES | shape::FILTERED) == 0 {
            deliver_each_isolated(slots, event, |slot, event| {
                // SAFETY: every slot below the length was live when the
                // shape was stored, and `_guard` is held (see "No state
                // check while every slot is live").
                unsafe { slot.call(event) };
            })
        } else if word & shape::FILTERED == 0 {
            deliver_each_isolated(slots, event, |slot, event| {
                if slot.state.load(Ordering::Acquire) == state::ALL {
                    // SAFETY: seen live, and `_guard` is held.
                    unsafe { slot.call(event) };
                }
            })
        } else {
            let topic = topic_state(event.topic());
            deliver_each_isolated(slots, event, move |slot, event| {
                let s = slot.state.load(Ordering::Acquire);
                if s == state::ALL || s == topic {
                    // SAFETY: seen live, and `_guard` is held.
                    unsafe { slot.call(event) };
                }
            })
        };
        if panics != 0 {
            self.panics.fetch_add(panics, Ordering::Relaxed);
        }
    }
}

impl<E: Event, L: Listener<E>> EventBus for FixedArrayBus<E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(FixedArray::NAME)?;
        Ok(FixedArrayBus {
            slots: (0..SLOTS)
                .map(|_| Slot { state: AtomicU32::new(state::FREE), listener: Cell::new(MaybeUninit::uninit()) })
                .collect(),
            shape: CachePadded::new(AtomicUsize::new(0)),
            panics: CachePadded::new(AtomicU64::new(0)),
            topics: config.topics,
            writer: Mutex::new(Writer { ids: vec![None; SLOTS].into(), next_id: 0, retired: Vec::new() }),
            _event: PhantomData,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        crate::util::check_filter(FixedArray::NAME, filter, self.topics)?;
        let mut writer = self.lock_writer();
        let Some(index) = self.free_slot(&mut writer.retired) else {
            return Err(BusError::SubscriberLimit { bus: FixedArray::NAME, limit: SLOTS });
        };
        let slot = &self.slots[index];
        // SAFETY: the slot is free: no publisher reads its listener (they
        // read it only when live or covered by a shape stored after this
        // write), and the writer mutex is held.
        unsafe {
            slot.listener.with_mut(|cell| {
                cell.write(listener);
            })
        };
        // The shape that covers the slot first, then its state: a publish
        // that sees the state live (even through an older, longer shape)
        // makes every later publish of its thread read this shape or a
        // newer one, all of which reach the slot while it is live (see
        // "One shape word"; `tests/loom_fixed_array.rs` fails otherwise).
        self.reshape(Some((index, live(filter))));
        slot.state.store(live(filter), Ordering::Release);
        let id = writer.next_id;
        writer.next_id += 1;
        writer.ids[index] = Some(id);
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let mut writer = self.lock_writer();
        let Some(index) = writer.ids.iter().position(|&i| i == Some(id.0)) else {
            return Err(BusError::UnknownSubscription { bus: FixedArray::NAME, id });
        };
        writer.ids[index] = None;
        let guard = epoch::pin();
        self.slots[index].state.store(state::RETIRED, Ordering::Release);
        // A hole now, or a shorter length, before the listener's drop is
        // deferred: a publish that could still read the old shape (and call
        // the listener without checking its state) pinned before the
        // deferral.
        self.reshape(None);
        let safe = Arc::new(AtomicBool::new(false));
        let flag = safe.clone();
        // SAFETY: the closure only touches an `Arc<AtomicBool>`.
        unsafe { guard.defer_unchecked(move || flag.store(true, Ordering::Release)) };
        guard.flush();
        drop(guard);
        writer.retired.push(Retired { index, safe });
        self.sweep(&mut writer.retired);
        Ok(())
    }

    crate::util::inline_dispatch!();
}

impl<E, L> Drop for FixedArrayBus<E, L> {
    fn drop(&mut self) {
        for slot in self.slots.iter_mut() {
            if slot.state.load(Ordering::Relaxed) != state::FREE {
                // SAFETY: `&mut self`: no publisher or guard can reach the
                // bus, and a slot that is not free holds a listener.
                unsafe { slot.listener.with_mut(|listener| listener.assume_init_drop()) };
            }
        }
    }
}
