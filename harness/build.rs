//! Records how buslab was built, for the run metadata: rustc version, git
//! commit and dirty flag, profile and flags, and the versions of the crates
//! under test (read from the workspace's Cargo.lock).

use std::path::Path;
use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Crates whose versions are recorded with every run.
const UNDER_TEST: &[&str] = &[
    "crossbeam-channel",
    "crossbeam-epoch",
    "crossbeam-queue",
    "crossbeam-utils",
    "arc-swap",
    "tokio",
    // The peers (`buslab_impls::peers`).
    "disruptor",
    "bus",
    "flume",
    "kanal",
    "rtrb",
    "hdrhistogram",
    "pprof",
    "serde_json",
    "simd-json",
    "sonic-rs",
];

fn main() {
    // Read when the script runs, not baked in when it is compiled: cargo
    // reuses a compiled build script for another checkout of the same
    // crate sharing the target dir (the base of a pull request).
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).parent().expect("harness/ has a parent");
    println!("cargo::rerun-if-changed={}", root.join("Cargo.lock").display());
    let root_s = root.display().to_string();
    // Where git keeps HEAD and the index: `.git/` in a clone, elsewhere in
    // a worktree (a path that does not exist would rerun this every build).
    for name in ["HEAD", "index"] {
        let path = output("git", &["-C", &root_s, "rev-parse", "--path-format=absolute", "--git-path", name])
            .unwrap_or_else(|| root.join(".git").join(name).display().to_string());
        println!("cargo::rerun-if-changed={path}");
    }
    println!("cargo::rerun-if-env-changed=RUSTFLAGS");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = output(&rustc, &["-V"]).unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=BUSLAB_RUSTC={version}");

    let commit = output("git", &["-C", &root_s, "rev-parse", "HEAD"]).unwrap_or_default();
    let dirty = output("git", &["-C", &root_s, "status", "--porcelain", "--untracked-files=no"])
        .map(|s| if s.is_empty() { "false" } else { "true" })
        .unwrap_or("");
    println!("cargo::rustc-env=BUSLAB_GIT_COMMIT={commit}");
    println!("cargo::rustc-env=BUSLAB_GIT_DIRTY={dirty}");

    let profile = std::env::var("PROFILE").unwrap_or_default();
    let opt = std::env::var("OPT_LEVEL").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default().replace('\x1f', " ");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo::rustc-env=BUSLAB_PROFILE={profile}");
    println!("cargo::rustc-env=BUSLAB_OPT_LEVEL={opt}");
    println!("cargo::rustc-env=BUSLAB_RUSTFLAGS={flags}");
    println!("cargo::rustc-env=BUSLAB_TARGET_FEATURES={features}");
    println!("cargo::rustc-env=BUSLAB_TARGET={target}");

    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let mut versions = Vec::new();
    let mut name = String::new();
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = n.trim_matches('"').to_owned();
        } else if let Some(v) = line.strip_prefix("version = ")
            && UNDER_TEST.contains(&name.as_str())
        {
            versions.push(format!("{name}={}", v.trim_matches('"')));
        }
    }
    println!("cargo::rustc-env=BUSLAB_CRATE_VERSIONS={}", versions.join(","));
}
