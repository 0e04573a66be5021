//! CloudTrail log file integrity (issue J): the digest files CloudTrail signs every hour, their
//! chain, and the verdict on every log file and digest of a span.
//!
//! A digest (`AWSLogs/<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/…_CloudTrail-Digest_….json.gz`)
//! lists the log files CloudTrail delivered in its hour, each with the SHA-256 of its
//! uncompressed content, and names the digest before it (`previousDigestS3Object`, the SHA-256
//! of its uncompressed content, its signature). It is signed (SHA256withRSA; the signature is
//! the object's `signature` user metadata) over the documented string:
//!
//! ```text
//! <digestEndTime>\n<digestS3Bucket>/<digestS3Object>\n<hex SHA-256 of the uncompressed digest>\n<previousDigestSignature, or null>
//! ```
//!
//! with the CloudTrail public key its `digestPublicKeyFingerprint` names (`ListPublicKeys`).
//!
//! [`verify`] is pure: given the digests found (their bytes and metadata), the log files found
//! with the SHA-256 the scan computed while inflating them, and the public keys (or none, for
//! a local copy without S3 metadata), it gives one [`FileVerdict`] per log file and digest.
//! Chains are followed per account and region; a digest whose `previousDigestS3Object` is
//! null starts a chain again (logging was stopped and started, which CloudTrail records so);
//! any other break (however many consecutive digests are gone) is `digest missing`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// One digest file, as CloudTrail writes it. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Digest {
    /// The account whose trail it is of.
    pub aws_account_id: String,
    /// Its hour: `digestStartTime` ..
    pub digest_start_time: String,
    /// .. `digestEndTime` (also the first line of the string to sign, as written).
    pub digest_end_time: String,
    /// Where CloudTrail wrote it.
    pub digest_s3_bucket: String,
    /// Its key.
    pub digest_s3_object: String,
    /// The fingerprint of the public key that verifies it.
    pub digest_public_key_fingerprint: String,
    /// `SHA256withRSA`.
    pub digest_signature_algorithm: String,
    /// The newest event of the log files it lists, if any.
    #[serde(default)]
    pub newest_event_time: Option<String>,
    /// The oldest.
    #[serde(default)]
    pub oldest_event_time: Option<String>,
    /// The digest before it; null at the start of a chain.
    #[serde(default)]
    pub previous_digest_s3_bucket: Option<String>,
    /// Its key.
    #[serde(default)]
    pub previous_digest_s3_object: Option<String>,
    /// The hex SHA-256 of its uncompressed content.
    #[serde(default)]
    pub previous_digest_hash_value: Option<String>,
    /// `SHA-256`.
    #[serde(default)]
    pub previous_digest_hash_algorithm: Option<String>,
    /// Its signature (hex).
    #[serde(default)]
    pub previous_digest_signature: Option<String>,
    /// The log files delivered in its hour.
    #[serde(default)]
    pub log_files: Vec<DigestLogFile>,
}

/// A log file a digest lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestLogFile {
    /// Its bucket.
    pub s3_bucket: String,
    /// Its key.
    pub s3_object: String,
    /// The hex SHA-256 of its uncompressed content.
    pub hash_value: String,
    /// `SHA-256`.
    pub hash_algorithm: String,
    /// Its newest event.
    #[serde(default)]
    pub newest_event_time: Option<String>,
    /// Its oldest event.
    #[serde(default)]
    pub oldest_event_time: Option<String>,
}

impl Digest {
    /// The string CloudTrail signs, of this digest whose uncompressed content is `inflated`.
    pub fn string_to_sign(&self, inflated: &[u8]) -> String {
        format!(
            "{}\n{}/{}\n{}\n{}",
            self.digest_end_time,
            self.digest_s3_bucket,
            self.digest_s3_object,
            sha256_hex(inflated),
            self.previous_digest_signature.as_deref().unwrap_or("null")
        )
    }
}

/// The lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// A running SHA-256 (of a log file's inflated windows, as the scan produces them).
pub struct Sha256(aws_lc_rs::digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Self(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
    }
}

impl Sha256 {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The lower-case hex digest.
    pub fn finish(self) -> String {
        hex(self.0.finish().as_ref())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A CloudTrail public key (`ListPublicKeys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The fingerprint digests name.
    pub fingerprint: String,
    /// The key, DER (PKCS #1 `RSAPublicKey`).
    pub der: Vec<u8>,
    /// When it starts to sign.
    pub valid_from: Timestamp,
    /// When it stops.
    pub valid_until: Timestamp,
}

/// Whether `signature_hex` is `key`'s SHA256withRSA (PKCS #1 v1.5) signature of `message`.
pub fn signature_holds(key: &PublicKey, message: &[u8], signature_hex: &str) -> bool {
    let Some(signature) = unhex(signature_hex) else {
        return false;
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        &key.der,
    )
    .verify(message, &signature)
    .is_ok()
}

/// A digest object found: its key, its uncompressed bytes (or why they could not be read),
/// and its S3 user metadata (`signature`), absent in a local copy.
#[derive(Debug, Clone)]
pub struct DigestObject {
    /// The bucket it was read from (`None`: a local copy).
    pub bucket: Option<String>,
    /// Its key, from `AWSLogs/` on.
    pub key: String,
    /// Its uncompressed content, or why it could not be read.
    pub inflated: Result<Vec<u8>, String>,
    /// The `signature` metadata (hex).
    pub signature: Option<String>,
}

/// A log file found, with the SHA-256 of its uncompressed content as the scan read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSeen {
    /// Its hex SHA-256, or why it could not be read.
    pub sha256: Result<String, String>,
}

/// What is known of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Verdict {
    /// Exactly what CloudTrail delivered (a digest with a valid signature and an unbroken
    /// chain lists it with this hash; for a digest: signature and links hold).
    #[serde(rename = "verified")]
    Verified,
    /// Its hash differs from the one its digest lists.
    #[serde(rename = "modified")]
    Modified,
    /// A digest lists it; it is not in the bucket.
    #[serde(rename = "missing")]
    Missing,
    /// No digest lists it: added after the fact, or newer than the last digest (see the
    /// detail).
    #[serde(rename = "unlisted")]
    Unlisted,
    /// A digest the chain names (or whose hour the chain skips) is not in the bucket.
    #[serde(rename = "digest missing")]
    DigestMissing,
    /// Bad signature, unknown key, key outside its validity, unreadable, or moved.
    #[serde(rename = "digest invalid")]
    DigestInvalid,
    /// Its content or signature differs from what the next digest recorded of it.
    #[serde(rename = "digest modified")]
    DigestModified,
}

impl Verdict {
    /// `verified`, `digest missing`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Modified => "modified",
            Self::Missing => "missing",
            Self::Unlisted => "unlisted",
            Self::DigestMissing => "digest missing",
            Self::DigestInvalid => "digest invalid",
            Self::DigestModified => "digest modified",
        }
    }
}

/// The verdict on one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileVerdict {
    /// `log` or `digest`.
    pub kind: &'static str,
    /// Its key (`AWSLogs/…`); for a digest whose key the chain cannot name, a description.
    pub key: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, when not verified; for a digest whose signature was not checked, that.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The digest that lists the log file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// What a verification found, in total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntegritySummary {
    /// Log files judged.
    pub log_files: u64,
    /// Of those, verified.
    pub logs_verified: u64,
    /// Digests read.
    pub digests: u64,
    /// Of those, verified.
    pub digests_verified: u64,
    /// Per verdict other than verified: how many files.
    pub failures: BTreeMap<String, u64>,
    /// Whether signatures were checked (a local copy has no S3 metadata).
    pub signatures_checked: bool,
    /// The span the chains cover: the first digest's start to the last digest's end.
    pub chain_from: Option<String>,
    /// See [`chain_from`](Self::chain_from).
    pub chain_until: Option<String>,
    /// Times logging was stopped and started again (a chain restarting), as CloudTrail
    /// recorded them: `from .. until`.
    pub logging_gaps: Vec<String>,
}

impl IntegritySummary {
    /// Whether every file was verified.
    pub fn all_verified(&self) -> bool {
        self.failures.is_empty()
    }

    /// `288 of 288 log files and 24 of 24 digests verified, chain unbroken from … to …`, or
    /// the failures.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} of {} log files and {} of {} digests verified",
            self.logs_verified, self.log_files, self.digests_verified, self.digests
        );
        if self.all_verified() {
            if let (Some(from), Some(until)) = (&self.chain_from, &self.chain_until) {
                let _ = write!(line, ", chain unbroken from {from} to {until}");
                if !self.logging_gaps.is_empty() {
                    let _ = write!(
                        line,
                        " but where CloudTrail recorded logging stopped ({} time(s))",
                        self.logging_gaps.len()
                    );
                }
            }
        } else {
            let failures: Vec<String> = self
                .failures
                .iter()
                .map(|(v, n)| format!("{n} {v}"))
                .collect();
            let _ = write!(line, "; {}", failures.join(", "));
        }
        if !self.signatures_checked {
            line.push_str(" (signatures not checked: a local copy has no S3 metadata)");
        }
        line
    }
}

/// The time of a CloudTrail file from the stamp in its name (`…_20240502T0905Z_….json.gz`,
/// digests `…_20240502T090512Z.json.gz`).
pub fn key_time(key: &str) -> Option<Timestamp> {
    let name = key.rsplit('/').next()?;
    name.split('_').find_map(|part| {
        let part = part.trim_end_matches(".json.gz");
        let (date, time) = part.split_once('T')?;
        let time = time.strip_suffix('Z')?;
        if !date.is_ascii()
            || !time.is_ascii()
            || date.len() != 8
            || !(time.len() == 4 || time.len() == 6)
        {
            return None;
        }
        let text = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &date[..4],
            &date[4..6],
            &date[6..8],
            &time[..2],
            &time[2..4],
            time.get(4..6).unwrap_or("00")
        );
        text.parse().ok()
    })
}

/// The account and region of a CloudTrail key (`…/<account>/CloudTrail[-Digest]/<region>/…`).
pub fn key_chain(key: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = key.split('/').collect();
    let i = parts
        .iter()
        .position(|p| *p == "CloudTrail-Digest" || *p == "CloudTrail")?;
    // The account is the file name's first field (`<account>_CloudTrail…`): the folder above
    // may be outside the store's root.
    let account = parts.last()?.split('_').next()?;
    Some((account.to_owned(), (*parts.get(i + 1)?).to_owned()))
}

/// The chain a digest belongs to: its account, region, and trail (the file name without its
/// time stamp: `<account>_CloudTrail-Digest_<region>_<trail>_<home region>`), so that two
/// trails of one account and region are two chains.
fn digest_chain(key: &str) -> Option<(String, String, String)> {
    let (account, region) = key_chain(key)?;
    let name = key.rsplit('/').next()?;
    let trail = name.rsplit_once('_').map_or(name, |(t, _)| t);
    Some((account, region, trail.to_owned()))
}

/// Whether `key` is a digest file.
pub fn is_digest_key(key: &str) -> bool {
    key.contains("/CloudTrail-Digest/") && key.ends_with(".json.gz")
}

/// The key from its `CloudTrail/` or `CloudTrail-Digest/` folder on: what a digest's name of
/// a file and the key it was listed under have in common, whatever the bucket prefix, the
/// organization folder or the store root (`s3://bucket/AWSLogs` lists `<account>/CloudTrail/…`).
/// The file name still holds the account.
fn canonical(key: &str) -> &str {
    for folder in ["CloudTrail/", "CloudTrail-Digest/"] {
        if key.starts_with(folder) {
            return key;
        }
        if let Some(i) = key.find(&format!("/{folder}")) {
            return &key[i + 1..];
        }
    }
    key
}

/// The key from `AWSLogs/` on, for showing a key known only from a digest's content.
fn from_awslogs(key: &str) -> &str {
    key.find("AWSLogs/").map_or(key, |i| &key[i..])
}

/// Verifies `digests` and `logs` (keys from `AWSLogs/` or above it) with `keys` (`None`: no
/// S3 metadata, signatures not checked). `days` are the days listed: log entries of digests
/// are judged only when their file's date is in them, and a digest named before the first
/// digest read is missing only when it is dated in them.
pub fn verify(
    digests: &[DigestObject],
    logs: &BTreeMap<String, LogSeen>,
    keys: Option<&[PublicKey]>,
    days: (Date, Date),
) -> (Vec<FileVerdict>, IntegritySummary) {
    let mut check = Check {
        keys,
        days,
        read: BTreeMap::new(),
        verdicts: BTreeMap::new(),
        missing: Vec::new(),
        skipped: Vec::new(),
        gaps: Vec::new(),
        shown: HashMap::new(),
    };
    for key in logs.keys() {
        check.shown.insert(canonical(key).to_owned(), key.clone());
    }
    check.read_digests(digests);
    let chains = check.follow_chains();
    let logs: BTreeMap<&str, &LogSeen> = logs.iter().map(|(k, v)| (canonical(k), v)).collect();
    let mut out = check.listed_logs(&logs);
    out.extend(check.unlisted_logs(&logs, &chains));
    check.finish(out)
}

/// A digest read and parsed.
struct Read<'a> {
    object: &'a DigestObject,
    digest: Digest,
    inflated: &'a [u8],
}

/// A verification in progress.
struct Check<'a> {
    keys: Option<&'a [PublicKey]>,
    days: (Date, Date),
    /// The digests read, by key from `AWSLogs/`.
    read: BTreeMap<String, Read<'a>>,
    /// Each digest's verdict so far (the first problem found stays).
    verdicts: BTreeMap<String, (Verdict, Option<String>)>,
    /// Digests found missing: key (or a description), why.
    missing: Vec<(String, String)>,
    /// Spans the chain skips (more than the one digest named is gone).
    skipped: Vec<(Timestamp, Timestamp)>,
    /// Logging stopped and started again: `from .. until`.
    gaps: Vec<String>,
    /// The key each file was found under, by its canonical key ([`canonical`]).
    shown: HashMap<String, String>,
}

fn time(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

impl<'a> Check<'a> {
    /// The key to show of a file: where it was found, else (named only by a digest) its key
    /// from `AWSLogs/` on.
    fn show(&self, canonical_key: &str, named: Option<&str>) -> String {
        self.shown.get(canonical_key).cloned().unwrap_or_else(|| {
            named.map_or_else(|| canonical_key.to_owned(), |n| from_awslogs(n).to_owned())
        })
    }

    /// Reads, parses and checks each digest on its own (moved, signature, key).
    fn read_digests(&mut self, digests: &'a [DigestObject]) {
        for object in digests {
            let key = canonical(&object.key).to_owned();
            self.shown.insert(key.clone(), object.key.clone());
            let parsed = object
                .inflated
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|bytes| {
                    serde_json::from_slice::<Digest>(bytes)
                        .map(|d| (d, bytes.as_slice()))
                        .map_err(|e| format!("not a digest file: {e}"))
                });
            let (digest, inflated) = match parsed {
                Err(why) => {
                    self.verdicts
                        .insert(key, (Verdict::DigestInvalid, Some(why)));
                    continue;
                }
                Ok(parsed) => parsed,
            };
            let verdict = match check_digest(&key, object, &digest, inflated, self.keys) {
                Some(why) => (Verdict::DigestInvalid, Some(why)),
                None => (Verdict::Verified, None),
            };
            self.verdicts.insert(key.clone(), verdict);
            self.read.insert(
                key,
                Read {
                    object,
                    digest,
                    inflated,
                },
            );
        }
    }

    /// Follows each chain (per account and region, oldest first): links, gaps, missing
    /// digests. Gives the chains' newest digest ends.
    fn follow_chains(&mut self) -> BTreeMap<(String, String), String> {
        let mut chains: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        for (key, r) in &self.read {
            let chain = digest_chain(key).unwrap_or_else(|| {
                (
                    r.digest.aws_account_id.clone(),
                    String::new(),
                    String::new(),
                )
            });
            chains.entry(chain).or_default().push(key.clone());
        }
        // The newest digest end per account and region (of any of its trails).
        let mut newest: BTreeMap<(String, String), String> = BTreeMap::new();
        for ((account, region, _), mut list) in chains {
            list.sort_by(|a, b| {
                let end = |k: &String| self.read[k].digest.digest_end_time.clone();
                end(a).cmp(&end(b))
            });
            self.follow(&list);
            if let Some(last) = list.last() {
                let end = self.read[last].digest.digest_end_time.clone();
                let entry = newest.entry((account, region)).or_default();
                if end > *entry {
                    *entry = end;
                }
            }
        }
        newest
    }

    /// One chain, oldest first.
    fn follow(&mut self, list: &[String]) {
        // The longest hour of the chain (CloudTrail's digests are hourly, files or not).
        let period = list
            .iter()
            .filter_map(|k| {
                let d = &self.read[k].digest;
                Some(time(&d.digest_end_time)? - time(&d.digest_start_time)?)
            })
            .max()
            .unwrap_or_default();
        let listed_from = self
            .days
            .0
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .map_or(Timestamp::MIN, |z| z.timestamp());
        for (i, key) in list.iter().enumerate() {
            let d = &self.read[key].digest;
            let before = i.checked_sub(1).map(|j| &self.read[&list[j]].digest);
            let Some(previous) = d.previous_digest_s3_object.as_deref().map(canonical) else {
                // Logging was started (again): a gap CloudTrail records.
                if let Some(b) = before {
                    self.gaps
                        .push(format!("{} .. {}", b.digest_end_time, d.digest_start_time));
                }
                continue;
            };
            // In another bucket (the trail was moved): the chain goes on where this run does
            // not read.
            if d.previous_digest_s3_bucket
                .as_ref()
                .is_some_and(|b| *b != d.digest_s3_bucket)
            {
                continue;
            }
            if let Some(p) = self.read.get(previous) {
                let hash_ok = d
                    .previous_digest_hash_value
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&sha256_hex(p.inflated)));
                let signature_ok = match (&p.object.signature, &d.previous_digest_signature) {
                    (Some(s), Some(recorded)) => s.eq_ignore_ascii_case(recorded),
                    _ => true,
                };
                let first_problem = self
                    .verdicts
                    .get(previous)
                    .is_none_or(|(v, _)| *v == Verdict::Verified);
                if !(hash_ok && signature_ok) && first_problem {
                    let what = if hash_ok { "signature" } else { "content" };
                    let why = format!(
                        "its {what} differs from what the next digest {} recorded",
                        self.show(key, None)
                    );
                    self.verdicts
                        .insert(previous.to_owned(), (Verdict::DigestModified, Some(why)));
                }
                continue;
            }
            // Present but unreadable (its own verdict says so): not missing, and the link
            // cannot be checked.
            if self.verdicts.contains_key(previous) {
                continue;
            }
            // Named and gone; before the first digest read, only when it is after the start
            // of the digests listed (else the chain merely leaves the span there).
            if before.is_none() && key_time(previous).is_none_or(|t| t < listed_from) {
                continue;
            }
            let named = self.show(previous, d.previous_digest_s3_object.as_deref());
            let why = format!("named by {} as the digest before it", self.show(key, None));
            self.missing.push((named.clone(), why));
            // More than one hour between the digest before and this one: more are gone
            // than the one named (however many: each hour has its digest).
            if let Some(b) = before
                && let (Some(b_end), Some(d_start)) =
                    (time(&b.digest_end_time), time(&d.digest_start_time))
                && d_start - b_end > period + jiff::SignedDuration::from_mins(5)
            {
                self.skipped.push((b_end, d_start));
                self.missing.push((
                    format!("(the digests between {} and {named})", b.digest_end_time),
                    format!(
                        "the chain skips {} .. {}: more than the one digest named is gone",
                        b.digest_end_time, d.digest_start_time
                    ),
                ));
            }
        }
    }

    /// The log files the digests list, each judged by its hash.
    fn listed_logs(&self, logs: &BTreeMap<&str, &LogSeen>) -> Vec<FileVerdict> {
        let mut out = Vec::new();
        for (dkey, r) in &self.read {
            // A digest that is not itself verified vouches for nothing.
            let untrusted = self
                .verdicts
                .get(dkey)
                .filter(|(v, _)| *v != Verdict::Verified)
                .map(|(v, _)| v.as_str());
            for entry in &r.digest.log_files {
                let lkey = canonical(&entry.s3_object);
                let in_days = key_time(lkey).is_some_and(|t| {
                    let day = jiff::tz::TimeZone::UTC.to_datetime(t).date();
                    self.days.0 <= day && day <= self.days.1
                });
                let (verdict, detail) = match (logs.get(lkey), untrusted) {
                    (None, _) if !in_days => continue,
                    (Some(_), Some(digest_verdict)) => (
                        Verdict::Unlisted,
                        Some(format!(
                            "listed only by a digest that is not valid ({digest_verdict})"
                        )),
                    ),
                    (None, _) => (
                        Verdict::Missing,
                        Some("listed by its digest, not in the bucket".to_owned()),
                    ),
                    (Some(LogSeen { sha256: Err(why) }), None) => {
                        (Verdict::Modified, Some(format!("unreadable: {why}")))
                    }
                    (Some(LogSeen { sha256: Ok(h) }), None)
                        if h.eq_ignore_ascii_case(&entry.hash_value) =>
                    {
                        (Verdict::Verified, None)
                    }
                    (Some(_), None) => (
                        Verdict::Modified,
                        Some("its SHA-256 differs from its digest's".to_owned()),
                    ),
                };
                out.push(FileVerdict {
                    kind: "log",
                    key: self.show(lkey, Some(&entry.s3_object)),
                    verdict,
                    detail,
                    digest: Some(self.show(dkey, None)),
                });
            }
        }
        out
    }

    /// The log files no digest lists, each said why by time.
    fn unlisted_logs(
        &self,
        logs: &BTreeMap<&str, &LogSeen>,
        newest: &BTreeMap<(String, String), String>,
    ) -> Vec<FileVerdict> {
        // Per account and region, the earliest digest read, and whether it names none before
        // it: then log file validation was turned on (or logging started) at its start.
        let mut earliest: BTreeMap<(String, String), (Timestamp, bool)> = BTreeMap::new();
        for (key, r) in &self.read {
            if let (Some(chain), Some(start)) = (key_chain(key), time(&r.digest.digest_start_time))
            {
                let starts = r.digest.previous_digest_s3_object.is_none();
                let first = earliest.entry(chain).or_insert((start, starts));
                if start < first.0 {
                    *first = (start, starts);
                }
            }
        }
        let started: BTreeMap<(String, String), Timestamp> = earliest
            .into_iter()
            .filter(|(_, (_, starts))| *starts)
            .map(|(chain, (start, _))| (chain, start))
            .collect();
        let listed: std::collections::HashSet<&str> = self
            .read
            .values()
            .flat_map(|r| r.digest.log_files.iter().map(|e| canonical(&e.s3_object)))
            .collect();
        // The hours the missing digests covered: a named one ends at its stamp, the skipped
        // spans are the gaps.
        let missing_hours: Vec<(Timestamp, Timestamp)> = self
            .missing
            .iter()
            .filter_map(|(key, _)| {
                let end = key_time(key)?;
                Some((end - jiff::SignedDuration::from_hours(1), end))
            })
            .chain(self.skipped.iter().copied())
            .collect();
        logs.keys()
            .filter(|key| !listed.contains(**key))
            .map(|key| {
                let delivered = key_time(key);
                let newest_end = key_chain(key)
                    .and_then(|c| newest.get(&c))
                    .and_then(|end| time(end));
                // CloudTrail delivers a digest about an hour after its hour ends: a file more
                // than two hours past the newest digest should have been covered.
                let (too_new, stopped) = match (newest_end, delivered) {
                    (Some(end), Some(t)) if t >= end => {
                        let late = t - end > jiff::SignedDuration::from_hours(2);
                        (!late, late.then_some(end))
                    }
                    (None, _) => (true, None),
                    _ => (false, None),
                };
                let hour_gone = delivered.is_some_and(|t| {
                    missing_hours
                        .iter()
                        .any(|(from, until)| *from <= t && t < *until)
                });
                let before_start = key_chain(key)
                    .and_then(|c| started.get(&c))
                    .filter(|start| delivered.is_some_and(|t| t < **start));
                let detail = if hour_gone {
                    "the digest of its hour is missing".to_owned()
                } else if let Some(start) = before_start {
                    format!(
                        "delivered before its chain starts ({start}): log file validation was not on yet, or logging had stopped"
                    )
                } else if let Some(end) = stopped {
                    format!(
                        "the digests of its account and region stop at {end}, hours before it: later digests are missing, or log file validation was turned off"
                    )
                } else if too_new {
                    "delivered after the newest digest read: not covered yet".to_owned()
                } else {
                    "no digest lists it, though one covers its delivery time: possibly added"
                        .to_owned()
                };
                FileVerdict {
                    kind: "log",
                    key: self.show(key, None),
                    verdict: Verdict::Unlisted,
                    detail: Some(detail),
                    digest: None,
                }
            })
            .collect()
    }

    /// The digests' verdicts after the logs', all sorted, and the summary.
    fn finish(mut self, mut out: Vec<FileVerdict>) -> (Vec<FileVerdict>, IntegritySummary) {
        for (key, (verdict, detail)) in std::mem::take(&mut self.verdicts) {
            let detail = detail.or_else(|| {
                (self.keys.is_none() && self.read.contains_key(&key))
                    .then(|| "signature not checked (no S3 metadata)".to_owned())
            });
            out.push(FileVerdict {
                kind: "digest",
                key: self.show(&key, None),
                verdict,
                detail,
                digest: None,
            });
        }
        // Missing digests: once each, and never over the verdict of one that is there.
        for (key, why) in std::mem::take(&mut self.missing) {
            if !out.iter().any(|f| f.kind == "digest" && f.key == key) {
                out.push(FileVerdict {
                    kind: "digest",
                    key,
                    verdict: Verdict::DigestMissing,
                    detail: Some(why),
                    digest: None,
                });
            }
        }
        out.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        let mut summary = IntegritySummary {
            signatures_checked: self.keys.is_some(),
            logging_gaps: self.gaps,
            chain_from: self
                .read
                .values()
                .map(|r| r.digest.digest_start_time.clone())
                .min(),
            chain_until: self
                .read
                .values()
                .map(|r| r.digest.digest_end_time.clone())
                .max(),
            ..IntegritySummary::default()
        };
        for f in &out {
            if f.kind == "log" {
                summary.log_files += 1;
                summary.logs_verified += u64::from(f.verdict == Verdict::Verified);
            } else {
                summary.digests += u64::from(f.verdict != Verdict::DigestMissing);
                summary.digests_verified += u64::from(f.verdict == Verdict::Verified);
            }
            if f.verdict != Verdict::Verified {
                *summary
                    .failures
                    .entry(f.verdict.as_str().to_owned())
                    .or_default() += 1;
            }
        }
        (out, summary)
    }
}

/// Why digest `key` is invalid, if it is: moved, unsigned, an unknown key, a key outside its
/// validity, a bad signature.
fn check_digest(
    key: &str,
    object: &DigestObject,
    digest: &Digest,
    inflated: &[u8],
    keys: Option<&[PublicKey]>,
) -> Option<String> {
    if canonical(&digest.digest_s3_object) != key
        || object
            .bucket
            .as_ref()
            .is_some_and(|b| *b != digest.digest_s3_bucket)
    {
        return Some(format!(
            "moved: it says it is s3://{}/{}",
            digest.digest_s3_bucket, digest.digest_s3_object
        ));
    }
    let keys = keys?;
    if !digest
        .digest_signature_algorithm
        .eq_ignore_ascii_case("SHA256withRSA")
    {
        return Some(format!(
            "unknown signature algorithm {}",
            digest.digest_signature_algorithm
        ));
    }
    let Some(signature) = &object.signature else {
        return Some("no `signature` metadata on the object".to_owned());
    };
    let Some(public) = keys.iter().find(|k| {
        k.fingerprint
            .eq_ignore_ascii_case(&digest.digest_public_key_fingerprint)
    }) else {
        return Some(format!(
            "signed by an unknown key (fingerprint {})",
            digest.digest_public_key_fingerprint
        ));
    };
    let Ok(end) = digest.digest_end_time.parse::<Timestamp>() else {
        return Some(format!(
            "unreadable digestEndTime {}",
            digest.digest_end_time
        ));
    };
    if end < public.valid_from || end > public.valid_until {
        return Some(format!(
            "signed by key {} outside its validity ({} .. {})",
            public.fingerprint, public.valid_from, public.valid_until
        ));
    }
    if !signature_holds(
        public,
        digest.string_to_sign(inflated).as_bytes(),
        signature,
    ) {
        return Some("bad signature".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::KeyPair as _;

    use super::*;

    #[test]
    fn names_give_their_time_account_and_region() {
        let log = "prefix/AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/ap-northeast-1/2024/05/02/111122223333_CloudTrail_ap-northeast-1_20240502T0905Z_abc.json.gz";
        assert_eq!(key_time(log), Some("2024-05-02T09:05:00Z".parse().unwrap()));
        assert_eq!(
            key_chain(log),
            Some(("111122223333".into(), "ap-northeast-1".into()))
        );
        let digest = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/02/111122223333_CloudTrail-Digest_us-east-1_my_trail_us-east-1_20240502T100512Z.json.gz";
        assert_eq!(
            key_time(digest),
            Some("2024-05-02T10:05:12Z".parse().unwrap())
        );
        assert!(is_digest_key(digest) && !is_digest_key(log));
        // A name from a digest's content is attacker-controlled: no panic on odd bytes.
        assert_eq!(key_time("x/a_ab\u{20ac}\u{20ac}T0000Z.json.gz"), None);
        assert_eq!(canonical(log), &log[log.find("CloudTrail/").unwrap()..]);
        assert_eq!(
            digest_chain(digest),
            Some((
                "111122223333".into(),
                "us-east-1".into(),
                "111122223333_CloudTrail-Digest_us-east-1_my_trail_us-east-1".into()
            ))
        );
        assert_eq!(from_awslogs(log), &log["prefix/".len()..]);
    }

    #[test]
    fn a_signature_holds_only_for_its_message_and_key() {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let key = PublicKey {
            fingerprint: "f".into(),
            der: pair.public_key().as_ref().to_vec(),
            valid_from: Timestamp::MIN,
            valid_until: Timestamp::MAX,
        };
        let digest = Digest {
            aws_account_id: "111122223333".into(),
            digest_start_time: "2024-05-02T09:00:00Z".into(),
            digest_end_time: "2024-05-02T10:00:00Z".into(),
            digest_s3_bucket: "b".into(),
            digest_s3_object: "AWSLogs/x.json.gz".into(),
            digest_public_key_fingerprint: "f".into(),
            digest_signature_algorithm: "SHA256withRSA".into(),
            newest_event_time: None,
            oldest_event_time: None,
            previous_digest_s3_bucket: None,
            previous_digest_s3_object: None,
            previous_digest_hash_value: None,
            previous_digest_hash_algorithm: None,
            previous_digest_signature: None,
            log_files: Vec::new(),
        };
        let message = digest.string_to_sign(b"{}");
        assert_eq!(
            message,
            format!(
                "2024-05-02T10:00:00Z\nb/AWSLogs/x.json.gz\n{}\nnull",
                sha256_hex(b"{}")
            ),
            "the documented string, `null` for the first digest of a chain"
        );
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            message.as_bytes(),
            &mut signature,
        )
        .unwrap();
        let hex = hex(&signature);
        assert!(signature_holds(&key, message.as_bytes(), &hex));
        assert!(!signature_holds(&key, b"another message", &hex));
        assert!(!signature_holds(&key, message.as_bytes(), "zz"));
        let mut sha = Sha256::default();
        sha.update(b"{");
        sha.update(b"}");
        assert_eq!(sha.finish(), sha256_hex(b"{}"), "windows hash as the whole");
    }
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    fn digest(hour: u32, previous: Option<(&str, &str)>, logs: &[(&str, &[u8])]) -> DigestObject {
        let end = format!("2024-05-02T{:02}:00:00Z", hour + 1);
        let key = format!(
            "AWSLogs/1/CloudTrail-Digest/r/2024/05/02/1_CloudTrail-Digest_r_t_r_20240502T{:02}0000Z.json.gz",
            hour + 1
        );
        let d = Digest {
            aws_account_id: "1".into(),
            digest_start_time: format!("2024-05-02T{hour:02}:00:00Z"),
            digest_end_time: end,
            digest_s3_bucket: "b".into(),
            digest_s3_object: key.clone(),
            digest_public_key_fingerprint: "f".into(),
            digest_signature_algorithm: "SHA256withRSA".into(),
            newest_event_time: None,
            oldest_event_time: None,
            previous_digest_s3_bucket: previous.map(|(bucket, _)| bucket.to_owned()),
            previous_digest_s3_object: previous.map(|(_, key)| key.to_owned()),
            previous_digest_hash_value: previous.map(|_| "00".to_owned()),
            previous_digest_hash_algorithm: None,
            previous_digest_signature: None,
            log_files: logs
                .iter()
                .map(|(k, json)| DigestLogFile {
                    s3_bucket: "b".into(),
                    s3_object: (*k).to_owned(),
                    hash_value: sha256_hex(json),
                    hash_algorithm: "SHA-256".into(),
                    newest_event_time: None,
                    oldest_event_time: None,
                })
                .collect(),
        };
        DigestObject {
            bucket: None,
            key,
            inflated: Ok(serde_json::to_vec(&d).unwrap()),
            signature: None,
        }
    }

    fn log(hour: u32, minute: u32) -> String {
        format!(
            "AWSLogs/1/CloudTrail/r/2024/05/02/1_CloudTrail_r_20240502T{hour:02}{minute:02}Z_x.json.gz"
        )
    }

    #[test]
    fn validation_turned_on_mid_span_and_a_trail_moved_from_another_bucket() {
        let days = ("2024-05-01".parse().unwrap(), "2024-05-03".parse().unwrap());
        // Validation on from 03:00: a file of 01:10 is older than the chain, not added.
        let covered = log(3, 10);
        let digests = [
            digest(3, None, &[(&covered, b"{}")]),
            // The next hour's digest names one in another bucket (the trail moved there).
            digest(
                4,
                Some((
                    "old-bucket",
                    "AWSLogs/1/CloudTrail-Digest/r/2024/05/02/1_CloudTrail-Digest_r_t_r_20240502T040000Z.json.gz",
                )),
                &[],
            ),
        ];
        let logs: BTreeMap<String, LogSeen> = [
            (
                covered.clone(),
                LogSeen {
                    sha256: Ok(sha256_hex(b"{}")),
                },
            ),
            (
                log(1, 10),
                LogSeen {
                    sha256: Ok(sha256_hex(b"[]")),
                },
            ),
        ]
        .into_iter()
        .collect();
        let (files, summary) = verify(&digests, &logs, None, days);
        let early = files.iter().find(|f| f.key == log(1, 10)).unwrap();
        assert_eq!(early.verdict, Verdict::Unlisted);
        assert!(
            early
                .detail
                .as_deref()
                .unwrap()
                .contains("before its chain starts"),
            "{early:?}"
        );
        assert!(
            !files.iter().any(|f| f.verdict == Verdict::DigestMissing),
            "the previous digest is in the old bucket: {files:?}"
        );
        assert_eq!(summary.logs_verified, 1);
    }
}
