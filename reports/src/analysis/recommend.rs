//! Which bus to use for each scenario point: one recommendation, the buses
//! the data cannot tell from it, and the price of the next choice.
//!
//! # The rule
//! For each scenario and sweep point (a [group](crate::analysis::verdicts::Group)):
//!
//! 1. **The headline metric** is throughput, unless the scenario names
//!    latency: a burst scenario (its cells measured p99 during spikes)
//!    asks for the p99 at the headline rate. Where no eligible bus has a
//!    p99 (every load saturated), throughput decides and the
//!    recommendation says so.
//! 2. **Eligible buses**: cells that ended Ok and measured the metric; never
//!    a reference (the `null` floor); never a lossy bus (declared lossy, or
//!    a cell that dropped deliveries) unless the scenario's file sets
//!    `loss_acceptable` or the engineer says loss is acceptable; and only
//!    buses whose declared capabilities meet the [`Constraints`]. By
//!    default listeners must run on threads of the bus: an in-line bus runs
//!    them on the publisher's thread, which changes what the publisher
//!    pays, so it is named as the *in-line alternative* instead.
//! 3. **The pick** is the best eligible bus on the metric; the buses the
//!    data cannot tell from it (the [verdict rule](crate::analysis::verdicts): for
//!    throughput the paired ratio's interval holds 1 or the ratio is within
//!    5%, for p99 within the 5% band) are named beside it.
//! 4. **The price of the next choice** is the pick against the best
//!    eligible bus that *can* be told apart from it: the ratio of their
//!    throughput medians with a 95% interval, paired by interleaved round
//!    where both ran several processes ([`verdicts::throughput_ratio`]),
//!    or of their p99s (one figure each, no interval).

use crate::analysis::regression::Thresholds;
use crate::analysis::verdicts::{self, COLUMNS, Group, Row};
use buslab_scenarios::results::{BusMeta, CellResult, CellStatus, Run};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The rule in one line, for the terminal and the page's heading.
pub const RULE_SHORT: &str = "the lossless bus best on each scenario's headline metric, throughput unless it names \
                              latency; listeners on the bus's threads; [95% interval] of the ratio to the next \
                              bus the data can tell apart";

/// What the engineer's workload needs, as the buses' declared capabilities
/// answer it. [`Constraints::default`] is the first screen's: listeners on
/// the bus's threads, one producer, subscribers fixed before publishing,
/// loss only where the scenario accepts it, owned events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Constraints {
    /// Listeners may run on the publisher's thread: in-line buses take part.
    pub inline_ok: bool,
    /// Several threads publish at once: only multi-producer buses.
    pub multi_producer: bool,
    /// Subscribers join and leave while others publish: only buses that
    /// support it.
    pub dynamic_subscribe: bool,
    /// Losing deliveries is acceptable for this workload, whatever the
    /// scenario's file says: lossy buses are ranked.
    pub loss_ok: bool,
    /// Events are borrowed (listeners see the publisher's value, not a
    /// copy): only in-line buses.
    pub borrowed: bool,
}

/// The questions of the decision guide, in [`Constraints::mask`] bit order:
/// a slug and the question.
pub const QUESTIONS: [(&str, &str); 5] = [
    ("inline", "Listeners may run on the publisher's thread"),
    ("producers", "Several threads publish at once"),
    ("subscribe", "Subscribers join or leave while others publish"),
    ("loss", "Losing deliveries is acceptable"),
    ("borrowed", "Events are borrowed: listeners must see the publisher's value, not a copy"),
];

impl Constraints {
    /// Every combination of the questions: `1 << QUESTIONS.len()`.
    pub const COMBINATIONS: u8 = 1 << QUESTIONS.len();

    /// The constraints of bit mask `mask` (bit *i* answers
    /// `QUESTIONS[i]` with yes).
    pub fn from_mask(mask: u8) -> Constraints {
        let bit = |i: u8| mask & (1 << i) != 0;
        Constraints {
            inline_ok: bit(0),
            multi_producer: bit(1),
            dynamic_subscribe: bit(2),
            loss_ok: bit(3),
            borrowed: bit(4),
        }
    }

    /// The bit mask of these constraints (see [`Constraints::from_mask`]).
    pub fn mask(self) -> u8 {
        [self.inline_ok, self.multi_producer, self.dynamic_subscribe, self.loss_ok, self.borrowed]
            .iter()
            .enumerate()
            .fold(0, |m, (i, on)| if *on { m | (1 << i) } else { m })
    }

    /// Why `bus` does not meet these constraints, if it does not (its
    /// lossiness is judged with the cell, in [`recommend`]).
    fn refuses(self, bus: &BusMeta) -> Option<&'static str> {
        if self.borrowed && bus.asynchronous {
            Some("queues an owned copy (events are borrowed)")
        } else if self.multi_producer && !bus.multi_producer {
            Some("single producer")
        } else if self.dynamic_subscribe && bus.dynamic_subscribe != Some(true) {
            Some(if bus.dynamic_subscribe.is_none() {
                "subscribe while publishing not recorded for this run"
            } else {
                "subscribers fixed once publishing starts"
            })
        } else {
            None
        }
    }
}

/// One bus's figure on the headline metric.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Choice {
    /// The bus.
    pub bus: String,
    /// Its cell's name.
    pub cell: String,
    /// The value (the median, for throughput).
    pub value: f64,
    /// The 95% interval of the value, where there is one.
    pub interval: Option<(f64, f64)>,
    /// It runs listeners on the publisher's thread.
    pub inline: bool,
    /// It is a peer crate's adapter.
    pub peer: bool,
    /// It is lossy (declared, or it dropped deliveries here); ranked only
    /// where loss is acceptable.
    pub lossy: bool,
}

/// How much better one choice is than another: ≥ 1 when the first is
/// better, with a 95% interval where the metric has samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Price {
    /// The choice priced.
    pub choice: Choice,
    /// The choice it is priced against.
    pub against: Choice,
    /// better / worse for throughput, worse / better for latency.
    pub ratio: f64,
    /// The interval of the ratio, where there is one.
    pub interval: Option<(f64, f64)>,
}

/// A bus left out of the ranking, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Excluded {
    /// The bus.
    pub bus: String,
    /// Its cell's name.
    pub cell: String,
    /// Why, in a few words.
    pub why: String,
}

/// The recommendation for one scenario point under one set of
/// [`Constraints`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recommendation {
    /// The scenario.
    pub scenario: String,
    /// The sweep point (`subscribers=16`), or empty.
    pub label: String,
    /// The scenario came from the engineer's `--scenario-file` (not the
    /// catalog): it comes first.
    pub from_file: bool,
    /// The headline metric's slug ([`COLUMNS`]).
    pub metric: &'static str,
    /// The scenario names latency but no eligible bus had a p99 there:
    /// throughput decided.
    pub latency_unmeasured: bool,
    /// Only in-line buses were eligible here (the others failed, were
    /// skipped or ruled out): the pick runs listeners on the publisher's
    /// thread although the constraints prefer the bus's threads.
    pub only_inline: bool,
    /// The scenario accepts loss (`loss_acceptable`).
    pub loss_acceptable: bool,
    /// The recommended bus; `None` when no bus is eligible.
    pub pick: Option<Choice>,
    /// Eligible buses the data cannot tell from the pick, best first.
    pub tied: Vec<Choice>,
    /// The pick against the best eligible bus that can be told apart.
    pub next: Option<Price>,
    /// The best in-line bus (listeners on the publisher's thread) against
    /// the pick, when the constraints left in-line buses out.
    pub inline_alternative: Option<Price>,
    /// Every eligible bus, best first (the pick and its ties included).
    pub ranking: Vec<Choice>,
    /// Buses left out, and why.
    pub excluded: Vec<Excluded>,
}

impl Recommendation {
    /// `scenario` or `scenario (label)`.
    pub fn point(&self) -> String {
        if self.label.is_empty() { self.scenario.clone() } else { format!("{} ({})", self.scenario, self.label) }
    }

    /// The names of the cells its claims rest on: the pick, its ties, the
    /// next choice and the in-line alternative.
    pub fn cells(&self) -> Vec<String> {
        let mut cells: Vec<String> = self.pick.iter().chain(&self.tied).map(|c| c.cell.clone()).collect();
        for price in self.next.iter().chain(&self.inline_alternative) {
            for choice in [&price.choice, &price.against] {
                if !cells.contains(&choice.cell) {
                    cells.push(choice.cell.clone());
                }
            }
        }
        cells
    }
}

/// A ratio with its 95% interval: `(ratio, lower, upper)`.
type Interval = (f64, f64, f64);

/// Recommendations for every group of a run, memoising the bootstrap of
/// each pair of cells (the decision guide asks for every
/// [`Constraints`] combination).
pub struct Recommender<'a> {
    thresholds: &'a Thresholds,
    cells: BTreeMap<String, &'a CellResult>,
    buses: BTreeMap<&'a str, &'a BusMeta>,
    catalog: Vec<String>,
    prices: RefCell<BTreeMap<(String, String), Option<Interval>>>,
}

impl<'a> Recommender<'a> {
    /// A recommender for `run`, judging ties with `thresholds`.
    pub fn new(run: &'a Run, thresholds: &'a Thresholds) -> Recommender<'a> {
        Recommender {
            thresholds,
            cells: run.cells.iter().map(|c| (c.key.name(), c)).collect(),
            buses: run.meta.buses.iter().map(|b| (b.name.as_str(), b)).collect(),
            catalog: buslab_scenarios::catalog().map(|c| c.into_iter().map(|s| s.name).collect()).unwrap_or_default(),
            prices: RefCell::new(BTreeMap::new()),
        }
    }

    /// The recommendation for every group under `constraints`, the
    /// engineer's own scenarios (from `--scenario-file`) first, then in
    /// run order.
    pub fn all(&self, groups: &[Group], constraints: Constraints) -> Vec<Recommendation> {
        let mut out: Vec<Recommendation> = groups.iter().map(|g| self.recommend(g, constraints)).collect();
        out.sort_by_key(|r| !r.from_file);
        out
    }

    /// Whether the scenario asks for latency: its cells measured p99
    /// during bursts.
    fn names_latency(&self, group: &Group) -> bool {
        group
            .rows
            .iter()
            .filter_map(|r| self.cells.get(&r.cell))
            .any(|c| c.latency.iter().any(|l| l.spike_p99_ns.is_some()))
    }

    /// The recommendation for one group (see the [module docs](self)).
    pub fn recommend(&self, group: &Group, constraints: Constraints) -> Recommendation {
        let latency = self.names_latency(group);
        let (mut column, mut latency_unmeasured) = (if latency { 1 } else { 0 }, false);
        let (mut ranking, mut inline, mut excluded) = self.eligible(group, constraints, column);
        if latency && ranking.is_empty() {
            column = 0;
            latency_unmeasured = true;
            (ranking, inline, excluded) = self.eligible(group, constraints, column);
        }
        let metric = COLUMNS[column].slug;
        let higher = COLUMNS[column].metric().higher_is_better;
        let order = |a: &Choice, b: &Choice| {
            let o = a.value.total_cmp(&b.value);
            if higher { o.reverse() } else { o }
        };
        ranking.sort_by(order);
        inline.sort_by(order);
        // Where only in-line buses could run (borrowed events, say), they
        // are the choice.
        let only_inline = ranking.is_empty() && !inline.is_empty();
        if only_inline {
            ranking = std::mem::take(&mut inline);
            excluded.retain(|x| !ranking.iter().any(|c| c.cell == x.cell));
        }
        let pick = ranking.first().cloned();
        let (mut tied, mut next) = (Vec::new(), None);
        if let Some(pick) = &pick {
            for other in &ranking[1..] {
                if self.indistinguishable(column, pick, other) {
                    tied.push(other.clone());
                } else {
                    next = Some(self.price(column, pick, other));
                    break;
                }
            }
        }
        let inline_alternative = match (&pick, inline.first()) {
            (Some(pick), Some(alt)) => Some(self.price(column, alt, pick)),
            _ => None,
        };
        Recommendation {
            scenario: group.scenario.clone(),
            label: group.label.clone(),
            from_file: !self.catalog.is_empty() && !self.catalog.contains(&group.scenario),
            metric,
            latency_unmeasured,
            only_inline,
            loss_acceptable: group.loss_acceptable,
            pick,
            tied,
            next,
            inline_alternative,
            ranking,
            excluded,
        }
    }

    /// The eligible choices of `group` on `column`, the in-line choices
    /// the constraints leave out (when they do only for that), and the
    /// excluded buses.
    fn eligible(
        &self,
        group: &Group,
        constraints: Constraints,
        column: usize,
    ) -> (Vec<Choice>, Vec<Choice>, Vec<Excluded>) {
        let (mut eligible, mut inline, mut excluded) = (Vec::new(), Vec::new(), Vec::new());
        for row in group.rows.iter().filter(|r| !r.reference) {
            let meta = self.buses.get(row.bus.as_str()).copied();
            let declared_lossy = meta.is_some_and(|m| m.lossy);
            let mut out = |why: String| excluded.push(Excluded { bus: row.bus.clone(), cell: row.cell.clone(), why });
            let entry = row.entries[column].as_ref();
            let Some(entry) = entry.filter(|_| row.status == CellStatus::Ok) else {
                out(match &row.status {
                    CellStatus::Ok => format!("{} not measured", metric_words(column)),
                    CellStatus::Failed(_) => "failed".to_owned(),
                    CellStatus::Skipped(_) => "skipped".to_owned(),
                });
                continue;
            };
            let lossy = row.lossy || declared_lossy;
            if lossy && !(group.loss_acceptable || constraints.loss_ok) {
                out(loss_words(row, declared_lossy));
                continue;
            }
            let asynchronous = meta.is_none_or(|m| m.asynchronous);
            if let Some(why) = meta.and_then(|m| constraints.refuses(m)) {
                out(why.to_owned());
                continue;
            }
            let choice = Choice {
                bus: row.bus.clone(),
                cell: row.cell.clone(),
                value: entry.value,
                interval: entry.lower.zip(entry.upper),
                inline: !asynchronous,
                peer: row.peer,
                lossy,
            };
            if !asynchronous && !constraints.inline_ok {
                excluded.push(Excluded {
                    bus: row.bus.clone(),
                    cell: row.cell.clone(),
                    why: "in-line: listeners on the publisher's thread".to_owned(),
                });
                inline.push(choice);
            } else {
                eligible.push(choice);
            }
        }
        (eligible, inline, excluded)
    }

    fn indistinguishable(&self, column: usize, a: &Choice, b: &Choice) -> bool {
        verdicts::indistinguishable(
            &COLUMNS[column],
            (a.value, a.interval, false),
            (b.value, b.interval, false),
            self.thresholds,
        )
    }

    /// `better` priced against `worse` on `column`.
    fn price(&self, column: usize, better: &Choice, worse: &Choice) -> Price {
        let fallback = if COLUMNS[column].metric().higher_is_better {
            ratio(better.value, worse.value)
        } else {
            ratio(worse.value, better.value)
        };
        let interval = if column == 0 {
            let key = (better.cell.clone(), worse.cell.clone());
            let mut memo = self.prices.borrow_mut();
            *memo.entry(key).or_insert_with(|| {
                let (a, b) = (self.cells.get(&better.cell)?, self.cells.get(&worse.cell)?);
                verdicts::throughput_ratio(a, b)
            })
        } else {
            None
        };
        // The ratio is of the values (the medians), whose bootstrap gives
        // the interval.
        Price {
            choice: better.clone(),
            against: worse.clone(),
            ratio: fallback,
            interval: interval.map(|(_, lower, upper)| (lower, upper)),
        }
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { if num == 0.0 { 1.0 } else { f64::INFINITY } } else { num / den }
}

fn metric_words(column: usize) -> &'static str {
    if column == 0 { "throughput" } else { "p99" }
}

fn loss_words(row: &Row, declared: bool) -> String {
    match row.loss_rate {
        Some(rate) if rate > 0.0 => {
            format!("lossy: lost {} of deliveries", crate::render::format::unsigned_percent(rate))
        }
        _ if row.lossy => "lossy: dropped deliveries".to_owned(),
        _ if declared => "lossy by design".to_owned(),
        _ => "lossy".to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analysis;
    use buslab_scenarios::results::{CellKey, Estimate, Latency, RunMeta, Throughput};

    /// A cell of `scenario` whose throughput trials are `samples` (its
    /// interval their range).
    pub(crate) fn throughput_cell(scenario: &str, bus: &str, samples: &[f64]) -> CellResult {
        let key = CellKey { scenario: scenario.to_owned(), bus: bus.to_owned(), params: BTreeMap::new() };
        let mut c = CellResult::new(key, 1, 1);
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        c.throughput = Some(Throughput {
            events_per_sec: Estimate {
                median: sorted[sorted.len() / 2],
                lower: sorted[0],
                upper: sorted[sorted.len() - 1],
                samples: samples.to_vec(),
            },
            ..Throughput::default()
        });
        c
    }

    use throughput_cell as cell;

    fn bus(name: &str, asynchronous: bool) -> BusMeta {
        BusMeta {
            name: name.to_owned(),
            asynchronous,
            multi_producer: true,
            dynamic_subscribe: Some(true),
            ..BusMeta::default()
        }
    }

    /// Buses: `ring`, `channel`, `slow` (queued), `inline` (in-line),
    /// `broadcast` (declared lossy), `null` (the floor).
    fn run(cells: Vec<CellResult>) -> Run {
        let mut buses = vec![bus("ring", true), bus("channel", true), bus("slow", true), bus("inline", false)];
        buses.push(BusMeta { lossy: true, ..bus("broadcast", true) });
        buses.push(BusMeta { reference: true, ..bus("null", false) });
        Run { meta: RunMeta { buses, ..RunMeta::default() }, cells }
    }

    fn lossy(mut c: CellResult, rate: f64) -> CellResult {
        c.dropped = 100;
        if let Some(t) = c.throughput.as_mut() {
            t.loss_rate = Some(rate);
        }
        c
    }

    fn first(run: &Run) -> Recommendation {
        analysis::analyse(run, &Thresholds::default()).recommendations.remove(0)
    }

    const RING: [f64; 5] = [100.0, 101.0, 99.0, 100.5, 99.5];
    const CHANNEL: [f64; 5] = [50.0, 51.0, 49.0, 50.5, 49.5];

    #[test]
    fn a_lossy_bus_with_the_best_throughput_is_not_the_recommendation() {
        let mut r = run(vec![
            cell("spsc", "ring", &RING),
            cell("spsc", "channel", &CHANNEL),
            lossy(cell("spsc", "broadcast", &[900.0, 905.0, 910.0]), 0.9),
        ]);
        let rec = first(&r);
        assert_eq!(rec.pick.as_ref().map(|c| c.bus.as_str()), Some("ring"), "{rec:#?}");
        assert!(rec.ranking.iter().all(|c| c.bus != "broadcast"));
        let left_out = rec.excluded.iter().find(|x| x.bus == "broadcast").expect("said why");
        assert!(left_out.why.contains("lossy"), "{}", left_out.why);
        // Only where the scenario accepts loss is it ranked, and then it wins.
        r.meta.loss_acceptable.insert("spsc".to_owned());
        let rec = first(&r);
        assert_eq!(rec.pick.as_ref().map(|c| (c.bus.as_str(), c.lossy)), Some(("broadcast", true)));
        assert!(
            crate::render::text::recommendation(&rec).contains("lossy"),
            "{}",
            crate::render::text::recommendation(&rec)
        );
    }

    #[test]
    fn a_bus_declared_lossy_is_not_recommended_even_when_it_lost_nothing() {
        let r = run(vec![cell("spsc", "broadcast", &[900.0, 905.0, 910.0]), cell("spsc", "channel", &CHANNEL)]);
        assert_eq!(first(&r).pick.map(|c| c.bus), Some("channel".to_owned()));
        let thresholds = Thresholds::default();
        let everywhere = Recommender::new(&r, &thresholds);
        let groups = verdicts::matrix(&r, &Thresholds::default());
        let loss_ok = everywhere.recommend(&groups[0], Constraints { loss_ok: true, ..Constraints::default() });
        assert_eq!(loss_ok.pick.map(|c| c.bus), Some("broadcast".to_owned()));
    }

    #[test]
    fn the_floor_is_never_recommended_and_in_line_buses_are_the_alternative() {
        let r = run(vec![
            cell("spsc", "null", &[5000.0, 5001.0, 4999.0]),
            cell("spsc", "inline", &[300.0, 301.0, 299.0, 300.5, 299.5]),
            cell("spsc", "ring", &RING),
            cell("spsc", "channel", &CHANNEL),
        ]);
        let rec = first(&r);
        assert_eq!(rec.pick.as_ref().map(|c| c.bus.as_str()), Some("ring"));
        assert!(rec.excluded.iter().all(|x| x.bus != "null") && rec.ranking.iter().all(|c| c.bus != "null"));
        let next = rec.next.as_ref().expect("a next choice");
        assert_eq!(next.against.bus, "channel");
        let (lower, upper) = next.interval.expect("throughput has an interval");
        assert!((next.ratio - 2.0).abs() < 1e-9 && lower > 1.0 && lower <= 2.0 && upper >= 2.0, "{next:?}");
        let alt = rec.inline_alternative.as_ref().expect("an in-line alternative");
        assert_eq!((alt.choice.bus.as_str(), alt.against.bus.as_str()), ("inline", "ring"));
        let line = crate::render::text::recommendation(&rec);
        assert!(line.starts_with("spsc: ring, 100 events/s"), "{line}");
        assert!(
            line.contains("ring: 2.00× channel [") && line.contains("in-line alternative inline: 3.00× ring"),
            "{line}"
        );
        assert_eq!(rec.cells(), ["spsc/ring", "spsc/channel", "spsc/inline"]);
        assert!(rec.excluded.iter().any(|x| x.bus == "inline" && x.why.starts_with("in-line")), "{:?}", rec.excluded);
        // Where only in-line buses ran, one of them is the pick, and the line says so.
        let only = run(vec![cell("spsc", "inline", &RING), cell("spsc", "channel", &[1.0, 1.0, 1.0])]);
        let mut only = only;
        only.cells[1].status = CellStatus::Skipped("borrowed events need in-line delivery".to_owned());
        let rec = first(&only);
        assert!(rec.only_inline && rec.pick.as_ref().is_some_and(|c| c.bus == "inline"), "{rec:#?}");
        assert!(crate::render::text::recommendation(&rec).contains("the only buses that fit here"));
        // When listeners may run on the publisher's thread, the in-line bus wins.
        let groups = verdicts::matrix(&r, &Thresholds::default());
        let inline_ok = Recommender::new(&r, &Thresholds::default())
            .recommend(&groups[0], Constraints { inline_ok: true, ..Constraints::default() });
        assert_eq!(inline_ok.pick.map(|c| c.bus), Some("inline".to_owned()));
        assert_eq!(inline_ok.inline_alternative, None);
    }

    #[test]
    fn buses_the_data_cannot_tell_apart_are_named_and_the_price_is_of_the_next() {
        let r = run(vec![
            cell("spsc", "ring", &[100.0, 120.0, 80.0, 110.0, 90.0]),
            cell("spsc", "channel", &[98.0, 118.0, 78.0, 108.0, 88.0]),
            cell("spsc", "slow", &[10.0, 11.0, 9.0]),
        ]);
        let rec = first(&r);
        assert_eq!(rec.tied.iter().map(|c| c.bus.as_str()).collect::<Vec<_>>(), ["channel"]);
        assert_eq!(rec.next.as_ref().map(|p| p.against.bus.as_str()), Some("slow"));
        assert!(crate::render::text::recommendation(&rec).contains("cannot be told from channel"));
    }

    #[test]
    fn constraints_narrow_the_buses_by_their_declared_capabilities() {
        let mut r = run(vec![
            cell("spsc", "ring", &RING),
            cell("spsc", "channel", &CHANNEL),
            cell("spsc", "inline", &[300.0, 301.0, 299.0]),
        ]);
        r.meta.buses[0].multi_producer = false;
        r.meta.buses[1].dynamic_subscribe = Some(false);
        let groups = verdicts::matrix(&r, &Thresholds::default());
        let thresholds = Thresholds::default();
        let recommender = Recommender::new(&r, &thresholds);
        let pick = |c: Constraints| recommender.recommend(&groups[0], c).pick.map(|c| c.bus);
        assert_eq!(pick(Constraints::default()), Some("ring".to_owned()));
        assert_eq!(pick(Constraints { multi_producer: true, ..Constraints::default() }), Some("channel".to_owned()));
        // Only the in-line bus is left: it is the pick, marked as such.
        let both = Constraints { multi_producer: true, dynamic_subscribe: true, ..Constraints::default() };
        assert!(recommender.recommend(&groups[0], both).only_inline);
        assert_eq!(pick(both), Some("inline".to_owned()));
        assert_eq!(pick(Constraints { borrowed: true, ..both }), Some("inline".to_owned()));
        assert_eq!(
            pick(Constraints { borrowed: true, inline_ok: true, ..Constraints::default() }),
            Some("inline".to_owned())
        );
        let rec = recommender.recommend(&groups[0], Constraints { multi_producer: true, ..Constraints::default() });
        assert!(rec.excluded.iter().any(|x| x.bus == "ring" && x.why == "single producer"), "{:?}", rec.excluded);
        for mask in 0..Constraints::COMBINATIONS {
            assert_eq!(Constraints::from_mask(mask).mask(), mask);
        }
        r.meta.buses[3].multi_producer = false;
        let groups = verdicts::matrix(&r, &thresholds);
        let recommender = Recommender::new(&r, &thresholds);
        assert_eq!(recommender.recommend(&groups[0], both).pick, None, "nothing fits");
    }

    #[test]
    fn a_burst_scenario_is_judged_on_p99_and_the_engineers_scenario_comes_first() {
        let burst = |bus: &str, samples: &[f64], p99: u64| {
            let mut c = cell("burst", bus, samples);
            c.latency = vec![Latency {
                offered_per_sec: 1e5,
                p99_ns: p99,
                count: 1000,
                spike_p99_ns: Some(p99),
                ..Latency::default()
            }];
            c.headline_rate = Some(1e5);
            c
        };
        let r = run(vec![
            burst("ring", &RING, 5_000),
            burst("channel", &CHANNEL, 1_000),
            cell("my-workload", "ring", &RING),
        ]);
        let recs = analysis::analyse(&r, &Thresholds::default()).recommendations;
        assert_eq!(recs[0].scenario, "my-workload", "a scenario outside the catalog comes first");
        assert!(recs[0].from_file && !recs[1].from_file);
        assert_eq!((recs[1].metric, recs[1].pick.as_ref().map(|c| c.bus.as_str())), ("latency-p99", Some("channel")));
        let line = crate::render::text::recommendation(&recs[1]);
        assert!(line.contains("ring's p99: 5.00× channel's"), "{line}");
    }
}
