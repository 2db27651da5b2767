//! `buslab compare` end to end: a store built with [`Store::import_run`]
//! from a sample run and doctored copies of it, judged by the binary.

use buslab_harness::store::Store;
use buslab_scenarios::results::{
    Allocations, CellKey, CellResult, Estimate, Instructions, Latency, Run, RunMeta, Throughput,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn buslab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_buslab")).args(args).output().expect("buslab runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("buslab-compare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn cell(bus: &str, subscribers: usize) -> CellResult {
    let key = CellKey {
        scenario: "fanout".to_owned(),
        bus: bus.to_owned(),
        params: BTreeMap::from([("subscribers".to_owned(), subscribers.to_string())]),
    };
    let mut cell = CellResult::new(key, 1, subscribers);
    let samples: Vec<f64> = [0.995, 0.997, 0.999, 1.0, 1.001, 1.003, 1.005].iter().map(|f| f * 3.5e6).collect();
    let estimate = Estimate { median: 3.5e6, lower: samples[1], upper: samples[5], samples };
    cell.throughput = Some(Throughput {
        events_per_sec: estimate.clone(),
        deliveries_per_sec: estimate,
        events_per_trial: 100_000,
        trial_ns: vec![28_000_000; 7],
        cpu_ns_per_event: None,
        loss_rate: None,
        processes: Vec::new(),
    });
    cell.latency = [0.25, 0.5, 0.8]
        .into_iter()
        .map(|load| Latency { load, p50_ns: 240, p90_ns: 480, p99_ns: 1200, p999_ns: 2900, ..Latency::default() })
        .collect();
    cell.allocations =
        Some(Allocations { allocs_per_event: 0.0, bytes_per_event: 0.0, peak_bytes: 8192, events: 1000 });
    cell.instructions = Some(Instructions {
        ir_per_event: 412.5,
        est_cycles_per_event: 401.25,
        branch_misses_per_event: 1.75,
        events: 10_000,
        ..Instructions::default()
    });
    cell
}

fn sample_run(id: &str, started_at: &str) -> Run {
    Run {
        meta: RunMeta {
            id: id.to_owned(),
            started_at: started_at.to_owned(),
            finished_at: Some(started_at.to_owned()),
            complete: true,
            machine: "ci-box".to_owned(),
            rustc: "rustc 1.90.0".to_owned(),
            ..RunMeta::default()
        },
        cells: vec![cell("fixed_array", 4), cell("channel", 4)],
    }
}

/// A store holding the sample run `base` and, after it, `new`.
fn store_with(dir: &Path, new: &Run) -> String {
    let db = dir.join("results.sqlite");
    let mut store = Store::open(&db).expect("a new store");
    store.import_run(&sample_run("base-run", "2026-06-01T10:00:00Z")).expect("import the base");
    store.import_run(new).expect("import the new run");
    db.to_str().expect("utf-8 path").to_owned()
}

#[test]
fn ten_percent_more_instructions_fails_with_exit_status_3() {
    let dir = temp_dir("regression");
    let mut new = sample_run("new-run", "2026-06-02T10:00:00Z");
    new.cells[1].instructions.as_mut().expect("measured").ir_per_event *= 1.10;
    let db = store_with(&dir, &new);
    let md = dir.join("summary.md");

    // Defaults: the latest run against the one before it.
    let out = buslab(&["compare", "--db", &db, "--fail-on-regression", "--markdown", md.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("base base-run -> new new-run"), "{stdout}");
    assert!(stdout.contains("1 regression, 0 improvements"), "{stdout}");
    let row = stdout.lines().find(|l| l.starts_with("regression")).expect("a regression row");
    assert!(row.contains("fanout/channel/subscribers=4") && row.contains("instructions-per-event"), "{row}");
    assert!(row.contains("+10.0%"), "{row}");
    let markdown = std::fs::read_to_string(&md).expect("the Markdown summary is written");
    assert!(
        markdown.contains("| regression | `fanout/channel/subscribers=4` | instructions-per-event |"),
        "{markdown}"
    );

    // A wider threshold for the metric lets the change pass.
    let out = buslab(&["compare", "--db", &db, "--fail-on-regression", "--threshold", "instructions-per-event=12.5"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no significant changes"), "{}", text(&out));

    // Without --fail-on-regression the verdict is printed, and the status is 0.
    let out = buslab(&["compare", "--db", &db]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("instructions-per-event"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_deterministic_gate_fails_on_single_threaded_counts_only() {
    let dir = temp_dir("gate");
    let mut new = sample_run("new-run", "2026-06-02T10:00:00Z");
    // Multi-threaded under callgrind: +10% instructions and allocations from
    // zero are reported, and fail only the default gate.
    let threads = &mut new.cells[0];
    threads.instructions.as_mut().expect("measured").multithreaded = true;
    threads.instructions.as_mut().expect("measured").ir_per_event *= 1.10;
    threads.allocations.as_mut().expect("measured").allocs_per_event = 0.02;
    let db = store_with(&dir, &new);
    let out = buslab(&["compare", "--db", &db, "--fail-on-regression"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let md = dir.join("gate.md");
    let md_arg = md.to_str().expect("utf-8");
    let out =
        buslab(&["compare", "--db", &db, "--fail-on-regression", "--gate", "deterministic", "--markdown", md_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("gate `deterministic`: 0 of 2 regression(s) count"), "{}", text(&out));
    assert!(std::fs::read_to_string(&md).expect("written").contains("gate `deterministic`: 0 of 2"));

    // A single-threaded cell's +10% instructions fails the deterministic gate.
    let dir2 = temp_dir("gate-single");
    let mut single = sample_run("new-run", "2026-06-02T10:00:00Z");
    single.cells[1].instructions.as_mut().expect("measured").ir_per_event *= 1.10;
    let db = store_with(&dir2, &single);
    let out = buslab(&["compare", "--db", &db, "--fail-on-regression", "--gate", "deterministic"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = buslab(&["compare", "--db", &db, "--gate", "sometimes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn a_run_against_itself_or_a_copy_has_no_significant_change() {
    let dir = temp_dir("same");
    let mut new = sample_run("new-run", "2026-06-02T10:00:00Z");
    new.cells[0].instructions.as_mut().expect("measured").ir_per_event *= 1.005;
    let db = store_with(&dir, &new);
    for args in [&["--base", "base-run", "--new", "base"][..], &["--base", "new", "--new", "new-run"], &[]] {
        let out = buslab(&[&["compare", "--fail-on-regression", "--db", &db][..], args].concat());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("no significant changes"), "{}", text(&out));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_level_that_moved_the_wrong_way_is_listed_without_failing() {
    // Six runs: +3% instructions per event in one cell from the fifth on.
    // The latest run against the one before shows no change; the change
    // points over the history show the step, at its commit.
    let dir = temp_dir("steps");
    let db = dir.join("results.sqlite");
    let mut store = Store::open(&db).expect("a new store");
    for i in 0..6 {
        let mut run = sample_run(&format!("run-{i}"), &format!("2026-06-0{}T10:00:00Z", i + 1));
        run.meta.git_commit = Some(format!("commit{i}"));
        if i >= 4 {
            run.cells[1].instructions.as_mut().expect("measured").ir_per_event *= 1.03;
        }
        store.import_run(&run).expect("import");
    }
    let db = db.to_str().expect("utf-8 path");
    let md = dir.join("steps.md");
    let out = buslab(&["compare", "--db", db, "--fail-on-regression", "--markdown", md.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "the pairwise rule is the gate: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no significant changes"), "{stdout}");
    assert!(stdout.contains("change points over 6 run(s): 1 metric(s)"), "{stdout}");
    let line = stdout.lines().find(|l| l.contains("fanout/channel/subscribers=4")).expect("the cell is listed");
    assert!(line.contains("instructions-per-event") && line.contains("+3.00%"), "{line}");
    assert!(line.contains("at commit4 (run run-4)") && line.contains("2 run(s) at the new level"), "{line}");
    let markdown = std::fs::read_to_string(&md).expect("written");
    assert!(markdown.contains("### Change points") && markdown.contains("at commit4"), "{markdown}");
    // Judged at the fifth run, one run at the new level is not a level yet.
    let out = buslab(&["compare", "--db", db, "--new", "run-4"]);
    assert!(text(&out).contains("no cell's latest level move is a regression"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_exit_1_and_usage_errors_exit_2() {
    let dir = temp_dir("errors");
    let db = dir.join("missing.sqlite");
    let missing = db.to_str().expect("utf-8");
    let out = buslab(&["compare", "--db", missing]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no results store"), "{}", text(&out));
    assert!(!db.exists(), "compare creates no store");

    let db = store_with(&dir, &sample_run("new-run", "2026-06-02T10:00:00Z"));
    let out = buslab(&["compare", "--db", &db, "--baseline", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no run `nope`"), "{}", text(&out));
    let out = buslab(&["compare", "--db", &db, "--new", "base-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no earlier run"), "{}", text(&out));

    for bad in [&["--no-such-flag"][..], &["--threshold", "ir=5"], &["--threshold", "throughput=-1"]] {
        let out = buslab(&[&["compare", "--db", &db][..], bad].concat());
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
