//! The single-producer single-consumer floor: `rtrb`'s own push/pop loop
//! against the `rtrb` peer bus and the `ring` bus, in one process.
//!
//! Rounds alternate between the contenders (so a neighbour's load hits them
//! alike); each round moves `--events` small events (the harness's
//! `SmallEvent`, 32 bytes) from one producer thread to one consumer and
//! reports events/s from the first publish to the last delivery (for the
//! buses: to the end of `flush`, as the harness's throughput pass times a
//! trial). The buses are driven as the harness drives `spsc` and `batch`:
//! a flat `publish_clone` loop (or `publish_batch` of 64) setting each
//! event's seq, then `flush`, with a listener that checks order and sums a
//! checksum per delivery (the harness's `Tally`, reduced). Each bus is built
//! once and serves every round, as a harness `Rig` serves every trial.
//!
//! The raw loops are what the crate's own benchmarks do: a producer thread
//! that pushes, spinning (`spin_loop`) while the ring is full, and a
//! consumer thread that pops (or reads chunks), spinning while it is empty
//! (or yielding after a while: `snooze`). No waiting machinery: both
//! threads hold a core throughout. The last raw loop pauses ~250 ns after
//! a short chunk, as the buses' consumers do: a consumer that takes each
//! event as it lands pulls the slot and index lines across on nearly every
//! push, which costs more than any waiting machinery.
//!
//! Run: `cargo run --release -p buslab-impls --example spsc_floor -- [--events N] [--rounds R] [--batch B]`

use buslab_impls::payload::{Payload, SmallEvent};
use buslab_impls::ring::Ring;
use buslab_impls::rtrb::Rtrb;
use buslab_impls::{BusConfig, EventBus, Filter, Listener, Strategy};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One subscriber's verification: the seq expected next and a checksum,
/// written by the one delivering thread with plain loads and stores.
#[derive(Default)]
#[repr(align(64))]
struct Tally {
    next: AtomicU64,
    checksum: AtomicU64,
    disorder: AtomicU64,
}

impl Tally {
    #[inline(always)]
    fn record(&self, event: &SmallEvent) {
        let seq = event.seq;
        if seq != self.next.load(Ordering::Relaxed) {
            self.disorder.store(self.disorder.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        self.next.store(seq + 1, Ordering::Relaxed);
        let sum = self.checksum.load(Ordering::Relaxed).wrapping_add(event.checksum());
        self.checksum.store(sum, Ordering::Relaxed);
    }
}

/// The listener every bus gets.
#[derive(Clone)]
struct Check(Arc<Tally>);

impl Listener<SmallEvent> for Check {
    #[inline]
    fn on_event(&self, event: &SmallEvent) {
        self.0.record(event);
    }
}

/// What every round must have delivered: `first..first + n` in order.
fn expect(tally: &Tally, first: u64, n: u64, checksum_before: u64, template: &SmallEvent) -> u64 {
    let mut event = *template;
    let mut sum = checksum_before;
    for seq in first..first + n {
        event.set_seq(seq);
        sum = sum.wrapping_add(event.checksum());
    }
    assert_eq!(tally.next.load(Ordering::Acquire), first + n, "every event delivered");
    assert_eq!(tally.disorder.load(Ordering::Acquire), 0, "in order");
    assert_eq!(tally.checksum.load(Ordering::Acquire), sum, "checksums match");
    sum
}

/// A bus built once, driven round after round as the harness drives a cell.
struct Driven<B: EventBus<Event = SmallEvent, Listener = Check>> {
    bus: B,
    tally: Arc<Tally>,
    next_seq: u64,
    checksum: u64,
}

impl<B: EventBus<Event = SmallEvent, Listener = Check>> Driven<B> {
    fn new() -> Self {
        let config = BusConfig { max_threads: 1, ..BusConfig::default() };
        let bus = B::new(&config).expect("a valid config");
        let tally = Arc::new(Tally::default());
        bus.subscribe(Filter::All, Check(tally.clone())).expect("one subscriber");
        Driven { bus, tally, next_seq: 0, checksum: 0 }
    }

    /// One round: events/s.
    fn round(&mut self, events: u64, batch: usize) -> f64 {
        let template = SmallEvent::make(0, 0, 0);
        let first = self.next_seq;
        let bus = &self.bus;
        let elapsed = std::thread::scope(|s| {
            let producer = s.spawn(|| {
                let start = Instant::now();
                if batch <= 1 {
                    publish_flat(bus, template, first, events);
                } else {
                    publish_batches(bus, vec![template; batch], first, events);
                }
                start
            });
            let start = producer.join().expect("the producer does not panic");
            bus.flush();
            start.elapsed()
        });
        self.checksum = expect(&self.tally, first, events, self.checksum, &template);
        self.next_seq += events;
        events as f64 / elapsed.as_secs_f64()
    }
}

/// The harness's `publish_flat` with one template.
#[inline(never)]
fn publish_flat<B: EventBus<Event = SmallEvent>>(bus: &B, mut event: SmallEvent, first: u64, events: u64) {
    for seq in first..first + events {
        event.set_seq(seq);
        bus.publish_clone(&event);
    }
}

/// The harness's `publish_batches`.
#[inline(never)]
fn publish_batches<B: EventBus<Event = SmallEvent>>(bus: &B, mut batch: Vec<SmallEvent>, first: u64, events: u64) {
    let end = first + events;
    let mut seq = first;
    while seq < end {
        let n = (end - seq).min(batch.len() as u64) as usize;
        for (k, event) in batch[..n].iter_mut().enumerate() {
            event.set_seq(seq + k as u64);
        }
        bus.publish_batch(&batch[..n]);
        seq += n as u64;
    }
}

/// How the raw consumer reads.
#[derive(Clone, Copy)]
enum Consume {
    /// `pop`, one event at a time (the crate's benchmarks).
    Pop,
    /// `read_chunk` of everything readable, then `commit_all`.
    Chunks,
    /// As `Chunks`, pausing ~250 ns after a chunk shorter than a quarter of
    /// the ring, as the `ring` bus's and the `rtrb` peer's consumers do.
    ChunksPaused,
}

/// `spin_loop` rounds that take about 250 ns here (the buses' coalescing
/// pause, `wait::coalescing_spins`).
fn pause_spins() -> u32 {
    const ROUNDS: u32 = 1_000;
    let start = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::spin_loop();
    }
    let per_round = start.elapsed().as_nanos().max(1) as f64 / f64::from(ROUNDS);
    (250.0 / per_round).clamp(1.0, 4_096.0) as u32
}

/// What the raw loops do while the ring is full (producer) or empty
/// (consumer).
#[derive(Clone, Copy)]
enum Idle {
    /// `spin_loop`, as the crate's benchmarks do.
    Spin,
    /// crossbeam's `Backoff::snooze`: spin briefly, then yield (a thread
    /// whose peer was descheduled gives its core back).
    Snooze,
}

impl Idle {
    #[inline(always)]
    fn wait(self, backoff: &crossbeam_utils::Backoff) {
        match self {
            Idle::Spin => std::hint::spin_loop(),
            Idle::Snooze => backoff.snooze(),
        }
    }
}

/// `rtrb`'s own loop: a producer thread pushes, the consumer pops (or reads
/// chunks), each side waiting as `idle` says. A fresh ring per round, as
/// the crate's benchmarks build one per measurement.
fn raw(events: u64, consume: Consume, idle: Idle) -> f64 {
    let (mut producer, mut consumer) = ::rtrb::RingBuffer::<SmallEvent>::new(BusConfig::default().capacity);
    let tally = Tally::default();
    let template = SmallEvent::make(0, 0, 0);
    let spins = pause_spins();
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut event = template;
            let backoff = crossbeam_utils::Backoff::new();
            for seq in 0..events {
                event.set_seq(seq);
                let mut item = event;
                while let Err(::rtrb::PushError::Full(back)) = producer.push(item) {
                    item = back;
                    idle.wait(&backoff);
                }
                backoff.reset();
            }
        });
        let mut got = 0;
        let backoff = crossbeam_utils::Backoff::new();
        while got < events {
            match consume {
                Consume::Chunks | Consume::ChunksPaused => {
                    let n = consumer.slots();
                    if n == 0 {
                        idle.wait(&backoff);
                        continue;
                    }
                    let chunk = consumer.read_chunk(n).expect("slots said so");
                    let (a, b) = chunk.as_slices();
                    a.iter().chain(b).for_each(|e| tally.record(e));
                    chunk.commit_all();
                    got += n as u64;
                    if matches!(consume, Consume::ChunksPaused) && n < consumer.buffer().capacity() / 4 {
                        for _ in 0..spins {
                            std::hint::spin_loop();
                        }
                    }
                }
                Consume::Pop => match consumer.pop() {
                    Ok(event) => {
                        tally.record(&event);
                        got += 1;
                    }
                    Err(_) => {
                        idle.wait(&backoff);
                        continue;
                    }
                },
            }
            backoff.reset();
        }
    });
    let rate = events as f64 / start.elapsed().as_secs_f64();
    expect(&tally, 0, events, 0, &template);
    rate
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let events = arg("--events", 10_000_000);
    let rounds = arg("--rounds", 7) as usize;
    let batch = arg("--batch", 1) as usize;
    let mut ring = Driven::<<Ring as Strategy>::Bus<SmallEvent, Check>>::new();
    let mut rtrb = Driven::<<Rtrb as Strategy>::Bus<SmallEvent, Check>>::new();
    // Warm-up: each bus's first round (thread start, page faults) is not kept.
    ring.round(events / 10, batch);
    rtrb.round(events / 10, batch);
    let names = [
        "raw rtrb push/pop, spin",
        "raw rtrb push/pop, snooze",
        "raw rtrb push/read_chunk, spin",
        "raw rtrb push/read_chunk, pause",
        "rtrb bus",
        "ring bus",
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    println!("{events} events per round, batch {batch}, {rounds} rounds (M events/s)");
    for r in 0..rounds {
        let round = [
            raw(events, Consume::Pop, Idle::Spin),
            raw(events, Consume::Pop, Idle::Snooze),
            raw(events, Consume::Chunks, Idle::Spin),
            raw(events, Consume::ChunksPaused, Idle::Spin),
            rtrb.round(events, batch),
            ring.round(events, batch),
        ];
        let line: Vec<String> = round.iter().map(|x| format!("{:7.1}", x / 1e6)).collect();
        println!("round {r}: {}", line.join(" "));
        for (k, x) in round.into_iter().enumerate() {
            rates[k].push(x);
        }
    }
    println!("median of {rounds} rounds:");
    for (name, v) in names.iter().zip(&mut rates) {
        println!("  {name:<32} {:7.1} M events/s", median(v) / 1e6);
    }
}
