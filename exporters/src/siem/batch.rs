//! Records → request bodies, cut at `max_events` records and `max_bytes` of body.
//!
//! Each record is serialised once, on the caller's thread. A [`Batch`] keeps the body and, for
//! the dead-letter file, the serde form of every record in it.

use std::borrow::Cow;
use std::io::Write as _;
use std::ops::Range;

use connect_audit_core::AuditRecord;

use super::{EventBody, SiemFlavor, SiemWebhookSpec};

/// Records on their way to the SIEM, as one request.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The records' `event_id`s, in order.
    pub(crate) ids: Vec<String>,
    /// The records' serde form (as JSON Lines writes it), concatenated; `spans[i]` is record i.
    pub(crate) records: Vec<u8>,
    /// Where each record is in `records`.
    pub(crate) spans: Vec<Range<usize>>,
    /// The request body, uncompressed.
    pub(crate) body: Vec<u8>,
}

impl Batch {
    /// Records in the batch.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The serde JSON of record `i`.
    pub(crate) fn record(&self, i: usize) -> &[u8] {
        &self.records[self.spans[i].clone()]
    }
}

/// Builds batches from records.
pub(crate) struct Batcher {
    flavor: SiemFlavor,
    event_body: EventBody,
    /// Splunk: the envelope between `"time"` and `"event"` (host, source, sourcetype, index).
    envelope: Vec<u8>,
    max_events: usize,
    max_bytes: usize,
    current: Batch,
    /// One record's piece of the body.
    piece: Vec<u8>,
}

impl Batcher {
    pub(crate) fn new(spec: &SiemWebhookSpec, event_body: EventBody) -> Self {
        let mut envelope = Vec::new();
        let mut field = |name: &str, value: Option<&str>| {
            if let Some(value) = value {
                write!(envelope, ",\"{name}\":").expect("writing to a Vec");
                serde_json::to_writer(&mut envelope, value).expect("strings serialise");
            }
        };
        field("host", spec.host.as_deref());
        field("source", Some(&spec.source));
        field("sourcetype", Some(&spec.sourcetype));
        field("index", spec.index.as_deref());
        envelope.extend_from_slice(b",\"event\":");
        Self {
            flavor: spec.flavor,
            event_body,
            envelope,
            max_events: spec.max_events.max(1),
            max_bytes: spec.max_bytes,
            current: Batch::default(),
            piece: Vec::with_capacity(2048),
        }
    }

    /// Adds a record. Returns the batch it completed, if any: the current one when this record
    /// does not fit in it any more, or the one it filled.
    pub(crate) fn push(
        &mut self,
        record: &AuditRecord,
    ) -> Result<Option<Batch>, serde_json::Error> {
        let start = self.current.records.len();
        if let Err(e) = serde_json::to_writer(&mut self.current.records, record) {
            self.current.records.truncate(start);
            return Err(e);
        }
        let end = self.current.records.len();
        if let Err(e) = self.encode(record, start..end) {
            self.current.records.truncate(start);
            return Err(e);
        }
        // What the body would be with this record: a separator and the closing `]` of a
        // Standard Webhooks array.
        let overhead = match self.flavor {
            SiemFlavor::SplunkHec => 0,
            SiemFlavor::StandardWebhooks => 2,
        };
        let mut done = None;
        if !self.current.ids.is_empty()
            && self.current.body.len() + overhead + self.piece.len() > self.max_bytes
        {
            // Move this record's serde form into a fresh batch.
            let mut next = Batch::default();
            next.records
                .extend_from_slice(&self.current.records[start..end]);
            self.current.records.truncate(start);
            done = Some(std::mem::replace(&mut self.current, next));
        }
        let span = if done.is_some() {
            0..end - start
        } else {
            start..end
        };
        let current = &mut self.current;
        match self.flavor {
            SiemFlavor::SplunkHec => {}
            SiemFlavor::StandardWebhooks => {
                current
                    .body
                    .push(if current.ids.is_empty() { b'[' } else { b',' });
            }
        }
        current.body.extend_from_slice(&self.piece);
        current.ids.push(record.row_key().into_owned());
        current.spans.push(span);
        if let Some(batch) = done {
            return Ok(Some(self.seal(batch)));
        }
        if self.current.ids.len() >= self.max_events {
            return Ok(self.take());
        }
        Ok(None)
    }

    /// This record's piece of the body, into `self.piece`: one event, or for a mapping that
    /// makes several, each in turn (array elements, or one HEC envelope each).
    fn encode(
        &mut self,
        record: &AuditRecord,
        span: Range<usize>,
    ) -> Result<(), serde_json::Error> {
        self.piece.clear();
        match self.event_body {
            EventBody::Record => self.encode_one(record, None, span),
            EventBody::Json(map) => {
                for (i, event) in map(record).iter().enumerate() {
                    if i > 0 && self.flavor == SiemFlavor::StandardWebhooks {
                        self.piece.push(b',');
                    }
                    self.encode_one(record, Some(event), span.clone())?;
                }
                Ok(())
            }
        }
    }

    /// One event of `record`: `event` when mapped, else the record's own serde form.
    fn encode_one(
        &mut self,
        record: &AuditRecord,
        event: Option<&serde_json::Value>,
        span: Range<usize>,
    ) -> Result<(), serde_json::Error> {
        let write_event = |piece: &mut Vec<u8>, records: &[u8]| {
            if let Some(event) = event {
                serde_json::to_writer(piece, event)
            } else {
                piece.extend_from_slice(&records[span.clone()]);
                Ok(())
            }
        };
        match self.flavor {
            SiemFlavor::SplunkHec => {
                self.piece.extend_from_slice(b"{\"time\":");
                write_epoch_seconds(&mut self.piece, record.event_time);
                self.piece.extend_from_slice(&self.envelope);
                write_event(&mut self.piece, &self.current.records)?;
                self.piece.extend_from_slice(b",\"fields\":{\"event_id\":");
                serde_json::to_writer(&mut self.piece, &record.event_id)?;
                self.piece.extend_from_slice(b",\"row_key\":");
                let uid = event.and_then(|e| e.pointer("/metadata/uid")?.as_str());
                serde_json::to_writer(&mut self.piece, &uid.map_or(record.row_key(), Cow::from))?;
                self.piece.extend_from_slice(b"}}\n");
                Ok(())
            }
            SiemFlavor::StandardWebhooks => write_event(&mut self.piece, &self.current.records),
        }
    }

    /// The batch being built, if it has records.
    pub(crate) fn take(&mut self) -> Option<Batch> {
        if self.current.ids.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut self.current);
        Some(self.seal(batch))
    }

    fn seal(&self, mut batch: Batch) -> Batch {
        if self.flavor == SiemFlavor::StandardWebhooks {
            batch.body.push(b']');
        }
        batch
    }
}

/// Epoch seconds with up to microsecond decimals, as Splunk's `time` takes them.
fn write_epoch_seconds(out: &mut Vec<u8>, time: jiff::Timestamp) {
    let micros = time.as_microsecond();
    let sign = if micros < 0 { "-" } else { "" };
    let micros = micros.unsigned_abs();
    let (seconds, fraction) = (micros / 1_000_000, micros % 1_000_000);
    write!(out, "{sign}{seconds}").expect("writing to a Vec");
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        write!(out, ".{}", digits.trim_end_matches('0')).expect("writing to a Vec");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> AuditRecord {
        serde_json::from_value(serde_json::json!({
            "event_time": "2024-05-02T09:14:02.250Z", "event_id": format!("e{i}"),
            "event_name": "DeleteUser", "category": "user", "account_id": "111122223333",
            "region": "us-east-1", "actor_kind": "iam", "actor_name": "ops",
            "target_kind": "user", "target_id": "u", "target_name": "jdoe",
            "name_source": "snapshot", "origin": "api"
        }))
        .unwrap()
    }

    fn spec(flavor: SiemFlavor) -> SiemWebhookSpec {
        SiemWebhookSpec::new(flavor, "http://127.0.0.1:1")
    }

    #[test]
    fn splunk_envelopes_carry_time_metadata_event_and_id() {
        let mut spec = spec(SiemFlavor::SplunkHec);
        spec.index = Some("audit".into());
        spec.host = Some("scanner-1".into());
        let mut batcher = Batcher::new(&spec, EventBody::Record);
        assert!(batcher.push(&record(1)).unwrap().is_none());
        let batch = batcher.take().unwrap();
        let body = std::str::from_utf8(&batch.body).unwrap();
        let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(envelope["time"], serde_json::json!(1_714_641_242.25));
        assert_eq!(envelope["host"], "scanner-1");
        assert_eq!(envelope["source"], "connect-audit");
        assert_eq!(envelope["sourcetype"], "aws:connect:audit");
        assert_eq!(envelope["index"], "audit");
        assert_eq!(envelope["fields"]["event_id"], "e1");
        assert_eq!(envelope["fields"]["row_key"], "e1");
        assert_eq!(envelope["event"], serde_json::to_value(record(1)).unwrap());
        assert_eq!(batch.record(0), serde_json::to_vec(&record(1)).unwrap());
        assert!(batcher.take().is_none());
    }

    #[test]
    fn batches_are_cut_at_max_events_and_max_bytes() {
        let mut spec = spec(SiemFlavor::StandardWebhooks);
        spec.max_events = 3;
        let mut batcher = Batcher::new(&spec, EventBody::Record);
        let mut cut = Vec::new();
        for i in 0..7 {
            cut.extend(batcher.push(&record(i)).unwrap());
        }
        cut.extend(batcher.take());
        let sizes: Vec<_> = cut.iter().map(Batch::len).collect();
        assert_eq!(sizes, [3, 3, 1]);
        for batch in &cut {
            let array: Vec<AuditRecord> = serde_json::from_slice(&batch.body).unwrap();
            assert_eq!(array.len(), batch.len());
            for (i, id) in batch.ids.iter().enumerate() {
                assert_eq!(&array[i].event_id, id);
                let again: AuditRecord = serde_json::from_slice(batch.record(i)).unwrap();
                assert_eq!(&again.event_id, id);
            }
        }

        let one = serde_json::to_vec(&record(0)).unwrap().len();
        spec.max_events = 100;
        spec.max_bytes = 2 * one + 3; // `[a,b]`; a third does not fit
        let mut batcher = Batcher::new(&spec, EventBody::Record);
        let mut cut = Vec::new();
        for i in 0..5 {
            cut.extend(batcher.push(&record(i)).unwrap());
        }
        cut.extend(batcher.take());
        let sizes: Vec<_> = cut.iter().map(Batch::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        for batch in &cut {
            assert!(batch.body.len() <= spec.max_bytes);
            let array: Vec<AuditRecord> = serde_json::from_slice(&batch.body).unwrap();
            assert_eq!(array.len(), batch.len());
            let again: AuditRecord = serde_json::from_slice(batch.record(batch.len() - 1)).unwrap();
            assert_eq!(&again.event_id, batch.ids.last().unwrap());
        }
        // A record larger than max_bytes goes alone.
        spec.max_bytes = 10;
        let mut batcher = Batcher::new(&spec, EventBody::Record);
        assert!(batcher.push(&record(0)).unwrap().is_none());
        assert_eq!(batcher.push(&record(1)).unwrap().unwrap().len(), 1);
    }

    #[test]
    fn a_plugged_in_mapping_shapes_the_event_but_the_dead_letter_keeps_the_record() {
        fn tiny(record: &AuditRecord) -> Vec<serde_json::Value> {
            vec![serde_json::json!({ "uid": record.event_id })]
        }
        let mut batcher = Batcher::new(&spec(SiemFlavor::StandardWebhooks), EventBody::Json(tiny));
        batcher.push(&record(7)).unwrap();
        let batch = batcher.take().unwrap();
        assert_eq!(batch.body, br#"[{"uid":"e7"}]"#);
        assert_eq!(batch.record(0), serde_json::to_vec(&record(7)).unwrap());
        assert!(batcher.take().is_none());
    }

    /// A mapping that makes two events of a record: two array elements, or two envelopes,
    /// each keyed by its own uid; still one record for the dead letter.
    #[test]
    fn a_mapping_that_makes_two_events_of_a_record_sends_both() {
        fn two(record: &AuditRecord) -> Vec<serde_json::Value> {
            let uid = record.event_id.clone();
            vec![
                serde_json::json!({"metadata": {"uid": uid}}),
                serde_json::json!({"metadata": {"uid": format!("{uid}/privileges")}}),
            ]
        }
        let mut batcher = Batcher::new(&spec(SiemFlavor::StandardWebhooks), EventBody::Json(two));
        batcher.push(&record(1)).unwrap();
        let batch = batcher.take().unwrap();
        assert_eq!(
            batch.body,
            br#"[{"metadata":{"uid":"e1"}},{"metadata":{"uid":"e1/privileges"}}]"#
        );
        assert_eq!(batch.len(), 1);
        let mut batcher = Batcher::new(&spec(SiemFlavor::SplunkHec), EventBody::Json(two));
        batcher.push(&record(1)).unwrap();
        let batch = batcher.take().unwrap();
        let envelopes: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&batch.body)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let keys: Vec<&str> = envelopes
            .iter()
            .map(|e| e["fields"]["row_key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["e1", "e1/privileges"]);
        assert!(envelopes.iter().all(|e| e["fields"]["event_id"] == "e1"));
        assert_eq!(batch.record(0), serde_json::to_vec(&record(1)).unwrap());
    }

    #[test]
    fn epoch_seconds_drop_trailing_zeros() {
        let mut out = Vec::new();
        write_epoch_seconds(&mut out, "2024-05-02T09:14:02Z".parse().unwrap());
        assert_eq!(out, b"1714641242");
        out.clear();
        write_epoch_seconds(&mut out, "2024-05-02T09:14:02.000120Z".parse().unwrap());
        assert_eq!(out, b"1714641242.00012");
    }
}
