//! Lines of points with interval whiskers, markers, tooltips and a legend:
//! what the scaling and spectrum charts draw once their axes are set.

use super::scale::Scale;
use super::{Chart, DrawResult, LegendEntry, Overlay, Point, Root, Series, Swatch, color, draw_legend, finite};
use super::{plot_box, v_whisker};
use plotters::prelude::*;

/// A series and its finite points, sorted by `x` ([`clean_series`]).
pub(crate) type Line<'a> = (&'a Series, Vec<Point>);

/// Each series with its finite points sorted by `x`.
pub(crate) fn clean_series(series: &[Series]) -> Vec<Line<'_>> {
    series
        .iter()
        .map(|s| {
            let mut points: Vec<Point> =
                s.points.iter().copied().filter(|p| p.x.is_finite() && p.y.is_finite()).collect();
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            (s, points)
        })
        .collect()
}

/// Draws `lines` on `chart`: series `i` in [`color`]`(i)`, peers dashed
/// with hollow markers; a marker per point at (`x(p.x)`, `y.to_plot(p.y)`),
/// a whisker where [`Point::lower`] and [`Point::upper`] are known, the
/// tooltip `tip(series, point)`; and, when `legend` names the series, a
/// legend right of the plot.
pub(crate) fn draw_lines(
    chart: &mut Chart<'_, '_>,
    root: &Root<'_>,
    overlay: &mut Overlay,
    lines: &[Line<'_>],
    (x, y): (impl Fn(f64) -> f64, &Scale),
    tip: impl Fn(&Series, &Point) -> String,
    legend: Option<&dyn Fn(&Series) -> String>,
) -> DrawResult {
    let ((_, top), (right, _)) = plot_box(chart);
    for (i, (s, points)) in lines.iter().enumerate() {
        let c = color(i);
        let xy: Vec<(f64, f64)> = points.iter().map(|p| (x(p.x), y.to_plot(p.y))).collect();
        if s.peer {
            chart.draw_series(DashedLineSeries::new(xy.iter().copied(), 6, 4, c.stroke_width(2)))?;
        } else {
            chart.draw_series(LineSeries::new(xy.iter().copied(), c.stroke_width(2)))?;
        }
        for (p, &(px, py)) in points.iter().zip(&xy) {
            if let (Some(lo), Some(hi)) = (finite(p.lower), finite(p.upper)) {
                let a = chart.backend_coord(&(px, y.to_plot(hi)));
                let b = chart.backend_coord(&(px, y.to_plot(lo)));
                v_whisker(root, a, b, 4, c)?;
            }
            let at = chart.backend_coord(&(px, py));
            if s.peer {
                root.draw(&Circle::new(at, 4, WHITE.filled()))?;
                root.draw(&Circle::new(at, 4, c.stroke_width(2)))?;
            } else {
                root.draw(&Circle::new(at, 4, c.filled()))?;
            }
            overlay.circle(at, 7, &tip(s, p));
        }
    }
    if let Some(label) = legend {
        let entries: Vec<LegendEntry> = lines
            .iter()
            .enumerate()
            .map(|(i, (s, _))| LegendEntry {
                label: label(s),
                swatch: Swatch::Line { color: color(i), dashed: s.peer },
            })
            .collect();
        draw_legend(root, (right + 14, top + 4), true, &entries)?;
    }
    Ok(())
}
