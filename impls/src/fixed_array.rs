//! A fixed-capacity array of listener slots plus an atomic count; publish calls every listener in-line on the publisher's thread.
//!
//! The array has [`SLOTS`] slots, each an epoch-protected pointer to a
//! boxed entry (listener + filter + id). `publish` pins the epoch once, loads
//! the high-water count, and walks the slots calling each occupied one — no
//! lock, no allocation, no queue. `subscribe` stores into a free slot with a
//! compare-and-swap and raises the count; `unsubscribe` swaps the slot to null
//! and retires the entry, which is dropped once no publisher can still hold
//! it (crossbeam-epoch). Subscribers serialise among themselves on a mutex
//! that publishers never touch, so publishers are never blocked.
//!
//! Applicable [`BusConfig`] fields: `topics` (filters are checked against it).
//! `capacity`, `wait`, `max_threads` and `producers` do not apply.
//!
//! # Guarantees
//! - **Ordering:** each subscriber receives a producer's events in publish
//!   order, on that producer's thread; events of different producers may
//!   reach one listener concurrently.
//! - **Delivery:** exactly once to every subscriber present for the whole
//!   publish; `publish` returns after every listener has returned, so `flush`
//!   is a no-op.
//! - **Backpressure:** none needed: the publisher runs the listeners, so a
//!   slow listener slows its publisher; `try_publish` never refuses.
//! - **Allocations per event:** zero, for any event type (events are passed by
//!   reference; pinning the epoch does not allocate). `subscribe` allocates
//!   one entry; `unsubscribe` one deferred-destruction record.
//! - **Threads:** none.
//!
//! Based on: the fixed-size listener array of the Go event-bus articles
//! (64 slots and an atomic count; here 1024 so that 500-listener fan-out
//! fits), with crossbeam-epoch reclamation replacing Go's garbage collector.

use crate::util::deliver_isolated;
use crate::{
    BusConfig, BusError, Capabilities, Event, EventBus, Filter, Listener, PanicPolicy, Strategy, SubscriptionId,
};
use crossbeam_epoch::{self as epoch, Atomic, Owned};
use crossbeam_utils::CachePadded;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Number of listener slots.
pub const SLOTS: usize = 1024;

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

struct Entry<L> {
    id: u64,
    filter: Filter,
    listener: L,
}

/// An entry taken out of its slot, waiting until no publisher can hold it.
struct Retired<L> {
    entry: *mut Entry<L>,
    /// Set by the epoch collector once every guard that could see the entry
    /// has been dropped.
    safe: Arc<AtomicBool>,
}

/// The `fixed_array` bus: see the module doc.
pub struct FixedArrayBus<E, L> {
    slots: Box<[Atomic<Entry<L>>]>,
    /// One past the highest slot that may be occupied.
    len: CachePadded<AtomicUsize>,
    panics: CachePadded<AtomicU64>,
    next_id: AtomicU64,
    topics: usize,
    /// Serialises subscribe/unsubscribe (never taken by publishers) and holds
    /// retired entries until they are safe to drop.
    writer: Mutex<Vec<Retired<L>>>,
    _event: PhantomData<fn(&E)>,
}

// SAFETY: the raw pointers in `Retired` are owned boxes of `Entry<L>` moved out
// of the slots; they are only dereferenced (dropped) under the writer mutex or
// with exclusive access, and `L: Send + Sync`.
unsafe impl<E, L: Send + Sync> Send for FixedArrayBus<E, L> {}
// SAFETY: shared access only reads slots through epoch guards and atomics;
// `Retired` is guarded by the mutex. `L: Sync` because publishers on several
// threads call `&L` concurrently.
unsafe impl<E, L: Send + Sync> Sync for FixedArrayBus<E, L> {}

impl<E: Event, L: Listener<E>> FixedArrayBus<E, L> {
    fn lock_writer(&self) -> std::sync::MutexGuard<'_, Vec<Retired<L>>> {
        // Poisoning cannot leave the slots inconsistent: every mutation is a
        // single atomic store. Carry on with the data.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops retired entries the collector has declared safe.
    fn sweep(retired: &mut Vec<Retired<L>>) {
        retired.retain(|r| {
            if r.safe.load(Ordering::Acquire) {
                // SAFETY: `safe` is set by a deferred function that runs only
                // after every guard pinned before the unsubscribe was dropped;
                // the slot was nulled first, so no publisher can reach it.
                drop(unsafe { Box::from_raw(r.entry) });
                false
            } else {
                true
            }
        });
    }

    #[inline]
    fn deliver(&self, event: &E) {
        let guard = epoch::pin();
        let len = self.len.load(Ordering::Acquire);
        let slots = &self.slots[..len.min(SLOTS)];
        let topic = event.topic();
        let panics = deliver_isolated(slots.len(), |i| {
            let entry = slots[i].load(Ordering::Acquire, &guard);
            // SAFETY: entries are only freed after their slot was nulled and
            // every guard pinned before that was dropped; `guard` is alive.
            if let Some(entry) = unsafe { entry.as_ref() }
                && entry.filter.accepts(topic)
            {
                entry.listener.on_event(event);
            }
        });
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
            slots: (0..SLOTS).map(|_| Atomic::null()).collect(),
            len: CachePadded::new(AtomicUsize::new(0)),
            panics: CachePadded::new(AtomicU64::new(0)),
            next_id: AtomicU64::new(0),
            topics: config.topics,
            writer: Mutex::new(Vec::new()),
            _event: PhantomData,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        crate::util::check_filter(FixedArray::NAME, filter, self.topics)?;
        let mut retired = self.lock_writer();
        Self::sweep(&mut retired);
        let guard = epoch::pin();
        let Some(index) = self.slots.iter().position(|s| s.load(Ordering::Relaxed, &guard).is_null()) else {
            return Err(BusError::SubscriberLimit { bus: FixedArray::NAME, limit: SLOTS });
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.slots[index].store(Owned::new(Entry { id, filter, listener }), Ordering::Release);
        self.len.fetch_max(index + 1, Ordering::Release);
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let mut retired = self.lock_writer();
        let guard = epoch::pin();
        let len = self.len.load(Ordering::Relaxed);
        let found = self.slots[..len].iter().position(|s| {
            // SAFETY: we hold a guard; writers (serialised by the mutex we
            // hold) are the only ones who retire entries.
            unsafe { s.load(Ordering::Relaxed, &guard).as_ref() }.is_some_and(|e| e.id == id.0)
        });
        let Some(index) = found else {
            return Err(BusError::UnknownSubscription { bus: FixedArray::NAME, id });
        };
        let entry = self.slots[index].swap(epoch::Shared::null(), Ordering::AcqRel, &guard);
        // Shrink the count past trailing empty slots, so publishers skip them.
        let mut new_len = len;
        while new_len > 0 && self.slots[new_len - 1].load(Ordering::Relaxed, &guard).is_null() {
            new_len -= 1;
        }
        self.len.store(new_len, Ordering::Release);
        let safe = Arc::new(AtomicBool::new(false));
        let flag = safe.clone();
        // SAFETY: the closure only touches an `Arc<AtomicBool>`.
        unsafe { guard.defer_unchecked(move || flag.store(true, Ordering::Release)) };
        guard.flush();
        retired.push(Retired { entry: entry.as_raw().cast_mut(), safe });
        Self::sweep(&mut retired);
        Ok(())
    }

    crate::util::inline_dispatch!();
}

impl<E, L> Drop for FixedArrayBus<E, L> {
    fn drop(&mut self) {
        let retired = std::mem::take(self.writer.get_mut().unwrap_or_else(|e| e.into_inner()));
        for r in retired {
            // SAFETY: `&mut self`: no publisher or guard can reach the bus.
            drop(unsafe { Box::from_raw(r.entry) });
        }
        // SAFETY: `&mut self`: no publisher holds a guard on these slots.
        let guard = unsafe { epoch::unprotected() };
        for slot in self.slots.iter() {
            let entry = slot.swap(epoch::Shared::null(), Ordering::AcqRel, guard);
            if !entry.is_null() {
                // SAFETY: exclusive access, and the slot no longer points to it.
                drop(unsafe { entry.into_owned() });
            }
        }
    }
}
