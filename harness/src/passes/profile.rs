//! The profile pass: one calibrated trial under an in-process sampling
//! profiler (pprof), whose stacks become the report's flame graphs.

use super::{Cell, calibrate};
use crate::drive::Window;
use crate::error::CellError;
use crate::probe::{ProbeRequest, ProbeResponse};
use buslab_scenarios::results::Profile;

/// Samples per second: a prime, so that sampling does not lock onto a
/// periodic part of the loop.
const FREQUENCY_HZ: u32 = 997;

pub(super) fn run<C: Cell>(request: &ProbeRequest, mut cell: C) -> Result<ProbeResponse, CellError> {
    let events = calibrate(&mut cell, request, request.budget.profile_ms)?;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY_HZ as i32)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| CellError::Instrument(format!("starting the profiler: {e}")))?;
    cell.trial(events, Window::None)?;
    let report = guard.report().build().map_err(|e| CellError::Instrument(format!("building the profile: {e}")))?;
    let (folded, samples) = fold(&report);
    Ok(ProbeResponse {
        profile: Some(Profile { samples, frequency_hz: FREQUENCY_HZ, folded }),
        dropped: cell.finish(),
        ..Default::default()
    })
}

/// A profile as folded stacks (`thread;frame;frame count` lines) and the
/// number of samples.
pub fn fold(report: &pprof::Report) -> (String, u64) {
    let mut folded = String::new();
    let mut samples = 0u64;
    for (frames, count) in report.data.iter() {
        let mut stack: Vec<String> = Vec::new();
        stack.push(frames.thread_name_or_id());
        for frame in frames.frames.iter().rev() {
            for symbol in frame.iter().rev() {
                stack.push(symbol.name());
            }
        }
        folded.push_str(&stack.join(";"));
        folded.push_str(&format!(" {count}\n"));
        samples += *count as u64;
    }
    (folded, samples)
}
