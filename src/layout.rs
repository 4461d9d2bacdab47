//! The data pages of a database in one order: file by file (by id), page by page,
//! skipping system pages (file header, change maps). The workload and import address
//! pages by their index in this order.
//!
//! Keeps true: index `i` maps to a data page a caller may write, every data page has
//! exactly one index, and the mapping is pure arithmetic (no table per page).

use crate::format::{PAGES_PER_EXTENT, PAGE_PAYLOAD_SIZE};

/// The data-page order of a database's layout.
#[derive(Clone, Debug)]
pub struct DataPages {
    /// (file id, page count, data pages before this file).
    files: Vec<(u32, u32, u64)>,
    interval_pages: u64,
    total: u64,
}

/// Data pages among the first `page_count` pages of a file with `interval_pages` pages
/// per change-map interval.
pub fn data_pages_in(page_count: u64, interval_pages: u64) -> u64 {
    let intervals = page_count.div_ceil(interval_pages);
    // Page 0 (header) and one map page per interval, the second page of each interval.
    page_count.saturating_sub(1 + intervals)
}

/// The smallest page count (whole extents) whose file holds at least `data_pages` data
/// pages, or `None` past `u32`.
pub fn pages_for_data(data_pages: u64, extents_per_map: u32) -> Option<u32> {
    let ipp = extents_per_map as u64 * PAGES_PER_EXTENT as u64;
    let round = |p: u64| p.div_ceil(PAGES_PER_EXTENT as u64) * PAGES_PER_EXTENT as u64;
    let mut pages = round((data_pages + 2).max(PAGES_PER_EXTENT as u64));
    while data_pages_in(pages, ipp) < data_pages {
        pages = round(pages + 1);
    }
    u32::try_from(pages).ok()
}

/// Data pages needed for `bytes` of payload.
pub fn data_pages_for_bytes(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_PAYLOAD_SIZE as u64)
}

impl DataPages {
    /// The order for files `(id, page count)` (as [`crate::Database::file_layout`] gives
    /// them) with `extents_per_map` extents per change-map page.
    pub fn new(layout: &[(u32, u32)], extents_per_map: u32) -> DataPages {
        let interval_pages = extents_per_map as u64 * PAGES_PER_EXTENT as u64;
        let mut files = Vec::with_capacity(layout.len());
        let mut total = 0;
        let mut sorted = layout.to_vec();
        sorted.sort_by_key(|&(id, _)| id);
        for (id, pages) in sorted {
            files.push((id, pages, total));
            total += data_pages_in(pages as u64, interval_pages);
        }
        DataPages {
            files,
            interval_pages,
            total,
        }
    }

    /// Number of data pages.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when there is no data page.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// (file id, page number) of data page `index` (< `len()`).
    pub fn get(&self, index: u64) -> (u32, u32) {
        assert!(index < self.total, "data page index {index} out of range");
        let f = match self
            .files
            .binary_search_by(|&(_, _, before)| before.cmp(&index))
        {
            Ok(mut i) => {
                // Skip files with no data pages that start at the same index.
                while i + 1 < self.files.len() && self.files[i + 1].2 == index {
                    i += 1;
                }
                i
            }
            Err(i) => i - 1,
        };
        let (id, _, before) = self.files[f];
        let d = index - before;
        let ipp = self.interval_pages;
        // Interval 0 holds pages 2..ipp; interval k >= 1 holds k*ipp and k*ipp+2..(k+1)*ipp.
        let page = if d < ipp - 2 {
            d + 2
        } else {
            let d = d - (ipp - 2);
            let k = 1 + d / (ipp - 1);
            let r = d % (ipp - 1);
            k * ipp + if r == 0 { 0 } else { r + 1 }
        };
        (id, page as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::is_system_page;

    #[test]
    fn matches_a_page_by_page_enumeration() {
        for epm in [1u32, 2, 3, 5] {
            let layout = [(1u32, 8 * 11), (2, 8), (3, 8 * 7)];
            let dp = DataPages::new(&layout, epm);
            let mut expected = vec![];
            for &(id, pages) in &layout {
                for p in 0..pages {
                    if !is_system_page(p as u64, epm) {
                        expected.push((id, p));
                    }
                }
            }
            assert_eq!(dp.len(), expected.len() as u64, "epm {epm}");
            for (i, &want) in expected.iter().enumerate() {
                assert_eq!(dp.get(i as u64), want, "epm {epm} index {i}");
            }
        }
    }

    #[test]
    fn pages_for_data_is_the_smallest_fit() {
        for epm in [1u32, 2, 32_000] {
            let ipp = epm as u64 * 8;
            for want in [0u64, 1, 5, 6, 7, 13, 14, 15, 100, 1000] {
                let pages = pages_for_data(want, epm).unwrap() as u64;
                assert!(data_pages_in(pages, ipp) >= want);
                assert!(pages == 8 || data_pages_in(pages - 8, ipp) < want);
            }
        }
    }
}
