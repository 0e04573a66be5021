//! The tables over files: a Hive table whose rows are read from the mounted buckets when a
//! query scans it — CloudTrail's input format (the `Records` of each trail file, digests
//! skipped) or the JSON SerDe (one object a line: the snapshot store) — with partition
//! projection (enum, integer and date columns, `storage.location.template`) and `$path`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::ReaderBuilder;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use serde_json::{Map, Value};

use super::engine::Buckets;
use super::hive_ddl::{ParsedTable, lookup};

/// One file a table reads, and the partition values it belongs to.
struct SourceFile {
    local: PathBuf,
    s3: String,
    partition_values: Vec<String>,
}

type FileStamp = (PathBuf, u64, Option<SystemTime>);

/// A Hive table whose rows are read from the mounted buckets at every scan (cached while its
/// files are unchanged).
#[derive(Debug)]
pub(super) struct HiveTableProvider {
    parsed: ParsedTable,
    cloudtrail: bool,
    schema: SchemaRef,
    buckets: Buckets,
    /// Bytes of the files the last scan read (`DataScannedInBytes`).
    pub(super) last_bytes: AtomicU64,
    cache: Mutex<Option<(Vec<FileStamp>, RecordBatch)>>,
}

impl HiveTableProvider {
    pub(super) fn new(parsed: ParsedTable, buckets: Buckets) -> Result<Self, String> {
        let cloudtrail = parsed
            .table
            .input_format
            .as_deref()
            .is_some_and(|f| f.contains("CloudTrailInputFormat"));
        if !cloudtrail
            && !parsed
                .table
                .serde
                .as_deref()
                .is_some_and(|s| s.contains("JsonSerDe"))
        {
            return Err(format!(
                "the fake Athena reads only CloudTrail and JSON SerDe tables (serde {:?}, input format {:?})",
                parsed.table.serde, parsed.table.input_format
            ));
        }
        let mut fields: Vec<Field> = parsed
            .columns
            .iter()
            .chain(&parsed.partitions)
            .map(|(n, t)| Field::new(n, t.arrow(), true))
            .collect();
        fields.push(Field::new("$path", DataType::Utf8, true));
        let schema = Arc::new(Schema::new(fields));
        // Fail now on a schema the JSON decoder cannot build.
        ReaderBuilder::new(Arc::clone(&schema))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            parsed,
            cloudtrail,
            schema,
            buckets,
            last_bytes: AtomicU64::new(0),
            cache: Mutex::new(None),
        })
    }

    fn properties(&self) -> &BTreeMap<String, String> {
        &self.parsed.table.properties
    }

    /// The local directory of `s3://bucket/key`.
    fn resolve(&self, url: &str) -> Result<PathBuf, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("HIVE_FILESYSTEM_ERROR: not an s3:// location: {url}"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let root = self
            .buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(bucket)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "HIVE_FILESYSTEM_ERROR: The specified bucket does not exist \
                     (Service: Amazon S3; Status Code: 404; Error Code: NoSuchBucket; Bucket: {bucket})"
                )
            })?;
        let mut path = root;
        for part in key.split('/').filter(|p| !p.is_empty()) {
            if part == ".." || part == "." {
                return Err(format!("HIVE_FILESYSTEM_ERROR: bad key in {url}"));
            }
            path.push(part);
        }
        Ok(path)
    }

    /// The (location, partition values) of every projected partition.
    fn partitions(&self) -> Result<Vec<(String, Vec<String>)>, String> {
        let props = self.properties();
        if self.parsed.partitions.is_empty() {
            return Ok(vec![(self.parsed.table.location.clone(), Vec::new())]);
        }
        if props.get("projection.enabled").map(String::as_str) != Some("true") {
            // No projection: Athena knows only partitions added by ALTER TABLE/MSCK.
            return Ok(Vec::new());
        }
        let template = props
            .get("storage.location.template")
            .cloned()
            .unwrap_or_else(|| {
                let mut t = self.parsed.table.location.trim_end_matches('/').to_owned();
                for (col, _) in &self.parsed.partitions {
                    let _ = write!(t, "/{col}=${{{col}}}");
                }
                t
            });
        // Enum and integer columns first (they may sit before a date in the template).
        let mut partial: Vec<(String, BTreeMap<String, String>)> =
            vec![(template, BTreeMap::new())];
        let mut dates = Vec::new();
        for (col, _) in &self.parsed.partitions {
            let prop = |name: &str| props.get(&format!("projection.{col}.{name}"));
            let values: Vec<String> = match prop("type").map(String::as_str) {
                Some("enum") => prop("values")
                    .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                    .unwrap_or_default(),
                Some("integer") => {
                    let range = prop("range").cloned().unwrap_or_default();
                    let (a, b) = range
                        .split_once(',')
                        .and_then(|(a, b)| {
                            Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?))
                        })
                        .ok_or_else(|| format!("bad projection.{col}.range {range:?}"))?;
                    (a..=b).map(|n| n.to_string()).collect()
                }
                Some("date") => {
                    dates.push(col.clone());
                    continue;
                }
                other => {
                    return Err(format!(
                        "HIVE_METASTORE_ERROR: unsupported projection type {other:?} for column {col}"
                    ));
                }
            };
            let placeholder = &format!("${{{col}}}");
            partial = partial
                .into_iter()
                .flat_map(|(t, map)| {
                    values.iter().map(move |v| {
                        let mut map = map.clone();
                        map.insert(col.clone(), v.clone());
                        (t.replace(placeholder, v), map)
                    })
                })
                .collect();
        }
        for col in dates {
            let format = props
                .get(&format!("projection.{col}.format"))
                .cloned()
                .unwrap_or_else(|| "yyyy/MM/dd".to_owned());
            let range = props
                .get(&format!("projection.{col}.range"))
                .cloned()
                .ok_or_else(|| format!("projection.{col}.range is required"))?;
            let (from, to) = date_range(&range, &format)?;
            let placeholder = format!("${{{col}}}");
            let mut next = Vec::new();
            for (t, map) in partial {
                let Some((prefix, suffix)) = t.split_once(&placeholder) else {
                    return Err(format!("storage.location.template does not use ${{{col}}}"));
                };
                let dir = self.resolve(prefix)?;
                for date in date_dirs(&dir, &format) {
                    let Some(d) = parse_date(&date, &format) else {
                        continue;
                    };
                    if d < from || d > to {
                        continue;
                    }
                    let mut map = map.clone();
                    map.insert(col.clone(), date.clone());
                    next.push((format!("{prefix}{date}{suffix}"), map));
                }
            }
            partial = next;
        }
        Ok(partial
            .into_iter()
            .map(|(location, map)| {
                let values = self
                    .parsed
                    .partitions
                    .iter()
                    .map(|(c, _)| map.get(c).cloned().unwrap_or_default())
                    .collect();
                (location, values)
            })
            .collect())
    }

    fn files(&self) -> Result<Vec<SourceFile>, String> {
        let mut out = Vec::new();
        for (location, values) in self.partitions()? {
            let dir = self.resolve(&location)?;
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('_') && !n.starts_with('.'))
                .filter(|n| {
                    !self.cloudtrail
                        || (is_json_file(n)
                            && !n.contains("CloudTrail-Digest")
                            && !n.contains("CloudTrail-Insight"))
                })
                .collect();
            names.sort();
            for name in names {
                out.push(SourceFile {
                    local: dir.join(&name),
                    s3: format!("{}/{name}", location.trim_end_matches('/')),
                    partition_values: values.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Every row of the table, read from its files now (or from the cache when no file
    /// changed).
    fn load(&self) -> Result<RecordBatch, String> {
        let files = self.files()?;
        let stamps: Vec<FileStamp> = files
            .iter()
            .map(|f| {
                let meta = std::fs::metadata(&f.local).ok();
                (
                    f.local.clone(),
                    meta.as_ref().map_or(0, std::fs::Metadata::len),
                    meta.and_then(|m| m.modified().ok()),
                )
            })
            .collect();
        let bytes = stamps.iter().map(|s| s.1).sum();
        self.last_bytes.store(bytes, Ordering::Relaxed);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, batch)) = cache.as_ref()
            && *cached == stamps
        {
            return Ok(batch.clone());
        }
        let mut rows = Vec::new();
        for file in &files {
            let data = read_maybe_gzip(&file.local).map_err(|e| {
                format!(
                    "HIVE_CANNOT_OPEN_SPLIT: Error opening Hive split {}: {e}",
                    file.s3
                )
            })?;
            if self.cloudtrail {
                let Ok(document) = serde_json::from_slice::<Value>(&data) else {
                    return Err(format!(
                        "HIVE_CURSOR_ERROR: the file is not a CloudTrail JSON document (file {})",
                        file.s3
                    ));
                };
                let Some(records) = document.get("Records").and_then(Value::as_array) else {
                    continue;
                };
                for record in records {
                    if let Value::Object(record) = record {
                        rows.push(self.row(record, file));
                    }
                }
            } else {
                let text = String::from_utf8_lossy(&data);
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    match serde_json::from_str::<Value>(line) {
                        Ok(Value::Object(record)) => rows.push(self.row(&record, file)),
                        Ok(_) => {
                            return Err(format!(
                                "HIVE_CURSOR_ERROR: Row is not a valid JSON Object - JSONException: \
                                 A JSONObject text must begin with '{{' (file {})",
                                file.s3
                            ));
                        }
                        Err(e) => {
                            return Err(format!(
                                "HIVE_CURSOR_ERROR: Row is not a valid JSON Object - JSONException: {e} (file {})",
                                file.s3
                            ));
                        }
                    }
                }
            }
        }
        let batch = decode_rows(&self.schema, &rows)?;
        *cache = Some((stamps, batch.clone()));
        Ok(batch)
    }

    fn row(&self, record: &Map<String, Value>, file: &SourceFile) -> Value {
        let mut row = Map::new();
        for (name, t) in &self.parsed.columns {
            let (key, exact) = self.parsed.table.json_key(name);
            let found = if exact {
                record.get(key)
            } else {
                lookup(record, key)
            };
            let v = found.map_or(Value::Null, |v| t.conform(v));
            row.insert(name.clone(), v);
        }
        for ((name, t), value) in self.parsed.partitions.iter().zip(&file.partition_values) {
            row.insert(name.clone(), t.conform(&Value::String(value.clone())));
        }
        row.insert("$path".into(), Value::String(file.s3.clone()));
        Value::Object(row)
    }
}

#[async_trait::async_trait]
impl TableProvider for HiveTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let batch = self.load().map_err(DataFusionError::Execution)?;
        let table = MemTable::try_new(Arc::clone(&self.schema), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

fn decode_rows(schema: &SchemaRef, rows: &[Value]) -> Result<RecordBatch, String> {
    if rows.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    }
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(rows.len())
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder
        .serialize(rows)
        .map_err(|e| format!("HIVE_BAD_DATA: {e}"))?;
    Ok(decoder
        .flush()
        .map_err(|e| format!("HIVE_BAD_DATA: {e}"))?
        .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema))))
}

/// `*.json` or `*.json.gz` (any case).
fn is_json_file(name: &str) -> bool {
    let has = |p: &Path, ext: &str| p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext));
    let path = Path::new(name);
    has(path, "json")
        || (has(path, "gz")
            && path
                .file_stem()
                .is_some_and(|stem| has(Path::new(stem), "json")))
}

fn read_maybe_gzip(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses `text` by a projection date format made of `yyyy`, `MM`, `dd` and literal
/// characters.
fn parse_date(text: &str, format: &str) -> Option<jiff::civil::Date> {
    let (mut year, mut month, mut day) = (None, None, Some(1));
    let mut rest = text;
    let mut fmt = format;
    while !fmt.is_empty() {
        let (len, slot) = if fmt.starts_with("yyyy") {
            (4, &mut year)
        } else if fmt.starts_with("MM") {
            (2, &mut month)
        } else if fmt.starts_with("dd") {
            (2, &mut day)
        } else {
            let c = fmt.chars().next()?;
            if c.is_ascii_alphabetic() || !rest.starts_with(c) {
                return None;
            }
            fmt = &fmt[c.len_utf8()..];
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let digits = rest.get(..len)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = Some(digits.parse::<i16>().ok()?);
        fmt = &fmt[len..];
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return None;
    }
    jiff::civil::Date::new(year?, i8::try_from(month?).ok()?, i8::try_from(day?).ok()?).ok()
}

/// The `projection.<col>.range` of a date column: `start,end`, each a date in `format` or
/// `NOW` (optionally `NOW-<n>DAYS`/`NOW+<n>DAYS`).
fn date_range(range: &str, format: &str) -> Result<(jiff::civil::Date, jiff::civil::Date), String> {
    let bound = |text: &str| -> Option<jiff::civil::Date> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("NOW") {
            let today = jiff::Timestamp::now()
                .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .date();
            if rest.is_empty() {
                return Some(today);
            }
            let (sign, rest) = match rest.as_bytes().first()? {
                b'+' => (1, &rest[1..]),
                b'-' => (-1, &rest[1..]),
                _ => return None,
            };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let unit = rest[digits.len()..].to_ascii_uppercase();
            if !unit.starts_with("DAY") {
                return None;
            }
            let days: i64 = digits.parse().ok()?;
            return today.checked_add(jiff::Span::new().days(sign * days)).ok();
        }
        parse_date(text, format)
    };
    let (a, b) = range
        .split_once(',')
        .ok_or_else(|| format!("bad date projection range {range:?}"))?;
    match (bound(a), bound(b)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(format!(
            "bad date projection range {range:?} for format {format:?}"
        )),
    }
}

/// The relative paths under `dir` that look like dates in `format` (one directory level per
/// `/` in the format).
fn date_dirs(dir: &Path, format: &str) -> Vec<String> {
    let depth = format.matches('/').count() + 1;
    let mut level: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    for _ in 0..depth {
        let mut next = Vec::new();
        for (path, rel) in level {
            let Ok(entries) = std::fs::read_dir(&path) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                next.push((entry.path(), rel));
            }
        }
        level = next;
    }
    let mut out: Vec<String> = level
        .into_iter()
        .map(|(_, rel)| rel)
        .filter(|rel| parse_date(rel, format).is_some())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fake_athena::results::athena_column_name;

    #[test]
    fn projection_dates() {
        let d = |y, m, day| jiff::civil::date(y, m, day);
        assert_eq!(parse_date("2024/05/02", "yyyy/MM/dd"), Some(d(2024, 5, 2)));
        assert_eq!(parse_date("2024/5/02", "yyyy/MM/dd"), None);
        assert_eq!(parse_date("2024-05", "yyyy-MM"), Some(d(2024, 5, 1)));
        let (from, to) = date_range("2020/01/01,NOW", "yyyy/MM/dd").expect("range");
        assert_eq!(from, d(2020, 1, 1));
        assert!(to > d(2024, 1, 1));
        assert!(date_range("2020/01/01,NOW-1DAYS", "yyyy/MM/dd").is_ok());
        assert_eq!(
            athena_column_name("useridentity[sessioncontext][username]", 3),
            "username"
        );
        assert_eq!(athena_column_name("count(*)", 3), "_col3");
        assert_eq!(athena_column_name("$path", 0), "$path");
    }
}
