//! `type = "siem-webhook"`: the settings of the SIEM webhook exporter, its credentials and
//! what messages may show of its URL.

use serde::{Deserialize, Serialize};

use super::{SiemExporter, event_body};
use crate::spec::{CredentialVars, RecordSchema, Spec, Validated};
use crate::{Error, Exporter, RecordKind};

/// `type = "siem-webhook"`: batches of records POSTed to a SIEM over HTTP(S), retried on
/// throttling, timeouts and server errors; what cannot be delivered goes to a dead-letter file.
///
/// ```toml
/// [[exporters]]
/// type = "siem-webhook"
/// flavor = "splunk-hec"
/// url = "https://splunk.example.com:8088"
/// token_env = "SPLUNK_HEC_TOKEN"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiemWebhookSpec {
    /// The receiver, `http://` or `https://`, without credentials. For `splunk-hec`, the HEC
    /// base URL (`https://splunk:8088`): `/services/collector/event` is appended unless the path
    /// already names the collector. For `standard-webhooks`, the endpoint itself. Required.
    pub url: String,
    /// `splunk-hec` or `standard-webhooks`. Required.
    pub flavor: SiemFlavor,
    /// The Splunk HEC token (`splunk-hec`; this or `token_env`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The environment variable holding the Splunk HEC token. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// The Standard Webhooks signing secret, `whsec_<base64 key>` (`standard-webhooks`; this or
    /// `secret_env`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// The environment variable holding the signing secret. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Splunk `host` of every event. Default: none (Splunk uses the token's default host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Splunk `source` of every event. Default: `connect-audit`.
    #[serde(default = "siem_source")]
    pub source: String,
    /// Splunk `sourcetype` of every event. Default: `aws:connect:audit`.
    #[serde(default = "siem_sourcetype")]
    pub sourcetype: String,
    /// Splunk `index`. Default: none (the token's default index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Records per request, at most. Default: 500.
    #[serde(default = "siem_max_events")]
    pub max_events: usize,
    /// Bytes of request body (before gzip), at most; a record larger than this is sent alone.
    /// Default: 900000 (under the 1 MB request limit of Splunk and most webhook receivers).
    #[serde(default = "siem_max_bytes")]
    pub max_bytes: usize,
    /// Compress request bodies (`Content-Encoding: gzip`). Default: `false`.
    #[serde(default)]
    pub gzip: bool,
    /// Requests in flight, at most. Default: 4.
    #[serde(default = "siem_concurrency")]
    pub concurrency: usize,
    /// Seconds one attempt may take, from connecting to the end of the answer. Default: 30.
    #[serde(default = "siem_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries of one batch after its first attempt (on connection errors, timeouts, 408, 429
    /// and 5xx). Default: 8.
    #[serde(default = "siem_max_retries")]
    pub max_retries: u32,
    /// Backoff ceiling before the first retry, in milliseconds; it doubles per retry up to
    /// `retry_max_ms`, and each wait is drawn uniformly below it (full jitter). Default: 200.
    #[serde(default = "siem_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Largest backoff ceiling, in milliseconds. Default: 30000.
    #[serde(default = "siem_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Seconds after a batch's first attempt past which it is not retried again (a
    /// `Retry-After` that would end later ends the retries now). Default: 300.
    #[serde(default = "siem_retry_budget_secs")]
    pub retry_budget_secs: u64,
    /// The dead-letter file: one JSON line per record that could not be delivered (a 4xx other
    /// than 408/429, or retries exhausted), appended to. Default:
    /// `connect-audit-dead-letter.jsonl` in the working directory.
    #[serde(default = "siem_dead_letter")]
    pub dead_letter: String,
    /// The events sent: the audit record, or its OCSF event. Default: `audit`. The dead-letter
    /// file keeps the audit record either way.
    #[serde(default)]
    pub schema: RecordSchema,
}

/// The request format of a [`SiemWebhookSpec`]: `flavor = "splunk-hec" | "standard-webhooks"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiemFlavor {
    /// Splunk HTTP Event Collector: `POST /services/collector/event`, `Authorization: Splunk
    /// <token>`, one JSON envelope per record.
    SplunkHec,
    /// Standard Webhooks (<https://www.standardwebhooks.com>): a JSON array of records, signed
    /// with HMAC-SHA256 in `webhook-id`, `webhook-timestamp` and `webhook-signature`.
    StandardWebhooks,
}

/// A credential from config: its `Debug` and its serialised form (`config show`) are `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

fn siem_source() -> String {
    "connect-audit".to_owned()
}

fn siem_sourcetype() -> String {
    "aws:connect:audit".to_owned()
}

fn siem_max_events() -> usize {
    500
}

fn siem_max_bytes() -> usize {
    900_000
}

fn siem_concurrency() -> usize {
    4
}

fn siem_timeout_secs() -> u64 {
    30
}

fn siem_max_retries() -> u32 {
    8
}

fn siem_retry_initial_ms() -> u64 {
    200
}

fn siem_retry_max_ms() -> u64 {
    30_000
}

fn siem_retry_budget_secs() -> u64 {
    300
}

fn siem_dead_letter() -> String {
    "connect-audit-dead-letter.jsonl".to_owned()
}

/// `url` without userinfo, query or fragment: what messages may show of a webhook URL.
///
/// ```
/// use connect_audit_exporters::siem::redact_url;
/// assert_eq!(redact_url("https://splunk:8088/x?token=t#f"), "https://splunk:8088/x");
/// assert_eq!(redact_url("https://user:pw@splunk:8088/"), "splunk:8088/");
/// ```
pub fn redact_url(url: &str) -> &str {
    let url = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    let authority = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[authority..]
        .find('/')
        .map_or(url.len(), |i| authority + i);
    match url[authority..authority_end].rfind('@') {
        Some(at) => &url[authority + at + 1..],
        None => url,
    }
}

impl SiemWebhookSpec {
    /// A spec with defaults for everything but the flavour and URL (and no credentials).
    pub fn new(flavor: SiemFlavor, url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            flavor,
            token: None,
            token_env: None,
            secret: None,
            secret_env: None,
            host: None,
            source: siem_source(),
            sourcetype: siem_sourcetype(),
            index: None,
            max_events: siem_max_events(),
            max_bytes: siem_max_bytes(),
            gzip: false,
            concurrency: siem_concurrency(),
            timeout_secs: siem_timeout_secs(),
            max_retries: siem_max_retries(),
            retry_initial_ms: siem_retry_initial_ms(),
            retry_max_ms: siem_retry_max_ms(),
            retry_budget_secs: siem_retry_budget_secs(),
            dead_letter: siem_dead_letter(),
            schema: RecordSchema::Audit,
        }
    }
}

impl Spec for SiemWebhookSpec {
    /// The URL without credentials, query or fragment ([`redact_url`]).
    fn path(&self) -> &str {
        redact_url(&self.url)
    }

    fn path_mut(&mut self) -> Option<&mut String> {
        None
    }

    /// The credential's variable of this flavour: `token_env` for `splunk-hec`, `secret_env`
    /// for `standard-webhooks`.
    fn credential_var(&self) -> Option<&str> {
        match self.flavor {
            SiemFlavor::SplunkHec => self.token_env.as_deref(),
            SiemFlavor::StandardWebhooks => self.secret_env.as_deref(),
        }
    }

    /// Messages never quote a credential or the URL's userinfo or query.
    fn validate(&self, kind: RecordKind) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let mut problem = |field: &'static str, message: &str| {
            problems.push((field, message.to_owned()));
        };
        if kind != RecordKind::Audit {
            problem(
                "type",
                &format!("a SIEM webhook takes audit records, not {}s", kind.noun()),
            );
        }
        let rest = self
            .url
            .strip_prefix("https://")
            .or_else(|| self.url.strip_prefix("http://"));
        match rest {
            None => problem("url", "must start with https:// or http://"),
            Some(rest) => {
                let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
                if authority.contains('@') {
                    problem(
                        "url",
                        "must not carry credentials; use token/token_env or secret/secret_env",
                    );
                } else if authority.is_empty() || authority.starts_with(':') {
                    problem("url", "has no host");
                }
                if rest.chars().any(char::is_whitespace) {
                    problem("url", "must not contain whitespace");
                }
            }
        }
        let (wanted, wanted_env, other, other_env, names) = match self.flavor {
            SiemFlavor::SplunkHec => (
                &self.token,
                &self.token_env,
                &self.secret,
                &self.secret_env,
                ["token", "token_env", "secret", "secret_env"],
            ),
            SiemFlavor::StandardWebhooks => (
                &self.secret,
                &self.secret_env,
                &self.token,
                &self.token_env,
                ["secret", "secret_env", "token", "token_env"],
            ),
        };
        match (wanted, wanted_env) {
            (Some(_), Some(_)) => problem(
                names[0],
                &format!("give {} or {}, not both", names[0], names[1]),
            ),
            (None, None) => problem(
                names[0],
                &format!("required: give {} or {}", names[0], names[1]),
            ),
            (Some(value), None) if value.expose().trim().is_empty() => {
                problem(names[0], "must not be empty");
            }
            (Some(value), None) if self.flavor == SiemFlavor::StandardWebhooks => {
                if let Err(e) = check_webhook_secret(value.expose()) {
                    problem(names[0], e);
                }
            }
            (None, Some(var)) if var.is_empty() || var.contains(['=', '\0']) => {
                problem(names[1], "must name an environment variable");
            }
            _ => {}
        }
        if other.is_some() {
            problem(
                names[2],
                &format!("is not used by this flavor; give {}", names[0]),
            );
        }
        if other_env.is_some() {
            problem(
                names[3],
                &format!("is not used by this flavor; give {}", names[1]),
            );
        }
        if self.source.is_empty() {
            problem("source", "must not be empty");
        }
        if self.sourcetype.is_empty() {
            problem("sourcetype", "must not be empty");
        }
        if self.max_events == 0 {
            problem("max_events", "must be at least 1");
        }
        if self.max_bytes < 1024 {
            problem("max_bytes", "must be at least 1024");
        }
        if !(1..=256).contains(&self.concurrency) {
            problem("concurrency", "must be between 1 and 256");
        }
        if self.timeout_secs == 0 {
            problem("timeout_secs", "must be at least 1");
        }
        if self.retry_initial_ms == 0 {
            problem("retry_initial_ms", "must be at least 1");
        }
        if self.retry_max_ms < self.retry_initial_ms {
            problem("retry_max_ms", "must be at least retry_initial_ms");
        }
        if self.dead_letter.is_empty() || self.dead_letter == "-" {
            problem("dead_letter", "must name a file");
        } else if self.dead_letter.starts_with("s3://") {
            problem("dead_letter", "must be a local file");
        }
        problems
    }

    fn build(&self, _: Validated, vars: &CredentialVars) -> Result<Box<dyn Exporter>, Error> {
        Ok(Box::new(SiemExporter::with_event_body(
            self,
            vars,
            event_body(self),
        )?))
    }
}

/// Checks a Standard Webhooks secret: `whsec_` (optional, as the reference libraries accept)
/// then standard base64 of a non-empty key. Pure; the exporter decodes it.
pub fn check_webhook_secret(secret: &str) -> Result<(), &'static str> {
    let key = secret.strip_prefix("whsec_").unwrap_or(secret);
    let base64 = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let body = key.trim_end_matches('=');
    if body.is_empty() {
        return Err("must be whsec_ followed by a base64 key");
    }
    if !body.bytes().all(base64) || key.len() - body.len() > 2 || key.len() % 4 == 1 {
        return Err("must be whsec_ followed by standard base64 (A-Z a-z 0-9 + /)");
    }
    Ok(())
}

#[cfg(test)]
mod siem_tests {
    use super::*;
    use crate::ExporterSpec;

    #[test]
    fn secrets_never_show_in_debug_or_serialised_config() {
        let mut spec = SiemWebhookSpec::new(SiemFlavor::SplunkHec, "https://splunk:8088");
        spec.token = Some(Secret::new("hec-token-1234"));
        let debug = format!("{spec:?}");
        assert!(!debug.contains("hec-token-1234"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
        let toml = toml::to_string(&ExporterSpec::SiemWebhook(spec)).unwrap();
        assert!(!toml.contains("hec-token-1234"), "{toml}");
        assert!(toml.contains("token = \"***\""), "{toml}");
    }

    #[test]
    fn spec_is_read_from_toml_with_defaults() {
        let spec: ExporterSpec = toml::from_str(
            "type = 'siem-webhook'\nflavor = 'standard-webhooks'\nurl = 'http://127.0.0.1:9/hook'\nsecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'\n",
        )
        .unwrap();
        let ExporterSpec::SiemWebhook(spec) = &spec else {
            panic!("{spec:?}")
        };
        assert_eq!(spec.max_events, 500);
        assert_eq!(spec.dead_letter, "connect-audit-dead-letter.jsonl");
        assert!(
            spec.validate(RecordKind::Audit).is_empty(),
            "{:?}",
            spec.validate(RecordKind::Audit)
        );
        let unknown = toml::from_str::<ExporterSpec>(
            "type = 'siem-webhook'\nflavor = 'splunk-hec'\nurl = 'http://x'\ntokn = 'x'\n",
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn validation_names_fields_and_never_quotes_credentials() {
        let mut spec = SiemWebhookSpec::new(
            SiemFlavor::StandardWebhooks,
            "https://user:hunter2@hooks.example.com/x",
        );
        spec.secret = Some(Secret::new("whsec_not base64!"));
        spec.token = Some(Secret::new("t"));
        spec.max_events = 0;
        spec.retry_max_ms = 1;
        let problems = spec.validate(RecordKind::Audit);
        let fields: Vec<_> = problems.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            ["url", "secret", "token", "max_events", "retry_max_ms"],
            "{problems:?}"
        );
        let all = format!("{problems:?}");
        assert!(
            !all.contains("hunter2") && !all.contains("not base64"),
            "{all}"
        );
        assert_eq!(
            ExporterSpec::SiemWebhook(spec).path(),
            "hooks.example.com/x"
        );
        let mut splunk = SiemWebhookSpec::new(SiemFlavor::SplunkHec, "ftp://splunk");
        splunk.token_env = Some("HEC_TOKEN".into());
        assert_eq!(
            splunk.validate(RecordKind::Audit),
            [("url", "must start with https:// or http://".into())]
        );
    }

    #[test]
    fn webhook_secrets_are_checked_as_base64() {
        assert!(check_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(check_webhook_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(check_webhook_secret("whsec_").is_err());
        assert!(check_webhook_secret("whsec_ab$c").is_err());
        assert!(check_webhook_secret("whsec_abcde").is_err());
    }
}
