//! Scaling curves: one line per bus against a swept parameter (subscribers,
//! producers), with CI whiskers.

use super::lines::{clean_series, draw_lines};
use super::scale::{Fit, Scale};
use super::{
    Axis, ChartError, DrawResult, Point, Series, draw, finite, format_value, legend_width, no_data, value_with_ci,
};

/// One line per series against `x`, with a marker per point, CI whiskers
/// where [`Point::lower`] and [`Point::upper`] are known, tooltips on the
/// points, and a legend on the right when there is more than one series.
///
/// Series keep their colour by position (pass them in the same order in
/// every chart so a bus keeps its colour); peers are dashed with hollow
/// markers. The x ticks are the swept values themselves when they are few
/// and far enough apart, else round numbers. A linear y axis starts at
/// zero. Points with a non-finite coordinate are left out; no point left
/// gives the "no data" placeholder. 800 × 400 px.
pub fn scaling(title: &str, x: &Axis, y: &Axis, series: &[Series]) -> Result<String, ChartError> {
    let lines = clean_series(series);
    if lines.iter().all(|(_, points)| points.is_empty()) {
        return Ok(no_data(title));
    }
    let all = || lines.iter().flat_map(|(_, points)| points.iter());
    let y_scale = Scale::fit(
        all().flat_map(|p| [Some(p.y), finite(p.lower), finite(p.upper)]).flatten(),
        Fit { zero: true, ..Fit::new(y.log, y.unit) },
    );
    let legend = lines.len() > 1;
    let mut layout = super::Layout::standard(&y_scale);
    if legend {
        layout.right = legend_width(lines.iter().map(|(s, _)| label(s).chars().count()));
    }
    let x_fit = Scale::fit(all().map(|p| p.x), Fit::new(x.log, x.unit));
    let plot_width = f64::from(super::WIDTH - layout.y_label_area - layout.right);
    let x_scale = sweep_ticks(&x_fit, all().map(|p| p.x), x.unit, plot_width).unwrap_or(x_fit);
    draw("scaling", title, &layout, (&x_scale, &x.label), (&y_scale, &y.label), |chart, root, overlay| -> DrawResult {
        let tip = |s: &Series, p: &Point| {
            format!(
                "{}\n{}: {}\n{}: {}",
                label(s),
                x.label,
                format_value(p.x, x.unit),
                y.label,
                value_with_ci(p.y, p.lower, p.upper, y.unit)
            )
        };
        let place = |v: f64| x_scale.to_plot(v);
        draw_lines(chart, root, overlay, &lines, (place, &y_scale), tip, legend.then_some(&label))
    })
}

/// The legend label of a series: peers say so.
fn label(s: &Series) -> String {
    if s.peer { format!("{} (peer)", s.label) } else { s.label.clone() }
}

/// The scale `fit` with its ticks at the swept values, if there are at
/// most a dozen of them and their labels do not collide on `width` px.
fn sweep_ticks(fit: &Scale, xs: impl Iterator<Item = f64>, unit: super::Unit, width: f64) -> Option<Scale> {
    let mut values: Vec<f64> = xs.filter(|x| !fit.log || *x > 0.0).collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    if values.is_empty() || values.len() > 12 {
        return None;
    }
    let ticks: Vec<(f64, String)> = values.iter().map(|v| (fit.to_plot(*v), format_value(*v, unit))).collect();
    let px = |t: f64| (t - fit.lo) / (fit.hi - fit.lo) * width;
    for pair in ticks.windows(2) {
        let room = (pair[0].1.chars().count() + pair[1].1.chars().count()) as f64 * super::CHAR_W / 2.0 + 10.0;
        if px(pair[1].0) - px(pair[0].0) < room {
            return None;
        }
    }
    Some(fit.with_ticks(ticks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::charts::tests::check;

    fn series(label: &str, scale: f64, peer: bool) -> Series {
        let points = [1.0f64, 4.0, 16.0, 64.0, 256.0]
            .iter()
            .map(|&x| {
                let y = scale / x.sqrt();
                Point { x, y, lower: Some(y * 0.9), upper: Some(y * 1.1) }
            })
            .collect();
        Series { label: label.into(), points, peer }
    }

    #[test]
    fn scaling_shows_title_axes_legend_and_sweep_ticks() {
        let data = [series("channel", 2e6, false), series("ring", 9e6, false), series("disruptor", 5e6, true)];
        let svg = scaling("Fan-out", &Axis::new("subscribers").log(), &Axis::new("events/s"), &data).expect("draws");
        check(&svg, &["Fan-out", "subscribers", "events/s", "channel", "ring", "disruptor (peer)", "256", "10 M"]);
        assert_eq!(svg.matches("<title>").count(), 15, "one tooltip per point");
        let centres = crate::render::charts::tests::tooltip_centres(&svg);
        let first: Vec<(i32, i32)> = centres[..5].to_vec();
        assert!(first.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "{first:?} rise left to right, fall");
        assert!(
            centres
                .iter()
                .all(|&(x, y)| (0..crate::render::charts::WIDTH as i32).contains(&x) && (0..400).contains(&y))
        );
        let step = first[1].0 - first[0].0;
        assert!(first.windows(2).all(|w| (w[1].0 - w[0].0 - step).abs() <= 2), "x is logarithmic: {first:?}");
    }

    #[test]
    fn scaling_handles_edge_cases() {
        let (x, y) = (Axis::new("producers").log(), Axis::new("ns per delivery").log().nanos());
        check(&scaling("empty", &x, &y, &[]).expect("draws"), &["no data"]);
        let nan =
            Series { label: "n".into(), points: vec![Point { x: f64::NAN, y: 1.0, ..Point::default() }], peer: false };
        check(&scaling("nan", &x, &y, &[nan]).expect("draws"), &["no data"]);
        let one =
            Series { label: "<one>".into(), points: vec![Point { x: 4.0, y: 0.0, ..Point::default() }], peer: false };
        let svg = scaling("<single>", &x, &y, &[one]).expect("draws");
        check(&svg, &["<single>", "producers", "ns per delivery"]);
        assert!(svg.contains("&lt;one&gt;"), "the tooltip names the series, escaped");
        let flat = Series {
            label: "flat".into(),
            points: (0..5).map(|i| Point { x: f64::from(i), y: 3.0, ..Point::default() }).collect(),
            peer: false,
        };
        check(&scaling("flat", &Axis::new("subscribers"), &Axis::new("events/s"), &[flat]).expect("draws"), &["flat"]);
    }
}
