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
//! # How many trials each process runs
//! When `--trials` is not given, each scenario's trials per process are
//! chosen by measurement, as Kalibera and Jones recommend ([`choose_trials`],
//! with the estimators and the formula of [`stats::repetitions`]): from the
//! latest [`POOLED_RUNS`] stored runs on this machine, of the same kind
//! (`--quick` or not), whose cells of the scenario ran two or more
//! processes of two or more trials, each cell's variance within and between
//! processes (on the logs of its trial rates, the scale of its interval)
//! and its costs give that cell's optimum, and the scenario takes the
//! median over its cells of all those runs. One run's estimate of a
//! variance from three processes is itself noisy (the choice moved between
//! 1 and 3 trials from one quick run to the next); pooling runs steadies it. A
//! cell's costs come from what the store knows of it: a trial costs the
//! mean of its `trial_ns`, a process its share of the pass's wall time
//! (`pass_seconds["throughput"]`, child start included) less its timed
//! trials — spawn, set-up, calibration and warm-up, plus each trial's
//! untimed set-up and check. The count is at most [`max_chosen_trials`];
//! a scenario without such a run keeps the budget's count. A scenario that
//! chose 1 trial keeps learning from the last run that measured more;
//! a run with `--trials N` measures afresh.
//!
//! # Latency repetitions
//! The latency pass runs the same way: [`Budget::latency_processes`]
//! rounds, each running every bus of the point once in rotating order at
//! the rates shared by the point ([`crate::rates`]), each process measuring
//! its share of the window ([`Budget::latency_trial_ms`]). [`merge_latency`]
//! makes one entry per offered load from them: the percentiles of the
//! merged histograms (the misses added up), each process's own percentiles
//! in [`Latency::repetitions`] for the tail-latency gate of the regression
//! rule, the worst process's send lateness (a load is judged on time only
//! if every process kept its schedule), and the median process's spike p99
//! and drain time.
//!
//! # Guarantees
//! - A cell's merged figures hold every trial of every process, process
//!   after process, and [`Throughput::processes`] says how many trials each
//!   process measured; a failed process fails the cell (no figure is kept,
//!   never a narrower interval from the processes that passed). Likewise
//!   for latency: every process verifies delivery, a failed one fails the
//!   cell, and a merged entry holds every process's histogram.

use crate::error::CellError;
use crate::probe::Budget;
use crate::stats;
use crate::stats::repetitions::{optimal_trials, variance_components};
use crate::store::{Store, StoreError};
use buslab_scenarios::results::{
    CellResult, CellStatus, ChosenTrials, CloudEvents, Estimate, Latency, LatencyRepetition, Lateness, Run, Throughput,
};
use std::collections::BTreeMap;

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

/// The latency pass of one cell from its processes' answers, in the order
/// they ran (each one process's loads, in the order of the rates offered):
/// one entry per load (see the [module docs](self#latency-repetitions)).
/// An error when the processes measured different loads or a histogram
/// cannot be read.
pub fn merge_latency(parts: &[Vec<Latency>]) -> Result<Vec<Latency>, CellError> {
    let Some(first) = parts.first() else { return Ok(Vec::new()) };
    let mut merged = Vec::with_capacity(first.len());
    for (i, head) in first.iter().enumerate() {
        let entries: Vec<&Latency> = parts
            .iter()
            .map(|p| p.get(i).filter(|l| buslab_scenarios::results::same_rate(l.offered_per_sec, head.offered_per_sec)))
            .collect::<Option<_>>()
            .ok_or(CellError::LoadMismatch { load: i })?;
        let repetitions: Vec<LatencyRepetition> = entries
            .iter()
            .map(|l| LatencyRepetition {
                p50_ns: l.p50_ns,
                p99_ns: l.p99_ns,
                p999_ns: l.p999_ns,
                count: l.count,
                misses: l.misses,
            })
            .collect();
        if let [only] = entries.as_slice() {
            merged.push(Latency { repetitions, ..(*only).clone() });
            continue;
        }
        let mut all = crate::listener::new_histogram();
        for l in &entries {
            if l.count > 0 {
                let h = crate::passes::latency::decode_histogram(&l.histogram).map_err(CellError::Histogram)?;
                all.add(&h).map_err(|e| CellError::Histogram(format!("merging: {e:?}")))?;
            }
        }
        let misses: u64 = entries.iter().map(|l| l.misses).sum();
        let at = |q: f64| crate::passes::latency::percentile(&all, misses, q);
        let delivered = all.len();
        let median_of = |pick: fn(&Latency) -> Option<u64>| -> Option<u64> {
            let values: Vec<f64> = entries.iter().filter_map(|l| pick(l)).map(|v| v as f64).collect();
            stats::median(&values).map(|m| m as u64)
        };
        let lateness = entries.iter().filter_map(|l| l.lateness).reduce(|a, b| Lateness {
            p50_ns: a.p50_ns.max(b.p50_ns),
            p99_ns: a.p99_ns.max(b.p99_ns),
            max_ns: a.max_ns.max(b.max_ns),
            backlog_ns: a.backlog_ns.max(b.backlog_ns),
            schedule_ns: a.schedule_ns.max(b.schedule_ns),
        });
        merged.push(Latency {
            p50_ns: at(0.5),
            p90_ns: at(0.9),
            p99_ns: at(0.99),
            p999_ns: at(0.999),
            p9999_ns: at(0.9999),
            max_ns: all.max(),
            count: delivered,
            histogram: crate::passes::latency::encode_histogram(&all),
            spike_p99_ns: median_of(|l| l.spike_p99_ns),
            drain_ns: median_of(|l| l.drain_ns),
            misses,
            loss_rate: if delivered + misses == 0 { 0.0 } else { misses as f64 / (delivered + misses) as f64 },
            lateness,
            repetitions,
            ..head.clone()
        });
    }
    Ok(merged)
}

/// The most trials per process [`choose_trials`] gives a scenario: twice
/// the budget's count, so that a scenario whose noise is all within its
/// processes costs at most twice its default time.
pub fn max_chosen_trials(budget: &Budget) -> usize {
    budget.trials.max(1) * 2
}

/// The trials per process that buy `cell`'s throughput the most precision
/// for its time (see the [module docs](self)), at most `max`: `None` unless
/// the cell passed with two or more processes of two or more trials each
/// and a recorded throughput-pass time longer than its timed trials.
pub fn cell_optimum(cell: &CellResult, max: usize) -> Option<usize> {
    let t = cell.throughput.as_ref().filter(|_| cell.status == CellStatus::Ok)?;
    if t.processes.len() < 2 || t.processes.iter().any(|&n| n < 2) || t.trial_ns.is_empty() {
        return None;
    }
    let logs: Vec<Vec<f64>> = t
        .by_process(&t.events_per_sec)
        .iter()
        .map(|p| p.iter().filter(|v| **v > 0.0).map(|v| v.ln()).collect())
        .collect();
    let components = variance_components(&logs)?;
    let timed = t.trial_ns.iter().sum::<u64>() as f64 / 1e9;
    let c_trial = timed / t.trial_ns.len() as f64;
    let c_process = (cell.pass_seconds.get("throughput")? - timed) / t.processes.len() as f64;
    if !(c_process > 0.0 && c_trial > 0.0) {
        return None;
    }
    optimal_trials(components, c_process / c_trial, max)
}

/// Stored runs whose cells a scenario's choice of trials pools, the latest
/// first.
pub const POOLED_RUNS: usize = 5;

/// The trials per process of each of `scenarios` that the stored runs let
/// this run choose (see the [module docs](self)): for each, the median of
/// the cell optima ([`cell_optimum`]) of the latest [`POOLED_RUNS`] of
/// `runs` (oldest first, as [`Store::list_runs`] gives them; each loaded by
/// `load` only when it may help) on `machine`, of the same kind (`quick`),
/// of two or more processes, whose cells of the scenario give an optimum.
/// Scenarios without one are left out.
pub fn choose_from<E>(
    runs: &[buslab_scenarios::results::RunMeta],
    mut load: impl FnMut(&str) -> Result<Run, E>,
    scenarios: &[&str],
    quick: bool,
    machine: &str,
    max: usize,
) -> Result<BTreeMap<String, ChosenTrials>, E> {
    // Per scenario: the cells' optima, the runs that gave some, the latest.
    let mut pooled: BTreeMap<&str, (Vec<f64>, u32, String)> = BTreeMap::new();
    for meta in runs.iter().rev() {
        if meta.quick != quick || meta.machine != machine || meta.processes.unwrap_or(1) < 2 {
            continue;
        }
        let full = |s: &&str| pooled.get(*s).is_some_and(|(_, runs, _)| *runs as usize >= POOLED_RUNS);
        let wanted: Vec<&str> =
            scenarios.iter().copied().filter(|s| !full(s) && meta.scenario_hashes.contains_key(*s)).collect();
        if wanted.is_empty() {
            if scenarios.iter().all(full) {
                break;
            }
            continue;
        }
        let run = load(&meta.id)?;
        for scenario in wanted {
            let optima: Vec<f64> = run
                .cells
                .iter()
                .filter(|c| c.key.scenario == scenario)
                .filter_map(|c| cell_optimum(c, max))
                .map(|r| r as f64)
                .collect();
            if optima.is_empty() {
                continue;
            }
            let entry = pooled.entry(scenario).or_insert_with(|| (Vec::new(), 0, meta.id.clone()));
            entry.0.extend(optima);
            entry.1 += 1;
        }
    }
    Ok(pooled
        .into_iter()
        .filter_map(|(scenario, (optima, runs, from_run))| {
            let trials = stats::median(&optima)?.ceil() as usize;
            let trials = u32::try_from(trials).unwrap_or(u32::MAX);
            Some((scenario.to_owned(), ChosenTrials { trials, from_run, runs }))
        })
        .collect())
}

/// [`choose_from`] over the runs of `store`.
pub fn choose_trials(
    store: &Store,
    scenarios: &[&str],
    quick: bool,
    machine: &str,
    max: usize,
) -> Result<BTreeMap<String, ChosenTrials>, StoreError> {
    let runs: Vec<_> = store.list_runs()?.into_iter().map(|r| r.meta).collect();
    choose_from(&runs, |id| store.load_run(id), scenarios, quick, machine, max)
}

/// The line a run prints when it starts without `--trials`: which
/// scenarios got which count, from which run, and the default of the rest.
pub fn describe_choice(chosen: &BTreeMap<String, ChosenTrials>, scenarios: &[&str], default: usize) -> String {
    if chosen.is_empty() {
        return format!(
            "trials per process: the default {default} (no stored run on this machine of these scenarios with 2 or \
             more processes of 2 or more trials to choose from by measurement)"
        );
    }
    let mut by_source: Vec<((&str, u32), Vec<String>)> = Vec::new();
    for scenario in scenarios {
        let Some(c) = chosen.get(*scenario) else { continue };
        let entry = format!("{scenario} {}", c.trials);
        let source = (c.from_run.as_str(), c.runs);
        match by_source.iter_mut().find(|(s, _)| *s == source) {
            Some((_, list)) => list.push(entry),
            None => by_source.push((source, vec![entry])),
        }
    }
    let sources: Vec<String> = by_source
        .into_iter()
        .map(|((run, runs), list)| match runs {
            1 => format!("from run {run}: {}", list.join(", ")),
            n => format!("from {n} runs up to {run}: {}", list.join(", ")),
        })
        .collect();
    let others = scenarios.iter().filter(|s| !chosen.contains_key(**s)).count();
    let rest = if others > 0 { format!("; others default {default}") } else { String::new() };
    format!("trials per process chosen by measurement (Kalibera & Jones) {}{rest}", sources.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::{CellKey, RunMeta};

    /// One latency process's entry at `rate`: `n` deliveries at `ns`
    /// each, `misses` missed, lateness p99 `late`.
    fn load(rate: f64, ns: &[u64], misses: u64, late: u64) -> Latency {
        let mut h = crate::listener::new_histogram();
        ns.iter().for_each(|&v| h.record(v).expect("in range"));
        let q = |q: f64| crate::passes::latency::percentile(&h, misses, q);
        Latency {
            offered_per_sec: rate,
            p50_ns: q(0.5),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            count: h.len(),
            misses,
            histogram: crate::passes::latency::encode_histogram(&h),
            lateness: Some(Lateness { p99_ns: late, ..Lateness::default() }),
            ..Latency::default()
        }
    }

    #[test]
    fn latency_processes_merge_their_histograms_and_keep_their_percentiles() {
        let fast: Vec<u64> = (1..=100).collect();
        let slow: Vec<u64> = (1..=100).map(|v| v * 10).collect();
        let parts = vec![
            vec![load(1e3, &fast, 0, 5), load(1e4, &fast, 0, 5)],
            vec![load(1e3, &slow, 0, 9), load(1e4, &fast, 2, 5)],
            vec![load(1e3, &fast, 0, 7), load(1e4, &fast, 0, 5)],
        ];
        let merged = merge_latency(&parts).expect("the same loads");
        assert_eq!(merged.len(), 2);
        let low = &merged[0];
        assert_eq!(low.count, 300);
        assert_eq!(low.repetitions.iter().map(|r| r.p99_ns).collect::<Vec<_>>(), [99, 990, 99]);
        // The merged p50 is the 150th of 300 values: the fast processes'
        // 1..=100 twice and 10..=1000 once.
        assert!((60..=80).contains(&low.p50_ns), "{low:?}");
        assert!(low.p99_ns >= 960, "{low:?}");
        assert_eq!(low.lateness.expect("lateness").p99_ns, 9, "the worst process's lateness");
        assert_eq!(crate::passes::latency::decode_histogram(&low.histogram).expect("readable").len(), 300);
        assert_eq!((merged[1].misses, merged[1].count), (2, 300));
        // One process: kept as it is, with its one repetition.
        let one = merge_latency(&parts[..1]).expect("one process");
        assert_eq!(one[0].repetitions.len(), 1);
        assert_eq!(Latency { repetitions: Vec::new(), ..one[0].clone() }, parts[0][0]);
        // Processes that measured different loads cannot merge.
        let odd = vec![parts[0].clone(), vec![load(2e3, &fast, 0, 5), load(1e4, &fast, 0, 5)]];
        assert!(matches!(merge_latency(&odd), Err(CellError::LoadMismatch { load: 0 })));
        assert!(matches!(
            merge_latency(&[parts[0].clone(), parts[1][..1].to_vec()]),
            Err(CellError::LoadMismatch { load: 1 })
        ));
    }

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

    /// A passed cell of `scenario` whose processes measured `rates` (one
    /// list per process), each trial 100 ms, its pass taking that plus
    /// `start_s` per process.
    fn measured(scenario: &str, rates: &[Vec<f64>], start_s: f64) -> CellResult {
        let key = CellKey { scenario: scenario.to_owned(), bus: "null".to_owned(), params: BTreeMap::new() };
        let mut cell = CellResult::new(key, 1, 1);
        let samples: Vec<f64> = rates.iter().flatten().copied().collect();
        cell.throughput = Some(Throughput {
            events_per_sec: stats::estimate(&samples),
            trial_ns: vec![100_000_000; samples.len()],
            processes: rates.iter().map(|p| p.len() as u32).collect(),
            ..Default::default()
        });
        cell.pass_seconds.insert("throughput".into(), 0.1 * samples.len() as f64 + start_s * rates.len() as f64);
        cell
    }

    /// Processes at `levels`, their trials `±spread` (relative) around.
    fn spread(levels: &[f64], spread: f64) -> Vec<Vec<f64>> {
        levels.iter().map(|l| vec![l * (1.0 - spread), *l, l * (1.0 + spread)]).collect()
    }

    #[test]
    fn a_cell_buys_trials_where_its_noise_is_within_processes() {
        // Processes agree to 0.1%, trials scatter 10%: only trials help.
        let within = measured("s", &spread(&[100.0, 100.1, 99.9], 0.1), 0.5);
        assert_eq!(cell_optimum(&within, 6), Some(6));
        // Processes 2× apart, trials to 0.1%: one trial per process.
        let between = measured("s", &spread(&[100.0, 200.0, 150.0], 0.001), 0.5);
        assert_eq!(cell_optimum(&between, 6), Some(1));
        // Both moderate: a dearer process buys more trials.
        let mixed = spread(&[100.0, 104.0, 98.0], 0.03);
        let cheap = cell_optimum(&measured("s", &mixed, 0.05), 50).expect("an optimum");
        let dear = cell_optimum(&measured("s", &mixed, 5.0), 50).expect("an optimum");
        assert!(dear > cheap, "{dear} vs {cheap}");
        // What cannot say: one process, one trial each, no pass time, a
        // failed cell.
        assert_eq!(cell_optimum(&measured("s", &[vec![1.0, 2.0, 3.0]], 0.5), 6), None);
        assert_eq!(cell_optimum(&measured("s", &[vec![1.0], vec![2.0], vec![3.0]], 0.5), 6), None);
        let mut untimed = within.clone();
        untimed.pass_seconds.clear();
        assert_eq!(cell_optimum(&untimed, 6), None);
        let mut failed = within;
        failed.status = CellStatus::Failed("planted".into());
        assert_eq!(cell_optimum(&failed, 6), None);
    }

    fn run(id: &str, quick: bool, machine: &str, processes: u32, cells: Vec<CellResult>) -> Run {
        let meta = RunMeta {
            id: id.to_owned(),
            quick,
            machine: machine.to_owned(),
            processes: Some(processes),
            scenario_hashes: cells.iter().map(|c| (c.key.scenario.clone(), String::new())).collect(),
            ..RunMeta::default()
        };
        Run { meta, cells }
    }

    #[test]
    fn each_scenario_pools_the_latest_runs_that_can_tell() {
        let noisy_within = |s: &str| measured(s, &spread(&[100.0, 100.1, 99.9], 0.1), 0.5);
        let noisy_between = |s: &str| measured(s, &spread(&[100.0, 200.0, 150.0], 0.001), 0.5);
        let one_trial = measured("spsc", &[vec![1.0], vec![2.0], vec![3.0]], 0.5);
        let runs = [
            run("old", false, "m", 3, vec![noisy_within("spsc"), noisy_between("fanout")]),
            run("newer", false, "m", 3, vec![noisy_between("fanout"), noisy_between("fanout")]),
            run("newest", false, "m", 3, vec![noisy_between("spsc")]),
            // Each of these cannot tell spsc's count: one trial per
            // process, another machine, a quick run, one process.
            run("one-trial", false, "m", 3, vec![one_trial]),
            run("elsewhere", false, "other", 3, vec![noisy_between("spsc")]),
            run("quick", true, "m", 3, vec![noisy_between("spsc")]),
            run("single", false, "m", 1, vec![noisy_between("spsc")]),
        ];
        let metas: Vec<RunMeta> = runs.iter().map(|r| r.meta.clone()).collect();
        let mut loaded = Vec::new();
        let load = |id: &str| -> Result<Run, ()> {
            loaded.push(id.to_owned());
            Ok(runs.iter().find(|r| r.meta.id == id).expect("stored").clone())
        };
        let chosen = choose_from(&metas, load, &["spsc", "fanout", "burst"], false, "m", 6).expect("loaded");
        let pick = |s: &str| chosen.get(s).map(|c| (c.trials, c.from_run.as_str(), c.runs));
        // spsc: 1 (newest) and 6 (old) pooled: the median 3.5, rounded up.
        assert_eq!(pick("spsc"), Some((4, "newest", 2)));
        assert_eq!(pick("fanout"), Some((1, "newer", 2)));
        assert_eq!(pick("burst"), None, "never measured");
        assert_eq!(loaded, ["one-trial", "newest", "newer", "old"], "only runs that may help are loaded");
        assert_eq!(
            describe_choice(&chosen, &["spsc", "fanout", "burst"], 3),
            "trials per process chosen by measurement (Kalibera & Jones) from 2 runs up to newest: spsc 4; from 2 \
             runs up to newer: fanout 1; others default 3"
        );
        assert!(describe_choice(&BTreeMap::new(), &["spsc"], 3).starts_with("trials per process: the default 3 ("));
    }

    #[test]
    fn only_the_latest_runs_are_pooled() {
        let within = measured("spsc", &spread(&[100.0, 100.1, 99.9], 0.1), 0.5);
        let between = measured("spsc", &spread(&[100.0, 200.0, 150.0], 0.001), 0.5);
        // Two old runs would pull the median to 6; the latest POOLED_RUNS say 1.
        let runs: Vec<Run> = (0..POOLED_RUNS + 2)
            .map(|i| run(&format!("r{i}"), false, "m", 3, vec![if i < 2 { within.clone() } else { between.clone() }]))
            .collect();
        let metas: Vec<RunMeta> = runs.iter().map(|r| r.meta.clone()).collect();
        let mut loaded = 0;
        let load = |id: &str| -> Result<Run, ()> {
            loaded += 1;
            Ok(runs.iter().find(|r| r.meta.id == id).expect("stored").clone())
        };
        let chosen = choose_from(&metas, load, &["spsc"], false, "m", 6).expect("loaded");
        let c = &chosen["spsc"];
        assert_eq!((c.trials, c.runs as usize, c.from_run.as_str()), (1, POOLED_RUNS, "r6"));
        assert_eq!(loaded, POOLED_RUNS, "older runs are not read");
    }

    #[test]
    fn the_chosen_count_is_at_most_twice_the_budget() {
        assert_eq!(max_chosen_trials(&Budget::DEFAULT), 2 * Budget::DEFAULT.trials);
        let within = measured("s", &spread(&[100.0, 100.1, 99.9], 0.1), 0.5);
        assert_eq!(cell_optimum(&within, max_chosen_trials(&Budget::QUICK)), Some(2 * Budget::QUICK.trials));
    }
}
