//! Test support shared by the conformance suite and the per-bus tests:
//! recording listeners that check count, checksum and per-producer order.
#![allow(dead_code)]

use buslab_impls::payload::{Payload, SmallEvent};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::{Duration, Instant};

/// The listener type the generic tests use.
pub type Listener = Box<dyn Fn(&SmallEvent) + Send + Sync>;

/// The stress multiplier from `BUSLAB_STRESS` (default 1).
pub fn stress() -> u64 {
    std::env::var("BUSLAB_STRESS").ok().and_then(|s| s.parse().ok()).filter(|&n| n >= 1).unwrap_or(1)
}

/// Unwraps with the error in the message.
#[track_caller]
pub fn expect_ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Silences the panic messages of listeners that panic on purpose (their
/// message contains "expected in this test"); other panics print as usual.
pub fn quiet_expected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let expected = info.payload().downcast_ref::<&str>().is_some_and(|s| s.contains("expected in this test"))
                || info.payload().downcast_ref::<String>().is_some_and(|s| s.contains("expected in this test"));
            if !expected {
                previous(info);
            }
        }));
    });
}

/// One producer's stream as one subscriber saw it.
#[derive(Clone, Debug)]
struct Stream {
    first: u64,
    next: u64,
    count: u64,
    checksum: u64,
}

/// A mix of the sequence number, so that the checksum catches substitutions
/// that a plain sum would not.
pub fn mix(seq: u64) -> u64 {
    let mut x = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// What one subscriber received, checked as it arrives.
#[derive(Default)]
pub struct Recorder {
    streams: Mutex<BTreeMap<u32, Stream>>,
    violations: Mutex<Vec<String>>,
    calls: AtomicU64,
    dropped: AtomicBool,
    live_threads: AtomicUsize,
    publisher_thread: Mutex<Option<std::thread::ThreadId>>,
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

/// Sets the recorder's `dropped` flag when the listener owning it is dropped.
struct DropFlag(Arc<Recorder>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

impl Recorder {
    /// A fresh recorder.
    pub fn new() -> Arc<Recorder> {
        let rec = Arc::new(Recorder::default());
        *rec.publisher_thread.lock().expect("not poisoned") = Some(std::thread::current().id());
        rec
    }

    fn violation(&self, text: String) {
        self.violations.lock().expect("not poisoned").push(text);
    }

    /// Records one delivery.
    pub fn record(self: &Arc<Self>, event: &SmallEvent) {
        if self.dropped.load(Ordering::SeqCst) {
            self.violation(format!("called after the listener was dropped (seq {})", event.seq));
        }
        self.track_thread();
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut streams = self.streams.lock().expect("not poisoned");
        let stream = streams.entry(event.producer()).or_insert(Stream {
            first: event.seq(),
            next: event.seq(),
            count: 0,
            checksum: 0,
        });
        if event.seq() != stream.next {
            let (expected, got, producer) = (stream.next, event.seq(), event.producer());
            drop(streams);
            self.violation(format!("producer {producer}: expected seq {expected}, got {got}"));
            let mut streams = self.streams.lock().expect("not poisoned");
            let stream = streams.get_mut(&producer).expect("inserted above");
            stream.next = got + 1;
            stream.count += 1;
            stream.checksum = stream.checksum.wrapping_add(mix(got));
            return;
        }
        stream.next += 1;
        stream.count += 1;
        stream.checksum = stream.checksum.wrapping_add(mix(event.seq()));
    }

    fn track_thread(self: &Arc<Self>) {
        let me = std::thread::current().id();
        if *self.publisher_thread.lock().expect("not poisoned") == Some(me) {
            return;
        }
        SEEN.with(|seen| {
            let mut seen = seen.borrow_mut();
            if !seen.0.iter().any(|r| Arc::ptr_eq(r, self)) {
                self.live_threads.fetch_add(1, Ordering::SeqCst);
                seen.0.push(self.clone());
            }
        });
    }

    /// A listener recording into this recorder.
    pub fn listener(self: &Arc<Self>) -> Listener {
        let flag = DropFlag(self.clone());
        Box::new(move |e: &SmallEvent| flag.0.record(e))
    }

    /// A listener that busy-waits `work` per event (simulated work).
    pub fn slow_listener(self: &Arc<Self>, work: Duration) -> Listener {
        let flag = DropFlag(self.clone());
        Box::new(move |e: &SmallEvent| {
            let start = Instant::now();
            while start.elapsed() < work {
                std::hint::spin_loop();
            }
            flag.0.record(e)
        })
    }

    /// A listener that blocks on `gate` until it opens, then records.
    pub fn gated_listener(self: &Arc<Self>, gate: Arc<Gate>) -> Listener {
        let flag = DropFlag(self.clone());
        Box::new(move |e: &SmallEvent| {
            gate.wait();
            flag.0.record(e)
        })
    }

    /// A listener that records, then panics on every `every`-th seq (0, every, ...).
    pub fn panicking_listener(self: &Arc<Self>, every: u64) -> Listener {
        let flag = DropFlag(self.clone());
        Box::new(move |e: &SmallEvent| {
            flag.0.record(e);
            if e.seq % every == every - 1 {
                panic!("listener panics on seq {} (expected in this test)", e.seq);
            }
        })
    }

    /// Deliveries so far.
    pub fn count(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Whether the listener has been dropped.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Threads (other than the test's own) that ran the listener and have not
    /// exited.
    pub fn live_threads(&self) -> usize {
        self.live_threads.load(Ordering::SeqCst)
    }

    /// The last seq received from `producer`.
    pub fn last_seq(&self, producer: u32) -> Option<u64> {
        let streams = self.streams.lock().expect("not poisoned");
        streams.get(&producer).filter(|s| s.count > 0).map(|s| s.next - 1)
    }

    /// Panics with every violation recorded.
    #[track_caller]
    pub fn assert_no_violations(&self, what: &str) {
        let v = self.violations.lock().expect("not poisoned");
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
        let v = self.violations.lock().expect("not poisoned");
        let bad: Vec<_> = v.iter().filter(|msg| !is_forward_gap(msg)).collect();
        assert!(bad.is_empty(), "{what}: out of order or duplicated: {:?}", &bad[..bad.len().min(5)]);
    }

    /// Exactly the given range per producer, in order, once each: count,
    /// checksum and order all match, and no other producer appeared.
    #[track_caller]
    pub fn assert_exact(&self, what: &str, expected: &[(u32, std::ops::Range<u64>)]) {
        self.assert_no_violations(what);
        let streams = self.streams.lock().expect("not poisoned");
        for (producer, range) in expected {
            let want_count = range.end - range.start;
            let want_sum = range.clone().fold(0u64, |acc, s| acc.wrapping_add(mix(s)));
            match streams.get(producer) {
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
        for producer in streams.keys() {
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

/// A gate listeners block on until the test opens it.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    /// Calls that have reached the gate (waiting or passed).
    arrived: AtomicUsize,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// Blocks until open.
    pub fn wait(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().expect("not poisoned");
        while !*open {
            open = self.cv.wait(open).expect("not poisoned");
        }
    }

    /// Calls that have reached the gate so far.
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    /// Opens the gate for good.
    pub fn open(&self) {
        *self.open.lock().expect("not poisoned") = true;
        self.cv.notify_all();
    }
}
