//! A page spec: which pages of a database a verb is about (`history`, `restore` of pages,
//! `repair`), as people write it and every front door parses it:
//!
//! ```text
//! spec  := item ("," item)*
//! item  := file [":" range]          a whole data file without a range
//! file  := 1 to 10 digits            a file id (1, 2, ...)
//!        | a file name               `data_0001.pvd`: letters, digits, `.`, `_`, `-`, not all digits
//! range := N | N "-" M               pages N to M of the file (decimal, N <= M)
//!        | "e" N | "e" N "-" M       extents N to M (8 pages each)
//! ```
//!
//! Keeps true (invariant 9 and 21, docs/design.md): the text is hostile, so it is parsed
//! strictly and within bounds ([`MAX_SPEC_BYTES`], [`MAX_SPEC_ITEMS`], numbers below
//! 2^32) into a typed [`SpecError`], never a panic; a parsed spec prints back as the same
//! canonical text ([`PageSpec::to_string`] then [`PageSpec::parse`] is the identity, the
//! `page_spec` fuzz target's property). Resolving a spec against a database's files
//! ([`PageSpec::resolve`]) names every page at most once, in (file, page) order, refuses
//! a page past a file's end or a system page named alone, and stops at a caller's limit
//! before allocating past it.

use std::fmt;

/// The longest spec text accepted.
pub const MAX_SPEC_BYTES: usize = 4096;
/// The most items (`,`-separated) in one spec.
pub const MAX_SPEC_ITEMS: usize = 64;
/// The longest file name (the control file's name field, docs/format.md).
const MAX_NAME_BYTES: usize = 47;

/// A data file, by id or by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileRef {
    Id(u32),
    Name(String),
}

/// What part of a file an item names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Span {
    /// Every data page of the file.
    File,
    /// Pages `first..=last`.
    Pages { first: u32, last: u32 },
    /// Extents `first..=last` (pages `8 first .. 8 last + 7`).
    Extents { first: u32, last: u32 },
}

/// One item of a spec.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpecItem {
    pub file: FileRef,
    pub span: Span,
}

/// A parsed spec: its items in the order written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageSpec {
    pub items: Vec<SpecItem>,
}

/// Why a spec was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// Nothing, or an empty item (`1:2,,3`).
    Empty,
    /// More than [`MAX_SPEC_BYTES`].
    TooLong { bytes: usize },
    /// More than [`MAX_SPEC_ITEMS`].
    TooManyItems { items: usize },
    /// A file that is neither an id nor a plain file name.
    BadFile { text: String },
    /// A page or extent number that is not a decimal number below 2^32.
    BadNumber { text: String },
    /// A range whose first number is above its last.
    Backwards { first: u32, last: u32 },
    /// A file the database does not have.
    NoSuchFile { file: String },
    /// A page past the end of its file.
    PastEnd { file: String, page: u64, pages: u32 },
    /// A system page (file header, change map) named alone: only data pages have
    /// versions in a repository.
    SystemPage { file: String, page: u64 },
    /// More pages than the caller takes at once.
    TooManyPages { limit: u64 },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::Empty => write!(
                f,
                "a page spec names at least one file, as FILE, FILE:PAGE, FILE:FIRST-LAST or FILE:eEXTENT, items separated by commas"
            ),
            SpecError::TooLong { bytes } => write!(
                f,
                "a page spec is at most {MAX_SPEC_BYTES} bytes, not {bytes}"
            ),
            SpecError::TooManyItems { items } => write!(
                f,
                "a page spec has at most {MAX_SPEC_ITEMS} items, not {items}"
            ),
            SpecError::BadFile { text } => write!(
                f,
                "{text:?} is neither a file id nor a data file's name (letters, digits, `.`, `_`, `-`)"
            ),
            SpecError::BadNumber { text } => write!(
                f,
                "{text:?} is not a page or extent number (decimal, below 2^32)"
            ),
            SpecError::Backwards { first, last } => {
                write!(f, "the range {first}-{last} ends before it starts")
            }
            SpecError::NoSuchFile { file } => write!(f, "the database has no data file {file}"),
            SpecError::PastEnd { file, page, pages } => write!(
                f,
                "page {page} is past the end of {file} ({pages} pages)"
            ),
            SpecError::SystemPage { file, page } => write!(
                f,
                "page {page} of {file} is a system page (file header or change map), which backups never hold"
            ),
            SpecError::TooManyPages { limit } => {
                write!(f, "the page spec names more than the {limit} pages taken at once")
            }
        }
    }
}

impl std::error::Error for SpecError {}

fn number(text: &str) -> Result<u32, SpecError> {
    let bad = || SpecError::BadNumber {
        text: text.chars().take(32).collect(),
    };
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u32>().map_err(|_| bad())
}

fn file(text: &str) -> Result<FileRef, SpecError> {
    let bad = || SpecError::BadFile {
        text: text.chars().take(64).collect(),
    };
    if text.is_empty() || text.len() > MAX_NAME_BYTES {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match number(text) {
            Ok(id) if id > 0 => Ok(FileRef::Id(id)),
            _ => Err(bad()),
        };
    }
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !plain || text == "." || text == ".." {
        return Err(bad());
    }
    Ok(FileRef::Name(text.to_string()))
}

fn range(text: &str) -> Result<Span, SpecError> {
    let (extents, text) = match text.strip_prefix('e') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    if first > last {
        return Err(SpecError::Backwards { first, last });
    }
    Ok(if extents {
        Span::Extents { first, last }
    } else {
        Span::Pages { first, last }
    })
}

impl PageSpec {
    /// Parses `text` strictly (see the module's grammar).
    pub fn parse(text: &str) -> Result<PageSpec, SpecError> {
        if text.len() > MAX_SPEC_BYTES {
            return Err(SpecError::TooLong { bytes: text.len() });
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(SpecError::Empty);
        }
        let count = text.split(',').count();
        if count > MAX_SPEC_ITEMS {
            return Err(SpecError::TooManyItems { items: count });
        }
        let mut items = Vec::with_capacity(count);
        for item in text.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(SpecError::Empty);
            }
            let (f, span) = match item.split_once(':') {
                Some((f, r)) => (file(f)?, range(r)?),
                None => (file(item)?, Span::File),
            };
            items.push(SpecItem { file: f, span });
        }
        Ok(PageSpec { items })
    }

    /// Page `page` of file `file_id`.
    pub fn page(file_id: u32, page: u32) -> PageSpec {
        PageSpec {
            items: vec![SpecItem {
                file: FileRef::Id(file_id),
                span: Span::Pages {
                    first: page,
                    last: page,
                },
            }],
        }
    }

    /// Every page of extent `extent` of file `file_id`.
    pub fn extent(file_id: u32, extent: u32) -> PageSpec {
        PageSpec {
            items: vec![SpecItem {
                file: FileRef::Id(file_id),
                span: Span::Extents {
                    first: extent,
                    last: extent,
                },
            }],
        }
    }

    /// The data pages the spec names in a database whose files are `files` (file id,
    /// name, page count), as (file id, page), sorted, each once. `is_system` says which
    /// page numbers are system pages. A page past its file's end, or a system page named
    /// alone (`1:0`), is refused; system pages inside a range or a file are passed over.
    /// More than `limit` pages is refused before they are listed.
    pub fn resolve(
        &self,
        files: &[(u32, String, u32)],
        is_system: &dyn Fn(u64) -> bool,
        limit: u64,
    ) -> Result<Vec<(u32, u32)>, SpecError> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for item in &self.items {
            let f = files
                .iter()
                .find(|(id, name, _)| match &item.file {
                    FileRef::Id(i) => id == i,
                    FileRef::Name(n) => name == n,
                })
                .ok_or_else(|| SpecError::NoSuchFile {
                    file: item.file.to_string(),
                })?;
            let (file_id, name, pages) = (f.0, &f.1, f.2);
            let (first, last, alone) = match item.span {
                Span::File => (0u64, (pages as u64).saturating_sub(1), false),
                Span::Pages { first, last } => (first as u64, last as u64, first == last),
                Span::Extents { first, last } => (first as u64 * 8, last as u64 * 8 + 7, false),
            };
            if pages == 0 {
                continue;
            }
            if last >= pages as u64 {
                return Err(SpecError::PastEnd {
                    file: name.clone(),
                    page: last,
                    pages,
                });
            }
            if alone && is_system(first) {
                return Err(SpecError::SystemPage {
                    file: name.clone(),
                    page: first,
                });
            }
            if last - first + 1 > limit.saturating_mul(2).saturating_add(64) {
                // Far past the limit even with system pages left out: refused before
                // anything is listed.
                return Err(SpecError::TooManyPages { limit });
            }
            for p in first..=last {
                if !is_system(p) {
                    out.push((file_id, p as u32));
                }
            }
            out.sort_unstable();
            out.dedup();
            if out.len() as u64 > limit {
                return Err(SpecError::TooManyPages { limit });
            }
        }
        Ok(out)
    }
}

impl fmt::Display for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileRef::Id(id) => write!(f, "{id}"),
            FileRef::Name(n) => write!(f, "{n}"),
        }
    }
}

impl fmt::Display for PageSpec {
    /// The canonical text: what [`PageSpec::parse`] reads back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{}", item.file)?;
            match item.span {
                Span::File => {}
                Span::Pages { first, last } if first == last => write!(f, ":{first}")?,
                Span::Pages { first, last } => write!(f, ":{first}-{last}")?,
                Span::Extents { first, last } if first == last => write!(f, ":e{first}")?,
                Span::Extents { first, last } => write!(f, ":e{first}-{last}")?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for PageSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<PageSpec, SpecError> {
        PageSpec::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<(u32, String, u32)> {
        vec![(1, "data_0001.pvd".into(), 32), (2, "data_0002.pvd".into(), 16)]
    }

    fn system(p: u64) -> bool {
        p == 0 || p == 1 || p == 17
    }

    #[test]
    fn specs_parse_print_back_and_resolve() {
        for (text, canonical) in [
            ("1:5", "1:5"),
            (" 1:5-7 , data_0002.pvd:e1 ", "1:5-7,data_0002.pvd:e1"),
            ("2", "2"),
            ("1:e0-1", "1:e0-1"),
            ("1:3-3", "1:3"),
        ] {
            let s = PageSpec::parse(text).unwrap();
            assert_eq!(s.to_string(), canonical);
            assert_eq!(PageSpec::parse(canonical).unwrap(), s);
        }
        let s = PageSpec::parse("1:5-7,data_0002.pvd:e1,1:6").unwrap();
        let pages = s.resolve(&files(), &system, 100).unwrap();
        assert_eq!(
            pages,
            [(1, 5), (1, 6), (1, 7), (2, 8), (2, 9), (2, 10), (2, 11), (2, 12), (2, 13), (2, 14), (2, 15)]
        );
        // A whole file passes over its system pages.
        let all = PageSpec::parse("2").unwrap().resolve(&files(), &system, 100).unwrap();
        assert_eq!(all.len(), 14);
        assert_eq!(PageSpec::page(1, 5), PageSpec::parse("1:5").unwrap());
        assert_eq!(PageSpec::extent(2, 1), PageSpec::parse("2:e1").unwrap());
    }

    #[test]
    fn bad_specs_are_refused_with_their_reason() {
        for (text, want) in [
            ("", SpecError::Empty),
            ("1:2,,3", SpecError::Empty),
            ("0", SpecError::BadFile { text: "0".into() }),
            ("../x:1", SpecError::BadFile { text: "../x".into() }),
            ("a/b:1", SpecError::BadFile { text: "a/b".into() }),
            ("1:x", SpecError::BadNumber { text: "x".into() }),
            ("1:4294967296", SpecError::BadNumber { text: "4294967296".into() }),
            ("1:-3", SpecError::BadNumber { text: "".into() }),
            ("1:9-3", SpecError::Backwards { first: 9, last: 3 }),
            ("1:e", SpecError::BadNumber { text: "".into() }),
        ] {
            assert_eq!(PageSpec::parse(text), Err(want), "{text:?}");
        }
        let long = "1:1,".repeat(MAX_SPEC_ITEMS) + "1:1";
        assert!(matches!(PageSpec::parse(&long), Err(SpecError::TooManyItems { .. })));
        assert!(matches!(
            PageSpec::parse(&"1".repeat(MAX_SPEC_BYTES + 1)),
            Err(SpecError::TooLong { .. })
        ));
        let r = |t: &str, limit| PageSpec::parse(t).unwrap().resolve(&files(), &system, limit);
        assert!(matches!(r("3:1", 10), Err(SpecError::NoSuchFile { .. })));
        assert!(matches!(r("1:32", 10), Err(SpecError::PastEnd { page: 32, .. })));
        assert!(matches!(r("1:17", 10), Err(SpecError::SystemPage { page: 17, .. })));
        assert!(matches!(r("1", 10), Err(SpecError::TooManyPages { limit: 10 })));
        assert!(matches!(
            r("1:0-4294967295", 10),
            Err(SpecError::PastEnd { .. })
        ));
    }
}
