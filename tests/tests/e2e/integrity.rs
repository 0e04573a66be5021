//! Issue J: CloudTrail log file integrity, end to end. A trail of six hours (one without log
//! files) with its hourly digests, signed by two test keys (a rotation at 03:00), is put into
//! Garage with each digest's `signature` metadata; a CloudTrail endpoint answers
//! `ListPublicKeys` to the real client. `connect-audit verify` runs on each case below, and
//! the AWS CLI's own validator (awscli's `DigestTraverser`, `scripts/awscli-validate.py`)
//! gives the same verdict on every digest and log file it reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use connect_audit_tests::garage::Garage;
use connect_audit_tests::trail_digests::{
    FakeCloudTrail, Hour, SigningKey, Trail, TrailObject, gzip, log_json, put_objects,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::helpers::binary;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";
const NAME: &str = "audit-trail";
const SINCE: &str = "2024-05-02T00:00:00Z";
const UNTIL: &str = "2024-05-02T06:00:00Z";

fn t(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The keys: `a` signs until 03:00, `b` from 03:00; `unknown` is served by no endpoint;
/// `later` is served but valid only from the next day.
struct Keys {
    a: SigningKey,
    b: SigningKey,
    unknown: SigningKey,
    later: SigningKey,
}

fn keys() -> Keys {
    Keys {
        a: SigningKey::generate("2024-04-01T00:00:00Z", "2024-05-02T03:00:00Z"),
        b: SigningKey::generate("2024-05-02T03:00:00Z", "2025-05-02T03:00:00Z"),
        unknown: SigningKey::generate("2024-04-01T00:00:00Z", "2025-05-02T03:00:00Z"),
        later: SigningKey::generate("2024-05-03T12:00:00Z", "2025-05-02T03:00:00Z"),
    }
}

/// The hours of the trail: 00:00 to 06:00, two log files an hour but none at 02:00, each
/// digest signed by the key valid then (`sign` may pick another for hour `h`).
fn hours<'k>(
    keys: &'k Keys,
    skip: &[usize],
    restart: Option<usize>,
    sign: &dyn Fn(usize) -> Option<&'k SigningKey>,
) -> Vec<Hour<'k>> {
    (0..6)
        .filter(|h| !skip.contains(h))
        .map(|h| {
            let start = t(SINCE) + SignedDuration::from_hours(i64::try_from(h).unwrap());
            let logs = if h == 2 {
                Vec::new()
            } else {
                [10, 40]
                    .iter()
                    .map(|m| {
                        let at = start + SignedDuration::from_mins(*m);
                        (at, log_json(at - SignedDuration::from_mins(5), 2, ACCOUNT))
                    })
                    .collect()
            };
            Hour {
                start,
                logs,
                key: sign(h).unwrap_or(if h < 3 { &keys.a } else { &keys.b }),
                restart: restart == Some(h),
            }
        })
        .collect()
}

fn python() -> PathBuf {
    let path = std::env::var_os("AWSCLI_VALIDATOR_PYTHON").map_or_else(
        || super::html::target_dir().join("awscli-venv/bin/python3"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is missing: the integrity tests check against the AWS CLI's validator (scripts/test installs awscli into it)",
        path.display()
    );
    path
}

/// What one case gave: `verify`'s exit code, verdicts by (kind, key from `AWSLogs/`) with
/// their detail, its summary, and the AWS CLI's verdicts by (kind, key).
struct Outcome {
    /// The trail's prefix in the bucket.
    prefix: String,
    code: Option<i32>,
    verdicts: BTreeMap<(String, String), (String, String)>,
    summary: String,
    awscli: Vec<(String, String, String)>,
}

fn from_awslogs(key: &str) -> String {
    key.find("AWSLogs/").map_or(key, |i| &key[i..]).to_owned()
}

fn run_case(
    garage: &Garage,
    cloudtrail: &FakeCloudTrail,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    make: &dyn Fn(&Trail) -> Vec<TrailObject>,
) -> Outcome {
    let prefix = garage.unique_prefix(name);
    let trail = Trail {
        bucket: garage.bucket().to_owned(),
        prefix: format!("{prefix}/"),
        account: ACCOUNT.into(),
        region: REGION.into(),
        name: NAME.into(),
    };
    let objects = make(&trail);
    runtime.block_on(put_objects(&garage.client(), garage.bucket(), &objects));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("verdicts.jsonl");
    let mut env = garage.aws_env();
    env.push(("AWS_ENDPOINT_URL_CLOUDTRAIL", cloudtrail.url().to_owned()));
    let run = Command::new(binary())
        .args([
            "verify",
            "--trail",
            &format!("s3://{}/{prefix}", garage.bucket()),
            "--since",
            SINCE,
            "--until",
            UNTIL,
            "--output",
            out.to_str().unwrap(),
        ])
        .envs(env.iter().cloned())
        .env_remove("CONNECT_AUDIT_CONFIG")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&run.stderr).into_owned();
    let verdicts = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("{name}: no verdicts ({e}): {summary}"))
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            (
                (text("kind"), text("key")),
                (text("verdict"), text("detail")),
            )
        })
        .collect();
    let awscli = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/awscli-validate.py"))
        .args([
            &format!("arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{NAME}"),
            garage.bucket(),
            &prefix,
            SINCE,
            UNTIL,
        ])
        .envs(env.iter().cloned())
        .env("AWS_ENDPOINT_URL_S3", garage.endpoint())
        .output()
        .unwrap();
    assert!(
        awscli.status.success(),
        "{name}: the AWS CLI's validator failed: {}",
        String::from_utf8_lossy(&awscli.stderr)
    );
    let awscli = String::from_utf8_lossy(&awscli.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            let verdict = match v["message"].as_str() {
                Some(m) => format!("{} ({m})", text("verdict")),
                None => text("verdict"),
            };
            (text("kind"), from_awslogs(&text("key")), verdict)
        })
        .filter(|(kind, _, _)| kind != "gap")
        .collect();
    Outcome {
        prefix,
        code: run.status.code(),
        verdicts,
        summary,
        awscli,
    }
}

impl Outcome {
    /// Asserts that some file has `verdict` with a detail containing `detail`.
    fn expect(&self, verdict: &str, detail: &str) {
        assert!(
            self.verdicts
                .values()
                .any(|(v, d)| v == verdict && d.contains(detail)),
            "no {verdict} ({detail}) among {:?}",
            self.failures()
        );
    }

    /// The files not verified: (kind, key, verdict).
    fn failures(&self) -> Vec<(String, String, String)> {
        self.verdicts
            .iter()
            .filter(|(_, (v, _))| v != "verified")
            .map(|((kind, key), (v, _))| (kind.clone(), key.clone(), v.clone()))
            .collect()
    }

    /// The AWS CLI says of every file it reports what connect-audit says.
    fn agrees_with_the_aws_cli(&self, name: &str) {
        assert!(
            !self.awscli.is_empty(),
            "{name}: the AWS CLI reported nothing"
        );
        for (kind, key, theirs) in &self.awscli {
            let ours = self.verdicts.get(&(kind.clone(), key.clone())).map_or_else(
                || panic!("{name}: the AWS CLI reports {kind} {key} ({theirs}), connect-audit does not: {}", self.summary),
                |(v, _)| v.as_str(),
            );
            let verdict = theirs.split(' ').next().unwrap_or_default();
            let same = match verdict {
                "valid" => ours == "verified",
                "invalid" => matches!(ours, "digest invalid" | "digest modified" | "modified"),
                "missing" => matches!(ours, "digest missing" | "missing"),
                other => panic!("{name}: unknown AWS CLI verdict {other}"),
            };
            assert!(
                same,
                "{name}: {kind} {key}: the AWS CLI says {theirs}, connect-audit {ours}"
            );
        }
    }
}

#[test]
fn every_verdict_of_the_digest_chain_agrees_with_the_aws_cli() {
    let garage = Garage::shared();
    let keys = keys();
    let cloudtrail = FakeCloudTrail::start(&[&keys.a, &keys.b, &keys.later]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let none = |_: usize| None;
    let base = |trail: &Trail| trail.build(&hours(&keys, &[], None, &none));
    let digest_of =
        |trail: &Trail, h: i64| trail.digest_key(t(SINCE) + SignedDuration::from_hours(h + 1));
    let case = |name: &str, make: &dyn Fn(&Trail) -> Vec<TrailObject>| {
        let outcome = run_case(garage, &cloudtrail, &runtime, name, make);
        outcome.agrees_with_the_aws_cli(name);
        outcome
    };

    // Untouched: every file and digest verified, across the key rotation and the hour
    // without log files.
    let clean = case("clean", &base);
    assert_eq!(clean.code, Some(0), "{}", clean.summary);
    assert!(clean.failures().is_empty(), "{:?}", clean.failures());
    assert!(
        clean.summary.contains("10 of 10 log files and 6 of 6 digests verified, chain unbroken from 2024-05-02T00:00:00Z to 2024-05-02T06:00:00Z"),
        "{}",
        clean.summary
    );
    assert!(cloudtrail.calls() >= 1, "the keys came from ListPublicKeys");
    // The same trail with the root at its `AWSLogs/` (the README's form): the same verdict.
    let mut env = garage.aws_env();
    env.push(("AWS_ENDPOINT_URL_CLOUDTRAIL", cloudtrail.url().to_owned()));
    let at_awslogs = Command::new(binary())
        .args([
            "verify",
            "--trail",
            &format!("s3://{}/{}/AWSLogs", garage.bucket(), clean.prefix),
            "--since",
            SINCE,
            "--until",
            UNTIL,
        ])
        .envs(env.iter().cloned())
        .env_remove("CONNECT_AUDIT_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&at_awslogs.stderr);
    assert_eq!(at_awslogs.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("10 of 10 log files and 6 of 6 digests verified"),
        "{stderr}"
    );

    // A digest without its `signature` metadata in S3 is invalid, not unchecked.
    let unsigned = case("unsigned", &|trail| {
        let mut objects = base(trail);
        let target = digest_of(trail, 2);
        objects
            .iter_mut()
            .find(|o| o.key == target)
            .unwrap()
            .signature = None;
        objects
    });
    unsigned.expect("digest invalid", "no `signature` metadata");

    // A modified log file.
    let modified = case("modified", &|trail| {
        let mut objects = base(trail);
        let log = objects.iter_mut().find(|o| o.signature.is_none()).unwrap();
        log.bytes = gzip(&log_json(t("2024-05-02T00:05:00Z"), 3, ACCOUNT));
        objects
    });
    assert_eq!(modified.code, Some(4), "{}", modified.summary);
    assert_eq!(
        modified
            .failures()
            .iter()
            .map(|f| f.2.as_str())
            .collect::<Vec<_>>(),
        ["modified"]
    );

    // A deleted log file, and an added one.
    let deleted = case("deleted-log", &|trail| {
        let mut objects = base(trail);
        let i = objects.iter().rposition(|o| o.signature.is_none()).unwrap();
        objects.remove(i);
        let at = t("2024-05-02T01:20:00Z");
        objects.push(TrailObject {
            key: trail.log_key(at, 99),
            bytes: gzip(&log_json(at, 1, ACCOUNT)),
            signature: None,
        });
        objects
    });
    let failures = deleted.failures();
    let mut kinds: Vec<&str> = failures.iter().map(|f| f.2.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["missing", "unlisted"], "{failures:?}");
    let added = deleted
        .verdicts
        .iter()
        .find(|(_, (v, _))| v == "unlisted")
        .unwrap();
    assert!(added.1.1.contains("possibly added"), "{added:?}");

    // One deleted digest; then two consecutive ones (which the AWS CLI reports as one).
    let one = case("one-digest", &|trail| {
        let gone = digest_of(trail, 3);
        base(trail).into_iter().filter(|o| o.key != gone).collect()
    });
    assert_eq!(one.code, Some(4));
    let gone: Vec<_> = one
        .failures()
        .into_iter()
        .filter(|f| f.2 == "digest missing")
        .collect();
    assert_eq!(gone.len(), 1, "{:?}", one.failures());
    let two = case("two-digests", &|trail| {
        let gone = [digest_of(trail, 2), digest_of(trail, 3)];
        base(trail)
            .into_iter()
            .filter(|o| !gone.contains(&o.key))
            .collect()
    });
    let gone: Vec<_> = two
        .failures()
        .into_iter()
        .filter(|f| f.2 == "digest missing")
        .collect();
    assert_eq!(gone.len(), 2, "both gaps are named: {:?}", two.failures());
    assert!(
        two.awscli.iter().filter(|(_, _, v)| v == "missing").count() < 2,
        "the AWS CLI misses the second one (aws-cli issue 7054): {:?}",
        two.awscli
    );
    assert!(
        two.summary
            .contains("more than the one digest named is gone"),
        "{}",
        two.summary
    );

    // A forged signature, a key nobody serves, a key outside its validity.
    let forged = case("forged", &|trail| {
        let mut objects = base(trail);
        let target = digest_of(trail, 4);
        let d = objects.iter_mut().find(|o| o.key == target).unwrap();
        let mut sig = d.signature.clone().unwrap().into_bytes();
        sig[10] = if sig[10] == b'0' { b'1' } else { b'0' };
        d.signature = Some(String::from_utf8(sig).unwrap());
        objects
    });
    forged.expect("digest invalid", "bad signature");
    let unknown = case("unknown-key", &|trail| {
        trail.build(&hours(&keys, &[], None, &|h| {
            (h == 1).then_some(&keys.unknown)
        }))
    });
    unknown.expect("digest invalid", "unknown key");
    let outside = case("outside-validity", &|trail| {
        trail.build(&hours(&keys, &[], None, &|h| {
            (h == 1).then_some(&keys.later)
        }))
    });
    outside.expect("digest invalid", "outside its validity");

    // Logging stopped at 02:00 and started at 04:00: CloudTrail's own gap, not a failure.
    let restarted = case("restarted", &|trail| {
        trail.build(&hours(&keys, &[2, 3], Some(4), &none))
    });
    assert_eq!(restarted.code, Some(0), "{}", restarted.summary);
    assert!(
        restarted.failures().is_empty(),
        "{:?}",
        restarted.failures()
    );
    assert!(
        restarted.summary.contains("logging stopped and started again: no digest for 2024-05-02T02:00:00Z .. 2024-05-02T04:00:00Z"),
        "{}",
        restarted.summary
    );
}

/// Writes `objects` under `root` as a local copy of the bucket (no S3 metadata).
fn write_copy(root: &Path, objects: &[TrailObject]) {
    for o in objects {
        let path = root.join(&o.key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &o.bytes).unwrap();
    }
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .env_remove("CONNECT_AUDIT_CONFIG")
        .env_remove("AWS_ENDPOINT_URL")
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn a_local_copy_checks_hashes_and_the_chain_and_report_verify_carries_the_verdict() {
    let keys = keys();
    let trail = Trail {
        bucket: "trail-bucket".into(),
        prefix: String::new(),
        account: ACCOUNT.into(),
        region: REGION.into(),
        name: NAME.into(),
    };
    let objects = trail.build(&hours(&keys, &[], None, &|_| None));
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    write_copy(&clean, &objects);

    // `report --verify`: the summary, the HTML header and the exit code carry the verdict.
    let html = dir.path().join("audit.html");
    let out = run(
        dir.path(),
        &[
            "report",
            "--trail",
            clean.to_str().unwrap(),
            "--since",
            SINCE,
            "--until",
            UNTIL,
            "--events",
            "all",
            "--verify",
            "--format",
            "html",
            "--output",
            html.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("integrity: 10 of 10 log files and 6 of 6 digests verified, chain unbroken from 2024-05-02T00:00:00Z to 2024-05-02T06:00:00Z (signatures not checked: a local copy has no S3 metadata)"),
        "{stderr}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains(r#"<p class="note" id="integrity"><b>Integrity:</b> 10 of 10 log files"#),
        "the HTML header says it"
    );

    // A digest rewritten: the next digest's hash of it differs (no signature needed).
    let tampered = dir.path().join("tampered");
    let third = trail.digest_key(t(SINCE) + SignedDuration::from_hours(4));
    let changed: Vec<TrailObject> = objects
        .iter()
        .map(|o| {
            if o.key != third {
                return o.clone();
            }
            let mut digest: Value =
                serde_json::from_slice(&connect_audit_query::local::gunzip(&o.bytes).unwrap())
                    .unwrap();
            digest["logFiles"].as_array_mut().unwrap().pop();
            TrailObject {
                bytes: gzip(&serde_json::to_vec(&digest).unwrap()),
                ..o.clone()
            }
        })
        .collect();
    write_copy(&tampered, &changed);
    let out = run(
        dir.path(),
        &[
            "verify",
            "--trail",
            tampered.to_str().unwrap(),
            "--since",
            SINCE,
            "--until",
            UNTIL,
            "--output",
            "-",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let verdict_of = |key: &str| {
        lines
            .iter()
            .find(|l| l["key"] == key)
            .map(|l| l["verdict"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        verdict_of(&third).as_deref(),
        Some("digest modified"),
        "{lines:?}"
    );
    let mut unlisted: Vec<&str> = lines
        .iter()
        .filter(|l| l["verdict"] == "unlisted")
        .map(|l| l["detail"].as_str().unwrap())
        .collect();
    unlisted.sort_unstable();
    assert_eq!(
        unlisted,
        [
            "listed only by a digest that is not valid (digest modified)",
            "no digest lists it, though one covers its delivery time: possibly added",
        ],
        "the file the rewritten digest still lists vouches for nothing; the one it dropped: {lines:?}"
    );
    assert!(stderr.contains("signatures not checked"), "{stderr}");
    let out = run(
        dir.path(),
        &[
            "report",
            "--trail",
            tampered.to_str().unwrap(),
            "--since",
            SINCE,
            "--until",
            UNTIL,
            "--verify",
            "--format",
            "html",
            "--output",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(4), "exit 4: a file not verified");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(r#"<p class="warning" id="integrity">"#));
    assert!(
        page.contains("digest modified digest"),
        "the failures are listed"
    );
    let tolerated = run(
        dir.path(),
        &[
            "report",
            "--trail",
            tampered.to_str().unwrap(),
            "--since",
            SINCE,
            "--until",
            UNTIL,
            "--verify",
            "--tolerate-integrity",
            "--format",
            "jsonl",
            "--output",
            "-",
        ],
    );
    assert_eq!(tolerated.status.code(), Some(0));
    // Athena reads no log file: `--verify` is refused there, pointing at `verify`.
    let athena = run(
        dir.path(),
        &[
            "report", "--engine", "athena", "--verify", "--since", SINCE, "--until", UNTIL,
        ],
    );
    assert_eq!(athena.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&athena.stderr).contains("connect-audit verify"));
}
