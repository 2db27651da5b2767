//! [`Tally`]: a lock-free per-subscriber record for long runs.

use super::{Boxed, Gate, recording_listener};
use buslab_impls::payload::Payload;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// `next` before the first event when any first seq is accepted.
const ANY: u64 = u64::MAX;

/// The sum of seqs `0..n`: what a tally's [`Tally::sum`] reaches for a
/// producer's whole stream.
pub fn seq_sum(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// One subscriber's record, in atomics (no lock per event, unlike
/// [`Recorder`](super::Recorder)): count, sum of seqs, and per-producer
/// order. An event out of order for its mode, or a call after the
/// listener was dropped, counts as an error. Deliveries to one subscriber
/// must be sequential (every bus guarantees it).
pub struct Tally {
    /// Next expected seq per producer (`ANY`: accept any first).
    next: Vec<AtomicU64>,
    /// Gaps allowed (a lossy bus): only check that seqs increase.
    gaps: bool,
    count: AtomicU64,
    sum: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicBool,
}

impl Tally {
    fn new(producers: usize, first: u64, gaps: bool) -> Arc<Tally> {
        Arc::new(Tally {
            next: (0..producers).map(|_| AtomicU64::new(first)).collect(),
            gaps,
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicBool::new(false),
        })
    }

    /// Expects each of `producers` streams from seq 0, gap-free.
    pub fn exact(producers: usize) -> Arc<Tally> {
        Tally::new(producers, 0, false)
    }

    /// Expects a gap-free suffix of each of `producers` streams (a late
    /// subscriber).
    pub fn suffix(producers: usize) -> Arc<Tally> {
        Tally::new(producers, ANY, false)
    }

    /// Expects each of `producers` streams in increasing order, gaps
    /// allowed (a lossy bus).
    pub fn lossy(producers: usize) -> Arc<Tally> {
        Tally::new(producers, ANY, true)
    }

    /// Records one delivery.
    pub fn record(&self, producer: u32, seq: u64) {
        let next = &self.next[producer as usize];
        let expected = next.load(Ordering::Relaxed);
        let wrong = expected != ANY && if self.gaps { seq < expected } else { seq != expected };
        if wrong || self.dropped.load(Ordering::SeqCst) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        next.store(seq + 1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(seq, Ordering::Relaxed);
    }

    /// A listener recording into this tally.
    pub fn listener<E: Payload>(self: &Arc<Self>) -> Boxed<E> {
        self.listener_with(|_| ())
    }

    /// A listener that runs `before` on each event, then records it.
    pub fn listener_with<E: Payload>(self: &Arc<Self>, before: impl Fn(&E) + Send + Sync + 'static) -> Boxed<E> {
        let record = |t: &Arc<Tally>, e: &E| t.record(e.producer(), e.seq());
        recording_listener(self, before, record, |t| t.dropped.store(true, Ordering::SeqCst))
    }

    /// A listener that blocks on `gate` until it opens, then records.
    pub fn gated_listener<E: Payload>(self: &Arc<Self>, gate: Arc<Gate>) -> Boxed<E> {
        self.listener_with(move |_| gate.wait())
    }

    /// Deliveries so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Events out of order, and calls after the listener was dropped.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether the listener has been dropped.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Each of `producers` streams `0..events` arrived whole: count, sum of
    /// seqs and order.
    #[track_caller]
    pub fn assert_all(&self, what: &str, producers: usize, events: u64) {
        assert_eq!(self.count(), events * producers as u64, "{what}: deliveries");
        assert_eq!(self.sum.load(Ordering::Relaxed), seq_sum(events) * producers as u64, "{what}: sum of seqs");
        assert_eq!(self.errors(), 0, "{what}: per-producer order");
    }

    /// Of each producer's stream `0..events`, a gap-free suffix arrived:
    /// one that runs to the end, or nothing.
    #[track_caller]
    pub fn assert_suffix(&self, what: &str, events: u64) {
        assert_eq!(self.errors(), 0, "{what}: gap or duplicate");
        for (producer, next) in self.next.iter().enumerate() {
            let next = next.load(Ordering::Relaxed);
            assert!(next == events || next == ANY, "{what}: producer {producer}'s suffix cut short at {next}");
        }
    }
}
