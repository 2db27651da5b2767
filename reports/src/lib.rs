//! Analysis and rendering of stored results: the regression verdicts
//! between two runs, and the charts and flame graphs of the HTML report.
//!
//! It exists apart from the harness so that what a run measured and what
//! the numbers mean are kept apart: this crate depends only on the serde
//! result types of `buslab-scenarios`, never on the harness, and can judge
//! runs made anywhere (a JSON export from another machine, a CI artifact).
//!
//! The crate has two halves, and data flows one way between them:
//!
//! - [`analysis`]: what the numbers mean, computed once into one model,
//!   [`analysis::Report`] ([`analysis::report`]): the verdict matrix
//!   ([`analysis::verdicts`]), the recommendation per scenario point
//!   ([`analysis::recommend`]), the guide's claims ([`analysis::guide`],
//!   [`analysis::levers`]), the regression rule and the comparison of two
//!   runs ([`analysis::regression`]), the change points over the history
//!   ([`analysis::trends`], [`analysis::changepoints`]), the noise
//!   calibration of A/A runs ([`analysis::noise`]) and the statistics they
//!   use ([`analysis::stats`]).
//! - [`render`]: the model as text, never judging: the HTML site, one
//!   page kind per file ([`render::site`]), its charts as SVG
//!   ([`render::charts`]) and flame graphs ([`render::flame`]), Markdown
//!   and terminal text ([`render::text`]), the table a run ends with
//!   ([`render::summary`]), and the one number formatter every one of
//!   them writes numbers with ([`render::format`]).
//!
//! # Dependencies and why
//! - `libm`: `erfc` for the normal approximation of the Mann–Whitney U
//!   p-value (std has no error function).
//! - `fastrand`: the seeded resampling of the bootstrap intervals and the
//!   coverage simulation of [`analysis::stats`] (the same data always give the same
//!   interval).
//! - `serde`: comparisons serialise for JSON output and report templates.
//! - `thiserror`: the typed [`analysis::stats::StatsError`], [`render::charts::ChartError`]
//!   and [`render::flame::FlameError`].
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
pub mod render;
