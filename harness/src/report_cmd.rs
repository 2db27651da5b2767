//! `buslab report`: the static HTML site of a stored run (the work is in
//! [`buslab_harness::report`]).

use anyhow::Context;
use buslab_harness::report;
use buslab_harness::store::Store;
use buslab_reports::render::site::Rendered;
use std::path::PathBuf;

/// The options of `buslab report`.
#[derive(clap::Args, Debug)]
pub(crate) struct ReportArgs {
    /// The run to report (id or unique prefix); default: the latest run.
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// Where to write the site; default: `report/` beside the store
    /// (`results/report` for the default store). A non-empty directory
    /// that is not a buslab report is refused.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The results store.
    #[arg(long, default_value = buslab_harness::store::DEFAULT_PATH)]
    db: PathBuf,
}

/// Runs `buslab report`.
pub(crate) fn run(args: &ReportArgs) -> anyhow::Result<Rendered> {
    if !args.db.exists() {
        anyhow::bail!("no results store at {}; `buslab run` makes one", args.db.display());
    }
    let store = Store::open(&args.db)?;
    let id = match &args.run {
        Some(id) => store.resolve_run(id)?,
        None => store
            .latest_run_id()?
            .with_context(|| format!("{} holds no run; `buslab run` makes one", args.db.display()))?,
    };
    let out = args.out.clone().unwrap_or_else(|| report::default_out(&args.db));
    Ok(report::render(&store, &id, &out)?)
}
