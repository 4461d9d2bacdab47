//! The integration test binary: one module per theme.

mod restore_bench;
mod restore_chain;
mod restore_fixture;
mod restore_props;
mod restore_protocol;
mod restore_roundtrip;
mod verify_corruption;
