//! The instruction pass: run under callgrind by the parent, which reads the
//! counts of the window the probe marks with client requests
//! ([`crate::callgrind`]).

use super::Cell;
use crate::drive::Window;
use crate::error::CellError;
use crate::probe::{Instruments, ProbeRequest, ProbeResponse};

pub(super) fn run<C: Cell>(
    request: &ProbeRequest,
    instruments: &dyn Instruments,
    mut cell: C,
) -> Result<ProbeResponse, CellError> {
    let cycle = cell.cycle().max(1);
    let whole_cycles = |events: u64| events.div_ceil(cycle) * cycle;
    let n = whole_cycles(request.budget.callgrind_events_for(&request.scenario, request.point));
    // Every heavy shape through every pooled envelope, before callgrind
    // instruments anything: at valgrind's plain speed, not the cache
    // simulator's (it was most of a heavy-payload cell's instruction pass).
    let settling = cell.settling_events();
    if settling > 0 {
        cell.trial(settling, Window::None)?;
    }
    instruments.callgrind_instrument(); // setup is done
    cell.trial(whole_cycles(n.min(1_000)), Window::None)?; // warm-up, the cache simulator's too
    let callgrind = |open: bool| instruments.callgrind_window(open);
    cell.trial(n, window(request, &callgrind))?;
    Ok(ProbeResponse {
        measured_events: n * request.point.producers as u64,
        multithreaded: multithreaded(request),
        dropped: cell.finish(),
        ..Default::default()
    })
}

/// Whether the instruction pass of `request`'s cell runs bus code on
/// several threads. Producers run on their own threads, and so do
/// asynchronous buses' consumers and the churn thread: callgrind serialises
/// them, and how they interleave changes the counts. One producer
/// publishing to an in-line bus without churn runs all the bus code on one
/// thread, within its publishing loop; only such a cell's counts repeat.
pub fn multithreaded(request: &ProbeRequest) -> bool {
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
fn window<'a>(request: &ProbeRequest, callgrind: &'a (dyn Fn(bool) + Sync)) -> Window<'a> {
    if multithreaded(request) { Window::Trial(callgrind) } else { Window::Producer(callgrind) }
}
