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
//!   bus relative to the point's best lossless bus.

pub mod changepoints;
pub mod guide;
pub mod levers;
pub mod noise;
pub mod recommend;
pub mod regression;
pub mod stats;
pub mod trends;
pub mod verdicts;

use buslab_scenarios::results::{CellResult, CellStatus, Run, RunMeta};
use guide::Guide;
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

/// What one heat-map cell shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// Ended Ok and lost nothing.
    Ok,
    /// Ended Ok but dropped deliveries.
    Lossy,
    /// Failed its delivery checks or a pass.
    Failed,
    /// Not run (a capability or the machine's cores rule it out).
    Skipped,
    /// The bus did not run at this point.
    Absent,
}

/// One scenario point × bus of the heat map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeatCell {
    /// The cell's name (empty when absent).
    pub cell: String,
    /// What the cell shows.
    pub mark: Mark,
    /// Delivered events/s (publishes × (1 − loss) for a lossy cell).
    pub delivered: Option<f64>,
    /// `delivered` ÷ the best lossless bus's delivered events/s of the point.
    pub relative: Option<f64>,
    /// The cell's latency at the headline rate was saturated (harness or
    /// bus over capacity): its state and reason.
    pub saturated: Option<String>,
    /// Why it failed or was skipped.
    pub reason: String,
    /// The point's best lossless bus.
    pub best: bool,
}

/// One scenario point of the heat map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeatRow {
    /// The scenario.
    pub scenario: String,
    /// The sweep point, or empty.
    pub label: String,
    /// One cell per [`HeatMap::buses`] entry.
    pub cells: Vec<HeatCell>,
}

/// Scenario points × buses (references left out).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeatMap {
    /// The columns: every bus that ran, in run order.
    pub buses: Vec<String>,
    /// One row per scenario point, in run order.
    pub rows: Vec<HeatRow>,
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
    Analysis { recommendations: decisions[0].clone(), heat_map: heat_map(run, &groups), decisions, groups }
}

/// The recommendations alone (what the terminal prints): cheaper than
/// [`analyse`], which adds every combination of constraints.
pub fn recommendations(run: &Run, thresholds: &Thresholds) -> Vec<Recommendation> {
    let groups = verdicts::matrix(run, thresholds);
    Recommender::new(run, thresholds).all(&groups, Constraints::default())
}

/// Delivered events/s of a cell that ended Ok with a throughput pass.
fn delivered(cell: &CellResult) -> Option<f64> {
    let t = cell.throughput.as_ref().filter(|_| cell.status == CellStatus::Ok)?;
    Some(t.events_per_sec.median * (1.0 - t.loss_rate.unwrap_or(0.0)))
}

fn heat_map(run: &Run, groups: &[Group]) -> HeatMap {
    let cells: BTreeMap<String, &CellResult> = run.cells.iter().map(|c| (c.key.name(), c)).collect();
    let mut buses: Vec<String> = Vec::new();
    for row in groups.iter().flat_map(|g| &g.rows).filter(|r| !r.reference) {
        if !buses.contains(&row.bus) {
            buses.push(row.bus.clone());
        }
    }
    let rows = groups
        .iter()
        .map(|g| {
            let best = g
                .rows
                .iter()
                .filter(|r| !r.reference && !r.lossy)
                .filter_map(|r| Some((r.bus.as_str(), delivered(cells.get(&r.cell)?)?)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let cells = buses
                .iter()
                .map(|bus| {
                    let Some(row) = g.row(bus) else {
                        return HeatCell {
                            cell: String::new(),
                            mark: Mark::Absent,
                            delivered: None,
                            relative: None,
                            saturated: None,
                            reason: String::new(),
                            best: false,
                        };
                    };
                    let cell = cells.get(&row.cell).copied();
                    let value = cell.and_then(delivered);
                    let (mark, reason) = match &row.status {
                        CellStatus::Failed(why) => (Mark::Failed, why.clone()),
                        CellStatus::Skipped(why) => (Mark::Skipped, why.clone()),
                        CellStatus::Ok if row.lossy => (Mark::Lossy, String::new()),
                        CellStatus::Ok => (Mark::Ok, String::new()),
                    };
                    let saturated = cell.and_then(|c| {
                        let l = c.latency_at_rate(c.headline_rate?)?;
                        let s = l.saturation.as_ref()?;
                        Some(format!("{}: {}", s.state(), s.reason()))
                    });
                    HeatCell {
                        cell: row.cell.clone(),
                        mark,
                        delivered: value,
                        relative: value.zip(best).map(|(v, (_, b))| if b > 0.0 { v / b } else { f64::NAN }),
                        saturated,
                        reason,
                        best: best.is_some_and(|(b, _)| b == bus) && mark == Mark::Ok,
                    }
                })
                .collect();
            HeatRow { scenario: g.scenario.clone(), label: g.label.clone(), cells }
        })
        .collect();
    HeatMap { buses, rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::{BusMeta, CellKey, Estimate, Latency, RunMeta, Saturation, Throughput};

    fn cell(bus: &str, median: f64) -> CellResult {
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

    #[test]
    fn the_heat_map_is_relative_to_the_best_lossless_bus_and_marks_the_rest() {
        let mut lossy = cell("broadcast", 1000.0);
        lossy.dropped = 10;
        lossy.throughput.as_mut().expect("set").loss_rate = Some(0.5);
        let mut failed = cell("kanal", 1.0);
        failed.status = CellStatus::Failed("lost 3 events".to_owned());
        let mut skipped = cell("rtrb", 1.0);
        skipped.status = CellStatus::Skipped("one subscriber at most".to_owned());
        let mut saturated = cell("channel", 50.0);
        saturated.headline_rate = Some(1e5);
        saturated.latency = vec![Latency {
            offered_per_sec: 1e5,
            saturation: Some(Saturation::OverCapacity("fell behind".to_owned())),
            ..Latency::default()
        }];
        let buses = ["null", "ring", "channel", "broadcast", "kanal", "rtrb"]
            .iter()
            .map(|n| BusMeta { name: (*n).to_owned(), reference: *n == "null", ..BusMeta::default() })
            .collect();
        let run = Run {
            meta: RunMeta { buses, ..RunMeta::default() },
            cells: vec![cell("null", 9000.0), cell("ring", 200.0), saturated, lossy, failed, skipped],
        };
        let map = analyse(&run, &Thresholds::default()).heat_map;
        assert_eq!(map.buses, ["ring", "channel", "broadcast", "kanal", "rtrb"], "the floor is no column");
        let row = &map.rows[0];
        let at = |bus: &str| &row.cells[map.buses.iter().position(|b| b == bus).expect("a column")];
        assert!(at("ring").best && at("ring").relative == Some(1.0));
        assert_eq!(at("channel").relative, Some(0.25));
        assert!(at("channel").saturated.as_deref().is_some_and(|s| s.contains("fell behind")));
        // The lossy bus published 1000/s but delivered half: 2.5× the best, marked, never the best.
        assert_eq!(
            (at("broadcast").mark, at("broadcast").relative, at("broadcast").best),
            (Mark::Lossy, Some(2.5), false)
        );
        assert_eq!((at("kanal").mark, at("kanal").relative), (Mark::Failed, None));
        assert_eq!(at("rtrb").mark, Mark::Skipped);
        assert_eq!(at("rtrb").reason, "one subscriber at most");
    }
}
