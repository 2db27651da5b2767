//! Statistics for trial samples: medians and bootstrap confidence intervals.
//!
//! A figure is quoted as the median of its trials with a 95% confidence
//! interval of that median from a percentile bootstrap (resample the trials
//! with replacement, take each resample's median, and read the 2.5th and
//! 97.5th percentiles of those medians), as criterion does. The resampling
//! is seeded, so the same samples always give the same interval.

use buslab_scenarios::results::Estimate;

/// Bootstrap resamples per estimate.
pub const RESAMPLES: usize = 2_000;

/// The median of `samples` (mean of the middle two for an even count);
/// `NaN` for none.
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    median_sorted(&sorted)
}

fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `q`-quantile (0..=1) of sorted data, linear interpolation.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Median with a 95% percentile-bootstrap CI, keeping the raw samples.
pub fn estimate(samples: &[f64]) -> Estimate {
    estimate_with(samples, 0.95, RESAMPLES)
}

/// Median with a `confidence` percentile-bootstrap CI over `resamples`.
pub fn estimate_with(samples: &[f64], confidence: f64, resamples: usize) -> Estimate {
    let median = median(samples);
    if samples.len() < 2 {
        return Estimate { median, lower: median, upper: median, samples: samples.to_vec() };
    }
    let mut rng = fastrand::Rng::with_seed(0x6275_736c_6162); // "buslab"
    let mut medians = Vec::with_capacity(resamples);
    let mut resample = vec![0.0; samples.len()];
    for _ in 0..resamples {
        for slot in resample.iter_mut() {
            *slot = samples[rng.usize(..samples.len())];
        }
        resample.sort_by(f64::total_cmp);
        medians.push(median_sorted(&resample));
    }
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Estimate {
        median,
        lower: quantile_sorted(&medians, tail),
        upper: quantile_sorted(&medians, 1.0 - tail),
        samples: samples.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn medians_of_known_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn quantiles_interpolate() {
        let s = [0.0, 10.0, 20.0, 30.0, 40.0];
        assert_eq!(quantile_sorted(&s, 0.0), 0.0);
        assert_eq!(quantile_sorted(&s, 0.5), 20.0);
        assert_eq!(quantile_sorted(&s, 0.125), 5.0);
        assert_eq!(quantile_sorted(&s, 1.0), 40.0);
    }

    /// On samples from a known distribution the 95% CI of the median covers
    /// the true median in about 95% of experiments (the percentile bootstrap
    /// is a little liberal at small n; it must be well above chance).
    #[test]
    fn ci_covers_the_true_median_of_a_normal_distribution() {
        let mut rng = fastrand::Rng::with_seed(7);
        let normal = |rng: &mut fastrand::Rng| {
            // Box-Muller.
            let (u1, u2) = (rng.f64().max(1e-12), rng.f64());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        };
        let experiments = 400;
        let mut covered = 0;
        for _ in 0..experiments {
            let samples: Vec<f64> = (0..25).map(|_| 100.0 + 10.0 * normal(&mut rng)).collect();
            let e = estimate_with(&samples, 0.95, 500);
            if e.lower <= 100.0 && 100.0 <= e.upper {
                covered += 1;
            }
        }
        let rate = covered as f64 / experiments as f64;
        assert!((0.88..=0.995).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn identical_samples_have_a_zero_width_interval() {
        let e = estimate(&[5.0; 7]);
        assert_eq!((e.median, e.lower, e.upper), (5.0, 5.0, 5.0));
    }

    proptest! {
        #[test]
        fn the_interval_brackets_the_median_within_the_sample_range(
            samples in proptest::collection::vec(-1e9f64..1e9, 1..40)
        ) {
            let e = estimate_with(&samples, 0.95, 200);
            let min = samples.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = samples.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(min <= e.lower && e.lower <= e.median + 1e-6 * e.median.abs().max(1.0));
            prop_assert!(e.median <= e.upper + 1e-6 * e.median.abs().max(1.0) && e.upper <= max);
            prop_assert_eq!(e.samples.len(), samples.len());
        }

        #[test]
        fn the_median_is_order_independent(mut samples in proptest::collection::vec(-1e6f64..1e6, 1..30)) {
            let m = median(&samples);
            samples.reverse();
            prop_assert_eq!(m, median(&samples));
        }
    }
}
