//! Retention: which sets a policy keeps ([`policy`], a pure marking pass), and the verbs
//! that change what a repository holds through [`crate::repo::Repository`] alone:
//! [`prune`] carries a policy's marks out, [`delete`] removes one set (with its
//! dependents only when asked), [`merge`] folds a differential and its full into a
//! synthetic full. Each is a plan first (printable, `dry_run`), then the work.
//!
//! Keeps true (invariants 10 to 13, docs/design.md): no set that a kept set needs is
//! removed; a plan is computed from manifests read under the lock that carries it out.

pub mod delete;
pub mod merge;
pub mod policy;
pub mod prune;

pub use policy::{duration_words, parse_duration, Candidate, Decision, Mark, Policy};
