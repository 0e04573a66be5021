//! A synthetic CloudTrail trail, deterministic by seed: what a busy account writes, with a
//! thin layer of audited Connect calls in it.
//!
//! - Records of many services with the full CloudTrail field set: S3 data events (most of
//!   them, as in real trails), STS, EC2, KMS, IAM, Lambda, and Connect reads.
//! - About 0.1 % audited Connect calls, every event of the catalogue in turn (default and
//!   opt-in groups), from the admin website or an IAM user, some failed.
//! - The standard layout and file names, `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/
//!   <account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<16 chars>.json.gz`, several accounts,
//!   regions and days, digest files beside them.
//! - Two shapes of trail ([`Shape`]): many small files with some of several MB and a few of
//!   tens of MB (uncompressed), like the busy regions of a real trail (the default); or few
//!   large ones (about 250 files per GB of JSON, a median of 60–70 kB gzip, 2 % above 10 MB
//!   gzip, the largest about 20 MB gzip), compressed less (6–7×), like a trail whose files
//!   are written by a few busy principals.
//!
//! The generator also writes `expected-default.txt`: the event ids the engine must report with
//! the default event selection over [`Plan::window`], one per line, sorted.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use connect_audit_core::catalogue::GROUPS;

/// The first day of every generated trail (UTC midnight), as Unix seconds: 2024-05-01.
pub const FIRST_DAY: i64 = 1_714_521_600;
const DAY: i64 = 86_400;

/// How the trail's bytes are spread over its files, and how hard they are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// Many files, most of 20 kB–1 MB of JSON, 8 % of 1–10 MB, 2 % of 20–60 MB (about 600
    /// files per GB), drawn at random; gzip level 6 (about 8×).
    #[default]
    ManySmall,
    /// Few files (about 250 per GB of JSON), their sizes the quantiles of a fixed distribution
    /// so that any size has the same shape: 80.7 % of 50 kB–1.5 MB (log-uniform: median about
    /// 415 kB, 60–70 kB gzip), 17.3 % of 2–16 MB, 2 % of 70–140 MB (above 10 MB gzip; about
    /// 20 MB gzip for the largest at 1 GB); gzip level [`FEW_LARGE_LEVEL`] (6–7×).
    FewLarge,
}

/// The gzip level of [`Shape::FewLarge`]: the lowest whose ratio on these records is 6–7×
/// (measured with `gen-trail --shape few-large`; BENCHMARKS.md).
pub const FEW_LARGE_LEVEL: u32 = 2;

impl Shape {
    /// The shape named `many-small` or `few-large`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "many-small" => Some(Self::ManySmall),
            "few-large" => Some(Self::FewLarge),
            _ => None,
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::ManySmall => "many-small",
            Self::FewLarge => "few-large",
        }
    }

    /// The gzip level its files are written with.
    pub fn gzip_level(self) -> u32 {
        match self {
            Self::ManySmall => 6,
            Self::FewLarge => FEW_LARGE_LEVEL,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Uncompressed JSON bytes to write, about.
    pub bytes: u64,
    /// The seed: the same plan and seed give the same files, byte for byte.
    pub seed: u64,
    /// Accounts (12-digit ids are derived from the index).
    pub accounts: usize,
    /// Regions, taken from a fixed list.
    pub regions: usize,
    /// Days, from 2024-05-01.
    pub days: usize,
    /// Audited Connect calls per million records.
    pub audited_per_million: u32,
    /// Writer threads.
    pub threads: usize,
    /// How the bytes are spread over files.
    pub shape: Shape,
}

impl Plan {
    /// A plan for `bytes` of JSON with the defaults: 3 accounts, 2 regions, 7 days, 0.1 %.
    pub fn new(bytes: u64, seed: u64) -> Self {
        Self {
            bytes,
            seed,
            accounts: 3,
            regions: 2,
            days: 7,
            audited_per_million: 1000,
            threads: 2,
            shape: Shape::ManySmall,
        }
    }

    /// The window every generated event falls in: `[2024-05-01, 2024-05-01 + days)`, as
    /// `(since, until)` text.
    pub fn window(&self) -> (String, String) {
        let day = |n: i64| date_text(FIRST_DAY + n * DAY);
        (day(0), day(i64::try_from(self.days).unwrap_or(1)))
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generated {
    /// Trail files written (digests not counted).
    pub files: usize,
    /// Records written.
    pub records: u64,
    /// Uncompressed JSON bytes.
    pub json_bytes: u64,
    /// Compressed bytes on disk.
    pub gz_bytes: u64,
    /// Audited Connect calls written (every group).
    pub audited: u64,
    /// Of those, in the default selection: the ids in `expected-default.txt`.
    pub expected_default: u64,
    /// The largest file, uncompressed.
    pub largest_json: u64,
    /// The size of every file, compressed, smallest first.
    pub gz_sizes: Vec<u64>,
}

impl Generated {
    /// The median compressed file (the upper one of an even count).
    pub fn median_gz(&self) -> u64 {
        self.gz_sizes
            .get(self.gz_sizes.len() / 2)
            .copied()
            .unwrap_or(0)
    }

    /// The largest compressed file.
    pub fn largest_gz(&self) -> u64 {
        self.gz_sizes.last().copied().unwrap_or(0)
    }

    /// Files larger than `bytes` compressed.
    pub fn files_above_gz(&self, bytes: u64) -> usize {
        self.gz_sizes.iter().filter(|n| **n > bytes).count()
    }
}

const REGIONS: [&str; 6] = [
    "us-east-1",
    "ap-northeast-1",
    "eu-west-1",
    "us-west-2",
    "eu-central-1",
    "ap-southeast-2",
];

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }

    /// A random UUID (version 4 layout).
    fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn alnum(&mut self, n: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n).map(|_| char::from(*self.pick(CHARS))).collect()
    }

    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[usize::try_from(self.below(16)).unwrap_or(0)]))
            .collect()
    }
}

/// One file to write: where, when it was delivered, and how big.
#[derive(Debug, Clone)]
struct FileSpec {
    account: String,
    region: &'static str,
    /// Delivery time, Unix seconds.
    delivered: i64,
    json_bytes: u64,
    seed: u64,
    name_suffix: String,
    /// The plan's shape: [`Shape::FewLarge`] writes STS's full AssumeRole response.
    shape: Shape,
}

fn account_id(index: usize) -> String {
    format!(
        "{:012}",
        111_122_223_333_u64 + 111_111_111_111 * index as u64
    )
}

fn date_text(t: i64) -> String {
    let (y, m, d) = civil(t);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Year, month, day of a Unix time (proleptic Gregorian, UTC; Howard Hinnant's
/// civil-from-days).
#[allow(clippy::many_single_char_names)]
fn civil(t: i64) -> (i64, i64, i64) {
    let z = t.div_euclid(DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2024-05-01T09:14:02Z`.
#[allow(clippy::many_single_char_names)]
fn time_text(t: i64) -> String {
    let (y, m, d) = civil(t);
    let s = t.rem_euclid(DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// The files of a plan, in a fixed order.
fn file_specs(plan: &Plan) -> Vec<FileSpec> {
    match plan.shape {
        Shape::ManySmall => many_small_specs(plan),
        Shape::FewLarge => few_large_specs(plan),
    }
}

/// A file's place and name: account and region (one of the plan's), a delivery time in the
/// window, its seed and the random tail of its name.
fn place(rng: &mut Rng, plan: &Plan, json_bytes: u64) -> FileSpec {
    let slots = plan.accounts * plan.regions;
    let days = i64::try_from(plan.days.max(1)).unwrap_or(1);
    let slot = usize::try_from(rng.below(slots as u64)).unwrap_or(0);
    // Delivered 15 minutes or more into the window, so every event (up to 15 minutes older
    // than its file) falls inside it.
    let span = u64::try_from(days * DAY - 16 * 60).unwrap_or(1);
    let delivered = FIRST_DAY + 15 * 60 + i64::try_from(rng.below(span)).unwrap_or(0);
    FileSpec {
        account: account_id(slot / plan.regions),
        region: REGIONS[(slot % plan.regions) % REGIONS.len()],
        delivered,
        json_bytes,
        seed: rng.next_u64(),
        name_suffix: rng.alnum(16),
        shape: plan.shape,
    }
}

/// [`Shape::ManySmall`]: sizes drawn at random until the plan's bytes are written.
fn many_small_specs(plan: &Plan) -> Vec<FileSpec> {
    let mut rng = Rng::new(plan.seed);
    let mut specs = Vec::new();
    let mut left = plan.bytes;
    while left > 0 {
        let roll = rng.below(1000);
        let size = if roll < 20 {
            20_000_000 + rng.below(40_000_000)
        } else if roll < 100 {
            1_000_000 + rng.below(9_000_000)
        } else {
            20_000 + rng.below(1_000_000)
        }
        .min(left.max(2_000));
        left = left.saturating_sub(size);
        specs.push(place(&mut rng, plan, size));
    }
    specs
}

/// The JSON size of [`Shape::FewLarge`]'s file at quantile `u` (in `0..1`), before scaling.
#[allow(clippy::cast_precision_loss)]
fn few_large_quantile(u: f64) -> f64 {
    const SMALL: f64 = 0.807;
    const LARGE: f64 = 0.98;
    if u < SMALL {
        // Log-uniform over 50 kB–1.5 MB.
        50e3 * 30f64.powf(u / SMALL)
    } else if u < LARGE {
        2e6 + (u - SMALL) / (LARGE - SMALL) * 14e6
    } else {
        70e6 + (u - LARGE) / (1.0 - LARGE) * 70e6
    }
}

/// The mean of [`few_large_quantile`] over `0..1`, about: one file per this many bytes.
const FEW_LARGE_MEAN: f64 = 4.0e6;

/// [`Shape::FewLarge`]: one file per 4 MB of JSON, file `i` of `n` the size at quantile
/// `(i + ½) / n`, all scaled so that they add up to the plan's bytes. Places and contents are
/// random (by the seed); the sizes are not, so every size of trail has the same shape.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn few_large_specs(plan: &Plan) -> Vec<FileSpec> {
    let mut rng = Rng::new(plan.seed);
    let n = ((plan.bytes as f64 / FEW_LARGE_MEAN).round() as usize).max(1);
    let sizes: Vec<f64> = (0..n)
        .map(|i| few_large_quantile((i as f64 + 0.5) / n as f64))
        .collect();
    let scale = plan.bytes as f64 / sizes.iter().sum::<f64>();
    sizes
        .into_iter()
        .map(|size| {
            let json_bytes = ((size * scale) as u64).max(2_000);
            place(&mut rng, plan, json_bytes)
        })
        .collect()
}

/// The audited event names, every group's, in catalogue order.
fn audited_names() -> Vec<(&'static str, bool)> {
    GROUPS
        .iter()
        .flat_map(|g| g.events.iter().map(move |e| (*e, g.default)))
        .collect()
}

/// Writes the trail of `plan` under `out` (which gets `AWSLogs/` and `expected-default.txt`).
pub fn generate(plan: &Plan, out: &Path) -> io::Result<Generated> {
    let specs = file_specs(plan);
    // Written largest first, so that no thread is left alone with a large file at the end
    // (each file's bytes depend only on its spec).
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(specs[*i].json_bytes));
    let level = flate2::Compression::new(plan.shape.gzip_level());
    let names = audited_names();
    let next = AtomicUsize::new(0);
    let totals = Mutex::new((Generated::default(), Vec::<String>::new()));
    // Per file: its account, region, delivery time, key and the SHA-256 of its JSON, for the
    // digests.
    let listed = Mutex::new(Vec::<(String, &'static str, i64, String, String)>::new());
    let threads = plan.threads.max(1);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for _ in 0..threads {
            handles.push(scope.spawn(|| -> io::Result<()> {
                let mut json = String::new();
                let mut gz = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = order.get(i).map(|i| &specs[*i]) else {
                        return Ok(());
                    };
                    let mut file = FileOut::default();
                    write_file_json(plan, spec, &names, &mut json, &mut file);
                    gz.clear();
                    let mut encoder = flate2::write::GzEncoder::new(&mut gz, level);
                    encoder.write_all(json.as_bytes())?;
                    encoder.finish()?;
                    let key = trail_path(spec);
                    let path = out.join(&key);
                    fs::create_dir_all(path.parent().unwrap_or(out))?;
                    fs::write(&path, &gz)?;
                    listed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((
                            spec.account.clone(),
                            spec.region,
                            spec.delivered,
                            key.display().to_string(),
                            connect_audit_core::integrity::sha256_hex(json.as_bytes()),
                        ));
                    let mut t = totals
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    t.0.files += 1;
                    t.0.records += file.records;
                    t.0.json_bytes += json.len() as u64;
                    t.0.gz_bytes += gz.len() as u64;
                    t.0.audited += file.audited;
                    t.0.largest_json = t.0.largest_json.max(json.len() as u64);
                    t.0.gz_sizes.push(gz.len() as u64);
                    t.1.append(&mut file.expected);
                }
            }));
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("writer panicked")))
            })
            .collect::<io::Result<Vec<()>>>()
    })?;
    write_digests(
        plan,
        out,
        &listed
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )?;
    let (mut generated, mut expected) = totals
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    expected.sort();
    generated.gz_sizes.sort_unstable();
    generated.expected_default = expected.len() as u64;
    let mut text = expected.join("\n");
    text.push('\n');
    fs::write(out.join("expected-default.txt"), text)?;
    Ok(generated)
}

fn trail_path(spec: &FileSpec) -> PathBuf {
    let (y, m, d) = civil(spec.delivered);
    let s = spec.delivered.rem_euclid(DAY);
    PathBuf::from(format!(
        "AWSLogs/{a}/CloudTrail/{r}/{y:04}/{m:02}/{d:02}/{a}_CloudTrail_{r}_{y:04}{m:02}{d:02}T{:02}{:02}Z_{}.json.gz",
        s / 3600,
        (s / 60) % 60,
        spec.name_suffix,
        a = spec.account,
        r = spec.region,
    ))
}

/// The hourly digest files of every account and region, as CloudTrail writes them: each lists
/// the files delivered in its hour with the SHA-256 of their JSON, and names the one before it
/// (its hash and signature; the signatures are a bench key's, and a local copy has no
/// metadata to hold them, so only the chain and the hashes can be checked here).
fn write_digests(
    plan: &Plan,
    out: &Path,
    files: &[(String, &'static str, i64, String, String)],
) -> io::Result<()> {
    use connect_audit_core::integrity::{Digest, DigestLogFile, sha256_hex};
    let key = connect_audit_tests::trail_digests::SigningKey::generate(
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    );
    for a in 0..plan.accounts {
        let account = account_id(a);
        for region in REGIONS.iter().take(plan.regions) {
            let bucket = format!("aws-cloudtrail-logs-{account}");
            let mut previous: Option<(String, String, String)> = None;
            let hours = i64::try_from(plan.days).unwrap_or(0) * 24;
            for h in 0..hours {
                let start = FIRST_DAY + h * 3600;
                let end = start + 3600;
                let (y, m, dd) = civil(end);
                let s = end.rem_euclid(DAY);
                let key_name = format!(
                    "AWSLogs/{account}/CloudTrail-Digest/{region}/{y:04}/{m:02}/{dd:02}/{account}_CloudTrail-Digest_{region}_connect-audit_{region}_{y:04}{m:02}{dd:02}T{:02}{:02}{:02}Z.json.gz",
                    s / 3600,
                    (s / 60) % 60,
                    s % 60
                );
                let log_files = files
                    .iter()
                    .filter(|f| f.0 == account && f.1 == *region && (start..end).contains(&f.2))
                    .map(|f| DigestLogFile {
                        s3_bucket: bucket.clone(),
                        s3_object: f.3.clone(),
                        hash_value: f.4.clone(),
                        hash_algorithm: "SHA-256".into(),
                        newest_event_time: None,
                        oldest_event_time: None,
                    })
                    .collect();
                let digest = Digest {
                    aws_account_id: account.clone(),
                    digest_start_time: time_text(start),
                    digest_end_time: time_text(end),
                    digest_s3_bucket: bucket.clone(),
                    digest_s3_object: key_name.clone(),
                    digest_public_key_fingerprint: key.fingerprint.clone(),
                    digest_signature_algorithm: "SHA256withRSA".into(),
                    newest_event_time: None,
                    oldest_event_time: None,
                    previous_digest_s3_bucket: previous.as_ref().map(|_| bucket.clone()),
                    previous_digest_s3_object: previous.as_ref().map(|p| p.0.clone()),
                    previous_digest_hash_value: previous.as_ref().map(|p| p.1.clone()),
                    previous_digest_hash_algorithm: previous.as_ref().map(|_| "SHA-256".into()),
                    previous_digest_signature: previous.as_ref().map(|p| p.2.clone()),
                    log_files,
                };
                let body = serde_json::to_vec(&digest).map_err(io::Error::other)?;
                let signature = key.sign(digest.string_to_sign(&body).as_bytes());
                previous = Some((key_name.clone(), sha256_hex(&body), signature));
                let path = out.join(&key_name);
                fs::create_dir_all(path.parent().unwrap_or(out))?;
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&body)?;
                fs::write(path, gz.finish()?)?;
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct FileOut {
    records: u64,
    audited: u64,
    expected: Vec<String>,
}

/// Fills `json` with one file's `{"Records":[…]}`.
fn write_file_json(
    plan: &Plan,
    spec: &FileSpec,
    names: &[(&'static str, bool)],
    json: &mut String,
    out: &mut FileOut,
) {
    let mut rng = Rng::new(spec.seed);
    json.clear();
    json.push_str("{\"Records\":[");
    let mut first = true;
    while (json.len() as u64) < spec.json_bytes {
        if !first {
            json.push(',');
        }
        first = false;
        let time = spec.delivered - 1 - i64::try_from(rng.below(15 * 60)).unwrap_or(0);
        let id = rng.uuid();
        if rng.below(1_000_000) < u64::from(plan.audited_per_million) {
            let (name, default) = *rng.pick(names);
            connect_call(&mut rng, json, spec, name, time, &id);
            out.audited += 1;
            if default {
                out.expected.push(id);
            }
        } else {
            noise(&mut rng, json, spec, time, &id);
        }
        out.records += 1;
    }
    json.push_str("]}");
}

const AGENTS: [&str; 5] = [
    "aws-sdk-java/2.25.6 Linux/5.10.210-201.852.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. exec-env/AWS_ECS_FARGATE io/sync http/Apache cfg/retry-mode/standard",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10.213-201.855.amzn2.x86_64 md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69",
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1016-aws exe/x86_64.ubuntu.22 prompt/off command/s3.cp",
    "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.660 Linux/5.10.210-179.855.amzn2int.x86_64]",
    "aws-sdk-go-v2/1.25.3 os/linux lang/go#1.21.8 md/GOOS#linux md/GOARCH#amd64 api/kms#1.29.2",
];

/// The common tail of every record: ids, account, TLS details.
fn tail(
    rng: &mut Rng,
    json: &mut String,
    spec: &FileSpec,
    id: &str,
    read_only: bool,
    category: &str,
) {
    let _ = write!(
        json,
        r#","requestID":"{}","eventID":"{id}","readOnly":{read_only},"eventType":"AwsApiCall","managementEvent":{},"recipientAccountId":"{}","eventCategory":"{category}","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"{}.amazonaws.com"}}}}"#,
        rng.alnum(20).to_uppercase(),
        category == "Management",
        spec.account,
        spec.region,
    );
}

fn role_identity(rng: &mut Rng, json: &mut String, account: &str, role: &str, session: &str) {
    let _ = write!(
        json,
        r#""userIdentity":{{"type":"AssumedRole","principalId":"AROA{}:{session}","arn":"arn:aws:sts::{account}:assumed-role/{role}/{session}","accountId":"{account}","accessKeyId":"ASIA{}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROA{}","arn":"arn:aws:iam::{account}:role/{role}","accountId":"{account}","userName":"{role}"}},"webIdFederationData":{{}},"attributes":{{"creationDate":"2024-05-01T00:00:00Z","mfaAuthenticated":"false"}}}}}}"#,
        rng.alnum(17).to_uppercase(),
        rng.alnum(16).to_uppercase(),
        rng.alnum(17).to_uppercase(),
    );
}

/// A record of another service (or a Connect read), never audited by default.
fn noise(rng: &mut Rng, json: &mut String, spec: &FileSpec, time: i64, id: &str) {
    let account = &spec.account;
    let region = spec.region;
    let kind = rng.below(100);
    let (source, name, read_only, category) = match kind {
        0..=59 => (
            "s3",
            *rng.pick(&["GetObject", "PutObject", "HeadObject"]),
            true,
            "Data",
        ),
        60..=69 => ("sts", "AssumeRole", true, "Management"),
        70..=79 => (
            "kms",
            *rng.pick(&["Decrypt", "GenerateDataKey"]),
            true,
            "Management",
        ),
        80..=87 => (
            "ec2",
            *rng.pick(&["DescribeInstances", "DescribeVolumes"]),
            true,
            "Management",
        ),
        88..=92 => ("lambda", "Invoke", false, "Data"),
        93..=95 => (
            "iam",
            *rng.pick(&["GetRole", "ListPolicies", "CreateUser"]),
            true,
            "Management",
        ),
        _ => (
            "connect",
            *rng.pick(&["ListUsers", "DescribeUser", "ListQueues"]),
            true,
            "Management",
        ),
    };
    let _ = write!(json, r#"{{"eventVersion":"1.10","#);
    let session = format!("i-{}", rng.hex(17));
    role_identity(rng, json, account, "app-runtime-role", &session);
    let _ = write!(
        json,
        r#","eventTime":"{}","eventSource":"{source}.amazonaws.com","eventName":"{name}","awsRegion":"{region}","sourceIPAddress":"10.{}.{}.{}","userAgent":"{}","#,
        time_text(time),
        rng.below(256),
        rng.below(256),
        rng.below(256),
        rng.pick(&AGENTS),
    );
    match source {
        "s3" => {
            let bucket = format!("app-data-{account}-{region}");
            let key = format!("tenants/{}/objects/{}.json", rng.below(5000), rng.uuid());
            let _ = write!(
                json,
                r#""requestParameters":{{"bucketName":"{bucket}","Host":"{bucket}.s3.{region}.amazonaws.com","key":"{key}","x-amz-checksum-mode":"ENABLED"}},"responseElements":null,"additionalEventData":{{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":0,"AuthenticationMethod":"AuthHeader","x-amz-id-2":"{}","bytesTransferredOut":{}}},"resources":[{{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::{bucket}/{key}"}},{{"accountId":"{account}","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::{bucket}"}}]"#,
                rng.alnum(76),
                rng.below(200_000),
            );
        }
        // STS's answer in full, as CloudTrail logs AssumeRole: the temporary credentials with
        // their session token (base64, hundreds of characters), the assumed role's ids, and
        // the role as the resource. Only in the few-large shape, whose files are compressed
        // 6–7× as its real counterpart's are (the many-small trail stays as it was).
        "sts" if spec.shape == Shape::FewLarge => {
            let role = format!("app-{}", rng.below(40));
            let role_session = format!("{role}-{}", rng.below(1_000_000));
            let token_length = 240 + rng.below(200);
            let token: String = (0..token_length)
                .map(|_| {
                    char::from(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                            [usize::try_from(rng.below(64)).unwrap_or(0)],
                    )
                })
                .collect();
            let _ = write!(
                json,
                r#""requestParameters":{{"roleArn":"arn:aws:iam::{account}:role/{role}","roleSessionName":"{role_session}","durationSeconds":3600}},"responseElements":{{"credentials":{{"accessKeyId":"ASIA{}","sessionToken":"IQoJb3JpZ2luX2VjE{token}","expiration":"{}"}},"assumedRoleUser":{{"assumedRoleId":"AROA{}:{role_session}","arn":"arn:aws:sts::{account}:assumed-role/{role}/{role_session}"}}}},"resources":[{{"accountId":"{account}","type":"AWS::IAM::Role","ARN":"arn:aws:iam::{account}:role/{role}"}}]"#,
                rng.alnum(16).to_uppercase(),
                time_text(time + 3600),
                rng.alnum(17).to_uppercase(),
            );
        }
        "kms" => {
            let _ = write!(
                json,
                r#""requestParameters":{{"encryptionAlgorithm":"SYMMETRIC_DEFAULT","keyId":"arn:aws:kms:{region}:{account}:key/{}"}},"responseElements":null,"resources":[{{"accountId":"{account}","type":"AWS::KMS::Key","ARN":"arn:aws:kms:{region}:{account}:key/{}"}}]"#,
                rng.uuid(),
                rng.uuid(),
            );
        }
        "connect" => {
            let _ = write!(
                json,
                r#""requestParameters":{{"InstanceId":"{}","MaxResults":100,"maxResults":100}},"responseElements":null"#,
                rng.uuid(),
            );
        }
        _ => {
            let _ = write!(
                json,
                r#""requestParameters":{{"roleArn":"arn:aws:iam::{account}:role/app-{}","roleSessionName":"{session}","durationSeconds":3600,"filters":[{{"name":"tag:team","values":["t{}"]}}]}},"responseElements":null"#,
                rng.below(40),
                rng.below(9),
            );
        }
    }
    tail(rng, json, spec, id, read_only, category);
}

/// An audited Connect call: every id field a target rule may read, in the request and (for
/// creations) the response.
fn connect_call(
    rng: &mut Rng,
    json: &mut String,
    spec: &FileSpec,
    name: &str,
    time: i64,
    id: &str,
) {
    let account = &spec.account;
    let region = spec.region;
    let instance = format!("{:08x}-aaaa-4bbb-8ccc-{:012x}", rng.below(4), rng.below(4));
    let user = rng.uuid();
    let _ = write!(json, r#"{{"eventVersion":"1.09","#);
    let website = rng.below(3) > 0;
    if website {
        let admin = rng.uuid();
        role_identity(
            rng,
            json,
            account,
            "AWSServiceRoleForAmazonConnect_Ab12Cd34",
            &admin,
        );
    } else {
        let _ = write!(
            json,
            r#""userIdentity":{{"type":"IAMUser","principalId":"AIDA{}","arn":"arn:aws:iam::{account}:user/ops-automation","accountId":"{account}","accessKeyId":"AKIA{}","userName":"ops-automation"}}"#,
            rng.alnum(17).to_uppercase(),
            rng.alnum(16).to_uppercase(),
        );
    }
    let (ip, agent) = if website {
        ("connect.amazonaws.com", "connect.amazonaws.com")
    } else {
        ("198.51.100.7", AGENTS[1])
    };
    let failed = rng.below(20) == 0;
    let _ = write!(
        json,
        r#","eventTime":"{}","eventSource":"connect.amazonaws.com","eventName":"{name}","awsRegion":"{region}","sourceIPAddress":"{ip}","userAgent":"{agent}","#,
        time_text(time),
    );
    if failed {
        json.push_str(r#""errorCode":"AccessDeniedException","errorMessage":"User is not authorized to perform this action","#);
    }
    let _ = write!(
        json,
        r#""requestParameters":{{"InstanceId":"{instance}","UserId":"{user}","HierarchyGroupId":"{}","SecurityProfileId":"{}","SecurityProfileIds":["{}"],"RoutingProfileId":"{}","AgentStatusId":"{}","Name":"name-{}","Username":"user{}","Password":"HIDDEN_DUE_TO_SECURITY_REASONS","resourceArn":"arn:aws:connect:{region}:{account}:instance/{instance}/agent/{user}","tags":{{"team":"blue"}}}},"#,
        rng.uuid(),
        rng.uuid(),
        rng.uuid(),
        rng.uuid(),
        rng.uuid(),
        rng.below(1000),
        rng.below(100_000),
    );
    if failed || !name.starts_with("Create") {
        json.push_str(r#""responseElements":null"#);
    } else {
        let created = rng.uuid();
        let _ = write!(
            json,
            r#""responseElements":{{"UserId":"{created}","UserArn":"arn:aws:connect:{region}:{account}:instance/{instance}/agent/{created}","HierarchyGroupId":"{created}","SecurityProfileId":"{created}","RoutingProfileId":"{created}","AgentStatusId":"{created}","Id":"{created}"}}"#,
        );
    }
    tail(rng, json, spec, id, false, "Management");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_and_times() {
        assert_eq!(time_text(FIRST_DAY), "2024-05-01T00:00:00Z");
        assert_eq!(
            time_text(FIRST_DAY + 31 * DAY + 3661),
            "2024-06-01T01:01:01Z"
        );
        assert_eq!(date_text(951_782_400), "2000-02-29");
    }

    #[test]
    fn the_same_seed_gives_the_same_trail_and_valid_json() {
        for shape in [Shape::ManySmall, Shape::FewLarge] {
            same_trail_and_valid_json(shape);
        }
    }

    fn same_trail_and_valid_json(shape: Shape) {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut plan = Plan::new(3_000_000, 7);
        plan.audited_per_million = 20_000;
        plan.shape = shape;
        let ga = generate(&plan, a.path()).unwrap();
        let gb = generate(&plan, b.path()).unwrap();
        assert_eq!(ga, gb);
        assert!(ga.json_bytes >= 3_000_000 && ga.expected_default > 0);
        assert_eq!(
            fs::read(a.path().join("expected-default.txt")).unwrap(),
            fs::read(b.path().join("expected-default.txt")).unwrap()
        );
        // Every file is gzip of a JSON object with Records, every record has the fields the
        // engine needs.
        let mut records = 0;
        for entry in walk(a.path()) {
            if !entry.to_string_lossy().contains("/CloudTrail/") {
                continue;
            }
            let mut text = String::new();
            io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(fs::File::open(&entry).unwrap()),
                &mut text,
            )
            .unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            for record in value["Records"].as_array().unwrap() {
                for field in [
                    "eventTime",
                    "eventID",
                    "eventName",
                    "eventSource",
                    "userIdentity",
                ] {
                    assert!(!record[field].is_null(), "{field} in {record}");
                }
                records += 1;
            }
        }
        assert_eq!(records, ga.records);
    }

    #[test]
    fn few_large_has_its_shape_at_every_size() {
        let sizes = |bytes| {
            let mut plan = Plan::new(bytes, 42);
            plan.shape = Shape::FewLarge;
            let mut sizes: Vec<u64> = file_specs(&plan).iter().map(|f| f.json_bytes).collect();
            sizes.sort_unstable();
            sizes
        };
        // 1 GB: 250 files, a median of about 415 kB of JSON (60–70 kB gzip at 6–7×), 2 % of
        // 70–140 MB (above 10 MB gzip), the largest about 133 MB (about 20 MB gzip).
        let gb = sizes(1_000_000_000);
        assert_eq!(gb.len(), 250);
        let total: u64 = gb.iter().sum();
        assert!(total.abs_diff(1_000_000_000) < 1_000_000, "{total}");
        assert!((390_000..450_000).contains(&gb[125]), "{}", gb[125]);
        assert_eq!(gb.iter().filter(|n| **n >= 70_000_000).count(), 5);
        assert!((125_000_000..140_000_000).contains(&gb[249]), "{}", gb[249]);
        // 100 MB and 4 GB: a tenth and four times the files, the same median within 10 %.
        for (bytes, files) in [(100_000_000, 25), (4_000_000_000, 1000)] {
            let s = sizes(bytes);
            assert_eq!(s.len(), files);
            assert!(
                s[files / 2].abs_diff(gb[125]) * 10 < gb[125],
                "{}",
                s[files / 2]
            );
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
