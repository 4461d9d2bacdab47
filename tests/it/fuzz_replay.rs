//! Replays every fuzz corpus file and every kept crash (fuzz/corpus/TARGET/*,
//! fuzz/regressions/TARGET/*) through the same code the fuzz targets run, so each CI run
//! covers what fuzzing found, on stable, without cargo-fuzz.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let data = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "fuzz input {} panics", p.display());
            n += 1;
        }
    }
    n
}

#[test]
fn fuzz_corpus_manifest_replays_clean() {
    replay("manifest", pagevault::fuzz_targets::manifest);
}

#[test]
fn fuzz_corpus_records_replays_clean() {
    replay("records", pagevault::fuzz_targets::records);
}

#[test]
fn fuzz_corpus_page_replays_clean() {
    replay("page", pagevault::fuzz_targets::page);
}

#[test]
fn fuzz_corpus_page_spec_replays_clean() {
    assert!(replay("page_spec", pagevault::fuzz_targets::page_spec) >= 8);
}

#[test]
fn fuzz_corpus_history_replays_clean() {
    assert!(replay("history", pagevault::fuzz_targets::history) >= 6);
}

#[test]
fn fuzz_corpus_control_replays_clean() {
    replay("control", pagevault::fuzz_targets::control);
}

#[test]
fn fuzz_corpus_restore_replays_clean() {
    replay("restore", pagevault::fuzz_targets::restore);
}

#[test]
fn fuzz_corpus_archive_replays_clean() {
    replay("archive", |d| {
        pagevault::fuzz_targets::archive(d);
    });
}

/// The committed archive seeds: a real archive (a full and its differential) that
/// imports, so the fuzzer starts past the checksums. Rewrite with
/// `cargo test --test it write_archive_seeds -- --ignored`.
#[test]
#[ignore]
fn write_archive_seeds() {
    let c = crate::faults_util::Chain::new(1, 16);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/archive");
    std::fs::create_dir_all(&dir).unwrap();
    let mut a = Vec::new();
    pagevault::archive::export(&c.repo, c.diff, &mut a).unwrap();
    std::fs::write(dir.join("chain.tar"), &a).unwrap();
    let mut f = Vec::new();
    pagevault::archive::export(&c.repo, c.full, &mut f).unwrap();
    std::fs::write(dir.join("full.tar"), &f).unwrap();
}

#[test]
fn the_archive_seeds_import() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/archive");
    for seed in ["chain.tar", "full.tar"] {
        let data = std::fs::read(dir.join(seed)).unwrap();
        assert!(
            pagevault::fuzz_targets::archive(&data),
            "{seed} does not import"
        );
    }
}

#[test]
fn fuzz_corpus_wire_replays_clean() {
    replay("wire", pagevault::fuzz_targets::wire);
}

#[test]
fn fuzz_corpus_model_replays_clean() {
    replay("model", pagevault::fuzz_targets::model);
}

/// The seeds must be there: a fuzzer starting from random bytes stops at the first
/// checksum, and the replay tests above would pass on an empty folder.
#[test]
fn every_target_has_seeds() {
    for t in [
        "manifest", "records", "page", "control", "restore", "model", "archive", "wire",
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(t);
        let n = std::fs::read_dir(&dir).map_or(0, |d| d.count());
        assert!(n > 0, "no seeds in {}", dir.display());
    }
}

/// Writes the seed corpora from a real backup set (run it after a format change:
/// `cargo test write_fuzz_seeds -- --ignored`): manifests, streams, pages, a control file,
/// restore inputs (whole repositories, some with the reseal flags) and model programs.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    use pagevault::backup::{self, BackupKind, BackupOptions};
    use pagevault::format::manifest::parse_backup_id;
    use pagevault::fuzz_targets::{
        encode_restore_input, RESEAL_MANIFESTS, RESEAL_PAGES, RESEAL_RECORDS,
    };
    use pagevault::io::mem::MemVfs;
    use pagevault::io::Vfs;
    use pagevault::progress::NoProgress;
    use pagevault::repo::names::{manifest as manifest_file_name, stream as stream_file_name};
    use pagevault::repo::Repository;
    use pagevault::{CreateOptions, Database};
    use std::sync::Arc;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let db_vfs = MemVfs::new();
    let repo_vfs = MemVfs::new();
    let db = Database::create(
        Arc::new(db_vfs.clone()),
        &CreateOptions {
            files: 2,
            pages_per_file: 16,
            extents_per_map: 1,
        },
    )
    .unwrap();
    let repo = Repository::open(Arc::new(repo_vfs.clone()), true).unwrap();
    let write = |seed: u8, pages: &[(u32, u32)]| crate::faults_util::write(&db, seed, pages);
    let backup = |kind| {
        let r = backup::run(
            &db,
            &repo,
            &BackupOptions {
                threads: 1,
                ..BackupOptions::new(kind)
            },
            &NoProgress,
        )
        .unwrap();
        parse_backup_id(&r.backup_id).unwrap()
    };
    write(1, &[(1, 2), (1, 3), (1, 10), (2, 4)]);
    let full = backup(BackupKind::Full);
    write(2, &[(1, 3), (2, 12)]);
    let diff = backup(BackupKind::Differential);
    let copy = backup(BackupKind::CopyOnly);
    let file = |vfs: &MemVfs, n: &str| (n.to_string(), vfs.read_file(n).unwrap());
    for (tag, id) in [("full", full), ("diff", diff), ("copy", copy)] {
        put(
            "manifest",
            tag,
            &repo_vfs.read_file(&manifest_file_name(id)).unwrap(),
        );
        put(
            "records",
            tag,
            &repo_vfs.read_file(&stream_file_name(id, 0)).unwrap(),
        );
    }
    let data = db_vfs.read_file("data_0001.pvd").unwrap();
    for (tag, page) in [("header", 0usize), ("map", 1), ("data", 3)] {
        put("page", tag, &data[page * 8192..(page + 1) * 8192]);
    }
    db.flush().unwrap();
    put(
        "control",
        "control",
        &db_vfs.read_file("pagevault.ctl").unwrap(),
    );
    // Every object of a set: its streams and index pieces, then its manifest.
    let set = |id: u64| {
        let mut v: Vec<_> = repo_vfs
            .list()
            .unwrap()
            .iter()
            .filter(|n| n.starts_with(&pagevault::repo::names::set_prefix(id)))
            .map(|n| file(&repo_vfs, n))
            .collect();
        v.push(file(&repo_vfs, &manifest_file_name(id)));
        v
    };
    put("restore", "full", &encode_restore_input(0, &set(full)));
    let chain: Vec<_> = set(full).into_iter().chain(set(diff)).collect();
    put("restore", "chain", &encode_restore_input(0, &chain));
    put(
        "restore",
        "chain-resealed",
        &encode_restore_input(RESEAL_RECORDS | RESEAL_MANIFESTS | RESEAL_PAGES, &chain),
    );
    put(
        "restore",
        "copy-resealed",
        &encode_restore_input(RESEAL_RECORDS | RESEAL_MANIFESTS, &set(copy)),
    );
    // Model programs (steps: 0-2 write n pages, 3 flush, 4 grow, 5 backup, 6 backup cut
    // by a power loss, 7 database power loss, 8 restore, 9 verify; see fuzz_targets).
    let programs: [(&str, &[u8]); 4] = [
        (
            "round-trip",
            &[
                0, 1, 1, 2, 10, 2, 3, 20, 5, 0, 0, 0, 1, 10, 30, 5, 1, 5, 2, 8, 0, 0, 8, 1, 0, 8,
                2, 0, 9,
            ],
        ),
        (
            "cuts",
            &[
                0, 1, 1, 2, 10, 2, 3, 20, 6, 0, 3, 5, 0, 1, 0, 1, 4, 40, 6, 1, 10, 6, 1, 200, 6, 2,
                7, 8, 0, 9, 8, 1, 21, 8, 2, 61, 9,
            ],
        ),
        (
            "power-loss",
            &[
                0, 2, 1, 2, 10, 1, 3, 11, 2, 4, 12, 3, 2, 0, 1, 2, 99, 7, 0, 5, 0, 0, 0, 2, 4, 77,
                7, 1, 5, 1, 0, 0, 1, 3, 5, 7, 0, 5, 1, 8, 0, 0, 8, 1, 0, 8, 2, 0, 9,
            ],
        ),
        (
            "grow",
            &[
                4, 0, 0, 0, 1, 30, 9, 5, 0, 4, 1, 0, 1, 2, 28, 4, 1, 40, 5, 5, 1, 8, 0, 0, 8, 1, 0,
                9,
            ],
        ),
    ];
    for (name, program) in programs {
        put("model", name, program);
    }
}

/// The restore seeds get past every checksum: each restores its sets (a seed refused at
/// the first check would leave the fuzzer at the checksum wall).
#[test]
fn restore_seeds_restore_and_model_seeds_compare() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (seed, sets) in [
        ("full", 1),
        ("chain", 2),
        ("chain-resealed", 2),
        ("copy-resealed", 1),
    ] {
        let data = std::fs::read(dir.join("restore").join(seed)).unwrap();
        assert_eq!(
            pagevault::fuzz_targets::restore_counted(&data),
            (sets, 0),
            "{seed}"
        );
    }
    for seed in ["round-trip", "cuts", "power-loss", "grow"] {
        let data = std::fs::read(dir.join("model").join(seed)).unwrap();
        assert!(
            pagevault::fuzz_targets::model_counted(&data) >= 2,
            "{seed} compares fewer than two restores"
        );
    }
}

/// Writes the seeds of the layered record shape (invariants 29 and 30): a synthetic full
/// merged from a differential whose extents the full holds in part, as a `records`
/// stream and as a `restore` repository (alone, and with every checksum resealed so the
/// fuzzer reaches the layer table). `cargo test --test it write_layered_fuzz_seeds --
/// --ignored`.
#[test]
#[ignore]
fn write_layered_fuzz_seeds() {
    use pagevault::backup::BackupKind;
    use pagevault::format::manifest::parse_backup_id;
    use pagevault::fuzz_targets::{encode_restore_input, RESEAL_MANIFESTS, RESEAL_RECORDS};
    use pagevault::io::mem::MemVfs;
    use pagevault::io::Vfs;
    use pagevault::repo::names::{manifest, set_prefix, stream};
    use pagevault::repo::Repository;
    use std::sync::Arc;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        std::fs::write(root.join(target).join(name), bytes).unwrap();
    };
    let repo_vfs = MemVfs::new();
    let repo = Repository::open(Arc::new(repo_vfs.clone()), true).unwrap();
    let db = crate::repo_backend::database();
    crate::faults_util::write(&db, 1, &[(1, 2), (1, 3), (1, 10), (1, 11), (2, 4)]);
    crate::faults_util::backup(&db, &repo, BackupKind::Full).unwrap();
    crate::faults_util::write(&db, 2, &[(1, 3), (1, 10), (2, 12)]);
    let diff = crate::faults_util::backup(&db, &repo, BackupKind::Differential).unwrap();
    let r = pagevault::retention::merge::merge(&repo, diff, None).unwrap();
    assert!(r.plan.extents_combined > 0 && r.extents_recompressed == 0);
    let merged = parse_backup_id(&r.backup_id).unwrap();
    put(
        "records",
        "merged",
        &repo_vfs.read_file(&stream(merged, 0)).unwrap(),
    );
    let mut files: Vec<(String, Vec<u8>)> = repo_vfs
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&set_prefix(merged)))
        .map(|n| {
            let b = repo_vfs.read_file(&n).unwrap();
            (n, b)
        })
        .collect();
    files.push((
        manifest(merged),
        repo_vfs.read_file(&manifest(merged)).unwrap(),
    ));
    put("restore", "merged", &encode_restore_input(0, &files));
    put(
        "restore",
        "merged-resealed",
        &encode_restore_input(RESEAL_RECORDS | RESEAL_MANIFESTS, &files),
    );
}
