//! `guide.html`: the decision form and the guide's claims.

use super::{Writer, common};
use crate::analysis::Report;
use crate::render::format;
use crate::render::site::context::{cell_href, scenario_href};
use crate::render::site::decide::{DecisionView, Link, cell_link};
use crate::render::site::{SiteError, slug};
use serde::Serialize;

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

pub(super) fn page(report: &Report<'_>, writer: &Writer) -> Result<(), SiteError> {
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
