//! What each CloudEvents choice is worth: the decoder, borrowing strings
//! instead of copying them, known extensions in struct fields instead of a
//! map, the typed router instead of the type-erased one, and binary content
//! mode instead of structured — the levers of
//! the case study this lab's CloudEvents scenarios follow (throughput ×3.8
//! once per-event allocations, map-based extensions and type assertions
//! were removed).
//!
//! A lever is judged on **matched pairs**: two `ok` cells of one scenario
//! that differ in that one axis only (same bus, decoder, representation and
//! extension mode otherwise). For each pair, the ratio of the medians of
//! their decode + route throughput samples with a 95% bootstrap interval
//! ([`stats::ratio_of_medians`]); the lever helps beyond doubt in a pair
//! when the whole interval lies above 1, hurts when it lies below. The time
//! it saves per event is the difference of the inverse medians. Nothing
//! here is a typed-in figure: every number comes from the run's cells.

use crate::analysis::stats;
use crate::render::format;
use buslab_scenarios::results::{CellResult, CellStatus};

/// One choice: `better` against `baseline` on `axis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lever {
    /// `bus`, or a cell parameter (`decoder`, `mode`, `representation`,
    /// `extensions`).
    pub axis: &'static str,
    /// The value expected to be faster.
    pub better: &'static str,
    /// The value it is held against.
    pub baseline: &'static str,
    /// What the choice is, in words.
    pub what: &'static str,
}

/// The levers, in the order the guide states them.
pub const LEVERS: [Lever; 7] = [
    Lever {
        axis: "representation",
        better: "borrowed",
        baseline: "owned",
        what: "Borrowing strings from the input instead of copying them",
    },
    Lever {
        axis: "extensions",
        better: "struct",
        baseline: "map",
        what: "Known extensions in struct fields instead of a map",
    },
    Lever {
        axis: "bus",
        better: "router",
        baseline: "any_router",
        what: "The typed router instead of the type-erased one",
    },
    Lever { axis: "decoder", better: "sonic_rs", baseline: "serde_json", what: "sonic-rs instead of serde_json" },
    Lever { axis: "decoder", better: "simd_json", baseline: "serde_json", what: "simd-json instead of serde_json" },
    Lever {
        axis: "decoder",
        better: "sonic_rs_native",
        baseline: "sonic_rs",
        what: "sonic-rs's parser driven natively instead of through serde",
    },
    Lever {
        axis: "mode",
        better: "binary",
        baseline: "structured",
        what: "Binary content mode (attributes in ce-* headers, data the body) instead of structured JSON",
    },
];

/// Two cells differing in one lever's axis only, and how they compare.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    /// The cell with the lever's `better` value.
    pub better: String,
    /// The cell with its `baseline` value.
    pub baseline: String,
    /// Ratio of the medians of decode + route throughput, better / baseline.
    pub ratio: f64,
    /// 95% bootstrap interval of the ratio.
    pub lower: f64,
    /// Upper bound of that interval.
    pub upper: f64,
    /// Nanoseconds per event the lever saves (negative: costs).
    pub saved_ns: f64,
    /// Allocations per event of (better, baseline), when both were counted.
    pub allocations: Option<(f64, f64)>,
}

/// The value of `axis` in `cell`. A cloudevents cell without a `mode`
/// parameter is structured: the mode is named only when it is binary.
fn coordinate<'c>(cell: &'c CellResult, axis: &str) -> Option<&'c str> {
    match axis {
        "bus" => Some(&cell.key.bus),
        "mode" if cell.key.params.contains_key("decoder") => {
            Some(cell.key.params.get(axis).map_or("structured", String::as_str))
        }
        _ => cell.key.params.get(axis).map(String::as_str),
    }
}

/// Everything that places `cell` except `axis`.
fn rest(cell: &CellResult, axis: &str) -> (String, Vec<(String, String)>) {
    let bus = if axis == "bus" { String::new() } else { cell.key.bus.clone() };
    let params = cell.key.params.iter().filter(|(k, _)| k.as_str() != axis).map(|(k, v)| (k.clone(), v.clone()));
    (bus, params.collect())
}

/// The decode + route throughput samples of a measured cloudevents cell.
fn samples(cell: &CellResult) -> Option<&[f64]> {
    let ce = cell.cloudevents.as_ref().filter(|_| cell.status == CellStatus::Ok)?;
    let s = &ce.route_events_per_sec.samples;
    (!s.is_empty()).then_some(s.as_slice())
}

/// The matched pairs of `cells` (one scenario's) for `lever`, in cell order.
pub fn pairs(cells: &[&CellResult], lever: &Lever) -> Vec<Pair> {
    let mut out = Vec::new();
    for better in cells.iter().filter(|c| coordinate(c, lever.axis) == Some(lever.better)) {
        let place = rest(better, lever.axis);
        let Some(baseline) =
            cells.iter().find(|c| coordinate(c, lever.axis) == Some(lever.baseline) && rest(c, lever.axis) == place)
        else {
            continue;
        };
        let (Some(a), Some(b)) = (samples(better), samples(baseline)) else { continue };
        let Some((ratio, lower, upper)) = stats::ratio_of_medians(a, b, stats::RESAMPLES) else { continue };
        let (Some(ma), Some(mb)) = (stats::median(a), stats::median(b)) else { continue };
        let allocations = better
            .allocations
            .as_ref()
            .zip(baseline.allocations.as_ref())
            .map(|(x, y)| (x.allocs_per_event, y.allocs_per_event));
        out.push(Pair {
            better: better.key.name(),
            baseline: baseline.key.name(),
            ratio,
            lower,
            upper,
            saved_ns: 1e9 / mb - 1e9 / ma,
            allocations,
        });
    }
    out
}

/// One lever's verdict over its pairs: a sentence, the cells behind it,
/// and whether the data leaves it undecided (no pair beyond doubt either
/// way). `None` when the run has no matched pair for it.
pub fn verdict(lever: &Lever, pairs: &[Pair]) -> Option<(String, Vec<String>, bool)> {
    let first = pairs.first()?;
    let helps = pairs.iter().filter(|p| p.lower > 1.0).count();
    let hurts = pairs.iter().filter(|p| p.upper < 1.0).count();
    let saved_ns: Vec<f64> = pairs.iter().map(|p| p.saved_ns).collect();
    let saved = stats::median(&saved_ns)?;
    let time = if saved >= 0.0 {
        format!("{} less per event", format::nanos(saved))
    } else {
        format!("{} more per event", format::nanos(-saved))
    };
    let effect = if pairs.len() == 1 {
        format!(
            "{} the decode + route throughput of {} (95% CI {}–{}), {time}",
            format::ratio(first.ratio),
            lever.baseline,
            format::ratio(first.lower),
            format::ratio(first.upper)
        )
    } else {
        let low = pairs.iter().map(|p| p.ratio).fold(f64::INFINITY, f64::min);
        let high = pairs.iter().map(|p| p.ratio).fold(f64::NEG_INFINITY, f64::max);
        format!(
            "{}–{} the decode + route throughput of {} over {} matched pairs of cells; faster beyond doubt in {helps}, slower in {hurts} (95% bootstrap intervals); {time} (median)",
            format::ratio(low),
            format::ratio(high),
            lever.baseline,
            pairs.len()
        )
    };
    // Allocations are named only where the lever changes them: the median
    // over pairs of baseline − better.
    let fewer: Vec<f64> = pairs.iter().filter_map(|p| p.allocations).map(|(a, b)| b - a).collect();
    let allocations = match stats::median(&fewer) {
        Some(d) if d >= 0.01 => format!("; {} fewer allocations per event", format::si_number(d)),
        Some(d) if d <= -0.01 => format!("; {} more allocations per event", format::si_number(-d)),
        _ => String::new(),
    };
    let text = format!("{} ({} vs {}): {effect}{allocations}.", lever.what, lever.better, lever.baseline);
    let mut cells = Vec::new();
    for p in pairs {
        for c in [&p.better, &p.baseline] {
            if !cells.contains(c) {
                cells.push(c.clone());
            }
        }
    }
    Some((text, cells, helps == 0 && hurts == 0))
}

/// The fastest and the slowest measured cells of one scenario, and the
/// ratio between them: how much the choices are worth together.
pub fn span(cells: &[&CellResult]) -> Option<(String, Vec<String>, bool)> {
    let measured: Vec<(&CellResult, f64)> =
        cells.iter().filter_map(|c| Some((*c, stats::median(samples(c)?)?))).collect();
    let fastest = measured.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let slowest = measured.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    if fastest.0.key == slowest.0.key {
        return None;
    }
    let (a, b) = (samples(fastest.0)?, samples(slowest.0)?);
    let (ratio, lower, upper) = stats::ratio_of_medians(a, b, stats::RESAMPLES)?;
    let text = format!(
        "All choices together: the fastest cell, {} at {}, has {} the decode + route throughput of the slowest, {} at {} (95% CI {}–{}).",
        fastest.0.key.name(),
        format::si(fastest.1, "events/s"),
        format::ratio(ratio),
        slowest.0.key.name(),
        format::si(slowest.1, "events/s"),
        format::ratio(lower),
        format::ratio(upper)
    );
    Some((text, vec![fastest.0.key.name(), slowest.0.key.name()], lower <= 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::{Allocations, CellKey, CloudEvents, Estimate};
    use std::collections::BTreeMap;

    fn cell(bus: &str, representation: &str, samples: &[f64], allocs: f64) -> CellResult {
        let params: BTreeMap<String, String> = [
            ("decoder".to_owned(), "sonic_rs".to_owned()),
            ("extensions".to_owned(), "struct".to_owned()),
            ("representation".to_owned(), representation.to_owned()),
        ]
        .into();
        let key = CellKey { scenario: "cloudevents".to_owned(), bus: bus.to_owned(), params };
        let mut c = CellResult::new(key, 1, 8);
        let route_events_per_sec = Estimate { median: samples[0], lower: 0.0, upper: 0.0, samples: samples.to_vec() };
        c.cloudevents = Some(CloudEvents { route_events_per_sec, ..CloudEvents::default() });
        c.allocations = Some(Allocations { allocs_per_event: allocs, ..Allocations::default() });
        c
    }

    #[test]
    fn a_lever_is_judged_on_pairs_differing_in_its_axis_only() {
        let cells = [
            cell("router", "owned", &[100.0, 101.0, 99.0, 100.5, 99.5], 19.0),
            cell("router", "borrowed", &[125.0, 126.0, 124.0, 125.5, 124.5], 0.0),
            cell("any_router", "owned", &[90.0, 91.0, 89.0], 19.0),
            cell("any_router", "borrowed", &[89.0, 92.0, 90.0], 0.0),
        ];
        let refs: Vec<&CellResult> = cells.iter().collect();
        let representation = &LEVERS[0];
        let found = pairs(&refs, representation);
        assert_eq!(found.len(), 2, "one pair per bus");
        assert_eq!(found[0].better, "cloudevents/router/decoder=sonic_rs/extensions=struct/representation=borrowed");
        assert!((found[0].ratio - 1.25).abs() < 1e-9 && found[0].lower > 1.0, "{:?}", found[0]);
        assert!((found[0].saved_ns - (1e9 / 100.0 - 1e9 / 125.0)).abs() < 1e-3);
        assert!(found[1].lower <= 1.0 && found[1].upper >= 1.0, "overlapping samples: {:?}", found[1]);
        let (text, linked, undecided) = verdict(representation, &found).expect("a verdict");
        assert!(
            text.contains("over 2 matched pairs") && text.contains("faster beyond doubt in 1, slower in 0"),
            "{text}"
        );
        assert!(text.contains("; 19.0 fewer allocations per event"), "{text}");
        assert_eq!(linked.len(), 4);
        assert!(!undecided);
        // The bus lever pairs router with any_router at equal representation.
        let bus = pairs(&refs, &LEVERS[2]);
        assert_eq!(bus.len(), 2);
        assert!(bus.iter().all(|p| p.better.contains("/router/") && p.baseline.contains("/any_router/")));
        let (text, _, _) = verdict(&LEVERS[2], &bus).expect("a verdict");
        assert!(!text.contains("allocations"), "the router does not change them: {text}");
        // No map cells: the extensions lever has no pair and no verdict.
        assert!(verdict(&LEVERS[1], &pairs(&refs, &LEVERS[1])).is_none());
        // No binary cells: the mode lever has no pair.
        assert!(pairs(&refs, &LEVERS[6]).is_empty());
        let mut binary = cell("router", "borrowed", &[150.0, 151.0, 149.0, 150.5, 149.5], 0.0);
        binary.key.params.insert("mode".to_owned(), "binary".to_owned());
        let with_binary: Vec<&CellResult> = refs.iter().copied().chain([&binary]).collect();
        let mode = pairs(&with_binary, &LEVERS[6]);
        assert_eq!(mode.len(), 1, "binary pairs with the structured cell that names no mode");
        assert_eq!(mode[0].baseline, found[0].better);
        assert!((mode[0].ratio - 1.2).abs() < 1e-9, "{:?}", mode[0]);
        let (span_text, span_cells, _) = span(&refs).expect("a span");
        assert!(span_text.contains("1.39×"), "125 / 90: {span_text}");
        assert_eq!(span_cells[0], found[0].better);
    }

    #[test]
    fn failed_cells_and_overlaps_leave_a_lever_undecided() {
        let mut failed = cell("router", "borrowed", &[200.0, 201.0, 199.0], 0.0);
        failed.status = CellStatus::Failed("lost 3 events".to_owned());
        let cells = [cell("router", "owned", &[100.0, 101.0, 99.0], 19.0), failed];
        let refs: Vec<&CellResult> = cells.iter().collect();
        assert!(pairs(&refs, &LEVERS[0]).is_empty(), "a failed cell gives no number");
        let cells = [
            cell("router", "owned", &[100.0, 120.0, 80.0], 19.0),
            cell("router", "borrowed", &[101.0, 121.0, 81.0], 0.0),
        ];
        let refs: Vec<&CellResult> = cells.iter().collect();
        let (text, _, undecided) = verdict(&LEVERS[0], &pairs(&refs, &LEVERS[0])).expect("a verdict");
        assert!(undecided, "{text}");
        assert!(text.contains("(95% CI"), "a single pair quotes its interval: {text}");
    }
}
