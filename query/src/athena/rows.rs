//! Result rows (every value text, as `GetQueryResults` gives them) → [`AuditRecord`]s.

use std::path::PathBuf;

use connect_audit_core::redact::Redaction;
use connect_audit_core::{ActorKind, AuditRecord, Category, NameSource, Origin, TargetKind};
use jiff::Timestamp;

use super::sql::RESULT_COLUMNS;
use crate::sink::BadInput;

/// What one result row is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// An audit record.
    Record(Box<AuditRecord>),
    /// A record the local engine would report as bad input; reported the same way.
    Bad(BadInput),
}

/// Why a row could not be read: the result does not have the shape the query asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("result row {row}: {reason}")]
pub struct RowError {
    /// Index of the row in the result (after the header).
    pub row: u64,
    /// What is wrong.
    pub reason: String,
}

/// Reads an Athena timestamp: `2024-05-01 09:14:02.000`, optionally followed by ` UTC`, or
/// RFC 3339.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Some(t);
    }
    let plain = text.strip_suffix(" UTC").unwrap_or(text).trim();
    let civil: jiff::civil::DateTime = plain.replacen(' ', "T", 1).parse().ok()?;
    civil
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Maps one row of [`RESULT_COLUMNS`] values; `request_parameters` and `response_elements`
/// lose what `redaction` removes, exactly as the local engine removes it.
pub fn read_row(
    index: u64,
    values: Vec<Option<String>>,
    redaction: &Redaction,
) -> Result<Row, RowError> {
    let fail = |reason: String| RowError { row: index, reason };
    if values.len() != RESULT_COLUMNS.len() {
        return Err(fail(format!(
            "{} values, expected {}",
            values.len(),
            RESULT_COLUMNS.len()
        )));
    }
    let mut v = values.into_iter();
    let mut next = || v.next().flatten();
    let event_time = next();
    let event_id = next();
    let target_index = next();
    let event_name = next();
    let category = next();
    let account_id = next();
    let region = next();
    let instance_id = next();
    let actor_kind = next();
    let actor_id = next();
    let actor_name = next();
    let actor_arn = next();
    let target_kind = next();
    let target_id = next();
    let target_name = next();
    let name_source = next();
    let origin = next();
    let source_ip = next();
    let user_agent = next();
    let error_code = next();
    let error_message = next();
    let request_parameters = next();
    let response_elements = next();
    let trail_file = next().unwrap_or_default();
    let problem = next();
    if let Some(reason) = problem {
        return Ok(Row::Bad(BadInput {
            path: PathBuf::from(trail_file),
            record: None,
            event_id,
            reason,
        }));
    }
    let required = |value: Option<String>, column: &str| {
        value.ok_or_else(|| fail(format!("`{column}` is null")))
    };
    let known =
        |column: &str, text: &str| fail(format!("`{column}` has the unknown value `{text}`"));
    let time_text = required(event_time, "event_time")?;
    let event_time = parse_timestamp(&time_text)
        .ok_or_else(|| fail(format!("`event_time` `{time_text}` is not a timestamp")))?;
    let event_id = required(event_id, "event_id")?;
    let Some(Ok(target_index)) = target_index.as_deref().map(str::parse::<u32>) else {
        return Err(fail(format!(
            "`target_index` `{}` is not a number",
            target_index.unwrap_or_default()
        )));
    };
    let column_text = |text: Option<String>| text.as_deref().map(|t| redaction.column_text(t));
    let request_parameters = match column_text(request_parameters).transpose() {
        Ok(text) => text.flatten(),
        Err(e) => return Ok(bad_json(trail_file, event_id, "requestParameters", &e)),
    };
    let response_elements = match column_text(response_elements).transpose() {
        Ok(text) => text.flatten(),
        Err(e) => return Ok(bad_json(trail_file, event_id, "responseElements", &e)),
    };
    let category = required(category, "category")?;
    let actor_kind = required(actor_kind, "actor_kind")?;
    let target_kind = required(target_kind, "target_kind")?;
    let name_source = required(name_source, "name_source")?;
    let origin = required(origin, "origin")?;
    let record = AuditRecord {
        event_time,
        event_id,
        target_index,
        event_name: required(event_name, "event_name")?,
        category: Category::parse(&category).ok_or_else(|| known("category", &category))?,
        account_id: required(account_id, "account_id")?,
        region: required(region, "region")?,
        instance_id,
        actor_kind: ActorKind::parse(&actor_kind)
            .ok_or_else(|| known("actor_kind", &actor_kind))?,
        actor_id,
        actor_name,
        actor_arn,
        target_kind: TargetKind::parse(&target_kind)
            .ok_or_else(|| known("target_kind", &target_kind))?,
        target_id,
        target_name,
        name_source: NameSource::parse(&name_source)
            .ok_or_else(|| known("name_source", &name_source))?,
        origin: Origin::parse(&origin).ok_or_else(|| known("origin", &origin))?,
        source_ip,
        user_agent,
        error_code,
        error_message,
        request_parameters,
        response_elements,
        change: None,
        before: None,
        after: None,
        change_basis: None,
        findings: Vec::new(),
    };
    Ok(Row::Record(Box::new(record)))
}

/// The trail's own text of `column` was not JSON: the local engine reports such a record too.
fn bad_json(trail_file: String, event_id: String, column: &str, e: &serde_json::Error) -> Row {
    bad_row(trail_file, event_id, format!("`{column}` is not JSON: {e}"))
}

fn bad_row(trail_file: String, event_id: String, reason: String) -> Row {
    Row::Bad(BadInput {
        path: PathBuf::from(trail_file),
        record: None,
        event_id: Some(event_id),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Vec<Option<String>> {
        let mut v: Vec<Option<String>> = vec![None; RESULT_COLUMNS.len()];
        let mut set = |column: &str, value: &str| {
            let i = RESULT_COLUMNS.iter().position(|c| *c == column).unwrap();
            v[i] = Some(value.to_owned());
        };
        set("event_time", "2024-05-02 09:14:02.000");
        set("event_id", "e1");
        set("target_index", "0");
        set("event_name", "CreateUser");
        set("category", "user");
        set("account_id", "111122223333");
        set("region", "us-east-1");
        set("actor_kind", "connect_user");
        set("target_kind", "user");
        set("name_source", "trail");
        set("origin", "console");
        set(
            "request_parameters",
            r#"{"Username":"jdoe","Password":"***","IdentityInfo":{"FirstName":"J"}}"#,
        );
        set("trail_file", "s3://b/AWSLogs/f.json.gz");
        v
    }

    #[test]
    fn a_row_becomes_the_record_the_local_engine_writes() {
        let Row::Record(r) = read_row(0, row(), &Redaction::secrets()).unwrap() else {
            panic!()
        };
        assert_eq!(r.event_time, "2024-05-02T09:14:02Z".parse().unwrap());
        assert_eq!(
            r.request_parameters.as_deref(),
            Some(r#"{"IdentityInfo":{"FirstName":"J"},"Username":"jdoe"}"#)
        );
        assert_eq!(r.response_elements, None);
        assert_eq!(
            parse_timestamp("2024-05-02 09:14:02.500 UTC"),
            Some("2024-05-02T09:14:02.5Z".parse().unwrap())
        );
    }

    #[test]
    fn problems_and_bad_shapes_are_named() {
        let mut bad = row();
        bad[24] = Some("missing `userIdentity`".into());
        let Row::Bad(b) = read_row(3, bad, &Redaction::secrets()).unwrap() else {
            panic!()
        };
        assert_eq!(
            b.to_string(),
            "s3://b/AWSLogs/f.json.gz (eventID e1): missing `userIdentity`"
        );
        let mut odd = row();
        odd[8] = Some("robot".into());
        let e = read_row(4, odd, &Redaction::secrets()).unwrap_err();
        assert!(
            e.to_string()
                .contains("actor_kind` has the unknown value `robot`")
        );
        assert!(read_row(5, vec![None; 3], &Redaction::secrets()).is_err());
        let mut not_json = row();
        not_json[21] = Some("{oops".into());
        assert!(matches!(
            read_row(6, not_json, &Redaction::secrets()).unwrap(),
            Row::Bad(_)
        ));
    }
}
