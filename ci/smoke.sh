#!/usr/bin/env bash
# End-to-end smoke of the main job, the report and the regression gate,
# into temporary stores (nothing under results/ is touched):
#   1. `buslab run --quick` on a subset of the catalog, every bus;
#   2. the HTML report of that run, rendered and checked (ci/check_site.py);
#   3. `compare` of the run with itself exits 0;
#   4. a doctored copy (+10% instructions, new id) imported and compared
#      with --fail-on-regression exits 3, with the default gate and with
#      the pull-request gate (--gate deterministic);
#   5. two shards of one run, made apart and merged with `buslab import`,
#      hold exactly the planned cells;
#   6. the nightly pipeline (ci/nightly.sh) end to end on a tiny suite, two
#      nights in a row, with a local bare repository as the results branch.
# Runnable locally: bash ci/smoke.sh   (BUSLAB_SMOKE_SCENARIOS overrides the subset)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

scenarios="${BUSLAB_SMOKE_SCENARIOS:-spsc,heavy-payload}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step "build (release)"
build_buslab

step "buslab run --quick --scenario $scenarios (every bus)"
db="$tmp/smoke.sqlite"
# `run` renders its report beside the store ($tmp/report) unless this
# buslab predates the report.
buslab run --quick --scenario "$scenarios" --run-id smoke-run --db "$db" >"$tmp/run.txt" 2>&1 \
  || { tail -n 30 "$tmp/run.txt"; note "failed cells:"; grep -F -A3 "FAILED" "$tmp/run.txt" || true; die "buslab run failed"; }
tail -n 3 "$tmp/run.txt"
id=$(run_ids "$db" | tail -n 1)
[ "$id" = smoke-run ] || die "expected the run smoke-run in $db, found '$id'"

step "report"
# `buslab report` lands with the HTML report (issue 4); until this buslab
# has it, the step says so and is skipped.
if has_report; then
  buslab report --run "$id" --out "$tmp/site" --db "$db"
  python3 ci/check_site.py "$tmp/site"
  [ -f "$tmp/report/index.html" ] || die "buslab run rendered no report beside its store"
  note "checking the report \`buslab run\` rendered at its end"
  python3 ci/check_site.py "$tmp/report"
else
  note "this buslab has no \`report\` command yet: report step skipped"
fi

step "compare the run with itself: exit 0"
buslab compare --baseline "$id" --new "$id" --fail-on-regression --db "$db"

step "compare against a doctored copy (+10% instructions): exit 3"
buslab export --run "$id" --format json --db "$db" >"$tmp/run.json"
python3 ci/doctor_run.py "$tmp/run.json" "$tmp/doctored.json" smoke-doctored 1.10
buslab import "$tmp/doctored.json" --db "$db"
status=0
buslab compare --baseline "$id" --new smoke-doctored --fail-on-regression --db "$db" \
  --markdown "$tmp/compare.md" >"$tmp/compare.txt" || status=$?
head -n 4 "$tmp/compare.txt"
[ "$status" = 3 ] || die "compare against the doctored run exited $status, expected 3"
grep -q "regression" "$tmp/compare.md" || die "the Markdown summary names no regression"
# The pull-request gate (single-threaded counts only) catches it too.
status=0
buslab compare --baseline "$id" --new smoke-doctored --fail-on-regression --gate deterministic --db "$db" \
  >"$tmp/compare-gate.txt" || status=$?
tail -n 1 "$tmp/compare-gate.txt"
[ "$status" = 3 ] || die "the deterministic gate exited $status against the doctored run, expected 3"

step "two shards of one run, merged with buslab import"
shard_args=(--quick --scenario spsc --pass "throughput,allocations" --run-id smoke-shards)
buslab run --plan "${shard_args[@]}" | grep -v '^#' | cut -f1 | sort >"$tmp/plan.txt"
for i in 1 2; do
  buslab run --shard "$i/2" "${shard_args[@]}" --no-report --db "$tmp/shard-$i.sqlite" 2>&1 | tail -n 1
  buslab export --run smoke-shards --format json --db "$tmp/shard-$i.sqlite" >"$tmp/shard-$i.json"
done
buslab import "$tmp/shard-1.json" --db "$tmp/merged.sqlite"
buslab import "$tmp/shard-2.json" --db "$tmp/merged.sqlite"
buslab export --run smoke-shards --format json --db "$tmp/merged.sqlite" >"$tmp/merged.json"
python3 - "$tmp/merged.json" "$tmp/plan.txt" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
planned = sorted(open(sys.argv[2]).read().split())
def name(c):
    k = c["key"]
    return "/".join([k["scenario"], k["bus"]] + [f"{p}={v}" for p, v in sorted(k["params"].items())])
got = sorted(name(c) for c in run["cells"])
assert got == planned, f"merged cells {got} != planned {planned}"
assert run["meta"]["shards"] == {"count": 2, "held": [1, 2]}, run["meta"].get("shards")
assert run["meta"]["complete"], "the merged run is complete"
print(f"merged run: {len(got)} cells = the plan, shards 1 and 2 held")
EOF

step "the nightly pipeline on a tiny suite, two nights (ci/nightly.sh)"
export BUSLAB_WORK="$tmp/nightly" BUSLAB_SHARDS=2
# In-line buses only: their instruction counts are deterministic, so the
# second night never differs from the first beyond the thresholds.
export BUSLAB_SUITE_ARGS="--quick --scenario spsc --bus fixed_array,router --pass throughput,allocations,instructions"
export BUSLAB_RESULTS_REMOTE="$tmp/results.git"
export BUSLAB_BIN="$BUSLAB"
for night in 1 2; do
  BUSLAB_RUN_ID="smoke-night-$night" bash ci/nightly.sh all >"$tmp/night-$night.log" 2>&1 \
    || { tail -n 40 "$tmp/night-$night.log"; die "night $night of ci/nightly.sh failed"; }
  grep -E '^(ci|==)' "$tmp/night-$night.log" | tail -n 4
done
git -C "$BUSLAB_RESULTS_REMOTE" ls-tree -r --name-only results | grep -q 'smoke-night-2' \
  || die "the second night's run is not on the results branch"
grep -q "base smoke-night-1 -> new smoke-night-2" "$tmp/night-2.log" \
  || die "the second night did not compare with the first"

step "smoke: done"
