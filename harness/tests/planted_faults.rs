//! Planted faults: reference buses that are `null` with one fault each
//! (`harness/src/reference.rs`), run through the real probe (a `buslab
//! probe` child process, under callgrind for the instruction pass), to show
//! that the harness catches what it claims to catch — and, beside each, the
//! plain `null` bus passing the same check.

use buslab_harness::probe::{Budget, Pass};
use buslab_harness::reference;
use buslab_harness::runner::{PlannedCell, ProbeRunner};
use buslab_harness::store::Store;
use buslab_impls::{BusInfo, Guarantees};
use buslab_scenarios::results::{CellKey, CellResult, CellStatus, Run, RunMeta};
use buslab_scenarios::{Origin, Scenario};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("buslab-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn scenario(text: &str) -> Scenario {
    buslab_scenarios::spec::parse("t.toml", text, Origin::File("t.toml".into())).expect("a valid test scenario")
}

fn runner(passes: &[Pass], scratch: &str) -> ProbeRunner {
    ProbeRunner {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_buslab")),
        valgrind: buslab_harness::runner::find_valgrind(),
        budget: Budget::QUICK,
        chosen_trials: Default::default(),
        timeout: Duration::from_secs(300),
        passes: passes.to_vec(),
        scratch: temp_dir(scratch),
        corpus: None,
        corpus_summary: None,
        valgrind_refused: Default::default(),
        callgrind_copy: Default::default(),
        not_run: Vec::new(),
    }
}

/// The cell of reference bus `bus` in `scenario`'s first point.
fn cell(bus: &'static str, scenario: &Scenario) -> PlannedCell {
    let point = scenario.points()[0];
    PlannedCell {
        key: CellKey { scenario: scenario.name.clone(), bus: bus.to_owned(), params: Default::default() },
        scenario: Arc::new(scenario.clone()),
        bus: BusInfo {
            name: bus,
            summary: "a harness reference bus".into(),
            capabilities: reference::capabilities(bus).expect("a reference bus"),
            guarantees: Guarantees::default(),
        },
        point,
        skip: None,
    }
}

fn run_cell(runner: &ProbeRunner, bus: &'static str, scenario: &Scenario) -> CellResult {
    runner.run_cell(&cell(bus, scenario), &mut |_| {})
}

/// A million deliveries and a few more per trial: enough to reach the one
/// the faulty buses hit.
const A_MILLION_AND_MORE: &str = "name = \"faults\"\nsubscribers = 1\nevents = 1100000\n";

#[test]
fn a_delivery_lost_in_a_million_fails_its_cell() {
    let scenario = scenario(A_MILLION_AND_MORE);
    let runner = runner(&[Pass::Throughput], "drop");
    let plain = run_cell(&runner, "null", &scenario);
    assert_eq!(plain.status, CellStatus::Ok, "the plain bus passes");
    let faulty = run_cell(&runner, "drops_one", &scenario);
    let CellStatus::Failed(reason) = &faulty.status else { panic!("a lost delivery passed: {:?}", faulty.status) };
    // Counts are over the rig's life (calibration and every trial), so the
    // "of N events" total depends on the budget: check the loss itself.
    assert!(reason.contains(" events (1 lost)"), "{reason}");
    assert!(faulty.throughput.is_none(), "no figure is kept");
}

#[test]
fn a_delivery_duplicated_in_a_million_fails_its_cell() {
    let scenario = scenario(A_MILLION_AND_MORE);
    let runner = runner(&[Pass::Throughput], "duplicate");
    let plain = run_cell(&runner, "null", &scenario);
    assert_eq!(plain.status, CellStatus::Ok, "the plain bus passes");
    let faulty = run_cell(&runner, "duplicates_one", &scenario);
    let CellStatus::Failed(reason) = &faulty.status else { panic!("a duplicate passed: {:?}", faulty.status) };
    assert!(reason.contains("1 deliveries out of order or duplicated"), "{reason}");
    assert!(faulty.throughput.is_none(), "no figure is kept");
}

/// The loss again, published in batches of 64 (`publish_batch`, which the
/// reference buses run as a loop of `publish_clone`) over two topics and
/// two subscribers, with a last batch shorter than 64: the batched loop's
/// events are counted and checked like the others, and `null` passing
/// shows each prepared batch carries the topics and seqs that verification
/// expects.
#[test]
fn a_delivery_lost_in_a_million_fails_its_cell_when_published_in_batches() {
    let scenario = scenario("name = \"faults\"\nsubscribers = 2\ntopics = 2\nbatch = 64\nevents = 1100001\n");
    let runner = runner(&[Pass::Throughput], "drop-batched");
    let plain = run_cell(&runner, "null", &scenario);
    assert_eq!(plain.status, CellStatus::Ok, "the plain bus passes");
    let faulty = run_cell(&runner, "drops_one", &scenario);
    let CellStatus::Failed(reason) = &faulty.status else { panic!("a lost delivery passed: {:?}", faulty.status) };
    assert!(reason.contains(" events (1 lost)"), "{reason}");
}

/// Heavy events cycle through several payload shapes while a batch is a
/// multiple of the topics only: the copies a batch holds are counted as
/// published (shape and topic), so a correct bus passes and a lost one
/// still fails.
#[test]
fn heavy_events_in_batches_are_verified_shape_by_shape() {
    let scenario =
        scenario("name = \"faults\"\nsubscribers = 2\ntopics = 2\nbatch = 64\npayload = \"heavy\"\nevents = 1000003\n");
    let runner = runner(&[Pass::Throughput], "heavy-batched");
    let plain = run_cell(&runner, "null", &scenario);
    assert_eq!(plain.status, CellStatus::Ok, "the plain bus passes");
    let faulty = run_cell(&runner, "drops_one", &scenario);
    assert!(matches!(faulty.status, CellStatus::Failed(_)), "a lost delivery passed: {:?}", faulty.status);
}

/// Runs `buslab compare --gate deterministic --fail-on-regression` on a
/// store holding a base run and a new run of one cell each.
fn gate(dir: &std::path::Path, base: &CellResult, new: &CellResult) -> std::process::Output {
    let db = dir.join("results.sqlite");
    let _ = std::fs::remove_file(&db);
    let mut store = Store::open(&db).expect("a new store");
    for (id, at, cell) in [("base-run", "2026-06-01T10:00:00Z", base), ("new-run", "2026-06-02T10:00:00Z", new)] {
        let meta = RunMeta {
            id: id.to_owned(),
            started_at: at.to_owned(),
            finished_at: Some(at.to_owned()),
            complete: true,
            machine: "this-box".to_owned(),
            ..RunMeta::default()
        };
        store.import_run(&Run { meta, cells: vec![cell.clone()] }).expect("import");
    }
    let db = db.to_str().expect("utf-8 path");
    Command::new(env!("CARGO_BIN_EXE_buslab"))
        .args(["compare", "--db", db, "--gate", "deterministic", "--fail-on-regression"])
        .output()
        .expect("buslab runs")
}

#[test]
fn a_few_extra_instructions_per_publish_fail_the_deterministic_gate() {
    if buslab_harness::runner::find_valgrind().is_none() {
        eprintln!("skipped: valgrind is not installed (apt-get install valgrind), so no instruction counts");
        return;
    }
    let spsc = scenario("name = \"spsc\"\nsubscribers = 1\n");
    let runner = runner(&[Pass::Instructions], "extra");
    let measure = |bus: &'static str| {
        let mut cell = run_cell(&runner, bus, &spsc);
        assert_eq!(cell.status, CellStatus::Ok, "{bus}: {:?}", cell.skipped_passes);
        let ir = cell.instructions.as_ref().expect("counted");
        assert!(!ir.multithreaded, "{bus}: one producer and an in-line bus run on one thread");
        cell.key.bus = "null".into(); // the same cell, as if the code had changed
        cell
    };
    let (plain, again, extra) = (measure("null"), measure("null"), measure("extra_work"));
    let ir = |c: &CellResult| c.instructions.as_ref().expect("counted").ir_per_event;
    let dir = temp_dir("gate");
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };

    let same = gate(&dir, &plain, &again);
    assert_eq!(same.status.code(), Some(0), "null twice: {} vs {} Ir/event\n{}", ir(&plain), ir(&again), text(&same));

    let out = gate(&dir, &plain, &extra);
    assert_eq!(out.status.code(), Some(3), "{} vs {} Ir/event\n{}", ir(&plain), ir(&extra), text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("regression") && l.contains("instructions-per-event")),
        "no instructions-per-event regression row:\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Listener work is a fixed loop, not a wall-clock wait: under callgrind
/// (where time runs ~50× slower) twice the nominal work costs a fixed
/// number of extra instructions per event, the same on every run.
#[test]
fn listener_work_is_a_fixed_count_of_instructions() {
    if buslab_harness::runner::find_valgrind().is_none() {
        eprintln!("skipped: valgrind is not installed (apt-get install valgrind), so no instruction counts");
        return;
    }
    let runner = runner(&[Pass::Instructions], "work");
    let ir = |work_ns: u64| {
        let scenario = scenario(&format!("name = \"work\"\nsubscribers = 1\nlistener_work_ns = {work_ns}\n"));
        let cell = run_cell(&runner, "null", &scenario);
        assert_eq!(cell.status, CellStatus::Ok, "work {work_ns}: {:?}", cell.skipped_passes);
        cell.instructions.as_ref().expect("counted").ir_per_event
    };
    let (none, some, again, double, triple) = (ir(0), ir(200), ir(200), ir(400), ir(600));
    // A callgrind window of a single-threaded cell repeats to within a few
    // hundred instructions in all (a fraction of one per event: the window's
    // edges), while 200 iterations are thousands per event.
    assert!((some - again).abs() < 1.0, "the same work counts the same instructions: {some} vs {again}");
    // Linear in the iterations (a debug build runs many more instructions
    // per iteration than a release build, each build a fixed number).
    let per_iteration = (double - some) / 200.0;
    assert!(per_iteration >= 2.0, "{per_iteration} instructions per iteration ({some} vs {double})");
    assert!(((triple - double) - (double - some)).abs() < 1.0, "not linear: {some}, {double}, {triple}");
    assert!(some - none >= 200.0 * per_iteration, "work 200 costs {} over none, less than its loop", some - none);
}
