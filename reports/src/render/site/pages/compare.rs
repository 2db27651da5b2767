//! `compare.html`: the comparison with the baseline and the noise
//! calibration.

use super::{Writer, common};
use crate::analysis::Report;
use crate::render::format;
use crate::render::site::SiteError;
use crate::render::site::context::{CompareView, Header, short};
use serde::Serialize;

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

pub(super) fn page(report: &Report<'_>, writer: &Writer) -> Result<(), SiteError> {
    let page = ComparePage {
        comparison: report.comparison.as_ref().map(|c| CompareView::new("", c)),
        base_header: report.baseline.map(|b| Header::new(&b.meta, report.baseline_coverage)),
        noise: report.noise.as_ref().map(noise_view),
    };
    writer.page("compare.html", "compare.html", &common(report.run, "", "compare"), &page)
}
