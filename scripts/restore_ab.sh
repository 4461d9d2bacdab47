#!/bin/bash
# Restore measurements of docs/performance.md ("Restore at scale"), alternating binaries.
#   restore_ab.sh setup SIZE DIR          a database of SIZE (2 files) in DIR/db, a full and a
#                                         differential after 10 % more writes in DIR/repo
#   restore_ab.sh ab DIR ROUNDS BIN...    restore DIR/repo's newest set with each binary in
#                                         turn, ROUNDS times, back to back (no sync between),
#                                         --no-check; prints "BIN wall user sys" per run
#   restore_ab.sh vm DIR BIN              one restore with /proc/vmstat deltas and the largest
#                                         Dirty + Writeback sampled every 0.2 s
#   restore_ab.sh io DIR ROUNDS DEV BIN...  each BIN's restore (--no-check), then a durable
#                                         write of the database's bytes (1 MiB writes, then
#                                         fdatasync), alternately; wall, CPU and the busy time
#                                         of disk DEV (e.g. vda) for each
# BIN is a path to a pagevault binary (build the old one from its commit first). Delete DIR
# afterwards: it holds the database, the repository and, during a run, the restored copy.
set -e
cmd=$1; shift
case $cmd in
setup)
  S=$1; D=$2; B=${PAGEVAULT:-pagevault}
  rm -rf "$D"; mkdir -p "$D"
  $B -q init "$D/db" --files 2 --size "$S"
  P=$($B status "$D/db" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_pages"])')
  $B -q workload "$D/db" --writes "$P" --pattern sequential --batch 1024
  $B -q repo init "$D/repo"
  $B -q backup "$D/db" -r "$D/repo" --full
  $B -q workload "$D/db" --writes $((P / 10)) --seed 2
  $B -q backup "$D/db" -r "$D/repo" --diff ;;
ab)
  D=$1; N=$2; shift 2
  for _ in $(seq 1 "$N"); do
    for b in "$@"; do
      rm -rf "$D/t"
      /usr/bin/time -f "$b %e %U %S" -o "$D/time.txt" "$b" -q restore --no-check -r "$D/repo" --to "$D/t" >/dev/null
      cat "$D/time.txt"
    done
  done
  rm -rf "$D/t" ;;
vm)
  D=$1; b=$2
  keys='^(pgsteal_kswapd|pgsteal_direct|pgscan_direct|allocstall_normal|allocstall_movable|nr_dirtied|nr_written) '
  rm -rf "$D/t"
  grep -E "$keys" /proc/vmstat > "$D/vm0"
  ( while :; do awk '/^Dirty:|^Writeback:/{s+=$2} END{print s}' /proc/meminfo; sleep 0.2; done ) > "$D/dirty.txt" &
  S=$!
  /usr/bin/time -f "$b %e s wall, %U user, %S sys" "$b" -q restore --no-check -r "$D/repo" --to "$D/t" >/dev/null
  kill $S
  grep -E "$keys" /proc/vmstat > "$D/vm1"
  paste "$D/vm0" "$D/vm1" | awk '{printf "%s %d  ", $1, $4-$2} END{print ""}'
  echo "largest dirty + writeback: $(sort -n "$D/dirty.txt" | tail -1 | awk '{print int($1/1024)}') MiB"
  rm -rf "$D/t" ;;
io)
  # Restore against the durable write of the same bytes, alternately, with the disk's busy
  # time (/proc/diskstats io_ticks of DEV) and the process's CPU for each.
  D=$1; N=$2; DEV=$3; shift 3
  busy() { awk -v d="$DEV" '$3 == d {print $13}' /proc/diskstats; }
  bytes=$(du -sb "$D/db" | awk '{print $1}')
  for _ in $(seq 1 "$N"); do
    for b in "$@"; do
      rm -rf "$D/t"; b0=$(busy)
      /usr/bin/time -f "%e %U %S" -o "$D/time.txt" "$b" -q restore --no-check -r "$D/repo" --to "$D/t" >/dev/null
      echo "restore $b $(cat "$D/time.txt") disk-busy-s $(( ($(busy) - b0) )) load $(cut -d' ' -f1 /proc/loadavg)" | awk '{printf "%s %s wall %s user %s sys %s disk busy %.1f s load %s\n", $1, $2, $3, $4, $5, $7/1000, $9}'
      rm -rf "$D/t"; b0=$(busy)
      /usr/bin/time -f "%e %U %S" -o "$D/time.txt" python3 -c '
import os, sys
n, path = int(sys.argv[1]), sys.argv[2]
buf = os.urandom(1 << 20)
with open(path, "wb") as f:
    while n > 0:
        k = min(n, len(buf)); f.write(buf[:k]); n -= k
    f.flush(); os.fdatasync(f.fileno())
' "$bytes" "$D/w"
      echo "write $(cat "$D/time.txt") $(( ($(busy) - b0) )) $(cut -d' ' -f1 /proc/loadavg)" | awk '{printf "durable-write wall %s user %s sys %s disk busy %.1f s load %s\n", $2, $3, $4, $5/1000, $6}'
      rm -f "$D/w"
    done
  done ;;
*) echo "usage: restore_ab.sh setup SIZE DIR | ab DIR ROUNDS BIN... | vm DIR BIN | io DIR ROUNDS DEV BIN..." >&2; exit 64 ;;
esac
