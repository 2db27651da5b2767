//! Regression detection: which metrics of which cells changed between two
//! runs, beyond what the metric's own noise explains.
//!
//! # What is compared
//! Two runs, a *base* (the baseline) and a *new* run, are matched cell by
//! cell on [`CellKey::name`]. Only cells that ended [`CellStatus::Ok`] in
//! both runs are compared; a cell present in one run only, or not Ok in one
//! of them, is listed as [`Unmatched`] and never counts as a regression. A
//! metric measured in one run only (a pass skipped, valgrind missing) is
//! listed in [`Comparison::missing`].
//!
//! Each metric of a matched cell gives one [`Change`], with the relative
//! change `new / base − 1`. The metrics and their slugs are the harness
//! store's: see [`compared_metrics`]. `deliveries` is left out: it is the throughput
//! times the fan-out, and would repeat every throughput verdict.
//!
//! # Deterministic metrics: a fixed threshold
//! `instructions-per-event`, `est-cycles-per-event` and
//! `branch-misses-per-event` (callgrind), and `allocs-per-event` and
//! `bytes-per-event` (a counting allocator) count what the code did: the same binary on the
//! same input gives the same count, so any change is caused by the code,
//! and no statistics are needed. For these "lower is better" figures:
//!
//! - a **regression** when the figure grows by more than the metric's
//!   threshold (default **1%**, [`Thresholds::deterministic`], or
//!   [`Thresholds::per_metric`]);
//! - an **improvement** when it shrinks by more than the threshold;
//! - **any growth from zero** is a regression whatever the threshold (a
//!   bus that allocated nothing per event now allocates), and a drop to
//!   zero is an improvement once it is beyond the threshold (it is a 100%
//!   drop); its ratio is infinite.
//!
//! Callgrind runs threads one at a time, and which thread runs when varies
//! from run to run: spin loops, retries and wake-ups then add a varying
//! number of instructions. The instruction metrics of a cell whose
//! instruction pass ran more than one thread ([`Instructions::multithreaded`]
//! in either run) are therefore **not deterministic**: they are marked
//! [`Method::Multithreaded`] and use the wider threshold
//! [`Thresholds::multithreaded`] (default **5%**; a larger per-metric
//! threshold wins). The allocation metrics keep the deterministic rule.
//! `branch-misses-per-event` has a default threshold of **5%** in every
//! cell ([`Thresholds::default`]'s `per_metric`): callgrind's branch
//! predictor is simulated by address, addresses change from process to
//! process, and A/A runs of single-threaded cells move it by percents.
//!
//! # Gates
//! A CI job fails on the regressions its [`Gate`] admits. [`Gate::All`]
//! admits every regression (the nightly). [`Gate::Deterministic`] admits
//! only regressions of counts that repeat when the code does not change
//! ([`Change::is_deterministic`]): the instructions and the allocations
//! (count and bytes) per event of a cell that ran a single thread under
//! callgrind in both runs ([`Change::multithreaded`] false). Left out:
//! - every count of a multi-threaded cell: how the threads interleave
//!   decides the spin loops and wake-ups that callgrind counts, and when a
//!   channel parks or a subscriber list is copied — measured, such counts
//!   move between two builds of the same bus code, and allocation counts
//!   grow from zero;
//! - `est-cycles-per-event` and `branch-misses-per-event`: callgrind
//!   simulates caches and branch predictors by address, and addresses
//!   change from process to process (ASLR): A/A runs of single-threaded
//!   cells (`buslab noise`) show the branch figures moving by percents;
//! - wall-clock metrics: this is the pull-request gate, whose quick runs
//!   cannot make them significant.
//!
//! # Wall-clock metrics: an interval over processes and a noise band
//! `throughput` (events per second, higher is better) and
//! `cpu-time-per-event` vary from trial to trial and, more, from process to
//! process (memory layout, thread placement, host drift). Where both runs
//! measured the cell in two or more probe processes
//! ([`Throughput::processes`]), the change is judged like the tail
//! latencies below ([`Method::ProcessInterval`]): the ratio `new / base`
//! with a 95% Welch *t* interval over the logs of each process's median
//! trial ([`stats::log_ratio_interval`]). A **regression only when the
//! whole interval is worse by more than the cell's noise band**, an
//! improvement when it is better by more, noise otherwise. The trials of
//! one process are not independent samples of the cell: pooled into one
//! test they count the process-to-process variance as signal. Measured: a
//! `buslab noise` group of 4 quick runs over the whole catalog (261 cells,
//! 12 ordered A/A pairs, a machine loaded by parallel builds) flagged
//! 28.9% of its throughput changes with the Mann–Whitney rule below on
//! pooled trials, and 18.8% with this interval (CPU time: 14.2% and
//! 7.5%). What the interval still misses there is drift between runs
//! (the machine's load changed from run to run, which the processes of
//! one run share): the noise band learned from the cell's history is what
//! covers it, so the band, not the interval, must absorb a noisy host.
//!
//! Runs stored before repetitions (one process) keep the earlier rule
//! ([`Method::MannWhitney`]); a change of the median is **significant**
//! when both:
//!
//! 1. a two-sided **Mann–Whitney U test** on the trial samples of the two
//!    runs ([`Estimate::samples`]) gives `p <` [`Thresholds::significance`]
//!    (default **0.01**): the samples differ beyond chance; and
//! 2. the relative change of the **medians** exceeds the cell's **noise
//!    band**: the difference is also larger than how much this cell's
//!    median usually moves between runs (a real but tiny shift is not
//!    reported).
//!
//! A significant drop of throughput is a regression, a significant rise an
//! improvement; anything else is noise. The test cannot reach `p < 0.01`
//! when both runs have 4 trials or fewer (with 3 trials a side, as in
//! `--quick` runs, the smallest p-value is 0.1). The default budget's 3
//! processes × 3 trials give 9 trials a side, which can reach 2/48620 ≈
//! 4·10⁻⁵; `--quick`'s 3 × 2 give 6 a side, down to 2/924 ≈ 0.002.
//! When a run kept no trial samples, there is no test, and the noise band
//! alone decides, as for latency ([`Method::NoiseBand`]).
//!
//! `latency-p50`, `latency-p99` and `latency-p999` (ns, lower is better)
//! are read from the cell's headline latency entry (at the point's shared
//! headline rate; in older runs the entry at load 0.5, a burst cell's
//! single entry), as in the store's metrics: the percentiles of the merged
//! histogram of the cell's latency repetitions.
//!
//! # The tail-latency gate
//! `latency-p99` and `latency-p999` of a cell measured on the same machine
//! in both runs, where both runs kept the percentile of each latency probe
//! process ([`Latency::repetitions`], two or more a side, none of them
//! lost among a lossy bus's misses), are judged by an **interval of the
//! change** ([`Method::TailInterval`]): the ratio `new / base` with a 95%
//! Welch *t* interval over the logs of the repetitions' percentiles
//! ([`stats::log_ratio_interval`]). It is a **regression only when the
//! interval's lower bound exceeds 1 + the cell's noise band**, an
//! **improvement only when its upper bound is below 1 − the band**;
//! otherwise noise. The change shows the interval ([`Change::interval`]).
//!
//! Why a *t* interval over repetitions and not a bootstrap: a tail
//! percentile moves between processes (memory layout, thread placement,
//! the host's state that minute) far more than its sampling error within
//! one histogram, and a run affords 3 repetitions; a bootstrap over 3
//! values gives at best their range (about 75% coverage), and resampling
//! the histogram counts within them would add only the within-process
//! error, the small part. Welch's interval over the log percentiles holds
//! both (each repetition's percentile carries its own sampling error) and
//! keeps unequal spreads of the two runs apart; rounding its degrees of
//! freedom down only widens it. The simulation test
//! (`welch_log_ratio_covers_at_the_run_counts`) measures 93–99.5% coverage
//! for 3 repetitions a side, normal and log-normal, CV 5–30%. Requiring the
//! whole interval beyond the band makes a false positive rarer still: an
//! A/A pair is flagged only when the interval misses 1 *and* the band
//! (`a_a_pairs_of_one_distribution_are_not_flagged` measures < 5%, and
//! `buslab noise` reports the gate's false-positive rate over its pairs).
//! With 3 repetitions a side (the default run) the interval's half-width
//! is about 4.3 × √(2/3) ≈ 3.5 times the repetitions' CV: a tail that
//! moves 5% from process to process shows a shift of about 20% beyond the
//! band; a spread of 30% shows nothing. `--quick` runs 2 (1 or 2 degrees
//! of freedom, `t` = 12.7 or 4.3): its tail gate reads only large changes.
//!
//! `latency-p50` is judged by the same interval of the change, from the
//! repetitions' medians ([`INTERVAL_METRICS`]); `compare` counts only p99
//! and p99.9 in the gate's line. Measured on two back-to-back `--quick`
//! runs of the same binary on a quiet 2-core VM (throughput and latency
//! passes, 8 scenarios, 190 cells): by the noise band alone (5% before any
//! history) the median latency was flagged 55 times; the tails, judged by
//! the interval, 0 of 144.
//!
//! Runs stored before latency repetitions (one process per cell) are
//! judged by **the noise band alone** (a regression when the percentile
//! grows beyond the band, an improvement when it shrinks beyond it,
//! [`Method::NoiseBand`]; `compare` labels such tail changes "noise band
//! only"); these changes have no p-value and no interval.
//!
//! # The noise band
//! Like rustc-perf, the band is learned from the cell's own history: the
//! metric's value in each past run on the same machine (the `history`
//! given to [`compare`], then the base run itself), in start order, keeping
//! only runs where the cell was Ok and had the metric; the absolute
//! relative changes between consecutive values; the band is
//! **Q3 + 3·IQR** of the last [`Thresholds::history_window`] (30) of those
//! changes. It is used once at least [`Thresholds::min_history`] (10) runs
//! have the metric; with less history, the default band
//! [`Thresholds::noise_band`] (**5%**, or [`Thresholds::per_metric`]) is
//! used. [`Change::history`] says how many changes the band came from (0
//! for the default).
//!
//! # Cells measured on different machines
//! A wall-clock figure says as much about the machine as about the code,
//! so the wall-clock metrics (throughput and latency) of a cell are only
//! compared when both runs measured the cell on the same machine: the
//! cell's own [`CellResult::machine`] (a shard imported from another
//! machine) or else its run's [`RunMeta::machine`]. Otherwise the cell is
//! listed in [`Comparison::other_machine`] and only its deterministic
//! counts are judged. Likewise the noise band learns only from past values
//! measured on the machine of the compared cells.
//!
//! [`CellKey::name`]: buslab_scenarios::results::CellKey::name
//! [`CellResult::machine`]: buslab_scenarios::results::CellResult::machine
//! [`RunMeta::machine`]: buslab_scenarios::results::RunMeta::machine
//! [`Instructions::multithreaded`]: buslab_scenarios::results::Instructions::multithreaded
//! [`Estimate::samples`]: buslab_scenarios::results::Estimate::samples
//! [`Latency::repetitions`]: buslab_scenarios::results::Latency::repetitions
//! [`Throughput::processes`]: buslab_scenarios::results::Throughput::processes

use crate::analysis::stats;
use buslab_scenarios::metrics;
use buslab_scenarios::metrics::Pass;
use buslab_scenarios::results::{CellResult, CellStatus, Run, same_rate};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

pub use buslab_scenarios::metrics::{Kind, Metric};

/// Every compared metric, in the order the changes of a cell are listed:
/// the metrics of [`metrics::ALL`] that are [`Metric::compared`].
pub fn compared_metrics() -> impl Iterator<Item = &'static Metric> {
    metrics::compared()
}

/// Runs from before shared rates: the offered load whose latency is
/// compared (as in the store's metrics).
pub const HEADLINE_LOAD: f64 = buslab_scenarios::results::HEADLINE_LOAD;

/// The knobs of the rule. [`Thresholds::default`] is the rule as the
/// [module docs](self) state it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// Per-metric overrides (slug → relative threshold, 0.01 = 1%): the
    /// threshold of a deterministic metric, or the default noise band of a
    /// wall-clock metric. The default holds `branch-misses-per-event` at
    /// 0.05.
    pub per_metric: BTreeMap<String, f64>,
    /// The threshold of a deterministic metric (default 0.01).
    pub deterministic: f64,
    /// The least threshold of the instruction metrics of a multi-threaded
    /// cell (default 0.05).
    pub multithreaded: f64,
    /// The noise band of a wall-clock metric with too little history
    /// (default 0.05).
    pub noise_band: f64,
    /// The p-value below which a Mann–Whitney U test is significant
    /// (default 0.01).
    pub significance: f64,
    /// Runs with the metric (base included) needed to learn the noise band
    /// from history (default 10).
    pub min_history: usize,
    /// The most recent past changes the noise band is learned from
    /// (default 30).
    pub history_window: usize,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            // Simulated by address: see the module docs.
            per_metric: BTreeMap::from([("branch-misses-per-event".to_owned(), 0.05)]),
            deterministic: 0.01,
            multithreaded: 0.05,
            noise_band: 0.05,
            significance: 0.01,
            min_history: 10,
            history_window: 30,
        }
    }
}

impl Thresholds {
    /// The configured threshold (deterministic) or default noise band
    /// (wall-clock) of `metric`.
    pub fn for_metric(&self, metric: &Metric) -> f64 {
        let default = match metric.kind {
            Kind::Deterministic => self.deterministic,
            Kind::Sampled | Kind::SingleFigure => self.noise_band,
        };
        self.per_metric.get(metric.slug).copied().unwrap_or(default)
    }
}

/// What a change means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Worse beyond the threshold (and significant, for throughput).
    Regression,
    /// Better beyond the threshold (and significant, for throughput).
    Improvement,
    /// Within the threshold, or not significant.
    Noise,
}

/// Which part of the rule judged a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A deterministic count against a fixed threshold.
    Deterministic,
    /// A callgrind count of a multi-threaded cell: not deterministic, so a
    /// wider threshold.
    Multithreaded,
    /// Mann–Whitney U on the trial samples, and the noise band (runs
    /// measured in one process).
    MannWhitney,
    /// The interval of the ratio over the process medians of both runs
    /// must clear the noise band (throughput and CPU time of runs with
    /// repetitions; see the [module docs](self#wall-clock-metrics-an-interval-over-processes-and-a-noise-band)).
    ProcessInterval,
    /// The noise band alone (the median latency; tail latencies of runs
    /// without repetitions; throughput without samples).
    NoiseBand,
    /// The tail-latency gate: the interval of the ratio from the latency
    /// repetitions of both runs must clear the noise band (see the
    /// [module docs](self#the-tail-latency-gate)); the median latency is
    /// judged the same way ([`INTERVAL_METRICS`]).
    TailInterval,
}

/// The confidence of the tail-latency gate's interval.
pub const TAIL_CONFIDENCE: f64 = 0.95;

/// The metrics of the tail-latency gate, with their quantiles.
pub const TAIL_METRICS: [(&str, f64); 2] = [("latency-p99", 0.99), ("latency-p999", 0.999)];

/// The latency metrics judged by the interval of the change
/// ([`Method::TailInterval`]) where both runs kept repetitions: the tail
/// gate's, and the median by the same rule.
pub const INTERVAL_METRICS: [(&str, f64); 3] = [("latency-p50", 0.5), TAIL_METRICS[0], TAIL_METRICS[1]];

/// One metric of one cell, base against new.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// The cell's [`CellKey::name`](buslab_scenarios::results::CellKey::name).
    pub cell: String,
    /// The metric's slug (one of [`compared_metrics`]).
    pub metric: &'static str,
    /// The base run's value (the median, for throughput).
    pub base: f64,
    /// The new run's value.
    pub new: f64,
    /// `new / base`: 1 when both are 0, infinite when only `base` is 0.
    pub ratio: f64,
    /// What the change means.
    pub verdict: Verdict,
    /// The Mann–Whitney U p-value, for throughput with samples.
    pub p_value: Option<f64>,
    /// The relative threshold the change was held against: the metric's
    /// threshold, or the noise band.
    pub threshold: f64,
    /// Which part of the rule applied.
    pub method: Method,
    /// The interval of `ratio` (lower, upper), from the latency
    /// repetitions ([`Method::TailInterval`]) or the throughput processes
    /// ([`Method::ProcessInterval`]) of both runs.
    pub interval: Option<(f64, f64)>,
    /// How many past changes the noise band was learned from; 0 when the
    /// default band (or a fixed threshold) applied.
    pub history: usize,
    /// The cell's instruction pass ran more than one thread in either run
    /// (false when neither run has an instruction pass): its counts depend
    /// on how the threads interleaved.
    pub multithreaded: bool,
}

impl Change {
    /// The relative change, `new / base − 1` (0.1 = 10% more).
    pub fn relative(&self) -> f64 {
        self.ratio - 1.0
    }

    /// The verdict is a regression or an improvement.
    pub fn is_significant(&self) -> bool {
        self.verdict != Verdict::Noise
    }

    /// A count that repeats when the code does not change: instructions
    /// or allocations per event of a single-threaded cell (see
    /// [`Gate::Deterministic`]).
    pub fn is_deterministic(&self) -> bool {
        metrics::by_slug(self.metric).is_some_and(|m| m.repeatable)
            && self.method == Method::Deterministic
            && !self.multithreaded
    }
}

/// Which regressions fail a CI job (see the [module docs](self#gates)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Every regression.
    #[default]
    All,
    /// Only regressions of deterministic counts of single-threaded cells.
    Deterministic,
}

impl Gate {
    /// Every gate, in the order `--help` lists them.
    pub const ALL: [Gate; 2] = [Gate::All, Gate::Deterministic];

    /// The gate's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Gate::All => "all",
            Gate::Deterministic => "deterministic",
        }
    }

    /// `change` is a regression this gate fails on.
    pub fn admits(self, change: &Change) -> bool {
        change.verdict == Verdict::Regression
            && match self {
                Gate::All => true,
                Gate::Deterministic => change.is_deterministic(),
            }
    }
}

/// A cell that was not compared, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Unmatched {
    /// The cell is in the base run only.
    OnlyInBase {
        /// The cell's name.
        cell: String,
    },
    /// The cell is in the new run only.
    OnlyInNew {
        /// The cell's name.
        cell: String,
    },
    /// The cell is in both runs but did not end Ok in at least one.
    NotOk {
        /// The cell's name.
        cell: String,
        /// How it ended in the base run.
        base: CellStatus,
        /// How it ended in the new run.
        new: CellStatus,
    },
}

impl Unmatched {
    /// The cell's name.
    pub fn cell(&self) -> &str {
        match self {
            Unmatched::OnlyInBase { cell } | Unmatched::OnlyInNew { cell } | Unmatched::NotOk { cell, .. } => cell,
        }
    }
}

/// A metric that a compared cell has in one run only (for latency: at the
/// baseline's headline rate).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Missing {
    /// The cell's name.
    pub cell: String,
    /// The metric's slug.
    pub metric: &'static str,
    /// The base run has it (and the new run does not); otherwise the
    /// reverse.
    pub in_base: bool,
    /// For a latency metric whose headline rate moved between the runs:
    /// the baseline's headline rate, at which the new run has no load it
    /// kept (events/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_rate: Option<f64>,
}

/// A compared cell measured on different machines in the two runs: its
/// wall-clock metrics were not compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OtherMachine {
    /// The cell's name.
    pub cell: String,
    /// The machine that measured it in the base run.
    pub base: String,
    /// The machine that measured it in the new run.
    pub new: String,
}

/// The comparison of two runs: every change, significant or not.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// The base run's id.
    pub base_run: String,
    /// The new run's id.
    pub new_run: String,
    /// How many earlier runs were given as history.
    pub history_runs: usize,
    /// Every compared metric of every matched cell, in the new run's cell
    /// order and [`compared_metrics`] order.
    pub changes: Vec<Change>,
    /// Cells that were not compared.
    pub unmatched: Vec<Unmatched>,
    /// Metrics measured in one of the runs only.
    pub missing: Vec<Missing>,
    /// Cells measured on different machines in the two runs, whose
    /// wall-clock metrics were therefore not compared.
    pub other_machine: Vec<OtherMachine>,
    /// The two runs were made with different measurement methods
    /// (`(base, new)` [`RunMeta::methodology`](buslab_scenarios::results::RunMeta::methodology)):
    /// nothing is compared across the break.
    pub methodology_break: Option<(u32, u32)>,
}

impl Comparison {
    /// The regressions and improvements: regressions first, each group by
    /// decreasing magnitude of the relative change.
    pub fn significant(&self) -> Vec<&Change> {
        let mut out: Vec<&Change> = self.changes.iter().filter(|c| c.is_significant()).collect();
        out.sort_by(|a, b| {
            a.verdict.cmp(&b.verdict).then(b.relative().abs().total_cmp(&a.relative().abs())).then(a.cell.cmp(&b.cell))
        });
        out
    }

    /// How many changes have `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.changes.iter().filter(|c| c.verdict == verdict).count()
    }

    /// At least one change is a regression.
    pub fn has_regression(&self) -> bool {
        self.changes.iter().any(|c| c.verdict == Verdict::Regression)
    }

    /// The regressions `gate` fails on.
    pub fn gated(&self, gate: Gate) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| gate.admits(c))
    }

    /// How many cells were compared.
    pub fn cells_compared(&self) -> usize {
        let mut cells: Vec<&str> = self.changes.iter().map(|c| c.cell.as_str()).collect();
        cells.extend(self.missing.iter().map(|m| m.cell.as_str()));
        cells.sort_unstable();
        cells.dedup();
        cells.len()
    }
}

/// At most this many runs before the baseline are a comparison's history
/// (the noise band looks at the last 30 changes): `buslab compare` and the
/// report's comparison load as many.
pub const COMPARE_HISTORY: usize = 30;

/// Compares run `new` against run `base`. `history` holds earlier runs on
/// the same machine (any order; `base` and `new` themselves are ignored if
/// present), from which the noise band of each wall-clock metric is
/// learned. See the [module docs](self) for the rule.
pub fn compare(base: &Run, new: &Run, history: &[Run], config: &Thresholds) -> Comparison {
    let history: Vec<Indexed<'_>> = history.iter().map(Indexed::new).collect();
    let history: Vec<&Indexed<'_>> = history.iter().collect();
    compare_indexed(&Indexed::new(base), &Indexed::new(new), &history, config)
}

/// A run with its cells indexed by name: [`compare_indexed`] takes runs in
/// this form so that a caller comparing many pairs of one history (the
/// trends) names each cell once, not once per comparison.
#[derive(Debug)]
pub struct Indexed<'a> {
    run: &'a Run,
    names: Vec<String>,
    cells: HashMap<String, &'a CellResult>,
}

impl<'a> Indexed<'a> {
    /// Indexes `run`'s cells by [`CellKey::name`](buslab_scenarios::results::CellKey::name).
    pub fn new(run: &'a Run) -> Indexed<'a> {
        let names: Vec<String> = run.cells.iter().map(|c| c.key.name()).collect();
        let cells = names.iter().cloned().zip(&run.cells).collect();
        Indexed { run, names, cells }
    }

    /// The run.
    pub fn run(&self) -> &'a Run {
        self.run
    }
}

/// [`compare`] on indexed runs: the same rule, the same result.
pub fn compare_indexed(
    base_ix: &Indexed<'_>,
    new_ix: &Indexed<'_>,
    history: &[&Indexed<'_>],
    config: &Thresholds,
) -> Comparison {
    let (base_run, new_run) = (base_ix.run, new_ix.run);
    // Noise bands are learned only from runs made the way the new one was.
    let mut past: Vec<&Indexed<'_>> = history
        .iter()
        .copied()
        .filter(|r| r.run.meta.id != base_run.meta.id && r.run.meta.id != new_run.meta.id)
        .filter(|r| r.run.meta.methodology == new_run.meta.methodology)
        .collect();
    past.sort_by(|a, b| (&a.run.meta.started_at, &a.run.meta.id).cmp(&(&b.run.meta.started_at, &b.run.meta.id)));
    let history_runs = past.len();
    past.push(base_ix);
    // Each past run's machine and cells by name, in start order, base last.
    let past: Vec<PastRun<'_>> = past.iter().map(|r| (r.run.meta.machine.as_str(), &r.cells)).collect();
    let (base, new) = (base_run, new_run);
    let base_cells = &base_ix.cells;
    let new_names = &new_ix.names;
    let mut comparison = Comparison {
        base_run: base.meta.id.clone(),
        new_run: new.meta.id.clone(),
        history_runs,
        changes: Vec::new(),
        unmatched: Vec::new(),
        missing: Vec::new(),
        other_machine: Vec::new(),
        methodology_break: None,
    };
    if base.meta.methodology != new.meta.methodology {
        comparison.methodology_break = Some((base.meta.methodology, new.meta.methodology));
        return comparison;
    }
    for name in &base_ix.names {
        if !new_ix.cells.contains_key(name) {
            comparison.unmatched.push(Unmatched::OnlyInBase { cell: name.clone() });
        }
    }
    for (name, n) in new_names.iter().zip(&new.cells) {
        let Some(b) = base_cells.get(name) else {
            comparison.unmatched.push(Unmatched::OnlyInNew { cell: name.clone() });
            continue;
        };
        if b.status != CellStatus::Ok || n.status != CellStatus::Ok {
            comparison.unmatched.push(Unmatched::NotOk {
                cell: name.clone(),
                base: b.status.clone(),
                new: n.status.clone(),
            });
            continue;
        }
        let (base_machine, new_machine) = (b.measured_on(&base.meta.machine), n.measured_on(&new.meta.machine));
        let same_machine = base_machine == new_machine;
        if !same_machine {
            comparison.other_machine.push(OtherMachine {
                cell: name.clone(),
                base: base_machine.to_owned(),
                new: new_machine.to_owned(),
            });
        }
        // This cell in each past run, where it ended Ok on the same machine
        // as the new run's cell: what its noise bands are learned from.
        let history_cells: Vec<&CellResult> = past
            .iter()
            .filter_map(|(run_machine, cells)| {
                cells
                    .get(name)
                    .copied()
                    .filter(|c| c.status == CellStatus::Ok && c.measured_on(run_machine) == new_machine)
            })
            .collect();
        // Latency is compared at one offered rate: the baseline's headline
        // rate. The grid follows each run's measured capacities, so the new
        // run's headline can move; its load at the baseline's rate, when it
        // measured one there and kept it, is what is compared.
        let moved = match (b.headline_rate, n.headline_rate) {
            (Some(base_rate), Some(new_rate)) if !same_rate(base_rate, new_rate) => Some(base_rate),
            _ => None,
        };
        let at_base_rate = moved.map(|rate| CellResult { headline_rate: Some(rate), ..n.clone() });
        for metric in compared_metrics() {
            if !same_machine && metric.kind != Kind::Deterministic {
                continue;
            }
            let (n, at_rate) = match (&at_base_rate, metric.pass) {
                (Some(aligned), Pass::Latency) => (aligned, moved),
                _ => (n, None),
            };
            match (value(b, metric.slug), value(n, metric.slug)) {
                (Some(bv), Some(nv)) => {
                    let change = judge(name, metric, b, n, bv, nv, &history_cells, config);
                    comparison.changes.push(change);
                }
                (bv, nv) if bv.is_some() || nv.is_some() => comparison.missing.push(Missing {
                    cell: name.clone(),
                    metric: metric.slug,
                    in_base: bv.is_some(),
                    at_rate,
                }),
                _ => {}
            }
        }
    }
    comparison
}

/// A past run as the noise band reads it: its machine, and its cells by
/// name.
type PastRun<'a> = (&'a str, &'a HashMap<String, &'a CellResult>);

/// Judges one metric of one matched cell; `past` is the history and the
/// machine that measured the compared cells.
#[allow(clippy::too_many_arguments)]
fn judge(
    name: &str,
    metric: &Metric,
    b: &CellResult,
    n: &CellResult,
    base: f64,
    new: f64,
    past: &[&CellResult],
    config: &Thresholds,
) -> Change {
    let ratio = ratio(base, new);
    // Positive when the new run is worse.
    let worse = if metric.higher_is_better { 1.0 - ratio } else { ratio - 1.0 };
    let beyond = |threshold: f64| {
        if worse > threshold {
            Verdict::Regression
        } else if -worse > threshold {
            Verdict::Improvement
        } else {
            Verdict::Noise
        }
    };
    let configured = config.for_metric(metric);
    let mut change = Change {
        cell: name.to_owned(),
        metric: metric.slug,
        base,
        new,
        ratio,
        verdict: Verdict::Noise,
        p_value: None,
        threshold: configured,
        method: Method::Deterministic,
        interval: None,
        history: 0,
        multithreaded: [b, n].iter().any(|c| c.instructions.as_ref().is_some_and(|i| i.multithreaded)),
    };
    match metric.kind {
        Kind::Deterministic => {
            if change.multithreaded && metric.callgrind {
                change.method = Method::Multithreaded;
                change.threshold = configured.max(config.multithreaded);
            }
            change.verdict = if base == 0.0 && new > 0.0 { Verdict::Regression } else { beyond(change.threshold) };
        }
        Kind::Sampled | Kind::SingleFigure => {
            let (band, history) = noise_band(metric.slug, past, config).unwrap_or((configured, 0));
            change.threshold = band;
            change.history = history;
            if let Some((_, lower, upper)) = tail_interval(metric.slug, b, n) {
                change.method = Method::TailInterval;
                change.interval = Some((lower, upper));
                change.verdict = if lower > 1.0 + band {
                    Verdict::Regression
                } else if upper < 1.0 - band {
                    Verdict::Improvement
                } else {
                    Verdict::Noise
                };
                return change;
            }
            let processes = process_medians(metric, b).zip(process_medians(metric, n));
            if let Some((_, lower, upper)) =
                processes.and_then(|(bs, ns)| stats::log_ratio_interval(&bs, &ns, TAIL_CONFIDENCE))
            {
                // How much worse than the base the bounds are (positive:
                // worse), whichever way the metric improves.
                let (least, most) =
                    if metric.higher_is_better { (1.0 - upper, 1.0 - lower) } else { (lower - 1.0, upper - 1.0) };
                change.method = Method::ProcessInterval;
                change.interval = Some((lower, upper));
                change.verdict = if least > band {
                    Verdict::Regression
                } else if most < -band {
                    Verdict::Improvement
                } else {
                    Verdict::Noise
                };
                return change;
            }
            let test = if metric.kind == Kind::Sampled { samples(metric, b).zip(samples(metric, n)) } else { None };
            match test.and_then(|(bs, ns)| stats::mann_whitney_u(bs, ns).ok()) {
                Some(mwu) => {
                    change.method = Method::MannWhitney;
                    change.p_value = Some(mwu.p_value);
                    if mwu.p_value < config.significance {
                        change.verdict = beyond(band);
                    }
                }
                None => {
                    change.method = Method::NoiseBand;
                    change.verdict = beyond(band);
                }
            }
        }
    }
    change
}

/// The interval of `new / base` for latency metric `slug` of cells `b`
/// and `n` ([`stats::log_ratio_interval`] over the percentile of each
/// repetition of their headline latency entries), or `None` when `slug` is
/// not one of [`INTERVAL_METRICS`], either entry has fewer than two
/// repetitions, or a repetition's percentile is lost among misses or 0.
pub fn tail_interval(slug: &str, b: &CellResult, n: &CellResult) -> Option<(f64, f64, f64)> {
    let (_, q) = INTERVAL_METRICS.iter().find(|(s, _)| *s == slug)?;
    let of = |c: &CellResult| -> Option<Vec<f64>> {
        c.headline_latency()?.repetitions.iter().map(|r| r.percentile_ns(*q).map(|v| v as f64)).collect()
    };
    stats::log_ratio_interval(&of(b)?, &of(n)?, TAIL_CONFIDENCE)
}

/// `new / base`, with 0 / 0 = 1 and x / 0 = ∞.
fn ratio(base: f64, new: f64) -> f64 {
    if base == 0.0 { if new == 0.0 { 1.0 } else { f64::INFINITY } } else { new / base }
}

/// The noise band of `slug` learned from `past`, the cell in each past run
/// (start order, base last) where it ended Ok on the compared machine, and
/// how many changes it came from; `None` with too little history.
fn noise_band(slug: &str, past: &[&CellResult], config: &Thresholds) -> Option<(f64, usize)> {
    let values: Vec<f64> = past.iter().filter_map(|c| value(c, slug)).collect();
    if values.len() < config.min_history.max(2) {
        return None;
    }
    let changes: Vec<f64> =
        values.windows(2).map(|w| (ratio(w[0], w[1]) - 1.0).abs()).filter(|c| c.is_finite()).collect();
    let recent = &changes[changes.len().saturating_sub(config.history_window)..];
    stats::noise_band(recent).map(|band| (band, recent.len()))
}

/// The median trial of each probe process of sampled `metric` in `cell`
/// ([`Throughput::processes`] splits the samples, one process after
/// another), or `None` for a cell measured in fewer than two processes or
/// whose samples do not add up to them.
///
/// [`Throughput::processes`]: buslab_scenarios::results::Throughput::processes
fn process_medians(metric: &Metric, cell: &CellResult) -> Option<Vec<f64>> {
    let counts = &cell.throughput.as_ref()?.processes;
    let mut rest = samples(metric, cell)?;
    if metric.kind != Kind::Sampled
        || counts.len() < 2
        || counts.iter().map(|&k| k as usize).sum::<usize>() != rest.len()
    {
        return None;
    }
    counts
        .iter()
        .map(|&k| {
            let (trials, tail) = rest.split_at(k as usize);
            rest = tail;
            stats::median(trials)
        })
        .collect()
}

/// The trial samples of `metric` in `cell`, if any.
fn samples<'a>(metric: &Metric, cell: &'a CellResult) -> Option<&'a [f64]> {
    metric.reading(cell).map(|r| r.samples).filter(|s| !s.is_empty())
}

/// The value of metric `slug` in `cell`, if measured and finite.
pub fn value(cell: &CellResult, slug: &str) -> Option<f64> {
    metrics::by_slug(slug)?.value(cell)
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::{
        Allocations, CellKey, Estimate, Instructions, Latency, LatencyRepetition, RunMeta, Throughput,
    };

    /// Seven tight trials around `median` (±0.5%).
    fn trials(median: f64) -> Estimate {
        let samples: Vec<f64> =
            [-0.005, -0.003, -0.001, 0.0, 0.001, 0.003, 0.005].iter().map(|d| median * (1.0 + d)).collect();
        Estimate { median, lower: samples[1], upper: samples[5], samples }
    }

    fn latency(p50: u64) -> Latency {
        Latency { load: 0.5, p50_ns: p50, p90_ns: p50 * 2, p99_ns: p50 * 5, p999_ns: p50 * 12, ..Latency::default() }
    }

    fn cell(bus: &str) -> CellResult {
        let key = CellKey { scenario: "spsc".to_owned(), bus: bus.to_owned(), params: BTreeMap::new() };
        let mut cell = CellResult::new(key, 1, 1);
        cell.throughput = Some(Throughput {
            events_per_sec: trials(3.5e6),
            deliveries_per_sec: trials(3.5e6),
            cpu_ns_per_event: Some(trials(290.0)),
            ..Throughput::default()
        });
        cell.latency = vec![latency(240)];
        cell.allocations =
            Some(Allocations { allocs_per_event: 0.0, bytes_per_event: 0.0, peak_bytes: 4096, events: 1000 });
        cell.instructions = Some(Instructions {
            ir_per_event: 400.0,
            est_cycles_per_event: 420.0,
            branch_misses_per_event: 2.0,
            events: 1000,
            ..Instructions::default()
        });
        cell
    }

    fn run(id: &str, cells: Vec<CellResult>) -> Run {
        Run {
            meta: RunMeta { id: id.to_owned(), started_at: format!("2026-01-01T00:00:{id}Z"), ..RunMeta::default() },
            cells,
        }
    }

    fn base() -> Run {
        run("00", vec![cell("channel"), cell("fixed_array")])
    }

    /// A copy of the base run as run `01` with `edit` applied to the
    /// `channel` cell.
    fn doctored(edit: impl FnOnce(&mut CellResult)) -> Run {
        let mut new = base();
        new.meta.id = "01".to_owned();
        new.meta.started_at = "2026-01-01T00:00:01Z".to_owned();
        edit(&mut new.cells[0]);
        new
    }

    fn compared(new: &Run) -> Comparison {
        compare(&base(), new, &[], &Thresholds::default())
    }

    fn the<'a>(c: &'a Comparison, metric: &str) -> &'a Change {
        c.changes.iter().find(|ch| ch.cell == "spsc/channel" && ch.metric == metric).expect("the change is listed")
    }

    #[test]
    fn a_run_compared_with_itself_changes_nothing() {
        let c = compare(&base(), &base(), &[], &Thresholds::default());
        assert_eq!(c.changes.len(), 2 * compared_metrics().count());
        assert!(c.significant().is_empty(), "{:?}", c.significant());
        assert!(!c.has_regression());
        assert!(c.unmatched.is_empty() && c.missing.is_empty());
        let t = the(&c, "throughput");
        assert_eq!((t.ratio, t.p_value, t.method), (1.0, Some(1.0), Method::MannWhitney));
    }

    #[test]
    fn ten_percent_more_instructions_is_a_regression() {
        let c = compared(&doctored(|c| c.instructions.as_mut().expect("measured").ir_per_event *= 1.10));
        let ch = the(&c, "instructions-per-event");
        assert_eq!((ch.verdict, ch.method, ch.threshold), (Verdict::Regression, Method::Deterministic, 0.01));
        assert!((ch.relative() - 0.10).abs() < 1e-12);
        assert!(c.has_regression());
        assert_eq!(c.significant().len(), 1);
    }

    #[test]
    fn half_a_percent_more_instructions_is_noise() {
        let c = compared(&doctored(|c| c.instructions.as_mut().expect("measured").ir_per_event *= 1.005));
        assert_eq!(the(&c, "instructions-per-event").verdict, Verdict::Noise);
        assert!(!c.has_regression());
    }

    #[test]
    fn fewer_instructions_is_an_improvement() {
        let c = compared(&doctored(|c| c.instructions.as_mut().expect("measured").est_cycles_per_event *= 0.9));
        assert_eq!(the(&c, "est-cycles-per-event").verdict, Verdict::Improvement);
        assert!(!c.has_regression());
    }

    #[test]
    fn the_threshold_is_configurable_per_metric() {
        let new = doctored(|c| c.instructions.as_mut().expect("measured").ir_per_event *= 1.10);
        let mut config = Thresholds::default();
        config.per_metric.insert("instructions-per-event".to_owned(), 0.2);
        let c = compare(&base(), &new, &[], &config);
        assert_eq!(the(&c, "instructions-per-event").verdict, Verdict::Noise);
        assert_eq!(the(&c, "instructions-per-event").threshold, 0.2);
    }

    #[test]
    fn multithreaded_instruction_counts_use_the_wider_threshold() {
        let grow = |factor: f64| {
            doctored(move |c| {
                let i = c.instructions.as_mut().expect("measured");
                i.ir_per_event *= factor;
                i.multithreaded = true;
            })
        };
        let c = compared(&grow(1.03));
        let ch = the(&c, "instructions-per-event");
        assert_eq!((ch.verdict, ch.method, ch.threshold), (Verdict::Noise, Method::Multithreaded, 0.05));
        assert_eq!(the(&compared(&grow(1.06)), "instructions-per-event").verdict, Verdict::Regression);
        // The allocation metrics of the same cell stay deterministic.
        assert_eq!(the(&c, "allocs-per-event").method, Method::Deterministic);
    }

    #[test]
    fn the_deterministic_gate_admits_counts_of_single_threaded_cells_only() {
        // Single-threaded: 10% more instructions passes both gates.
        let c = compared(&doctored(|c| c.instructions.as_mut().expect("measured").ir_per_event *= 1.10));
        assert_eq!(c.gated(Gate::All).count(), 1);
        assert_eq!(c.gated(Gate::Deterministic).count(), 1);
        assert!(the(&c, "instructions-per-event").is_deterministic());
        // Simulated cache and branch figures move with addresses: reported,
        // not gated.
        let c = compared(&doctored(|c| c.instructions.as_mut().expect("measured").branch_misses_per_event *= 1.10));
        assert_eq!((c.gated(Gate::All).count(), c.gated(Gate::Deterministic).count()), (1, 0));
        // And their default threshold is 5%, even in a single-threaded cell.
        let c = compared(&doctored(|c| c.instructions.as_mut().expect("measured").branch_misses_per_event *= 1.03));
        assert_eq!((the(&c, "branch-misses-per-event").threshold, c.count(Verdict::Regression)), (0.05, 0));
        // A multi-threaded cell: its instruction and allocation regressions
        // are reported, and fail only the `all` gate.
        let threads = doctored(|c| {
            let i = c.instructions.as_mut().expect("measured");
            i.ir_per_event *= 1.10;
            i.multithreaded = true;
            c.allocations.as_mut().expect("measured").allocs_per_event = 0.02;
        });
        let c = compared(&threads);
        assert_eq!(c.count(Verdict::Regression), 2);
        assert_eq!(c.gated(Gate::All).count(), 2);
        assert_eq!(c.gated(Gate::Deterministic).count(), 0);
        let allocs = the(&c, "allocs-per-event");
        assert_eq!((allocs.method, allocs.multithreaded), (Method::Deterministic, true));
        // Wall-clock regressions never pass the deterministic gate.
        let slower = compared(&doctored(|c| c.throughput.as_mut().expect("measured").events_per_sec = trials(2.8e6)));
        assert_eq!((slower.gated(Gate::All).count(), slower.gated(Gate::Deterministic).count()), (1, 0));
        assert_eq!(Gate::ALL.map(Gate::name), ["all", "deterministic"]);
    }

    #[test]
    fn any_allocation_from_zero_is_a_regression() {
        let c = compared(&doctored(|c| c.allocations.as_mut().expect("measured").allocs_per_event = 0.01));
        let ch = the(&c, "allocs-per-event");
        assert_eq!(ch.verdict, Verdict::Regression);
        assert!(ch.ratio.is_infinite());
        // And back to zero is an improvement.
        let back = compare(&c_run_with_allocs(0.01), &base(), &[], &Thresholds::default());
        assert_eq!(the(&back, "allocs-per-event").verdict, Verdict::Improvement);
    }

    fn c_run_with_allocs(allocs: f64) -> Run {
        doctored(|c| c.allocations.as_mut().expect("measured").allocs_per_event = allocs)
    }

    #[test]
    fn throughput_shifted_by_twenty_percent_is_significant() {
        let slower = compared(&doctored(|c| c.throughput.as_mut().expect("measured").events_per_sec = trials(2.8e6)));
        let ch = the(&slower, "throughput");
        assert_eq!((ch.verdict, ch.method), (Verdict::Regression, Method::MannWhitney));
        assert!(ch.p_value.is_some_and(|p| p < 0.001), "{ch:?}");
        assert_eq!((ch.threshold, ch.history), (0.05, 0));
        let faster = compared(&doctored(|c| c.throughput.as_mut().expect("measured").events_per_sec = trials(4.2e6)));
        assert_eq!(the(&faster, "throughput").verdict, Verdict::Improvement);
    }

    /// Throughput measured in one probe process per median of
    /// `medians`, three tight trials each (±0.5%).
    fn by_processes(c: &mut CellResult, medians: &[f64]) {
        let samples: Vec<f64> = medians.iter().flat_map(|m| [m * 0.995, *m, m * 1.005]).collect();
        let t = c.throughput.as_mut().expect("measured");
        t.events_per_sec = Estimate { median: stats::median(medians).expect("some"), lower: 0.0, upper: 0.0, samples };
        t.processes = vec![3; medians.len()];
    }

    #[test]
    fn throughput_of_runs_with_processes_is_judged_by_the_interval_over_process_medians() {
        let mut base = base();
        by_processes(&mut base.cells[0], &[3.43e6, 3.5e6, 3.57e6]);
        let judged = |medians: &'static [f64]| {
            let new = doctored(|c| by_processes(c, medians));
            let c = compare(&base, &new, &[], &Thresholds::default());
            the(&c, "throughput").clone()
        };
        // 15% slower in every process: the whole interval is beyond the band.
        let ch = judged(&[2.92e6, 2.975e6, 3.03e6]);
        assert_eq!((ch.verdict, ch.method, ch.p_value), (Verdict::Regression, Method::ProcessInterval, None));
        let (lower, upper) = ch.interval.expect("an interval");
        assert!(lower > 0.8 && upper < 0.9 && lower < ch.ratio && ch.ratio < upper, "{ch:?}");
        assert_eq!(judged(&[4.0e6, 4.1e6, 4.2e6]).verdict, Verdict::Improvement);
        // Every new trial is below every base trial, so Mann–Whitney on the
        // pooled trials calls it significant; but the processes spread
        // widely and three of them cannot tell a change from that spread.
        let spread: &'static [f64] = &[2.4e6, 2.9e6, 3.3e6];
        let ch = judged(spread);
        assert_eq!((ch.verdict, ch.method), (Verdict::Noise, Method::ProcessInterval), "{ch:?}");
        let (lower, upper) = ch.interval.expect("an interval");
        assert!(lower < 1.0 && upper > 1.0, "{ch:?}");
        let pooled = |c: &CellResult| c.throughput.as_ref().expect("measured").events_per_sec.samples.clone();
        let new = doctored(|c| by_processes(c, spread));
        let mwu = stats::mann_whitney_u(&pooled(&base.cells[0]), &pooled(&new.cells[0])).expect("a test");
        assert!(mwu.p_value < 0.01, "the pooled trials look significant: {}", mwu.p_value);
        // A run measured in one process keeps the earlier rule.
        let one = doctored(|c| by_processes(c, &[2.975e6]));
        let ch =
            compare(&base, &one, &[], &Thresholds::default()).changes.into_iter().find(|c| c.metric == "throughput");
        assert_eq!(ch.expect("listed").method, Method::MannWhitney);
    }

    #[test]
    fn throughput_within_the_noise_band_or_not_significant_is_noise() {
        // Separated samples, but only 2% apart: below the 5% band.
        let small = compared(&doctored(|c| c.throughput.as_mut().expect("measured").events_per_sec = trials(3.43e6)));
        let ch = the(&small, "throughput");
        assert!(ch.p_value.is_some_and(|p| p < 0.01));
        assert_eq!(ch.verdict, Verdict::Noise);
        // Medians 20% apart, but the samples overlap: not significant.
        let wide = doctored(|c| {
            let s = vec![1.0e6, 2.0e6, 2.6e6, 2.8e6, 3.6e6, 4.0e6, 5.0e6];
            c.throughput.as_mut().expect("measured").events_per_sec =
                Estimate { median: 2.8e6, lower: 2.0e6, upper: 4.0e6, samples: s };
        });
        let ch = compared(&wide).changes.into_iter().find(|c| c.metric == "throughput").expect("listed");
        assert!(ch.p_value.is_some_and(|p| p > 0.01), "{ch:?}");
        assert_eq!(ch.verdict, Verdict::Noise);
        // Three trials a side can never be significant.
        let quick = |median: f64| Estimate {
            median,
            lower: median,
            upper: median,
            samples: vec![median * 0.99, median, median * 1.01],
        };
        let mut b = base();
        b.cells[0].throughput.as_mut().expect("measured").events_per_sec = quick(3.5e6);
        let n = doctored(|c| c.throughput.as_mut().expect("measured").events_per_sec = quick(2.0e6));
        let c = compare(&b, &n, &[], &Thresholds::default());
        assert_eq!(the(&c, "throughput").p_value, Some(0.1));
        assert_eq!(the(&c, "throughput").verdict, Verdict::Noise);
    }

    #[test]
    fn latency_is_judged_by_the_noise_band_alone() {
        let c = compared(&doctored(|c| c.latency = vec![latency(360)]));
        for metric in ["latency-p50", "latency-p99", "latency-p999"] {
            let ch = the(&c, metric);
            assert_eq!((ch.verdict, ch.method, ch.p_value), (Verdict::Regression, Method::NoiseBand, None), "{metric}");
        }
        let c = compared(&doctored(|c| c.latency = vec![latency(247)]));
        assert_eq!(the(&c, "latency-p50").verdict, Verdict::Noise, "3% is inside the 5% band");
    }

    /// The headline entry of [`latency`] with one repetition per p99 in
    /// `p99s` (p50 and p99.9 in proportion), its headline p99 their median.
    fn repeated(p99s: &[u64]) -> Latency {
        let repetitions: Vec<LatencyRepetition> = p99s
            .iter()
            .map(|&p99| LatencyRepetition {
                p50_ns: p99 / 5,
                p99_ns: p99,
                p999_ns: p99 * 12 / 5,
                count: 50_000,
                misses: 0,
            })
            .collect();
        let mut sorted = p99s.to_vec();
        sorted.sort_unstable();
        let p99 = sorted[sorted.len() / 2];
        Latency { p99_ns: p99, p999_ns: p99 * 12 / 5, repetitions, ..latency(p99 / 5) }
    }

    /// A pair of runs whose channel cell has these repetitions' p99s.
    fn tail_pair(base_p99s: &[u64], new_p99s: &[u64]) -> Comparison {
        let mut b = base();
        b.cells[0].latency = vec![repeated(base_p99s)];
        let n = doctored(|c| c.latency = vec![repeated(new_p99s)]);
        compare(&b, &n, &[], &Thresholds::default())
    }

    #[test]
    fn a_thirty_percent_tail_with_tight_repetitions_is_a_regression() {
        let c = tail_pair(&[1000, 1010, 990], &[1300, 1310, 1290]);
        for metric in ["latency-p99", "latency-p999"] {
            let ch = the(&c, metric);
            assert_eq!((ch.verdict, ch.method), (Verdict::Regression, Method::TailInterval), "{ch:?}");
            let (lower, upper) = ch.interval.expect("an interval");
            assert!(lower > 1.05 && lower < 1.3 && upper > 1.3 && upper < 1.4, "{ch:?}");
        }
        let median = the(&c, "latency-p50");
        assert_eq!((median.method, median.verdict), (Method::TailInterval, Verdict::Regression), "{median:?}");
        let text = crate::render::text::text(&c);
        assert!(text.contains("95% interval ["), "compare shows the interval: {text}");
        assert!(
            text.contains("tail-latency gate: 2 p99/p99.9 changes by the 95% interval of the change, 2 flagged"),
            "{text}"
        );
        let wide = crate::render::text::markdown(&tail_pair(&[600, 1000, 1400], &[800, 1300, 1800]));
        assert!(wide.contains("0 flagged; largest within noise: spsc/channel latency-p99"), "{wide}");
        assert!(wide.contains(" +30.0% [") && wide.contains("2 by the noise band only"), "{wide}");
        // And back down is an improvement.
        let back = tail_pair(&[1300, 1310, 1290], &[1000, 1010, 990]);
        assert_eq!(the(&back, "latency-p99").verdict, Verdict::Improvement);
    }

    /// A load of the repetitions `p99s` offered `rate` events/s.
    fn offered(rate: f64, p99s: &[u64]) -> Latency {
        Latency { offered_per_sec: rate, ..repeated(p99s) }
    }

    /// When the new run's headline rate moved, its latency is compared at
    /// the baseline's rate, not at its own.
    #[test]
    fn latency_is_compared_at_the_baselines_headline_rate() {
        let mut b = base();
        b.cells[0].headline_rate = Some(1e6);
        b.cells[0].latency = vec![offered(1e6, &[1000, 1010, 990]), offered(2e6, &[5000, 5050, 4950])];
        // Same latencies at each rate; the new run's headline moved up to 2 M.
        let n = doctored(|c| {
            c.headline_rate = Some(2e6);
            c.latency = vec![offered(1e6, &[1000, 1010, 990]), offered(2e6, &[5000, 5050, 4950])];
        });
        let c = compare(&b, &n, &[], &Thresholds::default());
        let ch = the(&c, "latency-p99");
        assert_eq!((ch.base, ch.new, ch.verdict), (1000.0, 1000.0, Verdict::Noise), "{ch:?}");
        // Without a load at the baseline's rate, the metric is not compared, and the text says why.
        let n = doctored(|c| {
            c.headline_rate = Some(2e6);
            c.latency = vec![offered(2e6, &[5000, 5050, 4950])];
        });
        let c = compare(&b, &n, &[], &Thresholds::default());
        let channel_latency = |ch: &&Change| ch.cell == "spsc/channel" && ch.metric.starts_with("latency");
        assert!(!c.changes.iter().any(|ch| channel_latency(&ch)), "{:?}", c.changes);
        let missing = c.missing.iter().find(|m| m.metric == "latency-p99").expect("not compared");
        assert_eq!((missing.in_base, missing.at_rate), (true, Some(1e6)));
        let text = crate::render::text::text(&c);
        assert!(text.contains("kept no load at the baseline's headline rate (1.00 M events/s)"), "{text}");
    }

    #[test]
    fn the_same_thirty_percent_with_wide_repetitions_is_noise() {
        // Medians 1000 → 1300 as above, but the processes spread by ±40%.
        let c = tail_pair(&[600, 1000, 1400], &[800, 1300, 1800]);
        let ch = the(&c, "latency-p99");
        assert_eq!((ch.method, ch.verdict), (Method::TailInterval, Verdict::Noise), "{ch:?}");
        assert!((ch.ratio - 1.3).abs() < 1e-9, "the headline still moved 30%: {ch:?}");
        let (lower, upper) = ch.interval.expect("an interval");
        assert!(lower < 1.0 + ch.threshold && upper > 1.3, "{ch:?}");
        // The noise band alone would have flagged it.
        let mut b = base();
        b.cells[0].latency = vec![Latency { repetitions: Vec::new(), ..repeated(&[600, 1000, 1400]) }];
        let n = doctored(|c| c.latency = vec![Latency { repetitions: Vec::new(), ..repeated(&[800, 1300, 1800]) }]);
        let old = compare(&b, &n, &[], &Thresholds::default());
        assert_eq!(
            (the(&old, "latency-p99").method, the(&old, "latency-p99").verdict),
            (Method::NoiseBand, Verdict::Regression)
        );
    }

    #[test]
    fn runs_without_repetitions_fall_back_to_the_noise_band() {
        // The base run is from before repetitions; the new run has them.
        let n = doctored(|c| c.latency = vec![repeated(&[1300, 1310, 1290])]);
        let c = compared(&n);
        let ch = the(&c, "latency-p99");
        assert_eq!((ch.method, ch.verdict, ch.interval), (Method::NoiseBand, Verdict::Regression, None));
        let text = crate::render::text::text(&c);
        assert!(text.contains("noise band only (no repetitions)"), "{text}");
        assert!(
            text.contains("0 p99/p99.9 changes by the 95% interval of the change, 0 flagged; 4 by the noise band only"),
            "{text}"
        );
        // One repetition a side is no interval either.
        let c = tail_pair(&[1000], &[1300]);
        assert_eq!(the(&c, "latency-p99").method, Method::NoiseBand);
        // A repetition whose p99 fell among a lossy bus's misses: no interval.
        let mut lost = repeated(&[1300, 1310, 1290]);
        lost.repetitions[1].misses = lost.repetitions[1].count;
        let c = compared(&doctored(|c| c.latency = vec![lost]));
        assert_eq!(the(&c, "latency-p99").method, Method::NoiseBand);
    }

    /// A/A: both runs' repetitions drawn from one log-normal distribution
    /// (CV 10% or 30% between processes, 3 repetitions a side, seeded): the
    /// gate flags at most 5% of the pairs (its interval must miss 1 and
    /// the band, so far fewer are expected).
    #[test]
    fn a_a_pairs_of_one_distribution_are_not_flagged() {
        let mut rng = fastrand::Rng::with_seed(13);
        let mut normal = move || {
            let (u1, u2) = (rng.f64().max(1e-300), rng.f64());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        };
        for cv in [0.1, 0.3] {
            let pairs = 1_000;
            let mut draw = || -> Vec<u64> { (0..3).map(|_| (10_000.0 * (cv * normal()).exp()) as u64).collect() };
            let flagged = (0..pairs)
                .filter(|_| {
                    let c = tail_pair(&draw(), &draw());
                    let ch = the(&c, "latency-p99");
                    assert_eq!(ch.method, Method::TailInterval);
                    ch.is_significant()
                })
                .count();
            eprintln!("CV {cv}: {flagged} of {pairs} A/A pairs flagged");
            assert!(flagged * 20 <= pairs, "CV {cv}: {flagged} of {pairs} A/A pairs flagged");
        }
    }

    /// Runs 10..10+n whose channel throughput alternates ±`swing` around
    /// 3.5e6, with tight samples each.
    fn history(n: usize, swing: f64) -> Vec<Run> {
        (0..n)
            .map(|i| {
                let mut r = base();
                r.meta.id = format!("h{i:02}");
                r.meta.started_at = format!("2025-12-31T00:00:{i:02}Z");
                let median = 3.5e6 * if i % 2 == 0 { 1.0 + swing } else { 1.0 - swing };
                r.cells[0].throughput.as_mut().expect("measured").events_per_sec = trials(median);
                r
            })
            .collect()
    }

    #[test]
    fn the_noise_band_is_learned_from_ten_runs_of_history() {
        // 15% slower, tight samples: a regression against the default band.
        let new = doctored(|c| c.throughput.as_mut().expect("measured").events_per_sec = trials(2.975e6));
        assert_eq!(the(&compared(&new), "throughput").verdict, Verdict::Regression);
        // A history that swings ±10% between runs: a change of 15% is within
        // its noise.
        let past = history(12, 0.10);
        let c = compare(&base(), &new, &past, &Thresholds::default());
        let ch = the(&c, "throughput");
        assert_eq!(c.history_runs, 12);
        // 12 past runs plus the base: 12 consecutive changes.
        assert_eq!(ch.history, 12);
        assert!(ch.threshold > 0.15, "{ch:?}");
        assert_eq!(ch.verdict, Verdict::Noise);
        // A band from a quiet history is narrower than the default.
        let quiet = compare(&base(), &new, &history(12, 0.001), &Thresholds::default());
        let ch = the(&quiet, "throughput");
        assert!(ch.threshold < 0.01, "{ch:?}");
        assert_eq!(ch.verdict, Verdict::Regression);
        // With 8 past runs (9 with the base) the default band applies.
        let short = compare(&base(), &new, &history(8, 0.10), &Thresholds::default());
        let ch = the(&short, "throughput");
        assert_eq!((ch.threshold, ch.history, ch.verdict), (0.05, 0, Verdict::Regression));
        // The band is per cell: the other cell has a quiet history.
        let other = c.changes.iter().find(|c| c.cell == "spsc/fixed_array" && c.metric == "throughput");
        assert!(other.is_some_and(|o| o.history == 12 && o.threshold < 0.01), "{other:?}");
    }

    #[test]
    fn the_noise_band_keeps_the_last_thirty_changes() {
        // 40 loud runs then 31 quiet ones: only the quiet changes count
        // (the last loud-to-quiet step falls out of the window).
        let mut past = history(40, 0.10);
        for (i, mut r) in history(31, 0.0).into_iter().enumerate() {
            r.meta.id = format!("q{i:02}");
            r.meta.started_at = format!("2026-01-01T00:00:00.{i:02}Z");
            r.cells[0].throughput.as_mut().expect("measured").events_per_sec = trials(3.5e6);
            past.push(r);
        }
        let new = doctored(|c| c.throughput.as_mut().expect("measured").events_per_sec = trials(3.3e6));
        let c = compare(&base(), &new, &past, &Thresholds::default());
        let ch = the(&c, "throughput");
        assert_eq!(ch.history, 30);
        assert_eq!(ch.threshold, 0.0);
        assert_eq!(ch.verdict, Verdict::Regression);
    }

    #[test]
    fn cells_are_matched_by_name_and_must_be_ok_in_both_runs() {
        let mut new = doctored(|c| c.status = CellStatus::Failed("delivered 9 of 10".to_owned()));
        new.cells[1].key.bus = "pooled".to_owned();
        new.cells[1].instructions = None;
        new.cells.push(cell("ring_buffer"));
        new.cells[2].allocations = None;
        let mut b = base();
        b.cells.push(cell("ring_buffer"));
        let c = compare(&b, &new, &[], &Thresholds::default());
        assert_eq!(
            c.unmatched,
            vec![
                Unmatched::OnlyInBase { cell: "spsc/fixed_array".to_owned() },
                Unmatched::NotOk {
                    cell: "spsc/channel".to_owned(),
                    base: CellStatus::Ok,
                    new: CellStatus::Failed("delivered 9 of 10".to_owned()),
                },
                Unmatched::OnlyInNew { cell: "spsc/pooled".to_owned() },
            ]
        );
        assert!(c.changes.iter().all(|ch| ch.cell == "spsc/ring_buffer"));
        assert_eq!(c.changes.len(), compared_metrics().count() - 2);
        assert_eq!(c.missing.len(), 2);
        assert!(c.missing.iter().all(|m| m.in_base && m.cell == "spsc/ring_buffer"));
        assert_eq!(c.cells_compared(), 1);
        assert!(!c.has_regression(), "a failed cell is listed, not judged");
    }

    const WALL_CLOCK: [&str; 5] = ["throughput", "cpu-time-per-event", "latency-p50", "latency-p99", "latency-p999"];

    #[test]
    fn wall_clock_metrics_of_cells_measured_on_other_machines_are_not_compared() {
        // The channel cell came from a shard measured on another machine,
        // 40% slower there, with 10% more instructions.
        let new = doctored(|c| {
            c.machine = Some("box-b".to_owned());
            c.throughput.as_mut().expect("measured").events_per_sec = trials(2.1e6);
            c.latency = vec![latency(480)];
            c.instructions.as_mut().expect("measured").ir_per_event *= 1.10;
        });
        let c = compared(&new);
        assert_eq!(
            c.other_machine,
            vec![OtherMachine { cell: "spsc/channel".to_owned(), base: String::new(), new: "box-b".to_owned() }]
        );
        let channel: Vec<&Change> = c.changes.iter().filter(|ch| ch.cell == "spsc/channel").collect();
        assert!(channel.iter().all(|ch| !WALL_CLOCK.contains(&ch.metric)), "{channel:?}");
        assert_eq!(channel.len(), compared_metrics().count() - WALL_CLOCK.len());
        assert_eq!(the(&c, "instructions-per-event").verdict, Verdict::Regression, "counts are still judged");
        assert_eq!(c.count(Verdict::Regression), 1);
        // The other cell, measured on the run's machine in both, is compared in full.
        assert_eq!(c.changes.iter().filter(|ch| ch.cell == "spsc/fixed_array").count(), compared_metrics().count());
        // Naming the run's own machine is the same as naming none.
        let same = doctored(|c| c.machine = Some(String::new()));
        assert!(compared(&same).other_machine.is_empty());
        // Whole runs on different machines: no wall-clock metric compared.
        let mut elsewhere = doctored(|_| {});
        elsewhere.meta.machine = "box-b".to_owned();
        let c = compared(&elsewhere);
        assert_eq!(c.other_machine.len(), 2);
        assert!(c.changes.iter().all(|ch| !WALL_CLOCK.contains(&ch.metric)));
        assert!(!c.changes.is_empty() && c.significant().is_empty());
    }

    #[test]
    fn the_noise_band_learns_only_from_the_compared_machine() {
        let new = doctored(|c| c.throughput.as_mut().expect("measured").events_per_sec = trials(2.975e6));
        // Twelve loud past runs, but made on another machine: not this
        // cell's noise, so the default band applies and 15% is a regression.
        let mut past = history(12, 0.10);
        for r in &mut past {
            r.meta.machine = "box-b".to_owned();
        }
        let ch = the(&compare(&base(), &new, &past, &Thresholds::default()), "throughput").clone();
        assert_eq!((ch.history, ch.threshold, ch.verdict), (0, 0.05, Verdict::Regression));
        // The same runs with their cells measured here (a shard imported
        // from this machine) count.
        for r in &mut past {
            r.cells[0].machine = Some(String::new());
        }
        let ch = the(&compare(&base(), &new, &past, &Thresholds::default()), "throughput").clone();
        assert_eq!((ch.history, ch.verdict), (12, Verdict::Noise));
    }

    #[test]
    fn burst_cells_compare_their_single_latency_entry() {
        let burst = |p50: u64| {
            let mut c = cell("ring");
            c.latency = vec![Latency { load: 0.0, ..latency(p50) }];
            c
        };
        let c = compare(&run("00", vec![burst(900)]), &run("01", vec![burst(1800)]), &[], &Thresholds::default());
        let ch = c.changes.iter().find(|c| c.metric == "latency-p99").expect("the burst entry is compared");
        assert_eq!(ch.verdict, Verdict::Regression);
    }

    #[test]
    fn runs_of_different_methodologies_are_never_compared() {
        let base = run("01", vec![cell("fixed_array")]);
        let mut new = run("02", vec![cell("fixed_array")]);
        new.cells[0].instructions.as_mut().expect("measured").ir_per_event *= 2.0;
        assert!(compare(&base, &new, &[], &Thresholds::default()).has_regression(), "same method: judged");
        new.meta.methodology = base.meta.methodology + 1;
        let c = compare(&base, &new, &[], &Thresholds::default());
        assert!(c.changes.is_empty() && !c.has_regression(), "{c:?}");
        assert_eq!(c.methodology_break, Some((base.meta.methodology, new.meta.methodology)));
        assert!(crate::render::text::text(&c).contains("methodology"), "the break is said");
    }
}
