//! `index.html`: the first screen (recommendations, heat map), the run
//! header, the verdict matrix, failed and skipped cells, the buses.

use super::{Writer, cloudevents, common};
use crate::analysis::Report;
use crate::analysis::regression::{self, Verdict};
use crate::analysis::verdicts::{COLUMNS, Group};
use crate::render::site::SiteError;
use crate::render::site::context::{self, Header, MatrixGroup, Pair, Problem, scenario_href};
use crate::render::site::decide::FirstScreen;
use buslab_scenarios::results::{BusMeta, Run};
use cloudevents::CeScenario;
use serde::Serialize;

#[derive(Serialize)]
struct BusView {
    name: String,
    summary: String,
    peer: bool,
    guarantees: Vec<Pair>,
}

fn bus_views(buses: &[BusMeta]) -> Vec<BusView> {
    const ORDER: [(&str, &str); 6] = [
        ("ordering", "Ordering"),
        ("delivery", "Delivery"),
        ("backpressure", "Backpressure"),
        ("allocations", "Allocations per event"),
        ("threads", "Threads"),
        ("based_on", "Based on"),
    ];
    buses
        .iter()
        .map(|b| BusView {
            name: b.name.clone(),
            summary: b.summary.clone(),
            peer: b.peer,
            guarantees: ORDER
                .iter()
                .filter_map(|(k, title)| {
                    b.guarantees.get(*k).map(|v| Pair { key: (*title).to_owned(), value: v.clone() })
                })
                .collect(),
        })
        .collect()
}

#[derive(Serialize)]
struct ScenarioMatrix {
    name: String,
    href: String,
    description: String,
    groups: Vec<MatrixGroup>,
}

#[derive(Serialize)]
struct CompareSummary {
    base: String,
    regressions: usize,
    /// Regressions of instruction and allocation counts (the CI gate).
    counted: usize,
    improvements: usize,
    compared: usize,
}

#[derive(Serialize)]
struct IndexPage {
    first: FirstScreen,
    header: Header,
    ok: usize,
    failed: usize,
    skipped: usize,
    columns: Vec<&'static str>,
    scenarios: Vec<ScenarioMatrix>,
    problems: Vec<Problem>,
    buses: Vec<BusView>,
    compare: Option<CompareSummary>,
    history_runs: usize,
    cloudevents: Vec<CeScenario>,
}

fn scenario_matrices(run: &Run, groups: &[Group], root: &str) -> Vec<ScenarioMatrix> {
    let mut out: Vec<ScenarioMatrix> = Vec::new();
    for group in groups {
        let view = MatrixGroup::new(root, group);
        match out.iter_mut().find(|s| s.name == group.scenario) {
            Some(s) => s.groups.push(view),
            None => out.push(ScenarioMatrix {
                name: group.scenario.clone(),
                href: scenario_href(root, &group.scenario),
                description: run.meta.scenario_descriptions.get(&group.scenario).cloned().unwrap_or_default(),
                groups: vec![view],
            }),
        }
    }
    out
}

pub(super) fn page(report: &Report<'_>, writer: &Writer) -> Result<(), SiteError> {
    let run = report.run;
    let analysis = &report.analysis;
    let groups = &analysis.groups;
    let count = |want: &str| run.cells.iter().filter(|c| context::status(&c.status).0 == want).count();
    let page = IndexPage {
        first: FirstScreen::new(analysis),
        header: Header::new(&run.meta, report.coverage),
        ok: count("ok"),
        failed: count("failed"),
        skipped: count("skipped"),
        columns: COLUMNS.iter().map(|c| c.title).collect(),
        scenarios: scenario_matrices(run, groups, ""),
        problems: Problem::list("", &run.cells),
        buses: bus_views(&run.meta.buses),
        compare: report.comparison.as_ref().map(|c| CompareSummary {
            base: c.base_run.clone(),
            regressions: c.count(Verdict::Regression),
            counted: c
                .changes
                .iter()
                .filter(|x| {
                    x.verdict == Verdict::Regression
                        && matches!(x.method, regression::Method::Deterministic | regression::Method::Multithreaded)
                })
                .count(),
            improvements: c.count(Verdict::Improvement),
            compared: c.cells_compared(),
        }),
        history_runs: report.history_runs,
        cloudevents: cloudevents::section(run),
    };
    writer.page("index.html", "index.html", &common(run, "", "index"), &page)
}
