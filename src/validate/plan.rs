//! The plan engine: parsed columns and checks per table, run as polars expressions;
//! every row is accepted or becomes reject lines.

use polars::prelude::*;

use super::*;

pub(super) struct Check {
    pub(super) column: &'static str,
    pub(super) bad: Expr,
    pub(super) reason: String,
    /// A row number appended to the reason ("first seen at row N"), computed over all
    /// rows but turned into text only for the rejected ones.
    pub(super) row_ref: Option<Expr>,
}

pub(super) fn check(column: &'static str, bad: Expr, reason: &str) -> Check {
    Check {
        column,
        bad,
        reason: reason.to_string(),
        row_ref: None,
    }
}

/// Parsed column name during validation; the raw text keeps the canonical name.
pub(super) fn p(c: &str) -> String {
    format!("{c}__parsed")
}

pub(super) fn present(t: &RawTable, c: &str) -> bool {
    !t.absent.iter().any(|a| a == c)
}

/// Adds parsed columns and the checks on them for one table.
pub(super) struct Plan {
    pub(super) parsed: Vec<Expr>,
    /// (text column, parsing expression): parsed once per distinct value, then joined
    /// back. Exports repeat the same dates and amounts over and over, so this is far
    /// cheaper than parsing every cell, and it keeps the parsing expressions simple.
    pub(super) by_value: Vec<(&'static str, Expr)>,
    pub(super) checks: Vec<Check>,
    pub(super) outputs: Vec<(String, DataType)>,
}

impl Plan {
    pub(super) fn new() -> Self {
        Plan {
            parsed: Vec::new(),
            by_value: Vec::new(),
            checks: Vec::new(),
            outputs: Vec::new(),
        }
    }

    pub(super) fn text(&mut self, t: &RawTable, c: &'static str) {
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

    /// A list of words (services, skills): one `;`-separated lower-case list, whatever
    /// separator the firm's export used.
    pub(super) fn list(&mut self, t: &RawTable, c: &'static str) {
        let e = if present(t, c) {
            col(c)
                .str()
                .replace_all(lit(r"\s*[;；,，、|/]\s*"), lit(";"), false)
                .str()
                .to_lowercase()
        } else {
            lit(NULL).cast(DataType::String)
        };
        self.parsed.push(e.alias(p(c)));
        self.outputs.push((c.into(), DataType::String));
    }

    pub(super) fn date(&mut self, t: &RawTable, c: &'static str, required: bool) {
        self.typed(
            t,
            c,
            required,
            parse_date(col(c)),
            DataType::Date,
            "not a date (use 2024-01-05, 2024/1/5 or 2024年1月5日)",
        );
    }

    pub(super) fn number(&mut self, t: &RawTable, c: &'static str, required: bool) {
        self.typed(t, c, required, parse_number(col(c)), DataType::Float64, "not a number");
        if present(t, c) {
            self.checks.push(check(c, col(p(c)).lt(lit(0.0)), "negative value"));
        }
    }

    /// A count that may be written as yes/no words (是/否, yes/no, √/×) instead.
    pub(super) fn count_or_yes_no(&mut self, t: &RawTable, c: &'static str) {
        let words = categorise(col(c), crate::ingest::vocabulary::YES_NO).cast(DataType::Float64);
        let parsed = coalesce(&[parse_number(col(c)), words]);
        self.typed(
            t,
            c,
            false,
            parsed,
            DataType::Float64,
            "not a number (nor 是/否, yes/no)",
        );
        if present(t, c) {
            self.checks.push(check(c, col(p(c)).lt(lit(0.0)), "negative value"));
        }
    }

    pub(super) fn category(&mut self, t: &RawTable, c: &'static str, classes: &[(&str, &[&str])]) {
        let expected: Vec<&str> = classes.iter().map(|(code, _)| *code).collect();
        let reason = format!("unknown value; expected one of {}", expected.join(", "));
        self.typed(t, c, false, categorise(col(c), classes), DataType::String, &reason);
    }

    pub(super) fn typed(
        &mut self,
        t: &RawTable,
        c: &'static str,
        required: bool,
        parsed: Expr,
        dtype: DataType,
        reason: &str,
    ) {
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
pub(super) fn run_plan(
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
    let oversized = oversized(table, &df);
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
    let rejects = reject_lines(&flagged, &checks, &file, coded, &dictionaries)?;
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
    Ok((in_file_order(accepted)?, rejects))
}

/// Rows usually come out of the joins in file order; sorting 20M rows when they already
/// are costs seconds, checking costs milliseconds.
fn in_file_order(accepted: DataFrame) -> PolarsResult<DataFrame> {
    let rows = accepted.column(ROW)?.cast(&DataType::Int64)?;
    let in_order = rows
        .i64()?
        .iter()
        .try_fold(i64::MIN, |prev, v| v.filter(|&v| v >= prev))
        .is_some();
    if in_order {
        Ok(accepted)
    } else {
        accepted.sort([ROW], Default::default())
    }
}

/// Oversized cells first: they are named before anything is computed from them.
fn oversized(table: Table, df: &DataFrame) -> Vec<Check> {
    table
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
        .collect()
}

/// rejects.csv's lines for the flagged rows: file, row, column, value (decoded when the
/// column was read as codes) and reason, in row order.
fn reject_lines(
    flagged: &DataFrame,
    checks: &[Check],
    file: &str,
    coded: bool,
    dictionaries: &[(String, Vec<String>)],
) -> PolarsResult<DataFrame> {
    let mut reject_parts = Vec::new();
    for (i, c) in checks.iter().enumerate() {
        let part = flagged.clone().lazy().filter(col(format!("__bad{i}"))).select([
            lit(file.to_string()).alias("file"),
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
    for (column, dict) in dictionaries {
        rejects = decode_values(rejects, column, dict)?;
    }
    Ok(rejects)
}

/// The clients' keys (`__known`, `__start`, `__end`, `__client_row`) for every row of a
/// coded table: null where the id is not among the accepted clients.
pub(super) fn keys_by_code(keys: &DataFrame, ids: &[String], codes: &Column) -> PolarsResult<DataFrame> {
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
pub(super) fn first_rows(df: &DataFrame) -> PolarsResult<Column> {
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
pub(super) fn mark_if_sorted(df: &mut DataFrame, name: &str) -> PolarsResult<()> {
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
pub(super) const FIRST: &str = "__first";

/// Reject values of a coded column, shown as the text the codes stand for.
pub(super) fn decode_values(rejects: DataFrame, column: &str, dict: &[String]) -> PolarsResult<DataFrame> {
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
pub(super) fn shorten(value: Expr) -> Expr {
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
