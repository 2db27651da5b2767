//! buslab's harness: it turns "which bus is faster?" into numbers an
//! engineer can trust.
//!
//! A run plans the matrix (bus × scenario × sweep point, [`runner`]), and
//! runs each cell's passes — throughput, latency, allocations, instructions,
//! profile — each in its own child process ([`probe`]), so that no pass
//! distorts another. The measured loops ([`drive`]) are generic over the bus;
//! every trial verifies delivery through the harness's listener
//! ([`listener`]) before any number is kept; `cloudevents` cells decode
//! documents and route them by type ([`cloudevents`]); the latency pass
//! offers every bus of a sweep point the same rates and judges each load
//! against the `null` reference ([`rates`]), recording without a lock
//! ([`buckets`]); throughput comes from several processes per cell,
//! interleaved with the point's other buses ([`repeat`]), and its interval
//! holds the variance between processes ([`stats`]); every run records where it came from ([`meta`]).
//!
//! # Dependencies and why
//! - `hdrhistogram`: latency histograms with bounded relative error,
//!   serialisable for the store (filled after each trial from the lock-free
//!   bucket counts of [`buckets`]).
//! - No crate for the allocation pass's counts: [`heap`] counts what dhat
//!   counted, without the backtrace dhat records per allocation (seconds
//!   per heavy cell); see its module doc.
//! - No crate for the callgrind client requests: [`callgrind`] issues them
//!   with inline assembly, since the bindings crate built them with bindgen,
//!   which needs libclang.
//! - `pprof`: in-process sampling profiler for the profile pass's folded
//!   stacks.
//! - `seq-macro`: generates the distinct listener bodies.
//! - `fastrand`: the run id's random suffix.
//! - `humantime`: RFC 3339 timestamps without a date-time library.
//! - `indicatif` and `console`: progress bar with ETA and terminal width.
//! - `libc`: `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`, the CPU time of every
//!   thread of a probe (std has no process CPU clock).
//! - `clap`, `anyhow`, `serde_json`: the CLI's edge.
#![deny(missing_docs)]

pub mod buckets;
pub mod callgrind;
pub mod cloudevents;
pub mod cpu;
pub mod drive;
pub mod error;
pub mod export;
pub mod heap;
pub mod listener;
pub mod meta;
pub mod passes;
pub mod probe;
pub mod rates;
pub mod reference;
pub mod repeat;
pub mod report;
pub mod runner;
pub mod shard;
/// buslab's one statistics module, shared with the reports (medians,
/// intervals, ratios): [`buslab_reports::analysis::stats`].
pub use buslab_reports::analysis::stats;
pub mod store;
pub mod timing;
pub mod work;

/// The name of the callgrind dump that holds the measured region.
pub const CALLGRIND_TRIGGER: &std::ffi::CStr = c"buslab-measure";
