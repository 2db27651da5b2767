//! Test bodies that several per-bus test files run on their own bus, built
//! with their own configuration (which the bus's tests are about). Each
//! takes the bus, runs, checks with [`Tally`] listeners (lossy ones for a
//! bus that declares `lossy`), and shuts the bus down.

use super::{
    Listener, Recorder, Tally, at_most, holds, publish_concurrently, publish_range, publish_until,
    quiet_expected_panics, subscribe_tallies,
};
use buslab_impls::payload::{Payload, SmallEvent};
use buslab_impls::{BusError, EventBus, Filter, Strategy, SubscriptionId, Topic};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// `S`'s bus for the small events and boxed listeners of these checks.
pub type Bus<S> = <S as Strategy>::Bus<SmallEvent, Listener>;

/// A tally for a subscriber that may, on a lossy bus, miss events.
fn tally<S: Strategy>(producers: usize) -> Arc<Tally> {
    if S::CAPABILITIES.lossy { Tally::lossy(producers) } else { Tally::exact(producers) }
}

/// `events` from one producer reach each of `subscribers` exactly once, in
/// order, by the time `flush` returns; nothing is dropped (give a lossy
/// bus room for every event).
pub fn exactly_once_in_order<S: Strategy>(bus: Bus<S>, subscribers: usize, events: u64) {
    let tallies: Vec<_> = (0..subscribers).map(|_| Tally::exact(1)).collect();
    subscribe_tallies(&bus, &tallies);
    publish_range(&bus, 0, 0..events);
    bus.flush();
    for t in &tallies {
        t.assert_all("flush returned before delivery", 1, events);
    }
    let stats = bus.shutdown();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.listener_panics, 0);
}

/// `events` from each of `producers` threads reach each of `subscribers`
/// exactly once, in per-producer order (room for every event on a lossy
/// bus).
pub fn several_producers<S: Strategy>(bus: Bus<S>, producers: usize, subscribers: usize, events: u64) {
    let tallies: Vec<_> = (0..subscribers).map(|_| Tally::exact(producers)).collect();
    subscribe_tallies(&bus, &tallies);
    publish_concurrently(&bus, producers, events, || ());
    bus.flush();
    for t in &tallies {
        t.assert_all("several producers", producers, events);
    }
    assert_eq!(bus.shutdown().dropped, 0);
}

/// Fifty subscribers are served by 1 to `max` threads.
pub fn listener_threads_at_most<S: Strategy>(bus: Bus<S>, max: usize) {
    let threads = Arc::new(Mutex::new(HashSet::new()));
    for _ in 0..50 {
        let threads = threads.clone();
        let listener = Box::new(move |_: &SmallEvent| {
            threads.lock().expect("not poisoned").insert(thread::current().id());
        });
        bus.subscribe(Filter::All, listener).expect("subscribe");
    }
    publish_range(&bus, 0, 0..100);
    bus.flush();
    let used = threads.lock().expect("not poisoned").len();
    assert!((1..=max).contains(&used), "{used} listener threads for at most {max}");
    bus.shutdown();
}

/// When a bus must have dropped an unsubscribed listener.
pub enum Dropped {
    /// By the time `shutdown` returns.
    AtShutdown,
    /// Soon after `unsubscribe`, even if nothing more is published.
    Soon,
    /// Soon after the next events are published.
    AfterNextEvents,
}

/// After `unsubscribe`, a listener gets nothing more, and the bus drops it
/// (no later than `dropped` says) and never calls it again; another
/// subscriber (if the bus holds two) gets everything; and unsubscribing an
/// unknown subscription is refused.
pub fn unsubscribe_stops_delivery<S: Strategy>(bus: Bus<S>, dropped: Dropped) {
    let wait_for_drop = |a: &Recorder| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !a.is_dropped() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert!(a.is_dropped(), "{}: an unsubscribed listener is dropped soon", S::NAME);
    };
    let (a, b) = (Recorder::new(), Recorder::new());
    let id_a = bus.subscribe(Filter::All, a.listener()).expect("subscribe");
    let two = holds::<S>(2);
    if two {
        bus.subscribe(Filter::All, b.listener()).expect("subscribe");
    }
    publish_range(&bus, 0, 0..100);
    bus.flush();
    bus.unsubscribe(id_a).expect("unsubscribe");
    if let Dropped::Soon = dropped {
        wait_for_drop(&a);
    }
    publish_range(&bus, 0, 100..200);
    bus.flush();
    if let Dropped::AfterNextEvents = dropped {
        wait_for_drop(&a);
    }
    a.assert_exact(S::NAME, &[(0, 0..100)]);
    if two {
        b.assert_exact(S::NAME, &[(0, 0..200)]);
    }
    assert_eq!(
        bus.unsubscribe(id_a),
        Err(BusError::UnknownSubscription { bus: S::NAME, id: id_a }),
        "{}: a second unsubscribe must say the subscription is unknown",
        S::NAME
    );
    assert_eq!(
        bus.unsubscribe(SubscriptionId(u64::MAX)),
        Err(BusError::UnknownSubscription { bus: S::NAME, id: SubscriptionId(u64::MAX) })
    );
    bus.shutdown();
    assert!(a.is_dropped() && (b.is_dropped() || !two));
    a.assert_no_violations(S::NAME);
}

/// A listener unsubscribed while a producer publishes is dropped by the
/// time `unsubscribe` returns and is never called again; another
/// subscriber keeps its per-producer order.
pub fn unsubscribe_stops_delivery_and_drops_the_listener<S: Strategy>(bus: Bus<S>) {
    let gone = tally::<S>(1);
    let pause = |_: &SmallEvent| thread::sleep(Duration::from_micros(50));
    let id = bus.subscribe(Filter::All, gone.listener_with(pause)).expect("subscribe");
    let other = tally::<S>(1);
    bus.subscribe(Filter::All, other.listener()).expect("subscribe");
    let (stop, published) = (AtomicBool::new(false), AtomicU64::new(0));
    thread::scope(|s| {
        s.spawn(|| publish_until(&bus, &stop, &published, true));
        thread::sleep(Duration::from_millis(20));
        bus.unsubscribe(id).expect("subscribed");
        assert!(gone.is_dropped(), "listener not dropped");
        let frozen = gone.count();
        thread::sleep(Duration::from_millis(20));
        assert_eq!(gone.count(), frozen, "called after return");
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(gone.errors(), 0, "out of order, or called after it was dropped");
    assert_eq!(bus.unsubscribe(id), Err(BusError::UnknownSubscription { bus: S::NAME, id }));
    bus.flush();
    assert_eq!(other.errors(), 0);
    bus.shutdown();
}

/// A listener may unsubscribe itself; it is not called again, and it holds
/// no strong reference to the bus.
pub fn unsubscribe_from_inside_the_listener<S: Strategy>(bus: Bus<S>) {
    let bus = Arc::new(bus);
    let calls = Arc::new(AtomicU64::new(0));
    let me = Arc::new(Mutex::new(None));
    let id = {
        let (bus_weak, calls, me) = (Arc::downgrade(&bus), calls.clone(), me.clone());
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &SmallEvent| {
                calls.fetch_add(1, Ordering::SeqCst);
                if e.seq == 3
                    && let (Some(bus), Some(id)) = (bus_weak.upgrade(), *me.lock().expect("not poisoned"))
                {
                    bus.unsubscribe(id).expect("subscribed");
                }
            }),
        )
        .expect("subscribe")
    };
    *me.lock().expect("not poisoned") = Some(id);
    publish_range(&*bus, 0, 0..100);
    bus.flush();
    thread::sleep(Duration::from_millis(10));
    assert_eq!(calls.load(Ordering::SeqCst), 4, "no call after unsubscribe");
    // The listener held a Weak only; the bus is ours again.
    let bus = Arc::into_inner(bus).expect("no listener holds the bus");
    bus.shutdown();
}

/// Four subscribers added while two producers publish `events` each get a
/// gap-free suffix of each producer's stream, running to its end (room for
/// every event on a lossy bus).
pub fn subscribe_while_publishing_gets_a_gap_free_suffix<S: Strategy>(bus: Bus<S>, events: u64) {
    let late: Vec<_> = (0..4).map(|_| Tally::suffix(2)).collect();
    publish_concurrently(&bus, 2, events, || {
        for t in &late {
            thread::sleep(Duration::from_millis(2));
            bus.subscribe(Filter::All, t.listener()).expect("subscribe");
        }
    });
    bus.flush();
    for t in &late {
        t.assert_suffix("late subscriber", events);
    }
    assert_eq!(bus.shutdown().dropped, 0);
}

/// `shutdown` (`explicit`) or drop, without a flush, delivers all of
/// `total` events to four subscribers (or as many as the bus holds), whose
/// listeners `listener` makes
/// (slow ones leave a backlog), drops the listeners, and joins every thread
/// that ran them. Unless `may_lose` (a lossy bus given less room than
/// `total`), every subscriber gets every event in order; if it may lose,
/// each subscriber's events still increase and, on `shutdown`, every loss
/// is counted.
pub fn shutdown_delivers_and_joins<S: Strategy>(
    bus: Bus<S>,
    total: u64,
    explicit: bool,
    may_lose: bool,
    listener: impl Fn(&Arc<Recorder>) -> Listener,
) {
    let recs: Vec<_> = (0..at_most::<S>(4)).map(|_| Recorder::new()).collect();
    for rec in &recs {
        bus.subscribe(Filter::All, listener(rec)).expect("subscribe");
    }
    publish_range(&bus, 0, 0..total);
    let stats = if explicit {
        Some(bus.shutdown())
    } else {
        drop(bus);
        None
    };
    for (i, rec) in recs.iter().enumerate() {
        let what = format!("{} subscriber {i}", S::NAME);
        if may_lose {
            rec.assert_increasing(&what);
        } else {
            rec.assert_exact(&what, &[(0, 0..total)]);
        }
        assert!(rec.is_dropped(), "{what}: listener not dropped by shutdown");
        assert_eq!(rec.live_threads(), 0, "{what}: a thread that ran this listener outlived shutdown");
    }
    if let Some(stats) = stats {
        let delivered: u64 = recs.iter().map(|r| r.count()).sum();
        let want = recs.len() as u64 * total;
        assert_eq!(delivered + stats.dropped, want, "{}: lost deliveries must be counted", S::NAME);
        assert_eq!(stats.listener_panics, 0);
    }
}

/// A listener that records, sleeping 100 µs before every 100th event (a
/// consumer that falls behind now and then).
pub fn pausing_now_and_then(rec: &Arc<Recorder>) -> Listener {
    rec.listener_with(|e: &SmallEvent| {
        if e.seq.is_multiple_of(100) {
            thread::sleep(Duration::from_micros(100));
        }
    })
}

/// A listener that records, then panics on every third event, stays
/// subscribed and gets every event; its neighbours (if the bus holds three
/// subscribers) get every event too; and each panic is counted, by `stats`
/// and by `shutdown`.
pub fn a_panicking_listener_is_isolated_and_counted<S: Strategy>(bus: Bus<S>) {
    quiet_expected_panics();
    let total = 300;
    let neighbours = holds::<S>(3);
    let (before, panicky, after) = (Recorder::new(), Recorder::new(), Recorder::new());
    if neighbours {
        bus.subscribe(Filter::All, before.listener()).expect("subscribe");
    }
    bus.subscribe(Filter::All, panicky.panicking_listener(3)).expect("subscribe");
    if neighbours {
        bus.subscribe(Filter::All, after.listener()).expect("subscribe");
    }
    publish_range(&bus, 0, 0..total);
    bus.flush();
    if neighbours {
        before.assert_exact(&format!("{} before", S::NAME), &[(0, 0..total)]);
        after.assert_exact(&format!("{} after", S::NAME), &[(0, 0..total)]);
    }
    panicky.assert_exact(&format!("{}: the panicking listener stays subscribed", S::NAME), &[(0, 0..total)]);
    assert_eq!(bus.stats().listener_panics, total / 3, "{}: every caught panic is counted", S::NAME);
    assert_eq!(bus.shutdown().listener_panics, total / 3, "{}: and still counted at shutdown", S::NAME);
}

/// A listener that panics on every tenth event stays subscribed, the
/// others get every event, and each panic is counted.
pub fn a_panicking_listener_does_not_poison_the_bus<S: Strategy>(bus: Bus<S>) {
    quiet_expected_panics();
    let calls = Arc::new(AtomicU64::new(0));
    {
        let calls = calls.clone();
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &SmallEvent| {
                calls.fetch_add(1, Ordering::Relaxed);
                if e.seq.is_multiple_of(10) {
                    panic!("listener fails (expected in this test)");
                }
            }),
        )
        .expect("subscribe");
    }
    let good = Tally::exact(1);
    bus.subscribe(Filter::All, good.listener()).expect("subscribe");
    let events = 1_000;
    publish_range(&bus, 0, 0..events);
    bus.flush();
    assert_eq!(calls.load(Ordering::Relaxed), events, "stays subscribed");
    good.assert_all("the good listener", 1, events);
    assert_eq!(bus.stats().listener_panics, events / 10);
    assert_eq!(bus.shutdown().listener_panics, events / 10);
}

/// `flush` returns only after slow listeners have taken every earlier
/// event; on an idle bus, and on `empty` (no subscribers), it returns at
/// once.
pub fn flush_waits_for_slow_listeners<S: Strategy>(bus: Bus<S>, empty: Bus<S>) {
    let tallies: Vec<_> = (0..2).map(|_| Tally::exact(1)).collect();
    for t in &tallies {
        let pause = |_: &SmallEvent| thread::sleep(Duration::from_micros(20));
        bus.subscribe(Filter::All, t.listener_with(pause)).expect("subscribe");
    }
    for round in 1..=3u64 {
        publish_range(&bus, 0, (round - 1) * 200..round * 200);
        bus.flush();
        for t in &tallies {
            assert_eq!(t.count(), round * 200, "flush returned early");
        }
    }
    bus.flush();
    empty.publish(SmallEvent::make(0, 0, 0));
    empty.flush();
    assert_eq!(bus.shutdown().dropped, 0);
}

/// On `bus`, built with 4 topics, each topic's subscriber gets exactly its
/// topic's events, a subscriber to all gets every event, and a filter
/// outside the topics is refused. A bus holding fewer than five
/// subscribers gets the topic subscribers it holds, from the last topic
/// down, and the subscriber to all only if it holds all five.
pub fn filters_route_by_topic<S: Strategy>(bus: Bus<S>) {
    let topics: Topic = 4;
    let per_topic = 250u64;
    let all = Recorder::new();
    let with_all = holds::<S>(usize::from(topics) + 1);
    if with_all {
        bus.subscribe(Filter::All, all.listener()).expect("subscribe");
    }
    let first = topics - at_most::<S>(usize::from(topics)) as Topic;
    let by_topic: Vec<_> = (first..topics)
        .map(|t| {
            let rec = Recorder::new();
            bus.subscribe(Filter::Topic(t), rec.listener()).expect("subscribe");
            rec
        })
        .collect();
    // Producer id = topic, so each topic's stream is gap-free on its own.
    for seq in 0..per_topic {
        for t in 0..topics {
            bus.publish(SmallEvent::make(u32::from(t), seq, t));
        }
    }
    bus.flush();
    for (t, rec) in (first..topics).zip(&by_topic) {
        rec.assert_exact(&format!("{} topic {t}", S::NAME), &[(u32::from(t), 0..per_topic)]);
    }
    if with_all {
        let expected: Vec<_> = (0..topics).map(|t| (u32::from(t), 0..per_topic)).collect();
        all.assert_exact(S::NAME, &expected);
    }
    assert_eq!(
        bus.subscribe(Filter::Topic(topics), Recorder::new().listener()).err(),
        Some(BusError::UnknownTopic { bus: S::NAME, topic: topics, topics: topics.into() }),
        "{}: a filter outside 0..topics is refused",
        S::NAME
    );
    bus.shutdown();
}
