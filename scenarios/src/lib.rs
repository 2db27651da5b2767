//! Workloads as data: the scenario catalog (one TOML file per workload) and
//! the generators that turn a scenario into producers, listeners and events.
//!
//! Placeholder: the scenario harness issue fills this crate. It sits between
//! the buses (`buslab-impls`) and the harness that measures them.
#![deny(missing_docs)]
