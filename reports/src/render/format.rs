//! Numbers as people read them: SI prefixes, durations, ratios. The one
//! number formatter: the pages, the charts, Markdown and the terminal all
//! write numbers through [`write()`] (one prefix table, one rounding rule),
//! differing only in their [`Style`].

use buslab_scenarios::metrics;

/// How a number is written: the one table of prefixes and the one
/// rounding rule behind every number of the report, the charts and the
/// terminal. Only the [`Style`] differs between them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unit {
    /// SI prefixes on plain numbers: `0.25`, `12.5`, `350 k`, `1.2 M`, `3 G`.
    #[default]
    Si,
    /// The values are nanoseconds, written as durations: `850 ns`, `12 µs`,
    /// `1.5 ms`, `2 s`.
    Nanoseconds,
}

/// Where a number is written, and so how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Style {
    /// Between the digits and the prefix or unit: a space on pages and
    /// charts (`1.23 M`), nothing in the terminal's narrow columns (`1.23M`).
    pub gap: &'static str,
    /// Trailing zeros dropped (chart ticks and tooltips: `1.5 ms`, `1 k`);
    /// pages and the terminal keep three figures (`1.50 ms`, `1.00k`).
    pub trim: bool,
    /// The smallest magnitude an SI number takes a prefix from: pages
    /// write four-digit numbers whole (`1234`), charts and the terminal
    /// take `k` from a thousand (`1.23 k`).
    pub prefix_from: f64,
    /// Significant figures: three, four where two close values are set
    /// side by side ([`Style::COMPARISON`]).
    pub figures: u8,
}

impl Style {
    /// Pages and Markdown: `1234`, `12.3 k`, `1.00 M`, `1.50 ms`.
    pub const PAGE: Style = Style { gap: " ", trim: false, prefix_from: 1e4, figures: 3 };
    /// Chart ticks and tooltips: `1.23 k`, `1 M`, `1.5 ms`.
    pub const CHART: Style = Style { gap: " ", trim: true, prefix_from: 1e3, figures: 3 };
    /// The terminal's tables: `1.23k`, `12.3M`, `850ns`, `3.10ms`.
    pub const TERMINAL: Style = Style { gap: "", trim: false, prefix_from: 1e3, figures: 3 };
    /// A comparison's base and new values, in Markdown and the terminal:
    /// four figures, so that a 1% change shows (`412.5`, `3.512 M`).
    pub const COMPARISON: Style = Style { figures: 4, ..Style::PAGE };
}

/// The divisor and symbol for a magnitude `a` (≥ 0) in `unit`: the
/// largest prefix not above `a` (none below [`Style::prefix_from`] for SI
/// numbers; `ns` below a microsecond).
pub(crate) fn prefix(a: f64, unit: Unit, style: Style) -> (f64, &'static str) {
    const SI: [(f64, &str); 5] = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    const NANOS: [(f64, &str); 3] = [(1e9, "s"), (1e6, "ms"), (1e3, "µs")];
    let found = match unit {
        Unit::Si if a < style.prefix_from => None,
        Unit::Si => SI.into_iter().find(|(scale, _)| a >= *scale),
        Unit::Nanoseconds => NANOS.into_iter().find(|(scale, _)| a >= *scale),
    };
    found.unwrap_or((1.0, if unit == Unit::Nanoseconds { "ns" } else { "" }))
}

/// Decimals that give `scaled` (≥ 0) `figures` significant figures;
/// larger numbers keep their integer digits.
fn decimals(scaled: f64, figures: u8) -> usize {
    if scaled == 0.0 { 0 } else { (i32::from(figures) - 1 - scaled.log10().floor() as i32).clamp(0, 9) as usize }
}

/// Appends `value` in `unit` and `style` to `out`: three (or
/// [`Style::figures`]) significant figures after the prefix (rounded half away from zero first, so
/// 999.96 k is `1.00 M`),
/// `0` (`0 ns`) for zero, `n/a`, `∞` or `−∞` when not finite, and SI
/// magnitudes below 10⁻⁶ in exponent form (`1.50e-7`).
pub fn write(out: &mut String, value: f64, unit: Unit, style: Style) {
    use std::fmt::Write as _;
    if !value.is_finite() {
        out.push_str(if value.is_nan() {
            "n/a"
        } else if value > 0.0 {
            "∞"
        } else {
            "−∞"
        });
        return;
    }
    if unit == Unit::Si && value != 0.0 && value.abs() < 1e-6 {
        let _ = write!(out, "{value:.2e}");
        return;
    }
    // Rounded in the value's own unit, half away from zero: 2465 ns is
    // 2.47 µs (2.465 has no exact binary form, and would print as 2.46).
    let (scale, _) = prefix(value.abs(), unit, style);
    let quantum = scale / 10f64.powi(decimals(value.abs() / scale, style.figures) as i32);
    let rounded = (value / quantum).round() * quantum;
    let (scale, symbol) = prefix(rounded.abs(), unit, style);
    let scaled = rounded / scale;
    let places = decimals(scaled.abs(), style.figures);
    let start = out.len();
    let _ = write!(out, "{scaled:.places$}");
    if style.trim && places > 0 {
        let kept = out[start..].trim_end_matches('0').trim_end_matches('.').len();
        out.truncate(start + kept);
    }
    if &out[start..] == "-0" {
        out.truncate(start);
        out.push('0');
    }
    if !symbol.is_empty() {
        out.push_str(style.gap);
        out.push_str(symbol);
    }
}

/// [`write()`] into a new string.
pub fn number(value: f64, unit: Unit, style: Style) -> String {
    let mut out = String::with_capacity(12);
    write(&mut out, value, unit, style);
    out
}

/// `value` with an SI prefix (k, M, G, …) and three significant figures,
/// followed by `unit` (which may be empty): `1.23 M events/s`.
pub fn si(value: f64, unit: &str) -> String {
    let number = si_number(value);
    if unit.is_empty() { number } else { format!("{number} {unit}") }
}

/// A byte count with an SI prefix: `9 B`, `512 B`, `12.5 B`, `46.6 kB`,
/// `1.20 MB` (a whole number of bytes below 10 000 is written as one).
pub fn bytes(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e4 {
        return format!("{value:.0} B");
    }
    let text = si_number(value);
    match text.split_once(' ') {
        Some((number, prefix)) => format!("{number} {prefix}B"),
        None => format!("{text} B"),
    }
}

/// `value` with an SI prefix and three significant figures, no unit.
pub fn si_number(value: f64) -> String {
    number(value, Unit::Si, Style::PAGE)
}

/// Three significant figures without a prefix: 1.23, 12.3, 123, 1234
/// (numbers ≥ 1000 keep their integer digits), 0.0123, 0.
pub fn three_figures(value: f64) -> String {
    number(value, Unit::Si, Style { prefix_from: f64::INFINITY, ..Style::PAGE })
}

/// A duration in nanoseconds as ns, µs, ms or s with three figures.
pub fn nanos(ns: f64) -> String {
    number(ns, Unit::Nanoseconds, Style::PAGE)
}

/// A wall-clock span of seconds as a clock reads it, to the second:
/// `1h02m`, `12m05s`, `42s` (how long a run took or has left).
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// A ratio as `1.23×` (`∞` when infinite).
pub fn ratio(ratio: f64) -> String {
    if ratio.is_infinite() { "∞".to_owned() } else { format!("{}×", three_figures(ratio)) }
}

/// A relative change as a signed percentage: `+10.2%`, `−3.10%`.
pub fn percent(relative: f64) -> String {
    if !relative.is_finite() {
        return if relative > 0.0 { "+∞".to_owned() } else { "n/a".to_owned() };
    }
    let text = three_figures((relative * 100.0).abs());
    if relative >= 0.0 { format!("+{text}%") } else { format!("−{text}%") }
}

/// A relative size without sign: `5.00%`.
pub fn unsigned_percent(relative: f64) -> String {
    percent(relative).trim_start_matches('+').to_owned()
}

/// A share of a whole in whole percent, for rough proportions (time per
/// pass, a load as a fraction of capacity, a shard's part of the matrix):
/// `50%`, `<1%` for a share that is not zero but rounds to it.
pub fn share(fraction: f64) -> String {
    let percent = fraction * 100.0;
    if percent > 0.0 && percent < 0.5 { "<1%".to_owned() } else { format!("{percent:.0}%") }
}

/// A relative threshold or noise band: `±5.00%`.
pub fn band(relative: f64) -> String {
    format!("±{}", unsigned_percent(relative))
}

/// A value formatted in the unit of metric `slug` ([`metrics::ALL`]):
/// durations in ns/µs/ms, rates with their unit, shares as percentages,
/// counts per event as SI numbers.
pub fn metric_value(slug: &str, value: f64) -> String {
    match metrics::by_slug(slug).map(|m| m.unit) {
        Some(metrics::Unit::Nanos) => nanos(value),
        Some(metrics::Unit::Fraction) => unsigned_percent(value),
        Some(unit @ (metrics::Unit::EventsPerSec | metrics::Unit::DeliveriesPerSec | metrics::Unit::BytesPerSec)) => {
            si(value, unit.symbol())
        }
        _ => si_number(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_reads_hours_minutes_and_seconds() {
        assert_eq!(clock(3725.0), "1h02m");
        assert_eq!(clock(725.0), "12m05s");
        assert_eq!(clock(42.4), "42s");
        assert_eq!(clock(-1.0), "0s");
    }

    #[test]
    fn si_prefixes_and_figures() {
        assert_eq!(si(1_234_567.0, "events/s"), "1.23 M events/s");
        assert_eq!(si(12_345.0, ""), "12.3 k");
        assert_eq!(si(999.0, "x"), "999 x");
        assert_eq!(si(0.0, ""), "0");
        assert_eq!(si(0.0123, ""), "0.0123");
        assert_eq!(si(2.5e9, "Hz"), "2.50 GHz".replace("GHz", "G Hz"));
        assert_eq!(si(f64::NAN, ""), "n/a");
        assert_eq!(si(f64::INFINITY, ""), "∞");
    }

    #[test]
    fn chart_style_trims_zeros_and_takes_k_from_a_thousand() {
        let chart = |v, unit| number(v, unit, Style::CHART);
        assert_eq!(chart(1_234_567.0, Unit::Si), "1.23 M");
        assert_eq!(chart(350_000.0, Unit::Si), "350 k");
        assert_eq!(chart(999_960.0, Unit::Si), "1 M");
        assert_eq!(chart(0.25, Unit::Si), "0.25");
        assert_eq!(chart(12.0, Unit::Si), "12");
        assert_eq!(chart(-4_500.0, Unit::Si), "-4.5 k");
        assert_eq!(chart(0.0, Unit::Si), "0");
        assert_eq!(chart(0.001234, Unit::Si), "0.00123");
        assert_eq!(chart(-0.5, Unit::Si), "-0.5");
        assert_eq!(chart(1.5e-7, Unit::Si), "1.50e-7");
        assert_eq!(chart(99.95, Unit::Si), "100");
        assert_eq!(chart(1.05e9, Unit::Si), "1.05 G");
        assert_eq!(chart(f64::NAN, Unit::Si), "n/a");
        assert_eq!(chart(f64::INFINITY, Unit::Si), "∞");
        assert_eq!(chart(0.0, Unit::Nanoseconds), "0 ns");
        assert_eq!(chart(850.0, Unit::Nanoseconds), "850 ns");
        assert_eq!(chart(12_000.0, Unit::Nanoseconds), "12 µs");
        assert_eq!(chart(1_500_000.0, Unit::Nanoseconds), "1.5 ms");
        assert_eq!(chart(2.1e9, Unit::Nanoseconds), "2.1 s");
    }

    #[test]
    fn the_terminal_style_is_compact() {
        let terminal = |v, unit| number(v, unit, Style::TERMINAL);
        assert_eq!(terminal(12_345_678.0, Unit::Si), "12.3M");
        assert_eq!(terminal(512.0, Unit::Si), "512");
        assert_eq!(terminal(1_500.0, Unit::Si), "1.50k");
        assert_eq!(terminal(850.0, Unit::Nanoseconds), "850ns");
        assert_eq!(terminal(12_400.0, Unit::Nanoseconds), "12.4µs");
        assert_eq!(terminal(3_100_000.0, Unit::Nanoseconds), "3.10ms");
        assert_eq!(terminal(400_400.0, Unit::Nanoseconds), "400µs");
    }

    #[test]
    fn rounding_comes_before_the_prefix_in_every_style() {
        for style in [Style::PAGE, Style::CHART, Style::TERMINAL] {
            let text = number(999_960.0, Unit::Si, style);
            assert!(text.starts_with('1') && text.ends_with('M'), "{text}");
            let text = number(999_960.0, Unit::Nanoseconds, style);
            assert!(text.starts_with('1') && text.ends_with("ms"), "{text}");
        }
        assert_eq!(si_number(1234.0), "1234", "pages write four digits whole");
        assert_eq!(three_figures(12_345_678.0), "12345678");
        assert_eq!(three_figures(-0.0001), "-0.000100");
        assert_eq!(si_number(-0.0), "0");
        assert_eq!(nanos(2465.0), "2.47 µs", "a tie rounds away from zero");
        assert_eq!(number(56_050.0, Unit::Nanoseconds, Style::CHART), "56.1 µs");
        let comparison = |v| number(v, Unit::Si, Style::COMPARISON);
        assert_eq!(comparison(3_512_345.0), "3.512 M");
        assert_eq!(comparison(412.53), "412.5");
        assert_eq!(comparison(400.0), "400.0");
        assert_eq!(comparison(25_000.0), "25.00 k");
        assert_eq!(comparison(0.01), "0.01000");
    }

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(nanos(512.0), "512 ns");
        assert_eq!(bytes(46_600.0), "46.6 kB");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(9.0), "9 B");
        assert_eq!(bytes(12.5), "12.5 B");
        assert_eq!(bytes(0.25), "0.250 B");
        assert_eq!(nanos(12_300.0), "12.3 µs");
        assert_eq!(nanos(86_000_000.0), "86.0 ms");
        assert_eq!(nanos(2.5e9), "2.50 s");
    }

    #[test]
    fn ratios_and_percentages() {
        assert_eq!(ratio(1.0), "1.00×");
        assert_eq!(ratio(f64::INFINITY), "∞");
        assert_eq!(percent(0.102), "+10.2%");
        assert_eq!(percent(-0.031), "−3.10%");
        assert_eq!(band(0.05), "±5.00%");
        assert_eq!(unsigned_percent(0.012), "1.20%");
        assert_eq!(share(0.5), "50%");
        assert_eq!(share(0.004), "<1%");
        assert_eq!(share(0.0), "0%");
    }
}
