//! Validate: parses the text tables into typed ones, row by row, as polars expressions.
//! Every row either passes or goes to the rejects table with its file, row number,
//! column, value and reason, so that input rows = accepted + rejected, always.

use polars::prelude::*;
use serde::Serialize;
use thiserror::Error;

use crate::ingest::{RawInputs, RawTable, MAX_CELL_CHARS, ROW};

pub use declared::validate_declared;

mod declared;
mod parse;
mod plan;
mod tables;
mod vocab;

use crate::schema::Table;
pub use parse::{month_floor, parse_date, parse_month, parse_number, FIRST_DAY, LAST_DAY};
pub use plan::empty_rejects;
use plan::*;
pub use tables::CLIENT_ROW;
use tables::*;
use vocab::*;
pub use vocab::{yes_no, CLIENT_TYPES, TAXPAYER_TYPES};

/// The validation stage's checked parameters.
#[derive(Debug, Clone, Serialize)]
pub struct ValidateParams {
    /// Largest share of a table's rows that may be rejected before the run stops.
    pub max_reject_share: f64,
    /// Days from invoice to due date when the export gives none.
    pub payment_terms_days: i64,
}

#[derive(Debug, Error)]
pub enum ValidateError {
    #[error("{table}: {rejected} of {total} rows rejected ({share:.1}%), over the limit of {limit:.1}% (input.max_reject_share). Most common problems: {top}. Fix the input, or raise the limit")]
    TooManyRejects {
        table: String,
        rejected: usize,
        total: usize,
        share: f64,
        limit: f64,
        top: String,
    },
    #[error("{table}: no rows left after validation; see the rejects for why")]
    NothingLeft { table: String },
    #[error("validation failed: {0}")]
    Polars(#[from] PolarsError),
}

/// Typed, accepted rows of the tables. Absent optional columns are present as all-null
/// columns so that later stages see one schema; `absent` says which are not real.
#[derive(Debug, Clone)]
pub struct CleanTables {
    pub clients: DataFrame,
    pub billing: DataFrame,
    /// The optional tables the input has, in schema order.
    pub optional: Vec<(Table, DataFrame)>,
    /// `table.column` of every optional column that was absent in the input.
    pub absent: Vec<String>,
}

impl CleanTables {
    /// An optional table, when the input has it.
    pub fn get(&self, table: Table) -> Option<&DataFrame> {
        self.optional.iter().find(|(t, _)| *t == table).map(|(_, df)| df)
    }

    pub fn activity(&self) -> Option<&DataFrame> {
        self.get(Table::Activity)
    }

    /// Drops an optional table (a stage that no longer needs it frees its memory).
    pub fn drop_table(&mut self, table: Table) {
        self.optional.retain(|(t, _)| *t != table);
    }

    pub fn has(&self, table: Table, column: &str) -> bool {
        if table.optional() && self.get(table).is_none() {
            return false;
        }
        !self.absent.iter().any(|a| a == &format!("{}.{}", table.name(), column))
    }
}

/// Row counts of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableCounts {
    pub table: Table,
    pub input: usize,
    pub accepted: usize,
    pub rejected: usize,
}

pub struct Validated {
    pub tables: CleanTables,
    /// file, row, column, value, reason; one line per problem (a row may have several).
    pub rejects: DataFrame,
    pub counts: Vec<TableCounts>,
}

/// Validates all tables. Stops when a table's reject share is over the limit; the
/// rejects found so far are returned with the error so that nothing is lost.
/// Each raw table is consumed by its validation, so that a large run never holds the raw
/// and the validated copy of every table at once.
///
/// `latest` is the last day an invoice, payment or work month can carry (see
/// [`latest_event_day`]); later ones are rejected as typos.
pub fn validate(
    inputs: RawInputs,
    settings: &ValidateParams,
    latest: chrono::NaiveDate,
) -> Result<Validated, (ValidateError, DataFrame)> {
    let mut inputs = inputs;
    let raw_activity = inputs.take(Table::Activity);
    let raw_staff = inputs.take(Table::Staff);
    let raw_contacts = inputs.take(Table::Contacts);
    let RawInputs {
        clients: raw_clients,
        billing: raw_billing,
        ..
    } = inputs;
    let mut all_rejects = Vec::new();
    let mut counts = Vec::new();
    let mut absent = Vec::new();
    let fail = |e: ValidateError, parts: &[DataFrame]| (e, stack(parts));

    let mut step = |t: RawTable,
                    plan: PolarsResult<(Plan, Vec<Check>)>,
                    join: Option<&DataFrame>,
                    all_rejects: &mut Vec<DataFrame>|
     -> Result<DataFrame, ValidateError> {
        let (plan, extra) = plan?;
        let input = t.df.height();
        let table = t.table;
        absent.extend(t.absent.iter().map(|c| format!("{}.{}", table.name(), c)));
        let (accepted, rejects) = run_plan(t, plan, extra, join)?;
        let rejected_rows = rejects.column("row")?.n_unique()?;
        counts.push(TableCounts {
            table,
            input,
            accepted: accepted.height(),
            rejected: rejected_rows,
        });
        let share = rejected_rows as f64 / input.max(1) as f64;
        all_rejects.push(rejects.clone());
        if share > settings.max_reject_share {
            return Err(ValidateError::TooManyRejects {
                table: table.name().into(),
                rejected: rejected_rows,
                total: input,
                share: share * 100.0,
                limit: settings.max_reject_share * 100.0,
                top: top_reasons(&rejects, 3),
            });
        }
        // An empty staff list is no error: allocation says it has nobody to plan with.
        if accepted.height() == 0 && !(matches!(table, Table::Staff | Table::Contacts) && input == 0) {
            return Err(ValidateError::NothingLeft {
                table: table.name().into(),
            });
        }
        Ok(accepted)
    };

    let plan = clients_plan(&raw_clients);
    let clients = match step(raw_clients, plan, None, &mut all_rejects) {
        Ok(c) => c,
        Err(e) => return Err(fail(e, &all_rejects)),
    };
    let keys = match client_keys(&clients) {
        Ok(k) => k,
        Err(e) => return Err(fail(e.into(), &all_rejects)),
    };
    let latest = days_of(latest);
    let plan = billing_plan(&raw_billing, latest);
    let billing = match step(raw_billing, plan, Some(&keys), &mut all_rejects) {
        Ok(b) => b,
        Err(e) => return Err(fail(e, &all_rejects)),
    };
    let mut optional = Vec::new();
    if let Some(a) = raw_activity {
        let plan = activity_plan(&a, latest);
        match step(a, plan, Some(&keys), &mut all_rejects) {
            Ok(a) => optional.push((Table::Activity, a)),
            Err(e) => return Err(fail(e, &all_rejects)),
        }
    }
    if let Some(st) = raw_staff {
        let plan = staff_plan(&st);
        match step(st, plan, None, &mut all_rejects) {
            Ok(st) => optional.push((Table::Staff, st)),
            Err(e) => return Err(fail(e, &all_rejects)),
        }
    }
    if let Some(c) = raw_contacts {
        let plan = contacts_plan(&c, latest);
        match step(c, plan, Some(&keys), &mut all_rejects) {
            Ok(c) => optional.push((Table::Contacts, c)),
            Err(e) => return Err(fail(e, &all_rejects)),
        }
    }
    let billing = match fill_due_dates(billing, settings.payment_terms_days) {
        Ok(b) => b,
        Err(e) => return Err(fail(e.into(), &all_rejects)),
    };
    Ok(Validated {
        tables: CleanTables {
            clients,
            billing,
            optional,
            absent,
        },
        rejects: stack(&all_rejects),
        counts,
    })
}

/// The last day an invoice, payment or work month can carry: today, or the snapshot date
/// when that is later.
pub fn latest_event_day(snapshot: Option<chrono::NaiveDate>) -> chrono::NaiveDate {
    let today = chrono::Local::now().date_naive();
    snapshot.map_or(today, |s| s.max(today))
}

fn days_of(day: chrono::NaiveDate) -> i32 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(day);
    (day - epoch).num_days() as i32
}

/// A missing due date is the invoice date plus the firm's payment terms.
fn fill_due_dates(billing: DataFrame, terms_days: i64) -> PolarsResult<DataFrame> {
    let due = (col("invoice_date").cast(DataType::Int32) + lit(terms_days as i32)).cast(DataType::Date);
    billing
        .lazy()
        .with_column(coalesce(&[col("due_date"), due]).alias("due_date"))
        .collect()
}

fn stack(parts: &[DataFrame]) -> DataFrame {
    let mut out = empty_rejects();
    for p in parts {
        // Every part has the reject schema built in run_plan.
        let _ = out.vstack_mut(p);
    }
    out
}

/// "reason (n)" for the most common reject reasons.
pub fn top_reasons(rejects: &DataFrame, n: usize) -> String {
    top_reasons_in(rejects, n, crate::format::Lang::En)
}

/// [`top_reasons`] in a language: in Chinese, the columns and reasons in Chinese words.
pub fn top_reasons_in(rejects: &DataFrame, n: usize, lang: crate::format::Lang) -> String {
    use crate::format::{column_zh, reason_zh, Lang};
    // Row-specific detail ("first seen at row 17") would split one problem into many.
    let counted = rejects
        .clone()
        .lazy()
        .with_column(
            col("reason")
                .str()
                .replace_all(lit(r"; first seen at row \d+"), lit(""), false),
        )
        .group_by([col("file"), col("column"), col("reason")])
        .agg([len().alias("n")])
        .sort(
            ["n", "file", "column", "reason"],
            SortMultipleOptions::default().with_order_descending_multi([true, false, false, false]),
        )
        .limit(n as IdxSize)
        .collect();
    let Ok(df) = counted else {
        return String::from("(unavailable)");
    };
    let get = |c: &str| df.column(c).ok().and_then(|c| c.str().ok().cloned());
    let (Some(f), Some(c), Some(r)) = (get("file"), get("column"), get("reason")) else {
        return String::from("(unavailable)");
    };
    let counts = df.column("n").ok().and_then(|c| c.cast(&DataType::UInt64).ok());
    let mut items = Vec::new();
    for i in 0..df.height() {
        let k = counts
            .as_ref()
            .and_then(|c| c.u64().ok().and_then(|c| c.get(i)))
            .unwrap_or(0);
        let (file, column, reason) = (f.get(i).unwrap_or(""), c.get(i).unwrap_or(""), r.get(i).unwrap_or(""));
        items.push(match lang {
            Lang::En => {
                let rows = if k == 1 { "row" } else { "rows" };
                format!("{file} {column}: {reason} ({k} {rows})")
            }
            Lang::Zh => format!(
                "{file}「{}」：{}（{k} 行）",
                column_zh(column).unwrap_or(column),
                reason_zh(reason)
            ),
        });
    }
    match (items.is_empty(), lang) {
        (true, Lang::En) => "none".into(),
        (true, Lang::Zh) => "无".into(),
        (false, Lang::En) => items.join("; "),
        (false, Lang::Zh) => items.join("；"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expr: Expr, values: &[Option<&str>]) -> Vec<Option<String>> {
        let df = df!("x" => values).unwrap();
        let out = df
            .lazy()
            .select([expr.cast(DataType::String).alias("y")])
            .collect()
            .unwrap();
        out.column("y")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.map(String::from))
            .collect()
    }

    #[test]
    fn dates_in_chinese_and_iso_forms() {
        let got = eval(
            parse_date(col("x")),
            &[
                Some("2024-01-05"),
                Some("2024/1/5"),
                Some("2024年1月5日"),
                Some("20240105"),
                Some("2024-01-05 13:00:00"),
                Some("2024.12.31"),
            ],
        );
        let want = [
            "2024-01-05",
            "2024-01-05",
            "2024-01-05",
            "2024-01-05",
            "2024-01-05",
            "2024-12-31",
        ];
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.as_deref(), Some(w));
        }
    }

    #[test]
    fn impossible_dates_are_null() {
        let got = eval(
            parse_date(col("x")),
            &[
                Some("2024-02-30"),
                Some("2023-13-01"),
                Some("05/01/2024"),
                Some("soon"),
                None,
            ],
        );
        assert!(got.iter().all(Option::is_none), "{got:?}");
        let leap = eval(parse_date(col("x")), &[Some("2024-02-29"), Some("2023-02-29")]);
        assert_eq!(leap, vec![Some("2024-02-29".to_string()), None]);
    }

    #[test]
    fn months_and_numbers() {
        let got = eval(
            parse_month(col("x")),
            &[Some("2024-03"), Some("2024年3月"), Some("202403"), Some("2024-03-17")],
        );
        assert!(got.iter().all(|g| g.as_deref() == Some("2024-03-01")), "{got:?}");
        let n = eval(
            parse_number(col("x")),
            &[Some("1,200.50"), Some("¥300"), Some("300元"), Some("abc")],
        );
        assert_eq!(n[0].as_deref(), Some("1200.5"));
        assert_eq!(n[1].as_deref(), Some("300.0"));
        assert_eq!(n[2].as_deref(), Some("300.0"));
        assert!(n[3].is_none());
    }

    #[test]
    fn first_rows_sorted_or_not() {
        let first = |clients: &[Option<i64>], months: &[i32]| {
            let rows: Vec<IdxSize> = (2..2 + clients.len() as IdxSize).collect();
            let df = df!(
                ROW => rows,
                "__client_row" => clients,
                "month" => months,
            )
            .unwrap()
            .lazy()
            .with_column(col("month").cast(DataType::Date))
            .collect()
            .unwrap();
            let f = first_rows(&df).unwrap();
            f.idx().unwrap().iter().collect::<Vec<_>>()
        };
        // In (client, month) order: one scan.
        let sorted = first(
            &[Some(1), Some(1), Some(1), None, Some(2), Some(2)],
            &[0, 31, 31, 31, 0, 0],
        );
        assert_eq!(sorted, [Some(2), Some(3), Some(3), None, Some(6), Some(6)]);
        // Any order: the first row of each pair is still the earliest.
        let shuffled = first(
            &[Some(2), Some(1), Some(2), None, Some(1), Some(1)],
            &[0, 31, 0, 31, 0, 31],
        );
        assert_eq!(shuffled, [Some(2), Some(3), Some(2), None, Some(6), Some(3)]);
    }

    #[test]
    fn categories_normalise() {
        let got = eval(
            categorise(col("x"), TAXPAYER_TYPES),
            &[Some("小规模纳税人"), Some("General"), Some("big")],
        );
        assert_eq!(got, vec![Some("small_scale".into()), Some("general".into()), None]);
    }
}
