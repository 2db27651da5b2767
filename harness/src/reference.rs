//! Buses that exist only for the harness itself, outside the list of buses
//! under test:
//! - `null`: calls the one listener in-line with nothing in between — the
//!   cost of the harness's own producer loop and verifying listener, measured
//!   with every run and subtracted by no one (it is reported).
//! - `drops_one` (tests only): silently loses one event in a thousand, to
//!   prove that delivery verification fails a cell that loses events.

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

/// The `null` reference bus.
pub struct Null;

impl Strategy for Null {
    const NAME: &'static str = "null";
    const CAPABILITIES: Capabilities = CAPS;
    type Bus<E: Event, L: Listener<E>> = Direct<E, L, false>;
}

/// The `drops_one` test bus.
pub struct DropsOne;

impl Strategy for DropsOne {
    const NAME: &'static str = "drops_one";
    const CAPABILITIES: Capabilities = CAPS;
    type Bus<E: Event, L: Listener<E>> = Direct<E, L, true>;
}

/// Listeners called in-line, in subscription order; with `DROP`, every
/// 1000th publish reaches nobody.
pub struct Direct<E, L, const DROP: bool> {
    /// Frozen at the first publish (this bus does not subscribe while
    /// publishing; reading a `OnceLock` is one load).
    listeners: OnceLock<Vec<(u64, Filter, L)>>,
    pending: Mutex<Vec<(u64, Filter, L)>>,
    published: AtomicU64,
    next_id: AtomicU64,
    _event: std::marker::PhantomData<fn(&E)>,
}

impl<E: Event, L: Listener<E>, const DROP: bool> Direct<E, L, DROP> {
    #[inline]
    fn deliver(&self, event: &E) {
        if DROP && self.published.fetch_add(1, Ordering::Relaxed) % 1000 == 999 {
            return;
        }
        let listeners =
            self.listeners.get_or_init(|| std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner())));
        for (_, filter, listener) in listeners {
            if filter.accepts(event.topic()) {
                listener.on_event(event);
            }
        }
    }
}

impl<E: Event, L: Listener<E>, const DROP: bool> EventBus for Direct<E, L, DROP> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate("null")?;
        Ok(Direct {
            listeners: OnceLock::new(),
            pending: Mutex::new(Vec::new()),
            published: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            _event: std::marker::PhantomData,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        if self.listeners.get().is_some() {
            return Err(BusError::Config {
                bus: "null",
                field: "subscribe",
                reason: "the null bus takes subscribers only before its first publish".into(),
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).push((id, filter, listener));
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        Err(BusError::UnknownSubscription { bus: "null", id })
    }

    fn publish(&self, event: E) {
        self.deliver(&event);
    }

    fn try_publish(&self, event: E) -> Result<(), Full<E>> {
        self.deliver(&event);
        Ok(())
    }

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

/// Calls `visitor` with a harness-only bus named `name`.
pub fn visit<V: StrategyVisitor>(name: &str, visitor: V) -> Option<V::Output> {
    match name {
        "null" => Some(visitor.visit::<Null>()),
        "drops_one" => Some(visitor.visit::<DropsOne>()),
        _ => None,
    }
}
