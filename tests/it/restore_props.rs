//! Property (invariant 5): for random workloads and random schedules of full,
//! differential and copy-only sets, restoring any set gives a database that opens and
//! whose every data page is byte-identical to the source's page at that set's snapshot
//! (the model: every data page read right after the set was made). Verify finds every
//! set clean.

use std::sync::Arc;

use proptest::prelude::*;

use pagevault::format::manifest::BackupKind;
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::restore::{self, RestoreOptions};
use pagevault::verify;

use crate::restore_fixture::*;

#[derive(Clone, Debug)]
enum Op {
    Write(usize),
    Grow(u32),
    AddFile,
    Backup(BackupKind),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..30).prop_map(Op::Write),
        1 => (1u32..=2).prop_map(Op::Grow),
        1 => Just(Op::AddFile),
        2 => Just(Op::Backup(BackupKind::Full)),
        3 => Just(Op::Backup(BackupKind::Differential)),
        1 => Just(Op::Backup(BackupKind::CopyOnly)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_set_restores_to_its_snapshot(
        ops in prop::collection::vec(op(), 1..14),
        seed in any::<u64>(),
        epm in 1u32..4,
        streams in 1u32..4,
        compress in any::<bool>(),
        threads in 1usize..4,
    ) {
        let (repo, _) = mem_repo();
        let db = small_db(Arc::new(MemVfs::new()), 2, 24, epm);
        let shape = SetShape { streams, level: compress.then_some(1) };
        let mut rng = Rng(seed);
        let mut sets: Vec<(u64, Model)> = vec![];
        for op in ops.iter().chain([Op::Backup(BackupKind::Differential)].iter()) {
            match *op {
                Op::Write(n) => write_random(&db, &mut rng, n),
                Op::Grow(f) => {
                    let pages = db.file_layout().iter().find(|l| l.0 == f).unwrap().1;
                    db.grow_file(f, pages + 8 * (1 + rng.below(3) as u32)).unwrap();
                }
                Op::AddFile => {
                    if db.file_layout().len() < 4 {
                        db.add_file(8 * (1 + rng.below(3) as u32)).unwrap();
                    }
                }
                Op::Backup(kind) => {
                    let kind = if kind == BackupKind::Differential && db.control().base_id == 0 {
                        BackupKind::Full
                    } else {
                        kind
                    };
                    let id = take_backup(&db, &repo, kind, shape);
                    sets.push((id, model_of(&db)));
                }
            }
        }
        let report = verify::verify(&repo, None).unwrap();
        prop_assert!(report.is_clean(), "{:?}", report.sets);
        for (id, model) in &sets {
            let target = MemVfs::new();
            let opts = RestoreOptions {
                backup_id: Some(*id),
                threads,
                ..RestoreOptions::new(Arc::new(target.clone()))
            };
            let r = restore::run(&repo, &opts, &NoProgress).unwrap();
            prop_assert_eq!(r.pages_written, model.len() as u64);
            assert_restored(Arc::new(target), model);
        }
    }
}
