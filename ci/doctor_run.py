#!/usr/bin/env python3
"""Makes a doctored copy of a run (a `buslab export --format json` file) for
the regression gate's smoke test (Python standard library only).

    python3 ci/doctor_run.py IN.json OUT.json NEW_ID FACTOR

Every cell's instruction counts (instructions, estimated cycles) are
multiplied by FACTOR (1.10 = +10%), the run gets the id NEW_ID and starts
one second after the original. A run without instruction counts (valgrind
missing) has its bytes allocated per event scaled instead, where they are
not zero. Prints what it changed; exits 1 if it changed nothing.
"""

import datetime
import json
import sys


def later(stamp):
    """An RFC 3339 UTC time one second after `stamp`."""
    t = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")) + datetime.timedelta(seconds=1)
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    if len(sys.argv) != 5:
        print(__doc__.strip().splitlines()[4].strip(), file=sys.stderr)
        return 2
    src, dst, new_id, factor = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    with open(src, encoding="utf-8") as f:
        run = json.load(f)
    run["meta"]["id"] = new_id
    run["meta"]["started_at"] = later(run["meta"]["started_at"])
    changed, what = 0, "instructions-per-event and est-cycles-per-event"
    for cell in run["cells"]:
        ins = cell.get("instructions")
        if ins:
            ins["ir_per_event"] *= factor
            ins["est_cycles_per_event"] *= factor
            changed += 1
    if changed == 0:
        what = "bytes-per-event (no instruction counts: is valgrind installed?)"
        for cell in run["cells"]:
            alloc = cell.get("allocations")
            if alloc and alloc["bytes_per_event"] > 0:
                alloc["bytes_per_event"] *= factor
                changed += 1
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(run, f)
    print(f"doctor_run: {what} x{factor} in {changed} cells; run id {new_id}")
    return 0 if changed else 1


if __name__ == "__main__":
    sys.exit(main())
