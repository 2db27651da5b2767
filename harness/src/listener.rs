//! The listener every cell subscribes: it runs the scenario's listener body
//! and work, verifies delivery (count, checksum and per-producer order) and,
//! in the latency pass, records latency into lock-free bucket counts
//! ([`crate::buckets`]) turned into HdrHistograms after the trial.
//!
//! Verification state is one cache-line-padded [`Tally`] per (subscriber,
//! producer). The bus contract says one producer's events reach a subscriber
//! one call at a time, so each tally has a single writer at any moment and
//! plain atomic loads and stores suffice — no read-modify-write in the
//! measured path.

use crate::buckets::Buckets;
use buslab_impls::Listener;
use buslab_impls::payload::Payload;
use buslab_scenarios::Bodies;
use hdrhistogram::Histogram;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Nanoseconds since the process's measurement epoch (monotonic).
#[inline]
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Busy-waits `ns` nanoseconds of wall-clock time (the pacer, and the
/// `delays_one` fault): one comparison when `ns` is 0. Listener work is not
/// a wait: it is [`crate::work`]'s fixed loop.
#[inline(always)]
pub fn spin_for(ns: u64) {
    if ns != 0 {
        spin(ns);
    }
}

#[inline(never)]
fn spin(ns: u64) {
    let end = now_ns() + ns;
    while now_ns() < end {
        std::hint::spin_loop();
    }
}

/// A (subscriber, producer) pair's running verification, on a cache line
/// of its own. The fields a regular delivery touches come first.
#[derive(Default)]
#[repr(align(64))]
pub struct Tally {
    /// The seq expected next; `u64::MAX` until the first delivery of a
    /// subscriber whose start is unknown (churned subscribers).
    pub next: AtomicU64,
    /// Deliveries.
    pub count: AtomicU64,
    /// Wrapping sum of `Payload::checksum` of what arrived.
    pub checksum: AtomicU64,
    /// The listener body's accumulator (keeps the body's work observable).
    pub acc: AtomicU64,
    /// Sequence numbers skipped (a gap: lost events).
    pub missing: AtomicU64,
    /// Deliveries out of order or duplicated.
    pub disorder: AtomicU64,
}

impl Tally {
    /// A tally expecting its producer's stream to start at `first_seq`.
    fn starting_at(first_seq: u64) -> Tally {
        Tally { next: AtomicU64::new(first_seq), ..Tally::default() }
    }

    #[inline(always)]
    fn bump(cell: &AtomicU64, by: u64) {
        // A relaxed load and store of the one writer, not a read-modify-write:
        // x86 folds the pair into one `add` to memory.
        cell.store(cell.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
    }

    /// Runs `body` over the event's seq and records its delivery.
    #[inline(always)]
    fn deliver(&self, body: Kernel, seq: u64, checksum: u64) {
        self.acc.store(body.run(self.acc.load(Ordering::Relaxed), seq), Ordering::Relaxed);
        self.record_parts(seq, checksum);
    }

    /// Folds a result of listener work into the accumulator, so that the
    /// work is observable and cannot be optimised away.
    #[inline(always)]
    pub(crate) fn keep(&self, value: u64) {
        self.acc.store(self.acc.load(Ordering::Relaxed) ^ value, Ordering::Relaxed);
    }

    /// Records one delivery of the event with `seq` and `checksum` (from the
    /// one producer this tally belongs to).
    #[inline(always)]
    pub fn record_parts(&self, seq: u64, checksum: u64) {
        let next = self.next.load(Ordering::Relaxed);
        if seq != next {
            self.irregular(seq, next);
        }
        self.next.store(seq.wrapping_add(1), Ordering::Relaxed);
        Self::bump(&self.count, 1);
        Self::bump(&self.checksum, checksum);
    }

    #[cold]
    #[inline(never)]
    fn irregular(&self, seq: u64, next: u64) {
        if next == u64::MAX {
            return; // first delivery of a subscriber that joined mid-stream
        }
        if seq > next {
            Self::bump(&self.missing, seq - next);
        } else {
            Self::bump(&self.disorder, 1);
        }
    }
}

/// One subscriber's tallies, one per producer: a slice of a block that
/// holds the tallies of a whole group of subscribers back to back (a rig's
/// permanent subscribers share one block, so a fan-out's deliveries walk
/// contiguous memory).
pub struct Tallies {
    block: Arc<[Tally]>,
    first: usize,
    len: usize,
}

impl std::ops::Deref for Tallies {
    type Target = [Tally];

    fn deref(&self) -> &[Tally] {
        &self.block[self.first..self.first + self.len]
    }
}

/// All tallies of one subscriber, one per producer, plus its latency
/// recorder if it is sampled.
pub struct Subscriber {
    /// Indexed by producer.
    pub tallies: Tallies,
    /// Latency histograms (one per producer, so that concurrent producers do
    /// not contend), present on sampled subscribers in the latency pass.
    pub latency: Option<LatencyRecorder>,
}

impl Subscriber {
    /// A subscriber expecting each producer's stream to start at `first_seq`
    /// (`u64::MAX`: at whatever arrives first), with a block of its own.
    pub fn new(producers: usize, first_seq: u64, latency: Option<LatencyRecorder>) -> Arc<Subscriber> {
        let mut latency = Some(latency);
        Subscriber::group(1, producers, first_seq, |_| latency.take().flatten()).remove(0)
    }

    /// `count` subscribers whose tallies share one contiguous block;
    /// `latency(i)` gives subscriber `i` its recorder.
    pub fn group(
        count: usize,
        producers: usize,
        first_seq: u64,
        mut latency: impl FnMut(usize) -> Option<LatencyRecorder>,
    ) -> Vec<Arc<Subscriber>> {
        let block: Arc<[Tally]> = (0..count * producers).map(|_| Tally::starting_at(first_seq)).collect();
        (0..count)
            .map(|i| {
                let tallies = Tallies { block: block.clone(), first: i * producers, len: producers };
                Arc::new(Subscriber { tallies, latency: latency(i) })
            })
            .collect()
    }

    /// Deliveries over all producers.
    pub fn count(&self) -> u64 {
        self.tallies.iter().map(|t| t.count.load(Ordering::Acquire)).sum()
    }
}

/// Records delivery latency (now − intended send time) for one subscriber,
/// without a lock: one [`Buckets`] per producer, written only by the thread
/// delivering that producer's events to this subscriber (the producer's
/// own thread for an in-line bus, a consumer thread for an asynchronous
/// one), merged after the trial.
pub struct LatencyRecorder {
    /// All deliveries, per producer.
    pub all: Box<[Buckets]>,
    /// Burst scenarios: deliveries of events intended during a spike.
    pub spikes: Option<SpikeRecorder>,
}

/// Burst bookkeeping: which intended times fall in a spike, and when each
/// spike's last event arrived.
pub struct SpikeRecorder {
    /// Trial start (intended time of the first event), ns; set by the rig
    /// when the trial starts.
    pub start_ns: AtomicU64,
    /// Burst period, ns.
    pub period_ns: u64,
    /// Spike length, ns.
    pub spike_ns: u64,
    /// Latency of spike events, per producer (single writer, like
    /// [`LatencyRecorder::all`]).
    pub histogram: Box<[Buckets]>,
    /// Per spike: the latest delivery time of its events, ns.
    pub last_delivery: Box<[AtomicU64]>,
}

/// A fresh latency histogram: 1 ns to 1 hour at 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static bounds are valid")
}

impl LatencyRecorder {
    /// A recorder for `producers` producers.
    pub fn new(producers: usize, spikes: Option<SpikeRecorder>) -> LatencyRecorder {
        LatencyRecorder { all: (0..producers).map(|_| Buckets::default()).collect(), spikes }
    }

    /// Forgets what was recorded (after a warm-up).
    pub fn reset(&self) {
        self.all.iter().for_each(Buckets::reset);
        if let Some(s) = &self.spikes {
            s.histogram.iter().for_each(Buckets::reset);
            s.last_delivery.iter().for_each(|d| d.store(0, Ordering::Relaxed));
        }
    }

    #[inline]
    fn record(&self, producer: usize, intended: u64) {
        let now = now_ns();
        let latency = now.saturating_sub(intended).max(1);
        self.all[producer].record(latency);
        if let Some(s) = &self.spikes
            && intended >= s.start_ns.load(Ordering::Relaxed)
        {
            let since = intended - s.start_ns.load(Ordering::Relaxed);
            if since % s.period_ns < s.spike_ns {
                s.histogram[producer].record(latency);
                if let Some(last) = s.last_delivery.get((since / s.period_ns) as usize) {
                    last.fetch_max(now, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Bodies generated with `seq-macro` for "one distinct body per listener":
/// 4096 distinct functions (the scenario limit on subscribers).
#[allow(clippy::identity_op, clippy::erasing_op, clippy::eq_op)] // generated arithmetic on N = 0, 1, ...
mod generated {
    seq_macro::seq!(N in 0..4096 {
        /// One generated body per listener.
        pub(crate) static EACH: [fn(u64, u64) -> u64; 4096] = [
            #(
                {
                    #[inline(never)]
                    fn body(acc: u64, x: u64) -> u64 {
                        acc.rotate_left((N % 61) + 1) ^ x.wrapping_mul(2 * N + 1)
                    }
                    body
                },
            )*
        ];
    });
}

/// Which body a listener runs.
#[derive(Clone, Copy)]
pub enum Body {
    /// The one shared body, inlined.
    Same,
    /// One of four bodies chosen by a `match` (static dispatch).
    Four(u8),
    /// A generated function of its own (an indirect call).
    Own(fn(u64, u64) -> u64),
}

impl Body {
    /// The body of listener `index` under `bodies`.
    pub fn for_listener(bodies: Bodies, index: usize) -> Body {
        match bodies {
            Bodies::One => Body::Same,
            Bodies::Four => Body::Four((index % 4) as u8),
            Bodies::Each => Body::Own(generated::EACH[index % generated::EACH.len()]),
        }
    }

    /// The kind of code this body runs, with one tag to match on.
    fn kernel(self) -> Kernel {
        match self {
            Body::Same | Body::Four(0) => Kernel::Add,
            Body::Four(1) => Kernel::Rotate,
            Body::Four(2) => Kernel::Max,
            Body::Four(_) => Kernel::MulAdd,
            Body::Own(f) => Kernel::Own(f),
        }
    }
}

/// A [`Body`] as the listener runs it: `Same` and the first of `Four` are
/// the same inlined code; one flat tag selects among the four (a `match`,
/// static dispatch) or the generated function (an indirect call).
#[derive(Clone, Copy)]
enum Kernel {
    Add,
    Rotate,
    Max,
    MulAdd,
    Own(fn(u64, u64) -> u64),
}

impl Kernel {
    #[inline(always)]
    fn run(self, acc: u64, x: u64) -> u64 {
        match self {
            Kernel::Add => acc.wrapping_add(x),
            Kernel::Rotate => acc ^ x.rotate_left(7),
            Kernel::Max => acc.max(x),
            Kernel::MulAdd => acc.wrapping_mul(31).wrapping_add(x),
            Kernel::Own(f) => f(acc, x),
        }
    }
}

/// The listener type every bus is instantiated with.
///
/// It points straight at its subscriber's tallies, so that a delivery reads
/// the listener (which the bus has just read to call it) and writes one
/// tally line: no chase through the subscriber. Listener work and latency
/// recording take an out-of-line path, chosen by the same comparison that
/// checks the producer index.
pub struct HarnessListener {
    /// The first of the subscriber's tallies (one per producer, contiguous).
    tallies: NonNull<Tally>,
    /// Producers below this index take the in-line path: the number of
    /// producers, or 0 when the listener works or records latency.
    inline_below: usize,
    body: Kernel,
    /// Iterations of the work loop per delivery ([`crate::work`]).
    work: u64,
    /// Owns the block `tallies` points into.
    subscriber: Arc<Subscriber>,
}

// SAFETY: `tallies` points into the block of `Tally`s (atomics: `Sync`)
// kept alive by `subscriber`, and is only used for shared references; every
// other field is `Send + Sync`.
unsafe impl Send for HarnessListener {}
// SAFETY: as above.
unsafe impl Sync for HarnessListener {}

impl HarnessListener {
    /// A listener for `subscriber` running `body` plus `work` iterations of
    /// the work loop ([`crate::work::iterations`] of the scenario's nominal
    /// ns).
    pub fn new(subscriber: Arc<Subscriber>, body: Body, work: u64) -> HarnessListener {
        let producers = subscriber.tallies.len();
        let plain = work == 0 && subscriber.latency.is_none();
        HarnessListener {
            tallies: NonNull::from(&*subscriber.tallies).cast(),
            inline_below: if plain { producers } else { 0 },
            body: body.kernel(),
            work,
            subscriber,
        }
    }

    /// Deliveries with work or a latency recorder, and unknown producers.
    /// It takes the event's fields, not the event: a pointer to the event
    /// that escaped here would keep the compiler from keeping its fields in
    /// registers across the in-line path's stores.
    #[cold]
    #[inline(never)]
    fn with_extras(&self, producer: usize, seq: u64, checksum: u64, stamp: u64) {
        let Some(tally) = self.subscriber.tallies.get(producer) else {
            return; // an unknown producer: counted as missing deliveries at verification
        };
        tally.deliver(self.body, seq, checksum);
        if self.work != 0 {
            tally.keep(crate::work::run(self.work, seq));
        }
        if let Some(latency) = &self.subscriber.latency {
            latency.record(producer, stamp);
        }
    }
}

impl<E: Payload> Listener<E> for HarnessListener {
    #[inline(always)]
    fn on_event(&self, event: &E) {
        let producer = event.producer() as usize;
        let (seq, checksum) = (event.seq(), event.checksum());
        if producer < self.inline_below {
            // SAFETY: `inline_below` ≤ the number of tallies `tallies`
            // points to, which `subscriber` keeps alive.
            let tally = unsafe { self.tallies.add(producer).as_ref() };
            tally.deliver(self.body, seq, checksum);
        } else {
            self.with_extras(producer, seq, checksum, event.stamp());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_impls::payload::SmallEvent;

    #[test]
    fn generated_bodies_are_distinct_functions() {
        let a = generated::EACH[0] as usize;
        let b = generated::EACH[1] as usize;
        assert_ne!(a, b);
        assert_ne!(generated::EACH[0](1, 2), generated::EACH[1](1, 2));
    }

    #[test]
    fn tallies_see_gaps_and_disorder() {
        let sub = Subscriber::new(1, 0, None);
        let l = HarnessListener::new(sub.clone(), Body::Same, 0);
        for seq in [0, 1, 3, 2] {
            let mut e = SmallEvent::make(0, 0, 0);
            e.set_seq(seq);
            Listener::<SmallEvent>::on_event(&l, &e);
        }
        let t = &sub.tallies[0];
        assert_eq!(t.count.load(Ordering::Relaxed), 4);
        assert_eq!(t.missing.load(Ordering::Relaxed), 1);
        assert_eq!(t.disorder.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_mid_stream_subscriber_starts_anywhere() {
        let sub = Subscriber::new(1, u64::MAX, None);
        let l = HarnessListener::new(sub.clone(), Body::Four(2), 0);
        for seq in 40..50 {
            let mut e = SmallEvent::make(0, 0, 0);
            e.set_seq(seq);
            Listener::<SmallEvent>::on_event(&l, &e);
        }
        let t = &sub.tallies[0];
        assert_eq!((t.count.load(Ordering::Relaxed), t.missing.load(Ordering::Relaxed)), (10, 0));
        assert_eq!(t.next.load(Ordering::Relaxed), 50);
    }
}
