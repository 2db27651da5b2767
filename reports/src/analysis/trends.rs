//! Trends: each metric of each cell over the stored runs, with the
//! regression rule's verdict at every run and the noise band it used.
//!
//! The verdict at run *i* is exactly what `buslab compare` would have said
//! of run *i* against run *i − 1* with the runs before as history (the last
//! [`Thresholds::history_window`] + 1 of them): the same
//! [`regression::compare`], applied along the history. A trend therefore
//! marks a regression where the nightly gate would have failed, and
//! nowhere else.
//!
//! Each trend also carries its change points ([`Trend::steps`]): where the
//! level of the metric moved over the whole history, as the step detector
//! of [`changepoints`] finds them, with the run and commit of the first
//! point at the new level. A step is never sought across a change of
//! methodology: each stretch of runs of one methodology is fitted on its
//! own. [`latest_regressions`] lists the cells whose latest step is a
//! regression (what `buslab compare` prints after its verdicts).

use crate::analysis::changepoints::{self, Penalty};
use crate::analysis::regression::{self, Metric, Thresholds, Verdict};
use buslab_scenarios::results::{CellStatus, Run};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One run's value of one metric of one cell.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// The run's id.
    pub run: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// The run's commit, if known.
    pub commit: Option<String>,
    /// The value (median for throughput).
    pub value: f64,
    /// Lower bound of the 95% CI, where there is one.
    pub lower: Option<f64>,
    /// Upper bound of the 95% CI, where there is one.
    pub upper: Option<f64>,
    /// The verdict against the run before (`None` for the first point, or
    /// when the cell was not comparable with the run before).
    pub verdict: Option<Verdict>,
    /// The relative change against the run before.
    pub relative: Option<f64>,
    /// The relative threshold or noise band the verdict used.
    pub threshold: Option<f64>,
}

/// A place in a trend where the level moved (see [`changepoints`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangePoint {
    /// The index in [`Trend::points`] of the first point at the new level.
    pub index: usize,
    /// That point's run id.
    pub run: String,
    /// That point's run start (RFC 3339).
    pub started_at: String,
    /// That point's commit, if known: where the level moved.
    pub commit: Option<String>,
    /// The level before the step (the median of its segment).
    pub before: f64,
    /// The level after the step.
    pub after: f64,
    /// `after / before − 1` (infinite for a move away from 0).
    pub relative: f64,
    /// The level moved the wrong way for the metric's direction.
    pub regression: bool,
}

/// One metric of one cell over time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trend {
    /// The metric's slug.
    pub metric: &'static str,
    /// The points, oldest first (runs where the cell was Ok and measured it).
    pub points: Vec<Point>,
    /// Where the level moved, oldest first.
    pub steps: Vec<ChangePoint>,
}

impl Trend {
    /// How many points are regressions.
    pub fn regressions(&self) -> usize {
        self.points.iter().filter(|p| p.verdict == Some(Verdict::Regression)).count()
    }

    /// How many points are improvements.
    pub fn improvements(&self) -> usize {
        self.points.iter().filter(|p| p.verdict == Some(Verdict::Improvement)).count()
    }

    /// The latest change point, when it is a regression: the level is
    /// still worse than before it.
    pub fn latest_regression(&self) -> Option<&ChangePoint> {
        self.steps.last().filter(|s| s.regression)
    }

    /// The band the latest verdict used, as absolute bounds around the
    /// latest value.
    pub fn latest_band(&self) -> Option<(f64, f64)> {
        let last = self.points.last()?;
        let t = last.threshold?;
        Some((last.value * (1.0 - t), last.value * (1.0 + t)))
    }
}

/// Every metric of every cell named in `cells` over `history` (runs on one
/// machine, oldest first): cell name → trends in [`regression::compared_metrics`]
/// order (metrics the cell never measured are left out).
pub fn trends(history: &[Run], cells: &[String], config: &Thresholds) -> BTreeMap<String, Vec<Trend>> {
    // The verdict of each (run index, cell, metric).
    let mut verdicts: Verdicts<'_> = HashMap::new();
    let window = config.history_window + 1;
    // Each run's cells are named once, not once per comparison it is in.
    let indexed: Vec<regression::Indexed<'_>> = history.iter().map(regression::Indexed::new).collect();
    let compare = |i: usize| {
        let past: Vec<&regression::Indexed<'_>> = indexed[i.saturating_sub(window + 1)..i - 1].iter().collect();
        (i, regression::compare_indexed(&indexed[i - 1], &indexed[i], &past, config))
    };
    // The comparisons are independent: spread them over the cores (never
    // more threads than cores).
    let indices: Vec<usize> = (1..history.len()).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, indices.len().max(1));
    let chunk = indices.len().div_ceil(threads).max(1);
    let comparisons: Vec<(usize, regression::Comparison)> = std::thread::scope(|scope| {
        let handles: Vec<_> = indices
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(|&i| compare(i)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a comparison panicked")).collect()
    });
    for (i, comparison) in &comparisons {
        for change in &comparison.changes {
            verdicts.insert(
                (*i, change.cell.as_str(), change.metric),
                (change.verdict, change.relative(), change.threshold),
            );
        }
    }
    series(history, cells, &verdicts)
}

/// The verdict, relative change and threshold of each (run index, cell,
/// metric) the pairwise rule judged.
type Verdicts<'a> = HashMap<(usize, &'a str, &'static str), (Verdict, f64, f64)>;

/// The trends of `cells` over `history` with the given verdicts, and
/// their change points.
fn series(history: &[Run], cells: &[String], verdicts: &Verdicts<'_>) -> BTreeMap<String, Vec<Trend>> {
    let wanted: HashMap<&str, usize> = cells.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut out: Vec<Vec<Trend>> = cells
        .iter()
        .map(|_| {
            regression::compared_metrics()
                .map(|m| Trend { metric: m.slug, points: Vec::new(), steps: Vec::new() })
                .collect()
        })
        .collect();
    // The methodology of each point's run, for the change points.
    let mut methodology: Vec<Vec<Vec<u32>>> =
        cells.iter().map(|_| regression::compared_metrics().map(|_| Vec::new()).collect()).collect();
    for (i, run) in history.iter().enumerate() {
        for cell in &run.cells {
            if cell.status != CellStatus::Ok {
                continue;
            }
            let name = cell.key.name();
            let Some(&slot) = wanted.get(name.as_str()) else { continue };
            for (m, metric) in regression::compared_metrics().enumerate() {
                let Some(reading) = metric.reading(cell) else { continue };
                let value = reading.value;
                let (lower, upper) = reading.interval.unzip();
                let judged = verdicts.get(&(i, name.as_str(), metric.slug));
                methodology[slot][m].push(run.meta.methodology);
                out[slot][m].points.push(Point {
                    run: run.meta.id.clone(),
                    started_at: run.meta.started_at.clone(),
                    commit: run.meta.git_commit.clone(),
                    value,
                    lower,
                    upper,
                    verdict: judged.map(|j| j.0),
                    relative: judged.map(|j| j.1),
                    threshold: judged.map(|j| j.2),
                });
            }
        }
    }
    // The fits are independent: spread them over the cores, as the
    // comparisons are.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, out.len().max(1));
    let chunk = out.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (part, methodology) in out.chunks_mut(chunk).zip(methodology.chunks(chunk)) {
            scope.spawn(move || {
                for (trends, methodology) in part.iter_mut().zip(methodology) {
                    for ((trend, metric), methodology) in
                        trends.iter_mut().zip(regression::compared_metrics()).zip(methodology)
                    {
                        trend.steps = change_points(metric, &trend.points, methodology, &Penalty::default());
                    }
                }
            });
        }
    });
    cells
        .iter()
        .zip(out)
        .map(|(name, trends)| (name.clone(), trends.into_iter().filter(|t| !t.points.is_empty()).collect()))
        .collect()
}

/// The change points of one metric's `points`, fitted within each stretch
/// of points of one methodology.
fn change_points(metric: &Metric, points: &[Point], methodology: &[u32], penalty: &Penalty) -> Vec<ChangePoint> {
    let mut steps = Vec::new();
    let mut start = 0;
    while start < points.len() {
        let end = start + methodology[start..].iter().take_while(|m| **m == methodology[start]).count();
        let values: Vec<f64> = points[start..end].iter().map(|p| p.value).collect();
        steps.extend(changepoints::detect(&values, penalty).into_iter().map(|step| {
            let at = &points[start + step.index];
            ChangePoint {
                index: start + step.index,
                run: at.run.clone(),
                started_at: at.started_at.clone(),
                commit: at.commit.clone(),
                before: step.before,
                after: step.after,
                relative: step.relative(),
                regression: step.is_regression(metric.higher_is_better),
            }
        }));
        start = end;
    }
    steps
}

/// A cell whose latest change point is a regression.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRegression {
    /// The cell's name.
    pub cell: String,
    /// The metric's slug.
    pub metric: &'static str,
    /// The step.
    pub step: ChangePoint,
    /// How many of the cell's points are at the new level (the step's
    /// point included).
    pub runs_since: usize,
}

/// The cells of the last run of `history` (runs on one machine, oldest
/// first; the run being judged last) whose latest change point, over
/// `history`, is a regression: the level moved the wrong way and has not
/// moved back. In cell order, then metric order.
pub fn latest_regressions(history: &[Run]) -> Vec<StepRegression> {
    let Some(last) = history.last() else { return Vec::new() };
    let cells: Vec<String> = last.cells.iter().map(|c| c.key.name()).collect();
    let trends = series(history, &cells, &HashMap::new());
    cells
        .iter()
        .flat_map(|cell| {
            trends[cell].iter().filter_map(move |t| {
                let step = t.latest_regression()?;
                Some(StepRegression {
                    cell: cell.clone(),
                    metric: t.metric,
                    step: step.clone(),
                    runs_since: t.points.len() - step.index,
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::{CellKey, CellResult, Instructions, RunMeta};

    fn run(i: usize, ir: f64) -> Run {
        let key = CellKey { scenario: "spsc".to_owned(), bus: "ring".to_owned(), params: BTreeMap::new() };
        let mut cell = CellResult::new(key, 1, 1);
        cell.instructions = Some(Instructions { ir_per_event: ir, ..Instructions::default() });
        Run {
            meta: RunMeta {
                id: format!("r{i:03}"),
                started_at: format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60),
                git_commit: Some(format!("c{i}")),
                ..RunMeta::default()
            },
            cells: vec![cell],
        }
    }

    #[test]
    fn marks_exactly_where_compare_would_fail() {
        let irs = [100.0, 100.2, 99.9, 111.0, 111.0, 99.0, 99.5];
        let history: Vec<Run> = irs.iter().enumerate().map(|(i, ir)| run(i, *ir)).collect();
        let cell = "spsc/ring".to_owned();
        let trends = trends(&history, std::slice::from_ref(&cell), &Thresholds::default());
        let ir = trends[&cell].iter().find(|t| t.metric == "instructions-per-event").expect("ir trend");
        let verdicts: Vec<Option<Verdict>> = ir.points.iter().map(|p| p.verdict).collect();
        use Verdict::*;
        assert_eq!(
            verdicts,
            [None, Some(Noise), Some(Noise), Some(Regression), Some(Noise), Some(Improvement), Some(Noise)]
        );
        assert_eq!((ir.regressions(), ir.improvements()), (1, 1));
        assert_eq!(ir.points[3].commit.as_deref(), Some("c3"));
        let (lo, hi) = ir.latest_band().expect("a band");
        assert!((lo - 99.5 * 0.99).abs() < 1e-9 && (hi - 99.5 * 1.01).abs() < 1e-9);
        // Metrics never measured (no throughput or latency pass) are left out.
        let slugs: Vec<&str> = trends[&cell].iter().map(|t| t.metric).collect();
        assert_eq!(slugs, ["instructions-per-event", "est-cycles-per-event", "branch-misses-per-event"]);
    }

    #[test]
    fn trends_carry_the_commit_where_the_level_moved() {
        // Instructions per event: a 3% rise at run 6, confirmed since.
        let irs = [100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 103.0, 103.0, 103.0, 103.0];
        let history: Vec<Run> = irs.iter().enumerate().map(|(i, ir)| run(i, *ir)).collect();
        let cell = "spsc/ring".to_owned();
        let trends = trends(&history, std::slice::from_ref(&cell), &Thresholds::default());
        let ir = trends[&cell].iter().find(|t| t.metric == "instructions-per-event").expect("ir trend");
        assert_eq!(ir.steps.len(), 1, "{:?}", ir.steps);
        let step = &ir.steps[0];
        assert_eq!((step.index, step.run.as_str(), step.commit.as_deref()), (6, "r006", Some("c6")));
        assert!((step.relative - 0.03).abs() < 1e-9 && step.regression);
        assert_eq!(ir.latest_regression(), Some(step));
        // The level moving back makes the latest step an improvement.
        let back: Vec<Run> = irs.iter().chain(&[100.0, 100.0, 100.0]).enumerate().map(|(i, ir)| run(i, *ir)).collect();
        let ir = &trends_of(&back)[0];
        assert_eq!(ir.steps.iter().map(|s| (s.index, s.regression)).collect::<Vec<_>>(), [(6, true), (10, false)]);
        assert_eq!(ir.latest_regression(), None);
    }

    fn trends_of(history: &[Run]) -> Vec<Trend> {
        let cell = "spsc/ring".to_owned();
        trends(history, std::slice::from_ref(&cell), &Thresholds::default()).remove(&cell).expect("the cell")
    }

    #[test]
    fn no_step_is_sought_across_a_methodology_change() {
        let mut history: Vec<Run> = (0..8).map(|i| run(i, if i < 4 { 100.0 } else { 150.0 })).collect();
        assert_eq!(trends_of(&history)[0].steps.len(), 1);
        for r in &mut history[4..] {
            r.meta.methodology += 1;
        }
        assert_eq!(trends_of(&history)[0].steps, []);
    }

    #[test]
    fn latest_regressions_lists_the_cells_whose_level_is_still_worse() {
        let irs = [100.0, 100.0, 100.0, 100.0, 100.0, 120.0, 120.0];
        let history: Vec<Run> = irs.iter().enumerate().map(|(i, ir)| run(i, *ir)).collect();
        let listed = latest_regressions(&history);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!((listed[0].cell.as_str(), listed[0].metric), ("spsc/ring", "instructions-per-event"));
        assert_eq!((listed[0].step.commit.as_deref(), listed[0].runs_since), (Some("c5"), 2));
        // One run at the new level is not a level yet; a fall of
        // instructions is no regression.
        assert_eq!(latest_regressions(&history[..6]), []);
        let better: Vec<Run> = irs.iter().enumerate().map(|(i, ir)| run(i, 200.0 - ir)).collect();
        assert_eq!(latest_regressions(&better), []);
        assert_eq!(latest_regressions(&[]), []);
    }

    #[test]
    fn unknown_cells_have_no_points() {
        let history = vec![run(0, 1.0)];
        let trends = trends(&history, &["nope/x".to_owned()], &Thresholds::default());
        assert!(trends["nope/x"].is_empty());
    }
}
