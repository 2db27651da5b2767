//! Loom model of the fixed array's slots (`fixed_array::FixedArrayBus`, the
//! very bus, with loom's atomics, mutex and cells and the `sync::epoch`
//! stand-in swapped in, and 4 slots): a listener is never called while it
//! is written or after it was dropped (loom's cells flag any overlap of a
//! publisher's call with `subscribe`'s write or the grace period's drop as
//! a data race), a retired slot is reused only once no publish can still
//! call it, the shape word's unchecked loop calls only live or in-flight
//! listeners, and a subscriber added while a publisher runs gets a suffix
//! of its stream.
//!
//! Run with `ci/loom.sh`, or:
//! `RUSTFLAGS="--cfg buslab_loom" cargo test -p buslab-impls --test loom_fixed_array --release`.
#![cfg(buslab_loom)]

mod loom_common;

use buslab_impls::fixed_array::{FixedArrayBus, SLOTS};
use buslab_impls::payload::{Payload, SmallEvent};
use buslab_impls::{BusConfig, EventBus, Filter, SubscriptionId};
use loom::thread;
use loom_common::model;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Listener = Box<dyn Fn(&SmallEvent) + Send + Sync>;
type Bus = FixedArrayBus<SmallEvent, Listener>;

fn bus() -> Arc<Bus> {
    Arc::new(Bus::new(&BusConfig { topics: 2, ..BusConfig::default() }).expect("valid config"))
}

/// A listener that counts its calls.
fn counting(calls: &Arc<AtomicU64>) -> Listener {
    let calls = calls.clone();
    Box::new(move |_| {
        calls.fetch_add(1, Ordering::Relaxed);
    })
}

/// A listener that records the sequence numbers it sees.
fn recording(seen: &Arc<Mutex<Vec<u64>>>) -> Listener {
    let seen = seen.clone();
    Box::new(move |e: &SmallEvent| seen.lock().expect("not poisoned").push(e.seq))
}

fn subscribe(bus: &Bus, filter: Filter, listener: Listener) -> SubscriptionId {
    bus.subscribe(filter, listener).expect("a free slot")
}

/// Publishes `seqs` (topic 0) on another thread.
fn publisher(bus: &Arc<Bus>, seqs: std::ops::Range<u64>) -> thread::JoinHandle<()> {
    let bus = bus.clone();
    thread::spawn(move || {
        for seq in seqs {
            bus.publish(SmallEvent::make(0, seq, 0));
        }
    })
}

fn calls(counters: &[Arc<AtomicU64>]) -> Vec<u64> {
    counters.iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

/// Every slot live (the unchecked loop): a listener unsubscribed during a
/// publish is called at most once and dropped after that call; the other is
/// called once.
#[test]
fn unsubscribe_during_an_unchecked_publish() {
    model(3, || {
        let bus = bus();
        let counters = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
        let gone = subscribe(&bus, Filter::All, counting(&counters[0]));
        subscribe(&bus, Filter::All, counting(&counters[1]));
        let publishing = publisher(&bus, 0..1);
        bus.unsubscribe(gone).expect("subscribed");
        publishing.join().expect("publisher");
        let [gone, kept] = calls(&counters)[..] else { unreachable!() };
        assert!(gone <= 1, "the unsubscribed listener was called {gone} times");
        assert_eq!(kept, 1);
    });
}

/// With every slot taken, a new subscriber must wait for the slot just
/// retired while a publisher may still be calling the old listener: the new
/// listener is written only once that call is over (else loom reports the
/// race on the slot), and no event reaches both listeners.
#[test]
fn a_retired_slot_is_reused_only_after_the_publishes_that_saw_it() {
    model(2, || {
        let bus = bus();
        let counters: Vec<_> = (0..SLOTS + 1).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let ids: Vec<_> = counters[..SLOTS].iter().map(|c| subscribe(&bus, Filter::All, counting(c))).collect();
        let publishing = publisher(&bus, 0..1);
        bus.unsubscribe(ids[0]).expect("subscribed");
        subscribe(&bus, Filter::All, counting(&counters[SLOTS]));
        publishing.join().expect("publisher");
        let calls = calls(&counters);
        assert!(calls[1..SLOTS].iter().all(|&c| c == 1), "{calls:?}");
        assert!(calls[0] + calls[SLOTS] <= 1, "{calls:?}: the two listeners shared an event");
    });
}

/// A subscriber added into a hole while a publisher runs (the checked
/// loop) gets a suffix of the stream, in order.
#[test]
fn subscribe_into_a_hole_gets_a_suffix() {
    model(3, || {
        let bus = bus();
        let counter = Arc::new(AtomicU64::new(0));
        let first = subscribe(&bus, Filter::All, counting(&counter));
        subscribe(&bus, Filter::All, counting(&counter));
        // No publish runs: the slot is freed at once, a hole below the end.
        bus.unsubscribe(first).expect("subscribed");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let publishing = publisher(&bus, 0..2);
        subscribe(&bus, Filter::All, recording(&seen));
        publishing.join().expect("publisher");
        let seen = seen.lock().expect("not poisoned").clone();
        assert!(matches!(seen[..], [] | [1] | [0, 1]), "not a suffix: {seen:?}");
        assert_eq!(counter.load(Ordering::Relaxed), 2);
    });
}

/// A topic subscriber added past the end while a publisher runs unfiltered
/// (the unchecked loop) gets a suffix of its topic's stream: once a publish
/// reached it, the next one does too.
#[test]
fn a_topic_subscriber_added_during_unchecked_publishes_gets_a_suffix() {
    model(3, || {
        let bus = bus();
        let counter = Arc::new(AtomicU64::new(0));
        subscribe(&bus, Filter::All, counting(&counter));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let publishing = publisher(&bus, 0..2);
        subscribe(&bus, Filter::Topic(0), recording(&seen));
        publishing.join().expect("publisher");
        let seen = seen.lock().expect("not poisoned").clone();
        assert!(matches!(seen[..], [] | [1] | [0, 1]), "not a suffix: {seen:?}");
        assert_eq!(counter.load(Ordering::Relaxed), 2);
    });
}

/// The race behind conformance's `stress_churn` gaps (a churned subscriber
/// received seq 1, then 9): a publish that read an older, longer shape
/// (with a hole, so it checks states) reaches a subscriber whose state went
/// live before its own shape was stored; if an unsubscribe past it had
/// meanwhile shortened the length, the next publish reads that shorter
/// shape and skips the subscriber. Holds only if the shape covering a
/// joining slot is stored before the slot goes live.
#[test]
fn a_subscriber_reached_through_an_older_longer_shape_gets_every_later_publish() {
    model(3, || {
        let bus = bus();
        let first = Arc::new(AtomicU64::new(0));
        subscribe(&bus, Filter::All, counting(&first));
        let spare = Arc::new(AtomicU64::new(0));
        let hole = subscribe(&bus, Filter::All, counting(&spare));
        let last = subscribe(&bus, Filter::All, counting(&spare));
        // No publish runs: slot 1 is freed at once, a hole below slot 2.
        bus.unsubscribe(hole).expect("subscribed");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let publishing = publisher(&bus, 0..2);
        // The length shrinks to 1, then the new subscriber takes slot 1.
        bus.unsubscribe(last).expect("subscribed");
        subscribe(&bus, Filter::All, recording(&seen));
        publishing.join().expect("publisher");
        let seen = seen.lock().expect("not poisoned").clone();
        assert!(matches!(seen[..], [] | [1] | [0, 1]), "not a suffix: {seen:?}");
        assert_eq!(first.load(Ordering::Relaxed), 2);
    });
}
