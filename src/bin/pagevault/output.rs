//! What the binary shows: exit codes, lines and JSON on stdout, one-line errors on
//! stderr, and progress bars only when stderr is a terminal.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Why a command did not complete: a library error, stdout went away, a bad command
/// line found after parsing (exit 64), or a failure the CLI words itself (exit 1).
#[derive(Debug)]
pub enum Failure {
    Lib(pagevault::Error),
    Stdout(io::Error),
    /// A usage error: one sentence naming the flag or argument (exit 64).
    Usage(String),
    /// The operation failed: one sentence naming the path or id (exit 1).
    Msg(String),
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
    /// Whether a command decided its code ([`Out::decide`]).
    has_decided: bool,
}

impl Out {
    pub fn new() -> Out {
        Out {
            stdout: io::stdout().lock(),
            decided: Exit::Success,
            has_decided: false,
        }
    }

    /// Records the exit code a command decided before printing its report, so a closed
    /// stdout (`pagevault check DB | true`) cannot turn a failure into 0.
    pub fn decide(&mut self, code: Exit) {
        self.decided = code;
        self.has_decided = true;
    }

    /// The exit code a command decided, if it did: its work is done whatever becomes of
    /// its report.
    pub fn decided_code(&self) -> Option<Exit> {
        self.has_decided.then_some(self.decided)
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

    /// Writes bytes as they are.
    pub fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stdout.write_all(bytes)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }
}

/// A serde enum as its JSON string (`"copy_only"`, `"untrusted_restored"`).
pub fn name_of<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A restored database's origin in words: `restored copy of "db" (id X) from set S at
/// LSN N, 2026-11-29T12:00:00.000Z`.
pub fn origin(o: &pagevault::Origin) -> String {
    let db = match &o.database_name {
        Some(n) => format!("{n:?} (id {})", pagevault::format_backup_id(o.database_id)),
        None => format!("database {}", pagevault::format_backup_id(o.database_id)),
    };
    let what = match o.kind {
        pagevault::OriginKind::RestoredCopy => "restored copy of",
        pagevault::OriginKind::KeptIdentity => "restored keeping the identity of",
    };
    format!(
        "{what} {db} from set {} at LSN {}, {}",
        pagevault::format_backup_id(o.backup_id),
        o.snapshot_lsn,
        pagevault::rfc3339(o.restored_unix_ms)
    )
}

/// `writeln!`-like: `say!(out, "x = {}", x)?`.
#[macro_export]
macro_rules! say {
    ($out:expr, $($arg:tt)*) => { $out.line(format_args!($($arg)*)) };
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q`: no progress bars, no spinners.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether progress may be drawn: stderr is a terminal and `-q` was not given.
fn draw_progress() -> bool {
    !QUIET.load(Ordering::Relaxed) && io::stderr().is_terminal()
}

/// The rate of a bar in the units of the summaries: MB/s (10^6 bytes), or whole
/// `unit`s per second.
fn rate_style(template: &str, unit: Option<&'static str>) -> Option<ProgressStyle> {
    let style = ProgressStyle::with_template(template).ok()?;
    Some(
        style
            .with_key(
                "rate",
                move |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = match unit {
                        None => write!(w, "{:.0} MB/s", s.per_sec() / 1e6),
                        Some(u) => write!(w, "{:.0} {u}/s", s.per_sec()),
                    };
                },
            )
            .progress_chars("=> "),
    )
}

/// Sizes in MB (10^6 bytes) and the rate in MB/s, as the summaries print them.
const BYTES_TEMPLATE: &str =
    "{msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {rate} eta {eta}";
const UNITS_TEMPLATE: &str = "{msg} [{bar:30}] {pos}/{len} {rate} eta {eta}";

/// A progress bar on stderr when it is a terminal, nothing otherwise.
pub struct Bar(Option<ProgressBar>, bool);

impl Bar {
    /// A bar counting bytes (`unit` None: sizes and MB/s) or `unit`s.
    pub fn new(what: &'static str, bytes: bool) -> Bar {
        Bar::counting(what, if bytes { None } else { Some("pages") })
    }

    /// A bar counting bytes (`unit` None) or `unit`s.
    pub fn counting(what: &'static str, unit: Option<&'static str>) -> Bar {
        if !draw_progress() {
            return Bar(None, unit.is_none());
        }
        let bar = ProgressBar::hidden();
        let template = match unit {
            None => BYTES_TEMPLATE,
            Some(_) => UNITS_TEMPLATE,
        };
        if let Some(style) = rate_style(template, unit) {
            bar.set_style(style);
        }
        bar.set_message(what);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        Bar(Some(bar), unit.is_none())
    }
}

/// A spinner with the time elapsed, for steps the library reports no progress of
/// (verify, init, status scans); on a terminal only, cleared when dropped.
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    pub fn start(what: String) -> Spinner {
        if !draw_progress() {
            return Spinner(None);
        }
        let bar = ProgressBar::new_spinner();
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(what);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Spinner(Some(bar))
    }

    /// Changes the message.
    pub fn say(&self, what: String) {
        if let Some(b) = &self.0 {
            b.set_message(what);
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

impl pagevault::Progress for Bar {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// A terminal that keeps what is drawn.
    #[derive(Debug, Clone, Default)]
    struct Capture(Arc<Mutex<String>>);

    impl indicatif::TermLike for Capture {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn drawn(template: &str, unit: Option<&'static str>) -> String {
        let term = Capture::default();
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(10_000_000),
            indicatif::ProgressDrawTarget::term_like(Box::new(term.clone())),
        )
        .with_style(super::rate_style(template, unit).expect("template parses"));
        bar.set_position(5_000_000);
        bar.finish();
        let s = term.0.lock().unwrap().clone();
        s
    }

    #[test]
    fn bars_show_sizes_in_mb_and_rates_in_whole_units_per_second() {
        let bytes = drawn(super::BYTES_TEMPLATE, None);
        assert!(bytes.contains("5.00 MB/10.00 MB"), "{bytes}");
        assert!(bytes.contains(" MB/s"), "{bytes}");
        assert!(!bytes.contains("MiB"), "{bytes}");
        let pages = drawn(super::UNITS_TEMPLATE, Some("pages"));
        assert!(pages.contains("5000000/10000000"), "{pages}");
        let rate = pages.split(" pages/s").next().unwrap();
        let figure = rate.rsplit(' ').next().unwrap();
        assert!(figure.bytes().all(|b| b.is_ascii_digit()), "{pages}");
    }
}
