//! Producers + consumer threads never exceed the cores by default: every
//! asynchronous bus, built with the configuration the harness gives it,
//! runs no more threads than the producers leave free. One test in its own
//! binary, so that no other test's threads are counted.

use buslab_harness::drive::{Pace, Rig, Window, consumer_threads};
use buslab_harness::listener::HarnessListener;
use buslab_impls::payload::SmallEvent;
use buslab_impls::{Strategy, StrategyVisitor};
use buslab_scenarios::{Origin, Scenario, spec};
use std::sync::Arc;

/// Threads that block until another thread needs them and so take no core
/// of their own, by name: the `bus` crate spawns `bus_unparking` in
/// `Bus::new`, which sleeps on a channel and only unparks readers that
/// parked (we measure peers as their crates ship them).
const BLOCKING_HELPERS: [&str; 1] = ["bus_unparking"];

/// Threads of this process now, the blocking helpers left out (Linux), or
/// `None`.
fn threads() -> Option<usize> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let name = |task: &std::fs::DirEntry| std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
    Some(tasks.flatten().filter(|t| !BLOCKING_HELPERS.contains(&name(t).trim())).count())
}

/// The threads a bus adds while it serves `scenario`'s first point: built,
/// subscribed, after a verified trial, before shutdown.
///
/// A thread takes its name from inside itself once it first runs, so a
/// blocking helper just spawned on a loaded machine is counted under its
/// parent's name until then (seen: `bus` counted 2 threads, 1 in 4 runs
/// beside parallel builds). The count is therefore read again, for up to
/// two seconds, while it exceeds the allowance (`.1`): only such a naming
/// race can bring it down, since the bus's own threads live until shutdown.
struct Extra<'a>(&'a Arc<Scenario>, usize);

impl StrategyVisitor for Extra<'_> {
    type Output = Result<Option<usize>, buslab_harness::error::CellError>;
    fn visit<S: Strategy>(self) -> Self::Output {
        let before = threads();
        let point = self.0.points()[0];
        let mut rig =
            Rig::<S::Bus<SmallEvent, HarnessListener>>::new(self.0.clone(), point, S::CAPABILITIES.lossy, &|_| None)?;
        rig.trial(2_000, Pace::Flat, Window::None)?;
        let extra = || before.zip(threads()).map(|(b, d)| d.saturating_sub(b));
        let mut during = extra();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while during.is_some_and(|d| d > self.1) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            during = extra();
        }
        rig.finish();
        Ok(during)
    }
}

#[test]
fn asynchronous_buses_run_no_more_threads_than_the_producers_leave() {
    if threads().is_none() {
        eprintln!("no /proc/self/task: thread counts cannot be read here; test skipped");
        return;
    }
    for cores in [buslab_impls::cores()] {
        for subscribers in [1, 16] {
            let text = format!("name = \"t\"\nsubscribers = {subscribers}\nevents = 2000\n");
            let scenario = Arc::new(spec::parse("t.toml", &text, Origin::File("t".into())).expect("valid"));
            let allowed = consumer_threads(&scenario, scenario.points()[0], cores);
            let planned = |b: &&buslab_impls::BusInfo| {
                buslab_harness::runner::skip_reason(b, &scenario, scenario.points()[0], cores).is_none()
            };
            for bus in buslab_impls::all().iter().filter(|b| b.capabilities.asynchronous).filter(planned) {
                let extra = buslab_impls::visit(bus.name, Extra(&scenario, allowed))
                    .expect("a listed bus")
                    .unwrap_or_else(|e| panic!("{}: {e}", bus.name))
                    .expect("counted");
                assert!(
                    extra <= allowed,
                    "{} runs {extra} threads of its own with 1 producer and {subscribers} subscribers on {cores} \
                     cores; at most {allowed} fit beside the producer",
                    bus.name
                );
            }
        }
    }
}
