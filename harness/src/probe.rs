//! The measuring side: `buslab probe`, a child process that runs one pass of
//! one cell and prints its result as one JSON line on stdout.
//!
//! Every pass runs in its own process so that passes never disturb one
//! another (the counting allocator, callgrind's instrumentation or a sampling
//! profiler stay out of the throughput and latency passes), a hung or
//! crashing bus costs one cell and not the run, and the parent can enforce a
//! time limit.

use crate::buckets::Buckets;
use crate::cpu;
use crate::drive::{Pace, Rig, Window};
use crate::listener::{HarnessListener, LatencyRecorder, SpikeRecorder, new_histogram};
use crate::stats;
use buslab_impls::payload::{HeavyEvent, Payload, SmallEvent};
use buslab_impls::{Strategy, StrategyVisitor};
use buslab_scenarios::results::{Allocations, CloudEvents, Latency, Lateness, Profile, Throughput, percentile_lost};
use buslab_scenarios::{PayloadKind, Scenario, SweepPoint};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use buslab_scenarios::metrics::Pass;

/// Sizes of the passes: the defaults, or `--quick`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Independent probe processes that measure each cell's throughput, in
    /// rounds that interleave the buses of a point in rotating order
    /// ([`crate::repeat`]); at least 1.
    pub processes: usize,
    /// Throughput trials after the warm-up, in each process.
    pub trials: usize,
    /// Minimum length of a throughput trial.
    pub trial_ms: u64,
    /// Length of a latency trial at each load.
    pub latency_ms: u64,
    /// Which offered rates the latency pass's shared grid takes.
    pub latency_grid: crate::rates::Grid,
    /// Events per producer in the allocation pass (run at N and 2N).
    pub alloc_events: u64,
    /// Events per producer under callgrind.
    pub callgrind_events: u64,
    /// Length of the profiled trial.
    pub profile_ms: u64,
}

impl Budget {
    /// The default run.
    pub const DEFAULT: Budget = Budget {
        processes: 3,
        trials: 3,
        trial_ms: 200,
        latency_ms: 600,
        latency_grid: crate::rates::Grid::DEFAULT,
        alloc_events: 20_000,
        callgrind_events: 20_000,
        profile_ms: 2_000,
    };
    /// `--quick`: fewer and shorter trials and loads, the same checks. (It
    /// also leaves out the profile pass unless `--pass` names it.) Three
    /// processes stay: fewer would leave an interval over process medians
    /// too wide to tell anything apart.
    pub const QUICK: Budget = Budget {
        processes: 3,
        trials: 2,
        trial_ms: 50,
        latency_ms: 100,
        latency_grid: crate::rates::Grid::QUICK,
        alloc_events: 2_000,
        callgrind_events: 1_000,
        profile_ms: 500,
    };

    /// Events per producer the instruction pass measures for `subscribers`:
    /// `callgrind_events`, scaled down beyond 16 subscribers so that the
    /// deliveries simulated stay about constant across fan-outs (callgrind
    /// runs ~50× slower; per-event figures are divided by N anyway), at
    /// least 50. A warm-up of up to 1000 events precedes them.
    pub fn callgrind_events_for(&self, subscribers: usize) -> u64 {
        (self.callgrind_events.saturating_mul(16) / (subscribers as u64).max(16)).max(50)
    }
}

/// What the parent asks a probe to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// The pass.
    pub pass: Pass,
    /// The bus's stable name.
    pub bus: String,
    /// The scenario.
    pub scenario: Scenario,
    /// The sweep point.
    pub point: SweepPoint,
    /// Pass sizes.
    pub budget: Budget,
    /// Latency pass: the rates to offer, events/s over all producers (see
    /// [`crate::rates`]); ignored by a burst scenario, whose rate is its
    /// pattern's.
    #[serde(default)]
    pub rates: Vec<f64>,
    /// `cloudevents` cells: the engineer's corpus (`--corpus`), else the
    /// scenario's generated one.
    #[serde(default)]
    pub corpus: Option<std::path::PathBuf>,
}

/// What a probe answers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProbeResponse {
    /// A delivery check or the bus failed: the reason (no figure is kept).
    pub error: Option<String>,
    /// Throughput pass result.
    pub throughput: Option<Throughput>,
    /// Latency pass result.
    pub latency: Vec<Latency>,
    /// Allocation pass result.
    pub allocations: Option<Allocations>,
    /// Instruction pass: events measured inside the callgrind window.
    pub measured_events: u64,
    /// Instruction pass: whether other threads ran during the window.
    pub multithreaded: bool,
    /// Profile pass result.
    pub profile: Option<Profile>,
    /// Bus drops counted over the pass.
    pub dropped: u64,
    /// `cloudevents` cells, throughput pass: decode and decode + route
    /// figures, errors and corpus.
    #[serde(default)]
    pub cloudevents: Option<CloudEvents>,
}

/// Hooks that only some builds provide: the allocation counts (the allocation
/// pass needs the binary's global allocator) and callgrind client requests.
pub trait Instruments: Sync {
    /// Current `(total allocations, total bytes, peak bytes)` since counting was
    /// switched on, or `None` when it is not on.
    fn heap(&self) -> Option<(u64, u64, u64)>;
    /// Start (`true`) or end (`false`) of the region callgrind measures.
    fn callgrind_window(&self, open: bool);
    /// The instruction pass's setup is done: callgrind, started with its
    /// instrumentation off, switches it on here, before the warm-up that
    /// fills its cache simulator and the measured region.
    fn callgrind_instrument(&self) {}
}

/// Runs a probe request in this process.
pub fn run(request: &ProbeRequest, instruments: &dyn Instruments) -> ProbeResponse {
    struct Visit<'a> {
        request: &'a ProbeRequest,
        instruments: &'a dyn Instruments,
    }
    impl StrategyVisitor for Visit<'_> {
        type Output = ProbeResponse;
        fn visit<S: Strategy>(self) -> ProbeResponse {
            let lossy = S::CAPABILITIES.lossy;
            match self.request.scenario.payload {
                PayloadKind::Small => {
                    run_pass::<S::Bus<SmallEvent, HarnessListener>>(self.request, lossy, self.instruments)
                }
                PayloadKind::Heavy => {
                    run_pass::<S::Bus<HeavyEvent, HarnessListener>>(self.request, lossy, self.instruments)
                }
                PayloadKind::CloudEvents => crate::cloudevents::run::<S>(self.request, self.instruments),
            }
        }
    }
    let found = match buslab_impls::visit(&request.bus, Visit { request, instruments }) {
        Some(response) => Some(response),
        None => crate::reference::visit(&request.bus, Visit { request, instruments }),
    };
    found.unwrap_or_else(|| ProbeResponse {
        error: Some(format!("unknown bus `{}`", request.bus)),
        ..Default::default()
    })
}

fn run_pass<B>(request: &ProbeRequest, lossy: bool, instruments: &dyn Instruments) -> ProbeResponse
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    let result = match request.pass {
        Pass::Throughput => throughput::<B>(request, lossy),
        Pass::Latency => latency::<B>(request, lossy),
        Pass::Allocations => allocations::<B>(request, lossy, instruments),
        Pass::Instructions => instructions::<B>(request, lossy, instruments),
        Pass::Profile => profile::<B>(request, lossy),
    };
    result.unwrap_or_else(|error| ProbeResponse { error: Some(error), ..Default::default() })
}

fn no_recorder(_: usize) -> Option<LatencyRecorder> {
    None
}

fn new_rig<B>(request: &ProbeRequest, lossy: bool) -> Result<Rig<B>, String>
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    Rig::<B>::new(Arc::new(request.scenario.clone()), request.point, lossy, &no_recorder)
}

/// Events per producer for a trial of about `ms` at `rate` events/s (all
/// producers), at least 100 and at most the scenario limit.
fn events_for(rate: f64, ms: u64, producers: usize) -> u64 {
    let per_producer = rate * (ms as f64 / 1e3) / producers as f64;
    (per_producer.ceil() as u64).clamp(100, buslab_scenarios::spec::MAX_EVENTS)
}

/// Warm-up and calibration: grows a trial until it lasts ≥ `ms`/4, then
/// sizes the measured trials to `ms` from the observed rate. Returns events
/// per producer per trial.
fn calibrate<B>(rig: &mut Rig<B>, request: &ProbeRequest, ms: u64) -> Result<u64, String>
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    if let Some(events) = request.scenario.events {
        rig.trial(events.min(10_000), Pace::Flat, Window::None)?; // warm-up
        return Ok(events);
    }
    let mut events = 1_000;
    loop {
        let trial = rig.trial(events, Pace::Flat, Window::None)?;
        let elapsed_ms = trial.elapsed_ns as f64 / 1e6;
        if elapsed_ms * 4.0 >= ms as f64 || events >= 100_000_000 {
            let rate = trial.events as f64 / (trial.elapsed_ns.max(1) as f64 / 1e9);
            return Ok(events_for(rate, ms, request.point.producers));
        }
        events *= if elapsed_ms < 1.0 { 10 } else { 4 };
    }
}

fn throughput<B>(request: &ProbeRequest, lossy: bool) -> Result<ProbeResponse, String>
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    let mut rig = new_rig::<B>(request, lossy)?;
    let events = calibrate(&mut rig, request, request.budget.trial_ms)?;
    let dropped_before = rig.bus.stats().dropped;
    let mut rates = Vec::new();
    let mut delivery_rates = Vec::new();
    let mut trial_ns = Vec::new();
    let mut cpu = cpu::PerEvent::default();
    let mut deliveries_before = rig.subscribers.iter().map(|s| s.count()).sum::<u64>();
    let deliveries_at_start = deliveries_before;
    for _ in 0..request.budget.trials {
        let cpu_start = cpu.start();
        let trial = rig.trial(events, Pace::Flat, Window::None)?;
        cpu.stop(cpu_start, trial.events);
        let seconds = trial.elapsed_ns.max(1) as f64 / 1e9;
        rates.push(trial.events as f64 / seconds);
        delivery_rates.push((trial.deliveries - deliveries_before) as f64 / seconds);
        deliveries_before = trial.deliveries;
        trial_ns.push(trial.elapsed_ns);
    }
    let dropped = rig.bus.stats().dropped - dropped_before;
    let delivered = deliveries_before - deliveries_at_start;
    rig.finish();
    Ok(ProbeResponse {
        throughput: Some(Throughput {
            loss_rate: loss_rate(delivered, dropped),
            events_per_sec: stats::estimate(&rates),
            deliveries_per_sec: stats::estimate(&delivery_rates),
            events_per_trial: events,
            processes: vec![trial_ns.len() as u32],
            trial_ns,
            cpu_ns_per_event: cpu.estimate(),
        }),
        dropped,
        ..Default::default()
    })
}

/// The share of deliveries lost: `dropped ÷ (delivered + dropped)`, `None`
/// when nothing was due.
pub fn loss_rate(delivered: u64, dropped: u64) -> Option<f64> {
    let due = delivered.saturating_add(dropped);
    (due > 0).then(|| dropped as f64 / due as f64)
}

/// Subscribers whose latency is recorded: at most 16, spread evenly and
/// including the first and the last (recording at all 500 of a fan-out
/// would make the harness, not the bus, the bottleneck).
pub fn sampled(subscribers: usize) -> Vec<usize> {
    let n = subscribers.min(16);
    if n <= 1 {
        return vec![0];
    }
    let mut picks: Vec<usize> = (0..n).map(|k| k * (subscribers - 1) / (n - 1)).collect();
    picks.dedup();
    picks
}

/// The latency pass: for each offered rate (or the burst pattern), a fresh
/// rig, a warm-up at that rate, then a measured open-loop trial whose
/// sampled deliveries and send lateness are recorded without a lock.
fn latency<B>(request: &ProbeRequest, lossy: bool) -> Result<ProbeResponse, String>
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    let scenario = &request.scenario;
    let point = request.point;
    let paces: Vec<Pace> = match scenario.burst {
        Some(b) => vec![Pace::Burst {
            base: b.base_rate as f64,
            factor: b.spike_factor as f64,
            spike_ns: b.spike_ms * 1_000_000,
            period_ns: b.period_ms * 1_000_000,
        }],
        None if request.rates.is_empty() => return Err("the latency pass needs the rates to offer".into()),
        None => request.rates.iter().map(|&r| Pace::Rate(r)).collect(),
    };
    let sampled = sampled(point.subscribers);
    let mut out = Vec::new();
    let mut dropped = 0;
    for pace in paces {
        let (rate, duration_ms) = match pace {
            Pace::Burst { base, factor, spike_ns, period_ns } => {
                let per_period = base * factor * spike_ns as f64 / 1e9 + base * (period_ns - spike_ns) as f64 / 1e9;
                // Whole periods, at least two.
                let periods = (request.budget.latency_ms * 1_000_000).div_ceil(period_ns).max(2);
                (per_period * 1e9 / period_ns as f64, periods * period_ns / 1_000_000)
            }
            Pace::Rate(r) => (r, request.budget.latency_ms),
            Pace::Flat => unreachable!("latency paces are open loop"),
        };
        let events = events_for(rate, duration_ms, point.producers);
        let warm_up = events_for(rate, (duration_ms / 4).max(20), point.producers);
        let make = |i: usize| -> Option<LatencyRecorder> {
            if !sampled.contains(&i) {
                return None;
            }
            let spikes = match pace {
                Pace::Burst { spike_ns, period_ns, .. } => Some(SpikeRecorder {
                    start_ns: std::sync::atomic::AtomicU64::new(0),
                    period_ns,
                    spike_ns,
                    histogram: (0..point.producers).map(|_| Buckets::default()).collect(),
                    last_delivery: (0..duration_ms * 1_000_000 / period_ns + 2)
                        .map(|_| std::sync::atomic::AtomicU64::new(0))
                        .collect(),
                }),
                _ => None,
            };
            Some(LatencyRecorder::new(point.producers, spikes))
        };
        let mut rig = Rig::<B>::new(Arc::new(scenario.clone()), point, lossy, &make)?;
        rig.trial(warm_up, pace, Window::None)?;
        for sub in &rig.subscribers {
            if let Some(recorder) = &sub.latency {
                recorder.reset();
            }
        }
        let owed = |rig: &Rig<B>| -> u64 {
            sampled.iter().map(|&i| rig.expected_deliveries(i).saturating_sub(rig.subscribers[i].count())).sum()
        };
        let owed_before = owed(&rig);
        let trial = rig.trial(events, pace, Window::None)?;
        let misses = owed(&rig) - owed_before;
        dropped += rig.bus.stats().dropped;
        out.push(summarize_latency(&rig, rate, pace, &trial, misses));
        rig.finish();
    }
    Ok(ProbeResponse { latency: out, dropped, ..Default::default() })
}

/// The `q` quantile of `delivered` latencies and `misses` deliveries that
/// never came (ranked above every delivery), or 0 when it falls among the
/// misses (see [`Latency::percentile_ns`]).
fn percentile(delivered: &hdrhistogram::Histogram<u64>, misses: u64, q: f64) -> u64 {
    let n = delivered.len();
    if percentile_lost(n, misses, q) || n == 0 {
        return 0;
    }
    delivered.value_at_quantile((q * (n + misses) as f64 / n as f64).min(1.0))
}

fn summarize_latency<B>(rig: &Rig<B>, rate: f64, pace: Pace, trial: &crate::drive::Trial, misses: u64) -> Latency
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    let mut all = new_histogram();
    let mut spikes = new_histogram();
    // Per spike: the latest delivery of its events over sampled subscribers.
    let mut last_by_spike: Vec<u64> = Vec::new();
    let mut spike_start = 0;
    for sub in &rig.subscribers {
        let Some(rec) = &sub.latency else { continue };
        rec.all.iter().for_each(|b| b.add_to(&mut all));
        if let Some(s) = &rec.spikes {
            s.histogram.iter().for_each(|b| b.add_to(&mut spikes));
            spike_start = s.start_ns.load(Ordering::Acquire);
            last_by_spike.resize(s.last_delivery.len(), 0);
            for (slot, d) in last_by_spike.iter_mut().zip(s.last_delivery.iter()) {
                *slot = (*slot).max(d.load(Ordering::Acquire));
            }
        }
    }
    let q = |h: &hdrhistogram::Histogram<u64>, q: f64| {
        if h.is_empty() { 0 } else { h.value_at_quantile(q) }
    };
    use hdrhistogram::serialization::Serializer;
    let mut serialized = Vec::new();
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(&all, &mut serialized)
        .expect("serializing into a Vec cannot fail");
    let is_burst = matches!(pace, Pace::Burst { .. });
    let drain_ns = match pace {
        Pace::Burst { spike_ns, period_ns, .. } => {
            let drains: Vec<f64> = last_by_spike
                .iter()
                .enumerate()
                .filter(|(_, last)| **last != 0)
                .map(|(k, last)| last.saturating_sub(spike_start + k as u64 * period_ns + spike_ns) as f64)
                .collect();
            stats::median(&drains).map(|m| m as u64)
        }
        _ => None,
    };
    let lateness = trial.lateness.as_ref().map(|h| Lateness {
        p50_ns: q(h, 0.5),
        p99_ns: q(h, 0.99),
        max_ns: h.max(),
        backlog_ns: trial.backlog_ns,
        schedule_ns: trial.schedule_ns,
    });
    let delivered = all.len();
    Latency {
        load: 0.0,
        offered_per_sec: rate,
        p50_ns: percentile(&all, misses, 0.5),
        p90_ns: percentile(&all, misses, 0.9),
        p99_ns: percentile(&all, misses, 0.99),
        p999_ns: percentile(&all, misses, 0.999),
        p9999_ns: percentile(&all, misses, 0.9999),
        max_ns: all.max(),
        count: delivered,
        histogram: base64_encode(&serialized),
        spike_p99_ns: is_burst.then(|| q(&spikes, 0.99)),
        drain_ns,
        misses,
        loss_rate: if delivered + misses == 0 { 0.0 } else { misses as f64 / (delivered + misses) as f64 },
        lateness,
        saturation: None,
        beyond_headline: false,
    }
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
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

fn allocations<B>(request: &ProbeRequest, lossy: bool, instruments: &dyn Instruments) -> Result<ProbeResponse, String>
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    let mut rig = new_rig::<B>(request, lossy)?;
    let n = request.budget.alloc_events;
    // Warm-up: pools, lazily built structures.
    rig.trial(n.max(shapes_warm_up::<B::Event>()), Pace::Flat, Window::None)?;
    let before = instruments.heap().ok_or("allocation counting is not on in this process")?;
    rig.trial(n, Pace::Flat, Window::None)?;
    let mid = instruments.heap().ok_or("allocation counting is not on in this process")?;
    rig.trial(2 * n, Pace::Flat, Window::None)?;
    let after = instruments.heap().ok_or("allocation counting is not on in this process")?;
    // (cost of 2N) − (cost of N) = cost of N events, with each trial's
    // fixed cost (thread spawns, barriers) cancelled out.
    let once = (mid.0 - before.0, mid.1 - before.1);
    let twice = (after.0 - mid.0, after.1 - mid.1);
    let events = (n * request.point.producers as u64) as f64;
    let allocs = twice.0.saturating_sub(once.0) as f64 / events;
    let bytes = twice.1.saturating_sub(once.1) as f64 / events;
    let dropped = rig.bus.stats().dropped;
    rig.finish();
    Ok(ProbeResponse {
        allocations: Some(Allocations {
            allocs_per_event: allocs,
            bytes_per_event: bytes,
            peak_bytes: after.2,
            events: n * request.point.producers as u64,
        }),
        dropped,
        ..Default::default()
    })
}

fn instructions<B>(request: &ProbeRequest, lossy: bool, instruments: &dyn Instruments) -> Result<ProbeResponse, String>
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    let mut rig = new_rig::<B>(request, lossy)?;
    let n = request.budget.callgrind_events_for(request.point.subscribers);
    // Every heavy shape through every pooled envelope, before callgrind
    // instruments anything: at valgrind's plain speed, not the cache
    // simulator's (it was most of a heavy-payload cell's instruction pass).
    let shapes = shapes_warm_up::<B::Event>();
    if shapes > 0 {
        rig.trial(shapes, Pace::Flat, Window::None)?;
    }
    instruments.callgrind_instrument();
    rig.trial(n.min(1_000), Pace::Flat, Window::None)?; // warm-up, the cache simulator's too
    let callgrind = |open: bool| instruments.callgrind_window(open);
    rig.trial(n, Pace::Flat, instruction_window(request, &callgrind))?;
    let dropped = rig.bus.stats().dropped;
    rig.finish();
    Ok(ProbeResponse {
        measured_events: n * request.point.producers as u64,
        multithreaded: multithreaded(request),
        dropped,
        ..Default::default()
    })
}

fn profile<B>(request: &ProbeRequest, lossy: bool) -> Result<ProbeResponse, String>
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    let mut rig = new_rig::<B>(request, lossy)?;
    let events = calibrate(&mut rig, request, request.budget.profile_ms)?;
    let frequency_hz = 997;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(frequency_hz as i32)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| format!("starting the profiler: {e}"))?;
    let stop = AtomicBool::new(false);
    rig.trial(events, Pace::Flat, Window::Trial(&|open| stop.store(!open, Ordering::Relaxed)))?;
    let report = guard.report().build().map_err(|e| format!("building the profile: {e}"))?;
    let (folded, samples) = fold(&report);
    let dropped = rig.bus.stats().dropped;
    rig.finish();
    Ok(ProbeResponse { profile: Some(Profile { samples, frequency_hz, folded }), dropped, ..Default::default() })
}

/// A profile as folded stacks (`thread;frame;frame count` lines) and the
/// number of samples.
pub fn fold(report: &pprof::Report) -> (String, u64) {
    let mut folded = String::new();
    let mut samples = 0u64;
    for (frames, count) in report.data.iter() {
        let mut stack: Vec<String> = Vec::new();
        stack.push(frames.thread_name_or_id());
        for frame in frames.frames.iter().rev() {
            for symbol in frame.iter().rev() {
                stack.push(symbol.name());
            }
        }
        folded.push_str(&stack.join(";"));
        folded.push_str(&format!(" {count}\n"));
        samples += *count as u64;
    }
    (folded, samples)
}

/// Whether the instruction pass of `request`'s cell runs bus code on
/// several threads. Producers run on their own threads, and so do
/// asynchronous buses' consumers and the churn thread: callgrind serialises
/// them, and how they interleave changes the counts. One producer
/// publishing to an in-line bus without churn runs all the bus code on one
/// thread, within its publishing loop; only such a cell's counts repeat.
pub(crate) fn multithreaded(request: &ProbeRequest) -> bool {
    let capabilities = buslab_impls::find(&request.bus)
        .map(|b| b.capabilities)
        .or_else(|| crate::reference::capabilities(&request.bus));
    let in_line = capabilities.is_some_and(|c| !c.asynchronous);
    !(request.point.producers == 1 && in_line && request.scenario.churn.is_none())
}

/// The callgrind window of `request`'s instruction pass: around the whole
/// trial when its bus code runs on several threads; otherwise around the
/// producer's loop alone, since the start barrier and the joins cost a
/// number of instructions that depends on which thread arrives first.
pub(crate) fn instruction_window<'a>(request: &ProbeRequest, callgrind: &'a (dyn Fn(bool) + Sync)) -> Window<'a> {
    if multithreaded(request) { Window::Trial(callgrind) } else { Window::Producer(callgrind) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Instruments of a test process: no allocation counts, no callgrind.
    pub(crate) struct NoInstruments;
    impl Instruments for NoInstruments {
        fn heap(&self) -> Option<(u64, u64, u64)> {
            None
        }
        fn callgrind_window(&self, _: bool) {}
    }

    fn request(bus: &str, pass: Pass, text: &str) -> ProbeRequest {
        let scenario = buslab_scenarios::spec::parse("t.toml", text, buslab_scenarios::Origin::File("t".into()))
            .expect("valid test scenario");
        ProbeRequest {
            pass,
            bus: bus.into(),
            point: scenario.points()[0],
            scenario,
            budget: Budget::QUICK,
            rates: vec![2e4, 5e4],
            corpus: None,
        }
    }

    #[test]
    fn a_bus_that_loses_events_gets_a_failed_cell_not_a_number() {
        let r = run(
            &request("drops_one", Pass::Throughput, "name = \"t\"\nsubscribers = 2\nevents = 600000\n"),
            &NoInstruments,
        );
        let error = r.error.expect("the loss must be caught");
        assert!(error.contains("lost"), "{error}");
        assert!(r.throughput.is_none());
    }

    #[test]
    fn throughput_and_latency_passes_measure_and_verify() {
        let text = "name = \"t\"\nproducers = 2\nsubscribers = 3\ntopics = 2\nevents = 2000\n";
        let r = run(&request("fixed_array", Pass::Throughput, text), &NoInstruments);
        assert_eq!(r.error, None);
        let t = r.throughput.expect("measured");
        assert_eq!(t.events_per_sec.samples.len(), Budget::QUICK.trials);
        assert!(t.events_per_sec.median > 0.0 && t.deliveries_per_sec.median > 0.0);
        let r = run(&request("pooled", Pass::Latency, text), &NoInstruments);
        assert_eq!(r.error, None);
        assert_eq!(r.latency.iter().map(|l| l.offered_per_sec).collect::<Vec<_>>(), [2e4, 5e4], "the rates asked");
        for l in &r.latency {
            assert!(l.count > 0 && l.p50_ns <= l.p99_ns && l.p99_ns <= l.max_ns, "{l:?}");
            assert!(!l.histogram.is_empty());
            let late = l.lateness.expect("the pacer records its lateness");
            assert!(late.p50_ns <= late.p99_ns && late.p99_ns <= late.max_ns && late.schedule_ns > 0, "{late:?}");
            assert_eq!((l.misses, l.loss_rate), (0, 0.0), "a lossless bus misses nothing");
        }
        let no_rates = ProbeRequest { rates: Vec::new(), ..request("pooled", Pass::Latency, text) };
        assert!(run(&no_rates, &NoInstruments).error.expect("refused").contains("rates"));
    }

    #[test]
    fn burst_latency_reports_spikes_and_drain() {
        let text = "name = \"t\"\nsubscribers = 2\n[burst]\nbase_rate = 20000\nspike_factor = 5\nspike_ms = 10\nperiod_ms = 50\n";
        let r = run(&request("channel_like_inline_is_fine_here", Pass::Latency, text), &NoInstruments);
        assert!(r.error.expect("unknown bus").contains("unknown bus"));
        let r = run(&request("router", Pass::Latency, text), &NoInstruments);
        assert_eq!(r.error, None);
        let l = &r.latency[0];
        assert_eq!(l.load, 0.0);
        assert!(l.spike_p99_ns.is_some() && l.drain_ns.is_some(), "{l:?}");
    }

    #[test]
    fn churn_is_verified() {
        let text = "name = \"t\"\nsubscribers = 4\nevents = 20000\n[churn]\nper_second = 2000\n";
        let r = run(&request("router", Pass::Throughput, text), &NoInstruments);
        assert_eq!(r.error, None);
    }

    #[test]
    fn the_allocation_pass_needs_the_counting_allocator() {
        let r = run(&request("router", Pass::Allocations, "name = \"t\"\nsubscribers = 1\n"), &NoInstruments);
        assert!(r.error.expect("no counts here").contains("allocation counting"));
    }

    /// A lossy bus offered more than its subscriber can take: every event
    /// owed to the sampled subscriber is a delivery or a miss, the loss
    /// rate is the misses' share, and the percentiles among the misses are
    /// lost, not numbers.
    #[test]
    fn a_lossy_bus_s_drops_are_counted_as_misses() {
        let text = "name = \"t\"\nsubscribers = 1\nlistener_work_ns = 20000\n[bus]\ncapacity = 4\n";
        let request = ProbeRequest { rates: vec![2e5], ..request("tokio_broadcast", Pass::Latency, text) };
        let r = run(&request, &NoInstruments);
        assert_eq!(r.error, None);
        let [l] = r.latency.as_slice() else { panic!("one load: {:?}", r.latency) };
        let owed = events_for(2e5, Budget::QUICK.latency_ms, 1);
        assert_eq!(l.count + l.misses, owed, "{l:?}");
        assert!(l.misses > 0, "20 µs per delivery cannot take 200 k/s: {l:?}");
        assert_eq!(l.loss_rate, l.misses as f64 / owed as f64);
        assert!(l.percentile_lost(0.9999) && l.percentile_ns(0.9999).is_none() && l.p9999_ns == 0, "{l:?}");
    }

    #[test]
    fn percentiles_count_misses_and_those_among_them_are_lost() {
        let mut h = new_histogram();
        for v in 1..=990 {
            h.record(v * 1000).expect("in range");
        }
        // Without misses, p99 is the 990th smallest's neighbour; with 10
        // misses among 1000, p99 is the largest delivery and p99.9 is lost.
        assert!(percentile(&h, 0, 0.99) < percentile(&h, 10, 0.99));
        assert_eq!(percentile(&h, 10, 0.99), h.max());
        assert_eq!(percentile(&h, 10, 0.999), 0);
        assert!(percentile_lost(990, 10, 0.999));
        assert_eq!(percentile(&new_histogram(), 0, 0.5), 0);
    }

    #[test]
    fn sampled_subscribers_spread_and_include_the_ends() {
        assert_eq!(sampled(1), [0]);
        assert_eq!(sampled(3), [0, 1, 2]);
        let s = sampled(500);
        assert_eq!((s.len(), s[0], s[s.len() - 1]), (16, 0, 499));
    }
}
