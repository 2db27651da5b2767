//! The latency pass: open-loop loads at the rates the runner offers every
//! bus of a point ([`crate::rates`]), latency measured from each event's
//! intended send time, the pacer's own lateness recorded beside it so that a
//! load the pacer could not keep is marked, not charged to the bus.
//!
//! Only the event rig ([`Rig`]) paces its producers; each load gets a fresh
//! rig with latency recorders on a sample of its subscribers.

use super::events_for;
use crate::buckets::Buckets;
use crate::drive::{Pace, Rig, Window};
use crate::error::CellError;
use crate::listener::{HarnessListener, LatencyRecorder, SpikeRecorder, new_histogram};
use crate::probe::{ProbeRequest, ProbeResponse};
use crate::stats;
use buslab_impls::payload::Payload;
use buslab_scenarios::results::{Latency, Lateness, percentile_lost};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Subscribers whose latency is recorded: at most 16, spread evenly and
/// including the first and the last (recording at all 500 of a fan-out
/// would make the harness, not the bus, the bottleneck).
pub fn sampled(subscribers: usize) -> Vec<usize> {
    let n = subscribers.min(16);
    if n <= 1 {
        return vec![0];
    }
    let mut picks: Vec<usize> = (0..n).map(|k| k * (subscribers - 1) / (n - 1)).collect();
    picks.dedup();
    picks
}

/// Runs the latency pass: for each offered rate (or the burst pattern), a fresh
/// rig, a warm-up at that rate, then a measured open-loop trial whose
/// sampled deliveries and send lateness are recorded without a lock.
pub fn run<B>(request: &ProbeRequest, lossy: bool) -> Result<ProbeResponse, CellError>
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    let scenario = &request.scenario;
    let point = request.point;
    let paces: Vec<Pace> = match scenario.burst {
        Some(b) => vec![Pace::Burst {
            base: b.base_rate as f64,
            factor: b.spike_factor as f64,
            spike_ns: b.spike_ms * 1_000_000,
            period_ns: b.period_ms * 1_000_000,
        }],
        None if request.rates.is_empty() => {
            return Err(CellError::Request("the latency pass needs the rates to offer".into()));
        }
        None => request.rates.iter().map(|&r| Pace::Rate(r)).collect(),
    };
    let sampled = sampled(point.subscribers);
    let mut out = Vec::new();
    let mut dropped = 0;
    for pace in paces {
        let (rate, duration_ms) = match pace {
            Pace::Burst { base, factor, spike_ns, period_ns } => {
                let per_period = base * factor * spike_ns as f64 / 1e9 + base * (period_ns - spike_ns) as f64 / 1e9;
                // Whole periods, at least two.
                let periods = (request.budget.latency_trial_ms() * 1_000_000).div_ceil(period_ns).max(2);
                (per_period * 1e9 / period_ns as f64, periods * period_ns / 1_000_000)
            }
            Pace::Rate(r) => (r, request.budget.latency_trial_ms()),
            Pace::Flat => unreachable!("latency paces are open loop"),
        };
        let events = events_for(rate, duration_ms, point.producers);
        let warm_up = events_for(rate, (duration_ms / 4).max(20), point.producers);
        let make = |i: usize| -> Option<LatencyRecorder> {
            if !sampled.contains(&i) {
                return None;
            }
            let spikes = match pace {
                Pace::Burst { spike_ns, period_ns, .. } => Some(SpikeRecorder {
                    start_ns: std::sync::atomic::AtomicU64::new(0),
                    period_ns,
                    spike_ns,
                    histogram: (0..point.producers).map(|_| Buckets::default()).collect(),
                    last_delivery: (0..duration_ms * 1_000_000 / period_ns + 2)
                        .map(|_| std::sync::atomic::AtomicU64::new(0))
                        .collect(),
                }),
                _ => None,
            };
            Some(LatencyRecorder::new(point.producers, spikes))
        };
        let mut rig = Rig::<B>::new(Arc::new(scenario.clone()), point, lossy, &make)?;
        rig.trial(warm_up, pace, Window::None)?;
        for sub in &rig.subscribers {
            if let Some(recorder) = &sub.latency {
                recorder.reset();
            }
        }
        let owed = |rig: &Rig<B>| -> u64 {
            sampled.iter().map(|&i| rig.expected_deliveries(i).saturating_sub(rig.subscribers[i].count())).sum()
        };
        let owed_before = owed(&rig);
        let trial = rig.trial(events, pace, Window::None)?;
        let misses = owed(&rig) - owed_before;
        out.push(summarize_latency(&rig, rate, pace, &trial, misses));
        dropped += rig.finish();
    }
    Ok(ProbeResponse { latency: out, dropped, ..Default::default() })
}

/// The `q` quantile of `delivered` latencies and `misses` deliveries that
/// never came (ranked above every delivery), or 0 when it falls among the
/// misses (see [`Latency::percentile_ns`]).
pub(crate) fn percentile(delivered: &hdrhistogram::Histogram<u64>, misses: u64, q: f64) -> u64 {
    let n = delivered.len();
    if percentile_lost(n, misses, q) || n == 0 {
        return 0;
    }
    delivered.value_at_quantile((q * (n + misses) as f64 / n as f64).min(1.0))
}

fn summarize_latency<B>(rig: &Rig<B>, rate: f64, pace: Pace, trial: &crate::drive::Trial, misses: u64) -> Latency
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    let mut all = new_histogram();
    let mut spikes = new_histogram();
    // Per spike: the latest delivery of its events over sampled subscribers.
    let mut last_by_spike: Vec<u64> = Vec::new();
    let mut spike_start = 0;
    for sub in &rig.subscribers {
        let Some(rec) = &sub.latency else { continue };
        rec.all.iter().for_each(|b| b.add_to(&mut all));
        if let Some(s) = &rec.spikes {
            s.histogram.iter().for_each(|b| b.add_to(&mut spikes));
            spike_start = s.start_ns.load(Ordering::Acquire);
            last_by_spike.resize(s.last_delivery.len(), 0);
            for (slot, d) in last_by_spike.iter_mut().zip(s.last_delivery.iter()) {
                *slot = (*slot).max(d.load(Ordering::Acquire));
            }
        }
    }
    let q = |h: &hdrhistogram::Histogram<u64>, q: f64| {
        if h.is_empty() { 0 } else { h.value_at_quantile(q) }
    };
    let is_burst = matches!(pace, Pace::Burst { .. });
    let drain_ns = match pace {
        Pace::Burst { spike_ns, period_ns, .. } => {
            let drains: Vec<f64> = last_by_spike
                .iter()
                .enumerate()
                .filter(|(_, last)| **last != 0)
                .map(|(k, last)| last.saturating_sub(spike_start + k as u64 * period_ns + spike_ns) as f64)
                .collect();
            stats::median(&drains).map(|m| m as u64)
        }
        _ => None,
    };
    let lateness = trial.lateness.as_ref().map(|h| Lateness {
        p50_ns: q(h, 0.5),
        p99_ns: q(h, 0.99),
        max_ns: h.max(),
        backlog_ns: trial.backlog_ns,
        schedule_ns: trial.schedule_ns,
    });
    let delivered = all.len();
    Latency {
        load: 0.0,
        offered_per_sec: rate,
        p50_ns: percentile(&all, misses, 0.5),
        p90_ns: percentile(&all, misses, 0.9),
        p99_ns: percentile(&all, misses, 0.99),
        p999_ns: percentile(&all, misses, 0.999),
        p9999_ns: percentile(&all, misses, 0.9999),
        max_ns: all.max(),
        count: delivered,
        histogram: encode_histogram(&all),
        spike_p99_ns: is_burst.then(|| q(&spikes, 0.99)),
        drain_ns,
        misses,
        loss_rate: if delivered + misses == 0 { 0.0 } else { misses as f64 / (delivered + misses) as f64 },
        lateness,
        saturation: None,
        beyond_headline: false,
        repetitions: Vec::new(),
    }
}

/// An HdrHistogram stored as V2, base64 (as in [`Latency::histogram`]).
pub fn decode_histogram(encoded: &str) -> Result<hdrhistogram::Histogram<u64>, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| e.to_string())?;
    hdrhistogram::serialization::Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| format!("{e:?}"))
}

/// The V2 serialization of `histogram`, base64.
pub fn encode_histogram(histogram: &hdrhistogram::Histogram<u64>) -> String {
    use hdrhistogram::serialization::Serializer;
    let mut serialized = Vec::new();
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(histogram, &mut serialized)
        .expect("serializing into a Vec cannot fail");
    base64_encode(&serialized)
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_count_misses_and_those_among_them_are_lost() {
        let mut h = new_histogram();
        for v in 1..=990 {
            h.record(v * 1000).expect("in range");
        }
        // Without misses, p99 is the 990th smallest's neighbour; with 10
        // misses among 1000, p99 is the largest delivery and p99.9 is lost.
        assert!(percentile(&h, 0, 0.99) < percentile(&h, 10, 0.99));
        assert_eq!(percentile(&h, 10, 0.99), h.max());
        assert_eq!(percentile(&h, 10, 0.999), 0);
        assert!(percentile_lost(990, 10, 0.999));
        assert_eq!(percentile(&new_histogram(), 0, 0.5), 0);
    }

    #[test]
    fn sampled_subscribers_spread_and_include_the_ends() {
        assert_eq!(sampled(1), [0]);
        assert_eq!(sampled(3), [0, 1, 2]);
        let s = sampled(500);
        assert_eq!((s.len(), s[0], s[s.len() - 1]), (16, 0, 499));
    }
}
