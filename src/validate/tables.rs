//! The plan of each input table: its columns, parsers and checks.

use polars::prelude::*;

use super::*;

pub(super) fn clients_plan(t: &RawTable) -> PolarsResult<(Plan, Vec<Check>)> {
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
    plan.list(t, "services");

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
pub(super) fn client_keys(clients: &DataFrame) -> PolarsResult<DataFrame> {
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

pub(super) fn unknown_client() -> Check {
    check(
        "client_id",
        col("client_id").is_not_null().and(col("__known").is_null()),
        "client_id not found among the accepted clients",
    )
}

/// A date after the last day a recorded event can have (the day of the run, or a later
/// configured snapshot): a typo like 2099-01-05 that would otherwise become the snapshot
/// of every client.
pub(super) fn future(c: &'static str, latest: i32, what: &str) -> Check {
    check(
        c,
        col(p(c))
            .cast(DataType::Int32)
            .gt(lit(latest))
            .and(col(p(c)).cast(DataType::Int32).lt_eq(lit(LAST_DAY))),
        &format!("{what} in the future (after {}): a typo?", day_text(latest)),
    )
}

pub(super) fn day_text(day: i32) -> String {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(day as i64)))
        .map(|d| d.to_string())
        .unwrap_or_default()
}

pub(super) fn billing_plan(t: &RawTable, latest: i32) -> PolarsResult<(Plan, Vec<Check>)> {
    let mut plan = Plan::new();
    plan.text(t, "client_id");
    plan.text(t, "service");
    plan.date(t, "invoice_date", true);
    plan.number(t, "amount", true);
    plan.date(t, "due_date", false);
    plan.date(t, "paid_date", false);
    let mut extra = vec![
        check("client_id", col("client_id").is_null(), "required value is empty"),
        unknown_client(),
        future("invoice_date", latest, "invoice date"),
    ];
    // A billing export without payment dates has no payment to check.
    if super::plan::present(t, "paid_date") {
        extra.push(future("paid_date", latest, "payment date"));
    }
    Ok((plan, extra))
}

pub(super) fn activity_plan(t: &RawTable, latest: i32) -> PolarsResult<(Plan, Vec<Check>)> {
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
    for c in ["vouchers", "filings", "hours", "tickets"] {
        plan.number(t, c, false);
    }
    // 资料是否延迟 is often written 是/否: a yes is one late delivery that month.
    plan.count_or_yes_no(t, "late_documents");
    plan.text(t, "accountant");
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

/// The firm's accountants: one row each, a grade, a monthly capacity, skills.
pub(super) fn staff_plan(t: &RawTable) -> PolarsResult<(Plan, Vec<Check>)> {
    let mut plan = Plan::new();
    plan.text(t, "accountant");
    plan.text(t, "team");
    plan.category(t, "grade", GRADES);
    plan.number(t, "capacity_hours", false);
    plan.category(t, "active", ACTIVE);
    plan.list(t, "skills");
    let first = col(ROW).min().over([col("accountant").str().to_uppercase()])?;
    let extra = vec![
        check("accountant", col("accountant").is_null(), "required value is empty"),
        Check {
            column: "accountant",
            bad: col("accountant").is_not_null().and(col(ROW).neq(first.clone())),
            reason: "duplicate accountant; first seen at row ".into(),
            row_ref: Some(first),
        },
    ];
    Ok((plan, extra))
}

/// Contacts with clients: a known client and a date not in the future.
pub(super) fn contacts_plan(t: &RawTable, latest: i32) -> PolarsResult<(Plan, Vec<Check>)> {
    let mut plan = Plan::new();
    plan.text(t, "client_id");
    plan.date(t, "date", true);
    plan.text(t, "channel");
    plan.text(t, "note");
    let extra = vec![
        check("client_id", col("client_id").is_null(), "required value is empty"),
        unknown_client(),
        future("date", latest, "contact date"),
    ];
    Ok((plan, extra))
}
