//! One connection of the backup stream, shared by the threads of a backup: a call is a
//! frame out and its reply back under one lock, so replies never interleave.
//!
//! Keeps true: after any failure in the middle of an exchange (a timeout, a reset, a
//! malformed frame) the link is broken for good and every later call fails at once with
//! `BrokenPipe`, which is never retried: a reply that arrives late can never be taken for
//! the answer to another request.

use std::io::{self, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::serve::remote::Channel;

use crate::format::wire::{self, Incoming, Msg};

/// A byte stream of the listener or a client: a local socket, TCP, or TLS over TCP.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A socket under TLS, read through a buffer: rustls asks for at most 4 KiB per read, so
/// a stream of uploads would otherwise cost a system call (and a wake-up) per 4 KiB.
/// Writes go straight to the socket (rustls gathers its records into one `writev`).
pub struct BufferedSocket<S: Read + Write> {
    inner: BufReader<S>,
}

/// Bytes a [`BufferedSocket`] reads at once.
const SOCKET_READ_BUFFER_BYTES: usize = 256 << 10;

impl<S: Read + Write> BufferedSocket<S> {
    pub fn new(socket: S) -> BufferedSocket<S> {
        BufferedSocket {
            inner: BufReader::with_capacity(SOCKET_READ_BUFFER_BYTES, socket),
        }
    }
}

impl<S: Read + Write> Read for BufferedSocket<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<S: Read + Write> Write for BufferedSocket<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.get_mut().write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.inner.get_mut().write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.get_mut().flush()
    }
}

/// The stream and the buffers its frames are encoded into and read into, reused from
/// frame to frame.
struct Io {
    stream: Box<dyn Stream>,
    out: Vec<u8>,
    input: Vec<u8>,
}

/// A shared connection.
pub struct Link {
    io: Mutex<Io>,
    broken: AtomicBool,
    max_frame_bytes: u32,
}

fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the connection to the other side of the backup is lost",
    )
}

impl Link {
    pub fn new(stream: Box<dyn Stream>) -> Link {
        Link {
            io: Mutex::new(Io {
                stream,
                out: Vec::new(),
                input: Vec::new(),
            }),
            broken: AtomicBool::new(false),
            max_frame_bytes: wire::MAX_FRAME_BYTES,
        }
    }

    /// True once an exchange failed.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    fn guard<T>(&self, r: io::Result<T>) -> io::Result<T> {
        r.map_err(|e| {
            self.broken.store(true, Ordering::SeqCst);
            let kind = match e.kind() {
                // Never transient from here on: the link cannot be used again.
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                    return io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the other side of the backup did not answer in time",
                    )
                }
                io::ErrorKind::InvalidData => io::ErrorKind::InvalidData,
                _ => io::ErrorKind::BrokenPipe,
            };
            io::Error::new(kind, format!("the backup connection failed: {e}"))
        })
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, Io>> {
        if self.is_broken() {
            return Err(broken());
        }
        Ok(self.io.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads the next frame (for the side that waits for requests).
    pub fn receive(&self) -> io::Result<Msg> {
        let mut io = self.lock()?;
        let Io { stream, input, .. } = &mut *io;
        let r = read_msg(stream, self.max_frame_bytes, input);
        self.guard(r)
    }

    /// Reads the next frame into `buf` (the caller's, reused from frame to frame) and
    /// decodes it, an upload's bytes left in `buf` (for the client, which alone reads
    /// its link).
    pub fn receive_into<'b>(&self, buf: &'b mut Vec<u8>) -> io::Result<Incoming<'b>> {
        let mut io = self.lock()?;
        let r = wire::read_raw_frame(&mut *io.stream, self.max_frame_bytes, buf)
            .and_then(wire::decode_incoming);
        self.guard(r)
    }

    fn write(&self, io: &mut Io, msg: &Msg) -> io::Result<()> {
        let Io { stream, out, .. } = io;
        wire::encode_frame(msg, out);
        let r = stream.write_all(out).and_then(|()| stream.flush());
        if out.capacity() > 64 << 10 {
            *out = Vec::new(); // a manifest or a read's data: not kept
        }
        r
    }
}

/// Reads and decodes one frame through `input`, which keeps at most an upload frame's
/// worth of memory between frames.
fn read_msg(stream: &mut Box<dyn Stream>, max: u32, input: &mut Vec<u8>) -> io::Result<Msg> {
    let r = wire::read_raw_frame(&mut **stream, max, input).and_then(wire::decode_frame_body);
    if input.len() > wire::MAX_WRITE_CHUNK_BYTES + 64 {
        *input = Vec::new();
    }
    r
}

impl Channel for Link {
    fn call(&self, msg: &Msg) -> io::Result<Msg> {
        let mut io = self.lock()?;
        let r = self.write(&mut io, msg).and_then(|()| {
            let Io { stream, input, .. } = &mut *io;
            read_msg(stream, self.max_frame_bytes, input)
        });
        self.guard(r)
    }

    fn send(&self, msg: &Msg) -> io::Result<()> {
        let mut io = self.lock()?;
        let r = self.write(&mut io, msg);
        self.guard(r)
    }

    fn send_frame(&self, frame: &[u8]) -> io::Result<()> {
        let mut io = self.lock()?;
        let r = io.stream.write_all(frame).and_then(|()| io.stream.flush());
        self.guard(r)
    }
}
