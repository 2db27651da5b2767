//! Tests of the `tokio_broadcast` bus, plus ignored measurements
//! (`cargo test -p buslab-impls --release --test tokio_broadcast -- --ignored --nocapture`).

pub mod common;

use buslab_impls::payload::{Payload, SmallEvent};
use buslab_impls::tokio_broadcast::{TokioBroadcast, TokioBroadcastBus};
use buslab_impls::{BusConfig, BusError, Event, EventBus, Filter, Topic};
use common::{Boxed, Gate, Tally, checks, count_deliveries, publish_range, stress};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

type Bus = TokioBroadcastBus<SmallEvent, Boxed<SmallEvent>>;

#[global_allocator]
static GLOBAL: common::alloc::CountingAlloc = common::alloc::CountingAlloc;

fn config(capacity: usize) -> BusConfig {
    BusConfig { capacity, max_threads: 2, ..BusConfig::default() }
}

fn new_bus(capacity: usize) -> Bus {
    Bus::new(&config(capacity)).expect("valid config")
}

/// With a ring larger than the run, nothing can be lost.
fn exactly_once_in_order(subscribers: usize, events: u64) {
    checks::exactly_once_in_order::<TokioBroadcast>(new_bus(events as usize), subscribers, events);
}

#[test]
fn exactly_once_and_in_order_with_1_subscriber() {
    exactly_once_in_order(1, 50_000 * stress());
}

#[test]
fn exactly_once_and_in_order_with_16_subscribers() {
    exactly_once_in_order(16, 5_000 * stress());
}

#[test]
fn exactly_once_and_in_order_with_500_subscribers() {
    exactly_once_in_order(500, 300 * stress());
}

#[test]
fn several_producers_exactly_once_with_per_producer_checksums() {
    let (producers, events) = (4, 5_000 * stress());
    let bus = new_bus((events * producers as u64) as usize);
    checks::several_producers::<TokioBroadcast>(bus, producers, 3, events);
}

#[test]
fn workers_are_bounded_by_max_threads() {
    checks::listener_threads_at_most::<TokioBroadcast>(new_bus(1024), 2.min(buslab_impls::cores()));
}

#[test]
fn lag_is_counted_delivered_plus_dropped_equals_sent_per_subscriber() {
    // One subscriber per bus, so `dropped` is that subscriber's.
    for pause_us in [0, 20, 200] {
        let bus = new_bus(8);
        let tally = Tally::lossy(1);
        let pause = move |_: &SmallEvent| {
            if pause_us > 0 {
                thread::sleep(Duration::from_micros(pause_us));
            }
        };
        bus.subscribe(Filter::All, tally.listener_with(pause)).expect("subscribe");
        let sent = 3_000 * stress();
        publish_range(&bus, 0, 0..sent);
        // Must terminate although events were lost.
        bus.flush();
        let dropped = bus.stats().dropped;
        assert_eq!(tally.count() + dropped, sent, "pause {pause_us} µs: delivered + dropped != sent");
        assert_eq!(tally.errors(), 0, "out of order");
        if pause_us == 200 {
            assert!(dropped > 0, "a 200 µs listener must lag a ring of 8");
        }
        assert_eq!(bus.shutdown().dropped, dropped);
    }
}

#[test]
fn lag_with_several_subscribers_is_accounted_in_total() {
    let bus = new_bus(16);
    let tallies: Vec<_> = (0..3).map(|_| Tally::lossy(1)).collect();
    for (i, t) in tallies.iter().enumerate() {
        let pause = move |_: &SmallEvent| {
            if i > 0 {
                thread::sleep(Duration::from_micros(50 * i as u64));
            }
        };
        bus.subscribe(Filter::All, t.listener_with(pause)).expect("subscribe");
    }
    let sent = 2_000 * stress();
    publish_range(&bus, 0, 0..sent);
    bus.flush();
    let delivered: u64 = tallies.iter().map(|t| t.count()).sum();
    assert_eq!(delivered + bus.stats().dropped, 3 * sent);
    for t in &tallies {
        assert!(t.count() <= sent);
        assert_eq!(t.errors(), 0);
    }
    bus.shutdown();
}

#[test]
fn publish_never_blocks_and_try_publish_always_accepts() {
    let bus = new_bus(2);
    let gate = Gate::new();
    let tally = Tally::lossy(1);
    bus.subscribe(Filter::All, tally.gated_listener(gate.clone())).expect("subscribe");
    let start = Instant::now();
    for seq in 0..1_000 {
        if seq % 2 == 0 {
            bus.publish(SmallEvent::make(0, seq, 0));
        } else {
            assert!(bus.try_publish(SmallEvent::make(0, seq, 0)).is_ok());
        }
    }
    assert!(start.elapsed() < Duration::from_secs(5), "publish blocked");
    gate.open();
    bus.flush();
    assert_eq!(tally.count() + bus.stats().dropped, 1_000);
    assert!(bus.stats().dropped > 0);
    bus.shutdown();
}

#[test]
fn unsubscribe_stops_delivery_and_drops_the_listener() {
    checks::unsubscribe_stops_delivery_and_drops_the_listener::<TokioBroadcast>(new_bus(1 << 16));
}

#[test]
fn unsubscribe_from_inside_the_listener() {
    checks::unsubscribe_from_inside_the_listener::<TokioBroadcast>(new_bus(1024));
}

#[test]
fn subscribe_while_publishing_gets_a_gap_free_suffix() {
    let events = 10_000 * stress();
    checks::subscribe_while_publishing_gets_a_gap_free_suffix::<TokioBroadcast>(new_bus((2 * events) as usize), events);
}

#[test]
fn a_late_subscriber_owes_only_later_events() {
    let bus = new_bus(64);
    let early = Tally::exact(1);
    bus.subscribe(Filter::All, early.listener()).expect("subscribe");
    publish_range(&bus, 0, 0..50);
    bus.flush();
    let late = Tally::suffix(1);
    bus.subscribe(Filter::All, late.listener()).expect("subscribe");
    publish_range(&bus, 0, 50..60);
    bus.flush();
    assert_eq!(early.count(), 60);
    assert_eq!(late.count(), 10);
    // A subscriber that joined after the last publish owes nothing.
    let idle = Tally::suffix(1);
    bus.subscribe(Filter::All, idle.listener()).expect("subscribe");
    bus.flush();
    assert_eq!(idle.count(), 0);
    bus.shutdown();
}

fn shutdown_delivers_everything(explicit: bool) {
    let events = 5_000 * stress();
    let bus = new_bus(events as usize);
    checks::shutdown_delivers_and_joins::<TokioBroadcast>(bus, events, explicit, false, checks::pausing_now_and_then);
}

#[test]
fn shutdown_delivers_everything_sent_and_joins() {
    shutdown_delivers_everything(true);
}

#[test]
fn drop_delivers_everything_sent_and_joins() {
    shutdown_delivers_everything(false);
}

#[test]
fn a_panicking_listener_does_not_poison_the_bus() {
    checks::a_panicking_listener_does_not_poison_the_bus::<TokioBroadcast>(new_bus(4096));
}

#[test]
fn flush_waits_for_slow_listeners() {
    checks::flush_waits_for_slow_listeners::<TokioBroadcast>(new_bus(4096), new_bus(4));
}

#[test]
fn filters_are_checked_at_receive() {
    checks::filters_route_by_topic::<TokioBroadcast>(
        Bus::new(&BusConfig { topics: 4, ..config(1024) }).expect("valid"),
    );
}

#[test]
fn invalid_configurations_are_rejected() {
    for (field, cfg) in [("capacity", config(0)), ("max_threads", BusConfig { max_threads: 0, ..BusConfig::default() })]
    {
        match Bus::new(&cfg) {
            Err(BusError::Config { field: f, .. }) => assert_eq!(f, field),
            _ => panic!("{field} accepted"),
        }
    }
}

// ---------------------------------------------------------------------------
// Measurements: ignored; they print figures and assert nothing about speed.
// ---------------------------------------------------------------------------

/// Publishes `n` events flat out to `subscribers`; returns (events/s,
/// fraction of deliveries lost).
fn run(subscribers: usize, n: u64, capacity: usize) -> (f64, f64) {
    let bus = new_bus(capacity);
    let delivered = count_deliveries(&bus, subscribers);
    let start = Instant::now();
    let mut event = SmallEvent::make(0, 0, 0);
    for seq in 0..n {
        event.seq = seq;
        bus.publish(event);
    }
    bus.flush();
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let stats = bus.shutdown();
    let total = n * subscribers as u64;
    assert_eq!(delivered.load(Ordering::Relaxed) + stats.dropped, total);
    (rate, stats.dropped as f64 / total as f64)
}

#[test]
#[ignore = "measurement: run with --release -- --ignored --nocapture"]
fn throughput_and_lag() {
    let n = 2_000_000 * stress();
    let rounds = 5;
    println!("tokio_broadcast, SmallEvent, publish flat out, max_threads 2, {rounds} rounds:");
    for capacity in [1024, 1 << 16] {
        for subscribers in [1, 4] {
            let results: Vec<(f64, f64)> = (0..rounds).map(|_| run(subscribers, n, capacity)).collect();
            let mut rates: Vec<f64> = results.iter().map(|r| r.0).collect();
            rates.sort_by(|a, b| a.total_cmp(b));
            // Deliveries actually made per second (published minus lost).
            let mut delivered: Vec<f64> = results.iter().map(|r| r.0 * subscribers as f64 * (1.0 - r.1)).collect();
            delivered.sort_by(|a, b| a.total_cmp(b));
            let lost: Vec<String> = results.iter().map(|r| format!("{:.1}%", r.1 * 100.0)).collect();
            println!(
                "  capacity {capacity:6}, 1 -> {subscribers}: median {:5.2} M events/s published, {:5.2} M deliveries/s made; lost per round: {}",
                rates[rounds / 2] / 1e6,
                delivered[rounds / 2] / 1e6,
                lost.join(" ")
            );
        }
    }
}

/// An event type for checking the `Event` bound compiles with `Arc` payloads.
#[derive(Clone)]
struct Shared(Arc<SmallEvent>);
impl Event for Shared {
    fn topic(&self) -> Topic {
        self.0.topic
    }
}

#[test]
fn arc_payloads_work() {
    let bus = TokioBroadcastBus::<Shared, Boxed<Shared>>::new(&config(64)).expect("valid config");
    let n = Arc::new(AtomicU64::new(0));
    {
        let n = n.clone();
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &Shared| {
                n.fetch_add(e.0.seq, Ordering::Relaxed);
            }),
        )
        .expect("subscribe");
    }
    for seq in 0..10 {
        bus.publish(Shared(Arc::new(SmallEvent::make(0, seq, 0))));
    }
    bus.flush();
    assert_eq!(n.load(Ordering::Relaxed), 45);
    bus.shutdown();
}

#[test]
#[ignore = "measurement: run with --release -- --ignored --nocapture --test-threads=1"]
fn allocations_per_event_match_the_doc() {
    common::alloc::print_allocations_per_event::<TokioBroadcast>(&config(1 << 16), 20_000);
}
