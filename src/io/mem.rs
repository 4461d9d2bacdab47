//! An in-memory backend for tests and fuzzing that models what a disk keeps across a
//! power loss, and injects faults.
//!
//! Faults it simulates (each one a scenario recovery must survive):
//! - power loss after any mutating operation ([`MemVfs::crash_after`]): every later
//!   operation fails until [`MemVfs::crash`] "reboots";
//! - on reboot, writes that were never synced are lost, kept, or kept torn (a prefix of
//!   512-byte sectors), per [`CrashPolicy`]; folder operations never synced are lost,
//!   kept, or kept up to a random point;
//! - an I/O error on one chosen operation ([`MemVfs::fail_op`]);
//! - a full disk: writes that would grow the total size past a limit fail with ENOSPC
//!   ([`MemVfs::set_space_limit`]);
//! - a short write: one chosen write stores only the first half of its bytes and fails
//!   ([`MemVfs::short_write`]), as a write cut off by a dying disk;
//! - fsync failures: every file and folder sync from a chosen operation on fails and
//!   makes nothing durable, while other operations still succeed
//!   ([`MemVfs::fail_syncs_from`]), as a disk that lost its write-back;
//! - a read error on one chosen read ([`MemVfs::fail_read`]).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Storage, Vfs};

/// What survives a power loss of the writes and folder operations never synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPolicy {
    /// Only what was synced (the kindest disk).
    KeepSynced,
    /// Everything that completed (a disk that wrote through).
    KeepAll,
    /// Each unsynced write kept, lost or torn, chosen by the seed (the cruellest disk).
    Random(u64),
}

#[derive(Clone, Debug)]
enum FileOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Default)]
struct MemFile {
    live: Mutex<Vec<u8>>,
    durable: Mutex<Vec<u8>>,
    pending: Mutex<Vec<FileOp>>,
}

#[derive(Clone)]
enum DirOp {
    Link(String, Arc<MemFile>),
    Rename(String, String),
    Remove(String),
}

#[derive(Default)]
struct Folder {
    live: BTreeMap<String, Arc<MemFile>>,
    durable: BTreeMap<String, Arc<MemFile>>,
    pending: Vec<DirOp>,
}

#[derive(Default)]
struct Faults {
    ops: AtomicU64,
    crash_after: AtomicU64,     // u64::MAX = never
    fail_op: AtomicU64,         // u64::MAX = never
    space_limit: AtomicU64,     // u64::MAX = unlimited
    short_write: AtomicU64,     // u64::MAX = never
    fail_syncs_from: AtomicU64, // u64::MAX = never
    reads: AtomicU64,
    fail_read: AtomicU64, // u64::MAX = never
    down: AtomicBool,
    /// Lock files held: -1 exclusive, n > 0 shared by n holders.
    locks: Mutex<BTreeMap<String, i64>>,
}

/// A simulated folder. Clones share the same state, so a test can keep one while a
/// database owns another.
#[derive(Clone)]
pub struct MemVfs {
    folder: Arc<Mutex<Folder>>,
    faults: Arc<Faults>,
}

impl Default for MemVfs {
    fn default() -> Self {
        Self::new()
    }
}

fn down_error() -> io::Error {
    io::Error::other("simulated power loss")
}

impl MemVfs {
    /// An empty folder with no faults.
    pub fn new() -> MemVfs {
        let faults = Faults::default();
        faults.crash_after.store(u64::MAX, Ordering::SeqCst);
        faults.fail_op.store(u64::MAX, Ordering::SeqCst);
        faults.space_limit.store(u64::MAX, Ordering::SeqCst);
        faults.short_write.store(u64::MAX, Ordering::SeqCst);
        faults.fail_syncs_from.store(u64::MAX, Ordering::SeqCst);
        faults.fail_read.store(u64::MAX, Ordering::SeqCst);
        MemVfs {
            folder: Arc::default(),
            faults: Arc::new(faults),
        }
    }

    /// Mutating operations performed so far (writes, set_len, syncs, creations, renames,
    /// removals, folder syncs).
    pub fn ops(&self) -> u64 {
        self.faults.ops.load(Ordering::SeqCst)
    }

    /// Power is lost just before mutating operation number `n` (counted by [`ops`]):
    /// that operation and every later one fail.
    ///
    /// [`ops`]: MemVfs::ops
    pub fn crash_after(&self, n: u64) {
        self.faults.crash_after.store(n, Ordering::SeqCst);
    }

    /// Mutating operation number `n` fails with an I/O error; later ones succeed.
    pub fn fail_op(&self, n: u64) {
        self.faults.fail_op.store(n, Ordering::SeqCst);
    }

    /// Writes that would make the folder's files larger than `bytes` in total fail with
    /// "no space left on device".
    pub fn set_space_limit(&self, bytes: u64) {
        self.faults.space_limit.store(bytes, Ordering::SeqCst);
    }

    /// Mutating operation number `n`, when it is a write, stores only the first half of
    /// its bytes and then fails with an I/O error (any other operation just fails);
    /// later operations succeed.
    pub fn short_write(&self, n: u64) {
        self.faults.short_write.store(n, Ordering::SeqCst);
    }

    /// Every file sync and folder sync from mutating operation number `n` on fails with an
    /// I/O error and makes nothing durable; writes, renames and the rest still succeed.
    pub fn fail_syncs_from(&self, n: u64) {
        self.faults.fail_syncs_from.store(n, Ordering::SeqCst);
    }

    /// Reads (`read_at` calls) performed so far.
    pub fn reads(&self) -> u64 {
        self.faults.reads.load(Ordering::SeqCst)
    }

    /// Read number `n` (counted by [`reads`]) fails with an I/O error.
    ///
    /// [`reads`]: MemVfs::reads
    pub fn fail_read(&self, n: u64) {
        self.faults.fail_read.store(n, Ordering::SeqCst);
    }

    /// Clears every injected fault (crash point, failing operation, space limit, short
    /// write, sync and read failures) without a reboot.
    pub fn clear_faults(&self) {
        for a in [
            &self.faults.crash_after,
            &self.faults.fail_op,
            &self.faults.space_limit,
            &self.faults.short_write,
            &self.faults.fail_syncs_from,
            &self.faults.fail_read,
        ] {
            a.store(u64::MAX, Ordering::SeqCst);
        }
    }

    /// True once the simulated power loss happened.
    pub fn is_down(&self) -> bool {
        self.faults.down.load(Ordering::SeqCst)
    }

    /// Reboots after a power loss (or pulls the plug now): keeps what `policy` says of
    /// everything never synced, clears all faults and the lock.
    pub fn crash(&self, policy: CrashPolicy) {
        let mut rng = crate::rng::SplitMix64::new(match policy {
            CrashPolicy::Random(seed) => seed,
            _ => 0,
        });
        let mut next = move || rng.next_u64();
        let mut folder = self.folder.lock().unwrap();
        // Files: every file reachable from either view of the folder.
        let mut files: Vec<Arc<MemFile>> = Vec::new();
        for f in folder.live.values().chain(folder.durable.values()) {
            if !files.iter().any(|g| Arc::ptr_eq(f, g)) {
                files.push(f.clone());
            }
        }
        for f in &files {
            let mut durable = f.durable.lock().unwrap();
            let pending = std::mem::take(&mut *f.pending.lock().unwrap());
            for op in pending {
                let keep = match policy {
                    CrashPolicy::KeepSynced => 0,
                    CrashPolicy::KeepAll => 2,
                    CrashPolicy::Random(_) => next() % 3,
                };
                match op {
                    FileOp::SetLen(len) if keep > 0 => durable.resize(len as usize, 0),
                    FileOp::Write { offset, data } if keep > 0 => {
                        let sectors = data.len().div_ceil(512);
                        let n = if keep == 2 || sectors <= 1 {
                            data.len()
                        } else {
                            ((next() as usize % sectors) * 512).min(data.len())
                        };
                        apply_write(&mut durable, offset, &data[..n]);
                    }
                    _ => {}
                }
            }
            *f.live.lock().unwrap() = durable.clone();
        }
        let pending = std::mem::take(&mut folder.pending);
        let keep_ops = match policy {
            CrashPolicy::KeepSynced => 0,
            CrashPolicy::KeepAll => pending.len(),
            CrashPolicy::Random(_) => (next() as usize) % (pending.len() + 1),
        };
        let mut durable = folder.durable.clone();
        for op in pending.into_iter().take(keep_ops) {
            apply_dir_op(&mut durable, op);
        }
        folder.live = durable.clone();
        folder.durable = durable;
        self.clear_faults();
        self.faults.down.store(false, Ordering::SeqCst);
        self.faults.locks.lock().unwrap().clear();
    }

    /// The live bytes of a file, for tests that inspect or corrupt it.
    pub fn read_file(&self, name: &str) -> Option<Vec<u8>> {
        let folder = self.folder.lock().unwrap();
        folder
            .live
            .get(name)
            .map(|f| f.live.lock().unwrap().clone())
    }

    /// Replaces a file's bytes in place, live and durable (a test's bit rot).
    pub fn corrupt_file(&self, name: &str, edit: impl FnOnce(&mut Vec<u8>)) {
        let folder = self.folder.lock().unwrap();
        if let Some(f) = folder.live.get(name) {
            let mut live = f.live.lock().unwrap();
            edit(&mut live);
            *f.durable.lock().unwrap() = live.clone();
            f.pending.lock().unwrap().clear();
        }
    }

    fn total_live_bytes(&self, folder: &Folder) -> u64 {
        folder
            .live
            .values()
            .map(|f| f.live.lock().unwrap().len() as u64)
            .sum()
    }

    /// Counts one mutating operation and applies the fault plan to it (but for a short
    /// write, which only a write can apply); returns its number.
    fn count(&self) -> io::Result<u64> {
        if self.is_down() {
            return Err(down_error());
        }
        let n = self.faults.ops.fetch_add(1, Ordering::SeqCst);
        if n >= self.faults.crash_after.load(Ordering::SeqCst) {
            self.faults.down.store(true, Ordering::SeqCst);
            return Err(down_error());
        }
        if n == self.faults.fail_op.load(Ordering::SeqCst) {
            return Err(io::Error::other(format!(
                "injected I/O error at operation {n}"
            )));
        }
        Ok(n)
    }

    /// Counts one mutating operation other than a write and applies the fault plan to it.
    fn step(&self) -> io::Result<u64> {
        let n = self.count()?;
        if n == self.faults.short_write.load(Ordering::SeqCst) {
            return Err(io::Error::other(format!(
                "injected I/O error at operation {n}"
            )));
        }
        Ok(n)
    }

    /// A sync: counted, and failed when sync failures are on.
    fn step_sync(&self) -> io::Result<()> {
        let n = self.step()?;
        if n >= self.faults.fail_syncs_from.load(Ordering::SeqCst) {
            return Err(io::Error::other(format!(
                "injected fsync failure at operation {n}"
            )));
        }
        Ok(())
    }
}

fn apply_write(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset as usize..end].copy_from_slice(data);
}

fn apply_dir_op(dir: &mut BTreeMap<String, Arc<MemFile>>, op: DirOp) {
    match op {
        DirOp::Link(name, f) => {
            dir.insert(name, f);
        }
        DirOp::Rename(from, to) => {
            if let Some(f) = dir.remove(&from) {
                dir.insert(to, f);
            }
        }
        DirOp::Remove(name) => {
            dir.remove(&name);
        }
    }
}

struct MemHandle {
    vfs: MemVfs,
    file: Arc<MemFile>,
}

impl MemHandle {
    /// The full-disk fault: growing this file to `new_end` bytes must keep the folder's
    /// files within the space limit.
    fn check_space(&self, new_end: u64) -> io::Result<()> {
        let limit = self.vfs.faults.space_limit.load(Ordering::SeqCst);
        if limit == u64::MAX {
            return Ok(());
        }
        let folder = self.vfs.folder.lock().unwrap();
        let total = self.vfs.total_live_bytes(&folder);
        let cur = self.file.live.lock().unwrap().len() as u64;
        if total + new_end.saturating_sub(cur) > limit {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        Ok(())
    }
}

impl Storage for MemHandle {
    fn len(&self) -> io::Result<u64> {
        if self.vfs.is_down() {
            return Err(down_error());
        }
        Ok(self.file.live.lock().unwrap().len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.vfs.is_down() {
            return Err(down_error());
        }
        let n = self.vfs.faults.reads.fetch_add(1, Ordering::SeqCst);
        if n == self.vfs.faults.fail_read.load(Ordering::SeqCst) {
            return Err(io::Error::other(format!("injected read error at read {n}")));
        }
        let live = self.file.live.lock().unwrap();
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        if end > live.len() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past end of file",
            ));
        }
        buf.copy_from_slice(&live[offset as usize..end as usize]);
        Ok(())
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let n = self.vfs.count()?;
        let short = n == self.vfs.faults.short_write.load(Ordering::SeqCst);
        let buf = if short { &buf[..buf.len() / 2] } else { buf };
        self.check_space(offset + buf.len() as u64)?;
        apply_write(&mut self.file.live.lock().unwrap(), offset, buf);
        self.file.pending.lock().unwrap().push(FileOp::Write {
            offset,
            data: buf.to_vec(),
        });
        if short {
            return Err(io::Error::other(format!(
                "injected short write at operation {n}: {} bytes written",
                buf.len()
            )));
        }
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.vfs.step()?;
        self.check_space(len)?;
        self.file.live.lock().unwrap().resize(len as usize, 0);
        self.file.pending.lock().unwrap().push(FileOp::SetLen(len));
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.vfs.step_sync()?;
        let mut durable = self.file.durable.lock().unwrap();
        for op in std::mem::take(&mut *self.file.pending.lock().unwrap()) {
            match op {
                FileOp::Write { offset, data } => apply_write(&mut durable, offset, &data),
                FileOp::SetLen(len) => durable.resize(len as usize, 0),
            }
        }
        Ok(())
    }
}

struct MemLock(Arc<Faults>, String, bool);
impl super::HeldLock for MemLock {}
impl Drop for MemLock {
    fn drop(&mut self) {
        let mut locks = self.0.locks.lock().unwrap();
        if let Some(n) = locks.get_mut(&self.1) {
            if self.2 && *n > 1 {
                *n -= 1;
            } else {
                locks.remove(&self.1);
            }
        }
    }
}

impl Vfs for MemVfs {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn Storage>> {
        if self.is_down() {
            return Err(down_error());
        }
        let existing = self.folder.lock().unwrap().live.get(name).cloned();
        let file = match existing {
            Some(f) => f,
            None if create => {
                self.step()?;
                let f = Arc::new(MemFile::default());
                let mut folder = self.folder.lock().unwrap();
                folder.live.insert(name.to_string(), f.clone());
                folder
                    .pending
                    .push(DirOp::Link(name.to_string(), f.clone()));
                f
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{name}: no such file"),
                ))
            }
        };
        Ok(Arc::new(MemHandle {
            vfs: self.clone(),
            file,
        }))
    }
    fn exists(&self, name: &str) -> bool {
        self.folder.lock().unwrap().live.contains_key(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.step()?;
        let mut folder = self.folder.lock().unwrap();
        let f = folder
            .live
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, from.to_string()))?;
        folder.live.insert(to.to_string(), f);
        folder
            .pending
            .push(DirOp::Rename(from.to_string(), to.to_string()));
        Ok(())
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.step()?;
        let mut folder = self.folder.lock().unwrap();
        folder
            .live
            .remove(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))?;
        folder.pending.push(DirOp::Remove(name.to_string()));
        Ok(())
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.step_sync()?;
        let mut folder = self.folder.lock().unwrap();
        let pending = std::mem::take(&mut folder.pending);
        for op in pending {
            apply_dir_op(&mut folder.durable, op);
        }
        Ok(())
    }
    fn list(&self) -> io::Result<Vec<String>> {
        if self.is_down() {
            return Err(down_error());
        }
        Ok(self.folder.lock().unwrap().live.keys().cloned().collect())
    }
    fn path_of(&self, name: &str) -> PathBuf {
        PathBuf::from("mem:").join(name)
    }
    fn rename_new(&self, from: &str, to: &str) -> io::Result<()> {
        if self.exists(to) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{to}: exists"),
            ));
        }
        self.rename(from, to)
    }
    fn lock_file(&self, name: &str, shared: bool) -> io::Result<Box<dyn super::HeldLock>> {
        let mut locks = self.faults.locks.lock().unwrap();
        let held = locks.get(name).copied().unwrap_or(0);
        let granted = if shared { held >= 0 } else { held == 0 };
        if !granted {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "another handle in this process",
            ));
        }
        locks.insert(name.to_string(), if shared { held + 1 } else { -1 });
        Ok(Box::new(MemLock(
            self.faults.clone(),
            name.to_string(),
            shared,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_and_renames_are_lost_on_a_kind_crash() {
        let vfs = MemVfs::new();
        let f = vfs.open("a", true).unwrap();
        f.write_at(0, b"hello").unwrap();
        f.sync().unwrap();
        vfs.sync_dir().unwrap();
        f.write_at(0, b"HELLO").unwrap();
        vfs.rename("a", "b").unwrap();
        vfs.crash(CrashPolicy::KeepSynced);
        assert_eq!(vfs.read_file("a").unwrap(), b"hello");
        assert!(vfs.read_file("b").is_none());
    }

    #[test]
    fn crash_point_stops_everything_after_it() {
        let vfs = MemVfs::new();
        let f = vfs.open("a", true).unwrap();
        vfs.crash_after(vfs.ops() + 1);
        f.write_at(0, b"x").unwrap();
        assert!(f.write_at(1, b"y").is_err());
        assert!(f.sync().is_err());
        assert!(vfs.is_down());
        vfs.crash(CrashPolicy::KeepAll);
        assert!(!vfs.is_down());
        assert_eq!(vfs.read_file("a").unwrap(), b"x");
    }

    #[test]
    fn full_disk_and_injected_errors() {
        let vfs = MemVfs::new();
        let f = vfs.open("a", true).unwrap();
        vfs.set_space_limit(10);
        f.write_at(0, &[1; 10]).unwrap();
        let e = f.write_at(10, &[1]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        f.write_at(0, &[2; 10]).unwrap(); // overwriting needs no space
        vfs.fail_op(vfs.ops());
        assert!(f.sync().is_err());
        f.sync().unwrap();
    }

    #[test]
    fn short_writes_sync_failures_and_read_errors() {
        let vfs = MemVfs::new();
        let f = vfs.open("a", true).unwrap();
        f.write_at(0, b"old!").unwrap();
        f.sync().unwrap();
        vfs.sync_dir().unwrap();
        vfs.short_write(vfs.ops());
        assert!(f.write_at(0, b"NEW!").is_err());
        assert_eq!(
            vfs.read_file("a").unwrap(),
            b"NEd!",
            "half the write landed"
        );
        f.write_at(0, b"more").unwrap();
        vfs.fail_syncs_from(vfs.ops());
        assert!(f.sync().is_err());
        assert!(vfs.sync_dir().is_err());
        f.write_at(4, b"x").unwrap(); // writes still succeed
        vfs.crash(CrashPolicy::KeepSynced);
        assert_eq!(
            vfs.read_file("a").unwrap(),
            b"old!",
            "a failed sync made nothing durable"
        );
        let f = vfs.open("a", false).unwrap();
        vfs.fail_read(vfs.reads() + 1);
        let mut b = [0u8; 4];
        f.read_at(0, &mut b).unwrap();
        assert!(f.read_at(0, &mut b).is_err());
        f.read_at(0, &mut b).unwrap();
    }
}
