//! The verdict matrix: for each scenario and sweep point, which bus wins
//! each headline metric, every bus's ratio to the best, and which buses the
//! data cannot tell apart from the winner.
//!
//! # The rule
//! Cells are grouped by scenario and sweep point (a *group*: every bus at,
//! say, `fanout` with `subscribers=500`). Within a group, for each of the
//! four headline metrics ([`COLUMNS`]), only cells that ended Ok and
//! measured the metric take part:
//!
//! - the **best** is the highest throughput, or the lowest p99 latency at
//!   the headline rate, allocations per event or instructions per event;
//! - each bus's **ratio** is its value divided by the best (≤ 1 for
//!   throughput, ≥ 1 for the costs); when the best cost is 0 and a bus's is
//!   not, the ratio is infinite;
//! - a bus is **tied** with the best when the data cannot tell them apart:
//!   - throughput measured by two or more interleaved processes on both
//!     sides ([`Throughput::processes`](buslab_scenarios::results::Throughput::processes)):
//!     the 95% interval of the ratio of the two buses' process medians,
//!     paired by round ([`stats::paired_ratio`]: drift of the machine hits
//!     both alike and cancels), contains 1, *or* the ratio is within the
//!     regression rule's noise band for throughput (5%), whichever is wider;
//!   - throughput otherwise (runs stored before repetitions): the 95%
//!     confidence intervals of the two medians overlap;
//!   - allocations and instructions (counts): the values differ by no more
//!     than the regression rule's threshold for the metric (1%; 5% for the
//!     instructions of a cell whose instruction pass ran several threads,
//!     see [`regression`](crate::analysis::regression));
//!   - p99 latency, one figure per run without an interval: the values
//!     differ by no more than the rule's default noise band (5%).
//!
//! A group's **winner** is the best bus when no other bus is tied with it;
//! otherwise the group reports the tie (every tied bus), never a winner the
//! data does not support.
//!
//! Two kinds of row are shown with their values but never best, tied or a
//! winner: the harness's references (the `null` floor), and *lossy* cells —
//! a bus that dropped any delivery in the cell (a lossy bus's throughput
//! counts publishes it did not deliver, and its latency leaves out what it
//! lost) — unless the scenario's file says loss is acceptable
//! (`loss_acceptable = true`, recorded in
//! [`RunMeta::loss_acceptable`](buslab_scenarios::results::RunMeta::loss_acceptable)),
//! where lossy cells are ranked beside the others and keep their badge.

use crate::analysis::regression::Thresholds;
use crate::analysis::stats;
use buslab_scenarios::metrics::{self, Metric};
use buslab_scenarios::results::{CellResult, CellStatus, Run};
use serde::Serialize;
use std::collections::BTreeMap;

/// A column of the matrix: a headline metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Column {
    /// The metric's slug, as in [`metrics::ALL`].
    pub slug: &'static str,
    /// The column heading.
    pub title: &'static str,
}

impl Column {
    /// The metric of the column (its unit, direction and rule).
    pub fn metric(&self) -> &'static Metric {
        metrics::by_slug(self.slug).expect("every column is a listed metric")
    }
}

/// The four headline metrics of the matrix, in column order.
pub const COLUMNS: [Column; 4] = [
    Column { slug: "throughput", title: "Throughput" },
    Column { slug: "latency-p99", title: "p99 at the headline rate" },
    Column { slug: "allocs-per-event", title: "Allocations/event" },
    Column { slug: "instructions-per-event", title: "Instructions/event" },
];

/// One bus's value of one metric in a group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    /// The value (the median, for throughput).
    pub value: f64,
    /// Lower bound of its 95% CI, where there is one.
    pub lower: Option<f64>,
    /// Upper bound of its 95% CI, where there is one.
    pub upper: Option<f64>,
    /// `value / best`.
    pub ratio: f64,
    /// This is the best value of the group.
    pub best: bool,
    /// The data cannot tell this value from the best (the best itself is
    /// not marked tied).
    pub tied: bool,
    /// The 95% interval of `ratio` from paired processes (throughput of
    /// two cells measured in the same interleaved rounds; see the module
    /// docs), where there is one.
    pub ratio_interval: Option<(f64, f64)>,
}

/// One bus in a group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The bus.
    pub bus: String,
    /// The bus is a peer crate's adapter.
    pub peer: bool,
    /// The row is a reference of the harness's (the `null` floor): shown
    /// with its values, never best, tied or a winner.
    pub reference: bool,
    /// What the bus adds to the floor of this point, ns per event (in-line
    /// buses, where the floor ran): [`CellResult::bus_cost_ns`].
    pub bus_cost_ns: Option<f64>,
    /// What the bus adds to the floor, instructions per event.
    pub bus_cost_ir: Option<f64>,
    /// The bus dropped deliveries in this cell
    /// ([`CellResult::lossy`]).
    pub lossy: bool,
    /// The share of deliveries it dropped in the throughput pass, where
    /// measured.
    pub loss_rate: Option<f64>,
    /// The row takes part in the ranking: not a reference, and not lossy
    /// unless the scenario accepts loss.
    pub ranked: bool,
    /// The cell's name ([`CellKey::name`](buslab_scenarios::results::CellKey::name)).
    pub cell: String,
    /// How the cell ended.
    pub status: CellStatus,
    /// One entry per [`COLUMNS`] metric, `None` when not measured (or the
    /// cell did not end Ok).
    pub entries: Vec<Option<Entry>>,
}

/// Who won one metric of a group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Outcome {
    /// One bus is best and no other is tied with it.
    Winner {
        /// The winning bus.
        bus: String,
        /// How much better than the runner-up: best / runner-up for
        /// throughput, runner-up / best for costs (≥ 1; infinite when the
        /// best cost is 0); `None` without a runner-up.
        margin: Option<f64>,
    },
    /// The best bus and those tied with it, best first.
    Tie {
        /// The tied buses.
        buses: Vec<String>,
    },
    /// No Ok cell measured the metric.
    NoData,
}

/// Every bus at one scenario and sweep point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    /// The scenario.
    pub scenario: String,
    /// The sweep point (`subscribers` → `500`); empty without a sweep.
    pub params: BTreeMap<String, String>,
    /// `subscribers=500, producers=2`, or empty.
    pub label: String,
    /// The scenario accepts loss: lossy rows are ranked.
    pub loss_acceptable: bool,
    /// One row per bus, in the run's order.
    pub rows: Vec<Row>,
    /// One outcome per [`COLUMNS`] metric.
    pub outcomes: Vec<Outcome>,
}

impl Group {
    /// The row of `bus`, if it is in the group.
    pub fn row(&self, bus: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.bus == bus)
    }
}

/// The groups of `run`, in the order their scenarios and points first
/// appear. `peers` lists the buses that are peer adapters.
pub fn matrix(run: &Run, thresholds: &Thresholds) -> Vec<Group> {
    let peers: Vec<&str> = run.meta.buses.iter().filter(|b| b.peer).map(|b| b.name.as_str()).collect();
    let references: Vec<&str> = run.meta.buses.iter().filter(|b| b.reference).map(|b| b.name.as_str()).collect();
    let mut groups: Vec<Group> = Vec::new();
    for cell in &run.cells {
        let position = groups
            .iter()
            .position(|g| g.scenario == cell.key.scenario && g.params == cell.key.params)
            .unwrap_or_else(|| {
                groups.push(Group {
                    scenario: cell.key.scenario.clone(),
                    params: cell.key.params.clone(),
                    label: label(&cell.key.params),
                    loss_acceptable: run.meta.loss_acceptable.contains(&cell.key.scenario),
                    rows: Vec::new(),
                    outcomes: Vec::new(),
                });
                groups.len() - 1
            });
        let reference = references.contains(&cell.key.bus.as_str());
        let lossy = cell.lossy();
        let ranked = !reference && (!lossy || groups[position].loss_acceptable);
        groups[position].rows.push(Row {
            bus: cell.key.bus.clone(),
            peer: peers.contains(&cell.key.bus.as_str()),
            reference,
            lossy,
            loss_rate: cell.loss_rate(),
            ranked,
            bus_cost_ns: cell.bus_cost_ns().map(|(ns, _, _)| ns),
            bus_cost_ir: cell.bus_cost_ir(),
            cell: cell.key.name(),
            status: cell.status.clone(),
            entries: Vec::new(),
        });
    }
    let cells: BTreeMap<String, &CellResult> = run.cells.iter().map(|c| (c.key.name(), c)).collect();
    for group in &mut groups {
        let members: Vec<Option<&CellResult>> =
            group.rows.iter().map(|r| cells.get(&r.cell).copied().filter(|c| c.status == CellStatus::Ok)).collect();
        for column in &COLUMNS {
            let outcome = judge_column(column, group, &members, thresholds);
            group.outcomes.push(outcome);
        }
    }
    groups
}

/// `k=v, k=v` of a sweep point.
pub fn label(params: &BTreeMap<String, String>) -> String {
    params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// A value, its CI, and whether its instruction pass was multi-threaded.
pub(crate) type Measured = (f64, Option<(f64, f64)>, bool);

/// Fills column `column` of every row and returns its outcome.
fn judge_column(column: &Column, group: &mut Group, members: &[Option<&CellResult>], config: &Thresholds) -> Outcome {
    let values: Vec<Option<Measured>> = members
        .iter()
        .map(|cell| {
            let cell = (*cell)?;
            let reading = column.metric().reading(cell)?;
            let value = reading.value;
            let ci = reading.interval.filter(|(l, u)| l <= u);
            let multithreaded = cell.instructions.as_ref().is_some_and(|i| i.multithreaded);
            Some((value, ci, multithreaded))
        })
        .collect();
    let better = |a: f64, b: f64| if column.metric().higher_is_better { a > b } else { a < b };
    // References, and lossy cells where loss is not acceptable, are shown
    // beside the buses, never ranked among them.
    let candidate: Vec<bool> = group.rows.iter().map(|r| r.ranked).collect();
    let mut best: Option<usize> = None;
    for (i, v) in values.iter().enumerate() {
        if let Some((value, ..)) = v
            && candidate[i]
            && best.is_none_or(|b| better(*value, values[b].expect("best has a value").0))
        {
            best = Some(i);
        }
    }
    let Some(best) = best else {
        for row in &mut group.rows {
            row.entries.push(None);
        }
        return Outcome::NoData;
    };
    let (best_value, best_ci, best_mt) = values[best].expect("best has a value");
    let processes: Vec<Option<Vec<Vec<f64>>>> = members.iter().map(|c| process_samples(column, *c)).collect();
    let mut tied = Vec::new();
    for (i, (row, v)) in group.rows.iter_mut().zip(&values).enumerate() {
        let Some((value, ci, multithreaded)) = *v else {
            row.entries.push(None);
            continue;
        };
        let ratio = if best_value == 0.0 { if value == 0.0 { 1.0 } else { f64::INFINITY } } else { value / best_value };
        let paired = match (&processes[i], &processes[best]) {
            (Some(a), Some(b)) if i != best && a.len() == b.len() => stats::paired_ratio(a, b),
            _ => None,
        };
        let is_tied = i != best
            && candidate[i]
            && match paired {
                Some((r, lower, upper)) => {
                    (lower <= 1.0 && 1.0 <= upper) || (r - 1.0).abs() <= config.for_metric(column.metric())
                }
                None => indistinguishable(column, (value, ci, multithreaded), (best_value, best_ci, best_mt), config),
            };
        if is_tied {
            tied.push(row.bus.clone());
        }
        let (lower, upper) = ci.unzip();
        let ratio_interval = paired.map(|(_, lower, upper)| (lower, upper));
        row.entries.push(Some(Entry { value, lower, upper, ratio, best: i == best, tied: is_tied, ratio_interval }));
    }
    let best_bus = group.rows[best].bus.clone();
    if tied.is_empty() {
        let runner_up = values
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != best && candidate[*i])
            .filter_map(|(_, v)| v.map(|v| v.0))
            .reduce(|a, b| if better(a, b) { a } else { b });
        let margin = runner_up.map(|r| {
            let (num, den) = if column.metric().higher_is_better { (best_value, r) } else { (r, best_value) };
            if den == 0.0 { f64::INFINITY } else { num / den }
        });
        Outcome::Winner { bus: best_bus, margin }
    } else {
        let mut buses = vec![best_bus];
        buses.extend(tied);
        Outcome::Tie { buses }
    }
}

/// The throughput of `a` over that of `b`, two cells of one point, with
/// its 95% interval: paired by round where both were measured by the same
/// number of interleaved processes ([`stats::paired_ratio`]), else the
/// bootstrap ratio of their medians ([`stats::ratio_of_medians`]).
pub fn throughput_ratio(a: &CellResult, b: &CellResult) -> Option<(f64, f64, f64)> {
    let column = &COLUMNS[0];
    if let (Some(pa), Some(pb)) = (process_samples(column, Some(a)), process_samples(column, Some(b)))
        && pa.len() == pb.len()
        && let Some(paired) = stats::paired_ratio(&pa, &pb)
    {
        return Some(paired);
    }
    let samples = |c: &CellResult| c.throughput.as_ref().map(|t| t.events_per_sec.samples.clone()).unwrap_or_default();
    stats::ratio_of_medians(&samples(a), &samples(b), stats::RESAMPLES)
}

/// The throughput samples of `cell` split by the process that measured
/// them, where `column` is throughput and two or more processes did.
fn process_samples(column: &Column, cell: Option<&CellResult>) -> Option<Vec<Vec<f64>>> {
    let throughput = cell?.throughput.as_ref().filter(|_| column.slug == "throughput")?;
    let groups = throughput.by_process(&throughput.events_per_sec);
    (groups.len() >= 2).then(|| groups.into_iter().map(<[f64]>::to_vec).collect())
}

/// Whether two values of `column` cannot be told apart (see the module docs).
pub(crate) fn indistinguishable(
    column: &Column,
    (a, a_ci, a_mt): Measured,
    (b, b_ci, b_mt): Measured,
    config: &Thresholds,
) -> bool {
    let within = |threshold: f64| {
        if a == b {
            return true;
        }
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        lo > 0.0 && hi / lo - 1.0 <= threshold
    };
    let spec = column.metric();
    match (a_ci, b_ci) {
        (Some((al, au)), Some((bl, bu))) => al <= bu && bl <= au,
        _ if spec.callgrind && (a_mt || b_mt) => within(config.for_metric(spec).max(config.multithreaded)),
        _ => within(config.for_metric(spec)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::{Allocations, BusMeta, CellKey, Estimate, Instructions, RunMeta, Throughput};

    fn cell(bus: &str, subscribers: &str, tput: (f64, f64, f64), allocs: f64, ir: f64) -> CellResult {
        let key = CellKey {
            scenario: "fanout".to_owned(),
            bus: bus.to_owned(),
            params: [("subscribers".to_owned(), subscribers.to_owned())].into(),
        };
        let mut c = CellResult::new(key, 1, 4);
        c.throughput = Some(Throughput {
            events_per_sec: Estimate { median: tput.0, lower: tput.1, upper: tput.2, samples: vec![tput.0] },
            ..Throughput::default()
        });
        c.allocations = Some(Allocations { allocs_per_event: allocs, ..Allocations::default() });
        c.instructions = Some(Instructions { ir_per_event: ir, ..Instructions::default() });
        c
    }

    fn run(cells: Vec<CellResult>) -> Run {
        let buses = ["a", "b", "c", "peer"]
            .iter()
            .map(|n| BusMeta { name: (*n).to_owned(), peer: *n == "peer", ..BusMeta::default() })
            .collect();
        Run { meta: RunMeta { buses, ..RunMeta::default() }, cells }
    }

    #[test]
    fn a_clear_winner_and_ratios() {
        let run = run(vec![
            cell("a", "1", (100.0, 95.0, 105.0), 0.0, 50.0),
            cell("b", "1", (50.0, 45.0, 55.0), 2.0, 100.0),
            cell("peer", "1", (10.0, 9.0, 11.0), 0.0, 49.9),
        ]);
        let groups = matrix(&run, &Thresholds::default());
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.label, "subscribers=1");
        assert_eq!(g.outcomes[0], Outcome::Winner { bus: "a".to_owned(), margin: Some(2.0) });
        let b = g.row("b").expect("b");
        let e = b.entries[0].as_ref().expect("throughput");
        assert!((e.ratio - 0.5).abs() < 1e-12 && !e.best && !e.tied);
        assert!(g.row("peer").expect("peer").peer);
        // Allocations: a and peer both 0 → a tie, b infinitely worse.
        assert_eq!(g.outcomes[2], Outcome::Tie { buses: vec!["a".to_owned(), "peer".to_owned()] });
        assert_eq!(b.entries[2].as_ref().expect("allocs").ratio, f64::INFINITY);
        // Instructions: 49.9 vs 50 is within 1%: a tie.
        assert_eq!(g.outcomes[3], Outcome::Tie { buses: vec!["peer".to_owned(), "a".to_owned()] });
        // No latency measured.
        assert_eq!(g.outcomes[1], Outcome::NoData);
    }

    /// A cell whose throughput came from one process per round, three
    /// trials each at `rounds[i]` ± 1%.
    fn repeated(bus: &str, rounds: &[f64]) -> CellResult {
        let mut c = cell(bus, "1", (0.0, 0.0, 0.0), 0.0, 50.0);
        let processes: Vec<Vec<f64>> = rounds.iter().map(|r| vec![r * 0.99, *r, r * 1.01]).collect();
        let t = c.throughput.as_mut().expect("throughput");
        t.events_per_sec = stats::across_processes(&processes);
        t.processes = vec![3; rounds.len()];
        c
    }

    #[test]
    fn paired_rounds_cancel_drift_and_a_difference_within_the_noise_band_is_a_tie() {
        // The machine drifts 2x between rounds; b is 10% slower than a in
        // every round. The intervals over process medians overlap, the
        // pairs do not.
        let drift = [100.0, 200.0, 150.0];
        let a = repeated("a", &drift);
        let b = repeated("b", &drift.map(|r| r / 1.1));
        let (ta, tb) =
            (&a.throughput.as_ref().expect("a").events_per_sec, &b.throughput.as_ref().expect("b").events_per_sec);
        assert!(ta.lower <= tb.upper && tb.lower <= ta.upper, "the unpaired intervals overlap: {ta:?} {tb:?}");
        let g = &matrix(&run(vec![a.clone(), b]), &Thresholds::default())[0];
        assert_eq!(g.outcomes[0], Outcome::Winner { bus: "a".to_owned(), margin: Some(1.1) });
        let (lower, upper) =
            g.row("b").and_then(|r| r.entries[0].as_ref()).and_then(|e| e.ratio_interval).expect("paired");
        assert!(lower < 1.0 / 1.1 + 1e-9 && upper > 1.0 / 1.1 - 1e-9 && upper < 1.0, "[{lower}, {upper}]");
        // 2% slower in every round: beyond doubt, but inside the 5% band.
        let c = repeated("b", &drift.map(|r| r / 1.02));
        let g = &matrix(&run(vec![a, c]), &Thresholds::default())[0];
        assert_eq!(g.outcomes[0], Outcome::Tie { buses: vec!["a".to_owned(), "b".to_owned()] });
    }

    #[test]
    fn the_floor_is_shown_never_ranked() {
        let mut r = run(vec![
            cell("null", "1", (500.0, 495.0, 505.0), 0.0, 20.0),
            cell("a", "1", (100.0, 95.0, 105.0), 0.0, 50.0),
            cell("b", "1", (99.0, 97.0, 101.0), 2.0, 100.0),
        ]);
        r.meta.buses.push(BusMeta { name: "null".to_owned(), reference: true, ..BusMeta::default() });
        let g = &matrix(&r, &Thresholds::default())[0];
        let null = g.row("null").expect("the floor is a row");
        assert!(null.reference && null.entries[0].as_ref().is_some_and(|e| !e.best && !e.tied && e.ratio == 5.0));
        // Without the floor, a and b tie on throughput and a wins the rest.
        assert_eq!(g.outcomes[0], Outcome::Tie { buses: vec!["a".to_owned(), "b".to_owned()] });
        assert_eq!(g.outcomes[3], Outcome::Winner { bus: "a".to_owned(), margin: Some(2.0) });
        assert_eq!(g.outcomes[2], Outcome::Winner { bus: "a".to_owned(), margin: Some(f64::INFINITY) });
    }

    #[test]
    fn overlapping_intervals_are_a_tie_and_failed_cells_take_no_part() {
        let mut failed = cell("c", "16", (1000.0, 990.0, 1010.0), 0.0, 1.0);
        failed.status = CellStatus::Failed("lost 3 events".to_owned());
        let run = run(vec![
            cell("a", "16", (100.0, 90.0, 110.0), 1.0, 50.0),
            cell("b", "16", (105.0, 95.0, 120.0), 1.0, 60.0),
            failed,
        ]);
        let g = &matrix(&run, &Thresholds::default())[0];
        assert_eq!(g.outcomes[0], Outcome::Tie { buses: vec!["b".to_owned(), "a".to_owned()] });
        assert!(g.row("c").expect("c").entries.iter().all(Option::is_none));
        assert_eq!(g.outcomes[3], Outcome::Winner { bus: "a".to_owned(), margin: Some(1.2) });
    }

    #[test]
    fn sweep_points_make_separate_groups() {
        let run = run(vec![
            cell("a", "1", (1.0, 1.0, 1.0), 0.0, 1.0),
            cell("a", "16", (1.0, 1.0, 1.0), 0.0, 1.0),
            cell("b", "1", (2.0, 2.0, 2.0), 0.0, 1.0),
        ]);
        let groups = matrix(&run, &Thresholds::default());
        assert_eq!(groups.iter().map(|g| g.rows.len()).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(groups[1].outcomes[0], Outcome::Winner { bus: "a".to_owned(), margin: None });
    }

    #[test]
    fn a_lossy_cell_is_never_a_winner_unless_the_scenario_accepts_loss() {
        let mut lossy = cell("b", "1", (900.0, 890.0, 910.0), 0.0, 10.0);
        lossy.dropped = 782;
        if let Some(t) = lossy.throughput.as_mut() {
            t.loss_rate = Some(0.25);
        }
        let mut r = run(vec![cell("a", "1", (100.0, 95.0, 105.0), 1.0, 50.0), lossy]);
        let g = &matrix(&r, &Thresholds::default())[0];
        let b = g.row("b").expect("the lossy row is shown");
        assert!(b.lossy && !b.ranked && b.loss_rate == Some(0.25));
        assert!(b.entries[0].as_ref().is_some_and(|e| !e.best && !e.tied), "shown with its value, never best");
        for outcome in &g.outcomes[..] {
            assert!(!matches!(outcome, Outcome::Winner { bus, .. } if bus == "b"), "{outcome:?}");
        }
        assert_eq!(g.outcomes[0], Outcome::Winner { bus: "a".to_owned(), margin: None });

        r.meta.loss_acceptable.insert("fanout".to_owned());
        let g = &matrix(&r, &Thresholds::default())[0];
        assert!(g.loss_acceptable && g.row("b").expect("b").ranked);
        assert_eq!(g.outcomes[0], Outcome::Winner { bus: "b".to_owned(), margin: Some(9.0) });
    }
}
