//! The scan benchmark (not a timed test): in one run on the same files, the embedded engine
//! (JSON Lines to a file), DuckDB (`scripts/duckdb-scan.py`: `read_json` + `unnest(Records)`,
//! the same filter, CSV out) and the decompression floor (every file inflated, both cores,
//! output discarded). Each runs in its own process, so each peak RSS is its own.
//!
//! ```sh
//! cargo run --release -p connect-audit-bench --bin gen-trail -- --out /var/tmp/trail-1g --size 1G
//! cargo run --release -p connect-audit-bench --bin bench-scan -- /var/tmp/trail-1g
//! ```
//!
//! Prints a Markdown table: wall time, MB/s of uncompressed JSON, records/s, peak RSS, and
//! each one's ratio to the floor and the engine's to DuckDB; then checks that the engine
//! reported exactly the ids of `expected-default.txt` (exit 1 if not).
//!
//! Subcommands (run by the benchmark itself): `floor DIR`, `engine DIR OUT`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufRead as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
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

/// The uncompressed size a gzip member declares (ISIZE, its last 4 bytes).
fn gzip_isize(bytes: &[u8]) -> usize {
    let n = bytes.len();
    if n < 4 {
        return 0;
    }
    u32::from_le_bytes([bytes[n - 4], bytes[n - 3], bytes[n - 2], bytes[n - 1]]) as usize
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

/// The floor: inflate every file whole (gzip header skipped, raw deflate into a buffer of
/// the declared size), both cores, output discarded.
fn floor(dir: &Path) -> io::Result<()> {
    let files = trail_files(dir)?;
    let next = AtomicUsize::new(0);
    let total = Mutex::new(0u64);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut input = Vec::new();
                let mut output = Vec::new();
                let mut sum = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, _)) = files.get(i) else { break };
                    input.clear();
                    let Ok(bytes) = fs::read(path) else { continue };
                    input.extend_from_slice(&bytes);
                    let size = gzip_isize(&input);
                    output.clear();
                    output.reserve(size + 1);
                    // A gzip header without optional fields is 10 bytes (CloudTrail's are).
                    let mut inflate = flate2::Decompress::new(false);
                    let _ = inflate.decompress_vec(
                        &input[10..],
                        &mut output,
                        flate2::FlushDecompress::Finish,
                    );
                    sum += output.len() as u64;
                }
                *total
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) += sum;
            });
        }
    });
    let bytes = *total
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    println!(
        "{{\"wall\":{},\"bytes\":{bytes},\"rss_kib\":{}}}",
        started.elapsed().as_secs_f64(),
        peak_rss_kib()
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

#[allow(clippy::cast_precision_loss)]
fn bench(dir: &Path, skip_duckdb: bool) -> Result<bool, Box<dyn std::error::Error>> {
    let me = std::env::current_exe()?;
    let work = tempfile::tempdir()?;
    let files = trail_files(dir)?;
    let gz: u64 = files.iter().map(|(_, n)| n).sum();
    let d = dir.to_str().ok_or("the trail path is not UTF-8")?;
    let floor = measure(&me, &["floor", d]);
    let json_bytes = floor["bytes"].as_f64().unwrap_or(0.0);
    let engine_out = work.path().join("engine.jsonl");
    let engine = measure(&me, &["engine", d, engine_out.to_str().ok_or("path")?]);
    let records = engine["records_seen"].as_f64().unwrap_or(0.0);
    let duckdb = if skip_duckdb {
        None
    } else {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/duckdb-scan.py");
        let csv = work.path().join("duckdb.csv");
        let names: Vec<&str> = EventSelection::defaults().names().collect();
        Some(measure(
            Path::new("python3"),
            &[
                script.to_str().ok_or("path")?,
                d,
                csv.to_str().ok_or("path")?,
                &names.join(","),
            ],
        ))
    };
    println!(
        "trail: {} files, {:.1} MB gzip, {:.1} MB JSON, {} records; engine's structural pass: {}",
        files.len(),
        gz as f64 / 1e6,
        json_bytes / 1e6,
        records,
        connect_audit_query::simd_level(requested_simd())
    );
    println!();
    println!("| run | wall (s) | MB/s of JSON | records/s | peak RSS (MiB) | floor wall / wall |");
    println!("|---|---|---|---|---|---|");
    let floor_wall = floor["wall"].as_f64().unwrap_or(f64::NAN);
    let mut rows = vec![
        ("decompression floor (zlib-rs, 2 threads)", &floor),
        ("connect-audit engine", &engine),
    ];
    if let Some(d) = &duckdb {
        rows.push(("DuckDB (read_json + unnest)", d));
    }
    for (name, m) in rows {
        let wall = m["wall"].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {name} | {wall:.2} | {:.0} | {:.0} | {:.0} | {:.2} |",
            json_bytes / 1e6 / wall,
            records / wall,
            m["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            floor_wall / wall
        );
    }
    let engine_wall = engine["wall"].as_f64().unwrap_or(f64::NAN);
    if let Some(d) = &duckdb {
        let duck_wall = d["wall"].as_f64().unwrap_or(f64::NAN);
        println!();
        println!(
            "engine wall / DuckDB wall = {:.3} (target <= 0.167); floor wall / engine wall = {:.2} (target >= 0.75)",
            engine_wall / duck_wall,
            floor_wall / engine_wall
        );
        println!("DuckDB rows: {}", d["rows"]);
    }
    let expected = expected_ids(dir)?;
    let got = ids_of(&engine_out)?;
    let same = got == expected;
    println!(
        "correctness: engine reported {} events, the generator expects {} — {}",
        got.len(),
        expected.len(),
        if same { "identical" } else { "DIFFERENT" }
    );
    Ok(same)
}

/// What a series of runs of the engine shares: this program (each run is a process of its
/// own), the trail, the output file and the events the generator expects.
struct Runs {
    me: PathBuf,
    trail: String,
    _work: tempfile::TempDir,
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
            _work: work,
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

/// The floor and the engine run alternately `n` times, each in its own process: on a cloud
/// machine whose speed wanders from one minute to the next, only pairs taken back to back give
/// a ratio worth reading. Prints each pair, then the medians; `Ok(false)` when the engine's
/// output differs from the generator's expected events in any run.
fn pairs(dir: &Path, n: usize) -> Result<bool, Box<dyn std::error::Error>> {
    let runs = Runs::new(dir)?;
    let (me, d, out, out_arg) = (&runs.me, runs.trail.as_str(), &runs.out, runs.out_arg());
    let expected = &runs.expected;
    println!(
        "{n} floor/engine pairs; engine's structural pass: {}",
        connect_audit_query::simd_level(requested_simd())
    );
    println!();
    println!(
        "| pair | floor wall (s) | engine wall (s) | floor wall / engine wall | engine peak RSS (MiB) |"
    );
    println!("|---|---|---|---|---|");
    let (mut floors, mut engines, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut correct = true;
    for pair in 1..=n {
        let floor = measure(me, &["floor", d])["wall"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let engine = measure(me, &["engine", d, out_arg]);
        correct &= ids_of(out)? == *expected;
        let wall = engine["wall"].as_f64().unwrap_or(f64::NAN);
        let rss = engine["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0;
        println!(
            "| {pair} | {floor:.3} | {wall:.3} | {:.3} | {rss:.0} |",
            floor / wall
        );
        floors.push(floor);
        engines.push(wall);
        ratios.push(floor / wall);
    }
    let at_target = ratios.iter().filter(|r| **r >= 0.75).count();
    let (low, high) = (
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    println!();
    println!(
        "median floor wall {:.3} s, median engine wall {:.3} s; floor wall / engine wall: median {:.3}, {low:.3}–{high:.3}, {at_target} of {n} pairs >= 0.75 (target: >= 0.75)",
        median(&mut floors),
        median(&mut engines),
        median(&mut ratios),
    );
    println!(
        "correctness: {}",
        if correct {
            "every engine run reported exactly the generator's expected events"
        } else {
            "an engine run DIFFERED from the generator's expected events"
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
        ["floor", dir] => floor(Path::new(dir)).map(|()| true).map_err(Into::into),
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
        [dir, "--pairs", n] => match n.parse() {
            Ok(n) if n > 0 => pairs(Path::new(dir), n),
            _ => Err(format!("--pairs takes a count, not {n:?}").into()),
        },
        _ => {
            eprintln!(
                "usage: bench-scan TRAIL_DIR [--no-duckdb | --pairs N | --stage-pairs N | --verify-pairs N | --s3 s3://BUCKET/PREFIX]"
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
