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
  # Building needs none of them (the `bindgen` step below keeps it so).
  step "system packages (valgrind for the instruction pass, shellcheck and a Python venv for the lint)"
  need=()
  command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
  command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
  python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
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

# Two commands on a machine with only a Rust toolchain: bindgen needs
# libclang, so it must not be in the build. `cargo tree -i` fails when
# nothing matches; any other failure must not pass for that.
step "no bindgen in the dependency tree (it would need libclang)"
if tree=$(cargo tree --workspace -e all -i bindgen --locked 2>&1); then
  printf '%s\n' "$tree"
  echo "error: bindgen is in the dependency tree (above): building would need libclang" >&2
  exit 1
elif ! grep -q "did not match any packages" <<<"$tree"; then
  printf '%s\n' "$tree" >&2
  echo "error: cargo tree failed" >&2
  exit 1
fi
echo "bindgen: not in the tree"

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
