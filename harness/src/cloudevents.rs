//! The passes of a `cloudevents` cell: documents decoded into typed events,
//! routed by `type` through the bus to one typed handler per type, every
//! delivery verified.
//!
//! # How events cross a bus
//! - **Owned** events (`OwnedRouted`) own their strings: any bus can take
//!   them; queueing fan-out buses clone them per subscriber.
//! - **Borrowed** events point into the producer's input buffer (binary
//!   mode: into the message, and into the buffer decoded header values go
//!   to), which the next document overwrites. They travel as a `Scoped` pointer that is
//!   valid only *during* the `publish` call, so only buses that deliver
//!   in-line — on the publisher's thread, before `publish` returns
//!   (`Capabilities::asynchronous == false`) — may carry them; the runner
//!   skips the other buses with the reason. As a guard, each producer opens
//!   an epoch for the duration of each publish and the listener refuses (and
//!   counts, failing the cell) a borrowed event delivered outside it.
//!
//! # What is timed
//! - **decode**: copy each document into the reused mutable buffer, decode it
//!   with the cell's decoder into the cell's representation; no bus. In
//!   binary content mode (`mode=binary`), read the message's headers and
//!   check its body, copied into that buffer, with the cell's decoder when
//!   it is JSON (`Decoders::decode_binary`); bytes count header names,
//!   values and body.
//! - **decode + route**: the same, then the type's topic, the producer's
//!   checksum (for verification) and `publish`; `flush` at the end of the
//!   trial. Only the corpus's valid documents are timed; invalid ones are
//!   counted by reason before, untimed.

use crate::drive::{Published, Window};
use crate::error::{CellError, Receiver, check_tally};
use crate::listener::{Subscriber, now_ns};
use crate::passes::{Cell, Outcome, Rates};
use crate::probe::{Instruments, Pass, ProbeRequest, ProbeResponse};
use crate::stats;
use buslab_impls::{BusConfig, Event, EventBus, Filter, Listener, Strategy, Topic};
use buslab_scenarios::cloudevents::decode::{ExtensionsFamily, MapFamily, StructFamily};
use buslab_scenarios::cloudevents::{
    Borrow, CloudEvent, Content, Corpus, DecodeError, Decoder, Decoders, ExtensionMode, Extensions, Limits, Own,
    Representation, TypeTopics, Variant,
};
use buslab_scenarios::results::CloudEvents;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

/// Why `bus` cannot carry the cell's events, if it cannot (borrowed events
/// on a bus that delivers on its own threads).
pub fn skip_reason(bus: &str, asynchronous: bool, point: Option<Variant>) -> Option<String> {
    let ce = point?;
    (ce.representation == Representation::Borrowed && asynchronous).then(|| {
        format!(
            "borrowed events point into the input buffer and live only during the publish call; {bus} delivers on its own threads after publish returns (owned events measure it)"
        )
    })
}

/// An owned event on its way through a bus.
#[derive(Clone, Debug)]
pub(crate) struct OwnedRouted<X> {
    producer: u32,
    seq: u64,
    topic: Topic,
    event: CloudEvent<'static, X>,
}

impl<X: Extensions<'static> + 'static> Event for OwnedRouted<X> {
    #[inline]
    fn topic(&self) -> Topic {
        self.topic
    }
}

/// A borrowed event on its way through an in-line bus: a pointer to the
/// event on the publishing producer's stack, valid while its epoch is open.
pub(crate) struct Scoped<F> {
    producer: u32,
    seq: u64,
    topic: Topic,
    epoch: u64,
    event: *const (),
    _family: PhantomData<fn() -> F>,
}

impl<F> Clone for Scoped<F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for Scoped<F> {}

// SAFETY: the pointer is only dereferenced by `CeListener` while the
// producer's epoch for this very event is open, i.e. during the `publish`
// call, with the producer's thread blocked in that call; the event it points
// to is `Sync` (it holds `Cow<str>`s and plain data), so reading it from the
// thread an in-line bus calls the listener on is sound.
unsafe impl<F> Send for Scoped<F> {}
// SAFETY: as above; a `Scoped` is an immutable pointer and never writes.
unsafe impl<F> Sync for Scoped<F> {}

impl<F: 'static> Event for Scoped<F> {
    #[inline]
    fn topic(&self) -> Topic {
        self.topic
    }
}

/// One open epoch per producer (0: none open).
#[repr(align(64))]
#[derive(Default)]
struct EpochSlot(AtomicU64);

/// The listener of a cloudevents cell: a typed handler for one event type
/// (its subscription's topic). It checksums the event (reading every
/// attribute), runs the scenario's work and records the delivery.
pub(crate) struct CeListener {
    subscriber: Arc<Subscriber>,
    /// Iterations of the work loop per delivery ([`crate::work`]).
    work: u64,
    epochs: Arc<[EpochSlot]>,
    stale: Arc<AtomicU64>,
}

impl CeListener {
    #[inline]
    fn deliver(&self, producer: u32, seq: u64, checksum: u64) {
        let Some(tally) = self.subscriber.tallies.get(producer as usize) else { return };
        if self.work != 0 {
            tally.keep(crate::work::run(self.work, seq));
        }
        tally.record_parts(seq, checksum);
    }
}

impl<X: Extensions<'static> + 'static> Listener<OwnedRouted<X>> for CeListener {
    #[inline]
    fn on_event(&self, event: &OwnedRouted<X>) {
        self.deliver(event.producer, event.seq, event.event.checksum());
    }
}

impl<F: ExtensionsFamily> Listener<Scoped<F>> for CeListener {
    #[inline]
    fn on_event(&self, event: &Scoped<F>) {
        let open = self.epochs.get(event.producer as usize).map(|s| s.0.load(Ordering::Acquire));
        if open != Some(event.epoch) {
            self.stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // SAFETY: the epoch is open, so the producer is inside the `publish`
        // call that carries this event and the event it points to is alive
        // and unchanged (see `Scoped`); the pointer was made from a
        // `&CloudEvent<'s, F::Of<'s>>`, and lifetimes do not change layout.
        // The reference does not escape this call.
        let decoded = unsafe { &*event.event.cast::<CloudEvent<'static, F::Of<'static>>>() };
        self.deliver(event.producer, event.seq, decoded.checksum());
    }
}

/// What a producer needs to decode and publish.
pub(crate) struct Producer<'a> {
    decoders: Decoders,
    decoder: Decoder,
    limits: Limits,
    routes: &'a TypeTopics,
    index: u32,
    epochs: &'a [EpochSlot],
    next_epoch: u64,
}

/// A representation × extension mode: the bus event type, and how a document
/// becomes one.
pub(crate) trait Flavor: 'static {
    /// The event the bus carries.
    type Event: Event;
    /// Decodes `doc` and publishes it as event `seq`; returns its topic and
    /// checksum.
    fn publish<B: EventBus<Event = Self::Event>>(
        p: &mut Producer<'_>,
        bus: &B,
        doc: &Content,
        seq: u64,
    ) -> Result<(Topic, u64), DecodeError>;
    /// Decodes `doc` and drops the event.
    fn decode(decoders: &mut Decoders, decoder: Decoder, doc: &Content, limits: Limits) -> Result<(), DecodeError>;
}

/// Owned events with extension family `F`.
pub(crate) struct OwnedFlavor<F>(PhantomData<F>);
/// Borrowed events with extension family `F`.
pub(crate) struct BorrowedFlavor<F>(PhantomData<F>);

impl<F: ExtensionsFamily> Flavor for OwnedFlavor<F>
where
    F::Of<'static>: 'static,
{
    type Event = OwnedRouted<F::Of<'static>>;

    #[inline]
    fn publish<B: EventBus<Event = Self::Event>>(
        p: &mut Producer<'_>,
        bus: &B,
        doc: &Content,
        seq: u64,
    ) -> Result<(Topic, u64), DecodeError> {
        let event = p.decoders.decode_content::<Own, F::Of<'static>>(p.decoder, doc, p.limits)?;
        let topic = p.routes.topic(&event.ty);
        let checksum = event.checksum();
        bus.publish(OwnedRouted { producer: p.index, seq, topic, event });
        Ok((topic, checksum))
    }

    #[inline]
    fn decode(decoders: &mut Decoders, decoder: Decoder, doc: &Content, limits: Limits) -> Result<(), DecodeError> {
        let event = decoders.decode_content::<Own, F::Of<'static>>(decoder, doc, limits)?;
        std::hint::black_box(&event);
        Ok(())
    }
}

impl<F: ExtensionsFamily> Flavor for BorrowedFlavor<F> {
    type Event = Scoped<F>;

    #[inline]
    fn publish<B: EventBus<Event = Self::Event>>(
        p: &mut Producer<'_>,
        bus: &B,
        doc: &Content,
        seq: u64,
    ) -> Result<(Topic, u64), DecodeError> {
        let event = p.decoders.decode_content::<Borrow, F::Of<'_>>(p.decoder, doc, p.limits)?;
        let topic = p.routes.topic(&event.ty);
        let checksum = event.checksum();
        p.next_epoch += 1;
        let slot = &p.epochs[p.index as usize].0;
        slot.store(p.next_epoch, Ordering::Release);
        let ptr = (&event as *const CloudEvent<'_, F::Of<'_>>).cast::<()>();
        bus.publish(Scoped { producer: p.index, seq, topic, epoch: p.next_epoch, event: ptr, _family: PhantomData });
        slot.store(0, Ordering::Release);
        drop(event);
        Ok((topic, checksum))
    }

    #[inline]
    fn decode(decoders: &mut Decoders, decoder: Decoder, doc: &Content, limits: Limits) -> Result<(), DecodeError> {
        let event = decoders.decode_content::<Borrow, F::Of<'_>>(decoder, doc, limits)?;
        std::hint::black_box(&event);
        Ok(())
    }
}

/// The corpus of a cell, checked with the cell's decoder.
pub(crate) struct Prepared {
    /// The valid documents in the cell's content mode, in corpus order.
    pub(crate) documents: Vec<Content>,
    /// Routes by type.
    pub(crate) routes: TypeTopics,
    /// The cell's CloudEvents figures so far: errors and corpus.
    pub(crate) result: CloudEvents,
    /// Size limit.
    pub(crate) limits: Limits,
    /// The cell's axes.
    pub(crate) point: Variant,
}

/// Loads the corpus (`request.corpus`, else generated from the scenario's
/// settings) in the cell's content mode (valid events given in the other
/// mode converted) and classifies it with the cell's decoder (untimed).
pub(crate) fn prepare(request: &ProbeRequest) -> Result<Prepared, CellError> {
    let point = request.point.cloudevents.ok_or_else(no_axes)?;
    let settings = request.scenario.cloudevents.clone().unwrap_or_default();
    let corpus = match &request.corpus {
        Some(path) => Corpus::load(path).map_err(|e| CellError::Input(e.to_string()))?,
        None => Corpus::generated(settings.seed, settings.documents),
    }
    .in_mode(point.mode);
    let limits = settings.limits();
    let classified = corpus.classify(point.decoder, limits);
    if classified.valid.is_empty() {
        return Err(CellError::Input(format!(
            "no valid document in corpus {} ({} documents; errors: {:?})",
            corpus.source,
            corpus.documents.len(),
            classified.errors
        )));
    }
    let documents: Vec<Content> = classified.valid.iter().map(|&i| corpus.documents[i].content.clone()).collect();
    let mut decoders = Decoders::default();
    let mut types = Vec::with_capacity(documents.len());
    for doc in &documents {
        let event = decoders
            .decode_content::<Own, buslab_scenarios::cloudevents::StructExtensions<'static>>(point.decoder, doc, limits)
            .map_err(|e| CellError::Input(format!("a document valid a moment ago is now refused: {e}")))?;
        types.push(event.ty.into_owned());
    }
    let routes = TypeTopics::new(types.iter().map(String::as_str));
    let summary = corpus.summary(&classified);
    Ok(Prepared {
        documents,
        routes,
        result: CloudEvents { errors: classified.errors, corpus: summary, ..CloudEvents::default() },
        limits,
        point,
    })
}

/// One cell's bus, handlers, corpus and verification state: the
/// CloudEvents [`Cell`] of flavor `Fl`.
struct CeRig<B: EventBus, Fl> {
    bus: B,
    prepared: Prepared,
    subscribers: Vec<Arc<Subscriber>>,
    filters: Vec<Filter>,
    producers: usize,
    next_seq: Vec<u64>,
    published: Vec<Vec<Published>>,
    epochs: Arc<[EpochSlot]>,
    stale: Arc<AtomicU64>,
    panics_before: u64,
    dropped_before: u64,
    /// The bus declares itself lossy: losses are allowed if counted.
    lossy: bool,
    _flavor: PhantomData<Fl>,
}

/// Spawns a decoding thread with the stack the decoders need at
/// [`MAX_DEPTH`](buslab_scenarios::cloudevents::decode::MAX_DEPTH); a thread
/// that cannot be spawned reports it as its result.
fn producer_thread<'scope, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    f: impl FnOnce() -> Result<T, CellError> + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, Result<T, CellError>> {
    let builder = std::thread::Builder::new().stack_size(buslab_scenarios::cloudevents::decode::STACK_BYTES);
    match builder.spawn_scoped(s, f) {
        Ok(handle) => handle,
        Err(e) => s.spawn(move || Err(CellError::Thread(format!("spawning a producer thread: {e}")))),
    }
}

fn no_axes() -> CellError {
    CellError::Request("a cloudevents cell without decoder/representation axes".into())
}

fn first_document(producer: usize, producers: usize, documents: usize) -> usize {
    producer * documents / producers.max(1)
}

impl<B: EventBus<Listener = CeListener>, Fl: Flavor<Event = B::Event>> CeRig<B, Fl> {
    fn new(request: &ProbeRequest, prepared: Prepared, lossy: bool) -> Result<Self, CellError> {
        let point = request.point;
        let topics = prepared.routes.topics();
        let config = BusConfig {
            capacity: request.scenario.bus.capacity,
            wait: request.scenario.bus.wait,
            max_threads: crate::drive::consumer_threads(&request.scenario, point, buslab_impls::cores()),
            producers: point.producers,
            topics,
        };
        let bus = B::new(&config)?;
        let epochs: Arc<[EpochSlot]> = (0..point.producers).map(|_| EpochSlot::default()).collect();
        let stale = Arc::new(AtomicU64::new(0));
        let mut subscribers = Vec::new();
        let mut filters = Vec::new();
        for i in 0..point.subscribers {
            let subscriber = Subscriber::new(point.producers, 0, None);
            let filter = Filter::Topic((i % topics) as Topic);
            let listener = CeListener {
                subscriber: subscriber.clone(),
                work: crate::work::iterations(request.scenario.listener_work_ns),
                epochs: epochs.clone(),
                stale: stale.clone(),
            };
            bus.subscribe(filter, listener).map_err(|error| CellError::Subscribe {
                what: "handler",
                index: i,
                error,
            })?;
            subscribers.push(subscriber);
            filters.push(filter);
        }
        let stats = bus.stats();
        Ok(CeRig {
            bus,
            prepared,
            subscribers,
            filters,
            producers: point.producers,
            next_seq: vec![0; point.producers],
            published: vec![vec![Published::default(); topics]; point.producers],
            epochs,
            stale,
            panics_before: stats.listener_panics,
            dropped_before: stats.dropped,
            lossy,
            _flavor: PhantomData,
        })
    }

    /// Decodes and publishes `events` documents per producer, flushes, and
    /// verifies every handler.
    fn routed_trial(&mut self, events: u64, window: Window<'_>) -> Result<Outcome, CellError> {
        let producers = self.producers;
        let barrier = Barrier::new(producers + 1);
        let bus = &self.bus;
        let prepared = &self.prepared;
        let docs = &prepared.documents;
        let topics = prepared.routes.topics();
        let mut outcomes = Vec::new();
        let mut first_ns = u64::MAX;
        let mut elapsed_ns = 0;
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..producers)
                .map(|p| {
                    let first_seq = self.next_seq[p];
                    let (barrier, epochs) = (&barrier, &self.epochs);
                    producer_thread(s, move || -> Result<(u64, u64, Vec<Published>), CellError> {
                        let mut producer = Producer {
                            decoders: Decoders::default(),
                            decoder: prepared.point.decoder,
                            limits: prepared.limits,
                            routes: &prepared.routes,
                            index: p as u32,
                            epochs,
                            next_epoch: 0,
                        };
                        let mut published = vec![Published::default(); topics];
                        let mut at = first_document(p, producers, docs.len());
                        let mut bytes = 0u64;
                        barrier.wait();
                        window.producer(true);
                        let begin = now_ns();
                        for i in 0..events {
                            let doc = &docs[at];
                            at = if at + 1 == docs.len() { 0 } else { at + 1 };
                            let (topic, checksum) = Fl::publish(&mut producer, bus, doc, first_seq + i)
                                .map_err(|error| CellError::Refused { producer: p, error })?;
                            let sum = &mut published[usize::from(topic)];
                            sum.count += 1;
                            sum.checksum = sum.checksum.wrapping_add(checksum);
                            bytes += doc.len() as u64;
                        }
                        window.producer(false);
                        Ok((begin, bytes, published))
                    })
                })
                .collect();
            window.trial(true);
            barrier.wait();
            for h in handles {
                outcomes.push(h.join().unwrap_or_else(|_| Err(CellError::Thread("a producer thread panicked".into()))));
            }
            bus.flush();
            elapsed_ns = now_ns();
            window.trial(false);
        });
        let mut bytes = 0;
        for (p, outcome) in outcomes.into_iter().enumerate() {
            let (begin, b, published) = outcome?;
            first_ns = first_ns.min(begin);
            bytes += b;
            for (t, sum) in published.into_iter().enumerate() {
                let total = &mut self.published[p][t];
                total.count += sum.count;
                total.checksum = total.checksum.wrapping_add(sum.checksum);
            }
            self.next_seq[p] += events;
        }
        let deliveries = self.verify()?;
        Ok(Outcome {
            events: events * producers as u64,
            bytes,
            deliveries,
            elapsed_ns: elapsed_ns.saturating_sub(first_ns),
        })
    }

    /// Every handler got exactly the events of its type, in order, intact.
    fn verify(&self) -> Result<u64, CellError> {
        let stale = self.stale.load(Ordering::Acquire);
        if stale != 0 {
            return Err(CellError::Stale(stale));
        }
        let stats = self.bus.stats();
        if stats.listener_panics != self.panics_before {
            return Err(CellError::ListenerPanics(stats.listener_panics - self.panics_before));
        }
        let mut delivered = 0;
        let mut shortfall = 0;
        for (i, (sub, filter)) in self.subscribers.iter().zip(&self.filters).enumerate() {
            for (p, tally) in sub.tallies.iter().enumerate() {
                let due = Published::expected(&self.published[p], *filter);
                let (got, short) = check_tally(Receiver::Handler(i), p, tally, due, self.lossy)?;
                delivered += got;
                shortfall += short;
            }
        }
        // A lossy bus must have counted every loss. It may count a drop
        // before its filter check (tokio's broadcast lags per receiver,
        // whatever the topic), and cloudevents cells always have several
        // topics, so the counted drops bound the losses from above.
        let dropped = stats.dropped - self.dropped_before;
        if shortfall > dropped {
            return Err(CellError::SilentLoss { missing: shortfall, counted: dropped });
        }
        Ok(delivered)
    }
}

/// Decodes `events` documents per producer, no bus.
fn decode_trial<Fl: Flavor>(prepared: &Prepared, producers: usize, events: u64) -> Result<Outcome, CellError> {
    let barrier = Barrier::new(producers + 1);
    let docs = &prepared.documents;
    let mut outcomes = Vec::new();
    let mut end = 0;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let barrier = &barrier;
                producer_thread(s, move || -> Result<(u64, u64), CellError> {
                    let mut decoders = Decoders::default();
                    let mut at = first_document(p, producers, docs.len());
                    let mut bytes = 0u64;
                    barrier.wait();
                    let begin = now_ns();
                    for _ in 0..events {
                        let doc = &docs[at];
                        at = if at + 1 == docs.len() { 0 } else { at + 1 };
                        Fl::decode(&mut decoders, prepared.point.decoder, doc, prepared.limits)
                            .map_err(|error| CellError::Refused { producer: p, error })?;
                        bytes += doc.len() as u64;
                    }
                    Ok((begin, bytes))
                })
            })
            .collect();
        barrier.wait();
        for h in handles {
            outcomes.push(h.join().unwrap_or_else(|_| Err(CellError::Thread("a decoding thread panicked".into()))));
        }
        end = now_ns();
    });
    let mut first = u64::MAX;
    let mut bytes = 0;
    for outcome in outcomes {
        let (begin, b) = outcome?;
        first = first.min(begin);
        bytes += b;
    }
    Ok(Outcome { events: events * producers as u64, deliveries: 0, elapsed_ns: end.saturating_sub(first), bytes })
}

/// Runs `request`'s pass of a cloudevents cell on strategy `S`: the cell's
/// corpus is loaded and classified, its rig built (setup, untimed), then the
/// pass runs on it through the one pipeline ([`crate::passes`]).
pub(crate) fn run<S: Strategy>(
    request: &ProbeRequest,
    instruments: &dyn Instruments,
) -> Result<ProbeResponse, CellError> {
    let point = request.point.cloudevents.ok_or_else(no_axes)?;
    if let Some(reason) = skip_reason(S::NAME, S::CAPABILITIES.asynchronous, Some(point)) {
        return Err(CellError::Request(reason));
    }
    if request.pass == Pass::Latency {
        return Err(CellError::Request("the latency pass does not apply to cloudevents cells".into()));
    }
    let lossy = S::CAPABILITIES.lossy;
    match (point.representation, point.extensions) {
        (Representation::Owned, ExtensionMode::Struct) => {
            pass::<S::Bus<OwnedRouted<_>, CeListener>, OwnedFlavor<StructFamily>>(request, lossy, instruments)
        }
        (Representation::Owned, ExtensionMode::Map) => {
            pass::<S::Bus<OwnedRouted<_>, CeListener>, OwnedFlavor<MapFamily>>(request, lossy, instruments)
        }
        (Representation::Borrowed, ExtensionMode::Struct) => {
            pass::<S::Bus<Scoped<StructFamily>, CeListener>, BorrowedFlavor<StructFamily>>(request, lossy, instruments)
        }
        (Representation::Borrowed, ExtensionMode::Map) => {
            pass::<S::Bus<Scoped<MapFamily>, CeListener>, BorrowedFlavor<MapFamily>>(request, lossy, instruments)
        }
    }
}

fn pass<B, Fl>(request: &ProbeRequest, lossy: bool, instruments: &dyn Instruments) -> Result<ProbeResponse, CellError>
where
    B: EventBus<Listener = CeListener>,
    Fl: Flavor<Event = B::Event>,
{
    let rig = CeRig::<B, Fl>::new(request, prepare(request)?, lossy)?;
    crate::passes::run(request, instruments, rig)
}

impl<B, Fl> Cell for CeRig<B, Fl>
where
    B: EventBus<Listener = CeListener>,
    Fl: Flavor<Event = B::Event>,
{
    fn trial(&mut self, events: u64, window: Window<'_>) -> Result<Outcome, CellError> {
        self.routed_trial(events, window)
    }

    fn delivered(&self) -> u64 {
        self.subscribers.iter().map(|s| s.count()).sum()
    }

    fn cycle(&self) -> u64 {
        self.prepared.documents.len() as u64
    }

    fn dropped(&self) -> u64 {
        self.bus.stats().dropped - self.dropped_before
    }

    /// The same documents decoded by the same decoder into the same
    /// representation, without a bus: what decoding alone costs.
    fn side_trial(&mut self, events: u64) -> Result<Option<Outcome>, CellError> {
        decode_trial::<Fl>(&self.prepared, self.producers, events).map(Some)
    }

    fn complete(&self, rates: &Rates, response: &mut ProbeResponse) {
        let mut ce = self.prepared.result.clone();
        ce.decode_events_per_sec = stats::estimate(&rates.side_events);
        ce.decode_bytes_per_sec = stats::estimate(&rates.side_bytes);
        ce.route_events_per_sec = stats::estimate(&rates.events);
        ce.route_bytes_per_sec = stats::estimate(&rates.bytes);
        response.cloudevents = Some(ce);
    }

    fn finish(self) -> u64 {
        self.bus.shutdown().dropped - self.dropped_before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Budget;
    use crate::probe::tests::NoInstruments;
    use buslab_scenarios::cloudevents::ContentMode;

    fn request(bus: &str, text: &str, index: usize) -> ProbeRequest {
        let scenario = buslab_scenarios::spec::parse("t.toml", text, buslab_scenarios::Origin::File("t".into()))
            .expect("valid test scenario");
        ProbeRequest {
            pass: Pass::Throughput,
            bus: bus.into(),
            point: scenario.points()[index],
            scenario,
            budget: Budget::QUICK,
            rates: Vec::new(),
            corpus: None,
        }
    }

    const SMALL: &str =
        "name = \"ce\"\nsubscribers = 9\npayload = \"cloudevents\"\nevents = 300\n[cloudevents]\ndocuments = 60\n";
    const TWO: &str = "name = \"ce\"\nproducers = 2\nsubscribers = 3\npayload = \"cloudevents\"\nevents = 300\n[cloudevents]\ndocuments = 60\ndecoders = \"simd_json\"\n";

    #[test]
    fn every_flavor_decodes_routes_and_verifies_on_an_inline_bus() {
        let scenario = request("router", SMALL, 0).scenario;
        for (i, point) in scenario.points().iter().enumerate() {
            let r = crate::probe::run(&request("router", SMALL, i), &NoInstruments);
            assert_eq!(r.error, None, "{point:?}");
            let ce = r.cloudevents.expect("measured");
            assert!(ce.decode_events_per_sec.median > 0.0 && ce.route_bytes_per_sec.median > 0.0);
            assert_eq!((ce.corpus.documents, ce.corpus.invalid), (60, 0));
            assert!(ce.errors.is_empty());
            let t = r.throughput.expect("throughput");
            assert_eq!(t.events_per_sec, ce.route_events_per_sec);
            // 9 handlers over 8 types: every event reaches one handler, type 0's reach two.
            assert!(t.deliveries_per_sec.median >= t.events_per_sec.median * 0.99, "{t:?}");
        }
    }

    #[test]
    fn owned_events_cross_an_asynchronous_bus_and_borrowed_ones_are_refused() {
        // Index 0: owned × struct; index 2: borrowed × struct.
        let r = crate::probe::run(&request("channel", TWO, 0), &NoInstruments);
        assert_eq!(r.error, None);
        assert!(r.cloudevents.is_some());
        let r = crate::probe::run(&request("any_router", TWO, 2), &NoInstruments);
        assert_eq!(r.error, None, "two producers publish borrowed events through an in-line bus");
        let r = crate::probe::run(&request("channel", TWO, 2), &NoInstruments);
        assert!(r.error.expect("refused").contains("borrowed events"));
    }

    #[test]
    fn a_listener_refuses_a_borrowed_event_outside_its_publish() {
        let epochs: Arc<[EpochSlot]> = (0..1).map(|_| EpochSlot::default()).collect();
        let stale = Arc::new(AtomicU64::new(0));
        let listener = CeListener {
            subscriber: Subscriber::new(1, 0, None),
            work: 0,
            epochs: epochs.clone(),
            stale: stale.clone(),
        };
        let late = Scoped::<StructFamily> {
            producer: 0,
            seq: 0,
            topic: 0,
            epoch: 7,
            event: std::ptr::null(),
            _family: PhantomData,
        };
        // Epoch 7 is not open: the (null) pointer must not be read.
        Listener::on_event(&listener, &late);
        assert_eq!(stale.load(Ordering::Relaxed), 1);
        assert_eq!(listener.subscriber.count(), 0);
    }

    #[test]
    fn a_corpus_with_invalid_documents_measures_the_valid_ones_and_counts_the_rest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.ndjson");
        let mut text = String::new();
        for doc in buslab_scenarios::cloudevents::generate::documents(3, 20) {
            text.push_str(std::str::from_utf8(&doc).expect("UTF-8"));
            text.push('\n');
        }
        text.push_str("{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}\n{oops\n");
        std::fs::write(&path, text).expect("write");
        let mut req = request("fixed_array", SMALL, 1);
        req.corpus = Some(path);
        let r = crate::probe::run(&req, &NoInstruments);
        assert_eq!(r.error, None);
        let ce = r.cloudevents.expect("measured");
        assert_eq!((ce.corpus.documents, ce.corpus.invalid), (22, 2));
        assert_eq!(ce.errors.get("wrong-specversion"), Some(&1));
        assert_eq!(ce.errors.get("malformed-json"), Some(&1));
        assert_eq!(ce.corpus.name, "events.ndjson");
    }

    #[test]
    fn a_binary_corpus_is_measured_in_both_modes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.http");
        let mut stream = Vec::new();
        for message in buslab_scenarios::cloudevents::generate::messages(3, 20) {
            stream.extend_from_slice(&message.to_wire());
        }
        stream.extend_from_slice(b"POST / HTTP/1.1\r\nce-specversion: 1.0\r\nce-id: 1\r\nce-type: t\r\n\r\n");
        std::fs::write(&path, stream).expect("write");
        let scenario = request("router", SMALL, 0).scenario;
        let mut modes = Vec::new();
        for (i, point) in scenario.points().iter().enumerate() {
            let ce = point.cloudevents.expect("a cloudevents point");
            if ce.decoder != Decoder::SonicRsNative || ce.extensions != ExtensionMode::Struct {
                continue;
            }
            let mut req = request("router", SMALL, i);
            req.corpus = Some(path.clone());
            let r = crate::probe::run(&req, &NoInstruments);
            assert_eq!(r.error, None, "{point:?}");
            let figures = r.cloudevents.expect("measured");
            assert_eq!((figures.corpus.documents, figures.corpus.invalid), (21, 1), "{point:?}");
            assert_eq!(figures.errors.get("missing-source"), Some(&1), "{point:?}");
            assert!(figures.decode_bytes_per_sec.median > 0.0);
            modes.push(ce.mode);
        }
        modes.dedup();
        assert_eq!(modes, [ContentMode::Structured, ContentMode::Binary]);
    }

    #[test]
    fn skip_reasons_name_the_bus() {
        let point = Variant {
            decoder: Decoder::SonicRs,
            mode: ContentMode::Structured,
            representation: Representation::Borrowed,
            extensions: ExtensionMode::Struct,
        };
        assert!(skip_reason("ring", true, Some(point)).expect("skipped").contains("ring delivers"));
        assert_eq!(skip_reason("router", false, Some(point)), None);
        assert_eq!(skip_reason("ring", true, Some(Variant { representation: Representation::Owned, ..point })), None);
        assert_eq!(skip_reason("ring", true, None), None);
    }
}
