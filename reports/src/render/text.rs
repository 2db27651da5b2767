//! A [`Comparison`] as text: a Markdown summary (for a CI job summary or a
//! pull-request comment) and a plain table for the terminal. Both list the
//! significant changes only, regressions first and each group by
//! decreasing magnitude, and count the rest. A noise [`Calibration`] gets
//! the same two forms ([`calibration_text`], [`calibration_markdown`]), and
//! so do the cells whose latest change point is a regression
//! ([`steps_text`], [`steps_markdown`]). The first screen's
//! [recommendations](crate::analysis::recommend) have one line each
//! ([`recommendation`], [`recommendations_text`]), the same on the report's
//! index and in the terminal.

use crate::analysis::noise::Calibration;
use crate::analysis::recommend::{self, Choice, Price, Recommendation};
use crate::analysis::regression::{Change, Comparison, Kind, Method, Missing, OtherMachine, Unmatched, Verdict};
use crate::analysis::trends::StepRegression;
use crate::render::format;
use buslab_scenarios::results::CellStatus;
use std::fmt::Write;

/// The comparison as Markdown: a heading, the counts, a table of the
/// significant changes (or "No significant changes."), and the cells that
/// were not compared in a collapsed list.
pub fn markdown(comparison: &Comparison) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "## buslab compare\n");
    let _ = writeln!(
        w,
        "Base run `{}` → new run `{}`; noise bands from {} earlier run(s).\n",
        comparison.base_run, comparison.new_run, comparison.history_runs
    );
    let _ = writeln!(w, "{}\n", counts(comparison, "**"));
    if let Some(line) = tail_gate(comparison) {
        let _ = writeln!(w, "{line}\n");
    }
    let significant = comparison.significant();
    if significant.is_empty() {
        let _ = writeln!(w, "No significant changes.");
    } else {
        let _ = writeln!(w, "| verdict | cell | metric | base | new | change | p | threshold |");
        let _ = writeln!(w, "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |");
        for c in significant {
            let _ = writeln!(
                w,
                "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
                verdict_word(c.verdict),
                c.cell.replace('|', "\\|"),
                c.metric,
                number(c.base),
                number(c.new),
                magnitude(c),
                p_value(c),
                threshold(c)
            );
        }
    }
    if !comparison.unmatched.is_empty() || !comparison.missing.is_empty() || !comparison.other_machine.is_empty() {
        let n = comparison.unmatched.len() + comparison.missing.len() + comparison.other_machine.len();
        let _ = writeln!(w, "\n<details><summary>Not compared ({n})</summary>\n");
        for u in &comparison.unmatched {
            let _ = writeln!(w, "- `{}`: {}", u.cell().replace('|', "\\|"), unmatched_reason(u));
        }
        for m in &comparison.missing {
            let _ = writeln!(w, "- `{}` {}: {}", m.cell.replace('|', "\\|"), m.metric, missing_reason(m));
        }
        for o in &comparison.other_machine {
            let _ = writeln!(w, "- `{}` wall-clock metrics: {}", o.cell.replace('|', "\\|"), other_machine_reason(o));
        }
        let _ = writeln!(w, "\n</details>");
    }
    out
}

/// Why a metric of a matched cell was not compared, in words.
fn missing_reason(m: &Missing) -> String {
    match m.at_rate {
        Some(rate) => {
            format!("the new run kept no load at the baseline's headline rate ({} events/s)", format::si_number(rate))
        }
        None => format!("measured in the {} run only", if m.in_base { "base" } else { "new" }),
    }
}

/// The heading line of the change-point section, over `runs` runs.
fn steps_heading(steps: &[StepRegression], runs: usize) -> String {
    if steps.is_empty() {
        format!("change points over {runs} run(s): no cell's latest level move is a regression")
    } else {
        format!(
            "change points over {runs} run(s): {} metric(s) whose latest level move is a regression \
             (informational: the pairwise verdicts above are the gate)",
            steps.len()
        )
    }
}

/// One change point: cell, metric, the move and where it happened.
fn step_line(s: &StepRegression) -> [String; 5] {
    [
        s.cell.clone(),
        s.metric.to_owned(),
        format!(
            "{} → {} ({})",
            format::metric_value(s.metric, s.step.before),
            format::metric_value(s.metric, s.step.after),
            format::percent(s.step.relative)
        ),
        format!("at {} (run {})", s.step.commit.as_deref().unwrap_or("no commit"), s.step.run),
        format!("{} run(s) at the new level", s.runs_since),
    ]
}

/// The cells whose latest change point over `runs` runs is a regression
/// (see [`crate::analysis::trends::latest_regressions`]), for the terminal: a heading
/// line, then one line each.
pub fn steps_text(steps: &[StepRegression], runs: usize) -> String {
    let mut out = steps_heading(steps, runs);
    out.push('\n');
    for s in steps {
        let [cell, metric, change, at, since] = step_line(s);
        let _ = writeln!(out, "  {cell}  {metric}  {change}  {at}; {since}");
    }
    out
}

/// The same as [`steps_text`], as a Markdown section.
pub fn steps_markdown(steps: &[StepRegression], runs: usize) -> String {
    let mut out = format!("\n### Change points\n\n{}.\n", steps_heading(steps, runs));
    for s in steps {
        let [cell, metric, change, at, since] = step_line(s);
        let _ = writeln!(out, "- `{}` {metric}: {change} {at}; {since}", cell.replace('|', "\\|"));
    }
    out
}

/// The comparison as a plain table for the terminal: one line of counts,
/// then the significant changes (or "no significant changes"), then the
/// cells that were not compared.
pub fn text(comparison: &Comparison) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "base {} -> new {}; noise bands from {} earlier run(s)",
        comparison.base_run, comparison.new_run, comparison.history_runs
    );
    let _ = writeln!(w, "{}", counts(comparison, ""));
    if let Some(line) = tail_gate(comparison) {
        let _ = writeln!(w, "{line}");
    }
    let significant = comparison.significant();
    if significant.is_empty() {
        let _ = writeln!(w, "no significant changes");
    } else {
        let header = ["verdict", "cell", "metric", "base", "new", "change", "p", "threshold"].map(String::from);
        let rows: Vec<[String; 8]> = significant
            .iter()
            .map(|c| {
                [
                    verdict_word(c.verdict).to_owned(),
                    c.cell.clone(),
                    c.metric.to_owned(),
                    number(c.base),
                    number(c.new),
                    magnitude(c),
                    p_value(c),
                    threshold(c),
                ]
            })
            .collect();
        let mut widths = [0; 8];
        for row in std::iter::once(&header).chain(&rows) {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
                // Numbers (base, new, change, p) right-aligned.
                if (3..=6).contains(&i) {
                    let _ = write!(line, "{cell:>width$}  ");
                } else {
                    let _ = write!(line, "{cell:<width$}  ");
                }
            }
            let _ = writeln!(w, "{}", line.trim_end());
        }
    }
    for u in &comparison.unmatched {
        let _ = writeln!(w, "not compared: {}: {}", u.cell(), unmatched_reason(u));
    }
    for m in &comparison.missing {
        let _ = writeln!(w, "not compared: {} {}: {}", m.cell, m.metric, missing_reason(m));
    }
    for o in &comparison.other_machine {
        let _ = writeln!(w, "not compared: {} wall-clock metrics: {}", o.cell, other_machine_reason(o));
    }
    out
}

fn other_machine_reason(o: &OtherMachine) -> String {
    format!("measured on `{}` in the base run and on `{}` in the new run", o.base, o.new)
}

/// "2 regressions, 1 improvement, 40 within noise across 12 cells", the
/// significant counts wrapped in `strong` (Markdown `**`).
fn counts(comparison: &Comparison, strong: &str) -> String {
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let regressions = plural(comparison.count(Verdict::Regression), "regression", "regressions");
    let improvements = plural(comparison.count(Verdict::Improvement), "improvement", "improvements");
    let mut line = format!(
        "{strong}{regressions}{strong}, {strong}{improvements}{strong}, {} within noise, across {}",
        comparison.count(Verdict::Noise),
        plural(comparison.cells_compared(), "cell", "cells")
    );
    if !comparison.unmatched.is_empty() {
        let _ = write!(line, "; {} not compared", plural(comparison.unmatched.len(), "cell", "cells"));
    }
    if !comparison.other_machine.is_empty() {
        let cells = plural(comparison.other_machine.len(), "cell", "cells");
        let _ = write!(line, "; wall-clock metrics of {cells} not compared (measured on other machines)");
    }
    if let Some((base, new)) = comparison.methodology_break {
        let _ = write!(
            line,
            "; nothing compared: the base run was measured with methodology {base} and the new run with \
             {new} (a break in the history, not a change)"
        );
    }
    line
}

/// One line on the tail-latency gate: how many p99/p99.9 changes it
/// judged by their interval and how many it flagged, the largest change it
/// did not flag with its interval, and how many fell back to the noise
/// band (runs without latency repetitions). `None` with no tail change.
fn tail_gate(comparison: &Comparison) -> Option<String> {
    let tails: Vec<&Change> = comparison.changes.iter().filter(|c| is_tail(c)).collect();
    if tails.is_empty() {
        return None;
    }
    let judged: Vec<&&Change> = tails.iter().filter(|c| c.method == Method::TailInterval).collect();
    let flagged = judged.iter().filter(|c| c.is_significant()).count();
    let fallback = tails.len() - judged.len();
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut line = format!(
        "tail-latency gate: {} by the 95% interval of the change, {flagged} flagged",
        plural(judged.len(), "p99/p99.9 change", "p99/p99.9 changes")
    );
    let largest =
        judged.iter().filter(|c| !c.is_significant()).max_by(|a, b| a.relative().abs().total_cmp(&b.relative().abs()));
    if let Some(c) = largest
        && let Some((lower, upper)) = c.interval
    {
        let _ =
            write!(line, "; largest within noise: {} {} {} [{lower:.3}×, {upper:.3}×]", c.cell, c.metric, magnitude(c));
    }
    if fallback > 0 {
        let _ = write!(line, "; {fallback} by the noise band only (a run without latency repetitions)");
    }
    Some(line)
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Regression => "regression",
        Verdict::Improvement => "improvement",
        Verdict::Noise => "noise",
    }
}

fn unmatched_reason(u: &Unmatched) -> String {
    let status = |s: &CellStatus| match s {
        CellStatus::Ok => "ok".to_owned(),
        CellStatus::Failed(reason) => format!("failed ({reason})"),
        CellStatus::Skipped(reason) => format!("skipped ({reason})"),
    };
    match u {
        Unmatched::OnlyInBase { .. } => "in the base run only".to_owned(),
        Unmatched::OnlyInNew { .. } => "in the new run only".to_owned(),
        Unmatched::NotOk { base, new, .. } => format!("base {}, new {}", status(base), status(new)),
    }
}

/// The relative change as a signed percentage (`+10.0%`, `-20.0%`), or
/// "from 0" when the base was zero.
fn magnitude(c: &Change) -> String {
    if c.ratio.is_infinite() {
        return "from 0".to_owned();
    }
    let pct = c.relative() * 100.0;
    if pct.abs() < 0.1 { format!("{pct:+.2}%") } else { format!("{pct:+.1}%") }
}

fn p_value(c: &Change) -> String {
    match c.p_value {
        Some(p) if p < 0.001 => format!("{p:.1e}"),
        Some(p) => format!("{p:.3}"),
        None => String::new(),
    }
}

/// The threshold held against, and where it came from.
fn threshold(c: &Change) -> String {
    let pct = c.threshold * 100.0;
    match c.method {
        Method::Deterministic if c.multithreaded => format!("{pct:.1}% (multi-threaded cell)"),
        Method::Deterministic => format!("{pct:.1}%"),
        Method::Multithreaded => format!("{pct:.1}% (multi-threaded)"),
        Method::TailInterval | Method::ProcessInterval => {
            let (lower, upper) = c.interval.unwrap_or((f64::NAN, f64::NAN));
            format!("95% interval [{lower:.3}×, {upper:.3}×] vs noise {pct:.1}%{}", history(c))
        }
        Method::NoiseBand if is_tail(c) => format!("noise {pct:.1}%{}; noise band only (no repetitions)", history(c)),
        Method::MannWhitney | Method::NoiseBand => format!("noise {pct:.1}%{}", history(c)),
    }
}

/// Where a noise band came from, in parentheses after it.
fn history(c: &Change) -> String {
    if c.history > 0 { format!(" ({} past changes)", c.history) } else { " (too little history)".to_owned() }
}

/// `c` is a metric of the tail-latency gate.
fn is_tail(c: &Change) -> bool {
    crate::analysis::regression::TAIL_METRICS.iter().any(|(slug, _)| *slug == c.metric)
}

/// A compared value: four figures (the one formatter's comparison style).
fn number(x: f64) -> String {
    format::number(x, format::Unit::Si, format::Style::COMPARISON)
}

/// A noise calibration as a plain table for the terminal: what was
/// compared, one row per metric (spread, threshold, learned band, false
/// positives), then the noisiest cell of each metric.
pub fn calibration_text(c: &Calibration) -> String {
    let mut out = String::new();
    let w = &mut out;
    for line in calibration_header(c) {
        let _ = writeln!(w, "{line}");
    }
    let rows = calibration_rows(c);
    let mut widths = [0; 8];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i >= 2 {
                let _ = write!(line, "{cell:>width$}  ");
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        let _ = writeln!(w, "{}", line.trim_end());
    }
    for m in &c.metrics {
        if let Some(worst) = &m.max_cv
            && worst.value > 0.0
        {
            let _ = writeln!(w, "noisiest {}: {} (CV {})", m.metric, worst.cell, percent(Some(worst.value)));
        }
    }
    out
}

/// A noise calibration as Markdown (a CI job summary, the nightly's
/// record): the same table as [`calibration_text`], and every cell's spread
/// in a collapsed list.
pub fn calibration_markdown(c: &Calibration) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "## buslab noise calibration (A/A)\n");
    for line in calibration_header(c) {
        let _ = writeln!(w, "{line}  ");
    }
    let _ = writeln!(w);
    let rows = calibration_rows(c);
    for (i, row) in rows.iter().enumerate() {
        let _ = writeln!(w, "| {} |", row.join(" | "));
        if i == 0 {
            let _ = writeln!(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        }
    }
    if !c.cells.is_empty() {
        let _ = writeln!(w, "\n<details><summary>Spread of every cell ({} rows)</summary>\n", c.cells.len());
        let _ = writeln!(w, "| cell | metric | runs | median | min | max | CV | learned band |");
        let _ = writeln!(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for s in &c.cells {
            let _ = writeln!(
                w,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
                s.cell.replace('|', "\\|"),
                s.metric,
                s.values,
                number(s.median),
                signed_percent(s.min_deviation),
                signed_percent(s.max_deviation),
                percent(s.cv),
                percent(s.learned_band)
            );
        }
        let _ = writeln!(w, "\n</details>");
    }
    out
}

fn calibration_header(c: &Calibration) -> Vec<String> {
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let commits = match c.commits.as_slice() {
        [] => "an unknown commit".to_owned(),
        [one] => format!("commit {}", one.get(..10).unwrap_or(one)),
        many => format!("{} commits (not an A/A group: the code changed between runs)", many.len()),
    };
    let machines = match c.machines.as_slice() {
        [one] => format!("on `{one}`"),
        many => format!("on {} machines", many.len()),
    };
    let quick = if c.quick { ", --quick" } else { "" };
    vec![
        format!("{} at {commits} {machines}{quick}", plural(c.runs.len(), "run", "runs")),
        format!(
            "{} compared with no history: {} with a regression ({} that the deterministic gate admits), \
             {} with any significant change (every one a false positive)",
            plural(c.pairs, "ordered pair", "ordered pairs"),
            c.pairs_with_regression,
            c.pairs_with_deterministic_regression,
            c.pairs_flagged
        ),
        match c.tail_gate {
            (0, _) => "tail-latency gate: no change judged (no run kept latency repetitions)".to_owned(),
            (judged, flagged) => format!(
                "tail-latency gate (p99, p99.9 by the interval of the change): {flagged} of {judged} changes flagged                  ({:.1}% false positives)",
                100.0 * flagged as f64 / judged as f64
            ),
        },
    ]
}

fn calibration_rows(c: &Calibration) -> Vec<[String; 8]> {
    let header =
        ["metric", "judged by", "cells", "median CV", "widest", "threshold", "learned band", "false positives"]
            .map(str::to_owned);
    let mut rows = vec![header];
    for m in &c.metrics {
        let judged = match m.kind {
            Kind::Deterministic => "threshold",
            Kind::Sampled => "interval + band",
            Kind::SingleFigure => "noise band",
        };
        let widest = match &m.widest {
            Some(w) if w.value.is_infinite() => "from 0".to_owned(),
            Some(w) => format!("±{}", percent(Some(w.value))),
            None => "-".to_owned(),
        };
        rows.push([
            m.metric.to_owned(),
            judged.to_owned(),
            m.cells.to_string(),
            percent(m.median_cv),
            widest,
            percent(Some(m.threshold)),
            percent(m.median_learned_band),
            format!("{}/{} ({})", m.false_positives, m.comparisons, percent(Some(m.false_positive_rate))),
        ]);
    }
    rows
}

/// `12.3%`, `0.05%`, or `-` for none.
fn percent(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() && x != 0.0 && (x * 100.0).abs() < 0.1 => format!("{:.3}%", x * 100.0),
        Some(x) if x.is_finite() => format!("{:.1}%", x * 100.0),
        Some(_) => "inf".to_owned(),
        None => "-".to_owned(),
    }
}

/// `+1.2%`, `-0.4%`, or "from 0" for none (a departure from zero).
fn signed_percent(x: Option<f64>) -> String {
    match x {
        Some(0.0) => "0".to_owned(),
        Some(x) => format!("{:+.2}%", x * 100.0),
        None => "from 0".to_owned(),
    }
}

/// A choice's value on metric `slug`, with its interval: `64.8 M events/s
/// [62.7 M, 73.7 M]`.
fn choice_value(slug: &str, c: &Choice) -> String {
    let value = format::metric_value(slug, c.value);
    match c.interval {
        Some((l, u)) if l < u => format!("{value} [{}, {}]", format::si_number(l), format::si_number(u)),
        _ => value,
    }
}

/// `a: 1.80× b [1.50, 2.10]` for throughput; `b's p99 1.80× a's` for
/// latency.
fn price_words(slug: &str, price: &Price) -> String {
    let interval = price
        .interval
        .map(|(l, u)| format!(" [{}, {}]", format::three_figures(l), format::three_figures(u)))
        .unwrap_or_default();
    if slug == "throughput" {
        format!("{}: {} {}{interval}", price.choice.bus, format::ratio(price.ratio), price.against.bus)
    } else {
        format!("{}'s p99: {} {}'s{interval}", price.against.bus, format::ratio(price.ratio), price.choice.bus)
    }
}

/// One recommendation in one line: the pick with its value, the buses the
/// data cannot tell from it, the price of the next choice and the in-line
/// alternative.
pub fn recommendation(r: &Recommendation) -> String {
    let Some(pick) = &r.pick else {
        return format!("{}: no bus to recommend (every bus failed, was skipped, or is lossy or ruled out)", r.point());
    };
    let mut line = format!("{}: {}, {}", r.point(), pick.bus, choice_value(r.metric, pick));
    if r.metric != "throughput" {
        line.push_str(" p99 at the headline rate");
    } else if r.latency_unmeasured {
        line.push_str(" (by throughput: no p99 at the headline rate)");
    }
    if pick.lossy {
        line.push_str(" (lossy; this workload accepts loss)");
    }
    if r.only_inline {
        line.push_str(" (in-line: the only buses that fit here)");
    }
    if !r.tied.is_empty() {
        let names: Vec<&str> = r.tied.iter().map(|c| c.bus.as_str()).collect();
        let _ = write!(line, "; cannot be told from {}", names.join(", "));
    }
    if let Some(next) = &r.next {
        let _ = write!(line, "; {}", price_words(r.metric, next));
    }
    if let Some(alt) = &r.inline_alternative {
        let _ = write!(
            line,
            "; in-line alternative {} if listeners may run on the publisher's thread",
            price_words(r.metric, alt)
        );
    }
    line
}

/// The recommendations for the terminal: a heading with the rule, then
/// one line each.
pub fn recommendations_text(recommendations: &[Recommendation]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Recommended ({}):", recommend::RULE_SHORT);
    for r in recommendations {
        let _ = writeln!(out, "  {}", recommendation(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::regression::Unmatched;

    fn change(cell: &str, metric: &'static str, base: f64, new: f64, verdict: Verdict, method: Method) -> Change {
        Change {
            cell: cell.to_owned(),
            metric,
            base,
            new,
            ratio: if base == 0.0 { f64::INFINITY } else { new / base },
            verdict,
            p_value: (method == Method::MannWhitney).then_some(0.0006),
            threshold: if method == Method::Deterministic { 0.01 } else { 0.05 },
            method,
            interval: None,
            history: 0,
            multithreaded: false,
        }
    }

    fn comparison() -> Comparison {
        Comparison {
            base_run: "A".to_owned(),
            new_run: "B".to_owned(),
            history_runs: 0,
            changes: vec![
                change("spsc/x", "throughput", 3.5e6, 4.2e6, Verdict::Improvement, Method::MannWhitney),
                change("spsc/x", "instructions-per-event", 400.0, 404.0, Verdict::Noise, Method::Deterministic),
                change("spsc/y", "allocs-per-event", 0.0, 0.01, Verdict::Regression, Method::Deterministic),
                change("spsc/y", "throughput", 3.5e6, 2.8e6, Verdict::Regression, Method::MannWhitney),
            ],
            unmatched: vec![Unmatched::OnlyInBase { cell: "gone/z".to_owned() }],
            missing: vec![Missing { cell: "spsc/x".to_owned(), metric: "latency-p99", in_base: true, at_rate: None }],
            other_machine: Vec::new(),
            methodology_break: None,
        }
    }

    #[test]
    fn markdown_lists_regressions_first_with_magnitudes_and_counts() {
        let md = markdown(&comparison());
        assert!(
            md.contains("**2 regressions**, **1 improvement**, 1 within noise, across 2 cells; 1 cell not compared")
        );
        let rows: Vec<&str> =
            md.lines().filter(|l| l.starts_with("| regression") || l.starts_with("| improvement")).collect();
        assert_eq!(rows.len(), 3, "{md}");
        // The throughput drop (-20%) and the growth from zero are both
        // regressions; from zero counts as the larger.
        assert!(rows[0].contains("allocs-per-event") && rows[0].contains("from 0"), "{md}");
        assert!(rows[1].contains("throughput") && rows[1].contains("-20.0%") && rows[1].contains("6.0e-4"), "{md}");
        assert!(rows[2].starts_with("| improvement") && rows[2].contains("+20.0%"), "{md}");
        assert!(md.contains("- `gone/z`: in the base run only"));
        assert!(md.contains("- `spsc/x` latency-p99: measured in the base run only"));
        assert!(!md.contains("instructions-per-event"), "noise is counted, not listed");
    }

    #[test]
    fn cells_from_other_machines_are_listed() {
        let mut c = comparison();
        c.other_machine =
            vec![OtherMachine { cell: "spsc/y".to_owned(), base: "box-a".to_owned(), new: "box-b".to_owned() }];
        let md = markdown(&c);
        assert!(md.contains("wall-clock metrics of 1 cell not compared (measured on other machines)"), "{md}");
        assert!(
            md.contains("- `spsc/y` wall-clock metrics: measured on `box-a` in the base run and on `box-b`"),
            "{md}"
        );
        assert!(text(&c).contains("not compared: spsc/y wall-clock metrics: measured on `box-a`"));
    }

    #[test]
    fn nothing_significant_says_so() {
        let mut c = comparison();
        c.changes.retain(|c| c.verdict == Verdict::Noise);
        assert!(markdown(&c).contains("No significant changes."));
        assert!(text(&c).contains("no significant changes"));
    }

    #[test]
    fn the_text_table_is_aligned() {
        let t = text(&comparison());
        let lines: Vec<&str> = t.lines().collect();
        let header = lines.iter().position(|l| l.starts_with("verdict")).expect("a header");
        let col = |line: &str| line.find("throughput").or_else(|| line.find("allocs-per-event"));
        let metric_at = lines[header].find("metric");
        assert_eq!(col(lines[header + 1]), metric_at, "{t}");
        assert_eq!(col(lines[header + 2]), metric_at, "{t}");
        assert!(t.contains("not compared: gone/z: in the base run only"));
    }

    #[test]
    fn a_calibration_renders_as_a_table_and_markdown() {
        use crate::analysis::noise;
        use buslab_scenarios::results::{CellKey, CellResult, Instructions, Run, RunMeta};
        let run = |i: usize, ir: f64| {
            let key = CellKey { scenario: "spsc".to_owned(), bus: "ring".to_owned(), params: Default::default() };
            let mut cell = CellResult::new(key, 1, 1);
            cell.instructions = Some(Instructions { ir_per_event: ir, ..Instructions::default() });
            Run {
                meta: RunMeta {
                    id: format!("r{i}"),
                    started_at: format!("2026-01-01T00:00:0{i}Z"),
                    git_commit: Some("0123456789abcdef".to_owned()),
                    machine: "box".to_owned(),
                    ..RunMeta::default()
                },
                cells: vec![cell],
            }
        };
        let c = noise::calibrate(&[run(0, 400.0), run(1, 400.0), run(2, 440.0)], &Default::default());
        let t = calibration_text(&c);
        assert!(t.starts_with("3 runs at commit 0123456789 on `box`"), "{t}");
        assert!(t.contains("6 ordered pairs compared with no history: 2 with a regression (2 that the"), "{t}");
        let row = t.lines().find(|l| l.starts_with("instructions-per-event")).expect("a row");
        assert!(row.contains("threshold") && row.contains("1.0%") && row.contains("4/6 (66.7%)"), "{row}");
        assert!(t.contains("noisiest instructions-per-event: spsc/ring (CV"), "{t}");
        let md = calibration_markdown(&c);
        assert!(md.contains("| metric | judged by | cells |"), "{md}");
        assert!(md.contains("| `spsc/ring` | instructions-per-event | 3 | 400.0 | 0 | +10.00% |"), "{md}");
    }
}
