//! Publish cost against subscriber count for every bus (criterion), so that
//! progress is visible before the harness exists.
//!
//! Groups (filter with `cargo bench -p buslab-impls -- <group>/<bus>`):
//! - `fanout_static/<bus>/<subscribers>`: one producer, a small event, every
//!   listener an enum whose `match` over four handler bodies the compiler can
//!   inline (static dispatch).
//! - `fanout_dyn/<bus>/<subscribers>`: the same with boxed closures of four
//!   distinct bodies (an indirect call per delivery).
//! - `spsc/<bus>` and `spsc_batch/<bus>`: one producer, one subscriber,
//!   item by item and with `publish_batch` (64 per batch); `spsc/crossbeam_raw`
//!   is a bare crossbeam-channel for reference.
//! - `heavy/<bus>/16`: the heavy order event via `publish_clone` to 16
//!   subscribers.
//!
//! Throughput is in published events per second. Every measured batch is
//! verified: each listener's delivery count must match what was published (a
//! lossy bus must account for the difference in its drop counter), or the
//! bench panics — a bus that loses events gets no number.
//!
//! Setup (building the bus, subscribing) is outside the timed region; each
//! timed region ends with `flush`, so asynchronous buses are timed to the
//! last delivery.

use buslab_impls::payload::{HeavyEvent, Payload, SmallEvent};
use buslab_impls::{BusConfig, EventBus, Filter, Listener, Strategy};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Events published per timed iteration.
const BATCH: u64 = 1_000;
const SUBSCRIBERS: [usize; 5] = [1, 4, 16, 128, 500];

/// A delivery counter written by one thread at a time (the contract: one
/// producer's events reach a listener sequentially), so a plain load + store
/// suffices — no read-modify-write in the measured path. One cache line each,
/// so that consumer threads of asynchronous buses do not false-share.
#[derive(Default)]
#[repr(align(64))]
struct Counter {
    count: AtomicU64,
}

impl Counter {
    #[inline]
    fn bump(&self) {
        self.count
            .store(self.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }
}

/// Four handler bodies behind a `match`: statically dispatched.
enum Handler {
    Count(Arc<Counter>),
    Sum(Arc<Counter>, AtomicU64),
    Max(Arc<Counter>, AtomicU64),
    Topic(Arc<Counter>, AtomicU64),
}

impl Handler {
    fn new(i: usize, counter: Arc<Counter>) -> Handler {
        match i % 4 {
            0 => Handler::Count(counter),
            1 => Handler::Sum(counter, AtomicU64::new(0)),
            2 => Handler::Max(counter, AtomicU64::new(0)),
            _ => Handler::Topic(counter, AtomicU64::new(0)),
        }
    }
}

impl<E: Payload> Listener<E> for Handler {
    #[inline]
    fn on_event(&self, e: &E) {
        match self {
            Handler::Count(c) => c.bump(),
            Handler::Sum(c, acc) => {
                acc.store(
                    acc.load(Ordering::Relaxed).wrapping_add(e.seq()),
                    Ordering::Relaxed,
                );
                c.bump();
            }
            Handler::Max(c, acc) => {
                acc.store(acc.load(Ordering::Relaxed).max(e.seq()), Ordering::Relaxed);
                c.bump();
            }
            Handler::Topic(c, acc) => {
                acc.store(
                    acc.load(Ordering::Relaxed) ^ u64::from(e.topic()),
                    Ordering::Relaxed,
                );
                c.bump();
            }
        }
    }
}

type DynListener<E> = Box<dyn Fn(&E) + Send + Sync>;

/// Four distinct closure bodies, boxed: an indirect call per delivery.
fn dyn_listener<E: Payload>(i: usize, counter: Arc<Counter>) -> DynListener<E> {
    let acc = AtomicU64::new(0);
    match i % 4 {
        0 => Box::new(move |_: &E| counter.bump()),
        1 => Box::new(move |e: &E| {
            acc.store(
                acc.load(Ordering::Relaxed).wrapping_add(e.seq()),
                Ordering::Relaxed,
            );
            counter.bump();
        }),
        2 => Box::new(move |e: &E| {
            acc.store(acc.load(Ordering::Relaxed).max(e.seq()), Ordering::Relaxed);
            counter.bump();
        }),
        _ => Box::new(move |e: &E| {
            acc.store(
                acc.load(Ordering::Relaxed) ^ u64::from(e.topic()),
                Ordering::Relaxed,
            );
            counter.bump();
        }),
    }
}

/// A bus with `subscribers` listeners made by `make`, and their counters.
struct Rig<B> {
    bus: B,
    counters: Vec<Arc<Counter>>,
    /// Deliveries verified so far (per listener).
    expected: u64,
}

impl<B: EventBus> Rig<B>
where
    B::Event: Payload,
{
    fn new(
        config: &BusConfig,
        subscribers: usize,
        make: impl Fn(usize, Arc<Counter>) -> B::Listener,
    ) -> Rig<B> {
        let bus = B::new(config).expect("bench config is valid");
        let counters: Vec<_> = (0..subscribers)
            .map(|_| Arc::new(Counter::default()))
            .collect();
        for (i, c) in counters.iter().enumerate() {
            bus.subscribe(Filter::All, make(i, c.clone()))
                .expect("bench subscribers fit");
        }
        Rig {
            bus,
            counters,
            expected: 0,
        }
    }

    /// Checks that every listener got every event published so far (or that
    /// a lossy bus counted the difference).
    fn verify(&mut self, published: u64, name: &str) {
        self.expected += published;
        let delivered: u64 = self.counters.iter().map(|c| c.get()).sum();
        let want = self.expected * self.counters.len() as u64;
        let dropped = self.bus.stats().dropped;
        assert_eq!(
            delivered + dropped,
            want,
            "{name}: lost or duplicated deliveries"
        );
    }

    /// Publishes `iters × BATCH` events one by one; returns the time to the
    /// last delivery.
    fn time_publish(&mut self, iters: u64, event: &B::Event, name: &str) -> Duration {
        let mut event = event.clone();
        let n = iters * BATCH;
        let start = Instant::now();
        for seq in 0..n {
            event.set_seq(seq);
            self.bus.publish_clone(black_box(&event));
        }
        self.bus.flush();
        let elapsed = start.elapsed();
        self.verify(n, name);
        elapsed
    }

    /// Publishes `iters × BATCH` events in batches of `batch.len()`.
    fn time_batches(&mut self, iters: u64, batch: &[B::Event], name: &str) -> Duration {
        let per_iter = BATCH / batch.len() as u64;
        let start = Instant::now();
        for _ in 0..iters * per_iter {
            self.bus.publish_batch(black_box(batch));
        }
        self.bus.flush();
        let elapsed = start.elapsed();
        self.verify(iters * per_iter * batch.len() as u64, name);
        elapsed
    }
}

/// Shuts a rig's bus down, if its benchmark ran (setup happens lazily inside
/// the benchmark, so that a `cargo bench -- <filter>` builds only the buses
/// it measures).
fn shut_down<B: EventBus>(rig: Option<Rig<B>>) {
    if let Some(rig) = rig {
        rig.bus.shutdown();
    }
}

fn fanout<S: Strategy>(c: &mut Criterion) {
    for subscribers in SUBSCRIBERS {
        if S::CAPABILITIES
            .max_subscribers
            .is_some_and(|m| m < subscribers)
        {
            continue;
        }
        let config = BusConfig::default();
        let event = SmallEvent::make(0, 0, 0);
        let name = format!("{}/{subscribers}", S::NAME);

        let mut group = c.benchmark_group("fanout_static");
        group.throughput(Throughput::Elements(BATCH));
        let mut rig = None;
        group.bench_function(BenchmarkId::new(S::NAME, subscribers), |b| {
            let rig = rig.get_or_insert_with(|| {
                Rig::<S::Bus<SmallEvent, Handler>>::new(&config, subscribers, Handler::new)
            });
            b.iter_custom(|iters| rig.time_publish(iters, &event, &name))
        });
        shut_down(rig);
        group.finish();

        let mut group = c.benchmark_group("fanout_dyn");
        group.throughput(Throughput::Elements(BATCH));
        let mut rig = None;
        group.bench_function(BenchmarkId::new(S::NAME, subscribers), |b| {
            let rig = rig.get_or_insert_with(|| {
                Rig::<S::Bus<SmallEvent, DynListener<SmallEvent>>>::new(
                    &config,
                    subscribers,
                    dyn_listener,
                )
            });
            b.iter_custom(|iters| rig.time_publish(iters, &event, &name))
        });
        shut_down(rig);
        group.finish();
    }
}

fn spsc<S: Strategy>(c: &mut Criterion) {
    let config = BusConfig::default();
    let event = SmallEvent::make(0, 0, 0);
    let mut group = c.benchmark_group("spsc");
    group.throughput(Throughput::Elements(BATCH));
    let mut rig = None;
    group.bench_function(S::NAME, |b| {
        let rig = rig.get_or_insert_with(|| {
            Rig::<S::Bus<SmallEvent, Handler>>::new(&config, 1, Handler::new)
        });
        b.iter_custom(|iters| rig.time_publish(iters, &event, S::NAME))
    });
    shut_down(rig);
    group.finish();

    let batch: Vec<_> = (0..64).map(|seq| SmallEvent::make(0, seq, 0)).collect();
    let mut group = c.benchmark_group("spsc_batch");
    group.throughput(Throughput::Elements(BATCH / 64 * 64));
    let mut rig = None;
    group.bench_function(S::NAME, |b| {
        let rig = rig.get_or_insert_with(|| {
            Rig::<S::Bus<SmallEvent, Handler>>::new(&config, 1, Handler::new)
        });
        b.iter_custom(|iters| rig.time_batches(iters, &batch, S::NAME))
    });
    shut_down(rig);
    group.finish();
}

fn heavy<S: Strategy>(c: &mut Criterion) {
    let config = BusConfig::default();
    let event = HeavyEvent::make(0, 0, 0);
    let mut group = c.benchmark_group("heavy");
    group.throughput(Throughput::Elements(BATCH));
    let name = format!("{}/16", S::NAME);
    let mut rig = None;
    group.bench_function(BenchmarkId::new(S::NAME, 16), |b| {
        let rig = rig.get_or_insert_with(|| {
            Rig::<S::Bus<HeavyEvent, Handler>>::new(&config, 16, Handler::new)
        });
        b.iter_custom(|iters| rig.time_publish(iters, &event, &name))
    });
    shut_down(rig);
    group.finish();
}

/// A bare bounded crossbeam channel with one consumer thread: the reference
/// the `channel` bus is held to.
fn crossbeam_raw(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("crossbeam_raw", |b| {
        b.iter_custom(|iters| {
            let n = iters * BATCH;
            let (tx, rx) = crossbeam_channel::bounded::<SmallEvent>(1024);
            let consumer = std::thread::spawn(move || {
                let mut count = 0u64;
                while let Ok(e) = rx.recv() {
                    black_box(e);
                    count += 1;
                }
                count
            });
            let mut event = SmallEvent::make(0, 0, 0);
            let start = Instant::now();
            for seq in 0..n {
                event.seq = seq;
                tx.send(event).expect("consumer alive");
            }
            drop(tx);
            let received = consumer.join().expect("consumer must not panic");
            let elapsed = start.elapsed();
            assert_eq!(received, n);
            elapsed
        })
    });
    group.finish();
}

macro_rules! every_bus {
    ($($module:ident => $strategy:ident),* $(,)?) => {
        fn benches(c: &mut Criterion) {
            crossbeam_raw(c);
            $( spsc::<buslab_impls::$module::$strategy>(c); )*
            $( fanout::<buslab_impls::$module::$strategy>(c); )*
            $( heavy::<buslab_impls::$module::$strategy>(c); )*
        }
    };
}

buslab_impls::for_each_bus!(every_bus);

criterion_group! {
    name = publish;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = benches
}
criterion_main!(publish);
