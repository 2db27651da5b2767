//! Simulated listener work: a fixed loop run a fixed number of times, the
//! same instructions on every machine.
//!
//! A scenario asks for work in *nominal* nanoseconds (`listener_work_ns`,
//! `[slow] work_ns`). Each nominal nanosecond is [`ITERATIONS_PER_NS`]
//! iteration(s) of [`run`]'s loop, whatever the host, so that an in-line
//! cell with work executes the same instruction count everywhere (and the
//! deterministic gate can hold it). The time an iteration takes on this
//! machine is measured once per run ([`ns_per_iteration`]) and shown with
//! the run, so "10 µs of work" can be read as what it cost here.
//!
//! The loop is a dependent chain (xor, then a 64-bit multiply) that the
//! compiler can neither vectorise nor fold: each iteration needs the
//! previous one's result, and the result is kept by the listener. On a
//! current x86 core an iteration is about 4 cycles (1.3–1.6 ns at
//! 2.5–3 GHz). A descheduled listener does not "work": unlike a busy wait
//! on the clock, the loop only advances while it runs.

use std::time::Instant;

/// Iterations of [`run`]'s loop per nominal nanosecond of work.
pub const ITERATIONS_PER_NS: u64 = 1;

/// The iterations `nominal_ns` of work asks for.
pub fn iterations(nominal_ns: u64) -> u64 {
    nominal_ns.saturating_mul(ITERATIONS_PER_NS)
}

/// Runs the work loop `iterations` times from `seed`; the result depends on
/// every iteration (keep it, or the work may be optimised away).
#[inline(never)]
pub fn run(iterations: u64, seed: u64) -> u64 {
    let mut x = seed | 1;
    for i in 0..iterations {
        x = (x ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    x
}

/// Nanoseconds one iteration of [`run`] takes on this machine: the median
/// of several timed runs of a million iterations (about 10 ms in all).
pub fn ns_per_iteration() -> f64 {
    const ITERATIONS: u64 = 1 << 20;
    let mut per_iteration: Vec<f64> = (0..7u64)
        .map(|seed| {
            let start = Instant::now();
            std::hint::black_box(run(ITERATIONS, std::hint::black_box(seed)));
            start.elapsed().as_nanos() as f64 / ITERATIONS as f64
        })
        .collect();
    per_iteration.sort_by(f64::total_cmp);
    per_iteration[per_iteration.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_depends_on_every_iteration() {
        assert_ne!(run(1000, 7), run(999, 7));
        assert_ne!(run(1000, 7), run(1000, 8));
        assert_eq!(run(0, 6), 7);
    }

    #[test]
    fn an_iteration_takes_measurable_time() {
        let ns = ns_per_iteration();
        assert!(ns > 0.0 && ns.is_finite(), "{ns}");
    }
}
