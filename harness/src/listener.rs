//! The listener every cell subscribes: it runs the scenario's listener body
//! and work, verifies delivery (count, checksum and per-producer order) and,
//! in the latency pass, records latency into HdrHistograms.
//!
//! Verification state is one cache-line-padded [`Tally`] per (subscriber,
//! producer). The bus contract says one producer's events reach a subscriber
//! one call at a time, so each tally has a single writer at any moment and
//! plain atomic loads and stores suffice — no read-modify-write in the
//! measured path.

use buslab_impls::Listener;
use buslab_impls::payload::Payload;
use buslab_scenarios::Bodies;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Nanoseconds since the process's measurement epoch (monotonic).
#[inline]
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Busy-waits `ns` nanoseconds (simulated listener work).
#[inline]
pub fn spin_for(ns: u64) {
    if ns == 0 {
        return;
    }
    let end = now_ns() + ns;
    while now_ns() < end {
        std::hint::spin_loop();
    }
}

/// A (subscriber, producer) pair's running verification.
#[derive(Default)]
#[repr(align(64))]
pub struct Tally {
    /// Deliveries.
    pub count: AtomicU64,
    /// Wrapping sum of `Payload::checksum` of what arrived.
    pub checksum: AtomicU64,
    /// The seq expected next; `u64::MAX` until the first delivery of a
    /// subscriber whose start is unknown (churned subscribers).
    pub next: AtomicU64,
    /// Sequence numbers skipped (a gap: lost events).
    pub missing: AtomicU64,
    /// Deliveries out of order or duplicated.
    pub disorder: AtomicU64,
    /// The listener body's accumulator (keeps the body's work observable).
    pub acc: AtomicU64,
}

impl Tally {
    #[inline]
    fn bump(cell: &AtomicU64, by: u64) {
        cell.store(cell.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
    }

    #[inline]
    fn record<E: Payload>(&self, event: &E) {
        self.record_parts(event.seq(), event.checksum());
    }

    /// Records one delivery of the event with `seq` and `checksum` (from the
    /// one producer this tally belongs to).
    #[inline]
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

/// All tallies of one subscriber, one per producer, plus its latency
/// recorder if it is sampled.
pub struct Subscriber {
    /// Indexed by producer.
    pub tallies: Box<[Tally]>,
    /// Latency histograms (one per producer, so that concurrent producers do
    /// not contend), present on sampled subscribers in the latency pass.
    pub latency: Option<LatencyRecorder>,
}

impl Subscriber {
    /// A subscriber expecting each producer's stream to start at `first_seq`
    /// (`u64::MAX`: at whatever arrives first).
    pub fn new(producers: usize, first_seq: u64, latency: Option<LatencyRecorder>) -> Arc<Subscriber> {
        let tallies: Box<[Tally]> = (0..producers).map(|_| Tally::default()).collect();
        for t in tallies.iter() {
            t.next.store(first_seq, Ordering::Relaxed);
        }
        Arc::new(Subscriber { tallies, latency })
    }

    /// Deliveries over all producers.
    pub fn count(&self) -> u64 {
        self.tallies.iter().map(|t| t.count.load(Ordering::Acquire)).sum()
    }
}

/// Records delivery latency (now − intended send time) for one subscriber.
pub struct LatencyRecorder {
    /// All deliveries, per producer.
    pub all: Box<[Mutex<Histogram<u64>>]>,
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
    /// Histogram of spike events' latency.
    pub histogram: Mutex<Histogram<u64>>,
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
        LatencyRecorder { all: (0..producers).map(|_| Mutex::new(new_histogram())).collect(), spikes }
    }

    #[inline]
    fn record(&self, producer: usize, intended: u64) {
        let now = now_ns();
        let latency = now.saturating_sub(intended).max(1);
        if let Ok(mut h) = self.all[producer].lock() {
            h.saturating_record(latency);
        }
        if let Some(s) = &self.spikes
            && intended >= s.start_ns.load(Ordering::Relaxed)
        {
            let since = intended - s.start_ns.load(Ordering::Relaxed);
            if since % s.period_ns < s.spike_ns {
                if let Ok(mut h) = s.histogram.lock() {
                    h.saturating_record(latency);
                }
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

    #[inline]
    fn run(self, acc: u64, x: u64) -> u64 {
        match self {
            Body::Same => acc.wrapping_add(x),
            Body::Four(0) => acc.wrapping_add(x),
            Body::Four(1) => acc ^ x.rotate_left(7),
            Body::Four(2) => acc.max(x),
            Body::Four(_) => acc.wrapping_mul(31).wrapping_add(x),
            Body::Own(f) => f(acc, x),
        }
    }
}

/// The listener type every bus is instantiated with.
pub struct HarnessListener {
    subscriber: Arc<Subscriber>,
    body: Body,
    work_ns: u64,
}

impl HarnessListener {
    /// A listener for `subscriber` running `body` plus `work_ns` of work.
    pub fn new(subscriber: Arc<Subscriber>, body: Body, work_ns: u64) -> HarnessListener {
        HarnessListener { subscriber, body, work_ns }
    }
}

impl<E: Payload> Listener<E> for HarnessListener {
    #[inline]
    fn on_event(&self, event: &E) {
        let producer = event.producer() as usize;
        let Some(tally) = self.subscriber.tallies.get(producer) else {
            return; // an unknown producer: counted as missing deliveries at verification
        };
        tally.acc.store(self.body.run(tally.acc.load(Ordering::Relaxed), event.seq()), Ordering::Relaxed);
        spin_for(self.work_ns);
        tally.record(event);
        if let Some(latency) = &self.subscriber.latency {
            latency.record(producer, event.stamp());
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
