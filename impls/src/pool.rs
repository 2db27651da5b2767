//! The consumer pool that the `channel` bus and the channel-crate peers
//! (`peers::fanout`, `peers::bus`) share: the threads that run listeners,
//! not the path that publishes to them.
//!
//! A [`Pool`] keeps a registry of subscribers (one `Arc` entry each, shared
//! with the bus's publishers) spread over *shards*, one consumer thread
//! each. A shard is added (its thread spawned) on subscribe while every
//! shard has a subscriber and there are fewer than `max_threads`; otherwise
//! the new subscriber joins the least loaded shard. So a bus with no more
//! subscribers than threads gives every subscriber a dedicated thread, and
//! 500 subscribers on 2 threads are served 250 per thread. A shard's thread
//! takes commands (add a subscriber, drop the removed ones, shut down) on
//! an unbounded control channel and otherwise runs its bus's [`Consumer`]:
//! how events are taken off the bus's queues, delivered, and waited for
//! is the bus's own, since the peers must be measured as their crates ship
//! them.
//!
//! What the pool does, for every bus on it:
//! - `subscribe` assigns the id, picks the shard and hands the consumer its
//!   half of the subscriber; `unsubscribe` marks the entry removed (the
//!   consumer checks the flag before each call), tells the shard to sweep
//!   and wakes it; the bus installs its own snapshots and decides whether
//!   to wait for the sweep.
//! - `close` (from `shutdown` or `Drop`) has every consumer deliver what is
//!   queued, then joins the threads; `stats` sums the shards' caught panics.
//! - A consumer thread knows which bus it serves ([`Pool::on_consumer_thread`]),
//!   so that a listener calling `flush` or a waiting `unsubscribe` on its own
//!   bus does not wait for itself.

use crate::util::{call_isolated, join_spawned};
use crate::wait::Notifier;
use crate::{BusError, BusStats, SubscriptionId};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Most events a consumer delivers to one subscriber before it looks at the
/// shard's other subscribers and its commands.
pub(crate) const BATCH: u64 = 128;

/// A consumer publishes its count of finished events every this many events
/// (and at the end of each batch): publishers and `flush` read that line,
/// and a store per event would bounce it between the cores on every event.
pub(crate) const DONE_EVERY: u64 = 32;

/// Distinguishes pools, so that a consumer thread knows whose listeners it runs.
static NEXT_POOL: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The pool whose consumer thread this is (0: none).
    static CONSUMER_OF: Cell<usize> = const { Cell::new(0) };
}

/// What a shard's consumer thread shares with publishers and the bus.
#[derive(Default)]
pub(crate) struct Shard {
    /// Notified by the consumer when it finished events or dropped removed
    /// subscribers (publishers waiting for room, `flush`, `unsubscribe`).
    pub(crate) progress: Notifier,
    /// Where an idle consumer waits, if its bus does not block in a
    /// crate's own receive; rung by `subscribe`, `unsubscribe`, `close`
    /// and whatever the bus's publishers ring.
    pub(crate) doorbell: Notifier,
    /// Listener calls that panicked (caught).
    pub(crate) panics: CachePadded<AtomicU64>,
}

/// The part of a subscriber's entry the pool manages; each bus's entry
/// holds one.
pub(crate) struct Membership {
    /// The subscription's id.
    pub(crate) id: u64,
    /// The shard whose thread serves it.
    pub(crate) shard: Arc<Shard>,
    /// Set by `unsubscribe`; the consumer checks it before every call.
    pub(crate) removed: AtomicBool,
}

impl Membership {
    /// Whether `unsubscribe` removed it.
    #[inline]
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

/// A subscriber's entry as the bus's publishers share it.
pub(crate) trait Member: Send + Sync + 'static {
    /// Its membership of the pool.
    fn membership(&self) -> &Membership;
}

/// A command to a shard's consumer thread.
pub(crate) enum Command<Lo> {
    /// Serve one more subscriber.
    Add(Lo),
    /// Drop every subscriber whose `removed` flag is set.
    Sweep,
    /// Deliver everything queued, then exit.
    Shutdown,
}

/// The receiving end of a shard's commands.
pub(crate) type Commands<Lo> = Receiver<Command<Lo>>;

/// What a bus's consumer threads do: the bus's half of the pool.
pub(crate) trait Consumer: Clone + Send + 'static {
    /// One subscriber as its consumer thread holds it (receiver, listener).
    type Local: Send + 'static;

    /// The membership of a held subscriber.
    fn member(local: &Self::Local) -> &Membership;

    /// Delivers up to a batch of one subscriber's queued events (discarding
    /// them if it was removed); returns how many it took.
    fn drain(&self, local: &mut Self::Local, shard: &Shard) -> u64;

    /// Delivers and waits, as the bus does, until a command may be pending
    /// (it may return earlier: the pool then reads its commands and calls
    /// it again). `locals` is never empty.
    fn serve(&self, locals: &mut [Self::Local], commands: &Commands<Self::Local>, shard: &Shard);

    /// Lets go of a removed subscriber (by default, drops it).
    fn leave(&self, local: Self::Local) {
        drop(local);
    }
}

struct ShardHandle<Lo> {
    shared: Arc<Shard>,
    control: Sender<Command<Lo>>,
    thread: Option<JoinHandle<()>>,
    subscribers: usize,
}

/// The subscribers and shards of a pool, under its lock.
pub(crate) struct Registry<En, Lo> {
    next_id: u64,
    /// The live subscribers, in subscription order.
    pub(crate) entries: Vec<Arc<En>>,
    shards: Vec<ShardHandle<Lo>>,
    closed: bool,
}

impl<En, Lo> Registry<En, Lo> {
    fn stats(&self) -> BusStats {
        BusStats {
            dropped: 0,
            listener_panics: self.shards.iter().map(|s| s.shared.panics.load(Ordering::Relaxed)).sum(),
        }
    }
}

/// A bus's consumer threads and the registry of its subscribers.
pub(crate) struct Pool<En, C: Consumer> {
    registry: Mutex<Registry<En, C::Local>>,
    consumer: C,
    max_threads: usize,
    /// Names the threads (`buslab-<bus>-<shard>`).
    bus: &'static str,
    uid: usize,
}

impl<En: Member, C: Consumer> Pool<En, C> {
    /// An empty pool of at most `max_threads` (≥ 1) threads running `consumer`.
    pub(crate) fn new(bus: &'static str, max_threads: usize, consumer: C) -> Self {
        Pool {
            registry: Mutex::new(Registry { next_id: 0, entries: Vec::new(), shards: Vec::new(), closed: false }),
            consumer,
            max_threads,
            bus,
            uid: NEXT_POOL.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The registry, locked. Everything done under the lock completes every
    /// mutation before anything that can panic, so a poisoned lock is
    /// taken over.
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry<En, C::Local>> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the calling thread is one of this pool's consumers (a
    /// listener of its bus).
    pub(crate) fn on_consumer_thread(&self) -> bool {
        CONSUMER_OF.with(|c| c.get() == self.uid)
    }

    /// Adds a subscriber: `make(membership)` builds its entry and the
    /// consumer's half (under the registry lock); `install(entries)` then
    /// publishes the new subscriber list where the bus's publishers read it.
    pub(crate) fn subscribe(
        &self,
        make: impl FnOnce(Membership) -> (Arc<En>, C::Local),
        install: impl FnOnce(&[Arc<En>]),
    ) -> SubscriptionId {
        let mut reg = self.registry();
        let index = self.pick_shard(&mut reg);
        let id = reg.next_id;
        reg.next_id += 1;
        let shard = &mut reg.shards[index];
        let (entry, local) = make(Membership { id, shard: shard.shared.clone(), removed: AtomicBool::new(false) });
        shard.control.send(Command::Add(local)).expect("a consumer thread runs until shutdown");
        shard.shared.doorbell.notify_all();
        shard.subscribers += 1;
        reg.entries.push(entry);
        install(&reg.entries);
        SubscriptionId(id)
    }

    /// Removes subscriber `id`: takes it off the list (`install(entries)`
    /// publishes the shorter one), marks it removed, has its shard sweep
    /// and wakes whoever waits on the shard. Returns its entry; the sweep
    /// happens later, on the consumer thread.
    pub(crate) fn unsubscribe(
        &self,
        id: SubscriptionId,
        install: impl FnOnce(&[Arc<En>]),
    ) -> Result<Arc<En>, BusError> {
        let mut reg = self.registry();
        let Some(at) = reg.entries.iter().position(|e| e.membership().id == id.0) else {
            return Err(BusError::UnknownSubscription { bus: self.bus, id });
        };
        let entry = reg.entries.remove(at);
        install(&reg.entries);
        let member = entry.membership();
        member.removed.store(true, Ordering::SeqCst);
        let shard = reg
            .shards
            .iter_mut()
            .find(|s| Arc::ptr_eq(&s.shared, &member.shard))
            .expect("every entry belongs to one of the pool's shards");
        shard.subscribers -= 1;
        shard.control.send(Command::Sweep).expect("a consumer thread runs until shutdown");
        drop(reg);
        // The consumer, and publishers blocked on the subscriber, look again.
        member.shard.doorbell.notify_all();
        member.shard.progress.notify_all();
        Ok(entry)
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> BusStats {
        self.registry().stats()
    }

    /// Has every consumer deliver what is queued, joins the threads and
    /// empties the registry; later calls only read the counters. The bus's
    /// publishers must be gone (`shutdown` and `Drop` take the bus by value).
    pub(crate) fn close(&mut self) -> BusStats {
        let reg = self.registry.get_mut().unwrap_or_else(|e| e.into_inner());
        if !reg.closed {
            reg.closed = true;
            for shard in &reg.shards {
                // The consumer holds its receivers until it has seen this.
                let _ = shard.control.send(Command::Shutdown);
                shard.shared.doorbell.notify_all();
            }
            for shard in &mut reg.shards {
                if let Some(thread) = shard.thread.take() {
                    join_spawned(thread);
                }
            }
            reg.entries.clear();
        }
        reg.stats()
    }

    /// Index of the shard for a new subscriber, spawning one if allowed.
    fn pick_shard(&self, reg: &mut Registry<En, C::Local>) -> usize {
        let least = reg.shards.iter().enumerate().min_by_key(|(_, s)| s.subscribers).map(|(i, s)| (i, s.subscribers));
        match least {
            Some((i, 0)) => i,
            Some((i, _)) if reg.shards.len() >= self.max_threads => i,
            _ => {
                let shared = Arc::new(Shard::default());
                let (control, commands) = crossbeam_channel::unbounded();
                let index = reg.shards.len();
                let thread = {
                    let shared = shared.clone();
                    let (consumer, uid) = (self.consumer.clone(), self.uid);
                    std::thread::Builder::new()
                        .name(format!("buslab-{}-{index}", self.bus))
                        .spawn(move || consume(&consumer, &shared, &commands, uid))
                        .expect("the OS must let the bus spawn its consumer thread")
                };
                reg.shards.push(ShardHandle { shared, control, thread: Some(thread), subscribers: 0 });
                index
            }
        }
    }
}

/// A shard's consumer thread: reads its commands, then lets the bus's
/// consumer serve until one may be pending.
fn consume<C: Consumer>(consumer: &C, shard: &Shard, commands: &Commands<C::Local>, uid: usize) {
    CONSUMER_OF.with(|c| c.set(uid));
    let mut locals: Vec<C::Local> = Vec::new();
    loop {
        let mut shutdown = false;
        loop {
            match commands.try_recv() {
                Ok(Command::Add(local)) => locals.push(local),
                Ok(Command::Sweep) => sweep(consumer, &mut locals, shard),
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => shutdown = true,
                Err(TryRecvError::Empty) => break,
            }
        }
        if shutdown {
            // No publisher is left: deliver what is queued.
            while locals.iter_mut().map(|l| consumer.drain(l, shard)).sum::<u64>() > 0 {}
            shard.progress.notify_all();
            return;
        }
        if locals.is_empty() {
            // Nothing to deliver until a command arrives.
            match commands.recv() {
                Ok(Command::Add(local)) => locals.push(local),
                Ok(Command::Sweep) => {}
                Ok(Command::Shutdown) | Err(_) => return,
            }
            continue;
        }
        consumer.serve(&mut locals, commands, shard);
    }
}

/// Delivers up to [`BATCH`] events to one subscriber and returns how many
/// it took: `take(done)` takes the next one off its queue (`None` when
/// there is none, or none to take), `call` hands it to the listener.
/// `done`, the subscriber's count of finished events (listener returned or
/// panicked), is counted before each call, so that a panicking call counts,
/// and stored every [`DONE_EVERY`] events and at the end. One
/// `catch_unwind` covers the batch, re-entered after a panic, which is
/// counted on the shard.
#[inline]
pub(crate) fn drain_batch<E>(
    done: &AtomicU64,
    shard: &Shard,
    mut take: impl FnMut(u64) -> Option<E>,
    mut call: impl FnMut(&E),
) -> u64 {
    let start = done.load(Ordering::Relaxed);
    let end = start + BATCH;
    let mut finished = start;
    loop {
        let panicked = call_isolated(|| {
            while finished < end {
                let Some(event) = take(finished) else {
                    break;
                };
                finished += 1;
                call(&event);
                if finished.is_multiple_of(DONE_EVERY) {
                    done.store(finished, Ordering::Release);
                }
            }
        });
        done.store(finished, Ordering::Release);
        if !panicked {
            return finished - start;
        }
        shard.panics.fetch_add(1, Ordering::Relaxed);
    }
}

/// Lets go of the removed subscribers and tells whoever waits.
fn sweep<C: Consumer>(consumer: &C, locals: &mut Vec<C::Local>, shard: &Shard) {
    let mut at = 0;
    while at < locals.len() {
        if C::member(&locals[at]).is_removed() {
            consumer.leave(locals.swap_remove(at));
        } else {
            at += 1;
        }
    }
    shard.progress.notify_all();
}
