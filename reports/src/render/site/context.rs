//! The template contexts: plain, already formatted values, so that the
//! templates hold no logic beyond loops and conditions.

use super::slug;
use crate::analysis::regression::{Comparison, Method, Unmatched, Verdict};
use crate::analysis::verdicts::{COLUMNS, Entry, Group, Outcome};
use crate::render::format;
use buslab_scenarios::results::{CellResult, CellStatus, RunMeta};
use serde::Serialize;

/// The link from a page at depth `root` to the page of cell `name`.
pub(crate) fn cell_href(root: &str, name: &str) -> String {
    format!("{root}cells/{}.html", slug(name))
}

/// The link to the trend page of cell `name`.
pub(crate) fn trend_href(root: &str, name: &str) -> String {
    format!("{root}trends/{}.html", slug(name))
}

/// The link to the page of scenario `name`.
pub(crate) fn scenario_href(root: &str, name: &str) -> String {
    format!("{root}scenarios/{}.html", slug(name))
}

/// A key and a value.
#[derive(Serialize)]
pub(crate) struct Pair {
    pub key: String,
    pub value: String,
}

/// The run header.
#[derive(Serialize)]
pub(crate) struct Header {
    pub id: String,
    pub started_at: String,
    pub finished_at: String,
    pub complete: bool,
    pub quick: bool,
    pub machine: String,
    pub cpu: String,
    pub cores: usize,
    pub os: String,
    pub commit: String,
    pub rustc: String,
    pub buslab: String,
    pub args: String,
    pub overhead: String,
    /// What the listener-work loop cost on this machine.
    pub work: String,
    /// How throughput intervals were made and what they are worth.
    pub intervals: String,
    pub build: Vec<Pair>,
    pub crates: Vec<Pair>,
}

impl Header {
    /// The header of the run `meta` describes; `coverage` is its
    /// intervals' [simulated coverage](crate::analysis::interval_coverage).
    pub(crate) fn new(meta: &RunMeta, coverage: Option<(f64, f64)>) -> Header {
        let commit = match (&meta.git_commit, meta.git_dirty) {
            (Some(c), Some(true)) => format!("{} (with uncommitted changes)", short(c)),
            (Some(c), _) => short(c).to_owned(),
            (None, _) => "unknown".to_owned(),
        };
        Header {
            id: meta.id.clone(),
            started_at: meta.started_at.clone(),
            finished_at: meta.finished_at.clone().unwrap_or_else(|| "not finished (interrupted?)".to_owned()),
            complete: meta.complete,
            quick: meta.quick,
            machine: meta.machine.clone(),
            cpu: meta.cpu.clone(),
            cores: meta.cores,
            os: meta.os.clone(),
            commit,
            rustc: meta.rustc.clone(),
            buslab: meta.buslab_version.clone(),
            args: meta.args.join(" "),
            overhead: match meta.harness_overhead_ns {
                Some(ns) => format!("{} per event (measured once, with a no-op bus at spsc)", format::nanos(ns)),
                None if meta.buses.iter().any(|b| b.reference) => {
                    "the floor row (null) at each point, with each in-line bus's cost above it".to_owned()
                }
                None => "not measured".to_owned(),
            },
            work: match meta.work_ns_per_iteration {
                Some(ns) => format!(
                    "a fixed loop, 1 iteration per nominal ns of a scenario's work; one iteration took {} here, so \
                     1 µs of nominal work took {}",
                    format::nanos(ns),
                    format::nanos(ns * 1000.0)
                ),
                None => "a wall-clock wait (runs before methodology 3)".to_owned(),
            },
            intervals: intervals(meta, coverage),
            build: meta.build.iter().map(|(k, v)| Pair { key: k.clone(), value: v.clone() }).collect(),
            crates: meta.crate_versions.iter().map(|(k, v)| Pair { key: k.clone(), value: v.clone() }).collect(),
        }
    }
}

/// The header's line on throughput intervals: the run's processes and
/// trials per cell, and the coverage a nominal 95% interval has at those
/// counts (`coverage`, from the analysis).
fn intervals(meta: &RunMeta, coverage: Option<(f64, f64)>) -> String {
    let (how, (lo, hi)) = match (meta.processes, meta.trials, coverage) {
        (Some(p), Some(t), Some(c)) if p > 1 => (format!("{p} processes × {t} trials per cell, the buses of a point interleaved in rotating rounds; 95% t interval over the process medians"), c),
        (Some(p), Some(t), Some(c)) => (format!("{p} process × {t} trials per cell; 95% bootstrap interval of the median"), c),
        _ => return "one process per cell (a run before repetitions): its intervals hold none of the variance between processes".to_owned(),
    };
    // Scenarios whose trials per process were chosen by measurement: said
    // (the coverage was taken over every count the run used).
    let chosen: Vec<String> = meta.chosen_trials.iter().map(|(s, c)| format!("{s} {}", c.trials)).collect();
    let how = if chosen.is_empty() {
        how
    } else {
        format!("{how} (trials per process chosen by measurement, Kalibera & Jones: {})", chosen.join(", "))
    };
    format!(
        "{how}. At these counts a nominal 95% interval held the true median in {:.0}–{:.0}% of simulated cells \
         (between-process CV 5–30%, within 1–10%, normal and log-normal)",
        100.0 * lo,
        100.0 * hi
    )
}

/// The first 10 characters of a commit hash.
pub(crate) fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

/// One value in the matrix.
#[derive(Serialize)]
pub(crate) struct MatrixValue {
    pub text: String,
    pub ci: String,
    pub ratio: String,
    /// `best`, `tied` or empty.
    pub class: &'static str,
}

/// One bus in a matrix group.
#[derive(Serialize)]
pub(crate) struct MatrixRow {
    pub bus: String,
    pub peer: bool,
    /// The harness's floor (`null`): shown, never ranked.
    pub reference: bool,
    /// `lossy, 12.5% lost` for a cell that dropped deliveries, or empty.
    pub lossy: String,
    /// What the bus adds to the floor of the point (in-line buses), or
    /// empty.
    pub cost: String,
    pub href: String,
    pub status: &'static str,
    pub reason: String,
    pub values: Vec<Option<MatrixValue>>,
}

/// One sweep point of one scenario.
#[derive(Serialize)]
pub(crate) struct MatrixGroup {
    pub label: String,
    pub rows: Vec<MatrixRow>,
    /// One line per column: who won.
    pub outcomes: Vec<String>,
}

/// `ok`, `failed` or `skipped`, and the reason.
pub(crate) fn status(status: &CellStatus) -> (&'static str, String) {
    match status {
        CellStatus::Ok => ("ok", String::new()),
        CellStatus::Failed(reason) => ("failed", reason.clone()),
        CellStatus::Skipped(reason) => ("skipped", reason.clone()),
    }
}

/// What a row that is shown but not ranked says instead of its ratio.
fn matrix_value(slug: &str, entry: &Entry, unranked: Option<&str>) -> MatrixValue {
    let ci = match (entry.lower, entry.upper) {
        (Some(l), Some(u)) => format!("{} – {}", format::metric_value(slug, l), format::metric_value(slug, u)),
        _ => String::new(),
    };
    let ratio = if let Some(instead) = unranked {
        instead.to_owned()
    } else if entry.best {
        "best".to_owned()
    } else {
        format!("{} best", format::ratio(entry.ratio))
    };
    MatrixValue {
        text: format::metric_value(slug, entry.value),
        ci,
        ratio,
        class: if entry.best {
            "best"
        } else if entry.tied {
            "tied"
        } else {
            ""
        },
    }
}

/// The outcome of one column, in words.
pub(crate) fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Winner { bus, margin: Some(m) } if m.is_infinite() => format!("{bus} (the only one at zero)"),
        Outcome::Winner { bus, margin: Some(m) } => format!("{bus}, {} ahead", format::ratio(*m)),
        Outcome::Winner { bus, margin: None } => format!("{bus} (alone)"),
        Outcome::Tie { buses } => format!("tie: {}", buses.join(", ")),
        Outcome::NoData => "no data".to_owned(),
    }
}

impl MatrixGroup {
    pub(crate) fn new(root: &str, group: &Group) -> MatrixGroup {
        let rows = group
            .rows
            .iter()
            .map(|row| {
                let (status, reason) = status(&row.status);
                let cost = match (row.bus_cost_ns, row.bus_cost_ir) {
                    (Some(ns), Some(ir)) => {
                        format!("bus cost {} · {} Ir/event", format::nanos(ns), format::si_number(ir))
                    }
                    (Some(ns), None) => format!("bus cost {}", format::nanos(ns)),
                    (None, Some(ir)) => format!("bus cost {} Ir/event", format::si_number(ir)),
                    (None, None) => String::new(),
                };
                let lossy = match (row.lossy, row.loss_rate) {
                    (false, _) => String::new(),
                    (true, Some(rate)) if rate > 0.0 => format!("lossy, {} lost", format::unsigned_percent(rate)),
                    (true, _) => "lossy".to_owned(),
                };
                let unranked = match (row.reference, row.ranked) {
                    (true, _) => Some("floor"),
                    (false, false) => Some("lossy: not ranked"),
                    (false, true) => None,
                };
                MatrixRow {
                    bus: row.bus.clone(),
                    peer: row.peer,
                    reference: row.reference,
                    lossy,
                    cost,
                    href: cell_href(root, &row.cell),
                    status,
                    reason,
                    values: COLUMNS
                        .iter()
                        .zip(&row.entries)
                        .map(|(c, e)| e.as_ref().map(|e| matrix_value(c.slug, e, unranked)))
                        .collect(),
                }
            })
            .collect();
        MatrixGroup { label: group.label.clone(), rows, outcomes: group.outcomes.iter().map(outcome_text).collect() }
    }
}

/// A failed or skipped cell.
#[derive(Serialize)]
pub(crate) struct Problem {
    pub cell: String,
    pub href: String,
    pub status: &'static str,
    pub reason: String,
}

impl Problem {
    pub(crate) fn list(root: &str, cells: &[CellResult]) -> Vec<Problem> {
        cells
            .iter()
            .filter(|c| c.status != CellStatus::Ok)
            .map(|c| {
                let (status, reason) = status(&c.status);
                Problem { cell: c.key.name(), href: cell_href(root, &c.key.name()), status, reason }
            })
            .collect()
    }
}

/// A chart: its SVG, inline.
#[derive(Serialize)]
pub(crate) struct Figure {
    pub title: String,
    pub svg: String,
    pub caption: String,
}

/// One significant change on the compare page.
#[derive(Serialize)]
pub(crate) struct ChangeRow {
    pub cell: String,
    pub href: String,
    pub trend: String,
    pub metric: String,
    pub base: String,
    pub new: String,
    pub change: String,
    pub verdict: &'static str,
    pub method: &'static str,
    pub p_value: String,
    pub threshold: String,
}

/// The compare page's content.
#[derive(Serialize)]
pub(crate) struct CompareView {
    pub base: String,
    pub new: String,
    pub history_runs: usize,
    pub cells_compared: usize,
    pub regressions: usize,
    pub improvements: usize,
    pub noise: usize,
    pub changes: Vec<ChangeRow>,
    pub unmatched: Vec<Pair>,
    pub missing: usize,
}

pub(crate) fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Regression => "regression",
        Verdict::Improvement => "improvement",
        Verdict::Noise => "noise",
    }
}

impl CompareView {
    pub(crate) fn new(root: &str, comparison: &Comparison) -> CompareView {
        let changes = comparison
            .significant()
            .into_iter()
            .map(|c| ChangeRow {
                cell: c.cell.clone(),
                href: cell_href(root, &c.cell),
                trend: trend_href(root, &c.cell),
                metric: c.metric.to_owned(),
                base: format::metric_value(c.metric, c.base),
                new: format::metric_value(c.metric, c.new),
                change: format::percent(c.relative()),
                verdict: verdict_name(c.verdict),
                method: match c.method {
                    Method::Deterministic => "count, fixed threshold",
                    Method::Multithreaded => "count of a multi-threaded cell, wider threshold",
                    Method::MannWhitney => "Mann–Whitney U + noise band",
                    Method::NoiseBand => "noise band",
                    Method::TailInterval => "interval of the change vs noise band",
                    Method::ProcessInterval => "interval over processes vs noise band",
                },
                p_value: c.p_value.map(|p| format!("{p:.4}")).unwrap_or_default(),
                threshold: match c.interval {
                    Some((lower, upper)) => format!("{} (95% [{lower:.3}×, {upper:.3}×])", format::band(c.threshold)),
                    None => format::band(c.threshold),
                },
            })
            .collect();
        let unmatched = comparison
            .unmatched
            .iter()
            .map(|u| Pair {
                key: u.cell().to_owned(),
                value: match u {
                    Unmatched::OnlyInBase { .. } => "only in the base run".to_owned(),
                    Unmatched::OnlyInNew { .. } => "only in this run".to_owned(),
                    Unmatched::NotOk { base, new, .. } => {
                        format!("not ok: base {}, this run {}", status(base).0, status(new).0)
                    }
                },
            })
            .collect();
        CompareView {
            base: comparison.base_run.clone(),
            new: comparison.new_run.clone(),
            history_runs: comparison.history_runs,
            cells_compared: comparison.cells_compared(),
            regressions: comparison.count(Verdict::Regression),
            improvements: comparison.count(Verdict::Improvement),
            noise: comparison.count(Verdict::Noise),
            changes,
            unmatched,
            missing: comparison.missing.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::interval_coverage;
    use buslab_scenarios::results::ChosenTrials;

    /// The header's line with the coverage the analysis gives.
    fn intervals_of(meta: &RunMeta) -> String {
        intervals(meta, interval_coverage(meta))
    }

    #[test]
    fn the_header_says_how_intervals_were_made_and_what_they_cover() {
        let old = intervals_of(&RunMeta::default());
        assert!(old.starts_with("one process per cell"), "{old}");
        let meta = RunMeta { processes: Some(3), trials: Some(3), ..RunMeta::default() };
        let text = intervals_of(&meta);
        assert!(text.starts_with("3 processes × 3 trials per cell"), "{text}");
        // The simulated coverage, as measured: "held the true median in 94–96%".
        let range = text.split("true median in ").nth(1).and_then(|t| t.split('%').next()).expect("a coverage range");
        let (lo, hi) = range.split_once('–').expect("lo–hi");
        let (lo, hi): (f64, f64) = (lo.parse().expect("lo"), hi.parse().expect("hi"));
        assert!((93.0..=hi).contains(&lo) && hi <= 99.0, "{text}");
        let chosen = [("fanout", 1), ("spsc", 6)]
            .map(|(s, trials)| (s.to_owned(), ChosenTrials { trials, from_run: "r".to_owned(), runs: 1 }));
        let text = intervals_of(&RunMeta { chosen_trials: chosen.into_iter().collect(), ..meta });
        assert!(
            text.contains("(trials per process chosen by measurement, Kalibera & Jones: fanout 1, spsc 6). At these"),
            "{text}"
        );
        let single = intervals_of(&RunMeta { processes: Some(1), trials: Some(3), ..RunMeta::default() });
        assert!(single.contains("1 process × 3 trials"), "{single}");
    }
}
