//! The latency histogram: counts per latency bucket, log latency × log count.

use super::scale::{Fit, Scale};
use super::{ChartError, DrawResult, Unit, color, draw, format_value, no_data};
use plotters::prelude::*;

/// More buckets than this are merged into [`BINS`] log-spaced bins.
pub const MAX_BUCKETS: usize = 80;
/// How many log-spaced bins many buckets are merged into.
pub const BINS: usize = 60;

/// A latency histogram: one bar per bucket `(low ns, high ns, count)`,
/// spanning `low..high` on a log latency axis, its height the count on a
/// log axis (so the tail's few counts stay visible). Tooltips give each
/// bucket's range, count and share.
///
/// Buckets with a zero count, `high < low` or a zero width are drawn at
/// least 1 px wide; a bucket with `low = 0` starts at the axis' left edge.
/// More than [`MAX_BUCKETS`] buckets (an HdrHistogram has thousands) are
/// merged into [`BINS`] bins evenly spaced in log latency, each bucket
/// going to the bin holding its geometric middle. Buckets with a zero
/// count or `high < low` are left out; none left gives the "no data"
/// placeholder. 800 × 400 px.
pub fn histogram(title: &str, buckets: &[(u64, u64, u64)]) -> Result<String, ChartError> {
    let mut buckets: Vec<(u64, u64, u64)> = buckets.iter().copied().filter(|&(lo, hi, n)| n > 0 && hi >= lo).collect();
    if buckets.is_empty() {
        return Ok(no_data(title));
    }
    if buckets.len() > MAX_BUCKETS {
        buckets = rebin(&buckets);
    }
    let total: u128 = buckets.iter().map(|b| u128::from(b.2)).sum();
    let x =
        Scale::fit(buckets.iter().flat_map(|&(lo, hi, _)| [lo as f64, hi as f64]), Fit::new(true, Unit::Nanoseconds));
    let y = Scale::fit(
        buckets.iter().map(|b| b.2 as f64).chain(std::iter::once(1.0)),
        Fit { headroom: 0.05, ..Fit::new(true, Unit::Si) },
    );
    let layout = super::Layout::standard(&y);
    draw(
        "histogram",
        title,
        &layout,
        (&x, "latency (log scale)"),
        (&y, "count (log scale)"),
        |chart, root, overlay| -> DrawResult {
            let fill = color(0);
            for &(lo, hi, n) in &buckets {
                let (x0, y0) = chart.backend_coord(&(x.to_plot(lo as f64), y.to_plot(n as f64)));
                let (x1, y1) = chart.backend_coord(&(x.to_plot(hi as f64), y.lo));
                let x1 = x1.max(x0 + 1);
                root.draw(&Rectangle::new([(x0, y0), (x1, y1)], fill.mix(0.85).filled()))?;
                if x1 - x0 >= 4 {
                    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], WHITE.stroke_width(1)))?;
                }
                let share = crate::render::format::unsigned_percent(n as f64 / total as f64);
                let tip = format!(
                    "{} – {}: {} ({share})",
                    format_value(lo as f64, Unit::Nanoseconds),
                    format_value(hi as f64, Unit::Nanoseconds),
                    grouped(n)
                );
                overlay.rect((x0, y0.min(y1 - 6)), (x1, y1), &tip);
            }
            Ok(())
        },
    )
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Merges buckets into [`BINS`] bins evenly spaced in log latency.
fn rebin(buckets: &[(u64, u64, u64)]) -> Vec<(u64, u64, u64)> {
    let low = buckets.iter().map(|b| b.0.max(1)).min().unwrap_or(1) as f64;
    let high = buckets.iter().map(|b| b.1.max(1)).max().unwrap_or(1) as f64;
    let (l0, l1) = (low.log10(), high.log10().max(low.log10() + 1e-9));
    let width = (l1 - l0) / BINS as f64;
    let mut counts = vec![0u64; BINS];
    for &(lo, hi, n) in buckets {
        let mid = ((lo.max(1) as f64).log10() + (hi.max(1) as f64).log10()) / 2.0;
        let bin = (((mid - l0) / width).floor().max(0.0) as usize).min(BINS - 1);
        counts[bin] = counts[bin].saturating_add(n);
    }
    let edge = |i: usize| 10f64.powf(l0 + width * i as f64).round() as u64;
    counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, &n)| (edge(i), edge(i + 1).max(edge(i)), n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::charts::tests::check;

    #[test]
    fn histogram_shows_title_axes_and_tooltips() {
        let buckets: Vec<(u64, u64, u64)> =
            (0..30).map(|i| (1000 + i * 100, 1100 + i * 100, 10_000 / (i + 1))).chain([(50_000, 60_000, 1)]).collect();
        let svg = histogram("Latency histogram <at 50%>", &buckets).expect("draws");
        check(&svg, &["Latency histogram <at 50%>", "latency", "count", "µs"]);
        assert_eq!(svg.matches("<title>").count(), 31);
        assert!(svg.contains("10,000"), "counts are grouped in tooltips");
    }

    #[test]
    fn many_buckets_are_merged_keeping_the_total() {
        let buckets: Vec<(u64, u64, u64)> = (1..5000u64).map(|i| (i * 10, i * 10 + 9, i % 7)).collect();
        let merged = rebin(&buckets.iter().copied().filter(|b| b.2 > 0).collect::<Vec<_>>());
        assert!(merged.len() <= BINS);
        let sum = |b: &[(u64, u64, u64)]| b.iter().map(|x| x.2).sum::<u64>();
        assert_eq!(sum(&merged), sum(&buckets));
        let svg = histogram("many", &buckets).expect("draws");
        check(&svg, &["many"]);
        assert!(svg.matches("<title>").count() <= BINS);
    }

    #[test]
    fn histogram_handles_edge_cases() {
        check(&histogram("empty", &[]).expect("draws"), &["no data"]);
        check(&histogram("zero counts", &[(1, 2, 0), (5, 3, 9)]).expect("draws"), &["no data"]);
        check(&histogram("from zero", &[(0, 0, 3), (0, 1, 5)]).expect("draws"), &["from zero"]);
        check(&histogram("single", &[(700, 700, u64::MAX)]).expect("draws"), &["single"]);
    }
}
