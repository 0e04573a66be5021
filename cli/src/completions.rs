//! `connect-audit completions SHELL`: shell completions, generated from the clap commands so
//! they never fall behind a new flag.

use std::io::{self, Write};

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::ExitCode;
use crate::args::Cli;

/// The name the completions complete: the binary's.
const BIN: &str = "connect-audit";

/// Writes the completions of `shell` to stdout. A closed stdout is an `io::Error` of kind
/// `BrokenPipe`, which `main` treats as success.
pub fn print(shell: Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::with_capacity(64 * 1024);
    generate(shell, &mut script);
    let mut stdout = io::stdout().lock();
    stdout.write_all(&script)?;
    stdout.flush()?;
    Ok(ExitCode::Success)
}

/// The completion script of `shell`.
fn generate(shell: Shell, out: &mut Vec<u8>) {
    clap_complete::generate(shell, &mut Cli::command(), BIN, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum as _;

    #[test]
    fn every_shell_gets_a_script_naming_the_commands() {
        for shell in Shell::value_variants() {
            let mut script = Vec::new();
            generate(*shell, &mut script);
            let text = String::from_utf8(script).unwrap();
            for word in ["connect-audit", "report", "snapshot", "completions"] {
                assert!(text.contains(word), "{shell}: {word}");
            }
        }
    }
}
