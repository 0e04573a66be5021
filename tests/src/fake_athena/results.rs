//! Results as Athena returns them: Athena's type name of each column, the column names it
//! would give, and every value as text (timestamps as Trino prints them), the header row
//! first.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit, TimestampMillisecondType};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::ResultTable;

/// Athena's name for a result column of this Arrow type.
fn athena_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Boolean => "boolean",
        DataType::Int8 => "tinyint",
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "bigint",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double",
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "decimal",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Struct(_) => "row",
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => "array",
        DataType::Map(..) => "map",
        DataType::Null => "unknown",
        _ => "varchar",
    }
}

/// The column name Athena would give: the name itself for a column or alias, the last field
/// for a dereference (`a.b.c` → `c`), `_col<i>` for any other expression.
pub(super) fn athena_column_name(name: &str, index: usize) -> String {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '-')
    };
    if plain(name) {
        return name.to_owned();
    }
    // DataFusion names a struct dereference `col[field][field]`.
    if let Some(open) = name.find('[')
        && name[..open].split('.').all(plain)
        && name.ends_with(']')
    {
        let last = name[..name.len() - 1]
            .rsplit('[')
            .next()
            .unwrap_or_default();
        if plain(last) && name[open..].chars().all(|c| c != '(' && c != ' ') {
            return last.to_owned();
        }
    }
    format!("_col{index}")
}

/// The result table of a query: its columns, and the header row then every row as text.
pub(super) fn render(
    schema: &Schema,
    batches: &[RecordBatch],
) -> datafusion::common::Result<ResultTable> {
    let columns: Vec<(String, String)> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                athena_column_name(f.name(), i),
                athena_type(f.data_type()).to_owned(),
            )
        })
        .collect();
    let mut rows = vec![
        columns
            .iter()
            .map(|(n, _)| Some(n.clone()))
            .collect::<Vec<_>>(),
    ];
    for batch in batches {
        let rendered: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .map(render_column)
            .collect::<datafusion::common::Result<_>>()?;
        for r in 0..batch.num_rows() {
            rows.push(rendered.iter().map(|c| c[r].clone()).collect());
        }
    }
    Ok(ResultTable { columns, rows })
}

fn render_column(array: &ArrayRef) -> datafusion::common::Result<Vec<Option<String>>> {
    if let DataType::Timestamp(_, tz) = array.data_type() {
        let millis = cast(
            array,
            &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        )?;
        let millis = millis.as_primitive::<TimestampMillisecondType>();
        let zone = tz.as_deref().map(|name| {
            (
                name,
                jiff::tz::TimeZone::get(name).unwrap_or(jiff::tz::TimeZone::UTC),
            )
        });
        return Ok((0..millis.len())
            .map(|i| {
                if millis.is_null(i) {
                    return None;
                }
                let ts = jiff::Timestamp::from_millisecond(millis.value(i)).ok()?;
                let (time, suffix) = match &zone {
                    Some((name, zone)) => (
                        ts.to_zoned_datetime(zone.clone()).datetime(),
                        format!(" {name}"),
                    ),
                    None => (
                        ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).datetime(),
                        String::new(),
                    ),
                };
                Some(format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}{suffix}",
                    time.year(),
                    time.month(),
                    time.day(),
                    time.hour(),
                    time.minute(),
                    time.second(),
                    time.millisecond()
                ))
            })
            .collect());
    }
    let options = FormatOptions::default();
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
    Ok((0..array.len())
        .map(|i| (!array.is_null(i)).then(|| formatter.value(i).to_string()))
        .collect())
}
