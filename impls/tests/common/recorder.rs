//! [`Recorder`]: a listener's full record, checked as events arrive.

use super::{Boxed, Gate, mix, recording_listener};
use buslab_impls::payload::Payload;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

/// One producer's stream as one subscriber saw it.
#[derive(Clone, Debug)]
struct Stream {
    first: u64,
    next: u64,
    count: u64,
    checksum: u64,
}

/// What the recorder's lock guards.
#[derive(Default)]
struct State {
    streams: BTreeMap<u32, Stream>,
    violations: Vec<String>,
    threads: HashSet<ThreadId>,
}

/// What one subscriber received, checked as it arrives: per producer, the
/// first seq, count and checksum; any gap, reorder or duplicate, and any
/// call after the listener was dropped, is a violation. It also records
/// the threads its listener ran on, and how many of those (other than the
/// thread that created it) have not exited.
pub struct Recorder {
    state: Mutex<State>,
    calls: AtomicU64,
    dropped: AtomicBool,
    live_threads: AtomicUsize,
    /// The test's own thread: a synchronous bus runs listeners on it, and
    /// it does not exit before the test ends.
    creator: ThreadId,
}

thread_local! {
    /// Recorders whose listener ran on this thread; their live-thread count
    /// is decremented when the thread exits (so a test can tell whether every
    /// bus thread was joined).
    static SEEN: RefCell<ThreadGuard> = RefCell::new(ThreadGuard::default());
}

#[derive(Default)]
struct ThreadGuard(Vec<Arc<Recorder>>);

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        for rec in self.0.drain(..) {
            rec.live_threads.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Recorder {
    /// A fresh recorder.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            state: Mutex::default(),
            calls: AtomicU64::new(0),
            dropped: AtomicBool::new(false),
            live_threads: AtomicUsize::new(0),
            creator: thread::current().id(),
        })
    }

    fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::SeqCst);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    /// Records one delivery.
    pub fn record<E: Payload>(self: &Arc<Self>, event: &E) {
        let (producer, seq) = (event.producer(), event.seq());
        let after_drop = self.dropped.load(Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        let me = thread::current().id();
        let mut state = self.state();
        if after_drop {
            state.violations.push(format!("called after the listener was dropped (seq {seq})"));
        }
        let new_thread = state.threads.insert(me);
        let stream = state.streams.entry(producer).or_insert(Stream { first: seq, next: seq, count: 0, checksum: 0 });
        let expected = stream.next;
        stream.next = seq + 1;
        stream.count += 1;
        stream.checksum = stream.checksum.wrapping_add(mix(seq));
        if seq != expected {
            state.violations.push(format!("producer {producer}: expected seq {expected}, got {seq}"));
        }
        drop(state);
        if new_thread && me != self.creator {
            self.live_threads.fetch_add(1, Ordering::SeqCst);
            SEEN.with(|seen| seen.borrow_mut().0.push(self.clone()));
        }
    }

    /// A listener recording into this recorder.
    pub fn listener<E: Payload>(self: &Arc<Self>) -> Boxed<E> {
        self.listener_with(|_| ())
    }

    /// A listener that runs `before` on each event, then records it.
    pub fn listener_with<E: Payload>(self: &Arc<Self>, before: impl Fn(&E) + Send + Sync + 'static) -> Boxed<E> {
        recording_listener(self, before, Recorder::record, Recorder::mark_dropped)
    }

    /// A listener that busy-waits `work` per event (simulated work).
    pub fn slow_listener<E: Payload>(self: &Arc<Self>, work: Duration) -> Boxed<E> {
        self.listener_with(move |_| {
            let start = Instant::now();
            while start.elapsed() < work {
                std::hint::spin_loop();
            }
        })
    }

    /// A listener that blocks on `gate` until it opens, then records.
    pub fn gated_listener<E: Payload>(self: &Arc<Self>, gate: Arc<Gate>) -> Boxed<E> {
        self.listener_with(move |_| gate.wait())
    }

    /// A listener that records, then panics on every `every`-th seq
    /// (`every - 1`, `2 * every - 1`, ...).
    pub fn panicking_listener<E: Payload>(self: &Arc<Self>, every: u64) -> Boxed<E> {
        let record = move |rec: &Arc<Recorder>, e: &E| {
            rec.record(e);
            if e.seq() % every == every - 1 {
                panic!("listener panics on seq {} (expected in this test)", e.seq());
            }
        };
        recording_listener(self, |_| (), record, Recorder::mark_dropped)
    }

    /// Deliveries so far.
    pub fn count(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Whether the listener has been dropped.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Every thread the listener ran on.
    pub fn threads(&self) -> HashSet<ThreadId> {
        self.state().threads.clone()
    }

    /// Threads (other than the test's own) that ran the listener and have not
    /// exited.
    pub fn live_threads(&self) -> usize {
        self.live_threads.load(Ordering::SeqCst)
    }

    /// The last seq received from `producer`.
    pub fn last_seq(&self, producer: u32) -> Option<u64> {
        self.state().streams.get(&producer).map(|s| s.next - 1)
    }

    /// The first seq received from `producer`.
    pub fn first_seq(&self, producer: u32) -> Option<u64> {
        self.state().streams.get(&producer).map(|s| s.first)
    }

    /// How many of `producer`'s seqs from `start` (at most the first one
    /// received) up to the last one received did not arrive; 0 if none
    /// arrived. With [`Recorder::assert_increasing`], what a lossy bus must
    /// have counted as dropped for this subscriber over that range.
    #[track_caller]
    pub fn missing_since(&self, producer: u32, start: u64) -> u64 {
        let state = self.state();
        let Some(s) = state.streams.get(&producer) else { return 0 };
        assert!(start <= s.first, "missing_since({start}) after the first seq received ({})", s.first);
        s.next - start - s.count
    }

    /// Panics with every violation recorded.
    #[track_caller]
    pub fn assert_no_violations(&self, what: &str) {
        let state = self.state();
        let v = &state.violations;
        assert!(v.is_empty(), "{what}: {} violations, first: {:?}", v.len(), &v[..v.len().min(5)]);
    }

    /// Each producer's stream is gap-free and duplicate-free (a contiguous
    /// range, possibly empty).
    #[track_caller]
    pub fn assert_contiguous(&self, what: &str) {
        self.assert_no_violations(what);
    }

    /// Each producer's seqs strictly increase (gaps allowed: lossy buses).
    #[track_caller]
    pub fn assert_increasing(&self, what: &str) {
        let state = self.state();
        let bad: Vec<_> = state.violations.iter().filter(|msg| !is_forward_gap(msg)).collect();
        assert!(bad.is_empty(), "{what}: out of order or duplicated: {:?}", &bad[..bad.len().min(5)]);
    }

    /// Exactly the given range per producer, in order, once each: count,
    /// checksum and order all match, and no other producer appeared.
    #[track_caller]
    pub fn assert_exact(&self, what: &str, expected: &[(u32, std::ops::Range<u64>)]) {
        self.assert_no_violations(what);
        let state = self.state();
        for (producer, range) in expected {
            let want_count = range.end - range.start;
            let want_sum = range.clone().fold(0u64, |acc, s| acc.wrapping_add(mix(s)));
            match state.streams.get(producer) {
                None if want_count == 0 => {}
                None => panic!("{what}: nothing from producer {producer}, expected {range:?}"),
                Some(s) => {
                    assert_eq!(
                        (s.first, s.count, s.checksum),
                        (range.start, want_count, want_sum),
                        "{what}: producer {producer}: (first, count, checksum) differ from {range:?}"
                    );
                }
            }
        }
        for producer in state.streams.keys() {
            assert!(expected.iter().any(|(p, _)| p == producer), "{what}: unexpected events from producer {producer}");
        }
    }
}

fn is_forward_gap(msg: &str) -> bool {
    // "producer P: expected seq X, got Y" with Y > X is a gap, not a reorder.
    let nums: Vec<u64> =
        msg.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect();
    msg.contains("expected seq") && nums.len() == 3 && nums[2] > nums[1]
}
