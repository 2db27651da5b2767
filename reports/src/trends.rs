//! Trends: each metric of each cell over the stored runs, with the
//! regression rule's verdict at every run and the noise band it used.
//!
//! The verdict at run *i* is exactly what `buslab compare` would have said
//! of run *i* against run *i − 1* with the runs before as history (the last
//! [`Thresholds::history_window`] + 1 of them): the same
//! [`regression::compare`], applied along the history. A trend therefore
//! marks a regression where the nightly gate would have failed, and
//! nowhere else.

use crate::regression::{self, Thresholds, Verdict};
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

/// One metric of one cell over time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trend {
    /// The metric's slug.
    pub metric: &'static str,
    /// The points, oldest first (runs where the cell was Ok and measured it).
    pub points: Vec<Point>,
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
    let mut verdicts: HashMap<(usize, &str, &str), (Verdict, f64, f64)> = HashMap::new();
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
    let wanted: HashMap<&str, usize> = cells.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut out: Vec<Vec<Trend>> = cells
        .iter()
        .map(|_| regression::compared_metrics().map(|m| Trend { metric: m.slug, points: Vec::new() }).collect())
        .collect();
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
    cells
        .iter()
        .zip(out)
        .map(|(name, trends)| (name.clone(), trends.into_iter().filter(|t| !t.points.is_empty()).collect()))
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
    fn unknown_cells_have_no_points() {
        let history = vec![run(0, 1.0)];
        let trends = trends(&history, &["nope/x".to_owned()], &Thresholds::default());
        assert!(trends["nope/x"].is_empty());
    }
}
