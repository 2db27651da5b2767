//! `buslab`: the command-line front door of the benchmark lab.
//!
//! Errors are `anyhow` at this edge and printed with `{:#}` (the whole
//! context chain); `main` returns an [`ExitCode`]: 0 success, 1 error,
//! 2 usage error (clap), 3 when `compare --fail-on-regression` found a
//! regression, 4 when `run` finished but a cell failed its delivery checks.

use anyhow::{Context, bail};
use buslab_harness::export::{self, Format};
use buslab_harness::probe::{self, Budget, Instruments, Pass, ProbeRequest};
use buslab_harness::runner::{self, ProbeRunner};
use buslab_harness::store::{self, Store};
use buslab_harness::{meta, summary};
use buslab_scenarios::results::CellStatus;
use clap::{Parser, Subcommand};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod compare;
mod list;

/// The global allocator: the system's, or dhat's when the allocation pass's
/// child process switches it on (before it allocates anything it measures).
/// One predictable branch per allocation otherwise.
struct Switch;

static DHAT_ON: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards every call to one of two valid allocators; `dhat::Alloc`
// frees blocks it did not allocate by handing them to `System`, which
// allocated them.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        unsafe { if DHAT_ON.load(Ordering::Relaxed) { dhat::Alloc.alloc(layout) } else { System.alloc(layout) } }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe {
            if DHAT_ON.load(Ordering::Relaxed) { dhat::Alloc.dealloc(ptr, layout) } else { System.dealloc(ptr, layout) }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        unsafe {
            if DHAT_ON.load(Ordering::Relaxed) {
                dhat::Alloc.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[global_allocator]
static ALLOCATOR: Switch = Switch;

/// The real instruments of this binary.
struct Real;

impl Instruments for Real {
    fn heap(&self) -> Option<(u64, u64, u64)> {
        DHAT_ON.load(Ordering::Relaxed).then(|| {
            let s = dhat::HeapStats::get();
            (s.total_blocks, s.total_bytes, s.max_bytes as u64)
        })
    }

    fn callgrind_window(&self, open: bool) {
        if open {
            valgrind_requests::callgrind::zero_stats();
        } else {
            let name = std::ffi::CString::new(buslab_harness::CALLGRIND_TRIGGER).expect("no NUL in the name");
            valgrind_requests::callgrind::dump_stats_at(name.as_c_str());
        }
    }
}

/// buslab: a benchmark and performance-regression lab for in-process event buses.
#[derive(Parser, Debug)]
#[command(name = "buslab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the matrix (bus × scenario × sweep point) through every pass.
    Run(RunArgs),
    /// List every bus with its declared capabilities and guarantees.
    List {
        /// Print a JSON array of objects instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the scenarios (the catalog plus any --scenario-file).
    Scenarios {
        /// Extra scenario files.
        #[arg(long = "scenario-file", value_name = "PATH")]
        scenario_files: Vec<PathBuf>,
    },
    /// List the runs in the results store.
    Runs {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The results store.
        #[arg(long, default_value = store::DEFAULT_PATH)]
        db: PathBuf,
    },
    /// Export a run (default: the latest) as JSON, CSV or Bencher Metric Format.
    Export {
        /// Run id (or a unique prefix); see `buslab runs`.
        #[arg(long)]
        run: Option<String>,
        /// Output format: json, csv or bmf.
        #[arg(long, default_value = "json", value_parser = clap::value_parser!(Format))]
        format: Format,
        /// The results store.
        #[arg(long, default_value = store::DEFAULT_PATH)]
        db: PathBuf,
    },
    /// Merge a JSON export (from another machine) into the store; importing a
    /// run twice keeps one copy.
    Import {
        /// The JSON file written by `buslab export --format json`.
        file: PathBuf,
        /// The results store.
        #[arg(long, default_value = store::DEFAULT_PATH)]
        db: PathBuf,
    },
    /// Compare two runs (default: the latest against the one before it on
    /// the same machine) and print the significant changes.
    Compare(compare::CompareArgs),
    /// Internal: run one pass of one cell (request on stdin, JSON answer on stdout).
    #[command(hide = true)]
    Probe,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Fewer, shorter trials (every pass and every delivery check kept).
    #[arg(long)]
    quick: bool,
    /// Only these buses (comma-separated names; see `buslab list`).
    #[arg(long, value_delimiter = ',')]
    bus: Vec<String>,
    /// Only these scenarios (comma-separated names; see `buslab scenarios`).
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// Add a scenario file (repeatable).
    #[arg(long = "scenario-file", value_name = "PATH")]
    scenario_files: Vec<PathBuf>,
    /// Only these passes (comma-separated: throughput, latency, allocations, instructions, profile).
    #[arg(long, value_delimiter = ',')]
    pass: Vec<String>,
    /// Time limit for one pass of one cell, seconds (callgrind gets 10×).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// The results store (created if missing; survives `cargo clean`).
    #[arg(long, default_value = store::DEFAULT_PATH)]
    db: PathBuf,
    /// Your own CloudEvents for the `cloudevents` scenarios: a
    /// newline-delimited JSON file, or a directory of `.json` files.
    #[arg(long, value_name = "PATH")]
    corpus: Option<PathBuf>,
}

fn main() -> ExitCode {
    if std::env::var_os("BUSLAB_DHAT").is_some() {
        DHAT_ON.store(true, Ordering::SeqCst);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("buslab: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::List { json } => {
            let buses = buslab_impls::all();
            if json {
                serde_json::to_writer_pretty(&mut out, &buses).context("writing JSON")?;
                writeln!(out)?;
            } else {
                list::write_text(&mut out, &buses, terminal_width())?;
            }
        }
        Command::Scenarios { scenario_files } => {
            for s in buslab_scenarios::catalog_with(&scenario_files)? {
                writeln!(out, "{:<18} {}", s.name, s.description)?;
            }
        }
        Command::Probe => return probe_command(),
        Command::Runs { json, db } => {
            let store = Store::open(&db)?;
            export::runs(&store, json, &mut out)?;
        }
        Command::Export { run, format, db } => {
            let store = Store::open(&db)?;
            export::export_cmd(&store, run.as_deref(), format, &mut out)?;
        }
        Command::Import { file, db } => {
            let mut store = Store::open(&db)?;
            let message = export::import_cmd(&mut store, &file)?;
            writeln!(out, "{message}")?;
        }
        Command::Compare(args) => {
            let regressed = compare::run(&args, &mut out)?;
            out.flush().context("writing to stdout")?;
            if regressed && args.fail_on_regression {
                eprintln!("buslab: a metric regressed (see the table above)");
                return Ok(ExitCode::from(3));
            }
        }
        Command::Run(args) => {
            let failed = run_command(args, &mut out)?;
            out.flush().context("writing to stdout")?;
            if failed > 0 {
                eprintln!("buslab: {failed} cell(s) failed (see the reasons above)");
                return Ok(ExitCode::from(4));
            }
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn probe_command() -> anyhow::Result<ExitCode> {
    let _profiler = DHAT_ON.load(Ordering::Relaxed).then(|| dhat::Profiler::builder().testing().build());
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("reading the probe request")?;
    let request: ProbeRequest = serde_json::from_str(&input).context("parsing the probe request")?;
    let response = probe::run(&request, &Real);
    println!("{}", serde_json::to_string(&response).context("encoding the answer")?);
    Ok(ExitCode::SUCCESS)
}

/// Runs the matrix; returns the number of failed cells.
fn run_command(args: RunArgs, out: &mut impl Write) -> anyhow::Result<usize> {
    let all_scenarios = buslab_scenarios::catalog_with(&args.scenario_files)?;
    let scenarios: Vec<_> = if args.scenario.is_empty() {
        all_scenarios
    } else {
        for name in &args.scenario {
            if !all_scenarios.iter().any(|s| &s.name == name) {
                let known: Vec<_> = all_scenarios.iter().map(|s| s.name.as_str()).collect();
                bail!("unknown scenario `{name}`; known: {}", known.join(", "));
            }
        }
        all_scenarios.into_iter().filter(|s| args.scenario.contains(&s.name)).collect()
    };
    let all_buses = buslab_impls::all();
    let buses: Vec<_> = if args.bus.is_empty() {
        all_buses
    } else {
        for name in &args.bus {
            if buslab_impls::find(name).is_none() {
                let known: Vec<_> = all_buses.iter().map(|b| b.name).collect();
                bail!("unknown bus `{name}`; known: {}", known.join(", "));
            }
        }
        all_buses.into_iter().filter(|b| args.bus.iter().any(|n| n == b.name)).collect()
    };
    let passes = if args.pass.is_empty() {
        Pass::ALL.to_vec()
    } else {
        args.pass
            .iter()
            .map(|name| {
                Pass::ALL.into_iter().find(|p| p.name() == name).with_context(|| {
                    format!("unknown pass `{name}`; known: throughput, latency, allocations, instructions, profile")
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let corpus = match &args.corpus {
        Some(path) => Some(describe_corpus(path, &scenarios)?),
        None => None,
    };
    let cells = runner::plan(&scenarios, &buses);
    let mut store = Store::open(&args.db)?;
    let scratch = std::env::temp_dir().join(format!("buslab-{}", std::process::id()));
    let runner = ProbeRunner {
        exe: std::env::current_exe().context("locating the buslab executable")?,
        valgrind: runner::find_valgrind(),
        budget: if args.quick { Budget::QUICK } else { Budget::DEFAULT },
        timeout: Duration::from_secs(args.timeout),
        passes,
        scratch: scratch.clone(),
        corpus: args.corpus.clone(),
    };
    if runner.valgrind.is_none() {
        eprintln!("buslab: valgrind not found: the instruction pass is skipped (install it: apt-get install valgrind)");
    }
    let refs: Vec<_> = scenarios.iter().collect();
    let mut meta = meta::collect(args.quick, std::env::args().collect(), &refs);
    meta.corpus = corpus;
    meta.harness_overhead_ns = harness_overhead(&runner);
    if let Some(ns) = meta.harness_overhead_ns {
        eprintln!("buslab: harness overhead {ns:.1} ns per event (null bus, spsc: producer loop + verifying listener)");
    }
    store.begin_run(&meta)?;
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new(cells.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} ETA {eta} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let interactive = console::Term::stderr().is_term();
    let mut results = Vec::with_capacity(cells.len());
    for cell in &cells {
        let name = cell.key.name();
        let result = runner.run_cell(cell, &mut |pass| bar.set_message(format!("{name} · {}", pass.name())));
        if !interactive {
            eprintln!("[{}/{}] {name}: {}", results.len() + 1, cells.len(), status_word(&result));
        }
        bar.inc(1);
        // Committed as it finishes: an interrupted run keeps its cells.
        store.save_cell(&meta.id, &result)?;
        results.push(result);
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&scratch);
    let finished_at = meta::now_rfc3339();
    store.finish_run(&meta.id, &finished_at, true)?;
    summary::write(out, &results, terminal_width())?;
    writeln!(
        out,
        "run {} finished in {:.0} s; stored in {}",
        meta.id,
        started.elapsed().as_secs_f64(),
        store.path().display()
    )?;
    Ok(results.iter().filter(|r| matches!(r.status, CellStatus::Failed(_))).count())
}

/// Loads `--corpus PATH` once (so that a bad path fails before any cell
/// runs), prints its size and its invalid documents, and describes it for
/// the run metadata. Invalid documents are counted with serde_json here; each
/// cell counts them again with its own decoder.
fn describe_corpus(
    path: &std::path::Path,
    scenarios: &[buslab_scenarios::Scenario],
) -> anyhow::Result<buslab_scenarios::results::Corpus> {
    use buslab_scenarios::cloudevents::{Corpus, Decoder};
    let corpus = Corpus::load(path).with_context(|| format!("loading the CloudEvents corpus {}", path.display()))?;
    if !scenarios.iter().any(|s| s.cloudevents.is_some()) {
        eprintln!("buslab: --corpus is used only by cloudevents scenarios, and none is selected");
    }
    let limits = scenarios.iter().find_map(|s| s.cloudevents.clone()).unwrap_or_default().limits();
    let classified = corpus.classify(Decoder::SerdeJson, limits);
    let invalid: u64 = classified.errors.values().sum();
    let summary = corpus.summary(invalid);
    eprintln!(
        "buslab: corpus {}: {} documents ({} invalid), {} bytes; sizes min {} / p50 {} / p90 {} / max {}",
        summary.name,
        summary.documents,
        summary.invalid,
        summary.total_bytes,
        summary.min_bytes,
        summary.p50_bytes,
        summary.p90_bytes,
        summary.max_bytes
    );
    for (origin, reason) in &classified.examples {
        eprintln!("buslab:   invalid: {origin}: {reason}");
    }
    if classified.valid.is_empty() {
        bail!("the corpus {} has no valid CloudEvent: nothing to measure", path.display());
    }
    Ok(summary)
}

/// The harness's own cost per event: the throughput pass over the `null`
/// bus (one in-line listener, nothing in between) on the `spsc` scenario.
fn harness_overhead(runner: &ProbeRunner) -> Option<f64> {
    let scenario = buslab_scenarios::catalog().ok()?.into_iter().find(|s| s.name == "spsc")?;
    let request = ProbeRequest {
        pass: Pass::Throughput,
        bus: "null".into(),
        point: scenario.points()[0],
        scenario,
        budget: runner.budget,
        capacity: None,
        corpus: None,
    };
    let rate = runner.probe(&request).ok()?.throughput?.events_per_sec.median;
    (rate > 0.0).then(|| 1e9 / rate)
}

fn status_word(result: &buslab_scenarios::results::CellResult) -> String {
    use buslab_scenarios::results::CellStatus;
    match &result.status {
        CellStatus::Ok => "ok".into(),
        CellStatus::Failed(r) => format!("FAILED: {r}"),
        CellStatus::Skipped(r) => format!("skipped: {r}"),
    }
}

/// The terminal's width, or `COLUMNS`, or 100.
fn terminal_width() -> usize {
    if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|&w: &usize| w >= 40) {
        return w;
    }
    match console::Term::stdout().size_checked() {
        Some((_, w)) if w >= 40 => w as usize,
        _ => 100,
    }
}
