//! The `pagevault` admin CLI: a thin layer over the library. Parses flags (clap, with
//! `try_parse` so usage errors exit 64, not clap's 2), runs one subcommand, prints its
//! report (human or `--json`), and maps the outcome to the documented exit codes.
//! Errors are one line on stderr: `pagevault: <sentence naming the path>`. A closed
//! stdout (`pagevault status DB | head -1`) exits quietly, with the code the command had
//! decided before printing (0, or `check`'s 3: a closed pipe never hides a failure).

#![forbid(unsafe_code)]

mod archive;
mod backup;
mod bench;
mod check;
mod cli;
mod demo;
mod diff;
mod errors;
mod flags;
mod history;
mod import_files;
mod init;
mod list;
mod output;
mod rename;
mod repo;
mod restore;
mod restore_pages;
mod retention;
mod select;
mod serve;
mod status;
mod tools;
mod verify;
mod workload;

use std::io::{ErrorKind, IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use output::{Exit, Failure, Out};

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as K;
            // Help and version go to stdout and succeed; anything else is a usage error,
            // reported like every other error: one line beginning `pagevault: `.
            return match e.kind() {
                K::DisplayHelp | K::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::from(Exit::Success as u8)
                }
                _ => {
                    report(&usage_sentence(&e));
                    ExitCode::from(Exit::Usage as u8)
                }
            };
        }
    };
    // Whoever this process keeps out of a lock it holds is told what it is doing.
    if let Some(verb) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        pagevault::set_lock_note(&format!("pagevault {verb}"));
    }
    init_logging(cli.verbose, cli.quiet);
    output::set_quiet(cli.quiet);
    tracing::debug!("command line: {:?}", cli.command);
    let mut out = Out::new();
    let result = dispatch(cli.command, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    let code = match result {
        Ok(code) => code,
        // Quietly, but with the code the command had decided before its report went out.
        Err(Failure::Stdout(e)) if e.kind() == ErrorKind::BrokenPipe => out.decided(),
        // The work was done (a restore complete, a backup published) and its outcome
        // decided: the exit code says that outcome, the sentence that the report is lost.
        Err(Failure::Stdout(e)) => match out.decided_code() {
            Some(code) => {
                report(&format!(
                    "the command finished (exit code {}), but its report could not be written to standard output: {e}",
                    code as u8
                ));
                code
            }
            None => {
                report(&format!("cannot write to standard output: {e}"));
                Exit::Failed
            }
        },
        Err(Failure::Lib(e @ pagevault::Error::NoRepository { .. })) => {
            report(&format!(
                "{e}; create one with `pagevault repo init` (no verb but that one creates a repository)"
            ));
            Exit::Failed
        }
        Err(Failure::Lib(e @ pagevault::Error::NoDatabase { .. })) => {
            report(&format!("{e}; create one with `pagevault init`"));
            Exit::Failed
        }
        Err(Failure::Lib(e)) => {
            report(&errors::sentence(&e));
            Exit::Failed
        }
        Err(Failure::Msg(m)) => {
            report(&m);
            Exit::Failed
        }
        Err(Failure::Usage(m)) => {
            report(&m);
            Exit::Usage
        }
    };
    ExitCode::from(code as u8)
}

/// Runs the subcommand; `Err` is a failure to report on stderr.
fn dispatch(command: cli::Command, out: &mut Out) -> Result<Exit, Failure> {
    use cli::Command;
    match command {
        Command::Init(a) => init::run(a, out),
        Command::Rename(a) => rename::run(a, out),
        Command::Repo(a) => repo::run(a, out),
        Command::Workload(a) => workload::run(a, out),
        Command::ImportFiles(a) => import_files::run(a, out),
        Command::Export(a) => archive::export(a, out),
        Command::Import(a) => archive::import(a, out),
        Command::Copy(a) => archive::copy(a, out),
        Command::Status(a) => status::run(a, out),
        Command::Check(a) => check::run(a, out),
        Command::Backup(a) => backup::run(a, out),
        Command::Serve(a) => serve::run(a, out),
        Command::List(a) => list::run(a, out),
        Command::Verify(a) => verify::run(a, out),
        Command::Restore(a) => restore::run(a, out),
        Command::History(a) => history::run(a, out),
        Command::Diff(a) => diff::run(a, out),
        Command::Prune(a) => retention::run_prune(a, out),
        Command::Delete(a) => retention::run_delete(a, out),
        Command::Merge(a) => retention::run_merge(a, out),
        Command::Demo(a) => demo::run(a, out),
        Command::Bench(a) => bench::run(a, out),
        Command::Completions(a) => tools::completions(a, cli::Cli::command(), out),
        Command::Man => tools::man(cli::Cli::command(), out),
        Command::Version => tools::version(out),
    }
}

/// A clap error as one sentence: its first paragraph on one line, and where to read
/// more (`see `pagevault backup --help``).
fn usage_sentence(e: &clap::Error) -> String {
    use clap::error::ErrorKind as K;
    // The subcommand the user typed, if any: the first argument naming one.
    let cmd = cli::Cli::command();
    let sub = std::env::args().skip(1).find_map(|a| {
        cmd.get_subcommands()
            .find(|s| s.get_name() == a)
            .map(|s| s.get_name().to_string())
    });
    let help = match &sub {
        Some(s) => format!("see `pagevault {s} --help`"),
        None => "see `pagevault --help`".to_string(),
    };
    if e.kind() == K::DisplayHelpOnMissingArgumentOrSubcommand && sub.is_none() {
        return format!("no command given; {help}");
    }
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim())
        .collect();
    let sentence = first.join(" ");
    let mut sentence = sentence
        .strip_prefix("error: ")
        .unwrap_or(&sentence)
        .to_string();
    if sentence.contains("--repo <R>") && e.kind() == K::MissingRequiredArgument {
        sentence.push_str(" (or set PAGEVAULT_REPO)");
    }
    format!("{sentence} ({help})")
}

/// `tracing` to stderr: warnings by default, `-v` info, `-vv` debug, `-vvv` trace, `-q`
/// errors only; `RUST_LOG` (env-filter syntax) overrides them.
fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .try_init();
}

/// One line on stderr.
fn report(message: &str) {
    let line = message.replace('\n', " ");
    let _ = writeln!(std::io::stderr(), "pagevault: {line}");
}
