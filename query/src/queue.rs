//! The SQS queue `watch` reads S3 notifications from: long polls, visibility extensions while
//! a batch is worked on, deletes once every exporter accepted it, releases of what was not
//! started. The real `aws-sdk-sqs` client, built by the caller (cli).
//!
//! A message is never deleted before its objects' events were accepted: a process killed at any
//! point leaves its messages to come back after their visibility timeout. A message that keeps
//! failing comes back until the queue's redrive policy (`maxReceiveCount`) moves it to the
//! dead-letter queue; [`Message::receive_count`] says how often it came.

use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};

use crate::error::Error;

/// SQS's most messages per receive and per batch request.
pub const SQS_BATCH: usize = 10;

/// One message received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SQS's message id.
    pub id: String,
    /// The receipt handle of this receive.
    pub receipt: String,
    /// The body.
    pub body: String,
    /// How many times it was received (this time included).
    pub receive_count: u32,
}

/// A queue and the visibility timeout `watch` holds its messages for.
#[derive(Debug, Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
    visibility: Duration,
}

fn sqs_error(url: &str, operation: &'static str, err: impl std::error::Error) -> Error {
    Error::Queue {
        url: url.to_owned(),
        operation,
        message: DisplayErrorContext(err).to_string(),
    }
}

impl Queue {
    /// The queue at `url`, whose messages are held for `visibility` at a time.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>, visibility: Duration) -> Self {
        Self {
            client,
            url: url.into(),
            visibility,
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The visibility timeout messages are held for.
    pub fn visibility(&self) -> Duration {
        self.visibility
    }

    fn visibility_secs(&self) -> i32 {
        i32::try_from(self.visibility.as_secs()).unwrap_or(43_200)
    }

    /// Receives up to `max` messages (at most [`SQS_BATCH`]), waiting up to `wait` for the
    /// first: whole seconds, rounded up (a part of a second is a long poll of one second, never
    /// a short poll, which an empty queue answers at once and a caller would spin on), at most
    /// 20 s (SQS's longest poll).
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Message>, Error> {
        let max = i32::try_from(max.clamp(1, SQS_BATCH)).unwrap_or(10);
        let wait = i32::try_from(wait.as_millis().div_ceil(1000).clamp(1, 20)).unwrap_or(20);
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait)
            .visibility_timeout(self.visibility_secs())
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sqs_error(&self.url, "ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                Some(Message {
                    id: m.message_id()?.to_owned(),
                    receipt: m.receipt_handle()?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count,
                })
            })
            .collect())
    }

    /// Holds `messages` for another visibility timeout from now (while their batch is still
    /// being worked on).
    pub async fn extend(&self, messages: &[Message]) -> Result<(), Error> {
        self.change_visibility(messages, self.visibility_secs())
            .await
    }

    /// Lets `messages` be received again now (by this or another process): what a stopping
    /// process did not start.
    pub async fn release(&self, messages: &[Message]) -> Result<(), Error> {
        self.change_visibility(messages, 0).await
    }

    async fn change_visibility(&self, messages: &[Message], secs: i32) -> Result<(), Error> {
        for chunk in messages.chunks(SQS_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt)
                        .visibility_timeout(secs)
                        .build()
                        .map_err(|e| sqs_error(&self.url, "ChangeMessageVisibilityBatch", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs_error(&self.url, "ChangeMessageVisibilityBatch", e))?;
            for failed in out.failed() {
                tracing::warn!(
                    queue = %self.url,
                    code = failed.code(),
                    message = failed.message().unwrap_or_default(),
                    "Could not change a message's visibility; it may be received again before its batch is done (its objects are then absorbed as duplicates)."
                );
            }
        }
        Ok(())
    }

    /// Deletes `messages`: their objects' events were accepted by every exporter. A message
    /// SQS does not delete is an error naming it (it will be received again, and its objects
    /// absorbed as duplicates).
    pub async fn delete(&self, messages: &[Message]) -> Result<(), Error> {
        for chunk in messages.chunks(SQS_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt)
                        .build()
                        .map_err(|e| sqs_error(&self.url, "DeleteMessageBatch", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs_error(&self.url, "DeleteMessageBatch", e))?;
            if let Some(failed) = out.failed().first() {
                let id = failed
                    .id()
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| chunk.get(i))
                    .map_or("?", |m| m.id.as_str());
                return Err(Error::Queue {
                    url: self.url.clone(),
                    operation: "DeleteMessageBatch",
                    message: format!(
                        "message {id} was not deleted: {} {}",
                        failed.code(),
                        failed.message().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `[watch]`: how `connect-audit watch` follows the trail (the trail, snapshot, scope and
/// exporters are the report's).
///
/// ```toml
/// [watch]
/// queue = "https://sqs.ap-northeast-1.amazonaws.com/111122223333/cloudtrail-notifications"
/// roll = "1m"
/// claims = "s3://audit-bucket/connect-audit/watch"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSettings {
    /// The SQS queue S3 notifies of new objects (the three notification shapes). Default:
    /// none; `poll` then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Without a queue: how often the trail is listed for new objects (`5m`; `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<String>,
    /// Queue: the longest a batch gathers objects before its events are written (each batch
    /// is one file per file exporter): `1m`, `1h`. Default: `1m`.
    #[serde(default = "default_roll")]
    pub roll: String,
    /// Queue: the most objects in a batch. Default: 500.
    #[serde(default = "default_batch_objects")]
    pub batch_objects: usize,
    /// Queue: how long a received message is hidden from other receivers; extended while its
    /// batch is worked on. Default: `5m`.
    #[serde(default = "default_visibility")]
    pub visibility: String,
    /// Queue: where the batches and the objects they claimed are kept, shared by every
    /// `watch` on the queue (a directory, or `s3://bucket/prefix` on Amazon S3, whose
    /// conditional writes settle two processes claiming one object). Default:
    /// `connect-audit-watch`.
    #[serde(default = "default_claims")]
    pub claims: String,
    /// How often a health line is written to stderr when it is not a terminal. Default: `1m`.
    #[serde(default = "default_health")]
    pub health: String,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            queue: None,
            poll: None,
            roll: default_roll(),
            batch_objects: default_batch_objects(),
            visibility: default_visibility(),
            claims: default_claims(),
            health: default_health(),
        }
    }
}

fn default_roll() -> String {
    "1m".to_owned()
}
fn default_batch_objects() -> usize {
    500
}
fn default_visibility() -> String {
    "5m".to_owned()
}
fn default_claims() -> String {
    "connect-audit-watch".to_owned()
}
fn default_health() -> String {
    "1m".to_owned()
}

/// Where `watch` learns of new objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// S3 notifications on this queue.
    Queue(String),
    /// Listings this often.
    Poll(Duration),
}

/// `[watch]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidWatch {
    /// The queue, or polling.
    pub source: Source,
    /// The longest a batch gathers.
    pub roll: Duration,
    /// The most objects in a batch.
    pub batch_objects: usize,
    /// The visibility timeout.
    pub visibility: Duration,
    /// Where batches and claims are kept.
    pub claims: connect_audit_core::Location,
    /// The health line's period.
    pub health: Duration,
}

/// Reads `30s`, or a duration [`connect_audit_core::window::parse_duration`] reads (`5m`,
/// `1h`, `1d`).
pub fn parse_period(text: &str) -> Option<Duration> {
    let t = text.trim();
    if let Some(secs) = t.strip_suffix('s').and_then(|n| n.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    connect_audit_core::window::parse_duration(t).and_then(|d| d.try_into().ok())
}

impl WatchSettings {
    /// Checks the settings without I/O; each problem is `(key, message)`.
    pub fn validate(&self) -> Result<ValidWatch, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let mut period = |key: &'static str, text: &str, min: Duration, max: Duration| {
            match parse_period(text) {
                Some(d) if d >= min && d <= max => Some(d),
                _ => {
                    problems.push((
                        key,
                        format!(
                            "`{text}` is not a duration from {}s to {}s such as 30s, 5m or 1h",
                            min.as_secs(),
                            max.as_secs()
                        ),
                    ));
                    None
                }
            }
        };
        let hour = Duration::from_hours(1);
        let roll = period("watch.roll", &self.roll, Duration::from_secs(1), 6 * hour);
        // SQS holds a message at most 12 hours.
        let visibility = period(
            "watch.visibility",
            &self.visibility,
            Duration::from_secs(1),
            12 * hour,
        );
        let health = period(
            "watch.health",
            &self.health,
            Duration::from_secs(1),
            24 * hour,
        );
        let poll = self
            .poll
            .as_deref()
            .map(|p| period("watch.poll", p, Duration::from_secs(1), 24 * hour));
        let source = match (&self.queue, poll) {
            (Some(url), None) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(Source::Queue(url.clone()))
            }
            (Some(url), None) => {
                problems.push((
                    "watch.queue",
                    format!("`{url}` is not a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"),
                ));
                None
            }
            (None, Some(every)) => every.map(Source::Poll),
            (Some(_), Some(_)) => {
                problems.push((
                    "watch.poll",
                    "give a queue or a polling period, not both".to_owned(),
                ));
                None
            }
            (None, None) => {
                problems.push((
                    "watch.queue",
                    "give --queue URL (S3 notifications on SQS) or --poll 5m (listings)".to_owned(),
                ));
                None
            }
        };
        if self.batch_objects == 0 {
            problems.push(("watch.batch_objects", "must be at least 1".to_owned()));
        }
        let claims = connect_audit_core::Location::parse(&self.claims)
            .map_err(|e| problems.push(("watch.claims", e.to_string())))
            .ok();
        match (source, roll, visibility, health, claims) {
            (Some(source), Some(roll), Some(visibility), Some(health), Some(claims))
                if problems.is_empty() =>
            {
                Ok(ValidWatch {
                    source,
                    roll,
                    batch_objects: self.batch_objects,
                    visibility,
                    claims,
                    health,
                })
            }
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_settings_need_one_source_and_sane_periods() {
        let mut s = WatchSettings {
            queue: Some("https://sqs.us-east-1.amazonaws.com/111122223333/q".into()),
            ..WatchSettings::default()
        };
        let v = s.validate().unwrap();
        assert_eq!(
            v.source,
            Source::Queue("https://sqs.us-east-1.amazonaws.com/111122223333/q".into())
        );
        assert_eq!(v.roll, Duration::from_mins(1));
        s.poll = Some("5m".into());
        let err = s.validate().unwrap_err();
        assert_eq!(err[0].0, "watch.poll", "{err:?}");
        s.queue = None;
        assert_eq!(
            s.validate().unwrap().source,
            Source::Poll(Duration::from_mins(5))
        );
        s.poll = None;
        assert_eq!(s.validate().unwrap_err()[0].0, "watch.queue");
        let bad = WatchSettings {
            poll: Some("30s".into()),
            roll: "0s".into(),
            visibility: "13h".into(),
            batch_objects: 0,
            ..WatchSettings::default()
        };
        let keys: Vec<_> = bad
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(
            keys,
            ["watch.roll", "watch.visibility", "watch.batch_objects"]
        );
        assert_eq!(parse_period("45s"), Some(Duration::from_secs(45)));
        assert_eq!(parse_period("2h"), Some(Duration::from_hours(2)));
        assert_eq!(parse_period("soon"), None);
    }
}
