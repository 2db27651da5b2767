//! The HTML report of a stored run: picks the run, its history and its
//! baseline out of the store and hands them to `buslab_reports::site`,
//! which makes the pages.

use crate::store::{Store, StoreError};
use buslab_reports::noise::{self, Calibration};
use buslab_reports::regression::{self, Thresholds};
use buslab_reports::site::{self, Rendered, SiteError};
use buslab_scenarios::results::NOISE_LABEL_PREFIX;
use std::path::{Path, PathBuf};

/// At most this many runs of history go into the trends (a year of
/// nightly runs, and some).
pub const HISTORY_RUNS: usize = 400;

/// At most this many runs before the baseline are the comparison's history
/// (as in `buslab compare`).
pub const COMPARE_HISTORY: usize = 30;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the site failed.
    #[error("writing the report into {dir}: {source}")]
    Site {
        /// The output directory.
        dir: PathBuf,
        /// What failed.
        source: SiteError,
    },
}

/// The default output directory for a store at `db`: `report/` beside it.
pub fn default_out(db: &Path) -> PathBuf {
    db.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join("report")
}

/// Renders the report of run `id` from `store` into `out`: the run loaded
/// whole, up to [`HISTORY_RUNS`] runs of light history on its machine, and
/// its baseline (the previous run on the machine) with the comparison.
pub fn render(store: &Store, id: &str, out: &Path) -> Result<Rendered, ReportError> {
    let run = store.load_run(id)?;
    let history = store.load_history(id, HISTORY_RUNS)?;
    let baseline = store.previous_run(id)?;
    let thresholds = Thresholds::default();
    let comparison = baseline.as_ref().map(|base| {
        // `history` ends with the baseline and the run: the runs before them
        // are the comparison's history.
        let past = &history[..history.len().saturating_sub(2)];
        let past = &past[past.len().saturating_sub(COMPARE_HISTORY)..];
        regression::compare(base, &run, past, &thresholds)
    });
    let noise = latest_noise(store, &run.meta.machine, &thresholds)?;
    let input = site::Input {
        run: &run,
        history: &history,
        baseline: baseline.as_ref(),
        comparison: comparison.as_ref(),
        thresholds: &thresholds,
        noise: noise.as_ref(),
    };
    site::render(&input, out).map_err(|source| ReportError::Site { dir: out.to_owned(), source })
}

/// The calibration of the latest noise group (`buslab noise`) measured on
/// `machine`, if any.
fn latest_noise(store: &Store, machine: &str, thresholds: &Thresholds) -> Result<Option<Calibration>, ReportError> {
    let Some(label) = store.latest_label(NOISE_LABEL_PREFIX)? else { return Ok(None) };
    let runs = store.run_ids_labelled(&label)?.iter().map(|id| store.load_run(id)).collect::<Result<Vec<_>, _>>()?;
    if runs.len() < 2 || runs.iter().any(|r| r.meta.machine != machine) {
        return Ok(None);
    }
    Ok(Some(noise::calibrate(&runs, thresholds)))
}
