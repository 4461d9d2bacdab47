//! The one integration test binary; one module per theme.

mod cli;
mod fuzz_replay;
