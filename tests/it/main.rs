//! The one integration test binary; one module per theme.

mod support;

mod cli;
mod fuzz_replay;
mod store_concurrency;
mod store_crash;
mod store_faults;
mod store_format;
mod store_model;
mod store_span;
