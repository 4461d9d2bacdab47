#!/bin/bash
# scripts/merge_vs_full.sh (release build first): merge of a 1 GiB full and a differential of 10 % of the extents (rewritten whole),
# alternated with a copy-only full backup of the same database, 3 rounds.
set -e
PV=/work/wt-14/target/release/pagevault
D=/work/wt-14/target/scratch-mf
rm -rf $D; mkdir -p $D
$PV init $D/db --size 1GiB -q >/dev/null
PAGES=$($PV status $D/db --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_pages"])')
$PV workload $D/db --writes $PAGES --pattern sequential -q >/dev/null
$PV repo init $D/r -q >/dev/null
$PV backup $D/db -r $D/r --full -q >/dev/null
$PV workload $D/db --writes $((PAGES/10)) --pattern sequential --seed 2 -q >/dev/null
DIFF=$($PV backup $D/db -r $D/r --diff --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backup"]["id"])')
for i in 1 2 3; do
  t0=$(date +%s.%N); M=$($PV merge -r $D/r $DIFF --json); t1=$(date +%s.%N)
  echo "$M" | python3 -c 'import json,sys; m=json.load(sys.stdin); print("merge", m["extents_from_base"], m["extents_from_differential"], m["extents_combined"], m["bytes_copied"], m["bytes_stored"])'
  MID=$(echo "$M" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  $PV delete -r $D/r $MID -q >/dev/null
  t2=$(date +%s.%N); C=$($PV backup $D/db -r $D/r --copy-only --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backup"]["id"])'); t3=$(date +%s.%N)
  $PV delete -r $D/r $C -q >/dev/null
  python3 -c "m=$t1-$t0; f=$t3-$t2; print(f'round $i: merge {m:.2f} s, copy-only full {f:.2f} s, ratio {m/f:.3f}')"
done
rm -rf $D
