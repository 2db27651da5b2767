//! The views that answer "which bus": the index's heat map and
//! recommendation lines, and the guide's decision form. They format the
//! [analysis](crate::analysis); nothing is judged here.

use super::context::{cell_href, scenario_href};
use crate::analysis::Analysis;
use crate::analysis::heat_map::{HeatMap, Mark};
use crate::analysis::recommend::{self, Choice, QUESTIONS, Recommendation};
use crate::render::format;
use crate::render::text;
use serde::Serialize;

/// A link.
#[derive(Serialize)]
pub(crate) struct Link {
    pub text: String,
    pub href: String,
}

/// One recommendation line with the cells behind it.
#[derive(Serialize)]
pub(crate) struct RecommendationView {
    pub scenario: String,
    pub href: String,
    /// The line after `scenario: `.
    pub line: String,
    pub from_file: bool,
    pub none: bool,
    pub cells: Vec<Link>,
    /// The recommended bus (`none` when there is none).
    #[serde(skip)]
    pick: String,
}

impl RecommendationView {
    fn new(root: &str, r: &Recommendation) -> RecommendationView {
        let line = text::recommendation(r);
        let point = r.point();
        RecommendationView {
            line: line.strip_prefix(&format!("{point}: ")).unwrap_or(&line).to_owned(),
            scenario: point,
            href: scenario_href(root, &r.scenario),
            from_file: r.from_file,
            none: r.pick.is_none(),
            cells: r.cells().iter().map(|c| bus_link(root, c)).collect(),
            pick: r.pick.as_ref().map_or_else(|| "none".to_owned(), |c| c.bus.clone()),
        }
    }
}

/// A link to cell `name`, labelled with its bus alone (where the sweep
/// point is already said beside it).
fn bus_link(root: &str, name: &str) -> Link {
    let text = name.split('/').nth(1).unwrap_or(name).to_owned();
    Link { text, href: cell_href(root, name) }
}

/// A scenario's recommendation lines on the first screen. A catalog
/// scenario with more than [`RecommendationGroup::OPEN`] points (the
/// CloudEvents variants) is folded under one line that counts its picks;
/// the engineer's own scenario file never is.
#[derive(Serialize)]
pub(crate) struct RecommendationGroup {
    pub scenario: String,
    pub href: String,
    /// For a folded scenario: how many points, and which bus each
    /// recommends (`24 points; recommended: router at 14, any_router at
    /// 10`).
    pub folded: Option<String>,
    pub from_file: bool,
    pub lines: Vec<RecommendationView>,
}

impl RecommendationGroup {
    /// The most points a scenario shows unfolded.
    pub const OPEN: usize = 4;

    /// Groups `recommendations` by scenario, in their order.
    fn all(root: &str, recommendations: &[Recommendation]) -> Vec<RecommendationGroup> {
        let mut groups: Vec<RecommendationGroup> = Vec::new();
        for r in recommendations {
            let view = RecommendationView::new(root, r);
            match groups.last_mut() {
                Some(g) if g.scenario == r.scenario => g.lines.push(view),
                _ => groups.push(RecommendationGroup {
                    scenario: r.scenario.clone(),
                    href: view.href.clone(),
                    folded: None,
                    from_file: r.from_file,
                    lines: vec![view],
                }),
            }
        }
        for g in &mut groups {
            if g.lines.len() > Self::OPEN && !g.from_file {
                let mut picks: Vec<(String, usize)> = Vec::new();
                for line in &g.lines {
                    let bus = line.pick.as_str();
                    match picks.iter_mut().find(|(b, _)| b == bus) {
                        Some((_, n)) => *n += 1,
                        None => picks.push((bus.to_owned(), 1)),
                    }
                }
                picks.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let counts: Vec<String> = picks.iter().map(|(bus, n)| format!("{bus} at {n}")).collect();
                g.folded = Some(format!("{} points; recommended: {}", g.lines.len(), counts.join(", ")));
            }
        }
        groups
    }
}

/// A link to cell `name`, labelled with what follows the scenario.
pub(crate) fn cell_link(root: &str, name: &str) -> Link {
    let text = name.split_once('/').map(|(_, rest)| rest).unwrap_or(name).to_owned();
    Link { text, href: cell_href(root, name) }
}

/// One heat-map cell, formatted.
#[derive(Serialize)]
pub(crate) struct HeatCellView {
    /// Percent of the best lossless bus.
    pub text: String,
    /// `L` (lossy), `S` (saturated), or empty.
    pub flags: String,
    /// CSS classes: a shade `h0`…`h5`, or the mark.
    pub class: String,
    pub href: String,
    pub title: String,
}

/// One scenario point of the heat map.
#[derive(Serialize)]
pub(crate) struct HeatRowView {
    pub label: String,
    pub href: String,
    pub cells: Vec<HeatCellView>,
}

/// The heat map, formatted.
#[derive(Serialize)]
pub(crate) struct HeatView {
    pub buses: Vec<String>,
    pub rows: Vec<HeatRowView>,
}

/// The shade of a relative figure: `h5` within 5% of the best, down to
/// `h0` below a fifth of it.
fn shade(relative: f64) -> &'static str {
    match relative {
        r if r >= 0.95 => "h5",
        r if r >= 0.8 => "h4",
        r if r >= 0.6 => "h3",
        r if r >= 0.4 => "h2",
        r if r >= 0.2 => "h1",
        _ => "h0",
    }
}

impl HeatView {
    pub(crate) fn new(root: &str, map: &HeatMap) -> HeatView {
        let rows = map
            .rows
            .iter()
            .map(|row| HeatRowView {
                label: if row.label.is_empty() {
                    row.scenario.clone()
                } else {
                    format!("{} {}", row.scenario, row.label)
                },
                href: scenario_href(root, &row.scenario),
                cells: row
                    .cells
                    .iter()
                    .zip(&map.buses)
                    .map(|(c, bus)| {
                        let relative = c.relative.map(format::unsigned_percent).unwrap_or_default();
                        let percent = c.relative.map(|r| format::three_figures(r * 100.0)).unwrap_or_default();
                        let mut flags = String::new();
                        let delivered = c.delivered.map(|d| format::si(d, "events/s delivered")).unwrap_or_default();
                        let (text, mut class, mut title) = match c.mark {
                            Mark::Absent => (String::new(), "absent".to_owned(), format!("{bus} did not run here")),
                            Mark::Failed => ("failed".to_owned(), "failed".to_owned(), c.reason.clone()),
                            Mark::Skipped => ("skipped".to_owned(), "skipped".to_owned(), c.reason.clone()),
                            Mark::Lossy => (
                                {
                                    flags.push('L');
                                    percent.clone()
                                },
                                format!("lossy {}", c.relative.map_or("h0", shade)),
                                format!("{bus}: {delivered} ({relative} of the best lossless bus); lost deliveries"),
                            ),
                            Mark::Ok => (
                                percent.clone(),
                                c.relative.map_or("h0", shade).to_owned(),
                                format!("{bus}: {delivered} ({relative} of the best lossless bus)"),
                            ),
                        };
                        if c.best {
                            class.push_str(" top");
                        }
                        if let Some(s) = &c.saturated {
                            flags.push('S');
                            class.push_str(" saturated");
                            title.push_str(&format!("; latency at the headline rate {s}"));
                        }
                        HeatCellView {
                            text,
                            flags,
                            class,
                            href: if c.cell.is_empty() { String::new() } else { cell_href(root, &c.cell) },
                            title,
                        }
                    })
                    .collect(),
            })
            .collect();
        HeatView { buses: map.buses.clone(), rows }
    }
}

/// The first screen of the index.
#[derive(Serialize)]
pub(crate) struct FirstScreen {
    pub rule: &'static str,
    pub recommendations: Vec<RecommendationGroup>,
    pub heat: HeatView,
}

impl FirstScreen {
    pub(crate) fn new(analysis: &Analysis) -> FirstScreen {
        FirstScreen {
            rule: recommend::RULE_SHORT,
            recommendations: RecommendationGroup::all("", &analysis.recommendations),
            heat: HeatView::new("", &analysis.heat_map),
        }
    }
}

/// One question of the decision form.
#[derive(Serialize)]
pub(crate) struct Question {
    pub bit: usize,
    pub slug: &'static str,
    pub text: &'static str,
}

/// One answer for one workload, shown for the masks it holds under.
#[derive(Serialize)]
pub(crate) struct Variant {
    /// Space-separated masks (`0 4 8`).
    pub masks: String,
    /// Shown for the default answers.
    pub default: bool,
    pub line: String,
    pub ranking: Vec<Link>,
    pub excluded: Vec<Link>,
}

/// One workload (scenario point) of the decision guide.
#[derive(Serialize)]
pub(crate) struct Workload {
    pub point: String,
    pub href: String,
    pub from_file: bool,
    pub variants: Vec<Variant>,
}

/// The guide's decision form.
#[derive(Serialize)]
pub(crate) struct DecisionView {
    pub questions: Vec<Question>,
    pub workloads: Vec<Workload>,
}

fn ranked(root: &str, slug: &str, c: &Choice) -> Link {
    let mut text = format!("{} {}", c.bus, format::metric_value(slug, c.value));
    if c.inline {
        text.push_str(" (in-line)");
    }
    if c.lossy {
        text.push_str(" (lossy)");
    }
    Link { text, href: cell_href(root, &c.cell) }
}

impl DecisionView {
    pub(crate) fn new(analysis: &Analysis) -> DecisionView {
        let questions = QUESTIONS.iter().enumerate().map(|(bit, (slug, text))| Question { bit, slug, text }).collect();
        let workloads = analysis
            .recommendations
            .iter()
            .enumerate()
            .map(|(i, first)| {
                let mut variants: Vec<Variant> = Vec::new();
                for (mask, recommendations) in analysis.decisions.iter().enumerate() {
                    let r = &recommendations[i];
                    let full = text::recommendation(r);
                    let line = full.strip_prefix(&format!("{}: ", r.point())).unwrap_or(&full).to_owned();
                    let ranking: Vec<Link> = r.ranking.iter().map(|c| ranked("", r.metric, c)).collect();
                    let excluded: Vec<Link> = r
                        .excluded
                        .iter()
                        .map(|x| Link { text: format!("{}: {}", x.bus, x.why), href: cell_href("", &x.cell) })
                        .collect();
                    let same = |v: &Variant| {
                        v.line == line
                            && v.ranking.iter().map(|l| &l.text).eq(ranking.iter().map(|l| &l.text))
                            && v.excluded.iter().map(|l| &l.text).eq(excluded.iter().map(|l| &l.text))
                    };
                    match variants.iter_mut().find(|v| same(v)) {
                        Some(v) => v.masks.push_str(&format!(" {mask}")),
                        None => variants.push(Variant {
                            masks: mask.to_string(),
                            default: mask == 0,
                            line,
                            ranking,
                            excluded,
                        }),
                    }
                }
                Workload {
                    point: first.point(),
                    href: scenario_href("", &first.scenario),
                    from_file: first.from_file,
                    variants,
                }
            })
            .collect();
        DecisionView { questions, workloads }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::recommend::Choice;

    fn rec(scenario: &str, label: &str, bus: &str, from_file: bool) -> Recommendation {
        let pick = Choice {
            bus: bus.to_owned(),
            cell: format!("{scenario}/{bus}/{label}"),
            value: 1e6,
            interval: None,
            inline: true,
            peer: false,
            lossy: false,
        };
        Recommendation {
            scenario: scenario.to_owned(),
            label: label.to_owned(),
            from_file,
            metric: "throughput",
            latency_unmeasured: false,
            only_inline: false,
            loss_acceptable: false,
            ranking: vec![pick.clone()],
            pick: Some(pick),
            tied: Vec::new(),
            next: None,
            inline_alternative: None,
            excluded: Vec::new(),
        }
    }

    /// A scenario of many points folds under a count of its picks; one of
    /// few points, and the engineer's own, stay open.
    #[test]
    fn many_points_fold_under_a_count_of_their_picks() {
        let mut recs = vec![rec("spsc", "", "ring", false)];
        for (i, bus) in ["router", "any_router", "router", "router", "any_router"].iter().enumerate() {
            recs.push(rec("cloudevents", &format!("decoder={i}"), bus, false));
        }
        recs.extend((0..6).map(|i| rec("mine", &format!("subscribers={i}"), "ring", true)));
        let groups = RecommendationGroup::all("", &recs);
        let folded: Vec<(&str, Option<&str>, usize)> =
            groups.iter().map(|g| (g.scenario.as_str(), g.folded.as_deref(), g.lines.len())).collect();
        assert_eq!(
            folded,
            [
                ("spsc", None, 1),
                ("cloudevents", Some("5 points; recommended: router at 3, any_router at 2"), 5),
                ("mine", None, 6),
            ]
        );
        // The links name the bus alone: the point is said beside them.
        assert_eq!(groups[1].lines[0].cells[0].text, "router");
        assert!(groups[1].lines[0].cells[0].href.contains("cloudevents-router-decoder-0"));
    }
}
