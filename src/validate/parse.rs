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
    coalesce(&[ymd_to_date(part(1), part(2), part(3)), excel_serial(text)])
}

/// Excel's day numbers (45292 is 2024-01-01), as a worksheet cell not formatted as a
/// date exports them. Only 10000..=109574 (1927-05-18 to 2199-12-31): a year (2024) or
/// a compact date (20240105) is never read as one.
fn excel_serial(text: Expr) -> Expr {
    let serial = text.clone().str().contains(lit(r"^\d{5,6}(\.\d+)?$"), false);
    let value = text.cast(DataType::Float64).floor();
    let ok = serial
        .and(value.clone().gt_eq(lit(10_000.0)))
        .and(value.clone().lt_eq(lit(109_574.0)));
    // Day 25569 is 1970-01-01 (Excel counts a 29 February 1900 that never was).
    when(ok)
        .then((value - lit(25_569.0)).cast(DataType::Int32).cast(DataType::Date))
        .otherwise(lit(NULL).cast(DataType::Date))
}

/// Text -> Date of the first of the month. Accepts 2024-01, 2024/1, 2024年1月, 202401
/// and full dates.
pub fn parse_month(text: Expr) -> Expr {
    let month = r"^(\d{4})(?:[-/.年]?)第?(\d{1,2})[月期]?$";
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
    let cleaned = text.str().replace_all(lit(r"[¥￥元\s]"), lit(""), false);
    // 1.2万 is 12,000 (万元 likewise).
    let wan = cleaned.clone().str().ends_with(lit("万"));
    let scale = when(wan).then(lit(10_000.0)).otherwise(lit(1.0));
    let cleaned = cleaned
        .str()
        .replace(lit("万$"), lit(""), false)
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
        .then(value * scale)
        .otherwise(lit(NULL).cast(DataType::Float64))
}

/// Day numbers (since 1970-01-01) of the first and last dates accepted anywhere:
/// 1900-01-01 and 2200-12-31, whichever reader parsed the cell.
pub const FIRST_DAY: i32 = -25_567;
pub const LAST_DAY: i32 = 84_370;

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(values: &[&str], f: fn(Expr) -> Expr) -> Column {
        let df = df!("x" => values).expect("frame");
        df.lazy()
            .select([f(col("x")).alias("y")])
            .collect()
            .expect("parse")
            .column("y")
            .expect("y")
            .clone()
    }

    #[test]
    fn wan_amounts_and_currency() {
        let y = parsed(&["1.2万", "3万元", "¥1,200.00", "300元", "万", "1.2万5"], parse_number);
        let y: Vec<Option<f64>> = y.f64().expect("f64").iter().collect();
        assert_eq!(
            y,
            vec![Some(12_000.0), Some(30_000.0), Some(1200.0), Some(300.0), None, None]
        );
    }

    /// Parsed dates as text (2024-01-05), for comparing.
    fn days(values: &[&str], f: fn(Expr) -> Expr) -> Vec<Option<String>> {
        parsed(values, f)
            .cast(&DataType::String)
            .expect("text")
            .str()
            .expect("str")
            .iter()
            .map(|v| v.map(String::from))
            .collect()
    }

    #[test]
    fn excel_day_numbers_in_their_range_and_chinese_periods() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            days(&["45292", "45292.5", "2024", "20240105", "9999", "109575"], parse_date),
            vec![s("2024-01-01"), s("2024-01-01"), None, s("2024-01-05"), None, None]
        );
        assert_eq!(
            days(&["2024年01期", "2024年第3期", "202411", "45292"], parse_month),
            vec![s("2024-01-01"), s("2024-03-01"), s("2024-11-01"), s("2024-01-01")]
        );
    }
}
