//! STUB: ring — to be written.
//!
//! # Guarantees
//! - **Ordering:** TODO
//!
//! Based on: TODO

use crate::{
    BusConfig, BusError, BusStats, Capabilities, Event, EventBus, Filter, Full, Listener, PanicPolicy, Strategy,
    SubscriptionId,
};
use std::marker::PhantomData;

/// The `ring` strategy.
pub struct Ring;

impl Strategy for Ring {
    const NAME: &'static str = "ring";
    const CAPABILITIES: Capabilities = Capabilities {
        multi_producer: true,
        asynchronous: false,
        lossy: false,
        bounded: false,
        max_subscribers: None,
        dynamic_subscribe: true,
        native_topics: false,
        panics: PanicPolicy::Isolated,
        zero_alloc_small: false,
        zero_alloc_heavy: false,
        peer: false,
    };
    type Bus<E: Event, L: Listener<E>> = RingBus<E, L>;
}

/// The `ring` bus.
pub struct RingBus<E, L>(PhantomData<fn(E, L)>);

impl<E: Event, L: Listener<E>> EventBus for RingBus<E, L> {
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
