//! The results store: every run and its cells in one SQLite file, so that
//! history outlives the process and reports can compare runs.
//!
//! A run is written as it happens. [`Store::begin_run`] records it as
//! incomplete, [`Store::save_cell`] commits each cell the moment it is
//! measured (an interrupted run keeps every cell that finished), and
//! [`Store::finish_run`] records the end. Runs made elsewhere come in with
//! [`Store::import_run`], which keeps one copy of a run imported twice and
//! merges the shards of one run made on several machines.
//!
//! # Schema
//! - `runs (id PK, started_at, finished_at, complete, machine, meta)`: one
//!   row per run; `meta` is the [`RunMeta`] as JSON, the other columns are
//!   copies for queries (`finished_at` and `complete` are the truth while a
//!   run is in progress).
//! - `cells (run_id, ordinal, name, scenario, bus, status, reason, result)`:
//!   one row per cell, `ordinal` its position in the run, `name` the
//!   [`CellKey::name`](buslab_scenarios::results::CellKey::name), `result`
//!   the whole [`CellResult`] as JSON. `(run_id, name)` is unique.
//! - `metrics (run_id, cell, metric, value, lower, upper)`: the headline
//!   figures of each cell, one row per [`Metric`], derived from `cells` by
//!   [`metrics()`] when a cell is saved. It exists for trend queries (one
//!   metric of one cell over hundreds of runs) that must not parse the
//!   cells' JSON; it is indexed on `(cell, metric)`.
//!
//! # Versions and migrations
//! A buslab store is marked with `PRAGMA application_id` =
//! [`APPLICATION_ID`] and carries its schema version in
//! `PRAGMA user_version`. `MIGRATIONS` lists the steps that build the
//! schema from an empty file, in order; opening applies the missing ones in
//! one transaction, so a store is never left half-migrated. A store written
//! by a newer buslab (a `user_version` above [`SCHEMA_VERSION`]) is refused:
//! this buslab cannot know what the newer schema means. To change the schema,
//! append a step; never edit a step that has shipped.
//!
//! # A file that is not a buslab store is never written
//! [`Store::open`] inspects an existing file before it writes anything: it
//! reads the SQLite header itself (magic, page size, length against the
//! page count, application id, schema version; through a read-only
//! connection instead when a write-ahead log lies beside the file), and
//! before a migration runs `PRAGMA quick_check` read-only. A text file, an
//! SQLite database of another application, a truncated or damaged store,
//! or a store from a newer buslab is reported with its path and left
//! byte-for-byte as it was, with nothing created beside it. Damage deeper
//! in a store of the current version is not looked for on open (that would
//! read the whole file every time); SQLite reports it as
//! [`StoreError::Corrupt`] when a query reaches it.
//!
//! The store runs in WAL mode with a busy timeout, so a report can read
//! while a run writes.
//!
//! # Dependencies and why
//! - `rusqlite` with the `bundled` feature: SQLite compiled into buslab, so
//!   every machine gets the same SQLite (WAL, `STRICT` tables,
//!   `quick_check`) without a system `libsqlite3` or its headers, and the
//!   store behaves the same on a laptop and in CI. One file, no server,
//!   transactions per cell, and indexed queries for the trend reports.
//!   Default features are off but `cache` (prepared statements reused for
//!   every metric row).
//! - `serde` / `serde_json`: run metadata and cell results are stored as
//!   JSON, the same encoding as the JSON export.
//! - `thiserror`: the typed [`StoreError`], carrying the store's path.

use buslab_scenarios::metrics;
use buslab_scenarios::results::{CellResult, CellStatus, Run, RunMeta, Shards};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `buslab` keeps its store unless told otherwise (under the
/// git-ignored `results/`).
pub const DEFAULT_PATH: &str = "results/buslab.sqlite";

/// `PRAGMA application_id` of a buslab store: `"BUSL"` in ASCII.
pub const APPLICATION_ID: i32 = 0x4255_534C;

/// The schema version this buslab writes: the number of migration steps.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a writer waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// One step of the schema's history.
struct Migration {
    /// What the step does, for error messages.
    summary: &'static str,
    /// Applies the step inside the opening transaction.
    apply: fn(&Transaction<'_>, &Path) -> Result<(), StoreError>,
}

/// The schema's history: step `i` takes a store from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration { summary: "create runs and cells", apply: migrate_v1 },
    Migration { summary: "add the metrics table, filled from the stored cells", apply: migrate_v2 },
    Migration { summary: "call the metrics table's metric column `metric` (the glossary's word)", apply: migrate_v3 },
];

fn migrate_v1(tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE TABLE runs (
            id          TEXT PRIMARY KEY NOT NULL,
            started_at  TEXT NOT NULL,
            finished_at TEXT,
            complete    INTEGER NOT NULL CHECK (complete IN (0, 1)),
            machine     TEXT NOT NULL,
            meta        TEXT NOT NULL
        ) STRICT;
        CREATE INDEX runs_by_start ON runs (started_at);
        CREATE INDEX runs_by_machine ON runs (machine, started_at);
        CREATE TABLE cells (
            run_id   TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            ordinal  INTEGER NOT NULL,
            name     TEXT NOT NULL,
            scenario TEXT NOT NULL,
            bus      TEXT NOT NULL,
            status   TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'skipped')),
            reason   TEXT,
            result   TEXT NOT NULL,
            PRIMARY KEY (run_id, ordinal),
            UNIQUE (run_id, name)
        ) STRICT;",
    )
    .map_err(|e| sqlite_error(path, "creating runs and cells", e))
}

/// The glossary's word (README, "Glossary"): a *metric*, not a measure.
/// SQLite renames the column in the index and the key with it.
fn migrate_v3(tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    tx.execute_batch("ALTER TABLE metrics RENAME COLUMN measure TO metric;")
        .map_err(|e| sqlite_error(path, "renaming the metrics table's measure column to metric", e))
}

fn migrate_v2(tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE TABLE metrics (
            run_id  TEXT NOT NULL,
            cell    TEXT NOT NULL,
            measure TEXT NOT NULL,
            value   REAL NOT NULL,
            lower   REAL,
            upper   REAL,
            PRIMARY KEY (run_id, cell, measure),
            FOREIGN KEY (run_id, cell) REFERENCES cells (run_id, name) ON DELETE CASCADE
        ) STRICT;
        CREATE INDEX metrics_by_cell ON metrics (cell, measure);",
    )
    .map_err(|e| sqlite_error(path, "creating the metrics table", e))?;
    // The metrics are a function of the stored cells: derive them for the
    // cells stored before this version.
    let mut select = tx
        .prepare("SELECT run_id, name, result FROM cells ORDER BY run_id, ordinal")
        .map_err(|e| sqlite_error(path, "reading cells", e))?;
    let rows = select
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)))
        .map_err(|e| sqlite_error(path, "reading cells", e))?;
    for row in rows {
        let (run_id, name, json) = row.map_err(|e| sqlite_error(path, "reading cells", e))?;
        let cell = parse_cell(path, &run_id, &name, &json)?;
        insert_metrics(tx, path, &run_id, &name, &cell)?;
    }
    Ok(())
}

/// What can go wrong with the store. Every variant names the store's path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed.
    #[error("{}: {context}", path.display())]
    Io {
        /// The store's path.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an SQLite database at all.
    #[error("{}: not a buslab results store: {detail}; the file was left unchanged", path.display())]
    NotSqlite {
        /// The store's path.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// The file is a damaged SQLite database.
    #[error(
        "{}: the results store is damaged: {detail}; the file was left unchanged (restore a backup, or move it aside to start a new store)",
        path.display()
    )]
    Corrupt {
        /// The store's path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file is an SQLite database that belongs to another application.
    #[error("{}: an SQLite database of another application ({detail}), not a buslab results store; the file was left unchanged", path.display())]
    Foreign {
        /// The store's path.
        path: PathBuf,
        /// Why it is not buslab's.
        detail: String,
    },
    /// The store was written by a newer buslab.
    #[error(
        "{}: written by a newer buslab (schema version {found}; this buslab knows versions up to {supported}); upgrade buslab to use it; the file was left unchanged",
        path.display()
    )]
    TooNew {
        /// The store's path.
        path: PathBuf,
        /// The store's schema version.
        found: i64,
        /// The newest version this buslab knows.
        supported: i64,
    },
    /// An SQLite operation failed.
    #[error("{}: {context}", path.display())]
    Sqlite {
        /// The store's path.
        path: PathBuf,
        /// What was being done.
        context: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored JSON document could not be read or written.
    #[error("{}: {context}", path.display())]
    Json {
        /// The store's path.
        path: PathBuf,
        /// What was being done.
        context: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// No run has this id.
    #[error("no run `{id}` in {}; `buslab runs` lists the run ids", path.display())]
    UnknownRun {
        /// The store's path.
        path: PathBuf,
        /// The id asked for.
        id: String,
    },
    /// A run-id prefix matches more than one run.
    #[error("run id `{prefix}` is ambiguous in {}: it begins {candidates}; give more of the id", path.display())]
    AmbiguousRun {
        /// The store's path.
        path: PathBuf,
        /// The prefix asked for.
        prefix: String,
        /// The matching ids, comma-separated.
        candidates: String,
    },
    /// A run with this id is already stored.
    #[error("{}: run `{id}` is already stored", path.display())]
    RunExists {
        /// The store's path.
        path: PathBuf,
        /// The run id.
        id: String,
    },
    /// A run to import has the id of a stored run it cannot be merged into.
    #[error("{}: cannot import run `{id}` into the stored run with that id: {detail}; nothing was imported", path.display())]
    ConflictingRun {
        /// The store's path.
        path: PathBuf,
        /// The run id.
        id: String,
        /// What differs.
        detail: String,
    },
    /// The run already has a cell with this name.
    #[error("{}: run `{run}` already has a cell `{cell}`", path.display())]
    DuplicateCell {
        /// The store's path.
        path: PathBuf,
        /// The run id.
        run: String,
        /// The cell name.
        cell: String,
    },
    /// A run to be stored lacks something the store needs.
    #[error("{}: cannot store run `{id}`: {detail}", path.display())]
    InvalidRun {
        /// The store's path.
        path: PathBuf,
        /// The run id.
        id: String,
        /// What is missing.
        detail: &'static str,
    },
}

/// Wraps an SQLite error, classifying damage as [`StoreError::Corrupt`].
fn sqlite_error(path: &Path, context: impl Into<String>, source: rusqlite::Error) -> StoreError {
    let context = context.into();
    match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path: path.to_path_buf(), detail: format!("{context}: {source}") }
        }
        Some(rusqlite::ErrorCode::NotADatabase) => {
            StoreError::NotSqlite { path: path.to_path_buf(), detail: format!("{context}: {source}") }
        }
        _ => StoreError::Sqlite { path: path.to_path_buf(), context, source },
    }
}

/// One headline figure of a cell: a row of the `metrics` table and a
/// measure in the BMF export.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    /// The metric's slug, one of [`metrics::ALL`].
    pub slug: &'static str,
    /// The value, in the metric's unit.
    pub value: f64,
    /// Lower bound of the 95% confidence interval, where there is one.
    pub lower: Option<f64>,
    /// Upper bound of the 95% confidence interval, where there is one.
    pub upper: Option<f64>,
}

/// Runs from before shared rates: the offered load (a fraction of the
/// bus's own capacity) whose latency the headline metrics report.
pub const HEADLINE_LOAD: f64 = buslab_scenarios::results::HEADLINE_LOAD;

/// The headline figures of a cell, one per metric of [`metrics::ALL`] it
/// measured, in that order: the one place that turns a [`CellResult`] into
/// rows (the `metrics` table and the BMF export both use it). Each metric
/// says how it is read (latency from the headline entry, CloudEvents rates
/// from decode-only and decode + route). A value that is not finite is
/// left out (a bound that is not finite drops the interval): it is no
/// measurement, and neither SQLite nor JSON can hold it.
pub fn metrics(cell: &CellResult) -> Vec<Metric> {
    metrics::ALL
        .iter()
        .filter_map(|m| {
            let r = m.reading(cell)?;
            let (lower, upper) = r.interval.unzip();
            Some(Metric { slug: m.slug, value: r.value, lower, upper })
        })
        .collect()
}

/// A stored run in a listing: its metadata and how its cells ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run's metadata (`finished_at` and `complete` as stored now).
    pub meta: RunMeta,
    /// Cells that finished [`CellStatus::Ok`].
    pub ok: usize,
    /// Cells that [`CellStatus::Failed`].
    pub failed: usize,
    /// Cells that were [`CellStatus::Skipped`].
    pub skipped: usize,
}

/// What [`Store::import_run`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imported {
    /// The run was added, with this many cells.
    Imported {
        /// Cells stored.
        cells: usize,
    },
    /// The run was already stored with the same cells; nothing changed.
    AlreadyPresent,
    /// The run is a shard of a stored run: its cells were added to it.
    Merged {
        /// Cells added.
        cells: usize,
    },
}

/// `cell` as stored in a run made on `run_machine`: measured on its own
/// machine, or else on `made_on` (the machine of the run it came with).
fn on_machine(cell: &CellResult, made_on: &str, run_machine: &str) -> CellResult {
    let mut cell = cell.clone();
    let measured_on = cell.measured_on(made_on).to_owned();
    cell.machine = (measured_on != run_machine).then_some(measured_on);
    cell
}

/// The first way in which `new` cannot be a part of the same run as
/// `stored` (what was measured and how), if any.
fn merge_conflict(stored: &RunMeta, new: &RunMeta) -> Option<String> {
    fn differs<T: PartialEq + std::fmt::Debug>(what: &str, a: &T, b: &T) -> Option<String> {
        (a != b).then(|| format!("its {what} differs: stored {a:?}, importing {b:?}"))
    }
    let count = |m: &RunMeta| m.shards.as_ref().map(|s| s.count);
    differs("shard count", &count(stored), &count(new))
        .or_else(|| differs("commit", &stored.git_commit, &new.git_commit))
        .or_else(|| differs("uncommitted-changes flag", &stored.git_dirty, &new.git_dirty))
        .or_else(|| differs("buslab version", &stored.buslab_version, &new.buslab_version))
        .or_else(|| differs("compiler", &stored.rustc, &new.rustc))
        .or_else(|| differs("build flags", &stored.build, &new.build))
        .or_else(|| differs("crate versions", &stored.crate_versions, &new.crate_versions))
        .or_else(|| differs("scenario files", &stored.scenario_hashes, &new.scenario_hashes))
        .or_else(|| differs("--quick flag", &stored.quick, &new.quick))
        .or_else(|| differs("label", &stored.label, &new.label))
}

/// What an existing file turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    /// No file at the path.
    Missing,
    /// An SQLite database with no tables and no application id: safe to
    /// initialise.
    Blank,
    /// A buslab store at this schema version (never above
    /// [`SCHEMA_VERSION`]).
    Buslab(i64),
}

/// An open results store. See the [module docs](self).
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `path`, creating it (and its parent directories)
    /// if there is no file, and migrating an older store to
    /// [`SCHEMA_VERSION`].
    ///
    /// Refuses, without writing to the file, anything that is not a healthy
    /// buslab store of this or an older version: see the [module
    /// docs](self).
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let existing = inspect(&path)?;
        if existing == Existing::Missing
            && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: path.clone(),
                context: "cannot create the store's directory",
                source,
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(|e| sqlite_error(&path, "opening", e))?;
        configure(&conn, &path)?;
        if existing != Existing::Buslab(SCHEMA_VERSION) {
            migrate(&mut conn, &path, SCHEMA_VERSION)?;
        }
        Ok(Store { conn, path })
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records the start of a run: stored with `complete = false` and no
    /// `finished_at`, whatever `meta` says, until [`Store::finish_run`].
    pub fn begin_run(&mut self, meta: &RunMeta) -> Result<(), StoreError> {
        let mut meta = meta.clone();
        meta.finished_at = None;
        meta.complete = false;
        let (tx, path) = self.write_tx("recording the start of a run")?;
        insert_run(&tx, path, &meta)?;
        tx.commit().map_err(|e| sqlite_error(path, "recording the start of a run", e))
    }

    /// Stores one cell of run `run_id` after the ones already stored, and
    /// its [`metrics()`]; committed before it returns, so the cell survives
    /// an interruption of the run.
    pub fn save_cell(&mut self, run_id: &str, cell: &CellResult) -> Result<(), StoreError> {
        let context = "saving a cell";
        let (tx, path) = self.write_tx(context)?;
        if !run_exists(&tx, path, run_id)? {
            return Err(StoreError::UnknownRun { path: path.to_path_buf(), id: run_id.to_owned() });
        }
        let ordinal: i64 = tx
            .query_row("SELECT coalesce(max(ordinal) + 1, 0) FROM cells WHERE run_id = ?1", [run_id], |r| r.get(0))
            .map_err(|e| sqlite_error(path, context, e))?;
        insert_cell(&tx, path, run_id, ordinal, cell)?;
        tx.commit().map_err(|e| sqlite_error(path, context, e))
    }

    /// Records the end of run `run_id`: when, and whether every planned
    /// cell finished.
    pub fn finish_run(&mut self, run_id: &str, finished_at: &str, complete: bool) -> Result<(), StoreError> {
        let context = "recording the end of a run";
        let (tx, path) = self.write_tx(context)?;
        let json: Option<String> = tx
            .query_row("SELECT meta FROM runs WHERE id = ?1", [run_id], |r| r.get(0))
            .optional()
            .map_err(|e| sqlite_error(path, context, e))?;
        let Some(json) = json else {
            return Err(StoreError::UnknownRun { path: path.to_path_buf(), id: run_id.to_owned() });
        };
        let mut meta = parse_meta(path, run_id, &json)?;
        meta.finished_at = Some(finished_at.to_owned());
        meta.complete = complete;
        let json = to_json(path, &meta, "encoding run metadata")?;
        tx.execute(
            "UPDATE runs SET finished_at = ?2, complete = ?3, meta = ?4 WHERE id = ?1",
            params![run_id, finished_at, complete, json],
        )
        .map_err(|e| sqlite_error(path, context, e))?;
        tx.commit().map_err(|e| sqlite_error(path, context, e))
    }

    /// Every stored run, oldest first, with its cell counts.
    pub fn list_runs(&self) -> Result<Vec<RunSummary>, StoreError> {
        let context = "listing runs";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.id, r.meta, r.finished_at, r.complete,
                        coalesce(sum(c.status = 'ok'), 0),
                        coalesce(sum(c.status = 'failed'), 0),
                        coalesce(sum(c.status = 'skipped'), 0)
                 FROM runs r LEFT JOIN cells c ON c.run_id = r.id
                 GROUP BY r.id
                 ORDER BY r.started_at, r.id",
            )
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, bool>(3)?,
                    [r.get::<_, i64>(4)?, r.get::<_, i64>(5)?, r.get::<_, i64>(6)?],
                ))
            })
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        let mut runs = Vec::new();
        for row in rows {
            let (id, json, finished_at, complete, [ok, failed, skipped]) =
                row.map_err(|e| sqlite_error(&self.path, context, e))?;
            let mut meta = parse_meta(&self.path, &id, &json)?;
            meta.finished_at = finished_at;
            meta.complete = complete;
            let count = |n: i64| usize::try_from(n).expect("a count of rows is not negative");
            runs.push(RunSummary { meta, ok: count(ok), failed: count(failed), skipped: count(skipped) });
        }
        Ok(runs)
    }

    /// The run `id` with its cells in the order they were stored.
    pub fn load_run(&self, id: &str) -> Result<Run, StoreError> {
        let context = "loading a run";
        let row: Option<(String, Option<String>, bool)> = self
            .conn
            .query_row("SELECT meta, finished_at, complete FROM runs WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        let Some((json, finished_at, complete)) = row else {
            return Err(StoreError::UnknownRun { path: self.path.clone(), id: id.to_owned() });
        };
        let mut meta = parse_meta(&self.path, id, &json)?;
        meta.finished_at = finished_at;
        meta.complete = complete;
        let mut stmt = self
            .conn
            .prepare("SELECT name, result FROM cells WHERE run_id = ?1 ORDER BY ordinal")
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        let rows = stmt
            .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        let mut cells = Vec::new();
        for row in rows {
            let (name, json) = row.map_err(|e| sqlite_error(&self.path, context, e))?;
            cells.push(parse_cell(&self.path, id, &name, &json)?);
        }
        // Shards merged into one run may bring a point's floor and its
        // buses from different slices.
        let mut run = Run { meta, cells };
        run.attach_floors();
        Ok(run)
    }

    /// The id of the most recently started ordinary run (one without a
    /// [`RunMeta::label`], so never an A/A run of `buslab noise`), if any:
    /// what commands use when no run is named.
    pub fn latest_run_id(&self) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM runs WHERE json_extract(meta, '$.label') IS NULL
                 ORDER BY started_at DESC, id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sqlite_error(&self.path, "finding the latest run", e))
    }

    /// The ids of the runs labelled `label` (see [`RunMeta::label`]),
    /// oldest first.
    pub fn run_ids_labelled(&self, label: &str) -> Result<Vec<String>, StoreError> {
        let context = "finding labelled runs";
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM runs WHERE json_extract(meta, '$.label') = ?1 ORDER BY started_at, id")
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        stmt.query_map([label], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| sqlite_error(&self.path, context, e))
    }

    /// The label of the most recently started labelled run whose label
    /// begins with `prefix` (e.g. the latest noise group), if any.
    pub fn latest_label(&self, prefix: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT json_extract(meta, '$.label') FROM runs
                 WHERE substr(json_extract(meta, '$.label'), 1, length(?1)) = ?1
                 ORDER BY started_at DESC, id DESC LIMIT 1",
                [prefix],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sqlite_error(&self.path, "finding the latest label", e))
    }

    /// The most recently started ordinary run, if any (see
    /// [`Store::latest_run_id`]).
    pub fn latest_run(&self) -> Result<Option<Run>, StoreError> {
        self.latest_run_id()?.map(|id| self.load_run(&id)).transpose()
    }

    /// The id of the latest run started before run `id` on the same
    /// `machine` with the same [`RunMeta::label`] (complete or not), if
    /// any: the natural baseline. An ordinary run's baseline is never a run
    /// of `buslab noise`.
    pub fn previous_run_id(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.earlier_run_ids(id, 1)?.pop())
    }

    /// The ids of the `limit` latest runs started before run `id` on the
    /// same `machine` with the same [`RunMeta::label`] (complete or not),
    /// oldest first: the history a comparison learns its noise bands from
    /// (so the A/A runs of `buslab noise` never enter an ordinary run's
    /// history, nor ordinary runs a noise group's).
    pub fn earlier_run_ids(&self, id: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let context = "finding earlier runs";
        let this: Option<(String, String, Option<String>)> = self
            .conn
            .query_row("SELECT machine, started_at, json_extract(meta, '$.label') FROM runs WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        let Some((machine, started_at, label)) = this else {
            return Err(StoreError::UnknownRun { path: self.path.clone(), id: id.to_owned() });
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id FROM runs
                 WHERE machine = ?1 AND (started_at < ?2 OR (started_at = ?2 AND id < ?3))
                   AND json_extract(meta, '$.label') IS ?5
                 ORDER BY started_at DESC, id DESC LIMIT ?4",
            )
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut ids = stmt
            .query_map(params![machine, started_at, id, limit, label], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        ids.reverse();
        Ok(ids)
    }

    /// The latest run started before run `id` on the same `machine`, if any.
    pub fn previous_run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        self.previous_run_id(id)?.map(|id| self.load_run(&id)).transpose()
    }

    /// The `limit` latest runs on the same machine as run `id` that started
    /// no later than it (run `id` included, last), oldest first, *light*:
    /// each cell without its folded stacks and latency histograms, which
    /// trends and regression verdicts never read. This is what a report
    /// loads a year of history with.
    pub fn load_history(&self, id: &str, limit: usize) -> Result<Vec<Run>, StoreError> {
        // The query below blanks the histograms of the first 8 latency
        // entries: as many as a cell can have (named rates, or the grid and
        // the rates beyond it).
        const _: () = assert!(
            buslab_scenarios::spec::MAX_LATENCY_RATES <= 8
                && crate::rates::Grid::MAX_RATES + crate::rates::BEYOND_RATES <= 8
        );
        let context = "loading the history of runs";
        let mut ids = self.earlier_run_ids(id, limit.saturating_sub(1))?;
        ids.push(id.to_owned());
        let mut runs: Vec<Run> = Vec::with_capacity(ids.len());
        let mut index = std::collections::HashMap::with_capacity(ids.len());
        {
            let mut meta_stmt = self
                .conn
                .prepare_cached("SELECT meta, finished_at, complete FROM runs WHERE id = ?1")
                .map_err(|e| sqlite_error(&self.path, context, e))?;
            for run_id in &ids {
                let (json, finished_at, complete): (String, Option<String>, bool) = meta_stmt
                    .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(|e| sqlite_error(&self.path, context, e))?;
                let mut meta = parse_meta(&self.path, run_id, &json)?;
                meta.finished_at = finished_at;
                meta.complete = complete;
                index.insert(run_id.clone(), runs.len());
                runs.push(Run { meta, cells: Vec::new() });
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT run_id, name,
                        json_replace(result,
                            '$.profile', json('null'),
                            '$.latency[0].histogram', '', '$.latency[1].histogram', '',
                            '$.latency[2].histogram', '', '$.latency[3].histogram', '',
                            '$.latency[4].histogram', '', '$.latency[5].histogram', '',
                            '$.latency[6].histogram', '', '$.latency[7].histogram', '')
                 FROM cells
                 WHERE run_id IN (SELECT value FROM json_each(?1))
                 ORDER BY run_id, ordinal",
            )
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        let wanted = serde_json::to_string(&ids).expect("a list of strings serialises");
        let rows = stmt
            .query_map([wanted], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        for row in rows {
            let (run_id, name, json) = row.map_err(|e| sqlite_error(&self.path, context, e))?;
            let cell = parse_cell(&self.path, &run_id, &name, &json)?;
            if let Some(&i) = index.get(&run_id) {
                runs[i].cells.push(cell);
            }
        }
        Ok(runs)
    }

    /// The id of the run that `id_or_prefix` names: an exact id, or the
    /// beginning of exactly one run's id.
    pub fn resolve_run(&self, id_or_prefix: &str) -> Result<String, StoreError> {
        let context = "looking up a run id";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id FROM runs WHERE substr(id, 1, length(?1)) = ?1
                 ORDER BY id = ?1 DESC, started_at, id LIMIT 6",
            )
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        let ids = stmt
            .query_map([id_or_prefix], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| sqlite_error(&self.path, context, e))?;
        match ids.as_slice() {
            [] => Err(StoreError::UnknownRun { path: self.path.clone(), id: id_or_prefix.to_owned() }),
            [one, ..] if one == id_or_prefix => Ok(one.clone()),
            [one] => Ok(one.clone()),
            many => {
                let mut candidates = many.iter().take(5).map(String::as_str).collect::<Vec<_>>().join(", ");
                if many.len() > 5 {
                    candidates.push_str(", …");
                }
                Err(StoreError::AmbiguousRun { path: self.path.clone(), prefix: id_or_prefix.to_owned(), candidates })
            }
        }
    }

    /// Adds a run made elsewhere (a JSON export), cells and all, in one
    /// transaction: either all of it is stored or nothing is.
    ///
    /// - A run whose id is not stored yet is added.
    /// - A run already stored with the same cells is left as it is
    ///   ([`Imported::AlreadyPresent`]): importing twice keeps one copy.
    /// - A shard of a run whose other shards are stored
    ///   (`buslab run --shard I/N --run-id ID` on several machines) is
    ///   merged into it ([`Imported::Merged`]): its cells are added after
    ///   the stored ones, the shards held are united, the start is the
    ///   earliest and the run is complete when every part was. The parts
    ///   must agree on what was measured and how — commit, build, compiler,
    ///   crate versions, scenario files, `--quick`, label, shard count
    ///   ([`StoreError::ConflictingRun`] otherwise) — and must not share a
    ///   shard or a cell ([`StoreError::DuplicateCell`]). The stored run's
    ///   metadata (machine, CPU, harness overhead) stays; the cells of a
    ///   part made on another machine record that machine in
    ///   [`CellResult::machine`].
    /// - Any other run with a stored id is refused
    ///   ([`StoreError::ConflictingRun`]); the stored run is never changed.
    pub fn import_run(&mut self, run: &Run) -> Result<Imported, StoreError> {
        let context = "importing a run";
        let (tx, path) = self.write_tx(context)?;
        let id = &run.meta.id;
        let stored: Option<String> = tx
            .query_row("SELECT meta FROM runs WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| sqlite_error(path, context, e))?;
        let Some(stored) = stored else {
            insert_run(&tx, path, &run.meta)?;
            for (ordinal, cell) in (0_i64..).zip(&run.cells) {
                insert_cell(&tx, path, id, ordinal, &on_machine(cell, &run.meta.machine, &run.meta.machine))?;
            }
            tx.commit().map_err(|e| sqlite_error(path, context, e))?;
            return Ok(Imported::Imported { cells: run.cells.len() });
        };
        let stored = parse_meta(path, id, &stored)?;
        let mut present = std::collections::HashMap::new();
        {
            let mut stmt = tx
                .prepare("SELECT name, result FROM cells WHERE run_id = ?1")
                .map_err(|e| sqlite_error(path, context, e))?;
            let rows = stmt
                .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(|e| sqlite_error(path, context, e))?;
            for row in rows {
                let (name, json) = row.map_err(|e| sqlite_error(path, context, e))?;
                let cell = parse_cell(path, id, &name, &json)?;
                present.insert(name, cell);
            }
        }
        let incoming: Vec<CellResult> =
            run.cells.iter().map(|c| on_machine(c, &run.meta.machine, &stored.machine)).collect();
        // Already stored: every cell, and every shard it says it holds (a
        // shard may hold no cell at all: shards cut whole scenario points,
        // and a matrix can have fewer points than shards).
        let shards_held = match (&stored.shards, &run.meta.shards) {
            (Some(have), Some(new)) => new.held.iter().all(|s| have.held.contains(s)),
            _ => true,
        };
        if shards_held && incoming.iter().all(|c| present.get(&c.key.name()) == Some(c)) {
            return Ok(Imported::AlreadyPresent);
        }
        let conflict = |detail: String| StoreError::ConflictingRun { path: path.to_path_buf(), id: id.clone(), detail };
        let (Some(have), Some(new)) = (&stored.shards, &run.meta.shards) else {
            return Err(conflict(
                "it is stored with other cells, and the two are not shards of one run (only shards made with \
                 `buslab run --shard I/N --run-id ID` merge)"
                    .to_owned(),
            ));
        };
        if let Some(field) = merge_conflict(&stored, &run.meta) {
            return Err(conflict(field));
        }
        if let Some(shard) = new.held.iter().find(|s| have.held.contains(s)) {
            return Err(conflict(format!("shard {shard}/{} is already stored with other cells", have.count)));
        }
        if let Some(cell) = incoming.iter().find(|c| present.contains_key(&c.key.name())) {
            return Err(StoreError::DuplicateCell { path: path.to_path_buf(), run: id.clone(), cell: cell.key.name() });
        }
        let next: i64 = tx
            .query_row("SELECT coalesce(max(ordinal) + 1, 0) FROM cells WHERE run_id = ?1", [id], |r| r.get(0))
            .map_err(|e| sqlite_error(path, context, e))?;
        for (ordinal, cell) in (next..).zip(&incoming) {
            insert_cell(&tx, path, id, ordinal, cell)?;
        }
        let mut merged = stored.clone();
        let mut held: Vec<u32> = have.held.iter().chain(&new.held).copied().collect();
        held.sort_unstable();
        held.dedup();
        merged.shards = Some(Shards { count: have.count, held });
        // Each shard chose its scenarios' trials from its own store; the
        // cells carry the counts they ran, the run keeps one per scenario.
        for (scenario, chosen) in &run.meta.chosen_trials {
            merged.chosen_trials.entry(scenario.clone()).or_insert_with(|| chosen.clone());
        }
        merged.started_at = stored.started_at.clone().min(run.meta.started_at.clone());
        merged.finished_at = match (&stored.finished_at, &run.meta.finished_at) {
            (Some(a), Some(b)) => Some(a.clone().max(b.clone())),
            _ => None,
        };
        merged.complete = stored.complete && run.meta.complete;
        let json = to_json(path, &merged, "encoding run metadata")?;
        tx.execute(
            "UPDATE runs SET started_at = ?2, finished_at = ?3, complete = ?4, meta = ?5 WHERE id = ?1",
            params![id, merged.started_at, merged.finished_at, merged.complete, json],
        )
        .map_err(|e| sqlite_error(path, context, e))?;
        tx.commit().map_err(|e| sqlite_error(path, context, e))?;
        Ok(Imported::Merged { cells: incoming.len() })
    }

    /// Begins an immediate (write-locking) transaction.
    /// Returns the path beside it, as the transaction borrows `self`.
    fn write_tx(&mut self, context: &str) -> Result<(Transaction<'_>, &Path), StoreError> {
        let Store { conn, path } = self;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| sqlite_error(path, context, e))?;
        Ok((tx, path))
    }
}

/// Per-connection settings: busy timeout, WAL, foreign keys.
fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| sqlite_error(path, "configuring the connection", e);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    // WAL lets readers (reports) and the writer (a run) work at once. Where
    // the file system cannot do WAL, SQLite keeps its rollback journal and
    // the busy timeout still serialises access, so the answer is not checked.
    let _mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(err)?;
    // Durable across a crash of the process (which is what an interrupted
    // run is); WAL with NORMAL only risks the last commits on power loss.
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(err)
}

/// Applies the migration steps from the store's version up to `target`, in
/// one transaction, and marks the file as buslab's.
fn migrate(conn: &mut Connection, path: &Path, target: i64) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sqlite_error(path, "starting the schema migration", e))?;
    // Read again under the write lock: another buslab may have migrated the
    // store since it was inspected.
    let current: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| sqlite_error(path, "reading the schema version", e))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found: current, supported: SCHEMA_VERSION });
    }
    if current >= target {
        return Ok(());
    }
    let Ok(done) = usize::try_from(current) else {
        return Err(StoreError::Corrupt { path: path.to_path_buf(), detail: format!("schema version {current}") });
    };
    for (version, step) in (1_i64..).zip(MIGRATIONS).skip(done) {
        if version > target {
            break;
        }
        (step.apply)(&tx, path).map_err(|e| match e {
            StoreError::Sqlite { path, context, source } => StoreError::Sqlite {
                path,
                context: format!("migrating to schema version {version} ({}): {context}", step.summary),
                source,
            },
            other => other,
        })?;
    }
    let err = |e| sqlite_error(path, "recording the schema version", e);
    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(err)?;
    tx.pragma_update(None, "user_version", target).map_err(err)?;
    tx.commit().map_err(|e| sqlite_error(path, "committing the schema migration", e))
}

/// What the first bytes of an SQLite file say.
struct Header {
    /// `PRAGMA application_id`.
    application_id: i32,
    /// `PRAGMA user_version`.
    user_version: i32,
    /// `sqlite_schema` is empty: no table, index, view or trigger.
    empty_schema: bool,
}

/// Finds out what the file at `path` is, without writing to it or leaving
/// anything beside it. Anything but a missing file, a blank SQLite
/// database or a healthy buslab store of at most [`SCHEMA_VERSION`] is an
/// error.
///
/// The header is read by hand: with no write-ahead log beside the file it
/// is authoritative, and reading it needs no SQLite connection (a read-only
/// connection to a WAL-mode database leaves `-wal` and `-shm` files behind,
/// even beside another application's file). With a log beside the file,
/// the header may be stale, and a read-only connection reads through the
/// log. Before a migration, a read-only `PRAGMA quick_check` makes sure the
/// migration will not write into a damaged store.
fn inspect(path: &Path) -> Result<Existing, StoreError> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Missing),
        Err(source) => {
            return Err(StoreError::Io { path: path.to_path_buf(), context: "cannot inspect the store", source });
        }
    };
    if !metadata.is_file() {
        return Err(StoreError::NotSqlite { path: path.to_path_buf(), detail: "it is not a regular file".to_owned() });
    }
    let has_wal = sibling(path, "-wal").exists();
    let header = read_header(path, metadata.len(), has_wal)?;
    let (application_id, version, empty_schema) = if has_wal {
        let ro = open_read_only(path)?;
        let pragma = |name: &str| -> Result<i64, StoreError> {
            ro.pragma_query_value(None, name, |r| r.get(0))
                .map_err(|e| sqlite_error(path, format!("reading PRAGMA {name}"), e))
        };
        let objects: i64 = ro
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(|e| sqlite_error(path, "reading the schema", e))?;
        (pragma("application_id")?, pragma("user_version")?, objects == 0)
    } else {
        (i64::from(header.application_id), i64::from(header.user_version), header.empty_schema)
    };
    if application_id != i64::from(APPLICATION_ID) {
        if application_id == 0 && version == 0 && empty_schema {
            return Ok(Existing::Blank);
        }
        let detail = if application_id == 0 {
            "it has a schema but no application id".to_owned()
        } else {
            format!("application id {application_id:#010x}; buslab's is {APPLICATION_ID:#010x}")
        };
        return Err(StoreError::Foreign { path: path.to_path_buf(), detail });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found: version, supported: SCHEMA_VERSION });
    }
    if version < 0 {
        return Err(StoreError::Corrupt { path: path.to_path_buf(), detail: format!("schema version {version}") });
    }
    if version < SCHEMA_VERSION {
        let verdict: String = open_read_only(path)?
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| sqlite_error(path, "checking integrity before migrating", e))?;
        if verdict != "ok" {
            return Err(StoreError::Corrupt { path: path.to_path_buf(), detail: verdict });
        }
    }
    Ok(Existing::Buslab(version))
}

/// `path` with `suffix` appended to its file name (`x.sqlite-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let ro = Connection::open_with_flags(path, flags).map_err(|e| sqlite_error(path, "opening read-only", e))?;
    ro.busy_timeout(BUSY_TIMEOUT).map_err(|e| sqlite_error(path, "opening read-only", e))?;
    Ok(ro)
}

/// Reads the 100-byte SQLite header and the b-tree header of page 1 that
/// follows it, and checks the file's length against them. See
/// <https://www.sqlite.org/fileformat.html>.
fn read_header(path: &Path, len: u64, has_wal: bool) -> Result<Header, StoreError> {
    let not_sqlite = |detail: String| StoreError::NotSqlite { path: path.to_path_buf(), detail };
    let corrupt = |detail: String| StoreError::Corrupt { path: path.to_path_buf(), detail };
    if len == 0 {
        return Err(not_sqlite("the file is empty".to_owned()));
    }
    let mut header = Vec::with_capacity(108);
    std::fs::File::open(path).and_then(|f| f.take(108).read_to_end(&mut header)).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        context: "cannot read the store",
        source,
    })?;
    if !header.starts_with(SQLITE_MAGIC) {
        if SQLITE_MAGIC.starts_with(&header) {
            return Err(corrupt(format!("truncated to {len} bytes, inside the SQLite header")));
        }
        let detail = match std::str::from_utf8(&header) {
            Ok(_) => "it is a text file, not an SQLite database".to_owned(),
            Err(_) => "it does not begin with the SQLite file header".to_owned(),
        };
        return Err(not_sqlite(detail));
    }
    if header.len() < 100 {
        return Err(corrupt(format!("truncated to {len} bytes, inside the 100-byte SQLite header")));
    }
    let be16 = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let page_size = match be16(16) {
        1 => 65_536,
        n => u64::from(n),
    };
    if !page_size.is_power_of_two() || !(512..=65_536).contains(&page_size) {
        return Err(corrupt(format!("invalid page size {page_size} in the header")));
    }
    if !len.is_multiple_of(page_size) {
        return Err(corrupt(format!(
            "truncated or padded: {len} bytes is not a whole number of {page_size}-byte pages"
        )));
    }
    // The header's page count is valid when its "version valid for" field
    // matches the change counter. With a write-ahead log beside the file,
    // the log may hold pages still to be written back: SQLite recovers them.
    let pages = u64::from(be32(28));
    if be32(92) == be32(24) && len < pages * page_size && !has_wal {
        return Err(corrupt(format!(
            "truncated: the header counts {pages} pages of {page_size} bytes ({} bytes), the file has {len}",
            pages * page_size
        )));
    }
    // A whole page follows the header (the length is a multiple of a page
    // size of at least 512), so the b-tree header of page 1 was read too:
    // a leaf (0x0d) with no cells is an empty schema.
    let empty_schema = header[100] == 0x0d && be16(103) == 0;
    Ok(Header { application_id: be32(68) as i32, user_version: be32(60) as i32, empty_schema })
}

fn run_exists(tx: &Transaction<'_>, path: &Path, id: &str) -> Result<bool, StoreError> {
    tx.query_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(|e| sqlite_error(path, "looking up a run", e))
}

fn insert_run(tx: &Transaction<'_>, path: &Path, meta: &RunMeta) -> Result<(), StoreError> {
    let invalid = |detail| StoreError::InvalidRun { path: path.to_path_buf(), id: meta.id.clone(), detail };
    if meta.id.is_empty() {
        return Err(invalid("the run id is empty"));
    }
    if meta.started_at.is_empty() {
        return Err(invalid("the start time is empty"));
    }
    if run_exists(tx, path, &meta.id)? {
        return Err(StoreError::RunExists { path: path.to_path_buf(), id: meta.id.clone() });
    }
    let json = to_json(path, meta, "encoding run metadata")?;
    tx.execute(
        "INSERT INTO runs (id, started_at, finished_at, complete, machine, meta)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![meta.id, meta.started_at, meta.finished_at, meta.complete, meta.machine, json],
    )
    .map_err(|e| sqlite_error(path, "storing a run", e))?;
    Ok(())
}

fn insert_cell(
    tx: &Transaction<'_>,
    path: &Path,
    run_id: &str,
    ordinal: i64,
    cell: &CellResult,
) -> Result<(), StoreError> {
    let name = cell.key.name();
    let context = || format!("storing cell `{name}` of run `{run_id}`");
    let taken = tx
        .query_row("SELECT 1 FROM cells WHERE run_id = ?1 AND name = ?2", [run_id, &name], |_| Ok(()))
        .optional()
        .map_err(|e| sqlite_error(path, context(), e))?;
    if taken.is_some() {
        return Err(StoreError::DuplicateCell { path: path.to_path_buf(), run: run_id.to_owned(), cell: name });
    }
    let (status, reason) = match &cell.status {
        CellStatus::Ok => ("ok", None),
        CellStatus::Failed(reason) => ("failed", Some(reason)),
        CellStatus::Skipped(reason) => ("skipped", Some(reason)),
    };
    let json = to_json(path, cell, "encoding a cell result")?;
    tx.execute(
        "INSERT INTO cells (run_id, ordinal, name, scenario, bus, status, reason, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![run_id, ordinal, name, cell.key.scenario, cell.key.bus, status, reason, json],
    )
    .map_err(|e| sqlite_error(path, context(), e))?;
    insert_metrics(tx, path, run_id, &name, cell)
}

fn insert_metrics(
    tx: &Transaction<'_>,
    path: &Path,
    run_id: &str,
    name: &str,
    cell: &CellResult,
) -> Result<(), StoreError> {
    let err = |e| sqlite_error(path, format!("storing the metrics of cell `{name}` of run `{run_id}`"), e);
    let mut stmt = tx
        .prepare_cached(
            // Columns by position: (run_id, cell, metric, value, lower,
            // upper), so that the step that created the table (whose
            // third column was called `measure` until the next step) can
            // fill it too.
            "INSERT INTO metrics VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(err)?;
    for m in metrics(cell) {
        stmt.execute(params![run_id, name, m.slug, m.value, m.lower, m.upper]).map_err(err)?;
    }
    Ok(())
}

fn to_json(path: &Path, value: &impl Serialize, context: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Json {
        path: path.to_path_buf(),
        context: context.to_owned(),
        source,
    })
}

fn parse_meta(path: &Path, id: &str, json: &str) -> Result<RunMeta, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Json {
        path: path.to_path_buf(),
        context: format!("reading the metadata of run `{id}`"),
        source,
    })
}

fn parse_cell(path: &Path, run_id: &str, name: &str, json: &str) -> Result<CellResult, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Json {
        path: path.to_path_buf(),
        context: format!("reading cell `{name}` of run `{run_id}`"),
        source,
    })
}

/// A realistic run with every field filled, for the tests of this crate.
#[cfg(test)]
pub mod sample {
    use buslab_scenarios::results::{
        Allocations, CellKey, CellResult, CellStatus, Estimate, Instructions, Latency, LatencyRepetition, Profile, Run,
        RunMeta, Throughput,
    };
    use std::collections::BTreeMap;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn estimate(median: f64) -> Estimate {
        Estimate {
            median,
            lower: median * 0.97,
            upper: median * 1.02,
            samples: vec![median * 0.96, median * 0.99, median, median * 1.01, median * 1.03],
        }
    }

    fn latency(load: f64, base: u64) -> Latency {
        Latency {
            load,
            offered_per_sec: 4.0e6 * load,
            p50_ns: base,
            p90_ns: base * 2,
            p99_ns: base * 5,
            p999_ns: base * 12,
            p9999_ns: base * 30,
            max_ns: base * 90,
            count: 200_000,
            histogram: "HISTFAAAACl4nJNpmSzMwMDAxAABzFCaEUzOmNZg/wEi0NzIyszUzNjMyNTMwtDAwA==".to_owned(),
            spike_p99_ns: (load == 0.0).then_some(base * 40),
            drain_ns: (load == 0.0).then_some(1_250_000),
            repetitions: [base * 5, base * 4, base * 6]
                .iter()
                .map(|&p99| LatencyRepetition {
                    p50_ns: base,
                    p99_ns: p99,
                    p999_ns: base * 12,
                    count: 70_000,
                    misses: 0,
                })
                .collect(),
            ..Latency::default()
        }
    }

    /// A cell that measured everything.
    pub fn full_cell(scenario: &str, bus: &str, subscribers: usize) -> CellResult {
        let key = CellKey {
            scenario: scenario.to_owned(),
            bus: bus.to_owned(),
            params: map(&[("subscribers", &subscribers.to_string())]),
        };
        let mut cell = CellResult::new(key, 1, subscribers);
        cell.throughput = Some(Throughput {
            events_per_sec: estimate(3.5e6),
            deliveries_per_sec: estimate(3.5e6 * subscribers as f64),
            events_per_trial: 1_000_000,
            trial_ns: vec![285_000_000, 286_500_000, 284_900_000],
            cpu_ns_per_event: Some(estimate(290.0)),
            loss_rate: Some(0.0),
            processes: Vec::new(),
        });
        cell.latency = vec![latency(0.25, 180), latency(0.5, 240), latency(0.8, 610)];
        cell.allocations =
            Some(Allocations { allocs_per_event: 0.0, bytes_per_event: 0.0, peak_bytes: 65_536, events: 100_000 });
        cell.instructions = Some(Instructions {
            ir_per_event: 412.5,
            l1_hits_per_event: 380.0,
            ll_hits_per_event: 2.5,
            ram_hits_per_event: 0.25,
            est_cycles_per_event: 401.25,
            branch_misses_per_event: 1.75,
            events: 10_000,
            multithreaded: false,
        });
        cell.profile = Some(Profile {
            samples: 4_000,
            frequency_hz: 999,
            folded: "main;drive;publish 3100\nmain;drive;listener 900\n".to_owned(),
        });
        cell.floor = Some(buslab_scenarios::results::Floor {
            ns_per_event: Some((150.0, 148.0, 153.0)),
            ir_per_event: Some(28.0),
            in_line: true,
        });
        cell.skipped_passes = map(&[("latency-0.95", "above capacity")]);
        cell.dropped = 3;
        cell.listener_panics = 1;
        cell
    }

    /// A burst cell: one latency entry at load 0.
    pub fn burst_cell() -> CellResult {
        let key = CellKey {
            scenario: "burst".to_owned(),
            bus: "ring_buffer".to_owned(),
            params: map(&[("ring", "1024"), ("subscribers", "4")]),
        };
        let mut cell = CellResult::new(key, 2, 4);
        cell.throughput = Some(Throughput {
            events_per_sec: estimate(1.2e6),
            deliveries_per_sec: estimate(4.8e6),
            events_per_trial: 500_000,
            trial_ns: vec![416_000_000, 417_100_000],
            cpu_ns_per_event: None,
            loss_rate: Some(0.125),
            processes: Vec::new(),
        });
        cell.latency = vec![latency(0.0, 900)];
        cell
    }

    /// A run of four cells (ok, burst, failed, skipped) with all metadata.
    pub fn run(id: &str, machine: &str, started_at: &str) -> Run {
        let mut failed = full_cell("fanout", "channel", 64);
        failed.status = CellStatus::Failed("delivered 63 of 64 expected events".to_owned());
        failed.throughput = None;
        failed.latency.clear();
        failed.allocations = None;
        failed.instructions = None;
        failed.profile = None;
        let mut skipped = CellResult::new(
            CellKey {
                scenario: "fanout".to_owned(),
                bus: "fixed_array".to_owned(),
                params: map(&[("subscribers", "128")]),
            },
            1,
            128,
        );
        skipped.status = CellStatus::Skipped("max 64 subscribers".to_owned());
        skipped.skipped_passes = map(&[("throughput", "cell skipped")]);
        Run {
            meta: RunMeta {
                id: id.to_owned(),
                started_at: started_at.to_owned(),
                finished_at: Some(format!("{}:59Z", &started_at[..16])),
                complete: true,
                quick: true,
                args: vec!["buslab".to_owned(), "run".to_owned(), "--quick".to_owned()],
                buslab_version: "0.1.0".to_owned(),
                git_commit: Some("5fbd962a1b2c3d4e5f60718293a4b5c6d7e8f901".to_owned()),
                git_dirty: Some(true),
                rustc: "rustc 1.95.0 (59807616e 2026-04-14)".to_owned(),
                build: map(&[("opt-level", "3"), ("lto", "fat"), ("RUSTFLAGS", "-C target-cpu=native")]),
                machine: machine.to_owned(),
                cpu: "AMD EPYC 7B13".to_owned(),
                cores: 2,
                os: "Linux 6.8.0".to_owned(),
                crate_versions: map(&[("crossbeam-channel", "0.5.15"), ("tokio", "1.44.2")]),
                scenario_hashes: map(&[("fanout", "9f86d081884c7d65"), ("burst", "60303ae22b998861")]),
                scenario_descriptions: map(&[("fanout", "One producer, many subscribers."), ("burst", "Spikes.")]),
                harness_overhead_ns: Some(1.5),
                corpus: None,
                buses: crate::meta::buses(),
                label: None,
                shards: None,
                methodology: buslab_scenarios::results::METHODOLOGY,
                work_ns_per_iteration: Some(1.4),
                loss_acceptable: Default::default(),
                processes: None,
                trials: None,
                chosen_trials: Default::default(),
            },
            cells: vec![full_cell("fanout", "channel", 16), burst_cell(), failed, skipped],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buslab_scenarios::results::{CellKey, ChosenTrials, Estimate, Profile, Throughput};

    fn store_in(dir: &tempfile::TempDir) -> (Store, PathBuf) {
        let path = dir.path().join("nested/dir/buslab.sqlite");
        (Store::open(&path).expect("a new store opens"), path)
    }

    /// Stores `run` the way a live run does.
    fn record(store: &mut Store, run: &Run) {
        store.begin_run(&run.meta).expect("begin");
        for cell in &run.cells {
            store.save_cell(&run.meta.id, cell).expect("save cell");
        }
        let finished = run.meta.finished_at.as_deref().expect("sample runs finish");
        store.finish_run(&run.meta.id, finished, run.meta.complete).expect("finish");
    }

    fn count(path: &Path, sql: &str) -> i64 {
        let conn = Connection::open(path).expect("open");
        conn.query_row(sql, [], |r| r.get(0)).expect("query")
    }

    fn total_metrics(run: &Run) -> i64 {
        run.cells.iter().map(|c| metrics(c).len() as i64).sum()
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, path) = store_in(&dir);
        let run = sample::run("20260501T120000Z-a1b2", "box-1", "2026-05-01T12:00:00Z");
        record(&mut store, &run);
        assert_eq!(store.load_run(&run.meta.id).expect("load"), run);
        let repetitions = |r: &Run| r.cells[0].latency[1].repetitions.clone();
        assert_eq!(repetitions(&store.load_run(&run.meta.id).expect("load")).len(), 3, "latency repetitions kept");
        assert_eq!(repetitions(&store.load_run(&run.meta.id).expect("load")), repetitions(&run));
        drop(store);

        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.load_run(&run.meta.id).expect("load after reopen"), run);
        let listed = store.list_runs().expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].meta, run.meta);
        assert_eq!((listed[0].ok, listed[0].failed, listed[0].skipped), (2, 1, 1));
        assert_eq!(count(&path, "SELECT count(*) FROM metrics"), total_metrics(&run));
        assert_eq!(count(&path, "PRAGMA application_id"), i64::from(APPLICATION_ID));
        assert_eq!(count(&path, "PRAGMA user_version"), SCHEMA_VERSION);
        let conn = Connection::open(&path).expect("open");
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("mode");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn metrics_rows_hold_the_headline_figures() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, path) = store_in(&dir);
        let run = sample::run("r1", "box-1", "2026-05-01T12:00:00Z");
        record(&mut store, &run);
        let conn = Connection::open(&path).expect("open");
        let (value, lower, upper): (f64, Option<f64>, Option<f64>) = conn
            .query_row(
                "SELECT value, lower, upper FROM metrics WHERE cell = ?1 AND metric = 'throughput'",
                ["fanout/channel/subscribers=16"],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("throughput row");
        assert_eq!((value, lower, upper), (3.5e6, Some(3.5e6 * 0.97), Some(3.5e6 * 1.02)));
        let p99: f64 = conn
            .query_row(
                "SELECT value FROM metrics WHERE cell = ?1 AND metric = 'latency-p99'",
                ["burst/ring_buffer/ring=1024/subscribers=4"],
                |r| r.get(0),
            )
            .expect("burst p99 row");
        assert_eq!(p99, 4_500.0);
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT value FROM metrics WHERE cell = 'x' AND metric = 'throughput'",
                [],
                |r| r.get(3),
            )
            .expect("plan");
        assert!(plan.contains("metrics_by_cell"), "{plan}");
    }

    /// The metrics only `cloudevents` cells have.
    const CLOUDEVENTS_METRICS: [&str; 3] = ["decode-throughput", "decode-bytes", "route-bytes"];

    #[test]
    fn metrics_pick_headline_load_burst_entry_and_skip_non_finite() {
        let run = sample::run("r", "m", "2026-05-01T12:00:00Z");
        let slugs = |c: &CellResult| metrics(c).iter().map(|m| m.slug).collect::<Vec<_>>();
        let all: Vec<&str> = metrics::ALL.iter().map(|m| m.slug).filter(|s| !CLOUDEVENTS_METRICS.contains(s)).collect();
        assert_eq!(slugs(&run.cells[0]), all);
        let full = metrics(&run.cells[0]);
        let at = |slug: &str| full.iter().find(|m| m.slug == slug).expect("measured");
        assert_eq!(at("latency-p50").value, 240.0, "p50 at load 0.5");
        assert_eq!(at("latency-p999").value, 240.0 * 12.0, "p999 at load 0.5");
        assert!(full.iter().skip_while(|m| m.slug != "latency-p50").all(|m| m.lower.is_none() && m.upper.is_none()));
        let burst = metrics(&run.cells[1]);
        let burst_p50 = burst.iter().find(|m| m.slug == "latency-p50").expect("burst p50");
        assert_eq!(*burst_p50, Metric { slug: "latency-p50", value: 900.0, lower: None, upper: None });
        let loss = burst.iter().find(|m| m.slug == "loss-rate").expect("burst loss rate");
        assert_eq!(loss.value, 0.125);
        assert!(metrics(&run.cells[2]).is_empty(), "a failed cell keeps no numbers");
        assert!(metrics(&run.cells[3]).is_empty());

        let mut odd = CellResult::new(run.cells[0].key.clone(), 1, 1);
        odd.throughput = Some(Throughput {
            events_per_sec: Estimate { median: f64::NAN, ..Estimate::default() },
            deliveries_per_sec: Estimate { median: 5.0, lower: f64::NEG_INFINITY, upper: 6.0, samples: vec![] },
            ..Throughput::default()
        });
        assert_eq!(metrics(&odd), vec![Metric { slug: "deliveries", value: 5.0, lower: None, upper: None }]);
    }

    #[test]
    fn cloudevents_cells_add_decode_and_byte_rates() {
        use buslab_scenarios::results::CloudEvents;
        let run = sample::run("r", "m", "2026-05-01T12:00:00Z");
        let mut cell = run.cells[0].clone();
        let rate = |median: f64| Estimate { median, lower: median * 0.9, upper: median * 1.1, samples: vec![median] };
        cell.cloudevents = Some(CloudEvents {
            decode_events_per_sec: rate(2.0e6),
            decode_bytes_per_sec: rate(1.5e9),
            route_events_per_sec: rate(1.0e6),
            route_bytes_per_sec: rate(0.8e9),
            ..CloudEvents::default()
        });
        let all: Vec<&str> = metrics::ALL.iter().map(|m| m.slug).collect();
        let m = metrics(&cell);
        assert_eq!(m.iter().map(|m| m.slug).collect::<Vec<_>>(), all);
        let decode = m.iter().find(|m| m.slug == "decode-throughput").expect("decode");
        assert_eq!((decode.value, decode.lower, decode.upper), (2.0e6, Some(1.8e6), Some(2.2e6)));
        assert_eq!(m.iter().find(|m| m.slug == "route-bytes").map(|m| m.value), Some(0.8e9));
    }

    #[test]
    fn a_stored_cell_without_cloudevents_still_loads() {
        let run = sample::run("r", "m", "2026-05-01T12:00:00Z");
        let mut json = serde_json::to_value(&run.cells[0]).expect("serialises");
        json.as_object_mut().expect("an object").remove("cloudevents");
        let cell: CellResult = serde_json::from_value(json).expect("old cells load");
        assert_eq!(cell.cloudevents, None);
        let mut meta = serde_json::to_value(&run.meta).expect("serialises");
        meta.as_object_mut().expect("an object").remove("corpus");
        let meta: RunMeta = serde_json::from_value(meta).expect("old metadata loads");
        assert_eq!(meta.corpus, None);
    }

    #[test]
    fn migrates_a_version_1_store_and_keeps_its_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.sqlite");
        let run = sample::run("old-run", "box-1", "2026-04-01T08:00:00Z");
        {
            let mut conn = Connection::open(&path).expect("create");
            migrate(&mut conn, &path, 1).expect("first step only");
            conn.execute(
                "INSERT INTO runs VALUES (?1, ?2, ?3, 1, ?4, ?5)",
                params![
                    run.meta.id,
                    run.meta.started_at,
                    run.meta.finished_at,
                    run.meta.machine,
                    serde_json::to_string(&run.meta).expect("json")
                ],
            )
            .expect("insert run");
            for (i, cell) in run.cells.iter().enumerate() {
                let (status, reason) = match &cell.status {
                    CellStatus::Ok => ("ok", None),
                    CellStatus::Failed(r) => ("failed", Some(r.clone())),
                    CellStatus::Skipped(r) => ("skipped", Some(r.clone())),
                };
                conn.execute(
                    "INSERT INTO cells VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        run.meta.id,
                        i as i64,
                        cell.key.name(),
                        cell.key.scenario,
                        cell.key.bus,
                        status,
                        reason,
                        serde_json::to_string(cell).expect("json")
                    ],
                )
                .expect("insert cell");
            }
        }
        assert_eq!(count(&path, "PRAGMA user_version"), 1);
        assert_eq!(count(&path, "SELECT count(*) FROM sqlite_schema WHERE name = 'metrics'"), 0);

        let mut store = Store::open(&path).expect("an older store opens");
        assert_eq!(store.load_run("old-run").expect("load"), run);
        let newer = sample::run("new-run", "box-1", "2026-05-01T08:00:00Z");
        record(&mut store, &newer);
        assert_eq!(store.previous_run_id("new-run").expect("previous").as_deref(), Some("old-run"));
        drop(store);
        assert_eq!(count(&path, "PRAGMA user_version"), SCHEMA_VERSION);
        assert_eq!(count(&path, "SELECT count(*) FROM metrics WHERE run_id = 'old-run'"), total_metrics(&run));
        // Version 3 calls the column what the glossary calls it.
        assert_eq!(count(&path, "SELECT count(*) FROM pragma_table_info('metrics') WHERE name = 'metric'"), 1);
        assert_eq!(count(&path, "SELECT count(*) FROM pragma_table_info('metrics') WHERE name = 'measure'"), 0);
    }

    #[test]
    fn an_interrupted_run_keeps_its_finished_cells() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, path) = store_in(&dir);
        let run = sample::run("cut-short", "box-1", "2026-05-01T12:00:00Z");
        store.begin_run(&run.meta).expect("begin");
        store.save_cell("cut-short", &run.cells[0]).expect("cell 1");
        store.save_cell("cut-short", &run.cells[2]).expect("cell 2");
        // The process dies: no finish_run, no close, no checkpoint; the
        // cells are in the write-ahead log.
        std::mem::forget(store);
        assert!(sibling(&path, "-wal").exists());

        let store = Store::open(&path).expect("reopen");
        let listed = store.list_runs().expect("list");
        assert_eq!(listed.len(), 1);
        assert!(!listed[0].meta.complete);
        assert_eq!(listed[0].meta.finished_at, None);
        assert_eq!((listed[0].ok, listed[0].failed, listed[0].skipped), (1, 1, 0));
        let loaded = store.load_run("cut-short").expect("load");
        assert_eq!(loaded.cells, vec![run.cells[0].clone(), run.cells[2].clone()]);
        assert!(!loaded.meta.complete);
    }

    /// Opens `path`, expects an error matching `expected`, and checks that
    /// the file's bytes did not change.
    fn refused_unchanged(path: &Path, expected: fn(&StoreError) -> bool) -> String {
        let before = std::fs::read(path).expect("read before");
        let err = Store::open(path).expect_err("must be refused");
        let message = err.to_string();
        assert!(expected(&err), "unexpected error: {message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert_eq!(std::fs::read(path).expect("read after"), before, "{message}");
        message
    }

    #[test]
    fn refuses_what_is_not_a_healthy_store_and_leaves_it_unchanged() {
        let dir = tempfile::tempdir().expect("temp dir");

        let random = dir.path().join("random.bin");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let bytes: Vec<u8> = (0..8192)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (x >> 56) as u8
            })
            .collect();
        std::fs::write(&random, bytes).expect("write");
        refused_unchanged(&random, |e| matches!(e, StoreError::NotSqlite { .. }));

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "run 1: 3.5 M events/s\nrun 2: 3.6 M events/s\n").expect("write");
        let message = refused_unchanged(&text, |e| matches!(e, StoreError::NotSqlite { .. }));
        assert!(message.contains("text file"), "{message}");

        let empty = dir.path().join("empty.sqlite");
        std::fs::write(&empty, "").expect("write");
        refused_unchanged(&empty, |e| matches!(e, StoreError::NotSqlite { .. }));

        let foreign = dir.path().join("foreign.sqlite");
        let conn = Connection::open(&foreign).expect("create");
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").expect("fill");
        drop(conn);
        refused_unchanged(&foreign, |e| matches!(e, StoreError::Foreign { .. }));

        let foreign_wal = dir.path().join("foreign-wal.sqlite");
        let conn = Connection::open(&foreign_wal).expect("create");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x);").expect("fill");
        drop(conn);
        refused_unchanged(&foreign_wal, |e| matches!(e, StoreError::Foreign { .. }));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("foreign-wal.sqlite-"))
            .collect();
        assert_eq!(leftovers, Vec::<String>::new(), "no -wal or -shm left beside a foreign file");

        let other_app = dir.path().join("other-app.sqlite");
        let conn = Connection::open(&other_app).expect("create");
        conn.execute_batch("PRAGMA application_id = 42; CREATE TABLE runs (id);").expect("fill");
        drop(conn);
        let message = refused_unchanged(&other_app, |e| matches!(e, StoreError::Foreign { .. }));
        assert!(message.contains("0x0000002a"), "{message}");

        let (mut store, real) = store_in(&dir);
        for i in 0..4 {
            record(&mut store, &sample::run(&format!("run-{i}"), "box-1", &format!("2026-05-0{}T12:00:00Z", i + 1)));
        }
        drop(store);
        let full = std::fs::read(&real).expect("read store");
        let page = 4096;
        assert!(full.len() > 4 * page, "the sample store spans pages");
        for (name, len) in [("half", full.len() / 2 + 7), ("pages", full.len() - page), ("header", 40)] {
            let truncated = dir.path().join(format!("truncated-{name}.sqlite"));
            std::fs::write(&truncated, &full[..len]).expect("write");
            refused_unchanged(&truncated, |e| matches!(e, StoreError::Corrupt { .. }));
        }
    }

    #[test]
    fn refuses_a_store_from_a_newer_buslab() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, path) = store_in(&dir);
        drop(store);
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).expect("bump");
        drop(conn);
        let message = refused_unchanged(&path, |e| matches!(e, StoreError::TooNew { .. }));
        assert!(message.contains("newer buslab"), "{message}");
    }

    #[test]
    fn opens_a_blank_sqlite_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("blank.sqlite");
        Connection::open(&path).expect("create").execute_batch("VACUUM").expect("write header");
        let store = Store::open(&path).expect("a blank database becomes a store");
        assert!(store.list_runs().expect("list").is_empty());
    }

    #[test]
    fn a_store_in_use_opens_a_second_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut writer, path) = store_in(&dir);
        let run = sample::run("live", "box-1", "2026-05-01T12:00:00Z");
        writer.begin_run(&run.meta).expect("begin");
        writer.save_cell("live", &run.cells[0]).expect("cell");
        let reader = Store::open(&path).expect("a second connection");
        assert_eq!(reader.load_run("live").expect("load").cells.len(), 1);
        writer.save_cell("live", &run.cells[1]).expect("cell while a reader is open");
        assert_eq!(reader.list_runs().expect("list")[0].ok, 2);
    }

    #[test]
    fn history_is_light_ordered_and_limited_to_the_machine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = store_in(&dir);
        for (id, machine, at) in [
            ("r1", "box", "2026-01-01T00:00:00Z"),
            ("r2", "other", "2026-01-02T00:00:00Z"),
            ("r3", "box", "2026-01-03T00:00:00Z"),
            ("r4", "box", "2026-01-04T00:00:00Z"),
            ("r5", "box", "2026-01-05T00:00:00Z"),
        ] {
            let mut run = sample::run(id, machine, at);
            run.cells[0].profile = Some(Profile { samples: 3, frequency_hz: 99, folded: "a;b 3".to_owned() });
            store.import_run(&run).expect("import");
        }
        let history = store.load_history("r4", 10).expect("history");
        let ids: Vec<&str> = history.iter().map(|r| r.meta.id.as_str()).collect();
        assert_eq!(ids, ["r1", "r3", "r4"]);
        assert_eq!(store.load_history("r4", 2).expect("history").len(), 2);
        let full = store.load_run("r4").expect("load");
        let light = &history[2];
        assert_eq!(light.cells.len(), full.cells.len());
        for (l, f) in light.cells.iter().zip(&full.cells) {
            assert_eq!(l.key, f.key);
            assert_eq!(l.throughput, f.throughput);
            assert_eq!(l.instructions, f.instructions);
            assert!(l.profile.is_none());
            assert!(l.latency.iter().all(|x| x.histogram.is_empty()));
            assert_eq!(
                l.latency.iter().map(|x| x.p99_ns).collect::<Vec<_>>(),
                f.latency.iter().map(|x| x.p99_ns).collect::<Vec<_>>()
            );
        }
        assert!(full.cells[0].profile.is_some());
    }

    #[test]
    fn importing_twice_keeps_one_copy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, path) = store_in(&dir);
        let run = sample::run("imported", "box-2", "2026-05-01T12:00:00Z");
        assert_eq!(store.import_run(&run).expect("import"), Imported::Imported { cells: 4 });
        assert_eq!(store.import_run(&run).expect("again"), Imported::AlreadyPresent);
        assert_eq!(store.list_runs().expect("list").len(), 1);
        assert_eq!(store.load_run("imported").expect("load"), run);
        assert_eq!(count(&path, "SELECT count(*) FROM cells"), 4);
        assert_eq!(count(&path, "SELECT count(*) FROM metrics"), total_metrics(&run));
    }

    /// Shard `index` of 2 of the sample run `nightly`: the cells at
    /// `cells`, measured on `machine`, started at `at`.
    fn shard_of(index: u32, cells: &[usize], machine: &str, at: &str) -> Run {
        let whole = sample::run("nightly", "box-1", "2026-05-01T12:00:00Z");
        let mut run = whole.clone();
        run.meta.shards = Some(Shards { count: 2, held: vec![index] });
        run.meta.machine = machine.to_owned();
        run.meta.started_at = at.to_owned();
        run.meta.finished_at = Some(at.replace("T1", "T2"));
        run.cells = cells.iter().map(|&i| whole.cells[i].clone()).collect();
        run
    }

    fn names(run: &Run) -> Vec<String> {
        let mut names: Vec<String> = run.cells.iter().map(|c| c.key.name()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_shard_that_got_no_point_still_counts_as_held() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, _) = store_in(&dir);
        let one = shard_of(1, &[0, 1, 2, 3], "box-1", "2026-05-01T12:00:00Z");
        let mut empty = shard_of(2, &[], "box-1", "2026-05-01T12:01:00Z");
        empty.cells.clear();
        assert_eq!(store.import_run(&one).expect("first shard"), Imported::Imported { cells: 4 });
        assert_eq!(store.import_run(&empty).expect("the empty shard"), Imported::Merged { cells: 0 });
        let merged = store.load_run("nightly").expect("load");
        assert_eq!(merged.meta.shards, Some(Shards { count: 2, held: vec![1, 2] }));
        assert_eq!(merged.cells.len(), 4);
        assert_eq!(store.import_run(&empty).expect("again"), Imported::AlreadyPresent);
    }

    #[test]
    fn merged_shards_keep_every_scenario_s_chosen_trials() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, _) = store_in(&dir);
        let chosen = |trials, from: &str| ChosenTrials { trials, from_run: from.to_owned(), runs: 1 };
        let mut one = shard_of(1, &[0, 1], "box-1", "2026-05-01T12:00:00Z");
        one.meta.chosen_trials = [("fanout".to_owned(), chosen(1, "a"))].into();
        let mut two = shard_of(2, &[2, 3], "box-2", "2026-05-01T12:01:00Z");
        two.meta.chosen_trials = [("fanout".to_owned(), chosen(4, "b")), ("burst".to_owned(), chosen(2, "b"))].into();
        store.import_run(&one).expect("first shard");
        store.import_run(&two).expect("second shard");
        let merged = store.load_run("nightly").expect("load");
        let expected = [("fanout".to_owned(), chosen(1, "a")), ("burst".to_owned(), chosen(2, "b"))].into();
        assert_eq!(merged.meta.chosen_trials, expected, "the first shard's count of a scenario both chose");
    }

    #[test]
    fn shards_of_one_run_merge_into_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, path) = store_in(&dir);
        let whole = sample::run("nightly", "box-1", "2026-05-01T12:00:00Z");
        let one = shard_of(1, &[0, 2], "box-1", "2026-05-01T12:00:00Z");
        let two = shard_of(2, &[1, 3], "box-2", "2026-05-01T11:59:00Z");
        assert_eq!(store.import_run(&one).expect("first shard"), Imported::Imported { cells: 2 });
        let listed = store.list_runs().expect("list");
        assert_eq!(listed[0].meta.shards, Some(Shards { count: 2, held: vec![1] }));
        assert_eq!(store.import_run(&two).expect("second shard"), Imported::Merged { cells: 2 });

        let merged = store.load_run("nightly").expect("load");
        assert_eq!(names(&merged), names(&whole));
        assert_eq!(merged.meta.machine, "box-1", "the first part's metadata stays");
        assert_eq!(merged.meta.shards, Some(Shards { count: 2, held: vec![1, 2] }));
        assert!(merged.meta.shards.as_ref().is_some_and(Shards::all_held));
        assert_eq!(merged.meta.started_at, "2026-05-01T11:59:00Z", "the earliest start");
        assert_eq!(merged.meta.finished_at.as_deref(), Some("2026-05-01T22:00:00Z"), "the latest end");
        assert!(merged.meta.complete);
        for cell in &merged.cells {
            let from_two = two.cells.iter().any(|c| c.key == cell.key);
            let expected = from_two.then(|| "box-2".to_owned());
            assert_eq!(cell.machine, expected, "{}", cell.key.name());
            assert_eq!(cell.measured_on(&merged.meta.machine), if from_two { "box-2" } else { "box-1" });
        }
        assert_eq!(count(&path, "SELECT count(*) FROM metrics"), total_metrics(&whole));
        assert_eq!(count(&path, "SELECT count(DISTINCT ordinal) FROM cells"), 4);
        // Importing a part again changes nothing.
        assert_eq!(store.import_run(&two).expect("again"), Imported::AlreadyPresent);
        assert_eq!(store.import_run(&one).expect("again"), Imported::AlreadyPresent);
        assert_eq!(store.load_run("nightly").expect("load"), merged);

        // The other way round: the run takes the first part's machine, and
        // the other part's cells say where they were measured.
        let mut other = Store::open(dir.path().join("other.sqlite")).expect("store");
        let mut two_incomplete = two.clone();
        two_incomplete.meta.complete = false;
        other.import_run(&two_incomplete).expect("second shard first");
        assert_eq!(other.import_run(&one).expect("then the first"), Imported::Merged { cells: 2 });
        let merged = other.load_run("nightly").expect("load");
        assert_eq!(merged.meta.machine, "box-2");
        assert!(!merged.meta.complete, "a part that did not finish leaves the run incomplete");
        assert!(
            merged
                .cells
                .iter()
                .all(|c| (c.machine.as_deref() == Some("box-1")) == one.cells.iter().any(|o| o.key == c.key))
        );
    }

    #[test]
    fn parts_that_do_not_belong_together_are_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, path) = store_in(&dir);
        let one = shard_of(1, &[0, 2], "box-1", "2026-05-01T12:00:00Z");
        store.import_run(&one).expect("first shard");
        let stored = store.load_run("nightly").expect("load");
        let two = shard_of(2, &[1, 3], "box-1", "2026-05-01T12:00:00Z");
        type Doctor = Box<dyn Fn(&mut Run)>;
        let cases: Vec<(Doctor, &str)> = vec![
            (Box::new(|r| r.meta.git_commit = Some("0000000".to_owned())), "commit differs"),
            (Box::new(|r| r.meta.quick = false), "--quick flag differs"),
            (Box::new(|r| r.meta.rustc = "rustc 1.96.0".to_owned()), "compiler differs"),
            (
                Box::new(|r| {
                    r.meta.build.insert("lto".to_owned(), "thin".to_owned());
                }),
                "build flags",
            ),
            (Box::new(|r| r.meta.scenario_hashes.clear()), "scenario files"),
            (Box::new(|r| r.meta.label = Some("noise:x".to_owned())), "label differs"),
            (Box::new(|r| r.meta.shards = Some(Shards { count: 3, held: vec![2] })), "shard count"),
            (Box::new(|r| r.meta.shards = Some(Shards { count: 2, held: vec![1] })), "shard 1/2 is already stored"),
            (Box::new(|r| r.meta.shards = None), "not shards of one run"),
        ];
        for (edit, says) in cases {
            let mut part = two.clone();
            edit(&mut part);
            let err = store.import_run(&part).expect_err(says);
            assert!(matches!(err, StoreError::ConflictingRun { .. }), "{says}: {err}");
            let message = err.to_string();
            assert!(message.contains(says) && message.contains("nothing was imported"), "{message}");
        }
        // A part that claims a stored cell.
        let mut overlapping = two.clone();
        overlapping.cells.push(one.cells[0].clone());
        overlapping.cells[2].dropped += 1;
        let err = store.import_run(&overlapping).expect_err("a cell twice");
        assert!(matches!(err, StoreError::DuplicateCell { .. }), "{err}");
        assert_eq!(store.load_run("nightly").expect("load"), stored, "the stored run never changed");
        assert_eq!(count(&path, "SELECT count(*) FROM cells"), 2);
        assert_eq!(count(&path, "SELECT count(*) FROM metrics"), total_metrics(&one));
    }

    #[test]
    fn noise_runs_are_never_a_default() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, _) = store_in(&dir);
        for (id, label, at) in [
            ("n1", None, "2026-05-01T10:00:00Z"),
            ("aa1", Some("noise:g"), "2026-05-02T10:00:00Z"),
            ("aa2", Some("noise:g"), "2026-05-02T10:10:00Z"),
            ("n2", None, "2026-05-03T10:00:00Z"),
            ("aa3", Some("noise:h"), "2026-05-04T10:00:00Z"),
        ] {
            let mut run = sample::run(id, "box", at);
            run.meta.label = label.map(str::to_owned);
            store.import_run(&run).expect("import");
        }
        assert_eq!(store.latest_run_id().expect("latest").as_deref(), Some("n2"));
        assert_eq!(store.previous_run_id("n2").expect("previous").as_deref(), Some("n1"));
        assert_eq!(store.earlier_run_ids("n2", 30).expect("earlier"), ["n1"]);
        assert_eq!(store.previous_run_id("aa2").expect("previous").as_deref(), Some("aa1"));
        assert_eq!(store.previous_run_id("aa3").expect("previous"), None, "another group");
        assert_eq!(store.run_ids_labelled("noise:g").expect("group"), ["aa1", "aa2"]);
        assert_eq!(store.latest_label("noise:").expect("latest group").as_deref(), Some("noise:h"));
        assert_eq!(store.latest_label("other:").expect("none"), None);
    }

    #[test]
    fn latest_and_previous_follow_start_time_and_machine() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, _) = store_in(&dir);
        assert_eq!(store.latest_run().expect("latest"), None);
        for (id, machine, at) in [
            ("a1", "box-a", "2026-05-01T10:00:00Z"),
            ("b1", "box-b", "2026-05-02T10:00:00Z"),
            ("a2", "box-a", "2026-05-03T10:00:00Z"),
            ("b2", "box-b", "2026-05-04T10:00:00Z"),
        ] {
            store.import_run(&sample::run(id, machine, at)).expect("import");
        }
        let latest = store.latest_run().expect("latest").expect("some run");
        assert_eq!(latest.meta.id, "b2");
        assert_eq!(store.previous_run("b2").expect("prev").map(|r| r.meta.id).as_deref(), Some("b1"));
        assert_eq!(store.previous_run_id("a2").expect("prev").as_deref(), Some("a1"));
        assert_eq!(store.previous_run_id("a1").expect("prev"), None);
        let ids: Vec<_> = store.list_runs().expect("list").into_iter().map(|s| s.meta.id).collect();
        assert_eq!(ids, ["a1", "b1", "a2", "b2"]);
        let err = store.previous_run("nope").expect_err("unknown");
        assert!(err.to_string().contains("`buslab runs`"), "{err}");
    }

    #[test]
    fn earlier_runs_are_the_latest_on_the_same_machine_oldest_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, _) = store_in(&dir);
        for (id, machine, at) in [
            ("a1", "box-a", "2026-05-01T10:00:00Z"),
            ("b1", "box-b", "2026-05-02T10:00:00Z"),
            ("a2", "box-a", "2026-05-03T10:00:00Z"),
            ("a3", "box-a", "2026-05-04T10:00:00Z"),
            ("a4", "box-a", "2026-05-05T10:00:00Z"),
        ] {
            store.import_run(&sample::run(id, machine, at)).expect("import");
        }
        assert_eq!(store.earlier_run_ids("a4", 30).expect("earlier"), ["a1", "a2", "a3"]);
        assert_eq!(store.earlier_run_ids("a4", 2).expect("earlier"), ["a2", "a3"]);
        assert_eq!(store.earlier_run_ids("a3", 0).expect("earlier"), Vec::<String>::new());
        assert_eq!(store.earlier_run_ids("b1", 30).expect("earlier"), Vec::<String>::new());
        assert!(matches!(store.earlier_run_ids("nope", 1), Err(StoreError::UnknownRun { .. })));
    }

    #[test]
    fn run_ids_resolve_by_unique_prefix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, _) = store_in(&dir);
        for id in ["20260501-aa", "20260501-ab", "20260502-cc"] {
            store.import_run(&sample::run(id, "m", "2026-05-01T10:00:00Z")).expect("import");
        }
        assert_eq!(store.resolve_run("20260502").expect("unique"), "20260502-cc");
        assert_eq!(store.resolve_run("20260501-ab").expect("exact"), "20260501-ab");
        let err = store.resolve_run("20260501").expect_err("ambiguous");
        assert!(matches!(err, StoreError::AmbiguousRun { .. }), "{err}");
        assert!(err.to_string().contains("20260501-aa, 20260501-ab"), "{err}");
        let err = store.resolve_run("2027").expect_err("unknown");
        assert!(matches!(err, StoreError::UnknownRun { .. }), "{err}");
    }

    #[test]
    fn writes_to_unknown_runs_and_duplicate_cells_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, _) = store_in(&dir);
        let run = sample::run("r", "m", "2026-05-01T10:00:00Z");
        let err = store.save_cell("r", &run.cells[0]).expect_err("no such run");
        assert!(matches!(err, StoreError::UnknownRun { .. }), "{err}");
        let err = store.finish_run("r", "2026-05-01T11:00:00Z", true).expect_err("no such run");
        assert!(matches!(err, StoreError::UnknownRun { .. }), "{err}");
        store.begin_run(&run.meta).expect("begin");
        let err = store.begin_run(&run.meta).expect_err("twice");
        assert!(matches!(err, StoreError::RunExists { .. }), "{err}");
        store.save_cell("r", &run.cells[0]).expect("save");
        let err = store.save_cell("r", &run.cells[0]).expect_err("same cell twice");
        assert!(matches!(err, StoreError::DuplicateCell { .. }), "{err}");
        let mut nameless = run.clone();
        nameless.meta.id = String::new();
        let err = store.import_run(&nameless).expect_err("empty id");
        assert!(matches!(err, StoreError::InvalidRun { .. }), "{err}");
        // An import that fails part-way stores nothing.
        let mut twice = sample::run("dup", "m", "2026-05-02T10:00:00Z");
        twice.cells.push(twice.cells[0].clone());
        assert!(matches!(store.import_run(&twice), Err(StoreError::DuplicateCell { .. })));
        assert!(matches!(store.load_run("dup"), Err(StoreError::UnknownRun { .. })));
        let key = CellKey { scenario: "s".into(), bus: "b".into(), params: Default::default() };
        store.save_cell("r", &CellResult::new(key, 1, 1)).expect("another cell");
        assert_eq!(store.load_run("r").expect("load").cells.len(), 2);
    }
}
