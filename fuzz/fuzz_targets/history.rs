//! Fuzz target: see `pagevault::fuzz_targets::history` for the properties it checks.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pagevault::fuzz_targets::history(data));
