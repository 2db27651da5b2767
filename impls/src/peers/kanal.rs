//! `kanal` fan-out: one bounded `kanal` channel per subscriber, drained by at most `max_threads` consumer threads.
//!
//! A peer: `kanal` 0.1 (a mutex-guarded queue whose senders hand an event
//! straight to a waiting receiver; blocked threads wait on a stack-allocated
//! signal, spinning briefly before they park) in the per-subscriber fan-out
//! that `peers::fanout` describes, the same shape as our `channel` bus built
//! on crossbeam.
//!
//! The wrapping it needed, stated plainly: the crate is a channel, not a
//! bus, so everything around the channels is ours — the `ArcSwap` subscriber
//! list (loaded once per publish), per-subscriber `enqueued`/`done` counters
//! (for `flush`, `try_publish` and the consumers' wake-ups), the consumer
//! threads that serve several subscribers each, and a doorbell those threads
//! sleep on when they serve more than one subscriber (with one, they block in
//! `kanal`'s own `recv_timeout`). `kanal`'s `try_send` drops the event when
//! the channel is full, so the adapter uses `try_send_option`, which keeps
//! it; when full, publishers block in `kanal`'s `send` under
//! `WaitStrategy::Park`.
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
//!   channel holds `capacity` events (in `kanal`'s `send` under `Park`);
//!   `try_publish` hands the event back when an accepting subscriber's
//!   channel is full — all-or-nothing with one producer; with
//!   several, a race for the last slot can make it wait (see
//!   `peers::fanout`).
//! - **Allocations per event:** none of ours at steady state and none of
//!   `kanal`'s documented (its queue is a preallocated `VecDeque`, its wait
//!   signals live on the stack), but the consumers' doorbell and the
//!   publishers' `ArcSwap` reads are not proven allocation-free, so zero is
//!   not claimed (`tests/allocations.rs` prints the rate); for `HeavyEvent`,
//!   n − 1 deep clones via `publish` and n via `publish_clone` for n
//!   accepting subscribers. Subscribe allocates (channel, snapshot).
//! - **Threads:** one consumer thread per shard, at most
//!   `BusConfig::max_threads`, spawned by `subscribe` and joined by
//!   `shutdown` or `Drop`; `kanal` spawns none.
//!
//! Based on: `kanal` 0.1.1 (crates.io), bounded sync channel, default
//!   features (async) off.

use crate::peers::fanout::{FanoutBus, Gone, Queue, Recv, TrySend};
use crate::{Capabilities, Event, Listener, PanicPolicy, Strategy};
use std::time::Duration;

/// The `kanal` strategy (a peer).
pub struct Kanal;

impl Strategy for Kanal {
    const NAME: &'static str = "kanal";
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
    type Bus<E: Event, L: Listener<E>> = KanalBus<E, L>;
}

/// The `kanal` bus.
pub type KanalBus<E, L> = FanoutBus<KanalQueue, E, L>;

/// `kanal`'s bounded channel, as [`FanoutBus`] uses it.
pub struct KanalQueue;

impl<E: Send + 'static> Queue<E> for KanalQueue {
    const BUS: &'static str = Kanal::NAME;
    type Tx = ::kanal::Sender<E>;
    type Rx = ::kanal::Receiver<E>;

    fn bounded(capacity: usize) -> (Self::Tx, Self::Rx) {
        ::kanal::bounded(capacity)
    }

    #[inline]
    fn send(tx: &Self::Tx, event: E) -> Result<(), Gone> {
        tx.send(event).map_err(|_| Gone)
    }

    #[inline]
    fn try_send(tx: &Self::Tx, event: E) -> Result<(), TrySend<E>> {
        let mut slot = Some(event);
        match tx.try_send_option(&mut slot) {
            Ok(true) => Ok(()),
            Ok(false) => Err(TrySend::Full(slot.take().expect("kanal keeps the event when it does not send"))),
            Err(_) => Err(TrySend::Gone),
        }
    }

    #[inline]
    fn try_recv(rx: &Self::Rx) -> Recv<E> {
        match rx.try_recv() {
            Ok(Some(event)) => Recv::Event(event),
            Ok(None) => Recv::Empty,
            Err(_) => Recv::Gone,
        }
    }

    fn recv_timeout(rx: &Self::Rx, timeout: Duration) -> Recv<E> {
        match rx.recv_timeout(timeout) {
            Ok(event) => Recv::Event(event),
            Err(::kanal::ReceiveErrorTimeout::Timeout) => Recv::Empty,
            Err(_) => Recv::Gone,
        }
    }
}
