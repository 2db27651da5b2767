//! The type-erased baseline: handlers keyed by `TypeId` (and topic) in a hash map behind a read-write lock, events passed as `&dyn Any` and downcast per handler.
//!
//! This is the Rust image of the Go `interface{}` + type-assertion event bus
//! that the typed [`router`](crate::router) replaces. Each publish takes the
//! read lock, hashes `(TypeId, topic)` with the standard SipHash to find the
//! handler list (and again for the subscribers of every topic), and for each
//! handler makes a virtual call through `Box<dyn ErasedHandler>` that
//! downcasts `&dyn Any` back to the event type before calling the listener.
//! Nothing is inlined across that boundary. The read lock is held during the
//! calls (the natural Rust shape: no copy of the handler list), so a
//! listener must not subscribe or unsubscribe from inside its own call
//! (that would deadlock), and a subscriber waits for in-flight publishes.
//!
//! Applicable [`BusConfig`] fields: `topics` (filters are checked against
//! it). `capacity`, `wait`, `max_threads` and `producers` do not apply.
//!
//! # Guarantees
//! - **Ordering:** each subscriber receives a producer's events in publish
//!   order, on that producer's thread; events of different producers may
//!   reach one handler concurrently (readers share the lock).
//! - **Delivery:** exactly once to every subscriber whose filter accepts the
//!   event and that was present for the whole publish; `publish` returns after
//!   the handlers have, so `flush` is a no-op.
//! - **Backpressure:** none needed: handlers run on the publisher's thread;
//!   `try_publish` never refuses. Publishers block only while a subscribe or
//!   unsubscribe holds the write lock.
//! - **Allocations per event:** zero (the event is borrowed as `&dyn Any`;
//!   lookups do not allocate). The cost is in hashing, the lock's atomic
//!   read-modify-writes, virtual calls and downcasts.
//! - **Threads:** none.
//!
//! Based on: the type-erased (`interface{}` + reflection / type assertion)
//! dispatch path measured as the baseline in the Go event-bus articles
//! (842 ns vs 32 ns per dispatch for the static path, on their hardware).

use crate::util::{check_filter, deliver_isolated};
use crate::{
    BusConfig, BusError, Capabilities, Event, EventBus, Filter, Listener, PanicPolicy, Strategy, SubscriptionId, Topic,
};
use crossbeam_utils::CachePadded;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `any_router` strategy.
pub struct AnyRouter;

impl Strategy for AnyRouter {
    const NAME: &'static str = "any_router";
    const CAPABILITIES: Capabilities = Capabilities {
        multi_producer: true,
        asynchronous: false,
        lossy: false,
        bounded: false,
        max_subscribers: None,
        dynamic_subscribe: true,
        native_topics: true,
        panics: PanicPolicy::Isolated,
        zero_alloc_small: true,
        zero_alloc_heavy: true,
        peer: false,
        thread_per_subscriber: false,
    };
    type Bus<E: Event, L: Listener<E>> = AnyRouterBus<E, L>;
}

/// A handler that accepts any event and downcasts it itself.
trait ErasedHandler: Send + Sync {
    fn handle(&self, event: &dyn Any);
}

/// A typed listener behind the erased interface.
struct Typed<E, L> {
    listener: L,
    _event: PhantomData<fn(&E)>,
}

impl<E: Event, L: Listener<E>> ErasedHandler for Typed<E, L> {
    fn handle(&self, event: &dyn Any) {
        // The type assertion of the Go original: a handler registered for
        // another type ignores the event.
        if let Some(event) = event.downcast_ref::<E>() {
            self.listener.on_event(event);
        }
    }
}

/// Routes are keyed by the event's type and its topic (`None`: every topic).
type Key = (TypeId, Option<Topic>);

struct Handler {
    id: u64,
    handler: Box<dyn ErasedHandler>,
}

struct Routes {
    by_key: HashMap<Key, Vec<Handler>>,
    key_of: HashMap<u64, Key>,
    next_id: u64,
}

/// The `any_router` bus: see the module doc.
pub struct AnyRouterBus<E, L> {
    routes: RwLock<Routes>,
    topics: usize,
    panics: CachePadded<AtomicU64>,
    _types: PhantomData<fn(&E, L)>,
}

impl<E: Event, L: Listener<E>> AnyRouterBus<E, L> {
    #[inline]
    fn deliver(&self, event: &E) {
        // A panicking listener is caught inside the lock, so the lock is never
        // poisoned by one; recover the data if it ever is.
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let erased: &dyn Any = event;
        let type_id = erased.type_id();
        let mut panics = 0;
        for key in [(type_id, Some(event.topic())), (type_id, None)] {
            if let Some(handlers) = routes.by_key.get(&key) {
                panics += deliver_isolated(handlers.len(), |i| handlers[i].handler.handle(erased));
            }
        }
        if panics != 0 {
            self.panics.fetch_add(panics, Ordering::Relaxed);
        }
    }
}

impl<E: Event, L: Listener<E>> EventBus for AnyRouterBus<E, L> {
    type Event = E;
    type Listener = L;

    fn new(config: &BusConfig) -> Result<Self, BusError> {
        config.validate(AnyRouter::NAME)?;
        Ok(AnyRouterBus {
            routes: RwLock::new(Routes { by_key: HashMap::new(), key_of: HashMap::new(), next_id: 0 }),
            topics: config.topics,
            panics: CachePadded::new(AtomicU64::new(0)),
            _types: PhantomData,
        })
    }

    fn subscribe(&self, filter: Filter, listener: L) -> Result<SubscriptionId, BusError> {
        check_filter(AnyRouter::NAME, filter, self.topics)?;
        let key = match filter {
            Filter::All => (TypeId::of::<E>(), None),
            Filter::Topic(t) => (TypeId::of::<E>(), Some(t)),
        };
        let handler = Box::new(Typed::<E, L> { listener, _event: PhantomData });
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        let id = routes.next_id;
        routes.next_id += 1;
        routes.by_key.entry(key).or_default().push(Handler { id, handler });
        routes.key_of.insert(id, key);
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let removed = {
            let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
            let Some(key) = routes.key_of.remove(&id.0) else {
                return Err(BusError::UnknownSubscription { bus: AnyRouter::NAME, id });
            };
            let handlers = routes.by_key.get_mut(&key).expect("key_of and by_key agree");
            let index = handlers.iter().position(|h| h.id == id.0).expect("key_of and by_key agree");
            handlers.remove(index)
        };
        // Dropped outside the lock: a listener's drop may be slow.
        drop(removed);
        Ok(())
    }

    crate::util::inline_dispatch!();
}
