//! The `pagevault` admin CLI: a thin layer over the library. Parses flags (clap, with
//! `try_parse` so usage errors exit 64, not clap's 2), runs one subcommand, prints its
//! report (human or `--json`), and maps the outcome to the documented exit codes.
//! Errors are one line on stderr: `pagevault: <sentence naming the path>`. A closed
//! stdout (`pagevault status DB | head -1`) exits quietly, with the code the command had
//! decided before printing (0, or `check`'s 3: a closed pipe never hides a failure).

mod args;
mod backup;
mod bench;
mod check;
mod demo;
mod import;
mod init;
mod list;
mod output;
mod repo;
mod restore;
mod status;
mod verify;
mod workload;

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use clap::Parser;

use output::{Exit, Failure, Out};

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as K;
            // Help and version go to stdout and succeed; anything else is a usage error.
            let code = match e.kind() {
                K::DisplayHelp | K::DisplayVersion => Exit::Success,
                _ => Exit::Usage,
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let mut out = Out::new();
    let result = cli.command.run(&mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    let code = match result {
        Ok(code) => code,
        // Quietly, but with the code the command had decided before its report went out.
        Err(Failure::Stdout(e)) if e.kind() == ErrorKind::BrokenPipe => out.decided(),
        Err(Failure::Stdout(e)) => {
            report(&format!("cannot write to standard output: {e}"));
            Exit::Failed
        }
        Err(Failure::Lib(e @ pagevault::Error::NoRepository { .. })) => {
            report(&format!(
                "{e}; create one with `pagevault repo init` (no verb but that one creates a repository)"
            ));
            Exit::Failed
        }
        Err(Failure::Lib(e)) => {
            report(&e.to_string());
            Exit::Failed
        }
    };
    ExitCode::from(code as u8)
}

/// One line on stderr.
fn report(message: &str) {
    let line = message.replace('\n', " ");
    let _ = writeln!(std::io::stderr(), "pagevault: {line}");
}
