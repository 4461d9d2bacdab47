//! What the binary shows: exit codes, lines and JSON on stdout, one-line errors on
//! stderr, and progress bars only when stderr is a terminal.

use std::io::{self, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

/// The documented exit codes (see docs/cli.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success = 0,
    /// 1: the operation failed.
    Failed = 1,
    /// 2: the operation succeeded but the consistency check could not run.
    CheckCouldNotRun = 2,
    /// 3: the check found inconsistencies.
    Inconsistent = 3,
    /// 64: a usage error.
    Usage = 64,
}

/// Why a command did not complete: a library error, or stdout went away.
#[derive(Debug)]
pub enum Failure {
    Lib(pagevault::Error),
    Stdout(io::Error),
}

impl From<pagevault::Error> for Failure {
    fn from(e: pagevault::Error) -> Self {
        Failure::Lib(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Stdout(e)
    }
}

/// Standard output, written through so a closed pipe is seen as an error we handle.
pub struct Out {
    stdout: io::StdoutLock<'static>,
    decided: Exit,
}

impl Out {
    pub fn new() -> Out {
        Out {
            stdout: io::stdout().lock(),
            decided: Exit::Success,
        }
    }

    /// Records the exit code a command decided before printing its report, so a closed
    /// stdout (`pagevault check DB | true`) cannot turn a failure into 0.
    pub fn decide(&mut self, code: Exit) {
        self.decided = code;
    }

    /// The exit code decided so far (0 when none was).
    pub fn decided(&self) -> Exit {
        self.decided
    }

    /// Writes one line.
    pub fn line(&mut self, args: std::fmt::Arguments<'_>) -> io::Result<()> {
        self.stdout.write_fmt(args)?;
        self.stdout.write_all(b"\n")
    }

    /// Writes one JSON document and a newline.
    pub fn json<T: serde::Serialize>(&mut self, value: &T) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.stdout, value).map_err(io::Error::from)?;
        self.stdout.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }
}

/// `writeln!`-like: `say!(out, "x = {}", x)?`.
#[macro_export]
macro_rules! say {
    ($out:expr, $($arg:tt)*) => { $out.line(format_args!($($arg)*)) };
}

/// A progress bar on stderr when it is a terminal, nothing otherwise.
pub struct Bar(Option<ProgressBar>, bool);

impl Bar {
    /// A bar counting `unit` ("bytes" shows sizes and rates).
    pub fn new(what: &'static str, bytes: bool) -> Bar {
        if !io::stderr().is_terminal() {
            return Bar(None, bytes);
        }
        let bar = ProgressBar::hidden();
        let template = if bytes {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        Bar(Some(bar), bytes)
    }
}

impl pagevault::progress::Progress for Bar {
    fn start(&self, units: u64, bytes: u64) {
        if let Some(b) = &self.0 {
            b.set_length(if self.1 { bytes } else { units });
        }
    }
    fn advance(&self, units: u64, bytes: u64) {
        if let Some(b) = &self.0 {
            b.inc(if self.1 { bytes } else { units });
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
