//! Slices of the matrix for several machines: `buslab run --shard I/N`.
//!
//! A nightly that outgrows one runner runs the matrix as `N` jobs, job `I`
//! running `--shard I/N`, and merges their runs into one with `buslab
//! import` (see [`Store::import_run`](crate::store::Store::import_run)).
//! For that to work, every job must cut the matrix the same way without
//! talking to the others, so the cut depends only on what every machine
//! agrees on:
//!
//! - the planned cells (bus × scenario × sweep point) of the same buslab
//!   build and scenario files, named by [`CellKey::name`];
//! - each cell's [`expected_cost`], computed from the scenario, the sweep
//!   point, the bus's capabilities and the pass budget — never from the
//!   machine (its core count, which decides some skips, is left out).
//!
//! The cut moves whole scenario points: every bus at a point (and the
//! point's `null` floor, which its buses are read against, and the shared
//! offered rates of its latency pass) stays in one slice. It is greedy
//! "longest processing time first": points sorted by decreasing cost (the
//! sum of their cells'; ties by name) go one by one to the slice with the
//! least cost so far (ties to the lowest slice). Every cell goes to exactly
//! one slice; the slices together are the whole matrix; and no slice
//! exceeds an even share of the total by more than the costliest point.
//! Within a slice, cells run in plan order.
//!
//! [`CellKey::name`]: buslab_scenarios::results::CellKey::name

use crate::probe::Budget;
use crate::runner::{PlannedCell, skip_reason};
use std::fmt;
use std::str::FromStr;

/// The most slices a matrix can be cut into.
pub const MAX_SHARDS: u32 = 1000;

/// One slice of the matrix: `I/N`, the `I`-th (1-based) of `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    /// Which slice, 1 ..= `count`.
    pub index: u32,
    /// How many slices.
    pub count: u32,
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = String;

    /// Parses `I/N` with `1 <= I <= N <= MAX_SHARDS`.
    fn from_str(s: &str) -> Result<ShardSpec, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("expected I/N (e.g. 2/4), got `{s}`"))?;
        let number = |x: &str| x.trim().parse::<u32>().map_err(|e| format!("`{x}` in `{s}`: {e}"));
        let (index, count) = (number(i)?, number(n)?);
        if count == 0 || count > MAX_SHARDS {
            return Err(format!("the number of shards must be 1 to {MAX_SHARDS}, got {count}"));
        }
        if index == 0 || index > count {
            return Err(format!("the shard index must be 1 to {count} (shards count from 1), got {index}"));
        }
        Ok(ShardSpec { index, count })
    }
}

/// Native nanoseconds of harness work per published event, beside the
/// listeners' (a rough figure for the cost model only).
const PUBLISH_NS: u64 = 50;
/// Native nanoseconds per delivery before the listener's own work.
const DELIVERY_NS: u64 = 20;
/// Native nanoseconds to generate one CloudEvents document (building and
/// serialising a JSON value of about 1 KB).
const GENERATE_NS: u64 = 10_000;
/// How much slower code runs under callgrind with cache and branch
/// simulation.
const CALLGRIND_SLOWDOWN: u64 = 50;
/// Starting a child process (and valgrind, for the instruction pass), ms.
const PROBE_START_MS: u64 = 50;
const VALGRIND_START_MS: u64 = 1_500;
/// The passes of a cell, each a child process.
const PASSES: u64 = 5;

/// What a cell is expected to cost to measure, in milliseconds of a
/// nominal machine: a model for balancing slices, not a prediction. The
/// timed passes cost their budgeted durations (throughput trials plus a
/// warm-up and a calibration, in each of its processes, the latency pass's loads — each a warm-up
/// and a trial —, the profile); the
/// allocation and instruction passes cost in proportion to the events they
/// publish (a warm-up of N, then N and 2N, for allocations; the budget's
/// [`callgrind_events_for`](Budget::callgrind_events_for) the cell's
/// fan-out and listener work, plus a warm-up of up to 1000, for
/// instructions) times
/// producers times the native cost of an event — its publish and its
/// deliveries, with any listener work — slowed down by callgrind for the
/// latter. Each pass is a child process to start. A cell the bus's
/// capabilities exclude costs 1. The machine's core count is not used, so
/// that every machine computes the same cost.
///
/// A `cloudevents` cell also decodes every document before it publishes
/// it, which costs far more than a small event's publish: its native cost
/// of an event adds a decode. Its throughput pass adds, beside each
/// budgeted decode + route trial, a decode-only trial of as many documents,
/// which lasts the decode's share of that trial. It has no latency pass
/// (one child process fewer). And each of its child processes first
/// prepares the scenario's corpus: its `documents` generated, each decoded
/// twice (to classify it, to learn its type) — under callgrind, too, in the
/// instruction pass.
pub fn expected_cost(cell: &PlannedCell, budget: &Budget) -> u64 {
    if skip_reason(&cell.bus, &cell.scenario, cell.point, usize::MAX).is_some() {
        return 1;
    }
    let s = &cell.scenario;
    let producers = cell.point.producers as u64;
    let subscribers = cell.point.subscribers as u64;
    let slow = s.slow.as_ref().map_or(0, |w| w.count.saturating_mul(w.work_ns));
    // The scenario's generated documents, for a cloudevents cell.
    let documents = cell.point.cloudevents.map(|_| s.cloudevents.as_ref().map_or(0, |ce| ce.documents as u64));
    let decode_ns = if documents.is_some() { crate::probe::DECODE_NS } else { 0 };
    // Native ns per published event, across its deliveries.
    let per_event = PUBLISH_NS
        .saturating_add(subscribers.saturating_mul(DELIVERY_NS.saturating_add(s.listener_work_ns)))
        .saturating_add(slow)
        .saturating_add(decode_ns);
    let work_ms = |events: u64| events.saturating_mul(producers).saturating_mul(per_event) / 1_000_000;
    let prepare_ms = documents.unwrap_or(0).saturating_mul(GENERATE_NS + 2 * crate::probe::DECODE_NS) / 1_000_000;
    let passes = if documents.is_some() { PASSES - 1 } else { PASSES };
    let trials = budget.trials as u64;
    let processes = budget.processes.max(1) as u64;
    let throughput = processes.saturating_mul(trials + 2).saturating_mul(budget.trial_ms);
    // Each decode-only trial decodes what one decode + route trial of
    // `trial_ms` decodes and routes.
    let decode_only =
        processes.saturating_mul(trials).saturating_mul(budget.trial_ms).saturating_mul(decode_ns) / per_event;
    let loads = (budget.latency_grid.rates + crate::rates::BEYOND_RATES) as u64;
    // Each load of each latency process is a warm-up of a quarter of its
    // trial (at least 20 ms), then the trial.
    let latency_processes = budget.latency_processes.max(1) as u64;
    let latency_trial = budget.latency_trial_ms();
    let latency = if documents.is_some() || latency_trial == 0 {
        0
    } else {
        loads * latency_processes * (latency_trial + (latency_trial / 4).max(20))
    };
    let allocations = work_ms(budget.alloc_events.saturating_mul(4));
    let measured = budget.callgrind_events_for(&cell.scenario, cell.point);
    let callgrind = work_ms(measured.saturating_add(measured.min(1_000))).saturating_add(prepare_ms);
    let instructions = VALGRIND_START_MS.saturating_add(callgrind.saturating_mul(CALLGRIND_SLOWDOWN));
    // The other passes prepare natively; the throughput and latency passes
    // run one child process per repetition.
    let children = passes + processes - 1 + if documents.is_some() { 0 } else { latency_processes - 1 };
    let starts = children.saturating_mul(PROBE_START_MS).saturating_add((children - 1).saturating_mul(prepare_ms));
    [throughput, decode_only, latency, allocations, instructions, budget.profile_ms]
        .into_iter()
        .fold(starts, u64::saturating_add)
}

/// Assigns each of `cells` (name, cost) to a slice 1 ..= `count` (the
/// [module docs](self) describe how); returns the slice of each cell, in
/// the order given. The result does not depend on the order of `cells`.
pub fn assign(cells: &[(String, u64)], count: u32) -> Vec<u32> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|&a, &b| cells[b].1.cmp(&cells[a].1).then_with(|| cells[a].0.cmp(&cells[b].0)));
    let mut load = vec![0_u64; count as usize];
    let mut slice = vec![0_u32; cells.len()];
    for i in order {
        let (least, _) = load.iter().enumerate().min_by_key(|&(j, &l)| (l, j)).expect("at least one slice");
        load[least] = load[least].saturating_add(cells[i].1);
        slice[i] = least as u32 + 1;
    }
    slice
}

/// The cells of `plan` that slice `spec` runs, in plan order, and the
/// expected cost of the slice and of the whole plan.
pub fn select(plan: Vec<PlannedCell>, spec: ShardSpec, budget: &Budget) -> (Vec<PlannedCell>, u64, u64) {
    let costs: Vec<u64> = plan.iter().map(|c| expected_cost(c, budget)).collect();
    let total = costs.iter().fold(0, |a: u64, &c| a.saturating_add(c));
    // Points by name, with the sum of their cells' costs.
    let mut points: Vec<(String, u64)> = Vec::new();
    let point_of: Vec<usize> = plan
        .iter()
        .zip(&costs)
        .map(|(cell, &cost)| {
            let name = point_name(cell);
            match points.iter().position(|(n, _)| *n == name) {
                Some(i) => {
                    points[i].1 = points[i].1.saturating_add(cost);
                    i
                }
                None => {
                    points.push((name, cost));
                    points.len() - 1
                }
            }
        })
        .collect();
    let slices = assign(&points, spec.count);
    let mut mine = 0_u64;
    let cells = plan
        .into_iter()
        .zip(point_of.iter().zip(&costs))
        .filter(|(_, (point, _))| slices[**point] == spec.index)
        .map(|(cell, (_, cost))| {
            mine = mine.saturating_add(*cost);
            cell
        })
        .collect();
    (cells, mine, total)
}

/// A cell's scenario point, named the same way on every machine.
fn point_name(cell: &PlannedCell) -> String {
    cell.key.point()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn catalog_plan() -> Vec<PlannedCell> {
        let scenarios = buslab_scenarios::catalog().expect("the catalog parses");
        runner::plan(&scenarios, &buslab_impls::all(), &crate::reference::all())
    }

    #[test]
    fn shard_specs_parse_and_refuse_nonsense() {
        assert_eq!("2/4".parse::<ShardSpec>(), Ok(ShardSpec { index: 2, count: 4 }));
        assert_eq!("1/1".parse::<ShardSpec>().map(|s| s.to_string()), Ok("1/1".to_owned()));
        for bad in ["0/4", "5/4", "1/0", "4", "a/b", "-1/2", "1/1001", ""] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
    }

    /// Every slicing of the catalog's matrix into 1 to 9 slices: the slices
    /// are disjoint, cover the matrix, keep plan order, and are the same
    /// when computed again or from a shuffled plan.
    #[test]
    fn the_catalog_slices_are_disjoint_cover_the_matrix_and_are_stable() {
        let plan = catalog_plan();
        let names: Vec<String> = plan.iter().map(|c| c.key.name()).collect();
        assert!(names.len() > 20, "the catalog plans a real matrix");
        for budget in [Budget::DEFAULT, Budget::QUICK] {
            for count in 1..=9 {
                let mut seen = Vec::new();
                let mut total_seen = 0;
                for index in 1..=count {
                    let spec = ShardSpec { index, count };
                    let (cells, cost, total) = select(plan.clone(), spec, &budget);
                    let again = select(plan.clone(), spec, &budget).0;
                    let slice: Vec<String> = cells.iter().map(|c| c.key.name()).collect();
                    assert_eq!(slice, again.iter().map(|c| c.key.name()).collect::<Vec<_>>(), "deterministic");
                    let positions: Vec<usize> =
                        slice.iter().map(|n| names.iter().position(|m| m == n).expect("planned")).collect();
                    assert!(positions.windows(2).all(|w| w[0] < w[1]), "plan order within a slice");
                    assert!(count == 1 || cost < total, "{spec}: a slice of several is less than the whole");
                    let mut by_point: std::collections::BTreeMap<String, u64> = Default::default();
                    for c in &plan {
                        *by_point.entry(point_name(c)).or_default() += expected_cost(c, &budget);
                    }
                    let costliest = by_point.values().copied().max().unwrap_or(0);
                    assert!(
                        cost <= total / u64::from(count) + costliest,
                        "{spec}: {cost} of {total} is beyond an even share plus the costliest point ({costliest})"
                    );
                    // Whole points: a slice holds every cell of its points.
                    for c in &cells {
                        let point = point_name(c);
                        let all = plan.iter().filter(|p| point_name(p) == point).count();
                        assert_eq!(cells.iter().filter(|m| point_name(m) == point).count(), all, "{spec}: {point}");
                    }
                    total_seen += cost;
                    assert_eq!(total, plan.iter().map(|c| expected_cost(c, &budget)).sum::<u64>());
                    seen.extend(slice);
                }
                let distinct: BTreeSet<&String> = seen.iter().collect();
                assert_eq!(seen.len(), names.len(), "{count} slices: every cell exactly once");
                assert_eq!(distinct, names.iter().collect(), "{count} slices cover the matrix");
                assert_eq!(total_seen, plan.iter().map(|c| expected_cost(c, &budget)).sum::<u64>());
            }
        }
        // Shuffled input, same answer.
        let costed: Vec<(String, u64)> =
            plan.iter().map(|c| (c.key.name(), expected_cost(c, &Budget::DEFAULT))).collect();
        let mut reversed = costed.clone();
        reversed.reverse();
        let mut back = assign(&reversed, 4);
        back.reverse();
        assert_eq!(assign(&costed, 4), back);
    }

    #[test]
    fn the_cost_model_ranks_heavy_cells_above_light_ones() {
        let plan = catalog_plan();
        let cost = |name: &str| {
            let cell = plan.iter().find(|c| c.key.name() == name).unwrap_or_else(|| panic!("{name} is planned"));
            expected_cost(cell, &Budget::DEFAULT)
        };
        assert!(cost("fanout/channel/subscribers=500") > cost("fanout/channel/subscribers=1"));
        assert!(cost("slow-subscriber/channel") > cost("spsc/channel"));
        // A cell the bus's capabilities exclude costs next to nothing; one
        // excluded by this machine's cores costs in full (every machine
        // must compute the same costs).
        let mut excluded =
            plan.iter().find(|c| c.key.name() == "fanout/channel/subscribers=500").expect("planned").clone();
        excluded.bus.capabilities.max_subscribers = Some(64);
        assert_eq!(expected_cost(&excluded, &Budget::DEFAULT), 1);
        let mut oversubscribed =
            plan.iter().find(|c| c.key.name() == "mpmc/channel/producers=4").expect("planned").clone();
        oversubscribed.skip = Some("4 producers exceed 2 cores".to_owned());
        assert!(expected_cost(&oversubscribed, &Budget::DEFAULT) > 1000);
    }

    /// The catalog's first cloudevents cell, and the same cell with small
    /// events instead (no CloudEvents axes nor settings).
    fn cloudevents_cell_and_small_twin() -> (PlannedCell, PlannedCell) {
        let ce = catalog_plan()
            .into_iter()
            .find(|c| c.point.cloudevents.is_some() && c.skip.is_none())
            .expect("the catalog plans cloudevents cells");
        let mut small = ce.clone();
        let mut scenario = (*small.scenario).clone();
        scenario.payload = buslab_scenarios::spec::PayloadKind::Small;
        scenario.cloudevents = None;
        small.scenario = std::sync::Arc::new(scenario);
        small.point.cloudevents = None;
        (ce, small)
    }

    /// With more of something a pass does, the cell's cost grows by how
    /// much (`more` is applied to the budget or the cell).
    fn growth(cell: &PlannedCell, budget: &Budget, more: impl Fn(&mut PlannedCell, &mut Budget)) -> i64 {
        let (mut cell2, mut budget2) = (cell.clone(), *budget);
        more(&mut cell2, &mut budget2);
        expected_cost(&cell2, &budget2) as i64 - expected_cost(cell, budget) as i64
    }

    /// A cloudevents cell decodes every document: it costs more than the
    /// same cell publishing small events (their latency pass aside), the
    /// more so the more documents
    /// its scenario generates; each throughput trial costs it more than a
    /// small cell (the decode-only trial beside it); and the latency pass,
    /// which it does not run, costs it nothing.
    #[test]
    fn the_cost_model_charges_cloudevents_cells_for_decoding() {
        let (ce, small) = cloudevents_cell_and_small_twin();
        for budget in [Budget::DEFAULT, Budget::QUICK] {
            // The latency pass aside: its five loads can outweigh the
            // decoding at the quick budget.
            let no_latency = Budget { latency_ms: 0, ..budget };
            let (ce_cost, small_cost) = (expected_cost(&ce, &budget), expected_cost(&small, &no_latency));
            assert!(ce_cost > small_cost, "{}: {ce_cost} <= {small_cost} with small events", ce.key.name());
            let more_documents = growth(&ce, &budget, |cell, _| {
                let mut scenario = (*cell.scenario).clone();
                scenario.cloudevents.as_mut().expect("a cloudevents scenario").documents *= 10;
                cell.scenario = std::sync::Arc::new(scenario);
            });
            assert!(more_documents > 0, "ten times the documents cost nothing more");
            let one_more_trial = |b: &mut Budget| b.trials += 1;
            let (ce_trial, small_trial) =
                (growth(&ce, &budget, |_, b| one_more_trial(b)), growth(&small, &budget, |_, b| one_more_trial(b)));
            assert!(
                ce_trial >= small_trial + budget.trial_ms as i64 / 2,
                "a throughput trial of a cloudevents cell costs {ce_trial}, of a small one {small_trial}"
            );
            let longer_latency = |_: &mut PlannedCell, b: &mut Budget| b.latency_ms *= 2;
            assert_eq!(growth(&ce, &budget, longer_latency), 0, "cloudevents cells run no latency pass");
            assert!(growth(&small, &budget, longer_latency) > 0);
        }
    }

    /// Cut in two, the catalog's matrix gives each half its cloudevents
    /// cells' share, within the greedy bound (an even share plus the
    /// costliest point).
    #[test]
    fn two_slices_of_the_catalog_share_its_cloudevents_cells() {
        let plan = catalog_plan();
        let budget = Budget::QUICK;
        let total: u64 = plan.iter().map(|c| expected_cost(c, &budget)).sum();
        let mut by_point: std::collections::BTreeMap<String, u64> = Default::default();
        for c in &plan {
            *by_point.entry(point_name(c)).or_default() += expected_cost(c, &budget);
        }
        let costliest = by_point.values().copied().max().expect("points");
        let is_ce = |c: &PlannedCell| c.point.cloudevents.is_some() && c.skip.is_none();
        let ce_cells = plan.iter().filter(|c| is_ce(c)).count();
        for index in 1..=2 {
            let (cells, cost, _) = select(plan.clone(), ShardSpec { index, count: 2 }, &budget);
            assert!(cost <= total / 2 + costliest, "slice {index}/2: {cost} of {total}");
            let mine = cells.iter().filter(|c| is_ce(c)).count();
            assert!(mine > 0 && mine < ce_cells, "slice {index}/2 runs {mine} of {ce_cells} cloudevents cells");
        }
    }

    proptest! {
        /// Random costs: each cell in exactly one slice, independent of the
        /// input order, and no slice above an even share plus the costliest
        /// cell (the greedy bound).
        #[test]
        fn slices_are_a_balanced_partition(
            costs in proptest::collection::vec(0_u64..10_000, 0..60),
            count in 1_u32..8,
            rotate in 0_usize..60,
        ) {
            let cells: Vec<(String, u64)> = costs.iter().enumerate().map(|(i, &c)| (format!("cell-{i:03}"), c)).collect();
            let slices = assign(&cells, count);
            prop_assert_eq!(slices.len(), cells.len());
            prop_assert!(slices.iter().all(|&s| (1..=count).contains(&s)));
            let mut rotated = cells.clone();
            let k = if cells.is_empty() { 0 } else { rotate % cells.len() };
            rotated.rotate_left(k);
            let mut back = assign(&rotated, count);
            back.rotate_right(k);
            prop_assert_eq!(&slices, &back);
            let total: u64 = costs.iter().sum();
            let max = costs.iter().copied().max().unwrap_or(0);
            for s in 1..=count {
                let load: u64 = cells.iter().zip(&slices).filter(|(_, x)| **x == s).map(|(c, _)| c.1).sum();
                prop_assert!(load <= total / u64::from(count) + max, "slice {} has {} of {}", s, load, total);
            }
        }
    }
}
