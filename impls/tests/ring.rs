//! Tests of the `ring` bus: the contract's guarantees as the ring provides
//! them, and its own edges (power-of-two capacity, all-or-nothing claims on
//! both producer paths, batches larger than the ring, consumer threads
//! bounded by `max_threads`, zero allocations for `publish_clone`, a
//! panicking `clone`). `BUSLAB_STRESS=N` multiplies the loop counts.
//!
//! `ring_speed` (ignored) prints throughput figures; run it with
//! `cargo test -p buslab-impls --release --test ring -- --ignored --nocapture`.

use buslab_impls::payload::{HeavyEvent, Payload, SmallEvent};
use buslab_impls::ring::{Ring, RingBus};
use buslab_impls::{
    BusConfig, BusError, Event, EventBus, Filter, Full, Listener, Strategy, SubscriptionId, Topic, WaitStrategy,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Support: an allocation counter, a recording listener, a gate.

/// Counts allocations per thread (tests run in parallel).
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: the allocator may run while this thread's locals are torn
    // down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

/// Allocations this thread has made so far.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: delegates to `System`, only counting.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn stress() -> u64 {
    std::env::var("BUSLAB_STRESS").ok().and_then(|s| s.parse().ok()).filter(|&n| n >= 1).unwrap_or(1)
}

type Boxed<E> = Box<dyn Fn(&E) + Send + Sync>;
type Bus = RingBus<SmallEvent, Boxed<SmallEvent>>;

fn bus(producers: usize, capacity: usize) -> Bus {
    Bus::new(&BusConfig { producers, capacity, ..BusConfig::default() }).expect("a valid configuration")
}

/// What one subscriber received: per producer, the seqs in order, checked
/// on arrival; plus the threads it ran on and whether it was dropped.
#[derive(Default)]
struct Recorder {
    streams: Mutex<BTreeMap<u32, Vec<u64>>>,
    threads: Mutex<HashSet<thread::ThreadId>>,
    dropped: AtomicBool,
    called_after_drop: AtomicBool,
    calls: AtomicU64,
    /// Threads that ran this listener and have not exited yet.
    live_threads: AtomicUsize,
}

struct DropFlag(Arc<Recorder>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

thread_local! {
    /// The recorders whose listener ran on this thread: their
    /// `live_threads` drops when the thread exits.
    static SEEN: RefCell<ThreadGuard> = RefCell::new(ThreadGuard::default());
}

#[derive(Default)]
struct ThreadGuard(Vec<Arc<Recorder>>);

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        for rec in self.0.drain(..) {
            rec.live_threads.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Recorder {
    fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    fn record(self: &Arc<Self>, event: &SmallEvent) {
        if self.dropped.load(Ordering::SeqCst) {
            self.called_after_drop.store(true, Ordering::SeqCst);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.streams.lock().expect("not poisoned").entry(event.producer).or_default().push(event.seq);
        let me = thread::current().id();
        if self.threads.lock().expect("not poisoned").insert(me) {
            self.live_threads.fetch_add(1, Ordering::SeqCst);
            SEEN.with(|seen| seen.borrow_mut().0.push(self.clone()));
        }
    }

    fn listener(self: &Arc<Self>) -> Boxed<SmallEvent> {
        let flag = DropFlag(self.clone());
        Box::new(move |e: &SmallEvent| flag.0.record(e))
    }

    fn count(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn stream(&self, producer: u32) -> Vec<u64> {
        self.streams.lock().expect("not poisoned").get(&producer).cloned().unwrap_or_default()
    }

    /// Exactly `range` from `producer`, in order, once each.
    #[track_caller]
    fn assert_exact(&self, producer: u32, range: std::ops::Range<u64>) {
        let got = self.stream(producer);
        assert_eq!(got.len() as u64, range.end - range.start, "count from {producer}");
        assert!(got.iter().copied().eq(range.clone()), "producer {producer}: expected {range:?} in order");
    }

    /// Each producer's stream is a gap-free, duplicate-free run.
    #[track_caller]
    fn assert_contiguous(&self) {
        for (producer, seqs) in self.streams.lock().expect("not poisoned").iter() {
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "producer {producer}: not a gap-free run");
        }
    }

    fn assert_never_called_after_drop(&self) {
        assert!(!self.called_after_drop.load(Ordering::SeqCst));
    }
}

/// A gate listeners block on until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
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

fn event(producer: u32, seq: u64) -> SmallEvent {
    SmallEvent::make(producer, seq, 0)
}

fn publish_range(bus: &Bus, producer: u32, seqs: std::ops::Range<u64>) {
    for seq in seqs {
        bus.publish(event(producer, seq));
    }
}

// ---------------------------------------------------------------------------
// The contract.

fn exactly_once_in_order(subscribers: usize, producers: usize) {
    let events = 3_000 * stress();
    let bus = bus(producers, 64);
    let recs: Vec<_> = (0..subscribers).map(|_| Recorder::new()).collect();
    for rec in &recs {
        bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
    }
    let start = Barrier::new(producers);
    thread::scope(|s| {
        for p in 0..producers as u32 {
            let (bus, start) = (&bus, &start);
            s.spawn(move || {
                start.wait();
                // Every way in: move, try (retrying), clone, batch.
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
            });
        }
    });
    bus.flush();
    for rec in &recs {
        for p in 0..producers as u32 {
            rec.assert_exact(p, 0..events);
        }
    }
    let stats = bus.shutdown();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.listener_panics, 0);
    for rec in &recs {
        assert!(rec.dropped.load(Ordering::SeqCst), "shutdown drops listeners");
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
    let bus = bus(1, 16);
    let (a, b) = (Recorder::new(), Recorder::new());
    let id_a = bus.subscribe(Filter::All, a.listener()).expect("subscribe");
    bus.subscribe(Filter::All, b.listener()).expect("subscribe");
    publish_range(&bus, 0, 0..100);
    bus.flush();
    bus.unsubscribe(id_a).expect("unsubscribe");
    publish_range(&bus, 0, 100..200);
    bus.flush();
    a.assert_exact(0, 0..100);
    b.assert_exact(0, 0..200);
    // The consumer thread drops its copy at its next wake-up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.dropped.load(Ordering::SeqCst) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    assert!(a.dropped.load(Ordering::SeqCst), "an unsubscribed listener is dropped");
    assert_eq!(bus.unsubscribe(id_a), Err(BusError::UnknownSubscription { bus: "ring", id: id_a }));
    assert!(bus.unsubscribe(SubscriptionId(u64::MAX)).is_err());
    bus.shutdown();
    a.assert_never_called_after_drop();
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
            if let Some(&last) = a.stream(0).last() {
                assert!(last < cut, "seq {last} published after unsubscribe returned ({cut})");
            }
            a.assert_contiguous();
            b.assert_exact(0, 0..total);
            bus.shutdown();
            a.assert_never_called_after_drop();
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
                for p in 0..producers as u32 {
                    early.assert_exact(p, 0..total);
                    for (i, rec) in late.iter().enumerate() {
                        rec.assert_contiguous();
                        if must_get_last[i][p as usize] {
                            assert_eq!(rec.stream(p).last(), Some(&(total - 1)), "runs to the end");
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
        let gate = Arc::new(Gate::default());
        let listener = {
            let (rec, gate) = (rec.clone(), gate.clone());
            Box::new(move |e: &SmallEvent| {
                gate.wait();
                rec.record(e);
            })
        };
        bus.subscribe(Filter::All, listener).expect("subscribe");
        for seq in 0..8 {
            assert!(bus.try_publish(event(0, seq)).is_ok(), "room for 8");
        }
        let Err(Full(back)) = bus.try_publish(event(0, 8)) else {
            panic!("a ring of 8 holding 8 must refuse");
        };
        assert_eq!(back.seq, 8, "Full hands back the very event");
        let done = AtomicBool::new(false);
        thread::scope(|s| {
            s.spawn(|| {
                bus.publish(back);
                done.store(true, Ordering::SeqCst);
            });
            thread::sleep(Duration::from_millis(50));
            assert!(!done.load(Ordering::SeqCst), "publish must wait while full");
            gate.open();
        });
        publish_range(&bus, 0, 9..100);
        bus.flush();
        rec.assert_exact(0, 0..100);
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
        rec.assert_exact(0, 0..1_000);
        bus.shutdown();
    }
}

#[test]
fn consumer_threads_never_exceed_max_threads() {
    for max_threads in [1, 2, 3] {
        let bus = Bus::new(&BusConfig { max_threads, ..BusConfig::default() }).expect("valid");
        let recs: Vec<_> = (0..500).map(|_| Recorder::new()).collect();
        for rec in &recs {
            bus.subscribe(Filter::All, rec.listener()).expect("subscribe");
        }
        publish_range(&bus, 0, 0..200);
        bus.flush();
        let threads: HashSet<_> = recs.iter().flat_map(|r| r.threads.lock().expect("not poisoned").clone()).collect();
        assert_eq!(threads.len(), max_threads, "500 subscribers over {max_threads} threads");
        assert!(!threads.contains(&thread::current().id()));
        for rec in &recs {
            rec.assert_exact(0, 0..200);
            assert_eq!(rec.threads.lock().expect("not poisoned").len(), 1);
        }
        bus.shutdown();
    }
}

#[test]
fn shutdown_and_drop_deliver_everything_and_join() {
    for use_drop in [false, true] {
        let total = 2_000 * stress();
        let bus = bus(1, 16);
        let recs: Vec<_> = (0..4).map(|_| Recorder::new()).collect();
        for rec in &recs {
            let rec2 = rec.clone();
            let flag = DropFlag(rec.clone());
            let slow = Box::new(move |e: &SmallEvent| {
                let _keep = &flag;
                let start = Instant::now();
                while start.elapsed() < Duration::from_micros(2) {
                    std::hint::spin_loop();
                }
                rec2.record(e);
            });
            bus.subscribe(Filter::All, slow).expect("subscribe");
        }
        publish_range(&bus, 0, 0..total);
        if use_drop {
            drop(bus);
        } else {
            let stats = bus.shutdown();
            assert_eq!(stats.dropped, 0);
        }
        for rec in &recs {
            rec.assert_exact(0, 0..total);
            assert!(rec.dropped.load(Ordering::SeqCst));
            assert_eq!(rec.live_threads.load(Ordering::SeqCst), 0, "a consumer thread outlived shutdown");
        }
    }
}

#[test]
fn a_panicking_listener_is_isolated_and_counted() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let total = 300;
    let bus = bus(2, 16);
    let (before, panicky, after) = (Recorder::new(), Recorder::new(), Recorder::new());
    bus.subscribe(Filter::All, before.listener()).expect("subscribe");
    let listener = {
        let rec = panicky.clone();
        Box::new(move |e: &SmallEvent| {
            rec.record(e);
            if e.seq % 3 == 2 {
                panic!("expected in this test");
            }
        })
    };
    bus.subscribe(Filter::All, listener).expect("subscribe");
    bus.subscribe(Filter::All, after.listener()).expect("subscribe");
    publish_range(&bus, 0, 0..total);
    bus.flush();
    std::panic::set_hook(previous);
    before.assert_exact(0, 0..total);
    after.assert_exact(0, 0..total);
    panicky.assert_exact(0, 0..total);
    assert_eq!(bus.stats().listener_panics, total / 3);
    bus.shutdown();
}

#[test]
fn flush_waits_for_slow_listeners() {
    let bus = bus(1, 1024);
    let rec = Recorder::new();
    let slow = {
        let rec = rec.clone();
        Box::new(move |e: &SmallEvent| {
            thread::sleep(Duration::from_micros(200));
            rec.record(e);
        })
    };
    bus.subscribe(Filter::All, slow).expect("subscribe");
    publish_range(&bus, 0, 0..50);
    bus.flush();
    assert_eq!(rec.count(), 50, "flush returns after every listener returned");
    bus.flush();
    bus.shutdown();
}

#[test]
fn filters_are_checked_at_delivery() {
    let topics = 4u16;
    let bus = Bus::new(&BusConfig { topics: topics as usize, ..BusConfig::default() }).expect("valid");
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
        rec.assert_exact(t as u32, 0..200);
        assert_eq!(rec.streams.lock().expect("not poisoned").len(), 1);
    }
    for t in 0..topics {
        all.assert_exact(u32::from(t), 0..200);
    }
    assert!(matches!(
        bus.subscribe(Filter::Topic(topics), Recorder::new().listener()),
        Err(BusError::UnknownTopic { topic: 4, topics: 4, .. })
    ));
    bus.shutdown();
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
            rec.assert_exact(0, 0..2_000);
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
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
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
    std::panic::set_hook(previous);
}

/// Stores the allocations its (consumer) thread has made so far.
struct AllocProbe(Arc<AtomicU64>);

impl Listener<HeavyEvent> for AllocProbe {
    fn on_event(&self, _event: &HeavyEvent) {
        self.0.store(allocations(), Ordering::SeqCst);
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
        let (producer_before, consumer_before) = (allocations(), consumer.load(Ordering::SeqCst));
        for seq in 0..1_000 {
            template.set_seq(seq);
            bus.publish_clone(&template);
            if seq % 100 == 0 {
                bus.publish_batch(&batch);
            }
        }
        bus.flush();
        assert_eq!(allocations() - producer_before, 0, "the publisher allocated");
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
