//! Prune, delete and merge (issue 14) against a real S3 server (Garage, started by
//! `scripts/garage.sh`). Runs only when `PAGEVAULT_S3_BUCKET` and `AWS_ENDPOINT_URL` are
//! set, like `repo_s3`; otherwise it says why on stderr and returns.

use std::collections::BTreeMap;
use std::sync::Arc;

use pagevault::backup::BackupKind;
use pagevault::format::manifest::{format_backup_id, parse_backup_id};
use pagevault::repo::backend::s3::{S3Backend, S3Options};
use pagevault::repo::prune::PruneOptions;
use pagevault::repo::{chain, delete, merge, prune, InitOptions, Repository};
use pagevault::retention::{Mark, Policy};

use crate::retention::{assert_restores, backup_at, churn, database, pages, Pages};

const DAY_MS: u64 = 86_400_000;
const START_MS: u64 = 1_767_578_400_000;

/// A fresh repository under a prefix of its own on the bucket, when the variables are set.
fn s3_repo(test: &str) -> Option<Repository> {
    let bucket = match (
        std::env::var("PAGEVAULT_S3_BUCKET"),
        std::env::var("AWS_ENDPOINT_URL"),
    ) {
        (Ok(b), Ok(_)) if !b.is_empty() => b,
        _ => {
            eprintln!("{test}: skipped: PAGEVAULT_S3_BUCKET and AWS_ENDPOINT_URL are not set (eval \"$(scripts/garage.sh start)\" sets them)");
            return None;
        }
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("s3://{bucket}/t/{test}-{}-{nanos:x}", std::process::id());
    let b = S3Backend::connect(S3Options::from_env(&url).unwrap()).unwrap();
    Some(Repository::init(Arc::new(b), &InitOptions::default()).unwrap())
}

/// A full, three differentials; merge the second; delete the full (the first
/// differential goes with it, named); later differentials and the live database's next
/// one restore on the synthetic full; prune keeps what the policy says; every kept set
/// restores byte-identical.
#[test]
fn prune_delete_and_merge_on_s3() {
    let Some(repo) = s3_repo("retention") else {
        return;
    };
    let db = database(3, 64);
    let mut want: BTreeMap<u64, Pages> = BTreeMap::new();
    let take = |want: &mut BTreeMap<u64, Pages>, kind, day: u64, n: u32| {
        churn(&db, day + 1, n);
        let id = backup_at(&db, &repo, kind, START_MS + day * DAY_MS);
        want.insert(id, pages(&db));
        id
    };
    let full = take(&mut want, BackupKind::Full, 0, 20);
    let d0 = take(&mut want, BackupKind::Differential, 1, 3);
    let d1 = take(&mut want, BackupKind::Differential, 2, 3);
    let d2 = take(&mut want, BackupKind::Differential, 3, 3);
    let r = merge::merge(&repo, d1, None).unwrap();
    let merged = parse_backup_id(&r.backup_id).unwrap();
    want.insert(merged, want[&d1].clone());
    assert!(r.bytes_copied > 0);
    assert_restores(&repo, merged, &want[&d1], "s3: merged");
    assert!(
        delete::delete(&repo, full, false).is_err(),
        "d0 needs the full"
    );
    let del = delete::delete(&repo, full, true).unwrap();
    assert_eq!(del.plan.dependents, vec![format_backup_id(d0)]);
    for d in [d1, d2] {
        assert_eq!(
            chain::resolve(&repo, Some(d)).unwrap().substituted,
            Some(full)
        );
        assert_restores(&repo, d, &want[&d], "s3: on the synthetic full");
    }
    let d3 = take(&mut want, BackupKind::Differential, 4, 3);
    assert_restores(
        &repo,
        d3,
        &want[&d3],
        "s3: the live database's next differential",
    );
    let opts = PruneOptions {
        policy: Policy {
            keep_last: Some(1),
            ..Policy::default()
        },
        database_id: None,
        now_unix_ms: START_MS + 5 * DAY_MS,
    };
    let dry = prune::plan(&repo, &opts).unwrap();
    assert_eq!(dry.remove, 2, "{:?}", dry.sets);
    let p = prune::prune(&repo, &opts).unwrap();
    let kept: Vec<u64> = p
        .plan
        .sets
        .iter()
        .filter(|e| e.mark != Mark::Remove)
        .map(|e| parse_backup_id(&e.id).unwrap())
        .collect();
    assert_eq!(repo.set_ids().unwrap(), kept);
    assert_eq!(kept, vec![merged.min(d3), merged.max(d3)]);
    for id in kept {
        assert_restores(&repo, id, &want[&id], "s3: after prune");
    }
    assert!(pagevault::verify::verify(&repo, None).unwrap().is_clean());
}
