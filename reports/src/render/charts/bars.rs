//! Horizontal bars, one per bus, with CI whiskers: throughput, allocations,
//! bytes, instructions, estimated cycles or branch misses per event.

use super::scale::{Fit, Scale};
use super::{
    Axis, Bar, ChartError, DrawResult, LegendEntry, PEER_FILL, PEER_STROKE, Swatch, TEXT_COLOR, clean, color, draw,
    draw_legend, finite, font, no_data, plot_box, value_with_ci,
};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Height of one bar's row, px.
const ROW: u32 = 26;
/// Bar labels longer than this are cut (the tooltip has them whole).
const LABEL_CHARS: usize = 34;

/// Horizontal bars, in the order given (the first on top), with CI
/// whiskers where [`Bar::lower`] and [`Bar::upper`] are known, the value
/// written after each bar, and a tooltip with the label, value and CI.
///
/// The value axis (`axis`, at the bottom) starts at zero on a linear
/// scale. Peers ([`Bar::peer`]) are grey with a dark outline, and a legend
/// names both kinds. 800 px wide, 26 px per bar plus about 110 px for the
/// title and axis. Bars whose value is not finite are left out; no bar
/// left gives the "no data" placeholder.
pub fn bars(title: &str, axis: &Axis, bars: &[Bar]) -> Result<String, ChartError> {
    let bars: Vec<&Bar> = bars.iter().filter(|b| b.value.is_finite()).collect();
    if bars.is_empty() {
        return Ok(no_data(title));
    }
    let n = bars.len();
    let peers = bars.iter().any(|b| b.peer);
    let x = Scale::fit(
        bars.iter().flat_map(|b| [Some(b.value), finite(b.lower), finite(b.upper)]).flatten(),
        Fit { zero: true, headroom: 0.14, ..Fit::new(axis.log, axis.unit) },
    );
    let labels: Vec<String> = bars.iter().map(|b| clean(&b.label, LABEL_CHARS)).collect();
    // Bar i (0 on top) is centred at n - 1 - i + 0.5.
    let y = Scale::custom(
        0.0,
        n as f64,
        labels.iter().enumerate().map(|(i, l)| ((n - 1 - i) as f64 + 0.5, l.clone())).collect(),
    );
    let top = if peers { 30 } else { 8 };
    let label_chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
    let layout = super::Layout {
        size: (super::WIDTH, 44 + top + ROW * n as u32 + 52),
        y_label_area: (label_chars as f64 * super::CHAR_W) as u32 + 16,
        x_label_area: 48,
        right: 24,
        top,
    };
    draw("bars", title, &layout, (&x, &axis.label), (&y, ""), |chart, root, overlay| -> DrawResult {
        let ((left, top_px), (right, _)) = plot_box(chart);
        let base = if axis.log { x.lo } else { 0.0 };
        let own = color(0);
        for (i, bar) in bars.iter().enumerate() {
            let row = (n - 1 - i) as f64;
            let v = x.to_plot(bar.value);
            let (fill, stroke) = if bar.peer { (PEER_FILL, PEER_STROKE) } else { (own, own) };
            chart.draw_series(std::iter::once(Rectangle::new([(base, row + 0.2), (v, row + 0.8)], fill.filled())))?;
            if bar.peer {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(base, row + 0.2), (v, row + 0.8)],
                    stroke.stroke_width(1),
                )))?;
            }
            let mut end = chart.backend_coord(&(v, row + 0.5));
            if let (Some(lo), Some(hi)) = (finite(bar.lower), finite(bar.upper)) {
                let a = chart.backend_coord(&(x.to_plot(lo), row + 0.5));
                let b = chart.backend_coord(&(x.to_plot(hi), row + 0.5));
                let style = TEXT_COLOR.stroke_width(1);
                root.draw(&PathElement::new(vec![a, b], style))?;
                for p in [a, b] {
                    root.draw(&PathElement::new(vec![(p.0, p.1 - 5), (p.0, p.1 + 5)], style))?;
                }
                end.0 = end.0.max(b.0);
            }
            let text = super::format_value(bar.value, axis.unit);
            let room = right - end.0;
            let label_w = (text.chars().count() as f64 * super::CHAR_W) as i32 + 8;
            let pos = if room >= label_w { (end.0 + 6, end.1) } else { (end.0 - label_w, end.1 - 12) };
            root.draw(&Text::new(text, pos, font(super::TICK_SIZE).pos(Pos::new(HPos::Left, VPos::Center))))?;
            let row_top = chart.backend_coord(&(x.lo, row + 1.0)).1;
            let row_bottom = chart.backend_coord(&(x.lo, row)).1;
            let mut tip =
                format!("{}\n{}: {}", bar.label, axis.label, value_with_ci(bar.value, bar.lower, bar.upper, axis.unit));
            if bar.peer {
                tip.push_str("\n(peer crate)");
            }
            overlay.rect((left, row_top), (right, row_bottom), &tip);
        }
        if peers {
            let entries = [
                LegendEntry {
                    label: "buslab bus".into(),
                    swatch: Swatch::Box { fill: own, stroke: own, opacity: 1.0 },
                },
                LegendEntry {
                    label: "peer crate".into(),
                    swatch: Swatch::Box { fill: PEER_FILL, stroke: PEER_STROKE, opacity: 1.0 },
                },
            ];
            draw_legend(root, (left, top_px - 26), false, &entries)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::charts::tests::check;

    fn bar(label: &str, value: f64) -> Bar {
        Bar { label: label.into(), value, lower: Some(value * 0.95), upper: Some(value * 1.05), peer: false }
    }

    #[test]
    fn bars_show_title_axis_labels_and_values() {
        let mut data = vec![bar("channel", 1.2e6), bar("ring", 8.5e6), bar("typed_router", 3.1e7)];
        data.push(Bar { peer: true, ..bar("crossbeam (peer)", 2.0e6) });
        let svg = bars("Throughput, fan-out-16", &Axis::new("throughput (events/s)"), &data).expect("draws");
        check(
            &svg,
            &["Throughput, fan-out-16", "throughput (events/s)", "channel", "typed_router", "31 M", "peer crate"],
        );
        assert_eq!(svg.matches("<title>").count(), 4, "one tooltip per bar");
        assert!(svg.contains("95% CI"));
    }

    #[test]
    fn bars_escape_markup_in_labels_and_titles() {
        let data = [bar("<script>alert(1)</script>", 1.0), bar("a & b", 2.0)];
        let svg = bars("<script>x</script>", &Axis::new("<b>events</b>"), &data).expect("draws");
        check(&svg, &["<script>x</script>", "<script>alert(1)</script>", "a & b", "<b>events</b>"]);
    }

    #[test]
    fn bars_handle_empty_nan_zero_and_identical_values() {
        let axis = Axis::new("allocations per event").log();
        let empty = bars("empty", &axis, &[]).expect("draws");
        check(&empty, &["empty", "no data"]);
        let nan = bars("nan", &axis, &[bar("x", f64::NAN), bar("y", f64::INFINITY)]).expect("draws");
        check(&nan, &["no data"]);
        let zeros = bars("zeros", &axis, &[bar("a", 0.0), bar("b", 0.0)]).expect("draws");
        check(&zeros, &["zeros", "a", "b"]);
        let mixed = bars("mixed", &axis, &[bar("a", 0.0), bar("b", 2.5), bar("c", f64::NAN)]).expect("draws");
        check(&mixed, &["a", "b", "2.5"]);
        assert!(!crate::render::charts::tests::texts(&mixed).contains("\nc\n"), "the NaN bar is left out");
        let same = bars("same", &Axis::new("ops"), &[bar("a", 7.0), bar("b", 7.0)]).expect("draws");
        check(&same, &["same", "7"]);
        let one = bars("one", &Axis::new("ops"), &[Bar { label: "solo".into(), value: -3.0, ..Bar::default() }])
            .expect("draws");
        check(&one, &["solo", "-3"]);
    }

    #[test]
    fn bars_grow_with_the_bar_count() {
        let height = |svg: &str| -> u32 {
            let start = svg.find("height=\"").expect("has a height") + 8;
            svg[start..].split('"').next().and_then(|h| h.parse().ok()).expect("a number")
        };
        let two = bars("t", &Axis::new("x"), &[bar("a", 1.0), bar("b", 2.0)]).expect("draws");
        let ten: Vec<Bar> = (0..10).map(|i| bar(&format!("bus-{i}"), i as f64 + 1.0)).collect();
        let ten = bars("t", &Axis::new("x"), &ten).expect("draws");
        assert_eq!(height(&ten) - height(&two), 8 * ROW);
    }
}
