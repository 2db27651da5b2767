#!/usr/bin/env bash
# fmt, clippy, docs, the lint of the ci/ scripts and workflows, the
# README's test command, the loom model and the end-to-end smoke
# (ci/smoke.sh). Runnable locally: bash ci/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }
# BUSLAB_CHECK_PHASE: unset = everything; `setup` = up to clippy and docs;
# `after-tests` = what follows the test suite (.ci/run runs the tests itself).
phase="${BUSLAB_CHECK_PHASE:-all}"

if [ "$phase" != after-tests ]; then
  step "system packages (valgrind for the instruction pass, libclang for valgrind-requests' bindings, shellcheck)"
  need=()
  command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
  command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
  ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
  if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
      sudo apt-get update -qq
      sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi

step "toolchain"
cargo --version
rustc -Vv
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (RUSTDOCFLAGS=-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "lint: ci/ scripts (shellcheck) and workflows"
bash ci/lint.sh

fi

if [ "$phase" = all ]; then
  step "cargo test --workspace"
  cargo test --workspace --locked
fi

if [ "$phase" = setup ]; then
  exit 0
fi

if [ -f ci/loom.sh ]; then
  step "loom model of the ring"
  bash ci/loom.sh
fi

step "cargo run --release -- list"
cargo run --release --locked -- list >/dev/null
cargo run --release --locked -- list --json >/dev/null

step "smoke: run, report, compare, the regression gate, shards, the nightly pipeline (ci/smoke.sh)"
bash ci/smoke.sh

step "done"
