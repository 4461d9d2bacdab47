//! `pagevault completions SHELL`, `pagevault man` and `pagevault version`: what an
//! operator installs once, generated from the same clap definition as the parser.

use std::io::Write;

use crate::output::{Exit, Failure, Out};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The completion script of `cmd` (the whole command line) for `a.shell`.
pub fn completions(
    a: CompletionsArgs,
    mut cmd: clap::Command,
    out: &mut Out,
) -> Result<Exit, Failure> {
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "pagevault", &mut buf);
    out.raw(&buf)?;
    Ok(Exit::Success)
}

/// The manual page of `cmd` (the whole command line).
pub fn man(cmd: clap::Command, out: &mut Out) -> Result<Exit, Failure> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    // One page: the top command, then a section per subcommand.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        writeln!(buf, ".SH \"PAGEVAULT {}\"", name.to_uppercase())?;
        let man = clap_mangen::Man::new(sub.clone().bin_name(format!("pagevault {name}")));
        man.render_synopsis_section(&mut buf)?;
        man.render_description_section(&mut buf)?;
        man.render_options_section(&mut buf)?;
        man.render_extra_section(&mut buf)?;
    }
    out.raw(&buf)?;
    Ok(Exit::Success)
}

pub fn version(out: &mut Out) -> Result<Exit, Failure> {
    crate::say!(out, "pagevault {}", env!("CARGO_PKG_VERSION"))?;
    Ok(Exit::Success)
}
