//! The measuring side: `buslab probe`, a child process that runs one pass of
//! one cell and prints its result as one JSON line on stdout.
//!
//! Every pass runs in its own process so that passes never disturb one
//! another (the counting allocator, callgrind's instrumentation or a sampling
//! profiler stay out of the throughput and latency passes), a hung or
//! crashing bus costs one cell and not the run, and the parent can enforce a
//! time limit. What each pass does is written once, in [`crate::passes`].

use crate::drive::Rig;
use crate::error::CellError;
use crate::listener::HarnessListener;
use crate::passes;
use buslab_impls::payload::{HeavyEvent, Payload, SmallEvent};
use buslab_impls::{Strategy, StrategyVisitor};
use buslab_scenarios::results::{Allocations, CloudEvents, Latency, Profile, Throughput};
use buslab_scenarios::{PayloadKind, Scenario, SweepPoint};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
    /// Length of the latency pass's measured window at each load, shared
    /// among its [`Budget::latency_processes`] (see
    /// [`Budget::latency_trial_ms`]).
    pub latency_ms: u64,
    /// Independent probe processes that measure each cell's latency, in
    /// rounds that interleave the buses of a point in rotating order like
    /// the throughput pass's; their histograms merge into the cell's
    /// percentiles, and their spread gives the tail-latency gate its
    /// interval. At least 1.
    #[serde(default = "one")]
    pub latency_processes: usize,
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
    /// The default run, sized to measure the whole catalog in about 20
    /// minutes on a 2-core machine (the README gives the measured time):
    /// - 3 processes × 3 trials of 100 ms: the spread between processes
    ///   dominates a trial's (trial counts are then chosen by measurement,
    ///   [`crate::repeat`]), so longer trials would narrow nothing;
    /// - 250 ms per latency load, split among 3 latency processes (84 ms
    ///   each, after a warm-up of a quarter of it, at least 20 ms): at the
    ///   grid's lowest rate of 1 k events/s that is 250 events over the
    ///   three, at 1 M/s 250 k, enough for p99.9 at every rate but the
    ///   lowest. Splitting the window rather than repeating it keeps the
    ///   pass's time about what one process of 250 ms took (three warm-ups
    ///   of 21 ms and two more process starts instead of one 62 ms
    ///   warm-up), and three repetitions are the fewest whose *t* interval
    ///   can tell a tail change (two give one degree of freedom, `t` =
    ///   12.7);
    /// - 5,000 events per producer under callgrind (fewer at fan-out and
    ///   where listeners work or documents are decoded, see
    ///   [`Budget::callgrind_events_for`]): a single-threaded cell's count
    ///   moves by a fixed few hundred instructions per window from run to
    ///   run (`spsc/null` read 36.20 or 36.35 Ir/event at `--quick`'s
    ///   1,000), under 0.1% of the per-event figure at 5,000, well inside
    ///   the gate's 1%;
    /// - a 500 ms profile (about 500 samples per busy thread at 997 Hz).
    pub const DEFAULT: Budget = Budget {
        processes: 3,
        trials: 3,
        trial_ms: 100,
        latency_ms: 250,
        latency_processes: 3,
        latency_grid: crate::rates::Grid::DEFAULT,
        alloc_events: 20_000,
        callgrind_events: 5_000,
        profile_ms: 500,
    };
    /// `--quick`: fewer and shorter trials and loads, the same checks. (It
    /// also leaves out the profile pass unless `--pass` names it.) Three
    /// throughput processes stay: fewer would leave an interval over
    /// process medians too wide to tell anything apart. The latency pass
    /// runs 2 processes of 50 ms each (after a 20 ms warm-up each): measured
    /// on `spsc` (release, `--quick`, 15 cells, load average 3–5 on 2
    /// cores), the pass took 6.3 s with one process of 100 ms and 8.8 and
    /// 10.7 s with three of 34 ms (the run 34 s → 40 s), and the whole
    /// catalog's quick run spends 22% in it (README): three would add
    /// 9–15% to a quick run. Two keep the same window with one more process
    /// start; their tail-gate interval has 1 or 2 degrees of freedom, so a
    /// quick run's tail gate reads only large changes: tails are gated on
    /// the default run's three.
    pub const QUICK: Budget = Budget {
        processes: 3,
        trials: 2,
        trial_ms: 50,
        latency_ms: 100,
        latency_processes: 2,
        latency_grid: crate::rates::Grid::QUICK,
        alloc_events: 2_000,
        callgrind_events: 1_000,
        profile_ms: 500,
    };

    /// Length of the measured window of one latency process at each load:
    /// [`Budget::latency_ms`] shared among the
    /// [`Budget::latency_processes`], rounded up.
    pub fn latency_trial_ms(&self) -> u64 {
        self.latency_ms.div_ceil(self.latency_processes.max(1) as u64)
    }

    /// Events per producer the instruction pass measures at `point` of
    /// `scenario`: `callgrind_events`, scaled down beyond 16 subscribers so
    /// that the deliveries simulated stay about constant across fan-outs,
    /// and scaled down where listeners work or documents are decoded
    /// ([`DECODE_NS`]), so that the work simulated per window stays within
    /// `callgrind_events` × [`CALLGRIND_WORK_NS`]
    /// (callgrind runs ~50× slower, and a 10 µs slow subscriber made one
    /// cell's pass cost seconds; per-event figures are divided by N anyway,
    /// and the work loop costs a fixed count per iteration); at least 50. A
    /// warm-up of up to 1000 events precedes them.
    pub fn callgrind_events_for(&self, scenario: &Scenario, point: SweepPoint) -> u64 {
        let subscribers = point.subscribers as u64;
        let by_fanout = self.callgrind_events.saturating_mul(16) / subscribers.max(16);
        let slow = scenario.slow.map_or(0, |s| s.count.min(subscribers).saturating_mul(s.work_ns));
        let decode = if point.cloudevents.is_some() { DECODE_NS } else { 0 };
        let work_ns = scenario.listener_work_ns.saturating_mul(subscribers).saturating_add(slow).saturating_add(decode);
        let by_work = self.callgrind_events.saturating_mul(CALLGRIND_WORK_NS) / work_ns.max(1);
        by_fanout.min(by_work).max(50)
    }
}

/// Budgets serialized before latency repetitions ran one latency process.
fn one() -> usize {
    1
}

/// Listener work per event the instruction pass simulates at most, on
/// average over its window, ns ([`Budget::callgrind_events_for`]).
pub const CALLGRIND_WORK_NS: u64 = 1_000;

/// Native nanoseconds to decode one CloudEvents document, roughly (the
/// generated documents average about 1 KB; the decoders take 1 to 3 µs for
/// one): for sizing the instruction pass and the run's cost model.
pub const DECODE_NS: u64 = 2_000;

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
        type Output = Result<ProbeResponse, CellError>;
        fn visit<S: Strategy>(self) -> Self::Output {
            let lossy = S::CAPABILITIES.lossy;
            match self.request.scenario.payload {
                PayloadKind::Small => {
                    events::<S::Bus<SmallEvent, HarnessListener>>(self.request, lossy, self.instruments)
                }
                PayloadKind::Heavy => {
                    events::<S::Bus<HeavyEvent, HarnessListener>>(self.request, lossy, self.instruments)
                }
                PayloadKind::CloudEvents => crate::cloudevents::run::<S>(self.request, self.instruments),
            }
        }
    }
    let found = match buslab_impls::visit(&request.bus, Visit { request, instruments }) {
        Some(response) => Some(response),
        None => crate::reference::visit(&request.bus, Visit { request, instruments }),
    };
    found
        .unwrap_or_else(|| Err(CellError::Request(format!("unknown bus `{}`", request.bus))))
        .unwrap_or_else(|error| ProbeResponse { error: Some(error.to_string()), ..Default::default() })
}

/// A pass of a small- or heavy-payload cell: the latency pass paces rigs of
/// its own; the others run on one rig built here (setup, untimed).
fn events<B>(request: &ProbeRequest, lossy: bool, instruments: &dyn Instruments) -> Result<ProbeResponse, CellError>
where
    B: buslab_impls::EventBus<Listener = HarnessListener>,
    B::Event: Payload,
{
    if request.pass == Pass::Latency {
        return passes::latency::run::<B>(request, lossy);
    }
    let rig = Rig::<B>::new(Arc::new(request.scenario.clone()), request.point, lossy, &|_| None)?;
    passes::run(request, instruments, rig)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::passes::events_for;

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
        let owed = events_for(2e5, Budget::QUICK.latency_trial_ms(), 1);
        assert_eq!(l.count + l.misses, owed, "{l:?}");
        assert!(l.misses > 0, "20 µs per delivery cannot take 200 k/s: {l:?}");
        assert_eq!(l.loss_rate, l.misses as f64 / owed as f64);
        assert!(l.percentile_lost(0.9999) && l.percentile_ns(0.9999).is_none() && l.p9999_ns == 0, "{l:?}");
    }

    #[test]
    fn callgrind_events_shrink_with_fan_out_and_listener_work() {
        let events = |text: &str, budget: Budget| {
            let r = request("null", Pass::Instructions, text);
            budget.callgrind_events_for(&r.scenario, r.point)
        };
        let quick = Budget::QUICK;
        assert_eq!(events("name = \"t\"\nsubscribers = 1\n", quick), 1_000);
        assert_eq!(events("name = \"t\"\nsubscribers = 128\n", quick), 125, "16 000 deliveries");
        assert_eq!(events("name = \"t\"\nsubscribers = 500\n", quick), 50, "32 by fan-out, at least 50");
        // One subscriber working 10 µs among 8: 1 ms of work at most.
        let slow = "name = \"t\"\nsubscribers = 8\n[slow]\ncount = 1\nwork_ns = 10000\n";
        assert_eq!(events(slow, quick), 100);
        assert_eq!(events(slow, Budget::DEFAULT), 500);
        // 16 listeners of 100 ns: 1.6 µs per event.
        assert_eq!(events("name = \"t\"\nsubscribers = 16\nlistener_work_ns = 100\n", quick), 625);
        // A CloudEvents document takes about 2 µs to decode.
        let ce = "name = \"t\"\nsubscribers = 2\npayload = \"cloudevents\"\n[cloudevents]\ndocuments = 60\n";
        assert_eq!(events(ce, quick), 500);
        // ... and the pass measures whole cycles of the corpus: 540 of 60 documents.
        let r = run(&request("router", Pass::Instructions, ce), &NoInstruments);
        assert_eq!((r.error, r.measured_events), (None, 540));
    }
}
