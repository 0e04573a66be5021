//! Athena SQL rewritten for DataFusion: each `?` placeholder (a token, never one in a string
//! or a comment) becomes DataFusion's `$1…$n`, and each of `ExecutionParameters` must be one
//! literal, parsed into the value bound to it (so a parameter cannot inject SQL).

use std::fmt::Write as _;

use datafusion::common::ScalarValue;
use sqlparser::ast::{Expr as SqlExpr, UnaryOperator, Value as SqlValue};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use super::udf::parse_iso8601_millis;

/// Replaces each `?` placeholder of `sql` (never one inside a string or a comment: the SQL is
/// tokenized) by `$1…$n`, and parses each parameter, which must be one literal.
pub(super) fn bind_parameters(
    sql: &str,
    parameters: &[String],
) -> Result<(String, Vec<ScalarValue>), String> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| format!("INVALID_PARAMETER: the query cannot be tokenized: {e}"))?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |loc: Location| -> Option<usize> {
        let line_start = *line_starts.get(usize::try_from(loc.line).ok()?.checked_sub(1)?)?;
        let column = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        sql[line_start..]
            .char_indices()
            .nth(column)
            .map(|(i, _)| line_start + i)
    };
    let mut out = String::with_capacity(sql.len() + 8);
    let mut last = 0;
    let mut count = 0;
    for token in &tokens {
        if token.token == Token::Placeholder("?".to_owned()) {
            let at = offset(token.span.start)
                .filter(|&i| sql[i..].starts_with('?'))
                .ok_or("INVALID_PARAMETER: cannot locate a ? placeholder")?;
            count += 1;
            out.push_str(&sql[last..at]);
            let _ = write!(out, "${count}");
            last = at + 1;
        }
    }
    out.push_str(&sql[last..]);
    if count != parameters.len() {
        return Err(format!(
            "INVALID_PARAMETER: the query has {count} parameter placeholder(s) but {} \
             ExecutionParameters were given",
            parameters.len()
        ));
    }
    let values = parameters
        .iter()
        .enumerate()
        .map(|(i, p)| parameter_value(i + 1, p))
        .collect::<Result<_, _>>()?;
    Ok((out, values))
}

/// One execution parameter: a literal and nothing else.
fn parameter_value(index: usize, text: &str) -> Result<ScalarValue, String> {
    let bad = |why: &str| {
        format!("INVALID_PARAMETER: execution parameter {index} ({text:?}) is not a literal: {why}")
    };
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| bad(&e.to_string()))?;
    let expr = parser.parse_expr().map_err(|e| bad(&e.to_string()))?;
    if parser.peek_token().token != Token::EOF {
        return Err(bad("unexpected text after the literal"));
    }
    let number = |n: &str, negative: bool| -> Result<ScalarValue, String> {
        let n = if negative {
            format!("-{n}")
        } else {
            n.to_owned()
        };
        if let Ok(i) = n.parse::<i64>() {
            Ok(ScalarValue::Int64(Some(i)))
        } else {
            n.parse::<f64>()
                .map(|f| ScalarValue::Float64(Some(f)))
                .map_err(|_| bad("bad number"))
        }
    };
    match &expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) => Ok(ScalarValue::Utf8(Some(s.clone()))),
            SqlValue::Number(n, _) => number(n, false),
            SqlValue::Boolean(b) => Ok(ScalarValue::Boolean(Some(*b))),
            SqlValue::Null => Ok(ScalarValue::Null),
            _ => Err(bad("unsupported literal")),
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            SqlExpr::Value(v) => match &v.value {
                SqlValue::Number(n, _) => number(n, true),
                _ => Err(bad("unsupported literal")),
            },
            _ => Err(bad("unsupported literal")),
        },
        SqlExpr::TypedString(typed) => {
            let value = match &typed.value.value {
                SqlValue::SingleQuotedString(s) => s.clone(),
                _ => return Err(bad("unsupported literal")),
            };
            let kind = typed.data_type.to_string().to_uppercase();
            if kind.starts_with("TIMESTAMP") {
                let millis = parse_iso8601_millis(&value).ok_or_else(|| bad("bad timestamp"))?;
                Ok(ScalarValue::TimestampMillisecond(Some(millis), None))
            } else if kind == "DATE" {
                let date = value
                    .parse::<jiff::civil::Date>()
                    .map_err(|e| bad(&e.to_string()))?;
                let days = date
                    .since(jiff::civil::date(1970, 1, 1))
                    .map_err(|e| bad(&e.to_string()))?
                    .get_days();
                Ok(ScalarValue::Date32(Some(days)))
            } else {
                Err(bad("unsupported typed literal"))
            }
        }
        _ => Err(bad(
            "only a string, number, boolean, NULL, TIMESTAMP or DATE literal is accepted",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fake_athena::test_support::{engine_sql, s};

    #[test]
    fn placeholders_are_tokens_and_parameters_literals() {
        let (sql, values) = bind_parameters(
            "SELECT '?' AS q, ? AS a -- ?\n/* ? */ , \"?\" , ?",
            &["'x'".to_owned(), "2".to_owned()],
        )
        .expect("bind");
        assert_eq!(sql, "SELECT '?' AS q, $1 AS a -- ?\n/* ? */ , \"?\" , $2");
        assert_eq!(
            values,
            [
                ScalarValue::Utf8(Some("x".into())),
                ScalarValue::Int64(Some(2))
            ]
        );
        let (_, values) =
            bind_parameters("SELECT ?", &["'x'' OR 1=1 --'".to_owned()]).expect("bind");
        assert_eq!(values, [ScalarValue::Utf8(Some("x' OR 1=1 --".into()))]);
        for bad in [
            "1); DROP TABLE x",
            "x",
            "now()",
            "(SELECT 1)",
            "'a'; SELECT 1",
            "'a' 'b'",
            "1 + 1",
        ] {
            let err = bind_parameters("SELECT ?", &[bad.to_owned()]).expect_err(bad);
            assert!(err.contains("parameter 1"), "{bad}: {err}");
        }
        assert!(bind_parameters("SELECT ?, ?", &["1".to_owned()]).is_err());
        assert!(bind_parameters("SELECT 1", &["1".to_owned()]).is_err());
        for ok in [
            "NULL",
            "true",
            "1.5",
            "DATE '2024-05-01'",
            "TIMESTAMP '2024-05-01 00:00:00'",
        ] {
            bind_parameters("SELECT ?", &[ok.to_owned()]).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // Non-ASCII text before a placeholder does not shift it.
        let (sql, _) = bind_parameters("SELECT 'é日本' AS x, ?", &["1".to_owned()]).expect("bind");
        assert_eq!(sql, "SELECT 'é日本' AS x, $1");
        assert_eq!(
            engine_sql("SELECT ? AS a, ? AS b", &["'x'' y'", "true"]),
            Ok(vec![vec![s("a"), s("b")], vec![s("x' y"), s("true")]])
        );
    }
}
