//! CloudTrail's log file integrity, made here: test RSA keys, log files and the hourly digest
//! files that sign them, written as CloudTrail writes them (`CloudTrail-Digest/` beside
//! `CloudTrail/`, the signature in the object's `signature` metadata), and a CloudTrail
//! endpoint answering `ListPublicKeys` over the real JSON 1.1 protocol to the real
//! `aws-sdk-cloudtrail` client (and to the AWS CLI's validator).
//!
//! The digest format and the string to sign are the documented ones
//! ([`connect_audit_core::integrity`] reads them); the keys are 2048-bit RSA, signing
//! SHA256withRSA (PKCS #1 v1.5) with aws-lc-rs.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::KeyPair as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use connect_audit_core::integrity::{Digest, DigestLogFile, sha256_hex};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::server::{Flavor, TestServer};

/// A CloudTrail signing key of a test: its pair, its fingerprint, and when it is valid.
pub struct SigningKey {
    pair: aws_lc_rs::rsa::KeyPair,
    /// The fingerprint digests name (hex).
    pub fingerprint: String,
    /// From …
    pub valid_from: Timestamp,
    /// … to.
    pub valid_until: Timestamp,
}

impl SigningKey {
    /// A new 2048-bit key, valid `from .. until`.
    pub fn generate(from: &str, until: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("generate an RSA key");
        let fingerprint = sha256_hex(pair.public_key().as_ref())[..32].to_owned();
        Self {
            pair,
            fingerprint,
            valid_from: from.parse().unwrap(),
            valid_until: until.parse().unwrap(),
        }
    }

    /// The public key, DER `RSAPublicKey`, as `ListPublicKeys` gives it.
    pub fn public_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The hex SHA256withRSA signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("sign");
        signature.iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

/// One object of a trail bucket: its key, its bytes (gzip), its `signature` metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailObject {
    /// The key in the bucket (the trail's prefix, then `AWSLogs/…`).
    pub key: String,
    /// The gzip bytes.
    pub bytes: Vec<u8>,
    /// A digest's signature (hex); `None` for a log file.
    pub signature: Option<String>,
}

/// Gzips `text`.
pub fn gzip(text: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text).unwrap();
    gz.finish().unwrap()
}

/// A trail of one account and region: log files delivered in hours, and its digests.
pub struct Trail {
    /// The bucket the digests name.
    pub bucket: String,
    /// The trail's key prefix (`S3KeyPrefix`), ending in `/`, or empty.
    pub prefix: String,
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The trail's name (in digest names).
    pub name: String,
}

/// One hour of a trail: its log files (their inflated JSON), the key that signs its digest,
/// and whether logging (re)started with it (no previous digest).
pub struct Hour<'k> {
    /// Start of the hour.
    pub start: Timestamp,
    /// The log files delivered in it: (delivery time, inflated JSON).
    pub logs: Vec<(Timestamp, Vec<u8>)>,
    /// The key that signs its digest.
    pub key: &'k SigningKey,
    /// Logging started with this hour: its digest names no previous one.
    pub restart: bool,
}

impl Trail {
    fn stamp(t: Timestamp, seconds: bool) -> String {
        t.strftime(if seconds {
            "%Y%m%dT%H%M%SZ"
        } else {
            "%Y%m%dT%H%MZ"
        })
        .to_string()
    }

    fn folder(&self, kind: &str, t: Timestamp) -> String {
        format!(
            "{}AWSLogs/{}/{kind}/{}/{}/",
            self.prefix,
            self.account,
            self.region,
            t.strftime("%Y/%m/%d")
        )
    }

    /// The key of a log file delivered at `t` (`n` makes it unique).
    pub fn log_key(&self, t: Timestamp, n: usize) -> String {
        format!(
            "{}{}_CloudTrail_{}_{}_{n:016}.json.gz",
            self.folder("CloudTrail", t),
            self.account,
            self.region,
            Self::stamp(t, false)
        )
    }

    /// The key of the digest of the hour ending at `end`.
    pub fn digest_key(&self, end: Timestamp) -> String {
        format!(
            "{}{}_CloudTrail-Digest_{}_{}_{}_{}.json.gz",
            self.folder("CloudTrail-Digest", end),
            self.account,
            self.region,
            self.name,
            self.region,
            Self::stamp(end, true)
        )
    }

    /// The log files and the digests of `hours`, in order, each digest chained to the one
    /// before (unless it restarts) and signed by its hour's key.
    pub fn build(&self, hours: &[Hour<'_>]) -> Vec<TrailObject> {
        let mut out = Vec::new();
        let mut previous: Option<(String, String, String)> = None; // key, hash, signature
        let mut n = 0;
        for hour in hours {
            let end = hour.start + jiff::SignedDuration::from_hours(1);
            let mut log_files = Vec::new();
            for (delivered, json) in &hour.logs {
                n += 1;
                let key = self.log_key(*delivered, n);
                log_files.push(DigestLogFile {
                    s3_bucket: self.bucket.clone(),
                    s3_object: key.clone(),
                    hash_value: sha256_hex(json),
                    hash_algorithm: "SHA-256".into(),
                    newest_event_time: None,
                    oldest_event_time: None,
                });
                out.push(TrailObject {
                    key,
                    bytes: gzip(json),
                    signature: None,
                });
            }
            if hour.restart {
                previous = None;
            }
            let key = self.digest_key(end);
            let digest = Digest {
                aws_account_id: self.account.clone(),
                digest_start_time: hour.start.to_string(),
                digest_end_time: end.to_string(),
                digest_s3_bucket: self.bucket.clone(),
                digest_s3_object: key.clone(),
                digest_public_key_fingerprint: hour.key.fingerprint.clone(),
                digest_signature_algorithm: "SHA256withRSA".into(),
                newest_event_time: None,
                oldest_event_time: None,
                previous_digest_s3_bucket: previous.as_ref().map(|_| self.bucket.clone()),
                previous_digest_s3_object: previous.as_ref().map(|p| p.0.clone()),
                previous_digest_hash_value: previous.as_ref().map(|p| p.1.clone()),
                previous_digest_hash_algorithm: previous.as_ref().map(|_| "SHA-256".into()),
                previous_digest_signature: previous.as_ref().map(|p| p.2.clone()),
                log_files,
            };
            let inflated = serde_json::to_vec(&digest).unwrap();
            let signature = hour.key.sign(digest.string_to_sign(&inflated).as_bytes());
            previous = Some((key.clone(), sha256_hex(&inflated), signature.clone()));
            out.push(TrailObject {
                key,
                bytes: gzip(&inflated),
                signature: Some(signature),
            });
        }
        out
    }
}

/// A log file's JSON: `n` Connect events at `t` (any content would do; these parse).
pub fn log_json(t: Timestamp, n: usize, account: &str) -> Vec<u8> {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "eventVersion": "1.09",
                "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": account,
                                 "arn": format!("arn:aws:iam::{account}:user/ops"), "userName": "ops"},
                "eventTime": t.to_string(),
                "eventSource": "connect.amazonaws.com",
                "eventName": "UpdateUserRoutingProfile",
                "awsRegion": "us-east-1",
                "sourceIPAddress": "203.0.113.10",
                "userAgent": "aws-cli/2.15.40",
                "requestParameters": {"RoutingProfileId": "rp", "UserId": format!("u{i}"), "InstanceId": "6762b34f-4e26-4a8e-a032-35a1e58e1b1c"},
                "responseElements": null,
                "requestID": format!("{t}-{i}"),
                "eventID": format!("{}-{i}", t.as_second()),
                "readOnly": false,
                "eventType": "AwsApiCall",
                "managementEvent": true,
                "recipientAccountId": account,
                "eventCategory": "Management"
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

/// A CloudTrail endpoint answering `ListPublicKeys` (JSON 1.1, `X-Amz-Target:
/// CloudTrail_20131101.ListPublicKeys`) with the keys whose validity meets the asked range.
pub struct FakeCloudTrail {
    server: TestServer,
    calls: Arc<Mutex<u64>>,
}

struct Keys {
    keys: Vec<(String, Vec<u8>, Timestamp, Timestamp)>,
    calls: Arc<Mutex<u64>>,
}

impl FakeCloudTrail {
    /// Serves `keys`.
    pub fn start(keys: &[&SigningKey]) -> Self {
        let calls = Arc::new(Mutex::new(0));
        let state = Arc::new(Keys {
            keys: keys
                .iter()
                .map(|k| {
                    (
                        k.fingerprint.clone(),
                        k.public_der(),
                        k.valid_from,
                        k.valid_until,
                    )
                })
                .collect(),
            calls: Arc::clone(&calls),
        });
        let router = Router::new().fallback(list_public_keys).with_state(state);
        let server = TestServer::bind("cloudtrail").serve_router(Flavor::CurrentThread, router);
        Self { server, calls }
    }

    /// Its URL, for `AWS_ENDPOINT_URL_CLOUDTRAIL`.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// `ListPublicKeys` calls answered.
    pub fn calls(&self) -> u64 {
        *self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn list_public_keys(
    State(state): State<Arc<Keys>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !target.ends_with(".ListPublicKeys") {
        let error = json!({"__type": "UnknownOperationException", "message": format!("not served here: {target}")});
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    *state.calls.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Epoch seconds, as JSON numbers (whole here: the client sends whole seconds).
    #[allow(clippy::cast_possible_truncation)]
    let time = |name: &str, default: i64| request[name].as_f64().map_or(default, |t| t as i64);
    let (from, until) = (time("StartTime", i64::MIN), time("EndTime", i64::MAX));
    let list: Vec<Value> = state
        .keys
        .iter()
        .filter(|(_, _, start, end)| start.as_second() <= until && end.as_second() >= from)
        .map(|(fingerprint, der, start, end)| {
            json!({
                // As CloudTrail answers: the blob's bytes are the key's DER in base64 (so the
                // JSON holds it base64-encoded twice; the AWS CLI decodes the second time).
                "Value": STANDARD.encode(STANDARD.encode(der)),
                "ValidityStartTime": start.as_second(),
                "ValidityEndTime": end.as_second(),
                "Fingerprint": fingerprint,
            })
        })
        .collect();
    (
        [("content-type", "application/x-amz-json-1.1")],
        json!({ "PublicKeyList": list }).to_string(),
    )
        .into_response()
}

/// Puts `objects` into `bucket` (a digest with its `signature` and `signature-algorithm`
/// metadata, as CloudTrail writes them).
pub async fn put_objects(client: &aws_sdk_s3::Client, bucket: &str, objects: &[TrailObject]) {
    for o in objects {
        let mut put = client
            .put_object()
            .bucket(bucket)
            .key(&o.key)
            .body(o.bytes.clone().into());
        if let Some(signature) = &o.signature {
            put = put
                .metadata("signature", signature)
                .metadata("signature-algorithm", "SHA256withRSA");
        }
        put.send().await.unwrap();
    }
}

/// The objects by key, to change before they are written.
pub fn by_key(objects: Vec<TrailObject>) -> BTreeMap<String, TrailObject> {
    objects.into_iter().map(|o| (o.key.clone(), o)).collect()
}
