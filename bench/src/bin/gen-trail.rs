//! `gen-trail --out DIR [--size 1G] [--shape many-small|few-large] [--seed 42] [--accounts 3]
//! [--regions 2] [--days 7]`: writes a synthetic CloudTrail trail (see
//! `connect_audit_bench::synth`) and prints what it wrote: files, records, bytes, the median
//! and largest file compressed, the compression ratio and the JSON per record, so that the
//! shape can be checked.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use connect_audit_bench::synth::{Plan, Shape, generate};

fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn main() -> ExitCode {
    let mut out = None;
    let mut plan = Plan::new(1_000_000_000, 42);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        let ok = match (flag.as_str(), value.as_deref()) {
            ("--out", Some(v)) => {
                out = Some(PathBuf::from(v));
                true
            }
            ("--size", Some(v)) => parse_size(v).map(|b| plan.bytes = b).is_some(),
            ("--seed", Some(v)) => v.parse().map(|s| plan.seed = s).is_ok(),
            ("--accounts", Some(v)) => v.parse().map(|n| plan.accounts = n).is_ok(),
            ("--regions", Some(v)) => v.parse().map(|n| plan.regions = n).is_ok(),
            ("--days", Some(v)) => v.parse().map(|n| plan.days = n).is_ok(),
            ("--threads", Some(v)) => v.parse().map(|n| plan.threads = n).is_ok(),
            ("--shape", Some(v)) => Shape::from_name(v).map(|s| plan.shape = s).is_some(),
            _ => false,
        };
        if !ok {
            eprintln!("gen-trail: bad argument {flag}");
            return ExitCode::from(2);
        }
    }
    let Some(out) = out else {
        eprintln!(
            "usage: gen-trail --out DIR [--size 1G] [--shape many-small|few-large] [--seed 42] [--accounts 3] [--regions 2] [--days 7] [--threads 2]"
        );
        return ExitCode::from(2);
    };
    match generate(&plan, &out) {
        Ok(g) => {
            let (since, until) = plan.window();
            println!(
                "gen-trail: shape {} (gzip level {}): {} files, {} records, {:.1} MB JSON ({:.1} MB gzip, ratio {:.2}, {:.0} bytes of JSON per record); gzip: median file {:.1} kB, largest {:.2} MB, {} files above 10 MB; largest file {:.1} MB JSON; {} audited calls ({} in the default selection), window {since} .. {until}",
                plan.shape.name(),
                plan.shape.gzip_level(),
                g.files,
                g.records,
                mb(g.json_bytes),
                mb(g.gz_bytes),
                ratio(g.json_bytes, g.gz_bytes),
                ratio(g.json_bytes, g.records),
                mb(g.median_gz()) * 1000.0,
                mb(g.largest_gz()),
                g.files_above_gz(10_000_000),
                mb(g.largest_json),
                g.audited,
                g.expected_default
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-trail: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}
