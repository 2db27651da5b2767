//! buslab's one statistics module: the figures a cell quotes (a median with
//! its confidence interval, from one probe process's trials or from
//! several processes), the ratios between buses, and the tests behind the
//! regression rule. The harness measures with it; the reports judge with it.
//!
//! # A cell's interval
//! - **One process** ([`estimate`]): the median of the trials with a 95%
//!   percentile-bootstrap interval of that median (resample the trials with
//!   replacement, read the 2.5th and 97.5th percentiles of the resampled
//!   medians), as criterion does. It holds only the variance *within* the
//!   process: at 7 trials its coverage is about 87%, at 3 it is `[min, max]`.
//! - **Several processes** ([`across_processes`]): the variance that matters
//!   is between processes (memory layout, thread placement, host drift), and
//!   with the few processes a run can afford (3 to 5) a bootstrap over
//!   processes cannot cover 95% (resampling 3 values gives at best their
//!   range). So the interval is Student's *t* over the processes' medians on
//!   a log scale: `exp(m ± t(0.975, k−1)·s/√k)` where `m` and `s` are the
//!   mean and standard deviation of the logs of the `k` process medians.
//!   Each process median already averages its trials, so the within-process
//!   variance is inside `s`; the log scale makes the interval a ratio
//!   (throughputs are multiplicative) and keeps it positive. It is exact
//!   when the log process medians are normal, and the simulation test
//!   (`coverage_of_intervals_across_processes`) measures it on normal and
//!   log-normal data with between-process CVs of 5–30% and within-process
//!   CVs of 1–10%: [`simulated_coverage`] reports the same figure for any
//!   process and trial count, so the report can state it.
//! - **Paired ratios** ([`paired_ratio`]): when two buses ran in the same
//!   rounds of interleaved processes, process *i* of one is paired with
//!   process *i* of the other and the interval is the same *t* interval
//!   over the logs of the per-round ratios, so drift that hit both in one
//!   round cancels (tango-bench's paired benchmarking, "duet" A/B runs).
//!
//! - **Ratios between two runs** ([`log_ratio_interval`]): the repetitions
//!   of two runs are independent, not paired, so the interval of
//!   `new / base` is Welch's *t* over the logs of each run's repetitions;
//!   the tail-latency gate of the regression rule reads it.
//!
//! # How many trials
//! [`repetitions`]: the variance within and between processes of a stored
//! cell (Kalibera & Jones's random-effects estimators) and the trials per
//! process that buy the most precision for the time.
//!
//! # The regression rule's statistics
//! The Mann–Whitney U test, and the noise band (Q3 + 3·IQR) of a metric's
//! past changes.
//!
//! # Mann–Whitney U
//! The two samples are ranked together, tied values sharing the mean of
//! their ranks; `U₁ = R₁ − n₁(n₁+1)/2` where `R₁` is the rank sum of the
//! first sample, and `U₂ = n₁n₂ − U₁`. The test is two-sided: the p-value
//! is the probability, if both samples came from one distribution, of a
//! `U` at least as far from its mean `n₁n₂/2` as the one observed.
//!
//! - **Exact** when there is no tie and `n₁·n₂ ≤ 400` (up to 20 trials a
//!   side): the null distribution of `U` is counted exactly (the number of
//!   orderings of `n₁ + n₂` values giving each `U`), and
//!   `p = min(1, 2·P(U ≤ min(U₁, U₂)))`.
//! - **Normal approximation** otherwise, with the tie correction of the
//!   variance and a continuity correction of ½:
//!   `σ² = n₁n₂/12 · ((N+1) − Σ(t³−t)/(N(N−1)))` over the sizes `t` of the
//!   groups of tied values, `z = max(0, |U₁ − n₁n₂/2| − ½)/σ`,
//!   `p = erfc(z/√2)`. When every value is the same, `σ = 0` and `p = 1`.
//!
//! Both are symmetric in the two samples. With 3 trials a side (a
//! `--quick` run) the smallest possible p-value is 2/20 = 0.1; 7 trials a
//! side (the default budget) can reach 2/3432 ≈ 0.0006.

use buslab_scenarios::results::Estimate;
use serde::Serialize;

pub mod repetitions;

/// Above this `n₁·n₂`, or with ties, the p-value uses the normal
/// approximation instead of the exact distribution.
const EXACT_MAX_PRODUCT: usize = 400;

/// What a statistic cannot be computed from.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// One of the samples is empty.
    #[error("the {which} sample is empty")]
    EmptySample {
        /// `first` or `second`.
        which: &'static str,
    },
    /// A sample holds NaN or an infinity.
    #[error("the {which} sample holds a value that is not finite ({value})")]
    NotFinite {
        /// `first` or `second`.
        which: &'static str,
        /// The offending value.
        value: f64,
    },
}

/// The result of a two-sided Mann–Whitney U test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MannWhitney {
    /// `U₁`: how many (first, second) pairs have the first value above the
    /// second, ties counting ½.
    pub u: f64,
    /// The two-sided p-value, in `[0, 1]`.
    pub p_value: f64,
    /// The p-value comes from the exact distribution, not the normal
    /// approximation.
    pub exact: bool,
}

/// The two-sided Mann–Whitney U test of `first` against `second`. See the
/// [module docs](self) for the method.
pub fn mann_whitney_u(first: &[f64], second: &[f64]) -> Result<MannWhitney, StatsError> {
    for (which, sample) in [("first", first), ("second", second)] {
        if sample.is_empty() {
            return Err(StatsError::EmptySample { which });
        }
        if let Some(&value) = sample.iter().find(|v| !v.is_finite()) {
            return Err(StatsError::NotFinite { which, value });
        }
    }
    let (n1, n2) = (first.len(), second.len());
    let mut all: Vec<(f64, bool)> =
        first.iter().map(|&v| (v, true)).chain(second.iter().map(|&v| (v, false))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks over groups of equal values; remember the group sizes.
    let mut rank_sum_first = 0.0;
    let mut ties: Vec<usize> = Vec::new();
    let mut start = 0;
    while start < all.len() {
        let end = start + all[start..].iter().take_while(|(v, _)| *v == all[start].0).count();
        // Ranks start..end (0-based) are start+1..=end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        rank_sum_first += rank * all[start..end].iter().filter(|(_, is_first)| *is_first).count() as f64;
        ties.push(end - start);
        start = end;
    }
    let u1 = rank_sum_first - (n1 * (n1 + 1)) as f64 / 2.0;
    let u2 = (n1 * n2) as f64 - u1;
    if ties.len() == 1 {
        // Every value is the same: nothing tells the samples apart.
        return Ok(MannWhitney { u: u1, p_value: 1.0, exact: false });
    }
    let has_ties = ties.iter().any(|&t| t > 1);
    if !has_ties && n1 * n2 <= EXACT_MAX_PRODUCT {
        // Without ties U is a whole number.
        let u_min = u1.min(u2).round() as usize;
        let p_value = CUMULATIVE.with(|cache| {
            let mut cache = cache.borrow_mut();
            // The cumulative distribution of U for these sizes, computed once
            // per thread: a history of nightly runs tests the same sizes
            // thousands of times.
            let cumulative = cache.entry((n1, n2)).or_insert_with(|| {
                let counts = u_distribution(n1, n2);
                let total: f64 = counts.iter().sum();
                counts
                    .iter()
                    .scan(0.0, |sum, c| {
                        *sum += c;
                        Some(*sum / total)
                    })
                    .collect()
            });
            (2.0 * cumulative[u_min]).min(1.0)
        });
        return Ok(MannWhitney { u: u1, p_value, exact: true });
    }
    Ok(MannWhitney { u: u1, p_value: normal_p_value(u1, n1, n2, &ties), exact: false })
}

thread_local! {
    /// `P(U ≤ u)` for each `u`, by sample sizes.
    static CUMULATIVE: std::cell::RefCell<std::collections::HashMap<(usize, usize), Vec<f64>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The two-sided p-value of `U₁` by the normal approximation, with the tie
/// correction (`ties` holds the sizes of the groups of equal values, 1 for
/// a value without a tie) and a continuity correction of ½.
fn normal_p_value(u1: f64, n1: usize, n2: usize, ties: &[usize]) -> f64 {
    let (n1, n2) = (n1 as f64, n2 as f64);
    let n = n1 + n2;
    let tie_term: f64 = ties.iter().map(|&t| (t as f64).powi(3) - t as f64).sum();
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    let z = ((u1 - n1 * n2 / 2.0).abs() - 0.5).max(0.0) / variance.sqrt();
    libm::erfc(z / std::f64::consts::SQRT_2).clamp(0.0, 1.0)
}

/// The null distribution of `U` for samples of sizes `n1` and `n2` without
/// ties: `counts[u]` orderings (out of `C(n1 + n2, n1)`) give `U = u`.
///
/// Counted with the recurrence `f(i, j) = f(i−1, j) shifted by j + f(i, j−1)`
/// (the largest value belongs either to the first sample, beating all `j`
/// values of the second, or to the second). The counts are whole numbers
/// below `C(40, 20) < 2⁵³`, exact in an `f64`.
fn u_distribution(n1: usize, n2: usize) -> Vec<f64> {
    // row[j] = f(i, j) for the current i; f(0, j) = [1].
    let mut row: Vec<Vec<f64>> = vec![vec![1.0]; n2 + 1];
    for i in 1..=n1 {
        let mut next: Vec<Vec<f64>> = Vec::with_capacity(n2 + 1);
        for j in 0..=n2 {
            let mut counts = vec![0.0; i * j + 1];
            for (u, &c) in row[j].iter().enumerate() {
                counts[u + j] += c;
            }
            if j > 0 {
                for (u, &c) in next[j - 1].iter().enumerate() {
                    counts[u] += c;
                }
            }
            next.push(counts);
        }
        row = next;
    }
    row.pop().expect("the row has n2 + 1 entries")
}

/// The `q`-quantile (`0 ≤ q ≤ 1`) of sorted `values` by linear
/// interpolation between closest ranks (R's and NumPy's default, "type 7").
/// `None` for no values.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let below = pos.floor() as usize;
    let above = pos.ceil() as usize;
    Some(sorted[below] + (sorted[above] - sorted[below]) * (pos - below as f64))
}

/// The median of `values` (any order), `None` for none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.5)
}

/// rustc-perf's noise band: Q3 + 3·IQR of `changes` (absolute relative
/// changes between consecutive past runs). A change beyond it is an outlier
/// of the metric's own history. `None` for no changes.
pub fn noise_band(changes: &[f64]) -> Option<f64> {
    let mut sorted = changes.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q1 = quantile(&sorted, 0.25)?;
    let q3 = quantile(&sorted, 0.75)?;
    Some(q3 + 3.0 * (q3 - q1))
}

/// The ratio of the medians `median(a) / median(b)` with a 95% percentile
/// bootstrap interval: both samples are resampled with replacement
/// (`resamples` times, from a fixed seed so a report renders the same
/// twice) and the 2.5th and 97.5th percentiles of the resampled ratios are
/// the bounds. `None` when a sample is empty, holds a value that is not
/// finite, or `b`'s median is 0.
pub fn ratio_of_medians(a: &[f64], b: &[f64], resamples: usize) -> Option<(f64, f64, f64)> {
    if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|v| !v.is_finite()) {
        return None;
    }
    let point = median(a)? / median(b)?;
    if !point.is_finite() {
        return None;
    }
    let mut rng = fastrand::Rng::with_seed(SEED);
    let mut next = |n: usize| rng.usize(..n);
    let mut ratios = Vec::with_capacity(resamples);
    let (mut ra, mut rb) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    for _ in 0..resamples.max(1) {
        ra.iter_mut().for_each(|v| *v = a[next(a.len())]);
        rb.iter_mut().for_each(|v| *v = b[next(b.len())]);
        let r = median(&ra)? / median(&rb)?;
        if r.is_finite() {
            ratios.push(r);
        }
    }
    ratios.sort_by(f64::total_cmp);
    Some((point, quantile(&ratios, 0.025)?, quantile(&ratios, 0.975)?))
}

/// Bootstrap resamples per estimate.
pub const RESAMPLES: usize = 2_000;

/// The seed of every resampling, so that the same data always give the
/// same interval ("buslab").
const SEED: u64 = 0x6275_736c_6162;

/// The median of one process's trial `samples` with a 95% percentile
/// bootstrap interval, keeping the samples (see the [module docs](self)).
pub fn estimate(samples: &[f64]) -> Estimate {
    estimate_with(samples, 0.95, RESAMPLES)
}

/// [`estimate`] at `confidence` over `resamples` resamples.
pub fn estimate_with(samples: &[f64], confidence: f64, resamples: usize) -> Estimate {
    let Some(point) = median(samples) else {
        return Estimate { median: f64::NAN, lower: f64::NAN, upper: f64::NAN, samples: Vec::new() };
    };
    if samples.len() < 2 {
        return Estimate { median: point, lower: point, upper: point, samples: samples.to_vec() };
    }
    let mut rng = fastrand::Rng::with_seed(SEED);
    let mut medians = Vec::with_capacity(resamples);
    let mut resample = vec![0.0; samples.len()];
    for _ in 0..resamples.max(1) {
        for slot in resample.iter_mut() {
            *slot = samples[rng.usize(..samples.len())];
        }
        resample.sort_by(f64::total_cmp);
        medians.push(quantile(&resample, 0.5).expect("not empty"));
    }
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Estimate {
        median: point,
        lower: quantile(&medians, tail).expect("not empty"),
        upper: quantile(&medians, 1.0 - tail).expect("not empty"),
        samples: samples.to_vec(),
    }
}

/// A figure measured by several independent processes, each with its own
/// trials: the median of the process medians with a 95% Student *t*
/// interval over the logs of the process medians (see the
/// [module docs](self)); the samples are every trial, process after
/// process. With one process it is [`estimate`]; values must be positive
/// (rates, times) for more than one. Empty processes are left out.
pub fn across_processes(processes: &[Vec<f64>]) -> Estimate {
    let processes: Vec<&Vec<f64>> = processes.iter().filter(|p| !p.is_empty()).collect();
    let samples: Vec<f64> = processes.iter().flat_map(|p| p.iter().copied()).collect();
    match processes.as_slice() {
        [] => estimate(&[]),
        [one] => estimate(one),
        _ => {
            let medians: Vec<f64> = processes.iter().filter_map(|p| median(p)).collect();
            let point = median(&medians).expect("at least two");
            match log_t_interval(&medians, 0.95) {
                Some((lower, upper)) => Estimate { median: point, lower, upper, samples },
                None => Estimate { median: point, lower: f64::NAN, upper: f64::NAN, samples },
            }
        }
    }
}

/// The ratio `a / b` of two buses measured in the same rounds of
/// interleaved processes (`a[i]` and `b[i]` ran in round `i`): the median
/// of the per-round ratios of process medians, with the 95% *t* interval
/// over their logs. Rounds where either bus has no trial are left out;
/// `None` with fewer than two paired rounds or a value that is not
/// positive and finite.
pub fn paired_ratio(a: &[Vec<f64>], b: &[Vec<f64>]) -> Option<(f64, f64, f64)> {
    let ratios: Vec<f64> = a.iter().zip(b).filter_map(|(a, b)| Some(median(a)? / median(b)?)).collect();
    if ratios.len() < 2 {
        return None;
    }
    let (lower, upper) = log_t_interval(&ratios, 0.95)?;
    Some((median(&ratios)?, lower, upper))
}

/// The ratio `new / base` of a figure measured by independent repetitions
/// in two runs (one value per repetition, positive and finite; the
/// processes of two runs are not paired): the ratio of the geometric means
/// with a Welch *t* interval at `confidence` over the logs,
/// `exp((m₂ − m₁) ± t(ν)·√(s₁²/k₁ + s₂²/k₂))`, its degrees of freedom `ν`
/// Welch–Satterthwaite's rounded down (at least 1: rounding down only
/// widens it). Like [`across_processes`] it is exact when the logs are
/// normal with equal variances and holds its coverage for unequal ones
/// (Welch); the simulation test `welch_log_ratio_covers_at_the_run_counts`
/// measures it on log-normal and normal repetitions. `None` unless both
/// sides have two or more values, all positive and finite.
pub fn log_ratio_interval(base: &[f64], new: &[f64], confidence: f64) -> Option<(f64, f64, f64)> {
    let moments = |values: &[f64]| -> Option<(f64, f64, f64)> {
        if values.len() < 2 || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return None;
        }
        let k = values.len() as f64;
        let mean = values.iter().map(|v| v.ln()).sum::<f64>() / k;
        let variance = values.iter().map(|v| (v.ln() - mean).powi(2)).sum::<f64>() / (k - 1.0);
        Some((mean, variance / k, k))
    };
    let ((m1, v1, k1), (m2, v2, k2)) = (moments(base)?, moments(new)?);
    let point = (m2 - m1).exp();
    let se2 = v1 + v2;
    if se2 == 0.0 {
        return Some((point, point, point));
    }
    let df = se2.powi(2) / (v1.powi(2) / (k1 - 1.0) + v2.powi(2) / (k2 - 1.0));
    let t = student_t_quantile((df.floor() as u32).max(1), 0.5 + confidence / 2.0);
    let half = t * se2.sqrt();
    Some((point, (m2 - m1 - half).exp(), (m2 - m1 + half).exp()))
}

/// `exp(m ± t·s/√k)` over the logs of `values` (`k ≥ 2`, all positive and
/// finite), at `confidence`.
fn log_t_interval(values: &[f64], confidence: f64) -> Option<(f64, f64)> {
    if values.len() < 2 || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let logs: Vec<f64> = values.iter().map(|v| v.ln()).collect();
    let k = logs.len() as f64;
    let mean = logs.iter().sum::<f64>() / k;
    let variance = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (k - 1.0);
    let t = student_t_quantile(logs.len() as u32 - 1, 0.5 + confidence / 2.0);
    let half = t * (variance / k).sqrt();
    Some(((mean - half).exp(), (mean + half).exp()))
}

/// The CDF of Student's *t* with `df ≥ 1` degrees of freedom at `t`: the
/// closed form for integer degrees of freedom (Abramowitz & Stegun 26.7.3
/// and 26.7.4, a finite sum).
pub fn student_t_cdf(df: u32, t: f64) -> f64 {
    if t.is_nan() || df == 0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 1.0 } else { 0.0 };
    }
    let n = f64::from(df);
    let theta = (t / n.sqrt()).atan();
    let (sin, cos) = theta.sin_cos();
    // A(t|ν): the probability that |T| ≤ |t|.
    let a = if df % 2 == 1 {
        let mut sum = 0.0;
        if df > 1 {
            let mut term = cos;
            sum = term;
            for k in (3..df).step_by(2) {
                term *= cos * cos * f64::from(k - 1) / f64::from(k);
                sum += term;
            }
        }
        2.0 / std::f64::consts::PI * (theta + sin * sum)
    } else {
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in (2..df).step_by(2) {
            term *= cos * cos * f64::from(k - 1) / f64::from(k);
            sum += term;
        }
        sin * sum
    };
    0.5 + a / 2.0
}

/// The `p`-quantile of Student's *t* with `df ≥ 1` degrees of freedom, by
/// bisection on [`student_t_cdf`] (to 1e-12).
pub fn student_t_quantile(df: u32, p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || df == 0 {
        return f64::NAN;
    }
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -student_t_quantile(df, 1.0 - p);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while student_t_cdf(df, hi) < p {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    while hi - lo > 1e-12 * hi.max(1.0) {
        let mid = (lo + hi) / 2.0;
        if student_t_cdf(df, mid) < p { lo = mid } else { hi = mid }
    }
    (lo + hi) / 2.0
}

/// How the simulated measurements of [`simulated_coverage`] vary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variation {
    /// Coefficient of variation between processes (each process's own
    /// level around the true value).
    pub between: f64,
    /// Coefficient of variation of the trials within a process.
    pub within: f64,
    /// Log-normal (multiplicative) noise rather than normal.
    pub log_normal: bool,
}

impl Variation {
    /// The corners of the variation a benchmark sees (between-process CV
    /// 5–30%, within-process CV 1–10%, normal and log-normal), over which
    /// [`coverage_range`] reports.
    pub const CORNERS: [Variation; 8] = {
        let mut corners = [Variation { between: 0.0, within: 0.0, log_normal: false }; 8];
        let mut i = 0;
        while i < 8 {
            corners[i] = Variation {
                between: if i & 1 == 0 { 0.05 } else { 0.30 },
                within: if i & 2 == 0 { 0.01 } else { 0.10 },
                log_normal: i & 4 != 0,
            };
            i += 1;
        }
        corners
    };
}

/// The lowest and highest [`simulated_coverage`] of a nominal 95% interval
/// over [`Variation::CORNERS`], `experiments` each, at `processes` ×
/// `trials`: what the report states beside its intervals.
pub fn coverage_range(processes: usize, trials: usize, experiments: usize) -> (f64, f64) {
    Variation::CORNERS
        .iter()
        .map(|v| simulated_coverage(processes, trials, *v, experiments))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), c| (lo.min(c), hi.max(c)))
}

/// The share of `experiments` simulated cells (`processes` processes of
/// `trials` trials each, varying as `variation` says, seeded) whose 95%
/// interval from [`across_processes`] holds the true value: what a nominal
/// 95% interval is worth at these counts. The true value is the median of
/// the distribution a process median comes from (1.0 here).
pub fn simulated_coverage(processes: usize, trials: usize, variation: Variation, experiments: usize) -> f64 {
    let mut rng = fastrand::Rng::with_seed(SEED ^ (processes as u64) << 32 ^ trials as u64);
    let mut normal = move || {
        // Box–Muller.
        let (u1, u2) = (rng.f64().max(1e-300), rng.f64());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    // Normal noise is cut at 1% of the true value: rates and times are
    // positive (at a CV of 30% a draw falls below it about once in 3,000).
    let draw = |cv: f64, z: f64| if variation.log_normal { (cv * z).exp() } else { (1.0 + cv * z).max(0.01) };
    let mut covered = 0;
    for _ in 0..experiments {
        let cell: Vec<Vec<f64>> = (0..processes)
            .map(|_| {
                let level = draw(variation.between, normal());
                (0..trials).map(|_| level * draw(variation.within, normal())).collect()
            })
            .collect();
        let e = across_processes(&cell);
        if e.lower <= 1.0 && 1.0 <= e.upper {
            covered += 1;
        }
    }
    covered as f64 / experiments.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(a: &[f64], b: &[f64]) -> f64 {
        mann_whitney_u(a, b).expect("valid samples").p_value
    }

    #[test]
    fn student_t_quantiles_match_the_tables() {
        for (df, p, want) in [(1, 0.975, 12.7062), (2, 0.975, 4.3027), (4, 0.975, 2.7764), (10, 0.975, 2.2281)] {
            let got = student_t_quantile(df, p);
            assert!((got - want).abs() < 1e-3, "t({df}, {p}) = {got}, tables say {want}");
        }
        assert!((student_t_quantile(30, 0.975) - 2.0423).abs() < 1e-3);
        assert!((student_t_quantile(3, 0.025) + 3.1824).abs() < 1e-3);
        assert!((student_t_cdf(5, 0.0) - 0.5).abs() < 1e-15);
        assert!((student_t_cdf(7, 1.8946) - 0.95).abs() < 1e-4);
    }

    /// The bar: at the default counts (3 or more processes of 7
    /// trials), a nominal 95% interval covers the true value in at least 93%
    /// of simulated cells, whatever the mix of between- and within-process
    /// variation and its shape.
    #[test]
    fn coverage_at_the_run_counts() {
        // The default run (3 processes × 3 trials) and `--quick` (3 × 2).
        for (processes, trials) in [(3, 3), (3, 2)] {
            let (lo, hi) = coverage_range(processes, trials, 2_000);
            assert!(lo >= 0.93 && hi <= 0.985, "{processes}×{trials}: coverage {lo}–{hi}");
        }
        let (_, hi) = coverage_range(1, 3, 300);
        assert!(hi < 0.8, "one process of 3 trials: coverage up to {hi}");
    }

    #[test]
    fn coverage_of_intervals_across_processes() {
        for processes in [3, 5] {
            for between in [0.05, 0.3] {
                for within in [0.01, 0.1] {
                    for log_normal in [false, true] {
                        let v = Variation { between, within, log_normal };
                        let c = simulated_coverage(processes, 7, v, 2_000);
                        assert!(c >= 0.93, "{processes} processes, {v:?}: coverage {c}");
                        assert!(c <= 0.985, "{processes} processes, {v:?}: coverage {c}, wider than it should be");
                    }
                }
            }
        }
    }

    /// One process's bootstrap holds none of the variance between
    /// processes: the reason for several.
    #[test]
    fn one_process_misses_the_variance_between_processes() {
        let v = Variation { between: 0.1, within: 0.02, log_normal: false };
        let c = simulated_coverage(1, 7, v, 1_000);
        assert!(c < 0.5, "one process of 7 trials: coverage {c}");
    }

    /// The tail gate's interval: at 3 repetitions a side (the default
    /// run's latency processes), a nominal 95% interval of the
    /// ratio of two runs of one distribution holds 1 in at least 93% of
    /// simulated pairs, for log-normal and normal repetitions with a CV of
    /// 5–30%, and rejects in favour of a 30% shift when the spread is
    /// tight.
    #[test]
    fn welch_log_ratio_covers_at_the_run_counts() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut normal = move || {
            let (u1, u2) = (rng.f64().max(1e-300), rng.f64());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        };
        for (k, cv, log_normal) in [(3, 0.05, true), (3, 0.3, true), (3, 0.05, false), (3, 0.3, false), (5, 0.1, true)]
        {
            let mut draw = |n: usize| -> Vec<f64> {
                (0..n)
                    .map(|_| if log_normal { (cv * normal()).exp() } else { (1.0 + cv * normal()).max(0.01) })
                    .collect()
            };
            let experiments = 2_000;
            let covered = (0..experiments)
                .filter(|_| {
                    let (_, lo, hi) = log_ratio_interval(&draw(k), &draw(k), 0.95).expect("an interval");
                    lo <= 1.0 && 1.0 <= hi
                })
                .count();
            let c = covered as f64 / experiments as f64;
            eprintln!("{k} repetitions a side, CV {cv}, log-normal {log_normal}: coverage {c}");
            assert!((0.93..=0.995).contains(&c), "{k} repetitions, CV {cv}, log-normal {log_normal}: coverage {c}");
        }
        let (r, lo, hi) = log_ratio_interval(&[100.0, 102.0, 98.0], &[130.0, 131.0, 128.0], 0.95).expect("an interval");
        assert!((r - 1.3).abs() < 0.01 && lo > 1.2 && hi < 1.4, "{lo} {r} {hi}");
        assert!(log_ratio_interval(&[1.0], &[1.0, 2.0], 0.95).is_none(), "one repetition is no interval");
        assert!(log_ratio_interval(&[1.0, 0.0], &[1.0, 2.0], 0.95).is_none());
        let (r, lo, hi) = log_ratio_interval(&[2.0, 2.0], &[3.0, 3.0], 0.95).expect("no spread");
        assert!((r - 1.5).abs() < 1e-12 && lo == r && hi == r, "no spread, no width: {lo} {r} {hi}");
    }

    #[test]
    fn paired_ratios_cancel_drift_shared_by_a_round() {
        // Each round's machine speed differs a lot; the ratio does not.
        let speeds = [1.0, 0.7, 1.3, 0.9];
        let a: Vec<Vec<f64>> = speeds.iter().map(|s| vec![2.0 * s, 2.02 * s, 1.98 * s]).collect();
        let b: Vec<Vec<f64>> = speeds.iter().map(|s| vec![1.0 * s, 1.01 * s, 0.99 * s]).collect();
        let (r, lo, hi) = paired_ratio(&a, &b).expect("a ratio");
        assert!((r - 2.0).abs() < 1e-9 && lo > 1.99 && hi < 2.01, "{lo} {r} {hi}");
        // Unpaired, the same data cannot tell much.
        let ea = across_processes(&a);
        assert!(ea.upper / ea.lower > 1.4, "{ea:?}");
        assert!(paired_ratio(&a[..1], &b[..1]).is_none(), "one round is no interval");
    }

    #[test]
    fn across_processes_keeps_every_trial_and_falls_back_to_one_process() {
        let e = across_processes(&[vec![10.0, 11.0, 9.0], vec![], vec![20.0, 21.0]]);
        assert_eq!(e.samples, [10.0, 11.0, 9.0, 20.0, 21.0]);
        assert_eq!(e.median, 15.25, "the median of the process medians 10 and 20.5");
        assert!(e.lower < 10.0 && e.upper > 20.5, "{e:?}");
        assert_eq!(across_processes(&[vec![3.0, 1.0, 2.0]]), estimate(&[3.0, 1.0, 2.0]));
        assert!(across_processes(&[]).median.is_nan());
    }

    #[test]
    fn medians_of_known_samples_and_the_bootstrap_interval() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let e = estimate(&[5.0; 7]);
        assert_eq!((e.median, e.lower, e.upper), (5.0, 5.0, 5.0));
        let e = estimate(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert!(e.lower < 4.0 && 4.0 < e.upper && e.lower >= 1.0 && e.upper <= 7.0, "{e:?}");
        assert_eq!(estimate(&[1.0, 2.0, 3.0]), estimate(&[1.0, 2.0, 3.0]), "seeded");
    }

    #[test]
    fn ratio_of_medians_brackets_the_point_estimate() {
        let a = [10.0, 11.0, 12.0, 10.5, 11.5];
        let b = [5.0, 5.5, 6.0, 5.2, 5.8];
        let (r, lo, hi) = ratio_of_medians(&a, &b, 500).expect("a ratio");
        assert!((r - 11.0 / 5.5).abs() < 1e-12);
        assert!(lo <= r && r <= hi && lo > 1.5 && hi < 2.5, "{lo} {r} {hi}");
        assert_eq!(ratio_of_medians(&a, &b, 500), ratio_of_medians(&a, &b, 500), "seeded");
        assert!(ratio_of_medians(&a, &[], 10).is_none());
        assert!(ratio_of_medians(&a, &[0.0], 10).is_none());
        assert!(ratio_of_medians(&[f64::NAN], &b, 10).is_none());
    }

    #[test]
    fn exact_p_values_match_the_textbook() {
        // Fully separated samples: p = 2 / C(n1 + n2, n1).
        assert!((p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]) - 2.0 / 20.0).abs() < 1e-12);
        assert!((p(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0]) - 2.0 / 70.0).abs() < 1e-12);
        let seven = p(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], &[8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0]);
        assert!((seven - 2.0 / 3432.0).abs() < 1e-12);
        // SciPy's documented example (exact method): p = 0.1111.
        let r = mann_whitney_u(&[19.0, 22.0, 16.0, 29.0, 24.0], &[20.0, 11.0, 17.0, 12.0]).expect("valid");
        assert!(r.exact);
        assert_eq!(r.u, 17.0);
        assert!((r.p_value - 0.111_111).abs() < 1e-5, "{r:?}");
    }

    #[test]
    fn the_u_distribution_counts_every_ordering() {
        for (n1, n2) in [(1, 1), (3, 4), (7, 7), (20, 20)] {
            let counts = u_distribution(n1, n2);
            assert_eq!(counts.len(), n1 * n2 + 1);
            let total: f64 = counts.iter().sum();
            let choose = (1..=n1).fold(1.0, |acc, k| acc * (n2 + k) as f64 / k as f64);
            assert!((total - choose).abs() < 0.5, "{n1}×{n2}: {total} vs {choose}");
            // Symmetric about n1·n2/2.
            assert!(counts.iter().zip(counts.iter().rev()).all(|(a, b)| a == b));
        }
    }

    #[test]
    fn the_normal_approximation_agrees_with_the_exact_p_value() {
        // 20 against 20 interleaved values, no ties: both methods apply.
        let a: Vec<f64> = (0..20).map(|i| (i * 2) as f64).collect();
        let b: Vec<f64> = (0..20).map(|i| (i * 2 + 9) as f64).collect();
        let exact = mann_whitney_u(&a, &b).expect("valid");
        assert!(exact.exact);
        let approx = normal_p_value(exact.u, 20, 20, &[1; 40]);
        assert!(exact.p_value > 0.01 && exact.p_value < 0.1, "{exact:?}");
        assert!((exact.p_value - approx).abs() < 0.002, "{exact:?} vs {approx}");
        // Past the exact limit, the approximation is used.
        assert!(!mann_whitney_u(&[a.clone(), vec![-1.0]].concat(), &b).expect("valid").exact);
    }

    #[test]
    fn ties_use_the_corrected_normal_approximation() {
        let r = mann_whitney_u(&[1.0; 7], &[2.0; 7]).expect("valid");
        assert!(!r.exact);
        assert!(r.p_value < 0.001, "{r:?}");
        assert_eq!(p(&[5.0; 4], &[5.0; 9]), 1.0);
    }

    #[test]
    fn bad_samples_are_errors() {
        assert_eq!(mann_whitney_u(&[], &[1.0]), Err(StatsError::EmptySample { which: "first" }));
        assert!(matches!(mann_whitney_u(&[1.0], &[f64::NAN]), Err(StatsError::NotFinite { which: "second", .. })));
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.25), Some(2.0));
        assert_eq!(quantile(&v, 0.75), Some(4.0));
        assert_eq!(quantile(&[1.0, 2.0], 0.5), Some(1.5));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        // Q3 + 3·IQR = 4 + 3·2.
        assert_eq!(noise_band(&v), Some(10.0));
    }

    fn sample(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(-1e6..1e6_f64, len)
    }

    proptest! {
        #[test]
        fn identical_samples_have_p_one(a in sample(1..40)) {
            prop_assert_eq!(p(&a, &a), 1.0);
        }

        #[test]
        fn fully_separated_samples_are_significant(
            a in prop::collection::vec(0.0..1.0_f64, 7..40),
            b in prop::collection::vec(2.0..3.0_f64, 7..40),
            rounded in any::<bool>(),
        ) {
            // Rounding makes ties within each sample.
            let round = |v: &[f64]| -> Vec<f64> {
                if rounded { v.iter().map(|x| (x * 4.0).round() / 4.0).collect() } else { v.to_vec() }
            };
            let (a, b) = (round(&a), round(&b));
            prop_assert!(p(&a, &b) < 0.01, "p = {}", p(&a, &b));
        }

        #[test]
        fn the_test_is_symmetric(a in sample(1..30), b in sample(1..30), shared in sample(0..5)) {
            // Shared values make ties across the samples.
            let a: Vec<f64> = a.into_iter().chain(shared.iter().copied()).collect();
            let b: Vec<f64> = b.into_iter().chain(shared).collect();
            let (ab, ba) = (mann_whitney_u(&a, &b).expect("valid"), mann_whitney_u(&b, &a).expect("valid"));
            prop_assert!((ab.p_value - ba.p_value).abs() < 1e-12, "{ab:?} vs {ba:?}");
            prop_assert!((ab.u + ba.u - (a.len() * b.len()) as f64).abs() < 1e-9);
            prop_assert!((0.0..=1.0).contains(&ab.p_value));
        }
    }
}
