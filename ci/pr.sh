#!/usr/bin/env bash
# The pull-request gate: a quick run of the buses a change can affect, at
# the base and at the head, into one store, judged on deterministic counts.
#
#   bash ci/pr.sh affected [BASE [HEAD]]  prints the affected buses: `all`,
#                                          `none`, or a comma-separated list
#   bash ci/pr.sh [bench [BASE [HEAD]]]    builds both, runs both, compares
#
# BASE defaults to the merge base of HEAD and main; HEAD to HEAD. The head
# binary is built from the working tree (locally, uncommitted changes are
# part of the head; in CI the tree is HEAD).
#
# Affected buses: a change to impls/src/<bus>.rs (a file with a
# `//! # Guarantees` module doc, i.e. a bus) affects that bus; Markdown
# affects none; anything else (the harness, the bus contract, the
# scenarios, Cargo.lock, ...) affects all.
#
# What is run and judged: `buslab run --quick --pass instructions,allocations`,
# then `compare --fail-on-regression --gate deterministic`: the check fails
# only on the instructions and allocations per event of single-threaded
# cells (one producer, an in-line bus, no churn), the counts that repeat
# when the code does not change; everything else is in the summary but does
# not fail it. Counts of multi-threaded cells depend on how callgrind
# interleaves the threads (measured: they moved by up to tens of percent,
# and allocations grew from zero, between two builds of identical bus
# code), and cache and branch simulations depend on addresses. Wall-clock
# metrics are not measured: a quick run has 3 trials a side, the
# Mann–Whitney U test cannot reach p < 0.01 with 3 trials (its smallest
# p-value is 0.1), so no quick throughput change could be significant, and
# latency would be judged by a 5% band it crosses by chance.
# Exit status: 0 no regression (or nothing affected), 3 a regression, 1 error.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

cmd="${1:-bench}"
[ "$#" -gt 0 ] && shift
default_base() {
  git merge-base HEAD origin/main 2>/dev/null || git merge-base HEAD main 2>/dev/null \
    || die "no base given and no main branch to take the merge base with"
}
base="${1:-$(default_base)}"
head="${2:-HEAD}"
work="${BUSLAB_WORK:-$PWD/results/ci/pr}"

affected() {
  local all=0 file name
  local -a buses=()
  while IFS= read -r file; do
    case "$file" in
      *.md) ;;
      impls/src/*.rs)
        name=$(basename "$file" .rs)
        if { git show "$head:$file" 2>/dev/null || git show "$base:$file" 2>/dev/null; } | grep -q '^//! # Guarantees'; then
          buses+=("$name")
        else
          all=1
        fi
        ;;
      *) all=1 ;;
    esac
  done < <(git diff --name-only "$base" "$head")
  if [ "$all" = 1 ]; then
    echo all
  elif [ "${#buses[@]}" -eq 0 ]; then
    echo none
  else
    printf '%s\n' "${buses[@]}" | sort -u | paste -sd, -
  fi
}

# `bus_args BINARY LIST`: `--bus` and the buses of LIST that BINARY knows,
# one per line (nothing for `all`); fails when it knows none of them.
bus_args() {
  local bin="$1" list="$2" known
  [ "$list" = all ] && return
  known=$("$bin" list --json | python3 -c '
import json, sys
wanted = sys.argv[1].split(",")
print(",".join(b["name"] for b in json.load(sys.stdin) if b["name"] in wanted))
' "$list")
  # A bus that one binary does not know (added or removed by the change)
  # is measured on one side only: `compare` lists it as not compared.
  [ -n "$known" ] || return 1
  printf -- '--bus\n%s\n' "$known"
}

bench() {
  local buses status=0
  buses=$(affected)
  mkdir -p "$work"
  rm -f "$work"/*.sqlite* "$work"/*.json "$work/pr-compare.md"
  step "pull-request gate: base $(git rev-parse --short "$base"), head $(git rev-parse --short "$head"); affected buses: $buses"
  if [ "$buses" = none ]; then
    printf '## buslab pull-request gate\n\nNo bus is affected by this change (documentation only): nothing measured.\n' \
      >"$work/pr-compare.md"
    summary "$work/pr-compare.md"
    return
  fi

  step "build the head"
  build_buslab
  cp "$BUSLAB" "$work/buslab-head"

  # The base in a target dir of its own: a build script compiled for one
  # checkout may be reused for another in a shared target dir, and build
  # scripts that bake in their checkout's path (as buslab's did before
  # they read CARGO_MANIFEST_DIR at run time) would then embed the other
  # checkout's catalog and commit.
  step "build the base ($base)"
  local src="$work/base-src" target="${CARGO_TARGET_DIR:-$PWD/target}/pr-base"
  git worktree remove --force "$src" 2>/dev/null || rm -rf "$src"
  git worktree add -q --detach "$src" "$base"
  (cd "$src" && CARGO_TARGET_DIR="$target" cargo build --release --locked)
  cp "$target/release/buslab" "$work/buslab-base"
  git worktree remove --force "$src"

  local run=(run --quick --pass "instructions,allocations") args
  local -a base_bus=() head_bus=()
  if ! args=$(bus_args "$work/buslab-base" "$buses"); then
    note "the base knows none of the affected buses ($buses): they are new, nothing to compare"
    printf '## buslab pull-request gate\n\nThe affected buses (%s) are new: there is no base to compare with.\n' \
      "$buses" >"$work/pr-compare.md"
    summary "$work/pr-compare.md"
    return
  fi
  [ -z "$args" ] || mapfile -t base_bus <<<"$args"
  args=$(bus_args "$work/buslab-head" "$buses") || die "the head knows none of the affected buses ($buses)"
  [ -z "$args" ] || mapfile -t head_bus <<<"$args"

  step "measure the base"
  "$work/buslab-base" "${run[@]}" "${base_bus[@]}" --db "$work/base.sqlite" >"$work/base.txt" 2>&1 \
    || { tail -n 20 "$work/base.txt"; die "the base run failed"; }
  tail -n 2 "$work/base.txt"
  # The base binary exports its own store (it may be of another schema
  # version); the JSON export reads back into the head's store.
  "$work/buslab-base" export --format json --db "$work/base.sqlite" >"$work/base.json"

  step "measure the head"
  "$work/buslab-head" "${run[@]}" "${head_bus[@]}" --run-id pr-head --db "$work/pr.sqlite" >"$work/head.txt" 2>&1 \
    || { tail -n 20 "$work/head.txt"; die "the head run failed"; }
  tail -n 2 "$work/head.txt"
  "$work/buslab-head" import "$work/base.json" --db "$work/pr.sqlite"
  local base_id
  base_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["meta"]["id"])' "$work/base.json")

  step "compare (instruction and allocation counts)"
  "$work/buslab-head" compare --baseline "$base_id" --new pr-head --db "$work/pr.sqlite" \
    --markdown "$work/compare.md" --fail-on-regression --gate deterministic || status=$?
  [ "$status" = 0 ] || [ "$status" = 3 ] || die "buslab compare exited $status"
  {
    printf '## buslab pull-request gate\n\n'
    printf 'Buses measured: **%s**. Instruction and allocation counts of a %s run at the base and at the head, ' \
      "$buses" "\`--quick\`"
    printf 'on the same runner; wall-clock metrics are not measured (3 quick trials cannot make a significant change).\n\n'
    sed '1{/^## /d}' "$work/compare.md"
  } >"$work/pr-compare.md"
  summary "$work/pr-compare.md"
  if [ "$status" = 3 ]; then
    note "a deterministic count regressed (see $work/pr-compare.md)"
    exit 3
  fi
}

case "$cmd" in
  affected) affected ;;
  bench) bench ;;
  *) die "unknown command '$cmd': affected or bench" ;;
esac
