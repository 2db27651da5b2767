#!/usr/bin/env bash
# Helpers shared by the ci/ scripts; sourced, never run:
#   source "$(dirname "$0")/lib.sh"
# Puts the shell at the repository root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ci_start=$(date +%s)

# `step "what"`: a heading with the seconds since the script started.
step() { printf '\n== %s (%ss)\n' "$1" "$(($(date +%s) - ci_start))"; }

# `note "text"`: a line on stderr.
note() { printf 'ci: %s\n' "$*" >&2; }

# `die "text"`: an error, exit 1.
die() {
  printf 'ci: error: %s\n' "$*" >&2
  exit 1
}

# `github_only "what"`: says that a step needs GitHub and is skipped here.
github_only() { note "skipped outside GitHub Actions: $*"; }

# True inside a GitHub Actions job.
on_github() { [ "${GITHUB_ACTIONS:-}" = true ]; }

# GitHub-hosted runners are new virtual machines every job, with new host
# names: name the machine by its class (image, CPU model, cores) so that
# runs on the same class of runner count as the same machine (buslab reads
# BUSLAB_MACHINE). A self-hosted runner keeps its host name unless set.
if on_github && [ -z "${BUSLAB_MACHINE:-}" ] && [ "${RUNNER_ENVIRONMENT:-}" = github-hosted ]; then
  BUSLAB_MACHINE="github-hosted ${ImageOS:-runner} / $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') / $(nproc) cores"
  export BUSLAB_MACHINE
fi

# `summary FILE`: appends FILE to the job summary on GitHub; prints where
# it is otherwise.
summary() {
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$1" >>"$GITHUB_STEP_SUMMARY"
  else
    note "job summary (GitHub Actions only) written to $1"
  fi
}

# The build flags of every CI build, set in one place. buslab records them
# in each run's metadata (`build.rustflags`); the nightly warns when its
# baseline was built with other flags. Override with BUSLAB_RUSTFLAGS.
# No target-cpu: shards may run on other CPUs than the build job's.
export RUSTFLAGS="${BUSLAB_RUSTFLAGS-}"

# The buslab binary the scripts run (built by `build_buslab`).
BUSLAB="${BUSLAB_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/buslab}"

# `build_buslab`: the release build the measurements use.
build_buslab() {
  if [ -n "${BUSLAB_BIN:-}" ]; then
    [ -x "$BUSLAB_BIN" ] || die "BUSLAB_BIN=$BUSLAB_BIN is not an executable"
    note "using the prebuilt $BUSLAB_BIN"
    return
  fi
  # The whole workspace, as `cargo run --release` builds it: built with `-p
  # buslab-harness` instead, the smoke recompiled every dependency after
  # .ci/run's `cargo run --release` (seen in CI's log).
  cargo build --release --locked
}

# `buslab ARGS...`: runs the binary.
buslab() { "$BUSLAB" "$@"; }

# True when this buslab has the HTML report (`buslab report`).
has_report() { "$BUSLAB" --help | grep -qE '^ +report'; }

# `run_ids DB [LABEL-PREFIX]`: the ids of the ordinary (unlabelled) runs
# in DB, oldest first; with a prefix, of the runs whose label begins with it.
run_ids() {
  "$BUSLAB" runs --json --db "$1" | python3 -c '
import json, sys
prefix = sys.argv[1]
for r in json.load(sys.stdin):
    label = r["meta"].get("label") or ""
    if (label.startswith(prefix)) if prefix else not label:
        print(r["meta"]["id"])
' "${2:-}"
}
