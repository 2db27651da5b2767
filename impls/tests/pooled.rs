//! Tests specific to the `pooled` bus: delivery and ordering over sharded
//! workers, backpressure from the envelope pool, subscription changes while
//! publishing, and zero allocations per event at steady state, measured by a
//! counting global allocator.
//!
//! `BUSLAB_STRESS=N` multiplies the stress loops (default 1).

use buslab_impls::payload::{HeavyEvent, Payload, SmallEvent};
use buslab_impls::pooled::{Pooled, PooledBus};
use buslab_impls::{BusConfig, BusError, Event, EventBus, Filter, Full, Strategy, SubscriptionId, WaitStrategy};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Counting allocator: counts allocations made on threads that opted in.
// ---------------------------------------------------------------------------

/// Wraps `System`, counting `alloc`, `alloc_zeroed` and `realloc` calls made
/// on threads whose `COUNTED` flag is set (the measuring producer and, from
/// their first listener call on, the bus's workers), so that other tests
/// running in parallel do not disturb the count.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count_allocation() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches no
// heap memory (a const-initialised thread-local `Cell` and an atomic).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Marks the current thread as counted (or not).
fn count_this_thread(on: bool) {
    COUNTED.with(|c| c.set(on));
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

type Boxed<E> = Box<dyn Fn(&E) + Send + Sync>;
type Bus<E = SmallEvent> = PooledBus<E, Boxed<E>>;

fn stress() -> u64 {
    std::env::var("BUSLAB_STRESS").ok().and_then(|s| s.parse().ok()).filter(|&n| n >= 1).unwrap_or(1)
}

fn config(capacity: usize, max_threads: usize) -> BusConfig {
    BusConfig { capacity, max_threads, producers: 2, ..BusConfig::default() }
}

fn new_bus<E: Event>(cfg: &BusConfig) -> Bus<E> {
    Bus::<E>::new(cfg).expect("a valid configuration")
}

fn mix(seq: u64) -> u64 {
    let mut x = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn checksum(range: std::ops::Range<u64>) -> u64 {
    range.fold(0, |acc, s| acc.wrapping_add(mix(s)))
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stream {
    first: u64,
    next: u64,
    count: u64,
    sum: u64,
}

/// What one subscriber received: per producer, first seq, count and
/// checksum; any gap, reorder or duplicate, and any call after the listener
/// was dropped, is a violation.
#[derive(Default)]
struct Recorder {
    streams: Mutex<BTreeMap<u32, Stream>>,
    violations: Mutex<Vec<String>>,
    calls: AtomicU64,
    dropped: AtomicBool,
    threads: Mutex<HashSet<thread::ThreadId>>,
}

/// Sets the recorder's `dropped` flag when the listener owning it is dropped.
struct DropFlag(Arc<Recorder>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

impl Recorder {
    fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    fn record<E: Payload>(&self, event: &E) {
        if self.dropped.load(Ordering::SeqCst) {
            self.violation(format!("called after drop (seq {})", event.seq()));
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.threads.lock().expect("not poisoned").insert(thread::current().id());
        let mut streams = self.streams.lock().expect("not poisoned");
        let s = streams.entry(event.producer()).or_insert(Stream {
            first: event.seq(),
            next: event.seq(),
            count: 0,
            sum: 0,
        });
        let expected = s.next;
        s.next = event.seq() + 1;
        s.count += 1;
        s.sum = s.sum.wrapping_add(mix(event.seq()));
        drop(streams);
        if event.seq() != expected {
            self.violation(format!("producer {}: expected seq {expected}, got {}", event.producer(), event.seq()));
        }
    }

    fn violation(&self, text: String) {
        self.violations.lock().expect("not poisoned").push(text);
    }

    fn listener<E: Payload>(self: &Arc<Self>) -> Boxed<E> {
        let flag = DropFlag(self.clone());
        Box::new(move |e: &E| flag.0.record(e))
    }

    fn gated_listener<E: Payload>(self: &Arc<Self>, gate: Arc<Gate>) -> Boxed<E> {
        let flag = DropFlag(self.clone());
        Box::new(move |e: &E| {
            gate.wait();
            flag.0.record(e)
        })
    }

    fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    fn last_seq(&self, producer: u32) -> Option<u64> {
        let streams = self.streams.lock().expect("not poisoned");
        streams.get(&producer).map(|s| s.next - 1)
    }

    #[track_caller]
    fn assert_no_violations(&self, what: &str) {
        let v = self.violations.lock().expect("not poisoned");
        assert!(v.is_empty(), "{what}: {} violations, first: {:?}", v.len(), &v[..v.len().min(5)]);
    }

    /// Exactly `expected` per producer, in order, once each.
    #[track_caller]
    fn assert_exact(&self, what: &str, expected: &[(u32, std::ops::Range<u64>)]) {
        self.assert_no_violations(what);
        let streams = self.streams.lock().expect("not poisoned");
        for (producer, range) in expected {
            let want = (range.start, range.end - range.start, checksum(range.clone()));
            let got = streams.get(producer).map(|s| (s.first, s.count, s.sum));
            if want.1 == 0 {
                assert!(got.is_none(), "{what}: producer {producer}: expected nothing");
            } else {
                assert_eq!(got, Some(want), "{what}: producer {producer}, {range:?}");
            }
        }
        assert_eq!(
            streams.len(),
            expected.iter().filter(|(_, r)| !r.is_empty()).count(),
            "{what}: events from an unexpected producer"
        );
    }
}

/// A gate listeners block on until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }
    fn wait(&self) {
        let mut open = self.open.lock().expect("not poisoned");
        while !*open {
            open = self.cv.wait(open).expect("not poisoned");
        }
    }
    fn open(&self) {
        *self.open.lock().expect("not poisoned") = true;
        self.cv.notify_all();
    }
}

fn publish_range<E: Payload>(bus: &Bus<E>, producer: u32, seqs: std::ops::Range<u64>) {
    for seq in seqs {
        bus.publish(E::make(producer, seq, 0));
    }
}

/// Silences the panic messages of listeners that panic on purpose.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !text.contains("expected in this test") {
                previous(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------
// Delivery and ordering
// ---------------------------------------------------------------------------

fn exactly_once_in_order(subscribers: usize, max_threads: usize) {
    let events = 2_000 * stress();
    let bus = new_bus::<SmallEvent>(&config(64, max_threads));
    let recs: Vec<_> = (0..subscribers).map(|_| Recorder::new()).collect();
    for rec in &recs {
        bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
    }
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
        let (rec, corrupt) = (rec.clone(), corrupt.clone());
        let flag = DropFlag(rec.clone());
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &HeavyEvent| {
                if *e != HeavyEvent::make(e.producer, e.seq, 0) {
                    corrupt.fetch_add(1, Ordering::Relaxed);
                }
                flag.0.record(e);
            }),
        )
        .expect("subscribe");
    }
    let start = Barrier::new(producers as usize);
    thread::scope(|s| {
        for p in 0..producers {
            let (bus, start) = (&bus, &start);
            s.spawn(move || {
                start.wait();
                for seq in 0..events {
                    // Alternate the three publish paths.
                    let event = HeavyEvent::make(p, seq, 0);
                    match seq % 3 {
                        0 => bus.publish(event),
                        1 => bus.publish_clone(&event),
                        _ => bus.publish_batch(std::slice::from_ref(&event)),
                    }
                }
            });
        }
    });
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
    let recs: Vec<_> = (0..3).map(|_| Recorder::new()).collect();
    for rec in &recs {
        bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
    }
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
    let topics = 4u16;
    let bus = new_bus::<SmallEvent>(&BusConfig { topics: usize::from(topics), ..config(64, 2) });
    let all = Recorder::new();
    bus.subscribe(Filter::All, all.listener()).expect("subscribe");
    let by_topic: Vec<_> = (0..topics)
        .map(|t| {
            let rec = Recorder::new();
            bus.subscribe(Filter::Topic(t), rec.listener()).expect("subscribe");
            rec
        })
        .collect();
    for seq in 0..200 {
        for t in 0..topics {
            bus.publish(SmallEvent::make(u32::from(t), seq, t));
        }
    }
    bus.flush();
    for (t, rec) in by_topic.iter().enumerate() {
        rec.assert_exact(&format!("topic {t}"), &[(t as u32, 0..200)]);
    }
    let expected: Vec<_> = (0..topics).map(|t| (u32::from(t), 0..200)).collect();
    all.assert_exact("all", &expected);
    assert!(matches!(bus.subscribe(Filter::Topic(topics), all.listener()), Err(BusError::UnknownTopic { .. })));
}

// ---------------------------------------------------------------------------
// Subscription changes
// ---------------------------------------------------------------------------

#[test]
fn unsubscribe_stops_delivery_and_drops_the_listener() {
    let bus = new_bus::<SmallEvent>(&config(64, 2));
    let (a, b) = (Recorder::new(), Recorder::new());
    let id_a = bus.subscribe(Filter::All, a.listener()).expect("subscribe");
    bus.subscribe(Filter::All, b.listener()).expect("subscribe");
    publish_range(&bus, 0, 0..100);
    bus.flush();
    bus.unsubscribe(id_a).expect("unsubscribe");
    // The worker drops its old snapshot (and the listener) when it wakes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.is_dropped() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    assert!(a.is_dropped(), "an unsubscribed listener is dropped promptly");
    publish_range(&bus, 0, 100..200);
    bus.flush();
    a.assert_exact("a", &[(0, 0..100)]);
    b.assert_exact("b", &[(0, 0..200)]);
    assert_eq!(bus.unsubscribe(id_a), Err(BusError::UnknownSubscription { bus: "pooled", id: id_a }));
    assert!(matches!(bus.unsubscribe(SubscriptionId(u64::MAX)), Err(BusError::UnknownSubscription { .. })));
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
    publish_range(&bus, 0, 0..11);
    bus.flush();
    // Published after the listener's unsubscribe and subscribe returned.
    publish_range(&bus, 0, 11..100);
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
    let blocked_done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            bus.publish(refused);
            blocked_done.store(true, Ordering::SeqCst);
        });
        thread::sleep(Duration::from_millis(50));
        assert!(!blocked_done.load(Ordering::SeqCst), "publish blocks");
        gate.open();
    });
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
    let flushed = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            bus.flush();
            flushed.store(true, Ordering::SeqCst);
        });
        thread::sleep(Duration::from_millis(50));
        assert!(!flushed.load(Ordering::SeqCst), "flush waits for the gate");
        gate.open();
    });
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
    let recs: Vec<_> = (0..3).map(|_| Recorder::new()).collect();
    for rec in &recs {
        bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
    }
    let published = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                bus.publish(SmallEvent::make(0, seq, 0));
                seq += 1;
                published.store(seq, Ordering::SeqCst);
            }
        });
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
    let bus = new_bus::<SmallEvent>(&config(16, 2));
    let recs: Vec<_> = (0..4).map(|_| Recorder::new()).collect();
    let alive = Arc::new(AtomicUsize::new(0));
    thread_local! {
        static GUARD: std::cell::RefCell<Option<ExitGuard>> = const { std::cell::RefCell::new(None) };
    }
    struct ExitGuard(Arc<AtomicUsize>);
    impl Drop for ExitGuard {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    for rec in &recs {
        let (flag, alive) = (DropFlag(rec.clone()), alive.clone());
        bus.subscribe(
            Filter::All,
            Box::new(move |e: &SmallEvent| {
                GUARD.with(|g| {
                    let mut g = g.borrow_mut();
                    if g.is_none() {
                        alive.fetch_add(1, Ordering::SeqCst);
                        *g = Some(ExitGuard(alive.clone()));
                    }
                });
                thread::sleep(Duration::from_micros(20));
                flag.0.record(e);
            }),
        )
        .expect("subscribe");
    }
    publish_range(&bus, 0, 0..total);
    let stats = bus.shutdown();
    assert_eq!(stats, Default::default());
    for rec in &recs {
        rec.assert_exact("after shutdown", &[(0, 0..total)]);
        assert!(rec.is_dropped());
    }
    assert_eq!(alive.load(Ordering::SeqCst), 0, "every worker was joined");
}

#[test]
fn drop_delivers_everything() {
    let bus = new_bus::<SmallEvent>(&config(8, 2));
    let rec = Recorder::new();
    bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
    publish_range(&bus, 0, 0..100);
    drop(bus);
    rec.assert_exact("after drop", &[(0, 0..100)]);
    assert!(rec.is_dropped());
}

#[test]
fn a_panicking_listener_is_isolated_and_counted() {
    quiet_expected_panics();
    let total = 300;
    let bus = new_bus::<SmallEvent>(&config(16, 2));
    let (before, panicky, after) = (Recorder::new(), Recorder::new(), Recorder::new());
    bus.subscribe(Filter::All, before.listener()).expect("subscribe");
    let flag = DropFlag(panicky.clone());
    bus.subscribe(
        Filter::All,
        Box::new(move |e: &SmallEvent| {
            flag.0.record(e);
            if e.seq % 3 == 2 {
                panic!("listener panics on seq {} (expected in this test)", e.seq);
            }
        }),
    )
    .expect("subscribe");
    bus.subscribe(Filter::All, after.listener()).expect("subscribe");
    publish_range(&bus, 0, 0..total);
    bus.flush();
    before.assert_exact("before", &[(0, 0..total)]);
    after.assert_exact("after", &[(0, 0..total)]);
    panicky.assert_exact("panicky", &[(0, 0..total)]);
    assert_eq!(bus.stats().listener_panics, total / 3);
    assert_eq!(bus.shutdown().listener_panics, total / 3);
}

#[test]
fn never_more_threads_than_max_threads() {
    for max_threads in [1, 3] {
        let bus = new_bus::<SmallEvent>(&config(64, max_threads));
        let recs: Vec<_> = (0..10).map(|_| Recorder::new()).collect();
        for rec in &recs {
            bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
        }
        publish_range(&bus, 0, 0..50);
        bus.flush();
        let threads: HashSet<_> = recs.iter().flat_map(|r| r.threads.lock().expect("not poisoned").clone()).collect();
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
        let recs: Vec<_> = (0..2).map(|_| Recorder::new()).collect();
        for rec in &recs {
            bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
        }
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
    let mut template = E::make(0, 0, 0);
    let warm_up = 4 * capacity as u64;
    for seq in 0..warm_up {
        publish(&bus, &mut template, seq);
    }
    bus.flush();
    count_this_thread(true);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for seq in warm_up..warm_up + events {
        publish(&bus, &mut template, seq);
    }
    bus.flush();
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    count_this_thread(false);
    let odd = |n: u64| n / 2;
    assert_eq!(received.load(Ordering::Relaxed), subscribers as u64 * odd(warm_up + events), "every event delivered");
    after - before
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
                    allocations_at_steady_state::<SmallEvent>(
                        false,
                        subscribers,
                        capacity,
                        events,
                        |bus, template, seq| {
                            template.set_seq(seq);
                            bus.publish_clone(template);
                        },
                    ),
                ),
                (
                    "HeavyEvent via publish_clone",
                    allocations_at_steady_state::<HeavyEvent>(
                        false,
                        subscribers,
                        capacity,
                        events,
                        |bus, template, seq| {
                            template.set_seq(seq);
                            bus.publish_clone(template);
                        },
                    ),
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
