//! Buses that exist only for the harness itself, outside the list of buses
//! under test:
//! - `null`: calls its listeners in-line with nothing in between — the
//!   cost of the harness's own producer loop and verifying listener, measured
//!   with every run and subtracted by no one (it is reported).
//! - Planted faults, for the tests that prove the harness catches them
//!   (reachable by name through the probe; `buslab run` never lists them).
//!   Each is `null` with one fault:
//!   - `drops_one`: one delivery in a million reaches nobody, silently;
//!   - `duplicates_one`: one delivery in a million is made twice;
//!   - `extra_work`: a few extra instructions per publish;
//!   - `delays_one`: one publish in 200 waits 100 µs before delivering.

use buslab_impls::{
    BusConfig, BusError, BusInfo, BusStats, Capabilities, Event, EventBus, Filter, Full, Guarantees, Listener,
    PanicPolicy, Strategy, StrategyVisitor, SubscriptionId,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

const CAPS: Capabilities = Capabilities {
    multi_producer: true,
    asynchronous: false,
    lossy: false,
    bounded: false,
    max_subscribers: None,
    dynamic_subscribe: false,
    native_topics: false,
    panics: PanicPolicy::Isolated,
    zero_alloc_small: true,
    zero_alloc_heavy: true,
    peer: false,
    thread_per_subscriber: false,
};

/// Which fault a [`Direct`] bus carries.
mod fault {
    pub const NONE: u8 = 0;
    pub const DROP: u8 = 1;
    pub const DUPLICATE: u8 = 2;
    pub const EXTRA_WORK: u8 = 3;
    pub const DELAY: u8 = 4;
}

/// `drops_one` and `duplicates_one` hit one delivery in this many.
pub const FAULT_PERIOD: u64 = 1_000_000;
/// `delays_one` delays one publish in this many.
pub const DELAY_PERIOD: u64 = 200;
/// How long `delays_one` delays, ns.
pub const DELAY_NS: u64 = 100_000;

macro_rules! reference_buses {
    ($($(#[$doc:meta])* $ty:ident = $name:literal, $fault:expr;)*) => {
        $(
            $(#[$doc])*
            pub struct $ty;

            impl Strategy for $ty {
                const NAME: &'static str = $name;
                const CAPABILITIES: Capabilities = CAPS;
                type Bus<E: Event, L: Listener<E>> = Direct<E, L, { $fault }>;
            }
        )*

        /// Calls `visitor` with a harness-only bus named `name`.
        pub fn visit<V: StrategyVisitor>(name: &str, visitor: V) -> Option<V::Output> {
            match name {
                $($name => Some(visitor.visit::<$ty>()),)*
                _ => None,
            }
        }

        /// The declared capabilities of the harness-only bus `name`.
        pub fn capabilities(name: &str) -> Option<Capabilities> {
            [$($name),*].contains(&name).then_some(CAPS)
        }
    };
}

reference_buses! {
    /// The `null` reference bus.
    Null = "null", fault::NONE;
    /// The `drops_one` planted fault.
    DropsOne = "drops_one", fault::DROP;
    /// The `duplicates_one` planted fault.
    DuplicatesOne = "duplicates_one", fault::DUPLICATE;
    /// The `extra_work` planted fault.
    ExtraWork = "extra_work", fault::EXTRA_WORK;
    /// The `delays_one` planted fault.
    DelaysOne = "delays_one", fault::DELAY;
}

/// The listeners of a [`Direct`] bus with several topics, frozen at its
/// first publish and grouped by topic so that a publish checks no filter.
struct Topics<L> {
    /// By topic: the listeners of that topic, in subscription order.
    by_topic: Box<[Box<[L]>]>,
    /// The listeners of every topic, in subscription order.
    everywhere: Box<[L]>,
}

/// Listeners called in-line, in subscription order among those of one
/// topic (then those of every topic, when there are several topics), with
/// the fault `FAULT` (one of the `fault` constants).
pub struct Direct<E, L, const FAULT: u8> {
    /// With one topic, every listener in subscription order, frozen at the
    /// first publish (this bus does not subscribe while publishing): a
    /// publish reads one `OnceLock` state and one slice, nothing else.
    one: OnceLock<Box<[L]>>,
    /// With several topics, the listeners frozen at the first publish.
    several: OnceLock<Topics<L>>,
    pending: Mutex<Vec<(Filter, L)>>,
    topics: usize,
    /// Deliveries (`drops_one`, `duplicates_one`) or publishes
    /// (`delays_one`) so far; untouched by `null`.
    ticks: AtomicU64,
    next_id: AtomicU64,
    _event: std::marker::PhantomData<fn(&E)>,
}

impl<E: Event, L: Listener<E>, const FAULT: u8> Direct<E, L, FAULT> {
    fn take_pending(&self) -> Vec<(Filter, L)> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn freeze_several(&self) -> Topics<L> {
        let mut by_topic: Vec<Vec<L>> = (0..self.topics).map(|_| Vec::new()).collect();
        let mut everywhere = Vec::new();
        for (filter, listener) in self.take_pending() {
            match filter {
                Filter::Topic(topic) => by_topic[usize::from(topic)].push(listener),
                Filter::All => everywhere.push(listener),
            }
        }
        Topics { by_topic: by_topic.into_iter().map(Vec::into_boxed_slice).collect(), everywhere: everywhere.into() }
    }

    fn frozen(&self) -> bool {
        self.one.get().is_some() || self.several.get().is_some()
    }

    /// Counts one tick; true on the last of every `period`.
    #[inline(always)]
    fn tick(&self, period: u64) -> bool {
        self.ticks.fetch_add(1, Ordering::Relaxed) % period == period - 1
    }

    #[inline(always)]
    fn call(&self, listener: &L, event: &E) {
        match FAULT {
            fault::DROP if self.tick(FAULT_PERIOD) => {}
            fault::DUPLICATE if self.tick(FAULT_PERIOD) => {
                listener.on_event(event);
                listener.on_event(event);
            }
            _ => listener.on_event(event),
        }
    }

    #[inline(always)]
    fn deliver(&self, event: &E) {
        match FAULT {
            fault::EXTRA_WORK => {
                let mut x = std::hint::black_box(u64::from(event.topic()));
                for _ in 0..2 {
                    x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
                }
            }
            fault::DELAY if self.tick(DELAY_PERIOD) => crate::listener::spin_for(DELAY_NS),
            _ => {}
        }
        if let Some(listeners) = self.one.get() {
            self.call_each(listeners, event);
        } else if self.topics == 1 {
            let listeners = self.one.get_or_init(|| self.take_pending().into_iter().map(|(_, l)| l).collect());
            self.call_each(listeners, event);
        } else {
            let Topics { by_topic, everywhere } = self.several.get_or_init(|| self.freeze_several());
            if let Some(listeners) = by_topic.get(usize::from(event.topic())) {
                self.call_each(listeners, event);
            }
            self.call_each(everywhere, event);
        }
    }

    /// Calls `listeners` in order. In-line everywhere, in the multi-topic
    /// arm too: a call that took the event's address would make the
    /// producer keep the event in memory, and reload its fields after
    /// every listener's stores, even in the one-topic arm.
    #[inline(always)]
    fn call_each(&self, listeners: &[L], event: &E) {
        for listener in listeners {
            self.call(listener, event);
        }
    }
}

impl<E: Event, L: Listener<E>, const FAULT: u8> EventBus for Direct<E, L, FAULT> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate("null")?;
        Ok(Direct {
            one: OnceLock::new(),
            several: OnceLock::new(),
            pending: Mutex::new(Vec::new()),
            topics: config.topics,
            ticks: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            _event: std::marker::PhantomData,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        if let Filter::Topic(topic) = filter
            && usize::from(topic) >= self.topics
        {
            return Err(BusError::UnknownTopic { bus: "null", topic, topics: self.topics });
        }
        if self.frozen() {
            return Err(BusError::Config {
                bus: "null",
                field: "subscribe",
                reason: "the null bus takes subscribers only before its first publish".into(),
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).push((filter, listener));
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        Err(BusError::UnknownSubscription { bus: "null", id })
    }

    #[inline]
    fn publish(&self, event: E) {
        self.deliver(&event);
    }

    #[inline]
    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        self.deliver(&event);
        Ok(())
    }

    // Always in-line: the floor is the harness's loop, not a call into the
    // reference bus.
    #[inline(always)]
    fn publish_clone(&self, event: &E) {
        self.deliver(event);
    }

    fn flush(&self) {}

    fn stats(&self) -> BusStats {
        BusStats::default()
    }

    fn shutdown(self) -> BusStats {
        BusStats::default()
    }
}

/// The reference buses every run measures beside the buses under test, as
/// the plan and the run metadata list them (`drops_one` is for tests only
/// and is not among them).
pub fn all() -> Vec<BusInfo> {
    vec![BusInfo {
        name: Null::NAME,
        summary: "The harness's floor: the producer loop and the verifying listener, called in-line with nothing \
                  in between"
            .to_owned(),
        capabilities: Null::CAPABILITIES,
        guarantees: Guarantees {
            ordering: "per producer, in publish order (in-line)".to_owned(),
            delivery: "exactly once, on the publisher's thread".to_owned(),
            backpressure: "none: a publish returns when every listener has run".to_owned(),
            allocations: "none per event".to_owned(),
            threads: "none of its own".to_owned(),
            based_on: "buslab's harness: a reference, never a winner".to_owned(),
        },
    }]
}
