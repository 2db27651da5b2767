//! End to end: the `buslab` binary runs tiny cells through every pass into a
//! temporary store, and the stored rows are checked; exports and bad input
//! are exercised as a user would.

use buslab_harness::store::Store;
use buslab_scenarios::results::CellStatus;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn buslab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_buslab")).args(args).output().expect("buslab runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("buslab-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}

#[test]
fn a_tiny_run_fills_the_store_with_every_pass() {
    let dir = temp_dir("run");
    let scenario = write(&dir, "tiny.toml", "name = \"tiny\"\nsubscribers = 2\nevents = 300\n");
    let db = dir.join("results.sqlite");
    let out = buslab(&[
        "run",
        "--quick",
        "--bus",
        "fixed_array,pooled",
        "--scenario",
        "tiny",
        "--scenario-file",
        scenario.to_str().expect("utf-8 path"),
        "--db",
        db.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 ok, 0 failed, 0 skipped"), "the null floor and the two buses: {stdout}");
    // The run ends with the report's recommendations (one analysis for
    // both), then the report's path.
    let said = stdout.find("Recommended (").expect("recommendations");
    let wrote = stdout.find("\nreport: ").expect("the report's path");
    assert!(stdout.find("\nrun ").is_some_and(|run| run < said) && said < wrote, "{stdout}");
    assert!(stdout[said..wrote].contains("tiny: "), "{stdout}");

    let store = Store::open(&db).expect("the run created the store");
    let run = store.latest_run().expect("readable").expect("one run");
    assert!(run.meta.complete && run.meta.finished_at.is_some());
    assert!(run.meta.rustc.starts_with("rustc"));
    assert_eq!(run.meta.scenario_hashes.len(), 1);
    let names: Vec<&str> = run.cells.iter().map(|c| c.key.bus.as_str()).collect();
    assert_eq!(names, ["null", "fixed_array", "pooled"], "the floor opens the point");
    assert!(run.meta.buses.iter().any(|b| b.name == "null" && b.reference));
    // The floor is measured beside the buses: subtracted for the in-line
    // bus, shown beside the one with threads of its own.
    let null_ns = run.cells[0].ns_per_event().expect("the floor's throughput").0;
    let fixed = &run.cells[1];
    let floor = fixed.floor.expect("a floor at the point");
    assert!(floor.in_line && floor.ns_per_event.is_some_and(|(ns, _, _)| ns == null_ns), "{floor:?}");
    let (cost, lower, upper) = fixed.bus_cost_ns().expect("an in-line bus has a cost");
    assert!(lower <= cost && cost <= upper, "{lower} {cost} {upper}");
    assert!(run.cells[2].floor.is_some_and(|f| !f.in_line) && run.cells[2].bus_cost_ns().is_none());
    let valgrind = buslab_harness::runner::find_valgrind().is_some();
    for cell in &run.cells {
        assert_eq!(cell.status, CellStatus::Ok, "{}", cell.key.name());
        let t = cell.throughput.as_ref().expect("throughput pass");
        assert!(t.events_per_sec.median > 0.0 && t.events_per_sec.lower <= t.events_per_sec.upper);
        let rates: Vec<f64> = cell.latency.iter().map(|l| l.offered_per_sec).collect();
        let grid = &run.cells[0].latency[..run.cells[0].latency.len().min(buslab_harness::rates::Grid::QUICK.rates)];
        assert!(rates.len() >= grid.len(), "{}: {rates:?}", cell.key.name());
        assert!(
            grid.iter().zip(&rates).all(|(g, r)| g.offered_per_sec == *r),
            "{}: offered {rates:?}, not the point's shared grid",
            cell.key.name()
        );
        assert!(cell.latency.iter().all(|l| l.lateness.is_some()), "the pacer records its lateness");
        // One headline for the point (none where the machine's load kept
        // `null` or a bus from every shared rate), and at it every load is
        // a latency.
        assert_eq!(cell.headline_rate, run.cells[0].headline_rate, "{}: one headline", cell.key.name());
        if let Some(h) = cell.headline_rate {
            let at = cell.latency.iter().find(|l| l.offered_per_sec == h).expect("a load at the headline");
            assert!(at.judged() && cell.headline_latency().is_some(), "{}: {:?}", cell.key.name(), at.saturation);
        }
        let a = cell.allocations.as_ref().expect("allocation pass");
        assert!(a.allocs_per_event >= 0.0 && a.peak_bytes > 0);
        let no_profile = cell.skipped_passes.get("profile").expect("--quick leaves out the profile pass, saying so");
        assert!(cell.profile.is_none() && no_profile.contains("--quick"), "{no_profile}");
        if valgrind {
            let i = cell.instructions.as_ref().expect("instruction pass");
            assert!(i.ir_per_event > 10.0 && i.est_cycles_per_event >= i.ir_per_event, "{i:?}");
        } else {
            assert!(cell.skipped_passes.contains_key("instructions"));
        }
    }

    let bmf = buslab(&["export", "--format", "bmf", "--db", db.to_str().expect("utf-8")]);
    assert!(bmf.status.success(), "{}", text(&bmf));
    let json: serde_json::Value = serde_json::from_slice(&bmf.stdout).expect("BMF is JSON");
    let cell = &json["tiny/fixed_array"];
    assert!(cell["throughput"]["value"].as_f64().is_some_and(|v| v > 0.0), "{json}");
    assert!(cell["throughput"]["lower_value"].is_number());
    assert!(cell["allocs-per-event"]["value"].is_number());

    let runs = buslab(&["runs", "--json", "--db", db.to_str().expect("utf-8")]);
    assert!(runs.status.success(), "{}", text(&runs));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without `--trials`, a run chooses each scenario's trials per process
/// from the latest stored run that can tell, says so, and records it; with
/// `--trials` it takes that.
#[test]
fn trials_per_process_are_chosen_from_the_stored_run() {
    let dir = temp_dir("kj");
    let scenario = write(&dir, "tiny.toml", "name = \"tiny\"\nsubscribers = 2\nevents = 300\n");
    let db = dir.join("results.sqlite");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--quick", "--no-report", "--pass", "throughput", "--bus", "fixed_array"];
        args.extend(["--scenario", "tiny", "--scenario-file", scenario.to_str().expect("utf-8 path")]);
        args.extend(["--db", db.to_str().expect("utf-8 path")]);
        args.extend(extra);
        let out = buslab(&args);
        assert!(out.status.success(), "{}", text(&out));
        // The run just made: the one whose id `run` printed (runs made in
        // one second do not sort by time).
        let stdout = String::from_utf8_lossy(&out.stdout);
        let id = stdout.lines().find_map(|l| l.strip_prefix("run ")?.split(' ').next()).expect("a run id");
        let store = Store::open(&db).expect("the run created the store");
        (String::from_utf8_lossy(&out.stderr).into_owned(), store.load_run(id).expect("stored"))
    };
    let (said, first) = run(&[]);
    assert!(said.contains("trials per process: the default 2 (no stored run"), "{said}");
    assert!(first.meta.chosen_trials.is_empty());
    let (said, second) = run(&[]);
    let chosen = second.meta.chosen_trials.get("tiny").expect("chosen from the first run");
    assert_eq!(chosen.from_run, first.meta.id);
    assert!((1..=4).contains(&chosen.trials), "at most twice quick's 2: {chosen:?}");
    let line = format!(
        "trials per process chosen by measurement (Kalibera & Jones) from run {}: tiny {}",
        first.meta.id, chosen.trials
    );
    assert!(said.contains(&line), "{said}");
    for cell in &second.cells {
        let t = cell.throughput.as_ref().expect("measured");
        assert_eq!(t.processes, [chosen.trials; 3], "{}", cell.key.name());
    }
    let (said, third) = run(&["--trials", "3"]);
    assert!(!said.contains("trials per process"), "{said}");
    assert!(third.meta.chosen_trials.is_empty());
    assert_eq!(third.cells[0].throughput.as_ref().expect("measured").processes, [3; 3]);
}

#[test]
fn the_profile_pass_runs_when_a_quick_run_names_it() {
    let dir = temp_dir("profile");
    let scenario = write(&dir, "tiny.toml", "name = \"tiny\"\nsubscribers = 2\nevents = 300\n");
    let db = dir.join("results.sqlite");
    let out = buslab(&[
        "run",
        "--quick",
        "--pass",
        "profile",
        "--bus",
        "fixed_array",
        "--scenario",
        "tiny",
        "--scenario-file",
        scenario.to_str().expect("utf-8 path"),
        "--no-report",
        "--db",
        db.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let run = Store::open(&db).expect("store").latest_run().expect("readable").expect("one run");
    for cell in &run.cells {
        assert_eq!(cell.status, CellStatus::Ok, "{}", cell.key.name());
        let crashed = cell.skipped_passes.get("profile").is_some_and(|r| r.contains("crashed"));
        assert!(
            crashed || cell.profile.as_ref().is_some_and(|p| p.frequency_hz > 0),
            "{}: {:?}",
            cell.key.name(),
            cell.skipped_passes
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cloudevents_cell_decodes_routes_and_records_its_corpus() {
    let dir = temp_dir("cloudevents");
    let scenario = write(
        &dir,
        "ce.toml",
        "name = \"ce-tiny\"\nsubscribers = 4\nevents = 400\npayload = \"cloudevents\"\n[cloudevents]\ndecoders = \"sonic_rs\"\nrepresentations = [\"owned\", \"borrowed\"]\nextensions = \"struct\"\n",
    );
    let valid = r#"{"specversion":"1.0","id":"1","source":"/s","type":"com.example.a","data":{"n":[1,2]}}"#;
    let other = r#"{"specversion":"1.0","id":"2","source":"/s","type":"com.example.b","traceparent":"00-x"}"#;
    let corpus = write(
        &dir,
        "events.ndjson",
        &format!("{valid}\n{other}\n{{\"specversion\":\"1.0\",\"id\":\"3\",\"type\":\"t\"}}\nnot json\n"),
    );
    let db = dir.join("results.sqlite");
    let out = buslab(&[
        "run",
        "--quick",
        "--bus",
        "router,channel",
        "--scenario",
        "ce-tiny",
        "--scenario-file",
        scenario.to_str().expect("utf-8 path"),
        "--pass",
        "throughput,latency,allocations",
        "--corpus",
        corpus.to_str().expect("utf-8 path"),
        "--db",
        db.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("events.ndjson:4: malformed-json"), "{}", text(&out));
    let store = Store::open(&db).expect("the run created the store");
    let run = store.latest_run().expect("readable").expect("one run");
    let corpus = run.meta.corpus.as_ref().expect("the corpus is in the run metadata");
    assert_eq!((corpus.name.as_str(), corpus.documents, corpus.invalid), ("events.ndjson", 4, 2));
    // Each of the four points (two representations, two content modes: the
    // default) opens with the floor, which decodes and routes through the
    // null reference.
    let floors: Vec<_> = run.cells.iter().filter(|c| c.key.bus == "null").collect();
    assert_eq!(floors.len(), 4, "{:?}", run.cells.iter().map(|c| c.key.name()).collect::<Vec<_>>());
    let binary = run.cells.iter().filter(|c| c.key.params.get("mode").map(String::as_str) == Some("binary"));
    assert_eq!(binary.count(), 6, "the binary-mode cells name their mode, the structured ones do not");
    assert!(floors.iter().all(|c| c.status == CellStatus::Ok && c.cloudevents.is_some()), "{floors:?}");
    let buses: Vec<_> = run.cells.iter().filter(|c| c.key.bus != "null").collect();
    assert_eq!(buses.len(), 8);
    for cell in buses {
        let name = cell.key.name();
        assert_eq!(cell.key.params.get("decoder").map(String::as_str), Some("sonic_rs"), "{name}");
        if cell.key.bus == "channel" && cell.key.params.get("representation").map(String::as_str) == Some("borrowed") {
            assert!(
                matches!(&cell.status, CellStatus::Skipped(r) if r.contains("borrowed")),
                "{name}: {:?}",
                cell.status
            );
            continue;
        }
        assert_eq!(cell.status, CellStatus::Ok, "{name}");
        let ce = cell.cloudevents.as_ref().expect("the cloudevents figures");
        assert!(ce.decode_events_per_sec.median > 0.0 && ce.route_bytes_per_sec.median > 0.0, "{name}");
        assert_eq!(ce.errors.get("missing-source"), Some(&1), "{name}");
        assert_eq!(ce.errors.get("malformed-json"), Some(&1), "{name}");
        assert_eq!(cell.throughput.as_ref().map(|t| t.events_per_sec.median), Some(ce.route_events_per_sec.median));
        assert!(cell.skipped_passes.contains_key("latency"), "{name}");
        assert!(cell.allocations.is_some(), "{name}");
    }
    let bmf = buslab(&["export", "--format", "bmf", "--db", db.to_str().expect("utf-8")]);
    let json: serde_json::Value = serde_json::from_slice(&bmf.stdout).expect("BMF is JSON");
    let cell = &json["ce-tiny/router/decoder=sonic_rs/extensions=struct/representation=borrowed"];
    assert!(cell["decode-throughput"]["value"].as_f64().is_some_and(|v| v > 0.0), "{json}");

    let missing = buslab(&["run", "--quick", "--scenario", "cloudevents", "--corpus", "/nonexistent/x.ndjson"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).contains("/nonexistent/x.ndjson: cannot read"), "{}", text(&missing));
}

#[test]
fn bad_input_gets_a_clear_error_and_no_panic() {
    let dir = temp_dir("bad");
    let db = dir.join("r.sqlite");
    let db = db.to_str().expect("utf-8");

    let out = buslab(&["run", "--bus", "no_such_bus", "--db", db]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("unknown bus `no_such_bus`"), "{}", text(&out));

    let bad = write(&dir, "bad.toml", "name = \"x\"\nsubscribers = 0\n");
    let out = buslab(&["run", "--scenario-file", bad.to_str().expect("utf-8"), "--db", db]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("bad.toml:2:15: `subscribers`"), "{}", text(&out));

    let corrupt = write(&dir, "corrupt.sqlite", "this is not a database, and it must stay as it is");
    let out = buslab(&["runs", "--db", corrupt.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&corrupt).expect("still there"),
        "this is not a database, and it must stay as it is"
    );

    let json = write(&dir, "bad.json", "{ not json");
    let out = buslab(&["import", json.to_str().expect("utf-8"), "--db", db]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("bad.json"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A valgrind that cannot execute the build (as valgrind 3.19 with an
/// AVX-512 build from `-C target-cpu=native`) skips the instruction pass
/// with the reason, once for all cells, and keeps the other passes' figures:
/// the bus is not at fault.
#[cfg(unix)]
#[test]
fn a_build_valgrind_cannot_run_skips_the_instruction_pass_not_the_cell() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("sigill");
    let fake = write(
        &dir,
        "valgrind",
        "#!/bin/sh\necho 'vex amd64->IR: unhandled instruction bytes: 0x62 0xF1 0x7C 0x48' >&2\nkill -ILL $$\n",
    );
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let scenario = write(&dir, "tiny.toml", "name = \"tiny\"\nsubscribers = 2\nevents = 300\n");
    let db = dir.join("results.sqlite");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(env!("CARGO_BIN_EXE_buslab"))
        .env("PATH", path)
        .args(["run", "--quick", "--bus", "fixed_array,router", "--scenario", "tiny", "--no-report"])
        .args(["--pass", "throughput,instructions", "--scenario-file", scenario.to_str().expect("utf-8")])
        .args(["--db", db.to_str().expect("utf-8 path")])
        .output()
        .expect("buslab runs");
    assert!(out.status.success(), "{}", text(&out));
    let run = Store::open(&db).expect("store").latest_run().expect("readable").expect("one run");
    assert_eq!(run.cells.len(), 3, "the null floor, fixed_array and router");
    for cell in &run.cells {
        assert_eq!(cell.status, CellStatus::Ok, "{}", cell.key.name());
        assert!(cell.throughput.is_some() && cell.instructions.is_none());
        let reason = cell.skipped_passes.get("instructions").expect("the pass is skipped with a reason");
        assert!(reason.contains("valgrind cannot execute this build"), "{reason}");
    }
}
