//! The first screen's heat map: delivered events/s of every scenario
//! point × bus relative to the point's best lossless bus, with failed,
//! skipped, lossy and saturated cells marked.

use super::verdicts::Group;
use buslab_scenarios::results::{CellResult, CellStatus, Run};
use serde::Serialize;
use std::collections::BTreeMap;

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

/// Delivered events/s of a cell that ended Ok with a throughput pass.
fn delivered(cell: &CellResult) -> Option<f64> {
    let t = cell.throughput.as_ref().filter(|_| cell.status == CellStatus::Ok)?;
    Some(t.events_per_sec.median * (1.0 - t.loss_rate.unwrap_or(0.0)))
}

/// The heat map of `run`, whose verdict matrix is `groups`.
pub(crate) fn heat_map(run: &Run, groups: &[Group]) -> HeatMap {
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
    use crate::analysis::analyse;
    use crate::analysis::regression::Thresholds;
    use crate::analysis::tests::cell;
    use buslab_scenarios::results::{BusMeta, Latency, RunMeta, Saturation};

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
