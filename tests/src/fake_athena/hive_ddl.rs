//! Athena's Hive DDL: the sqlparser dialect of its `CREATE EXTERNAL TABLE` and
//! `CREATE DATABASE` statements (backtick identifiers, `struct<name:type>`, `array<…>`,
//! `map<k,v>`, `WITH DBPROPERTIES`), the column types and what each makes of a JSON value,
//! and [`parse_hive_ddl`], which tests use to check generated DDL.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use serde_json::{Map, Value};
use sqlparser::ast::{
    ArrayElemTypeDef, CreateTable, CreateTableOptions, DataType as SqlType, Expr as SqlExpr,
    HiveDistributionStyle, HiveIOFormat, HiveRowFormat, ObjectName, SqlOption, Statement,
    Value as SqlValue,
};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

use super::udf::parse_iso8601_millis;

/// A `CREATE EXTERNAL TABLE` statement as [`parse_hive_ddl`] understood it. Names are
/// lower-cased, as Hive does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiveTable {
    /// The database part of the table name, if the name had one.
    pub database: Option<String>,
    /// The table name.
    pub name: String,
    /// The declared columns and their types as lower-case text without spaces, e.g.
    /// `struct<type:string,arn:string>`.
    pub columns: Vec<(String, String)>,
    /// `PARTITIONED BY` columns and their types, same form.
    pub partitions: Vec<(String, String)>,
    /// `LOCATION`.
    pub location: String,
    /// `TBLPROPERTIES`.
    pub properties: BTreeMap<String, String>,
    /// `STORED AS INPUTFORMAT '…'`.
    pub input_format: Option<String>,
    /// `ROW FORMAT SERDE '…'`.
    pub serde: Option<String>,
    /// `WITH SERDEPROPERTIES (…)`.
    pub serde_properties: BTreeMap<String, String>,
}

impl HiveTable {
    /// The key a column reads in each JSON object, and whether it must match exactly: the
    /// OpenX SerDe with `'case.insensitive'='false'` matches keys exactly, a column through its
    /// `'mapping.<column>'` property (or its own name); otherwise keys match regardless of case.
    pub fn json_key<'a>(&'a self, column: &'a str) -> (&'a str, bool) {
        let exact = self
            .serde_properties
            .get("case.insensitive")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        if exact {
            let mapped = self
                .serde_properties
                .get(&format!("mapping.{column}"))
                .map_or(column, String::as_str);
            (mapped, true)
        } else {
            (column, false)
        }
    }
}

/// Parses one Athena `CREATE EXTERNAL TABLE` statement (Hive DDL: backtick identifiers,
/// `struct<name:type>`, `array<…>`, `map<k,v>`), e.g. to check that generated DDL is what
/// Athena accepts and declares the expected columns.
pub fn parse_hive_ddl(sql: &str) -> Result<HiveTable, String> {
    parse_hive_table(sql).map(|t| t.table)
}

/// The DDL dialect: Hive identifiers (backticks, and double quotes), `struct<name:type>`,
/// `array<…>` and `map<k,v>` types.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct AthenaDdlDialect;

impl Dialect for AthenaDdlDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_' || ch == '$'
    }

    fn supports_struct_literal(&self) -> bool {
        true
    }

    fn supports_map_literal_with_angle_brackets(&self) -> bool {
        true
    }

    /// Hive's `CREATE (DATABASE|SCHEMA) [IF NOT EXISTS] name [COMMENT '…'] [LOCATION '…']
    /// [WITH DBPROPERTIES ('k'='v', …)]`, which the generic parser does not know.
    fn parse_statement(&self, parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
        if !parser.parse_keywords(&[Keyword::CREATE, Keyword::DATABASE])
            && !parser.parse_keywords(&[Keyword::CREATE, Keyword::SCHEMA])
        {
            return None;
        }
        Some(parse_hive_create_database(parser))
    }
}

fn parse_hive_create_database(parser: &mut Parser) -> Result<Statement, ParserError> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let db_name = parser.parse_object_name(false)?;
    let mut comment = None;
    let mut location = None;
    loop {
        if comment.is_none() && parser.parse_keyword(Keyword::COMMENT) {
            comment = Some(parser.parse_literal_string()?);
        } else if location.is_none() && parser.parse_keyword(Keyword::LOCATION) {
            location = Some(parser.parse_literal_string()?);
        } else if parser.parse_keyword(Keyword::WITH) {
            let word = parser.parse_identifier()?;
            if !word.value.eq_ignore_ascii_case("DBPROPERTIES") {
                return parser.expected("DBPROPERTIES", parser.peek_token());
            }
            parser.expect_token(&Token::LParen)?;
            loop {
                parser.parse_literal_string()?;
                parser.expect_token(&Token::Eq)?;
                parser.parse_literal_string()?;
                if !parser.consume_token(&Token::Comma) {
                    break;
                }
            }
            parser.expect_token(&Token::RParen)?;
        } else {
            break;
        }
    }
    Ok(Statement::CreateDatabase {
        db_name,
        if_not_exists,
        location,
        managed_location: None,
        or_replace: false,
        transient: false,
        clone: None,
        data_retention_time_in_days: None,
        max_data_extension_time_in_days: None,
        external_volume: None,
        catalog: None,
        replace_invalid_characters: None,
        default_ddl_collation: None,
        storage_serialization_policy: None,
        comment,
        default_charset: None,
        default_collation: None,
        catalog_sync: None,
        catalog_sync_namespace_mode: None,
        catalog_sync_namespace_flatten_delimiter: None,
        with_tags: None,
        with_contacts: None,
    })
}

/// A Hive column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HiveType {
    String,
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Date,
    Timestamp,
    Struct(Vec<(String, HiveType)>),
    Array(Box<HiveType>),
    Map(Box<HiveType>, Box<HiveType>),
}

impl HiveType {
    fn from_sql(data_type: &SqlType) -> Result<Self, String> {
        match data_type {
            SqlType::Struct(fields, _) => {
                if fields.is_empty() {
                    return Err("struct type without fields".to_owned());
                }
                fields
                    .iter()
                    .map(|f| {
                        let name = f
                            .field_name
                            .as_ref()
                            .ok_or_else(|| format!("struct field without a name: {f}"))?
                            .value
                            .to_lowercase();
                        Ok((name, Self::from_sql(&f.field_type)?))
                    })
                    .collect::<Result<_, String>>()
                    .map(Self::Struct)
            }
            SqlType::Array(ArrayElemTypeDef::AngleBracket(inner)) => {
                Ok(Self::Array(Box::new(Self::from_sql(inner)?)))
            }
            SqlType::Map(key, value) => Ok(Self::Map(
                Box::new(Self::from_sql(key)?),
                Box::new(Self::from_sql(value)?),
            )),
            other => {
                let text = other.to_string().to_lowercase();
                let base = text.split('(').next().unwrap_or_default().trim();
                Ok(match base {
                    "string" | "varchar" | "char" | "text" => Self::String,
                    "boolean" | "bool" => Self::Boolean,
                    "tinyint" => Self::TinyInt,
                    "smallint" => Self::SmallInt,
                    "int" | "integer" => Self::Int,
                    "bigint" => Self::BigInt,
                    "float" | "real" => Self::Float,
                    "double" | "double precision" => Self::Double,
                    "date" => Self::Date,
                    "timestamp" => Self::Timestamp,
                    _ => return Err(format!("unsupported column type {text}")),
                })
            }
        }
    }

    fn text(&self) -> String {
        match self {
            Self::String => "string".into(),
            Self::Boolean => "boolean".into(),
            Self::TinyInt => "tinyint".into(),
            Self::SmallInt => "smallint".into(),
            Self::Int => "int".into(),
            Self::BigInt => "bigint".into(),
            Self::Float => "float".into(),
            Self::Double => "double".into(),
            Self::Date => "date".into(),
            Self::Timestamp => "timestamp".into(),
            Self::Struct(fields) => format!(
                "struct<{}>",
                fields
                    .iter()
                    .map(|(n, t)| format!("{n}:{}", t.text()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Self::Array(t) => format!("array<{}>", t.text()),
            Self::Map(k, v) => format!("map<{},{}>", k.text(), v.text()),
        }
    }

    /// The Arrow type a column of this type is read into.
    pub(super) fn arrow(&self) -> DataType {
        match self {
            Self::String => DataType::Utf8,
            Self::Boolean => DataType::Boolean,
            Self::TinyInt => DataType::Int8,
            Self::SmallInt => DataType::Int16,
            Self::Int => DataType::Int32,
            Self::BigInt => DataType::Int64,
            Self::Float => DataType::Float32,
            Self::Double => DataType::Float64,
            Self::Date => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            Self::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|(n, t)| Field::new(n, t.arrow(), true))
                    .collect::<Fields>(),
            ),
            Self::Array(t) => DataType::List(Arc::new(Field::new("item", t.arrow(), true))),
            Self::Map(k, v) => DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", k.arrow(), false),
                        Field::new("value", v.arrow(), true),
                    ])),
                    false,
                )),
                false,
            ),
        }
    }

    /// `value` shaped for the Arrow JSON decoder: what Hive's JSON SerDes make of it (keys
    /// matched case-insensitively, objects and arrays in string columns as their JSON text,
    /// mismatched scalars as NULL).
    pub(super) fn conform(&self, value: &Value) -> Value {
        match (self, value) {
            (_, Value::Null) => Value::Null,
            (Self::String, Value::String(s)) => Value::String(s.clone()),
            (Self::String, other) => Value::String(other.to_string()),
            (Self::Boolean, Value::Bool(b)) => Value::Bool(*b),
            (Self::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
                Value::Bool(true)
            }
            (Self::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
                Value::Bool(false)
            }
            (Self::TinyInt | Self::SmallInt | Self::Int | Self::BigInt, v) => {
                let n = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                let fits = |n: i64| match self {
                    Self::TinyInt => i8::try_from(n).is_ok(),
                    Self::SmallInt => i16::try_from(n).is_ok(),
                    Self::Int => i32::try_from(n).is_ok(),
                    _ => true,
                };
                n.filter(|n| fits(*n)).map_or(Value::Null, Value::from)
            }
            (Self::Float | Self::Double, Value::Number(n)) => Value::Number(n.clone()),
            (Self::Float | Self::Double, Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
            (Self::Date, Value::String(s)) => {
                if s.parse::<jiff::civil::Date>().is_ok() {
                    Value::String(s.clone())
                } else {
                    Value::Null
                }
            }
            (Self::Timestamp, Value::String(s)) => {
                parse_iso8601_millis(s).map_or(Value::Null, Value::from)
            }
            (Self::Timestamp, Value::Number(n)) => n.as_i64().map_or(Value::Null, Value::from),
            (Self::Struct(fields), Value::Object(object)) => Value::Object(
                fields
                    .iter()
                    .map(|(name, t)| {
                        let v = lookup(object, name).map_or(Value::Null, |v| t.conform(v));
                        (name.clone(), v)
                    })
                    .collect(),
            ),
            (Self::Array(t), Value::Array(items)) => {
                Value::Array(items.iter().map(|v| t.conform(v)).collect())
            }
            (Self::Map(_, t), Value::Object(object)) => Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), t.conform(v)))
                    .collect(),
            ),
            _ => Value::Null,
        }
    }
}

/// A key of a JSON object, matched case-insensitively (exact match first).
pub(super) fn lookup<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A parsed `CREATE EXTERNAL TABLE`.
#[derive(Debug, Clone)]
pub(super) struct ParsedTable {
    pub(super) table: HiveTable,
    pub(super) columns: Vec<(String, HiveType)>,
    pub(super) partitions: Vec<(String, HiveType)>,
    pub(super) if_not_exists: bool,
}

fn parse_hive_table(sql: &str) -> Result<ParsedTable, String> {
    let statements = Parser::parse_sql(&AthenaDdlDialect, sql).map_err(|e| e.to_string())?;
    match statements.as_slice() {
        [Statement::CreateTable(create)] => hive_table_from(create),
        [_] => Err("not a CREATE EXTERNAL TABLE statement".to_owned()),
        _ => Err(format!("expected one statement, got {}", statements.len())),
    }
}

fn string_literal(expr: &SqlExpr) -> Option<String> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn hive_table_from(create: &CreateTable) -> Result<ParsedTable, String> {
    if !create.external {
        return Err("only CREATE EXTERNAL TABLE is supported".to_owned());
    }
    let parts = object_name_parts(&create.name);
    let (database, name) = match parts.as_slice() {
        [name] => (None, name.clone()),
        [.., db, name] => (Some(db.clone()), name.clone()),
        [] => return Err("a table needs a name".to_owned()),
    };
    let column = |c: &sqlparser::ast::ColumnDef| -> Result<(String, HiveType), String> {
        Ok((
            c.name.value.to_lowercase(),
            HiveType::from_sql(&c.data_type).map_err(|e| format!("column {}: {e}", c.name))?,
        ))
    };
    let columns = create
        .columns
        .iter()
        .map(column)
        .collect::<Result<Vec<_>, _>>()?;
    let partitions = match &create.hive_distribution {
        HiveDistributionStyle::PARTITIONED { columns } => {
            columns.iter().map(column).collect::<Result<Vec<_>, _>>()?
        }
        _ => Vec::new(),
    };
    let formats = create.hive_formats.as_ref();
    let serde = formats.and_then(|f| match &f.row_format {
        Some(HiveRowFormat::SERDE { class }) => Some(class.clone()),
        _ => None,
    });
    let input_format = formats.and_then(|f| match &f.storage {
        Some(HiveIOFormat::IOF { input_format, .. }) => string_literal(input_format),
        _ => None,
    });
    let location = formats
        .and_then(|f| f.location.clone())
        .or_else(|| create.location.clone())
        .ok_or("a table needs a LOCATION")?;
    let mut serde_properties = BTreeMap::new();
    for option in formats
        .and_then(|f| f.serde_properties.as_ref())
        .into_iter()
        .flatten()
    {
        if let SqlOption::KeyValue { key, value } = option {
            let value = string_literal(value).unwrap_or_else(|| value.to_string());
            serde_properties.insert(key.value.trim_matches('\'').to_owned(), value);
        }
    }
    let mut properties = BTreeMap::new();
    if let CreateTableOptions::TableProperties(options) = &create.table_options {
        for option in options {
            if let SqlOption::KeyValue { key, value } = option {
                let value = string_literal(value).unwrap_or_else(|| value.to_string());
                properties.insert(key.value.clone(), value);
            }
        }
    }
    let text = |cols: &[(String, HiveType)]| {
        cols.iter()
            .map(|(n, t)| (n.clone(), t.text()))
            .collect::<Vec<_>>()
    };
    Ok(ParsedTable {
        table: HiveTable {
            database,
            name,
            columns: text(&columns),
            partitions: text(&partitions),
            location,
            properties,
            input_format,
            serde,
            serde_properties,
        },
        columns,
        partitions,
        if_not_exists: create.if_not_exists,
    })
}

/// The parts of a (possibly qualified) object name, lower-cased, as Hive does.
pub(super) fn object_name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .map_or_else(|| p.to_string(), |i| i.value.clone())
        })
        .map(|s| s.to_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fake_athena::test_support::{CLOUDTRAIL_DDL, USERS_DDL};

    #[test]
    fn official_aws_ddl_parses() {
        // The sample lives outside the repository: skip when it is not there.
        let Ok(sql) = std::fs::read_to_string(
            "/work/shared/samples/06_athena_cloudtrail_pp_DDL_official_2023-02_verbatim.sql",
        ) else {
            return;
        };
        let table = parse_hive_ddl(&sql).expect("parse the official DDL");
        assert_eq!(table.database, None);
        assert_eq!(table.name, "cloudtrail_logs_pp");
        assert_eq!(table.columns.len(), 24);
        assert_eq!(
            table.columns[0],
            ("eventversion".to_owned(), "string".to_owned())
        );
        assert_eq!(
            table.columns[1].1,
            "struct<type:string,principalid:string,arn:string,accountid:string,invokedby:string,\
             accesskeyid:string,username:string,sessioncontext:struct<attributes:struct<\
             mfaauthenticated:string,creationdate:string>,sessionissuer:struct<type:string,\
             principalid:string,arn:string,accountid:string,username:string>,ec2roledelivery:\
             string,webidfederationdata:map<string,string>>>"
        );
        assert_eq!(
            table.columns[16],
            (
                "resources".to_owned(),
                "array<struct<arn:string,accountid:string,type:string>>".to_owned()
            )
        );
        assert_eq!(
            table.partitions,
            [("timestamp".to_owned(), "string".to_owned())]
        );
        assert_eq!(
            table.location,
            "s3://bucket/AWSLogs/account-id/CloudTrail/aws-region"
        );
        assert_eq!(
            table
                .properties
                .get("projection.timestamp.range")
                .map(String::as_str),
            Some("2020/01/01,NOW")
        );
        assert_eq!(
            table.input_format.as_deref(),
            Some("com.amazon.emr.cloudtrail.CloudTrailInputFormat")
        );
        assert_eq!(
            table.serde.as_deref(),
            Some("org.apache.hive.hcatalog.data.JsonSerDe")
        );
    }

    #[test]
    fn a_case_sensitive_json_table_reads_its_mapped_keys_exactly() {
        let ddl = "CREATE EXTERNAL TABLE IF NOT EXISTS `db`.`connect_history` (\n  \
                   `folder` string,\n  `observedat` string,\n  `object` string\n)\n\
                   ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n\
                   WITH SERDEPROPERTIES ('ignore.malformed.json'='false', 'case.insensitive'='false', \
                   'mapping.folder'='Folder', 'mapping.observedat'='ObservedAt', 'mapping.object'='Object')\n\
                   LOCATION 's3://snap/history/'";
        let table = parse_hive_ddl(ddl).expect("parse");
        assert_eq!(table.json_key("object"), ("Object", true));
        assert_eq!(table.json_key("folder"), ("Folder", true));
        let users = parse_hive_ddl(USERS_DDL).expect("parse");
        assert_eq!(users.json_key("username"), ("username", false));
    }

    #[test]
    fn product_ddl_parses() {
        let table = parse_hive_ddl(CLOUDTRAIL_DDL).expect("parse");
        assert_eq!(table.database.as_deref(), Some("connect_audit"));
        assert_eq!(table.name, "cloudtrail");
        assert_eq!(table.columns.len(), 24);
        let names: Vec<&str> = table.partitions.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["account", "region", "date"]);
        assert_eq!(
            table
                .properties
                .get("storage.location.template")
                .map(String::as_str),
            Some("s3://trail-bucket/logs/AWSLogs/${account}/CloudTrail/${region}/${date}")
        );
        let users = parse_hive_ddl(USERS_DDL).expect("parse");
        assert_eq!(
            users.columns[8],
            ("deleted".to_owned(), "boolean".to_owned())
        );
        assert_eq!(
            users.serde.as_deref(),
            Some("org.openx.data.jsonserde.JsonSerDe")
        );
        assert_eq!(users.location, "s3://snap-bucket/snapshot/users/");
        assert!(parse_hive_ddl("SELECT 1").is_err());
        assert!(parse_hive_ddl("CREATE EXTERNAL TABLE t (a strng) LOCATION 's3://b/'").is_err());
    }
}
