#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, on stable Rust.
#   scripts/fuzz.sh 600                 # every target, 10 minutes each, no sanitizer
#   scripts/fuzz.sh 600 restore model   # those two only
#   ASAN=1 scripts/fuzz.sh 60 manifest  # AddressSanitizer (RUSTC_BOOTSTRAP on stable; its own
#                                       # build in fuzz/target/asan)
# The committed seeds (fuzz/corpus/TARGET/) are read, never written: what the fuzzer adds
# goes to fuzz/work/TARGET/ (ignored by git). Each run's last status line (executions,
# coverage, corpus) is kept in fuzz/work/TARGET.log.
# Crashes land in fuzz/artifacts/TARGET/; copy each into fuzz/regressions/TARGET/ so
# `cargo test` replays it forever (tests/it/fuzz_replay.rs).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"; shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then mapfile -t targets < <(cargo fuzz list); fi
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "corpus/$t"
  echo "== $t for ${secs}s"
  # -max_len: the largest committed seed is a few KiB; 64 KiB leaves room to grow while
  # keeping each run fast. -timeout and -rss_limit_mb turn a hang or a runaway
  # allocation into a reported crash.
  flags=(-max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1)
  if [ "${ASAN:-0}" = 1 ]; then
    RUSTC_BOOTSTRAP=1 cargo fuzz run --target-dir target/asan "$t" "work/$t" "corpus/$t" -- "${flags[@]}" 2>&1 | tee "work/$t.log" | grep -E "DONE|==|ERROR|panicked|stat::number_of_executed_units" || true
  else
    cargo fuzz run --sanitizer none "$t" "work/$t" "corpus/$t" -- "${flags[@]}" 2>&1 | tee "work/$t.log" | grep -E "DONE|==|ERROR|panicked|stat::number_of_executed_units" || true
  fi
  if grep -qE "panicked|ERROR: libFuzzer|SUMMARY" "work/$t.log"; then
    echo "!! $t found a crash: see fuzz/artifacts/$t/ and work/$t.log"; exit 1
  fi
done
