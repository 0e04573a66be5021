//! Writes the repository's `examples/` (the sample trail, snapshot and `demo.toml`).
//!
//! ```text
//! cargo run -p connect-audit-tests --bin make-examples -- [OUT_DIR]
//! ```
//! `OUT_DIR` defaults to the repository's `examples/`. The output is byte-identical on every
//! run; see `connect_audit_tests::generate`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let out = args
        .next()
        .map_or_else(connect_audit_tests::examples_dir, PathBuf::from);
    if args.next().is_some() {
        let _ = writeln!(std::io::stderr(), "usage: make-examples [OUT_DIR]");
        return ExitCode::from(2);
    }
    let files = connect_audit_tests::build();
    match connect_audit_tests::write(&out, &files) {
        Ok(()) => {
            let n = files.len();
            let _ = writeln!(std::io::stdout(), "wrote {n} files under {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "make-examples: {e}");
            ExitCode::FAILURE
        }
    }
}
