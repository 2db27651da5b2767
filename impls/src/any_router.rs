//! STUB: any_router — to be written.
//!
//! # Guarantees
//! - **Ordering:** TODO
//!
//! Based on: TODO

use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener,
    PanicPolicy, Strategy, SubscriptionId,
};
use std::marker::PhantomData;

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
        native_topics: false,
        panics: PanicPolicy::Isolated,
        peer: false,
    };
    type Bus<E: Event, L: Listener<E>> = AnyRouterBus<E, L>;
}

/// The `any_router` bus.
pub struct AnyRouterBus<E, L>(PhantomData<fn(E, L)>);

impl<E: Event, L: Listener<E>> EventBus for AnyRouterBus<E, L> {
    type Event = E;
    type Listener = L;
    fn new(_config: &BusConfig) -> Result<Self, BusError> {
        unimplemented!()
    }
    fn subscribe(&self, _filter: Filter, _listener: L) -> Result<SubscriptionId, BusError> {
        unimplemented!()
    }
    fn unsubscribe(&self, _id: SubscriptionId) -> Result<(), BusError> {
        unimplemented!()
    }
    fn publish(&self, _event: E) {
        unimplemented!()
    }
    fn try_publish(&self, _event: E) -> Result<(), Full<E>> {
        unimplemented!()
    }
    fn flush(&self) {
        unimplemented!()
    }
    fn stats(&self) -> BusStats {
        unimplemented!()
    }
    fn shutdown(self) -> BusStats {
        unimplemented!()
    }
}
