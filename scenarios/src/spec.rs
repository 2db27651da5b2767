//! A scenario file's schema, its parsing and its validation.
//!
//! Scenario files are TOML. Unknown keys are rejected, and every error names
//! the file, the line and column, the field and what is allowed. The fields:
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `name` | string | required | `[a-z0-9-]`, at most 64 characters; keys the stored history |
//! | `description` | string | `""` | one sentence for the report |
//! | `producers` | integer or list | `1` | publishing threads (a list sweeps) |
//! | `subscribers` | integer or list | required | listeners (a list sweeps) |
//! | `topics` | integer | `1` | events spread round-robin over topics; subscriber *i* takes topic *i mod topics* |
//! | `payload` | `"small"` / `"heavy"` / `"cloudevents"` | `"small"` | the event type |
//! | `events` | integer | calibrated | events per producer per trial (else the harness sizes trials to ≥ 200 ms) |
//! | `batch` | integer | `1` | events per publish call: above 1, producers publish with `publish_batch` of this many (a multiple of `topics`; buses without a batch publish loop over `publish_clone`) |
//! | `listener_work_ns` | integer | `0` | simulated work per delivery, in nominal ns: that many iterations of a fixed loop, the same instructions on every machine (each run records what an iteration took there) |
//! | `listener_bodies` | `1`, `4` or `"each"` | `1` | distinct listener bodies (generated code) |
//! | `oversubscribe` | bool | `false` | allow more threads than cores |
//! | `loss_acceptable` | bool | `false` | losing deliveries is acceptable for this workload: lossy buses are ranked (and may be recommended) beside lossless ones; otherwise a cell that lost anything is never a winner |
//! | `buses` | list of names | every bus | only these buses run the scenario (see `buslab list`) |
//! | `latency_rates` | list of numbers | a shared grid | offered rates (events/s, all producers) of the latency pass, the same for every bus; the first is the headline rate |
//! | `[burst]` | table | none | `base_rate` (events/s), `spike_factor`, `spike_ms`, `period_ms` |
//! | `[slow]` | table | none | `count` subscribers doing `work_ns` each per delivery |
//! | `[churn]` | table | none | `per_second` subscribe/unsubscribe pairs while publishing |
//! | `[bus]` | table | none | `capacity` (events), `wait` (`"park"`, `"yield"`, `"busy_spin"`) |
//! | `[cloudevents]` | table | defaults | only with `payload = "cloudevents"`: `decoders` (`"serde_json"`, `"simd_json"`, `"sonic_rs"`, `"sonic_rs_native"`), `modes` (`"structured"`, `"binary"`), `representations` (`"owned"`, `"borrowed"`), `extensions` (`"struct"`, `"map"`) — each a name or a list, swept, default all; `documents` (generated, default 1000), `seed` (default 42), `max_bytes` (size limit, default 65536) |
//!
//! A `cloudevents` scenario routes by event type: its topics are the
//! corpus's types, so `topics` is refused, and so are `[burst]`, `[slow]` and
//! `[churn]`, which its passes do not support.

use crate::ScenarioError;
use crate::cloudevents::{ContentMode, Decoder, ExtensionMode, Representation, Settings, Variant};
use buslab_impls::WaitStrategy;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use toml::Spanned;

/// Most producers a scenario may ask for.
pub const MAX_PRODUCERS: u64 = 64;
/// Most subscribers a scenario may ask for.
pub const MAX_SUBSCRIBERS: u64 = 4096;
/// Most events per producer per trial.
pub const MAX_EVENTS: u64 = 1_000_000_000;
/// Most events per `publish_batch` call.
pub const MAX_BATCH: u64 = 4096;
/// Most simulated work per delivery (10 ms).
pub const MAX_WORK_NS: u64 = 10_000_000;
/// Largest bus capacity (2^24 events).
pub const MAX_CAPACITY: u64 = 1 << 24;
/// Highest offered rate a scenario may name for the latency pass, events/s.
pub const MAX_LATENCY_RATE: f64 = 1e9;
/// Lowest offered rate a scenario may name, events/s (a trial of a few
/// hundred milliseconds must hold events to measure).
pub const MIN_LATENCY_RATE: f64 = 100.0;
/// Most rates a scenario may name for the latency pass.
pub const MAX_LATENCY_RATES: usize = 8;

/// The event type a scenario publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// [`buslab_impls::payload::SmallEvent`]: a `Copy` struct of a few words.
    Small,
    /// [`buslab_impls::payload::HeavyEvent`]: an owned order event.
    Heavy,
    /// CloudEvents JSON documents, decoded and routed by type (see
    /// [`crate::cloudevents`]).
    #[serde(rename = "cloudevents")]
    CloudEvents,
}

impl PayloadKind {
    /// The name used in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            PayloadKind::Small => "small",
            PayloadKind::Heavy => "heavy",
            PayloadKind::CloudEvents => "cloudevents",
        }
    }
}

/// How many distinct listener bodies the subscribers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bodies {
    /// Every listener runs the same code.
    One,
    /// Four distinct bodies, assigned round-robin.
    Four,
    /// One distinct body per listener (generated functions).
    Each,
}

impl Bodies {
    /// The number of distinct bodies for `subscribers` listeners.
    pub fn count(self, subscribers: usize) -> usize {
        match self {
            Bodies::One => 1,
            Bodies::Four => 4.min(subscribers),
            Bodies::Each => subscribers,
        }
    }
}

/// A steady rate with periodic spikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Burst {
    /// Events per second outside spikes (all producers together).
    pub base_rate: u64,
    /// Rate multiplier during a spike.
    pub spike_factor: u64,
    /// Length of a spike.
    pub spike_ms: u64,
    /// Time from the start of one spike to the next.
    pub period_ms: u64,
}

/// Some subscribers are slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slow {
    /// How many subscribers are slow (the last ones).
    pub count: u64,
    /// Their simulated work per delivery, in nominal ns (iterations of
    /// the harness's work loop, like `listener_work_ns`).
    pub work_ns: u64,
}

/// Subscribers join and leave while producers publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Churn {
    /// Subscribe/unsubscribe pairs per second.
    pub per_second: u64,
}

/// Bus parameters a scenario sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusParams {
    /// Queue/ring/pool capacity in events.
    pub capacity: usize,
    /// Wait strategy.
    pub wait: WaitStrategy,
}

impl Default for BusParams {
    fn default() -> Self {
        BusParams { capacity: 1024, wait: WaitStrategy::Park }
    }
}

/// Where a scenario came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Shipped in `scenarios/catalog/`, compiled in.
    Catalog(String),
    /// A user's file.
    File(String),
}

/// A validated scenario: one workload, possibly sweeping producers and
/// subscribers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Unique name.
    pub name: String,
    /// One sentence.
    pub description: String,
    /// Where it was read from.
    pub origin: Origin,
    /// SHA-256 of the file's text, hex.
    pub sha256: String,
    /// Producer counts (a sweep when several).
    pub producers: Vec<usize>,
    /// Subscriber counts (a sweep when several).
    pub subscribers: Vec<usize>,
    /// Number of topics.
    pub topics: usize,
    /// Event type.
    pub payload: PayloadKind,
    /// Events per producer per trial, if fixed.
    pub events: Option<u64>,
    /// Events per publish call: 1 publishes one at a time
    /// (`publish_clone`), more publishes with `publish_batch` of this many
    /// (a multiple of `topics`).
    #[serde(default = "one")]
    pub batch: usize,
    /// Simulated work per delivery, in nominal ns: the harness runs that
    /// many iterations of a fixed loop, the same on every machine, and
    /// records what an iteration took on the machine at hand.
    pub listener_work_ns: u64,
    /// Distinct listener bodies.
    pub bodies: Bodies,
    /// More threads than cores allowed.
    pub oversubscribe: bool,
    /// Losing deliveries is acceptable for this workload: lossy buses are
    /// ranked beside lossless ones. Otherwise a cell that lost anything is
    /// never a winner.
    #[serde(default)]
    pub loss_acceptable: bool,
    /// Only these buses run the scenario (`None`: every bus).
    #[serde(default)]
    pub buses: Option<Vec<String>>,
    /// Burst pattern, if any.
    pub burst: Option<Burst>,
    /// The latency pass's offered rates (events/s, all producers), offered
    /// to every bus of a point; the first is the headline rate. `None`: a
    /// grid shared by the point's buses, up to the slowest lossless one's
    /// capacity.
    #[serde(default)]
    pub latency_rates: Option<Vec<f64>>,
    /// Slow subscribers, if any.
    pub slow: Option<Slow>,
    /// Subscribe churn, if any.
    pub churn: Option<Churn>,
    /// Bus parameters.
    pub bus: BusParams,
    /// CloudEvents settings (`payload = "cloudevents"` only).
    #[serde(default)]
    pub cloudevents: Option<Settings>,
}

fn one() -> usize {
    1
}

/// One point of a scenario's sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Publishing threads.
    pub producers: usize,
    /// Listeners.
    pub subscribers: usize,
    /// The decoder, content mode, representation and extension handling of
    /// a `cloudevents` cell.
    #[serde(default)]
    pub cloudevents: Option<Variant>,
}

impl SweepPoint {
    /// A point of a scenario without CloudEvents axes.
    pub fn new(producers: usize, subscribers: usize) -> SweepPoint {
        SweepPoint { producers, subscribers, cloudevents: None }
    }
}

impl Scenario {
    /// Every sweep point, producers outer, subscribers inner, then (for
    /// `cloudevents`) decoders, content modes, representations and
    /// extension modes.
    pub fn points(&self) -> Vec<SweepPoint> {
        let axes: Vec<Option<Variant>> = match &self.cloudevents {
            Some(settings) => settings.variants().into_iter().map(Some).collect(),
            None => vec![None],
        };
        let mut points = Vec::new();
        for &producers in &self.producers {
            for &subscribers in &self.subscribers {
                for &cloudevents in &axes {
                    points.push(SweepPoint { producers, subscribers, cloudevents });
                }
            }
        }
        points
    }

    /// The parameters that vary across this scenario's sweep at `point`, as
    /// `(name, value)` pairs (empty when nothing is swept).
    pub fn sweep_params(&self, point: SweepPoint) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if self.producers.len() > 1 {
            params.push(("producers", point.producers.to_string()));
        }
        if self.subscribers.len() > 1 {
            params.push(("subscribers", point.subscribers.to_string()));
        }
        // Always named, swept or not: reports build the decoder × bus ×
        // representation matrix from them. The content mode is named when
        // it is binary: structured cells keep the keys (and the history)
        // they had before the mode axis, and no `mode` means structured.
        if let Some(ce) = point.cloudevents {
            params.push(("decoder", ce.decoder.name().to_owned()));
            if ce.mode != ContentMode::Structured {
                params.push(("mode", ce.mode.name().to_owned()));
            }
            params.push(("representation", ce.representation.name().to_owned()));
            params.push(("extensions", ce.extensions.name().to_owned()));
        }
        params
    }
}

/// An integer or a list of integers.
enum OneOrMany {
    One(u64),
    Many(Vec<u64>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a positive integer or a list of positive integers")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                u64::try_from(v)
                    .map(OneOrMany::One)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element::<u64>()? {
                    values.push(v);
                }
                Ok(OneOrMany::Many(values))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A rate as written: an integer (`1_000_000`) or a float (`1e6`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRate {
    Integer(i64),
    Float(f64),
}

impl RawRate {
    fn value(&self) -> f64 {
        match *self {
            RawRate::Integer(i) => i as f64,
            RawRate::Float(f) => f,
        }
    }
}

/// `1`, `4` or `"each"`.
enum RawBodies {
    Count(u64),
    Word(String),
}

impl<'de> Deserialize<'de> for RawBodies {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawBodies;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("1, 4 or \"each\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawBodies, E> {
                Ok(RawBodies::Count(u64::try_from(v).unwrap_or(u64::MAX)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawBodies, E> {
                Ok(RawBodies::Count(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawBodies, E> {
                Ok(RawBodies::Word(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    producers: Option<Spanned<OneOrMany>>,
    subscribers: Spanned<OneOrMany>,
    topics: Option<Spanned<u64>>,
    payload: Option<Spanned<String>>,
    events: Option<Spanned<u64>>,
    batch: Option<Spanned<u64>>,
    listener_work_ns: Option<Spanned<u64>>,
    listener_bodies: Option<Spanned<RawBodies>>,
    #[serde(default)]
    oversubscribe: bool,
    #[serde(default)]
    loss_acceptable: bool,
    buses: Option<Spanned<Vec<String>>>,
    latency_rates: Option<Spanned<Vec<RawRate>>>,
    burst: Option<Spanned<RawBurst>>,
    slow: Option<Spanned<RawSlow>>,
    churn: Option<Spanned<RawChurn>>,
    bus: Option<Spanned<RawBus>>,
    cloudevents: Option<Spanned<RawCloudEvents>>,
}

/// A name or a list of names.
#[derive(Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloudEvents {
    decoders: Option<Spanned<Names>>,
    modes: Option<Spanned<Names>>,
    representations: Option<Spanned<Names>>,
    extensions: Option<Spanned<Names>>,
    documents: Option<Spanned<u64>>,
    seed: Option<Spanned<u64>>,
    max_bytes: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBurst {
    base_rate: Spanned<u64>,
    spike_factor: Spanned<u64>,
    spike_ms: Spanned<u64>,
    period_ms: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlow {
    count: Spanned<u64>,
    work_ns: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChurn {
    per_second: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBus {
    capacity: Option<Spanned<u64>>,
    wait: Option<Spanned<String>>,
}

/// Builds errors that point into one file's text.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, span: Range<usize>, field: &str, message: String) -> ScenarioError {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ScenarioError::Invalid { file: self.file.to_owned(), line, column, field: field.to_owned(), message }
    }

    /// The key assigned on the line holding `offset` (`key = value`).
    fn key_at(&self, offset: usize) -> Option<String> {
        let start = self.text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
        let line = self.text[start..].lines().next()?;
        let (key, _) = line.split_once('=')?;
        let key = key.trim();
        (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .then(|| key.to_owned())
    }

    fn range<T: Copy + PartialOrd + std::fmt::Display>(
        &self,
        value: &Spanned<T>,
        field: &str,
        min: T,
        max: T,
    ) -> Result<T, ScenarioError> {
        let v = *value.get_ref();
        if v < min || v > max {
            return Err(self.at(value.span(), field, format!("{v} is out of range: allowed {min} to {max}")));
        }
        Ok(v)
    }

    /// A name or list of names, each one `parse` accepts, no repeats.
    fn names<T: PartialEq>(
        &self,
        value: &Spanned<Names>,
        field: &str,
        allowed: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, ScenarioError> {
        let names = match value.get_ref() {
            Names::One(n) => vec![n.clone()],
            Names::Many(ns) => ns.clone(),
        };
        if names.is_empty() {
            return Err(self.at(value.span(), field, "an empty list: give at least one value".into()));
        }
        let mut out = Vec::new();
        for name in &names {
            let v = parse(name).ok_or_else(|| self.at(value.span(), field, format!("{name:?}: allowed {allowed}")))?;
            if out.contains(&v) {
                return Err(self.at(value.span(), field, "a value appears twice in the sweep".into()));
            }
            out.push(v);
        }
        Ok(out)
    }

    fn list(&self, value: &Spanned<OneOrMany>, field: &str, max: u64) -> Result<Vec<usize>, ScenarioError> {
        let values = match value.get_ref() {
            OneOrMany::One(v) => vec![*v],
            OneOrMany::Many(vs) => vs.clone(),
        };
        if values.is_empty() {
            return Err(self.at(value.span(), field, "an empty list: give at least one value".into()));
        }
        if values.len() > 32 {
            return Err(self.at(value.span(), field, "more than 32 sweep points".into()));
        }
        for &v in &values {
            if v == 0 || v > max {
                return Err(self.at(value.span(), field, format!("{v} is out of range: allowed 1 to {max}")));
            }
        }
        let mut dedup = values.clone();
        dedup.sort_unstable();
        dedup.dedup();
        if dedup.len() != values.len() {
            return Err(self.at(value.span(), field, "a value appears twice in the sweep".into()));
        }
        Ok(values.into_iter().map(|v| v as usize).collect())
    }
}

/// Parses and validates one scenario file's `text`; `file` names it in errors.
pub fn parse(file: &str, text: &str, origin: Origin) -> Result<Scenario, ScenarioError> {
    let loc = Locator { file, text };
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let field = match e.message().split('`').nth(1) {
            Some(f) if e.message().starts_with("unknown field") || e.message().starts_with("missing field") => {
                f.to_owned()
            }
            _ => loc.key_at(span.start).unwrap_or_else(|| "-".to_owned()),
        };
        loc.at(span, &field, e.message().trim().to_owned())
    })?;

    let name = raw.name.get_ref().clone();
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(loc.at(
            raw.name.span(),
            "name",
            format!("{name:?}: allowed 1 to 64 characters of a-z, 0-9 and '-'"),
        ));
    }
    let producers = match &raw.producers {
        Some(p) => loc.list(p, "producers", MAX_PRODUCERS)?,
        None => vec![1],
    };
    let subscribers = loc.list(&raw.subscribers, "subscribers", MAX_SUBSCRIBERS)?;
    let topics = match &raw.topics {
        Some(t) => loc.range(t, "topics", 1, 65_536)? as usize,
        None => 1,
    };
    let payload = match &raw.payload {
        None => PayloadKind::Small,
        Some(p) => match p.get_ref().as_str() {
            "small" => PayloadKind::Small,
            "heavy" => PayloadKind::Heavy,
            "cloudevents" => PayloadKind::CloudEvents,
            other => {
                return Err(loc.at(
                    p.span(),
                    "payload",
                    format!("{other:?}: allowed \"small\", \"heavy\" or \"cloudevents\""),
                ));
            }
        },
    };
    let events = raw.events.as_ref().map(|e| loc.range(e, "events", 1, MAX_EVENTS)).transpose()?;
    let batch = match &raw.batch {
        None => 1,
        Some(b) => {
            let batch = loc.range(b, "batch", 1, MAX_BATCH)? as usize;
            // Every batch then starts on the same topic, so one prepared
            // buffer of `batch` events serves the whole trial.
            if batch > 1 && !batch.is_multiple_of(topics) {
                return Err(loc.at(b.span(), "batch", format!("{batch} is not a multiple of topics ({topics})")));
            }
            batch
        }
    };
    let listener_work_ns = match &raw.listener_work_ns {
        Some(w) => loc.range(w, "listener_work_ns", 0, MAX_WORK_NS)?,
        None => 0,
    };
    let bodies = match &raw.listener_bodies {
        None => Bodies::One,
        Some(b) => match b.get_ref() {
            RawBodies::Count(1) => Bodies::One,
            RawBodies::Count(4) => Bodies::Four,
            RawBodies::Word(w) if w == "each" => Bodies::Each,
            _ => {
                return Err(loc.at(b.span(), "listener_bodies", "allowed 1, 4 or \"each\"".into()));
            }
        },
    };
    let burst = match &raw.burst {
        None => None,
        Some(b) => {
            let r = b.get_ref();
            let burst = Burst {
                base_rate: loc.range(&r.base_rate, "burst.base_rate", 1, 1_000_000_000)?,
                spike_factor: loc.range(&r.spike_factor, "burst.spike_factor", 1, 1_000)?,
                spike_ms: loc.range(&r.spike_ms, "burst.spike_ms", 1, 60_000)?,
                period_ms: loc.range(&r.period_ms, "burst.period_ms", 1, 600_000)?,
            };
            if burst.spike_ms >= burst.period_ms {
                return Err(loc.at(b.span(), "burst", "spike_ms must be shorter than period_ms".into()));
            }
            Some(burst)
        }
    };
    let slow = match &raw.slow {
        None => None,
        Some(s) => {
            let r = s.get_ref();
            let slow = Slow {
                count: loc.range(&r.count, "slow.count", 1, MAX_SUBSCRIBERS)?,
                work_ns: loc.range(&r.work_ns, "slow.work_ns", 1, MAX_WORK_NS)?,
            };
            if let Some(&min) = subscribers.iter().min()
                && slow.count as usize >= min
            {
                return Err(loc.at(
                    s.span(),
                    "slow.count",
                    format!("{} slow subscribers leave no fast one among {min}", slow.count),
                ));
            }
            Some(slow)
        }
    };
    let churn = raw
        .churn
        .as_ref()
        .map(|c| Ok(Churn { per_second: loc.range(&c.get_ref().per_second, "churn.per_second", 1, 1_000_000)? }))
        .transpose()?;
    let mut bus = BusParams::default();
    if let Some(b) = &raw.bus {
        let r = b.get_ref();
        if let Some(c) = &r.capacity {
            bus.capacity = loc.range(c, "bus.capacity", 1, MAX_CAPACITY)? as usize;
        }
        if let Some(w) = &r.wait {
            bus.wait = WaitStrategy::from_name(w.get_ref()).ok_or_else(|| {
                loc.at(w.span(), "bus.wait", format!("{:?}: allowed \"park\", \"yield\" or \"busy_spin\"", w.get_ref()))
            })?;
        }
    }

    let cloudevents = cloudevents_settings(&loc, &raw, payload)?;
    let latency_rates = raw.latency_rates.as_ref().map(|r| latency_rates(&loc, r, &raw)).transpose()?;
    let buses = match &raw.buses {
        None => None,
        Some(list) => {
            let names = list.get_ref();
            if names.is_empty() {
                return Err(loc.at(list.span(), "buses", "an empty list: give at least one bus".into()));
            }
            if let Some(unknown) = names.iter().find(|n| buslab_impls::find(n).is_none()) {
                let known: Vec<_> = buslab_impls::all().iter().map(|b| b.name).collect();
                return Err(loc.at(list.span(), "buses", format!("{unknown:?}: allowed {}", known.join(", "))));
            }
            Some(names.clone())
        }
    };

    Ok(Scenario {
        name,
        description: raw.description,
        origin,
        sha256: crate::sha256_hex(text.as_bytes()),
        producers,
        subscribers,
        topics,
        payload,
        events,
        batch,
        listener_work_ns,
        bodies,
        oversubscribe: raw.oversubscribe,
        loss_acceptable: raw.loss_acceptable,
        buses,
        burst,
        latency_rates,
        slow,
        churn,
        bus,
        cloudevents,
    })
}

/// `latency_rates`: 1 to [`MAX_LATENCY_RATES`] distinct finite rates from
/// [`MIN_LATENCY_RATE`] to [`MAX_LATENCY_RATE`]; not with a burst pattern
/// (whose rate is the pattern's) nor with CloudEvents (no latency pass).
fn latency_rates(
    loc: &Locator<'_>,
    rates: &Spanned<Vec<RawRate>>,
    raw: &RawScenario,
) -> Result<Vec<f64>, ScenarioError> {
    let field = "latency_rates";
    let refuse = |message: String| Err(loc.at(rates.span(), field, message));
    if raw.burst.is_some() {
        return refuse("a burst scenario's offered rate is its [burst] pattern's: remove one of the two".into());
    }
    if raw.payload.as_ref().is_some_and(|p| p.get_ref() == "cloudevents") {
        return refuse("cloudevents scenarios have no latency pass".into());
    }
    let values: Vec<f64> = rates.get_ref().iter().map(RawRate::value).collect();
    if values.is_empty() {
        return refuse("an empty list: give at least one rate (events/s)".into());
    }
    if values.len() > MAX_LATENCY_RATES {
        return refuse(format!("{} rates: at most {MAX_LATENCY_RATES}", values.len()));
    }
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() || !(MIN_LATENCY_RATE..=MAX_LATENCY_RATE).contains(&v) {
            return refuse(format!(
                "{v} is out of range: allowed {MIN_LATENCY_RATE} to {MAX_LATENCY_RATE:e} events/s (all producers)"
            ));
        }
        if values[..i].contains(&v) {
            return refuse(format!("{v} appears twice"));
        }
    }
    Ok(values)
}

/// The `[cloudevents]` table, and the keys a `cloudevents` scenario refuses.
fn cloudevents_settings(
    loc: &Locator<'_>,
    raw: &RawScenario,
    payload: PayloadKind,
) -> Result<Option<Settings>, ScenarioError> {
    if payload != PayloadKind::CloudEvents {
        return match &raw.cloudevents {
            Some(table) => Err(loc.at(table.span(), "cloudevents", "needs `payload = \"cloudevents\"`".into())),
            None => Ok(None),
        };
    }
    let refuse = |span: Range<usize>, field: &str, why: &str| Err(loc.at(span, field, why.to_owned()));
    if let Some(t) = &raw.topics {
        return refuse(
            t.span(),
            "topics",
            "a cloudevents scenario routes by event type: topics are the corpus's types",
        );
    }
    if let Some(b) = &raw.burst {
        return refuse(b.span(), "burst", "not supported with payload = \"cloudevents\"");
    }
    if let Some(s) = &raw.slow {
        return refuse(s.span(), "slow", "not supported with payload = \"cloudevents\"");
    }
    if let Some(c) = &raw.churn {
        return refuse(c.span(), "churn", "not supported with payload = \"cloudevents\"");
    }
    if let Some(b) = &raw.batch {
        return refuse(b.span(), "batch", "not supported with payload = \"cloudevents\"");
    }
    let mut settings = Settings::default();
    let Some(table) = &raw.cloudevents else { return Ok(Some(settings)) };
    let r = table.get_ref();
    if let Some(d) = &r.decoders {
        settings.decoders = loc.names(
            d,
            "cloudevents.decoders",
            "\"serde_json\", \"simd_json\", \"sonic_rs\", \"sonic_rs_native\"",
            Decoder::from_name,
        )?;
    }
    if let Some(d) = &r.modes {
        settings.modes = loc.names(d, "cloudevents.modes", "\"structured\", \"binary\"", ContentMode::from_name)?;
    }
    if let Some(d) = &r.representations {
        settings.representations =
            loc.names(d, "cloudevents.representations", "\"owned\", \"borrowed\"", Representation::from_name)?;
    }
    if let Some(d) = &r.extensions {
        settings.extensions =
            loc.names(d, "cloudevents.extensions", "\"struct\", \"map\"", ExtensionMode::from_name)?;
    }
    if let Some(n) = &r.documents {
        settings.documents = loc.range(n, "cloudevents.documents", 1, 1_000_000)? as usize;
    }
    if let Some(n) = &r.seed {
        settings.seed = *n.get_ref();
    }
    if let Some(n) = &r.max_bytes {
        settings.max_bytes = loc.range(n, "cloudevents.max_bytes", 64, 1 << 26)? as usize;
    }
    Ok(Some(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Scenario, ScenarioError> {
        parse("test.toml", text, Origin::File("test.toml".into()))
    }

    fn error(text: &str) -> String {
        match parse_str(text) {
            Ok(s) => panic!("expected an error, parsed {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let s = parse_str("name = \"x\"\nsubscribers = 3\n").expect("valid");
        assert_eq!(s.producers, [1]);
        assert_eq!(s.subscribers, [3]);
        assert_eq!(s.payload, PayloadKind::Small);
        assert_eq!(s.bus, BusParams::default());
        assert_eq!(s.points(), [SweepPoint::new(1, 3)]);
        assert!(s.sweep_params(s.points()[0]).is_empty());
    }

    #[test]
    fn sweeps_are_a_cartesian_product() {
        let s = parse_str("name = \"x\"\nproducers = [1, 2]\nsubscribers = [4, 8, 16]\n").expect("valid");
        assert_eq!(s.points().len(), 6);
        assert_eq!(s.sweep_params(s.points()[5]), [("producers", "2".into()), ("subscribers", "16".into())]);
    }

    #[test]
    fn unknown_key_names_file_line_and_allowed_keys() {
        let e = error("name = \"x\"\nsubscribers = 1\nsubscriber = 2\n");
        assert!(e.contains("test.toml:3:"), "{e}");
        assert!(e.contains("subscriber"), "{e}");
        assert!(e.contains("expected one of"), "{e}");
    }

    #[test]
    fn zero_subscribers_is_refused_with_the_range() {
        let e = error("name = \"x\"\nsubscribers = 0\n");
        assert!(e.contains("test.toml:2:15") && e.contains("`subscribers`") && e.contains("allowed 1 to"), "{e}");
    }

    #[test]
    fn absurd_event_counts_are_refused() {
        let e = error("name = \"x\"\nsubscribers = 1\nevents = 1_000_000_000_000\n");
        assert!(e.contains("`events`") && e.contains("out of range"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        assert!(error("name = \"X Y\"\nsubscribers = 1\n").contains("`name`"));
        assert!(error("name = \"x\"\nsubscribers = 1\npayload = \"huge\"\n").contains("allowed \"small\""));
        assert!(error("name = \"x\"\nsubscribers = 1\nlistener_bodies = 3\n").contains("allowed 1, 4"));
        assert!(error("name = \"x\"\nsubscribers = 1\n[bus]\nwait = \"nap\"\n").contains("`bus.wait`"));
        assert!(error("name = \"x\"\nsubscribers = [2, 2]\n").contains("twice"));
        assert!(error("name = \"x\"\nsubscribers = []\n").contains("empty"));
        assert!(error("name = \"x\"\nsubscribers = 2\n[slow]\ncount = 2\nwork_ns = 5\n").contains("no fast one"));
        let e = error(
            "name = \"x\"\nsubscribers = 1\n[burst]\nbase_rate = 1\nspike_factor = 2\nspike_ms = 9\nperiod_ms = 5\n",
        );
        assert!(e.contains("shorter"), "{e}");
    }

    #[test]
    fn latency_rates_are_read_and_bad_ones_refused_with_the_reason() {
        let s = parse_str("name = \"x\"\nsubscribers = 1\nlatency_rates = [1e6, 200_000]\n").expect("valid");
        assert_eq!(s.latency_rates, Some(vec![1e6, 2e5]));
        assert_eq!(parse_str("name = \"x\"\nsubscribers = 1\n").expect("valid").latency_rates, None);
        let e = error("name = \"x\"\nsubscribers = 1\nlatency_rates = [1e6, -5]\n");
        assert!(e.contains("test.toml:3:") && e.contains("`latency_rates`") && e.contains("out of range"), "{e}");
        assert!(error("name = \"x\"\nsubscribers = 1\nlatency_rates = [nan]\n").contains("out of range"));
        assert!(error("name = \"x\"\nsubscribers = 1\nlatency_rates = [2e9]\n").contains("out of range"));
        assert!(error("name = \"x\"\nsubscribers = 1\nlatency_rates = []\n").contains("empty"));
        assert!(error("name = \"x\"\nsubscribers = 1\nlatency_rates = [1e6, 1000000]\n").contains("twice"));
        assert!(error("name = \"x\"\nsubscribers = 1\nlatency_rates = [\"fast\"]\n").contains("latency_rates"));
        let e = error(
            "name = \"x\"\nsubscribers = 1\nlatency_rates = [1e6]\n[burst]\nbase_rate = 1\nspike_factor = 2\nspike_ms = 1\nperiod_ms = 5\n",
        );
        assert!(e.contains("`latency_rates`") && e.contains("burst"), "{e}");
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        for text in [
            "",
            "\u{0}",
            "name = ",
            "[[[",
            "name = \"x\"\nsubscribers = \"many\"\n",
            "name = \"x\"\nsubscribers = -1\n",
            "name = \"x\"\nsubscribers = 1e9\n",
            "name = \"x\"\nsubscribers = 1\n[bus]\ncapacity = 99999999999999999999\n",
            "name = \"<script>alert(1)</script>\"\nsubscribers = 1\n",
        ] {
            assert!(parse_str(text).is_err(), "accepted {text:?}");
        }
    }

    #[test]
    fn cloudevents_axes_sweep_and_become_params() {
        let s = parse_str(
            "name = \"ce\"\nsubscribers = 8\npayload = \"cloudevents\"\n[cloudevents]\ndecoders = [\"sonic_rs\", \"serde_json\"]\nrepresentations = \"borrowed\"\ndocuments = 50\n",
        )
        .expect("valid");
        let settings = s.cloudevents.as_ref().expect("settings");
        assert_eq!((settings.documents, settings.seed), (50, 42));
        let points = s.points();
        assert_eq!(points.len(), 8, "2 decoders × 2 content modes × 1 representation × 2 extension modes");
        let params = s.sweep_params(points[0]);
        assert_eq!(
            params,
            [
                ("decoder", "sonic_rs".to_owned()),
                ("representation", "borrowed".to_owned()),
                ("extensions", "struct".to_owned())
            ],
            "structured cells keep the keys they had before the mode axis"
        );
        assert_eq!(
            s.sweep_params(points[2]),
            [
                ("decoder", "sonic_rs".to_owned()),
                ("mode", "binary".to_owned()),
                ("representation", "borrowed".to_owned()),
                ("extensions", "struct".to_owned())
            ]
        );
        let defaults = parse_str("name = \"ce\"\nsubscribers = 8\npayload = \"cloudevents\"\n").expect("valid");
        assert_eq!(defaults.points().len(), 32, "4 decoders × 2 content modes × 2 representations × 2 extension modes");
        let one =
            parse_str("name = \"ce\"\nsubscribers = 8\npayload = \"cloudevents\"\n[cloudevents]\nmodes = \"binary\"\n")
                .expect("valid");
        assert!(one.points().iter().all(|p| p.cloudevents.is_some_and(|c| c.mode == ContentMode::Binary)));
    }

    #[test]
    fn cloudevents_settings_are_checked() {
        let base = "name = \"ce\"\nsubscribers = 8\npayload = \"cloudevents\"\n";
        assert!(error(&format!("{base}[cloudevents]\ndecoders = \"yaml\"\n")).contains("`cloudevents.decoders`"));
        assert!(error(&format!("{base}[cloudevents]\nextensions = []\n")).contains("empty"));
        assert!(error(&format!("{base}[cloudevents]\nmodes = \"batched\"\n")).contains("`cloudevents.modes`"));
        assert!(error(&format!("{base}[cloudevents]\nrepresentations = [\"owned\", \"owned\"]\n")).contains("twice"));
        assert!(error(&format!("{base}[cloudevents]\nmax_bytes = 1\n")).contains("out of range"));
        assert!(error(&format!("{base}[cloudevents]\nformat = 1\n")).contains("format"));
        assert!(error(&format!("{base}topics = 4\n")).contains("`topics`"));
        assert!(error(&format!("{base}[churn]\nper_second = 5\n")).contains("`churn`"));
        let e = error("name = \"x\"\nsubscribers = 1\n[cloudevents]\ndocuments = 5\n");
        assert!(e.contains("`cloudevents`") && e.contains("payload"), "{e}");
    }

    #[test]
    fn a_scenario_may_name_its_buses() {
        let s = parse_str("name = \"x\"\nsubscribers = 1\nbuses = [\"router\", \"any_router\"]\n").expect("valid");
        assert_eq!(s.buses.as_deref(), Some(&["router".to_owned(), "any_router".to_owned()][..]));
        assert!(parse_str("name = \"x\"\nsubscribers = 1\n").expect("valid").buses.is_none());
        let e = error("name = \"x\"\nsubscribers = 1\nbuses = [\"routr\"]\n");
        assert!(e.contains("`buses`") && e.contains("\"routr\"") && e.contains("router"), "{e}");
        assert!(error("name = \"x\"\nsubscribers = 1\nbuses = []\n").contains("empty"));
    }

    #[test]
    fn batch_defaults_to_one_and_must_cover_whole_topic_rounds() {
        assert_eq!(parse_str("name = \"x\"\nsubscribers = 1\n").expect("valid").batch, 1);
        let s = parse_str("name = \"x\"\nsubscribers = 1\ntopics = 4\nbatch = 64\n").expect("valid");
        assert_eq!(s.batch, 64);
        assert_eq!(parse_str("name = \"x\"\nsubscribers = 1\ntopics = 4\nbatch = 1\n").expect("valid").batch, 1);
        let e = error("name = \"x\"\nsubscribers = 1\ntopics = 3\nbatch = 64\n");
        assert!(e.contains("test.toml:4:") && e.contains("`batch`") && e.contains("multiple of topics"), "{e}");
        assert!(error("name = \"x\"\nsubscribers = 1\nbatch = 0\n").contains("out of range"));
        assert!(error("name = \"x\"\nsubscribers = 1\nbatch = 5000\n").contains("out of range"));
        let e = error("name = \"x\"\nsubscribers = 1\npayload = \"cloudevents\"\nbatch = 8\n");
        assert!(e.contains("`batch`") && e.contains("cloudevents"), "{e}");
    }

    #[test]
    fn missing_required_field_is_named() {
        let e = error("name = \"x\"\n");
        assert!(e.contains("subscribers"), "{e}");
    }
}
