//! Sending one batch: the request of the flavour, retries with exponential backoff and full
//! jitter, `Retry-After`, and the verdict (delivered, or given up with a reason).

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::batch::Batch;
use super::deadletter::Failure;
use super::sign::{WebhookKey, webhook_id};
use super::{SiemFlavor, SiemWebhookSpec, redact_url};

/// How a batch is authenticated.
enum Auth {
    /// `Authorization: Splunk <token>` (marked sensitive).
    Splunk(HeaderValue),
    /// Standard Webhooks signature headers.
    Webhook(WebhookKey),
}

/// Where and how batches are sent; shared by every delivery of one exporter.
pub(crate) struct Endpoint {
    uri: Uri,
    auth: Auth,
    /// The credential as given, to scrub from any message.
    credential: String,
    /// The URL as configured, to scrub from any message when it differs from its redaction.
    raw_url: String,
    gzip: bool,
    timeout: Duration,
    max_retries: u32,
    retry_initial: Duration,
    retry_max: Duration,
    retry_budget: Duration,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// The verdict on one batch.
pub(crate) enum Verdict {
    Delivered,
    GivenUp(Failure),
}

/// What one attempt came to.
enum Attempt {
    Accepted,
    Retry {
        reason: String,
        status: Option<u16>,
        retry_after: Option<Duration>,
    },
    Refused {
        reason: String,
        status: u16,
    },
}

impl Endpoint {
    /// Checks the URL and credential and sets up TLS; no connection is made yet. Errors are
    /// for people and never quote the credential.
    pub(crate) fn new(spec: &SiemWebhookSpec, credential: String) -> Result<Self, String> {
        let mut url = spec.url.clone();
        if spec.flavor == SiemFlavor::SplunkHec && !url.contains("/services/collector") {
            let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
            url = format!(
                "{}/services/collector/event{query}",
                base.trim_end_matches('/')
            );
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("the URL {} is not valid: {e}", redact_url(&spec.url)))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("the URL {} is not http(s)", redact_url(&spec.url))),
        };
        if uri.host().is_none() {
            return Err(format!("the URL {} has no host", redact_url(&spec.url)));
        }
        let auth = match spec.flavor {
            SiemFlavor::SplunkHec => {
                let mut value = HeaderValue::from_str(&format!("Splunk {credential}"))
                    .map_err(|_| "the Splunk token is not a valid header value".to_owned())?;
                value.set_sensitive(true);
                Auth::Splunk(value)
            }
            SiemFlavor::StandardWebhooks => {
                Auth::Webhook(WebhookKey::from_secret(&credential).map_err(str::to_owned)?)
            }
        };
        let timeout = Duration::from_secs(spec.timeout_secs.max(1));
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let builder = match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider.clone())
        {
            Ok(builder) => builder,
            // Plain HTTP (a local receiver) needs no roots; HTTPS without any is an error now
            // rather than on every request.
            Err(_) if !https => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("cannot set up TLS: {e}"))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
            Err(e) => return Err(format!("cannot load the system's CA certificates: {e}")),
        };
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(spec.concurrency.max(1))
            .build(connector);
        Ok(Self {
            uri,
            auth,
            credential,
            raw_url: spec.url.clone(),
            gzip: spec.gzip,
            timeout,
            max_retries: spec.max_retries,
            retry_initial: Duration::from_millis(spec.retry_initial_ms.max(1)),
            retry_max: Duration::from_millis(spec.retry_max_ms.max(spec.retry_initial_ms)),
            retry_budget: Duration::from_secs(spec.retry_budget_secs),
            client,
        })
    }

    /// Sends a batch until it is accepted, refused, or out of retries or time.
    pub(crate) async fn deliver(&self, batch: &Batch, exporter: &str) -> Verdict {
        let body = if self.gzip {
            Bytes::from(gzip(&batch.body))
        } else {
            Bytes::copy_from_slice(&batch.body)
        };
        let msg_id = matches!(self.auth, Auth::Webhook(_)).then(|| webhook_id(&batch.ids));
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let (reason, status, retry_after) = match self
                .attempt(&body, &batch.body, msg_id.as_deref())
                .await
            {
                Attempt::Accepted => {
                    tracing::debug!(exporter, events = batch.len(), attempts, "Batch delivered.");
                    return Verdict::Delivered;
                }
                Attempt::Refused { reason, status } => {
                    return Verdict::GivenUp(Failure {
                        reason,
                        status: Some(status),
                        attempts,
                        batch_id: msg_id,
                    });
                }
                Attempt::Retry {
                    reason,
                    status,
                    retry_after,
                } => (reason, status, retry_after),
            };
            let give_up = |why: String| {
                Verdict::GivenUp(Failure {
                    reason: format!("{reason} ({why})"),
                    status,
                    attempts,
                    batch_id: msg_id.clone(),
                })
            };
            if attempts > self.max_retries {
                return give_up(format!("gave up after {attempts} attempts"));
            }
            let wait = retry_after.unwrap_or_else(|| self.backoff(attempts - 1));
            if started.elapsed() + wait > self.retry_budget {
                return give_up(format!(
                    "retry budget of {}s spent after {attempts} attempts",
                    self.retry_budget.as_secs()
                ));
            }
            tracing::debug!(
                exporter,
                events = batch.len(),
                attempts,
                %reason,
                wait_ms = wait.as_millis(),
                "Batch will be retried."
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Full jitter: uniform in `[0, min(retry_max, retry_initial × 2^retry)]`.
    fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .retry_initial
            .saturating_mul(2u32.saturating_pow(retry.min(30)))
            .min(self.retry_max);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=millis))
    }

    async fn attempt(&self, body: &Bytes, plain: &[u8], msg_id: Option<&str>) -> Attempt {
        let mut request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("connect-audit/", env!("CARGO_PKG_VERSION")),
            );
        if self.gzip {
            request = request.header(header::CONTENT_ENCODING, "gzip");
        }
        match &self.auth {
            Auth::Splunk(value) => request = request.header(header::AUTHORIZATION, value.clone()),
            Auth::Webhook(key) => {
                let msg_id = msg_id.expect("webhook batches have an id");
                let timestamp = jiff::Timestamp::now().as_second();
                let mut signature = HeaderValue::from_str(&key.sign(msg_id, timestamp, plain))
                    .expect("base64 is a valid header value");
                signature.set_sensitive(true);
                request = request
                    .header("webhook-id", msg_id)
                    .header("webhook-timestamp", timestamp)
                    .header("webhook-signature", signature);
            }
        }
        let request = request
            .body(Full::new(body.clone()))
            .expect("the request's parts are valid");
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            // Read (some of) the answer: the connection can then be reused, and a refusal
            // says why.
            let answer = Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, answer))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Attempt::Retry {
                reason: format!("no answer within {}s", self.timeout.as_secs()),
                status: None,
                retry_after: None,
            },
            Ok(Err(e)) => Attempt::Retry {
                reason: self.scrub(&error_chain(&e)),
                status: None,
                retry_after: None,
            },
            Ok(Ok((status, retry_after, answer))) => {
                if status.is_success() {
                    return Attempt::Accepted;
                }
                let reason = self.scrub(&describe_answer(status, &answer));
                if retryable(status) {
                    Attempt::Retry {
                        reason,
                        status: Some(status.as_u16()),
                        retry_after,
                    }
                } else {
                    Attempt::Refused {
                        reason,
                        status: status.as_u16(),
                    }
                }
            }
        }
    }

    /// A message without the credential or the URL's userinfo and query.
    pub(crate) fn scrub(&self, message: &str) -> String {
        let mut message = message.to_owned();
        if !self.credential.is_empty() {
            message = message.replace(&self.credential, "***");
        }
        let redacted = redact_url(&self.raw_url);
        if redacted != self.raw_url {
            message = message.replace(&self.raw_url, redacted);
        }
        message
    }
}

/// 408, 429 and 5xx are worth another try; other refusals are final.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `HTTP 400 Bad Request: <start of the answer>`.
fn describe_answer(status: StatusCode, answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let text: String = text.trim().chars().take(200).collect();
    let mut reason = format!("HTTP {status}");
    if !text.is_empty() {
        reason.push_str(": ");
        reason.push_str(&text);
    }
    reason
}

/// The error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After`: delay-seconds, or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&soon)
            .unwrap();
        let wait = parse_retry_after(&date).unwrap();
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_mins(2),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:01 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn only_timeouts_throttling_and_server_errors_are_retried() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [400, 401, 403, 404, 413, 301] {
            assert!(!retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let mut spec = SiemWebhookSpec::new(SiemFlavor::SplunkHec, "http://127.0.0.1:1");
        spec.retry_initial_ms = 100;
        spec.retry_max_ms = 1000;
        let endpoint = Endpoint::new(&spec, "token".into()).unwrap();
        for retry in 0..40 {
            let ceiling = (100u64 << retry.min(20)).min(1000);
            for _ in 0..20 {
                assert!(endpoint.backoff(retry).as_millis() <= u128::from(ceiling));
            }
        }
        let spread: std::collections::BTreeSet<_> = (0..50).map(|_| endpoint.backoff(5)).collect();
        assert!(spread.len() > 10, "jittered: {spread:?}");
    }

    #[test]
    fn messages_are_scrubbed_of_credentials_and_url_secrets() {
        let spec = SiemWebhookSpec::new(
            SiemFlavor::SplunkHec,
            "http://127.0.0.1:1/?channel=c-secret",
        );
        let endpoint = Endpoint::new(&spec, "tok-123".into()).unwrap();
        assert_eq!(endpoint.uri.path(), "/services/collector/event");
        assert_eq!(endpoint.uri.query(), Some("channel=c-secret"));
        let scrubbed = endpoint.scrub("bad tok-123 at http://127.0.0.1:1/?channel=c-secret");
        assert_eq!(scrubbed, "bad *** at http://127.0.0.1:1/");
    }
}
