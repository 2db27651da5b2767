//! Heap allocations per event at steady state, for every bus, counted by a
//! global allocator over every thread of the process (so a bus's own
//! threads count). A bus that claims zero (`Capabilities::zero_alloc_small` /
//! `zero_alloc_heavy`) must show exactly zero; the others print their figure.
//!
//! This file is its own test binary with a single test, so no other test's
//! allocations are counted.

pub mod common;

use buslab_impls::payload::{HeavyEvent, Payload, SmallEvent};
use buslab_impls::{BusConfig, EventBus, Filter, Listener, Strategy};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[global_allocator]
static GLOBAL: common::alloc::CountingAlloc = common::alloc::CountingAlloc;

/// Counts deliveries; allocation-free.
struct Count(Arc<AtomicU64>);

impl<E> Listener<E> for Count {
    fn on_event(&self, _: &E) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Subscribers per bus (or as many as it holds).
const SUBSCRIBERS: usize = 4;
const WARM_UP: u64 = 20_000;
const MEASURED: u64 = 20_000;

/// Allocations per event while publishing `MEASURED` copies of `template`
/// after a warm-up of `WARM_UP`, verifying every delivery.
fn per_event<S: Strategy, E: Payload>(template: &E) -> f64 {
    let config = BusConfig { capacity: 256, ..BusConfig::default() };
    let bus = S::Bus::<E, Count>::new(&config).expect("valid config");
    let delivered = Arc::new(AtomicU64::new(0));
    let subscribers = common::at_most::<S>(SUBSCRIBERS);
    for _ in 0..subscribers {
        bus.subscribe(Filter::All, Count(delivered.clone())).expect("room");
    }
    let mut event = template.clone();
    let mut publish = |range: std::ops::Range<u64>| {
        for seq in range {
            event.set_seq(seq);
            bus.publish_clone(&event);
        }
        bus.flush();
    };
    publish(0..WARM_UP);
    let allocations = common::alloc::allocations_while(|| publish(WARM_UP..WARM_UP + MEASURED));
    let stats = bus.shutdown();
    let want = (WARM_UP + MEASURED) * subscribers as u64;
    assert_eq!(delivered.load(Ordering::SeqCst) + stats.dropped, want, "{}: deliveries lost or duplicated", S::NAME);
    allocations as f64 / MEASURED as f64
}

fn check<S: Strategy>(failures: &mut Vec<String>) {
    let caps = S::CAPABILITIES;
    let small = per_event::<S, _>(&SmallEvent::make(0, 0, 0));
    let heavy = per_event::<S, _>(&HeavyEvent::make(0, 0, 0));
    println!("{:<16} small {small:>8.3} allocs/event   heavy {heavy:>8.3} allocs/event", S::NAME);
    if caps.zero_alloc_small && small != 0.0 {
        failures.push(format!("{} claims zero allocations for small events, measured {small}", S::NAME));
    }
    if caps.zero_alloc_heavy && heavy != 0.0 {
        failures.push(format!("{} claims zero allocations for heavy events, measured {heavy}", S::NAME));
    }
}

macro_rules! check_all {
    ($($module:ident => $strategy:ident),* $(,)?) => {
        #[test]
        fn allocation_claims_hold() {
            let mut failures = Vec::new();
            $( check::<buslab_impls::$module::$strategy>(&mut failures); )*
            assert!(failures.is_empty(), "{failures:#?}");
        }
    };
}

buslab_impls::for_each_bus!(check_all);
