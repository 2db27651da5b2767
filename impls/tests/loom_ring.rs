//! Loom model of the ring's sequencing protocol (`ring::model::Core`, the
//! very code the bus runs, with loom's atomics, mutex and cells swapped in):
//! single- and multi-producer claims, the availability buffer, consumer
//! gating (a producer never overwrites a slot a consumer has not released:
//! loom's cells flag any such overlap as a data race), all-or-nothing
//! `try_claim`, and a consumer registered while producers run.
//!
//! Waiting threads block on a loom `Notify` (one per thread, notified after
//! every publish and release) instead of spinning: loom cannot bound a spin
//! loop that needs a third, preempted thread to run, but it reports a
//! protocol deadlock (every thread blocked) as a failure.
//!
//! Run with `ci/loom.sh` (bounded preemptions), or:
//! `RUSTFLAGS="--cfg buslab_loom" cargo test -p buslab-impls --test loom_ring --release`.
#![cfg(buslab_loom)]

mod loom_common;

use buslab_impls::ring::model::Core;
use loom::sync::{Arc, Notify};
use loom::thread;
use loom_common::{Value, model};

/// The ring under test and one wake-up per model thread.
struct Model {
    core: Core<Value>,
    wakers: Vec<Notify>,
}

impl Model {
    fn new(capacity: usize, max_consumers: usize, multi: bool, threads: usize) -> Arc<Model> {
        Arc::new(Model {
            core: Core::new(capacity, max_consumers, multi),
            wakers: (0..threads).map(|_| Notify::new()).collect(),
        })
    }

    /// Wakes every other thread (after a publish or a release).
    fn wake_others(&self, me: usize) {
        for (i, waker) in self.wakers.iter().enumerate() {
            if i != me {
                waker.notify();
            }
        }
    }

    /// Blocks thread `me` until `ready()`.
    fn wait(&self, me: usize, ready: &mut dyn FnMut() -> bool) {
        while !ready() {
            self.wakers[me].wait();
        }
    }

    /// As thread `me`, publishes `values`, `batch` at a time.
    fn produce(&self, me: usize, values: &[u64], batch: usize) {
        for chunk in values.chunks(batch) {
            let n = chunk.len() as u64;
            let start = self.core.claim(n, |ready| self.wait(me, ready));
            for (k, &value) in chunk.iter().enumerate() {
                // SAFETY: `start..start + n` was claimed above and is not
                // published yet.
                let replaced = unsafe { self.core.put(start + k as u64, Value(value)) };
                // A slot's previous event is gone: consumers released it.
                drop(replaced);
            }
            self.core.publish(start, start + n);
            self.wake_others(me);
        }
    }

    /// As thread `me` and consumer `index`, consumes `count` sequences from
    /// `start` (returning their events; vacant ones have none), reading up
    /// to `batch` per round and releasing once per round.
    fn consume(&self, me: usize, index: usize, start: u64, count: u64, batch: u64) -> Vec<u64> {
        let mut seen = Vec::new();
        let mut next = start;
        while next < start + count {
            let max = batch.min(start + count - next);
            let mut end = next;
            self.wait(me, &mut || {
                end = self.core.available(next, max);
                end > next
            });
            for seq in next..end {
                // SAFETY: below what `available` returned and not released.
                unsafe { self.core.read(seq, |value| seen.push(value.0)) };
            }
            self.core.release(index, end);
            self.wake_others(me);
            next = end;
        }
        seen
    }
}

/// The values of one producer (`producer * 10 + i`), in the order seen.
fn of_producer(seen: &[u64], producer: u64) -> Vec<u64> {
    seen.iter().copied().filter(|v| v / 10 == producer).collect()
}

#[test]
fn single_producer_wraps_without_overwrite() {
    model(usize::MAX, || {
        let model = Model::new(2, 1, false, 2);
        let (index, start) = model.core.add_consumer().expect("room for one consumer");
        let producer = {
            let model = model.clone();
            thread::spawn(move || model.produce(1, &[0, 1, 2, 3], 1))
        };
        let seen = model.consume(0, index, start, 4, 2);
        producer.join().expect("producer");
        assert_eq!(seen, [0, 1, 2, 3]);
    });
}

#[test]
fn single_producer_batches() {
    model(usize::MAX, || {
        let model = Model::new(2, 1, false, 2);
        let (index, start) = model.core.add_consumer().expect("room for one consumer");
        let producer = {
            let model = model.clone();
            thread::spawn(move || model.produce(1, &[0, 1, 2], 2))
        };
        let seen = model.consume(0, index, start, 3, 1);
        producer.join().expect("producer");
        assert_eq!(seen, [0, 1, 2]);
    });
}

#[test]
fn two_producers_one_consumer() {
    model(usize::MAX, || {
        let model = Model::new(2, 1, true, 3);
        let (index, start) = model.core.add_consumer().expect("room for one consumer");
        let producers: Vec<_> = [(1, [10, 11]), (2, [20, 21])]
            .into_iter()
            .map(|(me, values)| {
                let model = model.clone();
                thread::spawn(move || model.produce(me, &values, 1))
            })
            .collect();
        let seen = model.consume(0, index, start, 4, 2);
        for p in producers {
            p.join().expect("producer");
        }
        assert_eq!(of_producer(&seen, 1), [10, 11]);
        assert_eq!(of_producer(&seen, 2), [20, 21]);
    });
}

#[test]
fn two_producers_batch_and_single() {
    model(usize::MAX, || {
        let model = Model::new(2, 1, true, 3);
        let (index, start) = model.core.add_consumer().expect("room for one consumer");
        let batcher = {
            let model = model.clone();
            thread::spawn(move || model.produce(1, &[10, 11], 2))
        };
        let single = {
            let model = model.clone();
            thread::spawn(move || model.produce(2, &[20], 1))
        };
        let seen = model.consume(0, index, start, 3, 2);
        batcher.join().expect("producer");
        single.join().expect("producer");
        assert_eq!(of_producer(&seen, 1), [10, 11]);
        assert_eq!(of_producer(&seen, 2), [20]);
    });
}

#[test]
fn try_claim_is_all_or_nothing() {
    model(usize::MAX, || {
        // The consumer reads nothing until both producers are done, so the
        // ring's two slots are all the room there is.
        let model = Model::new(2, 1, true, 3);
        let (index, start) = model.core.add_consumer().expect("room for one consumer");
        let attempt = |values: Vec<u64>| {
            let model = model.clone();
            thread::spawn(move || {
                let core = &model.core;
                let n = values.len() as u64;
                let Some(first) = core.try_claim(n) else {
                    return 0;
                };
                for (k, value) in values.into_iter().enumerate() {
                    // SAFETY: claimed above, not yet published.
                    unsafe { core.put_clone(first + k as u64, &Value(value)) };
                }
                core.publish(first, first + n);
                n
            })
        };
        let batch = attempt(vec![10, 11]);
        let single = attempt(vec![20]);
        let claimed = batch.join().expect("producer") + single.join().expect("producer");
        assert!(claimed == 1 || claimed == 2, "claimed {claimed} of 2 slots");
        let seen = model.consume(0, index, start, claimed, 2);
        assert_eq!(seen.len() as u64, claimed);
    });
}

#[test]
fn two_producers_without_consumer_never_share_a_slot() {
    model(usize::MAX, || {
        let model = Model::new(2, 1, true, 3);
        let producers: Vec<_> = [(1, [10, 11]), (2, [20, 21])]
            .into_iter()
            .map(|(me, values)| {
                let model = model.clone();
                thread::spawn(move || model.produce(me, &values, 1))
            })
            .collect();
        for p in producers {
            p.join().expect("producer");
        }
        assert_eq!(model.core.claimed(), 4);
    });
}

/// A claim whose copy panicked part-way (`abandon`) does not stall the
/// ring: with one producer its unwritten sequences are given back and
/// reused; with several they are published vacant and skipped.
fn abandoned_claim(multi: bool) {
    model(usize::MAX, move || {
        let model = Model::new(2, 1, multi, 2);
        let (index, start) = model.core.add_consumer().expect("room for one consumer");
        let producer = {
            let model = model.clone();
            thread::spawn(move || {
                let core = &model.core;
                let first = core.claim(2, |ready| model.wait(1, ready));
                // SAFETY: claimed above, not yet published.
                unsafe { core.put_clone(first, &Value(10)) };
                core.abandon(first, first + 1, first + 2);
                model.wake_others(1);
                model.produce(1, &[11, 12], 1);
            })
        };
        let sequences = if multi { 4 } else { 3 };
        let seen = model.consume(0, index, start, sequences, 2);
        producer.join().expect("producer");
        assert_eq!(seen, [10, 11, 12]);
    });
}

#[test]
fn abandoned_claim_single_producer() {
    abandoned_claim(false);
}

#[test]
fn abandoned_claim_multi_producer() {
    abandoned_claim(true);
}

/// A consumer registered while a producer publishes (and, if `first` is
/// `Some(lap)`, another consumer consumes; the late one then registers once
/// the first has consumed `lap` events) reads a gap-free run to the end and
/// is never lapped.
fn late_consumer(multi: bool, first: Option<u64>, total: u64) {
    let max_preemptions = if first.is_some() { 1 } else { usize::MAX };
    model(max_preemptions, move || {
        let model = Model::new(2, 2, multi, 3);
        let first = first.map(|lap| {
            let (index, start) = model.core.add_consumer().expect("room for two consumers");
            let consumer = {
                let model = model.clone();
                thread::spawn(move || model.consume(2, index, start, total, 2))
            };
            (lap, consumer)
        });
        let producer = {
            let model = model.clone();
            thread::spawn(move || model.produce(1, &(0..total).collect::<Vec<_>>(), 1))
        };
        if let Some((lap, _)) = first {
            model.wait(0, &mut || model.core.consumed(lap));
        }
        let (index, start) = model.core.add_consumer().expect("room for two consumers");
        let seen = model.consume(0, index, start, total - start, 2);
        assert_eq!(seen, (start..total).collect::<Vec<_>>());
        producer.join().expect("producer");
        if let Some((_, first)) = first {
            assert_eq!(first.join().expect("consumer"), (0..total).collect::<Vec<_>>());
        }
    });
}

#[test]
fn late_consumer_single_producer() {
    late_consumer(false, None, 4);
}

#[test]
fn late_consumer_single_producer_beside_another() {
    late_consumer(false, Some(0), 3);
}

#[test]
fn late_consumer_single_producer_after_a_lap() {
    late_consumer(false, Some(2), 4);
}

#[test]
fn late_consumer_multi_producer() {
    late_consumer(true, None, 4);
}

#[test]
fn late_consumer_multi_producer_beside_another() {
    late_consumer(true, Some(0), 3);
}

#[test]
fn late_consumer_multi_producer_after_a_lap() {
    late_consumer(true, Some(2), 4);
}
