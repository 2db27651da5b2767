//! The result types: what a run measured, as the store keeps it and the
//! reports render it. They live here, below both the harness (which fills
//! them) and the reports (which read them), so that reports never depend on
//! the harness.
//!
//! Units are in the field names (`_ns`, `_per_sec`, `_per_event`); every
//! figure is measured, and every estimate keeps its raw samples.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where and how a run was made: recorded with every run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// Unique run id (`<UTC time>-<random>`), stable across machines.
    pub id: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// End time, RFC 3339 UTC; `None` while running or if interrupted.
    pub finished_at: Option<String>,
    /// Every planned cell finished.
    pub complete: bool,
    /// `--quick` run.
    pub quick: bool,
    /// The command line.
    pub args: Vec<String>,
    /// buslab's version.
    pub buslab_version: String,
    /// Git commit of the working tree, if known.
    pub git_commit: Option<String>,
    /// Uncommitted changes in the working tree.
    pub git_dirty: Option<bool>,
    /// `rustc -V` of the compiler that built buslab.
    pub rustc: String,
    /// Build profile and flags: `RUSTFLAGS`, target features, opt-level, LTO.
    pub build: BTreeMap<String, String>,
    /// Machine identity: a stable name for "the same machine" comparisons.
    pub machine: String,
    /// CPU model.
    pub cpu: String,
    /// Logical cores available.
    pub cores: usize,
    /// OS and kernel.
    pub os: String,
    /// Versions of the crates under test (name → version).
    pub crate_versions: BTreeMap<String, String>,
    /// SHA-256 of each scenario file used (name → hash).
    pub scenario_hashes: BTreeMap<String, String>,
    /// Each scenario's description (name → text from its file), for the
    /// report. Empty in runs stored before it was recorded.
    #[serde(default)]
    pub scenario_descriptions: BTreeMap<String, String>,
    /// Harness overhead per event measured with a no-op bus, ns.
    pub harness_overhead_ns: Option<f64>,
    /// The engineer's own CloudEvents corpus (`buslab run --corpus PATH`),
    /// if one was given; generated corpora are described per cell.
    #[serde(default)]
    pub corpus: Option<Corpus>,
    /// The buses of this build as they describe themselves (summary,
    /// peer or home-grown, guarantees), so that a report can say what each
    /// bus promises without the code at hand. Empty in runs stored before
    /// it was recorded.
    #[serde(default)]
    pub buses: Vec<BusMeta>,
    /// What the run was made for, when it is not an ordinary run of the
    /// history: `noise:<group>` for the repeated A/A runs of `buslab noise`
    /// (see [`NOISE_LABEL_PREFIX`]). `None` for an ordinary run. A run's
    /// default baseline is the previous run with the same label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The slices of the matrix this run holds, when it was run in shards
    /// (`buslab run --shard I/N`); `None` for a run of the whole matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Shards>,
    /// The version of the measurement method ([`METHODOLOGY`]) the run was
    /// made with; runs stored before it was recorded are version 1. Runs of
    /// different versions are never compared: their figures mean different
    /// things.
    #[serde(default = "first_methodology")]
    pub methodology: u32,
    /// Nanoseconds one iteration of the listener-work loop took on this
    /// machine, measured at the start of the run: a scenario's nominal
    /// `listener_work_ns` runs a fixed number of iterations everywhere, and
    /// this says what they cost here. `None` in runs stored before it was
    /// measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_ns_per_iteration: Option<f64>,
    /// The scenarios of the run whose file says losing deliveries is
    /// acceptable (`loss_acceptable = true`): only there may a lossy bus be
    /// ranked, and recommended. Empty in runs stored before it was recorded.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub loss_acceptable: std::collections::BTreeSet<String>,
    /// Independent probe processes that measured each cell's throughput,
    /// interleaved across a point's buses. `None` in runs stored before
    /// repetitions (one process per cell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u32>,
    /// Throughput trials in each of those processes (for the scenarios of
    /// [`RunMeta::chosen_trials`], theirs instead). `None` in runs stored
    /// before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<u32>,
    /// The scenarios whose trials per process the run chose by measurement
    /// from an earlier run (Kalibera & Jones; no `--trials` given), each
    /// with its count and that run. Empty in runs that chose none, and in
    /// runs stored before counts were chosen.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub chosen_trials: BTreeMap<String, ChosenTrials>,
}

/// A scenario's trials per process chosen by measurement: see
/// [`RunMeta::chosen_trials`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenTrials {
    /// Trials in each process.
    pub trials: u32,
    /// The latest run whose cells of the scenario the count was chosen
    /// from.
    pub from_run: String,
    /// How many stored runs' cells the count pools, `from_run` the latest
    /// (1 in runs stored before counts were pooled).
    #[serde(default = "one")]
    pub runs: u32,
}

fn one() -> u32 {
    1
}

/// The current version of the measurement method. Bump it, with a line in
/// this list, whenever a change makes figures incomparable with earlier
/// runs (`compare` and the trends then show a break instead of a change):
/// 1. the original harness;
/// 2. CPU time per event; the metric list.
/// 3. listener work as a fixed count of loop iterations, not a wall-clock
///    wait.
/// 4. latency at offered rates shared by a point's buses (not fractions of
///    each bus's own capacity), judged against the `null` reference; a
///    lossy bus's misses count in its percentiles.
/// 5. the harness floor lowered: the event built in registers, the count
///    of a delivery derived from its sequence, a `Rotate` work body LLVM
///    cannot hoist (every cell's instructions change).
/// 6. heavy payloads cycle through five shapes (1 to 5 line items, string
///    lengths growing with them) prepared before the timed loop, and their
///    checksum reads the first and last bytes of every string as well as
///    the lengths (every `heavy-payload` figure changes); throughput is
///    the median of several interleaved processes' medians, with an
///    interval over them.
/// 7. `cloudevents` cells give an asynchronous bus the consumer threads its
///    producers leave, as every other cell does (it had one per core: three
///    threads on two cores).
pub const METHODOLOGY: u32 = 7;

fn first_methodology() -> u32 {
    1
}

/// A bus as recorded with a run: its self-description from the registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BusMeta {
    /// Stable name (keys the stored history).
    pub name: String,
    /// The first line of its module doc.
    pub summary: String,
    /// A well-known crate wrapped as an adapter rather than a strategy of
    /// buslab's own.
    pub peer: bool,
    /// May drop events by design (every drop counted).
    pub lossy: bool,
    /// Listeners run on threads the bus owns.
    pub asynchronous: bool,
    /// Several threads may publish at once.
    pub multi_producer: bool,
    /// Subscribing and unsubscribing while others publish is supported;
    /// `None` in runs stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_subscribe: Option<bool>,
    /// A reference of the harness's own (`null`: the floor), measured
    /// beside the buses and never a winner; `false` in runs stored before
    /// references were rows.
    #[serde(default)]
    pub reference: bool,
    /// Its guarantees from its module doc: `ordering`, `delivery`,
    /// `backpressure`, `allocations`, `threads`, `based_on`.
    pub guarantees: BTreeMap<String, String>,
}

impl RunMeta {
    /// The noise-calibration group this run belongs to, if it is one of
    /// `buslab noise`'s A/A runs (its label is `noise:<group>`).
    pub fn noise_group(&self) -> Option<&str> {
        self.label.as_deref()?.strip_prefix(NOISE_LABEL_PREFIX)
    }
}

/// The label prefix of the runs of a noise-calibration group
/// (`noise:<group id>`).
pub const NOISE_LABEL_PREFIX: &str = "noise:";

/// Which shards of a matrix cut into `count` slices a run holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shards {
    /// How many slices the matrix was cut into (`N` of `--shard I/N`).
    pub count: u32,
    /// The slices held, 1-based, ascending, without repeats: one for a shard
    /// just run, more as shards of one run are imported into one store.
    pub held: Vec<u32>,
}

impl Shards {
    /// Every slice of the matrix is held.
    pub fn all_held(&self) -> bool {
        self.count > 0 && (1..=self.count).all(|i| self.held.contains(&i))
    }
}

/// Identifies a cell: bus × scenario × sweep point.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellKey {
    /// Scenario name.
    pub scenario: String,
    /// Bus name.
    pub bus: String,
    /// Swept parameters (`subscribers` → `16`), empty when none.
    pub params: BTreeMap<String, String>,
}

impl CellKey {
    /// `<scenario>/<bus>` plus `/<param>=<value>` per swept parameter: the
    /// benchmark name in exports.
    pub fn name(&self) -> String {
        let mut name = format!("{}/{}", self.scenario, self.bus);
        for (k, v) in &self.params {
            name.push_str(&format!("/{k}={v}"));
        }
        name
    }

    /// `<scenario>` plus `/<param>=<value>` per swept parameter: the
    /// scenario point the cell belongs to, named the same way on every
    /// machine (its buses share its floor and its latency rates).
    pub fn point(&self) -> String {
        let mut name = self.scenario.clone();
        for (k, v) in &self.params {
            name.push_str(&format!("/{k}={v}"));
        }
        name
    }
}

/// How a cell ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum CellStatus {
    /// Every pass that ran verified delivery.
    Ok,
    /// A pass failed (delivery check, panic, timeout): no number is kept.
    Failed(String),
    /// The bus's capabilities exclude this cell.
    Skipped(String),
}

/// A point estimate with its 95% confidence interval and the raw samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Median of the samples.
    pub median: f64,
    /// Lower bound of the 95% bootstrap CI of the median.
    pub lower: f64,
    /// Upper bound of the 95% bootstrap CI of the median.
    pub upper: f64,
    /// The raw samples, one per trial.
    pub samples: Vec<f64>,
}

/// The throughput pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Published events per second.
    pub events_per_sec: Estimate,
    /// Deliveries (listener calls) per second.
    pub deliveries_per_sec: Estimate,
    /// Events per producer in each trial.
    pub events_per_trial: u64,
    /// Trial durations, ns.
    pub trial_ns: Vec<u64>,
    /// CPU time (user + system, every thread of the probe) per published
    /// event over each trial, ns: a spinning consumer is not free. `None`
    /// in runs stored before it was measured, or where the OS cannot say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns_per_event: Option<Estimate>,
    /// The share of deliveries a lossy bus dropped over the measured trials:
    /// dropped ÷ (delivered + dropped), 0 when nothing was lost. `None` in
    /// runs stored before it was measured (their cells' `dropped` still says
    /// whether anything was lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_rate: Option<f64>,
    /// Trials per independent probe process, in the order the processes
    /// ran: the samples of this pass's estimates (and of the cell's
    /// CloudEvents estimates) are these processes' trials, one process
    /// after another, and their intervals hold the variance between
    /// processes. Empty in runs stored before repetitions (one process).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<u32>,
}

impl Throughput {
    /// The samples of `estimate` (one of this pass's, or of the cell's
    /// CloudEvents figures) split by the process that measured them: one
    /// group per process, or a single group when the run recorded no
    /// processes (one process) or their sizes do not add up to the samples.
    pub fn by_process<'a>(&self, estimate: &'a Estimate) -> Vec<&'a [f64]> {
        let total: usize = self.processes.iter().map(|&n| n as usize).sum();
        if self.processes.len() < 2 || total != estimate.samples.len() {
            return vec![estimate.samples.as_slice()];
        }
        let mut rest = estimate.samples.as_slice();
        self.processes
            .iter()
            .map(|&n| {
                let (head, tail) = rest.split_at(n as usize);
                rest = tail;
                head
            })
            .collect()
    }
}

/// The latency pass at one offered load.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Runs before offered rates were shared across buses: the offered load
    /// as a fraction of the bus's own capacity (0.25, 0.5, 0.8). Since then
    /// 0: the load is [`Latency::offered_per_sec`], the same for every bus
    /// of a point (a burst pattern's mean rate for burst cells).
    pub load: f64,
    /// Offered rate, events per second (all producers).
    pub offered_per_sec: f64,
    /// Percentiles of (delivery time − intended send time), ns, over
    /// delivered and missed deliveries (see [`Latency::percentile_ns`]; 0
    /// where the percentile falls among the misses).
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// 99.99th percentile, ns.
    pub p9999_ns: u64,
    /// Maximum, ns.
    pub max_ns: u64,
    /// Recorded deliveries.
    pub count: u64,
    /// The HdrHistogram of delivered events, V2 serialized, base64.
    pub histogram: String,
    /// Burst scenarios: p99 of events sent during spikes, ns.
    pub spike_p99_ns: Option<u64>,
    /// Burst scenarios: median time from the end of a spike until the
    /// backlog drained (the last spike event delivered), ns.
    pub drain_ns: Option<u64>,
    /// Deliveries to the recorded subscribers that a lossy bus dropped:
    /// they count as infinitely late in the percentiles.
    #[serde(default)]
    pub misses: u64,
    /// `misses` ÷ (`count` + `misses`).
    #[serde(default)]
    pub loss_rate: f64,
    /// How late the paced producers sent (actual − intended send time).
    #[serde(default)]
    pub lateness: Option<Lateness>,
    /// Why this load is not judged as a latency, if it is not.
    #[serde(default)]
    pub saturation: Option<Saturation>,
    /// Offered above the point's headline rate (a rate some lossless bus of
    /// the point does not sustain): shown, never ranked.
    #[serde(default)]
    pub beyond_headline: bool,
    /// The load measured by each of the cell's latency probe processes, in
    /// the order they ran; the percentiles above come from their merged
    /// histograms. The tail-latency gate's interval is read from their
    /// spread. Empty in runs stored before latency repetitions (one
    /// process), which the regression rule judges by the noise band alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repetitions: Vec<LatencyRepetition>,
}

/// One latency probe process's figures at one offered load (see
/// [`Latency::repetitions`]): its percentiles over delivered and missed
/// deliveries, as in [`Latency`] (0 where the percentile falls among the
/// misses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyRepetition {
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Recorded deliveries.
    pub count: u64,
    /// Missed deliveries (a lossy bus's drops).
    #[serde(default)]
    pub misses: u64,
}

impl LatencyRepetition {
    /// The `q` quantile (0.5, 0.99 or 0.999; another rounds up to the next
    /// of these), or `None` when it falls among the misses.
    pub fn percentile_ns(&self, q: f64) -> Option<u64> {
        if percentile_lost(self.count, self.misses, q) {
            return None;
        }
        Some(match q {
            q if q <= 0.5 => self.p50_ns,
            q if q <= 0.99 => self.p99_ns,
            _ => self.p999_ns,
        })
    }
}

impl Latency {
    /// The `q` quantile of latency over delivered and missed deliveries,
    /// ns, or `None` when it falls among the misses ("lost"): misses rank
    /// above every delivery. `q` is one of the stored quantiles (0.5, 0.9,
    /// 0.99, 0.999, 0.9999); another rounds up to the next stored one.
    pub fn percentile_ns(&self, q: f64) -> Option<u64> {
        if self.percentile_lost(q) {
            return None;
        }
        Some(match q {
            q if q <= 0.5 => self.p50_ns,
            q if q <= 0.9 => self.p90_ns,
            q if q <= 0.99 => self.p99_ns,
            q if q <= 0.999 => self.p999_ns,
            _ => self.p9999_ns,
        })
    }

    /// Whether the `q` quantile falls among the misses.
    pub fn percentile_lost(&self, q: f64) -> bool {
        percentile_lost(self.count, self.misses, q)
    }

    /// A latency to compare: neither saturation state holds.
    pub fn judged(&self) -> bool {
        self.saturation.is_none()
    }
}

/// Two offered rates (events/s) are the same, up to floating-point
/// rounding.
pub fn same_rate(a: f64, b: f64) -> bool {
    (a - b).abs() <= a.abs().max(b.abs()) * 1e-9
}

/// Whether quantile `q` of `delivered` deliveries and `misses` misses (ranked
/// above every delivery) falls among the misses.
pub fn percentile_lost(delivered: u64, misses: u64, q: f64) -> bool {
    let total = delivered + misses;
    misses > 0 && (total == 0 || q * total as f64 > delivered as f64)
}

/// Send lateness of a paced trial: actual − intended send time, over every
/// event of every producer, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lateness {
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Maximum, ns.
    pub max_ns: u64,
    /// How long after the schedule's last intended send the last delivery
    /// was made (the backlog left when the schedule ended), ns.
    pub backlog_ns: u64,
    /// Length of the trial's schedule (first to last intended send), ns.
    pub schedule_ns: u64,
}

/// Why a load's figures are not a latency of the bus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Saturation {
    /// The `null` reference could not keep the schedule at this rate: the
    /// harness, not the bus, is the limit, and no bus is judged here.
    HarnessSaturated(String),
    /// The bus itself fell behind the schedule while the reference kept it.
    OverCapacity(String),
}

impl Saturation {
    /// `harness saturated` or `over capacity`.
    pub fn state(&self) -> &'static str {
        match self {
            Saturation::HarnessSaturated(_) => "harness saturated",
            Saturation::OverCapacity(_) => "over capacity",
        }
    }

    /// The reason, with its figures.
    pub fn reason(&self) -> &str {
        match self {
            Saturation::HarnessSaturated(r) | Saturation::OverCapacity(r) => r,
        }
    }
}

/// The allocation pass (a counting global allocator).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Allocations {
    /// Heap allocations per published event, setup excluded.
    pub allocs_per_event: f64,
    /// Bytes allocated per published event.
    pub bytes_per_event: f64,
    /// Peak live heap bytes during the run.
    pub peak_bytes: u64,
    /// Events measured.
    pub events: u64,
}

/// The instruction pass (callgrind).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Instructions {
    /// Instructions executed per published event.
    pub ir_per_event: f64,
    /// L1 hits per event.
    pub l1_hits_per_event: f64,
    /// Last-level hits per event.
    pub ll_hits_per_event: f64,
    /// RAM accesses per event.
    pub ram_hits_per_event: f64,
    /// Estimated cycles per event: L1 + 5·LL + 35·RAM.
    pub est_cycles_per_event: f64,
    /// Mispredicted branches (conditional + indirect) per event.
    pub branch_misses_per_event: f64,
    /// Events measured.
    pub events: u64,
    /// More than one thread ran: callgrind serialises threads, so the count
    /// is deterministic only for single-threaded cells.
    pub multithreaded: bool,
}

/// The profile pass: folded stacks for a flame graph.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Samples taken.
    pub samples: u64,
    /// Sampling frequency, Hz.
    pub frequency_hz: u32,
    /// Folded stacks (`frame;frame;frame count` lines).
    pub folded: String,
}

/// The CloudEvents pass of a `cloudevents` cell: decode only, and decode +
/// route through the cell's bus, over the corpus's valid documents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudEvents {
    /// Documents decoded per second (no bus).
    pub decode_events_per_sec: Estimate,
    /// Document bytes decoded per second (no bus).
    pub decode_bytes_per_sec: Estimate,
    /// Documents decoded and routed per second (through the bus, delivery
    /// verified).
    pub route_events_per_sec: Estimate,
    /// Document bytes decoded and routed per second.
    pub route_bytes_per_sec: Estimate,
    /// Invalid documents of the corpus per decode-error reason slug (with
    /// this cell's decoder).
    pub errors: BTreeMap<String, u64>,
    /// The documents measured.
    pub corpus: Corpus,
}

/// A CloudEvents corpus: where its documents came from and their sizes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corpus {
    /// Short name (file or directory name, or `generated`).
    pub name: String,
    /// `generated, seed N`, or the path.
    pub source: String,
    /// Documents in the corpus.
    pub documents: u64,
    /// Documents refused by the decoder (counted in the errors, not timed).
    pub invalid: u64,
    /// Bytes over all documents.
    pub total_bytes: u64,
    /// Smallest document, bytes.
    pub min_bytes: u64,
    /// Median document size, bytes.
    pub p50_bytes: u64,
    /// 90th percentile of document size, bytes.
    pub p90_bytes: u64,
    /// Largest document, bytes.
    pub max_bytes: u64,
    /// The first invalid documents (at most
    /// [`MAX_INVALID_EXAMPLES`](crate::cloudevents::corpus::MAX_INVALID_EXAMPLES)),
    /// in corpus order, so that an engineer can find and fix them.
    #[serde(default)]
    pub invalid_examples: Vec<InvalidDocument>,
}

/// An invalid document of a corpus: where it is and why it was refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidDocument {
    /// `file:line` (NDJSON), the file (directory), or `#index` (generated).
    pub origin: String,
    /// The decode error's reason slug.
    pub reason: String,
}

/// Everything measured for one cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// Which cell.
    pub key: CellKey,
    /// How it ended.
    pub status: CellStatus,
    /// Producers at this point.
    pub producers: usize,
    /// Subscribers at this point.
    pub subscribers: usize,
    /// The throughput pass, when it ran and verified.
    pub throughput: Option<Throughput>,
    /// The latency pass, one entry per offered load.
    pub latency: Vec<Latency>,
    /// The allocation pass.
    pub allocations: Option<Allocations>,
    /// The instruction pass.
    pub instructions: Option<Instructions>,
    /// The profile pass.
    pub profile: Option<Profile>,
    /// Passes that were skipped and why (pass name → reason).
    pub skipped_passes: BTreeMap<String, String>,
    /// Wall-clock seconds each pass took to measure this cell (pass name →
    /// seconds, every process of the pass, child start included): where a
    /// run's time went. Empty in runs stored before it was recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pass_seconds: BTreeMap<String, f64>,
    /// Bus counters summed over the cell's trials (drops, caught panics).
    pub dropped: u64,
    /// Listener panics caught.
    pub listener_panics: u64,
    /// The CloudEvents pass (`cloudevents` cells only); their `throughput`
    /// holds decode + route events/s.
    #[serde(default)]
    pub cloudevents: Option<CloudEvents>,
    /// The harness's floor at this cell's scenario point in the same run
    /// (the `null` reference's figures), set by [`Run::attach_floors`];
    /// `None` where no reference ran at the point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<Floor>,
    /// The machine that measured this cell, when it is not the run's
    /// ([`RunMeta::machine`]): a shard imported from another machine into
    /// the run. `None` means the run's machine. Wall-clock figures of cells
    /// measured on different machines are never compared with each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The headline rate of this cell's sweep point, events/s: the rate
    /// the scenario names first, else the highest rate of the point's
    /// shared grid that every lossless bus sustains. `None` in runs from
    /// before shared rates (their headline is [`HEADLINE_LOAD`]) and where
    /// no rate was sustained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline_rate: Option<f64>,
}

impl CellResult {
    /// The bus dropped deliveries in this cell (any pass): a lossy cell is
    /// never a winner unless its scenario accepts loss.
    pub fn lossy(&self) -> bool {
        self.dropped > 0 || self.throughput.as_ref().and_then(|t| t.loss_rate).is_some_and(|r| r > 0.0)
    }

    /// The share of deliveries dropped in the throughput pass, where it was
    /// measured.
    pub fn loss_rate(&self) -> Option<f64> {
        self.throughput.as_ref()?.loss_rate
    }

    /// A cell with no measurements yet.
    pub fn new(key: CellKey, producers: usize, subscribers: usize) -> CellResult {
        CellResult {
            key,
            status: CellStatus::Ok,
            producers,
            subscribers,
            throughput: None,
            latency: Vec::new(),
            allocations: None,
            instructions: None,
            profile: None,
            skipped_passes: BTreeMap::new(),
            pass_seconds: BTreeMap::new(),
            dropped: 0,
            listener_panics: 0,
            cloudevents: None,
            floor: None,
            machine: None,
            headline_rate: None,
        }
    }

    /// The machine that measured this cell: its own [`CellResult::machine`],
    /// or else `run_machine` (the run's).
    pub fn measured_on<'a>(&'a self, run_machine: &'a str) -> &'a str {
        self.machine.as_deref().unwrap_or(run_machine)
    }

    /// The latency entry at `load`, if measured.
    pub fn latency_at(&self, load: f64) -> Option<&Latency> {
        self.latency.iter().find(|l| (l.load - load).abs() < 1e-9)
    }

    /// The latency entry at offered rate `rate` (events/s), if measured.
    pub fn latency_at_rate(&self, rate: f64) -> Option<&Latency> {
        self.latency.iter().find(|l| same_rate(l.offered_per_sec, rate))
    }

    /// The latency entry the headline metrics (store, exports, regression
    /// verdicts, report) use, when it is a latency of the bus (not
    /// saturated): the one at the point's [`CellResult::headline_rate`];
    /// in runs from before shared rates, the one at [`HEADLINE_LOAD`] of
    /// the bus's own capacity; a burst cell's single entry.
    pub fn headline_latency(&self) -> Option<&Latency> {
        let burst = match self.latency.as_slice() {
            [only] if only.load == 0.0 && self.headline_rate.is_none() => Some(only),
            _ => None,
        };
        let entry = match self.headline_rate {
            Some(rate) => self.latency_at_rate(rate),
            None => self.latency_at(HEADLINE_LOAD).or(burst),
        };
        entry.filter(|l| l.judged())
    }
}

/// The harness's own cost at a scenario point: what the `null` reference
/// (one in-line call per listener, nothing in between) measured there in the
/// same run. For a bus that delivers in-line on the publisher's thread,
/// *bus cost = cell − floor* is what the bus itself adds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// The reference's wall time per event, ns (1 / its median throughput),
    /// with the 95% interval from its throughput interval.
    pub ns_per_event: Option<(f64, f64, f64)>,
    /// The reference's instructions per event.
    pub ir_per_event: Option<f64>,
    /// The cell's bus delivers in-line (on the publisher's thread), so that
    /// subtracting the floor gives the bus's own cost; for a bus with
    /// threads of its own the floor is shown beside it, not subtracted.
    pub in_line: bool,
}

impl CellResult {
    /// Wall time per event, ns (1 / median throughput), with its 95%
    /// interval as `(value, lower, upper)`.
    pub fn ns_per_event(&self) -> Option<(f64, f64, f64)> {
        let e = &self.throughput.as_ref()?.events_per_sec;
        (e.median > 0.0)
            .then(|| (1e9 / e.median, 1e9 / e.upper.max(e.median), 1e9 / e.lower.clamp(f64::MIN_POSITIVE, e.median)))
    }

    /// What the bus adds to the floor per event, ns, with an interval that
    /// holds both intervals' width: `(cost, lower, upper)`. Only for an
    /// in-line bus with a floor measured at its point.
    pub fn bus_cost_ns(&self) -> Option<(f64, f64, f64)> {
        let floor = self.floor.filter(|f| f.in_line)?;
        let (f, fl, fu) = floor.ns_per_event?;
        let (c, cl, cu) = self.ns_per_event()?;
        Some((c - f, cl - fu, cu - fl))
    }

    /// What the bus adds to the floor in instructions per event (in-line
    /// buses with a floor at their point).
    pub fn bus_cost_ir(&self) -> Option<f64> {
        let floor = self.floor.filter(|f| f.in_line)?;
        Some(self.instructions.as_ref()?.ir_per_event - floor.ir_per_event?)
    }

    /// Sets this cell's floor from `reference`, the reference cell of the
    /// same scenario point, when both ended Ok; `in_line`: this cell's bus
    /// delivers on the publisher's thread.
    pub fn set_floor(&mut self, reference: &CellResult, in_line: bool) {
        let same_point = reference.key.scenario == self.key.scenario && reference.key.params == self.key.params;
        if same_point && self.status == CellStatus::Ok && reference.status == CellStatus::Ok {
            self.floor = Some(Floor {
                ns_per_event: reference.ns_per_event(),
                ir_per_event: reference.instructions.as_ref().map(|i| i.ir_per_event),
                in_line,
            });
        }
    }
}

impl Run {
    /// Sets every Ok cell's [`CellResult::floor`] from the reference cell
    /// (`reference` in [`RunMeta::buses`]) of the same scenario and sweep
    /// point that ended Ok, where the run holds one (a floor already set is
    /// kept otherwise: a shard may hold a point's buses without its
    /// reference). Reference cells get no floor.
    pub fn attach_floors(&mut self) {
        let references: Vec<CellResult> =
            self.cells.iter().filter(|c| self.meta.is_reference(&c.key.bus)).cloned().collect();
        for i in 0..self.cells.len() {
            self.meta.attach_floor(&mut self.cells[i], &references);
        }
    }
}

impl RunMeta {
    /// `bus` is one of the run's references (the `null` floor).
    pub fn is_reference(&self, bus: &str) -> bool {
        self.buses.iter().any(|b| b.reference && b.name == bus)
    }

    /// Sets `cell`'s floor from the reference among `measured` at its
    /// scenario point, if one ended Ok there (references get none): the
    /// one rule the runner (as cells finish) and [`Run::attach_floors`]
    /// (on load) both apply.
    pub fn attach_floor(&self, cell: &mut CellResult, measured: &[CellResult]) {
        if self.is_reference(&cell.key.bus) {
            return;
        }
        let at_point = measured.iter().find(|r| {
            self.is_reference(&r.key.bus)
                && r.status == CellStatus::Ok
                && r.key.scenario == cell.key.scenario
                && r.key.params == cell.key.params
        });
        if let Some(r) = at_point {
            let in_line = !self.buses.iter().any(|b| b.asynchronous && b.name == cell.key.bus);
            cell.set_floor(r, in_line);
        }
    }
}

/// Runs from before shared rates: the offered load (a fraction of the
/// bus's own capacity) whose latency the headline metrics report.
pub const HEADLINE_LOAD: f64 = 0.5;

/// A whole run: its metadata and every cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Where and how.
    pub meta: RunMeta,
    /// The cells, in the order they ran.
    pub cells: Vec<CellResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rate: f64, p99: u64) -> Latency {
        Latency { offered_per_sec: rate, p99_ns: p99, count: 1000, ..Latency::default() }
    }

    #[test]
    fn percentiles_that_fall_among_misses_are_lost() {
        // 990 delivered, 10 missed: p99 is the 990th of 1000, a delivery;
        // p99.9 is the 999th, a miss.
        assert!(!percentile_lost(990, 10, 0.99));
        assert!(percentile_lost(990, 10, 0.999));
        assert!(!percentile_lost(1000, 0, 0.9999));
        assert!(percentile_lost(0, 5, 0.5));
        let l = Latency { count: 990, misses: 10, p99_ns: 700, p999_ns: 0, ..Latency::default() };
        assert_eq!((l.percentile_ns(0.99), l.percentile_ns(0.999)), (Some(700), None));
    }

    #[test]
    fn the_headline_entry_is_at_the_headline_rate_and_judged() {
        let mut cell =
            CellResult::new(CellKey { scenario: "s".into(), bus: "b".into(), params: BTreeMap::new() }, 1, 1);
        cell.latency = vec![at(1e5, 100), at(2e5, 200), at(5e5, 500)];
        assert_eq!(cell.headline_latency(), None, "no headline rate: no entry at load 0.5");
        cell.headline_rate = Some(2e5);
        assert_eq!(cell.headline_latency().map(|l| l.p99_ns), Some(200));
        cell.latency[1].saturation = Some(Saturation::OverCapacity("fell behind".into()));
        assert_eq!(cell.headline_latency(), None, "an over-capacity load is not a latency");
        // A run from before shared rates: the entry at half of capacity.
        let mut old = cell.clone();
        old.headline_rate = None;
        old.latency = vec![Latency { load: 0.25, ..at(1e5, 1) }, Latency { load: 0.5, ..at(3e5, 2) }];
        assert_eq!(old.headline_latency().map(|l| l.p99_ns), Some(2));
    }

    #[test]
    fn runs_stored_before_the_new_fields_still_load() {
        let old = r#"{"load":0.5,"offered_per_sec":1.0,"p50_ns":1,"p90_ns":2,"p99_ns":3,"p999_ns":4,"p9999_ns":5,
            "max_ns":6,"count":7,"histogram":"","spike_p99_ns":null,"drain_ns":null}"#;
        let l: Latency = serde_json::from_str(old).expect("an old entry loads");
        assert_eq!((l.misses, &l.saturation, l.beyond_headline), (0, &None, false));
        assert!(l.repetitions.is_empty(), "a run from before latency repetitions: one process");
        // And an entry without repetitions stores none.
        assert!(!serde_json::to_string(&l).expect("json").contains("repetitions"));
    }

    #[test]
    fn a_latency_repetition_reads_its_percentiles_and_knows_the_lost_ones() {
        let r = LatencyRepetition { p50_ns: 1, p99_ns: 2, p999_ns: 3, count: 995, misses: 5 };
        assert_eq!([0.5, 0.99].map(|q| r.percentile_ns(q)), [Some(1), Some(2)]);
        assert_eq!(r.percentile_ns(0.999), None, "p99.9 falls among the 5 misses of 1000");
        let json = serde_json::to_string(&Latency { repetitions: vec![r], ..Latency::default() }).expect("json");
        let back: Latency = serde_json::from_str(&json).expect("loads");
        assert_eq!(back.repetitions, [r]);
    }

    #[test]
    fn runs_stored_before_the_methodology_was_recorded_are_version_1() {
        let mut json = serde_json::to_value(RunMeta { methodology: METHODOLOGY, ..RunMeta::default() }).expect("json");
        assert_eq!(json["methodology"], METHODOLOGY);
        json.as_object_mut().expect("an object").remove("methodology");
        let old: RunMeta = serde_json::from_value(json).expect("an old run loads");
        assert_eq!(old.methodology, 1);
        const { assert!(METHODOLOGY > 1) };
    }
}
