//! Tests of the `rtrb` peer's own edges: a publisher waiting on a full ring
//! is released by `unsubscribe` (the consumer side may be stuck in a
//! listener), and a bus built for several producers makes them take turns.

pub mod common;

use buslab_impls::payload::SmallEvent;
use buslab_impls::rtrb::RtrbBus;
use buslab_impls::{BusConfig, EventBus, Filter};
use common::{Boxed, Gate, Recorder, publish_range};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

type Bus = RtrbBus<SmallEvent, Boxed<SmallEvent>>;

fn bus(producers: usize, capacity: usize) -> Bus {
    Bus::new(&BusConfig { producers, capacity, ..BusConfig::default() }).expect("a valid configuration")
}

#[test]
fn unsubscribe_releases_a_publisher_waiting_for_room() {
    let bus = bus(1, 4);
    let (rec, gate) = (Recorder::new(), Gate::new());
    let id = {
        let gate = gate.clone();
        bus.subscribe(Filter::All, rec.listener_with(move |_: &SmallEvent| gate.wait())).expect("subscribe")
    };
    let returned = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            // The listener holds the first event: the ring fills, and this
            // waits for room.
            publish_range(&bus, 0, 0..100);
            returned.store(true, Ordering::SeqCst);
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while gate.arrived() == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(20));
        assert!(!returned.load(Ordering::SeqCst), "the ring (4 slots) cannot have taken 100 events");
        bus.unsubscribe(id).expect("subscribed");
        // The listener is still stuck in its call: the publisher must not
        // wait for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !returned.load(Ordering::SeqCst) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        let released = returned.load(Ordering::SeqCst);
        gate.open();
        assert!(released, "a publisher waiting for room is released by unsubscribe");
    });
    bus.flush();
    bus.shutdown();
    // The chunk the consumer had read before `unsubscribe` (at most the
    // ring, 4 events) is delivered; nothing after it.
    let delivered = rec.count();
    assert!((1..=4).contains(&delivered), "{delivered} events delivered");
    rec.assert_exact("rtrb", &[(0, 0..delivered)]);
    assert!(rec.is_dropped());
}

#[test]
fn several_declared_producers_take_turns() {
    let events = 20_000;
    let bus = bus(2, 64);
    let rec = Recorder::new();
    bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
    thread::scope(|s| {
        for p in 0..2 {
            let bus = &bus;
            s.spawn(move || publish_range(bus, p, 0..events));
        }
    });
    bus.flush();
    rec.assert_exact("rtrb", &[(0, 0..events), (1, 0..events)]);
    bus.shutdown();
}
