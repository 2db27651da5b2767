//! The one pass pipeline: every pass of a cell, written once over the
//! [`Cell`] trait that each kind of workload implements.
//!
//! A cell's rig — a bus with its subscribers, fed by producer threads, every
//! trial verified — is a [`Cell`]: the plain event rig ([`crate::drive::Rig`],
//! small and heavy payloads) and the CloudEvents rig
//! ([`crate::cloudevents`], documents decoded and routed by type). The
//! throughput, allocation, instruction and profile passes are generic over
//! it ([`run`]); a new kind of workload is a new `Cell`, not a new copy of
//! the passes. The latency pass offers paced loads, which only the event rig
//! can pace ([`latency`]).
//!
//! Every pass follows the same order: setup (the cell is built by the
//! caller, never timed), then the pass's warm-up, then what it measures.

mod allocations;
mod instructions;
pub mod latency;
mod profile;
mod throughput;

use crate::drive::{Pace, Rig, Window};
use crate::error::CellError;
use crate::listener::HarnessListener;
use crate::probe::{Instruments, Pass, ProbeRequest, ProbeResponse};
use buslab_impls::payload::Payload;

pub use profile::fold;
pub use throughput::Rates;
pub use throughput::loss_rate;

/// One verified trial of a [`Cell`].
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// Events published (all producers).
    pub events: u64,
    /// Deliveries made to permanent subscribers over the cell's life (all
    /// trials so far).
    pub deliveries: u64,
    /// Wall time from the first publish to the end of `flush`, ns.
    pub elapsed_ns: u64,
    /// Input bytes the trial consumed (CloudEvents documents), 0 where
    /// events are not decoded from bytes.
    pub bytes: u64,
}

/// A cell's rig as the passes see it.
///
/// # Contract
/// - [`Cell::trial`] publishes `events` per producer at full speed, waits
///   for every delivery, verifies every subscriber (count, checksum, order)
///   and returns an error naming the failure instead of an outcome; it
///   calls `window` around what the caller measures (see [`Window`]).
/// - Nothing outside `trial` is timed; building the cell is the caller's
///   setup.
pub trait Cell: Sized {
    /// Runs one verified trial of `events` per producer.
    fn trial(&mut self, events: u64, window: Window<'_>) -> Result<Outcome, CellError>;

    /// Deliveries made to permanent subscribers so far.
    fn delivered(&self) -> u64;

    /// Drops the bus has counted since the cell was built.
    fn dropped(&self) -> u64;

    /// Events per producer to publish once before anything is counted or
    /// instrumented, so that the passes see the steady state (every heavy
    /// shape through every pooled envelope); 0 when the first events are
    /// already the steady state.
    fn settling_events(&self) -> u64 {
        0
    }

    /// Events per producer after which the cell's input repeats
    /// (CloudEvents: the corpus's valid documents); 1 where every event is
    /// alike. The instruction pass measures whole cycles, so that its
    /// per-event figure is the input's average whatever the event count.
    fn cycle(&self) -> u64 {
        1
    }

    /// A trial the throughput pass runs beside each measured one,
    /// interleaved with it so that a drift of the machine touches both
    /// alike (CloudEvents: the same documents decoded without a bus); the
    /// default has none.
    fn side_trial(&mut self, _events: u64) -> Result<Option<Outcome>, CellError> {
        Ok(None)
    }

    /// Adds the cell's own figures to its throughput pass's response
    /// (CloudEvents: decode and decode + route rates and bytes/s).
    fn complete(&self, _rates: &throughput::Rates, _response: &mut ProbeResponse) {}

    /// Shuts the bus down (joining its threads); returns the drops it
    /// counted since the cell was built.
    fn finish(self) -> u64;
}

/// Runs `request`'s pass on `cell`: throughput, allocations, instructions or
/// profile (the latency pass has its own entry, [`latency::run`]).
pub fn run<C: Cell>(
    request: &ProbeRequest,
    instruments: &dyn Instruments,
    cell: C,
) -> Result<ProbeResponse, CellError> {
    match request.pass {
        Pass::Throughput => throughput::run(request, cell),
        Pass::Allocations => allocations::run(request, instruments, cell),
        Pass::Instructions => instructions::run(request, instruments, cell),
        Pass::Profile => profile::run(request, cell),
        Pass::Latency => {
            Err(CellError::Request("the latency pass paces its own rigs; it does not run on a built cell".into()))
        }
    }
}

/// Events per producer for a trial of about `ms` at `rate` events/s (all
/// producers), at least 100 and at most the scenario limit.
pub fn events_for(rate: f64, ms: u64, producers: usize) -> u64 {
    let per_producer = rate * (ms as f64 / 1e3) / producers as f64;
    (per_producer.ceil() as u64).clamp(100, buslab_scenarios::spec::MAX_EVENTS)
}

/// Warm-up and calibration: grows a trial until it lasts ≥ `ms`/4, then
/// sizes the measured trials to `ms` from the observed rate (a scenario
/// that fixes its events gets them after a warm-up). Returns events per
/// producer per trial.
fn calibrate<C: Cell>(cell: &mut C, request: &ProbeRequest, ms: u64) -> Result<u64, CellError> {
    if let Some(events) = request.scenario.events {
        cell.trial(events.min(10_000), Window::None)?; // warm-up
        return Ok(events);
    }
    let mut events = 1_000;
    loop {
        let trial = cell.trial(events, Window::None)?;
        let elapsed_ms = trial.elapsed_ns as f64 / 1e6;
        if elapsed_ms * 4.0 >= ms as f64 || events >= 100_000_000 {
            let rate = trial.events as f64 / (trial.elapsed_ns.max(1) as f64 / 1e9);
            return Ok(events_for(rate, ms, request.point.producers));
        }
        events *= if elapsed_ms < 1.0 { 10 } else { 4 };
    }
}

/// Events a warm-up publishes at least when events come in several
/// shapes ([`Payload::SHAPES`], the heavy payload): enough for a pool of
/// 1,024 envelopes (`pooled`'s) to have held every shape in every envelope
/// (the shape of an envelope's event moves by one per lap of 1,024), so
/// that the allocation and instruction passes measure the steady state,
/// not envelopes still growing. 0 for one shape.
fn shapes_warm_up<E: Payload>() -> u64 {
    if E::SHAPES > 1 { 8_192 } else { 0 }
}

impl<B> Cell for Rig<B>
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    fn trial(&mut self, events: u64, window: Window<'_>) -> Result<Outcome, CellError> {
        let trial = Rig::trial(self, events, Pace::Flat, window)?;
        Ok(Outcome { events: trial.events, deliveries: trial.deliveries, elapsed_ns: trial.elapsed_ns, bytes: 0 })
    }

    fn delivered(&self) -> u64 {
        self.subscribers.iter().map(|s| s.count()).sum()
    }

    fn dropped(&self) -> u64 {
        Rig::dropped(self)
    }

    fn settling_events(&self) -> u64 {
        shapes_warm_up::<B::Event>()
    }

    fn finish(self) -> u64 {
        Rig::finish(self)
    }
}
