//! A metric over stored runs: x = run date, the CI as a shaded band, the
//! noise band, regression (red ▼) and improvement (green ▲) markers, and
//! dashed vertical lines where the level moved (change points).

use super::scale::{Fit, Scale};
use super::{
    Axis, ChartError, DrawResult, GREEN, LegendEntry, Marker, RED, Swatch, TrendPoint, color, draw, draw_legend,
    finite, plot_box, triangle, v_whisker, write_value_with_ci,
};
use plotters::prelude::*;

/// At most this many points get a visible marker each (beyond, the line alone).
const DOTS_UP_TO: usize = 60;

/// A metric over time: one point per run at [`TrendPoint::time`] (unix
/// seconds, drawn in UTC), joined by a line.
///
/// - Runs of consecutive points that have a CI ([`TrendPoint::lower`],
///   [`TrendPoint::upper`]) get a shaded band; a lone point with a CI gets
///   a whisker.
/// - `band`, the noise band as absolute `(lower, upper)` values around the
///   latest value, is a green stripe across the chart: values inside it
///   are within noise of the latest run.
/// - [`Marker::Regression`] draws a red ▼ above the point,
///   [`Marker::Improvement`] a green ▲ below it.
/// - [`TrendPoint::step`] draws a dashed vertical line through the point
///   where the level moved: red for a regression, green for an
///   improvement.
/// - Every point has a tooltip: [`TrendPoint::tooltip`] (or the date and
///   value when empty), the CI and the verdict.
/// - The legend (a row under the title) names the line, the bands and the
///   markers that appear.
///
/// The x ticks are dates (`2026-11-21`), months (`2026-11`) or years
/// for long spans, times of day for short ones. A linear y axis fits the
/// data (it does not start at zero, so that small moves show). Points
/// are sorted by time; points with a non-finite value are left out, none
/// left gives the "no data" placeholder. Drawing 365 points takes well
/// under a millisecond in release builds. 800 × 400 px.
pub fn trend(title: &str, axis: &Axis, points: &[TrendPoint], band: Option<(f64, f64)>) -> Result<String, ChartError> {
    let mut points: Vec<&TrendPoint> = points.iter().filter(|p| p.value.is_finite()).collect();
    if points.is_empty() {
        return Ok(super::no_data(title));
    }
    points.sort_by_key(|p| p.time);
    let band = band.filter(|(a, b)| a.is_finite() && b.is_finite()).map(|(a, b)| (a.min(b), a.max(b)));
    let y = Scale::fit(
        points
            .iter()
            .flat_map(|p| [Some(p.value), finite(p.lower), finite(p.upper)])
            .flatten()
            .chain(band.iter().flat_map(|(a, b)| [*a, *b])),
        Fit::new(axis.log, axis.unit),
    );
    let (t0, t1) = (points[0].time as f64, points[points.len() - 1].time as f64);
    let pad = if t1 > t0 { (t1 - t0) * 0.03 } else { 3.0 * DAY as f64 };
    let x = Scale::custom(t0 - pad, t1 + pad, time_ticks(t0 - pad, t1 + pad));
    let ci = |p: &TrendPoint| match (finite(p.lower), finite(p.upper)) {
        (Some(lo), Some(hi)) => Some((lo, hi)),
        _ => None,
    };
    let mut entries =
        vec![LegendEntry { label: axis.label.clone(), swatch: Swatch::Line { color: color(0), dashed: false } }];
    let line = color(0);
    if points.iter().any(|p| ci(p).is_some()) {
        entries.push(LegendEntry {
            label: "95% CI".into(),
            swatch: Swatch::Box { fill: line, stroke: line, opacity: 0.25 },
        });
    }
    if band.is_some() {
        entries.push(LegendEntry {
            label: "noise band".into(),
            swatch: Swatch::Box { fill: GREEN, stroke: GREEN, opacity: 0.15 },
        });
    }
    if points.iter().any(|p| p.marker == Marker::Regression) {
        entries.push(LegendEntry { label: "regression".into(), swatch: Swatch::Triangle { color: RED, down: true } });
    }
    if points.iter().any(|p| p.marker == Marker::Improvement) {
        entries
            .push(LegendEntry { label: "improvement".into(), swatch: Swatch::Triangle { color: GREEN, down: false } });
    }
    for (marker, label, c) in
        [(Marker::Regression, "level moved: worse", RED), (Marker::Improvement, "level moved: better", GREEN)]
    {
        if points.iter().any(|p| p.step == marker) {
            entries.push(LegendEntry { label: label.into(), swatch: Swatch::Line { color: c, dashed: true } });
        }
    }
    let legend = entries.len() > 1;
    let mut layout = super::Layout::standard(&y);
    layout.right = 28;
    if legend {
        layout.top = 30;
    }
    draw("trend", title, &layout, (&x, "run date (UTC)"), (&y, &axis.label), |chart, root, overlay| -> DrawResult {
        let ((left, top), _) = plot_box(chart);
        if let Some((lo, hi)) = band {
            let area = [(x.lo, y.to_plot(lo)), (x.hi, y.to_plot(hi))];
            chart.draw_series(std::iter::once(Rectangle::new(area, GREEN.mix(0.15).filled())))?;
        }
        let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.time as f64, y.to_plot(p.value))).collect();
        // The CI: a band over each run of consecutive points that have one.
        let mut i = 0;
        while i < points.len() {
            let start = i;
            while i < points.len() && ci(points[i]).is_some() {
                i += 1;
            }
            match i - start {
                0 => i += 1,
                1 => {
                    let (lo, hi) = ci(points[start]).expect("the run holds points with a CI");
                    let a = chart.backend_coord(&(xy[start].0, y.to_plot(hi)));
                    let b = chart.backend_coord(&(xy[start].0, y.to_plot(lo)));
                    v_whisker(root, a, b, 4, line)?;
                }
                _ => {
                    let run = &points[start..i];
                    let upper = run.iter().map(|p| (p.time as f64, y.to_plot(ci(p).expect("in the run").1)));
                    let lower = run.iter().rev().map(|p| (p.time as f64, y.to_plot(ci(p).expect("in the run").0)));
                    let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
                    chart.draw_series(std::iter::once(Polygon::new(outline, line.mix(0.25).filled())))?;
                }
            }
        }
        for (p, &(px, _)) in points.iter().zip(&xy) {
            let c = match p.step {
                Marker::Regression => RED,
                Marker::Improvement => GREEN,
                Marker::None => continue,
            };
            chart.draw_series(DashedLineSeries::new([(px, y.lo), (px, y.hi)], 5, 4, c.stroke_width(2)))?;
        }
        chart.draw_series(LineSeries::new(xy.iter().copied(), line.stroke_width(2)))?;
        let pixels: Vec<(i32, i32)> = xy.iter().map(|c| chart.backend_coord(c)).collect();
        if points.len() <= DOTS_UP_TO {
            for at in &pixels {
                root.draw(&Circle::new(*at, 3, line.filled()))?;
            }
        }
        let spacing =
            if pixels.len() > 1 { (pixels[pixels.len() - 1].0 - pixels[0].0) / (pixels.len() as i32 - 1) } else { 16 };
        let radius = (spacing / 2).clamp(3, 8);
        let mut tip = String::with_capacity(128);
        for (p, &at) in points.iter().zip(&pixels) {
            match p.marker {
                Marker::Regression => {
                    root.draw(&triangle((at.0, at.1 - 11), 8, true, WHITE))?;
                    root.draw(&triangle((at.0, at.1 - 11), 6, true, RED))?;
                }
                Marker::Improvement => {
                    root.draw(&triangle((at.0, at.1 + 11), 8, false, WHITE))?;
                    root.draw(&triangle((at.0, at.1 + 11), 6, false, GREEN))?;
                }
                Marker::None => {}
            }
            tooltip(&mut tip, p, axis);
            overlay.circle(at, radius, &tip);
        }
        if legend {
            draw_legend(root, (left, top - 26), false, &entries)?;
        }
        Ok(())
    })
}

/// The point's hover text: the caller's, else the date and value; then the
/// CI and the verdict.
fn tooltip(tip: &mut String, p: &TrendPoint, axis: &Axis) {
    tip.clear();
    if p.tooltip.is_empty() {
        tip.push_str(&date_time(p.time));
        tip.push_str(" · ");
        crate::render::format::write(tip, p.value, axis.unit, crate::render::format::Style::CHART);
    } else {
        tip.push_str(&p.tooltip);
    }
    if let (Some(_), Some(_)) = (finite(p.lower), finite(p.upper)) {
        tip.push('\n');
        write_value_with_ci(tip, p.value, finite(p.lower), finite(p.upper), axis.unit);
    }
    match p.marker {
        Marker::Regression => tip.push_str("\n▼ regression"),
        Marker::Improvement => tip.push_str("\n▲ improvement"),
        Marker::None => {}
    }
    match p.step {
        Marker::Regression => tip.push_str("\nthe level moved here: worse"),
        Marker::Improvement => tip.push_str("\nthe level moved here: better"),
        Marker::None => {}
    }
}

const DAY: i64 = 86_400;

/// Ticks for unix times `lo..hi`: the smallest calendar step (minutes,
/// hours, days, weeks, months, years) that gives at most seven, labelled
/// to that step.
fn time_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    const MAX_TICKS: f64 = 7.0;
    let span = hi - lo;
    let (lo_s, hi_s) = (lo.ceil() as i64, hi.floor() as i64);
    for step in [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, DAY, 2 * DAY, 7 * DAY, 14 * DAY] {
        if span / step as f64 <= MAX_TICKS {
            // Weeks start on Mondays (1970-01-05 was one).
            let offset = if step >= 7 * DAY { 4 * DAY } else { 0 };
            let first = (lo_s - offset).div_euclid(step) * step + offset;
            let first = if first < lo_s { first + step } else { first };
            return (0..)
                .map(|k| first + k * step)
                .take_while(|t| *t <= hi_s)
                .map(|t| (t as f64, if step < DAY { date_time(t)[5..].to_string() } else { date(t) }))
                .collect();
        }
    }
    let (y0, m0, _) = civil_from_days(lo_s.div_euclid(DAY));
    let month_index = |y: i64, m: u32| y * 12 + i64::from(m) - 1;
    let (start, end) = (month_index(y0, m0), {
        let (y1, m1, _) = civil_from_days(hi_s.div_euclid(DAY));
        month_index(y1, m1)
    });
    for months in [1, 2, 3, 6, 12, 24, 60, 120, 600] {
        if (end - start) as f64 / months as f64 <= MAX_TICKS {
            return (start..=end + 1)
                .filter(|i| i.rem_euclid(months) == 0)
                .map(|i| {
                    let (y, m) = (i.div_euclid(12), (i.rem_euclid(12) + 1) as u32);
                    let t = days_from_civil(y, m, 1) * DAY;
                    let label = if months >= 12 { format!("{y}") } else { format!("{y}-{m:02}") };
                    (t as f64, label)
                })
                .filter(|(t, _)| *t >= lo && *t <= hi)
                .collect();
        }
    }
    Vec::new()
}

/// `2026-11-21`, UTC.
fn date(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(DAY));
    format!("{y}-{m:02}-{d:02}")
}

/// `2026-11-21 14:05`, UTC.
fn date_time(t: i64) -> String {
    let secs = t.rem_euclid(DAY);
    format!("{} {:02}:{:02}", date(t), secs / 3600, secs % 3600 / 60)
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day count since 1970-01-01 of a civil date (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::charts::tests::{check, texts};

    /// 2026-01-01 00:00 UTC.
    const JAN_2026: i64 = 1_767_225_600;

    fn year(n: usize) -> Vec<TrendPoint> {
        (0..n)
            .map(|i| {
                let value = 1.2e6 + (i as f64 * 0.7).sin() * 3e4;
                TrendPoint {
                    time: JAN_2026 + i as i64 * DAY + 7200,
                    value,
                    lower: Some(value * 0.98),
                    upper: Some(value * 1.02),
                    marker: match i % 50 {
                        7 => Marker::Regression,
                        30 => Marker::Improvement,
                        _ => Marker::None,
                    },
                    step: match i % 50 {
                        9 => Marker::Regression,
                        40 => Marker::Improvement,
                        _ => Marker::None,
                    },
                    tooltip: format!("{} · abc{i:04} · <b>", date(JAN_2026 + i as i64 * DAY)),
                }
            })
            .collect()
    }

    #[test]
    fn calendar_conversions_round_trip() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(JAN_2026), "2026-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(-DAY), "1969-12-31");
        for day in [-800_000, -1, 0, 59, 10_957, 20_454, 2_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(date_time(JAN_2026 + 3600 * 14 + 300), "2026-01-01 14:05");
    }

    #[test]
    fn time_ticks_follow_the_span() {
        let days = time_ticks(JAN_2026 as f64, (JAN_2026 + 5 * DAY) as f64);
        assert_eq!(days.first().map(|t| t.1.as_str()), Some("2026-01-01"));
        let months = time_ticks(JAN_2026 as f64, (JAN_2026 + 365 * DAY) as f64);
        assert!(months.len() >= 4 && months.len() <= 8, "{months:?}");
        assert!(months.iter().all(|t| t.1.len() == 7), "{months:?}");
        let hours = time_ticks(JAN_2026 as f64, (JAN_2026 + 6 * 3600) as f64);
        assert!(hours.iter().all(|t| t.1.starts_with("01-01 ")), "{hours:?}");
        let decades = time_ticks(0.0, (JAN_2026 * 2) as f64);
        assert!(decades.len() <= 8 && !decades.is_empty(), "{decades:?}");
    }

    #[test]
    fn trend_of_a_year_has_markers_band_legend_and_tooltips() {
        let points = year(365);
        let svg = trend(
            "throughput · fan-out-16 · ring",
            &Axis::new("throughput (events/s)"),
            &points,
            Some((1.15e6, 1.25e6)),
        )
        .expect("draws");
        check(
            &svg,
            &[
                "throughput · fan-out-16 · ring",
                "throughput (events/s)",
                "run date (UTC)",
                "noise band",
                "95% CI",
                "regression",
                "improvement",
                "2026-",
            ],
        );
        assert_eq!(svg.matches("<title>").count(), 365);
        assert!(svg.contains("abc0042 · &lt;b&gt;"), "tooltips are escaped");
        assert!(svg.contains("▼ regression") && svg.contains("▲ improvement"));
        let shown = texts(&svg);
        assert!(shown.contains("1.2 M") || shown.contains("1.20 M"), "{shown}");
    }

    #[test]
    fn trend_handles_edge_cases() {
        let axis = Axis::new("instructions per event").log();
        check(&trend("empty", &axis, &[], None).expect("draws"), &["no data"]);
        let nan = TrendPoint { value: f64::NAN, ..TrendPoint::default() };
        check(&trend("nan", &axis, &[nan], Some((f64::NAN, 1.0))).expect("draws"), &["no data"]);
        let one = TrendPoint { time: JAN_2026, value: 0.0, lower: Some(f64::INFINITY), ..TrendPoint::default() };
        let svg = trend("one", &axis, std::slice::from_ref(&one), Some((0.0, 0.0))).expect("draws");
        check(&svg, &["one", "2026-01-01", "noise band"]);
        let same: Vec<TrendPoint> =
            (0..3).map(|i| TrendPoint { time: JAN_2026 + i, value: 42.0, ..TrendPoint::default() }).collect();
        check(&trend("same", &Axis::new("allocs"), &same, None).expect("draws"), &["same", "42"]);
        let lone_ci = [
            TrendPoint { time: JAN_2026, value: 5.0, lower: Some(4.0), upper: Some(6.0), ..TrendPoint::default() },
            TrendPoint { time: JAN_2026 + DAY, value: 5.5, ..TrendPoint::default() },
        ];
        check(&trend("lone", &Axis::new("x"), &lone_ci, None).expect("draws"), &["lone", "95% CI"]);
    }
}
