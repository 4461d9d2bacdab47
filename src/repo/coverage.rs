//! Coverage of a chain: every extent of the newest set's files, paired with the index
//! entry of each set of the chain that holds it, walked in (file, extent) order one
//! index piece at a time. Restore assembles extents from it; restore and verify prove
//! with it, before anything is written, that every data page comes from the chain.
//!
//! Keeps true (invariants 5 and 7, docs/design.md): no data page of the newest set's
//! files goes unaccounted for, and every index entry of every set is read (and so
//! checked by its iterator) even where the newest set's files end.

use crate::error::Result;
use crate::format::manifest::{IndexEntry, Manifest};
use crate::format::{is_system_page, PAGES_PER_EXTENT};

use super::set_reader::IndexIter;
use super::Repository;

/// One extent to assemble: file index in the plan, extent, and per set of the chain the
/// index entry (with its position in the set) of the record that holds it, if any.
#[derive(Clone, Copy)]
pub struct Job {
    pub file: usize,
    pub extent: u32,
    pub src: [Option<(u64, IndexEntry)>; 2],
}

/// Every extent of the newest set's files, in order, paired with the entry of each set
/// of the chain that holds it. Entries of files the newest set does not have are
/// passed over; [`JobIter::finish`] reads every index to its end, so each is checked.
pub struct JobIter<'i> {
    iters: Vec<std::iter::Peekable<IndexIter<'i>>>,
    /// (file id, extents) of the newest set's files.
    files: Vec<(u32, u32)>,
    file: usize,
    extent: u32,
}

impl<'i> JobIter<'i> {
    pub fn new(iters: Vec<IndexIter<'i>>, sets: &[&Manifest]) -> JobIter<'i> {
        let newest = sets.last().expect("a chain holds at least one set");
        JobIter {
            iters: iters.into_iter().map(|i| i.peekable()).collect(),
            files: newest
                .files
                .iter()
                .map(|f| (f.file_id, f.page_count / PAGES_PER_EXTENT as u32))
                .collect(),
            file: 0,
            extent: 0,
        }
    }

    /// Reads what is left of every index, so every entry is checked.
    pub fn finish(&mut self) -> Result<()> {
        for it in &mut self.iters {
            for e in it.by_ref() {
                e?;
            }
        }
        Ok(())
    }
}

impl Iterator for JobIter<'_> {
    type Item = Result<Job>;

    fn next(&mut self) -> Option<Result<Job>> {
        while self.file < self.files.len() && self.extent >= self.files[self.file].1 {
            self.file += 1;
            self.extent = 0;
        }
        let &(file_id, _) = self.files.get(self.file)?;
        let key = (file_id, self.extent);
        let mut src = [None, None];
        for (s, it) in self.iters.iter_mut().enumerate().take(2) {
            loop {
                match it.peek() {
                    Some(Ok((_, e))) if (e.file_id, e.extent) < key => {
                        it.next();
                    }
                    Some(Ok((_, e))) if (e.file_id, e.extent) == key => {
                        src[s] = it.next().and_then(|r| r.ok());
                        break;
                    }
                    Some(Err(_)) => {
                        let e = it.next()?.err()?;
                        return Some(Err(e));
                    }
                    _ => break,
                }
            }
        }
        let job = Job {
            file: self.file,
            extent: self.extent,
            src,
        };
        self.extent += 1;
        Some(Ok(job))
    }
}

/// The first data page of `job`'s extent that no set of the chain holds, if any.
pub fn uncovered_page(sets: &[&Manifest], job: &Job) -> Option<u64> {
    let epm = sets.last()?.extents_per_map;
    let have = job
        .src
        .iter()
        .flatten()
        .fold(0u8, |m, (_, e)| m | e.page_mask);
    let first_page = job.extent as u64 * PAGES_PER_EXTENT as u64;
    (0..PAGES_PER_EXTENT as u64)
        .map(|i| first_page + i)
        .find(|&pn| have & (1 << (pn - first_page)) == 0 && !is_system_page(pn, epm))
}

/// The first data page (file index in the newest set, page number) of the newest set's
/// files that no set of the chain `sets` (oldest first) indexes, if any. Reads every
/// index once; an index that does not check is an error.
pub fn first_uncovered(repo: &Repository, sets: &[&Manifest]) -> Result<Option<(usize, u64)>> {
    let iters = sets.iter().map(|m| IndexIter::new(repo, m)).collect();
    let mut jobs = JobIter::new(iters, sets);
    for job in jobs.by_ref() {
        let job = job?;
        if let Some(page) = uncovered_page(sets, &job) {
            return Ok(Some((job.file, page)));
        }
    }
    jobs.finish()?;
    Ok(None)
}
