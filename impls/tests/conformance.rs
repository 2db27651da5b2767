//! The conformance suite: every test here runs against every bus in
//! `for_each_bus!` (like ripgrep's `rgtest!` over regex engines). A test whose
//! premise a bus does not declare (say, boundedness) checks the behaviour the
//! bus declares instead; one that needs more subscribers than a bus holds
//! runs with the subscribers it holds.
//!
//! Test names read `<bus>::<test>`, so `cargo test --test conformance ring::`
//! runs one bus. `BUSLAB_STRESS=N` multiplies the stress loops (default 1).

pub mod common;

use buslab_impls::payload::{Payload, SmallEvent};
use buslab_impls::{BusConfig, BusError, EventBus, Filter, Full, Strategy, SubscriptionId};
use common::checks::{Bus, Dropped};
use common::{
    Gate, OpenOnDrop, Recorder, at_most, blocks, expect_ok, holds, publish_concurrently, publish_range, stress,
    subscribed_recorders,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

fn config(producers: usize, capacity: usize) -> BusConfig {
    BusConfig { producers, capacity, ..BusConfig::default() }
}

fn new_bus<S: Strategy>(cfg: &BusConfig) -> Bus<S> {
    match Bus::<S>::new(cfg) {
        Ok(bus) => bus,
        Err(e) => panic!("{}: building with {cfg:?}: {e}", S::NAME),
    }
}

/// Capacity for a test that must not lose events on a lossy bus: room for
/// every event, so that lag cannot happen.
fn lossless_capacity<S: Strategy>(events: u64) -> usize {
    if S::CAPABILITIES.lossy { events as usize + 16 } else { 1024 }
}

/// On a lossy bus whose producer outruns its subscribers, each missed
/// delivery must be counted: `dropped` covers the `missing` deliveries the
/// recorders saw as gaps, and at most `unseen` more that no recorder can see
/// (positions a subscriber passed before its first or after its last
/// delivery).
#[track_caller]
fn assert_losses_counted(what: &str, dropped: u64, missing: u64, unseen: u64) {
    assert!(
        missing <= dropped && dropped <= missing + unseen,
        "{what}: {missing} deliveries missing (and up to {unseen} unseen), but {dropped} counted as dropped"
    );
}

fn subscribe<S: Strategy>(bus: &Bus<S>, filter: Filter, rec: &Arc<Recorder>) -> SubscriptionId {
    expect_ok(bus.subscribe(filter, rec.listener()), "subscribe")
}

fn exactly_once_in_order<S: Strategy>(subscribers: usize) {
    let events = 2_000 * stress();
    let bus = new_bus::<S>(&config(1, lossless_capacity::<S>(events)));
    let recs = subscribed_recorders(&bus, at_most::<S>(subscribers));
    publish_range(&bus, 0, 0..events);
    bus.flush();
    for (i, rec) in recs.iter().enumerate() {
        rec.assert_exact(&format!("{} subscriber {i}", S::NAME), &[(0, 0..events)]);
    }
    let stats = bus.shutdown();
    assert_eq!(stats.dropped, 0, "{}: no lag is possible here", S::NAME);
    assert_eq!(stats.listener_panics, 0);
    for rec in &recs {
        assert!(rec.is_dropped(), "{}: shutdown must drop every listener", S::NAME);
    }
}

fn several_producers<S: Strategy>() {
    if !S::CAPABILITIES.multi_producer {
        return;
    }
    let producers = 3u32;
    let events = 3_000 * stress();
    let cfg = config(producers as usize, lossless_capacity::<S>(events * producers as u64));
    let bus = new_bus::<S>(&cfg);
    let recs = subscribed_recorders(&bus, 16);
    publish_concurrently(&bus, producers as usize, events, || ());
    bus.flush();
    let expected: Vec<_> = (0..producers).map(|p| (p, 0..events)).collect();
    for (i, rec) in recs.iter().enumerate() {
        rec.assert_exact(&format!("{} subscriber {i}", S::NAME), &expected);
    }
    bus.shutdown();
}

fn unsubscribe_stops_delivery<S: Strategy>() {
    common::checks::unsubscribe_stops_delivery::<S>(new_bus::<S>(&config(1, 1024)), Dropped::AtShutdown);
}

/// Unsubscribes while another thread publishes: no publish that started after
/// `unsubscribe` returned may reach the listener, and the listener is never
/// called after it was dropped.
///
/// The publisher runs flat out while this thread unsubscribes, so a lossy
/// bus that never blocks it may be outrun whatever its room: there, each
/// stream must stay in order without duplicates and every missed delivery
/// must be counted in `dropped`.
fn unsubscribe_while_publishing<S: Strategy>() {
    if !S::CAPABILITIES.dynamic_subscribe {
        return;
    }
    for round in 0..4 * stress() {
        let bus = new_bus::<S>(&config(1, lossless_capacity::<S>(1 << 16)));
        let (a, b) = (Recorder::new(), Recorder::new());
        let id_a = subscribe::<S>(&bus, Filter::All, &a);
        subscribe::<S>(&bus, Filter::All, &b);
        let unsubscribed = AtomicBool::new(false);
        let progress = AtomicU64::new(0);
        let first_after = AtomicU64::new(u64::MAX);
        let mut total = 0;
        thread::scope(|s| {
            let publisher = s.spawn(|| {
                // Publishes until 1000 events after it saw the unsubscribe.
                let mut seq = 0;
                loop {
                    if unsubscribed.load(Ordering::SeqCst) {
                        match first_after.load(Ordering::Relaxed) {
                            u64::MAX => first_after.store(seq, Ordering::Relaxed),
                            cut if seq >= cut + 1_000 => return seq,
                            _ => {}
                        }
                    }
                    bus.publish(SmallEvent::make(0, seq, 0));
                    seq += 1;
                    progress.store(seq, Ordering::Relaxed);
                }
            });
            while progress.load(Ordering::Relaxed) < 1_000 {
                thread::yield_now();
            }
            expect_ok(bus.unsubscribe(id_a), "unsubscribe");
            unsubscribed.store(true, Ordering::SeqCst);
            total = publisher.join().expect("publisher must not panic");
        });
        bus.flush();
        let cut = first_after.load(Ordering::Relaxed);
        let what = format!("{} round {round}", S::NAME);
        if let Some(last) = a.last_seq(0) {
            assert!(last < cut, "{what}: listener got seq {last}, published after unsubscribe returned (cut {cut})");
        }
        if S::CAPABILITIES.lossy {
            a.assert_increasing(&what);
            b.assert_increasing(&what);
            assert_eq!(b.last_seq(0), Some(total - 1), "{what}: the remaining subscriber's stream must run to the end");
            // `a` may have passed positions up to the cut after its last
            // delivery, before it was removed.
            let a_next = a.last_seq(0).map_or(0, |last| last + 1);
            let missing = a.missing_since(0, 0) + b.missing_since(0, 0);
            assert_losses_counted(&what, bus.stats().dropped, missing, cut - a_next);
        } else {
            a.assert_contiguous(&what);
            b.assert_exact(&what, &[(0, 0..total)]);
        }
        bus.shutdown();
        assert!(a.is_dropped(), "{what}: an unsubscribed listener must be dropped by shutdown");
        if S::CAPABILITIES.lossy {
            // Still no reorder, duplicate or call after the drop.
            a.assert_increasing(&what);
        } else {
            a.assert_no_violations(&what);
        }
    }
}

/// A subscriber added while a producer publishes gets a gap-free suffix.
///
/// The publisher runs flat out until 1000 events after the subscription,
/// and a subscribe that contends with it may take long: a lossy bus that
/// never blocks the publisher may be outrun whatever its room. There, each
/// stream must stay in order without duplicates, run to the end, and every
/// missed delivery must be counted in `dropped`.
fn subscribe_while_publishing<S: Strategy>() {
    if !S::CAPABILITIES.dynamic_subscribe {
        return;
    }
    for round in 0..4 * stress() {
        let bus = new_bus::<S>(&config(1, lossless_capacity::<S>(1 << 16)));
        let early = Recorder::new();
        subscribe::<S>(&bus, Filter::All, &early);
        let late = Recorder::new();
        let progress = AtomicU64::new(0);
        let subscribed = AtomicBool::new(false);
        let (mut total, mut before) = (0, 0);
        thread::scope(|s| {
            let publisher = s.spawn(|| {
                // Publishes until 1000 events after it saw the subscription.
                let mut seq = 0;
                let mut end = u64::MAX;
                while seq < end {
                    if end == u64::MAX && subscribed.load(Ordering::SeqCst) {
                        end = seq + 1_000;
                    }
                    bus.publish(SmallEvent::make(0, seq, 0));
                    seq += 1;
                    progress.store(seq, Ordering::Release);
                }
                seq
            });
            while progress.load(Ordering::Relaxed) < 1_000 {
                thread::yield_now();
            }
            // Events published before the subscribe began (Acquire: those
            // publishes happened before it).
            before = progress.load(Ordering::Acquire);
            subscribe::<S>(&bus, Filter::All, &late);
            subscribed.store(true, Ordering::SeqCst);
            total = publisher.join().expect("publisher must not panic");
        });
        bus.flush();
        let what = format!("{} round {round}", S::NAME);
        assert_eq!(late.last_seq(0), Some(total - 1), "{what}: the late subscriber's stream must run to the end");
        if S::CAPABILITIES.lossy {
            early.assert_increasing(&what);
            late.assert_increasing(&what);
            assert_eq!(early.last_seq(0), Some(total - 1), "{what}: the early subscriber's stream must run to the end");
            // The late subscriber joined at a position in `before..=first`:
            // what it passed before its first delivery no recorder sees.
            let first = late.first_seq(0).expect("the late subscriber got events (asserted above)");
            let missing = early.missing_since(0, 0) + late.missing_since(0, first);
            assert_losses_counted(&what, bus.stats().dropped, missing, first - before);
        } else {
            early.assert_exact(&what, &[(0, 0..total)]);
            late.assert_contiguous(&what);
        }
        bus.shutdown();
    }
}

/// A bounded bus under a stuck subscriber refuses with `Full` (handing the
/// event back) and loses nothing; a lossy bus counts every loss; an in-line
/// bus never refuses. A fast subscriber beside it (if the bus holds two)
/// gets everything too.
fn slow_subscriber<S: Strategy>() {
    let caps = S::CAPABILITIES;
    let capacity = 8;
    let bus = new_bus::<S>(&config(1, capacity));
    let fast = Recorder::new();
    let slow = Recorder::new();
    let with_fast = holds::<S>(2);
    if with_fast {
        subscribe::<S>(&bus, Filter::All, &fast);
    }
    let total = 400u64;
    if !caps.asynchronous {
        // Listeners run on the publisher's thread: nothing to back up.
        subscribe::<S>(&bus, Filter::All, &slow);
        for seq in 0..total {
            assert!(bus.try_publish(SmallEvent::make(0, seq, 0)).is_ok(), "{}: an in-line bus never refuses", S::NAME);
        }
        bus.flush();
        slow.assert_exact(S::NAME, &[(0, 0..total)]);
        bus.shutdown();
        return;
    }
    let gate = Gate::new();
    expect_ok(bus.subscribe(Filter::All, slow.gated_listener(gate.clone())), "subscribe");
    if caps.bounded {
        // Opens the gate however this test ends, so that a failed assertion
        // fails rather than hangs in the bus's drop.
        let _opener = OpenOnDrop(gate.clone());
        // First get the stuck listener stuck, so that what fills up is what
        // it will not take (a bus that counts only queued events would
        // otherwise make room when its consumer takes the first one).
        assert!(bus.try_publish(SmallEvent::make(0, 0, 0)).is_ok(), "{}: an empty bus has room", S::NAME);
        let start = Instant::now();
        while gate.arrived() == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{}: the first event never reached the listener",
                S::NAME
            );
            thread::sleep(Duration::from_millis(1));
        }
        let mut seq = 1;
        let refused = loop {
            match bus.try_publish(SmallEvent::make(0, seq, 0)) {
                Ok(()) => seq += 1,
                Err(Full(event)) => {
                    assert_eq!(event.seq, seq, "{}: Full must hand back the very event", S::NAME);
                    // The fast subscriber may have been behind (a consumer
                    // waking from a park, or not scheduled on a loaded
                    // machine): once it has every accepted event, a refusal
                    // that lasts is the stuck one's doing.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while with_fast && fast.count() < seq && Instant::now() < deadline {
                        thread::sleep(Duration::from_millis(1));
                    }
                    thread::sleep(Duration::from_millis(20));
                    match bus.try_publish(event) {
                        Ok(()) => seq += 1,
                        Err(Full(event)) => break event,
                    }
                }
            }
            assert!(seq < 64 * capacity as u64 + 64, "{}: a bounded bus must refuse once full", S::NAME);
        };
        assert_eq!(refused.seq, seq, "{}: Full must hand back the very event", S::NAME);
        // A blocking publish must wait while the subscriber is stuck.
        let blocked = blocks(|| bus.publish(refused), || gate.open());
        assert!(blocked, "{}: publish must block while full", S::NAME);
        publish_range(&bus, 0, seq + 1..total);
        bus.flush();
        if with_fast {
            fast.assert_exact(S::NAME, &[(0, 0..total)]);
        }
        slow.assert_exact(S::NAME, &[(0, 0..total)]);
        assert_eq!(bus.stats().dropped, 0);
    } else {
        // Unbounded or lossy: publish never blocks.
        let start = Instant::now();
        publish_range(&bus, 0, 0..total);
        assert!(start.elapsed() < Duration::from_secs(5), "{}: publish must not block", S::NAME);
        gate.open();
        bus.flush();
        let dropped = bus.stats().dropped;
        let delivered = fast.count() + slow.count();
        let want = if with_fast { 2 * total } else { total };
        assert_eq!(delivered + dropped, want, "{}: every delivery is either made or counted as dropped", S::NAME);
        if !caps.lossy {
            assert_eq!(dropped, 0);
        }
        slow.assert_increasing(S::NAME);
        fast.assert_increasing(S::NAME);
    }
    bus.shutdown();
}

fn try_publish_when_room<S: Strategy>() {
    let bus = new_bus::<S>(&config(1, 1024));
    let rec = Recorder::new();
    subscribe::<S>(&bus, Filter::All, &rec);
    for seq in 0..10 {
        assert!(bus.try_publish(SmallEvent::make(0, seq, 0)).is_ok(), "{}: room for 10 events", S::NAME);
    }
    bus.flush();
    rec.assert_exact(S::NAME, &[(0, 0..10)]);
    bus.shutdown();
}

/// Shutdown without flush delivers everything accepted and joins every
/// thread that ever ran a listener.
fn shutdown_delivers_and_joins<S: Strategy>() {
    let total = 1_000 * stress();
    let bus = new_bus::<S>(&config(1, lossless_capacity::<S>(total).min(64)));
    let slow = |rec: &Arc<Recorder>| rec.slow_listener(Duration::from_micros(5));
    common::checks::shutdown_delivers_and_joins::<S>(bus, total, true, S::CAPABILITIES.lossy, slow);
}

/// Dropping a bus without `shutdown` also delivers and joins.
fn drop_joins<S: Strategy>() {
    let bus = new_bus::<S>(&config(1, 1024));
    common::checks::shutdown_delivers_and_joins::<S>(bus, 100, false, false, |rec| rec.listener());
}

fn panicking_listener_is_isolated<S: Strategy>() {
    common::checks::a_panicking_listener_is_isolated_and_counted::<S>(new_bus::<S>(&config(1, 1024)));
}

fn filters_route_by_topic<S: Strategy>() {
    common::checks::filters_route_by_topic::<S>(new_bus::<S>(&BusConfig { topics: 4, ..config(1, 1024) }));
}

fn subscriber_limit_is_enforced<S: Strategy>() {
    let Some(limit) = S::CAPABILITIES.max_subscribers else {
        return;
    };
    let bus = new_bus::<S>(&config(1, 16));
    let rec = Recorder::new();
    let ids: Vec<_> = (0..limit).map(|_| subscribe::<S>(&bus, Filter::All, &rec)).collect();
    assert_eq!(
        bus.subscribe(Filter::All, rec.listener()).err(),
        Some(BusError::SubscriberLimit { bus: S::NAME, limit }),
        "{}: subscriber {limit} must be refused",
        S::NAME
    );
    expect_ok(bus.unsubscribe(ids[0]), "unsubscribe");
    subscribe::<S>(&bus, Filter::All, &rec);
    bus.shutdown();
}

/// A bus that does not declare `dynamic_subscribe` fixes its subscribers at
/// the first publish: a later `subscribe` is refused with `SubscribersFixed`
/// (never a panic, never a silent subscriber that gets nothing), while
/// `unsubscribe` still stops delivery. A dynamic bus accepts the late
/// subscriber and delivers to it what is published after.
fn late_subscribe<S: Strategy>() {
    let bus = new_bus::<S>(&config(1, 1024));
    let (early, gone, late) = (Recorder::new(), Recorder::new(), Recorder::new());
    // A bus that holds too few keeps only the subscriber that leaves.
    let with_early = holds::<S>(if S::CAPABILITIES.dynamic_subscribe { 3 } else { 2 });
    if with_early {
        subscribe::<S>(&bus, Filter::All, &early);
    }
    let id_gone = subscribe::<S>(&bus, Filter::All, &gone);
    publish_range(&bus, 0, 0..100);
    bus.flush();
    let late_result = bus.subscribe(Filter::All, late.listener());
    expect_ok(bus.unsubscribe(id_gone), "unsubscribe after the first publish");
    publish_range(&bus, 0, 100..200);
    bus.flush();
    if with_early {
        early.assert_exact(S::NAME, &[(0, 0..200)]);
    }
    gone.assert_exact(S::NAME, &[(0, 0..100)]);
    if S::CAPABILITIES.dynamic_subscribe {
        expect_ok(late_result, "a dynamic bus accepts a late subscriber");
        late.assert_exact(S::NAME, &[(0, 100..200)]);
    } else {
        assert_eq!(
            late_result.err(),
            Some(BusError::SubscribersFixed { bus: S::NAME }),
            "{}: a static bus must refuse a subscriber after the first publish",
            S::NAME
        );
        assert_eq!(late.count(), 0);
        assert!(late.is_dropped(), "{}: a refused listener is dropped, not kept", S::NAME);
    }
    bus.shutdown();
    assert!(gone.is_dropped() && (early.is_dropped() || !with_early));
    gone.assert_no_violations(S::NAME);
}

/// Several producers publish while another thread subscribes and unsubscribes
/// in a loop: every subscription sees, per producer, a gap-free range; the
/// permanent subscriber sees everything.
///
/// Each producer waits halfway until two churn rounds have completed, so
/// that churn overlaps publishing however the threads are scheduled (a bus
/// that never blocks its publishers, like a lossy one, could otherwise finish
/// before the churning thread first ran).
fn stress_churn<S: Strategy>() {
    if !S::CAPABILITIES.dynamic_subscribe {
        return;
    }
    let producers: u32 = if S::CAPABILITIES.multi_producer { 2 } else { 1 };
    let events = 20_000 * stress();
    let capacity = lossless_capacity::<S>(events * u64::from(producers)).max(64);
    let bus = new_bus::<S>(&config(producers as usize, capacity));
    let permanent = Recorder::new();
    subscribe::<S>(&bus, Filter::All, &permanent);
    let done = AtomicBool::new(false);
    let rounds = AtomicU64::new(0);
    let churned = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        let publishers: Vec<_> = (0..producers)
            .map(|p| {
                let (bus, rounds) = (&bus, &rounds);
                s.spawn(move || {
                    publish_range(bus, p, 0..events / 2);
                    while rounds.load(Ordering::Acquire) < 2 {
                        thread::yield_now();
                    }
                    publish_range(bus, p, events / 2..events);
                })
            })
            .collect();
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let rec = Recorder::new();
                let id = subscribe::<S>(&bus, Filter::All, &rec);
                thread::yield_now();
                expect_ok(bus.unsubscribe(id), "unsubscribe");
                churned.lock().expect("no panics while held").push(rec);
                rounds.fetch_add(1, Ordering::Release);
            }
        });
        for p in publishers {
            p.join().expect("publisher must not panic");
        }
        done.store(true, Ordering::Relaxed);
    });
    bus.flush();
    let expected: Vec<_> = (0..producers).map(|p| (p, 0..events)).collect();
    permanent.assert_exact(S::NAME, &expected);
    let churned = churned.into_inner().expect("no panics while held");
    for (i, rec) in churned.iter().enumerate() {
        rec.assert_contiguous(&format!("{} churned subscriber {i}", S::NAME));
    }
    bus.shutdown();
    for rec in &churned {
        assert!(rec.is_dropped());
        rec.assert_no_violations(S::NAME);
    }
}

macro_rules! conformance {
    ($($module:ident => $strategy:ident),* $(,)?) => {$(
        mod $module {
            type S = buslab_impls::$module::$strategy;
            #[test] fn exactly_once_in_order_1_subscriber() { super::exactly_once_in_order::<S>(1) }
            #[test] fn exactly_once_in_order_16_subscribers() { super::exactly_once_in_order::<S>(16) }
            #[test] fn exactly_once_in_order_500_subscribers() { super::exactly_once_in_order::<S>(500) }
            #[test] fn several_producers() { super::several_producers::<S>() }
            #[test] fn unsubscribe_stops_delivery() { super::unsubscribe_stops_delivery::<S>() }
            #[test] fn unsubscribe_while_publishing() { super::unsubscribe_while_publishing::<S>() }
            #[test] fn subscribe_while_publishing() { super::subscribe_while_publishing::<S>() }
            #[test] fn slow_subscriber() { super::slow_subscriber::<S>() }
            #[test] fn try_publish_when_room() { super::try_publish_when_room::<S>() }
            #[test] fn shutdown_delivers_and_joins() { super::shutdown_delivers_and_joins::<S>() }
            #[test] fn drop_joins() { super::drop_joins::<S>() }
            #[test] fn panicking_listener_is_isolated() { super::panicking_listener_is_isolated::<S>() }
            #[test] fn filters_route_by_topic() { super::filters_route_by_topic::<S>() }
            #[test] fn subscriber_limit_is_enforced() { super::subscriber_limit_is_enforced::<S>() }
            #[test] fn late_subscribe() { super::late_subscribe::<S>() }
            #[test] fn stress_churn() { super::stress_churn::<S>() }
        }
    )*};
}

buslab_impls::for_each_bus!(conformance);
