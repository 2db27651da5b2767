//! Runs out of the store and into it: the export formats, reading a JSON
//! export back, and the `runs`, `export` and `import` commands.
//!
//! # Formats
//! - `json`: the whole [`Run`], pretty-printed; the one lossless format and
//!   the one [`read_run`] (and so `buslab import`) reads back.
//! - `csv`: one row per cell × metric, for spreadsheets: `run_id, cell,
//!   scenario, bus, params, status, reason, metric, value, lower, upper`.
//!   A cell with no metric (failed, skipped) gets one row with the metric
//!   columns empty, so that its status and reason are not lost. `params` is
//!   `k=v` pairs joined by `;`.
//! - `bmf`: Bencher Metric Format (Bencher calls a metric a *measure*),
//!   `{ "<cell name>": { "<measure>": {
//!   "value": x, "lower_value": lo, "upper_value": hi } } }`, the bounds
//!   only where the measure has a confidence interval, and only cells that
//!   ended Ok.
//!
//! The metrics are [`store::metrics`]: the same slugs as the store's
//! `metrics` table.
//!
//! # Dependencies and why
//! - `csv`: CSV quoting done right (names and reasons hold commas, quotes
//!   and newlines).
//! - `serde_json`: the JSON and BMF formats.
//! - `anyhow`: the command functions are the binary's edge.

use crate::store::{self, Imported, Store};
use anyhow::Context;
use buslab_scenarios::results::{CellStatus, Run};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The whole run as pretty JSON; the import format.
    Json,
    /// One row per cell × metric.
    Csv,
    /// Bencher Metric Format.
    Bmf,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 3] = [Format::Json, Format::Csv, Format::Bmf];

    /// The format's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Bmf => "bmf",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    /// Parses a format name (case-insensitive).
    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
            format!("unknown export format `{s}`; expected one of: {}", names.join(", "))
        })
    }
}

/// What can go wrong while exporting or reading an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing the output failed.
    #[error("writing the {format} export")]
    Write {
        /// The format being written.
        format: Format,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding JSON failed.
    #[error("encoding the {format} export")]
    Encode {
        /// The format being written.
        format: Format,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Writing CSV failed.
    #[error("writing the csv export")]
    Csv(#[source] csv::Error),
    /// An export file could not be read.
    #[error("{}: cannot read", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An export file is not a JSON run.
    #[error("{}: not a buslab JSON export (`buslab export --format json` writes one)", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
}

/// Writes `run` to `out` in `format`.
pub fn export(run: &Run, format: Format, out: &mut impl Write) -> Result<(), ExportError> {
    let write = |source| ExportError::Write { format, source };
    let encode = |source| ExportError::Encode { format, source };
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, run).map_err(encode)?;
            writeln!(out).map_err(write)?;
        }
        Format::Bmf => {
            serde_json::to_writer_pretty(&mut *out, &bmf(run)).map_err(encode)?;
            writeln!(out).map_err(write)?;
        }
        Format::Csv => write_csv(run, out).map_err(ExportError::Csv)?,
    }
    out.flush().map_err(write)
}

/// One metric in a BMF document (a Bencher *measure*).
#[derive(Debug, Serialize)]
struct BmfMeasure {
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lower_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper_value: Option<f64>,
}

/// The BMF document of a run: Ok cells that have at least one metric.
fn bmf(run: &Run) -> BTreeMap<String, BTreeMap<&'static str, BmfMeasure>> {
    run.cells
        .iter()
        .filter(|cell| cell.status == CellStatus::Ok)
        .filter_map(|cell| {
            let measures: BTreeMap<_, _> = store::metrics(cell)
                .into_iter()
                .map(|m| {
                    let measure = BmfMeasure { value: m.value, lower_value: m.lower, upper_value: m.upper };
                    (m.slug, measure)
                })
                .collect();
            (!measures.is_empty()).then(|| (cell.key.name(), measures))
        })
        .collect()
}

/// The CSV columns.
const CSV_HEADER: [&str; 11] =
    ["run_id", "cell", "scenario", "bus", "params", "status", "reason", "metric", "value", "lower", "upper"];

fn write_csv(run: &Run, out: &mut impl Write) -> Result<(), csv::Error> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(CSV_HEADER)?;
    let number = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
    for cell in &run.cells {
        let name = cell.key.name();
        let params = cell.key.params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";");
        let (status, reason) = match &cell.status {
            CellStatus::Ok => ("ok", ""),
            CellStatus::Failed(reason) => ("failed", reason.as_str()),
            CellStatus::Skipped(reason) => ("skipped", reason.as_str()),
        };
        let prefix = [run.meta.id.as_str(), &name, &cell.key.scenario, &cell.key.bus, &params, status, reason];
        let metrics = store::metrics(cell);
        if metrics.is_empty() {
            csv.write_record(prefix.iter().copied().chain(["", "", "", ""]))?;
        }
        for m in metrics {
            let numbers = [m.value.to_string(), number(m.lower), number(m.upper)];
            csv.write_record(prefix.iter().copied().chain([m.slug]).chain(numbers.iter().map(String::as_str)))?;
        }
    }
    csv.flush()?;
    Ok(())
}

/// Reads a JSON export (a [`Run`]) from `path`.
pub fn read_run(path: &Path) -> Result<Run, ExportError> {
    let bytes = std::fs::read(path).map_err(|source| ExportError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| ExportError::Parse { path: path.to_path_buf(), source })
}

/// `buslab runs`: every stored run, oldest first, as a table (id, start,
/// machine, commit, quick, complete (and the shards held, while some are
/// missing), cell counts, label) or, with `json`, as a
/// JSON array of [`store::RunSummary`].
pub fn runs(store: &Store, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let runs = store.list_runs()?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &runs).context("writing JSON")?;
        writeln!(out)?;
        return Ok(());
    }
    if runs.is_empty() {
        writeln!(out, "no runs in {} yet; `buslab run` records one", store.path().display())?;
        return Ok(());
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let header = ["id", "started (UTC)", "machine", "commit", "quick", "complete", "ok/failed/skipped", "label"]
        .map(str::to_owned);
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|r| {
            let m = &r.meta;
            let commit = match (&m.git_commit, m.git_dirty) {
                (Some(c), Some(true)) => format!("{}+dirty", short(c)),
                (Some(c), _) => short(c).to_owned(),
                (None, _) => "-".to_owned(),
            };
            [
                m.id.clone(),
                readable_time(&m.started_at),
                m.machine.clone(),
                commit,
                yes_no(m.quick),
                match &m.shards {
                    Some(s) if !s.all_held() => {
                        let held: Vec<String> = s.held.iter().map(u32::to_string).collect();
                        format!("{} (shards {} of {})", yes_no(m.complete), held.join(","), s.count)
                    }
                    _ => yes_no(m.complete),
                },
                format!("{}/{}/{}", r.ok, r.failed, r.skipped),
                m.label.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect::<Vec<_>>().join("  ");
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The first 10 characters of a commit hash.
fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

/// `2026-05-01T12:00:03.123Z` → `2026-05-01 12:00:03`; anything else as is.
fn readable_time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(10..11), rfc3339.get(11..19)) {
        (Some(date), Some("T"), Some(time)) => format!("{date} {time}"),
        _ => rfc3339.to_owned(),
    }
}

/// `buslab export`: writes run `run` (an id or a unique prefix of one;
/// the latest run when `None`) to `out` in `format`.
pub fn export_cmd(store: &Store, run: Option<&str>, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let id = match run {
        Some(id) => store.resolve_run(id)?,
        None => store.latest_run_id()?.with_context(|| {
            format!("no runs in {} yet, nothing to export; `buslab run` records one", store.path().display())
        })?,
    };
    let run = store.load_run(&id)?;
    export(&run, format, out).with_context(|| format!("exporting run `{id}`"))?;
    Ok(())
}

/// `buslab import`: adds the run in the JSON export at `path` to the store
/// (or merges a shard into its run; see [`Store::import_run`]); returns
/// what happened, for the user.
pub fn import_cmd(store: &mut Store, path: &Path) -> anyhow::Result<String> {
    let run = read_run(path)?;
    let id = &run.meta.id;
    let message = match store.import_run(&run).with_context(|| format!("importing {}", path.display()))? {
        Imported::Imported { cells } => {
            format!("imported run `{id}` ({cells} cells) from {} into {}", path.display(), store.path().display())
        }
        Imported::AlreadyPresent => format!("run `{id}` is already in {}; nothing imported", store.path().display()),
        Imported::Merged { cells } => {
            let run = store.load_run(id)?;
            let held = match &run.meta.shards {
                Some(s) if s.all_held() => format!("all {} shards now held", s.count),
                Some(s) => {
                    let held: Vec<String> = s.held.iter().map(u32::to_string).collect();
                    format!("shards {} of {} held", held.join(", "), s.count)
                }
                None => "not sharded".to_owned(),
            };
            format!(
                "merged {cells} cells from {} into run `{id}` in {} ({held}; {} cells)",
                path.display(),
                store.path().display(),
                run.cells.len()
            )
        }
    };
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sample;
    use buslab_scenarios::results::CellKey;

    fn export_string(run: &Run, format: Format) -> String {
        let mut out = Vec::new();
        export(run, format, &mut out).expect("export");
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn format_names_parse() {
        for format in Format::ALL {
            assert_eq!(format.name().parse::<Format>(), Ok(format));
        }
        assert_eq!("BMF".parse::<Format>(), Ok(Format::Bmf));
        let err = "xml".parse::<Format>().expect_err("unknown");
        assert!(err.contains("json, csv, bmf"), "{err}");
    }

    #[test]
    fn bmf_is_json_with_one_entry_per_ok_cell_and_bounds_only_with_a_ci() {
        let run = sample::run("r", "m", "2026-05-01T12:00:00Z");
        let doc: serde_json::Value =
            serde_json::from_str(&export_string(&run, Format::Bmf)).expect("BMF parses as JSON");
        let benchmarks = doc.as_object().expect("an object of benchmarks");
        let names: Vec<_> = benchmarks.keys().map(String::as_str).collect();
        assert_eq!(names, ["burst/ring_buffer/ring=1024/subscribers=4", "fanout/channel/subscribers=16"]);
        let fanout = benchmarks["fanout/channel/subscribers=16"].as_object().expect("measures");
        assert_eq!(fanout.len(), store::metrics(&sample::full_cell("fanout", "channel", 16)).len());
        assert_eq!(
            fanout.len(),
            buslab_scenarios::metrics::ALL.len() - 3,
            "every metric but the three CloudEvents ones"
        );
        let throughput = &fanout["throughput"];
        assert_eq!(throughput["value"], 3.5e6);
        assert_eq!(throughput["lower_value"], 3.5e6 * 0.97);
        assert_eq!(throughput["upper_value"], 3.5e6 * 1.02);
        let p99 = fanout["latency-p99"].as_object().expect("measure");
        assert_eq!(p99.keys().map(String::as_str).collect::<Vec<_>>(), ["value"]);
        assert_eq!(p99["value"], 1200.0);
        for measures in benchmarks.values() {
            for measure in measures.as_object().expect("measures").values() {
                assert!(measure["value"].is_number());
            }
        }
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_metric() {
        let mut run = sample::run("r", "m", "2026-05-01T12:00:00Z");
        let mut odd = run.cells[1].clone();
        odd.key = CellKey {
            scenario: "quoted".to_owned(),
            bus: "ring_buffer".to_owned(),
            params: [("note".to_owned(), "a, \"b\"\nc".to_owned())].into(),
        };
        run.cells.push(odd);
        let text = export_string(&run, Format::Csv);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<_> = reader.headers().expect("header").iter().map(str::to_owned).collect();
        assert_eq!(header, CSV_HEADER);
        let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().expect("rows");
        let metric_rows = rows.iter().filter(|r| !r[7].is_empty()).count();
        let expected: usize = run.cells.iter().map(|c| store::metrics(c).len()).sum();
        assert_eq!(metric_rows, expected);
        assert_eq!(rows.len(), expected + 2, "the failed and the skipped cell get one row each");
        let failed = rows.iter().find(|r| &r[5] == "failed").expect("the failed cell");
        assert_eq!(&failed[6], "delivered 63 of 64 expected events");
        let throughput = rows
            .iter()
            .find(|r| &r[1] == "fanout/channel/subscribers=16" && &r[7] == "throughput")
            .expect("a throughput row");
        assert_eq!(throughput[8].parse::<f64>().expect("value"), 3.5e6);
        assert_eq!(throughput[9].parse::<f64>().expect("lower"), 3.5e6 * 0.97);
        let p50 = rows.iter().find(|r| &r[7] == "latency-p50").expect("a p50 row");
        assert_eq!((&p50[9], &p50[10]), ("", ""));
        let quoted = rows.iter().find(|r| &r[2] == "quoted").expect("the quoted cell");
        assert_eq!(&quoted[1], "quoted/ring_buffer/note=a, \"b\"\nc");
        assert_eq!(&quoted[4], "note=a, \"b\"\nc");
        assert_eq!(&rows[0][4], "subscribers=16");
    }

    #[test]
    fn json_export_reads_back_and_imports_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = sample::run("20260501T120000Z-a1b2", "box-1", "2026-05-01T12:00:00Z");
        let file = dir.path().join("run.json");
        std::fs::write(&file, export_string(&run, Format::Json)).expect("write");
        assert_eq!(read_run(&file).expect("read back"), run);

        let mut store = Store::open(dir.path().join("store.sqlite")).expect("store");
        let first = import_cmd(&mut store, &file).expect("import");
        assert!(first.contains("imported run `20260501T120000Z-a1b2` (4 cells)"), "{first}");
        let second = import_cmd(&mut store, &file).expect("import again");
        assert!(second.contains("already in"), "{second}");
        assert_eq!(store.list_runs().expect("list").len(), 1);

        let mut out = Vec::new();
        export_cmd(&store, Some("20260501T"), Format::Json, &mut out).expect("export by prefix");
        let exported: Run = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(exported, run);
    }

    #[test]
    fn import_names_the_file_on_bad_json() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path().join("store.sqlite")).expect("store");
        let file = dir.path().join("broken.json");
        std::fs::write(&file, "{\n  \"meta\": {\"id\": 3\n").expect("write");
        let err = import_cmd(&mut store, &file).expect_err("bad JSON");
        let message = format!("{err:#}");
        assert!(message.contains(&file.display().to_string()), "{message}");
        assert!(message.contains("line 2"), "{message}");
        let missing = dir.path().join("missing.json");
        let err = import_cmd(&mut store, &missing).expect_err("no file");
        assert!(format!("{err:#}").contains("missing.json"), "{err:#}");
    }

    #[test]
    fn runs_lists_a_table_or_json() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path().join("store.sqlite")).expect("store");
        let mut out = Vec::new();
        runs(&store, false, &mut out).expect("empty list");
        assert!(String::from_utf8_lossy(&out).contains("no runs in"));

        let mut clean = sample::run("run-2", "box-2", "2026-05-02T09:30:00.123Z");
        clean.meta.git_dirty = Some(false);
        clean.meta.quick = false;
        store.import_run(&sample::run("run-1", "box-1", "2026-05-01T12:00:00Z")).expect("import");
        store.import_run(&clean).expect("import");
        store.begin_run(&sample::run("run-3", "box-1", "2026-05-03T08:00:00Z").meta).expect("begin");

        let mut out = Vec::new();
        runs(&store, false, &mut out).expect("table");
        let table = String::from_utf8(out).expect("UTF-8");
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("id "), "{table}");
        assert!(lines[1].contains("run-1") && lines[1].contains("5fbd962a1b+dirty"), "{table}");
        assert!(lines[1].contains("2026-05-01 12:00:00") && lines[1].contains("2/1/1"), "{table}");
        assert!(lines[2].contains("5fbd962a1b ") && lines[2].contains("2026-05-02 09:30:00"), "{table}");
        assert!(lines[3].contains("run-3") && lines[3].contains("0/0/0"), "{table}");
        let column = lines[0].find("machine").expect("machine column");
        assert!(lines.iter().skip(1).all(|l| l[column..].starts_with("box-")), "{table}");

        let mut out = Vec::new();
        runs(&store, true, &mut out).expect("json");
        let json: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        let array = json.as_array().expect("an array");
        assert_eq!(array.len(), 3);
        assert_eq!(array[2]["meta"]["id"], "run-3");
        assert_eq!(array[2]["meta"]["complete"], false);
        assert_eq!(array[0]["failed"], 1);
    }

    #[test]
    fn export_cmd_defaults_to_the_latest_run_and_explains_unknown_ids() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path().join("store.sqlite")).expect("store");
        let err = export_cmd(&store, None, Format::Bmf, &mut Vec::new()).expect_err("empty store");
        assert!(format!("{err:#}").contains("no runs in"), "{err:#}");

        store.import_run(&sample::run("old", "m", "2026-05-01T12:00:00Z")).expect("import");
        store.import_run(&sample::run("new", "m", "2026-05-02T12:00:00Z")).expect("import");
        let mut out = Vec::new();
        export_cmd(&store, None, Format::Csv, &mut out).expect("latest");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.lines().skip(1).all(|l| l.starts_with("new,")), "{text}");

        let err = export_cmd(&store, Some("nope"), Format::Json, &mut Vec::new()).expect_err("unknown");
        let message = format!("{err:#}");
        assert!(message.contains("no run `nope`") && message.contains("`buslab runs`"), "{message}");
    }
}
