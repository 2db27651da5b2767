//! `cells/<slug>.html`: every number of one cell, its trials, latency
//! table and charts, and its flame graphs.

use super::{Writer, common, parallel};
use crate::analysis::Report;
use crate::render::format;
use crate::render::site::context::{self, Figure, Pair, scenario_href, trend_href};
use crate::render::site::figures;
use crate::render::site::{SiteError, slug};
use buslab_scenarios::results::{CellResult, CellStatus};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct TrialRow {
    trial: usize,
    events_per_sec: String,
    duration: String,
}

#[derive(Serialize)]
struct ThroughputView {
    median: String,
    ci: String,
    deliveries: String,
    events_per_trial: u64,
    trials: Vec<TrialRow>,
}

#[derive(Serialize)]
struct LatencyRow {
    load: String,
    /// `headline`, `beyond headline` or empty.
    role: &'static str,
    /// `harness saturated: <reason>`, `over capacity: <reason>` or empty.
    saturation: String,
    lateness_p99: String,
    loss: String,
    offered: String,
    p50: String,
    p90: String,
    p99: String,
    p999: String,
    p9999: String,
    max: String,
    count: u64,
    spike_p99: String,
    drain: String,
}

#[derive(Serialize)]
struct CellPage {
    name: String,
    scenario: String,
    scenario_href: String,
    bus: String,
    peer: bool,
    status: &'static str,
    reason: String,
    params: Vec<Pair>,
    producers: usize,
    subscribers: usize,
    throughput: Option<ThroughputView>,
    latency: Vec<LatencyRow>,
    /// The point's headline rate, or empty.
    headline_rate: String,
    latency_figures: Vec<Figure>,
    allocations: Vec<Pair>,
    instructions: Vec<Pair>,
    multithreaded: bool,
    flame: Option<String>,
    flame_note: String,
    diff: Option<String>,
    diff_note: String,
    skipped_passes: Vec<Pair>,
    dropped: u64,
    listener_panics: u64,
    trend_href: String,
    trend_points: usize,
}

/// One latency entry as the cell page shows it: a saturated load gives its
/// state and reason instead of percentiles, a percentile among a lossy
/// bus's misses reads "lost".
fn latency_row(cell: &CellResult, l: &buslab_scenarios::results::Latency) -> LatencyRow {
    let judged = l.judged();
    let pct = |q: f64| match l.percentile_ns(q) {
        _ if !judged => "—".to_owned(),
        Some(ns) => format::nanos(ns as f64),
        None => "lost".to_owned(),
    };
    let headline = cell.headline_rate.is_some_and(|h| buslab_scenarios::results::same_rate(h, l.offered_per_sec));
    LatencyRow {
        load: if l.load != 0.0 {
            format!("{} of capacity", format::share(l.load))
        } else if l.spike_p99_ns.is_some() {
            "burst".to_owned()
        } else {
            String::new()
        },
        role: if headline {
            "headline"
        } else if l.beyond_headline {
            "beyond headline"
        } else {
            ""
        },
        saturation: l.saturation.as_ref().map(|s| format!("{}: {}", s.state(), s.reason())).unwrap_or_default(),
        lateness_p99: l.lateness.map(|t| format::nanos(t.p99_ns as f64)).unwrap_or_default(),
        loss: if l.misses > 0 { format::unsigned_percent(l.loss_rate) } else { String::new() },
        offered: format::si(l.offered_per_sec, "events/s"),
        p50: pct(0.5),
        p90: pct(0.9),
        p99: pct(0.99),
        p999: pct(0.999),
        p9999: pct(0.9999),
        max: if judged { format::nanos(l.max_ns as f64) } else { "—".to_owned() },
        count: l.count,
        spike_p99: l.spike_p99_ns.filter(|_| judged).map(|n| format::nanos(n as f64)).unwrap_or_default(),
        drain: l.drain_ns.filter(|_| judged).map(|n| format::nanos(n as f64)).unwrap_or_default(),
    }
}

pub(super) fn pages(report: &Report<'_>, writer: &Writer) -> Result<(), SiteError> {
    let (run, trends) = (report.run, &report.trends);
    let peers: Vec<&str> = run.meta.buses.iter().filter(|b| b.peer).map(|b| b.name.as_str()).collect();
    let baseline: BTreeMap<String, &CellResult> =
        report.baseline.map(|b| b.cells.iter().map(|c| (c.key.name(), c)).collect()).unwrap_or_default();
    parallel(&run.cells, |cell| {
        let name = cell.key.name();
        let slug = slug(&name);
        let (status, reason) = context::status(&cell.status);
        let throughput = cell.throughput.as_ref().map(|t| ThroughputView {
            median: format::si(t.events_per_sec.median, "events/s"),
            ci: format!(
                "{} – {}",
                format::si(t.events_per_sec.lower, "events/s"),
                format::si(t.events_per_sec.upper, "events/s")
            ),
            deliveries: format::si(t.deliveries_per_sec.median, "deliveries/s"),
            events_per_trial: t.events_per_trial,
            trials: t
                .events_per_sec
                .samples
                .iter()
                .enumerate()
                .map(|(i, v)| TrialRow {
                    trial: i + 1,
                    events_per_sec: format::si(*v, "events/s"),
                    duration: t.trial_ns.get(i).map(|ns| format::nanos(*ns as f64)).unwrap_or_default(),
                })
                .collect(),
        });
        let latency = cell.latency.iter().map(|l| latency_row(cell, l)).collect();
        let allocations = cell
            .allocations
            .as_ref()
            .map(|a| {
                vec![
                    Pair { key: "Allocations per event".into(), value: format::si_number(a.allocs_per_event) },
                    Pair { key: "Bytes per event".into(), value: format::bytes(a.bytes_per_event) },
                    Pair { key: "Peak live heap".into(), value: format::bytes(a.peak_bytes as f64) },
                    Pair { key: "Events measured".into(), value: a.events.to_string() },
                ]
            })
            .unwrap_or_default();
        let instructions = cell
            .instructions
            .as_ref()
            .map(|i| {
                vec![
                    Pair { key: "Instructions (Ir) per event".into(), value: format::si_number(i.ir_per_event) },
                    Pair { key: "Estimated cycles per event".into(), value: format::si_number(i.est_cycles_per_event) },
                    Pair { key: "L1 hits per event".into(), value: format::si_number(i.l1_hits_per_event) },
                    Pair { key: "LL hits per event".into(), value: format::si_number(i.ll_hits_per_event) },
                    Pair { key: "RAM accesses per event".into(), value: format::si_number(i.ram_hits_per_event) },
                    Pair { key: "Branch misses per event".into(), value: format::si_number(i.branch_misses_per_event) },
                    Pair { key: "Events measured".into(), value: i.events.to_string() },
                ]
            })
            .unwrap_or_default();
        let folded = cell.profile.as_ref().map(|p| p.folded.as_str()).filter(|f| !f.trim().is_empty());
        let (flame, flame_note) = match folded {
            Some(folded) => match figures::flame(folded, &name) {
                Ok(svg) => {
                    writer.file(&format!("cells/{slug}.flame.svg"), &svg)?;
                    (Some(format!("{slug}.flame.svg")), String::new())
                }
                Err(e) => (None, format!("no flame graph: {e}")),
            },
            None => (None, profile_note(cell)),
        };
        let base_folded = baseline
            .get(&name)
            .and_then(|b| b.profile.as_ref())
            .map(|p| p.folded.as_str())
            .filter(|f| !f.trim().is_empty());
        let (diff, diff_note) = match (folded, base_folded, report.baseline) {
            (Some(new), Some(old), Some(base)) => match figures::differential(old, new, &name, &base.meta.id) {
                Ok(svg) => {
                    writer.file(&format!("cells/{slug}.diff.svg"), &svg)?;
                    (Some(format!("{slug}.diff.svg")), format!("against run {}", base.meta.id))
                }
                Err(e) => (None, format!("no differential flame graph: {e}")),
            },
            (_, _, None) => (None, "no baseline run on this machine".to_owned()),
            _ => (None, "the baseline or this run has no profile of this cell".to_owned()),
        };
        let page = CellPage {
            name: name.clone(),
            scenario: cell.key.scenario.clone(),
            scenario_href: scenario_href("../", &cell.key.scenario),
            bus: cell.key.bus.clone(),
            peer: peers.contains(&cell.key.bus.as_str()),
            status,
            reason,
            params: cell.key.params.iter().map(|(k, v)| Pair { key: k.clone(), value: v.clone() }).collect(),
            producers: cell.producers,
            subscribers: cell.subscribers,
            throughput,
            latency,
            headline_rate: cell.headline_rate.map(|r| format::si(r, "events/s")).unwrap_or_default(),
            latency_figures: figures::latency(cell),
            allocations,
            instructions,
            multithreaded: cell.instructions.as_ref().is_some_and(|i| i.multithreaded),
            flame,
            flame_note,
            diff,
            diff_note,
            skipped_passes: cell
                .skipped_passes
                .iter()
                .map(|(k, v)| Pair { key: k.clone(), value: v.clone() })
                .collect(),
            dropped: cell.dropped,
            listener_panics: cell.listener_panics,
            trend_href: trend_href("../", &name),
            trend_points: trends.get(&name).map(|t| t.iter().map(|t| t.points.len()).max().unwrap_or(0)).unwrap_or(0),
        };
        writer.page("cell.html", &format!("cells/{slug}.html"), &common(run, "../", "cell"), &page)?;
        Ok(())
    })
}

/// Why a cell has no profile.
fn profile_note(cell: &CellResult) -> String {
    if let Some(reason) = cell.skipped_passes.get("profile") {
        format!("the profile pass was skipped: {reason}")
    } else if cell.status != CellStatus::Ok {
        "the cell did not end ok".to_owned()
    } else {
        "the profile pass recorded no samples".to_owned()
    }
}
