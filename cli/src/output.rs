//! The one place that prints to the terminal: warnings, errors, the summary, progress.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use connect_audit_query::local::BadInput;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress and messages on stderr. The bar only shows on a terminal.
pub struct Reporter {
    bar: ProgressBar,
    quiet: bool,
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
        Self { bar, quiet }
    }

    /// The walk found this many files and bytes.
    pub fn files_found(&self, files: u64, bytes: u64) {
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{files} files"));
    }

    /// One more file was read.
    pub fn file_scanned(&self, done: u64, files: u64, bytes: u64, _path: &Path) {
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

/// Prints an error and its causes.
pub fn error(err: &anyhow::Error) {
    eprintln!("connect-audit: error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Prints a line of data to stdout.
pub fn data(text: &str) {
    print!("{text}");
}

/// Prints a note on stderr.
pub fn note(text: &str) {
    eprintln!("{text}");
}
