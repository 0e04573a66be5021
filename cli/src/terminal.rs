//! The one place that prints to the terminal: warnings, errors, the summary, progress.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use connect_audit_query::BadInput;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress and messages on stderr. The bar only shows on a terminal.
pub struct Reporter {
    bar: ProgressBar,
    quiet: bool,
    /// Files the walk found, and read so far.
    files: AtomicU64,
    done: AtomicU64,
}

impl Reporter {
    /// A reporter; `quiet` hides the bar and the summary.
    pub fn new(quiet: bool) -> Self {
        let show = !quiet && std::io::stderr().is_terminal();
        let bar = if show {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            quiet,
            files: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// The walk found this many files and bytes.
    pub fn files_found(&self, files: u64, bytes: u64) {
        self.files.store(files, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{files} files"));
    }

    /// One more file was read.
    pub fn file_scanned(&self, bytes: u64, _path: &Path) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let files = self.files.load(Ordering::Relaxed);
        self.bar.inc(bytes);
        self.bar.set_message(format!("{done}/{files} files"));
    }

    /// Switches the bar to counting `unit`s (a length that grows as work is found).
    pub fn start_counting(&self, unit: &str) {
        self.bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }

    /// More work was found.
    pub fn add_length(&self, n: u64) {
        self.bar.inc_length(n);
    }

    /// Work was done.
    pub fn advance(&self, n: u64) {
        self.bar.inc(n);
    }

    /// What is being done now.
    pub fn status(&self, message: &str) {
        self.bar.set_message(message.to_owned());
    }

    /// A bad file or record, as it is found.
    pub fn bad_input(&self, problem: &BadInput) {
        self.bar
            .suspend(|| eprintln!("connect-audit: warning: skipped {problem}"));
    }

    /// Done scanning: remove the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// A summary line block, unless quiet.
    pub fn summary(&self, text: &str) {
        if !self.quiet {
            eprint!("{text}");
        }
    }
}

/// Prints an error and its causes, each once (see [`chain`]).
pub fn error(err: &anyhow::Error) {
    let mut lines = chain(err).into_iter();
    eprintln!("connect-audit: error: {}", lines.next().unwrap_or_default());
    for cause in lines {
        eprintln!("  caused by: {cause}");
    }
}

/// The messages of an error's chain, outermost first, without repeats: a cause whose text a
/// message above already holds is left out. Many errors show their source in their own
/// message (`{path}: {source}`, so they read whole where only they are printed) and also
/// return it from `source()`; walking the chain would otherwise say the same sentence once
/// per level.
pub fn chain(err: &anyhow::Error) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let said = text.trim().is_empty() || lines.iter().any(|line| line.contains(text.trim()));
        if !said {
            lines.push(text);
        }
    }
    lines
}

/// Prints a line of data to stdout.
pub fn data(text: &str) {
    print!("{text}");
}

/// Prints a note on stderr.
pub fn note(text: &str) {
    eprintln!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that shows its source in its message and returns it from `source()` too.
    #[derive(Debug, thiserror::Error)]
    #[error("{what}: {source}")]
    struct Wrapped {
        what: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_said_is_not_said_again() {
        let io = std::io::Error::new(std::io::ErrorKind::NotADirectory, "Not a directory");
        let inner = Wrapped {
            what: "out/audit.csv",
            source: io,
        };
        let err = anyhow::Error::from(inner).context("cannot start the csv exporter");
        assert_eq!(
            chain(&err),
            [
                "cannot start the csv exporter",
                "out/audit.csv: Not a directory"
            ]
        );
        // Causes that add something are all kept, in order.
        let err = anyhow::anyhow!("disk full")
            .context("cannot write x")
            .context("run failed");
        assert_eq!(chain(&err), ["run failed", "cannot write x", "disk full"]);
    }
}
