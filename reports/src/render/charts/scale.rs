//! Axis scales: the range, the ticks and their labels, in "plot space"
//! (log10 of the value on a log axis, the value itself on a linear one).
//!
//! plotters is given a linear `f64` range and our own key points, so that
//! ticks are always round numbers (1-2-5 steps, decades) with SI or
//! duration labels, whatever plotters' own log-axis ticks would do.

use super::{CHAR_W, Unit};
use crate::render::format::{self, Style};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use std::ops::Range;

/// The plotters coordinate of a [`Scale`]: linear over `lo..hi` with the
/// scale's ticks as key points (plotters' `WithKeyPoints` cannot take a
/// label formatter on `f64` ranges).
#[derive(Clone, Debug)]
pub(crate) struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let frac = (v - self.lo) / (self.hi - self.lo);
        let frac = if frac.is_finite() { frac.clamp(-1.0, 2.0) } else { 0.5 };
        limit.0 + (f64::from(limit.1 - limit.0) * frac).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// An axis' range and ticks in plot space.
#[derive(Clone, Debug)]
pub(crate) struct Scale {
    pub(crate) log: bool,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    pub(crate) ticks: Vec<f64>,
    labels: Vec<String>,
}

/// How to fit a scale to values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fit {
    pub(crate) log: bool,
    pub(crate) unit: Unit,
    /// A linear axis starts at (or includes) zero.
    pub(crate) zero: bool,
    /// Extra room after the largest value, as a fraction of the range.
    pub(crate) headroom: f64,
}

impl Fit {
    pub(crate) fn new(log: bool, unit: Unit) -> Fit {
        Fit { log, unit, zero: false, headroom: 0.0 }
    }
}

impl Scale {
    /// A linear scale with ticks and labels given.
    pub(crate) fn custom(lo: f64, hi: f64, ticks: Vec<(f64, String)>) -> Scale {
        let (ticks, labels) = ticks.into_iter().filter(|(t, _)| *t >= lo && *t <= hi).unzip();
        Scale { log: false, lo, hi, ticks, labels }
    }

    /// This scale (log or not, same range) with other ticks, in plot space.
    pub(crate) fn with_ticks(&self, ticks: Vec<(f64, String)>) -> Scale {
        Scale { log: self.log, ..Scale::custom(self.lo, self.hi, ticks) }
    }

    /// The scale that holds every finite value of `values` (non-positive
    /// values on a log scale are clamped to its lower edge).
    pub(crate) fn fit(values: impl IntoIterator<Item = f64>, fit: Fit) -> Scale {
        if fit.log { Scale::fit_log(values, fit) } else { Scale::fit_linear(values, fit) }
    }

    fn fit_linear(values: impl IntoIterator<Item = f64>, fit: Fit) -> Scale {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            min = min.min(v);
            max = max.max(v);
        }
        if min > max {
            (min, max) = (0.0, 1.0);
        }
        if fit.zero {
            min = min.min(0.0);
            max = max.max(0.0);
        }
        if max - min <= max.abs().max(min.abs()) * 1e-12 {
            let pad = if max == 0.0 { 1.0 } else { max.abs() * 0.1 };
            if fit.zero && min == 0.0 {
                max += 2.0 * pad;
            } else {
                min -= pad;
                max += pad;
            }
        } else if !fit.zero {
            let pad = (max - min) * 0.05;
            min -= pad;
            max += pad;
        }
        max += (max - min) * fit.headroom;
        let step = nice_step((max - min) / 5.0);
        let first = (min / step).floor();
        let last = (max / step).ceil();
        let (lo, hi) = (first * step, last * step);
        let ticks: Vec<f64> = (0..=((last - first) as i64)).map(|k| (first + k as f64) * step).collect();
        let labels = fixed_labels(&ticks, step, fit.unit);
        Scale { log: false, lo, hi, ticks, labels }
    }

    fn fit_log(values: impl IntoIterator<Item = f64>, fit: Fit) -> Scale {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut non_positive = false;
        for v in values.into_iter().filter(|v| v.is_finite()) {
            if v > 0.0 {
                min = min.min(v);
                max = max.max(v);
            } else {
                non_positive = true;
            }
        }
        if min > max {
            (min, max) = (1.0, 10.0);
        }
        let (mut lo, mut hi) = (min.log10(), max.log10());
        if hi - lo < 1e-9 {
            lo -= 0.3;
            hi += 0.3;
        }
        let span = hi - lo;
        lo -= if non_positive { span * 0.08 + 0.1 } else { (span * 0.04).max(0.02) };
        hi += (span * 0.04).max(0.02) + span * fit.headroom;
        let ticks = log_ticks(lo, hi);
        let labels = ticks.iter().map(|t| format::number(10f64.powf(*t), fit.unit, Style::CHART)).collect();
        Scale { log: true, lo, hi, ticks, labels }
    }

    /// The plotters coordinate.
    pub(crate) fn coord(&self) -> Ticked {
        Ticked { lo: self.lo, hi: self.hi, ticks: self.ticks.clone() }
    }

    /// `v` in plot space: clamped to the lower edge on a log scale when not positive.
    pub(crate) fn to_plot(&self, v: f64) -> f64 {
        if self.log { if v > 0.0 { v.log10().max(self.lo) } else { self.lo } } else { v }
    }

    /// The label of the tick at plot-space `v` (plotters hands back our key points).
    pub(crate) fn tick_label(&self, v: f64) -> String {
        let nearest =
            self.ticks.iter().enumerate().min_by(|a, b| (a.1 - v).abs().total_cmp(&(b.1 - v).abs())).map(|(i, _)| i);
        nearest.and_then(|i| self.labels.get(i)).cloned().unwrap_or_default()
    }

    /// Width of the widest tick label, px.
    pub(crate) fn label_width(&self) -> u32 {
        let chars = self.labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
        (chars as f64 * CHAR_W).ceil() as u32
    }
}

/// A round step (1, 2 or 5 × 10^k) close to `raw`.
pub(crate) fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Log-space ticks in `[lo, hi]`: decades, else 1-2-5, else 1…9 multiples,
/// else linear round values; never more than about ten.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades: Vec<i32> = ((lo.ceil() as i32)..=(hi.floor() as i32)).collect();
    if decades.len() >= 3 {
        let every = decades.len().div_ceil(8) as i32;
        return decades.into_iter().filter(|k| k.rem_euclid(every) == 0).map(f64::from).collect();
    }
    let within = |mults: &[f64]| -> Vec<f64> {
        let mut out = Vec::new();
        for k in (lo.floor() as i32)..=(hi.ceil() as i32) {
            for m in mults {
                let t = (m * 10f64.powi(k)).log10();
                if t >= lo - 1e-12 && t <= hi + 1e-12 {
                    out.push(t);
                }
            }
        }
        out
    };
    let ticks = within(&[1.0, 2.0, 5.0]);
    if ticks.len() >= 3 {
        return ticks;
    }
    let ticks = within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    if ticks.len() >= 3 {
        // 80, 90, 100 crowd together on a log axis: keep ticks a tenth of the axis apart.
        let gap = (hi - lo) / 10.0;
        let mut kept: Vec<f64> = Vec::with_capacity(ticks.len());
        for t in ticks {
            if kept.last().is_none_or(|last| t - last >= gap) {
                kept.push(t);
            }
        }
        return kept;
    }
    let (a, b) = (10f64.powf(lo), 10f64.powf(hi));
    let step = nice_step((b - a) / 4.0);
    let first = (a / step).ceil();
    (0..).map(|k| (first + k as f64) * step).take_while(|v| *v <= b).filter(|v| *v > 0.0).map(f64::log10).collect()
}

/// Labels for evenly spaced linear ticks: one prefix for all (the one of
/// the largest), as many decimals as the step needs.
fn fixed_labels(ticks: &[f64], step: f64, unit: Unit) -> Vec<String> {
    let largest = ticks.iter().fold(0f64, |m, t| m.max(t.abs()));
    let (scale, symbol) = format::prefix(largest, unit, Style::CHART);
    let decimals = (-((step / scale).log10() + 1e-9).floor()).clamp(0.0, 12.0) as usize;
    ticks
        .iter()
        .map(|t| {
            let v = t / scale;
            // No "-0": a tick at zero is written "0".
            if v.abs() < step / scale / 2.0 {
                format::number(0.0, unit, Style::CHART)
            } else if symbol.is_empty() {
                format!("{v:.decimals$}")
            } else {
                format!("{v:.decimals$}{}{symbol}", Style::CHART.gap)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round_and_cover_the_values() {
        let s = Scale::fit([1.2e6, 1.26e6, 1.31e6], Fit::new(false, Unit::Si));
        assert!(s.lo <= 1.2e6 && s.hi >= 1.31e6);
        assert!(s.ticks.len() >= 3 && s.ticks.len() <= 12, "{:?}", s.ticks);
        assert!(s.labels.iter().all(|l| l.ends_with(" M")), "{:?}", s.labels);
        let zero = Scale::fit([3.0, 7.0], Fit { zero: true, ..Fit::new(false, Unit::Si) });
        assert_eq!(zero.lo, 0.0);
        assert_eq!(zero.tick_label(0.0), "0");
    }

    #[test]
    fn identical_values_and_no_values_still_give_a_range() {
        for values in [vec![5.0, 5.0], vec![0.0], vec![], vec![f64::NAN, f64::INFINITY]] {
            for log in [false, true] {
                let s = Scale::fit(values.clone(), Fit::new(log, Unit::Si));
                assert!(s.lo < s.hi, "{values:?} log={log}: {s:?}");
                assert!(s.ticks.len() >= 2, "{values:?} log={log}: {s:?}");
            }
        }
    }

    #[test]
    fn log_scale_clamps_non_positive_values_to_its_lower_edge() {
        let s = Scale::fit([0.0, 10.0, 1000.0], Fit::new(true, Unit::Si));
        assert!(s.lo < 1.0);
        assert_eq!(s.to_plot(0.0), s.lo);
        assert_eq!(s.to_plot(-3.0), s.lo);
        assert_eq!(s.to_plot(100.0), 2.0);
        assert!(s.ticks.contains(&1.0) && s.ticks.contains(&3.0), "{:?}", s.ticks);
        assert_eq!(s.tick_label(3.0), "1 k");
    }

    #[test]
    fn log_ticks_do_not_crowd() {
        let s = Scale::fit([70.0, 400.0], Fit::new(true, Unit::Nanoseconds));
        assert!(s.ticks.windows(2).all(|w| w[1] - w[0] >= (s.hi - s.lo) / 10.0), "{:?}", s.labels);
        assert!(s.ticks.len() >= 3, "{:?}", s.labels);
    }

    #[test]
    fn narrow_log_ranges_get_ticks_inside_the_decade() {
        let s = Scale::fit([1.1e6, 1.5e6], Fit::new(true, Unit::Si));
        assert!(s.ticks.len() >= 3, "{:?}", s.ticks);
        let wide = Scale::fit([1.0, 1e12], Fit::new(true, Unit::Nanoseconds));
        assert!(wide.ticks.len() <= 9, "{:?}", wide.ticks);
    }
}
