//! The shared-memory primitives of the lock-free protocols (the ring's
//! sequencer, the fixed array's slots, the pooled bus's envelopes): `std`'s,
//! crossbeam-epoch's and crossbeam-queue's, or `loom`'s under
//! `--cfg buslab_loom` so that the models in `tests/loom_*.rs` check the
//! real code.
//!
//! Under loom, [`epoch`] is a small stand-in for crossbeam-epoch (which
//! keeps its state in OS-thread locals that loom's threads share): a
//! function deferred under a guard runs once every guard alive at the time
//! of the deferral has been dropped, which is the guarantee the buses rely
//! on, with loom seeing every edge.

#[cfg(buslab_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(buslab_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(buslab_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(buslab_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// A bounded MPMC queue: crossbeam's, or under loom a mutex around a
/// `VecDeque` (the same hand-off: a push happens before the pop that takes
/// its item).
#[cfg(not(buslab_loom))]
pub(crate) use crossbeam_queue::ArrayQueue;

/// A bounded MPMC queue under loom (see the non-loom re-export).
#[cfg(buslab_loom)]
pub(crate) struct ArrayQueue<T> {
    capacity: usize,
    items: Mutex<std::collections::VecDeque<T>>,
}

#[cfg(buslab_loom)]
impl<T> ArrayQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        ArrayQueue { capacity, items: Mutex::new(std::collections::VecDeque::with_capacity(capacity)) }
    }

    fn items(&self) -> MutexGuard<'_, std::collections::VecDeque<T>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        let mut items = self.items();
        if items.len() == self.capacity {
            return Err(value);
        }
        items.push_back(value);
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.items().pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items().is_empty()
    }
}

/// Lets other threads run (loom's scheduler under loom).
#[cfg(buslab_loom)]
pub(crate) use loom::thread::yield_now;
#[cfg(not(buslab_loom))]
pub(crate) use std::thread::yield_now;

/// An `UnsafeCell` whose accesses loom checks for data races.
pub(crate) struct Cell<T> {
    #[cfg(buslab_loom)]
    inner: loom::cell::UnsafeCell<T>,
    #[cfg(not(buslab_loom))]
    inner: std::cell::UnsafeCell<T>,
}

impl<T> Cell<T> {
    pub(crate) fn new(value: T) -> Self {
        Cell {
            #[cfg(buslab_loom)]
            inner: loom::cell::UnsafeCell::new(value),
            #[cfg(not(buslab_loom))]
            inner: std::cell::UnsafeCell::new(value),
        }
    }

    /// Reads the value.
    ///
    /// # Safety
    /// No other thread may write the value during the call.
    #[inline(always)]
    pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        #[cfg(buslab_loom)]
        {
            // SAFETY: the caller excludes concurrent writers.
            self.inner.with(|p| f(unsafe { &*p }))
        }
        #[cfg(not(buslab_loom))]
        {
            // SAFETY: the caller excludes concurrent writers.
            f(unsafe { &*self.inner.get() })
        }
    }

    /// Writes the value.
    ///
    /// # Safety
    /// No other thread may access the value during the call.
    #[inline(always)]
    pub(crate) unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        #[cfg(buslab_loom)]
        {
            // SAFETY: the caller excludes every other access.
            self.inner.with_mut(|p| f(unsafe { &mut *p }))
        }
        #[cfg(not(buslab_loom))]
        {
            // SAFETY: the caller excludes every other access.
            f(unsafe { &mut *self.inner.get() })
        }
    }
}

/// Epoch-based reclamation: crossbeam-epoch, or its loom stand-in.
#[cfg(not(buslab_loom))]
pub(crate) mod epoch {
    pub(crate) use crossbeam_epoch::{is_pinned, pin};
}

/// Epoch-based reclamation under loom: every guard is registered under one
/// mutex, and a deferred function waits for the guards alive when it was
/// deferred (the guard that defers it included) to be dropped; the last of
/// them runs it. Stronger than crossbeam-epoch (pinning is a lock), as
/// crossbeam's pin is a `SeqCst` fence.
#[cfg(buslab_loom)]
pub(crate) mod epoch {
    use loom::sync::Mutex;
    use std::cell::Cell;

    type Deferred = Box<dyn FnOnce() + Send>;

    #[derive(Default)]
    struct Registry {
        next: u64,
        /// The guards alive.
        alive: Vec<u64>,
        /// Deferred functions and the guards each still waits for.
        deferred: Vec<(Vec<u64>, Deferred)>,
    }

    loom::lazy_static! {
        static ref REGISTRY: Mutex<Registry> = Mutex::new(Registry::default());
    }

    loom::thread_local! {
        static DEPTH: Cell<usize> = Cell::new(0);
    }

    fn registry() -> loom::sync::MutexGuard<'static, Registry> {
        REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pinned participant.
    pub(crate) struct Guard {
        id: u64,
    }

    /// Pins the current thread.
    pub(crate) fn pin() -> Guard {
        DEPTH.with(|d| d.set(d.get() + 1));
        let mut reg = registry();
        let id = reg.next;
        reg.next += 1;
        reg.alive.push(id);
        Guard { id }
    }

    /// Whether the current thread holds a guard.
    pub(crate) fn is_pinned() -> bool {
        DEPTH.with(|d| d.get() > 0)
    }

    impl Guard {
        /// Runs `f` once every guard alive now has been dropped.
        ///
        /// # Safety
        /// As crossbeam-epoch's: `f` may run on another thread.
        pub(crate) unsafe fn defer_unchecked<F: FnOnce() + Send + 'static>(&self, f: F) {
            let mut reg = registry();
            let waits = reg.alive.clone();
            reg.deferred.push((waits, Box::new(f)));
        }

        /// Nothing to flush: deferred functions run as guards drop.
        pub(crate) fn flush(&self) {}
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let ready: Vec<Deferred> = {
                let mut reg = registry();
                reg.alive.retain(|&g| g != self.id);
                let mut ready = Vec::new();
                let mut at = 0;
                while at < reg.deferred.len() {
                    reg.deferred[at].0.retain(|&g| g != self.id);
                    if reg.deferred[at].0.is_empty() {
                        ready.push(reg.deferred.swap_remove(at).1);
                    } else {
                        at += 1;
                    }
                }
                ready
            };
            DEPTH.with(|d| d.set(d.get() - 1));
            for f in ready {
                f();
            }
        }
    }
}
