//! Each page: its context, built from the analysis, rendered with its
//! template and written.

use super::context::{
    self, CompareView, Figure, Header, MatrixGroup, Pair, Problem, cell_href, scenario_href, short, trend_href,
};
use super::decide::{DecisionView, FirstScreen, Link, cell_link};
use super::figures;
use super::{SiteError, slug};
use crate::analysis::Report;
use crate::analysis::regression::{self, Verdict};
use crate::analysis::trends::Trend;
use crate::analysis::verdicts::{COLUMNS, Group};
use crate::render::format;
use buslab_scenarios::results::{BusMeta, CellResult, CellStatus, Run};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use tera::{Context, Tera};

/// The templates, built in. Their names end in `.html` so that tera
/// autoescapes everything they print.
const TEMPLATES: [(&str, &str); 8] = [
    ("layout.html", include_str!("../../../templates/layout.html.tera")),
    ("index.html", include_str!("../../../templates/index.html.tera")),
    ("scenario.html", include_str!("../../../templates/scenario.html.tera")),
    ("cell.html", include_str!("../../../templates/cell.html.tera")),
    ("trends.html", include_str!("../../../templates/trends.html.tera")),
    ("trend.html", include_str!("../../../templates/trend.html.tera")),
    ("compare.html", include_str!("../../../templates/compare.html.tera")),
    ("guide.html", include_str!("../../../templates/guide.html.tera")),
];

const STYLE: &str = include_str!("../../../templates/style.css");

/// Renders templates into the output directory and counts the files.
pub(crate) struct Writer {
    out: PathBuf,
    tera: Tera,
    files: AtomicUsize,
}

impl Writer {
    pub(crate) fn new(out: &Path) -> Result<Writer, SiteError> {
        let mut tera = Tera::default();
        tera.add_raw_templates(TEMPLATES.to_vec())
            .map_err(|e| SiteError::Template { template: "(loading)".to_owned(), message: chain(&e) })?;
        tera.autoescape_on(vec![".html"]);
        Ok(Writer { out: out.to_owned(), tera, files: AtomicUsize::new(0) })
    }

    pub(crate) fn files(&self) -> usize {
        self.files.load(Ordering::Relaxed)
    }

    /// Writes `contents` to `relative`.
    pub(crate) fn file(&self, relative: &str, contents: &str) -> Result<(), SiteError> {
        let path = self.out.join(relative);
        std::fs::write(&path, contents).map_err(|source| SiteError::Io { path, source })?;
        self.files.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Renders `template` with the common keys and `page`'s fields.
    fn page(&self, template: &str, relative: &str, common: &Common, page: &impl Serialize) -> Result<(), SiteError> {
        let mut context = Context::from_serialize(page)
            .map_err(|e| SiteError::Template { template: template.to_owned(), message: chain(&e) })?;
        context.extend(
            Context::from_serialize(common)
                .map_err(|e| SiteError::Template { template: template.to_owned(), message: chain(&e) })?,
        );
        let html = self
            .tera
            .render(template, &context)
            .map_err(|e| SiteError::Template { template: template.to_owned(), message: chain(&e) })?;
        self.file(relative, &html)
    }
}

/// An error and its sources, `: `-separated (tera hides the cause).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Keys every page has.
#[derive(Serialize)]
struct Common {
    root: &'static str,
    page: &'static str,
    run_id: String,
    version: &'static str,
}

fn common(run: &Run, root: &'static str, page: &'static str) -> Common {
    Common { root, page, run_id: run.meta.id.clone(), version: env!("CARGO_PKG_VERSION") }
}

/// Calls `f` on every item, spread over the machine's cores (scoped
/// threads, never more than the cores); the first error wins.
fn parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<(), SiteError> + Sync) -> Result<(), SiteError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len()).max(1);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.chunks(chunk).map(|part| scope.spawn(|| part.iter().try_for_each(&f))).collect();
        handles.into_iter().try_for_each(|h| h.join().expect("a page renderer panicked"))
    })
}

/// Writes every page of the site.
pub(crate) fn write_all(report: &Report<'_>, writer: &Writer) -> Result<(), SiteError> {
    writer.file("style.css", STYLE)?;
    index(report, writer)?;
    guide_page(report, writer)?;
    compare_page(report, writer)?;
    scenario_pages(report.run, &report.analysis.groups, writer)?;
    trend_pages(report.run, &report.trends, report.trend_runs, writer)?;
    cell_pages(report, writer)
}

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

fn index(report: &Report<'_>, writer: &Writer) -> Result<(), SiteError> {
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
        cloudevents: cloudevents(run),
    };
    writer.page("index.html", "index.html", &common(run, "", "index"), &page)
}

#[derive(Serialize)]
struct ClaimView {
    text: String,
    undecided: bool,
    cells: Vec<Link>,
}

#[derive(Serialize)]
struct PointView {
    label: String,
    claims: Vec<ClaimView>,
}

#[derive(Serialize)]
struct SectionView {
    scenario: String,
    anchor: String,
    href: String,
    description: String,
    points: Vec<PointView>,
}

#[derive(Serialize)]
struct ZeroView {
    bus: String,
    peer: bool,
    zero: usize,
    measured: usize,
    nonzero: Vec<Link>,
}

#[derive(Serialize)]
struct GuidePage {
    rule: &'static str,
    decide: DecisionView,
    sections: Vec<SectionView>,
    zero: Vec<ZeroView>,
    has_peers: bool,
}

fn guide_page(report: &Report<'_>, writer: &Writer) -> Result<(), SiteError> {
    let guide = &report.guide;
    let page = GuidePage {
        rule: crate::analysis::recommend::RULE_SHORT,
        decide: DecisionView::new(&report.analysis),
        sections: guide
            .sections
            .iter()
            .map(|s| SectionView {
                scenario: s.scenario.clone(),
                anchor: slug(&s.scenario),
                href: scenario_href("", &s.scenario),
                description: s.description.clone(),
                points: s
                    .points
                    .iter()
                    .map(|p| PointView {
                        label: p.label.clone(),
                        claims: p
                            .claims
                            .iter()
                            .map(|c| ClaimView {
                                text: c.text.clone(),
                                undecided: c.undecided,
                                cells: c.cells.iter().map(|n| cell_link("", n)).collect(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        zero: guide
            .zero_allocation
            .iter()
            .map(|z| ZeroView {
                bus: z.bus.clone(),
                peer: z.peer,
                zero: z.zero.len(),
                measured: z.zero.len() + z.nonzero.len(),
                nonzero: z
                    .nonzero
                    .iter()
                    .map(|(n, v)| Link {
                        text: format!("{} ({})", cell_link("", n).text, format::si_number(*v)),
                        href: cell_href("", n),
                    })
                    .collect(),
            })
            .collect(),
        has_peers: guide.has_peers,
    };
    writer.page("guide.html", "guide.html", &common(report.run, "", "guide"), &page)
}

#[derive(Serialize)]
struct NoiseRow {
    metric: &'static str,
    threshold: String,
    cells: usize,
    median_cv: String,
    max_cv: String,
    max_cv_cell: String,
    learned: String,
    false_positives: String,
}

#[derive(Serialize)]
struct NoiseView {
    runs: usize,
    commits: String,
    machines: String,
    quick: bool,
    pairs: usize,
    pairs_with_regression: usize,
    pairs_with_deterministic_regression: usize,
    rows: Vec<NoiseRow>,
}

#[derive(Serialize)]
struct ComparePage {
    comparison: Option<CompareView>,
    base_header: Option<Header>,
    noise: Option<NoiseView>,
}

fn noise_view(c: &crate::analysis::noise::Calibration) -> NoiseView {
    NoiseView {
        runs: c.runs.len(),
        commits: c.commits.iter().map(|x| short(x).to_owned()).collect::<Vec<_>>().join(", "),
        machines: c.machines.join(", "),
        quick: c.quick,
        pairs: c.pairs,
        pairs_with_regression: c.pairs_with_regression,
        pairs_with_deterministic_regression: c.pairs_with_deterministic_regression,
        rows: c
            .metrics
            .iter()
            .map(|m| NoiseRow {
                metric: m.metric,
                threshold: format::band(m.threshold),
                cells: m.cells,
                median_cv: m.median_cv.map(format::unsigned_percent).unwrap_or_default(),
                max_cv: m.max_cv.as_ref().map(|w| format::unsigned_percent(w.value)).unwrap_or_default(),
                max_cv_cell: m.max_cv.as_ref().map(|w| w.cell.clone()).unwrap_or_default(),
                learned: m.median_learned_band.map(format::band).unwrap_or_default(),
                false_positives: format!(
                    "{} of {} ({})",
                    m.false_positives,
                    m.comparisons,
                    format::unsigned_percent(m.false_positive_rate)
                ),
            })
            .collect(),
    }
}

fn compare_page(report: &Report<'_>, writer: &Writer) -> Result<(), SiteError> {
    let page = ComparePage {
        comparison: report.comparison.as_ref().map(|c| CompareView::new("", c)),
        base_header: report.baseline.map(|b| Header::new(&b.meta, report.baseline_coverage)),
        noise: report.noise.as_ref().map(noise_view),
    };
    writer.page("compare.html", "compare.html", &common(report.run, "", "compare"), &page)
}

#[derive(Serialize)]
struct ScenarioGroupView {
    label: String,
    /// The point's headline rate, or empty.
    headline_rate: String,
    /// Saturated loads: `bus at rate` → `state: reason`.
    saturated: Vec<Pair>,
    figures: Vec<Figure>,
    matrix: MatrixGroup,
}

#[derive(Serialize)]
struct ScenarioPage {
    name: String,
    description: String,
    columns: Vec<&'static str>,
    scaling: Vec<Figure>,
    groups: Vec<ScenarioGroupView>,
}

/// The cells of a group's rows, in row order.
fn group_cells<'a>(g: &'a Group, cells: &'a BTreeMap<String, &'a CellResult>) -> impl Iterator<Item = &'a CellResult> {
    g.rows.iter().filter_map(|r| cells.get(&r.cell).copied())
}

fn scenario_pages(run: &Run, groups: &[Group], writer: &Writer) -> Result<(), SiteError> {
    let cells: BTreeMap<String, &CellResult> = run.cells.iter().map(|c| (c.key.name(), c)).collect();
    let mut scenarios: Vec<&str> = Vec::new();
    for g in groups {
        if !scenarios.contains(&g.scenario.as_str()) {
            scenarios.push(&g.scenario);
        }
    }
    for scenario in scenarios {
        let mine: Vec<&Group> = groups.iter().filter(|g| g.scenario == scenario).collect();
        let page = ScenarioPage {
            name: scenario.to_owned(),
            description: run.meta.scenario_descriptions.get(scenario).cloned().unwrap_or_default(),
            columns: COLUMNS.iter().map(|c| c.title).collect(),
            scaling: figures::scaling(scenario, &mine, &cells),
            groups: mine
                .iter()
                .map(|g| ScenarioGroupView {
                    label: g.label.clone(),
                    headline_rate: group_cells(g, &cells)
                        .find_map(|c| c.headline_rate)
                        .map(|r| format::si(r, "events/s"))
                        .unwrap_or_default(),
                    saturated: group_cells(g, &cells)
                        .flat_map(|c| {
                            c.latency.iter().filter_map(|l| {
                                let s = l.saturation.as_ref()?;
                                Some(Pair {
                                    key: format!("{} at {}", c.key.bus, format::si(l.offered_per_sec, "events/s")),
                                    value: format!("{}: {}", s.state(), s.reason()),
                                })
                            })
                        })
                        .collect(),
                    figures: figures::group(g, &cells),
                    matrix: MatrixGroup::new("../", g),
                })
                .collect(),
        };
        let file = format!("scenarios/{}.html", slug(scenario));
        writer.page("scenario.html", &file, &common(run, "../", "scenario"), &page)?;
    }
    Ok(())
}

#[derive(Serialize)]
struct TrialRow {
    trial: usize,
    events_per_sec: String,
    duration: String,
}

#[derive(Serialize)]
struct ThroughputView {
    median: String,
    ci: String,
    deliveries: String,
    events_per_trial: u64,
    trials: Vec<TrialRow>,
}

#[derive(Serialize)]
struct LatencyRow {
    load: String,
    /// `headline`, `beyond headline` or empty.
    role: &'static str,
    /// `harness saturated: <reason>`, `over capacity: <reason>` or empty.
    saturation: String,
    lateness_p99: String,
    loss: String,
    offered: String,
    p50: String,
    p90: String,
    p99: String,
    p999: String,
    p9999: String,
    max: String,
    count: u64,
    spike_p99: String,
    drain: String,
}

#[derive(Serialize)]
struct CellPage {
    name: String,
    scenario: String,
    scenario_href: String,
    bus: String,
    peer: bool,
    status: &'static str,
    reason: String,
    params: Vec<Pair>,
    producers: usize,
    subscribers: usize,
    throughput: Option<ThroughputView>,
    latency: Vec<LatencyRow>,
    /// The point's headline rate, or empty.
    headline_rate: String,
    latency_figures: Vec<Figure>,
    allocations: Vec<Pair>,
    instructions: Vec<Pair>,
    multithreaded: bool,
    flame: Option<String>,
    flame_note: String,
    diff: Option<String>,
    diff_note: String,
    skipped_passes: Vec<Pair>,
    dropped: u64,
    listener_panics: u64,
    trend_href: String,
    trend_points: usize,
}

/// One latency entry as the cell page shows it: a saturated load gives its
/// state and reason instead of percentiles, a percentile among a lossy
/// bus's misses reads "lost".
fn latency_row(cell: &CellResult, l: &buslab_scenarios::results::Latency) -> LatencyRow {
    let judged = l.judged();
    let pct = |q: f64| match l.percentile_ns(q) {
        _ if !judged => "—".to_owned(),
        Some(ns) => format::nanos(ns as f64),
        None => "lost".to_owned(),
    };
    let headline = cell.headline_rate.is_some_and(|h| buslab_scenarios::results::same_rate(h, l.offered_per_sec));
    LatencyRow {
        load: if l.load != 0.0 {
            format!("{:.0}% of capacity", l.load * 100.0)
        } else if l.spike_p99_ns.is_some() {
            "burst".to_owned()
        } else {
            String::new()
        },
        role: if headline {
            "headline"
        } else if l.beyond_headline {
            "beyond headline"
        } else {
            ""
        },
        saturation: l.saturation.as_ref().map(|s| format!("{}: {}", s.state(), s.reason())).unwrap_or_default(),
        lateness_p99: l.lateness.map(|t| format::nanos(t.p99_ns as f64)).unwrap_or_default(),
        loss: if l.misses > 0 { format!("{:.3}%", l.loss_rate * 100.0) } else { String::new() },
        offered: format::si(l.offered_per_sec, "events/s"),
        p50: pct(0.5),
        p90: pct(0.9),
        p99: pct(0.99),
        p999: pct(0.999),
        p9999: pct(0.9999),
        max: if judged { format::nanos(l.max_ns as f64) } else { "—".to_owned() },
        count: l.count,
        spike_p99: l.spike_p99_ns.filter(|_| judged).map(|n| format::nanos(n as f64)).unwrap_or_default(),
        drain: l.drain_ns.filter(|_| judged).map(|n| format::nanos(n as f64)).unwrap_or_default(),
    }
}

fn cell_pages(report: &Report<'_>, writer: &Writer) -> Result<(), SiteError> {
    let (run, trends) = (report.run, &report.trends);
    let peers: Vec<&str> = run.meta.buses.iter().filter(|b| b.peer).map(|b| b.name.as_str()).collect();
    let baseline: BTreeMap<String, &CellResult> =
        report.baseline.map(|b| b.cells.iter().map(|c| (c.key.name(), c)).collect()).unwrap_or_default();
    parallel(&run.cells, |cell| {
        let name = cell.key.name();
        let slug = slug(&name);
        let (status, reason) = context::status(&cell.status);
        let throughput = cell.throughput.as_ref().map(|t| ThroughputView {
            median: format::si(t.events_per_sec.median, "events/s"),
            ci: format!(
                "{} – {}",
                format::si(t.events_per_sec.lower, "events/s"),
                format::si(t.events_per_sec.upper, "events/s")
            ),
            deliveries: format::si(t.deliveries_per_sec.median, "deliveries/s"),
            events_per_trial: t.events_per_trial,
            trials: t
                .events_per_sec
                .samples
                .iter()
                .enumerate()
                .map(|(i, v)| TrialRow {
                    trial: i + 1,
                    events_per_sec: format::si(*v, "events/s"),
                    duration: t.trial_ns.get(i).map(|ns| format::nanos(*ns as f64)).unwrap_or_default(),
                })
                .collect(),
        });
        let latency = cell.latency.iter().map(|l| latency_row(cell, l)).collect();
        let allocations = cell
            .allocations
            .as_ref()
            .map(|a| {
                vec![
                    Pair { key: "Allocations per event".into(), value: format::si_number(a.allocs_per_event) },
                    Pair { key: "Bytes per event".into(), value: format::bytes(a.bytes_per_event) },
                    Pair { key: "Peak live heap".into(), value: format::bytes(a.peak_bytes as f64) },
                    Pair { key: "Events measured".into(), value: a.events.to_string() },
                ]
            })
            .unwrap_or_default();
        let instructions = cell
            .instructions
            .as_ref()
            .map(|i| {
                vec![
                    Pair { key: "Instructions (Ir) per event".into(), value: format::si_number(i.ir_per_event) },
                    Pair { key: "Estimated cycles per event".into(), value: format::si_number(i.est_cycles_per_event) },
                    Pair { key: "L1 hits per event".into(), value: format::si_number(i.l1_hits_per_event) },
                    Pair { key: "LL hits per event".into(), value: format::si_number(i.ll_hits_per_event) },
                    Pair { key: "RAM accesses per event".into(), value: format::si_number(i.ram_hits_per_event) },
                    Pair { key: "Branch misses per event".into(), value: format::si_number(i.branch_misses_per_event) },
                    Pair { key: "Events measured".into(), value: i.events.to_string() },
                ]
            })
            .unwrap_or_default();
        let folded = cell.profile.as_ref().map(|p| p.folded.as_str()).filter(|f| !f.trim().is_empty());
        let (flame, flame_note) = match folded {
            Some(folded) => match figures::flame(folded, &name) {
                Ok(svg) => {
                    writer.file(&format!("cells/{slug}.flame.svg"), &svg)?;
                    (Some(format!("{slug}.flame.svg")), String::new())
                }
                Err(e) => (None, format!("no flame graph: {e}")),
            },
            None => (None, profile_note(cell)),
        };
        let base_folded = baseline
            .get(&name)
            .and_then(|b| b.profile.as_ref())
            .map(|p| p.folded.as_str())
            .filter(|f| !f.trim().is_empty());
        let (diff, diff_note) = match (folded, base_folded, report.baseline) {
            (Some(new), Some(old), Some(base)) => match figures::differential(old, new, &name, &base.meta.id) {
                Ok(svg) => {
                    writer.file(&format!("cells/{slug}.diff.svg"), &svg)?;
                    (Some(format!("{slug}.diff.svg")), format!("against run {}", base.meta.id))
                }
                Err(e) => (None, format!("no differential flame graph: {e}")),
            },
            (_, _, None) => (None, "no baseline run on this machine".to_owned()),
            _ => (None, "the baseline or this run has no profile of this cell".to_owned()),
        };
        let page = CellPage {
            name: name.clone(),
            scenario: cell.key.scenario.clone(),
            scenario_href: scenario_href("../", &cell.key.scenario),
            bus: cell.key.bus.clone(),
            peer: peers.contains(&cell.key.bus.as_str()),
            status,
            reason,
            params: cell.key.params.iter().map(|(k, v)| Pair { key: k.clone(), value: v.clone() }).collect(),
            producers: cell.producers,
            subscribers: cell.subscribers,
            throughput,
            latency,
            headline_rate: cell.headline_rate.map(|r| format::si(r, "events/s")).unwrap_or_default(),
            latency_figures: figures::latency(cell),
            allocations,
            instructions,
            multithreaded: cell.instructions.as_ref().is_some_and(|i| i.multithreaded),
            flame,
            flame_note,
            diff,
            diff_note,
            skipped_passes: cell
                .skipped_passes
                .iter()
                .map(|(k, v)| Pair { key: k.clone(), value: v.clone() })
                .collect(),
            dropped: cell.dropped,
            listener_panics: cell.listener_panics,
            trend_href: trend_href("../", &name),
            trend_points: trends.get(&name).map(|t| t.iter().map(|t| t.points.len()).max().unwrap_or(0)).unwrap_or(0),
        };
        writer.page("cell.html", &format!("cells/{slug}.html"), &common(run, "../", "cell"), &page)?;
        Ok(())
    })
}

/// Why a cell has no profile.
fn profile_note(cell: &CellResult) -> String {
    if let Some(reason) = cell.skipped_passes.get("profile") {
        format!("the profile pass was skipped: {reason}")
    } else if cell.status != CellStatus::Ok {
        "the cell did not end ok".to_owned()
    } else {
        "the profile pass recorded no samples".to_owned()
    }
}

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

fn trend_pages(
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

#[derive(Serialize)]
struct CeDecode {
    variant: String,
    events: String,
    ci: String,
    bytes: String,
    errors: String,
}

#[derive(Serialize)]
struct CeRoute {
    text: String,
    ci: String,
    allocs: String,
    href: String,
    class: &'static str,
}

#[derive(Serialize)]
struct CeRow {
    variant: String,
    cells: Vec<Option<CeRoute>>,
}

#[derive(Serialize)]
struct CeScenario {
    name: String,
    corpus: String,
    buses: Vec<String>,
    decode: Vec<CeDecode>,
    route: Vec<CeRow>,
    errors: Vec<Pair>,
    /// The first invalid documents: origin → reason.
    invalid: Vec<Pair>,
    /// Invalid documents beyond those named.
    unnamed: u64,
}

/// The CloudEvents section: per scenario, decode-only figures per decoder
/// variant, and the decoder × bus matrix of decode + route throughput.
fn cloudevents(run: &Run) -> Vec<CeScenario> {
    let mut out: Vec<CeScenario> = Vec::new();
    let cells: Vec<&CellResult> = run.cells.iter().filter(|c| c.cloudevents.is_some()).collect();
    let mut scenarios: Vec<&str> = Vec::new();
    for c in &cells {
        if !scenarios.contains(&c.key.scenario.as_str()) {
            scenarios.push(&c.key.scenario);
        }
    }
    for scenario in scenarios {
        let mine: Vec<&CellResult> = cells.iter().copied().filter(|c| c.key.scenario == scenario).collect();
        let variant = |c: &CellResult| {
            c.key
                .params
                .iter()
                .filter(|(k, _)| k.as_str() != "subscribers")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut buses: Vec<String> = Vec::new();
        let mut variants: Vec<String> = Vec::new();
        for c in &mine {
            if !buses.contains(&c.key.bus) {
                buses.push(c.key.bus.clone());
            }
            let v = variant(c);
            if !variants.contains(&v) {
                variants.push(v);
            }
        }
        let first = mine[0].cloudevents.as_ref().expect("filtered on cloudevents");
        let corpus = &first.corpus;
        let corpus_text = format!(
            "{} ({}): {} documents, {} invalid; sizes min {}, median {}, p90 {}, max {}; {} in all",
            corpus.name,
            corpus.source,
            corpus.documents,
            corpus.invalid,
            format::bytes(corpus.min_bytes as f64),
            format::bytes(corpus.p50_bytes as f64),
            format::bytes(corpus.p90_bytes as f64),
            format::bytes(corpus.max_bytes as f64),
            format::bytes(corpus.total_bytes as f64)
        );
        let mut errors: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let decode = variants
            .iter()
            .filter_map(|v| {
                // Decode-only figures do not depend on the bus: the best
                // measured of the variant's cells is shown.
                let ce = mine
                    .iter()
                    .filter(|c| variant(c) == *v)
                    .filter_map(|c| c.cloudevents.as_ref())
                    .max_by(|a, b| a.decode_events_per_sec.median.total_cmp(&b.decode_events_per_sec.median))?;
                for (reason, n) in &ce.errors {
                    errors.entry(reason.clone()).or_default().insert(v.clone(), *n);
                }
                let e = &ce.decode_events_per_sec;
                Some(CeDecode {
                    variant: v.clone(),
                    events: format::si(e.median, "events/s"),
                    ci: format!("{} – {}", format::si_number(e.lower), format::si_number(e.upper)),
                    bytes: format!("{}/s", format::bytes(ce.decode_bytes_per_sec.median)),
                    errors: ce.errors.values().sum::<u64>().to_string(),
                })
            })
            .collect();
        let route = variants
            .iter()
            .map(|v| {
                let row: Vec<Option<(&CellResult, f64)>> = buses
                    .iter()
                    .map(|b| {
                        mine.iter()
                            .find(|c| c.key.bus == *b && variant(c) == *v)
                            .filter(|c| c.status == CellStatus::Ok)
                            .and_then(|c| c.cloudevents.as_ref().map(|ce| (*c, ce.route_events_per_sec.median)))
                    })
                    .collect();
                let best = row.iter().flatten().map(|(_, v)| *v).fold(f64::NAN, f64::max);
                CeRow {
                    variant: v.clone(),
                    cells: row
                        .iter()
                        .map(|cell| {
                            let (c, value) = (*cell)?;
                            let ce = c.cloudevents.as_ref()?;
                            let r = &ce.route_events_per_sec;
                            Some(CeRoute {
                                text: format::si(value, "events/s"),
                                ci: format!("{} – {}", format::si_number(r.lower), format::si_number(r.upper)),
                                allocs: c
                                    .allocations
                                    .as_ref()
                                    .map(|a| format!("{} allocs/event", format::si_number(a.allocs_per_event)))
                                    .unwrap_or_default(),
                                href: cell_href("", &c.key.name()),
                                class: if value == best { "best" } else { "" },
                            })
                        })
                        .collect(),
                }
            })
            .collect();
        out.push(CeScenario {
            name: scenario.to_owned(),
            corpus: corpus_text,
            buses,
            decode,
            route,
            errors: errors
                .into_iter()
                .map(|(reason, by)| {
                    // The decoders agree on what is invalid (a tested
                    // property): one count then stands for all of them.
                    let mut counts = by.values();
                    let first = counts.next().copied().unwrap_or(0);
                    let value = if by.len() == variants.len() && counts.all(|&n| n == first) {
                        format!("{first} (every decoder variant)")
                    } else {
                        by.iter().map(|(v, n)| format!("{v}: {n}")).collect::<Vec<_>>().join("; ")
                    };
                    Pair { key: reason, value }
                })
                .collect(),
            invalid: corpus
                .invalid_examples
                .iter()
                .map(|d| Pair { key: d.origin.clone(), value: d.reason.clone() })
                .collect(),
            unnamed: corpus.invalid.saturating_sub(corpus.invalid_examples.len() as u64),
        });
    }
    out
}
