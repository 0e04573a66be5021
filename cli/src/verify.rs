//! CloudTrail log file integrity (issue J): `connect-audit verify` and `report --verify`.
//!
//! The scan computes each log file's SHA-256 while it inflates it ([`ScanOptions::hash_files`]);
//! here the digests of the same days are found beside the log files
//! (`…/<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/`), read with their `signature`
//! metadata, and checked with the CloudTrail public keys of each trail's home region
//! (`ListPublicKeys`, once per region and run) by [`connect_audit_core::integrity::verify`].
//! A local copy has no metadata: hashes and the chain are checked, signatures not.
//!
//! [`ScanOptions::hash_files`]: connect_audit_query::local::ScanOptions::hash_files

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Context as _;
use connect_audit_core::integrity::{FileVerdict, IntegritySummary, LogSeen, PublicKey, verify};
use connect_audit_core::{Location, Store, Window};
use connect_audit_query::integrity::{home_region, read_digests};
use jiff::Timestamp;
use jiff::civil::Date;

/// What a verification found.
pub struct Integrity {
    /// Per file.
    pub files: Vec<FileVerdict>,
    /// In total.
    pub summary: IntegritySummary,
}

impl Integrity {
    /// The files not verified, one line each: `modified log AWSLogs/…: why`.
    fn failures(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| f.verdict != connect_audit_core::integrity::Verdict::Verified)
            .map(|f| {
                let detail = f.detail.as_deref().map(|d| format!(": {d}"));
                format!(
                    "{} {} {}{}",
                    f.verdict.as_str(),
                    f.kind,
                    f.key,
                    detail.unwrap_or_default()
                )
            })
            .collect()
    }

    /// What the HTML header shows: the summary line and the files not verified.
    pub fn context(&self) -> (String, Vec<String>) {
        (self.summary.line(), self.failures())
    }

    /// The summary's `integrity:` line, and a line per file that is not verified (at most
    /// 20; the JSON Lines of `verify --output` hold them all).
    pub fn lines(&self, t: &mut String) {
        let _ = writeln!(t, "  integrity: {}", self.summary.line());
        if self.summary.digests == 0 && self.summary.log_files > 0 {
            let _ = writeln!(
                t,
                "  integrity: no digest file beside the log files (CloudTrail-Digest/): is log file validation on for the trail? (aws cloudtrail update-trail --enable-log-file-validation)"
            );
        }
        for gap in &self.summary.logging_gaps {
            let _ = writeln!(
                t,
                "  integrity: logging stopped and started again: no digest for {gap} (CloudTrail's own record)"
            );
        }
        let failures = self.failures();
        for f in failures.iter().take(20) {
            let _ = writeln!(t, "  integrity: {f}");
        }
        if failures.len() > 20 {
            let _ = writeln!(t, "  integrity: … and {} more", failures.len() - 20);
        }
    }
}

/// Verifies the log files the scan read (`hashes`) against the digests of `window`'s
/// delivery days, fetching public keys with `cloudtrail` (`None`: from no S3 store).
pub async fn check(
    trail: &Store,
    location: &Location,
    hashes: &BTreeMap<String, LogSeen>,
    window: Window,
    sdk: Option<&aws_config::SdkConfig>,
) -> anyhow::Result<Integrity> {
    let days = window.delivery_days();
    let bucket = match location {
        Location::S3 { bucket, .. } => Some(bucket.as_str()),
        Location::Local(_) => None,
    };
    let digests = read_digests(trail, bucket, hashes, days).await?;
    // In S3 every digest must carry its signature: one without it is invalid, not a reason
    // to check nothing (a local copy has no metadata at all).
    let signed = bucket.is_some();
    let public_keys = match (signed, sdk) {
        (true, Some(sdk)) => {
            let regions: BTreeSet<&str> =
                digests.iter().filter_map(|d| home_region(&d.key)).collect();
            let from = day_start(days.0);
            let until = day_start(days.1.tomorrow().unwrap_or(days.1))
                + jiff::SignedDuration::from_hours(2);
            let mut all = Vec::new();
            for region in regions {
                all.extend(list_public_keys(sdk, region, from, until).await?);
            }
            Some(all)
        }
        _ => None,
    };
    let (files, summary) = verify(&digests, hashes, public_keys.as_deref(), days);
    Ok(Integrity { files, summary })
}

fn day_start(day: Date) -> Timestamp {
    day.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .map_or(Timestamp::MIN, |z| z.timestamp())
}

/// The DER of a `ListPublicKeys` value: CloudTrail's blob holds the DER in base64 (the AWS
/// CLI's validator decodes it the same way); raw DER (a SEQUENCE, 0x30) is taken as it is.
fn key_der(value: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    if value.first() == Some(&0x30) {
        return value.to_vec();
    }
    base64::engine::general_purpose::STANDARD
        .decode(value.trim_ascii())
        .unwrap_or_else(|_| value.to_vec())
}

/// The CloudTrail public keys of `region` valid at some time in `from .. until`.
async fn list_public_keys(
    sdk: &aws_config::SdkConfig,
    region: &str,
    from: Timestamp,
    until: Timestamp,
) -> anyhow::Result<Vec<PublicKey>> {
    let config = aws_sdk_cloudtrail::config::Builder::from(sdk)
        .region(aws_sdk_cloudtrail::config::Region::new(region.to_owned()))
        .build();
    let client = aws_sdk_cloudtrail::Client::from_conf(config);
    let time = |t: Timestamp| aws_sdk_cloudtrail::primitives::DateTime::from_secs(t.as_second());
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_public_keys()
            .start_time(time(from))
            .end_time(time(until))
            .set_next_token(token.clone())
            .send()
            .await
            .with_context(|| format!("CloudTrail ListPublicKeys in {region} failed"))?;
        for k in page.public_key_list() {
            let stamp = |t: Option<&aws_sdk_cloudtrail::primitives::DateTime>| {
                t.and_then(|t| Timestamp::from_second(t.secs()).ok())
            };
            let (Some(fingerprint), Some(value), Some(valid_from), Some(valid_until)) = (
                k.fingerprint(),
                k.value(),
                stamp(k.validity_start_time()),
                stamp(k.validity_end_time()),
            ) else {
                continue;
            };
            keys.push(PublicKey {
                fingerprint: fingerprint.to_owned(),
                der: key_der(value.as_ref()),
                valid_from,
                valid_until,
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(keys);
        }
    }
}

/// Merges the flags of `verify` over the layered config.
fn merge_flags(mut figment: figment::Figment, args: &crate::args::VerifyArgs) -> figment::Figment {
    use connect_audit_config::flag;
    for (key, value) in [
        ("report.trail", &args.trail),
        ("report.since", &args.since),
        ("report.until", &args.until),
    ] {
        if let Some(v) = value {
            figment = flag(figment, key, v);
        }
    }
    if args.tolerate_integrity {
        figment = flag(figment, "report.tolerate_integrity", true);
    }
    figment
}

/// Counts the records of the scan, which `verify` does not write.
#[derive(Default)]
struct Discard;

impl connect_audit_query::ScanSink for Discard {
    fn records(
        &mut self,
        _batch: Vec<connect_audit_core::AuditRecord>,
    ) -> Result<(), connect_audit_query::SinkError> {
        Ok(())
    }
}

/// `connect-audit verify`: every log file of the window's days read and hashed, checked
/// against the digests; the summary on stderr, a JSON line per file with `--output`.
pub fn command(
    figment: figment::Figment,
    args: &crate::args::VerifyArgs,
    quiet: bool,
) -> anyhow::Result<crate::ExitCode> {
    use connect_audit_config::{ConfigError, Settings};
    let started = std::time::Instant::now();
    let figment = merge_flags(figment, args);
    let settings: Settings = figment.extract().map_err(ConfigError::from)?;
    let valid = settings.validate(&figment, Timestamp::now())?;
    let reporter = crate::terminal::Reporter::new(quiet);
    let runtime = crate::athena::runtime()?;
    let sdk = match valid.trail {
        Location::S3 { .. } => Some(runtime.block_on(crate::aws::sdk_config(&settings.snapshot))),
        Location::Local(_) => None,
    };
    let s3 = sdk.as_ref().map(crate::aws::s3_client);
    let trail = Store::open(&valid.trail, s3.as_ref())?;
    let mut options = crate::report::scan_options(&settings, &valid);
    options.hash_files = true;
    let scanner = connect_audit_query::local::TrailScanner::new(
        trail.clone(),
        connect_audit_core::Directory::new(),
        options,
    )
    .with_runtime(runtime.handle().clone());
    let summary = scanner
        .scan(&mut Discard)
        .with_context(|| format!("scan of {} failed", valid.trail))?;
    reporter.finish();
    let integrity = runtime.block_on(check(
        &trail,
        &valid.trail,
        &summary.hashes,
        valid.window,
        sdk.as_ref(),
    ))?;
    if let Some(path) = &args.output {
        let mut lines = Vec::new();
        for f in &integrity.files {
            serde_json::to_writer(&mut lines, f)?;
            lines.push(b'\n');
        }
        if path == "-" {
            crate::terminal::data(&String::from_utf8_lossy(&lines));
        } else {
            let mut file = connect_audit_core::AtomicFile::create(std::path::Path::new(path))?;
            std::io::Write::write_all(&mut file, &lines)
                .with_context(|| format!("cannot write {path}"))?;
            file.commit()?;
        }
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "connect-audit: verify of {} for {} .. {} (the files delivered on {} .. {}), {:.1}s",
        valid.trail,
        valid.window.since,
        valid.window.until,
        valid.window.delivery_days().0,
        valid.window.delivery_days().1,
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        t,
        "  files:   {} found, {} read ({:.1} MiB), {} bad",
        summary.files_found,
        summary.files_read,
        crate::report::mib(summary.bytes_read),
        summary.files_bad
    );
    integrity.lines(&mut t);
    if let Some(path) = &args.output {
        let _ = writeln!(t, "  output:  {path} ({} files)", integrity.files.len());
    }
    reporter.summary(&t);
    Ok(
        if integrity.summary.all_verified() || settings.report.tolerate_integrity {
            crate::ExitCode::Success
        } else {
            crate::ExitCode::Integrity
        },
    )
}
