//! A remote full over loopback TLS against a local full of the same database, in the
//! same run, alternated (issue 17's must-show: the remote one at least 0.8 times as
//! fast).
//!
//!     cargo run --release --example remote_figures -- [MiB] [rounds] [threads]
//!
//! A database of `MiB` (default 512) in 4 files in a temporary folder, every data page
//! filled with the workload's rows (about 3x compressible, as `pagevault bench` uses).
//! Each round takes a local full (`backup::run` into folder repository A) and a remote
//! full (`serve::client::backup` from a listener on 127.0.0.1 with TLS and a token, into
//! folder repository B), in alternating order; both with `threads` workers (default 2)
//! and zstd level 1. Prints each backup's MB/s (bytes of the database read per second,
//! end to end) and the ratio of the medians, and the ratio of their CPU seconds (both
//! sides are this process). The TLS pair is the test-only one in
//! tests/fixtures/tls.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::progress::NoProgress;
use pagevault::repo::{InitOptions, Repository};
use pagevault::serve::client::{ClientOptions, Target};
use pagevault::serve::{ListenOptions, Listener, Tokens};
use pagevault::tools::workload::{fill_payload, payload_rng};
use pagevault::{CreateOptions, Database, OpenMode, PageWrite};

/// CPU seconds (user + system) of this process so far, from /proc/self/stat (0 elsewhere):
/// the serving side and the client are both in it.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() -> pagevault::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(512);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let threads: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let tmp = std::env::temp_dir().join(format!("pagevault-remote-figures-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let db_dir = tmp.join("db");
    {
        let db = Database::create_dir(&db_dir, &CreateOptions::with_size(4, mib << 20)?)?;
        let mut batch = Vec::new();
        let mut seq = 0u64;
        for (f, n) in db.file_layout() {
            for p in 0..n {
                if db.is_data_page(f, p) {
                    let mut payload = vec![0u8; pagevault::format::PAGE_PAYLOAD_SIZE];
                    fill_payload(&mut payload_rng(7, seq), seq, &mut payload);
                    seq += 1;
                    batch.push((f, p, payload));
                    if batch.len() == 256 {
                        let w: Vec<PageWrite> = batch
                            .iter()
                            .map(|(f, p, b)| PageWrite {
                                file_id: *f,
                                page: *p,
                                payload: b,
                            })
                            .collect();
                        db.write_pages(&w)?;
                        batch.clear();
                    }
                }
            }
        }
        let w: Vec<PageWrite> = batch
            .iter()
            .map(|(f, p, b)| PageWrite {
                file_id: *f,
                page: *p,
                payload: b,
            })
            .collect();
        if !w.is_empty() {
            db.write_pages(&w)?;
        }
        db.close()?;
    }
    let db = Arc::new(Database::open_dir(&db_dir, OpenMode::ReadWrite)?);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let token = "bench-admin-token-0123456789";
    let tokens = Tokens::parse(&format!("admin {token}\n")).map_err(pagevault::Error::Invalid)?;
    let listener = Listener::start(
        db.clone(),
        ListenOptions {
            local_socket: false,
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            tls: Some((fixtures.join("cert.pem"), fixtures.join("key.pem"))),
            tokens: Some(tokens),
            ..ListenOptions::default()
        },
    )?;
    let client = ClientOptions {
        target: Target::Tcp(format!("localhost:{}", listener.tcp_addr().unwrap().port())),
        token: Some(token.into()),
        tls: Some(Some(fixtures.join("ca.pem"))),
        timeout: Duration::from_secs(300),
    };
    let (ra, rb) = (tmp.join("repo-local"), tmp.join("repo-remote"));
    let repo_a = Repository::init_dir(&ra, &InitOptions::default())?;
    let repo_b = Repository::init_dir(&rb, &InitOptions::default())?;
    let mut opts = BackupOptions::new(BackupKind::Full);
    opts.threads = threads;
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    let (mut local_cpu, mut remote_cpu) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for which in [round % 2, 1 - round % 2] {
            let (t0, c0) = (Instant::now(), cpu_seconds());
            let r = if which == 0 {
                backup::run(&db, &repo_a, &opts, &NoProgress)?
            } else {
                pagevault::serve::client::backup(&client, &repo_b, &opts, &NoProgress)?
            };
            let secs = t0.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - c0;
            let mbs = r.bytes_read as f64 / secs / 1e6;
            println!(
                "round {round}: {} full: {mbs:.0} MB/s ({} read, {} stored; {:.2} s, {:.2} CPU s of both sides)",
                if which == 0 { "local " } else { "remote" },
                r.bytes_read,
                r.bytes_stored,
                secs,
                cpu
            );
            if which == 0 {
                local.push(mbs);
                local_cpu.push(cpu);
            } else {
                remote.push(mbs);
                remote_cpu.push(cpu);
            }
        }
    }
    let (l, r) = (median(local), median(remote));
    println!(
        "median: local {l:.0} MB/s, remote over loopback TLS {r:.0} MB/s: remote/local = {:.2} ({} MiB, {threads} threads, level 1)",
        r / l,
        mib
    );
    // On a loaded machine the remote backup (one thread more) gets a larger share of the
    // CPU; the CPU ratio is what an idle 2-core machine, both backups CPU-bound, shows.
    let (lc, rc) = (median(local_cpu), median(remote_cpu));
    println!(
        "median CPU s per full: local {lc:.2}, remote {rc:.2}: local/remote = {:.2}",
        lc / rc
    );
    drop(listener);
    drop(db);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
