//! Lock-free latency recording: log-linear bucket counts written without a
//! lock while a trial runs, turned into an HdrHistogram after it.
//!
//! A value's bucket keeps its top 11 significant bits (`SUB_BITS`), so a
//! bucket is at most 1/1024 of its value wide (about HdrHistogram's 3
//! significant figures). [`Buckets`] holds atomic counts, each written by
//! one thread at a time with a relaxed load and store (no read-modify-write,
//! no lock): the harness gives every (sampled subscriber, producer) pair its
//! own, and the bus contract delivers one producer's events to one
//! subscriber one call at a time. Should a bus break that contract, counts
//! could be lost, never memory corrupted. [`LocalBuckets`] is the same for
//! one thread's own use (the pacer's lateness).

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};

/// Significant bits a bucket keeps.
const SUB_BITS: u32 = 11;
/// Values below this have a bucket each.
const LINEAR: u64 = 1 << SUB_BITS;
/// Buckets per power of two above `LINEAR`.
const HALF: u64 = LINEAR / 2;
/// Largest value recorded as itself (about an hour in ns); above it values
/// land in the last bucket.
const MAX_VALUE: u64 = 3_600_000_000_000;
/// Buckets needed up to `MAX_VALUE`.
const BUCKETS: usize = index(MAX_VALUE) + 1;

/// The bucket of `value`.
const fn index(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let shift = 63 - value.leading_zeros() - (SUB_BITS - 1);
    let sub = value >> shift; // HALF ..< LINEAR
    (LINEAR + (shift as u64 - 1) * HALF + (sub - HALF)) as usize
}

/// The middle of bucket `i`'s range.
fn middle(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let shift = (i - LINEAR) / HALF + 1;
    let sub = (i - LINEAR) % HALF + HALF;
    (sub << shift) + (1 << (shift - 1))
}

/// Adds `counts` (indexed by bucket) to `histogram` at each bucket's middle.
fn add_counts(histogram: &mut Histogram<u64>, counts: impl Iterator<Item = u64>) {
    for (i, count) in counts.enumerate() {
        if count > 0 {
            histogram.saturating_record_n(middle(i).max(1), count);
        }
    }
}

/// Atomic bucket counts with a single writer at a time.
pub struct Buckets {
    counts: Box<[AtomicU64]>,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets { counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl Buckets {
    /// Counts `value` (ns). Only one thread at a time may record into one
    /// `Buckets` (see the [module docs](self)).
    #[inline]
    pub fn record(&self, value: u64) {
        let cell = &self.counts[index(value.min(MAX_VALUE))];
        cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Adds the counts to `histogram` (after the writers are done: after the
    /// trial's flush).
    pub fn add_to(&self, histogram: &mut Histogram<u64>) {
        add_counts(histogram, self.counts.iter().map(|c| c.load(Ordering::Acquire)));
    }

    /// Forgets every count (between the warm-up and the measured trial).
    pub fn reset(&self) {
        for c in self.counts.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Bucket counts owned by one thread.
pub struct LocalBuckets {
    counts: Vec<u64>,
}

impl Default for LocalBuckets {
    fn default() -> Self {
        LocalBuckets { counts: vec![0; BUCKETS] }
    }
}

impl LocalBuckets {
    /// Counts `value` (ns).
    #[inline]
    pub fn record(&mut self, value: u64) {
        self.counts[index(value.min(MAX_VALUE))] += 1;
    }

    /// Adds the counts to `histogram`.
    pub fn add_to(&self, histogram: &mut Histogram<u64>) {
        add_counts(histogram, self.counts.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::new_histogram;
    use proptest::prelude::*;

    proptest! {
        /// A recorded value comes back within a bucket's width (1/1024 of
        /// the value), through either kind of buckets.
        #[test]
        fn values_come_back_within_a_thousandth(values in proptest::collection::vec(1_u64..MAX_VALUE, 1..50)) {
            let (shared, mut local) = (Buckets::default(), LocalBuckets::default());
            for &v in &values {
                shared.record(v);
                local.record(v);
            }
            for buckets in [0, 1] {
                let mut h = new_histogram();
                if buckets == 0 { shared.add_to(&mut h) } else { local.add_to(&mut h) }
                prop_assert_eq!(h.len(), values.len() as u64);
                let max = *values.iter().max().expect("values");
                let error = h.max().abs_diff(max) as f64 / max as f64;
                prop_assert!(error <= 2.0 / 1024.0, "max {} came back as {}", max, h.max());
            }
        }
    }

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        assert_eq!(index(LINEAR - 1) + 1, index(LINEAR));
        assert_eq!(index(2 * LINEAR - 1) + 1, index(2 * LINEAR));
        for v in [1, 2047, 2048, 2049, 4095, 4096, 1 << 20, MAX_VALUE] {
            let i = index(v);
            assert!(middle(i).abs_diff(v) as f64 <= v as f64 / 1024.0, "{v} → {i} → {}", middle(i));
        }
        let shared = Buckets::default();
        shared.record(5);
        shared.reset();
        let mut h = new_histogram();
        shared.add_to(&mut h);
        assert!(h.is_empty());
    }
}
