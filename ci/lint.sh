#!/usr/bin/env bash
# Lints what CI itself runs: shellcheck over ci/*.sh, the workflows parsed
# as YAML and checked for structure (actionlint too, when it is installed)
# and audited by zizmor (no medium or high finding), and ci/check_site.py
# checked against a good and a broken site.
#   bash ci/lint.sh
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

step "shellcheck ci/*.sh"
if ! command -v shellcheck >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq shellcheck >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get install -y -qq shellcheck >/dev/null 2>&1 \
      || { sudo apt-get update -qq && sudo apt-get install -y -qq shellcheck >/dev/null; }
  fi
fi
command -v shellcheck >/dev/null 2>&1 || die "shellcheck is not installed (apt-get install shellcheck)"
shellcheck ci/*.sh .ci/run
echo "shellcheck: clean"

step "workflows: YAML and structure"
if ! python3 -c 'import yaml' 2>/dev/null; then
  python3 -m pip install -q pyyaml 2>/dev/null || die "PyYAML is missing (pip install pyyaml)"
fi
python3 - .github/workflows/*.yml <<'EOF'
import re, sys, yaml
problems = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    # YAML 1.1 reads the key `on` as true.
    triggers = doc.get("on", doc.get(True))
    if not doc.get("name") or not triggers:
        problems.append(f"{path}: needs a name and triggers")
    jobs = doc.get("jobs") or {}
    for name, job in jobs.items():
        if "runs-on" not in job or not job.get("steps"):
            problems.append(f"{path}: job {name} needs runs-on and steps")
        needs = job.get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            if need not in jobs:
                problems.append(f"{path}: job {name} needs unknown job {need}")
        for step in job.get("steps", []):
            if ("uses" in step) == ("run" in step):
                problems.append(f"{path}: job {name}: a step needs exactly one of uses and run: {step}")
            for script in re.findall(r"bash (ci/[\w.-]+\.sh)", step.get("run", "")):
                try:
                    open(script).close()
                except OSError:
                    problems.append(f"{path}: job {name} runs {script}, which does not exist")
    print(f"{path}: {len(jobs)} jobs")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
EOF
if command -v actionlint >/dev/null 2>&1; then
  actionlint .github/workflows/*.yml
  echo "actionlint: clean"
else
  note "actionlint is not installed: structure checked by the script above only"
fi

step "workflows: zizmor (fails on any medium or high finding)"
# Pinned: a new zizmor brings new audits, which should arrive in a commit
# that also fixes what they find, not fail CI on an unrelated day. From
# PyPI (a prebuilt wheel: seconds) rather than `cargo install` (minutes of
# compiling on a 2-core runner), into a venv of its own since CI images'
# Python refuses system-wide pip installs (PEP 668).
zizmor_version=1.32.0
zizmor=$(command -v zizmor || true)
if [ -z "$zizmor" ] || [ "$("$zizmor" --version)" != "zizmor $zizmor_version" ]; then
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/buslab-ci/zizmor-$zizmor_version"
  if [ ! -x "$venv/bin/zizmor" ]; then
    python3 -m venv "$venv" || die "cannot make a venv for zizmor at $venv (apt-get install python3-venv)"
    "$venv/bin/pip" install -q "zizmor==$zizmor_version" || die "cannot install zizmor $zizmor_version from PyPI"
  fi
  zizmor="$venv/bin/zizmor"
fi
zizmor_dir=$(mktemp -d)
# A workflow with an unpinned action and persisted credentials must fail.
mkdir -p "$zizmor_dir/.github/workflows"
printf 'name: t\non: push\npermissions: {}\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v4\n' \
  >"$zizmor_dir/.github/workflows/t.yml"
if "$zizmor" --offline --min-severity medium --no-progress "$zizmor_dir/.github/workflows/" >"$zizmor_dir/out.txt" 2>&1; then
  die "zizmor passed an unpinned action"
fi
for expected in unpinned-uses artipacked; do
  grep -q "$expected" "$zizmor_dir/out.txt" || die "zizmor did not report $expected: $(cat "$zizmor_dir/out.txt")"
done
rm -rf "$zizmor_dir"
"$zizmor" --offline --min-severity medium --no-progress .github/workflows/
echo "zizmor $zizmor_version: no medium or high finding (and a bad workflow fails)"

step "ci/check_site.py catches what it must"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
mkdir -p "$site/good/cells" "$site/bad"
printf '<!DOCTYPE html><html><head><title>t</title><link rel="stylesheet" href="s.css"></head><body><p>a<a href="cells/c.html#x">c</a><svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0"/></svg></body></html>\n' \
  >"$site/good/index.html"
printf '<!DOCTYPE html><html><body><a href="../index.html">up</a></body></html>\n' >"$site/good/cells/c.html"
printf 'body { color: black }\n' >"$site/good/s.css"
python3 ci/check_site.py "$site/good"
printf '<html><body><div><span></div><img src="gone.png"><script src="https://cdn.example/x.js"></script></body></html>\n' \
  >"$site/bad/index.html"
if python3 ci/check_site.py "$site/bad" >"$site/out.txt" 2>&1; then
  die "check_site.py passed a broken site"
fi
for expected in "closed implicitly" "gone.png" "external URL" "DOCTYPE"; do
  grep -q "$expected" "$site/out.txt" || die "check_site.py did not report: $expected"
done
echo "check_site.py: a good site passes, a broken one fails with every problem named"
