//! The allocation pass: the heap blocks and bytes a bus allocates per event
//! in its steady state, from the counting allocator ([`crate::heap`]).

use super::Cell;
use crate::drive::Window;
use crate::error::CellError;
use crate::probe::{Instruments, ProbeRequest, ProbeResponse};
use buslab_scenarios::results::Allocations;

pub(super) fn run<C: Cell>(
    request: &ProbeRequest,
    instruments: &dyn Instruments,
    mut cell: C,
) -> Result<ProbeResponse, CellError> {
    let n = request.budget.alloc_events;
    // Warm-up: pools, lazily built structures, buffers grown to the largest
    // event or document.
    cell.trial(n.max(cell.settling_events()), Window::None)?;
    let heap = || {
        instruments.heap().ok_or_else(|| CellError::Instrument("allocation counting is not on in this process".into()))
    };
    let before = heap()?;
    cell.trial(n, Window::None)?;
    let mid = heap()?;
    cell.trial(2 * n, Window::None)?;
    let after = heap()?;
    // (cost of 2N) − (cost of N) = cost of N events, with each trial's
    // fixed cost (thread spawns, barriers) cancelled out.
    let once = (mid.0 - before.0, mid.1 - before.1);
    let twice = (after.0 - mid.0, after.1 - mid.1);
    let events = n * request.point.producers as u64;
    Ok(ProbeResponse {
        allocations: Some(Allocations {
            allocs_per_event: twice.0.saturating_sub(once.0) as f64 / events as f64,
            bytes_per_event: twice.1.saturating_sub(once.1) as f64 / events as f64,
            peak_bytes: after.2,
            events,
        }),
        dropped: cell.finish(),
        ..Default::default()
    })
}
