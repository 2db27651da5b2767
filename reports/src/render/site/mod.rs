//! The static HTML report: one run's verdict matrix, scenario charts, cell
//! pages with flame graphs, trends over the stored history, the comparison
//! with the baseline and the guide, as plain files readable offline.
//!
//! # Layout of the site
//! ```text
//! index.html              recommendation per scenario point, heat map, run header,
//!                         verdict matrix, failed and skipped cells, buses
//! guide.html              decision form (constraints → buses), "Choosing a dispatch
//!                         strategy" claims linked to cells
//! compare.html            regression verdicts against the baseline run
//! trends.html             every cell's metrics over the history, with markers
//! style.css
//! scenarios/<slug>.html   charts of one scenario (bars, scaling curves, spectra)
//! cells/<slug>.html       every number of one cell, raw trials, histograms
//! cells/<slug>.flame.svg  its flame graph (inferno, interactive)
//! cells/<slug>.diff.svg   differential flame graph against the baseline
//! trends/<slug>.html      one cell's metrics over time
//! ```
//! A slug is the name made safe for a file name plus a hash of the name, so
//! two names never share a file. The directory is marked with a
//! `.buslab-report` file; rendering into a non-empty directory without that
//! mark is refused, so a mistyped `--out` never deletes someone's files.
//!
//! # Safety of user text
//! Scenario and bus names come from user files: every template is
//! autoescaped by tera (they are registered with an `.html` name), charts
//! escape their own text, and nothing refers to a network address.
//!
//! The analysis (verdicts, guide, trends, regression) is done once, into
//! the [report model](crate::analysis::Report); this module only arranges
//! the model into pages.

mod context;
mod decide;
mod figures;
mod pages;

use crate::analysis::Report;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What [`render`] wrote.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The front page.
    pub index: PathBuf,
    /// Files written.
    pub files: usize,
    /// Wall-clock time spent.
    pub elapsed: Duration,
}

/// Why the site could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The output directory holds files that are not a buslab report.
    #[error(
        "{path} is not empty and holds no buslab report (no .buslab-report file): refusing to write into it; \
         choose an empty or new directory"
    )]
    NotAReportDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// A template failed to render (a bug: the templates are built in).
    #[error("rendering template {template}: {message}")]
    Template {
        /// The template's name.
        template: String,
        /// The error chain.
        message: String,
    },
}

/// The file that marks a directory as a buslab report.
pub const MARKER: &str = ".buslab-report";

/// Writes the pages of `report` into `out` (created if missing; the
/// previous report there is replaced).
pub fn render(report: &Report<'_>, out: &Path) -> Result<Rendered, SiteError> {
    let start = Instant::now();
    prepare(out)?;
    let writer = pages::Writer::new(out)?;
    pages::write_all(report, &writer)?;
    Ok(Rendered { index: out.join("index.html"), files: writer.files(), elapsed: start.elapsed() })
}

/// Makes `out` an empty report directory, refusing a foreign non-empty one.
fn prepare(out: &Path) -> Result<(), SiteError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SiteError::Io { path, source }
    };
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io(out))?;
        let empty = entries.next().is_none();
        if !empty && !out.join(MARKER).exists() {
            return Err(SiteError::NotAReportDirectory { path: out.to_owned() });
        }
        for dir in ["cells", "scenarios", "trends"] {
            let path = out.join(dir);
            if path.exists() {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    for dir in ["cells", "scenarios", "trends"] {
        std::fs::create_dir_all(out.join(dir)).map_err(io(&out.join(dir)))?;
    }
    let marker = out.join(MARKER);
    std::fs::write(&marker, "This directory is a buslab report; `buslab report` replaces its contents.\n")
        .map_err(io(&marker))
}

/// A file-name-safe slug of `name`: lowercase letters, digits and `-`,
/// then a hash of the whole name (two names never share a slug).
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 9);
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 80 {
            break;
        }
    }
    // FNV-1a, 32 bits: stable across builds and platforms.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    if !out.ends_with('-') && !out.is_empty() {
        out.push('-');
    }
    out.push_str(&format!("{hash:08x}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_and_distinct() {
        assert_eq!(
            slug("fanout/ring/subscribers=16"),
            format!("fanout-ring-subscribers-16-{:08x}", {
                "fanout/ring/subscribers=16"
                    .bytes()
                    .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
            })
        );
        assert_ne!(slug("a/b"), slug("a-b"));
        let evil = slug("<script>alert(1)</script>/../..");
        assert!(evil.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{evil}");
        assert!(slug(&"x".repeat(500)).len() <= 90);
        assert!(!slug("").is_empty());
    }

    #[test]
    fn refuses_a_foreign_directory_and_replaces_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("thesis.tex"), "precious").expect("write");
        assert!(matches!(prepare(dir.path()), Err(SiteError::NotAReportDirectory { .. })));
        assert_eq!(std::fs::read_to_string(dir.path().join("thesis.tex")).expect("kept"), "precious");
        let out = dir.path().join("report");
        prepare(&out).expect("a new directory");
        std::fs::write(out.join("cells").join("old.html"), "stale").expect("write");
        prepare(&out).expect("its own directory");
        assert!(!out.join("cells").join("old.html").exists());
    }
}
