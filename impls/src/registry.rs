//! The list of buses, generated from [`for_each_bus!`](crate::for_each_bus):
//! names, capabilities and the guarantees their module docs state, plus the
//! name → type dispatch the harness uses outside its timed loops.

use crate::{Capabilities, Strategy};
use serde::Serialize;

/// The guarantees a bus's module doc states under `# Guarantees`, read from
/// the source so that the doc is the one place they are written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Guarantees {
    /// Ordering of deliveries.
    pub ordering: String,
    /// Delivery (exactly once, lossy, ...).
    pub delivery: String,
    /// What a full bus does.
    pub backpressure: String,
    /// Heap allocations per published event.
    pub allocations: String,
    /// Threads the bus spawns.
    pub threads: String,
    /// The algorithm's source ("Based on:").
    pub based_on: String,
}

/// One bus as the CLI, tests and reports see it.
#[derive(Clone, Debug, Serialize)]
pub struct BusInfo {
    /// Stable name (the module name).
    pub name: &'static str,
    /// The first line of its module doc.
    pub summary: String,
    /// Its declared capabilities.
    #[serde(flatten)]
    pub capabilities: Capabilities,
    /// Its guarantees, from its module doc.
    pub guarantees: Guarantees,
}

/// Code that needs a bus's *type*: [`visit`] calls [`StrategyVisitor::visit`]
/// with the strategy named at run time, so that everything below it is
/// monomorphised (no `dyn` in timed loops).
pub trait StrategyVisitor {
    /// What the visit produces.
    type Output;
    /// Called with the strategy type.
    fn visit<S: Strategy>(self) -> Self::Output;
}

macro_rules! registry {
    ($($module:ident => $strategy:ident in $file:literal),* $(,)?) => {
        /// Every bus, in the order of [`for_each_bus!`](crate::for_each_bus).
        pub fn all() -> Vec<BusInfo> {
            vec![$(
                info::<crate::$module::$strategy>(include_str!($file)),
            )*]
        }

        /// Calls `visitor` with the strategy named `name`; `None` if no bus has
        /// that name.
        pub fn visit<V: StrategyVisitor>(name: &str, visitor: V) -> Option<V::Output> {
            match name {
                $(stringify!($module) => Some(visitor.visit::<crate::$module::$strategy>()),)*
                _ => None,
            }
        }

        #[cfg(test)]
        const MODULE_NAMES: &[(&str, &str)] = &[$(
            (stringify!($module), <crate::$module::$strategy as Strategy>::NAME),
        )*];
    };
}

crate::for_each_bus!(@with_files registry);

/// The bus named `name`, if any.
pub fn find(name: &str) -> Option<BusInfo> {
    all().into_iter().find(|b| b.name == name)
}

fn info<S: Strategy>(source: &str) -> BusInfo {
    let doc = module_doc(source);
    BusInfo {
        name: S::NAME,
        summary: doc.lines().next().unwrap_or_default().trim().to_owned(),
        capabilities: S::CAPABILITIES,
        guarantees: parse_guarantees(&doc),
    }
}

/// The leading `//!` lines of a source file, without the markers.
fn module_doc(source: &str) -> String {
    let mut doc = String::new();
    for line in source.lines() {
        let Some(text) = line.strip_prefix("//!") else {
            break;
        };
        doc.push_str(text.strip_prefix(' ').unwrap_or(text));
        doc.push('\n');
    }
    doc
}

/// Reads the `# Guarantees` list (`- **Key:** text`, continuation lines
/// indented) and the `Based on:` paragraph.
fn parse_guarantees(doc: &str) -> Guarantees {
    let mut g = Guarantees::default();
    let mut in_section = false;
    let mut current: Option<&mut String> = None;
    let mut based_on = false;
    for line in doc.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            in_section = trimmed == "# Guarantees";
            current = None;
            based_on = false;
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("Based on:") {
            in_section = false;
            based_on = true;
            g.based_on = rest.trim().to_owned();
            continue;
        }
        if based_on {
            if trimmed.is_empty() {
                based_on = false;
            } else {
                g.based_on.push(' ');
                g.based_on.push_str(trimmed);
            }
            continue;
        }
        if !in_section {
            continue;
        }
        if trimmed.is_empty() {
            current = None;
        } else if let Some(item) = trimmed.strip_prefix("- **") {
            let Some((key, text)) = item.split_once(":**") else {
                current = None;
                continue;
            };
            current = match key.trim().to_ascii_lowercase().as_str() {
                "ordering" => Some(&mut g.ordering),
                "delivery" => Some(&mut g.delivery),
                "backpressure" => Some(&mut g.backpressure),
                "allocations per event" | "allocations" => Some(&mut g.allocations),
                "threads" => Some(&mut g.threads),
                _ => None,
            };
            if let Some(field) = current.as_deref_mut() {
                field.push_str(text.trim());
            }
        } else if let Some(field) = current.as_deref_mut() {
            field.push(' ');
            field.push_str(trimmed);
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_equal_module_names() {
        let mut seen = std::collections::HashSet::new();
        for (module, name) in MODULE_NAMES {
            assert_eq!(module, name, "a bus's NAME must equal its module name");
            assert!(seen.insert(*name), "duplicate bus name {name}");
        }
        assert_eq!(all().len(), MODULE_NAMES.len());
    }

    #[test]
    fn every_module_doc_states_all_guarantees() {
        for bus in all() {
            let g = &bus.guarantees;
            for (what, text) in [
                ("Ordering", &g.ordering),
                ("Delivery", &g.delivery),
                ("Backpressure", &g.backpressure),
                ("Allocations per event", &g.allocations),
                ("Threads", &g.threads),
                ("Based on", &g.based_on),
            ] {
                assert!(!text.is_empty(), "bus `{}` doc lacks `{what}`", bus.name);
            }
            assert!(!bus.summary.is_empty(), "bus `{}` has no summary line", bus.name);
        }
    }

    #[test]
    fn parses_a_guarantees_section() {
        let doc = "Summary.\n\n# Guarantees\n- **Ordering:** FIFO\n  per producer.\n- **Threads:** none.\n\nBased on: a paper\nand a post.\n";
        let g = parse_guarantees(doc);
        assert_eq!(g.ordering, "FIFO per producer.");
        assert_eq!(g.threads, "none.");
        assert_eq!(g.based_on, "a paper and a post.");
        assert!(g.delivery.is_empty());
    }

    #[test]
    fn visit_finds_every_bus_and_only_those() {
        struct Name;
        impl StrategyVisitor for Name {
            type Output = &'static str;
            fn visit<S: Strategy>(self) -> &'static str {
                S::NAME
            }
        }
        for bus in all() {
            assert_eq!(visit(bus.name, Name), Some(bus.name));
        }
        assert_eq!(visit("no_such_bus", Name), None);
    }
}
