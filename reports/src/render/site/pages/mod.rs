//! Each page: its context, built from the report model alone, rendered
//! with its template and written; one file per page kind.

mod cell;
mod cloudevents;
mod compare;
mod guide;
mod index;
mod scenario;
mod trends;

use super::SiteError;
use crate::analysis::Report;
use buslab_scenarios::results::Run;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use tera::{Context, Tera};

/// The templates, built in. Their names end in `.html` so that tera
/// autoescapes everything they print.
const TEMPLATES: [(&str, &str); 8] = [
    ("layout.html", include_str!("../../../../templates/layout.html.tera")),
    ("index.html", include_str!("../../../../templates/index.html.tera")),
    ("scenario.html", include_str!("../../../../templates/scenario.html.tera")),
    ("cell.html", include_str!("../../../../templates/cell.html.tera")),
    ("trends.html", include_str!("../../../../templates/trends.html.tera")),
    ("trend.html", include_str!("../../../../templates/trend.html.tera")),
    ("compare.html", include_str!("../../../../templates/compare.html.tera")),
    ("guide.html", include_str!("../../../../templates/guide.html.tera")),
];

const STYLE: &str = include_str!("../../../../templates/style.css");

/// Renders templates into the output directory and counts the files.
pub(crate) struct Writer {
    out: PathBuf,
    tera: Tera,
    files: AtomicUsize,
}

impl Writer {
    pub(crate) fn new(out: &Path) -> Result<Writer, SiteError> {
        let mut tera = Tera::default();
        tera.add_raw_templates(TEMPLATES.to_vec())
            .map_err(|e| SiteError::Template { template: "(loading)".to_owned(), message: chain(&e) })?;
        tera.autoescape_on(vec![".html"]);
        Ok(Writer { out: out.to_owned(), tera, files: AtomicUsize::new(0) })
    }

    pub(crate) fn files(&self) -> usize {
        self.files.load(Ordering::Relaxed)
    }

    /// Writes `contents` to `relative`.
    pub(crate) fn file(&self, relative: &str, contents: &str) -> Result<(), SiteError> {
        let path = self.out.join(relative);
        std::fs::write(&path, contents).map_err(|source| SiteError::Io { path, source })?;
        self.files.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Renders `template` with the common keys and `page`'s fields.
    fn page(&self, template: &str, relative: &str, common: &Common, page: &impl Serialize) -> Result<(), SiteError> {
        let mut context = Context::from_serialize(page)
            .map_err(|e| SiteError::Template { template: template.to_owned(), message: chain(&e) })?;
        context.extend(
            Context::from_serialize(common)
                .map_err(|e| SiteError::Template { template: template.to_owned(), message: chain(&e) })?,
        );
        let html = self
            .tera
            .render(template, &context)
            .map_err(|e| SiteError::Template { template: template.to_owned(), message: chain(&e) })?;
        self.file(relative, &html)
    }
}

/// An error and its sources, `: `-separated (tera hides the cause).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Keys every page has.
#[derive(Serialize)]
struct Common {
    root: &'static str,
    page: &'static str,
    run_id: String,
    version: &'static str,
}

fn common(run: &Run, root: &'static str, page: &'static str) -> Common {
    Common { root, page, run_id: run.meta.id.clone(), version: env!("CARGO_PKG_VERSION") }
}

/// Calls `f` on every item, spread over the machine's cores (scoped
/// threads, never more than the cores); the first error wins.
fn parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<(), SiteError> + Sync) -> Result<(), SiteError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len()).max(1);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.chunks(chunk).map(|part| scope.spawn(|| part.iter().try_for_each(&f))).collect();
        handles.into_iter().try_for_each(|h| h.join().expect("a page renderer panicked"))
    })
}

/// Writes every page of the site.
pub(crate) fn write_all(report: &Report<'_>, writer: &Writer) -> Result<(), SiteError> {
    writer.file("style.css", STYLE)?;
    index::page(report, writer)?;
    guide::page(report, writer)?;
    compare::page(report, writer)?;
    scenario::pages(report.run, &report.analysis.groups, writer)?;
    trends::pages(report.run, &report.trends, report.trend_runs, writer)?;
    cell::pages(report, writer)
}
