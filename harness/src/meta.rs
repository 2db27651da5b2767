//! Run metadata: where, when, on what, and built how. Recorded with every
//! run so that no figure is ever separated from its conditions.

use buslab_scenarios::Scenario;
use buslab_scenarios::results::{BusMeta, RunMeta};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The current UTC time, RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A new run id: UTC time plus four random hex digits (unique across
/// machines for imports).
pub fn new_run_id() -> String {
    let stamp: String = now_rfc3339().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("{stamp}-{:04x}", fastrand::u16(..))
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The CPU model from `/proc/cpuinfo` (or the architecture).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// OS name and kernel release.
pub fn os() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_owned()));
    let kernel = read_trimmed("/proc/sys/kernel/osrelease");
    match (pretty, kernel) {
        (Some(p), Some(k)) => format!("{p}, kernel {k}"),
        (Some(p), None) => p,
        (None, Some(k)) => format!("{} kernel {k}", std::env::consts::OS),
        (None, None) => std::env::consts::OS.to_owned(),
    }
}

/// A stable machine name: `BUSLAB_MACHINE` if set (CI runners change
/// hostnames), else hostname, CPU model and core count.
pub fn machine() -> String {
    if let Ok(name) = std::env::var("BUSLAB_MACHINE")
        && !name.trim().is_empty()
    {
        return name.trim().to_owned();
    }
    let host = read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown-host".into());
    format!("{host} / {} / {} cores", cpu_model(), buslab_impls::cores())
}

/// Metadata for a run starting now over `scenarios`.
pub fn collect(quick: bool, args: Vec<String>, scenarios: &[&Scenario]) -> RunMeta {
    let mut build = BTreeMap::new();
    for (key, value) in [
        ("profile", env!("BUSLAB_PROFILE")),
        ("opt_level", env!("BUSLAB_OPT_LEVEL")),
        ("rustflags", env!("BUSLAB_RUSTFLAGS")),
        ("target", env!("BUSLAB_TARGET")),
        ("target_features", env!("BUSLAB_TARGET_FEATURES")),
        ("debug_assertions", if cfg!(debug_assertions) { "on" } else { "off" }),
    ] {
        build.insert(key.to_owned(), value.to_owned());
    }
    // sonic-rs picks its SIMD path when it is compiled: these are the
    // features it could use and whether this build enabled them.
    let sonic: Vec<String> = buslab_scenarios::cloudevents::decode::sonic_rs_features()
        .into_iter()
        .map(|(feature, on)| format!("{feature}={}", if on { "on" } else { "off" }))
        .collect();
    build.insert("sonic_rs_simd".to_owned(), sonic.join(","));
    let crate_versions = env!("BUSLAB_CRATE_VERSIONS")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let commit = env!("BUSLAB_GIT_COMMIT");
    RunMeta {
        id: new_run_id(),
        started_at: now_rfc3339(),
        finished_at: None,
        complete: false,
        quick,
        args,
        buslab_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: (!commit.is_empty()).then(|| commit.to_owned()),
        git_dirty: match env!("BUSLAB_GIT_DIRTY") {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        rustc: env!("BUSLAB_RUSTC").to_owned(),
        build,
        machine: machine(),
        cpu: cpu_model(),
        cores: buslab_impls::cores(),
        os: os(),
        crate_versions,
        scenario_hashes: scenarios.iter().map(|s| (s.name.clone(), s.sha256.clone())).collect(),
        scenario_descriptions: scenarios.iter().map(|s| (s.name.clone(), s.description.clone())).collect(),
        harness_overhead_ns: None,
        corpus: None,
        buses: buses(),
        label: None,
        shards: None,
        methodology: buslab_scenarios::results::METHODOLOGY,
        work_ns_per_iteration: Some(crate::work::ns_per_iteration()),
        loss_acceptable: scenarios.iter().filter(|s| s.loss_acceptable).map(|s| s.name.clone()).collect(),
        processes: None,
        trials: None,
        chosen_trials: Default::default(),
    }
}

/// Every bus of this build as the registry describes it, then the
/// references ([`crate::reference::all`]) marked as such.
pub fn buses() -> Vec<BusMeta> {
    let references = crate::reference::all();
    let names: Vec<&str> = references.iter().map(|r| r.name).collect();
    buslab_impls::all()
        .into_iter()
        .chain(references.clone())
        .map(|info| {
            let g = info.guarantees;
            let guarantees = [
                ("ordering", g.ordering),
                ("delivery", g.delivery),
                ("backpressure", g.backpressure),
                ("allocations", g.allocations),
                ("threads", g.threads),
                ("based_on", g.based_on),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            BusMeta {
                name: info.name.to_owned(),
                summary: info.summary,
                peer: info.capabilities.peer,
                lossy: info.capabilities.lossy,
                asynchronous: info.capabilities.asynchronous,
                multi_producer: info.capabilities.multi_producer,
                dynamic_subscribe: Some(info.capabilities.dynamic_subscribe),
                reference: names.contains(&info.name),
                guarantees,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_filled_from_the_build_and_machine() {
        let meta = collect(true, vec!["buslab".into()], &[]);
        assert!(meta.rustc.starts_with("rustc "), "{}", meta.rustc);
        assert!(meta.cores >= 1);
        assert!(!meta.cpu.is_empty() && !meta.os.is_empty() && !meta.machine.is_empty());
        assert!(meta.crate_versions.contains_key("crossbeam-channel"), "{:?}", meta.crate_versions);
        // Every peer crate's version is recorded (std_mpsc's is `rustc -V`).
        for peer in ["tokio", "disruptor", "bus", "flume", "kanal"] {
            assert!(meta.crate_versions.contains_key(peer), "{peer} missing from {:?}", meta.crate_versions);
        }
        assert_eq!(meta.build.get("target").map(String::is_empty), Some(false));
        assert!(meta.build.get("sonic_rs_simd").is_some_and(|s| s.contains("avx2=")), "{:?}", meta.build);
        assert!(meta.buses.iter().any(|b| b.name == "ring" && !b.peer), "{:?}", meta.buses);
        assert!(meta.buses.iter().all(|b| b.guarantees.len() == 6 && !b.summary.is_empty()));
    }

    #[test]
    fn run_ids_are_unique_and_sortable_by_time() {
        let a = new_run_id();
        let b = new_run_id();
        assert_ne!(a, b);
        assert!(a.len() > 16 && a.ends_with(|c: char| c.is_ascii_hexdigit()));
    }
}
