//! The charts of each page: which data goes into which chart kind (the
//! kinds themselves are in [`crate::render::charts`], one per file). A chart that
//! fails to draw becomes a figure saying so, never a missing page.

use super::context::Figure;
use crate::analysis::regression::Verdict;
use crate::analysis::trends::Trend;
use crate::analysis::verdicts::Group;
use crate::render::charts::{self, Axis, Bar, Marker, Point, Series, TrendPoint};
use crate::render::format;
use buslab_scenarios::results::{CellResult, CellStatus};
use std::collections::BTreeMap;

/// A figure from a chart result.
fn figure(title: &str, svg: Result<String, charts::ChartError>, caption: &str) -> Figure {
    match svg {
        Ok(svg) => Figure { title: title.to_owned(), svg, caption: caption.to_owned() },
        Err(e) => Figure { title: title.to_owned(), svg: String::new(), caption: format!("chart not drawn: {e}") },
    }
}

/// The Ok cells of a group, with their peer flag, in row order.
fn members<'a>(group: &Group, cells: &BTreeMap<String, &'a CellResult>) -> Vec<(&'a CellResult, bool)> {
    group
        .rows
        .iter()
        .filter_map(|r| cells.get(&r.cell).map(|c| (*c, r.peer)))
        .filter(|(c, _)| c.status == CellStatus::Ok)
        .collect()
}

/// `scenario` or `scenario, subscribers=16`.
fn where_(group: &Group) -> String {
    if group.label.is_empty() { group.scenario.clone() } else { format!("{}, {}", group.scenario, group.label) }
}

/// Bars of one per-cell figure.
fn bars_of(
    members: &[(&CellResult, bool)],
    value: impl Fn(&CellResult) -> Option<(f64, Option<(f64, f64)>)>,
) -> Vec<Bar> {
    members
        .iter()
        .filter_map(|(c, peer)| {
            let (v, ci) = value(c)?;
            let (lower, upper) = ci.unzip();
            Some(Bar { label: c.key.bus.clone(), value: v, lower, upper, peer: *peer })
        })
        .collect()
}

/// The bar charts and latency spectra of one sweep point.
pub(crate) fn group(group: &Group, cells: &BTreeMap<String, &CellResult>) -> Vec<Figure> {
    let members = members(group, cells);
    let place = where_(group);
    let mut out = Vec::new();
    let mut push_bars = |title: String, axis: Axis, bars: Vec<Bar>, caption: &str| {
        if !bars.is_empty() {
            out.push(figure(&title, charts::bars(&title, &axis, &bars), caption));
        }
    };
    push_bars(
        format!("Throughput — {place}"),
        Axis::new("throughput (events/s)"),
        bars_of(&members, |c| {
            c.throughput
                .as_ref()
                .map(|t| (t.events_per_sec.median, Some((t.events_per_sec.lower, t.events_per_sec.upper))))
        }),
        "Median of the trials; whiskers: 95% bootstrap CI.",
    );
    push_bars(
        format!("Allocations per event — {place}"),
        Axis::new("heap allocations per published event"),
        bars_of(&members, |c| c.allocations.as_ref().map(|a| (a.allocs_per_event, None))),
        "counting allocator, steady state: (2N − N events) / N.",
    );
    push_bars(
        format!("Bytes allocated per event — {place}"),
        Axis::new("bytes allocated per published event"),
        bars_of(&members, |c| c.allocations.as_ref().map(|a| (a.bytes_per_event, None))),
        "",
    );
    push_bars(
        format!("Instructions per event — {place}"),
        Axis::new("instructions (Ir) per event"),
        bars_of(&members, |c| c.instructions.as_ref().map(|i| (i.ir_per_event, None))),
        "callgrind; multi-threaded cells vary from run to run.",
    );
    push_bars(
        format!("Estimated cycles per event — {place}"),
        Axis::new("estimated cycles per event (L1 + 5·LL + 35·RAM)"),
        bars_of(&members, |c| c.instructions.as_ref().map(|i| (i.est_cycles_per_event, None))),
        "",
    );
    push_bars(
        format!("Branch misses per event — {place}"),
        Axis::new("mispredicted branches per event"),
        bars_of(&members, |c| c.instructions.as_ref().map(|i| (i.branch_misses_per_event, None))),
        "callgrind's branch simulator.",
    );
    // One spectrum per offered rate (shared by the point's buses; in runs
    // from before, per fraction of each bus's own capacity), one line per
    // bus; saturated loads are no latency and are left out.
    let mut loads: Vec<(f64, f64)> =
        members.iter().flat_map(|(c, _)| c.latency.iter().filter(|l| l.judged()).map(load_key)).collect();
    loads.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    loads.dedup();
    for key in loads {
        let series: Vec<Series> = members
            .iter()
            .filter_map(|(c, peer)| {
                let l = c.latency.iter().find(|l| l.judged() && load_key(l) == key)?;
                Some(Series { label: c.key.bus.clone(), points: charts::latency_points(l), peer: *peer })
            })
            .collect();
        let (load, rate) = key;
        let at = if load != 0.0 {
            format!("at {} of capacity", format::share(load))
        } else if members.iter().any(|(c, _)| c.headline_rate.is_some()) {
            format!("at {}", format::si(rate, "events/s"))
        } else {
            "during bursts".to_owned()
        };
        let title = format!("Latency spectrum {at} — {place}");
        out.push(figure(&title, charts::spectrum(&title, &series), "Open loop from the intended send time."));
    }
    out
}

/// What identifies a latency entry's load across buses: its fraction of
/// capacity (runs from before shared rates), else its offered rate.
fn load_key(l: &buslab_scenarios::results::Latency) -> (f64, f64) {
    if l.load == 0.0 { (0.0, l.offered_per_sec) } else { (l.load, 0.0) }
}

/// A latency entry's label: `1 M events/s`, `50% of capacity` or `bursts`.
fn load_label(cell: &CellResult, l: &buslab_scenarios::results::Latency) -> String {
    if l.load != 0.0 {
        format!("{} of capacity", format::share(l.load))
    } else if cell.headline_rate.is_some() {
        format::si(l.offered_per_sec, "events/s")
    } else {
        "bursts".to_owned()
    }
}

/// One line of a scaling chart: peer flag, events/s points, ns per
/// delivery points.
type Line = (bool, Vec<Point>, Vec<Point>);

/// A numeric sweep parameter that varies across `groups`.
fn swept(groups: &[&Group]) -> Vec<String> {
    let Some(first) = groups.first() else { return Vec::new() };
    first
        .params
        .keys()
        .filter(|k| {
            let values: Vec<&String> = groups.iter().filter_map(|g| g.params.get(*k)).collect();
            values.iter().all(|v| v.parse::<f64>().is_ok()) && values.iter().any(|v| *v != values[0])
        })
        .cloned()
        .collect()
}

/// Scaling curves of a scenario with a numeric sweep: events/s and ns per
/// delivery against each swept parameter, one line per bus.
pub(crate) fn scaling(scenario: &str, groups: &[&Group], cells: &BTreeMap<String, &CellResult>) -> Vec<Figure> {
    let mut out = Vec::new();
    for param in swept(groups) {
        // One line per bus and value of the other parameters.
        // In the order buses first appear, so each bus keeps its colour
        // from chart to chart.
        let mut lines: Vec<(String, Line)> = Vec::new();
        let mut values = Vec::new();
        for group in groups {
            let Some(x) = group.params.get(&param).and_then(|v| v.parse::<f64>().ok()) else { continue };
            values.push(x);
            let others: Vec<String> =
                group.params.iter().filter(|(k, _)| **k != param).map(|(k, v)| format!("{k}={v}")).collect();
            for (cell, peer) in members(group, cells) {
                let Some(t) = &cell.throughput else { continue };
                let label = if others.is_empty() {
                    cell.key.bus.clone()
                } else {
                    format!("{} ({})", cell.key.bus, others.join(", "))
                };
                let index = match lines.iter().position(|(l, _)| *l == label) {
                    Some(i) => i,
                    None => {
                        lines.push((label, (peer, Vec::new(), Vec::new())));
                        lines.len() - 1
                    }
                };
                let line = &mut lines[index].1;
                let e = &t.events_per_sec;
                line.1.push(Point { x, y: e.median, lower: Some(e.lower), upper: Some(e.upper) });
                let d = &t.deliveries_per_sec;
                if d.median > 0.0 {
                    let inv = |v: f64| (v > 0.0).then(|| 1e9 / v);
                    line.2.push(Point { x, y: 1e9 / d.median, lower: inv(d.upper), upper: inv(d.lower) });
                }
            }
        }
        let spread = values.iter().copied().fold(f64::NAN, f64::max) / values.iter().copied().fold(f64::NAN, f64::min);
        let x = if spread >= 10.0 { Axis::new(param.clone()).log() } else { Axis::new(param.clone()) };
        let series = |pick: fn(&Line) -> &Vec<Point>| {
            lines
                .iter()
                .map(|(label, line)| Series { label: label.clone(), points: pick(line).clone(), peer: line.0 })
                .collect::<Vec<_>>()
        };
        let title = format!("Throughput vs {param} — {scenario}");
        out.push(figure(
            &title,
            charts::scaling(&title, &x, &Axis::new("throughput (events/s)").log(), &series(|l| &l.1)),
            "Whiskers: 95% CI.",
        ));
        let title = format!("Time per delivery vs {param} — {scenario}");
        out.push(figure(
            &title,
            charts::scaling(&title, &x, &Axis::new("time per delivery").log().nanos(), &series(|l| &l.2)),
            "1 / (deliveries per second): the cost of one listener call, fan-out included.",
        ));
    }
    out
}

/// The buckets of an HdrHistogram stored as base64 V2, on a log scale.
fn buckets(encoded: &str) -> Option<Vec<(u64, u64, u64)>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let histogram: hdrhistogram::Histogram<u64> =
        hdrhistogram::serialization::Deserializer::new().deserialize(&mut bytes.as_slice()).ok()?;
    let mut out = Vec::new();
    let mut low = histogram.min();
    for v in histogram.iter_log(1, 1.25) {
        let high = v.value_iterated_to();
        let count = v.count_since_last_iteration();
        if count > 0 {
            out.push((low, high.max(low), count));
        }
        low = high + 1;
    }
    Some(out)
}

/// The latency spectrum (one line per offered load) and histograms of one
/// cell.
pub(crate) fn latency(cell: &CellResult) -> Vec<Figure> {
    if cell.latency.is_empty() {
        return Vec::new();
    }
    let series: Vec<Series> = cell
        .latency
        .iter()
        .filter(|l| l.judged())
        .map(|l| Series { label: load_label(cell, l), points: charts::latency_points(l), peer: false })
        .collect();
    let name = cell.key.name();
    let title = format!("Latency spectrum — {name}");
    let mut out = vec![figure(
        &title,
        charts::spectrum(&title, &series),
        "One line per offered load; saturated loads are left out.",
    )];
    for l in cell.latency.iter().filter(|l| l.judged()) {
        if l.histogram.is_empty() {
            continue;
        }
        let title = format!("Latency histogram at {} — {name}", load_label(cell, l));
        match buckets(&l.histogram) {
            Some(b) => out.push(figure(&title, charts::histogram(&title, &b), "")),
            None => out.push(Figure {
                title: title.clone(),
                svg: String::new(),
                caption: "the stored histogram could not be decoded".to_owned(),
            }),
        }
    }
    out
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-11-21T02:00:00Z`,
/// fractions ignored).
fn unix_seconds(text: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// The axis of metric `slug`.
fn metric_axis(slug: &str) -> Axis {
    match slug {
        "throughput" => Axis::new("throughput (events/s)"),
        s if s.starts_with("latency") => Axis::new(format!("{s} at the headline rate")).nanos(),
        "allocs-per-event" => Axis::new("allocations per event"),
        "bytes-per-event" => Axis::new("bytes per event"),
        "instructions-per-event" => Axis::new("instructions per event"),
        "est-cycles-per-event" => Axis::new("estimated cycles per event"),
        "branch-misses-per-event" => Axis::new("branch misses per event"),
        other => Axis::new(other.to_owned()),
    }
}

/// One metric of one cell over time, with verdict markers and the latest
/// noise band.
pub(crate) fn trend(cell: &str, trend: &Trend) -> Option<Figure> {
    let points: Vec<TrendPoint> = trend
        .points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let step = trend.steps.iter().find(|s| s.index == i);
            let time = unix_seconds(&p.started_at)?;
            let verdict = match p.verdict {
                Some(Verdict::Regression) => " · regression",
                Some(Verdict::Improvement) => " · improvement",
                _ => "",
            };
            Some(TrendPoint {
                time,
                value: p.value,
                lower: p.lower,
                upper: p.upper,
                marker: match p.verdict {
                    Some(Verdict::Regression) => Marker::Regression,
                    Some(Verdict::Improvement) => Marker::Improvement,
                    _ => Marker::None,
                },
                step: match step {
                    Some(s) if s.regression => Marker::Regression,
                    Some(_) => Marker::Improvement,
                    None => Marker::None,
                },
                tooltip: format!(
                    "{} · {} · {}{verdict}",
                    p.started_at.get(..10).unwrap_or(&p.started_at),
                    p.commit.as_deref().map(|c| c.get(..10).unwrap_or(c)).unwrap_or("no commit"),
                    format::metric_value(trend.metric, p.value)
                ),
            })
        })
        .collect();
    if points.is_empty() {
        return None;
    }
    let title = format!("{} — {cell}", trend.metric);
    Some(figure(
        &title,
        charts::trend(&title, &metric_axis(trend.metric), &points, trend.latest_band()),
        "Shaded: the latest threshold or noise band. ▼ regression, ▲ improvement (as buslab compare judges them). \
         Dashed line: the level moved there (a change point; red worse, green better).",
    ))
}

/// The flame graph of folded stacks.
pub(crate) fn flame(folded: &str, cell: &str) -> Result<String, String> {
    crate::render::flame::flamegraph(folded, &format!("Flame graph — {cell}")).map_err(|e| e.to_string())
}

/// The differential flame graph of `old` → `new`.
pub(crate) fn differential(old: &str, new: &str, cell: &str, base: &str) -> Result<String, String> {
    crate::render::flame::differential(old, new, &format!("Differential flame graph — {cell} against {base}"))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_to_unix_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2026-11-21T02:00:00Z"), Some(1_795_226_400));
        assert_eq!(unix_seconds("2000-03-01T00:00:01Z"), Some(951_868_801));
        assert_eq!(unix_seconds("garbage"), None);
    }
}
