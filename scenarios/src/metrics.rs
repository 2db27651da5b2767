//! The one list of metrics: every headline figure a cell can have, with its
//! slug, unit, direction, how a change is judged, which pass measures it and
//! how to read it from a [`CellResult`].
//!
//! The store's `metrics` rows, the exports, the regression rule, the
//! verdict matrix, the trends, the formatting and the guide all iterate
//! [`ALL`] (rustc-perf's `Metric`, ripgrep's `FLAGS`): adding a metric is
//! one entry here, plus the field it reads.

use crate::results::{CellResult, Estimate};
use serde::{Deserialize, Serialize};

/// A measuring pass; each runs in its own child process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// Events per second over timed trials (and CPU time per event).
    Throughput,
    /// Open-loop latency at offered rates.
    Latency,
    /// Heap allocations per event, from a counting global allocator.
    Allocations,
    /// Instructions per event under callgrind.
    Instructions,
    /// Folded stacks from a sampling profiler.
    Profile,
}

impl Pass {
    /// Every pass, in the order a cell runs them.
    pub const ALL: [Pass; 5] = [Pass::Throughput, Pass::Latency, Pass::Allocations, Pass::Instructions, Pass::Profile];

    /// The pass's name.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Throughput => "throughput",
            Pass::Latency => "latency",
            Pass::Allocations => "allocations",
            Pass::Instructions => "instructions",
            Pass::Profile => "profile",
        }
    }
}

/// The unit of a metric's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Events per second.
    EventsPerSec,
    /// Deliveries (listener calls) per second.
    DeliveriesPerSec,
    /// Nanoseconds.
    Nanos,
    /// Heap allocations per event.
    Allocations,
    /// Bytes per event.
    Bytes,
    /// Bytes per second.
    BytesPerSec,
    /// Instructions per event.
    Instructions,
    /// Estimated cycles per event.
    Cycles,
    /// Mispredicted branches per event.
    BranchMisses,
    /// A share of deliveries, 0 to 1.
    Fraction,
}

impl Unit {
    /// The unit as printed after a value.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::EventsPerSec => "events/s",
            Unit::DeliveriesPerSec => "deliveries/s",
            Unit::Nanos => "ns",
            Unit::Allocations => "allocations",
            Unit::Bytes => "bytes",
            Unit::BytesPerSec => "bytes/s",
            Unit::Instructions => "instructions",
            Unit::Cycles => "cycles",
            Unit::BranchMisses => "branch misses",
            Unit::Fraction => "of deliveries",
        }
    }
}

/// How a change of a metric between two runs is judged (the regression
/// rule, `reports/src/analysis/regression.rs`, states the rule in prose).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A count per event: a fixed threshold.
    Deterministic,
    /// A wall-clock figure with one sample per trial: Mann–Whitney U on the
    /// samples and the noise band.
    Sampled,
    /// A wall-clock figure, one per run (a latency percentile): the noise
    /// band.
    SingleFigure,
}

/// One metric's value in one cell: the figure, its 95% interval where there
/// is one, and the per-trial samples it came from (empty when there are
/// none).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading<'a> {
    /// The value, in the metric's unit.
    pub value: f64,
    /// The 95% confidence interval, where there is one.
    pub interval: Option<(f64, f64)>,
    /// Per-trial samples (empty for figures that have none).
    pub samples: &'a [f64],
}

impl<'a> Reading<'a> {
    /// A single figure.
    fn figure(value: f64) -> Reading<'a> {
        Reading { value, interval: None, samples: &[] }
    }

    /// A median with its interval and samples.
    fn estimate(e: &'a Estimate) -> Reading<'a> {
        Reading { value: e.median, interval: Some((e.lower, e.upper)), samples: &e.samples }
    }
}

/// A metric: what it is called, measures and means.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Metric {
    /// Stable slug: the store's `metrics.measure`, the exports' key.
    pub slug: &'static str,
    /// A short heading for tables and charts.
    pub title: &'static str,
    /// The unit of its values.
    pub unit: Unit,
    /// A higher value is better (throughput); otherwise lower is better.
    pub higher_is_better: bool,
    /// How a change is judged.
    pub kind: Kind,
    /// The pass that measures it.
    pub pass: Pass,
    /// The regression rule compares it between runs (`deliveries` is left
    /// out: it is the throughput times the fan-out and would repeat every
    /// throughput verdict; the decode-only CloudEvents figures are covered
    /// by decode + route).
    pub compared: bool,
    /// A count that repeats exactly from run to run of the same code in a
    /// single-threaded cell (what `compare --gate deterministic` admits).
    /// The cache and branch simulations are not: they depend on addresses.
    pub repeatable: bool,
    /// Counted by callgrind: deterministic only for single-threaded cells.
    pub callgrind: bool,
    /// Reads the metric from a cell, if the cell measured it.
    #[serde(skip)]
    pub read: for<'a> fn(&'a CellResult) -> Option<Reading<'a>>,
}

impl Metric {
    /// The metric's reading in `cell`, when measured and finite (a bound
    /// that is not finite drops the interval: it is no measurement).
    pub fn reading<'a>(&self, cell: &'a CellResult) -> Option<Reading<'a>> {
        let mut r = (self.read)(cell)?;
        if !r.value.is_finite() {
            return None;
        }
        r.interval = r.interval.filter(|(l, u)| l.is_finite() && u.is_finite());
        Some(r)
    }

    /// The metric's value in `cell`, when measured and finite.
    pub fn value(&self, cell: &CellResult) -> Option<f64> {
        self.reading(cell).map(|r| r.value)
    }
}

impl PartialEq for Metric {
    fn eq(&self, other: &Metric) -> bool {
        self.slug == other.slug
    }
}

impl Eq for Metric {}

/// The template of a metric; entries of [`ALL`] override what differs.
const BASE: Metric = Metric {
    slug: "",
    title: "",
    unit: Unit::Instructions,
    higher_is_better: false,
    kind: Kind::Deterministic,
    pass: Pass::Instructions,
    compared: true,
    repeatable: false,
    callgrind: false,
    read: |_| None,
};

/// Every metric, in the order cells list them.
pub const ALL: &[Metric] = &[
    Metric {
        slug: "throughput",
        title: "Throughput",
        unit: Unit::EventsPerSec,
        higher_is_better: true,
        kind: Kind::Sampled,
        pass: Pass::Throughput,
        read: |c| Some(Reading::estimate(&c.throughput.as_ref()?.events_per_sec)),
        ..BASE
    },
    Metric {
        slug: "deliveries",
        title: "Deliveries",
        unit: Unit::DeliveriesPerSec,
        higher_is_better: true,
        kind: Kind::Sampled,
        pass: Pass::Throughput,
        compared: false,
        read: |c| Some(Reading::estimate(&c.throughput.as_ref()?.deliveries_per_sec)),
        ..BASE
    },
    Metric {
        slug: "loss-rate",
        title: "Loss",
        unit: Unit::Fraction,
        kind: Kind::SingleFigure,
        pass: Pass::Throughput,
        compared: false,
        read: |c| Some(Reading::figure(c.loss_rate()?)),
        ..BASE
    },
    Metric {
        slug: "cpu-time-per-event",
        title: "CPU time/event",
        unit: Unit::Nanos,
        kind: Kind::Sampled,
        pass: Pass::Throughput,
        read: |c| Some(Reading::estimate(c.throughput.as_ref()?.cpu_ns_per_event.as_ref()?)),
        ..BASE
    },
    Metric {
        slug: "bus-cost",
        title: "Bus cost/event",
        unit: Unit::Nanos,
        kind: Kind::SingleFigure,
        pass: Pass::Throughput,
        compared: false,
        read: |c| {
            let (value, lower, upper) = c.bus_cost_ns()?;
            Some(Reading { value, interval: Some((lower, upper)), samples: &[] })
        },
        ..BASE
    },
    Metric {
        slug: "latency-p50",
        title: "p50 latency",
        unit: Unit::Nanos,
        kind: Kind::SingleFigure,
        pass: Pass::Latency,
        read: |c| Some(Reading::figure(c.headline_latency()?.percentile_ns(0.5)? as f64)),
        ..BASE
    },
    Metric {
        slug: "latency-p99",
        title: "p99 latency",
        unit: Unit::Nanos,
        kind: Kind::SingleFigure,
        pass: Pass::Latency,
        read: |c| Some(Reading::figure(c.headline_latency()?.percentile_ns(0.99)? as f64)),
        ..BASE
    },
    Metric {
        slug: "latency-p999",
        title: "p99.9 latency",
        unit: Unit::Nanos,
        kind: Kind::SingleFigure,
        pass: Pass::Latency,
        read: |c| Some(Reading::figure(c.headline_latency()?.percentile_ns(0.999)? as f64)),
        ..BASE
    },
    Metric {
        slug: "allocs-per-event",
        title: "Allocations/event",
        unit: Unit::Allocations,
        pass: Pass::Allocations,
        repeatable: true,
        read: |c| Some(Reading::figure(c.allocations.as_ref()?.allocs_per_event)),
        ..BASE
    },
    Metric {
        slug: "bytes-per-event",
        title: "Bytes/event",
        unit: Unit::Bytes,
        pass: Pass::Allocations,
        repeatable: true,
        read: |c| Some(Reading::figure(c.allocations.as_ref()?.bytes_per_event)),
        ..BASE
    },
    Metric {
        slug: "instructions-per-event",
        title: "Instructions/event",
        unit: Unit::Instructions,
        repeatable: true,
        callgrind: true,
        read: |c| Some(Reading::figure(c.instructions.as_ref()?.ir_per_event)),
        ..BASE
    },
    Metric {
        slug: "bus-cost-instructions",
        title: "Bus cost, Ir/event",
        unit: Unit::Instructions,
        compared: false,
        read: |c| Some(Reading::figure(c.bus_cost_ir()?)),
        ..BASE
    },
    Metric {
        slug: "est-cycles-per-event",
        title: "Est. cycles/event",
        unit: Unit::Cycles,
        callgrind: true,
        read: |c| Some(Reading::figure(c.instructions.as_ref()?.est_cycles_per_event)),
        ..BASE
    },
    Metric {
        slug: "branch-misses-per-event",
        title: "Branch misses/event",
        unit: Unit::BranchMisses,
        callgrind: true,
        read: |c| Some(Reading::figure(c.instructions.as_ref()?.branch_misses_per_event)),
        ..BASE
    },
    Metric {
        slug: "decode-throughput",
        title: "Decode only",
        unit: Unit::EventsPerSec,
        higher_is_better: true,
        kind: Kind::Sampled,
        pass: Pass::Throughput,
        compared: false,
        read: |c| Some(Reading::estimate(&c.cloudevents.as_ref()?.decode_events_per_sec)),
        ..BASE
    },
    Metric {
        slug: "decode-bytes",
        title: "Decode only, bytes",
        unit: Unit::BytesPerSec,
        higher_is_better: true,
        kind: Kind::Sampled,
        pass: Pass::Throughput,
        compared: false,
        read: |c| Some(Reading::estimate(&c.cloudevents.as_ref()?.decode_bytes_per_sec)),
        ..BASE
    },
    Metric {
        slug: "route-bytes",
        title: "Decode + route, bytes",
        unit: Unit::BytesPerSec,
        higher_is_better: true,
        kind: Kind::Sampled,
        pass: Pass::Throughput,
        compared: false,
        read: |c| Some(Reading::estimate(&c.cloudevents.as_ref()?.route_bytes_per_sec)),
        ..BASE
    },
];

/// The metric called `slug`.
pub fn by_slug(slug: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.slug == slug)
}

/// The metrics the regression rule compares, in [`ALL`] order.
pub fn compared() -> impl Iterator<Item = &'static Metric> {
    ALL.iter().filter(|m| m.compared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{CellKey, Instructions, Throughput};

    #[test]
    fn slugs_are_unique_and_templated_fields_are_set() {
        let mut slugs: Vec<&str> = ALL.iter().map(|m| m.slug).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ALL.len(), "a slug is listed twice");
        for m in ALL {
            assert!(!m.slug.is_empty() && !m.title.is_empty(), "{m:?} lacks a slug or title");
            assert!(!(m.repeatable && m.kind != Kind::Deterministic), "{}: repeatable but not a count", m.slug);
            assert!(!(m.callgrind && m.pass != Pass::Instructions), "{}: callgrind outside its pass", m.slug);
            assert_eq!(by_slug(m.slug), Some(m));
        }
    }

    #[test]
    fn readings_come_from_their_pass_and_drop_what_is_not_finite() {
        let key = CellKey { scenario: "spsc".into(), bus: "null".into(), params: Default::default() };
        let mut cell = CellResult::new(key, 1, 1);
        assert!(ALL.iter().all(|m| m.reading(&cell).is_none()), "an empty cell has no metric");
        let e = Estimate { median: 2.0, lower: 1.0, upper: f64::NAN, samples: vec![1.0, 2.0, 3.0] };
        cell.throughput = Some(Throughput {
            events_per_sec: e.clone(),
            cpu_ns_per_event: Some(Estimate { median: 5.0, ..e.clone() }),
            ..Throughput::default()
        });
        cell.instructions = Some(Instructions { ir_per_event: f64::INFINITY, ..Instructions::default() });
        let t = by_slug("throughput").expect("listed").reading(&cell).expect("measured");
        assert_eq!((t.value, t.interval, t.samples.len()), (2.0, None, 3));
        assert_eq!(by_slug("cpu-time-per-event").and_then(|m| m.value(&cell)), Some(5.0));
        assert_eq!(by_slug("instructions-per-event").and_then(|m| m.value(&cell)), None);
        assert_eq!(by_slug("allocs-per-event").and_then(|m| m.value(&cell)), None);
    }
}
