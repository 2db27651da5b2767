//! The HTML report, end to end from a store: the site is well-formed,
//! self-contained (every referenced file exists, no network address) and
//! escapes what users wrote; and a year of nightly runs renders (timed by
//! the ignored `a_year_of_nightly_runs` test, run in release by CI).

use buslab_harness::report;
use buslab_harness::store::Store;
use buslab_scenarios::results::{
    Allocations, BusMeta, CellKey, CellResult, CellStatus, CloudEvents, Corpus, Estimate, Instructions,
    InvalidDocument, Latency, Profile, Run, RunMeta, Throughput,
};
use hdrhistogram::serialization::Serializer;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A small deterministic generator (xorshift64*), so fixtures are the same
/// on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `x` with ±`spread` relative noise.
    fn around(&mut self, x: f64, spread: f64) -> f64 {
        x * (1.0 + spread * (2.0 * self.next() - 1.0))
    }
}

/// A latency histogram with a long tail, V2-serialised and base64-encoded
/// as the harness stores it.
fn histogram(base_ns: u64, rng: &mut Rng) -> (String, [u64; 6]) {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    for _ in 0..2_000 {
        let tail = rng.next().powi(12) * 400.0;
        h.record((base_ns as f64 * (0.5 + rng.next() + tail)) as u64).expect("in range");
    }
    let mut bytes = Vec::new();
    hdrhistogram::serialization::V2Serializer::new().serialize(&h, &mut bytes).expect("serialise");
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let q = |p: f64| h.value_at_quantile(p);
    (text, [q(0.5), q(0.9), q(0.99), q(0.999), q(0.9999), h.max()])
}

/// Folded stacks shaped like a pprof profile of a bus.
fn folded(bus: &str, rng: &mut Rng) -> String {
    let mut out = String::new();
    for (i, frame) in
        ["publish", "deliver", "listener::on_event", "checksum", "park", "wake", "clone_from"].iter().enumerate()
    {
        for depth in 0..6 {
            let count = (rng.next() * 400.0) as u64 + 1;
            out.push_str(&format!("buslab;main;drive::trial;{bus}::{frame};inner{depth};leaf{i}_{depth} {count}\n"));
        }
    }
    out
}

/// Every cell key of the real catalog × every bus.
fn catalog_keys() -> Vec<CellKey> {
    let scenarios = buslab_scenarios::catalog().expect("the catalog parses");
    let buses = buslab_impls::all();
    buslab_harness::runner::plan(&scenarios, &buses, &buslab_harness::reference::all())
        .into_iter()
        .map(|c| c.key)
        .collect()
}

/// A run over `keys` on day `day`, with noise and a step change in one cell
/// halfway through. `full` keeps profiles and histograms.
fn synthetic_run(day: usize, keys: &[CellKey], full: bool) -> Run {
    let mut rng = Rng(0x5EED_0000 + day as u64 * 7919);
    let buses = buslab_harness::meta::buses();
    let mut cells = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let mut cell = CellResult::new(key.clone(), 1, 4);
        if i % 29 == 7 {
            cell.status = CellStatus::Skipped("needs a multi-producer bus".to_owned());
            cells.push(cell);
            continue;
        }
        let base = 1.0e6 * (1.0 + (i % 11) as f64);
        let step = if i == 3 && day >= 180 { 1.15 } else { 1.0 };
        let samples: Vec<f64> = (0..7).map(|_| rng.around(base, 0.03)).collect();
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        cell.throughput = Some(Throughput {
            events_per_sec: Estimate { median: sorted[3], lower: sorted[1], upper: sorted[5], samples },
            deliveries_per_sec: Estimate {
                median: sorted[3] * 4.0,
                lower: sorted[1] * 4.0,
                upper: sorted[5] * 4.0,
                samples: vec![],
            },
            events_per_trial: 1_000_000,
            trial_ns: (0..7).map(|_| rng.around(2.5e8, 0.03) as u64).collect(),
            cpu_ns_per_event: None,
            processes: Vec::new(),
            loss_rate: None,
        });
        for load in [0.25, 0.5, 0.8] {
            let (text, q) = histogram((200.0 * (1.0 + load)) as u64 + i as u64, &mut rng);
            cell.latency.push(Latency {
                load,
                offered_per_sec: base * load,
                p50_ns: q[0],
                p90_ns: q[1],
                p99_ns: q[2],
                p999_ns: q[3],
                p9999_ns: q[4],
                max_ns: q[5],
                count: 2_000,
                histogram: if full { text } else { String::new() },
                spike_p99_ns: None,
                drain_ns: None,
                ..Latency::default()
            });
        }
        cell.allocations = Some(Allocations {
            allocs_per_event: if i % 3 == 0 { 0.0 } else { (i % 5) as f64 },
            bytes_per_event: if i % 3 == 0 { 0.0 } else { 64.0 * (i % 5) as f64 },
            peak_bytes: 1 << 20,
            events: 100_000,
        });
        let ir = 300.0 * (1.0 + (i % 7) as f64) * step;
        cell.instructions = Some(Instructions {
            ir_per_event: ir,
            l1_hits_per_event: ir * 0.9,
            ll_hits_per_event: 2.0,
            ram_hits_per_event: 0.5,
            est_cycles_per_event: ir * 0.9 + 10.0 + 17.5,
            branch_misses_per_event: 1.5,
            events: 10_000,
            multithreaded: i % 2 == 0,
        });
        if key.scenario.starts_with("cloudevents") {
            let per_sec = |x: f64| Estimate { median: x, lower: x * 0.97, upper: x * 1.02, samples: vec![x; 3] };
            cell.cloudevents = Some(CloudEvents {
                decode_events_per_sec: per_sec(base * 0.3),
                decode_bytes_per_sec: per_sec(base * 150.0),
                route_events_per_sec: per_sec(base * 0.2),
                route_bytes_per_sec: per_sec(base * 100.0),
                errors: [("missing-id".to_owned(), 3)].into(),
                corpus: Corpus {
                    name: "generated".to_owned(),
                    source: "generated, seed 42".to_owned(),
                    documents: 500,
                    invalid: 3,
                    total_bytes: 250_000,
                    min_bytes: 200,
                    p50_bytes: 480,
                    p90_bytes: 1_900,
                    max_bytes: 4_000,
                    invalid_examples: vec![InvalidDocument {
                        origin: "events.ndjson:17".to_owned(),
                        reason: "missing-id".to_owned(),
                    }],
                },
            });
        }
        if full {
            cell.profile = Some(Profile { samples: 4_000, frequency_hz: 999, folded: folded(&key.bus, &mut rng) });
        }
        cells.push(cell);
    }
    Run {
        meta: RunMeta {
            id: format!("2026{:04}T020000Z-{day:04x}", 101 + day),
            started_at: format!("2026-01-01T02:00:00Z+{day}d"),
            finished_at: None,
            complete: true,
            machine: "nightly-runner".to_owned(),
            git_commit: Some(format!("{:040x}", day as u128 * 0x9E37_79B9_7F4A_7C15)),
            git_dirty: Some(false),
            rustc: "rustc 1.95.0".to_owned(),
            cpu: "Test CPU".to_owned(),
            cores: 2,
            buses,
            scenario_descriptions: buslab_scenarios::catalog()
                .expect("catalog")
                .into_iter()
                .map(|s| (s.name, s.description))
                .collect(),
            ..RunMeta::default()
        },
        cells,
    }
}

/// Sortable start times: day `d` of 2026 as RFC 3339.
fn fix_times(run: &mut Run, day: usize) {
    let month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let (mut month, mut d) = (0, day);
    while d >= month_days[month % 12] {
        d -= month_days[month % 12];
        month += 1;
    }
    run.meta.started_at = format!("{}-{:02}-{:02}T02:00:00Z", 2026 + month / 12, month % 12 + 1, d + 1);
    run.meta.finished_at = Some(run.meta.started_at.replace("02:00:00", "02:40:00"));
}

/// Everything wrong with the site in `dir`: pages that are not well-formed,
/// links to files that do not exist, network addresses.
fn problems(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut pages = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "html" || e == "svg" || e == "css") {
                pages.push(path);
            }
        }
    }
    assert!(!pages.is_empty(), "no pages in {}", dir.display());
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("utf-8 page");
        for url in ["http://", "https://", "//fonts.", "url(http"] {
            for (at, _) in text.match_indices(url) {
                let around = &text[at.saturating_sub(10)..(at + 40).min(text.len())];
                // XML namespaces (`xmlns="…"`, `xmlns:fg="…"`) are names,
                // not downloads.
                let attribute = text[..at].rsplit(char::is_whitespace).next().unwrap_or_default();
                let namespace = attribute.starts_with("xmlns") && attribute.ends_with("=\"");
                if !namespace {
                    problems.push(format!("{}: network address near `{around}`", page.display()));
                }
            }
        }
        if page.extension().is_some_and(|e| e == "css") {
            continue;
        }
        let doc = match roxmltree::Document::parse_with_options(
            &text,
            roxmltree::ParsingOptions { allow_dtd: true, ..roxmltree::ParsingOptions::default() },
        ) {
            Ok(doc) => doc,
            Err(e) => {
                problems.push(format!("{}: not well-formed: {e}", page.display()));
                continue;
            }
        };
        for node in doc.descendants().filter(|n| n.is_element()) {
            for attr in ["href", "src", "data"] {
                let Some(target) = node.attribute(attr) else { continue };
                if target.starts_with('#') || target.starts_with("javascript:") || target.is_empty() {
                    continue;
                }
                let file = target.split('#').next().expect("split yields one item");
                let resolved = page.parent().expect("a parent").join(file);
                if !resolved.exists() {
                    problems.push(format!("{}: {attr}=`{target}` does not exist", page.display()));
                }
            }
            if node.tag_name().name() == "script" && node.attribute("src").is_some() {
                problems.push(format!("{}: external script", page.display()));
            }
        }
    }
    problems
}

fn store_with(dir: &Path, runs: &[Run]) -> (Store, PathBuf) {
    let db = dir.join("results.sqlite");
    let mut store = Store::open(&db).expect("a new store");
    for run in runs {
        store.import_run(run).expect("import");
    }
    (store, db)
}

#[test]
fn the_site_is_well_formed_self_contained_and_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Vec<CellKey> = catalog_keys()
        .into_iter()
        .filter(|k| k.scenario == "fanout" || k.scenario == "burst" || k.scenario == "cloudevents")
        .collect();
    let mut runs: Vec<Run> = (0..3).map(|day| synthetic_run(day, &keys, true)).collect();
    for (day, run) in runs.iter_mut().enumerate() {
        fix_times(run, day);
        // A user's scenario file may name things anything.
        let mut evil = run.cells[0].clone();
        evil.key.scenario = "<script>alert(1)</script>".to_owned();
        run.cells.push(evil);
        let mut failed = run.cells[1].clone();
        failed.key.scenario = "lossy & <b>bold</b>".to_owned();
        failed.status = CellStatus::Failed("delivered 99 of 100 \"events\" <lost>".to_owned());
        run.cells.push(failed);
        run.meta
            .scenario_descriptions
            .insert("<script>alert(1)</script>".to_owned(), "<img src=x onerror=alert(2)>".to_owned());
        run.meta.buses.push(BusMeta { name: "<i>peer</i>".to_owned(), peer: true, ..BusMeta::default() });
    }
    // Two A/A runs of `buslab noise`: the compare page shows their calibration.
    let mut aa: Vec<Run> = (10..12).map(|day| synthetic_run(day, &keys, false)).collect();
    for (i, run) in aa.iter_mut().enumerate() {
        fix_times(run, 1);
        run.meta.started_at = run.meta.started_at.replace("02:00", &format!("03:0{i}"));
        run.meta.id = format!("aa-{i}");
        run.meta.label = Some("noise:test".to_owned());
    }
    let (store, _) = store_with(dir.path(), &[runs.clone(), aa].concat());
    let out = dir.path().join("report");
    let rendered = report::render(&store, &runs[2].meta.id, &out).expect("rendered");
    assert_eq!(rendered.index, out.join("index.html"));
    let problems = problems(&out);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let mut all = String::new();
    for page in ["index.html", "guide.html", "compare.html", "trends.html"] {
        all.push_str(&std::fs::read_to_string(out.join(page)).expect("page"));
    }
    assert!(!all.contains("<script>alert"), "user text must be escaped");
    assert!(!all.contains("<img src=x"), "user text must be escaped");
    assert!(all.contains("&lt;script&gt;alert(1)&lt;"), "the escaped name is shown");
    let compare = std::fs::read_to_string(out.join("compare.html")).expect("compare page");
    assert!(compare.contains("2 A/A runs of one commit"), "the noise calibration is shown");
    // The index has the verdict matrix and the failed cell with its reason.
    let index = std::fs::read_to_string(out.join("index.html")).expect("index");
    assert!(index.contains("Verdict matrix") && index.contains("delivered 99 of 100"), "index content");
    // The first screen decides: recommendations and the heat map come before the run header.
    let first = |needle: &str| index.find(needle).unwrap_or_else(|| panic!("{needle} missing from the index"));
    assert!(first("id=\"recommended\"") < first("class=\"heat\"") && first("class=\"heat\"") < first("<h2>Run</h2>"));
    assert!(index.contains("CloudEvents: decode and route") && index.contains("missing-id"), "the CloudEvents section");
    assert!(index.contains("3 (every decoder variant)"), "agreeing decoders' counts are given once");
    assert!(
        index.contains("events.ndjson:17") && index.contains("… and 2 more"),
        "the invalid documents are named, and the rest counted"
    );
    let guide = std::fs::read_to_string(out.join("guide.html")).expect("guide");
    assert!(
        guide.contains("What each choice is worth") && guide.contains("(borrowed vs owned)"),
        "the guide weighs the CloudEvents choices"
    );
    assert!(guide.contains("id=\"constraints\"") && guide.contains("data-masks=\"0"), "the decision form");
    // Every cell has a page and a trend page; profiled cells a flame graph.
    let cells = std::fs::read_dir(out.join("cells")).expect("cells").count();
    assert!(cells >= runs[2].cells.len(), "{cells} files for {} cells", runs[2].cells.len());
    let trends = std::fs::read_dir(out.join("trends")).expect("trends").count();
    assert_eq!(trends, runs[2].cells.len());
    // Rendering again replaces the site; a foreign directory is refused.
    report::render(&store, &runs[2].meta.id, &out).expect("re-rendered");
    std::fs::write(dir.path().join("mine.txt"), "keep").expect("write");
    assert!(report::render(&store, &runs[2].meta.id, dir.path()).is_err());
    assert_eq!(std::fs::read_to_string(dir.path().join("mine.txt")).expect("kept"), "keep");
}

#[test]
fn a_level_move_is_shown_on_its_trend_page() {
    // Ten nightly runs around day 180, where cell 3's instructions per
    // event rise by 15%.
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Vec<CellKey> = catalog_keys().into_iter().take(5).collect();
    let runs: Vec<Run> = (175..185)
        .map(|day| {
            let mut run = synthetic_run(day, &keys, false);
            fix_times(&mut run, day);
            run
        })
        .collect();
    let (store, _) = store_with(dir.path(), &runs);
    let out = dir.path().join("report");
    report::render(&store, &runs[9].meta.id, &out).expect("rendered");
    let problems = problems(&out);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let page = |i: usize| {
        std::fs::read_to_string(
            out.join("trends").join(format!("{}.html", buslab_reports::render::site::slug(&keys[i].name()))),
        )
        .expect("trend page")
    };
    let trend = page(3);
    let section = trend.split("<h2>instructions-per-event</h2>").nth(1).expect("the instructions trend");
    let section = section.split("<h2>").next().expect("one section");
    assert!(section.contains("Where the level moved"), "{section}");
    assert!(section.contains("badge regression\">worse</span> +15.0% at"), "{section}");
    assert!(section.contains(&runs[5].meta.id), "the run of day 180 is named: {section}");
    assert!(section.contains("level moved: worse"), "the chart draws the step: {section}");
    // The overview marks the metrics whose level is worse: only cell 3's
    // instructions and estimated cycles (computed from them) moved.
    let overview = std::fs::read_to_string(out.join("trends.html")).expect("trends page");
    assert_eq!(overview.matches(">level worse</span>").count(), 3, "the legend and cell 3's two counts");
    // A cell whose level never moved says so.
    let other = page(4);
    let section = other.split("<h2>instructions-per-event</h2>").nth(1).expect("the instructions trend");
    assert!(section.split("<h2>").next().expect("one section").contains("No change point"), "{other}");
}

/// A year of nightly runs over the whole catalog and every bus: renders and
/// prints how long it took (the bar is 5 s). Run it in release:
/// `cargo test --release -p buslab-harness --test report -- --ignored --nocapture`.
#[test]
#[ignore = "builds a 365-run store; run in release"]
fn a_year_of_nightly_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = catalog_keys();
    let started = Instant::now();
    let db = dir.path().join("results.sqlite");
    let mut store = Store::open(&db).expect("a new store");
    let days = 365;
    for day in 0..days {
        let mut run = synthetic_run(day, &keys, day == days - 1 || day == days - 2);
        fix_times(&mut run, day);
        store.import_run(&run).expect("import");
    }
    let built = started.elapsed();
    let size = std::fs::metadata(&db).expect("db").len();
    let latest = store.latest_run_id().expect("query").expect("a run");
    let out = dir.path().join("report");
    // Where the time goes (each step is repeated inside `render`).
    let phase = Instant::now();
    let history = store.load_history(&latest, report::HISTORY_RUNS).expect("history");
    let load = phase.elapsed();
    let phase = Instant::now();
    let names: Vec<String> = history.last().expect("a run").cells.iter().map(|c| c.key.name()).collect();
    let trends = buslab_reports::analysis::trends::trends(&history, &names, &Default::default());
    let analysis = phase.elapsed();
    println!(
        "loading the light history: {:.2} s; trends over it: {:.2} s ({} cells)",
        load.as_secs_f64(),
        analysis.as_secs_f64(),
        trends.len()
    );
    let started = Instant::now();
    let rendered = report::render(&store, &latest, &out).expect("rendered");
    let elapsed = started.elapsed();
    println!(
        "year-long store: {days} runs x {} cells, {:.1} MB, built in {:.1} s; report: {} files in {:.2} s (render() says {:.2} s)",
        keys.len(),
        size as f64 / 1e6,
        built.as_secs_f64(),
        rendered.files,
        elapsed.as_secs_f64(),
        rendered.elapsed.as_secs_f64()
    );
    let problems = problems(&out);
    assert!(problems.is_empty(), "{}", problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n"));
    // The step change of cell 3 on day 180 is marked on its trend page.
    let page = out.join("trends").join(format!("{}.html", buslab_reports::render::site::slug(&keys[3].name())));
    let trend = std::fs::read_to_string(page).expect("trend page");
    assert!(trend.contains("<span class=\"badge regression\">regression</span>"), "the step is marked");
    assert!(trend.contains("Where the level moved"), "the change point is listed");
}

/// The first Chromium on the path (or `BUSLAB_CHROMIUM`), if any.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BUSLAB_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Runs headless Chromium with `args` on `url` (a minute at most) and
/// returns what it printed (into a file: a pipe would fill and stall it).
fn headless(chromium: &Path, args: &[String], url: &str) -> String {
    let printed = tempfile::NamedTempFile::new().expect("a file for chromium's output");
    let mut child = std::process::Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .args(args)
        .arg(url)
        .stdout(printed.reopen().expect("the output file"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting chromium");
    let started = Instant::now();
    while child.try_wait().expect("waiting for chromium").is_none() {
        if started.elapsed().as_secs() >= 60 {
            let _ = child.kill();
            panic!("chromium took over a minute on {url}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::read_to_string(printed.path()).expect("chromium's output")
}

/// The width and height of a PNG, from its IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    (word(16), word(20))
}

/// The report in a real browser: a store with three runs renders, and
/// headless Chromium draws the index, the guide, a scenario and a cell page
/// at desktop and phone widths, and runs the guide's script. The
/// screenshots are kept under `target/tmp/screenshots/` to be looked at.
/// Skipped, saying so, where no Chromium is installed (CI installs it);
/// `BUSLAB_SCREENSHOT_DB=path` renders the latest run of that store instead
/// (a real `buslab run --quick`).
#[test]
fn screenshots_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "skipped: no Chromium found (chromium, chromium-browser or google-chrome on PATH, or BUSLAB_CHROMIUM)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, id) = match std::env::var_os("BUSLAB_SCREENSHOT_DB") {
        Some(db) => {
            let store = Store::open(Path::new(&db)).expect("the store");
            let id = store.latest_run_id().expect("query").expect("a run in the store");
            (store, id)
        }
        None => {
            let keys = catalog_keys();
            let runs: Vec<Run> = (0..3)
                .map(|day| {
                    let mut run = synthetic_run(day, &keys, day == 2);
                    fix_times(&mut run, day);
                    run
                })
                .collect();
            let id = runs[2].meta.id.clone();
            (store_with(dir.path(), &runs).0, id)
        }
    };
    let out = dir.path().join("report");
    report::render(&store, &id, &out).expect("rendered");
    let first_page = |sub: &str| {
        let mut pages: Vec<PathBuf> = std::fs::read_dir(out.join(sub))
            .expect("pages")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "html"))
            .collect();
        pages.sort();
        pages.into_iter().next().expect("a page")
    };
    let pages = [
        ("index", out.join("index.html")),
        ("guide", out.join("guide.html")),
        ("scenario", first_page("scenarios")),
        ("cell", first_page("cells")),
    ];
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    for (name, page) in &pages {
        for (device, width, height) in [("desktop", 1280, 1100), ("phone", 390, 1600)] {
            let png = shots.join(format!("{name}-{device}.png"));
            let _ = std::fs::remove_file(&png);
            let url = format!("file://{}", page.display());
            headless(
                &chromium,
                &[format!("--window-size={width},{height}"), format!("--screenshot={}", png.display())],
                &url,
            );
            let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot of {url}: {e}"));
            assert_eq!(png_size(&bytes), (width, height), "{}", png.display());
            // A blank page compresses to a few kB; a drawn one does not.
            assert!(bytes.len() > 20_000, "{} looks blank ({} bytes)", png.display(), bytes.len());
        }
    }
    // The guide's script runs: answers in the address select another variant.
    let visible = |hash: &str| {
        let url = format!("file://{}{hash}", out.join("guide.html").display());
        let dom = headless(&chromium, &["--dump-dom".to_owned()], &url);
        dom.split("<div class=\"variant\" data-masks=\"")
            .skip(1)
            .filter(|v| !v.split('>').next().unwrap_or_default().contains("hidden"))
            .map(|v| v.split('"').next().unwrap_or_default().to_owned())
            .collect::<Vec<String>>()
    };
    let default = visible("");
    assert!(!default.is_empty() && default.iter().all(|m| m.split(' ').any(|m| m == "0")), "{default:?}");
    let inline = visible("#decide:inline");
    assert!(!inline.is_empty() && inline.iter().all(|m| m.split(' ').any(|m| m == "1")), "{inline:?}");
    eprintln!("screenshots in {}", shots.display());
}
