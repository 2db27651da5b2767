//! The table `buslab run` ends with: one row per cell, fitted to the
//! terminal's width, with the notes on latency and loss under it; then
//! where the run's time went ([`Breakdown`]; the recommendations that
//! follow are [`text::recommendations_text`]).

use crate::render::format::{self, Style, Unit, clock};
#[cfg(doc)]
use crate::render::text;
use buslab_scenarios::results::{CellResult, CellStatus};
use std::collections::BTreeMap;
use std::io::{self, Write};

/// A rate as the terminal writes it (`12.3M`).
fn si(value: f64) -> String {
    format::number(value, Unit::Si, Style::TERMINAL)
}

/// Whole nanoseconds as the terminal writes them (`850ns`, `12.4µs`,
/// `3.10ms`).
fn duration_ns(ns: u64) -> String {
    format::number(ns as f64, Unit::Nanoseconds, Style::TERMINAL)
}

/// One row's cells, as text.
fn row(cell: &CellResult) -> [String; 7] {
    let name = cell.key.name();
    match &cell.status {
        CellStatus::Skipped(reason) => {
            [name, "skipped".into(), reason.clone(), String::new(), String::new(), String::new(), String::new()]
        }
        CellStatus::Failed(reason) => {
            [name, "FAILED".into(), reason.clone(), String::new(), String::new(), String::new(), String::new()]
        }
        CellStatus::Ok => {
            let tput = cell.throughput.as_ref().map_or_else(String::new, |t| {
                let e = &t.events_per_sec;
                format!("{} [{}, {}]", si(e.median), si(e.lower), si(e.upper))
            });
            let cpu = cell
                .throughput
                .as_ref()
                .and_then(|t| t.cpu_ns_per_event.as_ref())
                .map_or_else(String::new, |c| format::number(c.median, Unit::Nanoseconds, Style::TERMINAL));
            let p99 = match cell.headline_latency() {
                Some(l) => l.percentile_ns(0.99).map_or_else(|| "lost".to_owned(), duration_ns),
                None if cell.latency.is_empty() => String::new(),
                None => "—".to_owned(),
            };
            let allocs = cell.allocations.as_ref().map_or_else(String::new, |a| format!("{:.2}", a.allocs_per_event));
            let ir = cell.instructions.as_ref().map_or_else(String::new, |i| format!("{:.0}", i.ir_per_event));
            // A lossy bus publishes faster than it delivers: say so.
            let status = match cell.loss_rate() {
                Some(rate) if rate > 0.0 => format!("ok, {} lost", format::unsigned_percent(rate)),
                _ if cell.lossy() => "ok, lossy".to_owned(),
                _ => "ok".to_owned(),
            };
            [name, status, tput, cpu, p99, allocs, ir]
        }
    }
}

/// Writes the summary table for `cells`, at most `width` columns wide.
pub fn write(out: &mut impl Write, cells: &[CellResult], width: usize) -> io::Result<()> {
    let header = ["cell", "status", "events/s [95% CI]", "CPU/ev", "p99@head", "allocs/ev", "Ir/ev"];
    let rows: Vec<[String; 7]> = cells.iter().map(row).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Failed/skipped reasons span the metric columns; do not let them set
    // the width of the throughput column.
    widths[2] = header[2]
        .len()
        .max(rows.iter().filter(|r| r[1].starts_with("ok")).map(|r| r[2].chars().count()).max().unwrap_or(0));
    let fixed: usize = widths[1..].iter().sum::<usize>() + 2 * (widths.len() - 1);
    widths[0] = widths[0].min(width.saturating_sub(fixed).max(16));
    let fit = |s: &str, w: usize| -> String {
        let n = s.chars().count();
        if n <= w { format!("{s:<w$}") } else { s.chars().take(w.saturating_sub(1)).collect::<String>() + "…" }
    };
    let line = |cells: &[String]| -> String {
        let mut text = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            if i == 2 && (cells[1] == "FAILED" || cells[1] == "skipped") {
                // A reason is never cut: it wraps, continuation lines
                // indented to its column.
                let indent = text.chars().count();
                let room = width.saturating_sub(indent).max(20);
                let mut line_len = 0;
                for word in c.split_whitespace() {
                    let n = word.chars().count();
                    if line_len > 0 && line_len + 1 + n > room {
                        text.push('\n');
                        text.push_str(&" ".repeat(indent));
                        line_len = 0;
                    } else if line_len > 0 {
                        text.push(' ');
                        line_len += 1;
                    }
                    text.push_str(word);
                    line_len += n;
                }
                return text;
            }
            text.push_str(&fit(c, *w));
        }
        text.trim_end().to_owned()
    };
    let head: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    writeln!(out, "{}", line(&head))?;
    writeln!(
        out,
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)).chars().take(width).collect::<String>()
    )?;
    for r in &rows {
        writeln!(out, "{}", line(r))?;
    }
    let (ok, failed, skipped) = cells.iter().fold((0, 0, 0), |(o, f, s), c| match c.status {
        CellStatus::Ok => (o + 1, f, s),
        CellStatus::Failed(_) => (o, f + 1, s),
        CellStatus::Skipped(_) => (o, f, s + 1),
    });
    for note in latency_notes(cells) {
        writeln!(out, "{note}")?;
    }
    let lossy = cells.iter().filter(|c| c.status == CellStatus::Ok && c.lossy()).count();
    if lossy > 0 {
        writeln!(
            out,
            "{lossy} cell(s) ok but lossy: the bus dropped deliveries (each counted, share shown); events/s counts \
             publishes, deliveries/s what arrived (`buslab export`); never a winner unless the scenario sets \
             `loss_acceptable`"
        )?;
    }
    writeln!(out, "{ok} ok, {failed} failed, {skipped} skipped")
}

/// The lines under the table about latency: each scenario point's
/// headline rate (where `p99@head` was read), then every saturated load
/// with its state and reason — a saturated load is no latency and is never
/// shown as one.
fn latency_notes(cells: &[CellResult]) -> Vec<String> {
    let mut notes = Vec::new();
    let mut points: Vec<String> = Vec::new();
    for cell in cells.iter().filter(|c| !c.latency.is_empty()) {
        let point = cell.key.point();
        if !points.contains(&point) {
            notes.push(match cell.headline_rate {
                Some(rate) => format!("{point}: latency headline rate {} events/s", si(rate)),
                None => format!("{point}: no latency headline rate (no shared rate every lossless bus sustains)"),
            });
            points.push(point);
        }
        for l in &cell.latency {
            if let Some(s) = &l.saturation {
                notes.push(format!(
                    "  {} at {} events/s: {}: {}",
                    cell.key.bus,
                    si(l.offered_per_sec),
                    s.state(),
                    s.reason()
                ));
            }
        }
    }
    notes
}

/// Seconds spent per pass and per scenario over a run's cells.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Breakdown {
    /// Pass name → seconds, over every cell.
    pub passes: BTreeMap<String, f64>,
    /// Scenario name → seconds, over every pass of its cells.
    pub scenarios: BTreeMap<String, f64>,
}

impl Breakdown {
    /// Sums `cells`' pass times.
    pub fn of(cells: &[CellResult]) -> Breakdown {
        let mut breakdown = Breakdown::default();
        for cell in cells {
            for (pass, seconds) in &cell.pass_seconds {
                *breakdown.passes.entry(pass.clone()).or_default() += seconds;
                *breakdown.scenarios.entry(cell.key.scenario.clone()).or_default() += seconds;
            }
        }
        breakdown
    }

    /// Seconds over every pass.
    pub fn total(&self) -> f64 {
        self.passes.values().sum()
    }

    /// Two lines: seconds per pass, then per scenario, each largest first
    /// with its share of the measured time. Nothing when no time was
    /// recorded.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let total = self.total();
        if total <= 0.0 {
            return Ok(());
        }
        let line = |map: &BTreeMap<String, f64>| {
            let mut items: Vec<(&String, &f64)> = map.iter().collect();
            items.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
            items
                .iter()
                .map(|(name, s)| format!("{name} {} ({})", clock(**s), format::share(**s / total)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(out, "time per pass: {}", line(&self.passes))?;
        writeln!(out, "time per scenario: {}", line(&self.scenarios))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::CellKey;

    #[test]
    fn the_run_ends_with_the_lossless_recommendation() {
        use crate::analysis::{self, regression::Thresholds};
        use crate::render::text;
        use buslab_scenarios::results::{BusMeta, Estimate, Run, RunMeta, Throughput};
        let cell = |bus: &str, median: f64, loss: f64| {
            let key = CellKey { scenario: "spsc".into(), bus: bus.into(), params: Default::default() };
            let mut c = CellResult::new(key, 1, 1);
            let samples = vec![median * 0.99, median, median * 1.01];
            let events_per_sec = Estimate { median, lower: median * 0.99, upper: median * 1.01, samples };
            c.throughput = Some(Throughput { events_per_sec, loss_rate: Some(loss), ..Throughput::default() });
            c.dropped = u64::from(loss > 0.0);
            c
        };
        let buses = ["ring", "tokio_broadcast"]
            .map(|name| BusMeta { name: name.into(), asynchronous: true, ..BusMeta::default() })
            .to_vec();
        let meta = RunMeta { buses, ..RunMeta::default() };
        let run = Run { meta, cells: vec![cell("ring", 1e6, 0.0), cell("tokio_broadcast", 9e6, 0.5)] };
        let recommendations = analysis::analyse(&run, &Thresholds::default()).recommendations;
        let text = text::recommendations_text(&recommendations);
        assert!(text.starts_with("Recommended (") && text.contains("\n  spsc: ring, 1.00 M events/s"), "{text}");
        assert!(!text.contains("spsc: tokio_broadcast"), "a lossy bus is never the recommendation: {text}");
    }

    #[test]
    fn the_headline_rate_saturated_loads_and_lost_percentiles_are_said() {
        use buslab_scenarios::results::{Latency, Saturation};
        let key = CellKey { scenario: "spsc".into(), bus: "ring".into(), params: Default::default() };
        let mut cell = CellResult::new(key, 1, 1);
        cell.headline_rate = Some(1e6);
        let harness = Saturation::HarnessSaturated("null is late".into());
        cell.latency = vec![
            // 20 misses in 1010: p99 (rank 999.9) falls among them.
            Latency { offered_per_sec: 1e6, count: 990, misses: 20, p99_ns: 0, ..Latency::default() },
            Latency { offered_per_sec: 2e6, p99_ns: 5, saturation: Some(harness), ..Latency::default() },
        ];
        let mut out = Vec::new();
        write(&mut out, &[cell.clone()], 200).expect("writing to a Vec");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("spsc: latency headline rate 1.00M events/s"), "{text}");
        assert!(text.contains("ring at 2.00M events/s: harness saturated: null is late"), "{text}");
        let row = text.lines().find(|l| l.starts_with("spsc/ring")).expect("a row");
        assert!(row.contains("lost") && !row.contains("0ns"), "{row}");
        // At a saturated headline the cell shows no latency at all.
        cell.headline_rate = Some(2e6);
        let mut out = Vec::new();
        write(&mut out, &[cell], 200).expect("writing to a Vec");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.lines().find(|l| l.starts_with("spsc/ring")).expect("a row").contains("5ns"), "{text}");
    }

    fn timed(scenario: &str, passes: &[(&str, f64)]) -> CellResult {
        let key = CellKey { scenario: scenario.into(), bus: "b".into(), params: Default::default() };
        let mut cell = CellResult::new(key, 1, 1);
        cell.pass_seconds = passes.iter().map(|(p, s)| (p.to_string(), *s)).collect();
        cell
    }

    #[test]
    fn time_is_summed_per_pass_and_per_scenario_largest_first() {
        let cells = [
            timed("spsc", &[("throughput", 3.0), ("latency", 5.0)]),
            timed("fanout", &[("throughput", 2.0), ("instructions", 10.0)]),
        ];
        let b = Breakdown::of(&cells);
        assert_eq!(b.total(), 20.0);
        assert_eq!(b.scenarios["fanout"], 12.0);
        let mut out = Vec::new();
        b.write(&mut out).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "time per pass: instructions 10s (50%), latency 5s (25%), throughput 5s (25%)\n\
             time per scenario: fanout 12s (60%), spsc 8s (40%)\n"
        );
        let mut out = Vec::new();
        Breakdown::default().write(&mut out).expect("written");
        assert!(out.is_empty());
    }

    #[test]
    fn cpu_time_is_a_duration_like_the_latency() {
        use buslab_scenarios::results::{Estimate, Throughput};
        let key = CellKey { scenario: "fanout".into(), bus: "channel".into(), params: Default::default() };
        let mut cell = CellResult::new(key, 1, 500);
        let cpu = Estimate { median: 54_697.4, lower: 54_000.0, upper: 55_000.0, samples: vec![54_697.4] };
        cell.throughput = Some(Throughput { cpu_ns_per_event: Some(cpu), ..Throughput::default() });
        let mut out = Vec::new();
        write(&mut out, &[cell], 200).expect("writing to a Vec");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.lines().any(|l| l.starts_with("fanout/channel") && l.ends_with("  54.7µs")), "{text}");
    }

    #[test]
    fn the_table_fits_the_width_and_shows_reasons() {
        let key = CellKey {
            scenario: "fanout".into(),
            bus: "fixed_array".into(),
            params: [("subscribers".to_owned(), "500".to_owned())].into(),
        };
        let mut failed = CellResult::new(key.clone(), 1, 500);
        failed.status =
            CellStatus::Failed("throughput pass: subscriber 3, producer 0: got 999 of 1000 events (1 lost)".into());
        let mut skipped = CellResult::new(key, 1, 500);
        skipped.status = CellStatus::Skipped("fixed_array holds at most 1024 subscribers".into());
        let mut out = Vec::new();
        write(&mut out, &[failed, skipped], 80).expect("writing to a Vec");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
        // The reason wraps at word boundaries, whole.
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.contains("FAILED throughput pass: subscriber 3, producer 0: got 999 of 1000 events (1 lost)"),
            "{text}"
        );
        assert!(text.contains("0 ok, 1 failed, 1 skipped"));
    }
}
