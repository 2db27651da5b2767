//! Flame graphs from the folded stacks of the profile pass, drawn by
//! inferno: interactive SVG (hover for a frame's samples and share, click
//! to zoom, Ctrl-F to search), as inferno makes it.
//!
//! # Input
//! Folded stacks as the harness stores them ([`Profile::folded`]): one
//! line per distinct stack, `thread;outer frame;…;inner frame count`.
//! Frame names may hold spaces: inferno takes the last space-separated
//! field as the count. Lines that are not of that form are ignored.
//! inferno splits frames at every `;`, which would cut Rust names such as
//! `<[u8; 8] as Debug>::fmt` in two: a `;` followed by a space is never a
//! frame separator (pprof joins frames with a bare `;`), so it is replaced
//! by the look-alike `;` (U+037E) before drawing.
//!
//! # Output
//! A standalone SVG **document** (with its XML declaration), not an
//! element to inline: its JavaScript (inline, no external file) expects to
//! be the document. Write it to its own `.svg` file and embed it with
//! `<object data="flame.svg" type="image/svg+xml">` or link it; an
//! `<img>` shows it without the interaction. The width is 1200 px (its
//! `viewBox` lets it scale). Frame colours are a hash of the function name,
//! so the same function has the same colour in every graph.
//!
//! inferno's header carries a DOCTYPE and comments that name web
//! addresses, and its script has two in a comment and an error message:
//! the DOCTYPE and header comments are removed and other addresses are
//! replaced by `(link removed)`, so the only URLs left are XML namespace
//! names (`xmlns`, `xmlns:xlink`, `xmlns:fg`), which nothing fetches.
//!
//! # No samples
//! A profile with no sample (an empty string, or no line with a positive
//! count) is [`FlameError::NoSamples`], not a placeholder: a page should
//! say that the profile pass recorded nothing rather than show an empty
//! graph.
//!
//! [`Profile::folded`]: buslab_scenarios::results::Profile::folded

use crate::render::charts::clean;
use inferno::flamegraph::color::{MultiPalette, Palette};
use inferno::flamegraph::{self, Options};

/// A flame graph could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FlameError {
    /// The profile holds no sample.
    #[error("flame graph {title:?}: the {which} profile has no samples")]
    NoSamples {
        /// The flame graph's title.
        title: String,
        /// Which profile: `"folded"`, or for a differential graph
        /// `"baseline"` or `"new"`.
        which: &'static str,
    },
    /// inferno failed.
    #[error("drawing flame graph {title:?}: {source}")]
    Render {
        /// The flame graph's title.
        title: String,
        /// inferno's error.
        #[source]
        source: std::io::Error,
    },
}

/// A flame graph of `folded` stacks, titled `title`.
pub fn flamegraph(folded: &str, title: &str) -> Result<String, FlameError> {
    let title = clean(title, 120);
    if !has_samples(folded) {
        return Err(FlameError::NoSamples { title, which: "folded" });
    }
    let folded = protect_semicolons(folded);
    let mut options = options(&title);
    render(&mut options, folded.lines(), &title)
}

/// A differential flame graph: the frames of `after` (their widths are
/// its samples), coloured by how their share changed from `before` — red
/// where `after` spends more samples, blue where it spends fewer, the
/// deeper the colour the larger the change.
///
/// The baseline is scaled to the new profile's total first (inferno's
/// `normalize`), so two profiles of different lengths compare by share of
/// time, not by raw sample counts. Hovering a frame shows its samples,
/// share and the change of share.
pub fn differential(before: &str, after: &str, title: &str) -> Result<String, FlameError> {
    let title = clean(title, 120);
    if !has_samples(before) {
        return Err(FlameError::NoSamples { title, which: "baseline" });
    }
    if !has_samples(after) {
        return Err(FlameError::NoSamples { title, which: "new" });
    }
    let (before, after) = (protect_semicolons(before), protect_semicolons(after));
    let mut diff = Vec::with_capacity(before.len() + after.len());
    let opt = inferno::differential::Options { normalize: true, strip_hex: false };
    inferno::differential::from_readers(opt, before.as_bytes(), after.as_bytes(), &mut diff)
        .map_err(|source| FlameError::Render { title: title.clone(), source })?;
    let diff = String::from_utf8_lossy(&diff);
    let mut options = options(&title);
    options.subtitle =
        Some("red: more of the time than in the baseline · blue: less (baseline scaled to the same total)".into());
    render(&mut options, diff.lines(), &title)
}

fn options(title: &str) -> Options<'static> {
    let mut options = Options::default();
    options.title = title.to_string();
    options.colors = Palette::Multi(MultiPalette::Rust);
    options.hash = true;
    options.count_name = "samples".into();
    options.font_type = "sans-serif".into();
    options
}

fn render<'a>(
    options: &mut Options<'_>,
    lines: impl Iterator<Item = &'a str>,
    title: &str,
) -> Result<String, FlameError> {
    let mut svg = Vec::with_capacity(64 * 1024);
    flamegraph::from_lines(options, lines, &mut svg)
        .map_err(|source| FlameError::Render { title: title.to_string(), source })?;
    Ok(without_urls(&String::from_utf8_lossy(&svg)))
}

/// `folded` with each `; ` (inside a frame name) made `\u{37e} `.
fn protect_semicolons(folded: &str) -> std::borrow::Cow<'_, str> {
    if folded.contains("; ") { folded.replace("; ", "\u{37e} ").into() } else { folded.into() }
}

/// Whether some line ends in a positive sample count.
fn has_samples(folded: &str) -> bool {
    folded.lines().any(|line| {
        let line = line.trim();
        if line.starts_with("# ") {
            return false;
        }
        let count = line.rsplit(char::is_whitespace).next().unwrap_or("");
        line.len() > count.len() && count.parse::<f64>().is_ok_and(|n| n > 0.0)
    })
}

/// inferno's output without its DOCTYPE and header comments, and with the
/// web addresses left in its script's comments and messages replaced by
/// `(link removed)`; namespace names stay.
fn without_urls(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    // The DOCTYPE and the comments before the first element inside <svg>.
    let header_end = svg.find("<defs").unwrap_or(0);
    let mut offset = 0;
    while let Some(start) = rest.find("<!") {
        if offset + start >= header_end {
            break;
        }
        let close = if rest[start..].starts_with("<!--") { "-->" } else { ">" };
        let Some(len) = rest[start..].find(close) else { break };
        out.push_str(&rest[..start]);
        let skip = start + len + close.len();
        offset += skip;
        rest = &rest[skip..];
    }
    out.push_str(rest);
    // What is left outside namespace names: comments and a message in the script.
    let mut clean = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("http://").into_iter().chain(rest.find("https://")).min() {
        let namespace = rest[..at].ends_with("xmlns=\"") || rest[..at].rfind("xmlns:").is_some_and(|x| at - x < 16);
        let end = at
            + rest[at..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '<')
                .unwrap_or(rest.len() - at);
        clean.push_str(&rest[..at]);
        clean.push_str(if namespace { &rest[at..end] } else { "(link removed)" });
        rest = &rest[end..];
    }
    clean.push_str(rest);
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOLDED: &str = "main;buslab::run;ring::publish;ring::wait 120
main;buslab::run;ring::publish;core::ptr::copy 40
main;buslab::run;listener::on_event 200
worker-1;ring::consume;<[u8; 8] as core::fmt::Debug>::fmt 30
";

    fn xml_ok(svg: &str) {
        let mut reader = quick_xml::Reader::from_str(svg);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("malformed SVG at {}: {e}", reader.buffer_position()),
            }
        }
    }

    /// Every `http(s)://` in `svg` is an xmlns declaration's value.
    fn only_namespace_urls(svg: &str) {
        for (at, _) in svg.match_indices("http") {
            let before = &svg[at.saturating_sub(16)..at];
            assert!(
                before.contains("xmlns"),
                "a URL outside xmlns: {}",
                &svg[at.saturating_sub(60)..(at + 60).min(svg.len())]
            );
        }
    }

    #[test]
    fn flamegraph_draws_frames_with_escaped_names_and_no_urls() {
        let svg = flamegraph(FOLDED, "ring <script>alert(1)</script>").expect("draws");
        xml_ok(&svg);
        only_namespace_urls(&svg);
        assert!(svg.contains("ring &lt;script&gt;alert(1)&lt;/script&gt;"), "the title is escaped");
        assert!(!svg.contains("<script>alert"), "no injected script");
        assert!(svg.contains("ring::publish"));
        assert!(svg.contains("&lt;[u8\u{37e} 8] as core::fmt::Debug&gt;::fmt"), "names with ; and <> survive, escaped");
        assert!(svg.contains("<script"), "inferno's own script is inline");
    }

    #[test]
    fn differential_colours_by_change() {
        let after = "main;buslab::run;ring::publish;ring::wait 60
main;buslab::run;ring::publish;core::ptr::copy 80
main;buslab::run;listener::on_event 200
";
        let svg = differential(FOLDED, after, "ring vs baseline").expect("draws");
        xml_ok(&svg);
        only_namespace_urls(&svg);
        assert!(svg.contains("ring vs baseline"));
        // inferno writes the change of share in each frame's title: "+…%" and "-…%".
        assert!(svg.contains("%; +") && svg.contains("%; -"), "gains and losses are shown");
    }

    #[test]
    fn empty_profiles_are_typed_errors() {
        for folded in ["", "\n\n", "main;f 0", "garbage", "# comment 5"] {
            assert!(
                matches!(flamegraph(folded, "t"), Err(FlameError::NoSamples { which: "folded", .. })),
                "{folded:?}"
            );
        }
        assert!(matches!(differential("", FOLDED, "t"), Err(FlameError::NoSamples { which: "baseline", .. })));
        assert!(matches!(differential(FOLDED, "", "t"), Err(FlameError::NoSamples { which: "new", .. })));
    }
}
