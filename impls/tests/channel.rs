//! Tests of the `channel` bus, plus ignored measurements
//! (`cargo test -p buslab-impls --release --test channel -- --ignored --nocapture`).

pub mod common;

use buslab_impls::channel::{Channel, ChannelBus};
use buslab_impls::payload::{HeavyEvent, Payload, SmallEvent};
use buslab_impls::{BusConfig, BusError, Event, EventBus, Filter, Full, Topic, WaitStrategy};
use common::{Boxed, Gate, OpenOnDrop, Tally, blocks, checks, count_deliveries, seq_sum, stress, subscribe_tallies};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

type Bus<E> = ChannelBus<E, Boxed<E>>;

#[global_allocator]
static GLOBAL: common::alloc::CountingAlloc = common::alloc::CountingAlloc;

fn config(capacity: usize, producers: usize) -> BusConfig {
    BusConfig { capacity, producers, max_threads: 2, ..BusConfig::default() }
}

fn exactly_once_in_order(subscribers: usize, events: u64, wait: WaitStrategy) {
    let bus = Bus::<SmallEvent>::new(&BusConfig { wait, ..config(64, 1) }).expect("valid config");
    checks::exactly_once_in_order::<Channel>(bus, subscribers, events);
}

#[test]
fn exactly_once_and_in_order_with_1_subscriber() {
    exactly_once_in_order(1, 100_000 * stress(), WaitStrategy::Park);
}

#[test]
fn exactly_once_and_in_order_with_16_subscribers() {
    exactly_once_in_order(16, 10_000 * stress(), WaitStrategy::Park);
}

#[test]
fn exactly_once_and_in_order_with_500_subscribers() {
    exactly_once_in_order(500, 500 * stress(), WaitStrategy::Park);
}

#[test]
fn exactly_once_with_polling_wait_strategies() {
    exactly_once_in_order(3, 5_000 * stress(), WaitStrategy::Yield);
    exactly_once_in_order(3, 5_000 * stress(), WaitStrategy::BusySpin);
}

#[test]
fn at_most_max_threads_consumer_threads() {
    checks::listener_threads_at_most::<Channel>(Bus::new(&config(16, 1)).expect("valid config"), 2);
}

fn several_producers(producers: usize, subscribers: usize, events: u64) {
    let bus = Bus::<SmallEvent>::new(&config(32, producers)).expect("valid config");
    checks::several_producers::<Channel>(bus, producers, subscribers, events);
}

#[test]
fn several_producers_exactly_once_with_per_producer_checksums() {
    several_producers(4, 3, 20_000 * stress());
}

#[test]
fn several_producers_with_500_subscribers() {
    several_producers(3, 500, 200 * stress());
}

#[test]
fn unsubscribe_stops_delivery_and_drops_the_listener() {
    checks::unsubscribe_stops_delivery_and_drops_the_listener::<Channel>(
        Bus::new(&config(8, 1)).expect("valid config"),
    );
}

#[test]
fn unsubscribe_from_inside_the_listener() {
    checks::unsubscribe_from_inside_the_listener::<Channel>(Bus::new(&config(8, 1)).expect("valid config"));
}

#[test]
fn subscribe_while_publishing_gets_a_gap_free_suffix() {
    let bus = Bus::new(&config(16, 2)).expect("valid config");
    checks::subscribe_while_publishing_gets_a_gap_free_suffix::<Channel>(bus, 20_000 * stress());
}

fn slow_subscriber_blocks_and_loses_nothing(producers: usize) {
    let capacity = 4;
    let bus = Bus::<SmallEvent>::new(&config(capacity, producers)).expect("valid config");
    let gate = Gate::new();
    // Opens the gate however the test ends, so the bus can shut down.
    let _open = OpenOnDrop(gate.clone());
    let slow = Tally::exact(1);
    let fast = Tally::exact(1);
    bus.subscribe(Filter::All, slow.gated_listener(gate.clone())).expect("subscribe");
    bus.subscribe(Filter::All, fast.listener()).expect("subscribe");
    let mut accepted = 0;
    // The consumer takes one (blocked in the listener), the channel holds
    // `capacity`; allow a moment for the first to be taken.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match bus.try_publish(SmallEvent::make(0, accepted, 0)) {
            Ok(()) => accepted += 1,
            Err(Full(back)) => {
                assert_eq!(back.seq, accepted, "the event is handed back");
                if accepted >= capacity as u64 || Instant::now() > deadline {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
    // `capacity` counts the event in the listener too.
    assert_eq!(accepted, capacity as u64);
    // All-or-nothing: the fast subscriber did not get the refused event.
    thread::sleep(Duration::from_millis(10));
    assert_eq!(fast.count(), accepted, "partial delivery of a refused event");
    let blocked = blocks(|| bus.publish(SmallEvent::make(0, accepted, 0)), || gate.open());
    assert!(blocked, "publish did not block");
    bus.flush();
    for t in [&slow, &fast] {
        t.assert_all("lost an event", 1, accepted + 1);
    }
    bus.shutdown();
}

#[test]
fn slow_subscriber_blocks_publish_and_refuses_try_publish_single_producer() {
    slow_subscriber_blocks_and_loses_nothing(1);
}

#[test]
fn slow_subscriber_blocks_publish_and_refuses_try_publish_several_producers() {
    slow_subscriber_blocks_and_loses_nothing(4);
}

#[test]
fn try_publish_is_all_or_nothing_under_racing_producers() {
    let producers = 4;
    let bus = Bus::<SmallEvent>::new(&config(2, producers)).expect("valid config");
    let tallies: Vec<_> = (0..3).map(|_| Tally::exact(producers)).collect();
    for (i, t) in tallies.iter().enumerate() {
        let listener = t.listener_with(move |_: &SmallEvent| {
            if i == 0 {
                thread::yield_now();
            }
        });
        bus.subscribe(Filter::All, listener).expect("subscribe");
    }
    let attempts = 5_000 * stress();
    let accepted = AtomicU64::new(0);
    thread::scope(|s| {
        for p in 0..producers {
            let (bus, accepted) = (&bus, &accepted);
            s.spawn(move || {
                let mut seq = 0;
                for _ in 0..attempts {
                    if bus.try_publish(SmallEvent::make(p as u32, seq, 0)).is_ok() {
                        seq += 1;
                    }
                }
                accepted.fetch_add(seq, Ordering::Relaxed);
            });
        }
    });
    bus.flush();
    let accepted = accepted.load(Ordering::Relaxed);
    assert!(accepted > 0);
    for t in &tallies {
        assert_eq!(t.count(), accepted, "all-or-nothing violated");
        assert_eq!(t.errors(), 0);
    }
    bus.shutdown();
}

#[test]
fn mixed_publish_and_try_publish_lose_nothing() {
    let producers = 4;
    let bus = Bus::<SmallEvent>::new(&config(2, producers)).expect("valid config");
    let tallies: Vec<_> = (0..2).map(|_| Tally::exact(producers)).collect();
    subscribe_tallies(&bus, &tallies);
    let n = 5_000 * stress();
    let accepted = AtomicU64::new(0);
    thread::scope(|s| {
        for p in 0..producers {
            let (bus, accepted) = (&bus, &accepted);
            s.spawn(move || {
                let mut seq = 0;
                for i in 0..n {
                    let event = SmallEvent::make(p as u32, seq, 0);
                    if p % 2 == 0 {
                        bus.publish(event);
                        seq += 1;
                    } else if bus.try_publish(event).is_ok() {
                        seq += 1;
                    } else if i % 64 == 0 {
                        thread::yield_now();
                    }
                }
                accepted.fetch_add(seq, Ordering::Relaxed);
            });
        }
    });
    bus.flush();
    for t in &tallies {
        assert_eq!(t.count(), accepted.load(Ordering::Relaxed));
        assert_eq!(t.errors(), 0);
    }
    bus.shutdown();
}

fn shutdown_delivers_everything(explicit: bool) {
    let events = 5_000 * stress();
    let bus = Bus::new(&config(64, 1)).expect("valid config");
    checks::shutdown_delivers_and_joins::<Channel>(bus, events, explicit, false, checks::pausing_now_and_then);
}

#[test]
fn shutdown_delivers_everything_accepted_and_joins() {
    shutdown_delivers_everything(true);
}

#[test]
fn drop_delivers_everything_accepted_and_joins() {
    shutdown_delivers_everything(false);
}

#[test]
fn a_panicking_listener_does_not_poison_the_bus() {
    checks::a_panicking_listener_does_not_poison_the_bus::<Channel>(Bus::new(&config(16, 1)).expect("valid config"));
}

#[test]
fn flush_waits_for_slow_listeners() {
    let bus = Bus::new(&config(1024, 1)).expect("valid config");
    checks::flush_waits_for_slow_listeners::<Channel>(bus, Bus::new(&config(4, 1)).expect("valid config"));
}

#[test]
fn filters_are_checked_at_publish() {
    let bus = Bus::new(&BusConfig { topics: 4, ..config(8, 1) }).expect("valid config");
    checks::filters_route_by_topic::<Channel>(bus);
}

#[test]
fn invalid_configurations_are_rejected() {
    for (field, cfg) in [
        ("capacity", BusConfig { capacity: 0, ..BusConfig::default() }),
        ("max_threads", BusConfig { max_threads: 0, ..BusConfig::default() }),
    ] {
        match Bus::<SmallEvent>::new(&cfg) {
            Err(BusError::Config { field: f, .. }) => assert_eq!(f, field),
            _ => panic!("{field} accepted"),
        }
    }
}

#[test]
fn heavy_events_are_cloned_per_subscriber() {
    let bus = ChannelBus::<HeavyEvent, Boxed<HeavyEvent>>::new(&config(8, 1)).expect("valid");
    let tallies: Vec<_> = (0..3).map(|_| Tally::exact(1)).collect();
    subscribe_tallies(&bus, &tallies);
    let template = HeavyEvent::make(0, 0, 0);
    for seq in 0..300 {
        let mut e = template.clone();
        e.seq = seq;
        if seq % 2 == 0 {
            bus.publish(e);
        } else {
            bus.publish_clone(&e);
        }
    }
    bus.flush();
    for t in &tallies {
        t.assert_all("heavy", 1, 300);
    }
    bus.shutdown();
}

/// An event whose `clone` runs this thread's hook (once, not from inside
/// itself): a publish that clones for all but its last subscriber re-enters
/// the bus from inside its own fan-out.
#[derive(Debug)]
struct Reentrant(u64);

thread_local! {
    static CLONE_HOOK: std::cell::RefCell<Option<Box<dyn FnOnce()>>> = const { std::cell::RefCell::new(None) };
}

impl Clone for Reentrant {
    fn clone(&self) -> Self {
        if let Some(hook) = CLONE_HOOK.with(|h| h.borrow_mut().take()) {
            hook();
        }
        Reentrant(self.0)
    }
}

impl Event for Reentrant {
    fn topic(&self) -> Topic {
        0
    }
}

/// A publish from inside a publish of the same thread (an event's `clone`)
/// that also changes the subscribers: the inner publish must not replace the
/// outer one's cached snapshot while the outer reads it (it reads the
/// `ArcSwap` instead), and both events reach the subscribers they should.
#[test]
fn a_publish_from_inside_a_clone_sees_the_new_subscriber() {
    type B = ChannelBus<Reentrant, Boxed<Reentrant>>;
    let bus = Arc::new(B::new(&config(16, 1)).expect("valid config"));
    let seen: Vec<_> = (0..3).map(|_| Arc::new(std::sync::Mutex::new(Vec::new()))).collect();
    let listener = |i: usize| -> Boxed<Reentrant> {
        let seen = seen[i].clone();
        Box::new(move |e: &Reentrant| seen.lock().expect("not poisoned").push(e.0))
    };
    bus.subscribe(Filter::All, listener(0)).expect("subscribe");
    bus.subscribe(Filter::All, listener(1)).expect("subscribe");
    // Warm this thread's cached snapshot (version of two subscribers).
    bus.publish(Reentrant(0));
    let (inner_bus, third) = (bus.clone(), listener(2));
    CLONE_HOOK.with(|h| {
        *h.borrow_mut() = Some(Box::new(move || {
            inner_bus.subscribe(Filter::All, third).expect("subscribe");
            inner_bus.publish(Reentrant(2));
        }))
    });
    bus.publish(Reentrant(1));
    bus.publish(Reentrant(3));
    bus.flush();
    let seen: Vec<Vec<u64>> = seen.iter().map(|s| s.lock().expect("not poisoned").clone()).collect();
    // The outer publish of 1 runs on the snapshot it read (two subscribers);
    // the inner publish of 2 sees the third; 3 reaches all three.
    assert_eq!(seen[0], [0, 2, 1, 3], "{seen:?}");
    assert_eq!(seen[1], [0, 2, 1, 3], "{seen:?}");
    assert_eq!(seen[2], [2, 3], "{seen:?}");
    Arc::try_unwrap(bus).ok().expect("the hook ran and let go of its clone").shutdown();
}

// ---------------------------------------------------------------------------
// Measurements: ignored; they print figures and assert nothing about speed.
// ---------------------------------------------------------------------------

/// Same per-event work for the raw channel and the bus: fold the seq into a
/// counter only the consumer writes.
fn consume(sink: &AtomicU64, seq: u64) {
    sink.store(sink.load(Ordering::Relaxed).wrapping_add(seq), Ordering::Relaxed);
}

fn raw_crossbeam_spsc(n: u64, capacity: usize) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<SmallEvent>(capacity);
    let sink = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let consumer = {
        let sink = sink.clone();
        thread::spawn(move || {
            while let Ok(e) = rx.recv() {
                consume(&sink, e.seq);
            }
        })
    };
    let mut event = SmallEvent::make(0, 0, 0);
    for seq in 0..n {
        event.seq = seq;
        tx.send(event).expect("consumer alive");
    }
    drop(tx);
    consumer.join().expect("consumer");
    let rate = n as f64 / start.elapsed().as_secs_f64();
    assert_eq!(sink.load(Ordering::Relaxed), seq_sum(n));
    rate
}

/// `fence`: emulate the alternative wake-up (a SeqCst fence + a load of a
/// per-shard sleeping flag after every publish).
fn bus_spsc(n: u64, cfg: &BusConfig, fence: bool) -> f64 {
    let bus = Bus::<SmallEvent>::new(cfg).expect("valid config");
    let sink = Arc::new(AtomicU64::new(0));
    {
        let sink = sink.clone();
        bus.subscribe(Filter::All, Box::new(move |e: &SmallEvent| consume(&sink, e.seq))).expect("subscribe");
    }
    let sleeping = AtomicBool::new(false);
    let start = Instant::now();
    let mut event = SmallEvent::make(0, 0, 0);
    for seq in 0..n {
        event.seq = seq;
        bus.publish(event);
        if fence {
            std::sync::atomic::fence(Ordering::SeqCst);
            if sleeping.load(Ordering::Relaxed) {
                unreachable!("never set");
            }
        }
    }
    bus.flush();
    let rate = n as f64 / start.elapsed().as_secs_f64();
    bus.shutdown();
    assert_eq!(sink.load(Ordering::Relaxed), seq_sum(n));
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
#[ignore = "measurement: run with --release -- --ignored --nocapture"]
fn spsc_vs_raw_crossbeam() {
    // Short interleaved rounds: on a shared machine, neighbours' load
    // drifts; each round compares runs made seconds apart.
    let n = 2_000_000 * stress();
    let capacity = 1024;
    let rounds = 15;
    let sp = config(capacity, 1);
    let mp = config(capacity, 2);
    let (mut raw, mut bus, mut bus_mp, mut bus_fence) = (vec![], vec![], vec![], vec![]);
    let mut ratios = vec![];
    for _ in 0..rounds {
        let r = raw_crossbeam_spsc(n, capacity);
        let b = bus_spsc(n, &sp, false);
        raw.push(r);
        bus.push(b);
        ratios.push(r / b);
        bus_mp.push(bus_spsc(n, &mp, false));
        bus_fence.push(bus_spsc(n, &sp, true));
    }
    let m = |v: &Vec<f64>| median(v.clone()) / 1e6;
    let best = |v: &Vec<f64>| v.iter().cloned().fold(0.0, f64::max) / 1e6;
    println!("SPSC, SmallEvent, capacity {capacity}, {n} events per run, {rounds} interleaved rounds (median / best):");
    println!("  raw crossbeam bounded:             {:6.1} / {:6.1} M msg/s", m(&raw), best(&raw));
    println!("  channel bus (producers = 1):       {:6.1} / {:6.1} M msg/s", m(&bus), best(&bus));
    println!("  channel bus (producers = 2 path):  {:6.1} / {:6.1} M msg/s", m(&bus_mp), best(&bus_mp));
    println!(
        "  bus + a SeqCst fence per publish:  {:6.1} / {:6.1} M msg/s (the sleeping-flag wake-up's cost)",
        m(&bus_fence),
        best(&bus_fence)
    );
    println!(
        "  raw / bus (producers = 1), per round: median {:.2}, min {:.2}, max {:.2}",
        median(ratios.clone()),
        ratios.iter().cloned().fold(f64::MAX, f64::min),
        ratios.iter().cloned().fold(0.0, f64::max)
    );
}

/// An `Arc`-shared heavy event: each subscriber's copy is a count increment.
#[derive(Clone)]
struct SharedHeavy(Arc<HeavyEvent>);

impl Event for SharedHeavy {
    fn topic(&self) -> Topic {
        self.0.topic
    }
}

fn fan_out_rate<E: Event>(subscribers: usize, n: u64, make: impl Fn(u64) -> E) -> f64 {
    let bus = ChannelBus::<E, Boxed<E>>::new(&config(1024, 1)).expect("valid config");
    let calls = count_deliveries(&bus, subscribers);
    let template = make(0);
    let start = Instant::now();
    for _ in 0..n {
        bus.publish_clone(&template);
    }
    bus.flush();
    let rate = n as f64 / start.elapsed().as_secs_f64();
    bus.shutdown();
    assert_eq!(calls.load(Ordering::Relaxed), n * subscribers as u64);
    rate
}

#[test]
#[ignore = "measurement: run with --release -- --ignored --nocapture"]
fn heavy_vs_arc_heavy() {
    let n = 300_000 * stress();
    println!("publish_clone of one template, capacity 1024, median of 5 rounds:");
    for subscribers in [1, 4, 16] {
        let (mut heavy, mut shared) = (vec![], vec![]);
        for _ in 0..5 {
            heavy.push(fan_out_rate(subscribers, n, |s| HeavyEvent::make(0, s, 0)));
            shared.push(fan_out_rate(subscribers, n, |s| SharedHeavy(Arc::new(HeavyEvent::make(0, s, 0)))));
        }
        let (h, s) = (median(heavy) / 1e6, median(shared) / 1e6);
        println!(
            "  1 -> {subscribers:2}: HeavyEvent {h:6.2} M events/s, Arc<HeavyEvent> {s:6.2} M events/s ({:.1}x)",
            s / h
        );
    }
}

#[test]
#[ignore = "measurement: run with --release -- --ignored --nocapture"]
fn fan_out_throughput() {
    let n = 200_000 * stress();
    println!("publish of SmallEvent, capacity 1024, max_threads 2, median of 3:");
    for subscribers in [1, 4, 16, 500] {
        let n = n / subscribers.min(100) as u64;
        let rates: Vec<f64> = (0..3).map(|_| fan_out_rate(subscribers, n, |s| SmallEvent::make(0, s, 0))).collect();
        let r = median(rates);
        println!(
            "  1 -> {subscribers:3}: {:7.3} M events/s = {:7.2} M deliveries/s",
            r / 1e6,
            r * subscribers as f64 / 1e6
        );
    }
}

#[test]
#[ignore = "measurement: run with --release -- --ignored --nocapture --test-threads=1"]
fn allocations_per_event_match_the_doc() {
    common::alloc::print_allocations_per_event::<Channel>(&config(1024, 1), 20_000);
}
