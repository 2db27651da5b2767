//! `scenarios/<slug>.html`: one scenario's charts and verdict matrix.

use super::{Writer, common};
use crate::analysis::verdicts::{COLUMNS, Group};
use crate::render::format;
use crate::render::site::context::{Figure, MatrixGroup, Pair};
use crate::render::site::figures;
use crate::render::site::{SiteError, slug};
use buslab_scenarios::results::{CellResult, Run};
use serde::Serialize;
use std::collections::BTreeMap;

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

pub(super) fn pages(run: &Run, groups: &[Group], writer: &Writer) -> Result<(), SiteError> {
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
