//! Charts as SVG: plain data in, a complete `<svg>` element out, drawn with
//! plotters' SVG backend.
//!
//! One chart kind per file:
//!
//! | function | file | what |
//! |---|---|---|
//! | [`bars`] | `bars.rs` | horizontal bars with CI whiskers, one per bus (throughput, allocations, instructions per event…) |
//! | [`scaling`] | `scaling.rs` | one line per bus against subscribers or producers, CI whiskers |
//! | [`spectrum`] | `spectrum.rs` | latency percentile spectrum (p50 … p99.99, max) on a "nines" axis, log ns |
//! | [`histogram`] | `histogram.rs` | latency histogram, log ns × log count |
//! | [`trend`] | `trend.rs` | a metric over run dates with its CI band, the noise band and regression/improvement markers |
//!
//! # What every chart does
//! - **Size**: 800 × 400 px ([`WIDTH`] × [`HEIGHT`]), except [`bars`],
//!   whose height grows with the bar count. The `<svg>` has `width`,
//!   `height` and a `viewBox`, so CSS (`max-width: 100%; height: auto`)
//!   can scale it.
//! - **Text**: a title, axis descriptions (the caller puts the unit in
//!   [`Axis::label`], e.g. `"throughput (events/s)"`), tick labels in SI
//!   form (`350 k`, `1.2 M`) or as durations (`850 ns`, `12 µs`, `1.5 ms`)
//!   for [`Unit::Nanoseconds`], and a legend when there is more than one
//!   series. Text is in the viewer's `sans-serif` font: nothing is
//!   fetched, and no font is embedded (plotters lays out SVG text with its
//!   own estimate, the browser draws it).
//! - **Safety**: every piece of text (titles, labels, tooltips) is
//!   XML-escaped, and control characters XML cannot carry are replaced by
//!   `�`, so a scenario named `<script>` shows as text. The SVG holds no
//!   URL but its `xmlns` and no script.
//! - **Hover**: bars, points and histogram buckets carry SVG `<title>`
//!   tooltips (transparent shapes laid over them), so a browser shows the
//!   exact value, its CI and the caller's tooltip text on hover.
//!
//! # Edge cases
//! - **No data** (an empty slice, or nothing finite in it): the chart is a
//!   small 800 × 120 placeholder holding the title and "no data" — never an
//!   error, so a page can always show something.
//! - **NaN and ±∞** values are skipped (a bar, point or bucket with a
//!   non-finite value is left out; a non-finite CI bound is ignored).
//! - **Zero or negative values on a log axis** cannot be placed: they are
//!   clamped to the bottom (left) edge of the axis, which is set just below
//!   the smallest positive value; their labels and tooltips still show the
//!   true value (a bus with 0 allocations per event shows an empty bar
//!   labelled `0`).
//! - **A single point or identical values**: the axis is widened around the
//!   value (±10%, or ±1 around zero).
//!
//! # Errors
//! [`ChartError`] only when plotters fails to draw, which the in-memory SVG
//! backend does not do for finite data; callers may still show the error
//! in place of the chart.

mod bars;
mod histogram;
mod lines;
mod scale;
mod scaling;
mod spectrum;
mod trend;

pub use bars::bars;
pub use histogram::{BINS, MAX_BUCKETS, histogram};
pub use scaling::scaling;
pub use spectrum::{MAX_QUANTILE, latency_points, spectrum};
pub use trend::trend;

use crate::render::format::{self, Style};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use scale::{Scale, Ticked};
use std::fmt::Write as _;

/// Width of every chart, px.
pub const WIDTH: u32 = 800;
/// Height of every chart but [`bars`], px.
pub const HEIGHT: u32 = 400;

/// A chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// plotters reported an error while drawing.
    #[error("drawing the {kind} chart {title:?}: {message}")]
    Draw {
        /// The chart kind (`"bars"`, `"trend"`…).
        kind: &'static str,
        /// The chart's title.
        title: String,
        /// plotters' message.
        message: String,
    },
}

/// How tick labels and values of an axis are written (the one
/// [number formatter](crate::render::format), in its chart style).
pub use crate::render::format::Unit;

/// A value axis: its description and scale.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Axis {
    /// What the axis shows, with its unit: `"throughput (events/s)"`,
    /// `"allocations per event"`, `"subscribers"`.
    pub label: String,
    /// A logarithmic scale (base 10).
    pub log: bool,
    /// How values are written.
    pub unit: Unit,
}

impl Axis {
    /// A linear axis with SI tick labels.
    pub fn new(label: impl Into<String>) -> Axis {
        Axis { label: label.into(), log: false, unit: Unit::Si }
    }

    /// The same axis on a log scale.
    pub fn log(mut self) -> Axis {
        self.log = true;
        self
    }

    /// The same axis with values in nanoseconds, written as durations.
    pub fn nanos(mut self) -> Axis {
        self.unit = Unit::Nanoseconds;
        self
    }
}

/// One bar of [`bars`]: a bus's value with its confidence interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bar {
    /// The bar's label (a bus name, perhaps with parameters).
    pub label: String,
    /// The value (the median).
    pub value: f64,
    /// Lower bound of the CI, if known.
    pub lower: Option<f64>,
    /// Upper bound of the CI, if known.
    pub upper: Option<f64>,
    /// A peer (a crate measured for reference, not one of buslab's buses):
    /// drawn in grey with a dark outline, and named in the legend.
    pub peer: bool,
}

/// One point of a [`Series`]: `y` at `x`, with an optional CI on `y`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    /// The x value (subscribers, producers; for [`spectrum`], the quantile).
    pub x: f64,
    /// The y value.
    pub y: f64,
    /// Lower bound of the CI of `y`, if known.
    pub lower: Option<f64>,
    /// Upper bound of the CI of `y`, if known.
    pub upper: Option<f64>,
}

/// A line of [`scaling`] or [`spectrum`]: one bus (or one offered load).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// The legend entry.
    pub label: String,
    /// The points, in any order (they are drawn sorted by `x`).
    pub points: Vec<Point>,
    /// A peer: drawn dashed with hollow markers, `(peer)` in the legend.
    pub peer: bool,
}

/// What a [`TrendPoint`] is marked with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Marker {
    /// Nothing.
    #[default]
    None,
    /// A regression against the run before: a red ▼.
    Regression,
    /// An improvement against the run before: a green ▲.
    Improvement,
}

/// One run's value in a [`trend`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrendPoint {
    /// When the run started, unix seconds (UTC).
    pub time: i64,
    /// The value.
    pub value: f64,
    /// Lower bound of the CI, if known.
    pub lower: Option<f64>,
    /// Upper bound of the CI, if known.
    pub upper: Option<f64>,
    /// A verdict marker.
    pub marker: Marker,
    /// The level moved at this point (a change point): a dashed vertical
    /// line, red when the move is a regression ([`Marker::Regression`]),
    /// green when an improvement.
    pub step: Marker,
    /// The hover text, e.g. `"2026-11-21 · 1a2b3c4 · 1.23 M events/s"`.
    pub tooltip: String,
}

// ---------------------------------------------------------------------------
// Shared style.

pub(crate) const FONT: &str = "sans-serif";
/// plotters writes `font-size = size / 1.24` into the SVG: these are the
/// sizes it is given (16 → 12.9 px).
pub(crate) const TITLE_SIZE: f64 = 22.0;
pub(crate) const DESC_SIZE: f64 = 17.0;
pub(crate) const TICK_SIZE: f64 = 15.0;
pub(crate) const LEGEND_SIZE: f64 = 15.0;
/// Average glyph width of the tick and legend font, px (for layout).
pub(crate) const CHAR_W: f64 = 7.0;
pub(crate) const AXIS_COLOR: RGBColor = RGBColor(0x44, 0x44, 0x44);
pub(crate) const GRID_COLOR: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
pub(crate) const TEXT_COLOR: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub(crate) const PEER_FILL: RGBColor = RGBColor(0xc8, 0xc8, 0xc8);
pub(crate) const PEER_STROKE: RGBColor = RGBColor(0x55, 0x55, 0x55);
pub(crate) const RED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
pub(crate) const GREEN: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);

/// Tableau 10: distinguishable, and readable for most colour-blind viewers.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0x79, 0x70, 0x6e),
];

/// The colour of the `i`-th series.
pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub(crate) fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&TEXT_COLOR)
}

// ---------------------------------------------------------------------------
// Text.

/// `text` without the characters XML 1.0 cannot carry (control characters
/// other than tab and newline), cut to `max` characters with `…`.
pub(crate) fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    for (n, c) in text.chars().enumerate() {
        if n + 1 > max {
            out.pop();
            out.push('…');
            break;
        }
        out.push(if xml_char(c) { c } else { '\u{fffd}' });
    }
    out
}

/// Whether XML 1.0 can carry `c` (it cannot carry most C0 controls, nor
/// U+FFFE and U+FFFF).
fn xml_char(c: char) -> bool {
    !((c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}' || c == '\u{ffff}')
}

/// Appends `text` to `out` escaped for XML text and attribute values, with
/// the characters XML cannot carry replaced by `�`.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    // Copy the runs between special characters whole: tooltips are most of
    // a trend chart's text.
    let bytes = text.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (replacement, len): (&str, usize) = match b {
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'&' => ("&amp;", 1),
            b'"' => ("&quot;", 1),
            b'\'' => ("&apos;", 1),
            b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            0..=0x1f => ("\u{fffd}", 1),
            // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
            0xef if matches!(bytes.get(i + 1..i + 3), Some([0xbf, 0xbe | 0xbf])) => ("\u{fffd}", 3),
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&text[run..i]);
        out.push_str(replacement);
        i += len;
        run = i;
    }
    out.push_str(&text[run..]);
}

/// Writes `v` with three significant digits in `unit`: `1.23 M`, `350 k`,
/// `0.25`, `12.5 µs`. Zero is `0`; non-finite values are `n/a`.
pub fn format_value(v: f64, unit: Unit) -> String {
    format::number(v, unit, Style::CHART)
}

// ---------------------------------------------------------------------------
// The frame every chart draws into.

pub(crate) type Coord = Cartesian2d<Ticked, Ticked>;
pub(crate) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Coord>;
pub(crate) type Root<'b> = DrawingArea<SVGBackend<'b>, Shift>;
pub(crate) type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Where the chart's parts go, px.
pub(crate) struct Layout {
    pub(crate) size: (u32, u32),
    /// Left area for the y tick labels and description.
    pub(crate) y_label_area: u32,
    /// Bottom area for the x tick labels and description.
    pub(crate) x_label_area: u32,
    /// Room right of the plot (a legend).
    pub(crate) right: u32,
    /// Room above the plot below the title (a legend row).
    pub(crate) top: u32,
}

impl Layout {
    pub(crate) fn standard(y_scale: &Scale) -> Layout {
        Layout { size: (WIDTH, HEIGHT), y_label_area: y_scale.label_width() + 34, x_label_area: 48, right: 20, top: 8 }
    }
}

/// Raw SVG to add on top of what plotters drew: tooltips.
#[derive(Default)]
pub(crate) struct Overlay {
    svg: String,
}

impl Overlay {
    /// A transparent circle at pixel `(x, y)` of radius `r` with `tip` on hover.
    pub(crate) fn circle(&mut self, (x, y): (i32, i32), r: i32, tip: &str) {
        let _ = write!(self.svg, r##"<circle cx="{x}" cy="{y}" r="{r}" fill="#000" fill-opacity="0"><title>"##);
        escape_into(&mut self.svg, tip);
        self.svg.push_str("</title></circle>\n");
    }

    /// A transparent rectangle between pixel corners with `tip` on hover.
    pub(crate) fn rect(&mut self, (x0, y0): (i32, i32), (x1, y1): (i32, i32), tip: &str) {
        let (x, y) = (x0.min(x1), y0.min(y1));
        let (w, h) = ((x1 - x0).abs().max(1), (y1 - y0).abs().max(1));
        let _ = write!(
            self.svg,
            r##"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="#000" fill-opacity="0"><title>"##
        );
        escape_into(&mut self.svg, tip);
        self.svg.push_str("</title></rect>\n");
    }
}

/// Draws a chart: the title, the mesh with `x` and `y` (descriptions and
/// tick labels), then `body` (series, legend, tooltips). `body` gets the
/// chart (data coordinates) and the whole drawing (absolute pixels, as
/// [`ChartContext::backend_coord`] gives them).
pub(crate) fn draw<F>(
    kind: &'static str,
    title: &str,
    layout: &Layout,
    (x, x_desc): (&Scale, &str),
    (y, y_desc): (&Scale, &str),
    body: F,
) -> Result<String, ChartError>
where
    F: FnOnce(&mut Chart<'_, '_>, &Root<'_>, &mut Overlay) -> DrawResult,
{
    let title = clean(title, 90);
    let mut svg = String::with_capacity(32 * 1024);
    let mut overlay = Overlay::default();
    let fail = |e: DrawingAreaErrorKind<std::io::Error>| ChartError::Draw {
        kind,
        title: title.clone(),
        message: e.to_string(),
    };
    {
        let full = SVGBackend::with_string(&mut svg, layout.size).into_drawing_area();
        full.fill(&WHITE).map_err(fail)?;
        let area = full.titled(&title, font(TITLE_SIZE)).map_err(fail)?;
        let (x_coord, y_coord) = (x.coord(), y.coord());
        let mut chart = ChartBuilder::on(&area)
            .margin_top(layout.top)
            // The last x tick label is centred on the right edge: room for its half.
            .margin_right(layout.right.max(x.label_width() / 2 + 6))
            .margin_left(6)
            .margin_bottom(4)
            .x_label_area_size(layout.x_label_area)
            .y_label_area_size(layout.y_label_area)
            .build_cartesian_2d(x_coord, y_coord)
            .map_err(fail)?;
        let x_fmt = |v: &f64| x.tick_label(*v);
        let y_fmt = |v: &f64| y.tick_label(*v);
        let x_desc = clean(x_desc, 90);
        let y_desc = clean(y_desc, 60);
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .axis_desc_style(font(DESC_SIZE))
            .label_style(font(TICK_SIZE))
            .axis_style(AXIS_COLOR)
            .bold_line_style(GRID_COLOR)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(fail)?;
        body(&mut chart, &full, &mut overlay).map_err(fail)?;
        full.present().map_err(fail)?;
    }
    Ok(finish(svg, &overlay))
}

/// Inserts the overlay before `</svg>`.
fn finish(mut svg: String, overlay: &Overlay) -> String {
    if let Some(end) = svg.rfind("</svg>") {
        svg.insert_str(end, &overlay.svg);
    }
    svg
}

/// The placeholder for a chart with nothing to draw.
pub(crate) fn no_data(title: &str) -> String {
    let mut svg = String::with_capacity(512);
    let (w, h) = (WIDTH, 120);
    let _ = write!(
        svg,
        r##"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="{w}" height="{h}" fill="#FFFFFF"/>
<text x="{cx}" y="30" text-anchor="middle" font-family="{FONT}" font-size="{ts:.1}" fill="#222222">"##,
        cx = w / 2,
        ts = TITLE_SIZE / 1.24,
    );
    escape_into(&mut svg, &clean(title, 90));
    let _ = write!(
        svg,
        r##"</text>
<text x="{cx}" y="75" text-anchor="middle" font-family="{FONT}" font-size="{ds:.1}" fill="#777777">no data</text>
</svg>
"##,
        cx = w / 2,
        ds = DESC_SIZE / 1.24,
    );
    svg
}

/// One entry of a legend.
pub(crate) struct LegendEntry {
    pub(crate) label: String,
    pub(crate) swatch: Swatch,
}

/// What a legend entry shows next to its label.
pub(crate) enum Swatch {
    /// A line with a marker (hollow and dashed for peers).
    Line { color: RGBColor, dashed: bool },
    /// A filled box with an outline.
    Box { fill: RGBColor, stroke: RGBColor, opacity: f64 },
    /// A triangle pointing down (true) or up.
    Triangle { color: RGBColor, down: bool },
}

/// Width a vertical legend of `labels` needs, px.
pub(crate) fn legend_width(labels: impl Iterator<Item = usize>) -> u32 {
    let chars = labels.max().unwrap_or(0).min(LEGEND_CHARS);
    (chars as f64 * CHAR_W) as u32 + 44
}

/// Legend labels are cut to this many characters (the tooltips keep them whole).
pub(crate) const LEGEND_CHARS: usize = 24;

/// Draws a legend on `root` (pixel coordinates): entries stacked down from
/// `(x, y)` when `vertical`, else in one row from `(x, y)`.
pub(crate) fn draw_legend(root: &Root<'_>, (x, y): (i32, i32), vertical: bool, entries: &[LegendEntry]) -> DrawResult {
    let (mut cx, mut cy) = (x, y);
    for e in entries {
        let label = clean(&e.label, LEGEND_CHARS);
        let mid = cy + 8;
        match e.swatch {
            Swatch::Line { color, dashed } => {
                if dashed {
                    root.draw(&PathElement::new(vec![(cx, mid), (cx + 7, mid)], color.stroke_width(2)))?;
                    root.draw(&PathElement::new(vec![(cx + 13, mid), (cx + 20, mid)], color.stroke_width(2)))?;
                    root.draw(&Circle::new((cx + 10, mid), 3, color.stroke_width(1)))?;
                } else {
                    root.draw(&PathElement::new(vec![(cx, mid), (cx + 20, mid)], color.stroke_width(2)))?;
                    root.draw(&Circle::new((cx + 10, mid), 3, color.filled()))?;
                }
            }
            Swatch::Box { fill, stroke, opacity } => {
                root.draw(&Rectangle::new([(cx, mid - 6), (cx + 20, mid + 6)], fill.mix(opacity).filled()))?;
                root.draw(&Rectangle::new([(cx, mid - 6), (cx + 20, mid + 6)], stroke.stroke_width(1)))?;
            }
            Swatch::Triangle { color, down } => {
                root.draw(&triangle((cx + 10, mid), 6, down, color))?;
            }
        }
        root.draw(&Text::new(
            label.clone(),
            (cx + 26, mid),
            font(LEGEND_SIZE).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        if vertical {
            cy += 20;
        } else {
            cx += 26 + (label.chars().count() as f64 * CHAR_W) as i32 + 18;
        }
    }
    Ok(())
}

/// The plotting area's corners, absolute pixels: `((left, top), (right, bottom))`.
pub(crate) fn plot_box(chart: &Chart<'_, '_>) -> ((i32, i32), (i32, i32)) {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    ((xs.start, ys.start), (xs.end, ys.end))
}

/// A filled triangle centred on pixel `c`, pointing down or up.
pub(crate) fn triangle((x, y): (i32, i32), r: i32, down: bool, color: RGBColor) -> Polygon<(i32, i32)> {
    let points = if down {
        vec![(x - r, y - r * 2 / 3), (x + r, y - r * 2 / 3), (x, y + r)]
    } else {
        vec![(x - r, y + r * 2 / 3), (x + r, y + r * 2 / 3), (x, y - r)]
    };
    Polygon::new(points, color.filled())
}

/// A vertical whisker (CI) at data `x` from `lo` to `hi` with caps `cap` px wide.
pub(crate) fn v_whisker(root: &Root<'_>, top: (i32, i32), bottom: (i32, i32), cap: i32, color: RGBColor) -> DrawResult {
    let style = color.stroke_width(1);
    root.draw(&PathElement::new(vec![top, bottom], style))?;
    root.draw(&PathElement::new(vec![(top.0 - cap, top.1), (top.0 + cap, top.1)], style))?;
    root.draw(&PathElement::new(vec![(bottom.0 - cap, bottom.1), (bottom.0 + cap, bottom.1)], style))?;
    Ok(())
}

/// `"value"`, or `"value (95% CI lower – upper)"` when the CI is known.
pub(crate) fn value_with_ci(value: f64, lower: Option<f64>, upper: Option<f64>, unit: Unit) -> String {
    let mut s = String::with_capacity(40);
    write_value_with_ci(&mut s, value, lower, upper, unit);
    s
}

/// [`value_with_ci`] appending to `s`.
pub(crate) fn write_value_with_ci(s: &mut String, value: f64, lower: Option<f64>, upper: Option<f64>, unit: Unit) {
    format::write(s, value, unit, Style::CHART);
    if let (Some(lo), Some(hi)) = (lower, upper) {
        s.push_str(" (95% CI ");
        format::write(s, lo, unit, Style::CHART);
        s.push_str(" – ");
        format::write(s, hi, unit, Style::CHART);
        s.push(')');
    }
}

/// A CI bound only if finite.
pub(crate) fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parses `svg` as XML, failing on anything malformed, and returns it.
    pub(crate) fn well_formed(svg: &str) -> &str {
        let mut reader = quick_xml::Reader::from_str(svg);
        let mut depth = 0i32;
        let mut roots = 0;
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Start(_)) => {
                    if depth == 0 {
                        roots += 1;
                    }
                    depth += 1;
                }
                Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                Ok(quick_xml::events::Event::Empty(_)) => {
                    if depth == 0 {
                        roots += 1;
                    }
                }
                Ok(quick_xml::events::Event::Text(t)) => {
                    t.decode().expect("text decodes");
                }
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("malformed SVG at {}: {e}\n{svg}", reader.buffer_position()),
            }
        }
        assert_eq!(depth, 0, "unclosed elements");
        assert_eq!(roots, 1, "one root element");
        assert!(svg.trim_start().starts_with("<svg"), "starts with <svg");
        svg
    }

    /// Asserts the SVG is safe to inline: no script, no URL but the xmlns.
    pub(crate) fn offline(svg: &str) {
        assert!(!svg.contains("<script"), "no script element");
        let stripped = svg.replace(r#"xmlns="http://www.w3.org/2000/svg""#, "");
        assert!(!stripped.contains("http://") && !stripped.contains("https://"), "no URL:\n{svg}");
        assert!(!stripped.contains("url("), "no url() reference");
    }

    /// The text content of all `<text>` elements, joined by newlines.
    pub(crate) fn texts(svg: &str) -> String {
        let mut reader = quick_xml::Reader::from_str(svg);
        let mut inside = false;
        let mut out = String::new();
        loop {
            match reader.read_event().expect("well-formed") {
                quick_xml::events::Event::Start(e) if e.name().as_ref() == b"text" => inside = true,
                quick_xml::events::Event::End(e) if e.name().as_ref() == b"text" => {
                    inside = false;
                    let end = out.trim_end().len();
                    out.truncate(end);
                    out.push('\n');
                }
                quick_xml::events::Event::Text(t) if inside => {
                    let text = t.decode().expect("decodes");
                    out.push_str(if out.is_empty() || out.ends_with('\n') { text.trim_start() } else { &text });
                }
                quick_xml::events::Event::GeneralRef(r) if inside => {
                    let name = r.decode().expect("decodes");
                    out.push(match name.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        _ => '?',
                    });
                }
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        out
    }

    /// The centres of the tooltip circles, in order.
    pub(crate) fn tooltip_centres(svg: &str) -> Vec<(i32, i32)> {
        svg.match_indices("<circle cx=\"")
            .filter(|(at, _)| svg[*at..].split('>').next().is_some_and(|tag| tag.contains("fill-opacity=\"0\"")))
            .map(|(at, _)| {
                let mut parts = svg[at..].split('"');
                let cx = parts.nth(1).and_then(|v| v.parse().ok()).expect("cx");
                let cy = parts.nth(1).and_then(|v| v.parse().ok()).expect("cy");
                (cx, cy)
            })
            .collect()
    }

    /// The checks every chart must pass: well-formed, offline, with these texts.
    pub(crate) fn check(svg: &str, must_show: &[&str]) {
        well_formed(svg);
        offline(svg);
        let shown = texts(svg);
        for s in must_show {
            assert!(shown.contains(s), "{s:?} not shown in:\n{shown}");
        }
    }

    /// Render times, for the record (not a pass/fail check): run with
    /// `cargo test --release -p buslab-reports --lib render_speed -- --ignored --nocapture`.
    #[test]
    #[ignore = "prints timings; run in release"]
    fn render_speed() {
        use std::hint::black_box;
        use std::time::Instant;
        // CPU time of this thread, ns (Linux): on a machine shared with other
        // work, wall time also counts the time the thread waited for a core.
        fn thread_cpu_ns() -> Option<u64> {
            let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
            stat.split_whitespace().next()?.parse().ok()
        }
        // RENDER_SPEED_ONLY=trend times one chart kind alone (for a profiler).
        let only = std::env::var("RENDER_SPEED_ONLY").unwrap_or_default();
        let time = |name: &str, runs: u32, f: &mut dyn FnMut() -> usize| {
            if !name.starts_with(only.as_str()) {
                return;
            }
            let mut bytes = 0;
            for _ in 0..runs.min(20) {
                bytes = black_box(f());
            }
            // Ten batches; the fastest batch's mean is the least disturbed
            // by other processes on a shared machine, the median is typical.
            let cpu_start = thread_cpu_ns();
            let mut batches: Vec<f64> = (0..10)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..runs / 10 {
                        black_box(f());
                    }
                    start.elapsed().as_secs_f64() / f64::from(runs / 10)
                })
                .collect();
            let cpu =
                thread_cpu_ns().zip(cpu_start).map(|(end, start)| (end - start) as f64 / f64::from(runs / 10 * 10));
            batches.sort_by(f64::total_cmp);
            let (best, median) = (batches[0], batches[5]);
            let cpu = cpu.map_or("n/a".to_string(), |ns| format!("{:.1} µs", ns / 1e3));
            println!(
                "{name:<40} cpu {cpu:>9}, wall best {:>7.1} µs, median {:>7.1} µs  ({bytes} bytes)",
                best * 1e6,
                median * 1e6
            );
        };
        let day = 86_400;
        let year: Vec<TrendPoint> = (0..365)
            .map(|i| {
                let value = 1.2e6 + f64::from(i % 17) * 1e4;
                TrendPoint {
                    time: 1_767_225_600 + i64::from(i) * day,
                    value,
                    lower: Some(value * 0.98),
                    upper: Some(value * 1.02),
                    marker: if i % 90 == 3 { Marker::Regression } else { Marker::None },
                    step: if i % 90 == 5 { Marker::Regression } else { Marker::None },
                    tooltip: format!("2026-01-01 · 1a2b3c{i} · {} events/s", format_value(value, Unit::Si)),
                }
            })
            .collect();
        let axis = Axis::new("throughput (events/s)");
        time("trend, 365 points with CI and band", 300, &mut || {
            trend("trend", &axis, &year, Some((1.1e6, 1.3e6))).expect("draws").len()
        });
        let bars_data: Vec<Bar> = (0..10)
            .map(|i| Bar {
                label: format!("bus-number-{i}"),
                value: f64::from(i + 1) * 1e6,
                lower: Some(f64::from(i + 1) * 0.9e6),
                upper: Some(f64::from(i + 1) * 1.1e6),
                peer: i == 9,
            })
            .collect();
        time("bars, 10 bars with CI", 1000, &mut || bars("bars", &axis, &bars_data).expect("draws").len());
        let series: Vec<Series> = (0..8)
            .map(|s| Series {
                label: format!("bus-{s}"),
                points: [1.0, 4.0, 16.0, 64.0, 256.0, 500.0]
                    .iter()
                    .map(|&x| Point { x, y: 1e7 / x, lower: Some(0.9e7 / x), upper: Some(1.1e7 / x) })
                    .collect(),
                peer: false,
            })
            .collect();
        let (x_axis, y_axis) = (Axis::new("subscribers").log(), Axis::new("events/s").log());
        time("scaling, 8 series × 6 points", 1000, &mut || {
            scaling("s", &x_axis, &y_axis, &series).expect("draws").len()
        });
        let spec: Vec<Series> = (0..8)
            .map(|s| Series {
                label: format!("bus-{s}"),
                points: [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0]
                    .iter()
                    .enumerate()
                    .map(|(k, &x)| Point { x, y: 500.0 * 3f64.powi(k as i32), lower: None, upper: None })
                    .collect(),
                peer: false,
            })
            .collect();
        time("spectrum, 8 series × 6 percentiles", 1000, &mut || spectrum("p", &spec).expect("draws").len());
        let buckets: Vec<(u64, u64, u64)> = (1..3000u64).map(|i| (i * 100, i * 100 + 99, 1 + i % 13)).collect();
        time("histogram, 3000 buckets merged to 60", 1000, &mut || histogram("h", &buckets).expect("draws").len());
        let folded: String = (0..200)
            .map(|i| {
                format!("main;buslab::run;module{m}::function{i};inner{j} {c}\n", m = i % 7, j = i % 3, c = 1 + i % 50)
            })
            .collect();
        time("flame graph, 200 stacks", 100, &mut || {
            crate::render::flame::flamegraph(&folded, "f").expect("draws").len()
        });
        time("differential flame graph, 200 stacks", 100, &mut || {
            crate::render::flame::differential(&folded, &folded, "d").expect("draws").len()
        });
    }

    #[test]
    fn clean_replaces_control_characters_and_cuts() {
        assert_eq!(clean("a\u{1}b", 10), "a\u{fffd}b");
        assert_eq!(clean("abcdef", 4), "abc…");
        assert_eq!(clean("abcd", 4), "abcd");
    }

    #[test]
    fn escape_into_escapes_markup() {
        let mut s = String::new();
        escape_into(&mut s, "<script>alert('x' & \"y\")</script>\u{0}µ\u{ffff}\u{fffe}\u{fffd}\t");
        assert_eq!(
            s,
            "&lt;script&gt;alert(&apos;x&apos; &amp; &quot;y&quot;)&lt;/script&gt;\u{fffd}µ\u{fffd}\u{fffd}\u{fffd}\t"
        );
    }

    #[test]
    fn every_chart_escapes_markup_from_user_text() {
        let evil = "<script>alert('x')</script> & \u{1}";
        let axis = Axis::new(evil);
        let point = Point { x: 0.5, y: 10.0, lower: Some(9.0), upper: Some(11.0) };
        let series = [
            Series { label: evil.into(), points: vec![point], peer: false },
            Series { label: evil.into(), points: vec![point], peer: true },
        ];
        let trend_point = TrendPoint {
            time: 0,
            value: 1.0,
            lower: Some(0.5),
            upper: Some(2.0),
            marker: Marker::None,
            step: Marker::Improvement,
            tooltip: evil.into(),
        };
        let charts = [
            bars(evil, &axis, &[Bar { label: evil.into(), value: 1.0, lower: None, upper: None, peer: true }]),
            scaling(evil, &axis, &axis, &series),
            spectrum(evil, &series),
            histogram(evil, &[(1, 2, 3)]),
            trend(evil, &axis, &[trend_point], Some((0.0, 1.0))),
            Ok(no_data(evil)),
        ];
        for chart in charts {
            let svg = chart.expect("draws");
            check(&svg, &["<script>alert('x')</script> & \u{fffd}"]);
            assert!(!svg.contains("<script"), "{svg}");
        }
    }

    #[test]
    fn no_data_placeholder_is_well_formed_and_escaped() {
        let svg = no_data("<script>alert(1)</script>");
        check(&svg, &["<script>alert(1)</script>", "no data"]);
    }
}
