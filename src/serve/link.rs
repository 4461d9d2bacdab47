//! One connection of the backup stream, shared by the threads of a backup: a call is a
//! frame out and its reply back under one lock, so replies never interleave.
//!
//! Keeps true: after any failure in the middle of an exchange (a timeout, a reset, a
//! malformed frame) the link is broken for good and every later call fails at once with
//! `BrokenPipe`, which is never retried: a reply that arrives late can never be taken for
//! the answer to another request.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::repo::remote::Channel;

use super::wire::{self, Msg};

/// A byte stream of the listener or a client: a local socket, TCP, or TLS over TCP.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A shared connection.
pub struct Link {
    stream: Mutex<Box<dyn Stream>>,
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
            stream: Mutex::new(stream),
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

    /// Reads the next frame (for the side that waits for requests).
    pub fn receive(&self) -> io::Result<Msg> {
        if self.is_broken() {
            return Err(broken());
        }
        let mut s = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        let r = wire::read_frame(&mut *s, self.max_frame_bytes);
        self.guard(r)
    }
}

impl Channel for Link {
    fn call(&self, msg: &Msg) -> io::Result<Msg> {
        if self.is_broken() {
            return Err(broken());
        }
        let mut s = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        let r = wire::write_frame(&mut *s, msg)
            .and_then(|()| wire::read_frame(&mut *s, self.max_frame_bytes));
        self.guard(r)
    }

    fn send(&self, msg: &Msg) -> io::Result<()> {
        if self.is_broken() {
            return Err(broken());
        }
        let mut s = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        let r = wire::write_frame(&mut *s, msg);
        self.guard(r)
    }
}
