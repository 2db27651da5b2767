//! The measured loops, generic over the bus: no `dyn` call sits in what is
//! timed. A [`Rig`] is one cell's bus with its subscribers; a trial publishes
//! from the scenario's producers (optionally paced open-loop; one event per
//! call, or `publish_batch` where the scenario sets `batch`), waits for
//! delivery with `flush`, and verifies every subscriber's count, checksum
//! and order before any number is kept.

use crate::buckets::LocalBuckets;
use crate::error::{CellError, Receiver, check_tally};
use crate::listener::{Body, HarnessListener, LatencyRecorder, Subscriber, now_ns};
use buslab_impls::payload::Payload;
use buslab_impls::{BusConfig, EventBus, Filter, Topic};
use buslab_scenarios::{Scenario, SweepPoint};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

/// What a producer published of one topic, for verification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Events.
    pub count: u64,
    /// Wrapping sum of their checksums.
    pub checksum: u64,
}

impl Published {
    /// What a subscriber with `filter` must have received of one producer
    /// that published `by_topic` (indexed by topic).
    pub(crate) fn expected(by_topic: &[Published], filter: Filter) -> Published {
        by_topic.iter().enumerate().filter(|(t, _)| filter.accepts(*t as Topic)).fold(
            Published::default(),
            |acc, (_, s)| Published { count: acc.count + s.count, checksum: acc.checksum.wrapping_add(s.checksum) },
        )
    }
}

/// When each event is meant to be sent (open loop), or as fast as possible.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Publish back to back.
    Flat,
    /// A fixed rate in events per second over all producers.
    Rate(f64),
    /// A burst pattern: `base` events/s, `factor`× during the first
    /// `spike_ns` of every `period_ns`.
    Burst {
        /// Base rate, events/s over all producers.
        base: f64,
        /// Spike multiplier.
        factor: f64,
        /// Spike length, ns.
        spike_ns: u64,
        /// Period, ns.
        period_ns: u64,
    },
}

/// Where a trial's measured region (a callgrind window, a profiler's
/// sampling) opens and closes.
#[derive(Clone, Copy)]
pub enum Window<'a> {
    /// Nothing is bracketed.
    None,
    /// On the main thread, around the whole trial: the barrier that starts
    /// the producers, their work, their joins and the final flush — what a
    /// trial whose bus code runs on several threads must include.
    Trial(&'a (dyn Fn(bool) + Sync)),
    /// Inside the one producer, around its publishing loop alone, leaving
    /// out the barrier and the joins, whose instruction counts depend on
    /// which thread got there first: for single-threaded cells (one
    /// producer, an in-line bus), where every delivery happens within the
    /// loop.
    Producer(&'a (dyn Fn(bool) + Sync)),
}

impl Window<'_> {
    /// Called by the main thread before starting the producers (`true`) and
    /// after the flush (`false`).
    #[inline]
    pub(crate) fn trial(self, open: bool) {
        if let Window::Trial(f) = self {
            f(open)
        }
    }

    /// Called by each producer right after the start barrier (`true`) and
    /// after its last publish (`false`).
    #[inline]
    pub(crate) fn producer(self, open: bool) {
        if let Window::Producer(f) = self {
            f(open)
        }
    }
}

/// A schedule of intended send times for one producer.
struct Schedule {
    pace: Pace,
    start_ns: u64,
    producers: f64,
    producer: f64,
}

impl Schedule {
    /// The intended send time of this producer's `i`-th event, ns; producers
    /// are interleaved evenly.
    fn intended(&self, i: u64) -> u64 {
        // Position of the event in the merged stream of all producers.
        let k = i as f64 * self.producers + self.producer;
        let offset = match self.pace {
            Pace::Flat => 0.0,
            Pace::Rate(rate) => k / rate * 1e9,
            Pace::Burst { base, factor, spike_ns, period_ns } => {
                // Events per period: spike part at base·factor, rest at base.
                let (spike_s, rest_s) = (spike_ns as f64 / 1e9, (period_ns - spike_ns) as f64 / 1e9);
                let (in_spike, in_rest) = (base * factor * spike_s, base * rest_s);
                let per_period = in_spike + in_rest;
                let period = (k / per_period).floor();
                let within = k - period * per_period;
                let t = if within < in_spike { within / (base * factor) } else { spike_s + (within - in_spike) / base };
                (period * period_ns as f64) + t * 1e9
            }
        };
        self.start_ns + offset as u64
    }
}

/// Waits until `deadline_ns` and returns the time it returned at: sleeping
/// while the deadline is more than [`SLEEP_ABOVE_NS`] away (waking that
/// much early), spinning the last stretch. It never yields: on a busy
/// machine `yield_now` hands the core to another runnable thread for a
/// whole time slice (milliseconds), which made the pacer, not the bus, the
/// source of latency. Returns at once when already late: an open-loop
/// sender never waits to catch up, so lateness shows as latency.
fn wait_until(deadline_ns: u64) -> u64 {
    loop {
        let now = now_ns();
        if now >= deadline_ns {
            return now;
        }
        let left = deadline_ns - now;
        if left > 2 * SLEEP_ABOVE_NS {
            std::thread::sleep(Duration::from_nanos(left - SLEEP_ABOVE_NS));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The throughput pass's producer loop: `events` back-to-back publishes
/// of `templates[seq % templates.len()]` from `first_seq` on, with nothing per event
/// but setting the seq, choosing the template (a wrapping index, no
/// division) and publishing. What was published is recounted after the
/// trial ([`Rig::trial`]).
///
/// With one template it publishes a local copy (moved out of `templates`
/// and back, no clone): when the bus is in-line, the event then lives in
/// registers rather than behind a pointer the compiler must assume the
/// listener's stores may reach.
#[inline(never)]
fn publish_flat<B>(bus: &B, templates: &mut Vec<B::Event>, first_seq: u64, events: u64)
where
    B: EventBus,
    B::Event: Payload,
{
    let end = first_seq + events;
    if templates.len() == 1 {
        let mut event = templates.pop().expect("one template");
        for seq in first_seq..end {
            event.set_seq(seq);
            bus.publish_clone(&event);
        }
        templates.push(event);
        return;
    }
    let mut topic = (first_seq % templates.len() as u64) as usize;
    for seq in first_seq..end {
        let event = &mut templates[topic];
        event.set_seq(seq);
        bus.publish_clone(event);
        topic += 1;
        if topic == templates.len() {
            topic = 0;
        }
    }
}

/// A producer's batch for scenarios that publish with `publish_batch`:
/// `batch` copies of its templates, event `k` a copy of template
/// `(first_seq + k) % templates.len()` (topic `(first_seq + k) % topics`,
/// since templates cycle topics within each payload shape). Built before
/// the timed loop. The scenario makes `batch` a multiple of the topics, so
/// every batch starts on the same topic and the loops below set only seqs
/// (and stamps); [`Rig::count_published`] counts the copies published.
fn prepare_batch<E: Clone>(templates: &[E], first_seq: u64, batch: usize) -> Vec<E> {
    let cycle = templates.len() as u64;
    (0..batch as u64).map(|k| templates[((first_seq + k) % cycle) as usize].clone()).collect()
}

/// [`publish_flat`] for batched scenarios: `events` events from
/// `first_seq` on, in `publish_batch` calls of `batch.len()` (the last one
/// shorter), with nothing per event but setting its seq. Buses without a
/// batch publish of their own loop over `publish_clone` (the trait's
/// default), still generic: no `dyn` here either.
#[inline(never)]
fn publish_batches<B>(bus: &B, batch: &mut [B::Event], first_seq: u64, events: u64)
where
    B: EventBus,
    B::Event: Payload,
{
    let end = first_seq + events;
    let mut seq = first_seq;
    while seq < end {
        let n = (end - seq).min(batch.len() as u64) as usize;
        for (k, event) in batch[..n].iter_mut().enumerate() {
            event.set_seq(seq + k as u64);
        }
        bus.publish_batch(&batch[..n]);
        seq += n as u64;
    }
}

/// The paced producer loop (open loop: each event waits for its intended
/// send time and carries it as its stamp). Every event's send lateness
/// (actual − intended send time) goes into `lateness`, the producer's own
/// buckets (no lock). The clock is read only while the producer is on
/// schedule: an event whose intended time had already passed at the last
/// reading is sent at once and counted as late by that reading, a lower
/// bound when the producer is behind.
///
/// With a `batch` (see [`prepare_batch`]) it publishes `publish_batch`
/// calls of that many instead: a batch is due when its last event is, and
/// its events carry that time as their stamp and lateness, so that latency
/// measures the bus rather than the batching the producer chose.
fn publish_paced<B>(
    bus: &B,
    templates: &mut [B::Event],
    mut batch: Option<&mut [B::Event]>,
    first_seq: u64,
    events: u64,
    schedule: &Schedule,
    lateness: &mut LocalBuckets,
) where
    B: EventBus,
    B::Event: Payload,
{
    let cycle = templates.len() as u64;
    let step = batch.as_ref().map_or(1, |b| b.len() as u64);
    let mut now = 0;
    let mut i = 0;
    while i < events {
        let n = (events - i).min(step);
        let seq = first_seq + i;
        let intended = schedule.intended(i + n - 1);
        if intended > now {
            now = wait_until(intended);
        }
        match batch.as_deref_mut() {
            None => {
                let event = &mut templates[(seq % cycle) as usize];
                event.set_seq(seq);
                lateness.record(now - intended);
                event.set_stamp(intended);
                bus.publish_clone(event);
            }
            Some(batch) => {
                let batch = &mut batch[..n as usize];
                for (k, event) in batch.iter_mut().enumerate() {
                    event.set_seq(seq + k as u64);
                    event.set_stamp(intended);
                    lateness.record(now - intended);
                }
                bus.publish_batch(batch);
            }
        }
        i += n;
    }
}

/// How far ahead of a deadline the pacer stops sleeping and spins, ns
/// (sleeps overshoot by tens of microseconds, more on a loaded machine).
const SLEEP_ABOVE_NS: u64 = 1_000_000;

/// The outcome of one verified trial.
#[derive(Clone, Debug)]
pub struct Trial {
    /// Events published (all producers).
    pub events: u64,
    /// Deliveries made to permanent subscribers.
    pub deliveries: u64,
    /// Wall time from the first publish to the end of `flush`, ns.
    pub elapsed_ns: u64,
    /// Paced trials: the producers' send lateness (actual − intended send
    /// time), every event. The clock is read only while a producer is on
    /// schedule: an event whose intended time has already passed at the
    /// last reading is sent at once and counted as late by that reading's
    /// measure, a lower bound when the producer is behind.
    pub lateness: Option<hdrhistogram::Histogram<u64>>,
    /// Paced trials: from the last intended send of the schedule to the end
    /// of `flush`, ns (the backlog left when the schedule ended).
    pub backlog_ns: u64,
    /// Paced trials: from the first to the last intended send, ns.
    pub schedule_ns: u64,
}

/// Latency recorders to attach to sampled subscribers.
pub type MakeRecorder<'a> = &'a dyn Fn(usize) -> Option<LatencyRecorder>;

/// One cell's bus and subscribers.
pub struct Rig<B: EventBus> {
    /// The bus under test.
    pub bus: B,
    /// Permanent subscribers, by index.
    pub subscribers: Vec<Arc<Subscriber>>,
    filters: Vec<Filter>,
    scenario: Arc<Scenario>,
    point: SweepPoint,
    /// Next seq per producer (trials continue the stream).
    next_seq: Vec<u64>,
    /// What each producer published, per topic.
    published: Vec<Vec<Published>>,
    /// Templates per producer ([`templates`]).
    templates: Vec<Vec<B::Event>>,
    dropped_before: u64,
    panics_before: u64,
    /// The bus declares itself lossy: drops are allowed if counted.
    lossy: bool,
}

/// One producer's templates, prepared before any timed loop: one per topic
/// and payload shape ([`Payload::SHAPES`]), ordered so that cycling through
/// them publishes event `seq` on topic `seq % topics` and, every `topics`
/// events, in the next shape. So consecutive heavy events differ in string
/// and item sizes, as real traffic does, and a bus that copies into reused
/// buffers meets every size.
fn templates<E: Payload>(producer: u32, topics: usize) -> Vec<E> {
    let shapes = usize::try_from(E::SHAPES).expect("a handful of shapes");
    (0..shapes * topics).map(|i| E::make(producer, (i / topics) as u64, (i % topics) as Topic)).collect()
}

/// The bus configuration of a cell.
pub fn bus_config(scenario: &Scenario, point: SweepPoint) -> BusConfig {
    BusConfig {
        capacity: scenario.bus.capacity,
        wait: scenario.bus.wait,
        max_threads: consumer_threads(scenario, point, buslab_impls::cores()),
        producers: point.producers,
        topics: scenario.topics,
    }
}

/// The threads an asynchronous bus may run its listeners on at `point` of
/// `scenario` on `cores` cores: what the producers leave (at least one), so
/// that producers + consumer threads never exceed the cores — a spinning or
/// descheduled thread would otherwise measure the OS scheduler — unless the
/// scenario sets `oversubscribe = true`, which gives every bus all cores.
/// Cells where the producers alone take every core skip asynchronous buses
/// ([`crate::runner::skip_reason`]).
pub fn consumer_threads(scenario: &Scenario, point: SweepPoint, cores: usize) -> usize {
    if scenario.oversubscribe { cores.max(1) } else { cores.saturating_sub(point.producers).max(1) }
}

impl<B> Rig<B>
where
    B: EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    /// Builds the bus and subscribes the scenario's listeners (setup: never
    /// timed). `recorder(i)` gives subscriber `i` a latency recorder; `lossy`
    /// is the bus's declared capability.
    pub fn new(
        scenario: Arc<Scenario>,
        point: SweepPoint,
        lossy: bool,
        recorder: MakeRecorder<'_>,
    ) -> Result<Self, CellError> {
        let bus = B::new(&bus_config(&scenario, point))?;
        let subscribers = Subscriber::group(point.subscribers, point.producers, 0, recorder);
        let mut filters = Vec::with_capacity(point.subscribers);
        let slow_from = scenario.slow.map_or(usize::MAX, |s| point.subscribers.saturating_sub(s.count as usize));
        for (i, sub) in subscribers.iter().enumerate() {
            let filter = if scenario.topics > 1 { Filter::Topic((i % scenario.topics) as u16) } else { Filter::All };
            let work_ns =
                if i >= slow_from { scenario.slow.map_or(0, |s| s.work_ns) } else { scenario.listener_work_ns };
            let work = crate::work::iterations(work_ns);
            let listener = HarnessListener::new(sub.clone(), Body::for_listener(scenario.bodies, i), work);
            bus.subscribe(filter, listener).map_err(|error| CellError::Subscribe {
                what: "listener",
                index: i,
                error,
            })?;
            filters.push(filter);
        }
        let templates = (0..point.producers).map(|p| templates::<B::Event>(p as u32, scenario.topics)).collect();
        let stats = bus.stats();
        Ok(Rig {
            bus,
            subscribers,
            filters,
            next_seq: vec![0; point.producers],
            published: vec![vec![Published::default(); scenario.topics]; point.producers],
            templates,
            scenario,
            point,
            dropped_before: stats.dropped,
            panics_before: stats.listener_panics,
            lossy,
        })
    }

    /// Publishes `events` per producer, paced by `pace`, waits for delivery,
    /// and verifies. `window` brackets the measured region (used by the
    /// instruction and profile passes). An error names what failed.
    pub fn trial(&mut self, events: u64, pace: Pace, window: Window<'_>) -> Result<Trial, CellError> {
        let producers = self.point.producers;
        let barrier = Barrier::new(producers + 1);
        let done = AtomicBool::new(false);
        let churned: Mutex<Vec<Arc<Subscriber>>> = Mutex::new(Vec::new());
        let churn_error: Mutex<Option<CellError>> = Mutex::new(None);
        let start_ns = now_ns() + 2_000_000; // leave the threads time to reach the barrier
        for sub in &self.subscribers {
            if let Some(spikes) = sub.latency.as_ref().and_then(|l| l.spikes.as_ref()) {
                spikes.start_ns.store(start_ns, Ordering::Relaxed);
            }
        }
        let bus = &self.bus;
        let batch = self.scenario.batch;
        let (mut started, mut panicked) = (0, false);
        let mut first_ns = u64::MAX;
        let mut elapsed_ns = 0;
        let mut lateness: Option<hdrhistogram::Histogram<u64>> = None;
        let mut schedule_end_ns = 0;
        let mut backlog_ns = 0;
        let mut schedule_ns = 0;
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..producers)
                .map(|p| {
                    let mut templates = self.templates[p].clone();
                    let first_seq = self.next_seq[p];
                    let barrier = &barrier;
                    s.spawn(move || {
                        let schedule = Schedule { pace, start_ns, producers: producers as f64, producer: p as f64 };
                        let mut lateness = (!matches!(pace, Pace::Flat)).then(LocalBuckets::default);
                        let mut batch = (batch > 1).then(|| prepare_batch(&templates, first_seq, batch));
                        barrier.wait();
                        window.producer(true);
                        let begin = now_ns();
                        match (lateness.as_mut(), batch.as_deref_mut()) {
                            (None, None) => publish_flat(bus, &mut templates, first_seq, events),
                            (None, Some(batch)) => publish_batches(bus, batch, first_seq, events),
                            (Some(late), batch) => {
                                publish_paced(bus, &mut templates, batch, first_seq, events, &schedule, late)
                            }
                        }
                        window.producer(false);
                        (begin, lateness, schedule.intended(events.saturating_sub(1)))
                    })
                })
                .collect();
            if let Some(churn) = self.scenario.churn {
                let interval = Duration::from_nanos(1_000_000_000 / churn.per_second.max(1));
                let (done, churned, churn_error) = (&done, &churned, &churn_error);
                s.spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        let sub = Subscriber::new(producers, u64::MAX, None);
                        let listener = HarnessListener::new(sub.clone(), Body::Same, 0);
                        match bus.subscribe(Filter::All, listener) {
                            Ok(id) => {
                                std::thread::sleep(interval / 2);
                                if let Err(e) = bus.unsubscribe(id) {
                                    *churn_error.lock().expect("not poisoned") =
                                        Some(CellError::Churn { operation: "unsubscribe", error: e });
                                    return;
                                }
                                churned.lock().expect("not poisoned").push(sub);
                            }
                            Err(e) => {
                                *churn_error.lock().expect("not poisoned") =
                                    Some(CellError::Churn { operation: "subscribe", error: e });
                                return;
                            }
                        }
                        std::thread::sleep(interval / 2);
                    }
                });
            }
            window.trial(true);
            barrier.wait();
            for h in handles {
                match h.join() {
                    Ok((begin, late, last_intended)) => {
                        first_ns = first_ns.min(begin);
                        started += 1;
                        if let Some(late) = late {
                            late.add_to(lateness.get_or_insert_with(crate::listener::new_histogram));
                            schedule_end_ns = schedule_end_ns.max(last_intended);
                        }
                    }
                    Err(_) => panicked = true,
                }
            }
            bus.flush();
            let end_ns = now_ns();
            elapsed_ns = end_ns.saturating_sub(first_ns);
            if lateness.is_some() {
                backlog_ns = end_ns.saturating_sub(schedule_end_ns);
                schedule_ns = schedule_end_ns.saturating_sub(start_ns);
            }
            window.trial(false);
            done.store(true, Ordering::Relaxed);
        });
        if panicked || started != producers {
            return Err(CellError::Thread("a producer thread panicked".into()));
        }
        for p in 0..producers {
            self.count_published(p, events);
        }
        if let Some(e) = churn_error.into_inner().expect("not poisoned") {
            return Err(e);
        }
        let deliveries = self.verify(&churned.into_inner().expect("not poisoned"))?;
        Ok(Trial { events: events * producers as u64, deliveries, elapsed_ns, lateness, backlog_ns, schedule_ns })
    }

    /// Adds producer `p`'s next `events` events to what it published, and
    /// advances its stream. Run after the trial, outside every measured
    /// region: the producer loop publishes `templates[seq % templates.len()]` with
    /// its seq set (a batched one its batch's copies), nothing else, so the events and their checksums are
    /// recomputed here rather than summed in the loop.
    ///
    /// Not timed, but it is wall time every trial pays (a fast bus
    /// publishes tens of millions of events in a trial): the loop walks
    /// the templates with a wrapping index instead of dividing per event
    /// and sums per template, folding the sums into topics at the end
    /// (template `i` is topic `i % topics`).
    fn count_published(&mut self, p: usize, events: u64) {
        let mut templates = self.templates[p].clone();
        let cycle = templates.len();
        let first = self.next_seq[p];
        let mut per_template = vec![Published::default(); cycle];
        // A batched trial publishes its batch's copies over and over
        // ([`prepare_batch`]): event `seq` is copy `(seq - first) % batch`,
        // made from template `(first + k) % cycle`.
        let batch = self.scenario.batch.max(1);
        let order: Vec<usize> = if batch > 1 {
            (0..batch as u64).map(|k| ((first + k) % cycle as u64) as usize).collect()
        } else {
            let start = (first % cycle as u64) as usize;
            (0..cycle).map(|k| (start + k) % cycle).collect()
        };
        let mut k = 0;
        for seq in first..first + events {
            let index = order[k];
            let event = &mut templates[index];
            event.set_seq(seq);
            let sum = &mut per_template[index];
            sum.count += 1;
            sum.checksum = sum.checksum.wrapping_add(event.checksum());
            k += 1;
            if k == order.len() {
                k = 0;
            }
        }
        let topics = self.scenario.topics;
        for (index, sum) in per_template.iter().enumerate() {
            let total = &mut self.published[p][index % topics];
            total.count += sum.count;
            total.checksum = total.checksum.wrapping_add(sum.checksum);
        }
        self.next_seq[p] = first + events;
    }

    /// Checks every subscriber against what was published; returns the
    /// deliveries made to permanent subscribers over this rig's life.
    fn verify(&mut self, churned: &[Arc<Subscriber>]) -> Result<u64, CellError> {
        let lossy = self.lossy;
        let stats = self.bus.stats();
        if stats.listener_panics != self.panics_before {
            return Err(CellError::ListenerPanics(stats.listener_panics - self.panics_before));
        }
        let mut delivered = 0;
        let mut shortfall = 0;
        for (i, (sub, filter)) in self.subscribers.iter().zip(&self.filters).enumerate() {
            for (p, tally) in sub.tallies.iter().enumerate() {
                let due = Published::expected(&self.published[p], *filter);
                let (got, short) = check_tally(Receiver::Subscriber(i), p, tally, due, lossy)?;
                delivered += got;
                shortfall += short;
            }
        }
        if lossy {
            let dropped = stats.dropped - self.dropped_before;
            // Without churn every drop belongs to a permanent subscriber, so
            // the counts must agree exactly. With churn, short-lived
            // subscribers lose events too (counted by the bus, but a loss at
            // the end of a subscription leaves no gap to see), so the check
            // is that every loss seen at a permanent subscriber was counted.
            // A bus may also count a drop before its filter check (tokio's
            // broadcast lags per receiver, whatever the topic), so with
            // several topics the counted drops only bound the losses.
            let churn = self.scenario.churn.is_some() || self.scenario.topics > 1;
            if shortfall > dropped {
                return Err(CellError::SilentLoss { missing: shortfall, counted: dropped });
            }
            if !churn && shortfall < dropped {
                return Err(CellError::Overcounted { missing: shortfall, counted: dropped });
            }
        }
        for (i, sub) in churned.iter().enumerate() {
            for (p, tally) in sub.tallies.iter().enumerate() {
                let (gaps, disorder) = (tally.missing.load(Ordering::Acquire), tally.disorder.load(Ordering::Acquire));
                if disorder != 0 || (!lossy && gaps != 0) {
                    return Err(CellError::Gaps { receiver: Receiver::Churned(i), producer: p, gaps, disorder });
                }
            }
        }
        Ok(delivered)
    }

    /// Deliveries subscriber `i` must have received over this rig's life
    /// (all trials), from what was published and its filter.
    pub fn expected_deliveries(&self, i: usize) -> u64 {
        self.published.iter().map(|by_topic| Published::expected(by_topic, self.filters[i]).count).sum()
    }

    /// Drops the bus has counted since the rig was built.
    pub fn dropped(&self) -> u64 {
        self.bus.stats().dropped - self.dropped_before
    }

    /// Shuts the bus down (joining its threads); returns the drops it
    /// counted since the rig was built.
    pub fn finish(self) -> u64 {
        self.bus.shutdown().dropped - self.dropped_before
    }
}
