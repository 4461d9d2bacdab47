//! The one integration test binary; one module per theme.

mod source;
mod support;

mod archive_cli;
mod archive_hostile;
mod archive_roundtrip;
#[cfg(feature = "s3")]
mod archive_s3;
mod backup_catalog;
mod backup_faults;
mod backup_kinds;
mod backup_util;
mod bench_cli;
mod boundary;
mod cli;
mod cli_backup;
mod cli_errors;
mod cli_global;
mod cli_json;
mod cli_repo;
mod cli_rerun;
mod cli_times;
mod diff;
mod error_kinds;
mod error_text;
mod faults_bitflip;
mod faults_hostile;
mod faults_io;
mod faults_kill;
mod faults_truncation;
mod faults_util;
mod fuzz_replay;
mod hardening;
mod history;
#[cfg(feature = "s3")]
mod history_s3;
mod identity;
mod layers;
mod online_backup;
mod online_faults;
mod online_harness;
mod page_restore;
mod peers_script;
mod records;
mod repo_backend;
mod repo_format;
mod repo_locks;
mod repo_readonly;
#[cfg(feature = "s3")]
mod repo_s3;
#[cfg(feature = "s3")]
mod repo_s3_503;
mod restore_bench;
mod restore_chain;
mod restore_fixture;
mod restore_props;
mod restore_protocol;
mod restore_roundtrip;
mod restore_scale;
mod retention;
#[cfg(feature = "s3")]
mod retention_s3;
mod serve_api;
mod serve_backup;
mod store_concurrency;
mod store_crash;
mod store_faults;
mod store_format;
mod store_layout;
mod store_model;
mod store_span;
mod trust;
mod verify_corruption;
