#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, on stable Rust.
#   scripts/fuzz.sh 600                 # every target, 10 minutes each, no sanitizer
#   ASAN=1 scripts/fuzz.sh 60 manifest  # AddressSanitizer (RUSTC_BOOTSTRAP on stable)
# Crashes land in fuzz/artifacts/TARGET/; copy each into fuzz/regressions/TARGET/ so
# `cargo test` replays it forever (tests/it/fuzz_replay.rs).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"; shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then mapfile -t targets < <(cargo fuzz list); fi
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t for ${secs}s"
  if [ "${ASAN:-0}" = 1 ]; then
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10
  else
    cargo fuzz run --sanitizer none "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10
  fi
done
