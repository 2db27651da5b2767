//! `buslab noise`: noise calibration (A/A).
//!
//! Runs the same cells `--repeat` times at one commit, each repetition an
//! ordinary run stored with the label `noise:<group>` (the group id is
//! made like a run id), then analyses the group with
//! `buslab_reports::analysis::noise::calibrate`: each metric's spread and the
//! false-positive rate of the regression rule. `--analyze GROUP` analyses
//! a stored group without running anything.
//!
//! Noise runs stay out of the way of ordinary ones: `compare`'s default
//! new run is the latest ordinary run, a run's default baseline and
//! history are runs with the same label, so an A/A run is only compared
//! when it is named.

use crate::{MatrixArgs, Plan};
use anyhow::{Context, bail};
use buslab_harness::meta;
use buslab_harness::store::Store;
use buslab_reports::analysis::{noise, regression};
use buslab_reports::render::text;
use buslab_scenarios::results::NOISE_LABEL_PREFIX;
use std::io::Write;
use std::path::PathBuf;

/// The options of `buslab noise`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Exit status: 0 when the runs finished (whatever the calibration found), \
4 when a cell failed its delivery checks in a run, 1 on an error, 2 on a usage error.\n\n\
The runs are stored as ordinary runs labelled `noise:<group>` (see `buslab runs`); `compare` \
never picks them unless they are named.")]
pub(crate) struct NoiseArgs {
    #[command(flatten)]
    matrix: MatrixArgs,
    /// How many A/A runs to make (2 to 50).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=50))]
    repeat: u32,
    /// Analyse a stored noise group instead of running one: its group id
    /// (the label without `noise:`), or `latest`. The run options are then
    /// ignored.
    #[arg(long, value_name = "GROUP")]
    analyze: Option<String>,
    /// Also write the calibration as Markdown to FILE (a CI job summary).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Also write the calibration as JSON to FILE (for reports).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Override a metric's threshold, in percent, as in `buslab compare`
    /// (repeatable).
    #[arg(long, value_name = "METRIC=PERCENT", value_parser = crate::compare::parse_threshold)]
    threshold: Vec<(String, f64)>,
}

/// Runs (or, with `--analyze`, loads) a noise group and prints its
/// calibration; returns the number of failed cells over the runs.
pub(crate) fn run(args: &NoiseArgs, out: &mut impl Write) -> anyhow::Result<usize> {
    let mut failed = 0;
    let label = match &args.analyze {
        Some(group) => {
            if !args.matrix.db.exists() {
                bail!("no results store at {}; `buslab noise` makes one", args.matrix.db.display());
            }
            let store = Store::open(&args.matrix.db)?;
            if group == "latest" {
                store.latest_label(NOISE_LABEL_PREFIX)?.with_context(|| {
                    format!("{} holds no noise group; `buslab noise` makes one", args.matrix.db.display())
                })?
            } else {
                format!("{NOISE_LABEL_PREFIX}{group}")
            }
        }
        None => {
            let (scenarios, cells, runner) = crate::prepare(&args.matrix)?;
            let label = format!("{NOISE_LABEL_PREFIX}{}", meta::new_run_id());
            let plan = Plan {
                scenarios: &scenarios,
                cells: &cells,
                runner: &runner,
                db: &args.matrix.db,
                quick: args.matrix.quick,
            };
            for i in 1..=args.repeat {
                eprintln!("buslab: noise run {i} of {} ({label})", args.repeat);
                let outcome = crate::execute(&plan, None, Some(label.clone()), None, out)?;
                writeln!(
                    out,
                    "noise run {i}/{}: {}: {} ok, {} failed, {} skipped",
                    args.repeat, outcome.id, outcome.ok, outcome.failed, outcome.skipped
                )?;
                failed += outcome.failed;
            }
            label
        }
    };
    let store = Store::open(&args.matrix.db)?;
    let ids = store.run_ids_labelled(&label)?;
    if ids.len() < 2 {
        bail!(
            "noise group `{}` has {} run(s) in {}; a calibration needs at least 2 (see `buslab runs`)",
            label.trim_start_matches(NOISE_LABEL_PREFIX),
            ids.len(),
            args.matrix.db.display()
        );
    }
    let runs = ids.iter().map(|id| store.load_run(id)).collect::<Result<Vec<_>, _>>()?;
    let mut thresholds = regression::Thresholds::default();
    thresholds.per_metric.extend(args.threshold.iter().cloned());
    let calibration = noise::calibrate(&runs, &thresholds);
    writeln!(out, "noise group {}", label.trim_start_matches(NOISE_LABEL_PREFIX))?;
    write!(out, "{}", text::calibration_text(&calibration))?;
    if let Some(path) = &args.markdown {
        std::fs::write(path, text::calibration_markdown(&calibration))
            .with_context(|| format!("writing the Markdown calibration to {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&calibration).context("encoding the calibration")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing the JSON calibration to {}", path.display()))?;
    }
    Ok(failed)
}
