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
//! Throughput is in published events per second. Every delivery is
//! verified: each listener keeps its count inline and reports it when the bus
//! drops it; after each benchmark the bus is shut down and the reported total
//! must equal events × subscribers (a lossy bus must account for the
//! difference in its drop counter), or the bench panics — a bus that loses
//! events gets no figure.
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

/// A listener's own state, inline and dense: its delivery count and its
/// body's accumulator (asynchronous buses get it padded to a cache line, see
/// [`Padded`]). Written by one thread at a time (the contract: one
/// producer's events reach a listener sequentially), so plain loads and
/// stores suffice — no read-modify-write in the measured path. When the bus
/// drops the listener, its count is added to `report`.
struct State {
    count: AtomicU64,
    acc: AtomicU64,
    report: Arc<AtomicU64>,
}

impl State {
    fn new(report: Arc<AtomicU64>) -> State {
        State { count: AtomicU64::new(0), acc: AtomicU64::new(0), report }
    }

    #[inline]
    fn bump(&self) {
        self.count.store(self.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    #[inline]
    fn fold(&self, f: impl FnOnce(u64) -> u64) {
        self.acc.store(f(self.acc.load(Ordering::Relaxed)), Ordering::Relaxed);
        self.bump();
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.report.fetch_add(self.count.load(Ordering::Acquire), Ordering::AcqRel);
    }
}

/// Four handler bodies behind a `match`: statically dispatched, state inline.
struct Handler {
    kind: u8,
    state: State,
}

impl Handler {
    fn new(i: usize, report: Arc<AtomicU64>) -> Handler {
        Handler { kind: (i % 4) as u8, state: State::new(report) }
    }

    /// Every listener runs the same body (the `Sum` one).
    fn same(_: usize, report: Arc<AtomicU64>) -> Handler {
        Handler { kind: 1, state: State::new(report) }
    }
}

impl<E: Payload> Listener<E> for Handler {
    #[inline]
    fn on_event(&self, e: &E) {
        let s = &self.state;
        match self.kind {
            0 => s.bump(),
            1 => s.fold(|acc| acc.wrapping_add(e.seq())),
            2 => s.fold(|acc| acc.max(e.seq())),
            _ => s.fold(|acc| acc ^ u64::from(e.topic())),
        }
    }
}

/// A listener on a cache line of its own: asynchronous buses call adjacent
/// listeners from different consumer threads, which would otherwise
/// false-share; in-line buses call them all from the publisher's thread,
/// where padding would only spread them over more cache lines.
#[repr(align(64))]
struct Padded<T>(T);

impl<E, T: Listener<E>> Listener<E> for Padded<T> {
    #[inline]
    fn on_event(&self, e: &E) {
        self.0.on_event(e)
    }
}

impl Padded<Handler> {
    fn new(i: usize, report: Arc<AtomicU64>) -> Self {
        Padded(Handler::new(i, report))
    }
}

type DynListener<E> = Box<dyn Fn(&E) + Send + Sync>;

/// Four distinct closure bodies, boxed: an indirect call per delivery.
fn dyn_listener<E: Payload>(i: usize, report: Arc<AtomicU64>, padded: bool) -> DynListener<E> {
    macro_rules! body {
        ($s:ident, $call:expr) => {
            if padded {
                let p = Padded(State::new(report));
                Box::new(move |e: &E| {
                    let $s = &p.0;
                    $call(e)
                })
            } else {
                let $s = State::new(report);
                Box::new(move |e: &E| $call(e))
            }
        };
    }
    match i % 4 {
        0 => body!(s, |_: &E| s.bump()),
        1 => body!(s, |e: &E| s.fold(|acc| acc.wrapping_add(e.seq()))),
        2 => body!(s, |e: &E| s.fold(|acc| acc.max(e.seq()))),
        _ => body!(s, |e: &E| s.fold(|acc| acc ^ u64::from(e.topic()))),
    }
}

/// A bus with its listeners, and what was published through it.
struct Rig<B> {
    bus: B,
    subscribers: u64,
    /// Deliveries reported by dropped listeners.
    report: Arc<AtomicU64>,
    /// Events published so far.
    published: u64,
    name: String,
}

impl<B: EventBus> Rig<B>
where
    B::Event: Payload,
{
    fn new(
        config: &BusConfig,
        subscribers: usize,
        name: String,
        make: impl Fn(usize, Arc<AtomicU64>) -> B::Listener,
    ) -> Rig<B> {
        let bus = B::new(config).expect("bench config is valid");
        let report = Arc::new(AtomicU64::new(0));
        for i in 0..subscribers {
            bus.subscribe(Filter::All, make(i, report.clone())).expect("bench subscribers fit");
        }
        Rig { bus, subscribers: subscribers as u64, report, published: 0, name }
    }

    /// Publishes `iters × BATCH` events one by one; returns the time to the
    /// last delivery.
    fn time_publish(&mut self, iters: u64, event: &B::Event) -> Duration {
        let mut event = event.clone();
        let n = iters * BATCH;
        let start = Instant::now();
        for seq in 0..n {
            event.set_seq(seq);
            self.bus.publish_clone(black_box(&event));
        }
        self.bus.flush();
        let elapsed = start.elapsed();
        self.published += n;
        elapsed
    }

    /// Publishes `iters × BATCH` events in batches of `batch.len()`.
    fn time_batches(&mut self, iters: u64, batch: &[B::Event]) -> Duration {
        let per_iter = BATCH / batch.len() as u64;
        let start = Instant::now();
        for _ in 0..iters * per_iter {
            self.bus.publish_batch(black_box(batch));
        }
        self.bus.flush();
        let elapsed = start.elapsed();
        self.published += iters * per_iter * batch.len() as u64;
        elapsed
    }
}

/// Shuts a rig's bus down (dropping every listener, which reports its count)
/// and checks that every listener got every event, if its benchmark ran.
/// (Setup happens lazily inside the benchmark, so that
/// `cargo bench -- <filter>` builds only the buses it measures.)
fn verify<B: EventBus>(rig: Option<Rig<B>>)
where
    B::Event: Payload,
{
    let Some(rig) = rig else { return };
    let dropped = rig.bus.shutdown().dropped;
    let delivered = rig.report.load(Ordering::Acquire);
    assert_eq!(
        delivered + dropped,
        rig.published * rig.subscribers,
        "{}: lost or duplicated deliveries — its figures are void",
        rig.name
    );
}

/// Benchmarks `time` over a rig built on first use, then verifies it.
fn bench<B: EventBus>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    build: impl Fn() -> Rig<B>,
    time: impl Fn(&mut Rig<B>, u64) -> Duration,
) where
    B::Event: Payload,
{
    let mut rig = None;
    group.bench_function(id, |b| {
        let rig = rig.get_or_insert_with(&build);
        b.iter_custom(|iters| time(rig, iters))
    });
    verify(rig);
}

fn fanout<S: Strategy>(c: &mut Criterion) {
    let config = BusConfig::default();
    let event = SmallEvent::make(0, 0, 0);
    let padded = S::CAPABILITIES.asynchronous;
    for subscribers in SUBSCRIBERS {
        if S::CAPABILITIES.max_subscribers.is_some_and(|m| m < subscribers) {
            continue;
        }
        let name = format!("{}/{subscribers}", S::NAME);
        let id = || BenchmarkId::new(S::NAME, subscribers);
        let mut group = c.benchmark_group("fanout_static");
        group.throughput(Throughput::Elements(BATCH));
        if padded {
            bench(
                &mut group,
                id(),
                || Rig::<S::Bus<SmallEvent, Padded<Handler>>>::new(&config, subscribers, name.clone(), Padded::new),
                |rig, iters| rig.time_publish(iters, &event),
            );
        } else {
            bench(
                &mut group,
                id(),
                || Rig::<S::Bus<SmallEvent, Handler>>::new(&config, subscribers, name.clone(), Handler::new),
                |rig, iters| rig.time_publish(iters, &event),
            );
        }
        group.finish();

        if !padded {
            let mut group = c.benchmark_group("fanout_same");
            group.throughput(Throughput::Elements(BATCH));
            bench(
                &mut group,
                id(),
                || Rig::<S::Bus<SmallEvent, Handler>>::new(&config, subscribers, name.clone(), Handler::same),
                |rig, iters| rig.time_publish(iters, &event),
            );
            group.finish();
        }

        let mut group = c.benchmark_group("fanout_dyn");
        group.throughput(Throughput::Elements(BATCH));
        bench(
            &mut group,
            id(),
            || {
                Rig::<S::Bus<SmallEvent, DynListener<SmallEvent>>>::new(&config, subscribers, name.clone(), |i, r| {
                    dyn_listener(i, r, padded)
                })
            },
            |rig, iters| rig.time_publish(iters, &event),
        );
        group.finish();
    }
}

fn spsc<S: Strategy>(c: &mut Criterion) {
    let config = BusConfig::default();
    let event = SmallEvent::make(0, 0, 0);
    let build = || Rig::<S::Bus<SmallEvent, Handler>>::new(&config, 1, S::NAME.to_owned(), Handler::new);
    let mut group = c.benchmark_group("spsc");
    group.throughput(Throughput::Elements(BATCH));
    bench(&mut group, BenchmarkId::from_parameter(S::NAME), build, |rig, iters| rig.time_publish(iters, &event));
    group.finish();

    let batch: Vec<_> = (0..64).map(|seq| SmallEvent::make(0, seq, 0)).collect();
    let mut group = c.benchmark_group("spsc_batch");
    group.throughput(Throughput::Elements(BATCH / 64 * 64));
    bench(&mut group, BenchmarkId::from_parameter(S::NAME), build, |rig, iters| rig.time_batches(iters, &batch));
    group.finish();
}

fn heavy<S: Strategy>(c: &mut Criterion) {
    if S::CAPABILITIES.max_subscribers.is_some_and(|m| m < 16) {
        return;
    }
    let config = BusConfig::default();
    let event = HeavyEvent::make(0, 0, 0);
    let mut group = c.benchmark_group("heavy");
    group.throughput(Throughput::Elements(BATCH));
    bench(
        &mut group,
        BenchmarkId::new(S::NAME, 16),
        || Rig::<S::Bus<HeavyEvent, Handler>>::new(&config, 16, format!("{}/16", S::NAME), Handler::new),
        |rig, iters| rig.time_publish(iters, &event),
    );
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
