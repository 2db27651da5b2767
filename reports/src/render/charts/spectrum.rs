//! The latency percentile spectrum: p50 … p99.99 and the maximum on a
//! "nines" axis, latency on a log scale.

use super::lines::{Line, clean_series, draw_lines};
use super::scale::{Fit, Scale};
use super::{ChartError, DrawResult, Point, Series, Unit, draw, finite, legend_width, no_data, value_with_ci};

/// The [`Point::x`] that stands for the maximum in a [`spectrum`] series.
pub const MAX_QUANTILE: f64 = 1.0;

/// The latency percentile spectrum, one line per series (a bus, or an
/// offered load).
///
/// Each [`Point`] has the quantile as `x` (`0.5` for p50, `0.999` for
/// p99.9; [`MAX_QUANTILE`] for the maximum) and the latency in
/// nanoseconds as `y`. The x axis is on a "nines" scale, `−log10(1 − q)`,
/// so p90, p99, p99.9 and p99.99 are evenly spaced, and the maximum is
/// drawn one step beyond the highest quantile; the y axis is log ns with
/// duration labels (`850 ns`, `12 µs`, `1.5 ms`). Tooltips give each
/// percentile's value and CI; a legend names the series when there are
/// several. Points with `x` outside `(0, 1]` or a non-finite coordinate
/// are left out; no point left gives the "no data" placeholder.
/// 800 × 400 px.
pub fn spectrum(title: &str, series: &[Series]) -> Result<String, ChartError> {
    let lines: Vec<Line<'_>> = clean_series(series)
        .into_iter()
        .map(|(s, points)| (s, points.into_iter().filter(|p| p.x > 0.0 && p.x <= MAX_QUANTILE).collect()))
        .collect();
    if lines.iter().all(|(_, points)| points.is_empty()) {
        return Ok(no_data(title));
    }
    let all = || lines.iter().flat_map(|(_, points)| points.iter());
    let highest = all().filter(|p| p.x < MAX_QUANTILE).map(|p| nines(p.x)).fold(4f64, f64::max);
    // Up to the next whole nine (p99.99 is 4.000000000000004 nines in floating point).
    let highest = (highest - 1e-9).ceil();
    let max_at = highest + 1.0;
    let has_max = all().any(|p| p.x >= MAX_QUANTILE);
    let lowest = all().map(|p| if p.x >= MAX_QUANTILE { max_at } else { nines(p.x) }).fold(nines(0.5), f64::min);
    let position = |q: f64| if q >= MAX_QUANTILE { max_at } else { nines(q) };
    let mut ticks: Vec<(f64, String)> = std::iter::once(0.5)
        .chain((1..=highest as i32).map(|k| 1.0 - 10f64.powi(-k)))
        .map(|q| (nines(q), percentile_label(q)))
        .collect();
    if has_max {
        ticks.push((max_at, "max".to_string()));
    }
    let right_edge = if has_max { max_at } else { highest };
    let x = Scale::custom(lowest.min(nines(0.5)) - 0.3, right_edge + 0.3, ticks);
    let y = Scale::fit(
        all().flat_map(|p| [Some(p.y), finite(p.lower), finite(p.upper)]).flatten(),
        Fit::new(true, Unit::Nanoseconds),
    );
    let legend = lines.len() > 1;
    let mut layout = super::Layout::standard(&y);
    if legend {
        layout.right = legend_width(lines.iter().map(|(s, _)| s.label.chars().count()));
    }
    draw(
        "spectrum",
        title,
        &layout,
        (&x, "percentile"),
        (&y, "latency (log scale)"),
        |chart, root, overlay| -> DrawResult {
            let tip = |s: &Series, p: &Point| {
                let name = if p.x >= MAX_QUANTILE { "max".to_string() } else { percentile_label(p.x) };
                format!("{}\n{name}: {}", s.label, value_with_ci(p.y, p.lower, p.upper, Unit::Nanoseconds))
            };
            let label = |s: &Series| s.label.clone();
            draw_lines(chart, root, overlay, &lines, (position, &y), tip, legend.then_some(&label))
        },
    )
}

/// Position of quantile `q` (< 1) on the nines scale.
fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// `p50`, `p99.9`, `p99.99`.
fn percentile_label(q: f64) -> String {
    let mut s = format!("{:.4}", q * 100.0);
    let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
    s.truncate(trimmed);
    format!("p{s}")
}

/// Latency's standard spectrum (p50, p90, p99, p99.9, p99.99, max) as points,
/// from nanosecond figures; for callers holding [`buslab_scenarios::results::Latency`].
/// A lossy bus's line ends before its first percentile that falls among its
/// misses (lost, not a number), and has no max (the misses exceed it).
pub fn latency_points(latency: &buslab_scenarios::results::Latency) -> Vec<Point> {
    let point = |x: f64, ns: u64| Point { x, y: ns as f64, lower: None, upper: None };
    let mut points: Vec<Point> =
        [0.5, 0.9, 0.99, 0.999, 0.9999].into_iter().map_while(|q| Some(point(q, latency.percentile_ns(q)?))).collect();
    if latency.misses == 0 {
        points.push(point(MAX_QUANTILE, latency.max_ns));
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::charts::tests::{check, texts};

    fn series(label: &str, base: f64) -> Series {
        let latency = buslab_scenarios::results::Latency {
            p50_ns: base as u64,
            p90_ns: (base * 1.8) as u64,
            p99_ns: (base * 6.0) as u64,
            p999_ns: (base * 30.0) as u64,
            p9999_ns: (base * 200.0) as u64,
            max_ns: (base * 900.0) as u64,
            ..Default::default()
        };
        Series { label: label.into(), points: latency_points(&latency), peer: false }
    }

    #[test]
    fn spectrum_labels_percentiles_and_durations() {
        let svg = spectrum("Latency at 50% load", &[series("channel", 800.0), series("ring", 300.0)]).expect("draws");
        assert!(!texts(&svg).contains("p99.999"), "no tick beyond the data");
        check(
            &svg,
            &["Latency at 50% load", "percentile", "latency", "p50", "p99.9", "p99.99", "max", "channel", "ring", "µs"],
        );
        assert_eq!(svg.matches("<title>").count(), 12);
    }

    #[test]
    fn a_lossy_line_ends_before_its_lost_percentiles() {
        // 20 misses in 1010: p99 and above fall among them.
        let lossy =
            buslab_scenarios::results::Latency { count: 990, misses: 20, p50_ns: 5, p90_ns: 9, ..Default::default() };
        let xs: Vec<f64> = latency_points(&lossy).iter().map(|p| p.x).collect();
        assert_eq!(xs, [0.5, 0.9]);
        let whole = buslab_scenarios::results::Latency { misses: 0, ..lossy };
        assert_eq!(latency_points(&whole).len(), 6);
    }

    #[test]
    fn percentile_labels_are_trimmed() {
        assert_eq!(percentile_label(0.5), "p50");
        assert_eq!(percentile_label(0.999), "p99.9");
        assert_eq!(percentile_label(0.9999), "p99.99");
    }

    #[test]
    fn spectrum_handles_edge_cases() {
        check(&spectrum("empty", &[]).expect("draws"), &["no data"]);
        let bad = Series {
            label: "bad".into(),
            points: vec![
                Point { x: 1.5, y: 3.0, ..Point::default() },
                Point { x: 0.5, y: f64::NAN, ..Point::default() },
            ],
            peer: false,
        };
        check(&spectrum("bad", &[bad]).expect("draws"), &["no data"]);
        let zeros = Series {
            label: "<z>".into(),
            points: vec![Point { x: 0.5, y: 0.0, ..Point::default() }, Point { x: 0.99, y: 0.0, ..Point::default() }],
            peer: true,
        };
        check(&spectrum("zeros", &[zeros]).expect("draws"), &["zeros", "p99"]);
        let single = Series {
            label: "s".into(),
            points: vec![Point { x: MAX_QUANTILE, y: 5e6, ..Point::default() }],
            peer: false,
        };
        check(&spectrum("single", &[single]).expect("draws"), &["single", "max", "ms"]);
    }
}
