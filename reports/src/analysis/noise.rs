//! Noise calibration (A/A): how much the figures of one commit move between
//! runs on one machine, and how often the regression rule cries wolf.
//!
//! `buslab noise` measures the same cells several times at one commit and
//! stores each repetition as an ordinary run labelled `noise:<group>`
//! ([`RunMeta::label`]). Nothing changed between those runs but chance, so:
//!
//! - the **spread** of each metric of each cell is the measurement noise:
//!   the median of its values, the smallest and largest value relative to
//!   the median (`min / median − 1`, `max / median − 1`), and the
//!   coefficient of variation (sample standard deviation / mean). Only
//!   cells that ended Ok count. For a deterministic count the spread should
//!   be zero; anything else says the count is not deterministic there
//!   (threads under callgrind, allocator behaviour).
//! - every **significant change** the rule finds between two of the runs
//!   is a **false positive**. Every ordered pair of runs `(a, b)`, `a ≠ b`,
//!   is compared with [`regression::compare`] with the thresholds given and
//!   no history: the rule as it applies to a cell with too little history
//!   (the default noise bands) and to the pull-request gate. The
//!   false-positive rate of a metric is its flagged changes over its
//!   compared changes; [`Calibration::pairs_with_regression`] counts the
//!   pairs that would have failed a job.
//! - the **tail-latency gate**'s false-positive rate: of the `latency-p99`
//!   and `latency-p999` changes judged by the interval of the change
//!   ([`regression::Method::TailInterval`], runs with latency
//!   repetitions), the share flagged ([`Calibration::tail_gate`]).
//! - from each cell's consecutive changes the rule's own **learned band**
//!   (Q3 + 3·IQR, [`stats::noise_band`]) is computed when there are at
//!   least [`MIN_CHANGES_FOR_BAND`] of them: what the band would become
//!   once that cell has history. It is set beside the default band to tune
//!   [`Thresholds`].
//!
//! An A/A group taken on one machine in one sitting measures the noise of
//! that sitting: it does not see what differs between nights (another CI
//! virtual machine, a kernel update, thermal state), so its false-positive
//! rate is a lower bound for nightly comparisons.
//!
//! [`RunMeta::label`]: buslab_scenarios::results::RunMeta::label

use crate::analysis::regression::{self, Gate, Kind, Metric, Thresholds, Verdict};
use crate::analysis::stats;
use buslab_scenarios::results::{CellStatus, Run};
use serde::Serialize;
use std::collections::BTreeMap;

/// Consecutive changes a cell needs before its learned band is reported.
pub const MIN_CHANGES_FOR_BAND: usize = 4;

/// The spread of one metric of one cell across the runs of a group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CellSpread {
    /// The cell's name.
    pub cell: String,
    /// The metric's slug.
    pub metric: &'static str,
    /// How many runs measured it (Ok cells only).
    pub values: usize,
    /// The median of its values.
    pub median: f64,
    /// `min / median − 1` (≤ 0); `None` when the median is 0 and the
    /// minimum is not.
    pub min_deviation: Option<f64>,
    /// `max / median − 1` (≥ 0); `None` when the median is 0 and the
    /// maximum is not.
    pub max_deviation: Option<f64>,
    /// Coefficient of variation: sample standard deviation / mean; 0 for
    /// identical values, `None` for a zero mean with other values.
    pub cv: Option<f64>,
    /// The noise band the rule would learn from this cell's consecutive
    /// changes (Q3 + 3·IQR), with at least [`MIN_CHANGES_FOR_BAND`] of
    /// them.
    pub learned_band: Option<f64>,
}

impl CellSpread {
    /// The largest relative deviation from the median, either way
    /// (infinite when a value departs from a median of 0).
    pub fn widest(&self) -> f64 {
        match (self.min_deviation, self.max_deviation) {
            (Some(lo), Some(hi)) => lo.abs().max(hi.abs()),
            _ => f64::INFINITY,
        }
    }
}

/// The worst cell of a metric by some measure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Worst {
    /// The measure's value.
    pub value: f64,
    /// The cell's name.
    pub cell: String,
}

/// One metric across every cell of the group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricNoise {
    /// The metric's slug.
    pub metric: &'static str,
    /// How the rule judges it.
    pub kind: Kind,
    /// The threshold (deterministic) or default noise band (wall-clock)
    /// the rule holds its changes against, from the [`Thresholds`] given.
    pub threshold: f64,
    /// Cells measured in at least two runs.
    pub cells: usize,
    /// Median of the cells' coefficients of variation.
    pub median_cv: Option<f64>,
    /// The largest coefficient of variation, and its cell.
    pub max_cv: Option<Worst>,
    /// The largest relative deviation from a cell's median, either way,
    /// and its cell (infinite for a departure from 0).
    pub widest: Option<Worst>,
    /// Median over cells of the learned band, where there is one.
    pub median_learned_band: Option<f64>,
    /// Changes compared over every ordered pair of runs.
    pub comparisons: usize,
    /// Of those, the ones the rule called a regression or an improvement:
    /// false positives, since nothing changed.
    pub false_positives: usize,
    /// `false_positives / comparisons` (0 with no comparison).
    pub false_positive_rate: f64,
}

/// What an A/A group says about noise and the regression rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    /// The runs, in start order.
    pub runs: Vec<String>,
    /// The commits they were made at (one, for a proper A/A group).
    pub commits: Vec<String>,
    /// The machines that measured them.
    pub machines: Vec<String>,
    /// The runs were `--quick` runs (fewer, shorter trials).
    pub quick: bool,
    /// The thresholds the rule was applied with.
    pub thresholds: Thresholds,
    /// Ordered pairs of runs compared.
    pub pairs: usize,
    /// Pairs in which the rule found at least one regression: how often a
    /// job gated on it would have failed for nothing.
    pub pairs_with_regression: usize,
    /// Pairs with at least one regression that [`Gate::Deterministic`]
    /// admits: how often the pull-request gate would have failed for
    /// nothing.
    pub pairs_with_deterministic_regression: usize,
    /// Pairs with at least one regression or improvement.
    pub pairs_flagged: usize,
    /// Per metric, in [`regression::compared_metrics`] order (metrics no cell measured left
    /// out).
    pub metrics: Vec<MetricNoise>,
    /// The tail-latency gate over every pair: `(changes it judged, changes
    /// it flagged)`, both 0 when no run had latency repetitions.
    pub tail_gate: (usize, usize),
    /// Per cell and metric, by cell then [`regression::compared_metrics`] order.
    pub cells: Vec<CellSpread>,
}

impl Calibration {
    /// The rule flagged nothing in any pair.
    pub fn is_clean(&self) -> bool {
        self.pairs_flagged == 0
    }
}

/// Calibrates the regression rule on `runs`, repetitions of the same cells
/// at one commit (see the [module docs](self)). Runs are taken in start
/// order whatever the order given. Comparing every ordered pair costs
/// `n·(n − 1)` comparisons: keep groups to a few dozen runs.
pub fn calibrate(runs: &[Run], thresholds: &Thresholds) -> Calibration {
    let mut runs: Vec<&Run> = runs.iter().collect();
    runs.sort_by(|a, b| (&a.meta.started_at, &a.meta.id).cmp(&(&b.meta.started_at, &b.meta.id)));
    let distinct = |f: &dyn Fn(&Run) -> Option<String>| {
        let mut v: Vec<String> = runs.iter().filter_map(|r| f(r)).collect();
        v.sort();
        v.dedup();
        v
    };
    let commits = distinct(&|r| r.meta.git_commit.clone());
    let machines = distinct(&|r| Some(r.meta.machine.clone()));

    // Values per (cell, metric), in run order, Ok cells only.
    let compared_metrics: Vec<&Metric> = regression::compared_metrics().collect();
    let mut values: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
    for run in &runs {
        for cell in run.cells.iter().filter(|c| c.status == CellStatus::Ok) {
            for (m, spec) in compared_metrics.iter().enumerate() {
                if let Some(v) = spec.value(cell) {
                    values.entry((cell.key.name(), m)).or_default().push(v);
                }
            }
        }
    }
    let cells: Vec<CellSpread> = values
        .into_iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|((cell, m), v)| spread(cell, compared_metrics[m].slug, &v))
        .collect();

    let mut compared = vec![0_usize; compared_metrics.len()];
    let mut flagged = vec![0_usize; compared_metrics.len()];
    let (mut pairs, mut pairs_with_regression, mut pairs_flagged, mut pairs_deterministic) = (0, 0, 0, 0);
    let mut tail_gate = (0, 0);
    let indexed: Vec<regression::Indexed<'_>> = runs.iter().map(|r| regression::Indexed::new(r)).collect();
    for (i, base) in indexed.iter().enumerate() {
        for (j, new) in indexed.iter().enumerate() {
            if i == j {
                continue;
            }
            let comparison = regression::compare_indexed(base, new, &[], thresholds);
            pairs += 1;
            pairs_with_regression += usize::from(comparison.has_regression());
            pairs_deterministic += usize::from(comparison.gated(Gate::Deterministic).next().is_some());
            pairs_flagged += usize::from(comparison.changes.iter().any(|c| c.verdict != Verdict::Noise));
            for change in &comparison.changes {
                let tail = regression::TAIL_METRICS.iter().any(|(slug, _)| *slug == change.metric);
                if tail && change.method == regression::Method::TailInterval {
                    tail_gate.0 += 1;
                    tail_gate.1 += usize::from(change.is_significant());
                }
                if let Some(m) = compared_metrics.iter().position(|s| s.slug == change.metric) {
                    compared[m] += 1;
                    flagged[m] += usize::from(change.is_significant());
                }
            }
        }
    }

    let metrics = compared_metrics
        .iter()
        .enumerate()
        .filter_map(|(m, spec)| {
            let of_metric: Vec<&CellSpread> = cells.iter().filter(|c| c.metric == spec.slug).collect();
            if of_metric.is_empty() && compared[m] == 0 {
                return None;
            }
            let cvs: Vec<f64> = of_metric.iter().filter_map(|c| c.cv).collect();
            let bands: Vec<f64> = of_metric.iter().filter_map(|c| c.learned_band).collect();
            let max_by = |key: &dyn Fn(&CellSpread) -> Option<f64>| {
                of_metric
                    .iter()
                    .filter_map(|c| key(c).map(|value| Worst { value, cell: c.cell.clone() }))
                    .max_by(|a, b| a.value.total_cmp(&b.value).then_with(|| b.cell.cmp(&a.cell)))
            };
            Some(MetricNoise {
                metric: spec.slug,
                kind: spec.kind,
                threshold: thresholds.for_metric(spec),
                cells: of_metric.len(),
                median_cv: stats::median(&cvs),
                max_cv: max_by(&|c| c.cv),
                widest: max_by(&|c| Some(c.widest())),
                median_learned_band: stats::median(&bands),
                comparisons: compared[m],
                false_positives: flagged[m],
                false_positive_rate: if compared[m] == 0 { 0.0 } else { flagged[m] as f64 / compared[m] as f64 },
            })
        })
        .collect();

    Calibration {
        runs: runs.iter().map(|r| r.meta.id.clone()).collect(),
        commits,
        machines,
        quick: runs.iter().any(|r| r.meta.quick),
        thresholds: thresholds.clone(),
        pairs,
        pairs_with_regression,
        pairs_with_deterministic_regression: pairs_deterministic,
        pairs_flagged,
        metrics,
        tail_gate,
        cells,
    }
}

/// The spread of `values` (at least two, in run order).
fn spread(cell: String, metric: &'static str, values: &[f64]) -> CellSpread {
    let median = stats::median(values).expect("at least two values");
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let relative = |x: f64| {
        if median != 0.0 {
            Some(x / median - 1.0)
        } else if x == 0.0 {
            Some(0.0)
        } else {
            None
        }
    };
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let cv = if mean != 0.0 {
        Some(sd / mean.abs())
    } else if sd == 0.0 {
        Some(0.0)
    } else {
        None
    };
    let changes: Vec<f64> = values
        .windows(2)
        .filter_map(|w| match (w[0], w[1]) {
            (a, b) if a == b => Some(0.0),
            (a, b) if a != 0.0 => Some((b / a - 1.0).abs()),
            _ => None,
        })
        .collect();
    let learned_band = if changes.len() >= MIN_CHANGES_FOR_BAND { stats::noise_band(&changes) } else { None };
    CellSpread {
        cell,
        metric,
        values: values.len(),
        median,
        min_deviation: relative(min),
        max_deviation: relative(max),
        cv,
        learned_band,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::{Allocations, CellKey, CellResult, Estimate, Instructions, RunMeta, Throughput};

    /// Seven trials spread ±`spread` around `median`.
    fn trials(median: f64, spread: f64) -> Estimate {
        let samples: Vec<f64> =
            [-1.0, -0.6, -0.2, 0.0, 0.2, 0.6, 1.0].iter().map(|d| median * (1.0 + d * spread)).collect();
        Estimate { median, lower: samples[1], upper: samples[5], samples }
    }

    fn cell(bus: &str, throughput: f64, ir: f64) -> CellResult {
        let key = CellKey { scenario: "spsc".to_owned(), bus: bus.to_owned(), params: BTreeMap::new() };
        let mut cell = CellResult::new(key, 1, 1);
        let estimate = trials(throughput, 0.01);
        cell.throughput = Some(Throughput {
            events_per_sec: estimate.clone(),
            deliveries_per_sec: estimate,
            ..Throughput::default()
        });
        cell.allocations =
            Some(Allocations { allocs_per_event: 0.0, bytes_per_event: 0.0, peak_bytes: 4096, events: 1000 });
        cell.instructions =
            Some(Instructions { ir_per_event: ir, est_cycles_per_event: ir, ..Instructions::default() });
        cell
    }

    fn run(i: usize, cells: Vec<CellResult>) -> Run {
        Run {
            meta: RunMeta {
                id: format!("aa-{i}"),
                started_at: format!("2026-06-01T10:{i:02}:00Z"),
                git_commit: Some("c0ffee".to_owned()),
                machine: "box".to_owned(),
                label: Some("noise:g1".to_owned()),
                ..RunMeta::default()
            },
            cells,
        }
    }

    fn metric<'a>(c: &'a Calibration, slug: &str) -> &'a MetricNoise {
        c.metrics.iter().find(|m| m.metric == slug).expect("the metric is listed")
    }

    #[test]
    fn identical_runs_flag_nothing_and_have_no_spread() {
        let runs: Vec<Run> =
            (0..4).map(|i| run(i, vec![cell("ring", 3.5e6, 400.0), cell("pooled", 2e6, 900.0)])).collect();
        let c = calibrate(&runs, &Thresholds::default());
        assert_eq!(c.runs, ["aa-0", "aa-1", "aa-2", "aa-3"]);
        assert_eq!((c.pairs, c.pairs_flagged, c.pairs_with_regression), (12, 0, 0));
        assert!(c.is_clean());
        assert_eq!(c.commits, ["c0ffee"]);
        let ir = metric(&c, "instructions-per-event");
        assert_eq!((ir.cells, ir.comparisons, ir.false_positives), (2, 24, 0));
        assert_eq!(ir.median_cv, Some(0.0));
        assert_eq!(ir.kind, Kind::Deterministic);
        assert_eq!(ir.threshold, 0.01);
        let allocs = metric(&c, "allocs-per-event");
        assert_eq!(allocs.widest.as_ref().map(|w| w.value), Some(0.0), "zero stays zero: no spread");
        assert!(c.cells.iter().all(|s| s.cv == Some(0.0) && s.values == 4));
        // The learned band needs four changes: four runs give three.
        assert!(c.cells.iter().all(|s| s.learned_band.is_none()));
    }

    #[test]
    fn a_doctored_run_is_flagged_in_every_pair_it_is_in() {
        let mut runs: Vec<Run> = (0..3).map(|i| run(i, vec![cell("ring", 3.5e6, 400.0)])).collect();
        runs.push(run(3, vec![cell("ring", 3.5e6, 440.0)]));
        let c = calibrate(&runs, &Thresholds::default());
        // Run 3 against each of the three others, both ways: 6 of 12 pairs.
        assert_eq!((c.pairs, c.pairs_flagged), (12, 6));
        // As the new run it is a regression (3 pairs), as the base an improvement.
        assert_eq!(c.pairs_with_regression, 3);
        assert_eq!(c.pairs_with_deterministic_regression, 3, "a single-threaded count");
        let ir = metric(&c, "instructions-per-event");
        assert_eq!((ir.comparisons, ir.false_positives), (12, 6));
        assert!((ir.false_positive_rate - 0.5).abs() < 1e-12);
        let spread = c.cells.iter().find(|s| s.metric == "instructions-per-event").expect("listed");
        assert_eq!(spread.median, 400.0);
        assert!((spread.max_deviation.expect("finite") - 0.1).abs() < 1e-12);
        assert_eq!(spread.min_deviation, Some(0.0));
        assert!(spread.cv.is_some_and(|cv| cv > 0.04 && cv < 0.06), "{spread:?}");
        assert_eq!(metric(&c, "throughput").false_positives, 0);
    }

    #[test]
    fn wall_clock_jitter_within_the_band_is_not_flagged_and_gives_a_learned_band() {
        // Eight runs whose throughput medians wander by up to ±2%.
        let wobble = [0.0, 0.012, -0.008, 0.02, -0.015, 0.004, -0.02, 0.01];
        let runs: Vec<Run> =
            wobble.iter().enumerate().map(|(i, w)| run(i, vec![cell("ring", 3.5e6 * (1.0 + w), 400.0)])).collect();
        let c = calibrate(&runs, &Thresholds::default());
        let t = metric(&c, "throughput");
        assert_eq!((t.comparisons, t.false_positives), (56, 0), "2% is inside the 5% default band");
        let spread = c.cells.iter().find(|s| s.metric == "throughput").expect("listed");
        assert!(spread.min_deviation.is_some_and(|d| d < -0.01) && spread.max_deviation.is_some_and(|d| d > 0.01));
        let band = spread.learned_band.expect("seven changes");
        assert!(band > 0.02 && band < 0.2, "{band}");
        assert_eq!(t.median_learned_band, Some(band));
        // A tighter default band turns the same jitter into false positives.
        let tight = Thresholds { noise_band: 0.005, ..Thresholds::default() };
        let c = calibrate(&runs, &tight);
        assert!(metric(&c, "throughput").false_positives > 0);
        assert!(c.pairs_with_regression > 0);
        assert_eq!(c.pairs_with_deterministic_regression, 0, "wall-clock never passes that gate");
    }

    #[test]
    fn the_tail_gate_false_positive_rate_is_counted_over_the_pairs() {
        use buslab_scenarios::results::{Latency, LatencyRepetition};
        // Six runs whose p99 repetitions wander by ±10% around one level.
        let wobble: [[f64; 3]; 6] = [
            [1.0, 1.08, 0.93],
            [0.95, 1.1, 1.0],
            [1.02, 0.9, 1.05],
            [1.1, 0.97, 0.92],
            [0.99, 1.04, 0.9],
            [0.94, 1.0, 1.09],
        ];
        let runs: Vec<Run> = wobble
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut c = cell("ring", 3.5e6, 400.0);
                let reps: Vec<LatencyRepetition> = w
                    .iter()
                    .map(|f| {
                        let p99 = (10_000.0 * f) as u64;
                        LatencyRepetition { p50_ns: 2_000, p99_ns: p99, p999_ns: p99 * 2, count: 10_000, misses: 0 }
                    })
                    .collect();
                c.latency = vec![Latency {
                    load: 0.5,
                    p50_ns: 2_000,
                    p99_ns: reps[0].p99_ns,
                    p999_ns: reps[0].p999_ns,
                    count: 30_000,
                    repetitions: reps,
                    ..Latency::default()
                }];
                run(i, vec![c])
            })
            .collect();
        let c = calibrate(&runs, &Thresholds::default());
        // p99 and p99.9 of one cell in each of 30 ordered pairs.
        assert_eq!(c.tail_gate, (60, 0), "the gate flags none of these A/A pairs");
        // The headlines alone (first repetition, ±10%) fool the noise band.
        assert!(metric(&c, "latency-p50").comparisons == 30);
        let text = crate::render::text::calibration_text(&c);
        assert!(text.contains("tail-latency gate (p99, p99.9 by the interval of the change): 0 of 60"), "{text}");
        let none = calibrate(
            &runs
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.cells[0].latency[0].repetitions.clear();
                    r
                })
                .collect::<Vec<_>>(),
            &Thresholds::default(),
        );
        assert_eq!(none.tail_gate, (0, 0));
        let p99 = metric(&none, "latency-p99");
        assert!(p99.false_positives > 0, "the noise band alone flags headlines 10% apart: {p99:?}");
    }

    #[test]
    fn a_departure_from_zero_has_no_finite_deviation() {
        let mut runs: Vec<Run> = (0..3).map(|i| run(i, vec![cell("ring", 3.5e6, 400.0)])).collect();
        runs[1].cells[0].allocations.as_mut().expect("measured").allocs_per_event = 0.5;
        let c = calibrate(&runs, &Thresholds::default());
        let spread = c.cells.iter().find(|s| s.metric == "allocs-per-event").expect("listed");
        assert_eq!((spread.median, spread.max_deviation, spread.cv.is_some()), (0.0, None, true));
        assert!(spread.widest().is_infinite());
        assert!(metric(&c, "allocs-per-event").false_positives > 0, "growth from zero is always flagged");
    }
}
