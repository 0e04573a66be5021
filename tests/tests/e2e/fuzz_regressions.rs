//! The fuzz targets' properties (`fuzz/checks.rs`, run by `scripts/fuzz`) on every input that
//! ever broke one (`tests/fixtures/fuzz/<target>/`, one file each, named after what broke) and
//! on the seeds the fuzzer starts from: the hostile and example trail files, the example
//! config and every TOML block of the README.

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/checks.rs"]
mod checks;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Files under `dir` (recursively) whose name ends with one of `suffixes`, sorted.
fn files(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if suffixes.iter().any(|s| path.to_string_lossy().ends_with(s)) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn crash_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("tests/fixtures/fuzz").join(target);
    files(&dir, &[""])
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("readable"),
            )
        })
        .collect()
}

fn replay(inputs: &[(String, Vec<u8>)], check: fn(&[u8])) {
    for (name, data) in inputs {
        // The input's name in the failure, whatever the check's own message.
        let held = std::panic::catch_unwind(|| check(data));
        assert!(held.is_ok(), "the check failed on {name}");
    }
}

#[test]
fn trail_file_properties_hold_for_every_crash_input_and_seed() {
    let mut inputs = crash_inputs("trail_file");
    for dir in [
        "tests/fixtures/bad",
        "tests/fixtures/bad-trail",
        "examples/trail",
    ] {
        for path in files(&repo().join(dir), &[".json", ".json.gz"]) {
            let bytes = std::fs::read(&path).expect("readable");
            // The first byte picks the presentation: .json, .json.gz as is, gzipped by the check.
            for mode in 0..3u8 {
                let input = [&[mode][..], &bytes].concat();
                inputs.push((format!("{} (mode {mode})", path.display()), input));
            }
        }
    }
    assert!(inputs.len() > 100, "seeds missing: {}", inputs.len());
    replay(&inputs, checks::trail_file);
}

#[test]
fn config_properties_hold_for_every_crash_input_and_seed() {
    let mut inputs = crash_inputs("config");
    let demo = repo().join("examples/demo.toml");
    inputs.push((
        demo.display().to_string(),
        std::fs::read(&demo).expect("readable"),
    ));
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut block: Option<String> = None;
    for line in readme.lines() {
        match (&mut block, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => block = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => {
                let text = block.take().unwrap_or_default();
                inputs.push(("README.md toml block".into(), text.into_bytes()));
            }
            (Some(text), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(inputs.len() > 5, "seeds missing: {}", inputs.len());
    replay(&inputs, checks::config);
}
