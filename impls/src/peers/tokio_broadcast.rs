//! `tokio::sync::broadcast` with one task per subscriber on a runtime the bus owns; lossy by design, every loss counted.
//!
//! An adapter, measured as a peer: the bus owns a multi-thread tokio runtime
//! (`worker_threads = min(max_threads, cores)`) and one broadcast channel of
//! `BusConfig::capacity` (tokio rounds it up to a power of two). Each
//! subscriber is a task looping on its `broadcast::Receiver`, checking its
//! filter at receive and calling its listener. A receiver that falls a whole
//! ring behind gets `RecvError::Lagged(n)`: the task adds `n` to
//! `BusStats::dropped` and carries on — losses are counted, never hidden (a
//! `while let Ok(..) = rx.recv().await` loop would silently end there).
//!
//! Flush: broadcast has no per-receiver counter we can read, so the bus
//! numbers the events itself: `publish` sends under a mutex that also counts
//! the sends, and `subscribe` reads that count (its *join point*) under the
//! same mutex, so the count equals tokio's tail position. Each task counts the
//! positions it has passed (processed or lost); `flush` waits until
//! `join point + passed ≥ count at flush`, which terminates even when events
//! were lost, and only owes a late subscriber what was sent after it joined.
//! The mutex serialises publishers, as tokio's own tail mutex already does.
//!
//! Listeners run on the runtime's workers: a listener that blocks (the 10 µs
//! work listener) holds a worker, so with more subscribers than workers the
//! others wait and lag sooner. A task yields to the scheduler every 64 events.
//!
//! Config: `capacity` (ring size), `max_threads` (workers, ≥ 1), `wait` (how
//! `flush` and `unsubscribe` wait) and `topics` (filter validation) apply;
//! `producers` does not.
//!
//! # Guarantees
//! - **Ordering:** per producer, FIFO per subscriber (one ring, one task per
//!   subscriber, one call at a time); one total order across producers (the
//!   ring's), seen by every subscriber.
//! - **Delivery:** at most once; a subscriber that lags a ring behind skips
//!   the overwritten events and counts each in `BusStats::dropped` (counted
//!   before its filter could be checked: an upper bound on missed
//!   deliveries). Listener panics are caught (`util::call_isolated`) and
//!   counted. Unsubscribe aborts the task; events it had not received are
//!   not delivered.
//! - **Backpressure:** none: `publish` never blocks on a full ring (it
//!   overwrites the oldest event) and `try_publish` always accepts.
//! - **Allocations per event:** about 0 for `SmallEvent` (the ring is
//!   preallocated; waking a task does not allocate), but not exactly: the
//!   runtime allocates now and then (`tests/allocations.rs` prints the rate
//!   it measures), so zero is not claimed. For `HeavyEvent` every receiver clones
//!   (`recv` returns an owned copy): n deep clones via `publish` and n + 1 via
//!   `publish_clone` for n subscribers (whatever their filters), each 7–9
//!   allocations; the stored original is dropped when the last receiver took
//!   its copy or it is overwritten.
//! - **Threads:** the runtime's `min(max_threads, cores)` workers (≥ 1), spawned
//!   by `new`; nothing else (no blocking pool, timer or I/O driver is used).
//!   `shutdown`/`Drop` let every task drain what was sent, then drop the
//!   runtime, which joins its workers.
//!
//! Based on: `tokio::sync::broadcast` (tokio 1.x: a ring of slots with
//!   per-slot reader counts, receivers lag rather than block the sender).

use crate::util::{call_isolated, check_filter};
use crate::wait::Notifier;
use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId, WaitStrategy,
};
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// The `tokio_broadcast` strategy.
pub struct TokioBroadcast;

impl Strategy for TokioBroadcast {
    const NAME: &'static str = "tokio_broadcast";
    const CAPABILITIES: Capabilities = Capabilities {
        multi_producer: true,
        asynchronous: true,
        lossy: true,
        bounded: false,
        max_subscribers: None,
        dynamic_subscribe: true,
        native_topics: false,
        panics: PanicPolicy::Isolated,
        zero_alloc_small: false,
        zero_alloc_heavy: false,
        peer: true,
        thread_per_subscriber: false,
    };
    type Bus<E: Event, L: Listener<E>> = TokioBroadcastBus<E, L>;
}

/// Events a task handles before it yields to the scheduler.
const YIELD_EVERY: u32 = 64;

/// Distinguishes buses, so a worker thread knows whose runtime it is in.
static NEXT_BUS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The bus whose runtime worker this is (0: none).
    static WORKER_OF: Cell<usize> = const { Cell::new(0) };
}

/// Counters every task shares with the bus.
#[derive(Default)]
struct Shared {
    dropped: CachePadded<AtomicU64>,
    panics: CachePadded<AtomicU64>,
    /// Notified when a task has passed events (cheaply per event, fully when
    /// it runs out of events) or stopped.
    progress: Notifier,
}

/// One subscriber's state, shared by its task and the bus.
#[derive(Default)]
struct SubState {
    /// Ring positions passed since joining: processed or counted lost.
    passed: CachePadded<AtomicU64>,
    /// Set by `unsubscribe`; the task checks it before every call.
    removed: AtomicBool,
    /// Set once the task has ended and dropped its listener.
    stopped: AtomicBool,
}

/// Drops the listener, then marks the task stopped — however the task ends
/// (its loop returned, or it was aborted and its future dropped).
struct TaskGuard<L> {
    listener: Option<L>,
    state: Arc<SubState>,
    shared: Arc<Shared>,
}

impl<L> Drop for TaskGuard<L> {
    fn drop(&mut self) {
        drop(self.listener.take());
        self.state.stopped.store(true, Ordering::Release);
        self.shared.progress.notify_all();
    }
}

struct Subscription {
    id: u64,
    state: Arc<SubState>,
    /// Sends counted before it subscribed (its first position).
    joined_at: u64,
    task: tokio::task::JoinHandle<()>,
}

/// The publishing side, under one mutex so the count is tokio's position.
struct Sending<E> {
    tx: Option<broadcast::Sender<E>>,
    sent: u64,
}

/// The `tokio_broadcast` bus.
pub struct TokioBroadcastBus<E: Event, L: Listener<E>> {
    runtime: Option<tokio::runtime::Runtime>,
    sending: Mutex<Sending<E>>,
    subscriptions: Mutex<(u64, Vec<Subscription>)>,
    shared: Arc<Shared>,
    wait: WaitStrategy,
    topics: usize,
    uid: usize,
    _listener: PhantomData<fn(L)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing that can panic runs while these locks are held.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A subscriber's task.
async fn deliver<E: Event, L: Listener<E>>(mut rx: broadcast::Receiver<E>, filter: Filter, guard: TaskGuard<L>) {
    let TaskGuard { listener, state, shared } = &guard;
    let listener = listener.as_ref().expect("set until the guard drops");
    let mut passed = 0;
    let mut since_yield = 0;
    loop {
        let received = match rx.try_recv() {
            Ok(event) => Ok(event),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Empty) => {
                // Out of events: a full notification for `flush`, then sleep.
                shared.progress.notify_all();
                since_yield = 0;
                rx.recv().await
            }
        };
        match received {
            Ok(event) => {
                if state.removed.load(Ordering::Acquire) {
                    return;
                }
                if filter.accepts(event.topic()) && call_isolated(|| listener.on_event(&event)) {
                    shared.panics.fetch_add(1, Ordering::Relaxed);
                }
                passed += 1;
            }
            Err(RecvError::Lagged(n)) => {
                shared.dropped.fetch_add(n, Ordering::Relaxed);
                passed += n;
            }
            Err(RecvError::Closed) => return,
        }
        state.passed.store(passed, Ordering::Release);
        shared.progress.notify_all_cheap();
        since_yield += 1;
        if since_yield == YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
    }
}

impl<E: Event, L: Listener<E>> TokioBroadcastBus<E, L> {
    fn on_own_worker(&self) -> bool {
        WORKER_OF.with(|w| w.get() == self.uid)
    }

    fn close(&mut self) -> BusStats {
        if let Some(runtime) = self.runtime.take() {
            // Without a sender, each receiver gets what is left, then Closed.
            drop(lock(&self.sending).tx.take());
            let subscriptions = std::mem::take(&mut lock(&self.subscriptions).1);
            if self.on_own_worker() {
                // Dropped from a listener (the last owner was one): waiting
                // would wait for this thread. The runtime stops in the
                // background and drops the tasks; what they had not yet
                // received is lost uncounted (only in this misuse).
                runtime.shutdown_background();
                return self.stats();
            }
            for sub in &subscriptions {
                self.shared.progress.wait_until(self.wait, None, || sub.state.stopped.load(Ordering::Acquire));
            }
            // Joins the workers (they run on the runtime's blocking pool).
            drop(runtime);
        }
        self.stats()
    }
}

impl<E: Event, L: Listener<E>> EventBus for TokioBroadcastBus<E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(TokioBroadcast::NAME)?;
        if config.capacity > usize::MAX >> 1 {
            return Err(BusError::Config {
                bus: TokioBroadcast::NAME,
                field: "capacity",
                reason: "must be at most usize::MAX / 2".into(),
            });
        }
        let uid = NEXT_BUS.fetch_add(1, Ordering::Relaxed);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.max_threads.min(crate::cores()).max(1))
            .thread_name("buslab-tokio")
            .on_thread_start(move || WORKER_OF.with(|w| w.set(uid)))
            .build()
            .map_err(|e| BusError::Config {
                bus: TokioBroadcast::NAME,
                field: "max_threads",
                reason: format!("cannot start the runtime: {e}"),
            })?;
        let (tx, _) = broadcast::channel(config.capacity);
        Ok(TokioBroadcastBus {
            runtime: Some(runtime),
            sending: Mutex::new(Sending { tx: Some(tx), sent: 0 }),
            subscriptions: Mutex::new((0, Vec::new())),
            shared: Arc::default(),
            wait: config.wait,
            topics: config.topics,
            uid,
            _listener: PhantomData,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(TokioBroadcast::NAME, filter, self.topics)?;
        let runtime = self.runtime.as_ref().expect("present until shutdown");
        let mut subscriptions = lock(&self.subscriptions);
        let (rx, joined_at) = {
            let sending = lock(&self.sending);
            let tx = sending.tx.as_ref().expect("present until shutdown");
            (tx.subscribe(), sending.sent)
        };
        let state = Arc::new(SubState::default());
        let guard = TaskGuard { listener: Some(listener), state: state.clone(), shared: self.shared.clone() };
        let task = runtime.spawn(deliver(rx, filter, guard));
        let id = subscriptions.0;
        subscriptions.0 += 1;
        subscriptions.1.push(Subscription { id, state, joined_at, task });
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let sub = {
            let mut subscriptions = lock(&self.subscriptions);
            let Some(at) = subscriptions.1.iter().position(|s| s.id == id.0) else {
                return Err(BusError::UnknownSubscription { bus: TokioBroadcast::NAME, id });
            };
            subscriptions.1.swap_remove(at)
        };
        sub.state.removed.store(true, Ordering::SeqCst);
        sub.task.abort();
        // On one of our workers (a listener unsubscribing), waiting could
        // wait for this very thread: `removed` alone then stops new calls.
        if !self.on_own_worker() {
            self.shared.progress.wait_until(self.wait, None, || sub.state.stopped.load(Ordering::Acquire));
        }
        Ok(())
    }

    #[inline]
    fn publish(&self, event: E) {
        let mut sending = lock(&self.sending);
        // No receiver: nobody is subscribed, nothing to count.
        if let Some(tx) = &sending.tx
            && tx.send(event).is_ok()
        {
            sending.sent += 1;
        }
    }

    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        self.publish(event);
        Ok(())
    }

    fn flush(&self) {
        if self.on_own_worker() {
            // A listener flushing its own bus would wait for itself.
            return;
        }
        let target = lock(&self.sending).sent;
        let owed: Vec<(Arc<SubState>, u64)> =
            lock(&self.subscriptions).1.iter().map(|s| (s.state.clone(), s.joined_at)).collect();
        for (state, joined_at) in owed {
            self.shared.progress.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
                state.removed.load(Ordering::Acquire)
                    || state.stopped.load(Ordering::Acquire)
                    || joined_at + state.passed.load(Ordering::Acquire) >= target
            });
        }
    }

    fn stats(&self) -> BusStats {
        BusStats {
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            listener_panics: self.shared.panics.load(Ordering::Relaxed),
        }
    }

    fn shutdown(mut self) -> BusStats {
        self.close()
    }
}

impl<E: Event, L: Listener<E>> Drop for TokioBroadcastBus<E, L> {
    fn drop(&mut self) {
        self.close();
    }
}
