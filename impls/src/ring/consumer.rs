//! The consumer groups: each consumer thread serves a group of subscribers
//! with one gating sequence, delivering each available range (at most a
//! quarter of the ring) to every subscriber of the group in turn, then
//! releasing it at once.

use super::sequencer::Core;
use super::{Shared, lock};
use crate::util::{call_isolated, deliver_isolated};
use crate::wait::Notifier;
use crate::{Event, Filter, Listener};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

/// One subscriber.
pub(super) struct Sub<L> {
    pub(super) filter: Filter,
    pub(super) listener: L,
}

/// What one consumer thread serves, as the control side sees it.
pub(super) struct GroupSlot<L> {
    /// Bumped (under `subs`' lock) on every change of `subs`.
    pub(super) generation: CachePadded<AtomicU64>,
    pub(super) subs: Mutex<Vec<(u64, Arc<Sub<L>>)>>,
}

/// The per-thread copy of a group's subscribers.
struct Group<L> {
    generation: u64,
    all: Vec<Arc<Sub<L>>>,
    topical: Vec<Arc<Sub<L>>>,
}

impl<L> Group<L> {
    /// Re-reads the group's subscribers. The old copies are dropped after
    /// the lock is released (a listener's `Drop` may use the bus), and a
    /// panic in a listener's `Drop` is caught; returns the panics caught.
    fn resync(&mut self, slot: &GroupSlot<L>) -> u64 {
        let (mut all, mut topical) = (Vec::new(), Vec::new());
        {
            let subs = lock(&slot.subs);
            self.generation = slot.generation.load(Ordering::Acquire);
            for (_, sub) in subs.iter() {
                match sub.filter {
                    Filter::All => all.push(sub.clone()),
                    Filter::Topic(_) => topical.push(sub.clone()),
                }
            }
        }
        let old = (std::mem::replace(&mut self.all, all), std::mem::replace(&mut self.topical, topical));
        u64::from(call_isolated(|| drop(old)))
    }

    /// Delivers `start..end` to every subscriber, one subscriber at a time;
    /// returns the panics caught.
    #[inline(always)]
    fn deliver<E: Event, const MULTI: bool>(&self, core: &Core<E>, start: u64, end: u64) -> u64
    where
        L: Listener<E>,
    {
        let n = (end - start) as usize;
        let mut panics = 0;
        for sub in &self.all {
            let listener = &sub.listener;
            panics += deliver_isolated(n, |k| {
                // SAFETY: `start..end` is published and not yet released by
                // this consumer.
                unsafe { core.read_in::<MULTI>(start + k as u64, |event| listener.on_event(event)) }
            });
        }
        for sub in &self.topical {
            let Filter::Topic(topic) = sub.filter else {
                continue;
            };
            let listener = &sub.listener;
            panics += deliver_isolated(n, |k| {
                // SAFETY: as above.
                unsafe {
                    core.read_in::<MULTI>(start + k as u64, |event| {
                        if event.topic() == topic {
                            listener.on_event(event);
                        }
                    })
                }
            });
        }
        panics
    }
}

/// A consumer thread: serves group `index` from the sequence it is sent.
pub(super) fn consume<E: Event, L: Listener<E>>(shared: &Shared<E, L>, index: usize, start: mpsc::Receiver<u64>) {
    let Ok(next) = start.recv() else {
        return;
    };
    if shared.core.is_multi() {
        consume_in::<E, L, true>(shared, index, next);
    } else {
        consume_in::<E, L, false>(shared, index, next);
    }
}

fn consume_in<E: Event, L: Listener<E>, const MULTI: bool>(shared: &Shared<E, L>, index: usize, mut next: u64) {
    let core = &shared.core;
    let slot = &shared.groups[index];
    let mut group = Group { generation: 0, all: Vec::new(), topical: Vec::new() };
    let mut panics = group.resync(slot);
    loop {
        let mut end = next;
        let known = group.generation;
        shared.events.wait_polling(shared.wait, shared.idle_poll, Some(Notifier::CHEAP_TIMEOUT), || {
            end = core.available_in::<MULTI>(next, shared.batch);
            end > next || slot.generation.load(Ordering::Relaxed) != known || shared.stop.load(Ordering::Acquire)
        });
        // After reading the range: a subscription change that happened before
        // any event of the range was published is seen here.
        if slot.generation.load(Ordering::Acquire) != group.generation {
            panics += group.resync(slot);
        }
        if end > next {
            panics += group.deliver::<E, MULTI>(core, next, end);
            if panics > 0 {
                // Before the release below, so that `flush` sees the count.
                shared.panics.fetch_add(panics, Ordering::Relaxed);
                panics = 0;
            }
            core.release(index, end);
            shared.room.notify_all_cheap();
            let short = end - next < shared.batch;
            next = end;
            if short {
                for _ in 0..shared.coalesce {
                    std::hint::spin_loop();
                }
            }
        } else if shared.stop.load(Ordering::Acquire) && next >= shared.stop_at.load(Ordering::Relaxed) {
            // The listeners this thread holds are dropped here (a panicking
            // `Drop` caught and counted).
            panics += u64::from(call_isolated(|| drop(group)));
            shared.panics.fetch_add(panics, Ordering::Relaxed);
            return;
        }
    }
}
