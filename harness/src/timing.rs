//! Where a run's time went: the wall-clock seconds of each pass and each
//! scenario, from the cells' [`CellResult::pass_seconds`], and the
//! estimated time left while a run goes.

use buslab_reports::render::format::clock;
use buslab_scenarios::results::CellResult;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

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
                .map(|(name, s)| format!("{name} {} ({:.0}%)", clock(**s), 100.0 * **s / total))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(out, "time per pass: {}", line(&self.passes))?;
        writeln!(out, "time per scenario: {}", line(&self.scenarios))
    }
}

/// The time left when `done` of `total` units of expected cost took
/// `elapsed` (the shard model's [`expected_cost`](crate::shard::expected_cost)
/// weighs the cells, so a cheap cell does not promise a quick end); `None`
/// before anything is done.
pub fn eta(elapsed: Duration, done: u64, total: u64) -> Option<Duration> {
    if done == 0 {
        return None;
    }
    let left = total.saturating_sub(done) as f64 / done as f64;
    Some(elapsed.mul_f64(left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::CellKey;

    fn cell(scenario: &str, passes: &[(&str, f64)]) -> CellResult {
        let key = CellKey { scenario: scenario.into(), bus: "b".into(), params: Default::default() };
        let mut cell = CellResult::new(key, 1, 1);
        cell.pass_seconds = passes.iter().map(|(p, s)| (p.to_string(), *s)).collect();
        cell
    }

    #[test]
    fn time_is_summed_per_pass_and_per_scenario_largest_first() {
        let cells = [
            cell("spsc", &[("throughput", 3.0), ("latency", 5.0)]),
            cell("fanout", &[("throughput", 2.0), ("instructions", 10.0)]),
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
    fn the_eta_scales_elapsed_time_by_the_cost_left() {
        assert_eq!(eta(Duration::from_secs(10), 0, 100), None);
        assert_eq!(eta(Duration::from_secs(10), 25, 100), Some(Duration::from_secs(30)));
        assert_eq!(eta(Duration::from_secs(10), 100, 100), Some(Duration::ZERO));
    }
}
