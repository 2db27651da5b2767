//! `fixed_array`-specific edge cases: the slot limit, slot reuse (after the
//! epoch grace period) and id uniqueness, and the filter count that lets a
//! publish skip the topic check.

use buslab_impls::fixed_array::{FixedArray, FixedArrayBus, SLOTS};
use buslab_impls::payload::{Payload, SmallEvent};
use buslab_impls::{BusConfig, BusError, EventBus, Filter, Strategy};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

type Listener = Box<dyn Fn(&SmallEvent) + Send + Sync>;

fn counting(n: &Arc<AtomicU64>) -> Listener {
    let n = n.clone();
    Box::new(move |_| {
        n.fetch_add(1, Ordering::Relaxed);
    })
}

fn bus() -> FixedArrayBus<SmallEvent, Listener> {
    <FixedArray as Strategy>::Bus::new(&BusConfig::default()).expect("valid config")
}

#[test]
fn a_freed_slot_is_reused_but_its_id_is_not() {
    let bus = bus();
    let n = Arc::new(AtomicU64::new(0));
    let mut ids: Vec<_> = (0..SLOTS).map(|_| bus.subscribe(Filter::All, counting(&n)).expect("room")).collect();
    assert_eq!(
        bus.subscribe(Filter::All, counting(&n)).err(),
        Some(BusError::SubscriberLimit { bus: "fixed_array", limit: SLOTS })
    );
    let freed = ids.swap_remove(SLOTS / 2);
    bus.unsubscribe(freed).expect("subscribed");
    let reused = bus.subscribe(Filter::All, counting(&n)).expect("a slot is free again");
    assert_ne!(reused, freed, "ids are never reused");
    ids.push(reused);
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), SLOTS);
    bus.publish(SmallEvent::make(0, 0, 0));
    assert_eq!(n.load(Ordering::Relaxed), SLOTS as u64, "every slot is called once");
}

#[test]
fn trailing_unsubscribes_shrink_the_scan() {
    let bus = bus();
    let n = Arc::new(AtomicU64::new(0));
    let ids: Vec<_> = (0..8).map(|_| bus.subscribe(Filter::All, counting(&n)).expect("room")).collect();
    for id in ids.into_iter().rev() {
        bus.unsubscribe(id).expect("subscribed");
    }
    bus.publish(SmallEvent::make(0, 0, 0));
    assert_eq!(n.load(Ordering::Relaxed), 0);
}

/// A slot unsubscribed between live ones is skipped (the shape word says
/// there is a hole, so publishes check each state); a subscriber added next
/// (in that slot once its grace period is over, else past the end) is
/// called, and the old listener never again.
#[test]
fn a_hole_between_live_slots_is_skipped_until_refilled() {
    let bus = bus();
    let counts: Vec<_> = (0..4).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let ids: Vec<_> = counts[..3].iter().map(|n| bus.subscribe(Filter::All, counting(n)).expect("room")).collect();
    let calls = || counts.iter().map(|n| n.load(Ordering::Relaxed)).collect::<Vec<_>>();
    bus.publish(SmallEvent::make(0, 0, 0));
    assert_eq!(calls(), [1, 1, 1, 0]);
    bus.unsubscribe(ids[1]).expect("subscribed");
    bus.publish(SmallEvent::make(0, 1, 0));
    assert_eq!(calls(), [2, 1, 2, 0], "the retired middle slot is skipped");
    bus.subscribe(Filter::All, counting(&counts[3])).expect("room");
    bus.publish(SmallEvent::make(0, 2, 0));
    bus.publish(SmallEvent::make(0, 3, 0));
    assert_eq!(calls(), [4, 1, 4, 2], "the new subscriber is called, the old listener is not");
}

#[test]
fn a_full_array_waits_for_a_retired_slot_except_inside_a_publish() {
    let bus = bus();
    let n = Arc::new(AtomicU64::new(0));
    let ids: Vec<_> = (0..SLOTS).map(|_| bus.subscribe(Filter::All, counting(&n)).expect("room")).collect();
    // Pinned like a publisher (a listener calling `subscribe`): the slot
    // just retired cannot be freed while this thread holds the epoch, so
    // waiting for it would never end.
    let guard = crossbeam_epoch::pin();
    bus.unsubscribe(ids[7]).expect("subscribed");
    assert_eq!(
        bus.subscribe(Filter::All, counting(&n)).err(),
        Some(BusError::SubscriberLimit { bus: "fixed_array", limit: SLOTS }),
        "inside a publish, a full array reports the limit"
    );
    drop(guard);
    bus.subscribe(Filter::All, counting(&n)).expect("outside, subscribe waits for the retired slot");
    bus.publish(SmallEvent::make(0, 0, 0));
    assert_eq!(n.load(Ordering::Relaxed), SLOTS as u64, "every slot is called once");
}

#[test]
fn a_topic_subscriber_added_after_unfiltered_publishes_gets_its_topic() {
    let bus: FixedArrayBus<SmallEvent, Listener> =
        <FixedArray as Strategy>::Bus::new(&BusConfig { topics: 3, ..BusConfig::default() }).expect("valid config");
    let (all, one) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    bus.subscribe(Filter::All, counting(&all)).expect("room");
    // No filtered subscriber yet: these publishes take the loop without
    // the topic check.
    for topic in 0..3 {
        bus.publish(SmallEvent::make(0, 0, topic));
    }
    let id = bus.subscribe(Filter::Topic(1), counting(&one)).expect("room");
    for topic in 0..3 {
        bus.publish(SmallEvent::make(0, 1, topic));
    }
    assert_eq!((all.load(Ordering::Relaxed), one.load(Ordering::Relaxed)), (6, 1));
    bus.unsubscribe(id).expect("subscribed");
    bus.subscribe(Filter::Topic(2), counting(&one)).expect("room");
    for topic in 0..3 {
        bus.publish(SmallEvent::make(0, 2, topic));
    }
    assert_eq!((all.load(Ordering::Relaxed), one.load(Ordering::Relaxed)), (9, 2));
}
