//! The report model: what one run says, computed once, which the HTML
//! pages and the terminal summary only format.
//!
//! [`report`] builds the whole model of a report, [`Report`]: this run's
//! [`Analysis`], the guide's claims, the trends over the history (the
//! change points), the comparison with the baseline (the regression rule),
//! the noise calibration and the intervals' simulated coverage. Nothing
//! that renders a page computes a judgement of its own.
//!
//! - [`Analysis::groups`]: the [verdict matrix](crate::analysis::verdicts);
//! - [`Analysis::recommendations`]: the first screen's answer, one
//!   [recommendation](crate::analysis::recommend) per scenario point under the
//!   default [`Constraints`];
//! - [`Analysis::decisions`]: the same for every combination of the
//!   decision guide's questions;
//! - [`Analysis::heat_map`]: delivered events/s of every scenario point ×
//!   bus relative to the point's best lossless bus ([`heat_map`]).

pub mod changepoints;
pub mod guide;
pub mod heat_map;
pub mod levers;
pub mod noise;
pub mod recommend;
pub mod regression;
pub mod stats;
pub mod trends;
pub mod verdicts;

use buslab_scenarios::results::{Run, RunMeta};
use guide::Guide;
use heat_map::HeatMap;
use noise::Calibration;
use recommend::{Constraints, Recommendation, Recommender};
use regression::{COMPARE_HISTORY, Comparison, Thresholds};
use serde::Serialize;
use std::collections::BTreeMap;
use trends::Trend;
use verdicts::Group;

/// One run's analysis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analysis {
    /// The verdict matrix.
    pub groups: Vec<Group>,
    /// One recommendation per scenario point under the default
    /// constraints, the engineer's own scenarios first.
    pub recommendations: Vec<Recommendation>,
    /// Per [`Constraints::mask`], the recommendations under those
    /// constraints (in the order of `recommendations`).
    pub decisions: Vec<Vec<Recommendation>>,
    /// The heat map of the first screen.
    pub heat_map: HeatMap,
}

/// What a report is made from: the runs the store holds (the harness
/// picks them; nothing here reads a store).
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The run the report is about, loaded whole (folded stacks and
    /// histograms included).
    pub run: &'a Run,
    /// Runs on the same machine up to and including `run`, oldest first;
    /// may be light (without folded stacks and histograms). Empty or just
    /// `run` when there is no history.
    pub history: &'a [Run],
    /// The baseline run (loaded whole), for differential flame graphs and
    /// the comparison.
    pub baseline: Option<&'a Run>,
    /// The runs of the latest noise group (A/A runs of `buslab noise`);
    /// calibrated when there are two or more, all on the run's machine.
    pub noise: &'a [Run],
    /// The regression rule's knobs.
    pub thresholds: &'a Thresholds,
}

/// Everything a report shows, computed once by [`report`].
#[derive(Clone, Debug)]
pub struct Report<'a> {
    /// The run the report is about.
    pub run: &'a Run,
    /// The baseline run.
    pub baseline: Option<&'a Run>,
    /// How many runs of history the report was given (at least 1: the run).
    pub history_runs: usize,
    /// The run's verdicts, recommendations and heat map.
    pub analysis: Analysis,
    /// The guide's claims per scenario point.
    pub guide: Guide,
    /// Every cell's metrics over the history (the run included), by cell name.
    pub trends: BTreeMap<String, Vec<Trend>>,
    /// How many runs the trends cover.
    pub trend_runs: usize,
    /// The run against its baseline, over the history before the baseline.
    pub comparison: Option<Comparison>,
    /// The latest noise calibration on the run's machine.
    pub noise: Option<Calibration>,
    /// The simulated coverage of the run's throughput intervals
    /// ([`interval_coverage`]).
    pub coverage: Option<(f64, f64)>,
    /// The same for the baseline.
    pub baseline_coverage: Option<(f64, f64)>,
}

/// Builds the model of the report of `input`: every analysis, once.
pub fn report<'a>(input: &Input<'a>) -> Report<'a> {
    let run = input.run;
    let analysis = analyse(run, input.thresholds);
    let guide = guide::guide(run, &analysis.groups);
    // The history with the run at its end (appended when the caller's
    // history does not end with it).
    let mut history: Vec<&Run> = input.history.iter().collect();
    if history.last().is_none_or(|r| r.meta.id != run.meta.id) {
        history.retain(|r| r.meta.id != run.meta.id);
        history.push(run);
    }
    let owned: Vec<Run>;
    let history: &[Run] = if history.len() == input.history.len() {
        input.history
    } else {
        owned = history.into_iter().cloned().collect();
        &owned
    };
    let names: Vec<String> = run.cells.iter().map(|c| c.key.name()).collect();
    let trends = trends::trends(history, &names, input.thresholds);
    let comparison = input.baseline.map(|base| {
        // The comparison's history: the runs before the baseline.
        let before = history.iter().position(|r| r.meta.id == base.meta.id).unwrap_or(history.len() - 1);
        let past = &history[..before];
        let past = &past[past.len().saturating_sub(COMPARE_HISTORY)..];
        regression::compare(base, run, past, input.thresholds)
    });
    let calibrated = input.noise.len() >= 2 && input.noise.iter().all(|r| r.meta.machine == run.meta.machine);
    Report {
        run,
        baseline: input.baseline,
        history_runs: input.history.len().max(1),
        analysis,
        guide,
        trends,
        trend_runs: history.len(),
        comparison,
        noise: calibrated.then(|| noise::calibrate(input.noise, input.thresholds)),
        coverage: interval_coverage(&run.meta),
        baseline_coverage: input.baseline.and_then(|b| interval_coverage(&b.meta)),
    }
}

/// The lowest and highest share of simulated cells in which a nominal 95%
/// throughput interval held the true median, at the run's processes and
/// every trials count it used ([`stats::coverage_range`]); `None` for a
/// run before repetitions.
pub fn interval_coverage(meta: &RunMeta) -> Option<(f64, f64)> {
    let (Some(processes), Some(trials)) = (meta.processes, meta.trials) else { return None };
    let counts = std::iter::once(trials).chain(meta.chosen_trials.values().map(|c| c.trials));
    Some(
        counts
            .map(|t| stats::coverage_range(processes as usize, t as usize, 500))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (l, h)| (lo.min(l), hi.max(h))),
    )
}

/// Analyses `run`: the verdicts, recommendations and heat map.
pub fn analyse(run: &Run, thresholds: &Thresholds) -> Analysis {
    let groups = verdicts::matrix(run, thresholds);
    let recommender = Recommender::new(run, thresholds);
    let decisions: Vec<Vec<Recommendation>> =
        (0..Constraints::COMBINATIONS).map(|m| recommender.all(&groups, Constraints::from_mask(m))).collect();
    Analysis { recommendations: decisions[0].clone(), heat_map: heat_map::heat_map(run, &groups), decisions, groups }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::{CellKey, CellResult, Estimate, Throughput};

    /// A `spsc` cell of `bus` whose throughput is `median` events/s (one
    /// sample); the analysis modules' tests share it.
    pub(super) fn cell(bus: &str, median: f64) -> CellResult {
        let key = CellKey { scenario: "spsc".to_owned(), bus: bus.to_owned(), params: BTreeMap::new() };
        let mut c = CellResult::new(key, 1, 1);
        c.throughput = Some(Throughput {
            events_per_sec: Estimate { median, lower: median, upper: median, samples: vec![median] },
            ..Throughput::default()
        });
        c
    }

    #[test]
    fn the_model_compares_with_the_baseline_and_calibrates_only_on_the_runs_machine() {
        let run_of = |id: &str, machine: &str, median: f64| Run {
            meta: RunMeta { id: id.to_owned(), machine: machine.to_owned(), ..RunMeta::default() },
            cells: vec![cell("ring", median)],
        };
        let (old, base, new) = (run_of("a", "m", 100.0), run_of("b", "m", 100.0), run_of("c", "m", 50.0));
        let history = vec![old, base.clone()];
        let noise = vec![run_of("n1", "m", 100.0), run_of("n2", "m", 101.0)];
        let thresholds = Thresholds::default();
        let input =
            Input { run: &new, history: &history, baseline: Some(&base), noise: &noise, thresholds: &thresholds };
        let model = report(&input);
        let comparison = model.comparison.as_ref().expect("a baseline");
        assert_eq!((comparison.base_run.as_str(), comparison.new_run.as_str()), ("b", "c"));
        assert_eq!(comparison.history_runs, 1, "the runs before the baseline: {comparison:?}");
        assert_eq!((model.history_runs, model.trend_runs), (2, 3), "the run is appended to its history");
        assert_eq!(model.trends["spsc/ring"][0].points.len(), 3);
        assert!(model.noise.is_some());
        let elsewhere = vec![run_of("n1", "other", 100.0), run_of("n2", "m", 101.0)];
        assert!(report(&Input { noise: &elsewhere, ..input }).noise.is_none());
        assert!(report(&Input { noise: &noise[..1], baseline: None, ..input }).comparison.is_none());
    }
}
