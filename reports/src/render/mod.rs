//! The report model as text: HTML pages, SVG charts, flame graphs,
//! Markdown and the terminal's tables. Nothing here judges a number; it
//! formats what [`crate::analysis`] computed, every number through
//! [`format`](mod@format).

pub mod charts;
pub mod flame;
pub mod format;
pub mod site;
pub mod summary;
pub mod text;
