//! Loom model of the pooled bus's envelopes (`pooled::model::Envelopes`, the
//! very pool the bus runs, with loom's atomics, cells and a mutex queue for
//! the free list swapped in): a producer takes a free envelope, fills it,
//! hands it out to one or two workers and pushes it into their queues; each
//! worker reads it and finishes it, and the last one returns it to the free
//! list. With fewer envelopes than events every envelope is reused while a
//! worker may still be reading it: loom's cells flag any overlap of the
//! producer's refill (or the drop of the event it replaces) with a read as
//! a data race, and the plain-store shortcut of the last holder must leave
//! exactly one last.
//!
//! Waiting threads block on a loom `Notify` (one per thread, notified after
//! every push and every finish) instead of spinning, as in the ring's model;
//! the worker queues are loom mutexes around a `VecDeque`, as the bus's
//! `ArrayQueue` is a hand-off of the same strength.
//!
//! Run with `ci/loom.sh`, or:
//! `RUSTFLAGS="--cfg buslab_loom" cargo test -p buslab-impls --test loom_pooled --release`.
#![cfg(buslab_loom)]

mod loom_common;

use buslab_impls::pooled::model::Envelopes;
use loom::sync::{Arc, Mutex, Notify};
use loom::thread;
use loom_common::{Value, model};
use std::collections::VecDeque;

/// The pool, one queue per worker, and one wake-up per thread (the
/// producer's is `PRODUCER`, worker `k`'s is `k + 1`).
struct Pool {
    envelopes: Envelopes<Value>,
    queues: Vec<Mutex<VecDeque<u32>>>,
    wakers: Vec<Notify>,
}

const PRODUCER: usize = 0;

impl Pool {
    fn new(capacity: usize, workers: usize) -> Arc<Pool> {
        Arc::new(Pool {
            envelopes: Envelopes::new(capacity),
            queues: (0..workers).map(|_| Mutex::new(VecDeque::new())).collect(),
            wakers: (0..=workers).map(|_| Notify::new()).collect(),
        })
    }

    /// Wakes every other thread.
    fn wake_others(&self, me: usize) {
        for (i, waker) in self.wakers.iter().enumerate() {
            if i != me {
                waker.notify();
            }
        }
    }

    /// Publishes `values` in order to every worker, as `PooledBus::publish`
    /// does: take (waiting for a free envelope), fill, hand out, push.
    fn produce(&self, values: std::ops::Range<u64>) {
        for value in values {
            let index = loop {
                match self.envelopes.take() {
                    Some(index) => break index,
                    None => self.wakers[PRODUCER].wait(),
                }
            };
            // SAFETY: taken above, not handed out yet.
            unsafe {
                self.envelopes.fill(index, |slot| {
                    slot.generation = value;
                    slot.event = Some(Value(value));
                })
            };
            self.envelopes.hand_out(index, self.queues.len());
            for queue in &self.queues {
                queue.lock().expect("not poisoned").push_back(index);
            }
            self.wake_others(PRODUCER);
        }
    }

    /// As worker `k`, takes `count` envelopes from its queue, reads each
    /// and finishes it; returns the values seen and how many it finished
    /// last.
    fn consume(&self, k: usize, count: usize) -> (Vec<u64>, usize) {
        let (mut seen, mut last) = (Vec::new(), 0);
        while seen.len() < count {
            let popped = self.queues[k].lock().expect("not poisoned").pop_front();
            let Some(index) = popped else {
                self.wakers[k + 1].wait();
                continue;
            };
            // SAFETY: it came through this worker's queue, not finished yet.
            let (value, was_last) = unsafe {
                self.envelopes.read_and_finish(index, |slot| {
                    let value = slot.event.as_ref().expect("a handed-out envelope holds an event").0;
                    assert_eq!(slot.generation, value, "the slot was read while half written");
                    value
                })
            };
            seen.push(value);
            last += usize::from(was_last);
            self.wake_others(k + 1);
        }
        (seen, last)
    }
}

/// One envelope, one worker: every event reuses the envelope the worker
/// just finished (the plain-store shortcut every time).
#[test]
fn one_worker_reuses_the_single_envelope() {
    model(3, || {
        let pool = Pool::new(1, 1);
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || pool.produce(0..3))
        };
        let (seen, last) = pool.consume(0, 3);
        producer.join().expect("producer");
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(last, 3);
    });
}

/// One envelope, two workers: it is refilled only after both finished it,
/// and exactly one of them returns it each time.
#[test]
fn two_workers_share_each_envelope() {
    model(1, || {
        let pool = Pool::new(1, 2);
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || pool.produce(0..2))
        };
        let other = {
            let pool = pool.clone();
            thread::spawn(move || pool.consume(1, 2))
        };
        let (seen, last) = pool.consume(0, 2);
        let (other_seen, other_last) = other.join().expect("worker");
        producer.join().expect("producer");
        assert_eq!(seen, [0, 1]);
        assert_eq!(other_seen, [0, 1]);
        assert_eq!(last + other_last, 2, "exactly one last holder per hand-out");
    });
}

/// Two envelopes, two workers, three events: the free list hands them back
/// in the order they were finished, and nothing is read while refilled.
#[test]
fn two_envelopes_cycle_through_two_workers() {
    model(1, || {
        let pool = Pool::new(2, 2);
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || pool.produce(0..3))
        };
        let other = {
            let pool = pool.clone();
            thread::spawn(move || pool.consume(1, 3))
        };
        let (seen, last) = pool.consume(0, 3);
        let (other_seen, other_last) = other.join().expect("worker");
        producer.join().expect("producer");
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(other_seen, [0, 1, 2]);
        assert_eq!(last + other_last, 3, "exactly one last holder per hand-out");
    });
}
