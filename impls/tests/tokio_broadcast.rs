//! Tests of the `tokio_broadcast` bus, plus ignored measurements
//! (`cargo test -p buslab-impls --release --test tokio_broadcast -- --ignored --nocapture`).

use buslab_impls::payload::{Payload, SmallEvent};
use buslab_impls::tokio_broadcast::TokioBroadcastBus;
use buslab_impls::{BusConfig, BusError, Event, EventBus, Filter, Topic};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

type Boxed<E> = Box<dyn Fn(&E) + Send + Sync>;
type Bus = TokioBroadcastBus<SmallEvent, Boxed<SmallEvent>>;

/// Counts heap allocations while `COUNTING` is on (the ignored
/// `allocations_per_event` test); otherwise one relaxed load per allocation.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Heap allocations per call of `publish` over `n` calls after a warm-up
/// (run with `--test-threads=1`: the count is process-wide).
fn allocations_per_event<B: EventBus>(bus: &B, n: u64, mut publish: impl FnMut(&B, u64)) -> f64 {
    for seq in 0..n {
        publish(bus, seq);
    }
    bus.flush();
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for seq in 0..n {
        publish(bus, seq);
    }
    bus.flush();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst) as f64 / n as f64
}

/// Loop-count multiplier (env `BUSLAB_STRESS`, default 1).
fn stress() -> u64 {
    std::env::var("BUSLAB_STRESS").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

fn config(capacity: usize) -> BusConfig {
    BusConfig { capacity, max_threads: 2, ..BusConfig::default() }
}

fn new_bus(capacity: usize) -> Bus {
    Bus::new(&config(capacity)).expect("valid config")
}

/// Silences the panics tests provoke on purpose; others still print.
fn quiet_expected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let expected = info.payload().downcast_ref::<&str>().is_some_and(|s| s.contains("expected in this test"));
            if !expected {
                default(info);
            }
        }));
    });
}

/// Per-subscriber record: count, checksum, per-producer order.
struct Tally {
    /// Next expected seq per producer (`u64::MAX`: accept any first).
    next: Vec<AtomicU64>,
    /// Gaps allowed (a lossy run): only check that seqs increase.
    gaps: bool,
    count: AtomicU64,
    sum: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn new(producers: usize, suffix: bool, gaps: bool) -> Arc<Tally> {
        let start = if suffix || gaps { u64::MAX } else { 0 };
        Arc::new(Tally {
            next: (0..producers).map(|_| AtomicU64::new(start)).collect(),
            gaps,
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }

    fn record(&self, producer: u32, seq: u64) {
        let next = &self.next[producer as usize];
        let expected = next.load(Ordering::Relaxed);
        let wrong =
            if self.gaps { expected != u64::MAX && seq < expected } else { expected != u64::MAX && seq != expected };
        if wrong {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        next.store(seq + 1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(seq, Ordering::Relaxed);
    }

    fn listener(self: &Arc<Self>) -> Boxed<SmallEvent> {
        let tally = self.clone();
        Box::new(move |e: &SmallEvent| tally.record(e.producer(), e.seq()))
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn checksum(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// With a ring larger than the run, nothing can be lost.
fn exactly_once_in_order(subscribers: usize, events: u64) {
    let bus = new_bus(events as usize);
    let tallies: Vec<_> = (0..subscribers).map(|_| Tally::new(1, false, false)).collect();
    for t in &tallies {
        bus.subscribe(Filter::All, t.listener()).expect("subscribe");
    }
    for seq in 0..events {
        bus.publish(SmallEvent::make(0, seq, 0));
    }
    bus.flush();
    for t in &tallies {
        assert_eq!(t.count(), events, "flush returned before delivery");
        assert_eq!(t.sum.load(Ordering::Relaxed), checksum(events));
        assert_eq!(t.errors.load(Ordering::Relaxed), 0, "out of order");
    }
    let stats = bus.shutdown();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.listener_panics, 0);
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
    let tallies: Vec<_> = (0..3).map(|_| Tally::new(producers, false, false)).collect();
    for t in &tallies {
        bus.subscribe(Filter::All, t.listener()).expect("subscribe");
    }
    thread::scope(|s| {
        for p in 0..producers {
            let bus = &bus;
            s.spawn(move || {
                for seq in 0..events {
                    bus.publish(SmallEvent::make(p as u32, seq, 0));
                }
            });
        }
    });
    bus.flush();
    for t in &tallies {
        assert_eq!(t.count(), events * producers as u64);
        assert_eq!(t.sum.load(Ordering::Relaxed), checksum(events) * producers as u64);
        assert_eq!(t.errors.load(Ordering::Relaxed), 0);
    }
    assert_eq!(bus.shutdown().dropped, 0);
}

#[test]
fn workers_are_bounded_by_max_threads() {
    let bus = new_bus(1024);
    let threads = Arc::new(Mutex::new(HashSet::new()));
    for _ in 0..50 {
        let threads = threads.clone();
        bus.subscribe(
            Filter::All,
            Box::new(move |_: &SmallEvent| {
                threads.lock().expect("not poisoned").insert(thread::current().id());
            }),
        )
        .expect("subscribe");
    }
    for seq in 0..100 {
        bus.publish(SmallEvent::make(0, seq, 0));
    }
    bus.flush();
    let used = threads.lock().expect("not poisoned").len();
    assert!(used >= 1 && used <= 2.min(buslab_impls::cores()), "{used} workers");
    bus.shutdown();
}

#[test]
fn lag_is_counted_delivered_plus_dropped_equals_sent_per_subscriber() {
    // One subscriber per bus, so `dropped` is that subscriber's.
    for pause_us in [0, 20, 200] {
        let bus = new_bus(8);
        let tally = Tally::new(1, false, true);
        {
            let t = tally.clone();
            bus.subscribe(
                Filter::All,
                Box::new(move |e: &SmallEvent| {
                    if pause_us > 0 {
                        thread::sleep(Duration::from_micros(pause_us));
                    }
                    t.record(e.producer, e.seq);
                }),
            )
            .expect("subscribe");
        }
        let sent = 3_000 * stress();
        for seq in 0..sent {
            bus.publish(SmallEvent::make(0, seq, 0));
        }
        // Must terminate although events were lost.
        bus.flush();
        let dropped = bus.stats().dropped;
        assert_eq!(tally.count() + dropped, sent, "pause {pause_us} µs: delivered + dropped != sent");
        assert_eq!(tally.errors.load(Ordering::Relaxed), 0, "out of order");
        if pause_us == 200 {
            assert!(dropped > 0, "a 200 µs listener must lag a ring of 8");
        }
        assert_eq!(bus.shutdown().dropped, dropped);
    }
}

#[test]
fn lag_with_several_subscribers_is_accounted_in_total() {
    let bus = new_bus(16);
    let tallies: Vec<_> = (0..3).map(|_| Tally::new(1, false, true)).collect();
    for (i, t) in tallies.iter().enumerate() {
        let t = t.clone();
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &SmallEvent| {
                if i > 0 {
                    thread::sleep(Duration::from_micros(50 * i as u64));
                }
                t.record(e.producer, e.seq);
            }),
        )
        .expect("subscribe");
    }
    let sent = 2_000 * stress();
    for seq in 0..sent {
        bus.publish(SmallEvent::make(0, seq, 0));
    }
    bus.flush();
    let delivered: u64 = tallies.iter().map(|t| t.count()).sum();
    assert_eq!(delivered + bus.stats().dropped, 3 * sent);
    for t in &tallies {
        assert!(t.count() <= sent);
        assert_eq!(t.errors.load(Ordering::Relaxed), 0);
    }
    bus.shutdown();
}

#[test]
fn publish_never_blocks_and_try_publish_always_accepts() {
    let bus = new_bus(2);
    let gate = Arc::new(AtomicBool::new(false));
    let tally = Tally::new(1, false, true);
    {
        let (gate, t) = (gate.clone(), tally.clone());
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &SmallEvent| {
                while !gate.load(Ordering::Acquire) {
                    thread::sleep(Duration::from_micros(200));
                }
                t.record(e.producer, e.seq);
            }),
        )
        .expect("subscribe");
    }
    let start = Instant::now();
    for seq in 0..1_000 {
        if seq % 2 == 0 {
            bus.publish(SmallEvent::make(0, seq, 0));
        } else {
            assert!(bus.try_publish(SmallEvent::make(0, seq, 0)).is_ok());
        }
    }
    assert!(start.elapsed() < Duration::from_secs(5), "publish blocked");
    gate.store(true, Ordering::Release);
    bus.flush();
    assert_eq!(tally.count() + bus.stats().dropped, 1_000);
    assert!(bus.stats().dropped > 0);
    bus.shutdown();
}

#[test]
fn unsubscribe_stops_delivery_and_drops_the_listener() {
    let bus = new_bus(1 << 16);
    let calls = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let id = {
        let (calls, flag) = (calls.clone(), DropFlag(dropped.clone()));
        bus.subscribe(
            Filter::All,
            Box::new(move |_: &SmallEvent| {
                let _ = &flag;
                calls.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_micros(50));
            }),
        )
        .expect("subscribe")
    };
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                bus.publish(SmallEvent::make(0, seq, 0));
                seq += 1;
                if seq % 100 == 0 {
                    thread::sleep(Duration::from_micros(100));
                }
            }
        });
        thread::sleep(Duration::from_millis(20));
        bus.unsubscribe(id).expect("subscribed");
        assert!(dropped.load(Ordering::SeqCst), "listener not dropped");
        let frozen = calls.load(Ordering::SeqCst);
        thread::sleep(Duration::from_millis(20));
        assert_eq!(calls.load(Ordering::SeqCst), frozen, "called after return");
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(bus.unsubscribe(id), Err(BusError::UnknownSubscription { bus: "tokio_broadcast", id }));
    bus.flush();
    bus.shutdown();
}

#[test]
fn unsubscribe_from_inside_the_listener() {
    let bus = Arc::new(new_bus(1024));
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
    for seq in 0..100 {
        bus.publish(SmallEvent::make(0, seq, 0));
    }
    bus.flush();
    thread::sleep(Duration::from_millis(10));
    assert_eq!(calls.load(Ordering::SeqCst), 4, "no call after unsubscribe");
    // The listener held a Weak only; the bus is ours again.
    let bus = Arc::into_inner(bus).expect("no listener holds the bus");
    bus.shutdown();
}

#[test]
fn subscribe_while_publishing_gets_a_gap_free_suffix() {
    let events = 10_000 * stress();
    let bus = new_bus((2 * events) as usize);
    let late: Vec<_> = (0..4).map(|_| Tally::new(2, true, false)).collect();
    thread::scope(|s| {
        for p in 0..2u32 {
            let bus = &bus;
            s.spawn(move || {
                for seq in 0..events {
                    bus.publish(SmallEvent::make(p, seq, 0));
                }
            });
        }
        for t in &late {
            thread::sleep(Duration::from_millis(2));
            bus.subscribe(Filter::All, t.listener()).expect("subscribe");
        }
    });
    bus.flush();
    for t in &late {
        assert_eq!(t.errors.load(Ordering::Relaxed), 0, "gap or duplicate");
        for next in &t.next {
            let next = next.load(Ordering::Relaxed);
            assert!(next == events || next == u64::MAX, "suffix cut short");
        }
    }
    assert_eq!(bus.shutdown().dropped, 0);
}

#[test]
fn a_late_subscriber_owes_only_later_events() {
    let bus = new_bus(64);
    let early = Tally::new(1, false, false);
    bus.subscribe(Filter::All, early.listener()).expect("subscribe");
    for seq in 0..50 {
        bus.publish(SmallEvent::make(0, seq, 0));
    }
    bus.flush();
    let late = Tally::new(1, true, false);
    bus.subscribe(Filter::All, late.listener()).expect("subscribe");
    for seq in 50..60 {
        bus.publish(SmallEvent::make(0, seq, 0));
    }
    bus.flush();
    assert_eq!(early.count(), 60);
    assert_eq!(late.count(), 10);
    // A subscriber that joined after the last publish owes nothing.
    let idle = Tally::new(1, true, false);
    bus.subscribe(Filter::All, idle.listener()).expect("subscribe");
    bus.flush();
    assert_eq!(idle.count(), 0);
    bus.shutdown();
}

fn shutdown_delivers_everything(explicit: bool) {
    let events = 5_000 * stress();
    let bus = new_bus(events as usize);
    let tallies: Vec<_> = (0..3).map(|_| Tally::new(1, false, false)).collect();
    let dropped: Vec<_> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
    for (t, d) in tallies.iter().zip(&dropped) {
        let (t, flag) = (t.clone(), DropFlag(d.clone()));
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &SmallEvent| {
                let _ = &flag;
                if e.seq.is_multiple_of(100) {
                    thread::sleep(Duration::from_micros(100));
                }
                t.record(e.producer, e.seq);
            }),
        )
        .expect("subscribe");
    }
    for seq in 0..events {
        bus.publish(SmallEvent::make(0, seq, 0));
    }
    if explicit {
        assert_eq!(bus.shutdown().dropped, 0);
    } else {
        drop(bus);
    }
    for (t, d) in tallies.iter().zip(&dropped) {
        assert_eq!(t.count(), events, "shutdown lost events");
        assert!(d.load(Ordering::SeqCst), "listener outlived shutdown");
    }
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
    quiet_expected_panics();
    let bus = new_bus(4096);
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
    let good = Tally::new(1, false, false);
    bus.subscribe(Filter::All, good.listener()).expect("subscribe");
    let events = 1_000;
    for seq in 0..events {
        bus.publish(SmallEvent::make(0, seq, 0));
    }
    bus.flush();
    assert_eq!(calls.load(Ordering::Relaxed), events, "stays subscribed");
    assert_eq!(good.count(), events);
    assert_eq!(bus.stats().listener_panics, events / 10);
    assert_eq!(bus.shutdown().listener_panics, events / 10);
}

#[test]
fn flush_waits_for_slow_listeners() {
    let bus = new_bus(4096);
    let tallies: Vec<_> = (0..2).map(|_| Tally::new(1, false, false)).collect();
    for t in &tallies {
        let t = t.clone();
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &SmallEvent| {
                thread::sleep(Duration::from_micros(20));
                t.record(e.producer, e.seq);
            }),
        )
        .expect("subscribe");
    }
    for round in 1..=3u64 {
        for seq in (round - 1) * 200..round * 200 {
            bus.publish(SmallEvent::make(0, seq, 0));
        }
        bus.flush();
        for t in &tallies {
            assert_eq!(t.count(), round * 200, "flush returned early");
        }
    }
    bus.flush();
    let empty = new_bus(4);
    empty.publish(SmallEvent::make(0, 0, 0));
    empty.flush();
    assert_eq!(bus.shutdown().dropped, 0);
}

#[test]
fn filters_are_checked_at_receive() {
    let bus = Bus::new(&BusConfig { topics: 4, ..config(1024) }).expect("valid config");
    let seen: Vec<Arc<Mutex<Vec<Topic>>>> = (0..3).map(|_| Arc::default()).collect();
    for (filter, seen) in [Filter::Topic(0), Filter::Topic(2), Filter::All].into_iter().zip(&seen) {
        let seen = seen.clone();
        bus.subscribe(filter, Box::new(move |e: &SmallEvent| seen.lock().expect("not poisoned").push(e.topic())))
            .expect("subscribe");
    }
    assert_eq!(
        bus.subscribe(Filter::Topic(4), Box::new(|_: &SmallEvent| ())),
        Err(BusError::UnknownTopic { bus: "tokio_broadcast", topic: 4, topics: 4 })
    );
    for seq in 0..400 {
        bus.publish(SmallEvent::make(0, seq, (seq % 4) as Topic));
    }
    bus.flush();
    let seen: Vec<_> = seen.iter().map(|s| s.lock().expect("not poisoned").clone()).collect();
    assert!(seen[0].len() == 100 && seen[0].iter().all(|&t| t == 0));
    assert!(seen[1].len() == 100 && seen[1].iter().all(|&t| t == 2));
    assert_eq!(seen[2].len(), 400);
    bus.shutdown();
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
    let delivered = Arc::new(AtomicU64::new(0));
    for _ in 0..subscribers {
        let delivered = delivered.clone();
        bus.subscribe(
            Filter::All,
            Box::new(move |_: &SmallEvent| {
                delivered.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .expect("subscribe");
    }
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
    use buslab_impls::payload::HeavyEvent;
    let n = 20_000;
    let heavy_template = HeavyEvent::make(0, 7, 0);
    for subscribers in [1, 4] {
        let small = new_bus(1 << 16);
        let heavy = TokioBroadcastBus::<HeavyEvent, Boxed<HeavyEvent>>::new(&config(1 << 16)).expect("valid config");
        for _ in 0..subscribers {
            small.subscribe(Filter::All, Box::new(|_: &SmallEvent| ())).expect("subscribe");
            heavy.subscribe(Filter::All, Box::new(|_: &HeavyEvent| ())).expect("subscribe");
        }
        let a = allocations_per_event(&small, n, |b, seq| b.publish(SmallEvent::make(0, seq, 0)));
        println!("  SmallEvent, {subscribers} subscriber(s), publish: {a:.3} per event");
        let events: Vec<HeavyEvent> = (0..2 * n).map(|_| heavy_template.clone()).collect();
        let events = Mutex::new(events);
        let a = allocations_per_event(&heavy, n, |b, _| {
            let e = events.lock().expect("not poisoned").pop().expect("enough");
            b.publish(e)
        });
        println!("  HeavyEvent, {subscribers} subscriber(s), publish: {a:.3} per event");
        let a = allocations_per_event(&heavy, n, |b, _| b.publish_clone(&heavy_template));
        println!("  HeavyEvent, {subscribers} subscriber(s), publish_clone: {a:.3} per event");
        assert_eq!(small.shutdown().dropped, 0);
        assert_eq!(heavy.shutdown().dropped, 0);
    }
}
