//! Analysis and rendering of stored results: the regression verdicts
//! between two runs, and the charts and flame graphs of the HTML report.
//!
//! It exists apart from the harness so that what a run measured and what
//! the numbers mean are kept apart: this crate depends only on the serde
//! result types of `buslab-scenarios`, never on the harness, and can judge
//! runs made anywhere (a JSON export from another machine, a CI artifact).
//!
//! - [`analysis`]: the report model of one run (verdicts, recommendations,
//!   decision guide, heat map), computed once; pages and the terminal
//!   only format it.
//! - [`recommend`]: which bus for each scenario point, the rule in its
//!   docs.
//! - [`regression`]: the regression rule, written out in its docs, and
//!   [`regression::compare`], which applies it to two runs.
//! - [`changepoints`]: the step detector (an L1 Potts fit with a stated
//!   penalty) that finds where a metric's level moved over the history.
//! - [`stats`]: the statistics it uses (Mann–Whitney U, the Q3 + 3·IQR
//!   noise band).
//! - [`noise`]: noise calibration from A/A runs (`buslab noise`): the
//!   spread of each metric and the false-positive rate of the rule.
//! - [`render`]: a comparison or a calibration as Markdown (CI job
//!   summaries) and as a terminal table.
//! - [`charts`]: the report's charts as SVG strings, one kind per file
//!   (bars with CIs, scaling curves, latency spectrum, latency histogram,
//!   trends over runs): plain data in, a complete `<svg>` element out.
//! - [`flame`]: interactive flame graphs and differential flame graphs
//!   from the stored folded stacks.
//!
//! # Dependencies and why
//! - `libm`: `erfc` for the normal approximation of the Mann–Whitney U
//!   p-value (std has no error function).
//! - `fastrand`: the seeded resampling of the bootstrap intervals and the
//!   coverage simulation of [`stats`] (the same data always give the same
//!   interval).
//! - `serde`: comparisons serialise for JSON output and report templates.
//! - `thiserror`: the typed [`stats::StatsError`], [`charts::ChartError`]
//!   and [`flame::FlameError`].
//! - `plotters` (0.3.7, `default-features = false`, features
//!   `svg_backend` and `line_series`): draws the charts into an SVG string
//!   (`SVGBackend::with_string`), as criterion's reports do. No font
//!   feature on purpose: without `ttf` or `ab_glyph`, plotters lays text
//!   out with its built-in size estimate and writes `<text
//!   font-family="sans-serif">`, which the browser draws with its own
//!   font. SVG text is always drawn by the viewer, so an embedded font
//!   would only sharpen plotters' width estimate, at the cost of a font
//!   file in the build and none of the system font look-ups `ttf` does
//!   (font-kit, fontconfig). Nothing is fetched or embedded; layout
//!   widths (legend, bar labels) use a fixed average glyph width.
//! - `inferno` (0.12.8, `default-features = false`: no CLI, no threads):
//!   the flame graphs, as `cargo flamegraph` and pprof's own `flamegraph`
//!   feature draw them; its SVG is interactive with inline JavaScript.
//! - `quick-xml` (dev): the tests parse every SVG to check it is
//!   well-formed (the version inferno already pulls in).
//!
//! The Mann–Whitney U test is written here rather than taken from a crate.
//! `statrs` (0.19.1, maintained) has one, but its exact method gave
//! p = 1.0 for two fully separated samples of 5 (its two-sided exact
//! p-value takes the complement when the first sample is the smaller or of
//! equal size), which would hide every regression of a run with few trials;
//! its asymptotic method alone is a dozen lines. The other crate found
//! with the test, `rustats` (0.1.2), has not been released since 2020.
//! Ours is exact for small samples without ties and has property tests.
#![deny(missing_docs)]

pub mod analysis;
pub mod changepoints;
pub mod charts;
pub mod flame;
pub mod format;
pub mod guide;
pub mod levers;
pub mod noise;
pub mod recommend;
pub mod regression;
pub mod render;
pub mod site;
pub mod stats;
pub mod trends;
pub mod verdicts;
