//! Tests of the `ring` bus: the contract's guarantees as the ring provides
//! them, and its own edges (power-of-two capacity, all-or-nothing claims on
//! both producer paths, batches larger than the ring, consumer threads
//! bounded by `max_threads`, zero allocations for `publish_clone`, a
//! panicking `clone`). `BUSLAB_STRESS=N` multiplies the loop counts.
//!
//! `ring_speed` (ignored) prints throughput figures; run it with
//! `cargo test -p buslab-impls --release --test ring -- --ignored --nocapture`.

pub mod common;

use buslab_impls::payload::{HeavyEvent, Payload, SmallEvent};
use buslab_impls::ring::{Ring, RingBus};
use buslab_impls::{BusConfig, BusError, Event, EventBus, Filter, Full, Listener, Strategy, Topic, WaitStrategy};
use common::{
    Boxed, Gate, Recorder, blocks, checks, on_producer_threads, publish_range, quiet_expected_panics, stress,
    subscribed_recorders,
};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Counts allocations per thread (tests run in parallel).
#[global_allocator]
static GLOBAL: common::alloc::CountingAlloc = common::alloc::CountingAlloc;

type Bus = RingBus<SmallEvent, Boxed<SmallEvent>>;

fn bus(producers: usize, capacity: usize) -> Bus {
    Bus::new(&BusConfig { producers, capacity, ..BusConfig::default() }).expect("a valid configuration")
}

fn event(producer: u32, seq: u64) -> SmallEvent {
    SmallEvent::make(producer, seq, 0)
}

// ---------------------------------------------------------------------------
// The contract.

fn exactly_once_in_order(subscribers: usize, producers: usize) {
    let events = 3_000 * stress();
    let bus = bus(producers, 64);
    let recs = subscribed_recorders(&bus, subscribers);
    // Every way in: move, try (retrying), clone, batch.
    let publish = |bus: &Bus, p: u32| {
        let mut seq = 0;
        while seq < events {
            match seq % 4 {
                0 => bus.publish(event(p, seq)),
                1 => {
                    let mut e = event(p, seq);
                    while let Err(Full(back)) = bus.try_publish(e) {
                        e = back;
                        thread::yield_now();
                    }
                }
                2 => bus.publish_clone(&event(p, seq)),
                _ => {
                    let n = (events - seq).min(1 + seq % 97);
                    let batch: Vec<_> = (seq..seq + n).map(|s| event(p, s)).collect();
                    bus.publish_batch(&batch);
                    seq += n;
                    continue;
                }
            }
            seq += 1;
        }
    };
    on_producer_threads(&bus, producers, publish, || ());
    bus.flush();
    let expected: Vec<_> = (0..producers as u32).map(|p| (p, 0..events)).collect();
    for (i, rec) in recs.iter().enumerate() {
        rec.assert_exact(&format!("subscriber {i}"), &expected);
    }
    let stats = bus.shutdown();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.listener_panics, 0);
    for rec in &recs {
        assert!(rec.is_dropped(), "shutdown drops listeners");
    }
}

#[test]
fn exactly_once_in_order_1_subscriber() {
    exactly_once_in_order(1, 1);
}

#[test]
fn exactly_once_in_order_16_subscribers() {
    exactly_once_in_order(16, 1);
}

#[test]
fn exactly_once_in_order_500_subscribers() {
    exactly_once_in_order(500, 1);
}

#[test]
fn several_producers_1_subscriber() {
    exactly_once_in_order(1, 3);
}

#[test]
fn several_producers_16_subscribers() {
    exactly_once_in_order(16, 3);
}

#[test]
fn unsubscribe_stops_delivery_and_drops_after_last_call() {
    checks::unsubscribe_stops_delivery::<Ring>(bus(1, 16), checks::Dropped::AfterNextEvents);
}

#[test]
fn unsubscribe_while_publishing() {
    for producers in [1, 2] {
        for _round in 0..4 * stress() {
            let bus = bus(producers, 32);
            let (a, b) = (Recorder::new(), Recorder::new());
            let id_a = bus.subscribe(Filter::All, a.listener()).expect("subscribe");
            bus.subscribe(Filter::All, b.listener()).expect("subscribe");
            let unsubscribed = AtomicBool::new(false);
            let progress = AtomicU64::new(0);
            let first_after = AtomicU64::new(u64::MAX);
            let total = 5_000;
            thread::scope(|s| {
                s.spawn(|| {
                    for seq in 0..total {
                        if unsubscribed.load(Ordering::SeqCst) && first_after.load(Ordering::Relaxed) == u64::MAX {
                            first_after.store(seq, Ordering::Relaxed);
                        }
                        bus.publish(event(0, seq));
                        progress.store(seq, Ordering::Relaxed);
                    }
                });
                while progress.load(Ordering::Relaxed) < total / 4 {
                    thread::yield_now();
                }
                bus.unsubscribe(id_a).expect("unsubscribe");
                unsubscribed.store(true, Ordering::SeqCst);
            });
            bus.flush();
            let cut = first_after.load(Ordering::Relaxed);
            if let Some(last) = a.last_seq(0) {
                assert!(last < cut, "seq {last} published after unsubscribe returned ({cut})");
            }
            a.assert_contiguous("a");
            b.assert_exact("b", &[(0, 0..total)]);
            bus.shutdown();
            a.assert_no_violations("a, called after it was dropped");
        }
    }
}

/// A late subscriber gets a gap-free suffix, which includes every event
/// whose publish started after `subscribe` returned, whether it lands on a
/// new consumer thread (the first subscriber of its thread, registered as
/// gating while the producers run) or on an existing one.
#[test]
fn subscribe_while_publishing_gets_a_gap_free_suffix() {
    for producers in [1, 2] {
        for max_threads in [1, 2, 3] {
            for _round in 0..2 * stress() {
                let total = 5_000;
                let bus = Bus::new(&BusConfig { producers, capacity: 16, max_threads, ..BusConfig::default() })
                    .expect("valid");
                let early = Recorder::new();
                bus.subscribe(Filter::All, early.listener()).expect("subscribe");
                let late: Vec<_> = (0..2).map(|_| Recorder::new()).collect();
                let progress = AtomicU64::new(0);
                // Per producer: its last publish has started.
                let last_started: Vec<_> = (0..producers).map(|_| AtomicBool::new(false)).collect();
                // Per late subscriber and producer: subscribe returned before
                // that producer's last publish started.
                let mut must_get_last = vec![vec![false; producers]; late.len()];
                thread::scope(|s| {
                    for p in 0..producers as u32 {
                        let (bus, progress, last) = (&bus, &progress, &last_started[p as usize]);
                        s.spawn(move || {
                            for seq in 0..total {
                                if seq == total - 1 {
                                    last.store(true, Ordering::SeqCst);
                                }
                                bus.publish(event(p, seq));
                                progress.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                    for (i, rec) in late.iter().enumerate() {
                        let at = (i as u64 + 1) * total * producers as u64 / 4;
                        while progress.load(Ordering::Relaxed) < at {
                            thread::yield_now();
                        }
                        bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
                        for (p, last) in last_started.iter().enumerate() {
                            must_get_last[i][p] = !last.load(Ordering::SeqCst);
                        }
                    }
                });
                bus.flush();
                let expected: Vec<_> = (0..producers as u32).map(|p| (p, 0..total)).collect();
                early.assert_exact("early", &expected);
                for (i, rec) in late.iter().enumerate() {
                    rec.assert_contiguous("late");
                    for p in 0..producers as u32 {
                        if must_get_last[i][p as usize] {
                            assert_eq!(rec.last_seq(p), Some(total - 1), "runs to the end");
                        }
                    }
                }
                bus.shutdown();
            }
        }
    }
}

/// Capacity 5 is a ring of 8: with the only consumer stuck, exactly 8
/// `try_publish` calls succeed, then the event comes back in `Full`, and
/// `publish` blocks until the consumer moves; nothing is lost.
#[test]
fn full_ring_refuses_blocks_and_loses_nothing() {
    for producers in [1, 2] {
        let bus = bus(producers, 5);
        let rec = Recorder::new();
        let gate = Gate::new();
        bus.subscribe(Filter::All, rec.gated_listener(gate.clone())).expect("subscribe");
        for seq in 0..8 {
            assert!(bus.try_publish(event(0, seq)).is_ok(), "room for 8");
        }
        let Err(Full(back)) = bus.try_publish(event(0, 8)) else {
            panic!("a ring of 8 holding 8 must refuse");
        };
        assert_eq!(back.seq, 8, "Full hands back the very event");
        assert!(blocks(|| bus.publish(back), || gate.open()), "publish must wait while full");
        publish_range(&bus, 0, 9..100);
        bus.flush();
        rec.assert_exact("gated", &[(0, 0..100)]);
        bus.shutdown();
    }
}

/// A batch claim is all-or-nothing: with the consumer stuck and some slots
/// used, a batch waits for room for all of it, then lands in order.
#[test]
fn batches_larger_than_the_ring_arrive_in_order() {
    for producers in [1, 2] {
        let bus = bus(producers, 16);
        let rec = Recorder::new();
        bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
        let events: Vec<_> = (0..1_000).map(|s| event(0, s)).collect();
        bus.publish_batch(&events);
        bus.publish_batch(&[]);
        bus.flush();
        rec.assert_exact("batches", &[(0, 0..1_000)]);
        bus.shutdown();
    }
}

#[test]
fn consumer_threads_never_exceed_max_threads() {
    for max_threads in [1, 2, 3] {
        let bus = Bus::new(&BusConfig { max_threads, ..BusConfig::default() }).expect("valid");
        let recs = subscribed_recorders(&bus, 500);
        publish_range(&bus, 0, 0..200);
        bus.flush();
        let threads: HashSet<_> = recs.iter().flat_map(|r| r.threads()).collect();
        assert_eq!(threads.len(), max_threads, "500 subscribers over {max_threads} threads");
        assert!(!threads.contains(&thread::current().id()));
        for rec in &recs {
            rec.assert_exact("one of 500", &[(0, 0..200)]);
            assert_eq!(rec.threads().len(), 1);
        }
        bus.shutdown();
    }
}

#[test]
fn shutdown_and_drop_deliver_everything_and_join() {
    for explicit in [true, false] {
        let slow = |rec: &Arc<Recorder>| rec.slow_listener(Duration::from_micros(2));
        checks::shutdown_delivers_and_joins::<Ring>(bus(1, 16), 2_000 * stress(), explicit, false, slow);
    }
}

#[test]
fn a_panicking_listener_is_isolated_and_counted() {
    checks::a_panicking_listener_is_isolated_and_counted::<Ring>(bus(2, 16));
}

#[test]
fn flush_waits_for_slow_listeners() {
    let bus = bus(1, 1024);
    let rec = Recorder::new();
    let pause = |_: &SmallEvent| thread::sleep(Duration::from_micros(200));
    bus.subscribe(Filter::All, rec.listener_with(pause)).expect("subscribe");
    publish_range(&bus, 0, 0..50);
    bus.flush();
    assert_eq!(rec.count(), 50, "flush returns after every listener returned");
    bus.flush();
    bus.shutdown();
}

#[test]
fn filters_are_checked_at_delivery() {
    checks::filters_route_by_topic::<Ring>(Bus::new(&BusConfig { topics: 4, ..BusConfig::default() }).expect("valid"));
}

#[test]
fn invalid_configurations_are_refused() {
    for (field, config) in [
        ("capacity", BusConfig { capacity: 0, ..BusConfig::default() }),
        ("max_threads", BusConfig { max_threads: 0, ..BusConfig::default() }),
        ("producers", BusConfig { producers: 0, ..BusConfig::default() }),
        ("capacity", BusConfig { capacity: usize::MAX, ..BusConfig::default() }),
    ] {
        match Bus::new(&config) {
            Err(BusError::Config { field: f, .. }) => assert_eq!(f, field),
            Err(e) => panic!("{field}: wrong error {e}"),
            Ok(_) => panic!("{field}: accepted {config:?}"),
        }
    }
    assert_eq!(<Ring as Strategy>::NAME, "ring");
}

#[test]
fn every_wait_strategy_delivers() {
    for wait in WaitStrategy::ALL {
        for producers in [1, 2] {
            let bus = Bus::new(&BusConfig { wait, producers, capacity: 8, max_threads: 1, ..BusConfig::default() })
                .expect("valid");
            let rec = Recorder::new();
            bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
            publish_range(&bus, 0, 0..2_000);
            bus.flush();
            rec.assert_exact(wait.name(), &[(0, 0..2_000)]);
            bus.shutdown();
        }
    }
}

/// An event whose `clone` panics on demand.
#[derive(Debug)]
struct Touchy {
    seq: u64,
    poison: bool,
}

impl Clone for Touchy {
    fn clone(&self) -> Self {
        assert!(!self.poison, "clone of a poisoned event (expected in this test)");
        Touchy { seq: self.seq, poison: false }
    }
}

impl Event for Touchy {
    fn topic(&self) -> Topic {
        0
    }
}

/// A `clone` that panics inside `publish_clone` or `publish_batch`
/// propagates to the publisher, but the ring does not stall: the claimed
/// slot is published empty and skipped.
#[test]
fn a_panicking_clone_does_not_stall_the_ring() {
    quiet_expected_panics();
    for producers in [1, 2] {
        let bus = RingBus::<Touchy, Boxed<Touchy>>::new(&BusConfig { producers, capacity: 4, ..BusConfig::default() })
            .expect("valid");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        bus.subscribe(Filter::All, Box::new(move |e: &Touchy| sink.lock().expect("not poisoned").push(e.seq)))
            .expect("subscribe");
        let ok = |seq| Touchy { seq, poison: false };
        bus.publish_clone(&ok(0));
        let bad = Touchy { seq: 1, poison: true };
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bus.publish_clone(&bad))).is_err());
        let batch = [ok(2), Touchy { seq: 3, poison: true }, ok(4)];
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bus.publish_batch(&batch))).is_err());
        for seq in 5..20 {
            bus.publish_clone(&ok(seq));
        }
        bus.flush();
        let mut expected = vec![0, 2];
        expected.extend(5..20);
        assert_eq!(*seen.lock().expect("not poisoned"), expected);
        bus.shutdown();
    }
}

/// Stores the allocations its (consumer) thread has made so far.
struct AllocProbe(Arc<AtomicU64>);

impl Listener<HeavyEvent> for AllocProbe {
    fn on_event(&self, _event: &HeavyEvent) {
        self.0.store(common::alloc::this_thread(), Ordering::SeqCst);
    }
}

/// A counting listener without read-modify-write: deliveries to one
/// subscriber are sequential.
struct Count(Arc<AtomicU64>);

impl<E> Listener<E> for Count {
    #[inline]
    fn on_event(&self, _event: &E) {
        self.0.store(self.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// Steady-state `publish_clone` and `publish_batch` of heavy events copy
/// into the slots' buffers: no allocation on the publishing thread nor on
/// the consumer thread.
#[test]
fn publish_clone_of_heavy_events_does_not_allocate() {
    for producers in [1, 2] {
        let bus =
            RingBus::<HeavyEvent, AllocProbe>::new(&BusConfig { producers, capacity: 64, ..BusConfig::default() })
                .expect("valid");
        let consumer = Arc::new(AtomicU64::new(0));
        bus.subscribe(Filter::All, AllocProbe(consumer.clone())).expect("subscribe");
        // One shape (string lengths, item count) throughout, as when a
        // template is reused with `set_seq`. (`Vec::clone_from` drops
        // surplus items, so a shorter event followed by a longer one in the
        // same slot allocates the difference.)
        let mut template = HeavyEvent::make(0, 999_999_998, 0);
        let batch: Vec<_> = (0..16)
            .map(|s| {
                let mut e = template.clone();
                e.set_seq(s);
                e
            })
            .collect();
        for _ in 0..2 * 64 {
            bus.publish_clone(&template);
        }
        bus.flush();
        let (producer_before, consumer_before) = (common::alloc::this_thread(), consumer.load(Ordering::SeqCst));
        for seq in 0..1_000 {
            template.set_seq(seq);
            bus.publish_clone(&template);
            if seq % 100 == 0 {
                bus.publish_batch(&batch);
            }
        }
        bus.flush();
        assert_eq!(common::alloc::this_thread() - producer_before, 0, "the publisher allocated");
        assert_eq!(consumer.load(Ordering::SeqCst) - consumer_before, 0, "the consumer thread allocated");
        bus.shutdown();
    }
}

// ---------------------------------------------------------------------------
// Throughput, printed (never asserted).

fn rate(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64() / 1e6
}

/// A listener that does nothing: what the bus costs by itself.
struct Ignore;

impl<E> Listener<E> for Ignore {
    #[inline]
    fn on_event(&self, _event: &E) {}
}

/// One producer, one subscriber; `batch == 1` publishes item by item, else
/// `publish_batch` of `batch` events. Returns M events/s.
fn spsc<L: Listener<SmallEvent>>(config: &BusConfig, listener: L, events: u64, batch: usize) -> f64 {
    let bus = RingBus::<SmallEvent, L>::new(config).expect("valid");
    bus.subscribe(Filter::All, listener).expect("subscribe");
    let template: Vec<_> = (0..batch as u64).map(|s| SmallEvent::make(0, s, 0)).collect();
    let start = Instant::now();
    if batch == 1 {
        for seq in 0..events {
            bus.publish(SmallEvent::make(0, seq, 0));
        }
    } else {
        for _ in 0..events / batch as u64 {
            bus.publish_batch(&template);
        }
    }
    bus.flush();
    let elapsed = start.elapsed();
    bus.shutdown();
    rate(events / batch as u64 * batch as u64, elapsed)
}

fn counted_spsc(config: &BusConfig, events: u64, batch: usize) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let r = spsc(config, Count(count.clone()), events, batch);
    assert_eq!(count.load(Ordering::Relaxed), events / batch as u64 * batch as u64);
    r
}

/// The counting listener called in a bare loop on one thread: the most a
/// consumer thread calling it can deliver.
fn counting_ceiling(events: u64) -> f64 {
    let count = Count(Arc::new(AtomicU64::new(0)));
    let event = SmallEvent::default();
    let start = Instant::now();
    for _ in 0..events {
        std::hint::black_box(&count).on_event(&event);
    }
    rate(events, start.elapsed())
}

fn broadcast(config: &BusConfig, subscribers: usize, events: u64) -> f64 {
    let bus = RingBus::<SmallEvent, Count>::new(config).expect("valid");
    let counts: Vec<_> = (0..subscribers).map(|_| Arc::new(AtomicU64::new(0))).collect();
    for count in &counts {
        bus.subscribe(Filter::All, Count(count.clone())).expect("subscribe");
    }
    let start = Instant::now();
    for seq in 0..events {
        bus.publish(SmallEvent::make(0, seq, 0));
    }
    bus.flush();
    let elapsed = start.elapsed();
    for count in &counts {
        assert_eq!(count.load(Ordering::Relaxed), events, "no loss");
    }
    bus.shutdown();
    rate(events, elapsed)
}

fn best(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..runs).map(|_| f()).fold(0.0, f64::max)
}

/// Throughput in M events/s (per subscriber), best of 5 runs: SmallEvent,
/// a counting listener (load + store, no read-modify-write), `max_threads`
/// = cores.
#[test]
#[ignore = "prints throughput; run in --release with --ignored --nocapture"]
fn ring_speed() {
    let events = 20_000_000 * stress();
    println!("counting listener alone, bare loop: {:.0} M calls/s", best(5, || counting_ceiling(4 * events)));
    for producers in [1, 2] {
        for capacity in [1024, 4096] {
            for wait in [WaitStrategy::Park, WaitStrategy::Yield] {
                let config = BusConfig { capacity, wait, producers, ..BusConfig::default() };
                println!(
                    "producers {producers} capacity {capacity:5} wait {:5}: SPSC item by item {:5.0}, \
                     publish_batch(256) {:5.0} (no-op listener {:5.0}); 1->4 broadcast {:4.0} per subscriber",
                    wait.name(),
                    best(5, || counted_spsc(&config, events, 1)),
                    best(5, || counted_spsc(&config, 4 * events, 256)),
                    best(5, || spsc(&config, Ignore, 4 * events, 256)),
                    best(5, || broadcast(&config, 4, events / 2)),
                );
            }
        }
    }
}
