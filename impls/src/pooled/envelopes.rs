//! The pool of envelopes and the hand-offs that move one between a
//! producer and the workers, free of threads, subscribers and waiting so
//! that loom can model it (`tests/loom_pooled.rs`). Its items are `pub` only
//! so that `model` can re-export them under `--cfg buslab_loom`; the module
//! itself is private.
//!
//! Ownership protocol: while an envelope's index is in the free list, or
//! owned by a producer between [`Envelopes::take`] and its first push into a
//! worker queue, exactly one thread may write its slot. From
//! [`Envelopes::hand_out`] until the last of its holders has called
//! [`Envelopes::read_and_finish`] (which pushes the index back into the
//! free list), the slot is only read, by its holders.

use crate::sync::{ArrayQueue, AtomicU64, AtomicUsize, Cell};
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering;

/// What an envelope carries.
pub struct Slot<E> {
    /// The generation the publisher saw (subscribers added later skip it).
    pub generation: u64,
    /// The event; kept after delivery so that `clone_from` can reuse it.
    pub event: Option<E>,
}

/// One pooled envelope.
struct Envelope<E> {
    /// Holders (workers) that have yet to finish it.
    refs: AtomicUsize,
    /// How many times it was handed out (written by its owner; `flush`
    /// reads it to tell a finished delivery from a reuse).
    dispatches: AtomicU64,
    slot: Cell<Slot<E>>,
}

/// The pool: `capacity` envelopes and the free list of their indices.
pub struct Envelopes<E> {
    envelopes: Box<[CachePadded<Envelope<E>>]>,
    /// Indices of free envelopes, in the order they were freed (so every
    /// envelope is cycled through and warm after `capacity` publishes).
    free: ArrayQueue<u32>,
}

// SAFETY: a slot is written only by the one thread that owns its envelope
// (see the ownership protocol) and read concurrently only by its holders
// while nobody owns it; the hand-offs (free-list pop/push, worker-queue
// push/pop, the `refs` decrement) are release/acquire pairs. `E: Send` lets
// the value be written on one thread and dropped on another, `E: Sync` lets
// several holders read it at once.
unsafe impl<E: Send + Sync> Sync for Envelopes<E> {}
// SAFETY: as above; the pool owns its events.
unsafe impl<E: Send> Send for Envelopes<E> {}

impl<E> Envelopes<E> {
    /// A pool of `capacity` (`1..=u32::MAX`) empty envelopes, all free.
    pub fn new(capacity: usize) -> Self {
        let free = ArrayQueue::new(capacity);
        for index in 0..capacity {
            let index = u32::try_from(index).expect("the bus checked that the capacity fits in u32");
            if free.push(index).is_err() {
                unreachable!("the free list has room for every envelope");
            }
        }
        Envelopes {
            envelopes: (0..capacity)
                .map(|_| {
                    CachePadded::new(Envelope {
                        refs: AtomicUsize::new(0),
                        dispatches: AtomicU64::new(0),
                        slot: Cell::new(Slot { generation: 0, event: None }),
                    })
                })
                .collect(),
            free,
        }
    }

    /// Takes a free envelope, which the caller then owns; `None` when every
    /// envelope is in flight.
    #[inline]
    pub fn take(&self) -> Option<u32> {
        self.free.pop()
    }

    /// Gives an owned envelope back without handing it out.
    pub fn give_back(&self, index: u32) {
        if self.free.push(index).is_err() {
            unreachable!("the free list has room for every envelope");
        }
    }

    /// Writes into the slot of an owned envelope.
    ///
    /// # Safety
    /// The caller owns `index` (took it and has not handed it out).
    #[inline(always)]
    pub unsafe fn fill<R>(&self, index: u32, f: impl FnOnce(&mut Slot<E>) -> R) -> R {
        // SAFETY: the caller owns the envelope, so nobody else touches it.
        unsafe { self.envelopes[index as usize].slot.with_mut(f) }
    }

    /// Marks an owned, filled envelope as held by `holders` (≥ 1) workers;
    /// the caller then pushes its index into each one's queue, and owns it
    /// no longer.
    #[inline(always)]
    pub fn hand_out(&self, index: u32, holders: usize) {
        let envelope = &self.envelopes[index as usize];
        // Only the owner writes these two.
        let dispatches = envelope.dispatches.load(Ordering::Relaxed);
        envelope.dispatches.store(dispatches + 1, Ordering::Release);
        envelope.refs.store(holders, Ordering::Release);
    }

    /// Reads the slot of a handed-out envelope with `f`, then lets go of
    /// it: the last of its holders returns it to the free list, event and
    /// all. Returns what `f` returned and whether this holder was the last.
    ///
    /// Reading 1 holder left means every other holder is done: a plain
    /// store then saves the locked decrement (the common one-worker case).
    ///
    /// # Safety
    /// The caller is one of its holders (the index came through that
    /// holder's queue) and reads it once.
    #[inline(always)]
    pub unsafe fn read_and_finish<R>(&self, index: u32, f: impl FnOnce(&Slot<E>) -> R) -> (R, bool) {
        let envelope = &self.envelopes[index as usize];
        // SAFETY: `refs` counts the caller, so nobody owns the envelope for
        // writing until the caller's decrement below, after the read.
        let read = unsafe { envelope.slot.with(f) };
        let refs = &envelope.refs;
        let last = if refs.load(Ordering::Acquire) == 1 {
            refs.store(0, Ordering::Release);
            true
        } else {
            refs.fetch_sub(1, Ordering::AcqRel) == 1
        };
        if last {
            self.give_back(index);
        }
        (read, last)
    }

    /// Every envelope as it is now, for `flush`: see [`Handout::settled`].
    #[inline]
    pub fn handouts(&self) -> impl Iterator<Item = Handout<'_, E>> {
        self.envelopes
            .iter()
            .map(|envelope| Handout { envelope, dispatches: envelope.dispatches.load(Ordering::Acquire) })
    }
}

/// An envelope and how many times it had been handed out when seen.
pub struct Handout<'a, E> {
    envelope: &'a Envelope<E>,
    dispatches: u64,
}

impl<E> Handout<'_, E> {
    /// Whether every holder of that hand-out has finished it, or the
    /// envelope was handed out again (which needs that): both last, so
    /// `flush` cannot be starved by producers that keep publishing.
    #[inline]
    pub fn settled(&self) -> bool {
        self.envelope.refs.load(Ordering::Acquire) == 0
            || self.envelope.dispatches.load(Ordering::Acquire) != self.dispatches
    }
}
