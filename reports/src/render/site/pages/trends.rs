//! `trends.html` and `trends/<slug>.html`: every cell's metrics over the
//! history, with the change points.

use super::{Writer, common, parallel};
use crate::analysis::regression::{self, Verdict};
use crate::analysis::trends::Trend;
use crate::render::format;
use crate::render::site::context::{self, Figure, cell_href, short, trend_href};
use crate::render::site::figures;
use crate::render::site::{SiteError, slug};
use buslab_scenarios::results::Run;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct TrendCell {
    latest: String,
    verdict: &'static str,
    /// The latest change point is a regression: the commit (short) where
    /// the level moved the wrong way, else empty.
    worse_at: String,
}

#[derive(Serialize)]
struct TrendRow {
    cell: String,
    href: String,
    values: Vec<Option<TrendCell>>,
    regressions: usize,
    improvements: usize,
    points: usize,
}

/// One scenario's table on the trends page: only the metrics some of its
/// cells have.
#[derive(Serialize)]
struct TrendGroup {
    scenario: String,
    metrics: Vec<&'static str>,
    rows: Vec<TrendRow>,
}

#[derive(Serialize)]
struct TrendsPage {
    runs: usize,
    groups: Vec<TrendGroup>,
    /// Cells of the run with no metric (skipped or failed).
    unmeasured: usize,
}

#[derive(Serialize)]
struct PointRow {
    run: String,
    started_at: String,
    commit: String,
    value: String,
    change: String,
    verdict: &'static str,
    threshold: String,
}

/// A change point as the trend page lists it.
#[derive(Serialize)]
struct StepRow {
    run: String,
    started_at: String,
    commit: String,
    before: String,
    after: String,
    change: String,
    regression: bool,
}

#[derive(Serialize)]
struct MetricTrend {
    slug: &'static str,
    figure: Option<Figure>,
    /// Where the level moved, newest first.
    steps: Vec<StepRow>,
    regressions: usize,
    improvements: usize,
    band: String,
    /// The latest [`TABLE_RUNS`] points, newest first.
    points: Vec<PointRow>,
    /// Runs left out of the table (they are in the chart, with tooltips).
    older: usize,
}

/// The most recent runs a trend page lists in its table; the chart shows
/// every run (hover a point for its date, commit and value).
const TABLE_RUNS: usize = 60;

#[derive(Serialize)]
struct TrendPage {
    cell: String,
    href: String,
    metrics: Vec<MetricTrend>,
}

/// The verdict of a point, as a CSS class and word.
fn verdict_of(verdict: Option<Verdict>) -> &'static str {
    verdict.map(context::verdict_name).unwrap_or("")
}

pub(super) fn pages(
    run: &Run,
    trends: &BTreeMap<String, Vec<Trend>>,
    runs: usize,
    writer: &Writer,
) -> Result<(), SiteError> {
    let metrics: Vec<&'static str> = regression::compared_metrics().map(|m| m.slug).collect();
    // One table per scenario, in run order, each with the metrics its
    // cells have: a cloudevents scenario has decode figures and no
    // latency, the others the reverse. Cells with no metric at all
    // (skipped, failed) are left out: the front page lists them.
    let mut groups: Vec<TrendGroup> = Vec::new();
    let mut unmeasured = 0;
    for cell in &run.cells {
        let name = cell.key.name();
        let cell_trends = trends.get(&name).map(Vec::as_slice).unwrap_or_default();
        if cell_trends.iter().all(|t| t.points.is_empty()) {
            unmeasured += 1;
            continue;
        }
        let row = TrendRow {
            cell: name.strip_prefix(&format!("{}/", cell.key.scenario)).unwrap_or(&name).to_owned(),
            href: trend_href("", &name),
            values: metrics
                .iter()
                .map(|m| {
                    let t = cell_trends.iter().find(|t| t.metric == *m)?;
                    let last = t.points.last()?;
                    Some(TrendCell {
                        latest: format::metric_value(m, last.value),
                        verdict: verdict_of(last.verdict),
                        worse_at: t
                            .latest_regression()
                            .map(|s| s.commit.as_deref().map(short).unwrap_or("no commit").to_owned())
                            .unwrap_or_default(),
                    })
                })
                .collect(),
            regressions: cell_trends.iter().map(Trend::regressions).sum(),
            improvements: cell_trends.iter().map(Trend::improvements).sum(),
            points: cell_trends.iter().map(|t| t.points.len()).max().unwrap_or(0),
        };
        match groups.iter_mut().find(|g| g.scenario == cell.key.scenario) {
            Some(group) => group.rows.push(row),
            None => {
                groups.push(TrendGroup { scenario: cell.key.scenario.clone(), metrics: Vec::new(), rows: vec![row] })
            }
        }
    }
    for group in &mut groups {
        let used: Vec<bool> = (0..metrics.len()).map(|i| group.rows.iter().any(|r| r.values[i].is_some())).collect();
        group.metrics = metrics.iter().zip(&used).filter(|(_, u)| **u).map(|(m, _)| *m).collect();
        for row in &mut group.rows {
            let values = std::mem::take(&mut row.values);
            row.values = values.into_iter().zip(&used).filter(|(_, u)| **u).map(|(v, _)| v).collect();
        }
    }
    parallel(&run.cells, |cell| {
        let name = cell.key.name();
        let cell_trends = trends.get(&name).map(Vec::as_slice).unwrap_or_default();
        let page = TrendPage {
            cell: name.clone(),
            href: cell_href("../", &name),
            metrics: cell_trends
                .iter()
                .map(|t| MetricTrend {
                    slug: t.metric,
                    figure: figures::trend(&name, t),
                    steps: t
                        .steps
                        .iter()
                        .rev()
                        .map(|s| StepRow {
                            run: s.run.clone(),
                            started_at: s.started_at.clone(),
                            commit: s.commit.as_deref().map(short).unwrap_or("").to_owned(),
                            before: format::metric_value(t.metric, s.before),
                            after: format::metric_value(t.metric, s.after),
                            change: format::percent(s.relative),
                            regression: s.regression,
                        })
                        .collect(),
                    regressions: t.regressions(),
                    improvements: t.improvements(),
                    band: t.points.last().and_then(|p| p.threshold).map(format::band).unwrap_or_else(|| "—".to_owned()),
                    older: t.points.len().saturating_sub(TABLE_RUNS),
                    points: t
                        .points
                        .iter()
                        .rev()
                        .take(TABLE_RUNS)
                        .map(|p| PointRow {
                            run: p.run.clone(),
                            started_at: p.started_at.clone(),
                            commit: p.commit.as_deref().map(short).unwrap_or("").to_owned(),
                            value: format::metric_value(t.metric, p.value),
                            change: p.relative.map(format::percent).unwrap_or_default(),
                            verdict: verdict_of(p.verdict),
                            threshold: p.threshold.map(format::band).unwrap_or_default(),
                        })
                        .collect(),
                })
                .collect(),
        };
        writer.page("trend.html", &format!("trends/{}.html", slug(&name)), &common(run, "../", "trends"), &page)?;
        Ok(())
    })?;
    let page = TrendsPage { runs, groups, unmeasured };
    writer.page("trends.html", "trends.html", &common(run, "", "trends"), &page)
}
