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
//! - **Consumer threads** (the crate's consumer pool, `pool.rs`). Readers
//!   are spread over at most `max_threads`
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

use crate::pool::{Commands, Consumer, Member, Membership, Pool, Shard};
use crate::util::{call_isolated, check_filter};
use crate::wait::Notifier;
use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId, WaitStrategy,
};
use crossbeam_utils::{Backoff, CachePadded};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
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

/// The writer and the count of events it sent, under one mutex.
struct Sending<E> {
    bus: Option<::bus::Bus<E>>,
    sent: u64,
}

/// What the bus and a consumer share about one subscriber.
struct Entry {
    filter: Filter,
    /// Events sent before its reader was added.
    joined_at: u64,
    member: Membership,
    /// Events its reader has received since joining (delivered or filtered).
    passed: CachePadded<AtomicU64>,
}

impl Member for Entry {
    fn membership(&self) -> &Membership {
        &self.member
    }
}

/// One subscriber as its consumer holds it.
struct Local<E, L> {
    entry: Arc<Entry>,
    reader: ::bus::BusReader<E>,
    listener: L,
    /// The consumer's own copy of `entry.passed`.
    passed: u64,
}

/// The `bus` bus.
pub struct BusCrateBus<E: Event, L: Listener<E>> {
    sending: Mutex<Sending<E>>,
    /// `Sending::sent`, readable without the lock (consumers poll it).
    published: Arc<CachePadded<AtomicU64>>,
    pool: Pool<Entry, Consume<E, L>>,
    topics: usize,
    wait: WaitStrategy,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing that can panic runs while these locks are held (clones happen
    // in the readers).
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<E: Event, L: Listener<E>> BusCrateBus<E, L> {
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
        // Dropping the writer closes the ring: readers get what is left,
        // then `Disconnected`; the crate's unparking thread ends.
        drop(self.sending.get_mut().unwrap_or_else(|e| e.into_inner()).bus.take());
        self.pool.close()
    }
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
        let published = Arc::new(CachePadded::new(AtomicU64::new(0)));
        let consume = Consume { published: published.clone(), wait: config.wait, _types: PhantomData };
        Ok(BusCrateBus {
            sending: Mutex::new(Sending { bus: Some(::bus::Bus::new(config.capacity)), sent: 0 }),
            published,
            pool: Pool::new(BusCrate::NAME, config.max_threads, consume),
            topics: config.topics,
            wait: config.wait,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(BusCrate::NAME, filter, self.topics)?;
        let id = self.pool.subscribe(
            |member| {
                let (reader, joined_at) = {
                    let mut sending = lock(&self.sending);
                    let sent = sending.sent;
                    (sending.bus.as_mut().expect("present until shutdown").add_rx(), sent)
                };
                let entry = Arc::new(Entry { filter, joined_at, member, passed: CachePadded::new(AtomicU64::new(0)) });
                (entry.clone(), Local { entry, reader, listener, passed: 0 })
            },
            |_| {},
        );
        Ok(id)
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        self.pool.unsubscribe(id, |_| {})?;
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
        if self.pool.on_consumer_thread() {
            // A listener flushing its own bus would wait for itself.
            return;
        }
        let target = self.published.load(Ordering::Acquire);
        let entries = self.pool.registry().entries.clone();
        for entry in entries {
            entry.member.shard.progress.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
                entry.member.is_removed() || entry.joined_at + entry.passed.load(Ordering::Acquire) >= target
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

impl<E: Event, L: Listener<E>> Drop for BusCrateBus<E, L> {
    fn drop(&mut self) {
        self.close();
    }
}

/// The `bus` peer's half of the consumer pool.
struct Consume<E, L> {
    /// The bus's count of events sent.
    published: Arc<CachePadded<AtomicU64>>,
    wait: WaitStrategy,
    _types: PhantomData<fn(E, L)>,
}

impl<E, L> Clone for Consume<E, L> {
    fn clone(&self) -> Self {
        Consume { published: self.published.clone(), wait: self.wait, _types: PhantomData }
    }
}

impl<E: Event, L: Listener<E>> Consumer for Consume<E, L> {
    type Local = Local<E, L>;

    fn member(local: &Self::Local) -> &Membership {
        &local.entry.member
    }

    fn drain(&self, local: &mut Self::Local, shard: &Shard) -> u64 {
        drain(local, shard)
    }

    /// One round: reads every reader; when there was nothing, blocks in the
    /// crate's `recv_timeout` on the first reader (`Park`: a broadcast
    /// reaches every reader, so any one wakes it) or polls.
    fn serve(&self, locals: &mut [Self::Local], commands: &Commands<Self::Local>, shard: &Shard) {
        let mut worked = 0;
        for local in locals.iter_mut() {
            worked += drain(local, shard);
        }
        if worked > 0 {
            shard.progress.notify_all_cheap();
            return;
        }
        shard.progress.notify_all();
        if self.wait == WaitStrategy::Park {
            let local = &mut locals[0];
            if let Ok(event) = local.reader.recv_timeout(IDLE_TIMEOUT) {
                deliver(local, &event, shard);
                local.entry.passed.store(local.passed, Ordering::Release);
            }
        } else {
            shard.doorbell.wait_until(self.wait, None, || {
                let target = self.published.load(Ordering::Acquire);
                !commands.is_empty() || locals.iter().any(|l| l.entry.joined_at + l.passed < target)
            });
        }
    }
}

/// Hands one received event to a subscriber (unless removed or filtered out).
#[inline]
fn deliver<E: Event, L: Listener<E>>(local: &mut Local<E, L>, event: &E, shard: &Shard) {
    local.passed += 1;
    if !local.entry.member.is_removed()
        && local.entry.filter.accepts(event.topic())
        && call_isolated(|| local.listener.on_event(event))
    {
        shard.panics.fetch_add(1, Ordering::Relaxed);
    }
}

/// Delivers up to [`BATCH`] events from one reader; returns how many.
fn drain<E: Event, L: Listener<E>>(local: &mut Local<E, L>, shard: &Shard) -> u64 {
    let start = local.passed;
    while local.passed - start < BATCH {
        let Ok(event) = local.reader.try_recv() else {
            break;
        };
        deliver(local, &event, shard);
        if local.passed.is_multiple_of(PASSED_EVERY) {
            local.entry.passed.store(local.passed, Ordering::Release);
        }
    }
    local.entry.passed.store(local.passed, Ordering::Release);
    local.passed - start
}
