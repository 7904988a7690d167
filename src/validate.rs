//! Validate: parses the text tables into typed ones, row by row, as polars expressions.
//! Every row either passes or goes to the rejects table with its file, row number,
//! column, value and reason, so that input rows = accepted + rejected, always.

use polars::prelude::*;
use serde::Serialize;
use thiserror::Error;

use crate::ingest::{RawInputs, RawTable, MAX_CELL_CHARS, ROW};
use crate::schema::Table;

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
        table: &'static str,
        rejected: usize,
        total: usize,
        share: f64,
        limit: f64,
        top: String,
    },
    #[error("{table}: no rows left after validation; see the rejects for why")]
    NothingLeft { table: &'static str },
    #[error("validation failed: {0}")]
    Polars(#[from] PolarsError),
}

/// Typed, accepted rows of the three tables. Absent optional columns are present as
/// all-null columns so that later stages see one schema; `available` says which are real.
#[derive(Debug, Clone)]
pub struct CleanTables {
    pub clients: DataFrame,
    pub billing: DataFrame,
    pub activity: Option<DataFrame>,
    /// `table.column` of every optional column that was absent in the input.
    pub absent: Vec<String>,
}

impl CleanTables {
    pub fn has(&self, table: Table, column: &str) -> bool {
        if table == Table::Activity && self.activity.is_none() {
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

struct Check {
    column: &'static str,
    bad: Expr,
    reason: String,
    /// A row number appended to the reason ("first seen at row N"), computed over all
    /// rows but turned into text only for the rejected ones.
    row_ref: Option<Expr>,
}

fn check(column: &'static str, bad: Expr, reason: &str) -> Check {
    Check {
        column,
        bad,
        reason: reason.to_string(),
        row_ref: None,
    }
}

/// Text -> Date. Accepts 2024-01-05, 2024/1/5, 2024.01.05, 2024年1月5日, 20240105, and
/// any of these followed by a time of day.
pub fn parse_date(text: Expr) -> Expr {
    let sep = r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T].*)?$";
    let compact = r"^(\d{4})(\d{2})(\d{2})$";
    let part = |i| {
        coalesce(&[
            text.clone().str().extract(lit(sep), i),
            text.clone().str().extract(lit(compact), i),
        ])
        .cast(DataType::Int32)
    };
    ymd_to_date(part(1), part(2), part(3))
}

/// Text -> Date of the first of the month. Accepts 2024-01, 2024/1, 2024年1月, 202401
/// and full dates.
pub fn parse_month(text: Expr) -> Expr {
    let month = r"^(\d{4})(?:[-/.年]?)(\d{1,2})月?$";
    let y = text.clone().str().extract(lit(month), 1).cast(DataType::Int32);
    let m = text.clone().str().extract(lit(month), 2).cast(DataType::Int32);
    let from_month = ymd_to_date(y, m, lit(1));
    coalesce(&[from_month, month_floor(parse_date(text))])
}

/// The first day of a date's month (without polars' month_start feature, which would
/// add a build-time cost for one line).
pub fn month_floor(date: Expr) -> Expr {
    (date.clone().cast(DataType::Int32) - (date.dt().day().cast(DataType::Int32) - lit(1))).cast(DataType::Date)
}

/// Builds a Date from integer parts, null when the parts are not a real date.
fn ymd_to_date(y: Expr, m: Expr, d: Expr) -> Expr {
    // Days from civil (H. Hinnant), valid for years >= 0; all integer arithmetic.
    let y_adj = y.clone() - when(m.clone().lt_eq(lit(2))).then(lit(1)).otherwise(lit(0));
    let era = y_adj.clone().floor_div(lit(400));
    let yoe = y_adj - era.clone() * lit(400);
    let mp = when(m.clone().gt(lit(2)))
        .then(m.clone() - lit(3))
        .otherwise(m.clone() + lit(9));
    let doy = (lit(153) * mp + lit(2)).floor_div(lit(5)) + d.clone() - lit(1);
    let doe = yoe.clone() * lit(365) + yoe.clone().floor_div(lit(4)) - yoe.floor_div(lit(100)) + doy;
    let days = era * lit(146097) + doe - lit(719468);
    let date = days.cast(DataType::Date);
    // Day 31 of February would roll over into March: the round trip catches it.
    let within = |x: Expr, lo: i32, hi: i32| x.clone().gt_eq(lit(lo)).and(x.lt_eq(lit(hi)));
    let ok = within(y.clone(), 1900, 2200)
        .and(within(m.clone(), 1, 12))
        .and(within(d.clone(), 1, 31))
        .and(date.clone().dt().month().cast(DataType::Int32).eq(m))
        .and(date.clone().dt().day().cast(DataType::Int32).eq(d));
    when(ok).then(date).otherwise(lit(NULL).cast(DataType::Date))
}

/// Text -> f64. Drops currency signs, 元 and spaces, and thousands separators where they
/// group digits in threes (1,200.50); null when what is left is not a finite number.
/// Separators anywhere else (1,2,3 or the European 1.200,50) make the cell not a number
/// rather than a number a thousand times off.
pub fn parse_number(text: Expr) -> Expr {
    let cleaned = text
        .str()
        .replace_all(lit(r"[¥￥元\s]"), lit(""), false)
        .str()
        .replace_all(lit("，"), lit(","), true);
    let shaped = cleaned.clone().str().contains(
        lit(r"^[+-]?(([0-9]+|[0-9]{1,3}(,[0-9]{3})+)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"),
        false,
    );
    let value = cleaned
        .str()
        .replace_all(lit(","), lit(""), true)
        .cast(DataType::Float64);
    when(shaped.and(value.clone().abs().lt(lit(f64::INFINITY))))
        .then(value)
        .otherwise(lit(NULL).cast(DataType::Float64))
}

/// Day numbers (since 1970-01-01) of the first and last dates accepted anywhere:
/// 1900-01-01 and 2200-12-31, whichever reader parsed the cell.
pub const FIRST_DAY: i32 = -25_567;
pub const LAST_DAY: i32 = 84_370;

fn one_of(x: &Expr, values: &[&str]) -> Expr {
    values
        .iter()
        .map(|v| x.clone().eq(lit(*v)))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false))
}

/// Normalises a categorical text column to canonical codes; null when unrecognised.
fn categorise(text: Expr, classes: &[(&str, &[&str])]) -> Expr {
    let low = text.str().to_lowercase();
    let mut chain: Option<Then> = None;
    let mut out: Option<ChainedThen> = None;
    for (code, words) in classes {
        let cond = one_of(&low, words);
        match (chain.take(), out.take()) {
            (None, None) => chain = Some(when(cond).then(lit(*code))),
            (Some(t), None) => out = Some(t.when(cond).then(lit(*code))),
            (_, Some(c)) => out = Some(c.when(cond).then(lit(*code))),
        }
    }
    let none = lit(NULL).cast(DataType::String);
    match (chain, out) {
        (_, Some(c)) => c.otherwise(none),
        (Some(t), None) => t.otherwise(none),
        (None, None) => none,
    }
}

pub const CLIENT_TYPES: &[(&str, &[&str])] = &[
    ("enterprise", &["enterprise", "company", "企业", "公司", "有限公司"]),
    (
        "individual_business",
        &[
            "individual business",
            "individual_business",
            "个体工商户",
            "个体户",
            "个体",
        ],
    ),
    ("person", &["person", "individual", "个人", "自然人"]),
];
pub const TAXPAYER_TYPES: &[(&str, &[&str])] = &[
    (
        "small_scale",
        &["small-scale", "small_scale", "small scale", "小规模纳税人", "小规模"],
    ),
    ("general", &["general", "一般纳税人", "一般"]),
];
const BOOLS: &[(&str, &[&str])] = &[
    (
        "true",
        &["true", "1", "yes", "y", "是", "国际", "international", "外资"],
    ),
    ("false", &["false", "0", "no", "n", "否", "国内", "domestic", "内资"]),
];

/// Parsed column name during validation; the raw text keeps the canonical name.
fn p(c: &str) -> String {
    format!("{c}__parsed")
}

fn present(t: &RawTable, c: &str) -> bool {
    !t.absent.iter().any(|a| a == c)
}

/// Adds parsed columns and the checks on them for one table.
struct Plan {
    parsed: Vec<Expr>,
    /// (text column, parsing expression): parsed once per distinct value, then joined
    /// back. Exports repeat the same dates and amounts over and over, so this is far
    /// cheaper than parsing every cell, and it keeps the parsing expressions simple.
    by_value: Vec<(&'static str, Expr)>,
    checks: Vec<Check>,
    outputs: Vec<(String, DataType)>,
}

impl Plan {
    fn new() -> Self {
        Plan {
            parsed: Vec::new(),
            by_value: Vec::new(),
            checks: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn text(&mut self, t: &RawTable, c: &'static str) {
        let e = if present(t, c) {
            col(c)
        } else {
            lit(NULL).cast(DataType::String)
        };
        self.parsed.push(e.alias(p(c)));
        // Coded text (the compact reader's) stays coded.
        let dtype = match t.dictionary(c) {
            Some(_) => DataType::UInt32,
            None => DataType::String,
        };
        self.outputs.push((c.into(), dtype));
    }

    fn date(&mut self, t: &RawTable, c: &'static str, required: bool) {
        self.typed(
            t,
            c,
            required,
            parse_date(col(c)),
            DataType::Date,
            "not a date (use 2024-01-05, 2024/1/5 or 2024年1月5日)",
        );
    }

    fn number(&mut self, t: &RawTable, c: &'static str, required: bool) {
        self.typed(t, c, required, parse_number(col(c)), DataType::Float64, "not a number");
        if present(t, c) {
            self.checks.push(check(c, col(p(c)).lt(lit(0.0)), "negative value"));
        }
    }

    fn category(&mut self, t: &RawTable, c: &'static str, classes: &[(&str, &[&str])]) {
        let expected: Vec<&str> = classes.iter().map(|(code, _)| *code).collect();
        let reason = format!("unknown value; expected one of {}", expected.join(", "));
        self.typed(t, c, false, categorise(col(c), classes), DataType::String, &reason);
    }

    fn typed(&mut self, t: &RawTable, c: &'static str, required: bool, parsed: Expr, dtype: DataType, reason: &str) {
        // Dates and numbers the reader already parsed (text categories still need mapping).
        let already = dtype != DataType::String && t.df.column(c).map(|col| col.dtype() == &dtype).unwrap_or(false);
        if present(t, c) && already {
            // Parsed by the reader (ingest's typed path): nothing left to parse, but the
            // same rules as for text cells: finite numbers, dates in 1900..=2200.
            self.parsed.push(col(c).alias(p(c)));
            if dtype == DataType::Float64 {
                self.checks
                    .push(check(c, col(c).abs().lt(lit(f64::INFINITY)).not(), reason));
            }
            if dtype == DataType::Date {
                let day = col(c).cast(DataType::Int32);
                self.checks.push(check(
                    c,
                    day.clone().lt(lit(FIRST_DAY)).or(day.gt(lit(LAST_DAY))),
                    reason,
                ));
            }
            if required {
                self.checks.push(check(c, col(c).is_null(), "required value is empty"));
            }
        } else if present(t, c) {
            self.by_value.push((c, parsed.alias(p(c))));
            self.checks
                .push(check(c, col(c).is_not_null().and(col(p(c)).is_null()), reason));
            if required {
                self.checks.push(check(c, col(c).is_null(), "required value is empty"));
            }
        } else {
            self.parsed.push(lit(NULL).cast(dtype.clone()).alias(p(c)));
        }
        self.outputs.push((c.into(), dtype));
    }
}

/// Runs the plan: returns accepted typed rows and reject lines.
/// Takes the raw table by value: its columns are released as soon as the checks have
/// been evaluated, not kept beside the validated copy.
fn run_plan(
    t: RawTable,
    plan: Plan,
    extra: Vec<Check>,
    clients: Option<&DataFrame>,
) -> PolarsResult<(DataFrame, DataFrame)> {
    let RawTable {
        table,
        mut df,
        file,
        dictionaries,
        ..
    } = t;
    let has_clients = clients.is_some();
    // Oversized cells first: they are named before anything is computed from them.
    let oversized: Vec<Check> = table
        .columns()
        .iter()
        .filter(|c| df.column(c).map(|x| x.dtype() == &DataType::String).unwrap_or(false))
        .map(|&c| {
            check(
                c,
                col(c).str().len_chars().gt(lit(MAX_CELL_CHARS as u32)),
                "cell longer than 32,767 characters (Excel's limit for one cell); shorten it in the export",
            )
        })
        .collect();
    let ids = dictionaries
        .iter()
        .find(|(c, _)| c == "client_id")
        .map(|(_, d)| d.as_slice());
    let coded = ids.is_some();
    let mut join = None;
    match (clients, ids) {
        // Coded ids: each distinct id is looked up once, then rows take their client's
        // keys by code. No join over the rows, and no copy of them.
        (Some(keys), Some(ids)) => {
            let gathered = keys_by_code(keys, ids, df.column("client_id")?)?;
            df.hstack_mut(gathered.columns())?;
            if table == Table::Activity {
                let first = first_rows(&df)?;
                df.with_column(first)?;
            }
        }
        (Some(keys), None) => {
            join = Some(keys.clone().lazy().select([
                col("__fold"),
                col("__known"),
                col("__start"),
                col("__end"),
                col("__client_row"),
            ]))
        }
        _ => {}
    }
    let mut lf = df.clone().lazy();
    for (c, parse) in plan.by_value {
        let distinct = df
            .clone()
            .lazy()
            .select([col(c)])
            .unique(None, UniqueKeepStrategy::Any)
            .with_column(parse);
        lf = lf.left_join(distinct, col(c), col(c));
    }
    let mut lf = lf.with_columns(plan.parsed);
    if let Some(join) = join {
        lf = lf.left_join(join, col("client_id").str().to_uppercase(), col("__fold"));
    }
    let checks: Vec<Check> = oversized.into_iter().chain(plan.checks).chain(extra).collect();
    // Reasons are computed beside the flags, before any filtering: a reason that looks at
    // other rows (the first row of a duplicate) must see them all.
    let mut flags = Vec::new();
    for (i, c) in checks.iter().enumerate() {
        flags.push(c.bad.clone().fill_null(lit(false)).alias(format!("__bad{i}")));
        if let Some(r) = &c.row_ref {
            flags.push(r.clone().alias(format!("__ref{i}")));
        }
    }
    drop(df);
    let flagged = lf.with_columns(flags).collect()?;
    let mut reject_parts = Vec::new();
    for (i, c) in checks.iter().enumerate() {
        let part = flagged.clone().lazy().filter(col(format!("__bad{i}"))).select([
            lit(file.clone()).alias("file"),
            col(ROW).cast(DataType::Int64).alias("row"),
            lit(c.column).alias("column"),
            shorten(
                match c.column {
                    // The compact reader reads only 2024-01 into a month: show it that way.
                    "month" if coded => col(c.column).dt().to_string("%Y-%m"),
                    _ => col(c.column).cast(DataType::String),
                }
                .fill_null(lit("")),
            )
            .alias("value"),
            match c.row_ref {
                Some(_) => concat_str(
                    [lit(c.reason.clone()), col(format!("__ref{i}")).cast(DataType::String)],
                    "",
                    true,
                ),
                None => lit(c.reason.clone()),
            }
            .alias("reason"),
        ]);
        reject_parts.push(part);
    }
    let mut rejects = if reject_parts.is_empty() {
        empty_rejects()
    } else {
        // Joins do not promise row order: sort so that rejects.csv is reproducible.
        concat(reject_parts, UnionArgs::default())?
            .sort(
                ["row", "column"],
                SortMultipleOptions::default().with_maintain_order(true),
            )
            .collect()?
    };
    for (column, dict) in &dictionaries {
        rejects = decode_values(rejects, column, dict)?;
    }
    let any_bad = (0..checks.len())
        .map(|i| col(format!("__bad{i}")))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false));
    let mut outputs = vec![col(ROW)];
    outputs.extend(
        plan.outputs
            .iter()
            // Later stages key rows by their client's row; coded ids would only mislead.
            .filter(|(c, _)| !(ids.is_some() && has_clients && c == "client_id"))
            .map(|(c, dt)| col(p(c)).cast(dt.clone()).alias(c.as_str())),
    );
    if has_clients {
        outputs.push(col("__client_row").cast(DataType::UInt32).alias(CLIENT_ROW));
    }
    // A filter copies every column even when it keeps every row.
    let lf = if rejects.height() == 0 {
        flagged.lazy()
    } else {
        flagged.lazy().filter(any_bad.not())
    };
    let mut accepted = lf.select(outputs).collect()?;
    if has_clients {
        mark_if_sorted(&mut accepted, CLIENT_ROW)?;
    }
    // Rows usually come out of the joins in file order; sorting 20M rows when they
    // already are costs seconds, checking costs milliseconds.
    let rows = accepted.column(ROW)?.cast(&DataType::Int64)?;
    let in_order = rows
        .i64()?
        .iter()
        .try_fold(i64::MIN, |prev, v| v.filter(|&v| v >= prev))
        .is_some();
    let accepted = if in_order {
        accepted
    } else {
        accepted.sort([ROW], Default::default())?
    };
    Ok((accepted, rejects))
}

/// The clients' keys (`__known`, `__start`, `__end`, `__client_row`) for every row of a
/// coded table: null where the id is not among the accepted clients.
fn keys_by_code(keys: &DataFrame, ids: &[String], codes: &Column) -> PolarsResult<DataFrame> {
    let known = keys.column("__fold")?.str()?;
    let mut at: std::collections::HashMap<&str, IdxSize, foldhash::fast::RandomState> =
        std::collections::HashMap::with_capacity_and_hasher(known.len(), Default::default());
    for (i, id) in known.iter().enumerate() {
        if let Some(id) = id {
            at.entry(id).or_insert(i as IdxSize);
        }
    }
    let by_code: IdxCa = ids
        .iter()
        .map(|id| {
            if id.bytes().any(|b| b.is_ascii_lowercase()) || !id.is_ascii() {
                at.get(id.to_uppercase().as_str()).copied()
            } else {
                at.get(id.as_str()).copied()
            }
        })
        .collect();
    let per_code = keys
        .select(["__known", "__start", "__end", "__client_row"])?
        .take(&by_code)?;
    let codes = codes.cast(&IDX_DTYPE)?;
    per_code.take(codes.idx()?)
}

/// For each activity row, the first row of its (client, month): its own row unless it
/// repeats one. Work logs usually come sorted by client and month, which a single scan
/// sees; otherwise the keys are sorted. Null where the client or month is unknown.
fn first_rows(df: &DataFrame) -> PolarsResult<Column> {
    use rayon::prelude::*;
    const NONE: i64 = i64::MIN;
    let rows = df.column(ROW)?.cast(&IDX_DTYPE)?;
    let rows = rows.idx()?;
    let client = df.column("__client_row")?.cast(&DataType::Int64)?;
    let month = df.column("month")?.cast(&DataType::Int32)?;
    // One integer per (client, month): rows are below 2^32, day numbers well within 2^20.
    let keys: Vec<i64> = client
        .i64()?
        .iter()
        .zip(month.i32()?.iter())
        .map(|(c, m)| match (c, m) {
            (Some(c), Some(m)) => (c << 21) + (m as i64 + (1 << 20)),
            _ => NONE,
        })
        .collect();
    let rows: Vec<IdxSize> = rows.into_no_null_iter().collect();
    let row = |i: usize| rows[i];
    let mut first: Vec<IdxSize> = vec![0; keys.len()];
    let mut run = (NONE, 0);
    let mut visit = |i: usize| {
        if keys[i] != run.0 {
            run = (keys[i], row(i));
        }
        first[i] = run.1;
    };
    let sorted = keys
        .iter()
        .filter(|&&k| k != NONE)
        .try_fold(NONE, |prev, &k| (k >= prev).then_some(k))
        .is_some();
    if sorted {
        (0..keys.len()).filter(|&i| keys[i] != NONE).for_each(&mut visit);
    } else {
        let mut order: Vec<u32> = (0..keys.len() as u32).filter(|&i| keys[i as usize] != NONE).collect();
        order.par_sort_unstable_by_key(|&i| (keys[i as usize], i));
        order.into_iter().for_each(|i| visit(i as usize));
    }
    let first = if keys.contains(&NONE) {
        first
            .into_iter()
            .zip(&keys)
            .map(|(f, &k)| (k != NONE).then_some(f))
            .collect::<IdxCa>()
            .with_name(FIRST.into())
    } else {
        IdxCa::from_vec(FIRST.into(), first)
    };
    Ok(first.into_column())
}

/// Flags a column as sorted when it is, so that grouping by it takes polars' sorted
/// path (groups as slices, no hashing). Files listed client by client get this.
fn mark_if_sorted(df: &mut DataFrame, name: &str) -> PolarsResult<()> {
    let column = df.column(name)?;
    let sorted = column
        .u32()?
        .iter()
        .try_fold(0u32, |prev, v| v.filter(|&v| v >= prev))
        .is_some();
    if sorted {
        let mut column = column.clone();
        column.set_sorted_flag(polars::series::IsSorted::Ascending);
        df.with_column(column)?;
    }
    Ok(())
}

/// Column of [`first_rows`].
const FIRST: &str = "__first";

/// Reject values of a coded column, shown as the text the codes stand for.
fn decode_values(rejects: DataFrame, column: &str, dict: &[String]) -> PolarsResult<DataFrame> {
    let columns = rejects.column("column")?.str()?;
    let values = rejects.column("value")?.str()?;
    let decoded: StringChunked = columns
        .iter()
        .zip(values.iter())
        .map(|(c, v)| match (c, v) {
            (Some(c), Some(v)) if c == column && !v.is_empty() => v
                .parse::<usize>()
                .ok()
                .and_then(|i| dict.get(i))
                .map(String::as_str)
                .or(Some(v)),
            (_, v) => v,
        })
        .collect();
    let mut rejects = rejects;
    rejects.with_column(decoded.with_name("value".into()).into_column())?;
    Ok(rejects)
}

/// A reject's value as shown: the first 200 characters of a longer cell, and its length.
fn shorten(value: Expr) -> Expr {
    let n = value.clone().str().len_chars();
    when(n.clone().gt(lit(200u32)))
        .then(concat_str(
            [
                value.clone().str().slice(lit(0), lit(200)),
                lit("… ("),
                n.cast(DataType::String),
                lit(" characters)"),
            ],
            "",
            false,
        ))
        .otherwise(value)
}

pub fn empty_rejects() -> DataFrame {
    // Five typed empty columns; cannot fail.
    DataFrame::new_infer_height(vec![
        Column::new_empty("file".into(), &DataType::String),
        Column::new_empty("row".into(), &DataType::Int64),
        Column::new_empty("column".into(), &DataType::String),
        Column::new_empty("value".into(), &DataType::String),
        Column::new_empty("reason".into(), &DataType::String),
    ])
    .expect("static schema")
}

fn clients_plan(t: &RawTable) -> PolarsResult<(Plan, Vec<Check>)> {
    let mut plan = Plan::new();
    plan.text(t, "client_id");
    for c in ["name", "industry", "province", "city", "accountant"] {
        plan.text(t, c);
    }
    plan.category(t, "client_type", CLIENT_TYPES);
    plan.category(t, "taxpayer_type", TAXPAYER_TYPES);
    plan.category(t, "international", BOOLS);
    plan.number(t, "employees", false);
    plan.number(t, "annual_revenue", false);
    plan.number(t, "monthly_fee", false);
    plan.date(t, "contract_start", false);
    plan.date(t, "contract_end", false);
    // Services: one list, whatever separator the firm's export used.
    if present(t, "services") {
        plan.parsed.push(
            col("services")
                .str()
                .replace_all(lit(r"\s*[;；,，、|/]\s*"), lit(";"), false)
                .str()
                .to_lowercase()
                .alias(p("services")),
        );
    } else {
        plan.parsed.push(lit(NULL).cast(DataType::String).alias(p("services")));
    }
    plan.outputs.push(("services".into(), DataType::String));

    let mut extra = vec![check(
        "client_id",
        col("client_id").is_null(),
        "required value is empty",
    )];
    // Ids that differ only in case are one client (ingest has already folded full-width
    // characters): C001 and c001 are the same company typed twice.
    let first = col(ROW).min().over([col("client_id").str().to_uppercase()])?;
    extra.push(Check {
        column: "client_id",
        bad: col("client_id").is_not_null().and(col(ROW).neq(first.clone())),
        reason: "duplicate client_id; first seen at row ".into(),
        row_ref: Some(first),
    });
    if present(t, "contract_start") && present(t, "contract_end") {
        extra.push(check(
            "contract_end",
            col(p("contract_end")).lt(col(p("contract_start"))),
            "contract_end is before contract_start",
        ));
    }
    Ok((plan, extra))
}

/// On accepted billing and activity rows: the row of their client in the clients file
/// (its `__row`), an integer key that later stages group by instead of the text id.
pub const CLIENT_ROW: &str = "__client";

/// The accepted clients' ids and contract months, joined onto billing and activity rows.
fn client_keys(clients: &DataFrame) -> PolarsResult<DataFrame> {
    clients
        .clone()
        .lazy()
        .select([
            col("client_id"),
            col("client_id").str().to_uppercase().alias("__fold"),
            lit(true).alias("__known"),
            month_floor(col("contract_start")).alias("__start"),
            month_floor(col("contract_end")).alias("__end"),
            // The client's row in its file: a number to key client-months by.
            col(ROW).cast(DataType::Int64).alias("__client_row"),
        ])
        .collect()
}

fn unknown_client() -> Check {
    check(
        "client_id",
        col("client_id").is_not_null().and(col("__known").is_null()),
        "client_id not found among the accepted clients",
    )
}

/// A date after the last day a recorded event can have (the day of the run, or a later
/// configured snapshot): a typo like 2099-01-05 that would otherwise become the snapshot
/// of every client.
fn future(c: &'static str, latest: i32, what: &str) -> Check {
    check(
        c,
        col(p(c))
            .cast(DataType::Int32)
            .gt(lit(latest))
            .and(col(p(c)).cast(DataType::Int32).lt_eq(lit(LAST_DAY))),
        &format!("{what} in the future (after {}): a typo?", day_text(latest)),
    )
}

fn day_text(day: i32) -> String {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(day as i64)))
        .map(|d| d.to_string())
        .unwrap_or_default()
}

fn billing_plan(t: &RawTable, latest: i32) -> PolarsResult<(Plan, Vec<Check>)> {
    let mut plan = Plan::new();
    plan.text(t, "client_id");
    plan.text(t, "service");
    plan.date(t, "invoice_date", true);
    plan.number(t, "amount", true);
    plan.date(t, "due_date", false);
    plan.date(t, "paid_date", false);
    let extra = vec![
        check("client_id", col("client_id").is_null(), "required value is empty"),
        unknown_client(),
        future("invoice_date", latest, "invoice date"),
        future("paid_date", latest, "payment date"),
    ];
    Ok((plan, extra))
}

fn activity_plan(t: &RawTable, latest: i32) -> PolarsResult<(Plan, Vec<Check>)> {
    let mut plan = Plan::new();
    plan.text(t, "client_id");
    plan.typed(
        t,
        "month",
        true,
        parse_month(col("month")),
        DataType::Date,
        "not a month (use 2024-01 or 2024年1月)",
    );
    for c in ["vouchers", "filings", "hours", "tickets", "late_documents"] {
        plan.number(t, c, false);
    }
    let month = col(p("month"));
    // One integer per (client, month): grouping 20M+ rows by it is several times faster
    // than by the text id and the date. Months are 1900..2200, so the offset keeps the
    // day numbers positive and below the multiplier. Rows of unknown clients have no key;
    // they are rejected as unknown.
    let key = col("__client_row") * lit(200_000i64)
        + month.clone().cast(DataType::Int32).cast(DataType::Int64)
        + lit(30_000i64);
    // Coded tables have each row's first (client, month) row already (`first_rows`).
    let first = match t.dictionary("client_id") {
        Some(_) => col(FIRST),
        None => col(ROW).min().over([key.clone()])?,
    };
    let extra = vec![
        check("client_id", col("client_id").is_null(), "required value is empty"),
        unknown_client(),
        future("month", latest, "work month"),
        check(
            "month",
            month.clone().lt(col("__start")).or(month.clone().gt(col("__end"))),
            "month outside the client's contract (contract_start..contract_end)",
        ),
        Check {
            column: "month",
            bad: key.is_not_null().and(col(ROW).neq(first.clone())),
            reason: "duplicate month for this client; first seen at row ".into(),
            row_ref: Some(first),
        },
    ];
    Ok((plan, extra))
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
    let RawInputs {
        clients: raw_clients,
        billing: raw_billing,
        activity: raw_activity,
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
                table: table.name(),
                rejected: rejected_rows,
                total: input,
                share: share * 100.0,
                limit: settings.max_reject_share * 100.0,
                top: top_reasons(&rejects, 3),
            });
        }
        if accepted.height() == 0 {
            return Err(ValidateError::NothingLeft { table: table.name() });
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
    let activity = match raw_activity {
        Some(a) => {
            let plan = activity_plan(&a, latest);
            match step(a, plan, Some(&keys), &mut all_rejects) {
                Ok(a) => Some(a),
                Err(e) => return Err(fail(e, &all_rejects)),
            }
        }
        None => None,
    };
    let billing = match fill_due_dates(billing, settings.payment_terms_days) {
        Ok(b) => b,
        Err(e) => return Err(fail(e.into(), &all_rejects)),
    };
    Ok(Validated {
        tables: CleanTables {
            clients,
            billing,
            activity,
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
        let rows = if k == 1 { "row" } else { "rows" };
        items.push(format!(
            "{} {}: {} ({k} {rows})",
            f.get(i).unwrap_or(""),
            c.get(i).unwrap_or(""),
            r.get(i).unwrap_or("")
        ));
    }
    if items.is_empty() {
        "none".into()
    } else {
        items.join("; ")
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
