//! The estimated time left while a run goes (where its time went, once
//! it ended, is `buslab_reports::render::summary::Breakdown`).

use std::time::Duration;

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

    #[test]
    fn the_eta_scales_elapsed_time_by_the_cost_left() {
        assert_eq!(eta(Duration::from_secs(10), 0, 100), None);
        assert_eq!(eta(Duration::from_secs(10), 25, 100), Some(Duration::from_secs(30)));
        assert_eq!(eta(Duration::from_secs(10), 100, 100), Some(Duration::ZERO));
    }
}
