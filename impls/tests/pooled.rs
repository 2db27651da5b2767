//! Tests specific to the `pooled` bus: delivery and ordering over sharded
//! workers, backpressure from the envelope pool, subscription changes while
//! publishing, and zero allocations per event at steady state, measured by a
//! counting global allocator.
//!
//! `BUSLAB_STRESS=N` multiplies the stress loops (default 1).

pub mod common;

use buslab_impls::payload::{HeavyEvent, Payload, SmallEvent};
use buslab_impls::pooled::{Pooled, PooledBus};
use buslab_impls::{BusConfig, BusError, Event, EventBus, Filter, Full, Strategy, SubscriptionId, WaitStrategy};
use common::alloc::{count_this_thread, counted};
use common::{
    Boxed, Gate, Recorder, blocks, checks, on_producer_threads, publish_range, publish_until, stress,
    subscribed_recorders,
};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Counts allocations on the threads that opt in: the measuring producer
/// and, from their first listener call on, the bus's workers, so that other
/// tests running in parallel do not disturb the count.
#[global_allocator]
static GLOBAL: common::alloc::CountingAlloc = common::alloc::CountingAlloc;

type Bus<E = SmallEvent> = PooledBus<E, Boxed<E>>;

fn config(capacity: usize, max_threads: usize) -> BusConfig {
    BusConfig { capacity, max_threads, producers: 2, ..BusConfig::default() }
}

fn new_bus<E: Event>(cfg: &BusConfig) -> Bus<E> {
    Bus::<E>::new(cfg).expect("a valid configuration")
}

// ---------------------------------------------------------------------------
// Delivery and ordering
// ---------------------------------------------------------------------------

fn exactly_once_in_order(subscribers: usize, max_threads: usize) {
    let events = 2_000 * stress();
    let bus = new_bus::<SmallEvent>(&config(64, max_threads));
    let recs = subscribed_recorders(&bus, subscribers);
    publish_range(&bus, 0, 0..events);
    bus.flush();
    for (i, rec) in recs.iter().enumerate() {
        rec.assert_exact(&format!("subscriber {i}"), &[(0, 0..events)]);
    }
    let stats = bus.shutdown();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.listener_panics, 0);
    assert!(recs.iter().all(|r| r.is_dropped()), "shutdown drops listeners");
}

#[test]
fn exactly_once_in_order_1_subscriber() {
    exactly_once_in_order(1, 2);
}

#[test]
fn exactly_once_in_order_16_subscribers() {
    exactly_once_in_order(16, 2);
}

#[test]
fn exactly_once_in_order_500_subscribers() {
    exactly_once_in_order(500, 2);
}

#[test]
fn exactly_once_in_order_on_one_and_on_many_workers() {
    exactly_once_in_order(16, 1);
    exactly_once_in_order(16, 5);
}

/// Several producers push into several worker queues in different orders;
/// every subscriber (on every shard) still sees each producer's stream
/// exactly once and in order. HeavyEvent via publish_clone checks that the
/// reused envelope buffers carry the right content.
#[test]
fn several_producers_keep_per_producer_order_on_every_shard() {
    let producers = 3u32;
    let events = 3_000 * stress();
    let bus = new_bus::<HeavyEvent>(&config(32, 4));
    let recs: Vec<_> = (0..16).map(|_| Recorder::new()).collect();
    let corrupt = Arc::new(AtomicU64::new(0));
    for rec in &recs {
        let corrupt = corrupt.clone();
        let listener = rec.listener_with(move |e: &HeavyEvent| {
            if *e != HeavyEvent::make(e.producer, e.seq, 0) {
                corrupt.fetch_add(1, Ordering::Relaxed);
            }
        });
        bus.subscribe(Filter::All, listener).expect("subscribe");
    }
    let publish = |bus: &Bus<HeavyEvent>, p: u32| {
        for seq in 0..events {
            // Alternate the three publish paths.
            let event = HeavyEvent::make(p, seq, 0);
            match seq % 3 {
                0 => bus.publish(event),
                1 => bus.publish_clone(&event),
                _ => bus.publish_batch(std::slice::from_ref(&event)),
            }
        }
    };
    on_producer_threads(&bus, producers as usize, publish, || ());
    bus.flush();
    let expected: Vec<_> = (0..producers).map(|p| (p, 0..events)).collect();
    for (i, rec) in recs.iter().enumerate() {
        rec.assert_exact(&format!("subscriber {i}"), &expected);
    }
    assert_eq!(corrupt.load(Ordering::Relaxed), 0, "events arrive intact");
    bus.shutdown();
}

#[test]
fn publish_batch_delivers_in_order() {
    let bus = new_bus::<SmallEvent>(&config(16, 2));
    let recs = subscribed_recorders(&bus, 3);
    // Batches longer than the pool: the producer must wake the workers
    // before it waits for envelopes.
    let events: Vec<_> = (0..100).map(|s| SmallEvent::make(0, s, 0)).collect();
    for chunk in events.chunks(40) {
        bus.publish_batch(chunk);
    }
    bus.flush();
    for rec in &recs {
        rec.assert_exact("batch", &[(0, 0..100)]);
    }
}

#[test]
fn filters_are_checked_at_delivery() {
    checks::filters_route_by_topic::<Pooled>(new_bus(&BusConfig { topics: 4, ..config(64, 2) }));
}

// ---------------------------------------------------------------------------
// Subscription changes
// ---------------------------------------------------------------------------

#[test]
fn unsubscribe_stops_delivery_and_drops_the_listener() {
    checks::unsubscribe_stops_delivery::<Pooled>(new_bus(&config(64, 2)), checks::Dropped::Soon);
}

/// No publish that starts after `unsubscribe` returned reaches the listener,
/// and the listener is never called after it was dropped.
#[test]
fn unsubscribe_while_publishing() {
    for round in 0..4 * stress() {
        let bus = new_bus::<SmallEvent>(&config(64, 2));
        let recs: Vec<_> = (0..4).map(|_| Recorder::new()).collect();
        let ids: Vec<_> = recs.iter().map(|r| bus.subscribe(Filter::All, r.listener()).expect("subscribe")).collect();
        let first_after = AtomicU64::new(u64::MAX);
        let unsubscribed = AtomicBool::new(false);
        let progress = AtomicU64::new(0);
        let total = 4_000;
        thread::scope(|s| {
            s.spawn(|| {
                for seq in 0..total {
                    if unsubscribed.load(Ordering::SeqCst) && first_after.load(Ordering::Relaxed) == u64::MAX {
                        first_after.store(seq, Ordering::Relaxed);
                    }
                    bus.publish(SmallEvent::make(0, seq, 0));
                    progress.store(seq, Ordering::Relaxed);
                }
            });
            while progress.load(Ordering::Relaxed) < total / 4 {
                thread::yield_now();
            }
            // Subscribers 0 and 1 sit on different workers.
            bus.unsubscribe(ids[0]).expect("unsubscribe");
            bus.unsubscribe(ids[1]).expect("unsubscribe");
            unsubscribed.store(true, Ordering::SeqCst);
        });
        bus.flush();
        let cut = first_after.load(Ordering::Relaxed);
        let what = format!("round {round}");
        for rec in &recs[..2] {
            if let Some(last) = rec.last_seq(0) {
                assert!(last < cut, "{what}: got seq {last} after the cut {cut}");
            }
            rec.assert_no_violations(&what);
        }
        for rec in &recs[2..] {
            rec.assert_exact(&what, &[(0, 0..total)]);
        }
        bus.shutdown();
        assert!(recs.iter().all(|r| r.is_dropped()));
    }
}

/// Subscribers added while two producers publish get a gap-free suffix of
/// each producer's stream, running to its end.
#[test]
fn subscribe_while_publishing_gets_a_gap_free_suffix() {
    for round in 0..4 * stress() {
        let total = 4_000;
        let bus = new_bus::<SmallEvent>(&config(64, 2));
        let early = Recorder::new();
        bus.subscribe(Filter::All, early.listener()).expect("subscribe");
        let late: Vec<_> = (0..3).map(|_| Recorder::new()).collect();
        let progress = AtomicU64::new(0);
        let subscribed = AtomicBool::new(false);
        thread::scope(|s| {
            for p in 0..2 {
                let (bus, progress, subscribed) = (&bus, &progress, &subscribed);
                s.spawn(move || {
                    for seq in 0..total {
                        // Past halfway, wait for the late subscribers, so
                        // that the end of the stream is theirs to get.
                        while seq >= total / 2 && !subscribed.load(Ordering::SeqCst) {
                            thread::yield_now();
                        }
                        bus.publish(SmallEvent::make(p, seq, 0));
                        progress.fetch_max(seq, Ordering::Relaxed);
                    }
                });
            }
            for (i, rec) in late.iter().enumerate() {
                while progress.load(Ordering::Relaxed) < total / 8 * (i as u64 + 1) {
                    thread::yield_now();
                }
                bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
            }
            subscribed.store(true, Ordering::SeqCst);
        });
        bus.flush();
        let what = format!("round {round}");
        early.assert_exact(&what, &[(0, 0..total), (1, 0..total)]);
        for rec in &late {
            rec.assert_no_violations(&what);
            for p in 0..2 {
                assert_eq!(rec.last_seq(p), Some(total - 1), "{what}: to the end");
            }
        }
    }
}

/// A listener may unsubscribe itself and subscribe others from inside a
/// delivery (the worker holds no lock while it calls listeners).
#[test]
fn listeners_may_change_subscriptions_from_inside() {
    let bus = Arc::new(new_bus::<SmallEvent>(&config(64, 2)));
    let own_id = Arc::new(Mutex::new(None::<SubscriptionId>));
    let calls = Arc::new(AtomicU64::new(0));
    let added = Recorder::new();
    let id = {
        let (weak, own_id, calls, added) = (Arc::downgrade(&bus), own_id.clone(), calls.clone(), added.clone());
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &SmallEvent| {
                calls.fetch_add(1, Ordering::SeqCst);
                if e.seq == 10 {
                    let bus = weak.upgrade().expect("the bus outlives its workers");
                    let id = own_id.lock().expect("not poisoned").take();
                    bus.unsubscribe(id.expect("set after subscribe")).expect("unsubscribe self");
                    bus.subscribe(Filter::All, added.listener()).expect("subscribe from a listener");
                }
            }),
        )
        .expect("subscribe")
    };
    *own_id.lock().expect("not poisoned") = Some(id);
    publish_range(&*bus, 0, 0..11);
    bus.flush();
    // Published after the listener's unsubscribe and subscribe returned.
    publish_range(&*bus, 0, 11..100);
    bus.flush();
    assert_eq!(calls.load(Ordering::SeqCst), 11, "seq 0..=10, then gone");
    added.assert_exact("added", &[(0, 11..100)]);
    // The listener holds a weak reference only, so this is the last one.
    let bus = Arc::try_unwrap(bus).unwrap_or_else(|_| panic!("no other owner"));
    bus.shutdown();
}

// ---------------------------------------------------------------------------
// Backpressure
// ---------------------------------------------------------------------------

/// With a stuck subscriber, the pool runs dry: try_publish hands the very
/// event back, publish blocks until the subscriber moves; nothing is lost.
#[test]
fn a_stuck_subscriber_exhausts_the_pool_and_loses_nothing() {
    let capacity = 8;
    let bus = new_bus::<SmallEvent>(&config(capacity, 2));
    let (fast, slow) = (Recorder::new(), Recorder::new());
    let gate = Gate::new();
    bus.subscribe(Filter::All, fast.listener()).expect("subscribe");
    bus.subscribe(Filter::All, slow.gated_listener(gate.clone())).expect("subscribe");
    let mut seq = 0;
    let refused = loop {
        match bus.try_publish(SmallEvent::make(0, seq, 0)) {
            Ok(()) => seq += 1,
            Err(Full(event)) => break event,
        }
        assert!(seq <= capacity as u64, "the pool bounds the bus");
    };
    assert_eq!(seq, capacity as u64, "refused exactly when every envelope is out");
    assert_eq!(refused.seq, seq, "Full hands back the very event");
    assert!(blocks(|| bus.publish(refused), || gate.open()), "publish blocks");
    publish_range(&bus, 0, seq + 1..400);
    bus.flush();
    fast.assert_exact("fast", &[(0, 0..400)]);
    slow.assert_exact("slow", &[(0, 0..400)]);
    assert_eq!(bus.shutdown().dropped, 0);
}

/// Publishing with nobody subscribed takes no envelope (or returns it): the
/// whole pool is still there afterwards.
#[test]
fn publishing_to_nobody_leaks_no_envelope() {
    let capacity = 4;
    let bus = new_bus::<SmallEvent>(&config(capacity, 2));
    for seq in 0..100 {
        bus.publish(SmallEvent::make(0, seq, 0));
        assert!(bus.try_publish(SmallEvent::make(0, seq, 0)).is_ok());
        bus.publish_clone(&SmallEvent::make(0, seq, 0));
    }
    let rec = Recorder::new();
    let gate = Gate::new();
    let id = bus.subscribe(Filter::All, rec.gated_listener(gate.clone())).expect("subscribe");
    bus.unsubscribe(id).expect("unsubscribe");
    bus.publish(SmallEvent::make(0, 0, 0));
    let rec = Recorder::new();
    bus.subscribe(Filter::All, rec.gated_listener(gate.clone())).expect("subscribe");
    for seq in 0..capacity as u64 {
        assert!(bus.try_publish(SmallEvent::make(1, seq, 0)).is_ok(), "envelope {seq} of {capacity} is free");
    }
    assert!(bus.try_publish(SmallEvent::make(1, 99, 0)).is_err());
    gate.open();
    bus.flush();
    rec.assert_exact("after", &[(1, 0..capacity as u64)]);
}

// ---------------------------------------------------------------------------
// Flush, shutdown, panics, threads, configuration
// ---------------------------------------------------------------------------

#[test]
fn flush_waits_for_every_earlier_event() {
    let bus = new_bus::<SmallEvent>(&config(64, 2));
    let gate = Gate::new();
    let (gated, free) = (Recorder::new(), Recorder::new());
    bus.subscribe(Filter::All, gated.gated_listener(gate.clone())).expect("subscribe");
    bus.subscribe(Filter::All, free.listener()).expect("subscribe");
    publish_range(&bus, 0, 0..20);
    assert!(blocks(|| bus.flush(), || gate.open()), "flush waits for the gate");
    gated.assert_exact("gated", &[(0, 0..20)]);
    free.assert_exact("free", &[(0, 0..20)]);
    // With nothing in flight flush returns at once.
    bus.flush();
}

/// flush returns while another producer keeps publishing, after delivering
/// everything that producer had published before the call.
#[test]
fn flush_is_not_starved_by_a_busy_producer() {
    let bus = new_bus::<SmallEvent>(&config(16, 2));
    let recs = subscribed_recorders(&bus, 3);
    let published = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| publish_until(&bus, &stop, &published, false));
        for _ in 0..50 * stress() {
            let before = published.load(Ordering::SeqCst);
            bus.flush();
            for rec in &recs {
                let got = rec.last_seq(0).map_or(0, |last| last + 1);
                assert!(got >= before, "flush returned with {got} of {before} delivered");
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    bus.flush();
    let total = published.load(Ordering::SeqCst);
    for rec in &recs {
        rec.assert_exact("busy", &[(0, 0..total)]);
    }
}

#[test]
fn shutdown_delivers_everything_and_joins() {
    let total = 1_000 * stress();
    let pause = |rec: &Arc<Recorder>| rec.listener_with(|_| thread::sleep(Duration::from_micros(20)));
    checks::shutdown_delivers_and_joins::<Pooled>(new_bus(&config(16, 2)), total, true, false, pause);
}

#[test]
fn drop_delivers_everything() {
    checks::shutdown_delivers_and_joins::<Pooled>(new_bus(&config(8, 2)), 100, false, false, |rec| rec.listener());
}

#[test]
fn a_panicking_listener_is_isolated_and_counted() {
    checks::a_panicking_listener_is_isolated_and_counted::<Pooled>(new_bus(&config(16, 2)));
}

#[test]
fn never_more_threads_than_max_threads() {
    for max_threads in [1, 3] {
        let bus = new_bus::<SmallEvent>(&config(64, max_threads));
        let recs = subscribed_recorders(&bus, 10);
        publish_range(&bus, 0, 0..50);
        bus.flush();
        let threads: HashSet<_> = recs.iter().flat_map(|r| r.threads()).collect();
        assert_eq!(threads.len(), max_threads, "subscribers spread over every worker");
        assert!(!threads.contains(&thread::current().id()));
    }
}

#[test]
fn invalid_configurations_are_refused() {
    for (cfg, field) in [(config(0, 2), "capacity"), (config(8, 0), "max_threads")] {
        match Bus::<SmallEvent>::new(&cfg) {
            Err(BusError::Config { bus, field: f, .. }) => {
                assert_eq!((bus, f), ("pooled", field));
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("{field} accepted"),
        }
    }
    assert_eq!(Pooled::NAME, "pooled");
    const { assert!(Pooled::CAPABILITIES.bounded && Pooled::CAPABILITIES.asynchronous) };
}

#[test]
fn every_wait_strategy_delivers() {
    for wait in WaitStrategy::ALL {
        let bus = new_bus::<SmallEvent>(&BusConfig { wait, ..config(4, 2) });
        let recs = subscribed_recorders(&bus, 2);
        publish_range(&bus, 0, 0..500);
        bus.flush();
        for rec in &recs {
            rec.assert_exact(wait.name(), &[(0, 0..500)]);
        }
    }
}

// ---------------------------------------------------------------------------
// Allocations per event
// ---------------------------------------------------------------------------

/// Allocations counted (on the producer and the workers) while publishing
/// `events` events through `publish`, after a warm-up that has every
/// envelope carry an event and every worker run.
fn allocations_at_steady_state<E: Payload>(
    listener_allocates: bool,
    subscribers: usize,
    capacity: usize,
    events: u64,
    publish: impl Fn(&Bus<E>, &mut E, u64),
) -> u64 {
    allocations_after(|_| {}, listener_allocates, subscribers, capacity, events, publish)
}

/// [`allocations_at_steady_state`], with `prime(bus)` called once the
/// subscribers are in, before the warm-up: what a bus that reaches its
/// steady state only after certain events needs to see.
fn allocations_after<E: Payload>(
    prime: impl Fn(&Bus<E>),
    listener_allocates: bool,
    subscribers: usize,
    capacity: usize,
    events: u64,
    publish: impl Fn(&Bus<E>, &mut E, u64),
) -> u64 {
    let bus = new_bus::<E>(&config(capacity, 2));
    let received = Arc::new(AtomicU64::new(0));
    for _ in 0..subscribers {
        let received = received.clone();
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &E| {
                // From its first call on, the worker's allocations count.
                count_this_thread(true);
                if listener_allocates {
                    std::hint::black_box(Box::new(e.seq()));
                }
                received.fetch_add(e.seq() & 1, Ordering::Relaxed);
            }),
        )
        .expect("subscribe");
    }
    prime(&bus);
    bus.flush();
    let primed = received.load(Ordering::Relaxed);
    let mut template = E::make(0, 0, 0);
    let warm_up = 4 * capacity as u64;
    for seq in 0..warm_up {
        publish(&bus, &mut template, seq);
    }
    bus.flush();
    count_this_thread(true);
    let before = counted();
    for seq in warm_up..warm_up + events {
        publish(&bus, &mut template, seq);
    }
    bus.flush();
    let after = counted();
    count_this_thread(false);
    let odd = |n: u64| n / 2;
    let primed = received.load(Ordering::Relaxed) - primed;
    assert_eq!(primed, subscribers as u64 * odd(warm_up + events), "every event delivered");
    after - before
}

/// Publishes a copy of `template` renumbered `seq`.
fn publish_clone_of<E: Payload>(bus: &Bus<E>, template: &mut E, seq: u64) {
    template.set_seq(seq);
    bus.publish_clone(template);
}

#[test]
fn zero_allocations_per_event_at_steady_state() {
    let events = 20_000 * stress();
    for subscribers in [1, 16] {
        // A small pool, so that the producer also waits for envelopes.
        for capacity in [8, 256] {
            let cases: [(&str, u64); 3] = [
                (
                    "SmallEvent via publish",
                    allocations_at_steady_state::<SmallEvent>(false, subscribers, capacity, events, |bus, _, seq| {
                        bus.publish(SmallEvent::make(0, seq, 0))
                    }),
                ),
                (
                    "SmallEvent via publish_clone",
                    allocations_at_steady_state::<SmallEvent>(false, subscribers, capacity, events, publish_clone_of),
                ),
                (
                    "HeavyEvent via publish_clone",
                    allocations_at_steady_state::<HeavyEvent>(false, subscribers, capacity, events, publish_clone_of),
                ),
            ];
            for (what, allocations) in cases {
                assert_eq!(
                    allocations, 0,
                    "{what}, {subscribers} subscribers, pool of {capacity}: \
                     {allocations} allocations over {events} events"
                );
            }
        }
    }
}

/// Heavy events that change size from one to the next (the five shapes of
/// `HeavyEvent::make`, as the harness's `heavy-payload` scenario publishes
/// them) cost nothing either, once every envelope has held the largest
/// shape (strings and item count at their longest) and been shrunk once
/// (surplus line items kept aside). Priming gives every envelope both: a
/// pool's worth of the largest shape, then of the smallest, each from an
/// all-free pool, whose FIFO order hands out every envelope once.
#[test]
fn zero_allocations_when_consecutive_heavy_events_differ_in_size() {
    let events = 20_000 * stress();
    let shapes: Vec<HeavyEvent> = (0..HeavyEvent::SHAPES).map(|seq| HeavyEvent::make(0, seq, 0)).collect();
    let largest = shapes.iter().max_by_key(|e| e.items.len()).expect("shapes").clone();
    let smallest = shapes.iter().min_by_key(|e| e.items.len()).expect("shapes").clone();
    assert!(largest.order_id.len() == shapes.iter().map(|e| e.order_id.len()).max().expect("shapes"));
    let shapes = Mutex::new(shapes);
    for subscribers in [1, 16] {
        for capacity in [8, 256] {
            let prime = |bus: &Bus<HeavyEvent>| {
                for event in [&largest, &smallest] {
                    for _ in 0..capacity {
                        bus.publish_clone(event);
                    }
                    bus.flush();
                }
            };
            let allocations = allocations_after(prime, false, subscribers, capacity, events, |bus, _, seq| {
                let mut shapes = shapes.lock().expect("not poisoned");
                let event = &mut shapes[(seq % HeavyEvent::SHAPES) as usize];
                event.set_seq(seq);
                bus.publish_clone(event);
            });
            assert_eq!(
                allocations, 0,
                "{subscribers} subscribers, pool of {capacity}: {allocations} allocations over {events} events"
            );
        }
    }
}

/// The counter does see allocations made on a counted thread (so that the
/// zero above means something): on the producer (a HeavyEvent built and moved
/// in by publish) and on the workers (a listener that boxes).
#[test]
fn the_allocation_counter_counts() {
    let on_producer = allocations_at_steady_state::<HeavyEvent>(false, 1, 8, 100, |bus, _, seq| {
        bus.publish(HeavyEvent::make(0, seq, 0))
    });
    assert!(on_producer >= 100, "HeavyEvent::make allocates: {on_producer}");
    let on_workers = allocations_at_steady_state::<SmallEvent>(true, 2, 8, 100, |bus, _, seq| {
        bus.publish(SmallEvent::make(0, seq, 0))
    });
    assert_eq!(on_workers, 200, "one box per delivery");
}

// ---------------------------------------------------------------------------
// Throughput (prints, never asserts). Run with:
//   cargo test --release -p buslab-impls --test pooled -- --ignored --nocapture
// ---------------------------------------------------------------------------

/// A naive asynchronous bus for comparison: the same worker budget, one
/// bounded channel per worker, and one clone of the event per subscriber.
struct CloneEach<E> {
    senders: Vec<crossbeam_channel::Sender<(usize, E)>>,
    subscribers: usize,
    threads: Vec<thread::JoinHandle<u64>>,
}

impl<E: Payload> CloneEach<E> {
    fn new(subscribers: usize, workers: usize, capacity: usize) -> Self {
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = crossbeam_channel::bounded::<(usize, E)>(capacity);
            senders.push(tx);
            threads.push(thread::spawn(move || {
                let mut hits = 0;
                while let Ok((_, event)) = rx.recv() {
                    std::hint::black_box(event.seq());
                    hits += 1;
                }
                hits
            }));
        }
        CloneEach { senders, subscribers, threads }
    }

    fn publish_clone(&self, event: &E) {
        for s in 0..self.subscribers {
            self.senders[s % self.senders.len()].send((s, event.clone())).expect("the worker lives");
        }
    }

    /// Waits for every delivery; returns their number.
    fn finish(self) -> u64 {
        drop(self.senders);
        self.threads.into_iter().map(|t| t.join().expect("worker")).sum()
    }
}

/// Events per second (pooled, clone-per-subscriber) for one producer
/// publishing `events` copies of a template with `publish_clone`.
fn measure<E: Payload>(subscribers: usize, events: u64, workers: usize) -> (f64, f64) {
    let capacity = 1024;
    let bus = new_bus::<E>(&BusConfig { capacity, max_threads: workers, ..BusConfig::default() });
    // One padded counter per listener: the listeners share nothing.
    let hits: Vec<_> =
        (0..subscribers).map(|_| Arc::new(crossbeam_utils::CachePadded::new(AtomicU64::new(0)))).collect();
    for hit in &hits {
        let hit = hit.clone();
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &E| {
                std::hint::black_box(e.seq());
                hit.store(hit.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }),
        )
        .expect("subscribe");
    }
    let mut template = E::make(0, 0, 0);
    for seq in 0..capacity as u64 {
        template.set_seq(seq);
        bus.publish_clone(&template);
    }
    bus.flush();
    let start = Instant::now();
    for seq in 0..events {
        template.set_seq(seq);
        bus.publish_clone(&template);
    }
    bus.flush();
    let pooled = start.elapsed();
    bus.shutdown();
    let delivered: u64 = hits.iter().map(|h| h.load(Ordering::Relaxed)).sum();
    assert_eq!(delivered, (events + capacity as u64) * subscribers as u64);

    let naive = CloneEach::<E>::new(subscribers, workers, capacity);
    let start = Instant::now();
    for seq in 0..events {
        template.set_seq(seq);
        naive.publish_clone(&template);
    }
    let delivered = naive.finish();
    let cloned = start.elapsed();
    assert_eq!(delivered, events * subscribers as u64);
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    (rate(pooled), rate(cloned))
}

#[test]
#[ignore = "throughput figures: run in release with --ignored --nocapture"]
fn throughput() {
    let workers = std::env::var("BUSLAB_WORKERS").ok().and_then(|s| s.parse().ok()).unwrap_or_else(buslab_impls::cores);
    println!(
        "1 producer, {workers} workers, pool of 1024, publish_clone; \
         M events/s, median (best) of 5 trials"
    );
    let only: Option<usize> = std::env::var("BUSLAB_SUBSCRIBERS").ok().and_then(|s| s.parse().ok());
    for subscribers in [1, 16, 500] {
        if only.is_some_and(|n| n != subscribers) {
            continue;
        }
        let events = (4_000_000 / subscribers as u64).max(40_000) * stress();
        for (label, run) in
            [("small", measure::<SmallEvent> as fn(usize, u64, usize) -> (f64, f64)), ("heavy", measure::<HeavyEvent>)]
        {
            let trials: Vec<_> = (0..5).map(|_| run(subscribers, events, workers)).collect();
            let summary = |pick: fn(&(f64, f64)) -> f64| {
                let mut rates: Vec<f64> = trials.iter().map(pick).collect();
                rates.sort_by(f64::total_cmp);
                format!("{:7.3} ({:7.3})", rates[2] / 1e6, rates[4] / 1e6)
            };
            println!(
                "{label} x {subscribers:>3} subscribers: pooled {}  clone-per-subscriber {}",
                summary(|t| t.0),
                summary(|t| t.1),
            );
        }
    }
}
