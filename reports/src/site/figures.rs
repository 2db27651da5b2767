//! The charts of each page: which data goes into which chart kind.
//! (The chart kinds themselves are in [`crate::charts`].)

use super::context::Figure;
use crate::trends::Trend;
use crate::verdicts::Group;
use buslab_scenarios::results::CellResult;
use std::collections::BTreeMap;

/// Scaling curves of a scenario with a sweep.
pub(crate) fn scaling(_scenario: &str, _groups: &[&Group], _cells: &BTreeMap<String, &CellResult>) -> Vec<Figure> {
    Vec::new()
}

/// The bar charts of one sweep point.
pub(crate) fn group(_group: &Group, _cells: &BTreeMap<String, &CellResult>) -> Vec<Figure> {
    Vec::new()
}

/// The latency spectrum and histograms of one cell.
pub(crate) fn latency(_cell: &CellResult) -> Vec<Figure> {
    Vec::new()
}

/// One metric over time.
pub(crate) fn trend(_cell: &str, _trend: &Trend) -> Option<Figure> {
    None
}

/// The flame graph of folded stacks.
pub(crate) fn flame(_folded: &str, _cell: &str) -> Result<String, String> {
    Err("pending".to_owned())
}

/// The differential flame graph of `old` → `new`.
pub(crate) fn differential(_old: &str, _new: &str, _cell: &str, _base: &str) -> Result<String, String> {
    Err("pending".to_owned())
}
