//! A table an analysis declares: each column parsed by its declared kind with the same
//! rules as the built-in tables, required cells present, rows of unknown clients
//! rejected. Every row is accepted or becomes reject lines.

use std::collections::HashSet;

use polars::prelude::*;

use super::parse::{parse_date, parse_number};
use super::{top_reasons, ValidateError, ValidateParams};
use crate::ingest::declared::DeclaredRaw;
use crate::ingest::ROW;
use crate::schema::{InputTable, ValueKind};

/// The accepted rows (typed columns as declared, and `__row`) and the reject lines.
pub fn validate_declared(
    t: &InputTable,
    raw: DeclaredRaw,
    clients: &DataFrame,
    settings: &ValidateParams,
) -> Result<(DataFrame, DataFrame), (ValidateError, DataFrame)> {
    let file = raw
        .path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let input = raw.df.height();
    let parsed = parse(t, &raw.df).map_err(|e| (e.into(), super::plan::empty_rejects()))?;
    let known: HashSet<String> = match clients.column("client_id").and_then(|c| c.str().cloned()) {
        Ok(ids) => ids.iter().flatten().map(str::to_uppercase).collect(),
        Err(e) => return Err((e.into(), super::plan::empty_rejects())),
    };
    let rows: Vec<i64> = raw
        .df
        .column(ROW)
        .and_then(|c| c.i64().cloned())
        .map(|c| c.iter().map(|v| v.unwrap_or(0)).collect())
        .unwrap_or_default();
    let mut bad = vec![false; input];
    let mut lines: (Vec<i64>, Vec<String>, Vec<Option<String>>, Vec<String>) = Default::default();
    for c in &t.columns {
        let (Ok(text), Ok(value)) = (raw.df.column(&c.name), parsed.column(&c.name)) else {
            continue;
        };
        let (Ok(text), value) = (text.str(), value.is_null()) else {
            continue;
        };
        for (i, cell) in text.iter().enumerate() {
            let reason = match (cell, value.get(i).unwrap_or(true)) {
                (None, _) if c.required => "required value is empty",
                (Some(_), true) if c.kind == ValueKind::Number => "not a number",
                (Some(_), true) if c.kind == ValueKind::Date => {
                    "not a date (write it as 2024-01-05, 2024/1/5 or 2024年1月5日, a year between 1900 and 2200)"
                }
                (Some(id), _) if t.per_client && c.name == "client_id" && !known.contains(&id.to_uppercase()) => {
                    "client_id not found among the accepted clients"
                }
                _ => continue,
            };
            bad[i] = true;
            lines.0.push(rows.get(i).copied().unwrap_or(0));
            lines.1.push(c.name.clone());
            lines.2.push(cell.map(String::from));
            lines.3.push(reason.to_string());
        }
    }
    let rejected = bad.iter().filter(|b| **b).count();
    let n = lines.0.len();
    let rejects = DataFrame::new_infer_height(vec![
        Column::new("file".into(), vec![file.clone(); n]),
        Column::new("row".into(), lines.0),
        Column::new("column".into(), lines.1),
        Column::new("value".into(), lines.2),
        Column::new("reason".into(), lines.3),
    ])
    .map_err(|e| (e.into(), super::plan::empty_rejects()))?;
    let share = rejected as f64 / input.max(1) as f64;
    if share > settings.max_reject_share {
        let top = top_reasons(&rejects, 3);
        return Err((
            ValidateError::TooManyRejects {
                table: t.name.clone(),
                rejected,
                total: input,
                share: share * 100.0,
                limit: settings.max_reject_share * 100.0,
                top,
            },
            rejects,
        ));
    }
    let keep = BooleanChunked::from_iter_values("keep".into(), bad.iter().map(|b| !b));
    let accepted = parsed.filter(&keep).map_err(|e| (e.into(), rejects.clone()))?;
    Ok((accepted, rejects))
}

/// Each declared column parsed by its kind (text trimmed, numbers and dates as the
/// built-in tables read them), and `__row`.
fn parse(t: &InputTable, df: &DataFrame) -> PolarsResult<DataFrame> {
    let mut exprs: Vec<Expr> = t
        .columns
        .iter()
        .map(|c| {
            let text = col(c.name.as_str());
            match c.kind {
                ValueKind::Text => text,
                ValueKind::Number => parse_number(text),
                ValueKind::Date => parse_date(text),
            }
            .alias(c.name.as_str())
        })
        .collect();
    exprs.push(col(ROW));
    df.clone().lazy().select(exprs).collect()
}
