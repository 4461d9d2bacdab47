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
fn fuzz_corpus_control_replays_clean() {
    replay("control", pagevault::fuzz_targets::control);
}
