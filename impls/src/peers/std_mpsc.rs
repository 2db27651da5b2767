//! `std::sync::mpsc` fan-out: one bounded `sync_channel` per subscriber, drained by at most `max_threads` consumer threads.
//!
//! A peer: the standard library's channel (since Rust 1.67 a port of
//! crossbeam-channel; `sync_channel(n)` is its bounded array flavour) in the
//! per-subscriber fan-out that `peers::fanout` describes — what an engineer
//! who adds no dependency writes. It differs from our `channel` bus mainly in
//! the wrapping (below), not in the queue.
//!
//! The wrapping it needed, stated plainly: the crate is a channel, not a
//! bus, so everything around the channels is ours — the `ArcSwap` subscriber
//! list (loaded once per publish), per-subscriber `enqueued`/`done` counters
//! (for `flush`, `try_publish` and the consumers' wake-ups; `std` has no
//! `len`/`is_full`), the consumer threads that serve several subscribers
//! each, and a doorbell those threads sleep on when they serve more than one
//! subscriber (with one, they block in `std`'s own `recv_timeout`).
//! Publishers send with `try_send`, then, when the channel is full, block in
//! `std`'s `send` under `WaitStrategy::Park`.
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
//!   channel holds `capacity` events (in `std`'s `send` under `Park`);
//!   `try_publish` hands the event back when an accepting subscriber's
//!   channel is full — all-or-nothing with one producer; with
//!   several, a race for the last slot can make it wait (see
//!   `peers::fanout`).
//! - **Allocations per event:** none of ours at steady state and the
//!   channel's buffer is preallocated, but a thread that blocks registers in
//!   the channel's waker list, which grows now and then, so zero is not
//!   claimed (`tests/allocations.rs` prints the rate); for `HeavyEvent`,
//!   n − 1 deep clones via `publish` and n via `publish_clone` for n
//!   accepting subscribers. Subscribe allocates (channel, snapshot).
//! - **Threads:** one consumer thread per shard, at most
//!   `BusConfig::max_threads`, spawned by `subscribe` and joined by
//!   `shutdown` or `Drop`.
//!
//! Based on: `std::sync::mpsc::sync_channel` (the Rust standard library of
//!   the toolchain that built the run, recorded as `rustc -V`).

use crate::peers::fanout::{FanoutBus, Gone, Queue, Recv, TrySend};
use crate::{Capabilities, Event, Listener, PanicPolicy, Strategy};
use std::sync::mpsc;
use std::time::Duration;

/// The `std_mpsc` strategy (a peer).
pub struct StdMpsc;

impl Strategy for StdMpsc {
    const NAME: &'static str = "std_mpsc";
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
    type Bus<E: Event, L: Listener<E>> = StdMpscBus<E, L>;
}

/// The `std_mpsc` bus.
pub type StdMpscBus<E, L> = FanoutBus<StdQueue, E, L>;

/// `std::sync::mpsc::sync_channel`, as [`FanoutBus`] uses it.
pub struct StdQueue;

impl<E: Send + 'static> Queue<E> for StdQueue {
    const BUS: &'static str = StdMpsc::NAME;
    type Tx = mpsc::SyncSender<E>;
    type Rx = mpsc::Receiver<E>;

    fn bounded(capacity: usize) -> (Self::Tx, Self::Rx) {
        mpsc::sync_channel(capacity)
    }

    #[inline]
    fn send(tx: &Self::Tx, event: E) -> Result<(), Gone> {
        tx.send(event).map_err(|_| Gone)
    }

    #[inline]
    fn try_send(tx: &Self::Tx, event: E) -> Result<(), TrySend<E>> {
        tx.try_send(event).map_err(|e| match e {
            mpsc::TrySendError::Full(event) => TrySend::Full(event),
            mpsc::TrySendError::Disconnected(_) => TrySend::Gone,
        })
    }

    #[inline]
    fn try_recv(rx: &Self::Rx) -> Recv<E> {
        match rx.try_recv() {
            Ok(event) => Recv::Event(event),
            Err(mpsc::TryRecvError::Empty) => Recv::Empty,
            Err(mpsc::TryRecvError::Disconnected) => Recv::Gone,
        }
    }

    fn recv_timeout(rx: &Self::Rx, timeout: Duration) -> Recv<E> {
        match rx.recv_timeout(timeout) {
            Ok(event) => Recv::Event(event),
            Err(mpsc::RecvTimeoutError::Timeout) => Recv::Empty,
            Err(mpsc::RecvTimeoutError::Disconnected) => Recv::Gone,
        }
    }
}
