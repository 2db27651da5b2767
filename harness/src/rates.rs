//! The latency pass's offered rates and how its loads are judged.
//!
//! Every bus of a sweep point is offered the same absolute rates, so that
//! "p99 at the headline rate" compares buses at one load:
//!
//! - **The shared grid.** The scenario's `latency_rates`, when it names
//!   them; otherwise the highest [`Grid::rates`] rates of a 1-2-5 series
//!   (1, 2, 5, 10, 20, 50, … events/s), [`Grid::step`] series steps apart,
//!   that do not exceed the capacity of the point's slowest lossless bus,
//!   as its throughput pass measured it (all buses' throughput passes of
//!   a point run before any latency pass). The default run offers four
//!   neighbouring rates ([`Grid::DEFAULT`]); `--quick` two, a decade apart
//!   ([`Grid::QUICK`]), so that it still sees a lower load beside the
//!   highest.
//! - **Beyond.** A bus is also offered up to [`BEYOND_RATES`] further
//!   series rates above the grid, as long as they do not exceed its own
//!   capacity; they are flagged as beyond the headline.
//! - **The headline rate.** The first rate the scenario names; otherwise
//!   the highest grid rate at which no lossless bus of the point (the `null`
//!   reference included) is saturated. Rates above it are flagged as beyond
//!   the headline.
//!
//! A load is judged against the `null` reference at the same rate (the
//! harness's own producer loop and verifying listener, in-line):
//!
//! - **Harness saturated**: the reference's median send lateness exceeds
//!   [`LATENESS_BOUND_NS`], or its deliveries end more than the backlog
//!   bound after the schedule: the harness cannot offer this rate, so no
//!   bus is judged there.
//! - **Over capacity**: the reference kept the schedule, the bus did not —
//!   its median send lateness exceeds the bound (a publish that blocks, or
//!   an in-line publish slower than the schedule: for an in-line bus,
//!   lateness caused by its own `publish` is its latency, not the
//!   harness's), or its deliveries end more than the backlog bound after the
//!   schedule (a queue that grew). The backlog bound is the larger of
//!   [`BACKLOG_BOUND_NS`] and a tenth of the trial's schedule.
//! - **A burst** (the scenario's `[burst]` pattern) offers spikes above
//!   capacity by design, and the lateness they cause is what it measures:
//!   its loads are judged by the backlog alone (did it drain?).
//!
//! Neither state is ever shown or compared as a latency.
//!
//! **Why the median send, not the tail.** A producer that cannot keep a
//! rate falls further behind with every event: its lateness grows through
//! the window, so the median send is late (or, with a queue that absorbs
//! it, the deliveries end late). A producer that keeps the rate is still
//! paused now and then by the scheduler of a shared or virtual machine, and
//! those pauses set the tail of its lateness: on a quiet 2-core VM the
//! `null` reference's send lateness p99 read 36–148 µs at every rate from
//! 200 k to 5 M events/s in 50 ms windows, with a median of 0 — judged by
//! its p99, almost no load of the catalog had a headline rate. Such pauses
//! delay every bus's events alike and are in every bus's open-loop
//! percentiles (the `null` floor beside each cell shows their share); they
//! do not make a rate unsustainable. The send lateness p99 stays in each
//! load's figures.

use buslab_scenarios::results::{Latency, Saturation, same_rate};

/// Which rates of the 1-2-5 series a point's shared grid takes below its
/// slowest lossless bus's capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    /// Rates in the grid (at most [`Grid::MAX_RATES`]).
    pub rates: usize,
    /// Series steps from one grid rate to the next (1: neighbours such as
    /// 1, 2, 5 M; 3: a decade, such as 100 k, 1 M).
    pub step: usize,
}

impl Grid {
    /// The default run's grid: four neighbouring rates.
    pub const DEFAULT: Grid = Grid { rates: 4, step: 1 };
    /// `--quick`'s: two rates a decade apart.
    pub const QUICK: Grid = Grid { rates: 2, step: 3 };
    /// The most rates a grid holds.
    pub const MAX_RATES: usize = 4;
}
/// Series rates above the grid a bus is offered when its capacity allows.
pub const BEYOND_RATES: usize = 1;
/// Lowest rate of the grid, events/s.
pub const MIN_GRID_RATE: f64 = 1_000.0;
/// Median send lateness beyond which a producer did not keep its schedule,
/// ns (see the [module docs](self)).
pub const LATENESS_BOUND_NS: u64 = 50_000;
/// Least backlog at the end of the schedule that counts as falling behind,
/// ns.
pub const BACKLOG_BOUND_NS: u64 = 1_000_000;

/// The 1-2-5 series rate following `rate` (which must be a series rate).
fn next_in_series(rate: f64) -> f64 {
    let decade = 10f64.powf(rate.log10().floor());
    let mantissa = (rate / decade).round();
    if mantissa < 2.0 {
        2.0 * decade
    } else if mantissa < 5.0 {
        5.0 * decade
    } else {
        10.0 * decade
    }
}

/// Series rates from [`MIN_GRID_RATE`] up to `limit`, ascending.
fn series_up_to(limit: f64) -> Vec<f64> {
    let mut rates = Vec::new();
    let mut r = MIN_GRID_RATE;
    while r <= limit * (1.0 + 1e-12) {
        rates.push(r);
        r = next_in_series(r);
    }
    rates
}

/// A point's shared rates: the scenario's, or `grid` below `slowest` (the
/// slowest lossless bus's capacity, events/s), ascending.
fn shared(named: Option<&[f64]>, slowest: f64, grid: Grid) -> Vec<f64> {
    if let Some(named) = named {
        return named.to_vec();
    }
    let mut rates: Vec<f64> = series_up_to(slowest)
        .into_iter()
        .rev()
        .step_by(grid.step.max(1))
        .take(grid.rates.min(Grid::MAX_RATES))
        .collect();
    rates.reverse();
    rates
}

/// The rates of the grid offered to a bus whose capacity is `capacity`:
/// the shared ones, then up to [`BEYOND_RATES`] series rates above them
/// within its capacity.
fn offered(shared: &[f64], capacity: f64) -> Vec<f64> {
    let mut rates = shared.to_vec();
    let mut r = shared.last().copied().map_or(MIN_GRID_RATE, next_in_series);
    for _ in 0..BEYOND_RATES {
        if r > capacity {
            break;
        }
        rates.push(r);
        r = next_in_series(r);
    }
    rates
}

/// A bus of a sweep point, as the latency pass plans and judges it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Member {
    /// Its capacity as its throughput pass measured it, events/s; `None`
    /// when it has none (the cell was skipped or failed, or the pass did
    /// not run): it is offered nothing, unless the scenario names its
    /// rates.
    pub capacity: Option<f64>,
    /// It may drop events by design (it does not bound the grid nor the
    /// headline unless every bus of the point is lossy).
    pub lossy: bool,
    /// It is the point's `null` reference, which judges the others' loads
    /// (its capacity bounds the grid only where no bus under test has one).
    pub reference: bool,
}

/// The rates offered at one sweep point.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    /// The shared rates (see the [module docs](self)).
    pub shared: Vec<f64>,
    /// Per member, in order, the rates offered to it: the shared ones
    /// first, the same for all (`None`: not offered, it has no capacity
    /// and the scenario names no rates).
    pub per_member: Vec<Option<Vec<f64>>>,
}

/// The rates to offer at one sweep point to `members` from `grid` (unless
/// the scenario `named` its rates); `Err` says why the point's latency
/// pass cannot run.
pub fn offer(named: Option<&[f64]>, members: &[Member], grid: Grid) -> Result<Offer, &'static str> {
    let slowest =
        |keep: &dyn Fn(&Member) -> bool| members.iter().filter(|m| keep(m)).filter_map(|m| m.capacity).reduce(f64::min);
    let shared = match named {
        Some(named) => shared(Some(named), 0.0, grid),
        None => {
            let limit = slowest(&|m| !m.reference && !m.lossy)
                .or_else(|| slowest(&|m| !m.reference))
                .or_else(|| slowest(&|_| true))
                .ok_or("needs the throughput pass's capacity")?;
            shared(None, limit, grid)
        }
    };
    if shared.is_empty() {
        return Err("the slowest bus's capacity is below the lowest rate of the grid");
    }
    let per_member = members
        .iter()
        .map(|m| match named {
            Some(_) => Some(shared.clone()),
            None => Some(offered(&shared, m.capacity?)),
        })
        .collect();
    Ok(Offer { shared, per_member })
}

/// Judges a point's latency loads once every member has run them: each
/// load's [`Saturation`] against the reference's load at the same rate,
/// then the headline rate (see the [module docs](self)), then which loads
/// are beyond it.
/// `loads[i]` are member `i`'s entries (empty when it ran none); `shared`
/// and `named` as given to [`offer`]; `burst`: the scenario's pattern set
/// the rate, and the headline is that rate. Returns the headline rate.
pub fn judge(members: &[Member], loads: &mut [Vec<Latency>], shared: &[f64], named: bool, burst: bool) -> Option<f64> {
    let reference: Option<Vec<Latency>> =
        members.iter().position(|m| m.reference).and_then(|i| loads.get(i)).filter(|l| !l.is_empty()).cloned();
    for entries in loads.iter_mut() {
        for l in entries.iter_mut() {
            let at =
                reference.as_ref().and_then(|r| r.iter().find(|x| same_rate(x.offered_per_sec, l.offered_per_sec)));
            l.saturation = classify(l, at, burst);
        }
    }
    let headline = if burst {
        loads.iter().find_map(|l| l.first()).map(|l| l.offered_per_sec)
    } else {
        let lossless: Vec<&[Latency]> = members
            .iter()
            .zip(loads.iter())
            .filter(|(m, l)| !m.lossy && m.capacity.is_some() && !l.is_empty())
            .map(|(_, l)| l.as_slice())
            .collect();
        headline(shared, named, &lossless)
    };
    for l in loads.iter_mut().flatten() {
        l.beyond_headline = headline.is_some_and(|h| l.offered_per_sec > h && !same_rate(l.offered_per_sec, h));
    }
    headline
}

/// The headline rate: the first named rate, else the highest shared rate
/// that no lossless bus's entries (`lossless`, the reference's included)
/// mark as saturated or lack.
fn headline(shared: &[f64], named: bool, lossless: &[&[Latency]]) -> Option<f64> {
    if named {
        return shared.first().copied();
    }
    shared.iter().rev().copied().find(|&rate| {
        lossless.iter().all(|entries| {
            entries.iter().any(|l| same_rate(l.offered_per_sec, rate) && l.judged() && l.lateness.is_some())
        })
    })
}

/// A load's schedule keeping: is it behind, and why. A `burst` schedule's
/// spikes exceed capacity by design (the lateness they cause is what the
/// scenario measures): it is behind only when its backlog did not drain.
fn behind(l: &Latency, burst: bool) -> Option<String> {
    let late = l.lateness?;
    let backlog_bound = BACKLOG_BOUND_NS.max(late.schedule_ns / 10);
    if !burst && late.p50_ns > LATENESS_BOUND_NS {
        Some(format!("median send lateness {} > {}", micros(late.p50_ns), micros(LATENESS_BOUND_NS)))
    } else if late.backlog_ns > backlog_bound {
        Some(format!(
            "deliveries ended {} after the schedule (bound {})",
            micros(late.backlog_ns),
            micros(backlog_bound)
        ))
    } else {
        None
    }
}

fn micros(ns: u64) -> String {
    buslab_reports::render::format::nanos(ns as f64)
}

/// Judges one load of a bus against the reference's load at the same rate
/// (`None` when the point has no reference there); `burst`: the load
/// followed the scenario's burst pattern ([`behind`]).
fn classify(bus: &Latency, reference: Option<&Latency>, burst: bool) -> Option<Saturation> {
    if let Some(why) = reference.and_then(|r| behind(r, burst)) {
        return Some(Saturation::HarnessSaturated(format!(
            "the null reference could not keep {} events/s: {why}",
            rate(bus.offered_per_sec)
        )));
    }
    let why = behind(bus, burst)?;
    let reference = match reference.and_then(|r| r.lateness) {
        Some(r) => format!("null's median send lateness {}", micros(r.p50_ns)),
        None => "no null reference at this rate".to_owned(),
    };
    Some(Saturation::OverCapacity(format!("fell behind {} events/s: {why}; {reference}", rate(bus.offered_per_sec))))
}

fn rate(r: f64) -> String {
    buslab_reports::render::format::si_number(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::Lateness;

    /// A load whose median send was `lateness` late (its p99 four times
    /// that) and whose deliveries ended `backlog` after the schedule.
    fn load(rate: f64, lateness: u64, backlog: u64) -> Latency {
        Latency {
            offered_per_sec: rate,
            lateness: Some(Lateness {
                p50_ns: lateness,
                p99_ns: lateness * 4,
                max_ns: lateness * 8,
                backlog_ns: backlog,
                schedule_ns: 200_000_000,
            }),
            ..Latency::default()
        }
    }

    #[test]
    fn the_grid_is_shared_and_below_the_slowest_lossless_capacity() {
        let grid = Grid::DEFAULT;
        assert_eq!(shared(None, 12.3e6, grid), [1e6, 2e6, 5e6, 10e6]);
        assert_eq!(shared(None, 5e6, grid), [5e5, 1e6, 2e6, 5e6], "a capacity on the series is offered");
        assert_eq!(shared(None, 2_500.0, grid), [1e3, 2e3]);
        assert!(shared(None, 10.0, grid).is_empty());
        // `--quick`'s grid: two rates, a decade apart.
        assert_eq!(shared(None, 12.3e6, Grid::QUICK), [1e6, 10e6]);
        assert_eq!(shared(None, 5e6, Grid::QUICK), [5e5, 5e6]);
        assert_eq!(shared(None, 2_500.0, Grid::QUICK), [2e3], "one rate where the series has no decade below");
        // Every bus gets the shared rates, then what its capacity allows.
        let grid = shared(None, 12.3e6, grid);
        assert_eq!(offered(&grid, 12.3e6), [1e6, 2e6, 5e6, 10e6]);
        assert_eq!(offered(&grid, 80e6), [1e6, 2e6, 5e6, 10e6, 20e6]);
        for capacity in [1e6, 12.3e6, 1e9] {
            assert!(offered(&grid, capacity).starts_with(&grid), "shared by every bus");
        }
    }

    fn member(capacity: f64, lossy: bool, reference: bool) -> Member {
        Member { capacity: Some(capacity), lossy, reference }
    }

    /// The `null` reference, a fast bus, a slow lossless bus, a lossy bus
    /// slower still, and a cell that measured no capacity.
    fn point() -> [Member; 5] {
        [
            member(80e6, false, true),
            member(30e6, false, false),
            member(3.1e6, false, false),
            member(0.5e6, true, false),
            Member { capacity: None, lossy: false, reference: false },
        ]
    }

    #[test]
    fn every_bus_of_a_point_is_offered_the_same_rates() {
        let members = point();
        let Offer { shared, per_member: offered } = offer(None, &members, Grid::DEFAULT).expect("rates");
        assert_eq!(shared, [2e5, 5e5, 1e6, 2e6], "up to the slowest lossless bus (3.1 M), not the lossy one");
        for (m, rates) in members.iter().zip(&offered) {
            match (m.capacity, rates) {
                (Some(capacity), Some(rates)) => {
                    assert!(rates.starts_with(&shared), "{m:?} was offered {rates:?}");
                    assert!(rates[shared.len()..].iter().all(|&r| r <= capacity), "{m:?}: {rates:?}");
                }
                (None, None) => {}
                other => panic!("{m:?}: {other:?}"),
            }
        }
        // Beyond the grid, each within its own capacity.
        assert_eq!(offered[1].as_deref(), Some(&[2e5, 5e5, 1e6, 2e6, 5e6][..]));
        assert_eq!(offered[2].as_deref(), Some(&shared[..]), "5 M is above 3.1 M");
        // Named rates go to every bus as they are, even above a capacity.
        let Offer { shared: named, per_member: offered } =
            offer(Some(&[1e6, 4e6]), &members, Grid::DEFAULT).expect("named");
        assert_eq!(named, [1e6, 4e6]);
        assert!(offered.iter().flatten().all(|r| *r == named));
        // Every bus lossy: the slowest bus under test; none measured: no pass.
        let lossy = [member(80e6, false, true), member(2.5e6, true, false), member(9e6, true, false)];
        assert_eq!(offer(None, &lossy, Grid::DEFAULT).expect("rates").shared, [2e5, 5e5, 1e6, 2e6]);
        let none = [Member { capacity: None, lossy: false, reference: true }];
        assert!(offer(None, &none, Grid::DEFAULT).expect_err("no capacity").contains("capacity"));
        assert!(
            offer(None, &[member(500.0, false, false)], Grid::DEFAULT).expect_err("too slow").contains("lowest rate")
        );
    }

    /// Where `null` cannot keep the schedule, every bus's load there is
    /// harness saturated, however it did, and the headline stays below.
    #[test]
    fn a_rate_null_cannot_keep_saturates_the_harness_not_the_buses() {
        let members = &point()[..4];
        let shared = [2e5, 5e5, 1e6, 2e6];
        let ok = |r| load(r, 1_000, 10_000);
        let mut loads = vec![
            vec![ok(2e5), ok(5e5), ok(1e6), load(2e6, 400_000, 10_000), load(5e6, 900_000, 10_000)],
            vec![ok(2e5), ok(5e5), ok(1e6), ok(2e6), ok(5e6)],
            vec![ok(2e5), ok(5e5), ok(1e6), ok(2e6)],
            vec![ok(2e5), load(5e5, 2_000, 90_000_000), ok(1e6), ok(2e6)],
        ];
        let headline = judge(members, &mut loads, &shared, false, false);
        assert_eq!(headline, Some(1e6), "the highest rate null and every lossless bus sustain");
        for (bus, entries) in loads.iter().enumerate() {
            for l in entries {
                let harness = matches!(l.saturation, Some(Saturation::HarnessSaturated(_)));
                assert_eq!(harness, l.offered_per_sec >= 2e6, "bus {bus} at {}: {:?}", l.offered_per_sec, l.saturation);
                assert_eq!(l.beyond_headline, l.offered_per_sec > 1e6, "bus {bus} at {}", l.offered_per_sec);
            }
        }
        let reason = loads[1][3].saturation.as_ref().expect("saturated").reason().to_owned();
        assert!(reason.contains("null") && reason.contains("400 µs"), "{reason}");
        // The lossy bus fell behind at 500 k while null kept it: its own.
        assert!(matches!(loads[3][1].saturation, Some(Saturation::OverCapacity(_))));
        assert!(loads[1][..3].iter().all(Latency::judged));
        // Without a reference row, a bus is judged on its own lateness.
        let mut alone = vec![vec![load(2e6, 400_000, 10_000)]];
        judge(&members[1..2], &mut alone, &[2e6], false, false);
        assert!(alone[0][0].saturation.as_ref().is_some_and(|s| s.reason().contains("no null reference")));
    }

    #[test]
    fn named_rates_are_offered_to_every_bus_and_the_first_is_the_headline() {
        let named = [1e6, 2e5];
        let grid = shared(Some(&named), 50e3, Grid::DEFAULT);
        assert_eq!(grid, named);
        assert_eq!(headline(&grid, true, &[]), Some(1e6));
    }

    #[test]
    fn the_headline_is_the_highest_rate_every_lossless_bus_sustains() {
        let grid = [1e6, 2e6, 5e6];
        let ok = |r| load(r, 1_000, 10_000);
        let mut slow: Vec<Latency> = grid.iter().map(|&r| ok(r)).collect();
        slow[2].saturation = Some(Saturation::OverCapacity("x".into()));
        let fast: Vec<Latency> = grid.iter().map(|&r| ok(r)).collect();
        assert_eq!(headline(&grid, false, &[&fast]), Some(5e6));
        assert_eq!(headline(&grid, false, &[&fast, &slow]), Some(2e6));
        // A bus with no entry at a rate does not sustain it.
        assert_eq!(headline(&grid, false, &[&fast, &slow[..1]]), Some(1e6));
        assert_eq!(headline(&grid, false, &[&fast, &[]]), None);
    }

    /// A producer paused now and then (a late tail, an on-time median)
    /// kept its rate; one whose median send is late did not.
    #[test]
    fn a_late_tail_is_a_pause_and_a_late_median_a_rate_not_kept() {
        let mut paused = load(1e6, 0, 30_000);
        let on_time = paused.lateness.expect("lateness");
        paused.lateness = Some(Lateness { p99_ns: 150_000, max_ns: 900_000, ..on_time });
        assert_eq!(
            classify(&paused, Some(&paused), false),
            None,
            "scheduler pauses are every bus's latency, not a saturation"
        );
        let behind = load(1e6, 60_000, 30_000);
        let s = classify(&behind, Some(&paused), false).expect("over capacity");
        assert!(s.reason().contains("median send lateness 60.0 µs > 50.0 µs"), "{}", s.reason());
    }

    /// A burst's spikes make the median send late by design; the load is
    /// judged by whether its backlog drained.
    #[test]
    fn a_burst_is_judged_by_its_backlog() {
        let spikes = load(145e3, 4_900_000, 420_000);
        assert!(classify(&spikes, Some(&spikes), false).is_some(), "as a steady schedule, saturated");
        assert_eq!(classify(&spikes, Some(&spikes), true), None, "as a burst, it drained");
        let stuck = load(145e3, 4_900_000, 90_000_000);
        let s = classify(&stuck, Some(&spikes), true).expect("a backlog that did not drain");
        assert!(
            matches!(s, Saturation::OverCapacity(_)) && s.reason().contains("after the schedule"),
            "{}",
            s.reason()
        );
    }

    #[test]
    fn loads_are_judged_against_the_reference() {
        let on_time = load(1e6, 2_000, 30_000);
        let late = load(1e6, 400_000, 30_000);
        let backlog = load(1e6, 2_000, 90_000_000);
        assert_eq!(classify(&on_time, Some(&on_time), false), None);
        // The reference fell behind: the harness is saturated, whatever the bus did.
        for bus in [&on_time, &late] {
            let s = classify(bus, Some(&late), false).expect("saturated");
            assert!(matches!(s, Saturation::HarnessSaturated(_)), "{s:?}");
            assert!(s.reason().contains("null") && s.reason().contains("400 µs"), "{}", s.reason());
        }
        // The bus fell behind while the reference kept the schedule.
        let s = classify(&late, Some(&on_time), false).expect("over capacity");
        assert!(matches!(s, Saturation::OverCapacity(_)) && s.reason().contains("2.00 µs"), "{}", s.reason());
        let s = classify(&backlog, Some(&on_time), false).expect("a growing queue");
        assert!(s.reason().contains("90.0 ms after the schedule"), "{}", s.reason());
        assert!(classify(&late, None, false).expect("alone").reason().contains("no null reference"));
    }
}
