#!/usr/bin/env bash
# Loom models: the ring bus's sequencing protocol (impls/tests/loom_ring.rs)
# the fixed array's slots (impls/tests/loom_fixed_array.rs) and the pooled bus's
# envelopes (impls/tests/loom_pooled.rs).
# Preemptions are bounded so that the run takes a few minutes on 2 cores
# (the models with three threads beside a late consumer cap themselves at 1).
# Its own target dir: `--cfg buslab_loom` rebuilds every dependency.
#   bash ci/loom.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="--cfg buslab_loom"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-$PWD/target/loom}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"

start=$(date +%s)
cargo test -p buslab-impls --test loom_ring --test loom_fixed_array --test loom_pooled --release --locked
echo "loom: done in $(( $(date +%s) - start ))s (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"
