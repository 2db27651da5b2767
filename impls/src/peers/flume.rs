//! `flume` fan-out: one bounded `flume` channel per subscriber, drained by at most `max_threads` consumer threads.
//!
//! A peer: `flume` 0.12 (a mutex-guarded `VecDeque` with its own wait lists,
//! blocking senders and receivers park on a signal) in the per-subscriber
//! fan-out that `peers::fanout` describes, the same shape as our `channel`
//! bus built on crossbeam.
//!
//! The wrapping it needed, stated plainly: the crate is a channel, not a
//! bus, so everything around the channels is ours — the `ArcSwap` subscriber
//! list (loaded once per publish), per-subscriber `enqueued`/`done` counters
//! (for `flush`, `try_publish` and the consumers' wake-ups), the consumer
//! threads that serve several subscribers each, and a doorbell those threads
//! sleep on when they serve more than one subscriber (with one, they block in
//! `flume`'s own `recv_timeout`). Publishers send with `try_send`, then, when
//! the channel is full, block in `flume`'s `send` under `WaitStrategy::Park`.
//!
//! Config: `capacity` (per-subscriber bound), `max_threads` (consumer
//! threads), `wait` (see `peers::fanout`), `producers` (1 selects plain
//! stores for the counters) and `topics` (filter validation) apply.
//!
//! # Guarantees
//! - **Ordering:** per producer, FIFO per subscriber (one channel per
//!   subscriber, drained by one thread, one call at a time); no order across
//!   producers or subscribers.
//! - **Delivery:** exactly once to every subscriber whose filter accepts the
//!   event (checked at publish). On unsubscribe, events still queued for it
//!   are discarded. Listener panics are caught and counted.
//! - **Backpressure:** `publish` blocks while an accepting subscriber's
//!   channel holds `capacity` events (in `flume`'s `send` under `Park`);
//!   `try_publish` hands the event back when an accepting subscriber's
//!   channel is full — all-or-nothing with one producer; with
//!   several, a race for the last slot can make it wait (see
//!   `peers::fanout`).
//! - **Allocations per event:** no allocation of ours at steady state, but
//!   `flume` allocates a signal hook whenever a sender or receiver blocks, so
//!   zero is not claimed (`tests/allocations.rs` prints the rate); for
//!   `HeavyEvent`, n − 1 deep clones via `publish` and n via `publish_clone`
//!   for n accepting subscribers. Subscribe allocates (channel, snapshot).
//! - **Threads:** one consumer thread per shard, at most
//!   `BusConfig::max_threads`, spawned by `subscribe` and joined by
//!   `shutdown` or `Drop`; `flume` spawns none.
//!
//! Based on: `flume` 0.12.0 (crates.io), bounded flavour, default features
//!   off.

use crate::peers::fanout::{FanoutBus, Gone, Queue, Recv, TrySend};
use crate::{Capabilities, Event, Listener, PanicPolicy, Strategy};
use std::time::Duration;

/// The `flume` strategy (a peer).
pub struct Flume;

impl Strategy for Flume {
    const NAME: &'static str = "flume";
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
    type Bus<E: Event, L: Listener<E>> = FlumeBus<E, L>;
}

/// The `flume` bus.
pub type FlumeBus<E, L> = FanoutBus<FlumeQueue, E, L>;

/// `flume`'s bounded channel, as [`FanoutBus`] uses it.
pub struct FlumeQueue;

impl<E: Send + 'static> Queue<E> for FlumeQueue {
    const BUS: &'static str = Flume::NAME;
    type Tx = ::flume::Sender<E>;
    type Rx = ::flume::Receiver<E>;

    fn bounded(capacity: usize) -> (Self::Tx, Self::Rx) {
        ::flume::bounded(capacity)
    }

    #[inline]
    fn send(tx: &Self::Tx, event: E) -> Result<(), Gone> {
        tx.send(event).map_err(|_| Gone)
    }

    #[inline]
    fn try_send(tx: &Self::Tx, event: E) -> Result<(), TrySend<E>> {
        tx.try_send(event).map_err(|e| match e {
            ::flume::TrySendError::Full(event) => TrySend::Full(event),
            ::flume::TrySendError::Disconnected(_) => TrySend::Gone,
        })
    }

    #[inline]
    fn try_recv(rx: &Self::Rx) -> Recv<E> {
        match rx.try_recv() {
            Ok(event) => Recv::Event(event),
            Err(::flume::TryRecvError::Empty) => Recv::Empty,
            Err(::flume::TryRecvError::Disconnected) => Recv::Gone,
        }
    }

    fn recv_timeout(rx: &Self::Rx, timeout: Duration) -> Recv<E> {
        match rx.recv_timeout(timeout) {
            Ok(event) => Recv::Event(event),
            Err(::flume::RecvTimeoutError::Timeout) => Recv::Empty,
            Err(::flume::RecvTimeoutError::Disconnected) => Recv::Gone,
        }
    }
}
