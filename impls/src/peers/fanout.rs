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
//! - **Consumers** (the crate's consumer pool, `pool.rs`, which `channel`
//!   and `bus` share). Subscribers are spread over shards, one thread each: a new
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

use crate::pool::{Commands, Consumer, Member, Membership, Pool, Shard, drain_batch};
use crate::util::{call_isolated, check_filter};
use crate::wait::Notifier;
use crate::{BusConfig, BusError, BusStats, Event, EventBus, Filter, Full, Listener, SubscriptionId, WaitStrategy};
use arc_swap::ArcSwap;
use crossbeam_utils::{Backoff, CachePadded};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// How long a consumer serving one subscriber blocks in the crate's
/// `recv_timeout` before it looks at its control channel again.
const IDLE_TIMEOUT: Duration = Duration::from_millis(1);

/// What publishers and the consumer share about one subscriber.
struct Entry<Q: Queue<E>, E> {
    filter: Filter,
    tx: Q::Tx,
    member: Membership,
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

impl<Q: Queue<E>, E: 'static> Member for Entry<Q, E> {
    fn membership(&self) -> &Membership {
        &self.member
    }
}

/// One subscriber as its consumer thread holds it.
struct Local<Q: Queue<E>, E, L> {
    entry: Arc<Entry<Q, E>>,
    rx: Q::Rx,
    listener: L,
}

/// A fan-out bus over one bounded channel of crate `Q` per subscriber.
pub struct FanoutBus<Q: Queue<E>, E: Event, L: Listener<E>> {
    snapshot: ArcSwap<Vec<Arc<Entry<Q, E>>>>,
    pool: Pool<Entry<Q, E>, Consume<Q, E, L>>,
    capacity: u64,
    topics: usize,
    wait: WaitStrategy,
    single_producer: bool,
}

impl<Q: Queue<E>, E: Event, L: Listener<E>> FanoutBus<Q, E, L> {
    /// Counts one event sent to `entry` and rings its consumer's doorbell.
    #[inline]
    fn sent(&self, entry: &Entry<Q, E>) {
        if self.single_producer {
            let n = entry.enqueued.load(Ordering::Relaxed);
            entry.enqueued.store(n + 1, Ordering::Release);
        } else {
            entry.enqueued.fetch_add(1, Ordering::Release);
        }
        entry.member.shard.doorbell.notify_all_cheap();
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
        entry.member.shard.doorbell.notify_all();
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
        let stats = self.pool.close();
        self.snapshot.store(Arc::new(Vec::new()));
        stats
    }
}

impl<Q: Queue<E>, E: Event, L: Listener<E>> EventBus for FanoutBus<Q, E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(Q::BUS)?;
        Ok(FanoutBus {
            snapshot: ArcSwap::from_pointee(Vec::new()),
            pool: Pool::new(Q::BUS, config.max_threads, Consume { wait: config.wait, _types: PhantomData }),
            capacity: config.capacity as u64,
            topics: config.topics,
            wait: config.wait,
            single_producer: config.producers == 1,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(Q::BUS, filter, self.topics)?;
        let capacity = usize::try_from(self.capacity).expect("came from a usize");
        let id = self.pool.subscribe(
            |member| {
                let (tx, rx) = Q::bounded(capacity);
                let entry = Arc::new(Entry {
                    filter,
                    tx,
                    member,
                    enqueued: CachePadded::new(AtomicU64::new(0)),
                    received: CachePadded::new(AtomicU64::new(0)),
                    done: CachePadded::new(AtomicU64::new(0)),
                    _event: PhantomData,
                });
                (entry.clone(), Local { entry, rx, listener })
            },
            |entries| self.snapshot.store(Arc::new(entries.to_vec())),
        );
        Ok(id)
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        self.pool.unsubscribe(id, |entries| self.snapshot.store(Arc::new(entries.to_vec())))?;
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
                && !e.member.is_removed()
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
        if self.pool.on_consumer_thread() {
            // A listener flushing its own bus would wait for itself.
            return;
        }
        let snapshot = self.snapshot.load_full();
        for entry in snapshot.iter() {
            let target = entry.enqueued.load(Ordering::Acquire);
            entry.member.shard.doorbell.notify_all();
            entry.member.shard.progress.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
                entry.member.is_removed() || entry.done.load(Ordering::Acquire) >= target
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

impl<Q: Queue<E>, E: Event, L: Listener<E>> Drop for FanoutBus<Q, E, L> {
    fn drop(&mut self) {
        self.close();
    }
}

/// The fan-out's half of the consumer pool.
struct Consume<Q, E, L> {
    wait: WaitStrategy,
    _types: PhantomData<fn(Q, E, L)>,
}

impl<Q, E, L> Clone for Consume<Q, E, L> {
    fn clone(&self) -> Self {
        Consume { wait: self.wait, _types: PhantomData }
    }
}

impl<Q: Queue<E>, E: Event, L: Listener<E>> Consumer for Consume<Q, E, L> {
    type Local = Local<Q, E, L>;

    fn member(local: &Self::Local) -> &Membership {
        &local.entry.member
    }

    fn drain(&self, local: &mut Self::Local, shard: &Shard) -> u64 {
        drain(local, shard)
    }

    /// One round: delivers what is queued; when there was nothing, blocks
    /// in the crate's `recv_timeout` (one subscriber, `Park`) or waits on
    /// the doorbell.
    fn serve(&self, locals: &mut [Self::Local], commands: &Commands<Self::Local>, shard: &Shard) {
        let worked: u64 = locals.iter().map(|l| drain(l, shard)).sum();
        if worked > 0 {
            shard.progress.notify_all_cheap();
            return;
        }
        // Idle: a full notification for whoever waits on `done`, then wait.
        shard.progress.notify_all();
        match &*locals {
            [local] if self.wait == WaitStrategy::Park && commands.is_empty() => {
                // One subscriber: block in the crate's own receive.
                if let Recv::Event(event) = Q::recv_timeout(&local.rx, IDLE_TIMEOUT) {
                    deliver_one(local, event, shard);
                }
            }
            _ => shard.doorbell.wait_until(self.wait, Some(Notifier::CHEAP_TIMEOUT), || {
                !commands.is_empty()
                    || locals
                        .iter()
                        .any(|l| l.entry.enqueued.load(Ordering::Acquire) > l.entry.done.load(Ordering::Relaxed))
            }),
        }
    }
}

/// Delivers one event received outside [`drain`].
fn deliver_one<Q: Queue<E>, E: Event, L: Listener<E>>(local: &Local<Q, E, L>, event: E, shard: &Shard) {
    let entry = &*local.entry;
    entry.received.fetch_add(1, Ordering::Release);
    if !entry.member.is_removed() && call_isolated(|| local.listener.on_event(&event)) {
        shard.panics.fetch_add(1, Ordering::Relaxed);
    }
    entry.done.fetch_add(1, Ordering::Release);
}

/// Delivers up to [`BATCH`](crate::pool::BATCH) queued events to one subscriber (discarding them
/// if it was removed); returns how many it took.
#[inline]
fn drain<Q: Queue<E>, E: Event, L: Listener<E>>(local: &Local<Q, E, L>, shard: &Shard) -> u64 {
    let entry = &*local.entry;
    drain_batch(
        &entry.done,
        shard,
        |done| {
            let Recv::Event(event) = Q::try_recv(&local.rx) else {
                return None;
            };
            entry.received.store(done + 1, Ordering::Release);
            Some(event)
        },
        |event| {
            if !entry.member.is_removed() {
                local.listener.on_event(event);
            }
        },
    )
}
