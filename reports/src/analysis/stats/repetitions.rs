//! How many trials each process should run: the two-level variance
//! components of Kalibera and Jones, "Rigorous Benchmarking in Reasonable
//! Time" (ISMM 2013), and the count of trials per process that buys the
//! most precision for the time spent.
//!
//! # The model
//! A cell's trial `j` in process `i` measures `Y_ij = μ + P_i + T_ij`,
//! where `P_i` (variance `σ²_between`) is what that process drew once
//! (memory layout, thread placement, the host at that minute) and `T_ij`
//! (variance `σ²_within`) the trial's own noise. The mean of `k` processes
//! of `r` trials each has variance `σ²_between / k + σ²_within / (k·r)`:
//! more trials per process only shrink the second term.
//!
//! # The estimators ([`variance_components`])
//! The one-way random-effects ANOVA (Kalibera & Jones §3, for two levels;
//! Searle, Casella & McCulloch's unbalanced form when processes ran
//! different numbers of trials): with `N` trials in `k` processes, `n_i`
//! in process `i`, process means `Ȳ_i` and grand mean `Ȳ`,
//! - `MSW = Σ_i Σ_j (Y_ij − Ȳ_i)² / (N − k)` estimates `σ²_within`;
//! - `MSB = Σ_i n_i (Ȳ_i − Ȳ)² / (k − 1)` estimates
//!   `σ²_within + n₀ σ²_between`, with `n₀ = (N − Σ n_i² / N) / (k − 1)`
//!   (`n₀ = r` when every process ran `r` trials);
//! - so `σ²_between ≈ (MSB − MSW) / n₀`, set to 0 when negative (the
//!   processes agree more than their trials do: no variance between them
//!   could be measured). With `r` trials each this is Kalibera & Jones's
//!   `T₂² = S₂² − S₁²/r`.
//!
//! It needs at least two processes of which one ran at least two trials.
//!
//! # The choice ([`optimal_trials`])
//! Where a process costs `c_process` to start up to its first timed trial
//! (spawn, set-up, calibration, warm-up) and a trial `c_trial`, the count
//! of trials per process that minimises the variance of the mean for a
//! given total time (Kalibera & Jones §4) is
//! `r = ⌈√((c_process / c_trial) · (σ²_within / σ²_between))⌉`,
//! clamped to `[1, max]`: trials are cheap when processes are dear, and
//! worth buying only while the trials' own noise is what limits the
//! figure. `σ²_between = 0` gives `max` (only trials can help), and
//! `σ²_within = 0` gives 1.
//!
//! buslab's interval is over the processes' *medians* rather than their
//! means; the model and its optimum are Kalibera & Jones's, for means (at
//! 2 trials a median is the mean; beyond, a median of normal trials is
//! about π/2 times as variable, which would raise `r` by at most ~25%).

/// The two variance components of a cell's trials grouped by process
/// (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VarianceComponents {
    /// `σ²_within`: the variance of one trial around its process's level.
    pub within: f64,
    /// `σ²_between`: the variance of the processes' levels, ≥ 0.
    pub between: f64,
}

/// The variance components of `processes` (each one process's trials):
/// the ANOVA estimators of the [module docs](self). `None` with fewer than
/// two non-empty processes, no process of two trials or more, or a value
/// that is not finite.
pub fn variance_components<P: AsRef<[f64]>>(processes: &[P]) -> Option<VarianceComponents> {
    let groups: Vec<&[f64]> = processes.iter().map(|p| p.as_ref()).filter(|p| !p.is_empty()).collect();
    let k = groups.len();
    let n: usize = groups.iter().map(|g| g.len()).sum();
    if k < 2 || n <= k || groups.iter().flat_map(|g| g.iter()).any(|v| !v.is_finite()) {
        return None;
    }
    let mean = |g: &[f64]| g.iter().sum::<f64>() / g.len() as f64;
    let grand = groups.iter().flat_map(|g| g.iter()).sum::<f64>() / n as f64;
    let within_ss: f64 =
        groups.iter().map(|g| (g, mean(g))).map(|(g, m)| g.iter().map(|y| (y - m).powi(2)).sum::<f64>()).sum();
    let between_ss: f64 = groups.iter().map(|g| g.len() as f64 * (mean(g) - grand).powi(2)).sum();
    let msw = within_ss / (n - k) as f64;
    let msb = between_ss / (k - 1) as f64;
    let squares: f64 = groups.iter().map(|g| (g.len() as f64).powi(2)).sum();
    let n0 = (n as f64 - squares / n as f64) / (k - 1) as f64;
    Some(VarianceComponents { within: msw, between: ((msb - msw) / n0).max(0.0) })
}

/// The trials per process that buy the most precision for the time (see
/// the [module docs](self)): `⌈√(cost_ratio · within / between)⌉` clamped
/// to `[1, max]`, where `cost_ratio` is `c_process / c_trial`. A ratio or a
/// component that is not finite or negative gives `None`.
pub fn optimal_trials(components: VarianceComponents, cost_ratio: f64, max: usize) -> Option<usize> {
    let VarianceComponents { within, between } = components;
    if ![within, between, cost_ratio].iter().all(|v| v.is_finite() && *v >= 0.0) {
        return None;
    }
    let max = max.max(1);
    if within == 0.0 {
        return Some(1);
    }
    if between == 0.0 {
        return Some(max);
    }
    let r = (cost_ratio * within / between).sqrt().ceil();
    Some(if r >= max as f64 { max } else { (r as usize).max(1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `k` processes of `r` trials: level `N(0, between)`, trials
    /// `N(level, within)` (standard deviations), seeded.
    fn simulate(k: usize, r: usize, between: f64, within: f64, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut normal = move || {
            let (u1, u2) = (rng.f64().max(1e-300), rng.f64());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        };
        (0..k)
            .map(|_| {
                let level = 100.0 + between * normal();
                (0..r).map(|_| level + within * normal()).collect()
            })
            .collect()
    }

    #[test]
    fn the_estimators_recover_known_components() {
        // Within four standard errors of the true variances (for normal
        // data, sd(MSW) = σ²_w·√(2/(k(r−1))) and sd of the between estimate
        // ≈ (σ²_w + r·σ²_b)/r·√(2/(k−1))), and those bounds are tight
        // enough to tell the components apart: under 30% of each.
        let (k, r) = (5_000, 4);
        for (between, within) in [(3.0, 2.0), (2.0, 3.0), (1.0, 3.0)] {
            let c = variance_components(&simulate(k, r, between, within, 7)).expect("enough data");
            let (b, w) = (between * between, within * within);
            let (k, r) = (k as f64, r as f64);
            let se_within = w * (2.0 / (k * (r - 1.0))).sqrt();
            let se_between = (w + r * b) / r * (2.0 / (k - 1.0)).sqrt();
            assert!(4.0 * se_between < 0.3 * b && 4.0 * se_within < 0.3 * w);
            assert!((c.between - b).abs() < 4.0 * se_between, "between {} for {b}", c.between);
            assert!((c.within - w).abs() < 4.0 * se_within, "within {} for {w}", c.within);
        }
    }

    #[test]
    fn unequal_trial_counts_are_weighed_and_the_balanced_form_agrees() {
        // Balanced by hand: means 2 and 6, S1² = 1, S2² = 8, T2² = 8 − 1/3.
        let c = variance_components(&[vec![1.0, 2.0, 3.0], vec![5.0, 6.0, 7.0]]).expect("enough data");
        assert!((c.within - 1.0).abs() < 1e-12 && (c.between - (8.0 - 1.0 / 3.0)).abs() < 1e-12, "{c:?}");
        // Unbalanced: still unbiased, checked on many simulated processes
        // of 2 to 5 trials.
        let mut cells = simulate(3_000, 5, 2.0, 3.0, 11);
        for (i, p) in cells.iter_mut().enumerate() {
            p.truncate(2 + i % 4);
        }
        let c = variance_components(&cells).expect("enough data");
        assert!((c.between - 4.0).abs() < 0.4 && (c.within - 9.0).abs() < 0.9, "{c:?}");
    }

    #[test]
    fn processes_that_agree_more_than_their_trials_have_no_variance_between() {
        let c = variance_components(&[vec![1.0, 3.0], vec![3.0, 1.0], vec![2.0, 2.0]]).expect("enough data");
        assert_eq!(c.between, 0.0);
        assert!(c.within > 0.0);
        assert_eq!(optimal_trials(c, 4.0, 6), Some(6), "only trials can help");
    }

    #[test]
    fn too_little_data_gives_no_components() {
        assert!(variance_components(&[vec![1.0, 2.0, 3.0]]).is_none(), "one process");
        assert!(variance_components(&[vec![1.0], vec![2.0], vec![3.0]]).is_none(), "one trial each");
        assert!(variance_components(&[vec![1.0, f64::NAN], vec![2.0, 3.0]]).is_none());
        assert!(variance_components::<Vec<f64>>(&[]).is_none());
        assert!(variance_components(&[vec![1.0, 2.0], vec![]]).is_none(), "empty processes are left out");
    }

    #[test]
    fn the_choice_follows_the_formula_and_its_clamp() {
        let c = |within, between| VarianceComponents { within, between };
        // √(4 · 9 / 1) = 6; √(2 · 1 / 8) = 0.5 → 1; √(10 · 2.5 / 1) = 5.
        assert_eq!(optimal_trials(c(9.0, 1.0), 4.0, 10), Some(6));
        assert_eq!(optimal_trials(c(1.0, 8.0), 2.0, 10), Some(1));
        assert_eq!(optimal_trials(c(2.5, 1.0), 10.0, 10), Some(5));
        assert_eq!(optimal_trials(c(9.0, 1.0), 4.0, 3), Some(3), "clamped to max");
        assert_eq!(optimal_trials(c(0.0, 1.0), 100.0, 5), Some(1), "no noise within: one trial");
        assert_eq!(optimal_trials(c(9.0, 1.0), 4.0, 0), Some(1), "max is at least 1");
        assert_eq!(optimal_trials(c(f64::NAN, 1.0), 4.0, 5), None);
        assert_eq!(optimal_trials(c(1.0, 1.0), -1.0, 5), None);
    }

    /// The choice moves the right way on simulated cells: more trials when
    /// the noise is within processes or a process is dear, fewer when it
    /// is between processes or a trial is dear.
    #[test]
    fn the_choice_moves_with_the_variance_and_the_costs() {
        let choose = |between: f64, within: f64, cost_ratio: f64| {
            let c = variance_components(&simulate(400, 3, between, within, 3)).expect("enough data");
            optimal_trials(c, cost_ratio, 100).expect("finite")
        };
        let noisy_trials = choose(1.0, 4.0, 2.0);
        let noisy_processes = choose(4.0, 1.0, 2.0);
        assert!(noisy_trials > noisy_processes, "{noisy_trials} vs {noisy_processes}");
        // √(2 · 16) ≈ 5.7 → 6 and √(2 / 16) ≈ 0.35 → 1, give or take the
        // estimates' error.
        assert!((5..=7).contains(&noisy_trials), "{noisy_trials}");
        assert_eq!(noisy_processes, 1);
        assert!(choose(1.0, 1.0, 50.0) > choose(1.0, 1.0, 2.0), "dear processes buy more trials");
    }
}
