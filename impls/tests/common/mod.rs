//! Test support shared by the conformance suite and the per-bus tests:
//! listeners that check what they receive ([`Recorder`] in full, [`Tally`]
//! lock-free for long runs), a [`Gate`] to hold listeners back, publishing
//! helpers, test bodies several per-bus files run on their own bus
//! ([`checks`]), and a counting global allocator ([`alloc`]).
//!
//! Each test file includes it as `pub mod common;`: its items are then
//! public items of that test binary, so a helper one binary does not use is
//! not dead code there, while a private helper nobody uses still is.

pub mod alloc;
pub mod checks;
mod recorder;
mod tally;

pub use recorder::Recorder;
pub use tally::{Tally, seq_sum};

use buslab_impls::payload::{Payload, SmallEvent};
use buslab_impls::{EventBus, Filter, Strategy};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, Once};
use std::thread;
use std::time::Duration;

/// A boxed closure listener for events `E`.
pub type Boxed<E> = Box<dyn Fn(&E) + Send + Sync>;

/// The listener type the generic tests use.
pub type Listener = Boxed<SmallEvent>;

/// The stress multiplier from `BUSLAB_STRESS` (default 1).
pub fn stress() -> u64 {
    std::env::var("BUSLAB_STRESS").ok().and_then(|s| s.parse().ok()).filter(|&n| n >= 1).unwrap_or(1)
}

/// `n` subscribers, or as many as `S` holds if fewer: a test about several
/// subscribers checks what a bus limited to fewer can do with its limit.
pub fn at_most<S: Strategy>(n: usize) -> usize {
    S::CAPABILITIES.max_subscribers.map_or(n, |max| n.min(max))
}

/// Whether `S` holds `n` subscribers at once.
pub fn holds<S: Strategy>(n: usize) -> bool {
    at_most::<S>(n) == n
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

/// A mix of the sequence number, so that the checksum catches substitutions
/// that a plain sum would not.
pub fn mix(seq: u64) -> u64 {
    let mut x = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Publishes `producer`'s events `seqs` in order (topic 0).
pub fn publish_range<B: EventBus<Event: Payload>>(bus: &B, producer: u32, seqs: std::ops::Range<u64>) {
    for seq in seqs {
        bus.publish(B::Event::make(producer, seq, 0));
    }
}

/// Runs `publish(bus, p)` on a thread of its own for each producer `p` in
/// `0..producers`, all released at once (a barrier), while this thread
/// runs `meanwhile`; returns when all have finished.
pub fn on_producer_threads<B: EventBus>(
    bus: &B,
    producers: usize,
    publish: impl Fn(&B, u32) + Sync,
    meanwhile: impl FnOnce(),
) {
    let start = Barrier::new(producers);
    thread::scope(|s| {
        for p in 0..producers as u32 {
            let (start, publish) = (&start, &publish);
            s.spawn(move || {
                start.wait();
                publish(bus, p)
            });
        }
        meanwhile();
    });
}

/// Publishes seqs `0..events` from each of `producers` threads (producer
/// ids `0..producers`, see [`on_producer_threads`]) while this thread runs
/// `meanwhile`.
pub fn publish_concurrently<B: EventBus<Event: Payload>>(
    bus: &B,
    producers: usize,
    events: u64,
    meanwhile: impl FnOnce(),
) {
    on_producer_threads(bus, producers, |bus, p| publish_range(bus, p, 0..events), meanwhile);
}

/// Subscribes `n` listeners that count their deliveries into one counter;
/// returns the counter.
pub fn count_deliveries<B>(bus: &B, n: usize) -> Arc<AtomicU64>
where
    B: EventBus<Listener = Boxed<<B as EventBus>::Event>>,
{
    let delivered = Arc::new(AtomicU64::new(0));
    for _ in 0..n {
        let delivered = delivered.clone();
        let listener = Box::new(move |_: &B::Event| {
            delivered.fetch_add(1, Ordering::Relaxed);
        });
        expect_ok(bus.subscribe(Filter::All, listener), "subscribe");
    }
    delivered
}

/// Publishes producer 0's seqs 0, 1, ... until `stop` is set, keeping in
/// `published` how many it has published. With `breather`, it sleeps
/// 100 µs after every 100 events (so as not to outrun a lossy bus's ring).
pub fn publish_until<B: EventBus<Event: Payload>>(bus: &B, stop: &AtomicBool, published: &AtomicU64, breather: bool) {
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        bus.publish(B::Event::make(0, seq, 0));
        seq += 1;
        published.store(seq, Ordering::SeqCst);
        if breather && seq % 100 == 0 {
            thread::sleep(Duration::from_micros(100));
        }
    }
}

/// Runs `f` on another thread and tells whether it was still running 50 ms
/// later; before answering, runs `release` (which must let `f` finish) and
/// waits for `f`, so that a test asserting on the answer fails rather than
/// hangs.
pub fn blocks(f: impl FnOnce() + Send, release: impl FnOnce()) -> bool {
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            f();
            done.store(true, Ordering::SeqCst);
        });
        thread::sleep(Duration::from_millis(50));
        let blocked = !done.load(Ordering::SeqCst);
        release();
        blocked
    })
}

/// Subscribes every tally to everything.
pub fn subscribe_tallies<B>(bus: &B, tallies: &[Arc<Tally>])
where
    B: EventBus<Event: Payload, Listener = Boxed<<B as EventBus>::Event>>,
{
    for t in tallies {
        expect_ok(bus.subscribe(Filter::All, t.listener()), "subscribe");
    }
}

/// `n` recorders, each subscribed to everything.
pub fn subscribed_recorders<B>(bus: &B, n: usize) -> Vec<Arc<Recorder>>
where
    B: EventBus<Event: Payload, Listener = Boxed<<B as EventBus>::Event>>,
{
    let recs: Vec<_> = (0..n).map(|_| Recorder::new()).collect();
    for rec in &recs {
        expect_ok(bus.subscribe(Filter::All, rec.listener()), "subscribe");
    }
    recs
}

/// Runs a function on its value when dropped: how a recorder learns that
/// the bus dropped its listener.
struct OnDrop<R>(Arc<R>, fn(&R));

impl<R> Drop for OnDrop<R> {
    fn drop(&mut self) {
        (self.1)(&self.0)
    }
}

/// A listener that runs `before` on each event, then `record`s it into
/// `rec`; the bus dropping the listener runs `dropped` on `rec`.
fn recording_listener<E: Payload, R: Send + Sync + 'static>(
    rec: &Arc<R>,
    before: impl Fn(&E) + Send + Sync + 'static,
    record: impl Fn(&Arc<R>, &E) + Send + Sync + 'static,
    dropped: fn(&R),
) -> Boxed<E> {
    let guard = OnDrop(rec.clone(), dropped);
    Box::new(move |e: &E| {
        before(e);
        record(&guard.0, e)
    })
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

/// Opens a gate when dropped, so that a failed assertion fails the test
/// rather than hangs it in the bus's drop.
pub struct OpenOnDrop(pub Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}
