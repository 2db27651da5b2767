//! The HTML report of a stored run: picks the run, its history, its
//! baseline and the latest noise runs out of the store; `buslab_reports`
//! analyses them once ([`analysis::report`]) and renders the pages from
//! that model.

use crate::store::{Store, StoreError};
use buslab_reports::analysis;
use buslab_reports::analysis::regression::Thresholds;
use buslab_reports::render::site::{self, Rendered, SiteError};
use buslab_scenarios::results::{NOISE_LABEL_PREFIX, Run};
use std::path::{Path, PathBuf};

/// At most this many runs of history go into the trends (a year of
/// nightly runs, and some).
pub const HISTORY_RUNS: usize = 400;

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

/// What the report of one run is analysed from, read out of the store
/// once: the run whole, up to [`HISTORY_RUNS`] runs of light history on its
/// machine, its baseline (the previous run on the machine) and the latest
/// noise group's runs.
pub struct Stored {
    /// The run.
    pub run: Run,
    /// Its history.
    pub history: Vec<Run>,
    /// Its baseline.
    pub baseline: Option<Run>,
    /// The latest noise group's runs.
    pub noise: Vec<Run>,
    /// The thresholds the comparison uses (the defaults).
    pub thresholds: Thresholds,
}

impl Stored {
    /// Reads run `id` and what its report compares it with from `store`.
    pub fn load(store: &Store, id: &str) -> Result<Stored, ReportError> {
        Ok(Stored {
            run: store.load_run(id)?,
            history: store.load_history(id, HISTORY_RUNS)?,
            baseline: store.previous_run(id)?,
            noise: latest_noise(store)?,
            thresholds: Thresholds::default(),
        })
    }

    /// The report's model: every analysis, once ([`analysis::report`]).
    /// The terminal's recommendations and the pages are both read from it.
    pub fn analyse(&self) -> analysis::Report<'_> {
        let input = analysis::Input {
            run: &self.run,
            history: &self.history,
            baseline: self.baseline.as_ref(),
            noise: &self.noise,
            thresholds: &self.thresholds,
        };
        analysis::report(&input)
    }
}

/// Writes the pages of an analysed report into `out`.
pub fn write(report: &analysis::Report<'_>, out: &Path) -> Result<Rendered, ReportError> {
    site::render(report, out).map_err(|source| ReportError::Site { dir: out.to_owned(), source })
}

/// Renders the report of run `id` from `store` into `out` ([`Stored`]).
pub fn render(store: &Store, id: &str, out: &Path) -> Result<Rendered, ReportError> {
    write(&Stored::load(store, id)?.analyse(), out)
}

/// The runs of the latest noise group (`buslab noise`), if any.
fn latest_noise(store: &Store) -> Result<Vec<Run>, ReportError> {
    let Some(label) = store.latest_label(NOISE_LABEL_PREFIX)? else { return Ok(Vec::new()) };
    Ok(store.run_ids_labelled(&label)?.iter().map(|id| store.load_run(id)).collect::<Result<Vec<_>, _>>()?)
}
