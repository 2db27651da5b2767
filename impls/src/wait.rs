//! How threads wait: for room in a full bus, or for events to arrive.
//!
//! Every waiting loop in this crate goes through [`Notifier::wait_until`]
//! (or [`Notifier::wait_polling`]), so a [`WaitStrategy`] means the same
//! thing on every bus. On a 2-core machine a
//! busy-spinning consumer can be 10–100× slower than a blocking one (it steals
//! the core the producer needs), so the default parks.

use crossbeam_utils::Backoff;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How a thread waits for a condition another thread will make true.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitStrategy {
    /// Spin briefly, then yield a few times, then sleep on a condition
    /// variable until notified. Costs the notifier a fence and a load when
    /// nobody sleeps. The default: safe with more threads than cores.
    #[default]
    Park,
    /// Spin briefly, then `yield_now` in a loop. Lower wake-up latency than
    /// `Park`, but burns a core while waiting.
    Yield,
    /// Spin only. Lowest latency; only sensible when every spinning thread has
    /// a core of its own (threads ≤ cores).
    BusySpin,
}

impl WaitStrategy {
    /// All strategies, for CLIs and sweeps.
    pub const ALL: [WaitStrategy; 3] = [WaitStrategy::Park, WaitStrategy::Yield, WaitStrategy::BusySpin];

    /// The strategy's stable name.
    pub fn name(self) -> &'static str {
        match self {
            WaitStrategy::Park => "park",
            WaitStrategy::Yield => "yield",
            WaitStrategy::BusySpin => "busy_spin",
        }
    }

    /// Parses [`WaitStrategy::name`].
    pub fn from_name(name: &str) -> Option<WaitStrategy> {
        WaitStrategy::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// How long a consumer thread pauses after delivering a batch shorter than
/// its maximum, before it looks for events again. Without it, a consumer
/// that keeps up re-reads the producer's index after every event or two,
/// and that index's cache line (and the slots' lines) move between the
/// cores on nearly every publish; pausing lets a run of events build up
/// (and costs an event at most this much latency). The `ring` bus and the
/// `rtrb` peer's consumer both pause so. Not used with
/// `WaitStrategy::BusySpin` (lowest latency).
const COALESCE: Duration = Duration::from_nanos(250);

/// `spin_loop` rounds that take about [`COALESCE`] on this machine (a
/// `pause` takes from a few to ~140 cycles depending on the CPU), measured
/// once per process; 0 with `WaitStrategy::BusySpin`.
pub(crate) fn coalescing_spins(strategy: WaitStrategy) -> u32 {
    static SPINS: OnceLock<u32> = OnceLock::new();
    if strategy == WaitStrategy::BusySpin {
        return 0;
    }
    *SPINS.get_or_init(|| {
        const ROUNDS: u32 = 1_000;
        let start = Instant::now();
        for _ in 0..ROUNDS {
            std::hint::spin_loop();
        }
        let per_round = start.elapsed().as_nanos().max(1) as f64 / f64::from(ROUNDS);
        (COALESCE.as_nanos() as f64 / per_round).clamp(1.0, 4_096.0) as u32
    })
}

/// How long an idle consumer thread keeps polling (spinning, then yielding
/// its core to any other runnable thread) before it sleeps under
/// `WaitStrategy::Park`, while producers and consumer threads fit the cores
/// (the `ring` bus's `Shared::idle_poll`, the `rtrb` peer's consumer). A
/// sleeping consumer is woken by the producer's
/// cheap notification (or, if that was missed, by its 200 µs re-check):
/// a futex wake-up and a reschedule per event at low rates, which put the
/// ring's open-loop latency p50 at up to ~1 ms where the `disruptor` peer
/// (whose handlers yield for 1 ms) read 1–3 µs. The price: up to this much
/// of an otherwise idle core after each burst; slower loads still sleep
/// between events.
pub(crate) const IDLE_POLL: Duration = Duration::from_millis(1);

/// How long an idle consumer polls before it sleeps when `threads`
/// (producers and consumer threads) run on the bus: [`IDLE_POLL`] while
/// they fit the cores, else zero (a polling consumer would take turns from
/// producers that need the core).
pub(crate) fn idle_poll(threads: usize) -> Duration {
    if threads <= crate::cores() { IDLE_POLL } else { Duration::ZERO }
}

/// How many `yield_now` rounds `Park` tries before it sleeps.
const YIELDS_BEFORE_PARK: u32 = 16;

/// Wakes threads sleeping in [`Notifier::wait_until`].
///
/// The protocol: a waiter registers as a sleeper, re-checks its condition
/// under the lock and only then sleeps; a notifier first makes the condition
/// true, then (after a `SeqCst` fence) wakes sleepers if there are any. So a
/// wake-up is never lost, and notifying costs one fence and one load when
/// nobody sleeps.
#[derive(Debug, Default)]
pub struct Notifier {
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    condvar: Condvar,
}

impl Notifier {
    /// A notifier with no sleepers.
    pub fn new() -> Self {
        Notifier::default()
    }

    /// Wakes every sleeping waiter. Call after making the condition true.
    #[inline]
    pub fn notify_all(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake();
        }
    }

    /// Like [`Notifier::notify_all`] without the fence: for hot paths (a ring
    /// publishing tens of millions of events per second) that cannot afford
    /// one per event. A wake-up may then be missed in a window of a few
    /// nanoseconds; sleepers bound that by waking every
    /// [`Notifier::CHEAP_TIMEOUT`] to re-check.
    #[inline]
    pub fn notify_all_cheap(&self) {
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake();
        }
    }

    /// The longest a waiter sleeps before re-checking its condition when the
    /// other side may notify with [`Notifier::notify_all_cheap`].
    pub const CHEAP_TIMEOUT: Duration = Duration::from_micros(200);

    #[cold]
    fn wake(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.condvar.notify_all();
    }

    /// Returns once `ready()` is true, waiting as `strategy` says. `ready` is
    /// called repeatedly and must be cheap. `timeout` bounds each sleep (pass
    /// `None` when the other side always uses [`Notifier::notify_all`]).
    pub fn wait_until(&self, strategy: WaitStrategy, timeout: Option<Duration>, ready: impl FnMut() -> bool) {
        self.wait(strategy, None, timeout, ready);
    }

    /// [`Notifier::wait_until`], except that under `Park` the waiter keeps
    /// yielding for up to `poll` from its first yield before it sleeps
    /// (instead of a fixed few rounds): for a thread whose wake-up from a
    /// sleep would cost more latency than the core time spent polling is
    /// worth.
    pub fn wait_polling(
        &self,
        strategy: WaitStrategy,
        poll: Duration,
        timeout: Option<Duration>,
        ready: impl FnMut() -> bool,
    ) {
        self.wait(strategy, Some(poll), timeout, ready);
    }

    fn wait(
        &self,
        strategy: WaitStrategy,
        poll: Option<Duration>,
        timeout: Option<Duration>,
        mut ready: impl FnMut() -> bool,
    ) {
        let backoff = Backoff::new();
        let mut yields = 0;
        let mut since: Option<Instant> = None;
        loop {
            if ready() {
                return;
            }
            match strategy {
                WaitStrategy::BusySpin => std::hint::spin_loop(),
                WaitStrategy::Yield => backoff.snooze(),
                WaitStrategy::Park => {
                    let polling = yields < YIELDS_BEFORE_PARK
                        || poll.is_some_and(|poll| since.get_or_insert_with(Instant::now).elapsed() < poll);
                    if !backoff.is_completed() {
                        backoff.snooze();
                    } else if polling {
                        yields += 1;
                        std::thread::yield_now();
                    } else if self.sleep(timeout, &mut ready) {
                        return;
                    }
                }
            }
        }
    }

    /// Registers as a sleeper, re-checks and sleeps; true if `ready()` held.
    #[cold]
    fn sleep(&self, timeout: Option<Duration>, ready: &mut impl FnMut() -> bool) -> bool {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let done = ready();
        if !done {
            let _guard = match timeout {
                Some(t) => self.condvar.wait_timeout(guard, t).unwrap_or_else(|e| e.into_inner()).0,
                None => self.condvar.wait(guard).unwrap_or_else(|e| e.into_inner()),
            };
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn names_round_trip() {
        for w in WaitStrategy::ALL {
            assert_eq!(WaitStrategy::from_name(w.name()), Some(w));
        }
        assert_eq!(WaitStrategy::from_name("sleepy"), None);
    }

    #[test]
    fn a_parked_waiter_is_woken_for_every_strategy() {
        for strategy in WaitStrategy::ALL {
            let n = Arc::new(Notifier::new());
            let flag = Arc::new(AtomicBool::new(false));
            let waiter = {
                let (n, flag) = (n.clone(), flag.clone());
                std::thread::spawn(move || {
                    n.wait_until(strategy, None, || flag.load(Ordering::Acquire));
                })
            };
            std::thread::sleep(Duration::from_millis(20));
            flag.store(true, Ordering::Release);
            n.notify_all();
            waiter.join().expect("waiter must not panic");
        }
    }

    #[test]
    fn a_polling_waiter_sees_its_condition_while_polling_and_after_sleeping() {
        // 0 ms: it sleeps after the usual yields; 1 s: it is still polling
        // when the flag is set.
        for poll in [Duration::ZERO, Duration::from_secs(1)] {
            let n = Arc::new(Notifier::new());
            let flag = Arc::new(AtomicBool::new(false));
            let waiter = {
                let (n, flag) = (n.clone(), flag.clone());
                std::thread::spawn(move || {
                    n.wait_polling(WaitStrategy::Park, poll, None, || flag.load(Ordering::Acquire));
                })
            };
            std::thread::sleep(Duration::from_millis(20));
            flag.store(true, Ordering::Release);
            n.notify_all();
            waiter.join().expect("waiter must not panic");
        }
    }
}
