//! The throughput pass: calibrated trials at full speed, each verified, with
//! the CPU time every thread of the process spent per event.

use super::{Cell, calibrate};
use crate::drive::Window;
use crate::error::CellError;
use crate::probe::{ProbeRequest, ProbeResponse};
use crate::stats;
use buslab_scenarios::results::Throughput;

/// The per-trial rates of a throughput pass, one entry per trial.
#[derive(Debug, Default)]
pub struct Rates {
    /// Events published per second.
    pub events: Vec<f64>,
    /// Deliveries per second.
    pub deliveries: Vec<f64>,
    /// Input bytes consumed per second.
    pub bytes: Vec<f64>,
    /// The side trials' events per second ([`Cell::side_trial`]).
    pub side_events: Vec<f64>,
    /// The side trials' input bytes per second.
    pub side_bytes: Vec<f64>,
}

/// The share of deliveries lost: `dropped ÷ (delivered + dropped)`, `None`
/// when nothing was due.
pub fn loss_rate(delivered: u64, dropped: u64) -> Option<f64> {
    let due = delivered.saturating_add(dropped);
    (due > 0).then(|| dropped as f64 / due as f64)
}

pub(super) fn run<C: Cell>(request: &ProbeRequest, mut cell: C) -> Result<ProbeResponse, CellError> {
    let events = calibrate(&mut cell, request, request.budget.trial_ms)?;
    cell.side_trial(events.min(10_000))?; // the side trial's warm-up, if it has one
    let mut rates = Rates::default();
    let mut trial_ns = Vec::new();
    let mut cpu = crate::cpu::PerEvent::default();
    let deliveries_at_start = cell.delivered();
    let dropped_at_start = cell.dropped();
    let mut deliveries_before = deliveries_at_start;
    for _ in 0..request.budget.trials {
        if let Some(side) = cell.side_trial(events)? {
            let seconds = side.elapsed_ns.max(1) as f64 / 1e9;
            rates.side_events.push(side.events as f64 / seconds);
            rates.side_bytes.push(side.bytes as f64 / seconds);
        }
        let cpu_start = cpu.start();
        let trial = cell.trial(events, Window::None)?;
        cpu.stop(cpu_start, trial.events);
        let seconds = trial.elapsed_ns.max(1) as f64 / 1e9;
        rates.events.push(trial.events as f64 / seconds);
        rates.bytes.push(trial.bytes as f64 / seconds);
        rates.deliveries.push((trial.deliveries - deliveries_before) as f64 / seconds);
        deliveries_before = trial.deliveries;
        trial_ns.push(trial.elapsed_ns);
    }
    let dropped = cell.dropped() - dropped_at_start;
    let mut response = ProbeResponse {
        throughput: Some(Throughput {
            loss_rate: loss_rate(deliveries_before - deliveries_at_start, dropped),
            events_per_sec: stats::estimate(&rates.events),
            deliveries_per_sec: stats::estimate(&rates.deliveries),
            events_per_trial: events,
            processes: vec![trial_ns.len() as u32],
            trial_ns,
            cpu_ns_per_event: cpu.estimate(),
        }),
        ..Default::default()
    };
    cell.complete(&rates, &mut response);
    response.dropped = cell.finish();
    Ok(response)
}
