//! The scan benchmark (not a timed test): in one run on the same files, the embedded engine
//! (JSON Lines to a file), DuckDB in two forms of the same query (`scripts/duckdb-scan.py
//! --form today|narrow`: `read_json` + `unnest(Records)`, the same filter, CSV out; see the
//! script for what each types how) and the decompression floor with each inflater the project
//! could use (2 threads, output discarded: zlib-rs and libdeflate, each file inflated whole
//! into a buffer of its whole text; and `scan`, the engine's own inflate within its memory:
//! libdeflate whole for a file of at most 16 MiB of text, zlib-rs in 1 MiB windows above;
//! zlib-ng was measured once and is not here, see BENCHMARKS.md: calling its C API needs
//! `unsafe`, which the workspace forbids, and it was no faster than zlib-rs). Each runs in its
//! own process, so each peak RSS is its own.
//!
//! ```sh
//! cargo run --release -p connect-audit-bench --bin gen-trail -- --out /var/tmp/trail-1g --size 1G
//! cargo run --release -p connect-audit-bench --bin bench-scan -- /var/tmp/trail-1g
//! ```
//!
//! Prints a Markdown table: wall time, MB/s of uncompressed JSON, records/s, peak RSS, and
//! each one's ratio to the fastest floor; the engine's wall against the faster DuckDB form.
//! Then checks that the engine and both DuckDB forms reported exactly the ids of
//! `expected-default.txt`, and that the two forms wrote the same CSV (exit 1 if not).
//!
//! DuckDB runs under `$DUCKDB_PYTHON`, else the virtual environment beside the build
//! (`$CARGO_TARGET_DIR/duckdb-venv`, as BENCHMARKS.md installs it), else `python3`.
//!
//! `--pairs N`: N rounds of every floor and the engine, each its own process, and the median
//! ratios; `--race N`: the same with DuckDB's faster form (`narrow`) in every round, and the
//! engine's median wall against DuckDB's.
//!
//! Subcommands (run by the benchmark itself): `floor DIR [zlib-rs|libdeflate|scan]`,
//! `engine DIR OUT`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufRead as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use connect_audit_core::{Directory, EventSelection, Store, Window};
use connect_audit_exporters::{Exporter, JsonlExporter, JsonlSpec};
use connect_audit_query::local::{ScanOptions, Simd, TrailScanner};
use connect_audit_query::stage::ChangeStage;
use connect_audit_query::{ScanSink, SinkError};

/// Every `.json.gz` trail file under `dir` (digests excluded), largest first.
fn trail_files(dir: &Path) -> io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("AWSLogs")];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".json.gz")
                && !path.to_string_lossy().contains("CloudTrail-Digest")
            {
                out.push((path, entry.metadata()?.len()));
            }
        }
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// The uncompressed size a gzip member declares (ISIZE, its last 4 bytes: the size modulo
/// 2^32, which is the size for any trail file).
fn gzip_isize(bytes: &[u8]) -> usize {
    let n = bytes.len();
    if n < 4 {
        return 0;
    }
    u32::from_le_bytes([bytes[n - 4], bytes[n - 3], bytes[n - 2], bytes[n - 1]]) as usize
}

/// The raw deflate stream of a one-member gzip file (header and its optional fields skipped,
/// the 8-byte trailer left off) and the size it declares; `None` if it is not gzip.
fn gzip_member(bytes: &[u8]) -> Option<(&[u8], usize)> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if bytes.len() < 18 || bytes[..3] != [0x1f, 0x8b, 8] {
        return None;
    }
    let flags = bytes[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]);
        at += 2 + usize::from(len);
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += bytes.get(at..)?.iter().position(|b| *b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    Some((bytes.get(at..bytes.len() - 8)?, gzip_isize(bytes)))
}

/// Peak resident memory of this process, from /proc (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// An inflater the floor is measured with: each a library the project could build the engine
/// on, none of them a flate2 backend feature (features unify: turning on flate2's `zlib-ng`
/// here would swap the engine's own inflate in this build).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inflater {
    /// zlib-rs through flate2: the engine's inflate.
    ZlibRs,
    /// libdeflate (`libdeflater`): whole-buffer only, which suits a gzip member inflated whole.
    Libdeflate,
    /// The scan's own inflate within its memory (`connect_audit_query::local::inflate_only`):
    /// libdeflate for a file of at most `WHOLE_MAX` bytes of text, zlib-rs in 1 MiB windows
    /// for a larger one, every file kept in memory whole (its bytes, not its text).
    Scan,
}

impl Inflater {
    /// Every contestant, the engine's own first.
    const ALL: [Self; 3] = [Self::ZlibRs, Self::Libdeflate, Self::Scan];

    fn name(self) -> &'static str {
        match self {
            Self::ZlibRs => "zlib-rs",
            Self::Libdeflate => "libdeflate",
            Self::Scan => "scan",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.name() == name)
    }

    /// The inflaters this binary has.
    fn available() -> Vec<Self> {
        Self::ALL.to_vec()
    }
}

/// One thread's inflate state, reused from file to file.
enum Inflate {
    ZlibRs(flate2::Decompress),
    Libdeflate(libdeflater::Decompressor),
    /// libdeflate's state and the window (a whole text goes after the file's bytes).
    Scan(libdeflater::Decompressor, Vec<u8>),
}

impl Inflate {
    fn new(inflater: Inflater) -> Self {
        match inflater {
            Inflater::ZlibRs => Self::ZlibRs(flate2::Decompress::new(false)),
            Inflater::Libdeflate => Self::Libdeflate(libdeflater::Decompressor::new()),
            Inflater::Scan => Self::Scan(libdeflater::Decompressor::new(), Vec::new()),
        }
    }

    /// Inflates the raw deflate stream `input` into `output`; the bytes written.
    fn inflate(&mut self, input: &[u8], output: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Scan(..) => Err(io::Error::other("the scan's inflate takes the whole file")),
            Self::ZlibRs(inflate) => {
                inflate.reset(false);
                match inflate.decompress(input, output, flate2::FlushDecompress::Finish) {
                    Ok(flate2::Status::StreamEnd) => usize::try_from(inflate.total_out())
                        .map_err(|_| io::Error::other("too large")),
                    Ok(status) => Err(io::Error::other(format!(
                        "zlib-rs: {status:?} before the end of the stream"
                    ))),
                    Err(e) => Err(io::Error::other(e)),
                }
            }
            Self::Libdeflate(inflate) => inflate
                .deflate_decompress(input, output)
                .map_err(|e| io::Error::other(format!("libdeflate: {e:?}"))),
        }
    }
}

/// The threads of the floor: the engine's on this machine (both cores).
const FLOOR_THREADS: usize = 2;

/// The floor: every file inflated whole by `inflater` (gzip header skipped, raw deflate into a
/// buffer of the declared size), [`FLOOR_THREADS`] threads taking the files largest first,
/// each reusing its buffers and inflate state, output discarded. A file that does not inflate
/// to the size it declares fails the floor (a floor that skipped work would look fast).
fn floor(dir: &Path, inflater: Inflater) -> Result<(), Box<dyn std::error::Error>> {
    let files = trail_files(dir)?;
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let totals: Vec<io::Result<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..FLOOR_THREADS)
            .map(|_| {
                scope.spawn(|| -> io::Result<u64> {
                    let mut inflate = Inflate::new(inflater);
                    let mut input = Vec::new();
                    let mut output: Vec<u8> = Vec::new();
                    let mut sum = 0u64;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((path, bytes)) = files.get(i) else {
                            break;
                        };
                        // Read over the buffer's start, as the scan reads: its length stays the
                        // most any file needed, so nothing is zeroed again from file to file.
                        let n = usize::try_from(*bytes).map_err(io::Error::other)?;
                        if input.len() < n {
                            input.resize(n, 0);
                        }
                        fs::File::open(path)?.read_exact(&mut input[..n])?;
                        let (deflate, size) = gzip_member(&input[..n]).ok_or_else(|| {
                            io::Error::other(format!("{}: not gzip", path.display()))
                        })?;
                        let written = if let Inflate::Scan(libdeflate, window) = &mut inflate {
                            connect_audit_query::local::inflate_only(
                                libdeflate, &mut input, n, window,
                            )
                            .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?
                        } else {
                            if output.len() < size {
                                // Zeroed by the allocator, not written here.
                                output = vec![0; size];
                            }
                            inflate.inflate(deflate, &mut output[..size])?
                        };
                        if written != size {
                            return Err(io::Error::other(format!(
                                "{}: {} inflated {written} bytes of {size}",
                                path.display(),
                                inflater.name()
                            )));
                        }
                        sum += written as u64;
                    }
                    Ok(sum)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a floor thread panicked")))
            })
            .collect()
    });
    let mut bytes = 0u64;
    for total in totals {
        bytes += total?;
    }
    println!(
        "{{\"wall\":{},\"bytes\":{bytes},\"rss_kib\":{},\"inflater\":\"{}\"}}",
        started.elapsed().as_secs_f64(),
        peak_rss_kib(),
        inflater.name()
    );
    Ok(())
}

struct Sink(Box<dyn Exporter>);

impl ScanSink for Sink {
    fn records(&mut self, batch: Vec<connect_audit_core::AuditRecord>) -> Result<(), SinkError> {
        self.0.write(&batch)?;
        Ok(())
    }
}

/// The instruction set `CONNECT_AUDIT_SIMD` asks the engine's structural pass to use, as
/// `connect-audit` reads it (the engine reads no environment).
fn requested_simd() -> Simd {
    std::env::var(connect_audit_config::SIMD_ENV)
        .ok()
        .and_then(|name| Simd::from_name(&name))
        .unwrap_or_default()
}

/// The engine, as `connect-audit report --trail DIR --output OUT.jsonl` runs it (default
/// events, no snapshot, the window of the generated trail): through the change stage, or
/// without it (`stage` false) to measure what the stage costs.
fn engine(dir: &Path, out: &Path, stage: bool) -> Result<(), Box<dyn std::error::Error>> {
    engine_with(dir, out, stage, false)
}

/// [`engine`], with the log files verified against the trail's digests (`verify`): each
/// file's SHA-256 taken in the inflate pass, the digests read and their chain followed, as
/// `report --verify` does on a local copy. Fails unless every file and digest is verified.
fn engine_with(
    dir: &Path,
    out: &Path,
    stage: bool,
    verify: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let window = Window::parse(
        Some("2020-01-01"),
        Some("2030-01-01"),
        jiff::Timestamp::now(),
    )?;
    let mut options = ScanOptions::new(window, EventSelection::defaults());
    options.simd = requested_simd();
    options.hash_files = verify;
    let exporter = JsonlExporter::create(&JsonlSpec::new(out.display().to_string()))?;
    let scanner = TrailScanner::new(Store::local(dir), Directory::new(), options);
    let (summary, sink) = if stage {
        let mut staged = ChangeStage::new(Sink(Box::new(exporter)), Directory::new());
        let summary = scanner.scan(&mut staged)?;
        (
            summary,
            staged
                .finish()
                .map_err(|e| -> Box<dyn std::error::Error> { e })?,
        )
    } else {
        let mut sink = Sink(Box::new(exporter));
        (scanner.scan(&mut sink)?, sink)
    };
    let export = sink.0.finish()?;
    if verify {
        let store = Store::local(dir);
        let days = window.delivery_days();
        // The runtime `report --verify` reads them on: the report's multi-thread one.
        let digests = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(connect_audit_query::integrity::read_digests(
                &store,
                None,
                &summary.hashes,
                days,
            ))?;
        let (_, verdict) =
            connect_audit_core::integrity::verify(&digests, &summary.hashes, None, days);
        if !verdict.all_verified() {
            return Err(format!("integrity: {}", verdict.line()).into());
        }
        eprintln!("integrity: {}", verdict.line());
    }
    println!(
        "{{\"wall\":{},\"records_seen\":{},\"records\":{},\"rss_kib\":{}}}",
        started.elapsed().as_secs_f64(),
        summary.records_seen,
        export.records,
        peak_rss_kib()
    );
    Ok(())
}

/// Runs a subcommand (or another program) and reads the JSON line it printed last.
fn measure(program: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Runs `connect-audit report` (the release binary beside this one) over `trail`, a directory
/// or `s3://bucket/prefix` (S3 from the standard AWS environment), writing JSON Lines to
/// `out`; its wall time and peak RSS (`VmHWM`, read from /proc while it runs).
fn measure_cli(trail: &str, out: &Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let binary = std::env::current_exe()?.with_file_name("connect-audit");
    let started = Instant::now();
    let mut child = Command::new(&binary)
        .args([
            "report",
            "--trail",
            trail,
            "--since",
            "2020-01-01",
            "--until",
            "2030-01-01",
        ])
        .args(["--format", "jsonl", "--output"])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e} (cargo build --release first)", binary.display()))?;
    let status_file = format!("/proc/{}/status", child.id());
    let stat_file = format!("/proc/{}/stat", child.id());
    let mut rss_kib = 0;
    let mut cpu_ticks = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(text) = fs::read_to_string(&status_file) {
            rss_kib = rss_kib.max(vm_hwm_kib(&text));
        }
        if let Ok(text) = fs::read_to_string(&stat_file) {
            cpu_ticks = cpu_ticks.max(cpu_ticks_of(&text));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let wall = started.elapsed().as_secs_f64();
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            io::Read::read_to_string(&mut e, &mut stderr)?;
        }
        return Err(format!("connect-audit report --trail {trail} failed: {stderr}").into());
    }
    // Clock ticks are 1/100 s on Linux (sysconf(_SC_CLK_TCK)).
    #[allow(clippy::cast_precision_loss)]
    let cpu = cpu_ticks as f64 / 100.0;
    Ok(serde_json::json!({ "wall": wall, "rss_kib": rss_kib, "cpu": cpu }))
}

/// utime + stime of a /proc/PID/stat line (fields 14 and 15, after the parenthesised name).
fn cpu_ticks_of(stat: &str) -> u64 {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // After ")": field 3 is at index 0, so utime (14) is index 11 and stime (15) index 12.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn vm_hwm_kib(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The same scan, from the local directory and from S3, both by the `connect-audit` binary.
#[allow(clippy::cast_precision_loss)]
fn bench_s3(dir: &Path, s3: &str) -> Result<bool, Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let d = dir.to_str().ok_or("the trail path is not UTF-8")?;
    let json_bytes: f64 = measure(&std::env::current_exe()?, &["floor", d])["bytes"]
        .as_f64()
        .unwrap_or(0.0);
    let local_out = work.path().join("local.jsonl");
    let s3_out = work.path().join("s3.jsonl");
    // Local first, then S3, then local again: the median-free check that the machine was
    // steady is that the two local runs agree.
    let local = measure_cli(d, &local_out)?;
    let remote = measure_cli(s3, &s3_out)?;
    let local_again = measure_cli(d, &local_out)?;
    println!("| trail | wall (s) | MB/s of JSON | peak RSS (MiB) | CPU time (s) |");
    println!("|---|---|---|---|---|");
    for (name, m) in [
        ("local disk", &local),
        ("S3 (Garage)", &remote),
        ("local disk, again", &local_again),
    ] {
        let wall = m["wall"].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {name} | {wall:.2} | {:.0} | {:.0} | {:.2} |",
            json_bytes / 1e6 / wall,
            m["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            m["cpu"].as_f64().unwrap_or(0.0)
        );
    }
    let local_wall = local["wall"]
        .as_f64()
        .unwrap_or(f64::NAN)
        .min(local_again["wall"].as_f64().unwrap_or(f64::NAN));
    let s3_wall = remote["wall"].as_f64().unwrap_or(f64::NAN);
    println!();
    println!(
        "S3 throughput / local throughput = {:.2} (target >= 0.80)",
        local_wall / s3_wall
    );
    let expected = expected_ids(dir)?;
    let (from_disk, from_s3) = (ids_of(&local_out)?, ids_of(&s3_out)?);
    let same = from_disk == expected && from_s3 == expected;
    println!(
        "correctness: local {} events, S3 {} events, the generator expects {} — {}",
        from_disk.len(),
        from_s3.len(),
        expected.len(),
        if same { "identical" } else { "DIFFERENT" }
    );
    Ok(same)
}

/// The ids the generator wrote to `expected-default.txt`: the events of the default selection.
fn expected_ids(dir: &Path) -> io::Result<BTreeSet<String>> {
    Ok(fs::read_to_string(dir.join("expected-default.txt"))?
        .lines()
        .map(str::to_owned)
        .collect())
}

fn ids_of(jsonl: &Path) -> io::Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for line in io::BufReader::new(fs::File::open(jsonl)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?).map_err(io::Error::other)?;
        if let Some(id) = v["event_id"].as_str() {
            ids.insert(id.to_owned());
        }
    }
    Ok(ids)
}

/// The engine's wall against the faster DuckDB form (issue N's target: at most 1/8).
const DUCKDB_TARGET: f64 = 0.125;
/// The fastest floor's wall against the engine's (issue N's target: at least 0.85).
const FLOOR_TARGET: f64 = 0.85;

/// The two forms of the DuckDB query (`scripts/duckdb-scan.py --form`).
const DUCKDB_FORMS: [&str; 2] = ["today", "narrow"];

/// The Python that runs DuckDB: `$DUCKDB_PYTHON`, else the virtual environment beside the
/// build (`$CARGO_TARGET_DIR/duckdb-venv`, this binary being `$CARGO_TARGET_DIR/release/…`),
/// else `python3`.
fn duckdb_python() -> PathBuf {
    if let Some(python) = std::env::var_os("DUCKDB_PYTHON") {
        return python.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("duckdb-venv/bin/python3")))
        .filter(|python| python.exists())
        .unwrap_or_else(|| "python3".into())
}

/// The event ids of a CSV the DuckDB script wrote (its second column; the first, the event
/// time, holds no comma or quote).
fn csv_ids(csv: &Path) -> io::Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for line in io::BufReader::new(fs::File::open(csv)?).lines().skip(1) {
        if let Some(id) = line?.split(',').nth(1) {
            ids.insert(id.to_owned());
        }
    }
    Ok(ids)
}

/// Each DuckDB form's name and measurement.
type DuckdbRuns = Vec<(&'static str, serde_json::Value)>;

/// Each DuckDB form, run once: its measurement, and whether it wrote exactly the expected
/// ids; then whether the forms wrote the same CSV, byte for byte (the same rows, columns and
/// order).
fn duckdb_forms(
    dir: &str,
    work: &Path,
    expected: &BTreeSet<String>,
) -> Result<(DuckdbRuns, bool), Box<dyn std::error::Error>> {
    let mut runs = Vec::new();
    let mut csvs = Vec::new();
    for form in DUCKDB_FORMS {
        let (run, csv) = duckdb_form(dir, work, form, expected)?;
        runs.push((form, run));
        csvs.push(csv);
    }
    let same = csvs.windows(2).all(|w| w[0] == w[1]);
    Ok((runs, same))
}

/// One DuckDB form, run once: its measurement (with `exact`: whether it wrote exactly the
/// expected ids) and the CSV it wrote.
fn duckdb_form(
    dir: &str,
    work: &Path,
    form: &str,
    expected: &BTreeSet<String>,
) -> Result<(serde_json::Value, Vec<u8>), Box<dyn std::error::Error>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/duckdb-scan.py");
    let names: Vec<&str> = EventSelection::defaults().names().collect();
    let csv = work.join(format!("duckdb-{form}.csv"));
    let mut run = measure(
        &duckdb_python(),
        &[
            script.to_str().ok_or("path")?,
            "--form",
            form,
            dir,
            csv.to_str().ok_or("path")?,
            &names.join(","),
        ],
    );
    run["exact"] = (csv_ids(&csv)? == *expected).into();
    Ok((run, fs::read(&csv)?))
}

#[allow(clippy::cast_precision_loss, clippy::too_many_lines)]
fn bench(dir: &Path, skip_duckdb: bool) -> Result<bool, Box<dyn std::error::Error>> {
    let me = std::env::current_exe()?;
    let work = tempfile::tempdir()?;
    let files = trail_files(dir)?;
    let gz: u64 = files.iter().map(|(_, n)| n).sum();
    let d = dir.to_str().ok_or("the trail path is not UTF-8")?;
    let floors: Vec<(Inflater, serde_json::Value)> = Inflater::available()
        .into_iter()
        .map(|inflater| (inflater, measure(&me, &["floor", d, inflater.name()])))
        .collect();
    let json_bytes = floors[0].1["bytes"].as_f64().unwrap_or(0.0);
    let floors_agree = floors
        .iter()
        .all(|(_, f)| f["bytes"] == floors[0].1["bytes"]);
    let engine_out = work.path().join("engine.jsonl");
    let engine = measure(&me, &["engine", d, engine_out.to_str().ok_or("path")?]);
    let records = engine["records_seen"].as_f64().unwrap_or(0.0);
    let expected = expected_ids(dir)?;
    let duckdb = if skip_duckdb {
        None
    } else {
        Some(duckdb_forms(d, work.path(), &expected)?)
    };
    let wall = |m: &serde_json::Value| m["wall"].as_f64().unwrap_or(f64::NAN);
    let (fastest, fastest_floor) = floors
        .iter()
        .min_by(|a, b| wall(&a.1).total_cmp(&wall(&b.1)))
        .map(|(i, f)| (*i, wall(f)))
        .ok_or("no floor")?;
    println!(
        "trail: {} files, {:.1} MB gzip, {:.1} MB JSON, {} records; engine's structural pass: {}",
        files.len(),
        gz as f64 / 1e6,
        json_bytes / 1e6,
        records,
        connect_audit_query::simd_level(requested_simd())
    );
    println!();
    println!(
        "| run | wall (s) | MB/s of JSON | records/s | peak RSS (MiB) | floor ({}) wall / wall |",
        fastest.name()
    );
    println!("|---|---|---|---|---|---|");
    let mut rows: Vec<(String, &serde_json::Value)> = floors
        .iter()
        .map(|(i, f)| {
            (
                format!(
                    "decompression floor ({}, {FLOOR_THREADS} threads)",
                    i.name()
                ),
                f,
            )
        })
        .collect();
    rows.push(("connect-audit engine".into(), &engine));
    if let Some((runs, _)) = &duckdb {
        for (form, run) in runs {
            rows.push((
                format!(
                    "DuckDB {} (read_json + unnest), form {form}",
                    run["duckdb"].as_str().unwrap_or("?")
                ),
                run,
            ));
        }
    }
    for (name, m) in rows {
        let w = wall(m);
        println!(
            "| {name} | {w:.2} | {:.0} | {:.0} | {:.0} | {:.2} |",
            json_bytes / 1e6 / w,
            records / w,
            m["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            fastest_floor / w
        );
    }
    let engine_wall = wall(&engine);
    println!();
    println!(
        "fastest floor: {}; floor wall / engine wall = {:.3} (target >= {FLOOR_TARGET}); against each floor: {}",
        fastest.name(),
        fastest_floor / engine_wall,
        floors
            .iter()
            .map(|(i, f)| format!("{} {:.3}", i.name(), wall(f) / engine_wall))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut correct = floors_agree;
    if !floors_agree {
        println!("the floors inflated DIFFERENT byte counts");
    }
    if let Some((runs, same)) = &duckdb {
        let (form, duck) = runs
            .iter()
            .min_by(|a, b| wall(&a.1).total_cmp(&wall(&b.1)))
            .ok_or("no DuckDB run")?;
        println!(
            "engine wall / DuckDB wall (faster form: {form}) = {:.3} (target <= {DUCKDB_TARGET}); the engine is {:.1}x faster ({})",
            engine_wall / wall(duck),
            wall(duck) / engine_wall,
            runs.iter()
                .map(|(f, r)| format!("{f}: {:.1}x", wall(r) / engine_wall))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (form, run) in runs {
            let exact = run["exact"].as_bool().unwrap_or(false);
            correct &= exact;
            println!(
                "DuckDB form {form}: {} rows, {}",
                run["rows"],
                if exact {
                    "exactly the expected events"
                } else {
                    "DIFFERENT from the expected events"
                }
            );
        }
        correct &= *same;
        println!(
            "DuckDB forms: {}",
            if *same {
                "the same CSV, byte for byte"
            } else {
                "DIFFERENT CSVs"
            }
        );
    }
    let got = ids_of(&engine_out)?;
    let same = got == expected;
    println!(
        "correctness: engine reported {} events, the generator expects {} — {}",
        got.len(),
        expected.len(),
        if same { "identical" } else { "DIFFERENT" }
    );
    Ok(same && correct)
}

/// What a series of runs of the engine shares: this program (each run is a process of its
/// own), the trail, the output file and the events the generator expects.
struct Runs {
    me: PathBuf,
    trail: String,
    work: tempfile::TempDir,
    out: PathBuf,
    expected: BTreeSet<String>,
}

impl Runs {
    fn new(dir: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let work = tempfile::tempdir()?;
        Ok(Self {
            me: std::env::current_exe()?,
            trail: dir
                .to_str()
                .ok_or("the trail path is not UTF-8")?
                .to_owned(),
            out: work.path().join("engine.jsonl"),
            work,
            expected: expected_ids(dir)?,
        })
    }

    fn out_arg(&self) -> &str {
        self.out.to_str().unwrap_or_default()
    }
}

/// The median of `values` (sorted in place).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    }
}

/// Each floor and the engine run alternately `n` times, each in its own process: on a cloud
/// machine whose speed wanders from one minute to the next, only runs taken back to back give
/// a ratio worth reading. Prints each round, then the medians, and the ratio to the engine of
/// the floor whose median is lowest; with `duckdb`, that DuckDB form runs in each round too,
/// and the engine's median wall is rated against its median. `Ok(false)` when the engine's
/// output (or DuckDB's) differs from the generator's expected events in any run.
#[allow(clippy::too_many_lines)]
fn pairs(dir: &Path, n: usize, duckdb: Option<&str>) -> Result<bool, Box<dyn std::error::Error>> {
    let runs = Runs::new(dir)?;
    let (me, d, out, out_arg) = (&runs.me, runs.trail.as_str(), &runs.out, runs.out_arg());
    let expected = &runs.expected;
    let inflaters = Inflater::available();
    println!(
        "{n} rounds of floors ({}, {FLOOR_THREADS} threads), engine{}; engine's structural pass: {}",
        inflaters
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", "),
        duckdb.map_or(String::new(), |form| format!(" and DuckDB (form {form})")),
        connect_audit_query::simd_level(requested_simd())
    );
    println!();
    let floor_columns: String = inflaters
        .iter()
        .map(|i| format!(" {} floor (s) |", i.name()))
        .collect::<Vec<_>>()
        .concat();
    let duckdb_columns = if duckdb.is_some() {
        " DuckDB wall (s) | engine wall / DuckDB wall |"
    } else {
        ""
    };
    println!(
        "| round |{floor_columns} engine wall (s) | fastest floor wall / engine wall | engine peak RSS (MiB) |{duckdb_columns}"
    );
    println!(
        "|---|{}---|---|---|{}",
        "---|".repeat(inflaters.len()),
        if duckdb.is_some() { "---|---|" } else { "" }
    );
    let mut floors: Vec<Vec<f64>> = vec![Vec::new(); inflaters.len()];
    let mut engines = Vec::new();
    let mut rss = Vec::new();
    let mut duckdbs = Vec::new();
    let mut correct = true;
    for round in 1..=n {
        let walls: Vec<f64> = inflaters
            .iter()
            .map(|i| {
                measure(me, &["floor", d, i.name()])["wall"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            })
            .collect();
        let engine = measure(me, &["engine", d, out_arg]);
        correct &= ids_of(out)? == *expected;
        let wall = engine["wall"].as_f64().unwrap_or(f64::NAN);
        let peak = engine["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0;
        rss.push(peak);
        let fastest = walls.iter().copied().fold(f64::INFINITY, f64::min);
        let cells = walls
            .iter()
            .map(|w| format!(" {w:.3} |"))
            .collect::<Vec<_>>()
            .concat();
        let duckdb_cells = match duckdb {
            Some(form) => {
                let (run, _) = duckdb_form(d, runs.work.path(), form, expected)?;
                correct &= run["exact"].as_bool().unwrap_or(false);
                let duck = run["wall"].as_f64().unwrap_or(f64::NAN);
                duckdbs.push(duck);
                format!(" {duck:.3} | {:.3} |", wall / duck)
            }
            None => String::new(),
        };
        println!(
            "| {round} |{cells} {wall:.3} | {:.3} | {peak:.0} |{duckdb_cells}",
            fastest / wall
        );
        for (series, w) in floors.iter_mut().zip(walls) {
            series.push(w);
        }
        engines.push(wall);
    }
    // The floor of the ratio: the inflater whose median wall is lowest, pair by pair.
    let medians: Vec<f64> = floors.iter().map(|f| median(&mut f.clone())).collect();
    let best = (0..inflaters.len())
        .min_by(|a, b| medians[*a].total_cmp(&medians[*b]))
        .unwrap_or(0);
    let mut ratios: Vec<f64> = floors[best]
        .iter()
        .zip(&engines)
        .map(|(f, e)| f / e)
        .collect();
    let at_target = ratios.iter().filter(|r| **r >= FLOOR_TARGET).count();
    let (low, high) = (
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    println!();
    let engine_median = median(&mut engines.clone());
    println!(
        "median floor walls: {}; median engine wall {engine_median:.3} s; engine peak RSS {:.0}–{:.0} MiB",
        inflaters
            .iter()
            .zip(&medians)
            .map(|(i, m)| format!("{} {m:.3} s", i.name()))
            .collect::<Vec<_>>()
            .join(", "),
        rss.iter().copied().fold(f64::INFINITY, f64::min),
        rss.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    println!(
        "floor wall / engine wall, each floor, median of the pairs: {}",
        floors
            .iter()
            .zip(&inflaters)
            .map(|(f, i)| {
                let mut r: Vec<f64> = f.iter().zip(&engines).map(|(f, e)| f / e).collect();
                format!("{} {:.3}", i.name(), median(&mut r))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(form) = duckdb {
        let mut ratios: Vec<f64> = engines.iter().zip(&duckdbs).map(|(e, d)| e / d).collect();
        let duck_median = median(&mut duckdbs.clone());
        println!(
            "engine wall / DuckDB (form {form}) wall: median of the pairs {:.3}, {:.3}–{:.3}; of the medians {:.3} ({duck_median:.3} s); the engine {:.1}x faster (target <= {DUCKDB_TARGET})",
            median(&mut ratios),
            ratios[0],
            ratios[ratios.len() - 1],
            engine_median / duck_median,
            duck_median / engine_median,
        );
    }
    println!(
        "floor ({}, the fastest by median) wall / engine wall: median {:.3}, {low:.3}–{high:.3}, {at_target} of {n} pairs >= {FLOOR_TARGET} (target: >= {FLOOR_TARGET})",
        inflaters[best].name(),
        median(&mut ratios),
    );
    println!(
        "correctness: {}",
        if correct {
            "every engine run (and DuckDB's, in a race) reported exactly the generator's expected events"
        } else {
            "a run DIFFERED from the generator's expected events"
        }
    );
    Ok(correct)
}

/// Two ways of running the engine, compared pair by pair.
struct Pairing {
    /// What the table is about.
    title: &'static str,
    /// The subcommands run first and second in each pair.
    first: &'static str,
    second: &'static str,
    /// Their column names.
    labels: (&'static str, &'static str),
    /// The target of second / first.
    target: f64,
    /// What else every run checked, for the closing line.
    checked: &'static str,
}

/// `pairing`'s two runs alternately `n` times, each in its own process (on a cloud machine
/// whose speed wanders, only pairs taken back to back give a ratio worth reading): prints each
/// pair and the median ratio; `Ok(false)` when a run's rows differ from the generator's.
fn ab_pairs(dir: &Path, n: usize, pairing: &Pairing) -> Result<bool, Box<dyn std::error::Error>> {
    let runs = Runs::new(dir)?;
    let (me, d, out, out_arg) = (&runs.me, runs.trail.as_str(), &runs.out, runs.out_arg());
    let expected = &runs.expected;
    let (first_label, second_label) = pairing.labels;
    println!("{n} pairs: {}", pairing.title);
    println!();
    println!(
        "| pair | {first_label} (s) | {second_label} (s) | {second_label} / {first_label} | {second_label} peak RSS (MiB) |"
    );
    println!("|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let mut correct = true;
    for pair in 1..=n {
        let wall = |run: &serde_json::Value| run["wall"].as_f64().unwrap_or(f64::NAN);
        let first = wall(&measure(me, &[pairing.first, d, out_arg]));
        correct &= ids_of(out)? == *expected;
        let run = measure(me, &[pairing.second, d, out_arg]);
        correct &= ids_of(out)? == *expected;
        let second = wall(&run);
        let rss = run["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0;
        println!(
            "| {pair} | {first:.3} | {second:.3} | {:.3} | {rss:.0} |",
            second / first
        );
        ratios.push(second / first);
    }
    let median = median(&mut ratios);
    println!();
    println!(
        "{second_label} / {first_label}: median {median:.3}, {:.3}–{:.3} (target: <= {}){}; correctness: {}",
        ratios[0],
        ratios[ratios.len() - 1],
        pairing.target,
        pairing.checked,
        if correct {
            "every run exact"
        } else {
            "a run DIFFERED"
        }
    );
    Ok(correct)
}

/// The engine without, then with the change stage: what the stage costs (issue H's target:
/// at most 3 % of the engine's wall).
const STAGE_PAIRS: Pairing = Pairing {
    title: "the engine without, then with the change stage",
    first: "engine-raw",
    second: "engine",
    labels: ("without", "with"),
    target: 1.03,
    checked: "",
};

/// The engine without, then with log file verification (`report --verify`): what verifying
/// costs (issue J's target: at most 1.6× the plain scan's wall).
const VERIFY_PAIRS: Pairing = Pairing {
    title: "the engine without, then with verification against the digests",
    first: "engine",
    second: "engine-verify",
    labels: ("plain", "verified"),
    target: 1.6,
    checked: "; every file and digest verified in every run",
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["floor", dir] => floor(Path::new(dir), Inflater::ZlibRs).map(|()| true),
        ["floor", dir, name] => match Inflater::from_name(name) {
            Some(inflater) => floor(Path::new(dir), inflater).map(|()| true),
            None => Err(format!("no inflater {name:?}: zlib-rs, libdeflate or scan").into()),
        },
        ["engine", dir, out] => engine(Path::new(dir), Path::new(out), true).map(|()| true),
        ["engine-raw", dir, out] => engine(Path::new(dir), Path::new(out), false).map(|()| true),
        ["engine-verify", dir, out] => {
            engine_with(Path::new(dir), Path::new(out), true, true).map(|()| true)
        }
        [dir, "--verify-pairs", n] => match n.parse() {
            Ok(n) if n > 0 => ab_pairs(Path::new(dir), n, &VERIFY_PAIRS),
            _ => Err(format!("--verify-pairs takes a count, not {n:?}").into()),
        },
        [dir, "--stage-pairs", n] => match n.parse() {
            Ok(n) if n > 0 => ab_pairs(Path::new(dir), n, &STAGE_PAIRS),
            _ => Err(format!("--stage-pairs takes a count, not {n:?}").into()),
        },
        [dir] => bench(Path::new(dir), false),
        [dir, "--no-duckdb"] => bench(Path::new(dir), true),
        [dir, "--s3", s3] => bench_s3(Path::new(dir), s3),
        [dir, "--race", n] => match n.parse() {
            // The faster form (`bench-scan DIR` runs both): DuckDB's best against each floor
            // and the engine, round by round.
            Ok(n) if n > 0 => pairs(Path::new(dir), n, Some("narrow")),
            _ => Err(format!("--race takes a count, not {n:?}").into()),
        },
        [dir, "--pairs", n] => match n.parse() {
            Ok(n) if n > 0 => pairs(Path::new(dir), n, None),
            _ => Err(format!("--pairs takes a count, not {n:?}").into()),
        },
        _ => {
            eprintln!(
                "usage: bench-scan TRAIL_DIR [--no-duckdb | --pairs N | --race N | --stage-pairs N | --verify-pairs N | --s3 s3://BUCKET/PREFIX]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench-scan: {e}");
            ExitCode::FAILURE
        }
    }
}
