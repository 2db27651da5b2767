//! The protocol's shared-memory primitives: `std`'s, or `loom`'s under
//! `--cfg buslab_loom` so that the model in `tests/loom_ring.rs` checks the real
//! code.

#[cfg(buslab_loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(buslab_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize};
#[cfg(not(buslab_loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(buslab_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};

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
