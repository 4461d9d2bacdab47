//! The integration test binary: one module per theme.

mod support;

mod store_crash;
mod store_faults;
mod store_model;
mod store_span;
