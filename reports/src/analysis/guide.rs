//! "Choosing a dispatch strategy": a guide written from one run's data.
//!
//! Every claim is derived from the [verdict matrix](crate::analysis::verdicts) and
//! names the cells that support it; where the matrix reports a tie, the
//! guide says the data cannot tell the buses apart instead of naming a
//! winner. Three kinds of statement:
//!
//! - per scenario and sweep point, who wins each headline metric and by
//!   how much (or who is tied);
//! - per scenario and sweep point, whether the best home-grown strategy
//!   beats the best peer crate on throughput: the ratio of their medians
//!   with a 95% interval, paired by interleaved round where both ran
//!   several processes ([`throughput_ratio`](crate::analysis::verdicts::throughput_ratio)); "beats"
//!   only when the whole interval lies above 1, "loses" when below, and
//!   "cannot be told apart" otherwise;
//! - per bus, where zero allocations per event held (measured by the
//!   allocation pass), and where not;
//! - per CloudEvents scenario, what each choice (decoder, representation,
//!   extension handling, router) is worth over matched pairs of cells, and
//!   all of them together ([`levers`]).

use crate::analysis::levers::{self, LEVERS};
use crate::analysis::verdicts::{COLUMNS, Column, Group, Outcome};
use crate::render::format;
use buslab_scenarios::results::{CellResult, CellStatus, Run};
use serde::Serialize;
use std::collections::BTreeMap;

/// A statement and the cells it rests on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Claim {
    /// The metric it is about (a [`COLUMNS`] slug), `peers`, or `loss`.
    pub topic: String,
    /// The statement, in plain text.
    pub text: String,
    /// The names of the cells that support it.
    pub cells: Vec<String>,
    /// The data cannot decide (a tie, or no data).
    pub undecided: bool,
}

/// The claims about one sweep point of one scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// `subscribers=500`, or empty without a sweep.
    pub label: String,
    /// What wins, metric by metric, and home-grown against peers.
    pub claims: Vec<Claim>,
}

/// The claims about one scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Section {
    /// The scenario.
    pub scenario: String,
    /// Its description, from its file.
    pub description: String,
    /// One entry per sweep point.
    pub points: Vec<Point>,
}

/// Where one bus allocated nothing per event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ZeroAllocation {
    /// The bus.
    pub bus: String,
    /// It is a peer crate's adapter.
    pub peer: bool,
    /// Cells whose allocation pass measured 0 allocations per event.
    pub zero: Vec<String>,
    /// Cells that allocated, with their allocations per event.
    pub nonzero: Vec<(String, f64)>,
}

/// The whole guide.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Guide {
    /// One section per scenario, in run order.
    pub sections: Vec<Section>,
    /// One entry per bus with an allocation pass.
    pub zero_allocation: Vec<ZeroAllocation>,
    /// The run has both home-grown buses and peers.
    pub has_peers: bool,
}

/// Writes the guide for `run` from its verdict matrix `groups`.
pub fn guide(run: &Run, groups: &[Group]) -> Guide {
    let cells: BTreeMap<String, &CellResult> = run.cells.iter().map(|c| (c.key.name(), c)).collect();
    let peer_names: Vec<&str> = run.meta.buses.iter().filter(|b| b.peer).map(|b| b.name.as_str()).collect();
    let references: Vec<&str> = run.meta.buses.iter().filter(|b| b.reference).map(|b| b.name.as_str()).collect();
    let has_peers = !peer_names.is_empty()
        && run
            .cells
            .iter()
            .any(|c| !peer_names.contains(&c.key.bus.as_str()) && !references.contains(&c.key.bus.as_str()));
    let mut sections: Vec<Section> = Vec::new();
    for group in groups {
        // CloudEvents cells have no latency pass by design: no claim that
        // it is missing.
        let cloudevents = group.rows.iter().any(|r| cells.get(&r.cell).is_some_and(|c| c.cloudevents.is_some()));
        let mut claims: Vec<Claim> = COLUMNS
            .iter()
            .zip(&group.outcomes)
            .filter(|(c, o)| !(cloudevents && c.slug == "latency-p99" && matches!(o, Outcome::NoData)))
            .map(|(c, o)| claim(c, o, group))
            .collect();
        if has_peers && let Some(claim) = home_vs_peer(group, &cells) {
            claims.push(claim);
        }
        if let Some(claim) = losses(group) {
            claims.push(claim);
        }
        let point = Point { label: group.label.clone(), claims };
        match sections.iter_mut().find(|s| s.scenario == group.scenario) {
            Some(section) => section.points.push(point),
            None => sections.push(Section {
                scenario: group.scenario.clone(),
                description: run.meta.scenario_descriptions.get(&group.scenario).cloned().unwrap_or_default(),
                points: vec![point],
            }),
        }
    }
    for section in &mut sections {
        let cells: Vec<&CellResult> =
            run.cells.iter().filter(|c| c.key.scenario == section.scenario && c.cloudevents.is_some()).collect();
        let claims = cloudevents_claims(&cells);
        if !claims.is_empty() {
            section.points.insert(0, Point { label: "What each choice is worth (decode + route)".to_owned(), claims });
        }
    }
    Guide { sections, zero_allocation: zero_allocation(run, &peer_names, &references), has_peers }
}

/// The [levers](crate::analysis::levers) of one CloudEvents scenario's `cells`, and
/// their span; nothing for other scenarios.
fn cloudevents_claims(cells: &[&CellResult]) -> Vec<Claim> {
    let claim = |(text, cells, undecided): (String, Vec<String>, bool)| Claim {
        topic: "cloudevents".to_owned(),
        text,
        cells,
        undecided,
    };
    let mut claims: Vec<Claim> =
        LEVERS.iter().filter_map(|lever| levers::verdict(lever, &levers::pairs(cells, lever))).map(claim).collect();
    if !claims.is_empty()
        && let Some(span) = levers::span(cells)
    {
        claims.push(claim(span));
    }
    claims
}

/// The cell of `bus` in `group`.
fn cell_of(group: &Group, bus: &str) -> String {
    group.row(bus).map(|r| r.cell.clone()).unwrap_or_default()
}

/// The value of `column` for `bus` in `group`, formatted.
fn shown(column: &Column, group: &Group, bus: &str) -> String {
    let index = COLUMNS.iter().position(|c| c.slug == column.slug).expect("a matrix column");
    group
        .row(bus)
        .and_then(|r| r.entries[index].as_ref())
        .map(|e| {
            let value = format::metric_value(column.slug, e.value);
            match (e.lower, e.upper) {
                (Some(l), Some(u)) => format!(
                    "{value} (95% CI {}–{})",
                    format::metric_value(column.slug, l),
                    format::metric_value(column.slug, u)
                ),
                _ => value,
            }
        })
        .unwrap_or_default()
}

/// The claim of one outcome.
fn claim(column: &Column, outcome: &Outcome, group: &Group) -> Claim {
    let what = match column.slug {
        "throughput" => "Highest throughput",
        "latency-p99" => "Lowest p99 latency at the headline rate",
        "allocs-per-event" => "Fewest allocations per event",
        _ => "Fewest instructions per event",
    };
    let ok_cells = || {
        let index = COLUMNS.iter().position(|c| c.slug == column.slug).expect("a matrix column");
        group.rows.iter().filter(|r| r.entries[index].is_some()).map(|r| r.cell.clone()).collect::<Vec<_>>()
    };
    match outcome {
        Outcome::Winner { bus, margin } => {
            let margin = match margin {
                Some(m) if m.is_infinite() => ", where every other bus allocates".to_owned(),
                Some(m) => format!(", {} ahead of the runner-up", format::ratio(*m)),
                None => " (the only bus measured)".to_owned(),
            };
            Claim {
                topic: column.slug.to_owned(),
                text: format!("{what}: {bus}, {}{margin}.", shown(column, group, bus)),
                cells: ok_cells(),
                undecided: false,
            }
        }
        Outcome::Tie { buses } => {
            let why = match column.slug {
                "throughput" => "their 95% confidence intervals overlap",
                "latency-p99" => "within the 5% noise band of a single-figure metric",
                _ => "within the regression threshold of the count",
            };
            let zero = column.slug == "allocs-per-event"
                && group.row(&buses[0]).and_then(|r| r.entries[2].as_ref()).is_some_and(|e| e.value == 0.0);
            let text = if zero {
                format!("{what}: {} all allocate nothing per event.", buses.join(", "))
            } else {
                format!(
                    "{what}: the data cannot tell {} apart ({why}); best measured {} at {}.",
                    buses.join(", "),
                    buses[0],
                    shown(column, group, &buses[0])
                )
            };
            Claim {
                topic: column.slug.to_owned(),
                text,
                cells: buses.iter().map(|b| cell_of(group, b)).collect(),
                undecided: !zero,
            }
        }
        Outcome::NoData => Claim {
            topic: column.slug.to_owned(),
            text: format!("{what}: not measured here (the pass was skipped or every cell failed)."),
            cells: Vec::new(),
            undecided: true,
        },
    }
}

/// The buses that dropped deliveries at this point, and what that means for
/// the verdicts above.
fn losses(group: &Group) -> Option<Claim> {
    let lossy: Vec<_> = group.rows.iter().filter(|r| r.lossy && !r.reference).collect();
    if lossy.is_empty() {
        return None;
    }
    let each: Vec<String> = lossy
        .iter()
        .map(|r| match r.loss_rate {
            Some(rate) if rate > 0.0 => format!("{} ({} of deliveries lost)", r.bus, format::unsigned_percent(rate)),
            _ => format!("{} (lost deliveries)", r.bus),
        })
        .collect();
    let text = if group.loss_acceptable {
        format!(
            "Lossy here, ranked because this scenario accepts loss: {}. Their throughput counts publishes, not \
             deliveries.",
            each.join(", ")
        )
    } else {
        format!(
            "Lossy here, so never a winner or a recommendation (the scenario does not set `loss_acceptable`): {}.",
            each.join(", ")
        )
    };
    Some(Claim {
        topic: "loss".to_owned(),
        text,
        cells: lossy.iter().map(|r| r.cell.clone()).collect(),
        undecided: false,
    })
}

/// The best home-grown bus against the best peer on throughput.
fn home_vs_peer(group: &Group, cells: &BTreeMap<String, &CellResult>) -> Option<Claim> {
    let best = |peer: bool| {
        group
            .rows
            .iter()
            .filter(|r| r.peer == peer && r.ranked && r.status == CellStatus::Ok)
            .filter_map(|r| r.entries[0].as_ref().map(|e| (r, e.value)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(r, _)| r)
    };
    let (home, peer) = (best(false)?, best(true)?);
    let (ratio, lower, upper) =
        crate::analysis::verdicts::throughput_ratio(cells.get(&home.cell)?, cells.get(&peer.cell)?)?;
    let interval = format!("{} (95% CI {}–{})", format::ratio(ratio), format::ratio(lower), format::ratio(upper));
    let (text, undecided) = if lower > 1.0 {
        (format!("Home-grown beats the best peer: {} is {interval} the throughput of {}.", home.bus, peer.bus), false)
    } else if upper < 1.0 {
        (format!("The best peer wins: {} reaches only {interval} the throughput of {}.", home.bus, peer.bus), false)
    } else {
        (
            format!(
                "The best home-grown bus, {}, and the best peer, {}, cannot be told apart on throughput: {interval}.",
                home.bus, peer.bus
            ),
            true,
        )
    };
    Some(Claim { topic: "peers".to_owned(), text, cells: vec![home.cell.clone(), peer.cell.clone()], undecided })
}

/// Per bus under test (references left out), the cells with and without
/// allocations per event.
fn zero_allocation(run: &Run, peers: &[&str], references: &[&str]) -> Vec<ZeroAllocation> {
    let mut out: Vec<ZeroAllocation> = Vec::new();
    for cell in run.cells.iter().filter(|c| c.status == CellStatus::Ok && !references.contains(&c.key.bus.as_str())) {
        let Some(a) = &cell.allocations else { continue };
        let entry = match out.iter().position(|z| z.bus == cell.key.bus) {
            Some(i) => &mut out[i],
            None => {
                out.push(ZeroAllocation {
                    bus: cell.key.bus.clone(),
                    peer: peers.contains(&cell.key.bus.as_str()),
                    zero: Vec::new(),
                    nonzero: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        if a.allocs_per_event == 0.0 {
            entry.zero.push(cell.key.name());
        } else {
            entry.nonzero.push((cell.key.name(), a.allocs_per_event));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::regression::Thresholds;
    use crate::analysis::verdicts::matrix;
    use buslab_scenarios::results::{Allocations, BusMeta, RunMeta};

    /// A cell of `spsc` (see [`throughput_cell`](crate::analysis::recommend::tests::throughput_cell)).
    fn cell(bus: &str, samples: &[f64], allocs: f64) -> CellResult {
        let mut c = crate::analysis::recommend::tests::throughput_cell("spsc", bus, samples);
        c.allocations = Some(Allocations { allocs_per_event: allocs, ..Allocations::default() });
        c
    }

    fn run(cells: Vec<CellResult>) -> Run {
        let buses = ["ring", "channel", "flume"]
            .iter()
            .map(|n| BusMeta { name: (*n).to_owned(), peer: *n == "flume", ..BusMeta::default() })
            .collect();
        let scenario_descriptions = [("spsc".to_owned(), "One producer, one subscriber.".to_owned())].into();
        Run { meta: RunMeta { buses, scenario_descriptions, ..RunMeta::default() }, cells }
    }

    #[test]
    fn claims_name_the_winner_and_the_peer_verdict() {
        let run = run(vec![
            cell("ring", &[100.0, 101.0, 99.0, 100.5, 99.5], 0.0),
            cell("channel", &[50.0, 51.0, 49.0, 50.5, 49.5], 2.0),
            cell("flume", &[40.0, 41.0, 39.0, 40.5, 39.5], 1.0),
        ]);
        let groups = matrix(&run, &Thresholds::default());
        let guide = guide(&run, &groups);
        assert!(guide.has_peers);
        let section = &guide.sections[0];
        assert_eq!(section.description, "One producer, one subscriber.");
        let claims = &section.points[0].claims;
        assert!(claims[0].text.starts_with("Highest throughput: ring, 100"), "{}", claims[0].text);
        assert!(!claims[0].undecided);
        let peers = claims.iter().find(|c| c.topic == "peers").expect("a peer claim");
        assert!(peers.text.starts_with("Home-grown beats the best peer: ring is 2.50×"), "{}", peers.text);
        assert_eq!(peers.cells, ["spsc/ring", "spsc/flume"]);
        let zero = &guide.zero_allocation;
        assert_eq!(zero[0].zero, ["spsc/ring"]);
        assert_eq!(zero[1].nonzero, [("spsc/channel".to_owned(), 2.0)]);
        assert!(zero[2].peer);
    }

    #[test]
    fn overlapping_buses_are_undecided() {
        let run = run(vec![
            cell("ring", &[100.0, 120.0, 80.0, 110.0, 90.0], 0.0),
            cell("flume", &[98.0, 118.0, 78.0, 108.0, 88.0], 0.0),
        ]);
        let groups = matrix(&run, &Thresholds::default());
        let guide = guide(&run, &groups);
        let claims = &guide.sections[0].points[0].claims;
        assert!(claims[0].undecided && claims[0].text.contains("cannot tell ring, flume apart"), "{}", claims[0].text);
        assert!(claims[2].text.contains("all allocate nothing"), "{}", claims[2].text);
        let peers = claims.iter().find(|c| c.topic == "peers").expect("a peer claim");
        assert!(peers.undecided, "{}", peers.text);
    }

    #[test]
    fn a_lossy_bus_is_named_and_never_recommended() {
        let mut lossy = cell("flume", &[900.0, 910.0, 905.0], 0.0);
        lossy.dropped = 10;
        let run = run(vec![cell("ring", &[100.0, 101.0, 99.0], 0.0), lossy]);
        let groups = crate::analysis::verdicts::matrix(&run, &crate::analysis::regression::Thresholds::default());
        let guide = guide(&run, &groups);
        let claims = &guide.sections[0].points[0].claims;
        let loss = claims.iter().find(|c| c.topic == "loss").expect("a loss claim");
        assert!(loss.text.contains("never a winner") && loss.text.contains("flume"), "{}", loss.text);
        assert!(claims.iter().all(|c| c.topic == "loss" || !c.text.contains("flume")), "{claims:#?}");
    }
}
