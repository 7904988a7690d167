//! Parsers of the text cells: dates, months and numbers as Excel exports write them.

use polars::prelude::*;

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
pub(super) fn ymd_to_date(y: Expr, m: Expr, d: Expr) -> Expr {
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
