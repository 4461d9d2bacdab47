//! The integration tests: one binary, one module per theme.

mod backup_catalog;
mod backup_faults;
mod backup_kinds;
mod backup_util;
