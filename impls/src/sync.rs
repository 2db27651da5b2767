//! The shared-memory primitives of the lock-free protocols (the ring's
//! sequencer, the pooled bus's envelopes): `std`'s and crossbeam-queue's,
//! or `loom`'s under `--cfg buslab_loom` so that the models in
//! `tests/loom_*.rs` check the real code.

#[cfg(buslab_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize};
#[cfg(buslab_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(buslab_loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(buslab_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};

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
