//! `buslab`: the command-line front door of the benchmark lab.
//!
//! Errors are `anyhow` at this edge and printed with `{:#}` (the whole
//! context chain); `main` returns an [`ExitCode`]: 0 success, 1 error,
//! 2 usage error (clap), 3 when `compare --fail-on-regression` found a
//! regression, 4 when `run` finished but a cell failed its delivery checks.

use anyhow::{Context, bail};
use buslab_harness::export::{self, Format};
use buslab_harness::probe::{self, Budget, Instruments, Pass, ProbeRequest};
use buslab_harness::runner::{self, PlannedCell, ProbeRunner};
use buslab_harness::shard::{self, ShardSpec};
use buslab_harness::store::{self, Store};
use buslab_harness::{meta, repeat, report};
use buslab_reports::render::format;
use buslab_reports::render::{summary, text};
use buslab_scenarios::Scenario;
use buslab_scenarios::results::{CellStatus, Shards};
use clap::{Parser, Subcommand};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod compare;
mod list;
mod noise;
mod report_cmd;

/// The global allocator: the system's, counting once the allocation
/// pass's child process switches it on ([`buslab_harness::heap`]).
#[global_allocator]
static ALLOCATOR: buslab_harness::heap::Counting = buslab_harness::heap::Counting;

/// The real instruments of this binary.
struct Real;

impl Instruments for Real {
    fn heap(&self) -> Option<(u64, u64, u64)> {
        buslab_harness::heap::stats()
    }

    fn callgrind_instrument(&self) {
        buslab_harness::callgrind::start_instrumentation();
    }

    fn callgrind_window(&self, open: bool) {
        if open {
            buslab_harness::callgrind::zero_stats();
        } else {
            // A constant: no allocation inside the measured region.
            buslab_harness::callgrind::dump_stats_at(buslab_harness::CALLGRIND_TRIGGER);
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
    /// Noise calibration (A/A): run the same cells several times at one
    /// commit, then report each metric's spread and how often the
    /// regression rule flags a change that is not there.
    Noise(noise::NoiseArgs),
    /// Write the static HTML report of a run (default: the latest) with its
    /// verdict matrix, charts, cell pages, trends, comparison and guide.
    Report(report_cmd::ReportArgs),
    /// Internal: run one pass of one cell (request on stdin, JSON answer on stdout).
    #[command(hide = true)]
    Probe,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Exit status: 0 when every cell is ok or skipped, 4 when a cell failed its delivery \
checks, 1 on an error, 2 on a usage error.\n\n\
Sharding: `--shard I/N --run-id ID` runs slice I of N of the matrix, cut the same way on every \
machine; export each shard's run (`buslab export --format json`) and `buslab import` them into \
one store to make one run of ID.")]
struct RunArgs {
    #[command(flatten)]
    matrix: MatrixArgs,
    /// Run only slice I of N of the matrix (1 ≤ I ≤ N), cut the same way on
    /// every machine; the shards' exports merge into one run with `buslab
    /// import` when they share --run-id.
    #[arg(long, value_name = "I/N")]
    shard: Option<ShardSpec>,
    /// The run's id (letters, digits, `.`, `_`, `-`; default: the UTC time
    /// and a random number). The shards of one run share it.
    #[arg(long, value_name = "ID", value_parser = parse_run_id)]
    run_id: Option<String>,
    /// Print the planned cells (of the shard) with their expected cost and
    /// exit without running anything.
    #[arg(long)]
    plan: bool,
    /// Do not write the HTML report at the end (`buslab report` writes it
    /// later).
    #[arg(long)]
    no_report: bool,
    /// Where the report goes; default: `report/` beside the store.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
}

/// What to run and where to store it: the options `run` and `noise` share.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct MatrixArgs {
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
    /// Independent processes that measure each cell's throughput, their
    /// rounds interleaving the buses of a point (default 3). 1 gives intervals that miss the variance between
    /// processes.
    #[arg(long, value_name = "N", value_parser = parse_processes)]
    processes: Option<usize>,
    /// Independent processes that measure each cell's latency, sharing its
    /// window at each load and interleaving the buses of a point (default
    /// 3). Their spread is the interval of the tail-latency gate of
    /// `buslab compare`; with 1 that gate falls back to the noise band.
    #[arg(long, value_name = "N", value_parser = parse_processes)]
    latency_processes: Option<usize>,
    /// Throughput trials in each process. Without it, each scenario's count
    /// is chosen by measurement from the latest stored run that can tell
    /// (Kalibera & Jones; see the README), else 3 (2 with `--quick`).
    #[arg(long, value_name = "N", value_parser = parse_trials)]
    trials: Option<usize>,
    /// Time limit for one pass of one cell, seconds (callgrind gets 10×).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// The results store (created if missing; survives `cargo clean`).
    #[arg(long, default_value = store::DEFAULT_PATH)]
    db: PathBuf,
    /// Your own CloudEvents for the `cloudevents` scenarios: a
    /// newline-delimited JSON file (structured mode), a `.http` file of
    /// HTTP/1.1 messages (binary mode), or a directory of `.json` and
    /// `.http` files; each cell converts the valid events to its mode.
    #[arg(long, value_name = "PATH")]
    corpus: Option<PathBuf>,
}

fn main() -> ExitCode {
    if std::env::var_os(buslab_harness::heap::SWITCH).is_some() {
        buslab_harness::heap::switch_on();
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
        Command::Noise(args) => {
            let failed = noise::run(&args, &mut out)?;
            out.flush().context("writing to stdout")?;
            if failed > 0 {
                eprintln!("buslab: {failed} cell(s) failed in the noise runs (see the reasons above)");
                return Ok(ExitCode::from(4));
            }
        }
        Command::Report(args) => {
            let rendered = report_cmd::run(&args)?;
            writeln!(
                out,
                "report: {} ({} files in {:.2} s)",
                rendered.index.display(),
                rendered.files,
                rendered.elapsed.as_secs_f64()
            )?;
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
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("reading the probe request")?;
    let request: ProbeRequest = serde_json::from_str(&input).context("parsing the probe request")?;
    let response = probe::run(&request, &Real);
    println!("{}", serde_json::to_string(&response).context("encoding the answer")?);
    Ok(ExitCode::SUCCESS)
}

/// Runs the matrix (or prints its plan); returns the number of failed
/// cells.
fn run_command(args: RunArgs, out: &mut impl Write) -> anyhow::Result<usize> {
    let (scenarios, mut cells, runner) = prepare(&args.matrix)?;
    let mut shards = None;
    let mut planned_cost = None;
    if let Some(spec) = args.shard {
        if spec.count > 1 && args.run_id.is_none() && !args.plan {
            bail!(
                "--shard {spec} needs --run-id ID: the shards of one run share its id, so that `buslab import` merges them"
            );
        }
        let (mine, cost, total) = shard::select(cells, spec, &runner.budget);
        eprintln!(
            "buslab: shard {spec}: {} cells, {} of the matrix's expected cost",
            mine.len(),
            buslab_reports::render::format::share(cost as f64 / total.max(1) as f64)
        );
        cells = mine;
        planned_cost = Some((cost, total));
        shards = Some(Shards { count: spec.count, held: vec![spec.index] });
    }
    if args.plan {
        for cell in &cells {
            let cost = shard::expected_cost(cell, &runner.budget);
            writeln!(out, "{}\t{cost}\t{}", cell.key.name(), cell.skip.as_deref().unwrap_or(""))?;
        }
        let (cost, total) = planned_cost.unwrap_or_else(|| {
            let total = cells.iter().map(|c| shard::expected_cost(c, &runner.budget)).sum();
            (total, total)
        });
        writeln!(out, "# {} cells; expected cost {cost} of {total} (model units, about ms)", cells.len())?;
        return Ok(0);
    }
    let plan =
        Plan { scenarios: &scenarios, cells: &cells, runner: &runner, db: &args.matrix.db, quick: args.matrix.quick };
    let outcome = execute(&plan, args.run_id, None, shards, out)?;
    // The run is stored whatever happens here: a report that cannot be
    // written is a warning, and `buslab report` can retry.
    let db = &args.matrix.db;
    let stored = match report::Stored::load(&Store::open(db)?, &outcome.id) {
        Ok(stored) => stored,
        Err(e) => {
            eprintln!("buslab: warning: no recommendations and no report: {e:#}");
            return Ok(outcome.failed);
        }
    };
    // One analysis: the terminal's recommendations are the report's first
    // screen, read from the same model.
    let model = stored.analyse();
    if !model.analysis.recommendations.is_empty() {
        write!(out, "{}", text::recommendations_text(&model.analysis.recommendations))?;
    }
    if !args.no_report {
        let dir = args.report_dir.clone().unwrap_or_else(|| report::default_out(db));
        match report::write(&model, &dir) {
            Ok(rendered) => writeln!(out, "report: {}", rendered.index.display())?,
            Err(e) => eprintln!("buslab: warning: no report: {e:#}"),
        }
    }
    Ok(outcome.failed)
}

/// Checks the scenario, bus and pass names and plans the matrix.
/// Why `--quick` leaves the profile pass out unless `--pass` names it.
const QUICK_LEAVES_OUT_PROFILE: &str = "not run with --quick: a flame graph needs the default run's longer sample (add \
     `--pass profile` to a quick run for one anyway)";

pub(crate) fn prepare(args: &MatrixArgs) -> anyhow::Result<(Vec<Scenario>, Vec<PlannedCell>, ProbeRunner)> {
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
            let reference = buslab_harness::reference::all().iter().any(|r| r.name == name);
            if buslab_impls::find(name).is_none() && !reference {
                let known: Vec<_> = all_buses.iter().map(|b| b.name).collect();
                bail!("unknown bus `{name}`; known: {}", known.join(", "));
            }
        }
        all_buses.into_iter().filter(|b| args.bus.iter().any(|n| n == b.name)).collect()
    };
    let mut not_run = Vec::new();
    let passes = if args.pass.is_empty() {
        if args.quick {
            not_run.push((Pass::Profile, QUICK_LEAVES_OUT_PROFILE.to_owned()));
        }
        Pass::ALL.into_iter().filter(|p| !not_run.iter().any(|(left, _)| left == p)).collect()
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
    let cells = runner::plan(&scenarios, &buses, &buslab_harness::reference::all());
    let scratch = std::env::temp_dir().join(format!("buslab-{}", std::process::id()));
    let mut runner = ProbeRunner {
        exe: std::env::current_exe().context("locating the buslab executable")?,
        valgrind: runner::find_valgrind(),
        budget: {
            let budget = if args.quick { Budget::QUICK } else { Budget::DEFAULT };
            Budget {
                processes: args.processes.unwrap_or(budget.processes),
                latency_processes: args.latency_processes.unwrap_or(budget.latency_processes),
                trials: args.trials.unwrap_or(budget.trials),
                ..budget
            }
        },
        chosen_trials: Default::default(),
        timeout: Duration::from_secs(args.timeout),
        passes,
        not_run,
        scratch,
        corpus: args.corpus.clone(),
        corpus_summary: corpus,
        valgrind_refused: Default::default(),
        callgrind_copy: Default::default(),
    };
    if args.trials.is_none() {
        runner.chosen_trials = choose_trials(&args.db, &scenarios, &runner.budget, args.quick)?;
        let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
        eprintln!("buslab: {}", repeat::describe_choice(&runner.chosen_trials, &names, runner.budget.trials));
    }
    Ok((scenarios, cells, runner))
}

/// Each scenario's trials per process chosen by measurement from the runs
/// in the store at `db` ([`repeat::choose_trials`]); none when there is no
/// store yet (none is created here).
fn choose_trials(
    db: &std::path::Path,
    scenarios: &[Scenario],
    budget: &Budget,
    quick: bool,
) -> anyhow::Result<std::collections::BTreeMap<String, buslab_scenarios::results::ChosenTrials>> {
    if !db.exists() {
        return Ok(Default::default());
    }
    let store = Store::open(db)?;
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    repeat::choose_trials(&store, &names, quick, &meta::machine(), repeat::max_chosen_trials(budget))
        .with_context(|| format!("choosing trials per process from the runs in {}", db.display()))
}

/// A planned run: what [`execute`] runs.
pub(crate) struct Plan<'a> {
    /// The scenarios (recorded in the run's metadata).
    pub(crate) scenarios: &'a [Scenario],
    /// The cells to run, in order.
    pub(crate) cells: &'a [PlannedCell],
    /// How probes run.
    pub(crate) runner: &'a ProbeRunner,
    /// The results store.
    pub(crate) db: &'a std::path::Path,
    /// `--quick` budgets.
    pub(crate) quick: bool,
}

/// What [`execute`] did.
pub(crate) struct Outcome {
    /// The run's id.
    pub(crate) id: String,
    /// Cells that failed their checks.
    pub(crate) failed: usize,
    /// Cells that ended ok.
    pub(crate) ok: usize,
    /// Cells skipped.
    pub(crate) skipped: usize,
}

/// Runs `plan`'s cells as one run, stored as it goes. With a `label` (a
/// noise run) a one-line report replaces the summary table.
pub(crate) fn execute(
    plan: &Plan<'_>,
    run_id: Option<String>,
    label: Option<String>,
    shards: Option<Shards>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let runner = plan.runner;
    let cells = plan.cells;
    let mut store = Store::open(plan.db)?;
    if runner.valgrind.is_none() {
        eprintln!("buslab: valgrind not found: the instruction pass is skipped (install it: apt-get install valgrind)");
    }
    let refs: Vec<_> = plan.scenarios.iter().collect();
    let mut meta = meta::collect(plan.quick, std::env::args().collect(), &refs);
    if let Some(id) = run_id {
        meta.id = id;
    }
    meta.label = label;
    meta.shards = shards;
    meta.corpus = runner.corpus_summary.clone();
    meta.processes = Some(runner.budget.processes as u32);
    meta.trials = Some(runner.budget.trials as u32);
    meta.chosen_trials = runner.chosen_trials.clone();
    store.begin_run(&meta).with_context(|| {
        format!("starting run `{}` (shards of one run go to separate stores and merge with `buslab import`)", meta.id)
    })?;
    let started = Instant::now();
    // Progress and the time left are weighed by each cell's expected cost.
    let costs: Vec<u64> = cells.iter().map(|c| shard::expected_cost(c, &runner.budget_for(&c.key.scenario))).collect();
    let total_cost = costs.iter().sum::<u64>().max(1);
    let mut done_cost = 0_u64;
    let bar = indicatif::ProgressBar::new(total_cost);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {percent}% ETA {eta} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let interactive = console::Term::stderr().is_term();
    let mut results = Vec::with_capacity(cells.len());
    let mut index = 0;
    for point in runner::points(cells) {
        let point: Vec<&PlannedCell> = point.iter().collect();
        let first = results.len();
        let mut progress = |cell: &PlannedCell, pass: Pass| {
            bar.set_message(format!("cells {}/{} · {} · {}", first + 1, cells.len(), cell.key.name(), pass.name()))
        };
        if !interactive && let Some(cell) = point.first() {
            eprintln!("point {} ({} cells) ...", cell.key.point(), point.len());
        }
        let measured = runner.run_point(&point, &mut progress);
        // The point's cells finish together: its whole cost is done.
        done_cost += costs[index..index + point.len()].iter().sum::<u64>();
        index += point.len();
        let elapsed = started.elapsed();
        let eta = buslab_harness::timing::eta(elapsed, done_cost, total_cost)
            .map_or_else(|| "?".to_owned(), |d| format::clock(d.as_secs_f64()));
        for (cell, mut result) in point.iter().zip(measured) {
            // The floor of this point, measured first (the plan opens each
            // point with the references).
            meta.attach_floor(&mut result, &results);
            if !interactive {
                eprintln!(
                    "[{}/{}] {}: {} · {} elapsed, about {eta} left",
                    results.len() + 1,
                    cells.len(),
                    cell.key.name(),
                    status_word(&result),
                    format::clock(elapsed.as_secs_f64())
                );
            }
            bar.set_position(done_cost);
            // Committed as its point finishes: an interrupted run keeps them.
            store.save_cell(&meta.id, &result)?;
            results.push(result);
        }
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&runner.scratch);
    let finished_at = meta::now_rfc3339();
    store.finish_run(&meta.id, &finished_at, true)?;
    let count = |f: fn(&CellStatus) -> bool| results.iter().filter(|r| f(&r.status)).count();
    let outcome = Outcome {
        id: meta.id.clone(),
        failed: count(|s| matches!(s, CellStatus::Failed(_))),
        ok: count(|s| matches!(s, CellStatus::Ok)),
        skipped: count(|s| matches!(s, CellStatus::Skipped(_))),
    };
    if meta.label.is_none() {
        summary::write(out, &results, terminal_width())?;
        summary::Breakdown::of(&results).write(out)?;
    }
    writeln!(
        out,
        "run {} finished in {:.0} s; stored in {}",
        meta.id,
        started.elapsed().as_secs_f64(),
        store.path().display()
    )?;
    Ok(outcome)
}

/// `--processes N`: 1 to 20.
fn parse_processes(text: &str) -> Result<usize, String> {
    parse_count(text, 20, "processes per cell")
}

/// `--trials N`: 1 to 100.
fn parse_trials(text: &str) -> Result<usize, String> {
    parse_count(text, 100, "trials per process")
}

/// A count from 1 to `max` of `what`.
fn parse_count(text: &str, max: usize, what: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not a number of {what}: give 1 to {max}")),
    }
}

/// A run id given on the command line: 1 to 100 of `A-Z a-z 0-9 . _ -`,
/// not beginning with `.` or `-` (ids name files and URLs of reports).
fn parse_run_id(id: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > 100 || !id.chars().all(allowed) || id.starts_with(['.', '-']) {
        return Err(format!(
            "`{id}` is not a run id: use 1 to 100 letters, digits, `.`, `_` or `-`, not beginning with `.` or `-`"
        ));
    }
    Ok(id.to_owned())
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
    let summary = corpus.summary(&classified);
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
    let unnamed = summary.invalid.saturating_sub(classified.examples.len() as u64);
    if unnamed > 0 {
        eprintln!("buslab:   … and {unnamed} more invalid documents (counted by reason in the report)");
    }
    if classified.valid.is_empty() {
        bail!("the corpus {} has no valid CloudEvent: nothing to measure", path.display());
    }
    Ok(summary)
}

fn status_word(result: &buslab_scenarios::results::CellResult) -> String {
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
