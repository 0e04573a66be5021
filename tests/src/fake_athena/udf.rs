//! The functions Athena has and DataFusion lacks (or has with other semantics), with Trino's
//! semantics: `json_extract_scalar`, `json_size`, `regexp_extract`, `regexp_replace` (every
//! match, Java-style back-references), `from_iso8601_timestamp` and `url_decode`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;
use serde_json::Value;

/// Every function of this module, to register in a session.
pub(super) fn athena_udfs() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(JsonExtractScalar::new()),
        ScalarUDF::from(RegexpExtract::new()),
        ScalarUDF::from(RegexpReplace::new()),
        ScalarUDF::from(FromIso8601Timestamp::new()),
        ScalarUDF::from(UrlDecode::new()),
        ScalarUDF::from(JsonSize::new()),
    ]
}

fn string_array(arg: &ColumnarValue, rows: usize) -> datafusion::common::Result<StringArray> {
    let array = arg.to_array(rows)?;
    let array = cast(&array, &DataType::Utf8)?;
    Ok(array.as_string::<i32>().clone())
}

fn int_array(arg: &ColumnarValue, rows: usize) -> datafusion::common::Result<Int64Array> {
    let array = arg.to_array(rows)?;
    let array = cast(&array, &DataType::Int64)?;
    Ok(array.as_primitive().clone())
}

/// Compiles each distinct pattern once per batch.
#[derive(Default)]
struct RegexCache(HashMap<String, Regex>);

impl RegexCache {
    fn get(&mut self, pattern: &str) -> datafusion::common::Result<&Regex> {
        if !self.0.contains_key(pattern) {
            let re = Regex::new(pattern).map_err(|e| {
                DataFusionError::Execution(format!("Invalid regular expression {pattern:?}: {e}"))
            })?;
            self.0.insert(pattern.to_owned(), re);
        }
        Ok(&self.0[pattern])
    }
}

fn coerce_strings(
    name: &str,
    arg_types: &[DataType],
    counts: &[usize],
    last_is_int: bool,
) -> datafusion::common::Result<Vec<DataType>> {
    if !counts.contains(&arg_types.len()) {
        return plan_err!("{name} takes {counts:?} arguments, got {}", arg_types.len());
    }
    Ok((0..arg_types.len())
        .map(|i| {
            if last_is_int && i == 2 {
                DataType::Int64
            } else {
                DataType::Utf8
            }
        })
        .collect())
}

/// `json_extract_scalar(json, path)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonExtractScalar {
    signature: Signature,
}

impl JsonExtractScalar {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// Parses the JSONPath subset Athena users write: `$.a.b`, `$["Key"]`, `$['Key']`, `$[0]`.
fn parse_json_path(path: &str) -> Option<Vec<PathStep>> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            steps.push(PathStep::Key(r[..end].to_owned()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            let inner = r[..close].trim();
            if let Some(q) = inner
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            {
                steps.push(PathStep::Key(q.to_owned()));
            } else {
                steps.push(PathStep::Index(inner.parse().ok()?));
            }
            rest = &r[close + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// `f(json, path)` for every row of a `(json, path)` function: NULL in, NULL out; each distinct
/// path parsed once; a path Trino would refuse fails the query.
fn each_json_path<T>(
    args: &ScalarFunctionArgs,
    f: fn(&str, &[PathStep]) -> Option<T>,
) -> datafusion::common::Result<Vec<Option<T>>> {
    let rows = args.number_rows;
    let json = string_array(&args.args[0], rows)?;
    let paths = string_array(&args.args[1], rows)?;
    let mut parsed: HashMap<String, Vec<PathStep>> = HashMap::new();
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        if json.is_null(i) || paths.is_null(i) {
            out.push(None);
            continue;
        }
        let path = paths.value(i);
        if !parsed.contains_key(path) {
            let Some(steps) = parse_json_path(path) else {
                return exec_err!("Invalid JSON path: '{path}'");
            };
            parsed.insert(path.to_owned(), steps);
        }
        out.push(f(json.value(i), &parsed[path]));
    }
    Ok(out)
}

/// The value at a JSONPath of a JSON text; `None` when the text is not JSON or the path finds
/// nothing.
fn json_at(json: &str, steps: &[PathStep]) -> Option<Value> {
    let mut value: Value = serde_json::from_str(json).ok()?;
    for step in steps {
        value = match (step, value) {
            (PathStep::Key(k), Value::Object(mut m)) => m.remove(k)?,
            (PathStep::Index(i), Value::Array(mut a)) if *i < a.len() => a.swap_remove(*i),
            _ => return None,
        };
    }
    Some(value)
}

fn json_extract_scalar(json: &str, steps: &[PathStep]) -> Option<String> {
    match json_at(json, steps)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl ScalarUDFImpl for JsonExtractScalar {
    fn name(&self) -> &'static str {
        "json_extract_scalar"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[2], false)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let out = each_json_path(&args, json_extract_scalar)?;
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `regexp_extract(string, pattern[, group])`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn regexp_extract(
    re: &Regex,
    text: &str,
    group: i64,
) -> datafusion::common::Result<Option<String>> {
    let groups = re.captures_len() - 1;
    let Some(g) = usize::try_from(group).ok().filter(|g| *g <= groups) else {
        return exec_err!("Pattern has {groups} groups. Cannot access group {group}");
    };
    Ok(re
        .captures(text)
        .and_then(|c| c.get(g))
        .map(|m| m.as_str().to_owned()))
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &'static str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[2, 3], true)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let text = string_array(&args.args[0], rows)?;
        let patterns = string_array(&args.args[1], rows)?;
        let groups = match args.args.get(2) {
            Some(g) => Some(int_array(g, rows)?),
            None => None,
        };
        let mut cache = RegexCache::default();
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let group = match &groups {
                Some(g) if g.is_null(i) => None,
                Some(g) => Some(g.value(i)),
                None => Some(0),
            };
            match group {
                Some(group) if !text.is_null(i) && !patterns.is_null(i) => {
                    let re = cache.get(patterns.value(i))?;
                    out.push(regexp_extract(re, text.value(i), group)?);
                }
                _ => out.push(None),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `regexp_replace(string, pattern[, replacement])`: every match, Java-style `$1`/`${name}`
/// back-references and `\$` escapes.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpReplace {
    signature: Signature,
}

impl RegexpReplace {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// A Java replacement string as a `regex` crate one, for a pattern with `groups` groups.
fn java_replacement(replacement: &str, groups: usize) -> datafusion::common::Result<String> {
    let mut out = String::with_capacity(replacement.len());
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => return exec_err!("character to be escaped is missing"),
            },
            '$' => {
                if chars.peek() == Some(&'{') {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    if name.is_empty() {
                        return exec_err!("Illegal group reference in {replacement:?}");
                    }
                    let _ = write!(out, "${{{name}}}");
                } else {
                    // Java reads digits while the number stays a valid group.
                    let mut number: Option<usize> = None;
                    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                        let candidate = number.unwrap_or(0) * 10 + d as usize;
                        if number.is_some() && candidate > groups {
                            break;
                        }
                        number = Some(candidate);
                        chars.next();
                    }
                    match number {
                        Some(n) if n <= groups => {
                            let _ = write!(out, "${{{n}}}");
                        }
                        Some(n) => return exec_err!("No group {n}"),
                        None => return exec_err!("Illegal group reference in {replacement:?}"),
                    }
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

impl ScalarUDFImpl for RegexpReplace {
    fn name(&self) -> &'static str {
        "regexp_replace"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[2, 3], false)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let text = string_array(&args.args[0], rows)?;
        let patterns = string_array(&args.args[1], rows)?;
        let replacements = match args.args.get(2) {
            Some(r) => Some(string_array(r, rows)?),
            None => None,
        };
        let mut cache = RegexCache::default();
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let replacement = match &replacements {
                Some(r) if r.is_null(i) => None,
                Some(r) => Some(r.value(i)),
                None => Some(""),
            };
            match replacement {
                Some(replacement) if !text.is_null(i) && !patterns.is_null(i) => {
                    let re = cache.get(patterns.value(i))?;
                    let rust = java_replacement(replacement, re.captures_len() - 1)?;
                    out.push(Some(
                        re.replace_all(text.value(i), rust.as_str()).into_owned(),
                    ));
                }
                _ => out.push(None),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `from_iso8601_timestamp(string)` → `timestamp(3) with time zone` (UTC here).
#[derive(Debug, PartialEq, Eq, Hash)]
struct FromIso8601Timestamp {
    signature: Signature,
}

impl FromIso8601Timestamp {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Milliseconds since the epoch of an ISO 8601 timestamp: with an offset (`Z`, `+09:00`) or
/// without (read as UTC), with or without a fraction, or a bare date (midnight UTC).
pub(super) fn parse_iso8601_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_millisecond());
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_millisecond());
    }
    None
}

impl ScalarUDFImpl for FromIso8601Timestamp {
    fn name(&self) -> &'static str {
        "from_iso8601_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("UTC".into()),
        ))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[1], false)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let text = string_array(&args.args[0], rows)?;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if text.is_null(i) {
                out.push(None);
                continue;
            }
            let value = text.value(i);
            match parse_iso8601_millis(value) {
                Some(ms) => out.push(Some(ms)),
                None => return exec_err!("Invalid format: \"{value}\""),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(
            TimestampMillisecondArray::from(out).with_timezone("UTC"),
        )))
    }
}

/// `url_decode(value)`: Trino's, which is Java's `URLDecoder.decode(value, UTF_8)`: `+` is a
/// space, `%XX` a byte, bytes that are not UTF-8 become U+FFFD, and a `%` not followed by two
/// hex digits fails the query.
#[derive(Debug, PartialEq, Eq, Hash)]
struct UrlDecode {
    signature: Signature,
}

impl UrlDecode {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn url_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

impl ScalarUDFImpl for UrlDecode {
    fn name(&self) -> &'static str {
        "url_decode"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[1], false)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let text = string_array(&args.args[0], rows)?;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if text.is_null(i) {
                out.push(None);
                continue;
            }
            let value = text.value(i);
            match url_decode(value) {
                Some(decoded) => out.push(Some(decoded)),
                None => {
                    return exec_err!("URLDecoder: Illegal hex characters in escape (%) pattern");
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `json_size(json, path)`: the number of members of the array or object at `path`, 0 for a
/// scalar, NULL when the path finds nothing or the text is not JSON.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonSize {
    signature: Signature,
}

impl JsonSize {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn json_size(json: &str, steps: &[PathStep]) -> Option<i64> {
    let size = match json_at(json, steps)? {
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        _ => 0,
    };
    i64::try_from(size).ok()
}

impl ScalarUDFImpl for JsonSize {
    fn name(&self) -> &'static str {
        "json_size"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Int64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        coerce_strings(self.name(), arg_types, &[2], false)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let out = each_json_path(&args, json_size)?;
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fake_athena::test_support::{engine_sql, s, value};

    #[test]
    fn json_extract_scalar_has_trino_semantics() {
        let doc = r#"'{"UserId":"u-1","n":3,"b":true,"z":null,"o":{"a":{"b":"deep"}},"l":["x","y"],"Weird Key":"w"}'"#;
        let f = |path: &str| value(&format!("SELECT json_extract_scalar({doc}, '{path}')"));
        assert_eq!(f("$.UserId"), s("u-1"));
        assert_eq!(f("$.n"), s("3"));
        assert_eq!(f("$.b"), s("true"));
        assert_eq!(f("$.z"), None);
        assert_eq!(f("$.o"), None);
        assert_eq!(f("$.o.a.b"), s("deep"));
        assert_eq!(f("$.l[1]"), s("y"));
        assert_eq!(f("$.l"), None);
        assert_eq!(f(r#"$["Weird Key"]"#), s("w"));
        assert_eq!(f("$.missing"), None);
        assert_eq!(value("SELECT json_extract_scalar('not json', '$.a')"), None);
        assert_eq!(value("SELECT json_extract_scalar(NULL, '$.a')"), None);
        assert_eq!(
            parse_json_path("$[0].a"),
            Some(vec![PathStep::Index(0), PathStep::Key("a".into())])
        );
        assert_eq!(parse_json_path("a.b"), None);
    }

    #[test]
    fn url_decode_and_json_size_have_trino_semantics() {
        assert_eq!(
            value("SELECT url_decode('arn%3Aaws%3aconnect%2Fx+y')"),
            s("arn:aws:connect/x y")
        );
        assert_eq!(value("SELECT url_decode('%E6%9D%B1%FF')"), s("東\u{fffd}"));
        assert_eq!(value("SELECT url_decode(NULL)"), None);
        let err = engine_sql("SELECT url_decode('100%')", &[]).expect_err("broken escape");
        assert!(err.contains("Illegal hex characters"), "{err}");
        let doc = r#"'{"l":["a","b",{"c":1}],"o":{"a":1,"b":2},"n":5}'"#;
        let f = |path: &str| value(&format!("SELECT json_size({doc}, '{path}')"));
        assert_eq!(f("$.l"), s("3"));
        assert_eq!(f("$.o"), s("2"));
        assert_eq!(f("$.n"), s("0"));
        assert_eq!(f("$.l[2]"), s("1"));
        assert_eq!(f("$.missing"), None);
        assert_eq!(value("SELECT json_size('not json', '$.a')"), None);
    }

    #[test]
    fn regexp_extract_has_trino_semantics() {
        assert_eq!(
            value("SELECT regexp_extract('abc-123-def', '[0-9]+')"),
            s("123")
        );
        assert_eq!(
            value("SELECT regexp_extract('abc-123-def', '([a-z]+)-([0-9]+)', 2)"),
            s("123")
        );
        assert_eq!(
            value("SELECT regexp_extract('abc-123-def', '([a-z]+)-([0-9]+)', 0)"),
            s("abc-123")
        );
        assert_eq!(value("SELECT regexp_extract('abc', '[0-9]+')"), None);
        assert_eq!(value("SELECT regexp_extract('abc', 'a(x)?', 1)"), None);
        assert_eq!(
            value(
                "SELECT regexp_extract('arn:aws:connect:us-east-1:1:instance/i-1/agent/u-9', 'agent/([^/]+)$', 1)"
            ),
            s("u-9")
        );
        let err =
            engine_sql("SELECT regexp_extract('abc', 'a(b)', 2)", &[]).expect_err("bad group");
        assert!(
            err.contains("Pattern has 1 groups. Cannot access group 2"),
            "{err}"
        );
    }

    #[test]
    fn regexp_replace_replaces_every_match_with_java_references() {
        assert_eq!(
            value("SELECT regexp_replace('a1b22c333', '[0-9]+', '#')"),
            s("a#b#c#")
        );
        assert_eq!(value("SELECT regexp_replace('a1b22', '[0-9]+')"), s("ab"));
        assert_eq!(
            value("SELECT regexp_replace('john smith', '(\\w+) (\\w+)', '$2, $1')"),
            s("smith, john")
        );
        assert_eq!(
            value("SELECT regexp_replace('ab', '(a)', '${1}x')"),
            s("axb")
        );
        assert_eq!(value("SELECT regexp_replace('ab', '(a)', '$1x')"), s("axb"));
        assert_eq!(value("SELECT regexp_replace('ab', 'a', '\\$')"), s("$b"));
        assert_eq!(java_replacement("$12", 1).expect("ok"), "${1}2");
        assert_eq!(java_replacement("$12", 12).expect("ok"), "${12}");
        assert!(java_replacement("$", 1).is_err());
    }

    #[test]
    fn from_iso8601_timestamp_parses_iso_8601_and_fails_on_garbage() {
        assert_eq!(
            value("SELECT from_iso8601_timestamp('2024-05-01T00:00:00Z')"),
            s("2024-05-01 00:00:00.000 UTC")
        );
        assert_eq!(
            value("SELECT from_iso8601_timestamp('2024-05-01T09:00:00.123+09:00')"),
            s("2024-05-01 00:00:00.123 UTC")
        );
        assert_eq!(
            value("SELECT from_iso8601_timestamp('2024-05-01T00:00:00')"),
            s("2024-05-01 00:00:00.000 UTC")
        );
        assert_eq!(value("SELECT from_iso8601_timestamp(NULL)"), None);
        assert_eq!(
            value(
                "SELECT from_iso8601_timestamp('2024-05-02T00:00:00Z') > from_iso8601_timestamp('2024-05-01T23:59:59Z')"
            ),
            s("true")
        );
        let err =
            engine_sql("SELECT from_iso8601_timestamp('2024-13-01')", &[]).expect_err("garbage");
        assert!(err.contains("Invalid format"), "{err}");
    }
}
