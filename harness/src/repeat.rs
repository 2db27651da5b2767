//! Repetitions: a cell's throughput measured by several independent probe
//! processes, in rounds that interleave the buses of a sweep point.
//!
//! # Why processes, and why rounds
//! Trials in one process share its memory layout, its threads' placement
//! and the host's state at that minute; a second process of the same cell
//! can sit 2× away (`spsc/ring` measured 39 M events/s in one run and 80 M
//! forty minutes later). An interval over one process's trials holds none
//! of that: in the simulation of [`stats::simulated_coverage`], a nominal
//! 95% interval over one process covered the true median in 2–70% of
//! experiments, and over process medians (two or more processes) in
//! 94.6–96.1%. So each cell's throughput comes from
//! [`Budget::processes`](crate::probe::Budget::processes) processes, and
//! its interval is [`stats::across_processes`]' Student *t* interval over
//! their medians.
//!
//! The processes of a point run in rounds: round `r` runs every bus of the
//! point once, starting at the `r`-th and wrapping around ([`rotation`]:
//! A B C, then B C A, then C A B), so that drift of the host during a point
//! hits every bus alike instead of whichever bus ran last, and two buses'
//! processes of one round can be compared as a pair
//! ([`stats::paired_ratio`]), drift cancelling.
//!
//! # Guarantees
//! - A cell's merged figures hold every trial of every process, process
//!   after process, and [`Throughput::processes`] says how many trials each
//!   process measured; a failed process fails the cell (no figure is kept,
//!   never a narrower interval from the processes that passed).

use crate::stats;
use buslab_scenarios::results::{CloudEvents, Estimate, Throughput};

/// The order in which round `round` runs the `n` cells of a point: every
/// index once, starting at `round % n` and wrapping around.
pub fn rotation(n: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + round) % n.max(1))
}

/// One estimate from the same estimate of several processes: their samples
/// in order, with the interval over process medians.
fn across(estimates: &[&Estimate]) -> Estimate {
    let processes: Vec<Vec<f64>> = estimates.iter().map(|e| e.samples.clone()).collect();
    stats::across_processes(&processes)
}

/// The throughput pass of one cell from its processes' answers, in the
/// order they ran (each one process's [`Throughput`], and its CloudEvents
/// figures for a `cloudevents` cell). `None` for no answer.
///
/// Trials per event sizes and durations are kept per trial; the events per
/// trial is the largest any process calibrated (each sizes its trials from
/// its own warm-up); the loss rate is the mean of the processes'.
pub fn merge(parts: &[(Throughput, Option<CloudEvents>)]) -> Option<(Throughput, Option<CloudEvents>)> {
    let (_, first_ce) = parts.first()?;
    let all = |pick: fn(&Throughput) -> &Estimate| across(&parts.iter().map(|(t, _)| pick(t)).collect::<Vec<_>>());
    let cpu: Option<Vec<&Estimate>> = parts.iter().map(|(t, _)| t.cpu_ns_per_event.as_ref()).collect();
    let losses: Vec<f64> = parts.iter().filter_map(|(t, _)| t.loss_rate).collect();
    let throughput = Throughput {
        events_per_sec: all(|t| &t.events_per_sec),
        deliveries_per_sec: all(|t| &t.deliveries_per_sec),
        events_per_trial: parts.iter().map(|(t, _)| t.events_per_trial).max().unwrap_or_default(),
        trial_ns: parts.iter().flat_map(|(t, _)| t.trial_ns.iter().copied()).collect(),
        cpu_ns_per_event: cpu.map(|c| across(&c)),
        loss_rate: (!losses.is_empty()).then(|| losses.iter().sum::<f64>() / losses.len() as f64),
        processes: parts.iter().map(|(t, _)| t.events_per_sec.samples.len() as u32).collect(),
    };
    let cloudevents = first_ce.as_ref().map(|first| {
        let ces: Vec<&CloudEvents> = parts.iter().filter_map(|(_, c)| c.as_ref()).collect();
        let all = |pick: fn(&CloudEvents) -> &Estimate| across(&ces.iter().map(|c| pick(c)).collect::<Vec<_>>());
        CloudEvents {
            decode_events_per_sec: all(|c| &c.decode_events_per_sec),
            decode_bytes_per_sec: all(|c| &c.decode_bytes_per_sec),
            route_events_per_sec: all(|c| &c.route_events_per_sec),
            route_bytes_per_sec: all(|c| &c.route_bytes_per_sec),
            ..first.clone()
        }
    });
    Some((throughput, cloudevents))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(samples: &[f64]) -> Throughput {
        Throughput {
            events_per_sec: stats::estimate(samples),
            deliveries_per_sec: stats::estimate(&samples.iter().map(|s| s * 2.0).collect::<Vec<_>>()),
            events_per_trial: samples.len() as u64 * 10,
            trial_ns: samples.iter().map(|s| *s as u64).collect(),
            cpu_ns_per_event: Some(stats::estimate(samples)),
            loss_rate: Some(0.0),
            processes: vec![samples.len() as u32],
        }
    }

    #[test]
    fn a_rotation_runs_every_cell_once_starting_further_each_round() {
        assert_eq!(rotation(3, 0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rotation(3, 1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(rotation(3, 5).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(rotation(1, 4).collect::<Vec<_>>(), [0]);
        assert_eq!(rotation(0, 4).count(), 0);
    }

    #[test]
    fn merged_processes_keep_every_trial_and_widen_to_the_spread_between_processes() {
        // Tight trials within each process, far apart between them.
        let parts = [
            (process(&[100.0, 101.0, 99.0]), None),
            (process(&[200.0, 201.0, 199.0]), None),
            (process(&[150.0, 151.0, 149.0]), None),
        ];
        let (t, ce) = merge(&parts).expect("merged");
        assert!(ce.is_none());
        assert_eq!(t.processes, [3, 3, 3]);
        assert_eq!(t.events_per_sec.samples.len(), 9);
        assert_eq!(
            t.by_process(&t.events_per_sec),
            [&[100.0, 101.0, 99.0][..], &[200.0, 201.0, 199.0], &[150.0, 151.0, 149.0]]
        );
        assert_eq!(t.events_per_sec.median, 150.0);
        let one = &parts[1].0.events_per_sec;
        assert!(one.upper - one.lower <= 2.0, "one process: {one:?}");
        assert!(
            t.events_per_sec.lower < 100.0 && t.events_per_sec.upper > 200.0,
            "the interval holds the processes' spread: {:?}",
            t.events_per_sec
        );
        assert_eq!(t.trial_ns.len(), 9);
        assert_eq!(t.events_per_trial, 30);
        assert!(t.cpu_ns_per_event.is_some());
        assert!(merge(&[]).is_none());
    }
}
