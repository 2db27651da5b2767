//! Small pieces the buses share.

use crate::{BusError, Filter};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The `EventBus` methods every in-line bus shares: publishing calls the
/// bus's `deliver(&self, &E)` on the publisher's thread, so nothing is ever
/// full, `flush` has nothing to wait for, and the only counter is the
/// `panics` field. Expand inside the `impl EventBus` block.
macro_rules! inline_dispatch {
    () => {
        #[inline]
        fn publish(&self, event: Self::Event) {
            self.deliver(&event);
        }

        #[inline]
        fn try_publish(&self, event: Self::Event) -> Result<(), crate::Full<Self::Event>> {
            self.deliver(&event);
            Ok(())
        }

        #[inline]
        fn publish_clone(&self, event: &Self::Event) {
            self.deliver(event);
        }

        fn flush(&self) {}

        fn stats(&self) -> crate::BusStats {
            crate::BusStats { dropped: 0, listener_panics: self.panics.load(std::sync::atomic::Ordering::Relaxed) }
        }

        fn shutdown(self) -> crate::BusStats {
            let stats = self.stats();
            drop(self);
            stats
        }
    };
}
pub(crate) use inline_dispatch;

/// Refuses a filter naming a topic outside `0..topics`.
pub(crate) fn check_filter(bus: &'static str, filter: Filter, topics: usize) -> Result<(), BusError> {
    match filter {
        Filter::Topic(topic) if usize::from(topic) >= topics => Err(BusError::UnknownTopic { bus, topic, topics }),
        _ => Ok(()),
    }
}

/// Calls `deliver(i)` for every `i` in `0..len`, in order. A panic in one call
/// is caught, counted and skipped; the remaining indices are still visited.
/// Returns the number of panics.
///
/// One `catch_unwind` covers the whole loop (it is re-entered only after a
/// panic), so the happy path costs no more than the bare loop.
#[inline]
pub(crate) fn deliver_isolated(len: usize, mut deliver: impl FnMut(usize)) -> u64 {
    let mut i = 0;
    let mut panics = 0;
    while i < len {
        let finished = catch_unwind(AssertUnwindSafe(|| {
            while i < len {
                deliver(i);
                i += 1;
            }
        }));
        match finished {
            Ok(()) => break,
            Err(_) => {
                panics += 1;
                i += 1;
            }
        }
    }
    panics
}

/// Joins a thread the bus spawned, re-raising its panic unless this thread
/// is already unwinding. The current thread itself is not joined: a bus
/// dropped from one of its own listeners (its last owner was one) lets that
/// thread finish after the listener returns, unjoined.
pub(crate) fn join_spawned(thread: std::thread::JoinHandle<()>) {
    if thread.thread().id() == std::thread::current().id() {
        return;
    }
    if let Err(panic) = thread.join()
        && !std::thread::panicking()
    {
        std::panic::resume_unwind(panic);
    }
}

/// Calls `f` once; true if it panicked (the panic is caught).
#[inline]
pub(crate) fn call_isolated(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_skips_only_its_own_call() {
        let mut seen = Vec::new();
        let panics = deliver_isolated(5, |i| {
            if i == 1 || i == 3 {
                panic!("listener {i} fails (expected in this test)");
            }
            seen.push(i);
        });
        assert_eq!(panics, 2);
        assert_eq!(seen, [0, 2, 4]);
    }

    #[test]
    fn call_isolated_reports_panics() {
        assert!(call_isolated(|| panic!("expected in this test")));
        assert!(!call_isolated(|| ()));
    }
}
