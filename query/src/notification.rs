//! The SQS message bodies that announce new S3 objects, for a `watch` that reads CloudTrail log
//! objects as they arrive: a pure parser, no I/O.
//!
//! A queue can be fed four ways, and [`parse`] takes all of them:
//!
//! - **S3 event notifications** sent to the queue directly ([`Shape::S3`]): `{"Records": [...]}`,
//!   one record per object, `eventSource` `aws:s3`, `eventName` `ObjectCreated:Put` (and `Post`,
//!   `Copy`, `CompleteMultipartUpload`). The object key is URL-encoded the way HTML forms are
//!   (`+` for a space, `%XX` for a byte); it is decoded here. When notifications are configured,
//!   S3 first sends an `s3:TestEvent` message ([`Notification::Test`]).
//! - **The same, through an SNS topic** ([`Shape::Sns`]): an SNS envelope (`"Type":
//!   "Notification"`) whose `Message` is the S3 JSON as a string. With SNS *raw message delivery*
//!   there is no envelope and the body is the S3 JSON itself ([`Shape::S3`]). SNS also sends a
//!   `SubscriptionConfirmation` (and `UnsubscribeConfirmation`) envelope: [`Notification::Other`].
//! - **EventBridge** ([`Shape::EventBridge`]): an `Object Created` event (`source` `aws.s3`),
//!   `detail.bucket.name` and `detail.object.key`; that key is *not* URL-encoded. Other detail
//!   types (`Object Deleted`, ...) are [`Notification::Other`].
//! - **CloudTrail's own SNS notification** ([`Shape::CloudTrailSns`]), which a trail publishes
//!   when it delivers log files: `{"s3Bucket": "...", "s3ObjectKey": ["AWSLogs/...json.gz", ...]}`
//!   (in an SNS envelope, or bare with raw message delivery). The keys are plain, not encoded.
//!
//! Sources: the Amazon S3 User Guide pages "Event message structure"
//! (notification-content-structure) and "EventBridge event message structure" (ev-events); the
//! Amazon SNS Developer Guide pages "Amazon SNS message and JSON formats", "Fanout to Amazon SQS
//! queues" and "Amazon SNS raw message delivery"; the AWS CloudTrail User Guide page "Configuring
//! Amazon SNS notifications for CloudTrail".

use jiff::Timestamp;
use serde_json::{Map, Value};

/// One object a message announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    /// The bucket's name.
    pub bucket: String,
    /// The object's key, decoded (S3 event notifications URL-encode it; the other shapes do not).
    pub key: String,
    /// The object's size in bytes, when the message gives it (not in CloudTrail's notification).
    pub size: Option<u64>,
    /// The object's ETag as given, without surrounding quotes.
    pub etag: Option<String>,
    /// S3's `sequencer` (hexadecimal; orders the events of one key).
    pub sequencer: Option<String>,
    /// When S3 says the object was created (`eventTime`; EventBridge's `time`).
    pub event_time: Option<Timestamp>,
}

/// What a message body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// New objects (one message may carry several records).
    Objects {
        /// How the message came.
        shape: Shape,
        /// The objects, in the message's order (never empty).
        objects: Vec<ObjectCreated>,
    },
    /// `s3:TestEvent` (sent when notifications are configured), direct or in SNS.
    Test,
    /// A well-formed notification of something else (ObjectRemoved, an SNS
    /// SubscriptionConfirmation, another EventBridge detail-type): acknowledged and counted.
    Other {
        /// What it is, e.g. `S3 ObjectRemoved:Delete`, `SNS SubscriptionConfirmation`,
        /// `EventBridge Object Deleted`.
        what: String,
    },
}

/// How a message announcing objects came to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An S3 event notification sent to the queue directly (or through SNS with raw message
    /// delivery, which looks the same).
    S3,
    /// An S3 event notification in an SNS envelope.
    Sns,
    /// An EventBridge `Object Created` event (direct, or in an SNS envelope).
    EventBridge,
    /// CloudTrail's notification of delivered log files (in an SNS envelope or raw).
    CloudTrailSns,
}

/// Why a body is not a notification this parser knows: not JSON, an unknown shape, a missing or
/// malformed field (the message names it, e.g. `Records[0].s3.object.key`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotNotification(pub String);

/// Reads an SQS message body: S3 event notification (direct or in SNS), `s3:TestEvent`,
/// EventBridge event, or CloudTrail's SNS notification.
///
/// In an S3 `Records` array, `ObjectCreated:*` records are kept and the others dropped; a message
/// with no `ObjectCreated:*` record is [`Notification::Other`]. A record whose `eventSource` is not
/// `aws:s3`, or whose `eventVersion`'s major is not 2, makes the whole body an error.
pub fn parse(body: &str) -> Result<Notification, NotNotification> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| NotNotification(format!("not JSON: {e}")))?;
    dispatch(&value, false)
}

/// Reads a parsed body; `in_sns` when it is the `Message` of an SNS envelope.
fn dispatch(value: &Value, in_sns: bool) -> Result<Notification, NotNotification> {
    let Some(map) = value.as_object() else {
        return Err(NotNotification(format!(
            "not a JSON object ({})",
            kind(value)
        )));
    };
    let top = Obj::top(map);
    if map.contains_key("Records") {
        s3_records(&top, if in_sns { Shape::Sns } else { Shape::S3 })
    } else if map.contains_key("Event") && map.contains_key("Service") {
        s3_test(&top)
    } else if map.contains_key("detail-type") {
        eventbridge(&top)
    } else if map.contains_key("s3ObjectKey") {
        cloudtrail(&top)
    } else if map.contains_key("Type") && map.contains_key("TopicArn") {
        if in_sns {
            return Err(NotNotification(
                "the Message is itself an SNS envelope".to_owned(),
            ));
        }
        sns(&top)
    } else {
        let mut keys: Vec<&str> = map.keys().map(String::as_str).take(6).collect();
        if map.len() > keys.len() {
            keys.push("...");
        }
        Err(NotNotification(format!(
            "a JSON object of unknown shape (no Records, Event, detail-type, s3ObjectKey or \
             Type/TopicArn field; it has: {})",
            keys.join(", ")
        )))
    }
}

/// `{"Records": [...]}`: S3 event notification records.
fn s3_records(top: &Obj<'_>, shape: Shape) -> Result<Notification, NotNotification> {
    let records = top.array("Records")?;
    if records.is_empty() {
        return Err(NotNotification("Records is empty".to_owned()));
    }
    let mut objects = Vec::with_capacity(records.len());
    let mut others: Vec<&str> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let path = format!("Records[{i}]");
        let record = Obj::at(record, path)?;
        let source = record.str("eventSource")?;
        if source != "aws:s3" {
            return Err(NotNotification(format!(
                "{} is {source:?}, not \"aws:s3\"",
                record.name("eventSource")
            )));
        }
        let version = record.str("eventVersion")?;
        if version.split('.').next() != Some("2") {
            return Err(NotNotification(format!(
                "{} is {version:?}; only major version 2 is known",
                record.name("eventVersion")
            )));
        }
        let name = record.str("eventName")?;
        // The documented form has no `s3:` prefix (the configuration's event types do).
        let name = name.strip_prefix("s3:").unwrap_or(name);
        if !name.starts_with("ObjectCreated:") {
            if !others.contains(&name) {
                others.push(name);
            }
            continue;
        }
        let s3 = record.obj("s3")?;
        let bucket = s3.obj("bucket")?.str("name")?.to_owned();
        let object = s3.obj("object")?;
        let encoded = object.str("key")?;
        let key = form_decode(encoded).map_err(|why| {
            NotNotification(format!(
                "{} {encoded:?} is not URL-encoded: {why}",
                object.name("key")
            ))
        })?;
        objects.push(ObjectCreated {
            bucket,
            key,
            size: object.opt_u64("size")?,
            etag: object.opt_str("eTag")?.map(unquote),
            sequencer: object.opt_str("sequencer")?.map(str::to_owned),
            event_time: record.opt_time("eventTime")?,
        });
    }
    if objects.is_empty() {
        Ok(Notification::Other {
            what: format!("S3 {}", others.join(", ")),
        })
    } else {
        Ok(Notification::Objects { shape, objects })
    }
}

/// `{"Service": "Amazon S3", "Event": "s3:TestEvent", ...}`.
fn s3_test(top: &Obj<'_>) -> Result<Notification, NotNotification> {
    let service = top.str("Service")?;
    if service != "Amazon S3" {
        return Err(NotNotification(format!(
            "Service is {service:?}, not \"Amazon S3\""
        )));
    }
    match top.str("Event")? {
        "s3:TestEvent" => Ok(Notification::Test),
        event => Ok(Notification::Other {
            what: format!("S3 {event}"),
        }),
    }
}

/// An EventBridge event from `aws.s3`.
fn eventbridge(top: &Obj<'_>) -> Result<Notification, NotNotification> {
    let source = top.str("source")?;
    if source != "aws.s3" {
        return Err(NotNotification(format!(
            "EventBridge source is {source:?}, not \"aws.s3\""
        )));
    }
    let detail_type = top.str("detail-type")?;
    if detail_type != "Object Created" {
        return Ok(Notification::Other {
            what: format!("EventBridge {detail_type}"),
        });
    }
    let detail = top.obj("detail")?;
    let object = detail.obj("object")?;
    let created = ObjectCreated {
        bucket: detail.obj("bucket")?.str("name")?.to_owned(),
        // Not URL-encoded in EventBridge events.
        key: object.str("key")?.to_owned(),
        size: object.opt_u64("size")?,
        etag: object.opt_str("etag")?.map(unquote),
        sequencer: object.opt_str("sequencer")?.map(str::to_owned),
        event_time: top.opt_time("time")?,
    };
    Ok(Notification::Objects {
        shape: Shape::EventBridge,
        objects: vec![created],
    })
}

/// CloudTrail's `{"s3Bucket": "...", "s3ObjectKey": [...]}`.
fn cloudtrail(top: &Obj<'_>) -> Result<Notification, NotNotification> {
    let bucket = top.str("s3Bucket")?;
    let keys = top.array("s3ObjectKey")?;
    if keys.is_empty() {
        return Err(NotNotification("s3ObjectKey is empty".to_owned()));
    }
    let objects = keys
        .iter()
        .enumerate()
        .map(|(i, key)| match key.as_str() {
            Some(key) if !key.is_empty() => Ok(ObjectCreated {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size: None,
                etag: None,
                sequencer: None,
                event_time: None,
            }),
            _ => Err(NotNotification(format!(
                "s3ObjectKey[{i}] is {}, not a key",
                kind(key)
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Notification::Objects {
        shape: Shape::CloudTrailSns,
        objects,
    })
}

/// An SNS envelope: `Notification` (its `Message` is read), or a subscription message.
fn sns(top: &Obj<'_>) -> Result<Notification, NotNotification> {
    match top.str("Type")? {
        "Notification" => {
            let message = top.str("Message")?;
            let inner: Value = serde_json::from_str(message)
                .map_err(|e| NotNotification(format!("SNS Message is not JSON: {e}")))?;
            dispatch(&inner, true).map_err(|e| NotNotification(format!("SNS Message: {}", e.0)))
        }
        kind @ ("SubscriptionConfirmation" | "UnsubscribeConfirmation") => {
            Ok(Notification::Other {
                what: format!("SNS {kind}"),
            })
        }
        other => Err(NotNotification(format!(
            "Type is {other:?}, not an SNS message type"
        ))),
    }
}

/// A JSON object and the path that leads to it, for errors that name the field.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    /// `""` at the top, else e.g. `Records[0].s3`.
    path: String,
}

impl<'a> Obj<'a> {
    fn top(map: &'a Map<String, Value>) -> Self {
        Obj {
            map,
            path: String::new(),
        }
    }

    fn at(value: &'a Value, path: String) -> Result<Self, NotNotification> {
        match value.as_object() {
            Some(map) => Ok(Obj { map, path }),
            None => Err(NotNotification(format!(
                "{path} is {}, not an object",
                kind(value)
            ))),
        }
    }

    /// The path of the field `name`.
    fn name(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// A field that must be there (`null` counts as missing).
    fn get(&self, name: &str) -> Result<&'a Value, NotNotification> {
        match self.map.get(name) {
            Some(Value::Null) | None => {
                Err(NotNotification(format!("{} is missing", self.name(name))))
            }
            Some(value) => Ok(value),
        }
    }

    fn obj(&self, name: &str) -> Result<Obj<'a>, NotNotification> {
        Obj::at(self.get(name)?, self.name(name))
    }

    fn array(&self, name: &str) -> Result<&'a [Value], NotNotification> {
        let value = self.get(name)?;
        value.as_array().map(Vec::as_slice).ok_or_else(|| {
            NotNotification(format!(
                "{} is {}, not an array",
                self.name(name),
                kind(value)
            ))
        })
    }

    /// A non-empty string that must be there.
    fn str(&self, name: &str) -> Result<&'a str, NotNotification> {
        match self.opt_str(name)? {
            Some(s) => Ok(s),
            None => Err(NotNotification(format!("{} is missing", self.name(name)))),
        }
    }

    /// A string, or `None` when the field is absent, `null` or empty.
    fn opt_str(&self, name: &str) -> Result<Option<&'a str>, NotNotification> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
            Some(value) => Err(NotNotification(format!(
                "{} is {}, not a string",
                self.name(name),
                kind(value)
            ))),
        }
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>, NotNotification> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                NotNotification(format!(
                    "{} is {value}, not a size in bytes",
                    self.name(name)
                ))
            }),
        }
    }

    fn opt_time(&self, name: &str) -> Result<Option<Timestamp>, NotNotification> {
        let Some(text) = self.opt_str(name)? else {
            return Ok(None);
        };
        text.parse().map(Some).map_err(|e| {
            NotNotification(format!(
                "{} {text:?} is not an RFC 3339 time: {e}",
                self.name(name)
            ))
        })
    }
}

/// What kind of JSON value, for errors.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An ETag without the quotes S3 puts around it in HTTP headers (notifications usually leave
/// them out).
fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte; the bytes
/// must be UTF-8.
fn form_decode(encoded: &str) -> Result<String, String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.get(i + 1).copied().and_then(hex);
                let low = bytes.get(i + 2).copied().and_then(hex);
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(format!("'%' at byte {i} is not followed by two hex digits"));
                };
                out.push(high << 4 | low);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "it decodes to bytes that are not UTF-8".to_owned())
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT_KEY: &str = "AWSLogs/111122223333/CloudTrail/ap-northeast-1/2024/05/02/\
                          111122223333_CloudTrail_ap-northeast-1_20240502T0905Z_abc.json.gz";

    fn announced(body: &str) -> (Shape, Vec<ObjectCreated>) {
        match parse(body) {
            Ok(Notification::Objects { shape, objects }) => (shape, objects),
            other => panic!("expected objects, got {other:?}"),
        }
    }

    fn error(body: &str) -> String {
        match parse(body) {
            Err(NotNotification(why)) => why,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// The S3 User Guide's "Example message when an object is created using a PUT request"
    /// (notification-content-structure), with `key` and `eventTime` as given.
    fn s3_put(key: &str, event_time: &str) -> String {
        format!(
            r#"{{
   "Records":[
      {{
         "eventVersion":"2.1",
         "eventSource":"aws:s3",
         "awsRegion":"us-west-2",
         "eventTime":"{event_time}",
         "eventName":"ObjectCreated:Put",
         "userIdentity":{{
            "principalId":"AIDAJDPLRKLG7UEXAMPLE"
         }},
         "requestParameters":{{
            "sourceIPAddress":"127.0.0.1"
         }},
         "responseElements":{{
            "x-amz-request-id":"C3D13FE58DE4C810",
            "x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"
         }},
         "s3":{{
            "s3SchemaVersion":"1.0",
            "configurationId":"testConfigRule",
            "bucket":{{
               "name":"mybucket",
               "ownerIdentity":{{
                  "principalId":"A3NL1KOZZKExample"
               }},
               "arn":"arn:aws:s3:::mybucket"
            }},
            "object":{{
               "key":"{key}",
               "size":1024,
               "eTag":"d41d8cd98f00b204e9800998ecf8427e",
               "versionId":"096fKKXTRTtl3on89fVO.nfljtsv6qko",
               "sequencer":"0055AED6DCD90281E5"
            }}
         }}
      }}
   ]
}}"#
        )
    }

    /// A compact S3 record (the same fields as the User Guide's example).
    fn record(event_name: &str, key: &str, size: u64, sequencer: &str) -> String {
        format!(
            r#"{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"ap-northeast-1","eventTime":"2024-05-02T09:05:31.123Z","eventName":"{event_name}","userIdentity":{{"principalId":"AWS:AROAEXAMPLE:cloudtrail"}},"requestParameters":{{"sourceIPAddress":"10.0.0.1"}},"responseElements":{{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"}},"s3":{{"s3SchemaVersion":"1.0","configurationId":"trail","bucket":{{"name":"trail-bucket","ownerIdentity":{{"principalId":"A3NL1KOZZKExample"}},"arn":"arn:aws:s3:::trail-bucket"}},"object":{{"key":"{key}","size":{size},"eTag":"b1946ac92492d2347c6235b4d2611184","sequencer":"{sequencer}"}}}}}}"#
        )
    }

    #[test]
    fn s3_notification_from_the_user_guide() {
        let (shape, objects) = announced(&s3_put("HappyFace.jpg", "1970-01-01T00:00:00.000Z"));
        assert_eq!(shape, Shape::S3);
        assert_eq!(
            objects,
            [ObjectCreated {
                bucket: "mybucket".to_owned(),
                key: "HappyFace.jpg".to_owned(),
                size: Some(1024),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".to_owned()),
                sequencer: Some("0055AED6DCD90281E5".to_owned()),
                event_time: Some(Timestamp::UNIX_EPOCH),
            }]
        );
    }

    #[test]
    fn s3_notification_of_a_cloudtrail_log_file() {
        let (shape, objects) = announced(&s3_put(CT_KEY, "2024-05-02T09:05:31.123Z"));
        assert_eq!(shape, Shape::S3);
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].key, CT_KEY);
        assert_eq!(objects[0].bucket, "mybucket");
        assert_eq!(objects[0].event_time, Some(at("2024-05-02T09:05:31.123Z")));
    }

    #[test]
    fn s3_keys_are_form_decoded() {
        // "red flower.jpg" becomes "red+flower.jpg" (notification-content-structure); a real
        // '+' is %2B, ':' is %3A.
        let encoded = "AWSLogs/111122223333/CloudTrail/ap-northeast-1/2024/05/02/\
                       my+prefix%3Ab%2Bc%3D%C3%A9.json.gz";
        let (_, objects) = announced(&s3_put(encoded, "2024-05-02T09:05:31Z"));
        assert_eq!(
            objects[0].key,
            "AWSLogs/111122223333/CloudTrail/ap-northeast-1/2024/05/02/my prefix:b+c=é.json.gz"
        );
        assert_eq!(form_decode("red+flower.jpg").unwrap(), "red flower.jpg");
        assert_eq!(form_decode("a%2fb%2Fc").unwrap(), "a/b/c");
    }

    #[test]
    fn bad_url_encoding_names_the_key() {
        let why = error(&s3_put("logs/bad%zz.json.gz", "2024-05-02T09:05:31Z"));
        assert_eq!(
            why,
            "Records[0].s3.object.key \"logs/bad%zz.json.gz\" is not URL-encoded: '%' at byte 8 \
             is not followed by two hex digits"
        );
        let why = error(&s3_put("logs/end%4", "2024-05-02T09:05:31Z"));
        assert!(
            why.starts_with("Records[0].s3.object.key \"logs/end%4\""),
            "{why}"
        );
        let why = error(&s3_put("logs/%E9.json.gz", "2024-05-02T09:05:31Z"));
        assert_eq!(
            why,
            "Records[0].s3.object.key \"logs/%E9.json.gz\" is not URL-encoded: it decodes to \
             bytes that are not UTF-8"
        );
    }

    #[test]
    fn several_records_in_one_message() {
        let second = CT_KEY.replace("0905Z_abc", "0910Z_def");
        let body = format!(
            r#"{{"Records":[{},{}]}}"#,
            record("ObjectCreated:Put", CT_KEY, 2048, "0066338A0E0C4D8B1F"),
            record(
                "ObjectCreated:CompleteMultipartUpload",
                &second,
                9_000_000,
                "0066338A0E0C4D8B2A"
            )
        );
        let (shape, objects) = announced(&body);
        assert_eq!(shape, Shape::S3);
        let keys: Vec<_> = objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, [CT_KEY, second.as_str()]);
        assert_eq!(objects[1].size, Some(9_000_000));
        assert_eq!(objects[1].sequencer.as_deref(), Some("0066338A0E0C4D8B2A"));
        assert_eq!(objects[1].bucket, "trail-bucket");
    }

    #[test]
    fn object_removed_is_other_and_mixed_keeps_the_creates() {
        let removed = format!(
            r#"{{"Records":[{}]}}"#,
            record("ObjectRemoved:Delete", CT_KEY, 0, "0066338A0E0C4D8B1F")
        );
        assert_eq!(
            parse(&removed),
            Ok(Notification::Other {
                what: "S3 ObjectRemoved:Delete".to_owned()
            })
        );
        let two_kinds = format!(
            r#"{{"Records":[{},{},{}]}}"#,
            record("ObjectRemoved:Delete", CT_KEY, 0, "01"),
            record("ObjectRemoved:DeleteMarkerCreated", CT_KEY, 0, "02"),
            record("ObjectRemoved:Delete", CT_KEY, 0, "03")
        );
        assert_eq!(
            parse(&two_kinds),
            Ok(Notification::Other {
                what: "S3 ObjectRemoved:Delete, ObjectRemoved:DeleteMarkerCreated".to_owned()
            })
        );
        let mixed = format!(
            r#"{{"Records":[{},{}]}}"#,
            record("ObjectRemoved:Delete", "old.json.gz", 0, "01"),
            record("ObjectCreated:Copy", CT_KEY, 77, "02")
        );
        let (_, objects) = announced(&mixed);
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].key, CT_KEY);
        assert_eq!(objects[0].size, Some(77));
    }

    #[test]
    fn records_of_another_source_are_not_notifications() {
        let body = record("ObjectCreated:Put", CT_KEY, 1, "01").replace("aws:s3", "aws:sqs");
        assert_eq!(
            error(&format!(r#"{{"Records":[{body}]}}"#)),
            "Records[0].eventSource is \"aws:sqs\", not \"aws:s3\""
        );
        let body = record("ObjectCreated:Put", CT_KEY, 1, "01").replace("\"2.1\"", "\"3.0\"");
        assert_eq!(
            error(&format!(r#"{{"Records":[{body}]}}"#)),
            "Records[0].eventVersion is \"3.0\"; only major version 2 is known"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let body = s3_put(CT_KEY, "2024-05-02T09:05:31Z").replace("\"name\":\"mybucket\",", "");
        assert_eq!(error(&body), "Records[0].s3.bucket.name is missing");
        let body =
            s3_put(CT_KEY, "2024-05-02T09:05:31Z").replace("\"size\":1024", "\"size\":\"big\"");
        assert_eq!(
            error(&body),
            "Records[0].s3.object.size is \"big\", not a size in bytes"
        );
        let body = s3_put(CT_KEY, "yesterday");
        assert!(
            error(&body).starts_with("Records[0].eventTime \"yesterday\" is not an RFC 3339 time"),
            "{}",
            error(&body)
        );
        assert_eq!(error(r#"{"Records":[]}"#), "Records is empty");
        assert_eq!(
            error(r#"{"Records":{}}"#),
            "Records is an object, not an array"
        );
        assert_eq!(
            error(r#"{"Records":[7]}"#),
            "Records[0] is a number, not an object"
        );
    }

    #[test]
    fn quoted_etags_are_unquoted() {
        let body = s3_put(CT_KEY, "2024-05-02T09:05:31Z").replace(
            "\"d41d8cd98f00b204e9800998ecf8427e\"",
            r#""\"d41d8cd98f00b204e9800998ecf8427e-2\"""#,
        );
        let (_, objects) = announced(&body);
        assert_eq!(
            objects[0].etag.as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e-2")
        );
    }

    #[test]
    fn s3_notification_in_sns() {
        // The envelope of the SNS Developer Guide's "Fanout to Amazon SQS queues" example; the
        // Message is an S3 notification as a JSON string.
        let body = r#"{
   "Type" : "Notification",
   "MessageId" : "63a3f6b6-d533-4a47-aef9-fcf5cf758c76",
   "TopicArn" : "arn:aws:sns:us-west-2:123456789012:MyTopic",
   "Subject" : "Amazon S3 Notification",
   "Message" : "{\"Records\":[{\"eventVersion\":\"2.1\",\"eventSource\":\"aws:s3\",\"awsRegion\":\"ap-northeast-1\",\"eventTime\":\"2024-05-02T09:05:31.123Z\",\"eventName\":\"ObjectCreated:Put\",\"userIdentity\":{\"principalId\":\"AWS:AROAEXAMPLE\"},\"requestParameters\":{\"sourceIPAddress\":\"10.0.0.1\"},\"responseElements\":{\"x-amz-request-id\":\"C3D13FE58DE4C810\",\"x-amz-id-2\":\"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD\"},\"s3\":{\"s3SchemaVersion\":\"1.0\",\"configurationId\":\"trail\",\"bucket\":{\"name\":\"trail-bucket\",\"ownerIdentity\":{\"principalId\":\"A3NL1KOZZKExample\"},\"arn\":\"arn:aws:s3:::trail-bucket\"},\"object\":{\"key\":\"AWSLogs/111122223333/CloudTrail/ap-northeast-1/2024/05/02/a+b%3Ac.json.gz\",\"size\":4321,\"eTag\":\"b1946ac92492d2347c6235b4d2611184\",\"sequencer\":\"0066338A0E0C4D8B1F\"}}}]}",
   "Timestamp" : "2024-05-02T09:05:31.901Z",
   "SignatureVersion" : "1",
   "Signature" : "EXAMPLEnTrFPa3...",
   "SigningCertURL" : "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
   "UnsubscribeURL" : "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:MyTopic:c7fe3a54-ab0e-4ec2-88e0-db410a0f2bee"
}"#;
        let (shape, objects) = announced(body);
        assert_eq!(shape, Shape::Sns);
        assert_eq!(
            objects,
            [ObjectCreated {
                bucket: "trail-bucket".to_owned(),
                key: "AWSLogs/111122223333/CloudTrail/ap-northeast-1/2024/05/02/a b:c.json.gz"
                    .to_owned(),
                size: Some(4321),
                etag: Some("b1946ac92492d2347c6235b4d2611184".to_owned()),
                sequencer: Some("0066338A0E0C4D8B1F".to_owned()),
                event_time: Some(at("2024-05-02T09:05:31.123Z")),
            }]
        );
    }

    #[test]
    fn test_event_direct_and_in_sns() {
        // The S3 User Guide's "Amazon S3 test message" (notification-content-structure).
        let direct = r#"{
   "Service":"Amazon S3",
   "Event":"s3:TestEvent",
   "Time":"2014-10-13T15:57:02.089Z",
   "Bucket":"bucketname",
   "RequestId":"5582815E1AEA5ADF",
   "HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"
}"#;
        assert_eq!(parse(direct), Ok(Notification::Test));
        let in_sns = r#"{
  "Type" : "Notification",
  "MessageId" : "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
  "TopicArn" : "arn:aws:sns:us-west-2:123456789012:MyTopic",
  "Subject" : "Amazon S3 Notification",
  "Message" : "{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\",\"Time\":\"2014-10-13T15:57:02.089Z\",\"Bucket\":\"bucketname\",\"RequestId\":\"5582815E1AEA5ADF\",\"HostId\":\"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE\"}",
  "Timestamp" : "2014-10-13T15:57:02.655Z",
  "SignatureVersion" : "1",
  "Signature" : "EXAMPLEw6JRNwm1LFQL4ICB0bnXrdB8ClRMTQFGBqwLpGbM78tJ4etTwC5zU7O3tS6tGpey3ejedNdOJ+1fkIp9F2/LmNVKb5aFlYq+9rk9ZiPph5YlLmWsDcyC5T+Sy9/umic5S0UQc2PEtgdpVBahwNOdMW4JPwk0kAJJztnc=",
  "SigningCertURL" : "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
  "UnsubscribeURL" : "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:MyTopic:c9135db0-26c4-47ec-8998-413945fb5a96"
}"#;
        assert_eq!(parse(in_sns), Ok(Notification::Test));
    }

    #[test]
    fn sns_subscription_confirmation_is_other() {
        // The SNS Developer Guide's SubscriptionConfirmation example (sns-message-and-json-formats).
        let body = r#"{
  "Type" : "SubscriptionConfirmation",
  "MessageId" : "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
  "Token" : "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
  "TopicArn" : "arn:aws:sns:us-west-2:123456789012:MyTopic",
  "Message" : "You have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:MyTopic.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
  "SubscribeURL" : "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
  "Timestamp" : "2012-04-26T20:45:04.751Z",
  "SignatureVersion" : "1",
  "Signature" : "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
  "SigningCertURL" : "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
  }"#;
        assert_eq!(
            parse(body),
            Ok(Notification::Other {
                what: "SNS SubscriptionConfirmation".to_owned()
            })
        );
    }

    #[test]
    fn sns_notification_of_something_else_names_the_message() {
        // The SNS Developer Guide's Notification example: a Message that is not JSON.
        let body = r#"{
  "Type" : "Notification",
  "MessageId" : "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
  "TopicArn" : "arn:aws:sns:us-west-2:123456789012:MyTopic",
  "Subject" : "My First Message",
  "Message" : "Hello world!",
  "Timestamp" : "2012-05-02T00:54:06.655Z",
  "SignatureVersion" : "1",
  "Signature" : "EXAMPLE",
  "SigningCertURL" : "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
  "UnsubscribeURL" : "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe"
}"#;
        assert!(
            error(body).starts_with("SNS Message is not JSON: "),
            "{}",
            error(body)
        );
        let body = body.replace("\"Hello world!\"", r#""{\"hello\":\"world\"}""#);
        assert_eq!(
            error(&body),
            "SNS Message: a JSON object of unknown shape (no Records, Event, detail-type, \
             s3ObjectKey or Type/TopicArn field; it has: hello)"
        );
    }

    #[test]
    fn eventbridge_object_created() {
        // The S3 User Guide's "Object created" example (ev-events).
        let body = r#"{
  "version": "0",
  "id": "17793124-05d4-b198-2fde-7ededc63b103",
  "detail-type": "Object Created",
  "source": "aws.s3",
  "account": "111122223333",
  "time": "2021-11-12T00:00:00Z",
  "region": "ca-central-1",
  "resources": [
    "arn:aws:s3:::DOC-EXAMPLE-BUCKET1"
  ],
  "detail": {
    "version": "0",
    "bucket": {
      "name": "DOC-EXAMPLE-BUCKET1"
    },
    "object": {
      "key": "example-key",
      "size": 5,
      "etag": "b1946ac92492d2347c6235b4d2611184",
      "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
      "sequencer": "617f08299329d189"
    },
    "request-id": "N4N7GDK58NMKJ12R",
    "requester": "123456789012",
    "source-ip-address": "1.2.3.4",
    "reason": "PutObject"
  }
}"#;
        let (shape, objects) = announced(body);
        assert_eq!(shape, Shape::EventBridge);
        assert_eq!(
            objects,
            [ObjectCreated {
                bucket: "DOC-EXAMPLE-BUCKET1".to_owned(),
                key: "example-key".to_owned(),
                size: Some(5),
                etag: Some("b1946ac92492d2347c6235b4d2611184".to_owned()),
                sequencer: Some("617f08299329d189".to_owned()),
                event_time: Some(at("2021-11-12T00:00:00Z")),
            }]
        );
        // EventBridge keys are not URL-encoded: '+' and "%3A" stay as they are.
        let (_, objects) = announced(&body.replace("example-key", "logs/a+b%3A.json.gz"));
        assert_eq!(objects[0].key, "logs/a+b%3A.json.gz");
    }

    #[test]
    fn eventbridge_object_deleted_is_other_and_other_sources_are_not_notifications() {
        // The S3 User Guide's "Object deleted (using DeleteObject)" example (ev-events).
        let body = r#"{
  "version": "0",
  "id": "2ee9cc15-d022-99ea-1fb8-1b1bac4850f9",
  "detail-type": "Object Deleted",
  "source": "aws.s3",
  "account": "111122223333",
  "time": "2021-11-12T00:00:00Z",
  "region": "ca-central-1",
  "resources": [
    "arn:aws:s3:::DOC-EXAMPLE-BUCKET1"
  ],
  "detail": {
    "version": "0",
    "bucket": {
      "name": "DOC-EXAMPLE-BUCKET1"
    },
    "object": {
      "key": "example-key",
      "etag": "d41d8cd98f00b204e9800998ecf8427e",
      "version-id": "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF",
      "sequencer": "617f0837b476e463"
    },
    "request-id": "0BH729840619AG5K",
    "requester": "123456789012",
    "source-ip-address": "1.2.3.4",
    "reason": "DeleteObject",
    "deletion-type": "Delete Marker Created"
  }
}"#;
        assert_eq!(
            parse(body),
            Ok(Notification::Other {
                what: "EventBridge Object Deleted".to_owned()
            })
        );
        assert_eq!(
            error(&body.replace("\"aws.s3\"", "\"aws.ec2\"")),
            "EventBridge source is \"aws.ec2\", not \"aws.s3\""
        );
    }

    #[test]
    fn cloudtrail_sns_notification() {
        // The CloudTrail User Guide's example of several log files in one notification
        // (configure-cloudtrail-to-send-notifications); the keys are not encoded.
        let message = r#"{
    "s3Bucket": "your-bucket-name",
    "s3ObjectKey": [
        "AWSLogs/123456789012/CloudTrail/us-east-2/2016/08/11/123456789012_CloudTrail_us-east-2_20160811T2215Z_kpaMYavMQA9Ahp7L.json.gz",
        "AWSLogs/123456789012/CloudTrail/us-east-2/2016/08/11/123456789012_CloudTrail_us-east-2_20160811T2210Z_zqDkyQv3TK8ZdLr0.json.gz",
        "AWSLogs/123456789012/CloudTrail/us-east-2/2016/08/11/123456789012_CloudTrail_us-east-2_20160811T2205Z_jaMVRa6JfdLCJYHP.json.gz"
    ]
}"#;
        let expected: Vec<ObjectCreated> = [
            "AWSLogs/123456789012/CloudTrail/us-east-2/2016/08/11/123456789012_CloudTrail_us-east-2_20160811T2215Z_kpaMYavMQA9Ahp7L.json.gz",
            "AWSLogs/123456789012/CloudTrail/us-east-2/2016/08/11/123456789012_CloudTrail_us-east-2_20160811T2210Z_zqDkyQv3TK8ZdLr0.json.gz",
            "AWSLogs/123456789012/CloudTrail/us-east-2/2016/08/11/123456789012_CloudTrail_us-east-2_20160811T2205Z_jaMVRa6JfdLCJYHP.json.gz",
        ]
        .into_iter()
        .map(|key| ObjectCreated {
            bucket: "your-bucket-name".to_owned(),
            key: key.to_owned(),
            size: None,
            etag: None,
            sequencer: None,
            event_time: None,
        })
        .collect();
        // Raw message delivery: the body is the Message.
        assert_eq!(announced(message), (Shape::CloudTrailSns, expected.clone()));
        // In the SNS envelope.
        let envelope = serde_json::json!({
            "Type": "Notification",
            "MessageId": "63a3f6b6-d533-4a47-aef9-fcf5cf758c76",
            "TopicArn": "arn:aws:sns:us-east-2:123456789012:CloudTrailTopic",
            "Message": message,
            "Timestamp": "2016-08-11T22:16:02.901Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
            "UnsubscribeURL": "https://sns.us-east-2.amazonaws.com/?Action=Unsubscribe"
        })
        .to_string();
        assert_eq!(announced(&envelope), (Shape::CloudTrailSns, expected));
        assert_eq!(error(r#"{"s3ObjectKey":["a"]}"#), "s3Bucket is missing");
        assert_eq!(
            error(r#"{"s3Bucket":"b","s3ObjectKey":["a",3]}"#),
            "s3ObjectKey[1] is a number, not a key"
        );
    }

    #[test]
    fn not_json_and_unknown_shapes() {
        assert!(
            error("hello").starts_with("not JSON: "),
            "{}",
            error("hello")
        );
        assert!(error("").starts_with("not JSON: "), "{}", error(""));
        assert_eq!(error("[1,2]"), "not a JSON object (an array)");
        assert_eq!(
            error(r#"{"eventName":"ObjectCreated:Put","key":"a"}"#),
            "a JSON object of unknown shape (no Records, Event, detail-type, s3ObjectKey or \
             Type/TopicArn field; it has: eventName, key)"
        );
        assert_eq!(
            error(r#"{"Service":"Amazon SQS","Event":"x"}"#),
            "Service is \"Amazon SQS\", not \"Amazon S3\""
        );
    }
}
