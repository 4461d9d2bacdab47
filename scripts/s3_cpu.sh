#!/usr/bin/env bash
# Where the CPU of an S3 full and restore goes: pagevault's own (user, system) and the
# Garage server's (from /proc/PID/stat), for a full backup and a restore into a local
# folder repository and into S3 on a Garage started on loopback (scripts/garage.sh),
# alternated, twice. Usage: scripts/s3_cpu.sh [SIZE_MIB]   (default 512; needs the
# release build: cargo build --release). Figures and what they mean: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PV=target/release/pagevault
SIZE=${1:-512}
W=$(mktemp -d "${TMPDIR:-/tmp}/pv-s3cpu.XXXX")
eval "$(scripts/garage.sh start)"
trap 'scripts/garage.sh stop "$PAGEVAULT_GARAGE_DIR" >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
GPID=$(cat "$PAGEVAULT_GARAGE_DIR"/garage*.pid | head -1)
# utime + stime of the server, in seconds (clock ticks of 1/100 s).
gcpu() { awk '{print ($14+$15)/100}' "/proc/$GPID/stat"; }
$PV init "$W/db" --size "${SIZE}MiB" >/dev/null
$PV workload "$W/db" --writes $((SIZE * 128)) --pattern sequential >/dev/null 2>&1
$PV repo init "$W/repo" >/dev/null
S3="s3://$PAGEVAULT_S3_BUCKET/cpu-$$"
$PV repo init "$S3" >/dev/null
run() { # LABEL COMMAND...
  local label=$1 g0 g1
  shift
  g0=$(gcpu)
  sync
  /usr/bin/time -o "$W/t" -f "%e %U %S" "$@" >/dev/null 2>&1
  g1=$(gcpu)
  read -r wall user sys <"$W/t"
  echo "$label: wall $wall s, pagevault user $user s + system $sys s, garage $(awk -v a="$g0" -v b="$g1" 'BEGIN { printf "%.2f", b - a }') CPU s"
}
for _ in 1 2; do
  run "full into a folder" $PV backup "$W/db" -r "$W/repo" --full
  run "full into S3      " $PV backup "$W/db" -r "$S3" --full
  rm -rf "$W/r1" "$W/r2"
  run "restore from a folder" $PV restore latest -r "$W/repo" --to "$W/r1"
  run "restore from S3      " $PV restore latest -r "$S3" --to "$W/r2"
done
