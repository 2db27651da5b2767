//! `buslab run --shard`, merging shards with `buslab import`, and `buslab
//! noise`, end to end through the binary: tiny cells, one pass, so that
//! the whole file runs in a few seconds.

use buslab_harness::store::Store;
use buslab_scenarios::results::{CellKey, CellResult, Instructions, Run, RunMeta, Shards};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn buslab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_buslab")).args(args).output().expect("buslab runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("buslab-shards-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The cell names `buslab run --plan` prints.
fn planned(args: &[&str]) -> Vec<String> {
    let out = buslab(&[&["run", "--plan"][..], args].concat());
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').next().expect("a name").to_owned())
        .collect()
}

#[test]
fn shard_plans_partition_the_default_matrix() {
    let whole = planned(&[]);
    assert!(whole.len() > 20, "{whole:?}");
    for count in [2, 3, 5] {
        let mut seen = Vec::new();
        for index in 1..=count {
            seen.extend(planned(&["--shard", &format!("{index}/{count}")]));
        }
        assert_eq!(seen.len(), whole.len(), "{count} shards: each cell once");
        assert_eq!(seen.iter().collect::<BTreeSet<_>>(), whole.iter().collect::<BTreeSet<_>>());
    }
    for bad in ["0/2", "3/2", "2", "x/y"] {
        let out = buslab(&["run", "--plan", "--shard", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
    }
    let out = buslab(&["run", "--plan", "--run-id", "has space"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = buslab(&["run", "--shard", "1/2", "--db", "/nonexistent/never-created.sqlite"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("needs --run-id"), "{}", text(&out));
}

#[test]
fn two_shards_run_apart_and_merge_into_one_run() {
    let dir = temp_dir("merge");
    let scenario = dir.join("tiny.toml");
    std::fs::write(&scenario, "name = \"tiny\"\nsubscribers = [1, 2]\nevents = 200\n").expect("write");
    let common = ["--quick", "--pass", "throughput", "--bus", "fixed_array", "--scenario", "tiny"];
    let (a, b) = (dir.join("a.sqlite"), dir.join("b.sqlite"));
    for (shard, db) in [("1/2", &a), ("2/2", &b)] {
        let out = buslab(
            &[
                &["run", "--shard", shard, "--run-id", "nightly-test", "--scenario-file", path(&scenario)][..],
                &common,
                &["--db", path(db)],
            ]
            .concat(),
        );
        assert!(out.status.success(), "{shard}: {}", text(&out));
    }
    let shard_two = buslab(&["export", "--format", "json", "--db", path(&b)]);
    assert!(shard_two.status.success(), "{}", text(&shard_two));
    let json = dir.join("shard-2.json");
    std::fs::write(&json, &shard_two.stdout).expect("write");

    let out = buslab(&["import", path(&json), "--db", path(&a)]);
    assert!(out.status.success(), "{}", text(&out));
    // Whole points go to a shard: each holds one point's floor and bus.
    assert!(text(&out).contains("merged 2 cells") && text(&out).contains("all 2 shards now held"), "{}", text(&out));
    let store = Store::open(&a).expect("store");
    let runs = store.list_runs().expect("list");
    assert_eq!(runs.len(), 1, "one run");
    let run = store.load_run("nightly-test").expect("the shared id");
    let mut names: Vec<String> = run.cells.iter().map(|c| c.key.name()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "tiny/fixed_array/subscribers=1",
            "tiny/fixed_array/subscribers=2",
            "tiny/null/subscribers=1",
            "tiny/null/subscribers=2"
        ]
    );
    assert!(
        run.cells.iter().filter(|c| c.key.bus == "fixed_array").all(|c| c.floor.is_some_and(|f| f.in_line)),
        "each shard measured its point's floor beside the bus"
    );
    assert_eq!(run.meta.shards, Some(Shards { count: 2, held: vec![1, 2] }));
    assert!(run.meta.complete);
    assert!(run.cells.iter().all(|c| c.machine.is_none()), "both shards ran on this machine");
    drop(store);

    // Again: nothing changes. Doctored metadata: refused, exit 1.
    let out = buslab(&["import", path(&json), "--db", path(&a)]);
    assert!(out.status.success() && text(&out).contains("already in"), "{}", text(&out));
    let mut doc: serde_json::Value = serde_json::from_slice(&shard_two.stdout).expect("JSON");
    doc["meta"]["quick"] = serde_json::Value::Bool(false);
    doc["meta"]["shards"]["held"] = serde_json::json!([2]);
    doc["cells"][0]["dropped"] = serde_json::json!(99);
    let bad = dir.join("conflicting.json");
    std::fs::write(&bad, doc.to_string()).expect("write");
    let out = buslab(&["import", path(&bad), "--db", path(&a)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--quick flag differs") && text(&out).contains("nothing was imported"),
        "{}",
        text(&out)
    );
    let runs = buslab(&["runs", "--db", path(&a)]);
    assert!(String::from_utf8_lossy(&runs.stdout).contains("nightly-test"), "{}", text(&runs));

    // A run id already in the store is refused by `run`.
    let out = buslab(
        &[&["run", "--run-id", "nightly-test", "--scenario-file", path(&scenario)][..], &common, &["--db", path(&a)]]
            .concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("already stored"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

fn aa_run(id: &str, minute: u32, ir: f64) -> Run {
    let key = CellKey { scenario: "spsc".to_owned(), bus: "ring".to_owned(), params: Default::default() };
    let mut cell = CellResult::new(key, 1, 1);
    cell.instructions = Some(Instructions { ir_per_event: ir, est_cycles_per_event: ir, ..Instructions::default() });
    Run {
        meta: RunMeta {
            id: id.to_owned(),
            started_at: format!("2026-06-01T10:{minute:02}:00Z"),
            complete: true,
            git_commit: Some("c0ffee".to_owned()),
            machine: "box".to_owned(),
            label: Some("noise:g1".to_owned()),
            ..RunMeta::default()
        },
        cells: vec![cell],
    }
}

#[test]
fn noise_analyses_a_stored_group_and_is_never_a_default_baseline() {
    let dir = temp_dir("noise");
    let db = dir.join("r.sqlite");
    {
        let mut store = Store::open(&db).expect("store");
        for (i, ir) in [400.0, 400.0, 400.0].into_iter().enumerate() {
            store.import_run(&aa_run(&format!("aa-{i}"), i as u32, ir)).expect("import");
        }
    }
    let (md, json) = (dir.join("noise.md"), dir.join("noise.json"));
    let out =
        buslab(&["noise", "--analyze", "latest", "--db", path(&db), "--markdown", path(&md), "--json", path(&json)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("noise group g1") && stdout.contains("3 runs at commit c0ffee"), "{stdout}");
    assert!(stdout.contains("0 with a regression (0 that the deterministic gate admits), 0 with any"), "{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON")).expect("parses");
    assert_eq!(doc["pairs"], 6);
    assert_eq!(doc["metrics"][0]["metric"], "instructions-per-event");
    assert!(std::fs::read_to_string(&md).expect("Markdown").contains("## buslab noise calibration"));

    // A doctored repetition is flagged: false positives.
    Store::open(&db).expect("store").import_run(&aa_run("aa-3", 3, 440.0)).expect("import");
    let out = buslab(&["noise", "--analyze", "g1", "--db", path(&db)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("12 ordered pairs compared with no history: 3 with a regression (3 that"),
        "{}",
        text(&out)
    );

    // Only noise runs stored: `compare` has no ordinary run to default to.
    let out = buslab(&["compare", "--db", path(&db)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("holds no run"), "{}", text(&out));
    // Named, they compare (and the note says what they are).
    let out = buslab(&["compare", "--db", path(&db), "--base", "aa-0", "--new", "aa-3", "--fail-on-regression"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("A/A run of noise group `g1`"), "{}", text(&out));

    for (args, code) in [
        (&["noise", "--analyze", "nope"][..], 1),
        (&["noise", "--repeat", "1"][..], 2),
        (&["noise", "--threshold", "ir=5"][..], 2),
    ] {
        let out = buslab(&[args, &["--db", path(&db)]].concat());
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn noise_runs_a_small_group_end_to_end() {
    let dir = temp_dir("noise-run");
    let scenario = dir.join("tiny.toml");
    std::fs::write(&scenario, "name = \"tiny\"\nsubscribers = 1\nevents = 200\n").expect("write");
    let db = dir.join("r.sqlite");
    let out = buslab(&[
        "noise",
        "--repeat",
        "2",
        "--quick",
        "--pass",
        "allocations,instructions",
        "--bus",
        "fixed_array",
        "--scenario",
        "tiny",
        "--scenario-file",
        path(&scenario),
        "--db",
        path(&db),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("noise run 2/2") && stdout.contains("2 runs at"), "{stdout}");
    assert!(stdout.contains("allocs-per-event"), "{stdout}");
    let store = Store::open(&db).expect("store");
    let runs = store.list_runs().expect("list");
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.meta.noise_group().is_some() && r.meta.label == runs[0].meta.label));
    assert_eq!(store.latest_run_id().expect("latest"), None, "noise runs are not ordinary runs");
    let _ = std::fs::remove_dir_all(&dir);
}
