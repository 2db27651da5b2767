//! `buslab compare`: the regression verdicts between two stored runs.
//!
//! The rule is `buslab_reports::analysis::regression`'s; this module picks the runs
//! and their history out of the store and prints the verdicts, then the
//! cells whose latest change point over that history (base and new run
//! included, `buslab_reports::analysis::trends::latest_regressions`) is a regression.
//! The change points are informational: the exit status follows the
//! pairwise verdicts only.

use anyhow::{Context, bail};
use buslab_harness::store::Store;
use buslab_reports::analysis::{regression, trends};
use buslab_reports::render::text;
use std::io::Write;
use std::path::PathBuf;

/// The options of `buslab compare`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Exit status: 0 when no metric regressed (or without --fail-on-regression), \
3 when one did (one that --gate admits) and --fail-on-regression was given, 1 on an error, 2 on a \
usage error.\n\n\
The rule (thresholds, intervals over processes, noise bands) is written out in the docs of \
buslab_reports::analysis::regression (cargo doc -p buslab-reports --open). After the verdicts, `compare` lists \
the cells whose latest change point (a step detector over the stored history, \
buslab_reports::analysis::changepoints) is a regression; that list does not change the exit status.")]
pub(crate) struct CompareArgs {
    /// The baseline run id (or a unique prefix); default: the run before
    /// the new one on the same machine with the same label (so never an
    /// A/A run of `buslab noise` for an ordinary run).
    #[arg(long, value_name = "ID", visible_alias = "base")]
    baseline: Option<String>,
    /// The run to judge (id or unique prefix); default: the latest
    /// ordinary run (not a run of `buslab noise`).
    #[arg(long, value_name = "ID")]
    new: Option<String>,
    /// Also write the verdicts as Markdown to FILE (a CI job summary).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Override a metric's threshold, in percent (repeatable): the fixed
    /// threshold of a deterministic metric, or the default noise band of a
    /// wall-clock one, e.g. `--threshold latency-p999=25`.
    #[arg(long, value_name = "METRIC=PERCENT", value_parser = parse_threshold)]
    threshold: Vec<(String, f64)>,
    /// Exit with status 3 when any metric regressed (any the gate admits).
    #[arg(long)]
    pub(crate) fail_on_regression: bool,
    /// Which regressions --fail-on-regression fails on: `all`, or
    /// `deterministic` (instruction and allocation counts of cells that ran
    /// a single thread under callgrind: the pull-request gate).
    #[arg(long, default_value = "all", value_parser = parse_gate)]
    gate: regression::Gate,
    /// The results store.
    #[arg(long, default_value = buslab_harness::store::DEFAULT_PATH)]
    db: PathBuf,
}

/// Compares the runs `args` names and prints the significant changes;
/// returns whether a regression the gate admits was found.
pub(crate) fn run(args: &CompareArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    if !args.db.exists() {
        bail!("no results store at {}; `buslab run` makes one", args.db.display());
    }
    let store = Store::open(&args.db)?;
    let new_id = match &args.new {
        Some(id) => store.resolve_run(id)?,
        None => store
            .latest_run_id()?
            .with_context(|| format!("{} holds no run; `buslab run` makes one", args.db.display()))?,
    };
    let base_id = match &args.baseline {
        Some(id) => store.resolve_run(id)?,
        None => store.previous_run_id(&new_id)?.with_context(|| {
            format!("run `{new_id}` has no earlier run on its machine to compare with; name one with --baseline (see `buslab runs`)")
        })?,
    };
    let base = store.load_run(&base_id)?;
    let new = store.load_run(&new_id)?;
    if base.meta.machine != new.meta.machine {
        eprintln!(
            "buslab: note: the base run was made on `{}` and the new run on `{}`: only deterministic counts are compared",
            base.meta.machine, new.meta.machine
        );
    }
    for (run, role) in [(&base, "base"), (&new, "new")] {
        if let Some(group) = run.meta.noise_group() {
            eprintln!("buslab: note: the {role} run `{}` is an A/A run of noise group `{group}`", run.meta.id);
        }
    }
    if base.meta.quick != new.meta.quick {
        eprintln!("buslab: note: only one of the two runs is a --quick run: its trials are fewer and shorter");
    }
    let history = store
        .earlier_run_ids(&base_id, regression::COMPARE_HISTORY)?
        .iter()
        .map(|id| store.load_run(id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut thresholds = regression::Thresholds::default();
    thresholds.per_metric.extend(args.threshold.iter().cloned());
    let comparison = regression::compare(&base, &new, &history, &thresholds);
    write!(out, "{}", text::text(&comparison))?;
    // Change points over the history, the base and the new run: listed
    // when a cell's latest level move is a regression. They do not change
    // the exit status: the pairwise verdicts are the gate.
    let mut steps_markdown = String::new();
    if base.meta.machine == new.meta.machine {
        let runs = history.len() + 2;
        let mut series = history;
        series.push(base.clone());
        series.push(new.clone());
        let steps = trends::latest_regressions(&series);
        write!(out, "{}", text::steps_text(&steps, runs))?;
        steps_markdown = text::steps_markdown(&steps, runs);
    }
    let gated = comparison.gated(args.gate).count();
    let mut gate_note = String::new();
    if args.gate != regression::Gate::All {
        gate_note = format!(
            "gate `{}`: {gated} of {} regression(s) count (deterministic counts of single-threaded cells)",
            args.gate.name(),
            comparison.count(regression::Verdict::Regression)
        );
        writeln!(out, "{gate_note}")?;
    }
    if let Some(path) = &args.markdown {
        let mut markdown = text::markdown(&comparison);
        markdown.push_str(&steps_markdown);
        if !gate_note.is_empty() {
            markdown.push_str(&format!("\n**{gate_note}**\n"));
        }
        std::fs::write(path, markdown)
            .with_context(|| format!("writing the Markdown summary to {}", path.display()))?;
    }
    Ok(gated > 0)
}

/// Parses a gate name.
fn parse_gate(arg: &str) -> Result<regression::Gate, String> {
    regression::Gate::ALL.into_iter().find(|g| g.name() == arg).ok_or_else(|| {
        let names: Vec<_> = regression::Gate::ALL.iter().map(|g| g.name()).collect();
        format!("unknown gate `{arg}`; known: {}", names.join(", "))
    })
}

/// Parses `METRIC=PERCENT` into the metric's slug and a fraction.
pub(crate) fn parse_threshold(arg: &str) -> Result<(String, f64), String> {
    let known = || regression::compared_metrics().map(|m| m.slug).collect::<Vec<_>>().join(", ");
    let (slug, percent) = arg.split_once('=').ok_or_else(|| format!("expected METRIC=PERCENT, got `{arg}`"))?;
    if !regression::compared_metrics().any(|m| m.slug == slug) {
        return Err(format!("unknown metric `{slug}`; known: {}", known()));
    }
    let percent: f64 = percent.trim_end_matches('%').parse().map_err(|e| format!("`{percent}`: {e}"))?;
    if !(percent.is_finite() && percent >= 0.0) {
        return Err(format!("the threshold of `{slug}` must be a percentage of at least 0, got {percent}"));
    }
    Ok((slug.to_owned(), percent / 100.0))
}
