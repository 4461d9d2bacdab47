//! The integration test binary: one module per theme.

mod support;

mod store_concurrency;
mod store_crash;
mod store_faults;
mod store_format;
mod store_model;
mod store_span;
