//! The tar container of an archive: ustar headers (written and parsed with the `tar`
//! crate's `Header`), each entry's bytes, zero padding to 512 bytes, and two zero
//! blocks at the end (docs/archives.md).
//!
//! Keeps true (invariant 15, docs/design.md): a header is used only after its checksum,
//! magic, type and name were checked: only regular files whose name is a set object's
//! or the archive manifest's exact name, so no link, device, folder, long-name or pax
//! entry and no path (`../x`, `/abs`, `a/b`) ever reaches a caller; an entry's size is
//! handed out as a number for the caller to bound before it reads or allocates.

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

/// A tar block.
pub const BLOCK: usize = 512;

/// An entry's header as checked: its name and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHead {
    pub name: String,
    pub size: u64,
}

/// Why a tar header (or the padding before it) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TarFault {
    #[error("a tar header's checksum field is not a number")]
    ChecksumField,
    #[error("a tar header has checksum {stored}, its bytes give {computed} (damaged, or not a tar archive)")]
    Checksum { stored: u32, computed: u32 },
    #[error("a tar header is neither ustar nor GNU (not a pagevault archive)")]
    NotUstar,
    /// An entry that is not a regular file: its name as shown, and what it is.
    #[error("entry {0:?} is {1}; a pagevault archive holds only regular files")]
    NotRegular(String, &'static str),
    #[error("entry {0:?} has a path prefix; a pagevault archive holds only plain object names")]
    Prefix(String),
    #[error("entry {0:?} is not the name of an object a pagevault archive holds")]
    Name(String),
    #[error("entry {0:?} has a size field that is not a number")]
    Size(String),
    #[error("entry {0:?} has a time field that is not a number")]
    Time(String),
    #[error("entry {0:?} has a header pagevault does not write (damaged, or made by another tool)")]
    NotOurs(String),
    #[error("the padding before byte {0} is not zero (damaged archive)")]
    Padding(u64),
}

/// The bytes of `size` rounded up to whole blocks.
pub fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// A ustar header for a regular file `name` of `size` bytes.
pub fn header(name: &str, size: u64, mtime_secs: u64) -> io::Result<[u8; BLOCK]> {
    let mut h = Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime_secs);
    h.set_entry_type(EntryType::Regular);
    h.set_cksum();
    let mut b = [0u8; BLOCK];
    b.copy_from_slice(h.as_bytes());
    Ok(b)
}

/// Parses one header block: `Ok(None)` for a zero block (the end of the archive),
/// otherwise the entry it announces, or why it is refused. `is_allowed` decides which
/// names may appear.
pub fn parse_header(
    block: &[u8; BLOCK],
    is_allowed: &dyn Fn(&str) -> bool,
) -> Result<Option<EntryHead>, TarFault> {
    use TarFault as F;
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let h = Header::from_byte_slice(block);
    let stored = h.cksum().map_err(|_| F::ChecksumField)?;
    let computed: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as u32
            } else {
                b as u32
            }
        })
        .sum();
    if stored != computed {
        return Err(F::Checksum { stored, computed });
    }
    if h.as_ustar().is_none() && h.as_gnu().is_none() {
        return Err(F::NotUstar);
    }
    let kind = h.entry_type();
    let name_bytes = h.path_bytes();
    let shown = String::from_utf8_lossy(&name_bytes).into_owned();
    if kind != EntryType::Regular {
        let what = match kind {
            EntryType::Symlink => "a symbolic link",
            EntryType::Link => "a hard link",
            EntryType::Char => "a character device",
            EntryType::Block => "a block device",
            EntryType::Directory => "a folder",
            EntryType::Fifo => "a FIFO",
            EntryType::GNULongName | EntryType::GNULongLink => "a GNU long-name entry",
            EntryType::XHeader | EntryType::XGlobalHeader => "a pax header",
            EntryType::GNUSparse => "a sparse file",
            _ => "an entry of an unknown type",
        };
        return Err(F::NotRegular(shown, what));
    }
    if let Some(u) = h.as_ustar() {
        if u.prefix.iter().any(|&b| b != 0) {
            return Err(F::Prefix(shown));
        }
    }
    let Some(name) = std::str::from_utf8(&name_bytes)
        .ok()
        .filter(|n| is_allowed(n))
    else {
        return Err(F::Name(shown));
    };
    let Ok(size) = h.size() else {
        return Err(F::Size(shown));
    };
    // Every other field must be as pagevault writes it: a header is checked whole, so
    // no flipped bit in it (in a field tar's checksum misses, or in the checksum field
    // itself) passes unseen.
    let Ok(mtime) = h.mtime() else {
        return Err(F::Time(shown));
    };
    if header(name, size, mtime).ok().as_ref() != Some(block) {
        return Err(F::NotOurs(shown));
    }
    Ok(Some(EntryHead {
        name: name.to_string(),
        size,
    }))
}

/// Reads an archive front to back from any reader, one entry at a time, never seeking.
pub struct TarReader<R: Read> {
    r: R,
    /// Bytes of the current entry not yet read, and its padding.
    left: u64,
    pad: u64,
    /// Bytes consumed from `r`.
    pub offset: u64,
}

impl<R: Read> TarReader<R> {
    pub fn new(r: R) -> TarReader<R> {
        TarReader {
            r,
            left: 0,
            pad: 0,
            offset: 0,
        }
    }

    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.r.read_exact(buf)?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// The next header block (after skipping what is left of the current entry), or
    /// `Ok(None)` at a zero block. An EOF before a whole block is `UnexpectedEof`.
    pub fn next(
        &mut self,
        is_allowed: &dyn Fn(&str) -> bool,
    ) -> io::Result<Result<Option<EntryHead>, TarFault>> {
        let mut scratch = [0u8; 8192];
        let mut skip = self.left;
        while skip > 0 {
            let n = skip.min(scratch.len() as u64) as usize;
            self.read_full(&mut scratch[..n])?;
            skip -= n as u64;
        }
        let pad = self.pad as usize;
        self.left = 0;
        self.pad = 0;
        self.read_full(&mut scratch[..pad])?;
        if scratch[..pad].iter().any(|&b| b != 0) {
            return Ok(Err(TarFault::Padding(self.offset)));
        }
        let mut block = [0u8; BLOCK];
        self.read_full(&mut block)?;
        let head = parse_header(&block, is_allowed);
        if let Ok(Some(e)) = &head {
            self.left = e.size;
            self.pad = padded(e.size).saturating_sub(e.size);
        }
        Ok(head)
    }

    /// Reads the next bytes of the current entry into `buf`; 0 at its end.
    pub fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.left.min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.read_full(&mut buf[..n])?;
        self.left -= n as u64;
        Ok(n)
    }

    /// After a zero block: the second zero block that ends an archive.
    pub fn end(&mut self) -> io::Result<bool> {
        let mut block = [0u8; BLOCK];
        self.read_full(&mut block)?;
        Ok(block.iter().all(|&b| b == 0))
    }
}

/// Writes an archive to any writer, entry by entry.
pub struct TarWriter<W: Write> {
    w: W,
    /// Bytes written.
    pub offset: u64,
    left: u64,
    pad: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(w: W) -> TarWriter<W> {
        TarWriter {
            w,
            offset: 0,
            left: 0,
            pad: 0,
        }
    }

    /// Starts an entry `name` of exactly `size` bytes.
    pub fn begin(&mut self, name: &str, size: u64, mtime_secs: u64) -> io::Result<()> {
        assert_eq!(self.left, 0, "the entry before was written whole");
        let h = header(name, size, mtime_secs)?;
        self.w.write_all(&h)?;
        self.offset += BLOCK as u64;
        self.left = size;
        self.pad = padded(size) - size;
        Ok(())
    }

    /// The entry's next bytes.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an object has more bytes than its size said",
            ));
        }
        self.w.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        self.left -= bytes.len() as u64;
        Ok(())
    }

    /// Ends the entry: its padding.
    pub fn end(&mut self) -> io::Result<()> {
        if self.left != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an object has fewer bytes than its size said",
            ));
        }
        let zeros = [0u8; BLOCK];
        self.w.write_all(&zeros[..self.pad as usize])?;
        self.offset += self.pad;
        self.pad = 0;
        Ok(())
    }

    /// Ends the archive (two zero blocks) and flushes; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 2 * BLOCK])?;
        self.offset += 2 * BLOCK as u64;
        self.w.flush()?;
        Ok(self.w)
    }
}
