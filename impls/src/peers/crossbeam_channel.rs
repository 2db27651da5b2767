//! `crossbeam-channel` used plainly: one `bounded(capacity)` channel and one `recv`-loop thread per subscriber, subscribers fixed at the first publish.
//!
//! A peer: crossbeam-channel 0.5, the channel our `channel` bus is built
//! on, wrapped the way its users wire a fan-out by hand — a `Vec` of senders
//! the publisher loops over, and a thread per receiver running
//! `for msg in rx { .. }`. It is here to show what our `channel` bus's
//! extras cost (its per-thread snapshot cache, shards serving many
//! subscribers per thread, ticket counters and all-or-nothing
//! `try_publish`): no registry on the publish path, no snapshot, no
//! `ArcSwap`, no counter per event.
//!
//! The wrapping the contract needed, stated plainly:
//! - **Subscribers fixed at the first publish.** `subscribe` creates the
//!   channel and spawns its thread; the first publish that finds a
//!   subscriber freezes the senders into a boxed slice in a `OnceLock`, so a
//!   publish is one acquire load, then per subscriber a filter check, a clone
//!   (all but the last subscriber, which takes the original) and the crate's
//!   blocking `send`. A `subscribe` after that returns
//!   `BusError::SubscribersFixed` (hence `dynamic_subscribe: false`: churn
//!   cells are skipped).
//! - **Unsubscribe** sets a flag the subscriber's thread checks before each
//!   call; at its next event the thread drops the listener, and from then on
//!   discards events and acknowledges flush markers. (Returning instead would
//!   strand a marker already queued behind: the crate's bounded channel keeps
//!   its messages while a sender lives.) Publishers keep sending to it until
//!   `shutdown`, as a plain `Vec` of senders would. Before the first publish,
//!   `unsubscribe` drops the only sender and the thread returns.
//! - **Flush** sends a marker down every channel, behind everything sent
//!   before, and waits until each thread has acknowledged its marker (or
//!   dropped it, leaving), so nothing is counted per event. Channels carry
//!   `Msg::Event(E)` or that marker.
//! - **`try_publish`** first checks the crate's `is_full` on every accepting
//!   subscriber and hands the event back if one is full; then sends. With one
//!   producer that is all-or-nothing (consumers only make room); with
//!   several, another can take the last slot in between, and that send then
//!   waits for room.
//! - **Panics**: the `recv` loop runs under `catch_unwind`, re-entered after
//!   a panic (which is counted).
//!
//! Config: `capacity` (per-subscriber bound) and `topics` (filter
//! validation) apply. `max_threads` does not (a thread per subscriber is
//! what this peer measures), nor does `wait` (the crate's `send` and `recv`
//! block their own way: spin, yield, park), nor `producers`.
//!
//! # Guarantees
//! - **Ordering:** per producer, FIFO per subscriber (one channel per
//!   subscriber, drained by its own thread, one call at a time); no order
//!   across producers or subscribers.
//! - **Delivery:** exactly once to every subscriber whose filter accepts the
//!   event (checked at publish) and that was subscribed before the first
//!   publish and not unsubscribed; after `unsubscribe` returns no publish that
//!   starts later reaches it. Listener panics are caught and counted.
//! - **Backpressure:** `publish` blocks in the crate's `send` while an
//!   accepting subscriber's channel holds `capacity` events; `try_publish`
//!   hands the event back when one is full (all-or-nothing with one
//!   producer, as above).
//! - **Allocations per event:** none of ours; the channels are preallocated
//!   arrays, but a thread that blocks registers in the crate's waker list,
//!   which grows now and then, so zero is not claimed (`tests/allocations.rs`
//!   prints the rate); for `HeavyEvent`, n − 1 deep clones via `publish` and n
//!   via `publish_clone` for n accepting subscribers. `subscribe` allocates
//!   (channel, thread), the first publish the frozen list, `flush` its
//!   acknowledgement channel.
//! - **Threads:** one per subscriber, spawned by `subscribe` (whatever
//!   `max_threads` says), ended when `shutdown`/`Drop` drops the senders
//!   (or by `unsubscribe` before the first publish) and joined by `shutdown`
//!   or `Drop` after it has delivered everything queued.
//!
//! Based on: `crossbeam-channel` 0.5 (crates.io), `bounded` (the array
//!   flavour), as in its documentation's examples.

use crate::util::{check_filter, join_spawned};
use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId,
};
use ::crossbeam_channel::{Receiver, Sender};
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

/// The `crossbeam_channel` strategy (a peer).
pub struct CrossbeamChannel;

impl Strategy for CrossbeamChannel {
    const NAME: &'static str = "crossbeam_channel";
    const CAPABILITIES: Capabilities = Capabilities {
        multi_producer: true,
        asynchronous: true,
        lossy: false,
        bounded: true,
        max_subscribers: None,
        dynamic_subscribe: false,
        native_topics: false,
        panics: PanicPolicy::Isolated,
        zero_alloc_small: false,
        zero_alloc_heavy: false,
        peer: true,
        thread_per_subscriber: true,
    };
    type Bus<E: Event, L: Listener<E>> = CrossbeamChannelBus<E, L>;
}

/// Distinguishes buses, so that a subscriber thread knows whose listener it runs.
static NEXT_BUS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The bus whose subscriber thread this is (0: none).
    static CONSUMER_OF: Cell<usize> = const { Cell::new(0) };
}

/// What a channel carries.
enum Msg<E> {
    /// An event to deliver.
    Event(E),
    /// A flush marker: acknowledge once everything before it was delivered.
    Flush(Sender<()>),
}

/// One subscriber as publishers see it once subscribers are fixed.
struct Outlet<E> {
    filter: Filter,
    tx: Sender<Msg<E>>,
}

/// One subscriber as `subscribe`/`unsubscribe` see it.
struct Sub<E> {
    id: u64,
    outlet: Outlet<E>,
    /// Set by `unsubscribe`; its thread checks it before every call.
    removed: Arc<AtomicBool>,
}

struct Registry<E> {
    next_id: u64,
    subs: Vec<Sub<E>>,
    /// Every subscriber thread ever spawned, joined at shutdown.
    threads: Vec<JoinHandle<()>>,
    closed: bool,
}

/// The `crossbeam_channel` bus.
pub struct CrossbeamChannelBus<E: Event, L: Listener<E>> {
    /// The senders, frozen by the first publish that finds a subscriber.
    outlets: OnceLock<Box<[Outlet<E>]>>,
    registry: Mutex<Registry<E>>,
    panics: Arc<CachePadded<AtomicU64>>,
    capacity: usize,
    topics: usize,
    uid: usize,
    _listener: PhantomData<fn(L)>,
}

/// Sends `event` to every accepting outlet, cloning for all but the last.
#[inline]
fn fan_out<E: Event>(outlets: &[Outlet<E>], event: E) {
    let topic = event.topic();
    let mut pending: Option<&Outlet<E>> = None;
    for outlet in outlets {
        if outlet.filter.accepts(topic) {
            if let Some(previous) = pending {
                // An error means the subscriber left: nobody to deliver to.
                let _ = previous.tx.send(Msg::Event(event.clone()));
            }
            pending = Some(outlet);
        }
    }
    if let Some(last) = pending {
        let _ = last.tx.send(Msg::Event(event));
    }
}

/// A subscriber's thread: the plain `recv` loop, under `catch_unwind`.
fn run<E: Event, L: Listener<E>>(
    rx: Receiver<Msg<E>>,
    listener: L,
    removed: Arc<AtomicBool>,
    panics: Arc<CachePadded<AtomicU64>>,
    uid: usize,
) {
    CONSUMER_OF.with(|c| c.set(uid));
    let mut listener = Some(listener);
    loop {
        let finished = catch_unwind(AssertUnwindSafe(|| {
            for msg in rx.iter() {
                match msg {
                    Msg::Event(event) => match &listener {
                        // Unsubscribed: drop the listener after its last call.
                        Some(_) if removed.load(Ordering::Relaxed) => listener = None,
                        Some(listener) => listener.on_event(&event),
                        None => {}
                    },
                    Msg::Flush(ack) => {
                        let _ = ack.send(());
                    }
                }
            }
        }));
        match finished {
            Ok(()) => return,
            Err(_) => {
                panics.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<E: Event, L: Listener<E>> CrossbeamChannelBus<E, L> {
    fn registry(&self) -> MutexGuard<'_, Registry<E>> {
        // Nothing that can panic runs while the lock is held.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The frozen outlets, freezing them if there are subscribers.
    #[inline]
    fn outlets(&self) -> Option<&[Outlet<E>]> {
        match self.outlets.get() {
            Some(outlets) => Some(outlets),
            None => self.freeze(),
        }
    }

    #[cold]
    #[inline(never)]
    fn freeze(&self) -> Option<&[Outlet<E>]> {
        let reg = self.registry();
        if self.outlets.get().is_none() {
            if reg.subs.is_empty() || reg.closed {
                return None;
            }
            let outlets: Box<[Outlet<E>]> =
                reg.subs.iter().map(|s| Outlet { filter: s.outlet.filter, tx: s.outlet.tx.clone() }).collect();
            let _ = self.outlets.set(outlets);
        }
        self.outlets.get().map(|o| &o[..])
    }

    fn close(&mut self) -> BusStats {
        // Without senders, each thread delivers what is queued, then returns.
        drop(self.outlets.take());
        let reg = self.registry.get_mut().unwrap_or_else(|e| e.into_inner());
        if !reg.closed {
            reg.closed = true;
            reg.subs.clear();
            reg.threads.drain(..).for_each(join_spawned);
        }
        self.stats()
    }
}

impl<E: Event, L: Listener<E>> EventBus for CrossbeamChannelBus<E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(CrossbeamChannel::NAME)?;
        Ok(CrossbeamChannelBus {
            outlets: OnceLock::new(),
            registry: Mutex::new(Registry { next_id: 0, subs: Vec::new(), threads: Vec::new(), closed: false }),
            panics: Arc::default(),
            capacity: config.capacity,
            topics: config.topics,
            uid: NEXT_BUS.fetch_add(1, Ordering::Relaxed),
            _listener: PhantomData,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(CrossbeamChannel::NAME, filter, self.topics)?;
        let mut reg = self.registry();
        if self.outlets.get().is_some() {
            return Err(BusError::SubscribersFixed { bus: CrossbeamChannel::NAME });
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let (tx, rx) = ::crossbeam_channel::bounded(self.capacity);
        let removed = Arc::new(AtomicBool::new(false));
        let thread = {
            let (removed, panics, uid) = (removed.clone(), self.panics.clone(), self.uid);
            std::thread::Builder::new()
                .name(format!("buslab-{}-{id}", CrossbeamChannel::NAME))
                .spawn(move || run(rx, listener, removed, panics, uid))
                .expect("the OS must let the bus spawn a subscriber thread")
        };
        reg.threads.push(thread);
        reg.subs.push(Sub { id, outlet: Outlet { filter, tx }, removed });
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let mut reg = self.registry();
        let Some(at) = reg.subs.iter().position(|s| s.id == id.0) else {
            return Err(BusError::UnknownSubscription { bus: CrossbeamChannel::NAME, id });
        };
        let sub = reg.subs.remove(at);
        sub.removed.store(true, Ordering::SeqCst);
        // Before the first publish this was the only sender: its thread sees
        // the disconnection and returns. After, the frozen list keeps one,
        // and the thread drops the listener at its next event.
        drop(sub);
        Ok(())
    }

    #[inline]
    fn publish(&self, event: E) {
        if let Some(outlets) = self.outlets() {
            fan_out(outlets, event);
        }
    }

    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        let Some(outlets) = self.outlets() else {
            return Ok(());
        };
        let topic = event.topic();
        if outlets.iter().any(|o| o.filter.accepts(topic) && o.tx.is_full()) {
            return Err(Full(event));
        }
        fan_out(outlets, event);
        Ok(())
    }

    fn flush(&self) {
        if CONSUMER_OF.with(|c| c.get() == self.uid) {
            // A listener flushing its own bus would wait for itself.
            return;
        }
        let Some(outlets) = self.outlets.get() else {
            return;
        };
        let (ack, acks) = ::crossbeam_channel::unbounded();
        let mut owed = 0;
        for outlet in outlets.iter() {
            if outlet.tx.send(Msg::Flush(ack.clone())).is_ok() {
                owed += 1;
            }
        }
        drop(ack);
        // A thread that left drops its marker unacknowledged: once every
        // marker is acknowledged or dropped, `recv` fails.
        for _ in 0..owed {
            if acks.recv().is_err() {
                break;
            }
        }
    }

    fn stats(&self) -> BusStats {
        BusStats { dropped: 0, listener_panics: self.panics.load(Ordering::Relaxed) }
    }

    fn shutdown(mut self) -> BusStats {
        self.close()
    }
}

impl<E: Event, L: Listener<E>> Drop for CrossbeamChannelBus<E, L> {
    fn drop(&mut self) {
        self.close();
    }
}
