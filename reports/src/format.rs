//! Numbers as people read them: SI prefixes, durations, ratios. One place,
//! so the index, cell pages, guide and charts say "1.23 M/s" the same way.

use buslab_scenarios::metrics::{self, Unit};

/// `value` with an SI prefix (k, M, G) and three significant figures,
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
    if !value.is_finite() {
        return if value.is_nan() {
            "n/a".to_owned()
        } else if value > 0.0 {
            "∞".to_owned()
        } else {
            "−∞".to_owned()
        };
    }
    let magnitude = value.abs();
    let (scaled, prefix) = if magnitude >= 1e9 {
        (value / 1e9, " G")
    } else if magnitude >= 1e6 {
        (value / 1e6, " M")
    } else if magnitude >= 1e4 {
        (value / 1e3, " k")
    } else {
        (value, "")
    };
    format!("{}{prefix}", three_figures(scaled))
}

/// Three significant figures without trailing noise: 1.23, 12.3, 123,
/// 1234 (numbers ≥ 1000 keep their integer digits), 0.0123, 0.
pub fn three_figures(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        // 0.0123 → 4 decimals: two leading zeros, then three figures.
        (2 - magnitude.log10().floor() as i32).clamp(2, 9) as usize
    };
    format!("{value:.decimals$}")
}

/// A duration in nanoseconds as ns, µs, ms or s with three figures.
pub fn nanos(ns: f64) -> String {
    if !ns.is_finite() {
        return si_number(ns);
    }
    let magnitude = ns.abs();
    if magnitude >= 1e9 {
        format!("{} s", three_figures(ns / 1e9))
    } else if magnitude >= 1e6 {
        format!("{} ms", three_figures(ns / 1e6))
    } else if magnitude >= 1e3 {
        format!("{} µs", three_figures(ns / 1e3))
    } else {
        format!("{} ns", three_figures(ns))
    }
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

/// A relative threshold or noise band: `±5.00%`.
pub fn band(relative: f64) -> String {
    format!("±{}", unsigned_percent(relative))
}

/// A value formatted in the unit of metric `slug` ([`metrics::ALL`]):
/// durations in ns/µs/ms, rates with their unit, shares as percentages,
/// counts per event as SI numbers.
pub fn metric_value(slug: &str, value: f64) -> String {
    match metrics::by_slug(slug).map(|m| m.unit) {
        Some(Unit::Nanos) => nanos(value),
        Some(Unit::Fraction) => unsigned_percent(value),
        Some(unit @ (Unit::EventsPerSec | Unit::DeliveriesPerSec | Unit::BytesPerSec)) => si(value, unit.symbol()),
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
    }
}
