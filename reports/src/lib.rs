//! Analysis and rendering of stored results: the verdict matrix, charts,
//! trends and regression verdicts, as a static HTML site.
//!
//! Placeholder: the reports issue fills this crate. It depends only on the
//! serde result types, never on the harness.
#![deny(missing_docs)]
