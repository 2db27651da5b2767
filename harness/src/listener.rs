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
///
/// A regular delivery (the seq expected) writes three words: `next`,
/// `checksum` and `acc`. The count of deliveries is not a fourth: it
/// follows from `next`, which a regular delivery advances by one, and from
/// `adjust`, which an irregular one (a gap, a repeat, a first delivery
/// mid-stream) corrects by what `next` moved beyond one ([`Tally::count`]),
/// so the count stays exact whatever arrives.
#[derive(Default)]
#[repr(align(64))]
pub struct Tally {
    /// The seq expected next; `u64::MAX` until the first delivery of a
    /// subscriber whose start is unknown (churned subscribers).
    pub next: AtomicU64,
    /// Wrapping sum of `Payload::checksum` of what arrived.
    pub checksum: AtomicU64,
    /// The listener body's accumulator (keeps the body's work observable).
    pub acc: AtomicU64,
    /// `next` before the first delivery.
    start: u64,
    /// Wrapping sum, over irregular deliveries, of `next` before it minus
    /// the delivery's seq: what makes `next − start + adjust` the count.
    adjust: AtomicU64,
    /// Sequence numbers skipped (a gap: lost events).
    pub missing: AtomicU64,
    /// Deliveries out of order or duplicated.
    pub disorder: AtomicU64,
}

impl Tally {
    /// A tally expecting its producer's stream to start at `first_seq`.
    pub(crate) fn starting_at(first_seq: u64) -> Tally {
        Tally { next: AtomicU64::new(first_seq), start: first_seq, ..Tally::default() }
    }

    /// Deliveries so far (exact: see the type's doc). Read it once the
    /// deliveries it should count have happened before the read (after the
    /// bus's `flush`).
    pub fn count(&self) -> u64 {
        let next = self.next.load(Ordering::Acquire);
        next.wrapping_sub(self.start).wrapping_add(self.adjust.load(Ordering::Acquire))
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
        Self::bump(&self.checksum, checksum);
    }

    /// A delivery other than the seq expected: `next` moves by
    /// `seq + 1 − next` instead of one, so `adjust` takes the difference.
    #[cold]
    #[inline(never)]
    fn irregular(&self, seq: u64, next: u64) {
        Self::bump(&self.adjust, next.wrapping_sub(seq));
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
        self.tallies.iter().map(Tally::count).sum()
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
            // Rotates what depends on `acc`: a rotation of `x` alone would
            // be hoisted out of the bus's loop over listeners (and kept in
            // a register or spilled for every event, whatever the body).
            Kernel::Rotate => (acc ^ x).rotate_left(7),
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
/// tally line: no chase through the subscriber. The commonest body, `Add`
/// (every listener of a one-body scenario, a quarter of a four-body one),
/// is chosen by the same comparison that checks the producer index, so it
/// costs no test of the body; the other bodies take a second comparison
/// and a `match`; listener work and latency recording an out-of-line path.
pub struct HarnessListener {
    /// The first of the subscriber's tallies (one per producer, contiguous).
    tallies: NonNull<Tally>,
    /// Producers below this index take the in-line path of the body `Add`:
    /// the number of producers when the listener runs `Add` with no work
    /// and no latency recorder, else 0.
    add_below: u32,
    /// Producers below this index take the in-line path of another body:
    /// the number of producers when the listener runs another body with
    /// no work and no latency recorder, else 0.
    inline_below: u32,
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
        let producers = u32::try_from(subscriber.tallies.len()).expect("fewer than 2^32 producers");
        let plain = work == 0 && subscriber.latency.is_none();
        let body = body.kernel();
        let add = matches!(body, Kernel::Add);
        HarnessListener {
            tallies: NonNull::from(&*subscriber.tallies).cast(),
            add_below: if plain && add { producers } else { 0 },
            inline_below: if plain && !add { producers } else { 0 },
            body,
            work,
            subscriber,
        }
    }

    /// The tally of `producer`.
    ///
    /// # Safety
    /// `producer` is below `add_below` or `inline_below` (both at most the
    /// number of tallies `tallies` points to).
    #[inline(always)]
    unsafe fn tally(&self, producer: u32) -> &Tally {
        // SAFETY: `producer` < the number of tallies `tallies` points to,
        // which `subscriber` keeps alive (the caller's promise).
        unsafe { self.tallies.add(producer as usize).as_ref() }
    }

    /// A delivery that is not an in-line `Add`: another body in-line, or
    /// the out-of-line path.
    #[inline(always)]
    fn deliver_other(&self, producer: u32, seq: u64, checksum: u64, stamp: u64) {
        if producer < self.inline_below {
            // SAFETY: `producer` < `inline_below`.
            unsafe { self.tally(producer) }.deliver(self.body, seq, checksum);
        } else {
            self.with_extras(producer as usize, seq, checksum, stamp);
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
        let producer = event.producer();
        let (seq, checksum) = (event.seq(), event.checksum());
        if producer < self.add_below {
            // SAFETY: `producer` < `add_below`.
            unsafe { self.tally(producer) }.deliver(Kernel::Add, seq, checksum);
        } else {
            self.deliver_other(producer, seq, checksum, event.stamp());
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
        assert_eq!(t.count(), 4);
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
        assert_eq!((t.count(), t.missing.load(Ordering::Relaxed)), (10, 0));
        assert_eq!(t.next.load(Ordering::Relaxed), 50);
    }

    /// Seqs with every kind of irregularity: a gap, a repeat, a step back,
    /// a long run, a jump far ahead and back.
    fn irregular_stream() -> Vec<u64> {
        let mut seqs = vec![5, 6, 6, 9, 7, 8, 8, 1_000, 2, 3];
        seqs.extend(10..40);
        seqs.extend([u64::MAX - 3, 0, 41]);
        seqs
    }

    /// Delivers `seqs` from producer 0 (of 2) to a fresh subscriber through
    /// `body`; `recorded` gives the subscriber a latency recorder, which
    /// sends every delivery down the out-of-line path.
    fn deliver_stream(body: Body, first_seq: u64, recorded: bool, seqs: &[u64]) -> Arc<Subscriber> {
        let sub = Subscriber::new(2, first_seq, recorded.then(|| LatencyRecorder::new(2, None)));
        let l = HarnessListener::new(sub.clone(), body, 0);
        for &seq in seqs {
            let mut e = SmallEvent::make(0, 0, 0);
            e.set_seq(seq);
            Listener::<SmallEvent>::on_event(&l, &e);
        }
        sub
    }

    #[test]
    fn the_derived_count_is_exact_whatever_arrives() {
        let seqs = irregular_stream();
        for first_seq in [0, 5, u64::MAX] {
            let sub = deliver_stream(Body::Same, first_seq, false, &seqs);
            let t = &sub.tallies[0];
            assert_eq!(t.count(), seqs.len() as u64, "first_seq {first_seq}");
            let sums = seqs.iter().fold(0u64, |sum, &seq| {
                let mut e = SmallEvent::make(0, 0, 0);
                e.set_seq(seq);
                sum.wrapping_add(e.checksum())
            });
            assert_eq!(t.checksum.load(Ordering::Relaxed), sums);
            assert_eq!(t.acc.load(Ordering::Relaxed), seqs.iter().fold(0u64, |a, &s| a.wrapping_add(s)));
            assert_eq!(t.next.load(Ordering::Relaxed), 42);
            assert_ne!(t.disorder.load(Ordering::Relaxed), 0);
            // The other producer's tally saw nothing.
            assert_eq!(sub.tallies[1].count(), 0);
        }
    }

    #[test]
    fn the_in_line_paths_record_what_the_out_of_line_path_records() {
        let seqs = irregular_stream();
        let bodies = [Body::Same, Body::Four(0), Body::Four(1), Body::Four(2), Body::Four(3)];
        let each = (0..3).map(|i| Body::for_listener(Bodies::Each, i));
        let mut accs = Vec::new();
        for body in bodies.into_iter().chain(each) {
            let (inline, outside) = (deliver_stream(body, 0, false, &seqs), deliver_stream(body, 0, true, &seqs));
            let (a, b) = (&inline.tallies[0], &outside.tallies[0]);
            let read = |t: &Tally| {
                let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
                [t.count(), load(&t.next), load(&t.checksum), load(&t.acc), load(&t.missing), load(&t.disorder)]
            };
            assert_eq!(read(a), read(b));
            assert_eq!(read(a)[0], seqs.len() as u64);
            accs.push(read(a)[3]);
        }
        // `Same` and `Four(0)` are the same body; the rest differ.
        assert_eq!(accs[0], accs[1]);
        accs.dedup();
        assert_eq!(accs.len(), 7);
    }

    #[test]
    fn an_unknown_producer_is_not_recorded() {
        let sub = Subscriber::new(1, 0, None);
        for body in [Body::Same, Body::Four(1)] {
            let l = HarnessListener::new(sub.clone(), body, 0);
            Listener::<SmallEvent>::on_event(&l, &SmallEvent::make(1, 0, 0));
        }
        assert_eq!(sub.count(), 0);
    }
}
