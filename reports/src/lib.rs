//! Analysis and rendering of stored results: today the regression verdicts
//! between two runs; later the verdict matrix, charts and trends, as a
//! static HTML site.
//!
//! It exists apart from the harness so that what a run measured and what
//! the numbers mean are kept apart: this crate depends only on the serde
//! result types of `buslab-scenarios`, never on the harness, and can judge
//! runs made anywhere (a JSON export from another machine, a CI artifact).
//!
//! - [`regression`]: the regression rule, written out in its docs, and
//!   [`regression::compare`], which applies it to two runs.
//! - [`stats`]: the statistics it uses (Mann–Whitney U, the Q3 + 3·IQR
//!   noise band).
//! - [`render`]: a comparison as Markdown (CI job summaries) and as a
//!   terminal table.
//!
//! # Dependencies and why
//! - `libm`: `erfc` for the normal approximation of the Mann–Whitney U
//!   p-value (std has no error function).
//! - `serde`: comparisons serialise for JSON output and report templates.
//! - `thiserror`: the typed [`stats::StatsError`].
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

pub mod format;
pub mod guide;
pub mod regression;
pub mod render;
pub mod site;
pub mod stats;
pub mod trends;
pub mod verdicts;
