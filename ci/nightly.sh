#!/usr/bin/env bash
# The nightly: build, run the default suite in shards, merge them into one
# run, restore and extend the results history, compare with the previous
# nightly, render the report, open or update an issue on regression.
#
#   bash ci/nightly.sh            the whole nightly, locally, in a temp dir
#   bash ci/nightly.sh STEP ...   one step (what .github/workflows/nightly.yml runs):
#     build               release build with the CI flags (ci/lib.sh)
#     run-id              prints a new run id for the shards to share
#     shard I N           runs shard I/N of the suite into its own store and
#                         exports it to $BUSLAB_WORK/shards/shard-I.json
#     restore             rebuilds the history store from the results branch
#     merge               imports every shard into the history store
#     judge               compares the run with the previous nightly; writes
#                         $BUSLAB_WORK/compare.md and the job summary
#     report              renders the report into $BUSLAB_WORK/site and checks it
#     save [ID...]        adds runs (default: the run) to the results branch
#     issue               on a regression, opens or updates a GitHub issue
#     noise               a noise calibration (A/A) group, saved to the branch
#     status              exits 3 if `judge` found a regression, 0 otherwise
#
# Environment (defaults in brackets):
#   BUSLAB_WORK            working directory [a new temp dir for `all`, else results/ci]
#   BUSLAB_DB              the history store [$BUSLAB_WORK/history.sqlite]
#   BUSLAB_RUN_ID          the run's id [from `run-id`]
#   BUSLAB_SHARDS          shards for `all` [2]
#   BUSLAB_SUITE_ARGS      extra `buslab run` arguments [none: the default suite]
#   BUSLAB_NOISE_ARGS      `buslab noise` arguments [--repeat 5 --scenario spsc,heavy-payload]
#   BUSLAB_NIGHTLY_GATE    which regressions fail the job and open the issue:
#                          `deterministic` or `all` [deterministic; see ci/README.md]
#   BUSLAB_RESULTS_REMOTE  repository of the results branch [origin on GitHub;
#                          a local bare repository in $BUSLAB_WORK otherwise]
#   BUSLAB_RESULTS_BRANCH  [results]
#   BUSLAB_BIN             a prebuilt buslab [target/release/buslab]
# Outside GitHub Actions, the steps that need GitHub (Pages, issues, the
# job summary) are skipped and say so. See ci/README.md.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

cmd="${1:-all}"
[ "$#" -gt 0 ] && shift

if [ -n "${BUSLAB_WORK:-}" ]; then
  work="$BUSLAB_WORK"
elif [ "$cmd" = all ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/buslab-nightly.XXXXXX")
else
  work="$PWD/results/ci"
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
db="${BUSLAB_DB:-$work/history.sqlite}"
branch="${BUSLAB_RESULTS_BRANCH:-results}"
read -r -a suite <<<"${BUSLAB_SUITE_ARGS:-}"
read -r -a noise_args <<<"${BUSLAB_NOISE_ARGS:---repeat 5 --scenario spsc,heavy-payload}"

run_id() {
  if [ -n "${BUSLAB_RUN_ID:-}" ]; then
    printf '%s\n' "$BUSLAB_RUN_ID"
  elif [ -s "$work/run-id" ]; then
    cat "$work/run-id"
  else
    die "no run id: set BUSLAB_RUN_ID or run \`ci/nightly.sh run-id\` first"
  fi
}

# The repository that holds the results branch.
results_remote() {
  if [ -n "${BUSLAB_RESULTS_REMOTE:-}" ]; then
    printf '%s\n' "$BUSLAB_RESULTS_REMOTE"
  elif on_github; then
    printf '%s\n' "${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY.git"
  else
    # Never push to a real remote from a local run unless told to.
    printf '%s\n' "$work/results.git"
  fi
}

# `rgit ARGS...`: git with the token of the job for GitHub remotes.
rgit() {
  if [ -n "${GITHUB_TOKEN:-}" ] && [[ "$(results_remote)" == https://* ]]; then
    local auth
    auth=$(printf 'x-access-token:%s' "$GITHUB_TOKEN" | base64 | tr -d '\n')
    git -c "http.extraheader=AUTHORIZATION: basic $auth" "$@"
  else
    git "$@"
  fi
}

# A URL git clones shallowly (a local path needs file://).
clone_url() {
  local remote
  remote=$(results_remote)
  if [ -d "$remote" ]; then printf 'file://%s\n' "$(cd "$remote" && pwd)"; else printf '%s\n' "$remote"; fi
}

# Makes $work/results-repo a checkout-less clone of the results branch
# (trees only; file contents are fetched when read). Returns 1 when the
# branch does not exist yet.
results_repo() {
  local repo="$work/results-repo" remote
  remote=$(results_remote)
  if [[ "$remote" != *://* && "$remote" != *@*:* ]] && [ ! -e "$remote" ]; then
    # A local path that does not exist yet (a local run): a new bare repository.
    git init -q --bare "$remote"
    git -C "$remote" config uploadpack.allowFilter true
  fi
  if ! rgit ls-remote --exit-code --heads "$(clone_url)" "$branch" >/dev/null 2>&1; then
    return 1
  fi
  if [ -d "$repo/.git" ]; then
    rgit -C "$repo" fetch -q --depth 1 --filter=blob:none origin "$branch"
    git -C "$repo" reset -q --soft FETCH_HEAD
    git -C "$repo" read-tree FETCH_HEAD
  else
    rm -rf "$repo"
    rgit clone -q --depth 1 --filter=blob:none --no-checkout --branch "$branch" "$(clone_url)" "$repo" 2>"$work/clone.err" \
      || die "cannot clone branch '$branch' of $(results_remote): $(cat "$work/clone.err")"
    git -C "$repo" read-tree HEAD
  fi
}

do_build() {
  step "build (RUSTFLAGS='${RUSTFLAGS}')"
  build_buslab
  buslab --version
}

do_run_id() {
  local id
  id="nightly-$(date -u +%Y%m%dT%H%M%SZ)"
  printf '%s\n' "$id" >"$work/run-id"
  printf '%s\n' "$id"
}

do_shard() {
  local index="${1:?shard index}" count="${2:?shard count}" id
  id=$(run_id)
  step "shard $index/$count of run $id"
  mkdir -p "$work/shards"
  local store="$work/shards/shard-$index.sqlite"
  rm -f "$store" "$store-wal" "$store-shm"
  local status=0
  # No report per shard: the merged run gets one.
  buslab run "${suite[@]}" --shard "$index/$count" --run-id "$id" --db "$store" --no-report || status=$?
  # A failed cell (4) is recorded and reported; anything else is an error.
  [ "$status" = 0 ] || [ "$status" = 4 ] || die "buslab run exited $status"
  buslab export --run "$id" --format json --db "$store" >"$work/shards/shard-$index.json"
  note "shard $index/$count exported to $work/shards/shard-$index.json"
}

do_restore() {
  step "restore the history from branch '$branch' of $(results_remote)"
  if ! results_repo; then
    note "no '$branch' branch yet: the history starts empty"
    return
  fi
  local repo="$work/results-repo" known file id imported=0
  if [ -f "$db" ] && ! buslab runs --db "$db" >/dev/null 2>&1; then
    # A store restored from a cache that does not open is rebuilt from the
    # branch, which is the record; the file is kept aside for a post-mortem.
    note "$db does not open: rebuilding it from the branch (kept as $db.broken)"
    mv "$db" "$db.broken"
    rm -f "$db-wal" "$db-shm"
  fi
  known=""
  if [ -f "$db" ]; then
    known=$(buslab runs --json --db "$db" | python3 -c 'import json,sys; print("\n".join(r["meta"]["id"] for r in json.load(sys.stdin)))')
  fi
  while IFS= read -r file; do
    id=$(basename "$file" .json.gz)
    if ! grep -qxF "$id" <<<"$known"; then
      rgit -C "$repo" show "HEAD:$file" | gzip -dc >"$work/restore.json"
      buslab import "$work/restore.json" --db "$db" >/dev/null
      imported=$((imported + 1))
    fi
  done < <(git -C "$repo" ls-tree -r --name-only HEAD -- runs/)
  rm -f "$work/restore.json"
  note "history: $imported run(s) imported into $db"
}

do_merge() {
  local id files
  id=$(run_id)
  step "merge the shards of $id into $db"
  mapfile -t files < <(find "$work/shards" -name 'shard-*.json' | sort -V)
  [ "${#files[@]}" -gt 0 ] || die "no shard exports in $work/shards"
  for f in "${files[@]}"; do
    buslab import "$f" --db "$db"
  done
  buslab runs --db "$db" | grep -F "$id"
}

do_judge() {
  local id base status=0
  id=$(run_id)
  step "compare $id with the previous nightly"
  # The baseline as `compare` picks it (same machine, no label, earlier),
  # and whether it was built with the same flags.
  base=$(buslab runs --json --db "$db" | python3 -c '
import json, sys
runs = {r["meta"]["id"]: r["meta"] for r in json.load(sys.stdin)}
new = runs[sys.argv[1]]
key = lambda m: (m["started_at"], m["id"])
earlier = [m for m in runs.values() if m["machine"] == new["machine"] and not m.get("label") and key(m) < key(new)]
print(max(earlier, key=key)["id"] if earlier else "")
' "$id")
  if [ -z "$base" ]; then
    printf '## buslab nightly\n\nRun %s is the first on its machine: nothing to compare with yet.\n' "\`$id\`" \
      >"$work/compare.md"
    note "no earlier run on this machine: nothing to compare"
  else
    buslab compare --baseline "$base" --new "$id" --db "$db" --markdown "$work/compare.md" --fail-on-regression \
      --gate "${BUSLAB_NIGHTLY_GATE:-deterministic}" || status=$?
    [ "$status" = 0 ] || [ "$status" = 3 ] || die "buslab compare exited $status"
    # shellcheck disable=SC2016 # Markdown backticks in a Python program
    buslab runs --json --db "$db" | python3 -c '
import json, sys
runs = {r["meta"]["id"]: r["meta"] for r in json.load(sys.stdin)}
base, new = runs[sys.argv[1]], runs[sys.argv[2]]
notes = [
    f"- **{what}** differs from the baseline: `{base.get(what)}` then, `{new.get(what)}` now"
    for what in ("build", "rustc", "crate_versions")
    if base.get(what) != new.get(what)
]
if notes:
    print("\n### Conditions changed\n\nA step in the trends here may be the conditions, not the code.\n")
    print("\n".join(notes))
' "$base" "$id" >>"$work/compare.md"
  fi
  printf '%s\n' "$status" >"$work/regression-status"
  summary "$work/compare.md"
}

do_report() {
  local id
  id=$(run_id)
  step "report of $id"
  rm -rf "$work/site"
  if has_report; then
    buslab report --run "$id" --out "$work/site" --db "$db"
  else
    # Until `buslab report` lands (issue 4): a page with the comparison.
    note "this buslab has no \`report\` command yet: publishing the comparison alone"
    mkdir -p "$work/site"
    python3 - "$work/compare.md" "$id" >"$work/site/index.html" <<'EOF'
import html, sys
text = open(sys.argv[1], encoding="utf-8").read()
print(f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>buslab nightly {html.escape(sys.argv[2])}</title></head>")
print(f"<body><h1>buslab nightly {html.escape(sys.argv[2])}</h1><pre>{html.escape(text)}</pre></body></html>")
EOF
  fi
  python3 ci/check_site.py "$work/site"
  if on_github; then
    note "the workflow publishes $work/site to GitHub Pages"
  else
    github_only "publishing to GitHub Pages; the site is $work/site/index.html"
  fi
}

do_save() {
  local ids=("$@") repo="$work/results-repo" added=()
  [ "${#ids[@]}" -gt 0 ] || ids=("$(run_id)")
  step "save ${#ids[@]} run(s) to branch '$branch' of $(results_remote)"
  if ! results_repo; then
    note "creating the '$branch' branch"
    rm -rf "$repo"
    git init -q "$repo"
    git -C "$repo" checkout -q --orphan "$branch"
    git -C "$repo" remote add origin "$(clone_url)"
    cat >"$repo/README.md" <<'EOF'
# buslab results history

One file per run, `runs/<run id>.json.gz`: the run as `buslab export --format json`
writes it, gzipped. Written by ci/nightly.sh; files are added, never changed.
Rebuild a store: `bash ci/nightly.sh restore` (see ci/README.md).
EOF
    git -C "$repo" add README.md
  fi
  mkdir -p "$repo/runs"
  for id in "${ids[@]}"; do
    local path="runs/$id.json.gz"
    if git -C "$repo" rev-parse -q --verify HEAD >/dev/null && [ -n "$(git -C "$repo" ls-tree HEAD -- "$path")" ]; then
      continue
    fi
    buslab export --run "$id" --format json --db "$db" | gzip -n -9 >"$repo/$path"
    git -C "$repo" add "$path"
    added+=("$path")
  done
  if [ "${#added[@]}" -eq 0 ]; then
    note "every run is already on the branch"
    return
  fi
  local who=(-c user.name="buslab nightly" -c user.email="buslab-nightly@users.noreply.github.com")
  git -C "$repo" "${who[@]}" commit -q -m "results: ${ids[*]}"
  # Another job may have pushed in between: put the new files on top of
  # the branch as it is now and try again (files never collide: one per run).
  local attempt
  for attempt in 1 2 3 4 5; do
    if rgit -C "$repo" push -q origin "HEAD:refs/heads/$branch" 2>"$work/push.err"; then
      note "pushed ${#added[@]} file(s) to '$branch'"
      return
    fi
    note "push rejected (attempt $attempt): $(head -n 1 "$work/push.err")"
    rgit -C "$repo" fetch -q --depth 1 --filter=blob:none origin "$branch"
    git -C "$repo" reset -q --soft FETCH_HEAD
    git -C "$repo" read-tree FETCH_HEAD
    git -C "$repo" add "${added[@]}"
    git -C "$repo" "${who[@]}" commit -q -m "results: ${ids[*]}"
    sleep $((attempt * 2))
  done
  die "could not push to '$branch' after 5 attempts"
}

do_issue() {
  local status
  status=$(cat "$work/regression-status" 2>/dev/null || echo 0)
  if [ "$status" != 3 ]; then
    note "no regression: no issue to open"
    return
  fi
  step "open or update the regression issue"
  if ! on_github; then
    github_only "opening or updating the issue 'Nightly performance regression' with $work/compare.md"
    return
  fi
  local label=performance-regression number
  gh label create "$label" --color B60205 --description "Found by the buslab nightly" --force >/dev/null
  number=$(gh issue list --label "$label" --state open --json number --jq '.[0].number // empty')
  {
    cat "$work/compare.md"
    printf '\n[Workflow run](%s/%s/actions/runs/%s)\n' "$GITHUB_SERVER_URL" "$GITHUB_REPOSITORY" "$GITHUB_RUN_ID"
  } >"$work/issue.md"
  if [ -n "$number" ]; then
    gh issue comment "$number" --body-file "$work/issue.md"
  else
    gh issue create --title "Nightly performance regression" --label "$label" --body-file "$work/issue.md"
  fi
}

do_noise() {
  step "noise calibration: buslab noise ${noise_args[*]}"
  local status=0 ids
  buslab noise "${noise_args[@]}" --db "$db" --markdown "$work/noise.md" --json "$work/noise.json" || status=$?
  [ "$status" = 0 ] || [ "$status" = 4 ] || die "buslab noise exited $status"
  summary "$work/noise.md"
  mapfile -t ids < <(run_ids "$db" noise:)
  note "${#ids[@]} noise run(s) in $db"
  do_save "${ids[@]}"
}

do_status() {
  local status
  status=$(cat "$work/regression-status" 2>/dev/null || echo 0)
  if [ "$status" = 3 ]; then
    note "a metric regressed (see $work/compare.md)"
    exit 3
  fi
}

case "$cmd" in
  build) do_build ;;
  run-id) do_run_id ;;
  shard) do_shard "$@" ;;
  restore) do_restore ;;
  merge) do_merge ;;
  judge) do_judge ;;
  report) do_report ;;
  save) do_save "$@" ;;
  issue) do_issue ;;
  noise) do_noise ;;
  status) do_status ;;
  all)
    note "working in $work"
    do_build
    [ -n "${BUSLAB_RUN_ID:-}" ] || BUSLAB_RUN_ID=$(do_run_id)
    export BUSLAB_RUN_ID
    shards="${BUSLAB_SHARDS:-2}"
    rm -rf "$work/shards"
    for i in $(seq 1 "$shards"); do
      do_shard "$i" "$shards"
    done
    do_restore
    do_merge
    do_judge
    do_report
    do_save
    do_issue
    step "nightly $BUSLAB_RUN_ID done: report $work/site/index.html, history $db"
    do_status
    ;;
  *) die "unknown step '$cmd' (see the top of ci/nightly.sh)" ;;
esac
