//! The backup stream's wire format: length-prefixed, checksummed frames, each holding one
//! message (docs/server.md, "The protocol"; byte layout in docs/format.md, "The backup
//! stream").
//!
//! Keeps true (invariant 21, docs/design.md): bytes from the network are hostile. A frame
//! is read only after its length is checked against the limit the reader gives (small
//! before the peer is authenticated), its body only after its CRC-32 matches, and every
//! field only after the bytes it needs are known to be there; any defect is an error
//! naming it, never a panic or an allocation beyond the frame limit.
//!
//! Frame: `u32 body_len` (LE), `body` (`u8 type` then the fields), `u32 crc32(body)`.
//! Strings are `u16 len` + UTF-8; byte blobs `u32 len` + bytes; lists `u32 count` + items.

use std::io::{self, Read, Write};

/// The protocol version this build speaks (sent in [`Msg::Hello`] and [`Msg::Welcome`]).
/// Version 2: a backup request carries the library's backup options as JSON (one field,
/// so a new option needs no new frame layout).
pub const PROTOCOL_VERSION: u16 = 2;
/// The magic a hello starts with.
pub const HELLO_MAGIC: [u8; 8] = *b"PVBACKUP";
/// The largest frame before the peer is authenticated (a hello).
pub const MAX_HELLO_FRAME_BYTES: u32 = 64 << 10;
/// The largest frame afterwards: a manifest put (at most 64 MiB) and some room.
pub const MAX_FRAME_BYTES: u32 = (64 << 20) + (64 << 10);
/// The largest ranged read one message asks for.
pub const MAX_READ_BYTES: u32 = 8 << 20;
/// The most bytes of one upload write message (larger writes are split).
pub const MAX_WRITE_CHUNK_BYTES: usize = 4 << 20;
/// The longest string field (object names, messages, tokens).
pub const MAX_STRING_BYTES: usize = 4096;

/// What a client asks the serving process for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A backup into the client's repository, whose operations the client answers.
    Backup {
        /// The backup's options, `crate::backup::BackupOptions` serialised as JSON (at
        /// most [`MAX_STRING_BYTES`]; the serving process deserialises and checks them).
        options: String,
        /// The client's repository enforces create-only puts.
        create_only: bool,
        /// Where the client's repository is, for messages.
        location: String,
    },
    /// The database's status; with `forecast`, the client answers read operations on
    /// its repository for the forecast of a differential.
    Status {
        forecast: bool,
        create_only: bool,
        location: String,
    },
}

/// One message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Client -> server, first: the magic, the version, a bearer token (empty on a local
    /// socket) and the request.
    Hello {
        version: u16,
        token: String,
        request: Request,
    },
    /// Server -> client: accepted.
    Welcome {
        version: u16,
    },
    /// Server -> client: refused (bad token, role, version), one sentence.
    Refused {
        message: String,
    },
    // Server -> client: object operations on the client's repository.
    List {
        prefix: String,
    },
    Stat {
        name: String,
    },
    Open {
        name: String,
    },
    Read {
        handle: u32,
        offset: u64,
        len: u32,
    },
    /// No reply.
    Close {
        handle: u32,
    },
    Put {
        name: String,
        create_only: bool,
        bytes: Vec<u8>,
    },
    UploadBegin {
        name: String,
    },
    /// No reply: an error is kept and given by `UploadFinish`.
    UploadWrite {
        handle: u32,
        bytes: Vec<u8>,
    },
    UploadFinish {
        handle: u32,
    },
    /// No reply.
    UploadAbort {
        handle: u32,
    },
    Delete {
        name: String,
    },
    Staged,
    DeleteStaged {
        name: String,
    },
    /// No reply: the backup's work ahead (`start`) or done since the last one.
    Progress {
        start: bool,
        units: u64,
        bytes: u64,
    },
    /// Server -> client, last: the report as JSON.
    Done {
        json: String,
    },
    /// Server -> client, last: the request failed (one sentence).
    Failed {
        message: String,
    },
    // Client -> server: replies.
    Ok,
    Err {
        kind: u8,
        message: String,
    },
    Listing {
        objects: Vec<(String, u64)>,
    },
    Size {
        size: Option<u64>,
    },
    Handle {
        handle: u32,
        size: u64,
    },
    Data {
        bytes: Vec<u8>,
    },
    StagedList {
        items: Vec<(String, String)>,
    },
}

mod tag {
    pub const HELLO: u8 = 1;
    pub const WELCOME: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const LIST: u8 = 10;
    pub const STAT: u8 = 11;
    pub const OPEN: u8 = 12;
    pub const READ: u8 = 13;
    pub const CLOSE: u8 = 14;
    pub const PUT: u8 = 15;
    pub const UPLOAD_BEGIN: u8 = 16;
    pub const UPLOAD_WRITE: u8 = 17;
    pub const UPLOAD_FINISH: u8 = 18;
    pub const UPLOAD_ABORT: u8 = 19;
    pub const DELETE: u8 = 20;
    pub const STAGED: u8 = 21;
    pub const DELETE_STAGED: u8 = 22;
    pub const PROGRESS: u8 = 23;
    pub const DONE: u8 = 30;
    pub const FAILED: u8 = 31;
    pub const OK: u8 = 40;
    pub const ERR: u8 = 41;
    pub const LISTING: u8 = 42;
    pub const SIZE: u8 = 43;
    pub const HANDLE: u8 = 44;
    pub const DATA: u8 = 45;
    pub const STAGED_LIST: u8 = 46;
    pub const REQ_BACKUP: u8 = 1;
    pub const REQ_STATUS: u8 = 2;
}

/// Appends fields to a frame body.
struct Enc<'a>(&'a mut Vec<u8>);

impl Enc<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    fn str(&mut self, s: &str) {
        // Longer strings are cut at a character boundary (messages); names never are.
        let mut end = s.len().min(MAX_STRING_BYTES);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.0.extend_from_slice(&s.as_bytes()[..end]);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
}

/// Reads fields from a frame body, every read bounds-checked.
struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Why a frame's body is not a message; each message is one phrase.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireFault {
    #[error("the message ends {0} bytes short")]
    Short(usize),
    #[error("a flag is {0}, not 0 or 1")]
    Flag(u8),
    #[error("a string of {0} bytes is longer than allowed")]
    LongString(usize),
    #[error("a string is not UTF-8")]
    StringUtf8,
    #[error("a list of {0} items does not fit in the message")]
    Count(usize),
    #[error("{0} bytes follow the message")]
    Trailing(usize),
    #[error("the peer does not speak the pagevault backup protocol")]
    NotOurs,
    #[error("unknown request type {0}")]
    Request(u8),
    #[error("a report is not UTF-8")]
    ReportUtf8,
    #[error("a missing object with a size")]
    MissingWithSize,
    #[error("unknown message type {0}")]
    Message(u8),
}

type DResult<T> = std::result::Result<T, WireFault>;

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> DResult<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(WireFault::Short(n - (self.buf.len() - self.pos)));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> DResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> DResult<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> DResult<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> DResult<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn bool(&mut self) -> DResult<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(WireFault::Flag(b)),
        }
    }
    fn str(&mut self) -> DResult<String> {
        let n = self.u16()? as usize;
        if n > MAX_STRING_BYTES {
            return Err(WireFault::LongString(n));
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| WireFault::StringUtf8)
    }
    fn bytes(&mut self) -> DResult<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    /// A count of items each at least `min_item_bytes` long: checked against what is left
    /// before anything is allocated.
    fn count(&mut self, min_item_bytes: usize) -> DResult<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item_bytes) > self.buf.len() - self.pos {
            return Err(WireFault::Count(n));
        }
        Ok(n)
    }
    fn end(&self) -> DResult<()> {
        if self.pos != self.buf.len() {
            return Err(WireFault::Trailing(self.buf.len() - self.pos));
        }
        Ok(())
    }
}

impl Msg {
    /// The message's body (type and fields), without the frame.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(64);
        self.encode_body_into(&mut body);
        body
    }

    /// Appends the message's body to `out`.
    fn encode_body_into(&self, out: &mut Vec<u8>) {
        let mut e = Enc(out);
        match self {
            Msg::Hello {
                version,
                token,
                request,
            } => {
                e.u8(tag::HELLO);
                e.0.extend_from_slice(&HELLO_MAGIC);
                e.u16(*version);
                e.str(token);
                match request {
                    Request::Backup {
                        options,
                        create_only,
                        location,
                    } => {
                        e.u8(tag::REQ_BACKUP);
                        e.str(options);
                        e.bool(*create_only);
                        e.str(location);
                    }
                    Request::Status {
                        forecast,
                        create_only,
                        location,
                    } => {
                        e.u8(tag::REQ_STATUS);
                        e.bool(*forecast);
                        e.bool(*create_only);
                        e.str(location);
                    }
                }
            }
            Msg::Welcome { version } => {
                e.u8(tag::WELCOME);
                e.u16(*version);
            }
            Msg::Refused { message } => {
                e.u8(tag::REFUSED);
                e.str(message);
            }
            Msg::List { prefix } => {
                e.u8(tag::LIST);
                e.str(prefix);
            }
            Msg::Stat { name } => {
                e.u8(tag::STAT);
                e.str(name);
            }
            Msg::Open { name } => {
                e.u8(tag::OPEN);
                e.str(name);
            }
            Msg::Read {
                handle,
                offset,
                len,
            } => {
                e.u8(tag::READ);
                e.u32(*handle);
                e.u64(*offset);
                e.u32(*len);
            }
            Msg::Close { handle } => {
                e.u8(tag::CLOSE);
                e.u32(*handle);
            }
            Msg::Put {
                name,
                create_only,
                bytes,
            } => {
                e.u8(tag::PUT);
                e.str(name);
                e.bool(*create_only);
                e.bytes(bytes);
            }
            Msg::UploadBegin { name } => {
                e.u8(tag::UPLOAD_BEGIN);
                e.str(name);
            }
            Msg::UploadWrite { handle, bytes } => {
                e.u8(tag::UPLOAD_WRITE);
                e.u32(*handle);
                e.bytes(bytes);
            }
            Msg::UploadFinish { handle } => {
                e.u8(tag::UPLOAD_FINISH);
                e.u32(*handle);
            }
            Msg::UploadAbort { handle } => {
                e.u8(tag::UPLOAD_ABORT);
                e.u32(*handle);
            }
            Msg::Delete { name } => {
                e.u8(tag::DELETE);
                e.str(name);
            }
            Msg::Staged => e.u8(tag::STAGED),
            Msg::DeleteStaged { name } => {
                e.u8(tag::DELETE_STAGED);
                e.str(name);
            }
            Msg::Progress {
                start,
                units,
                bytes,
            } => {
                e.u8(tag::PROGRESS);
                e.bool(*start);
                e.u64(*units);
                e.u64(*bytes);
            }
            Msg::Done { json } => {
                e.u8(tag::DONE);
                e.bytes(json.as_bytes());
            }
            Msg::Failed { message } => {
                e.u8(tag::FAILED);
                e.str(message);
            }
            Msg::Ok => e.u8(tag::OK),
            Msg::Err { kind, message } => {
                e.u8(tag::ERR);
                e.u8(*kind);
                e.str(message);
            }
            Msg::Listing { objects } => {
                e.u8(tag::LISTING);
                e.u32(objects.len() as u32);
                for (name, size) in objects {
                    e.str(name);
                    e.u64(*size);
                }
            }
            Msg::Size { size } => {
                e.u8(tag::SIZE);
                e.bool(size.is_some());
                e.u64(size.unwrap_or(0));
            }
            Msg::Handle { handle, size } => {
                e.u8(tag::HANDLE);
                e.u32(*handle);
                e.u64(*size);
            }
            Msg::Data { bytes } => {
                e.u8(tag::DATA);
                e.bytes(bytes);
            }
            Msg::StagedList { items } => {
                e.u8(tag::STAGED_LIST);
                e.u32(items.len() as u32);
                for (a, b) in items {
                    e.str(a);
                    e.str(b);
                }
            }
        }
    }

    /// Decodes a frame body; any defect is a fault.
    pub fn decode_body(body: &[u8]) -> DResult<Msg> {
        let mut d = Dec { buf: body, pos: 0 };
        let m = match d.u8()? {
            tag::HELLO => {
                if d.take(8)? != HELLO_MAGIC {
                    return Err(WireFault::NotOurs);
                }
                let version = d.u16()?;
                if version != PROTOCOL_VERSION {
                    // The rest may be laid out differently: stop here.
                    return Ok(Msg::Hello {
                        version,
                        token: String::new(),
                        request: Request::Status {
                            forecast: false,
                            create_only: false,
                            location: String::new(),
                        },
                    });
                }
                let token = d.str()?;
                let request = match d.u8()? {
                    tag::REQ_BACKUP => Request::Backup {
                        options: d.str()?,
                        create_only: d.bool()?,
                        location: d.str()?,
                    },
                    tag::REQ_STATUS => Request::Status {
                        forecast: d.bool()?,
                        create_only: d.bool()?,
                        location: d.str()?,
                    },
                    t => return Err(WireFault::Request(t)),
                };
                Msg::Hello {
                    version,
                    token,
                    request,
                }
            }
            tag::WELCOME => Msg::Welcome { version: d.u16()? },
            tag::REFUSED => Msg::Refused { message: d.str()? },
            tag::LIST => Msg::List { prefix: d.str()? },
            tag::STAT => Msg::Stat { name: d.str()? },
            tag::OPEN => Msg::Open { name: d.str()? },
            tag::READ => Msg::Read {
                handle: d.u32()?,
                offset: d.u64()?,
                len: d.u32()?,
            },
            tag::CLOSE => Msg::Close { handle: d.u32()? },
            tag::PUT => Msg::Put {
                name: d.str()?,
                create_only: d.bool()?,
                bytes: d.bytes()?,
            },
            tag::UPLOAD_BEGIN => Msg::UploadBegin { name: d.str()? },
            tag::UPLOAD_WRITE => Msg::UploadWrite {
                handle: d.u32()?,
                bytes: d.bytes()?,
            },
            tag::UPLOAD_FINISH => Msg::UploadFinish { handle: d.u32()? },
            tag::UPLOAD_ABORT => Msg::UploadAbort { handle: d.u32()? },
            tag::DELETE => Msg::Delete { name: d.str()? },
            tag::STAGED => Msg::Staged,
            tag::DELETE_STAGED => Msg::DeleteStaged { name: d.str()? },
            tag::PROGRESS => Msg::Progress {
                start: d.bool()?,
                units: d.u64()?,
                bytes: d.u64()?,
            },
            tag::DONE => Msg::Done {
                json: String::from_utf8(d.bytes()?).map_err(|_| WireFault::ReportUtf8)?,
            },
            tag::FAILED => Msg::Failed { message: d.str()? },
            tag::OK => Msg::Ok,
            tag::ERR => Msg::Err {
                kind: d.u8()?,
                message: d.str()?,
            },
            tag::LISTING => {
                let n = d.count(10)?;
                let mut objects = Vec::with_capacity(n);
                for _ in 0..n {
                    objects.push((d.str()?, d.u64()?));
                }
                Msg::Listing { objects }
            }
            tag::SIZE => {
                let some = d.bool()?;
                let size = d.u64()?;
                if !some && size != 0 {
                    return Err(WireFault::MissingWithSize);
                }
                Msg::Size {
                    size: some.then_some(size),
                }
            }
            tag::HANDLE => Msg::Handle {
                handle: d.u32()?,
                size: d.u64()?,
            },
            tag::DATA => Msg::Data { bytes: d.bytes()? },
            tag::STAGED_LIST => {
                let n = d.count(4)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push((d.str()?, d.str()?));
                }
                Msg::StagedList { items }
            }
            t => return Err(WireFault::Message(t)),
        };
        d.end()?;
        Ok(m)
    }
}

/// Replaces `out` with `msg` as one frame (length, body, CRC), reusing its allocation.
pub fn encode_frame(msg: &Msg, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    msg.encode_body_into(out);
    seal(out);
}

/// Fills in the length of the frame in `frame` (its body follows 4 reserved bytes) and
/// appends the body's CRC.
fn seal(frame: &mut Vec<u8>) {
    let body_len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&body_len.to_le_bytes());
    let crc = crate::format::crc32(&frame[4..]);
    frame.extend_from_slice(&crc.to_le_bytes());
}

/// Writes `msg` as one frame (one `write_all`, then a flush).
pub fn write_frame(w: &mut dyn Write, msg: &Msg) -> io::Result<()> {
    let mut frame = Vec::new();
    encode_frame(msg, &mut frame);
    w.write_all(&frame)?;
    w.flush()
}

/// An upload's [`Msg::UploadWrite`] frame built in place: the bytes are appended behind
/// room for the frame's header, so they are copied once on their way out, not into a
/// message, then a body, then a frame (the compressing workers' path, issue 17). The
/// frame is the same bytes [`encode_frame`] makes of the message.
pub struct UploadFrame {
    buf: Vec<u8>,
}

/// Frame length, type, handle, blob length.
const UPLOAD_HEADER_BYTES: usize = 4 + 1 + 4 + 4;

impl UploadFrame {
    pub fn new(handle: u32) -> UploadFrame {
        let mut buf = Vec::new();
        buf.extend_from_slice(&[0; 4]);
        buf.push(tag::UPLOAD_WRITE);
        buf.extend_from_slice(&handle.to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        UploadFrame { buf }
    }

    /// The bytes gathered so far.
    pub fn len(&self) -> usize {
        self.buf.len() - UPLOAD_HEADER_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends bytes; the caller keeps [`Self::len`] at most [`MAX_WRITE_CHUNK_BYTES`].
    pub fn push(&mut self, bytes: &[u8]) {
        debug_assert!(self.len() + bytes.len() <= MAX_WRITE_CHUNK_BYTES);
        self.buf.extend_from_slice(bytes);
    }

    /// The whole frame of the bytes gathered (sent next, then [`Self::clear`]).
    pub fn seal(&mut self) -> &[u8] {
        let n = self.len() as u32;
        self.buf[9..13].copy_from_slice(&n.to_le_bytes());
        seal(&mut self.buf);
        &self.buf
    }

    /// Empties the frame for the next bytes, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.truncate(UPLOAD_HEADER_BYTES);
    }
}

/// Checks a frame's body against the limit and its CRC; the body is what follows the
/// length and precedes the CRC.
pub fn check_frame(len: u32, max_bytes: u32) -> io::Result<usize> {
    if len == 0 || len > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes (at most {max_bytes} allowed here)"),
        ));
    }
    Ok(len as usize)
}

/// Reads one frame of at most `max_bytes` and decodes it.
pub fn read_frame(r: &mut dyn Read, max_bytes: u32) -> io::Result<Msg> {
    let mut buf = Vec::new();
    let body = read_raw_frame(r, max_bytes, &mut buf)?;
    decode_frame_body(body)
}

/// Reads one frame of at most `max_bytes` into `buf` (reused from frame to frame, so a
/// stream of uploads does not allocate and fault in a megabyte per frame): the body and
/// CRC, not yet checked.
pub fn read_raw_frame<'b>(
    r: &mut dyn Read,
    max_bytes: u32,
    buf: &'b mut Vec<u8>,
) -> io::Result<&'b [u8]> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let n = check_frame(u32::from_le_bytes(len), max_bytes)? + 4;
    if buf.len() < n {
        buf.resize(n, 0);
    }
    r.read_exact(&mut buf[..n])?;
    Ok(&buf[..n])
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Checks `body ++ crc` (a frame without its length); the body.
fn checked_body(body_and_crc: &[u8]) -> io::Result<&[u8]> {
    if body_and_crc.len() < 5 {
        return Err(bad("a frame shorter than its type and checksum".into()));
    }
    let (body, crc) = body_and_crc.split_at(body_and_crc.len() - 4);
    let want = u32::from_le_bytes(crc.try_into().unwrap());
    if crate::format::crc32(body) != want {
        return Err(bad("a frame whose checksum does not match".into()));
    }
    Ok(body)
}

/// Decodes `body ++ crc` (a frame without its length).
pub fn decode_frame_body(body_and_crc: &[u8]) -> io::Result<Msg> {
    let body = checked_body(body_and_crc)?;
    Msg::decode_body(body).map_err(|w| bad(format!("a malformed message: {w}")))
}

/// A frame as the client reads it: an upload's bytes borrowed from the frame (written
/// straight to the repository from the reused read buffer), any other message decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    UploadWrite { handle: u32, bytes: &'a [u8] },
    Msg(Msg),
}

/// Decodes `body ++ crc` like [`decode_frame_body`], with the same checks, but an
/// upload's bytes are not copied.
pub fn decode_incoming(body_and_crc: &[u8]) -> io::Result<Incoming<'_>> {
    let body = checked_body(body_and_crc)?;
    if body[0] != tag::UPLOAD_WRITE {
        return Msg::decode_body(body)
            .map(Incoming::Msg)
            .map_err(|w| bad(format!("a malformed message: {w}")));
    }
    let mut d = Dec { buf: body, pos: 1 };
    let write = (|| {
        let handle = d.u32()?;
        let n = d.u32()? as usize;
        let bytes = d.take(n)?;
        d.end()?;
        Ok(Incoming::UploadWrite { handle, bytes })
    })();
    write.map_err(|w: WireFault| bad(format!("a malformed message: {w}")))
}

/// An [`io::ErrorKind`] as one byte on the wire (`Err` replies), and back.
pub fn kind_code(k: io::ErrorKind) -> u8 {
    use io::ErrorKind::*;
    match k {
        NotFound => 1,
        AlreadyExists => 2,
        PermissionDenied => 3,
        InvalidData => 4,
        WouldBlock => 5,
        UnexpectedEof => 6,
        InvalidInput => 7,
        StorageFull => 8,
        _ => 0,
    }
}

pub fn kind_of(code: u8) -> io::ErrorKind {
    use io::ErrorKind::*;
    match code {
        1 => NotFound,
        2 => AlreadyExists,
        3 => PermissionDenied,
        4 => InvalidData,
        5 => WouldBlock,
        6 => UnexpectedEof,
        7 => InvalidInput,
        8 => StorageFull,
        _ => Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Msg> {
        vec![
            Msg::Hello {
                version: PROTOCOL_VERSION,
                token: "tok".into(),
                request: Request::Backup {
                    options: r#"{"kind":"differential","fallback_to_full":true}"#.into(),
                    create_only: true,
                    location: "/r".into(),
                },
            },
            Msg::Hello {
                version: PROTOCOL_VERSION,
                token: String::new(),
                request: Request::Status {
                    forecast: true,
                    create_only: false,
                    location: "s3://b/p".into(),
                },
            },
            Msg::Welcome { version: 1 },
            Msg::Refused {
                message: "no".into(),
            },
            Msg::List { prefix: "m".into() },
            Msg::Stat { name: "x".into() },
            Msg::Open { name: "x".into() },
            Msg::Read {
                handle: 1,
                offset: 2,
                len: 3,
            },
            Msg::Close { handle: 9 },
            Msg::Put {
                name: "n".into(),
                create_only: true,
                bytes: vec![1, 2, 3],
            },
            Msg::UploadBegin { name: "u".into() },
            Msg::UploadWrite {
                handle: 4,
                bytes: vec![0; 100],
            },
            Msg::UploadFinish { handle: 4 },
            Msg::UploadAbort { handle: 4 },
            Msg::Delete { name: "d".into() },
            Msg::Staged,
            Msg::DeleteStaged { name: "s".into() },
            Msg::Progress {
                start: true,
                units: 5,
                bytes: 6,
            },
            Msg::Done { json: "{}".into() },
            Msg::Failed {
                message: "f".into(),
            },
            Msg::Ok,
            Msg::Err {
                kind: 1,
                message: "e".into(),
            },
            Msg::Listing {
                objects: vec![("a".into(), 1), ("b".into(), 2)],
            },
            Msg::Size { size: Some(7) },
            Msg::Size { size: None },
            Msg::Handle { handle: 1, size: 2 },
            Msg::Data { bytes: vec![9; 10] },
            Msg::StagedList {
                items: vec![("a".into(), "b".into())],
            },
        ]
    }

    #[test]
    fn every_message_round_trips_and_every_truncation_or_flip_is_refused() {
        for m in all() {
            let mut frame = Vec::new();
            write_frame(&mut frame, &m).unwrap();
            let back = read_frame(&mut &frame[..], MAX_FRAME_BYTES).unwrap();
            assert_eq!(back, m);
            for cut in 0..frame.len() {
                assert!(read_frame(&mut &frame[..cut], MAX_FRAME_BYTES).is_err());
            }
            for i in 4..frame.len() {
                for bit in 0..8 {
                    let mut f = frame.clone();
                    f[i] ^= 1 << bit;
                    assert!(read_frame(&mut &f[..], MAX_FRAME_BYTES).is_err(), "{m:?}");
                }
            }
        }
    }

    #[test]
    fn an_upload_frame_built_in_place_is_the_message_and_reads_back_borrowed() {
        let mut f = UploadFrame::new(7);
        for round in 0..2u8 {
            f.clear();
            f.push(&[round; 5]);
            f.push(b"abc");
            let want = Msg::UploadWrite {
                handle: 7,
                bytes: [&[round; 5][..], b"abc"].concat(),
            };
            let mut frame = Vec::new();
            encode_frame(&want, &mut frame);
            assert_eq!(f.seal(), &frame[..]);
            let mut buf = Vec::new();
            let body = read_raw_frame(&mut &frame[..], MAX_FRAME_BYTES, &mut buf).unwrap();
            assert_eq!(
                decode_incoming(body).unwrap(),
                Incoming::UploadWrite {
                    handle: 7,
                    bytes: &[&[round; 5][..], b"abc"].concat()
                }
            );
        }
        // Every flip of a borrowed upload is refused too, and a short blob.
        f.clear();
        f.push(b"xyz");
        let frame = f.seal().to_vec();
        for i in 4..frame.len() {
            let mut g = frame.clone();
            g[i] ^= 1;
            assert!(decode_incoming(&g[4..]).is_err());
        }
        for m in all() {
            let mut frame = Vec::new();
            encode_frame(&m, &mut frame);
            let back = match decode_incoming(&frame[4..]).unwrap() {
                Incoming::UploadWrite { handle, bytes } => Msg::UploadWrite {
                    handle,
                    bytes: bytes.to_vec(),
                },
                Incoming::Msg(m) => m,
            };
            assert_eq!(back, m);
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_before_allocating() {
        let frame = (MAX_HELLO_FRAME_BYTES + 1).to_le_bytes();
        let e = read_frame(&mut &frame[..], MAX_HELLO_FRAME_BYTES).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        // A list count larger than the message is refused before allocating.
        let mut body = vec![tag::LISTING];
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Msg::decode_body(&body).is_err());
    }
}
