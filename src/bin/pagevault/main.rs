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

use clap::CommandFactory;

use output::{Exit, Failure, Out};

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as K;
            // Help and version go to stdout and succeed; no verb at all prints the whole
            // help on stderr as a usage error (exit 64); anything else is a usage error,
            // reported like every other error: one line beginning `pagevault: `.
            return match e.kind() {
                K::DisplayHelp | K::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::from(Exit::Success as u8)
                }
                K::MissingSubcommand | K::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let (mut cmd, name) = help_of(&e);
                    let _ = writeln!(std::io::stderr(), "{}", cmd.render_long_help());
                    report(&format!("no command given; see `{name} --help`"));
                    ExitCode::from(Exit::Usage as u8)
                }
                _ => {
                    report(&usage_sentence(&e));
                    ExitCode::from(Exit::Usage as u8)
                }
            };
        }
    };
    // Whoever this process keeps out of a lock it holds is told what it is doing: the
    // verb, the first word that is neither a flag nor the value of a global `-r`.
    let mut words = std::env::args().skip(1);
    while let Some(w) = words.next() {
        if w == "-r" || w == "--repo" {
            words.next();
        } else if !w.starts_with('-') {
            pagevault::set_lock_note(&format!("pagevault {w}"));
            break;
        }
    }
    init_logging(cli.global.verbose, cli.global.quiet);
    output::set_quiet(cli.global.quiet);
    tracing::debug!("command line: {:?} {:?}", cli.global, cli.command);
    let mut out = Out::new();
    let result = dispatch(cli.command, &cli.global, &mut out).and_then(|code| {
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

/// The command line, parsed; `global.repo_on_command_line` says whether `-r` was typed
/// (not taken from PAGEVAULT_REPO).
fn parse() -> Result<cli::Cli, clap::Error> {
    use clap::FromArgMatches;
    let matches = cli::Cli::command().try_get_matches()?;
    let mut cli = cli::Cli::from_arg_matches(&matches)?;
    cli.global.repo_on_command_line =
        matches.value_source("repo") == Some(clap::parser::ValueSource::CommandLine);
    Ok(cli)
}

/// Runs the subcommand with the global flags it uses (and refuses those it has no use
/// for); `Err` is a failure to report on stderr.
fn dispatch(command: cli::Command, g: &flags::Global, out: &mut Out) -> Result<Exit, Failure> {
    use cli::Command;
    let json = g.json;
    match command {
        Command::Init(mut a) => {
            g.no_repo("init")?;
            a.json = json;
            init::run(a, out)
        }
        Command::Rename(mut a) => {
            g.no_repo("rename")?;
            a.json = json;
            rename::run(a, out)
        }
        Command::Repo(a) => repo::run(a, g, out),
        Command::Workload(mut a) => {
            g.no_repo("workload")?;
            a.json = json;
            workload::run(a, out)
        }
        Command::ImportFiles(mut a) => {
            g.no_repo("import-files")?;
            a.json = json;
            import_files::run(a, out)
        }
        Command::Export(mut a) => {
            a.repo = g.repo("export")?;
            a.json = json;
            archive::export(a, out)
        }
        Command::Import(mut a) => {
            a.repo = g.repo("import")?;
            a.json = json;
            archive::import(a, out)
        }
        Command::Copy(mut a) => {
            g.no_repo("copy")?;
            a.json = json;
            archive::copy(a, out)
        }
        Command::Status(mut a) => {
            a.repo = g.optional_repo();
            a.json = json;
            status::run(a, out)
        }
        Command::Check(mut a) => {
            g.no_repo("check")?;
            a.json = json;
            check::run(a, out)
        }
        Command::Backup(mut a) => {
            a.repo = g.repo("backup")?;
            a.json = json;
            backup::run(a, out)
        }
        Command::Serve(mut a) => {
            g.no_json("serve")?;
            a.repo = match a.api {
                Some(_) => Some(g.repo("serve --api")?),
                None => {
                    if g.explicit_repo().is_some() {
                        return Err(Failure::Usage(
                            "serve uses -r/--repo only with --api (the admin HTTP API); \
                             PAGEVAULT_REPO is ignored without it (see `pagevault serve --help`)"
                                .into(),
                        ));
                    }
                    None
                }
            };
            serve::run(a, out)
        }
        Command::List(mut a) => {
            a.repo = g.repo("list")?;
            a.json = json;
            list::run(a, out)
        }
        Command::Verify(mut a) => {
            a.repo = g.repo("verify")?;
            a.json = json;
            verify::run(a, out)
        }
        Command::Restore(mut a) => {
            // With --archive the sets come from the archive: -r is refused, PAGEVAULT_REPO
            // ignored.
            a.repo = match a.archive {
                Some(_) => {
                    g.no_repo("restore --archive")?;
                    None
                }
                None => g.optional_repo(),
            };
            a.json = json;
            restore::run(a, out)
        }
        Command::History(mut a) => {
            a.repo = g.repo("history")?;
            a.json = json;
            history::run(a, out)
        }
        Command::Diff(mut a) => {
            a.repo = g.repo("diff")?;
            a.json = json;
            diff::run(a, out)
        }
        Command::Prune(mut a) => {
            a.repo = g.repo("prune")?;
            a.json = json;
            retention::run_prune(a, out)
        }
        Command::Delete(mut a) => {
            a.repo = g.repo("delete")?;
            a.json = json;
            retention::run_delete(a, out)
        }
        Command::Merge(mut a) => {
            a.repo = g.repo("merge")?;
            a.json = json;
            retention::run_merge(a, out)
        }
        Command::Demo(mut a) => {
            g.no_repo("demo")?;
            a.json = json;
            demo::run(a, out)
        }
        Command::Bench(mut a) => {
            a.repo = g.explicit_repo();
            a.json = json;
            bench::run(a, out)
        }
        Command::Completions(a) => {
            g.no_repo("completions")?;
            g.no_json("completions")?;
            tools::completions(a, cli::Cli::command(), out)
        }
        Command::Man => {
            g.no_repo("man")?;
            g.no_json("man")?;
            tools::man(cli::Cli::command(), out)
        }
        Command::Version => {
            g.no_repo("version")?;
            g.no_json("version")?;
            tools::version(out)
        }
    }
}

/// The command a clap error is about (`pagevault`, `pagevault repo`, ...) and its name,
/// from the usage line clap rendered for it, so that an option's value (`-r repo`) is
/// never taken for a verb.
fn help_of(e: &clap::Error) -> (clap::Command, String) {
    let mut cmd = cli::Cli::command();
    let mut name = "pagevault".to_string();
    let text = e.render().to_string();
    let Some(usage) = text.lines().find_map(|l| l.trim().strip_prefix("Usage: ")) else {
        return (cmd, name);
    };
    for w in usage.split_whitespace().skip(1) {
        let Some(sub) = cmd.find_subcommand(w).cloned() else {
            break;
        };
        name = format!("{name} {w}");
        cmd = sub.bin_name(&name);
    }
    (cmd, name)
}

/// A clap error as one sentence: its first paragraph on one line, clap's "did you mean"
/// tip if it has one, and where to read more (`see `pagevault backup --help``).
fn usage_sentence(e: &clap::Error) -> String {
    use clap::error::ErrorKind as K;
    let (_, name) = help_of(e);
    let text = e.render().to_string();
    let mut paragraphs = text.split("\n\n");
    let first: Vec<&str> = paragraphs
        .next()
        .unwrap_or("")
        .lines()
        .map(|l| l.trim())
        .collect();
    let sentence = first.join(" ");
    let mut sentence = sentence
        .strip_prefix("error: ")
        .unwrap_or(&sentence)
        .to_string();
    for tip in paragraphs.flat_map(|p| p.lines()) {
        if let Some(tip) = tip.trim().strip_prefix("tip: ") {
            sentence.push_str("; ");
            sentence.push_str(tip);
        }
    }
    if sentence.contains("--repo <R>") && e.kind() == K::MissingRequiredArgument {
        sentence.push_str(" (or set PAGEVAULT_REPO)");
    }
    format!("{sentence} (see `{name} --help`)")
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
