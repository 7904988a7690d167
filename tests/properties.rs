//! Property tests on random input: mutated files never panic or hang and every row is
//! accounted for; the compact, typed and text readers decide every cell alike; number
//! and date parsing agree with a plain reference implementation of the documented rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use clientseg::config::{Encoding, RawConfig, Settings, Table};
use clientseg::ingest::{self, RawInputs};
use clientseg::validate;
use polars::prelude::*;
use proptest::prelude::*;

const CLIENTS: &str = "client_id,name,contract_start,contract_end,monthly_fee
C1,One,2023-01-01,,300
C2,Two,2023-06-01,2024-12-31,200
C3,Three,2022-01-01,,500
C4,Four,2021-03-15,,1200
";

fn billing_rows() -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (i, id) in ["C1", "C2", "C3", "C4"].iter().enumerate() {
        for m in 1..=6 {
            rows.push(vec![
                id.to_string(),
                format!("2024-{m:02}-05"),
                format!("{}", 200 + 100 * i),
                "bookkeeping".into(),
                format!("2024-{m:02}-20"),
                if m % 2 == 0 {
                    format!("2024-{m:02}-18")
                } else {
                    String::new()
                },
            ]);
        }
    }
    rows
}

fn activity_rows() -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for id in ["C1", "C2", "C3", "C4"] {
        for m in 1..=6 {
            rows.push(vec![
                id.to_string(),
                format!("2024-{m:02}"),
                format!("{}", 10 + m),
                "2".into(),
                format!("{}.5", m),
                "1".into(),
                "0".into(),
            ]);
        }
    }
    rows
}

const BILLING_HEADER: &str = "client_id,invoice_date,amount,service,due_date,paid_date";
const ACTIVITY_HEADER: &str = "client_id,month,vouchers,filings,hours,tickets,late_documents";

fn csv(header: &str, rows: &[Vec<String>]) -> String {
    let mut s = format!("{header}\n");
    for r in rows {
        s.push_str(&r.join(","));
        s.push('\n');
    }
    s
}

fn settings(dir: &Path) -> Settings {
    let mut raw = RawConfig::default();
    raw.input.max_reject_share = Some(1.0);
    Settings::from_raw(&raw, dir).unwrap()
}

/// Reads the three files (with the compact reader where it applies, or only the general
/// ones) and validates them, on a thread that must finish within a minute.
fn read_and_validate(dir: &Path, compact: bool) -> Result<validate::Validated, String> {
    let dir = dir.to_path_buf();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let none = BTreeMap::new();
        let read = |table: Table, file: &str| {
            let path = dir.join(file);
            if compact {
                ingest::read_table(table, &path, &none, Encoding::Auto)
            } else {
                ingest::read_table_general(table, &path, &none, Encoding::Auto)
            }
        };
        let result = (|| -> Result<validate::Validated, String> {
            let inputs = RawInputs {
                clients: read(Table::Clients, "clients.csv").map_err(|e| e.to_string())?,
                billing: read(Table::Billing, "billing.csv").map_err(|e| e.to_string())?,
                optional: vec![read(Table::Activity, "activity.csv").map_err(|e| e.to_string())?],
                files: Vec::new(),
            };
            validate::validate(inputs, &settings(&dir).validation, validate::latest_event_day(None))
                .map_err(|(e, _)| e.to_string())
        })();
        let _ = tx.send(result);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("reading and validating took over a minute"),
        // The thread panicked: the panic message is already printed.
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("reading or validating panicked"),
    }
}

fn every_row_counted(v: &validate::Validated) {
    for c in &v.counts {
        assert_eq!(c.input, c.accepted + c.rejected, "{c:?}");
    }
    let files = v.rejects.column("file").unwrap().str().unwrap().clone();
    let rows = v.rejects.column("row").unwrap().i64().unwrap().clone();
    for c in &v.counts {
        let name = format!("{}.csv", c.table.name());
        let distinct: BTreeSet<i64> = files
            .iter()
            .zip(rows.iter())
            .filter(|(f, _)| *f == Some(name.as_str()))
            .filter_map(|(_, r)| r)
            .collect();
        assert_eq!(distinct.len(), c.rejected, "{name}");
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace cell (row, col) with a value.
    Cell(usize, usize, String),
    /// Put a cell in quotes (a quote inside it is doubled).
    Quote(usize, usize),
    /// Cut the file at this share of its length.
    Truncate(f64),
    /// Flip the bits of one byte (at this share of the length).
    Flip(f64, u8),
}

fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("1e400".to_string()),
        Just("-5".to_string()),
        Just("1,2,3".to_string()),
        Just("1.200,50".to_string()),
        Just("0001-01-01".to_string()),
        Just("2099-01-05".to_string()),
        Just("2024-02-30".to_string()),
        Just("2024年1月5日".to_string()),
        Just("=cmd|' /C calc'!A0".to_string()),
        Just("C9".to_string()),
        Just("c1".to_string()),
        Just("Ｃ２".to_string()),
        Just("\"".to_string()),
        "\\PC{0,12}",
        "[0-9,.\\-]{0,8}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (0usize..30, 0usize..7, hostile_value()).prop_map(|(r, c, v)| Mutation::Cell(r, c, v)),
        1 => (0usize..30, 0usize..7).prop_map(|(r, c)| Mutation::Quote(r, c)),
        1 => (0.0f64..1.0).prop_map(Mutation::Truncate),
        1 => (0.0f64..1.0, 1u8..=255).prop_map(|(p, b)| Mutation::Flip(p, b)),
    ]
}

fn apply(header: &str, mut rows: Vec<Vec<String>>, muts: &[Mutation]) -> Vec<u8> {
    let mut tail: Vec<&Mutation> = Vec::new();
    for m in muts {
        match m {
            Mutation::Cell(r, c, v) => {
                let r = r % rows.len();
                let c = c % rows[r].len();
                rows[r][c] = v.clone();
            }
            Mutation::Quote(r, c) => {
                let r = r % rows.len();
                let c = c % rows[r].len();
                rows[r][c] = format!("\"{}\"", rows[r][c].replace('"', "\"\""));
            }
            other => tail.push(other),
        }
    }
    let mut bytes = csv(header, &rows).into_bytes();
    for m in tail {
        match m {
            Mutation::Truncate(share) => {
                let at = (bytes.len() as f64 * share) as usize;
                bytes.truncate(at.max(1));
            }
            Mutation::Flip(share, bits) => {
                let at = ((bytes.len() as f64 * share) as usize).min(bytes.len() - 1);
                bytes[at] ^= bits;
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Mutated billing and activity files: a clear error or a validation in which every
    /// input row is accepted or rejected, never a panic or a hang.
    #[test]
    fn mutated_files_never_panic_and_every_row_is_counted(
        billing in proptest::collection::vec(mutation(), 0..5),
        activity in proptest::collection::vec(mutation(), 0..5),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clients.csv"), CLIENTS).unwrap();
        std::fs::write(dir.path().join("billing.csv"), apply(BILLING_HEADER, billing_rows(), &billing)).unwrap();
        std::fs::write(dir.path().join("activity.csv"), apply(ACTIVITY_HEADER, activity_rows(), &activity)).unwrap();
        match read_and_validate(dir.path(), true) {
            Ok(v) => every_row_counted(&v),
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    /// The same plain cells through the compact reader, the typed CSV reader and the text
    /// reader (forced by one extra row in another date form): the same rows rejected, in
    /// the same columns, for the same reasons.
    #[test]
    fn the_three_readers_decide_every_cell_alike(
        cells in proptest::collection::vec((0usize..24, 1usize..6, plain_value()), 0..8),
    ) {
        let mut rows = billing_rows();
        for (r, c, v) in &cells {
            rows[*r][*c] = v.clone();
        }
        let decisions = |extra: bool, compact: bool| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("clients.csv"), CLIENTS).unwrap();
            std::fs::write(dir.path().join("activity.csv"), csv(ACTIVITY_HEADER, &activity_rows())).unwrap();
            let mut rows = rows.clone();
            if extra {
                rows.push(vec!["C1".into(), "2024年7月5日".into(), "1".into(), String::new(), String::new(), String::new()]);
            }
            std::fs::write(dir.path().join("billing.csv"), csv(BILLING_HEADER, &rows)).unwrap();
            let v = read_and_validate(dir.path(), compact).expect("valid files");
            every_row_counted(&v);
            let r = &v.rejects;
            let col = |n: &str| r.column(n).unwrap().cast(&DataType::String).unwrap().str().unwrap().clone();
            let (f, row, c, why) = (col("file"), col("row"), col("column"), col("reason"));
            let last = (rows.len() + 1).to_string();
            (0..r.height())
                .filter(|&i| !(extra && f.get(i) == Some("billing.csv") && row.get(i) == Some(last.as_str())))
                .map(|i| format!("{}:{}:{}:{}", f.get(i).unwrap_or(""), row.get(i).unwrap_or(""), c.get(i).unwrap_or(""), why.get(i).unwrap_or("")))
                .collect::<BTreeSet<String>>()
        };
        let compact = decisions(false, true);
        let typed = decisions(false, false);
        let text = decisions(true, false);
        prop_assert_eq!(&compact, &typed);
        prop_assert_eq!(&compact, &text);
    }

    /// parse_number against the documented rule, written out by hand.
    #[test]
    fn numbers_parse_as_documented(texts in proptest::collection::vec(number_like(), 1..60)) {
        let got = eval_f64(validate::parse_number(col("x")), &texts);
        for (t, g) in texts.iter().zip(got) {
            let want = reference_number(t);
            prop_assert!(
                g.map(f64::to_bits) == want.map(f64::to_bits),
                "{t:?}: parse_number {g:?}, reference {want:?}"
            );
        }
    }

    /// parse_date against the documented rule, written out by hand.
    #[test]
    fn dates_parse_as_documented(texts in proptest::collection::vec(date_like(), 1..60)) {
        let got = eval_days(validate::parse_date(col("x")), &texts);
        for (t, g) in texts.iter().zip(got) {
            let want = reference_date(t);
            prop_assert_eq!(g, want, "{:?}", t);
        }
    }
}

/// Cells a plain export can hold, hostile ones included.
fn plain_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0001-01-01".to_string()),
        Just("1899-12-31".to_string()),
        Just("2200-12-31".to_string()),
        Just("2201-01-01".to_string()),
        Just("2099-01-05".to_string()),
        Just("2024-02-29".to_string()),
        Just("-50".to_string()),
        Just("1200.50".to_string()),
        Just("0".to_string()),
        Just("C9".to_string()),
        Just("c2".to_string()),
        "[0-9]{1,6}",
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]",
    ]
}

fn number_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-+]?[0-9]{0,4}([,，][0-9]{0,4}){0,3}(\\.[0-9]{0,3})?([eE][-+]?[0-9]{1,3})?",
        "[¥￥]?[ ]?[0-9,.]{1,9}[元]?",
        "[-+]?(inf|NaN|nan|infinity)",
        "[0-9]{0,3}(\\.[0-9]{0,2})?万[元]?[0-9]?",
        "\\PC{0,8}",
    ]
}

fn date_like() -> impl Strategy<Value = String> {
    let sep1 = prop_oneof![Just("-"), Just("/"), Just("."), Just("年"), Just(""), Just(":")];
    let sep2 = prop_oneof![Just("-"), Just("/"), Just("."), Just("月"), Just("")];
    let tail = prop_oneof![
        Just(""),
        Just("日"),
        Just(" 13:00"),
        Just("T08:00:00"),
        Just("x"),
        Just(" ")
    ];
    prop_oneof![
        4 => (1800u32..2300, 0u32..14, 0u32..33, sep1, sep2, tail, any::<bool>()).prop_map(
            |(y, m, d, a, b, t, pad)| if pad {
                format!("{y}{a}{m:02}{b}{d:02}{t}")
            } else {
                format!("{y}{a}{m}{b}{d}{t}")
            }
        ),
        1 => "[0-9]{4,7}(\\.[0-9]{0,3})?",
        1 => "\\PC{0,12}",
    ]
}

fn eval_column(expr: Expr, texts: &[String]) -> Column {
    let df = df!("x" => texts).unwrap();
    let out = df.lazy().select([expr.alias("y")]).collect().unwrap();
    out.column("y").unwrap().clone()
}

fn eval_f64(expr: Expr, texts: &[String]) -> Vec<Option<f64>> {
    let c = eval_column(expr, texts);
    c.f64().unwrap().iter().collect()
}

fn eval_days(expr: Expr, texts: &[String]) -> Vec<Option<i32>> {
    let c = eval_column(expr, texts).cast(&DataType::Int32).unwrap();
    c.i32().unwrap().iter().collect()
}

/// The number rule of docs/data-contract.md: spaces, ¥ and 元 dropped; an optional sign;
/// digits, with `,` (or `，`) only between groups of three; an optional fraction and
/// exponent; finite.
fn reference_number(s: &str) -> Option<f64> {
    let t: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '¥' | '￥' | '元'))
        .map(|c| if c == '，' { ',' } else { c })
        .collect();
    // A trailing 万 is ten thousand.
    let (t, scale) = match t.strip_suffix('万') {
        Some(rest) => (rest.to_string(), 10_000.0),
        None => (t, 1.0),
    };
    let body = t.strip_prefix(['+', '-']).unwrap_or(&t);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !digits(e) {
            return None;
        }
    }
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
        None => (mantissa, None),
    };
    if frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    if int.is_empty() {
        if frac.is_none_or(|f| f.is_empty()) {
            return None;
        }
    } else if int.contains(',') {
        let groups: Vec<&str> = int.split(',').collect();
        let first_ok = !groups[0].is_empty() && groups[0].len() <= 3;
        if !first_ok || !groups.iter().all(|g| digits(g)) || !groups[1..].iter().all(|g| g.len() == 3) {
            return None;
        }
    } else if !digits(int) {
        return None;
    }
    let v: f64 = t.replace(',', "").parse().ok()?;
    v.is_finite().then_some(v * scale)
}

/// The date rule: `Y{4} s1 M{1,2} s2 D{1,2} [日] [(space|T) anything]` with s1 one of
/// `-/.年` and s2 one of `-/.月`, or `YYYYMMDD`; a real date in 1900..=2200. Days since
/// 1970-01-01.
fn reference_date(s: &str) -> Option<i32> {
    let c: Vec<char> = s.chars().collect();
    // Excel's day numbers, 10000..=109574, a fraction (the time of day) allowed.
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    let all_digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if (5..=6).contains(&int.len()) && all_digits(int) && all_digits(frac) {
        let day: i64 = int.parse().ok()?;
        return (10_000..=109_574).contains(&day).then(|| (day - 25_569) as i32);
    }
    let num = |x: &[char]| -> Option<u32> {
        (!x.is_empty() && x.iter().all(|d| d.is_ascii_digit())).then(|| x.iter().collect::<String>().parse().ok())?
    };
    let parts = if c.len() == 8 && c.iter().all(|d| d.is_ascii_digit()) {
        (num(&c[..4])?, num(&c[4..6])?, num(&c[6..])?)
    } else {
        if c.len() < 4 {
            return None;
        }
        let y = num(&c[..4])?;
        let rest = &c[4..];
        let s1 = *rest.first()?;
        if !matches!(s1, '-' | '/' | '.' | '年') {
            return None;
        }
        let rest = &rest[1..];
        let m_len = rest.iter().take_while(|d| d.is_ascii_digit()).count();
        if !(1..=2).contains(&m_len) {
            return None;
        }
        let m = num(&rest[..m_len])?;
        let rest = &rest[m_len..];
        let s2 = *rest.first()?;
        if !matches!(s2, '-' | '/' | '.' | '月') {
            return None;
        }
        let rest = &rest[1..];
        let d_len = rest.iter().take_while(|d| d.is_ascii_digit()).count();
        if !(1..=2).contains(&d_len) {
            return None;
        }
        let d = num(&rest[..d_len])?;
        let mut rest = &rest[d_len..];
        if rest.first() == Some(&'日') {
            rest = &rest[1..];
        }
        if !(rest.is_empty() || matches!(rest[0], ' ' | 'T')) {
            return None;
        }
        (y, m, d)
    };
    let (y, m, d) = parts;
    if !(1900..=2200).contains(&y) {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(y as i32, m, d)?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days() as i32)
}

#[test]
fn reference_rules_hand_cases() {
    assert_eq!(reference_number("1,200.50"), Some(1200.5));
    assert_eq!(reference_number("1,2,3"), None);
    assert_eq!(reference_number("1.200,50"), None);
    assert_eq!(reference_number("¥300"), Some(300.0));
    assert_eq!(reference_number("NaN"), None);
    assert_eq!(reference_date("2024年1月5日"), Some(19727));
    assert_eq!(reference_date("2024-02-30"), None);
    assert_eq!(reference_date("1899-12-31"), None);
    assert_eq!(reference_date("20240105"), Some(19727));
    assert_eq!(reference_date("45292"), Some(19723));
    assert_eq!(reference_date("45292.75"), Some(19723));
    assert_eq!(reference_date("9999"), None);
    assert_eq!(reference_number("1.2万"), Some(12_000.0));
    assert_eq!(reference_number("3万元"), Some(30_000.0));
    assert_eq!(reference_number("1.2万5"), None);
}
