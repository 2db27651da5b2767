//! Peers: the crates an engineer would otherwise pick, wrapped as adapters
//! behind the same [`EventBus`](crate::EventBus) contract and measured in the
//! same harness as buslab's own strategies.
//!
//! Each adapter is one file, whose module doc says what the crate is, the
//! wrapping the contract needed (stated plainly: every lock, counter or
//! thread that is ours rather than the crate's) and the usual `# Guarantees`.
//! Each declares `Capabilities { peer: true, .. }`, so that reports can tell
//! peers from strategies. They are re-exported at the crate root under their
//! stable names (`buslab_impls::disruptor`, ...), like every other bus.
//!
//! What the adapters do *not* do: batch behind the caller's back (one
//! `publish` is one hand-off to the crate), drop silently, or leave threads
//! running after `shutdown`/`Drop` — except threads the crate itself spawns
//! and does not let us join, which the module doc names.

pub mod bus;
pub mod crossbeam_channel;
pub mod disruptor;
pub mod fanout;
pub mod flume;
pub mod kanal;
pub mod rtrb;
pub mod std_mpsc;
pub mod tokio_broadcast;
