//! `router`-specific edge cases: statically dispatched (enum) handlers,
//! per-topic tables, and the topic contract.

use buslab_impls::payload::{Payload, SmallEvent};
use buslab_impls::router::{Router, RouterBus};
use buslab_impls::{BusConfig, EventBus, Filter, Listener, Strategy};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A statically dispatched handler: the router stores this type itself.
enum Handler {
    Count(Arc<AtomicU64>),
    SumSeq(Arc<AtomicU64>),
}

impl Listener<SmallEvent> for Handler {
    fn on_event(&self, event: &SmallEvent) {
        match self {
            Handler::Count(n) => {
                n.fetch_add(1, Ordering::Relaxed);
            }
            Handler::SumSeq(sum) => {
                sum.fetch_add(event.seq, Ordering::Relaxed);
            }
        }
    }
}

fn bus(topics: usize) -> RouterBus<SmallEvent, Handler> {
    let config = BusConfig { topics, ..BusConfig::default() };
    <Router as Strategy>::Bus::new(&config).expect("valid config")
}

#[test]
fn publish_calls_only_the_topics_handlers() {
    let bus = bus(3);
    let counts: Vec<_> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
    for (t, c) in counts.iter().enumerate() {
        bus.subscribe(Filter::Topic(t as u16), Handler::Count(c.clone())).expect("topic exists");
    }
    let sum = Arc::new(AtomicU64::new(0));
    bus.subscribe(Filter::All, Handler::SumSeq(sum.clone())).expect("subscribe");
    assert_eq!((bus.topics(), bus.handlers(0), bus.handlers(2)), (3, 2, 2));
    for seq in 0..10 {
        bus.publish(SmallEvent::make(0, seq, 1));
    }
    let got: Vec<_> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(got, [0, 10, 0]);
    assert_eq!(sum.load(Ordering::Relaxed), (0..10).sum::<u64>());
}

#[test]
fn unsubscribe_of_an_all_subscriber_leaves_every_topic() {
    let bus = bus(4);
    let id = bus.subscribe(Filter::All, Handler::Count(Arc::default())).expect("subscribe");
    assert!((0..4).all(|t| bus.handlers(t) == 1));
    bus.unsubscribe(id).expect("subscribed");
    assert!((0..4).all(|t| bus.handlers(t) == 0));
}

#[test]
#[should_panic(expected = "outside 0..2")]
fn an_event_outside_the_topic_table_is_a_loud_contract_violation() {
    let bus = bus(2);
    bus.publish(SmallEvent::make(0, 0, 5));
}

#[test]
fn unsubscribe_removes_exactly_its_handler_from_a_shared_topic() {
    let bus = bus(2);
    let counts: Vec<_> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let ids: Vec<_> =
        counts.iter().map(|c| bus.subscribe(Filter::Topic(1), Handler::Count(c.clone())).expect("subscribe")).collect();
    bus.unsubscribe(ids[1]).expect("subscribed");
    bus.publish(SmallEvent::make(0, 0, 1));
    bus.unsubscribe(ids[2]).expect("subscribed");
    bus.publish(SmallEvent::make(0, 1, 1));
    let got: Vec<_> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(got, [2, 0, 1]);
    assert_eq!(bus.handlers(1), 1);
}
