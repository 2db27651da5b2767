//! The event buses buslab measures, and the contract they all implement.
//!
//! This crate exists so that every dispatch strategy sits behind one trait,
//! [`EventBus`], with one documented set of guarantees, and so that one list —
//! [`for_each_bus!`] — names them all. The CLI, the conformance suite, the
//! benches and the reports iterate that list; nothing else enumerates buses.
//!
//! # Vocabulary
//! - A **bus** is one dispatch strategy (one module of this crate, whose name is
//!   the bus's stable name and keys the stored history).
//! - An **event** is the value published; its type is generic ([`Event`]).
//! - A **listener** is the closure (or statically typed handler) a subscriber
//!   supplies ([`Listener`]); a **subscriber** is a listener plus its [`Filter`].
//! - A **producer** is a thread that publishes.
//!
//! # How a bus is instantiated
//! Each bus module defines a zero-sized *strategy* type implementing [`Strategy`],
//! whose generic associated type [`Strategy::Bus`] is the bus for a given event and
//! listener type. The harness's timed loops are generic over [`EventBus`], so
//! no dynamic dispatch sits in what is timed; the name → type map is
//! [`visit`] (one `match`, outside the timed region).
//!
//! # Dependencies and why
//! - `crossbeam-channel`: the channel bus's per-subscriber queues (the best-kept
//!   bounded MPMC channel in Rust), and, used plainly, the `crossbeam_channel`
//!   peer the channel bus is measured against.
//! - `crossbeam-utils`: `CachePadded` for sequences and counters, `Backoff` for
//!   the spin phase of wait strategies.
//! - `crossbeam-epoch`: safe memory reclamation for the fixed-array bus, whose
//!   publishers read listener slots without locks.
//! - `crossbeam-queue`: the pooled bus's bounded lock-free free list and queues.
//! - `arc-swap`: copy-on-write listener tables read without locks by the router
//!   (and the subscriber lists of the peers' fan-out).
//! - `tokio`: the `tokio_broadcast` bus is `tokio::sync::broadcast`.
//! - `disruptor`, `bus`, `flume`, `kanal`, `rtrb`: measured as *peers* (module
//!   [`peers`]): the crates an engineer would otherwise pick, each wrapped as
//!   thinly as the contract allows. They are what is measured, not helpers.
//!   `flume` and `kanal` without default features (their async halves are not
//!   used).
//! - `serde`: capabilities are printed as JSON by `buslab list --json`.
//! - `thiserror`: the typed [`BusError`].
//! - `loom` (only under `--cfg buslab_loom`): model checking of the ring's
//!   sequencer and the fixed array's slots (module `sync` swaps its
//!   primitives in).
#![deny(missing_docs)]

pub mod any_router;
pub mod channel;
pub mod fixed_array;
pub mod payload;
pub mod peers;
pub mod pooled;
pub mod ring;
pub mod router;
pub mod wait;

mod pool;
mod registry;
mod sync;
mod util;

#[doc(no_inline)]
pub use peers::{bus, crossbeam_channel, disruptor, flume, kanal, rtrb, std_mpsc, tokio_broadcast};
pub use registry::{BusInfo, Guarantees, StrategyVisitor, all, find, visit};
pub use wait::WaitStrategy;

use serde::Serialize;

/// Names every bus, once, for every place that iterates buses.
///
/// `for_each_bus!(callback)` expands to `callback! { module => Strategy, ... }`
/// with one `module => Type` pair per bus, where `module` is the bus's stable
/// name (a module of this crate: the peers of [`peers`] are re-exported at the
/// root) and `Type` its [`Strategy`] type. The registry ([`all`], [`visit`])
/// and the conformance suite are generated from it. `for_each_bus!(@with_files
/// callback)` adds each module's source file, relative to `src/`:
/// `module => Type in "file.rs"` (the registry reads the `# Guarantees` there).
///
/// ```
/// macro_rules! names {
///     ($($module:ident => $strategy:ident),* $(,)?) => { [$(stringify!($module)),*] };
/// }
/// let names = buslab_impls::for_each_bus!(names);
/// assert!(names.contains(&"ring"));
/// assert!(names.contains(&"disruptor"));
/// ```
#[macro_export]
macro_rules! for_each_bus {
    ($callback:ident) => {
        $crate::for_each_bus! { @list strip $callback }
    };
    (@with_files $callback:ident) => {
        $crate::for_each_bus! { @list keep $callback }
    };
    (@list $mode:ident $callback:ident) => {
        $crate::for_each_bus! { @$mode $callback {
            channel => Channel in "channel.rs",
            tokio_broadcast => TokioBroadcast in "peers/tokio_broadcast.rs",
            fixed_array => FixedArray in "fixed_array.rs",
            pooled => Pooled in "pooled/mod.rs",
            ring => Ring in "ring/mod.rs",
            router => Router in "router.rs",
            any_router => AnyRouter in "any_router.rs",
            disruptor => Disruptor in "peers/disruptor.rs",
            bus => BusCrate in "peers/bus.rs",
            flume => Flume in "peers/flume.rs",
            kanal => Kanal in "peers/kanal.rs",
            std_mpsc => StdMpsc in "peers/std_mpsc.rs",
            crossbeam_channel => CrossbeamChannel in "peers/crossbeam_channel.rs",
            rtrb => Rtrb in "peers/rtrb.rs",
        }}
    };
    (@strip $callback:ident { $($module:ident => $strategy:ident in $file:literal),* $(,)? }) => {
        $callback! { $($module => $strategy),* }
    };
    (@keep $callback:ident { $($tokens:tt)* }) => {
        $callback! { $($tokens)* }
    };
}

/// A topic: the key typed routers dispatch on. Small, dense integers
/// (`0..BusConfig::topics`) so that routers can index a table with them.
pub type Topic = u16;

/// A value that can travel through any bus.
///
/// `Clone` because fan-out buses that queue per subscriber must copy, and
/// `Send + Sync` because listeners on other threads read it. [`Event::topic`]
/// tells routers (and the filtering of the other buses) which topic it belongs
/// to.
pub trait Event: Clone + Send + Sync + 'static {
    /// The topic of this event; must be `< BusConfig::topics` of the bus it is
    /// published on.
    fn topic(&self) -> Topic;
}

/// What a subscriber runs for each event it receives.
///
/// # Contract
/// - A bus never calls one listener concurrently *for events of the same
///   producer*: deliveries to one subscriber of the events published by one
///   thread are sequential and in publish order. (Events of different producers
///   may be delivered concurrently to the same listener by in-line buses, hence
///   `&self` and `Sync`.) The harness relies on this to keep per-producer
///   counters without read-modify-write atomics.
/// - A listener may panic; what the bus then does is its declared
///   [`Capabilities::panics`].
///
/// Every `Fn(&E) + Send + Sync + 'static` closure is a listener; a type with a
/// hand-written `impl` (a `match` over an enum of handler bodies, say) is a
/// statically dispatched listener the compiler can inline.
pub trait Listener<E>: Send + Sync + 'static {
    /// Handles one event.
    fn on_event(&self, event: &E);
}

impl<E, F> Listener<E> for F
where
    F: Fn(&E) + Send + Sync + 'static,
{
    #[inline]
    fn on_event(&self, event: &E) {
        self(event)
    }
}

/// Which events a subscriber receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Filter {
    /// Every event, whatever its topic.
    All,
    /// Only events whose [`Event::topic`] equals this one.
    Topic(Topic),
}

impl Filter {
    /// Whether an event of `topic` passes this filter.
    #[inline]
    pub fn accepts(self, topic: Topic) -> bool {
        match self {
            Filter::All => true,
            Filter::Topic(t) => t == topic,
        }
    }
}

/// The handle [`EventBus::subscribe`] returns; pass it to
/// [`EventBus::unsubscribe`]. Unique for the life of one bus (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SubscriptionId(pub u64);

/// An event [`EventBus::try_publish`] could not accept, handed back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Full<E>(pub E);

impl<E> std::fmt::Debug for Full<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<E> std::fmt::Display for Full<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the bus is full; the event was handed back")
    }
}

impl<E> std::error::Error for Full<E> {}

/// What can go wrong building a bus or managing subscriptions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// A [`BusConfig`] value the bus cannot work with.
    #[error("bus `{bus}`: invalid configuration `{field}`: {reason}")]
    Config {
        /// The bus's stable name.
        bus: &'static str,
        /// The offending field of [`BusConfig`].
        field: &'static str,
        /// What is allowed.
        reason: String,
    },
    /// The bus has no room for another subscriber.
    #[error("bus `{bus}`: subscriber limit of {limit} reached")]
    SubscriberLimit {
        /// The bus's stable name.
        bus: &'static str,
        /// Its maximum number of subscribers.
        limit: usize,
    },
    /// The subscription is not (or no longer) on this bus.
    #[error("bus `{bus}`: no subscription {id:?}")]
    UnknownSubscription {
        /// The bus's stable name.
        bus: &'static str,
        /// The handle that was passed.
        id: SubscriptionId,
    },
    /// The bus's subscribers are fixed once publishing has started (it does
    /// not declare [`Capabilities::dynamic_subscribe`]).
    #[error("bus `{bus}`: subscribers are fixed once publishing has started")]
    SubscribersFixed {
        /// The bus's stable name.
        bus: &'static str,
    },
    /// The filter names a topic outside `0..BusConfig::topics`.
    #[error("bus `{bus}`: topic {topic} is outside 0..{topics}")]
    UnknownTopic {
        /// The bus's stable name.
        bus: &'static str,
        /// The topic asked for.
        topic: Topic,
        /// The configured number of topics.
        topics: usize,
    },
}

/// How a bus is built. Every bus accepts every field; a bus to which a field
/// does not apply ignores it (its module doc says which apply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BusConfig {
    /// Queue capacity in events: per subscriber for queueing fan-out buses,
    /// the ring size for ring buses (rounded up to a power of two), the
    /// envelope pool size for the pooled bus. Must be ≥ 1.
    pub capacity: usize,
    /// How threads wait for room or for events.
    pub wait: WaitStrategy,
    /// The most threads the bus may spawn (consumer threads, runtime
    /// workers). Defaults to the number of cores.
    pub max_threads: usize,
    /// How many threads will publish at once. Buses with a single-producer
    /// fast path use it when this is 1 (publishing from more threads than
    /// declared is then a contract violation the bus may not detect).
    pub producers: usize,
    /// Number of topics; events' topics and filters must be below it.
    pub topics: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig { capacity: 1024, wait: WaitStrategy::default(), max_threads: cores(), producers: 1, topics: 1 }
    }
}

impl BusConfig {
    /// Refuses values no bus can work with: zero capacity, threads or
    /// producers, and a topic count outside `1..=65536`. Every bus's
    /// [`EventBus::new`] calls this first.
    pub fn validate(&self, bus: &'static str) -> Result<(), BusError> {
        let bad = |field, reason: &str| Err(BusError::Config { bus, field, reason: reason.to_owned() });
        if self.capacity == 0 {
            return bad("capacity", "must be at least 1");
        }
        if self.max_threads == 0 {
            return bad("max_threads", "must be at least 1");
        }
        if self.producers == 0 {
            return bad("producers", "must be at least 1");
        }
        if self.topics == 0 || self.topics > usize::from(Topic::MAX) + 1 {
            return bad("topics", "must be between 1 and 65536");
        }
        Ok(())
    }
}

/// The number of cores available to this process (at least 1).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What a bus does when a listener panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PanicPolicy {
    /// The panic is caught and counted in [`BusStats::listener_panics`]; every
    /// other listener still gets the event, and the panicking listener stays
    /// subscribed.
    Isolated,
}

/// What a bus can do, declared in code so that the harness can skip a cell
/// that does not apply and say why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Several threads may publish at once.
    pub multi_producer: bool,
    /// Listeners run on threads the bus owns (`true`) or in-line on the
    /// publisher's thread (`false`).
    pub asynchronous: bool,
    /// The bus may drop events by design (every drop is counted in
    /// [`BusStats::dropped`]); a lossless bus never drops.
    pub lossy: bool,
    /// `publish` may block and `try_publish` may hand the event back.
    pub bounded: bool,
    /// The most subscribers the bus holds, if limited.
    pub max_subscribers: Option<usize>,
    /// Subscribing and unsubscribing while others publish is supported. When
    /// false, the subscribers are fixed once the first event is published: a
    /// later `subscribe` returns [`BusError::SubscribersFixed`] (`unsubscribe`
    /// still works; the conformance suite checks both).
    pub dynamic_subscribe: bool,
    /// Topic filtering happens in the bus's routing structure (`true`) rather
    /// than by a check at delivery (`false`).
    pub native_topics: bool,
    /// What happens when a listener panics.
    pub panics: PanicPolicy,
    /// Claimed: at steady state, publishing a small `Copy` event allocates
    /// nothing (on any thread). Checked by the allocation test and pass.
    pub zero_alloc_small: bool,
    /// Claimed: at steady state, `publish_clone` of a heavy event whose
    /// `Clone::clone_from` reuses buffers allocates nothing (on any thread).
    pub zero_alloc_heavy: bool,
    /// A well-known crate wrapped as an adapter, rather than a strategy of
    /// ours.
    pub peer: bool,
    /// The bus runs one thread per subscriber whatever
    /// [`BusConfig::max_threads`] says (as a peer's users would wire it):
    /// the harness skips cells where those threads and the producers exceed
    /// the cores, unless the scenario allows oversubscribing.
    pub thread_per_subscriber: bool,
}

/// Counters a bus keeps that the harness reads after each trial.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BusStats {
    /// Deliveries lost by design (only a lossy bus may make this non-zero);
    /// one per subscriber that missed one event.
    pub dropped: u64,
    /// Listener calls that panicked (and were caught).
    pub listener_panics: u64,
}

/// The contract every dispatch strategy implements.
///
/// # What the harness relies on
/// - **Exactly once.** Every event whose `publish` (or successful
///   `try_publish`) returned is delivered exactly once to every subscriber
///   whose filter accepts it and that was subscribed for the whole interval
///   from before the publish began until after [`EventBus::flush`] returned —
///   unless the bus is [`lossy`](Capabilities::lossy), in which case each
///   missed delivery is counted in [`BusStats::dropped`]. No silent drop, ever.
/// - **Per-producer FIFO.** A subscriber receives the events of one producer
///   in the order that producer published them, one call at a time.
/// - **Suffix on subscribe.** A subscriber added while others publish receives
///   a gap-free suffix of each producer's stream (possibly empty), never a
///   duplicate.
/// - **Unsubscribe.** After [`EventBus::unsubscribe`] returns, no `publish`
///   that starts afterwards delivers to that listener; a call already in flight
///   may complete. The listener is dropped only after its last call returned,
///   never while in use.
/// - **Backpressure.** A bounded bus's `publish` blocks until there is room;
///   `try_publish` never blocks and hands the event back in [`Full`]. Neither
///   drops.
/// - **Flush.** [`EventBus::flush`] returns once every event published before
///   the call has been delivered (listener returned) to every subscriber.
/// - **Shutdown.** [`EventBus::shutdown`] delivers everything accepted, then
///   joins every thread the bus spawned. Dropping a bus without calling it
///   does the same.
/// - **Allocations.** A bus documents its heap allocations per event in its
///   module doc; the allocation pass measures the claim.
///
/// # Threads
/// The bus is `Sync`: the harness shares `&bus` among producer threads and may
/// subscribe and unsubscribe from yet another thread (if
/// [`Capabilities::dynamic_subscribe`]).
pub trait EventBus: Send + Sync + Sized {
    /// The event type.
    type Event: Event;
    /// The listener type (a closure type, a boxed closure, or a static
    /// handler).
    type Listener: Listener<Self::Event>;

    /// Builds an empty bus (no subscribers), spawning no more than
    /// `config.max_threads` threads.
    fn new(config: &BusConfig) -> Result<Self, BusError>;

    /// Adds a subscriber. It receives the events its filter accepts from some
    /// point during this call on (see *Suffix on subscribe*).
    fn subscribe(&self, filter: Filter, listener: Self::Listener) -> Result<SubscriptionId, BusError>;

    /// Removes a subscriber (see *Unsubscribe* for when delivery stops).
    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError>;

    /// Publishes one event, blocking while a bounded bus is full.
    fn publish(&self, event: Self::Event);

    /// Publishes one event if it can without blocking; otherwise hands it back.
    fn try_publish(&self, event: Self::Event) -> Result<(), Full<Self::Event>>;

    /// Publishes a copy of `event`. The bus decides how to copy: buses with
    /// preallocated slots override this with `Clone::clone_from` into a slot,
    /// reusing the slot's buffers, so that a heavy event costs no allocation.
    fn publish_clone(&self, event: &Self::Event) {
        self.publish(event.clone());
    }

    /// Publishes copies of `events` in order, as one batch where the bus can
    /// (a ring claims all slots at once). Equivalent to calling
    /// [`EventBus::publish_clone`] on each.
    fn publish_batch(&self, events: &[Self::Event]) {
        for event in events {
            self.publish_clone(event);
        }
    }

    /// Waits until every event published before this call has been delivered.
    fn flush(&self);

    /// The bus's counters so far.
    fn stats(&self) -> BusStats;

    /// Delivers everything accepted, joins every thread, and returns the final
    /// counters.
    fn shutdown(self) -> BusStats;
}

/// A dispatch strategy: the name, declared capabilities and the bus type
/// for any event and listener type.
pub trait Strategy: 'static {
    /// Stable name; equals the module name and keys the stored history.
    const NAME: &'static str;
    /// Declared capabilities (the conformance suite checks them).
    const CAPABILITIES: Capabilities;
    /// The bus carrying events `E` to listeners `L`.
    type Bus<E: Event, L: Listener<E>>: EventBus<Event = E, Listener = L>;
}
