#!/bin/bash
# Old and new binaries alternated on one machine (docs/performance.md, "One checked-record
# reader and the store's restore target"):
#   bench_ab.sh bench DIR PAIRS OLD NEW   PAIRS x (OLD, NEW) `bench --size 1GiB --repeat 3
#                                         --json` into DIR/ab-K-old.json, DIR/ab-K-new.json
#   bench_ab.sh cli DIR ROUNDS OLD NEW    a 1 GiB database, its full and a 10 % differential
#                                         in DIR (made with OLD), then ROUNDS x (OLD, NEW):
#                                         restore of the full, of the differential (both
#                                         --no-check) and verify; "step bin wall user sys"
#                                         lines in DIR/cli.log
#   bench_ab.sh summary DIR               medians of both (ratio to limit and CPU s/GB per
#                                         step; wall and CPU per CLI step), new / old
# OLD and NEW are paths to pagevault release binaries. Delete DIR afterwards.
set -e
cmd=$1; shift
case $cmd in
bench)
  D=$1; N=$2; OLD=$3; NEW=$4; mkdir -p "$D"
  for k in $(seq 1 "$N"); do
    "$OLD" bench --size 1GiB --repeat 3 --json > "$D/ab-$k-old.json"
    "$NEW" bench --size 1GiB --repeat 3 --json > "$D/ab-$k-new.json"
  done ;;
cli)
  D=$1; N=$2; OLD=$3; NEW=$4; mkdir -p "$D"; rm -rf "$D/db" "$D/repo" "$D/cli.log"
  "$OLD" -q init "$D/db" --files 2 --size 1GiB
  "$OLD" -q workload "$D/db" --writes 131072 --pattern sequential
  "$OLD" -q repo init "$D/repo"
  "$OLD" -q backup "$D/db" -r "$D/repo" --full
  "$OLD" -q workload "$D/db" --writes 13107 --pattern uniform
  "$OLD" -q backup "$D/db" -r "$D/repo" --diff
  FULL=$("$OLD" list -r "$D/repo" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  DIFF=$("$OLD" list -r "$D/repo" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["id"])')
  for _ in $(seq 1 "$N"); do
    for b in old new; do
      B=$OLD; [ $b = new ] && B=$NEW
      for id in "$FULL" "$DIFF"; do
        step=restore_full; [ "$id" = "$DIFF" ] && step=restore_diff
        rm -rf "$D/t"; sync
        /usr/bin/time -f "$step $b %e %U %S" -a -o "$D/cli.log" "$B" -q restore --no-check -r "$D/repo" --to "$D/t" "$id" > /dev/null
      done
      rm -rf "$D/t"; sync
      /usr/bin/time -f "verify $b %e %U %S" -a -o "$D/cli.log" "$B" -q verify -r "$D/repo" > /dev/null
    done
  done ;;
summary)
  D=$1
  python3 - "$D" <<'PY'
import glob, json, os, statistics as st, sys
d = sys.argv[1]
runs = {"old": [], "new": []}
for f in sorted(glob.glob(os.path.join(d, "ab-*-*.json"))):
    who = f.rsplit("-", 1)[1][:-5]
    runs[who].append({s["step"]: s for s in json.load(open(f))["steps"]})
def med(who, step, key):
    return st.median(r[step][key] for r in runs[who])
if runs["old"] and runs["new"]:
    for step, key in [("full", "ratio_to_limit"), ("verify", "ratio_to_limit"),
                      ("restore_full", "ratio_to_limit"), ("restore_full_diff", "ratio_to_limit"),
                      ("merge", "time_vs_full")]:
        for k in (key, "cpu_per_gb"):
            o, n = med("old", step, k), med("new", step, k)
            print(f"bench {step} {k}: old {o:.3f} new {n:.3f} new/old {n / o:.3f}")
log = os.path.join(d, "cli.log")
if os.path.exists(log):
    rows = {}
    for line in open(log):
        p = line.split()
        if len(p) == 5:
            rows.setdefault((p[0], p[1]), []).append((float(p[2]), float(p[3]) + float(p[4])))
    for step in ("restore_full", "restore_diff", "verify"):
        for m, i in (("wall", 0), ("cpu", 1)):
            o = st.median(x[i] for x in rows[(step, "old")])
            n = st.median(x[i] for x in rows[(step, "new")])
            print(f"cli {step} {m}: old {o:.3f} new {n:.3f} new/old {n / o:.3f}")
PY
  ;;
*) echo "usage: bench_ab.sh bench|cli|summary ..." >&2; exit 64 ;;
esac
