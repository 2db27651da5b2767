//! The CPU time a probe spends: user + system time of every thread of the
//! process, read from the OS's process CPU clock. Divided by the events of
//! the timed trials it gives *CPU time per event*, shown beside throughput:
//! a bus whose consumers spin looks free on throughput alone, not here.

/// CPU time consumed so far by every thread of this process, ns; `None`
/// where the OS has no process CPU clock.
pub fn process_ns() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; the call writes only
        // into it and reports failure through its return value.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// CPU time per event over a pass's timed trials: [`PerEvent::start`]
/// before a trial, [`PerEvent::stop`] after it, one sample per trial.
#[derive(Debug)]
pub struct PerEvent {
    /// Samples, ns per event; `None` once the clock failed.
    samples: Option<Vec<f64>>,
}

impl Default for PerEvent {
    fn default() -> Self {
        PerEvent { samples: Some(Vec::new()) }
    }
}

impl PerEvent {
    /// The clock at the start of a trial.
    pub fn start(&self) -> Option<u64> {
        process_ns()
    }

    /// Ends the trial started at `start`, which published `events`.
    pub fn stop(&mut self, start: Option<u64>, events: u64) {
        let spent = start.zip(process_ns()).map(|(b, a)| a.saturating_sub(b) as f64 / events.max(1) as f64);
        match (&mut self.samples, spent) {
            (Some(samples), Some(ns)) => samples.push(ns),
            _ => self.samples = None,
        }
    }

    /// The median and interval over the trials; `None` when the clock
    /// failed or nothing was measured.
    pub fn estimate(self) -> Option<buslab_scenarios::results::Estimate> {
        self.samples.filter(|s| !s.is_empty()).map(|s| crate::stats::estimate(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's own CPU time, ns.
    fn thread_ns() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: as in `process_ns`.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "the thread CPU clock");
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    #[test]
    fn the_clock_counts_the_work_of_every_thread() {
        let Some(before) = process_ns() else { return };
        // 30 ms of CPU on another thread, by that thread's own clock (not
        // by wall time, which a loaded machine stretches).
        let worked = std::thread::spawn(|| {
            let start = thread_ns();
            let mut x = 0_u64;
            while thread_ns() - start < 30_000_000 {
                for _ in 0..1000 {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            thread_ns() - start
        })
        .join()
        .expect("the worker ends");
        let after = process_ns().expect("the clock worked before");
        assert!(after - before >= worked, "the worker's {worked} ns of CPU counted as {} ns", after - before);
    }
}
