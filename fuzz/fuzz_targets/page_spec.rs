//! Fuzz target: see `pagevault::fuzz_targets::page_spec` for the properties it checks.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pagevault::fuzz_targets::page_spec(data));
