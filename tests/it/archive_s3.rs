//! Archives and copies against a real S3 server (skipped, saying so, without
//! `PAGEVAULT_S3_BUCKET`; `eval "$(scripts/garage.sh start)"` sets it): a copy from a
//! folder to S3 and back to a folder, and export from / import into S3, each restoring
//! byte-identically to a restore from the source.

use crate::archive_cli::{assert_same_restore, chain, ok};
use crate::repo_s3::{bucket, unique_url};

#[test]
fn s3_copy_folder_to_s3_to_folder_and_export_import_on_s3() {
    let Some(bucket) = bucket("s3 archives and copies") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (_db, repo) = chain(t.path(), "4MiB", None);
    let src = t.path().join("from-source");
    ok(&[&"restore", &"-r", &repo, &"--to", &src, &"latest"]);

    let url = unique_url(&bucket, "copy");
    ok(&[&"repo", &"init", &url]);
    let out = ok(&[&"copy", &"--from", &repo, &"--to", &url, &"--all"]);
    assert!(out.contains("copied"), "{out}");
    let again = ok(&[&"copy", &"--from", &repo, &"--to", &url, &"--all"]);
    assert!(
        !again.contains("copied ") || again.contains("copied 0 objects"),
        "{again}"
    );
    ok(&[&"verify", &"-r", &url]);
    let back = t.path().join("back");
    ok(&[&"repo", &"init", &back]);
    ok(&[&"copy", &"--from", &url, &"--to", &back, &"--all"]);
    let restored = t.path().join("from-back");
    ok(&[&"restore", &"-r", &back, &"--to", &restored, &"latest"]);
    assert_same_restore(&src, &restored, "folder -> S3 -> folder");

    let tar = t.path().join("from-s3.tar");
    ok(&[&"export", &"-r", &url, &"latest", &"--to", &tar]);
    let url2 = unique_url(&bucket, "import");
    ok(&[&"repo", &"init", &url2]);
    let out = ok(&[&"import", &tar, &"-r", &url2]);
    assert!(out.contains("published"), "{out}");
    ok(&[&"verify", &"-r", &url2]);
    let restored = t.path().join("from-s3-import");
    ok(&[&"restore", &"-r", &url2, &"--to", &restored, &"latest"]);
    assert_same_restore(&src, &restored, "export from S3 -> import into S3");
}
