//! Why a pass of a cell produced no figure: one typed error for everything
//! the measuring side can refuse or detect, from a bus that lost an event
//! to a request that cannot be run.
//!
//! The probe sends the error's text to the parent, where it becomes the
//! cell's failure reason in the store and the report.

use crate::drive::Published;
use crate::listener::Tally;
use buslab_impls::BusError;
use std::sync::atomic::Ordering;

/// Who received the deliveries a check is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receiver {
    /// Permanent subscriber `i` of an event cell.
    Subscriber(usize),
    /// Short-lived subscriber `i` of a churn scenario.
    Churned(usize),
    /// Typed handler `i` of a CloudEvents cell.
    Handler(usize),
}

impl std::fmt::Display for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Receiver::Subscriber(i) => write!(f, "subscriber {i}"),
            Receiver::Churned(i) => write!(f, "churned subscriber {i}"),
            Receiver::Handler(i) => write!(f, "handler {i}"),
        }
    }
}

/// Why a pass of a cell produced no figure.
#[derive(Debug, thiserror::Error)]
pub enum CellError {
    /// Deliveries out of order or delivered twice.
    #[error("{receiver}, producer {producer}: {count} deliveries out of order or duplicated")]
    Disorder {
        /// Who received them.
        receiver: Receiver,
        /// The producer whose stream broke.
        producer: usize,
        /// Deliveries out of order or duplicated.
        count: u64,
    },
    /// More deliveries than events due.
    #[error("{receiver}, producer {producer}: {got} deliveries of {due} events")]
    Surplus {
        /// Who received them.
        receiver: Receiver,
        /// The producer.
        producer: usize,
        /// Deliveries counted.
        got: u64,
        /// Events due.
        due: u64,
    },
    /// Fewer deliveries than events due, from a bus that does not declare
    /// itself lossy.
    #[error("{receiver}, producer {producer}: got {got} of {due} events ({} lost)", due - got)]
    Lost {
        /// Who missed them.
        receiver: Receiver,
        /// The producer.
        producer: usize,
        /// Deliveries counted.
        got: u64,
        /// Events due.
        due: u64,
    },
    /// Gaps seen by a receiver whose total cannot be known (a churned
    /// subscriber).
    #[error("{receiver}, producer {producer}: {gaps} gaps and {disorder} out-of-order deliveries")]
    Gaps {
        /// Who saw them.
        receiver: Receiver,
        /// The producer.
        producer: usize,
        /// Gaps in the sequence.
        gaps: u64,
        /// Deliveries out of order.
        disorder: u64,
    },
    /// The delivered events' checksum differs from the published ones'.
    #[error("{receiver}, producer {producer}: checksum mismatch (corrupted events)")]
    Corrupted {
        /// Who received them.
        receiver: Receiver,
        /// The producer.
        producer: usize,
    },
    /// A lossy bus lost more deliveries than it counted.
    #[error("{missing} deliveries missing but the bus counted only {counted} drops (silent loss)")]
    SilentLoss {
        /// Deliveries missing at the receivers.
        missing: u64,
        /// Drops the bus counted.
        counted: u64,
    },
    /// A lossy bus counted more drops than deliveries are missing.
    #[error("the bus counted {counted} drops but only {missing} deliveries are missing")]
    Overcounted {
        /// Deliveries missing at the receivers.
        missing: u64,
        /// Drops the bus counted.
        counted: u64,
    },
    /// Borrowed CloudEvents delivered after their publish call returned.
    #[error("{0} borrowed events were delivered after their publish call returned")]
    Stale(u64),
    /// Listener (or handler) calls panicked.
    #[error("{0} listener calls panicked")]
    ListenerPanics(u64),
    /// A valid CloudEvents document was refused while the trial ran.
    #[error("producer {producer}: a valid document was refused: {error}")]
    Refused {
        /// The producer.
        producer: usize,
        /// The decoder's reason.
        error: buslab_scenarios::cloudevents::DecodeError,
    },
    /// The bus refused its configuration.
    #[error("{0}")]
    Bus(#[from] BusError),
    /// The bus refused a subscription the scenario makes.
    #[error("subscribing {what} {index}: {error}")]
    Subscribe {
        /// `listener` or `handler`.
        what: &'static str,
        /// Its index.
        index: usize,
        /// The bus's reason.
        error: BusError,
    },
    /// The churn thread's subscribe or unsubscribe failed.
    #[error("churn: {operation}: {error}")]
    Churn {
        /// `subscribe` or `unsubscribe`.
        operation: &'static str,
        /// The bus's reason.
        error: BusError,
    },
    /// A thread of the trial panicked or could not be spawned.
    #[error("{0}")]
    Thread(String),
    /// The cell's input could not be prepared (its CloudEvents corpus).
    #[error("{0}")]
    Input(String),
    /// This process lacks what the pass needs (allocation counts, the
    /// profiler).
    #[error("{0}")]
    Instrument(String),
    /// The probe processes of one cell measured different latency loads,
    /// so their answers cannot be merged into one entry per load.
    #[error("latency processes measured different loads (load {load})")]
    LoadMismatch {
        /// The position of the first load that differs.
        load: usize,
    },
    /// A stored latency histogram could not be read or merged.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// The request cannot be run as asked (an unknown bus, a pass that does
    /// not apply to the cell, no rates to offer, borrowed events on a bus
    /// that delivers after `publish` returns).
    #[error("{0}")]
    Request(String),
}

/// Checks what `receiver` got from `producer` against what is due to it
/// (`due`): no delivery out of order or twice, none beyond the due count,
/// and — unless the bus declares itself `lossy` — every event, with the
/// published checksum. Returns the deliveries counted and the shortfall (the
/// deliveries a lossy bus lost, to be matched against its counted drops).
pub(crate) fn check_tally(
    receiver: Receiver,
    producer: usize,
    tally: &Tally,
    due: Published,
    lossy: bool,
) -> Result<(u64, u64), CellError> {
    let got = tally.count();
    let disorder = tally.disorder.load(Ordering::Acquire);
    if disorder != 0 {
        return Err(CellError::Disorder { receiver, producer, count: disorder });
    }
    if got > due.count {
        return Err(CellError::Surplus { receiver, producer, got, due: due.count });
    }
    if lossy {
        return Ok((got, due.count - got));
    }
    if got != due.count {
        return Err(CellError::Lost { receiver, producer, got, due: due.count });
    }
    if tally.checksum.load(Ordering::Acquire) != due.checksum {
        return Err(CellError::Corrupted { receiver, producer });
    }
    Ok((got, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(seqs: &[u64]) -> Tally {
        let tally = Tally::starting_at(0);
        for &seq in seqs {
            tally.record_parts(seq, seq + 10);
        }
        tally
    }

    /// What is due: `count` events whose checksums sum to `checksum` (the
    /// tallies above record event `seq` with checksum `seq + 10`).
    fn due(count: u64, checksum: u64) -> Published {
        Published { count, checksum }
    }

    #[test]
    fn each_broken_promise_is_named_and_a_lossy_bus_s_shortfall_is_returned() {
        let r = Receiver::Subscriber(3);
        let two = tally(&[0, 1]);
        assert_eq!(check_tally(r, 1, &two, due(2, 21), false).expect("intact"), (2, 0));
        let lost = check_tally(r, 1, &two, due(3, 33), false).expect_err("one missing");
        assert!(matches!(lost, CellError::Lost { got: 2, due: 3, .. }), "{lost:?}");
        assert_eq!(lost.to_string(), "subscriber 3, producer 1: got 2 of 3 events (1 lost)");
        assert_eq!(check_tally(r, 1, &two, due(3, 33), true).expect("a lossy bus may lose"), (2, 1));
        let surplus = check_tally(r, 1, &two, due(1, 10), true).expect_err("more than due");
        assert!(matches!(surplus, CellError::Surplus { got: 2, due: 1, .. }), "{surplus:?}");
        let corrupted = check_tally(Receiver::Handler(0), 0, &two, due(2, 22), false).expect_err("checksum");
        assert_eq!(corrupted.to_string(), "handler 0, producer 0: checksum mismatch (corrupted events)");
        let twice = tally(&[0, 1, 1]);
        let disorder = check_tally(r, 0, &twice, due(3, 32), false).expect_err("a duplicate");
        assert!(matches!(disorder, CellError::Disorder { count: 1, .. }), "{disorder:?}");
    }
}
