//! The index's CloudEvents section: per scenario, decode-only figures
//! per decoder variant and the decoder × bus matrix.

use crate::render::format;
use crate::render::site::context::{Pair, cell_href};
use buslab_scenarios::results::{CellResult, CellStatus, Run};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct CeDecode {
    variant: String,
    events: String,
    ci: String,
    bytes: String,
    errors: String,
}

#[derive(Serialize)]
struct CeRoute {
    text: String,
    ci: String,
    allocs: String,
    href: String,
    class: &'static str,
}

#[derive(Serialize)]
struct CeRow {
    variant: String,
    cells: Vec<Option<CeRoute>>,
}

#[derive(Serialize)]
pub(super) struct CeScenario {
    name: String,
    corpus: String,
    buses: Vec<String>,
    decode: Vec<CeDecode>,
    route: Vec<CeRow>,
    errors: Vec<Pair>,
    /// The first invalid documents: origin → reason.
    invalid: Vec<Pair>,
    /// Invalid documents beyond those named.
    unnamed: u64,
}

/// The CloudEvents section: per scenario, decode-only figures per decoder
/// variant, and the decoder × bus matrix of decode + route throughput.
pub(super) fn section(run: &Run) -> Vec<CeScenario> {
    let mut out: Vec<CeScenario> = Vec::new();
    let cells: Vec<&CellResult> = run.cells.iter().filter(|c| c.cloudevents.is_some()).collect();
    let mut scenarios: Vec<&str> = Vec::new();
    for c in &cells {
        if !scenarios.contains(&c.key.scenario.as_str()) {
            scenarios.push(&c.key.scenario);
        }
    }
    for scenario in scenarios {
        let mine: Vec<&CellResult> = cells.iter().copied().filter(|c| c.key.scenario == scenario).collect();
        let variant = |c: &CellResult| {
            c.key
                .params
                .iter()
                .filter(|(k, _)| k.as_str() != "subscribers")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut buses: Vec<String> = Vec::new();
        let mut variants: Vec<String> = Vec::new();
        for c in &mine {
            if !buses.contains(&c.key.bus) {
                buses.push(c.key.bus.clone());
            }
            let v = variant(c);
            if !variants.contains(&v) {
                variants.push(v);
            }
        }
        let first = mine[0].cloudevents.as_ref().expect("filtered on cloudevents");
        let corpus = &first.corpus;
        let corpus_text = format!(
            "{} ({}): {} documents, {} invalid; sizes min {}, median {}, p90 {}, max {}; {} in all",
            corpus.name,
            corpus.source,
            corpus.documents,
            corpus.invalid,
            format::bytes(corpus.min_bytes as f64),
            format::bytes(corpus.p50_bytes as f64),
            format::bytes(corpus.p90_bytes as f64),
            format::bytes(corpus.max_bytes as f64),
            format::bytes(corpus.total_bytes as f64)
        );
        let mut errors: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let decode = variants
            .iter()
            .filter_map(|v| {
                // Decode-only figures do not depend on the bus: the best
                // measured of the variant's cells is shown.
                let ce = mine
                    .iter()
                    .filter(|c| variant(c) == *v)
                    .filter_map(|c| c.cloudevents.as_ref())
                    .max_by(|a, b| a.decode_events_per_sec.median.total_cmp(&b.decode_events_per_sec.median))?;
                for (reason, n) in &ce.errors {
                    errors.entry(reason.clone()).or_default().insert(v.clone(), *n);
                }
                let e = &ce.decode_events_per_sec;
                Some(CeDecode {
                    variant: v.clone(),
                    events: format::si(e.median, "events/s"),
                    ci: format!("{} – {}", format::si_number(e.lower), format::si_number(e.upper)),
                    bytes: format!("{}/s", format::bytes(ce.decode_bytes_per_sec.median)),
                    errors: ce.errors.values().sum::<u64>().to_string(),
                })
            })
            .collect();
        let route = variants
            .iter()
            .map(|v| {
                let row: Vec<Option<(&CellResult, f64)>> = buses
                    .iter()
                    .map(|b| {
                        mine.iter()
                            .find(|c| c.key.bus == *b && variant(c) == *v)
                            .filter(|c| c.status == CellStatus::Ok)
                            .and_then(|c| c.cloudevents.as_ref().map(|ce| (*c, ce.route_events_per_sec.median)))
                    })
                    .collect();
                let best = row.iter().flatten().map(|(_, v)| *v).fold(f64::NAN, f64::max);
                CeRow {
                    variant: v.clone(),
                    cells: row
                        .iter()
                        .map(|cell| {
                            let (c, value) = (*cell)?;
                            let ce = c.cloudevents.as_ref()?;
                            let r = &ce.route_events_per_sec;
                            Some(CeRoute {
                                text: format::si(value, "events/s"),
                                ci: format!("{} – {}", format::si_number(r.lower), format::si_number(r.upper)),
                                allocs: c
                                    .allocations
                                    .as_ref()
                                    .map(|a| format!("{} allocs/event", format::si_number(a.allocs_per_event)))
                                    .unwrap_or_default(),
                                href: cell_href("", &c.key.name()),
                                class: if value == best { "best" } else { "" },
                            })
                        })
                        .collect(),
                }
            })
            .collect();
        out.push(CeScenario {
            name: scenario.to_owned(),
            corpus: corpus_text,
            buses,
            decode,
            route,
            errors: errors
                .into_iter()
                .map(|(reason, by)| {
                    // The decoders agree on what is invalid (a tested
                    // property): one count then stands for all of them.
                    let mut counts = by.values();
                    let first = counts.next().copied().unwrap_or(0);
                    let value = if by.len() == variants.len() && counts.all(|&n| n == first) {
                        format!("{first} (every decoder variant)")
                    } else {
                        by.iter().map(|(v, n)| format!("{v}: {n}")).collect::<Vec<_>>().join("; ")
                    };
                    Pair { key: reason, value }
                })
                .collect(),
            invalid: corpus
                .invalid_examples
                .iter()
                .map(|d| Pair { key: d.origin.clone(), value: d.reason.clone() })
                .collect(),
            unnamed: corpus.invalid.saturating_sub(corpus.invalid_examples.len() as u64),
        });
    }
    out
}
