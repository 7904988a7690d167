//! How an export lays a table out: which row is the header, which header is which
//! column of the contract, and which rows are not data (title rows above, 合计 rows and
//! notes under it). Everything here looks at headers and the first rows only, so it costs
//! nothing next to reading the file.

use std::collections::BTreeMap;

use serde::Serialize;

use super::vocabulary::{ColumnWords, AMBIGUOUS, COLUMNS, NOTE_STARTS, TOTALS};
use crate::schema::Table;

/// How many rows from the top the header is looked for in.
pub const HEADER_SEARCH_ROWS: usize = 30;

/// A header as compared: full-width forms folded, brackets and what they hold (units,
/// notes) removed, spaces, `_`, `-`, `.`, `*` and `:` removed, lower case.
pub fn normalise(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    let mut depth = 0usize;
    for c in header.trim_start_matches('\u{feff}').chars() {
        let c = match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            _ => c,
        };
        match c {
            '(' | '[' | '【' | '〔' | '<' | '《' => depth += 1,
            ')' | ']' | '】' | '〕' | '>' | '》' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            c if c.is_whitespace() || matches!(c, '_' | '-' | '.' | '*' | ':' | '#' | '、') => {}
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// How a header came to be read as a column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// Named in the config's [columns.TABLE].
    Config,
    /// The contract's own name, or a word of the vocabulary.
    Word,
    /// The header holds a word of the vocabulary (本月凭证张数 holds 凭证张数): probably
    /// right, shown as uncertain.
    Contains(String),
}

impl How {
    pub fn uncertain(&self) -> bool {
        matches!(self, How::Contains(_))
    }
}

/// One header read as one column of the contract.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnMatch {
    pub column: String,
    pub header: String,
    pub how: How,
}

/// The outcome of matching a file's headers to a table's columns.
#[derive(Debug, Clone, Default)]
pub struct HeaderMatch {
    pub columns: Vec<ColumnMatch>,
    /// Headers that could be more than one column, with the columns, not read.
    pub ambiguous: Vec<(String, Vec<String>)>,
    /// Two headers that read as the same column equally well.
    pub clash: Option<(String, String, String)>,
}

impl HeaderMatch {
    pub fn header_of(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|m| m.column == column)
            .map(|m| m.header.as_str())
    }
}

/// What a table's file looked like, for the summary, the manifest and `clientseg check`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Layout {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// The header's row as Excel numbers it (1 = the first row).
    pub header_row: usize,
    pub columns: Vec<ColumnMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unused: Vec<String>,
    /// Headers that could be more than one column, with the columns, not read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ambiguous: Vec<(String, Vec<String>)>,
    /// Totals rows (合计, 小计) skipped.
    pub totals_skipped: usize,
    /// Notes under the table (制表人, 注：...) and blank rows skipped.
    pub notes_skipped: usize,
}

fn words_of(table: Table) -> impl Iterator<Item = &'static ColumnWords> {
    COLUMNS.iter().filter(move |c| c.table == table)
}

/// Whether a vocabulary word is long enough to be looked for inside a longer header: two
/// Chinese characters (金额, 会计) or a short English word sit inside too many others.
fn containable(word: &str) -> bool {
    let cjk = word.chars().filter(|c| !c.is_ascii()).count();
    if cjk > 0 {
        word.chars().count() >= 3
    } else {
        word.len() >= 6
    }
}

/// The column a header reads as, with its rank (lower is better): a word of the
/// vocabulary, else a word it holds.
fn read_header(table: Table, header: &str) -> Option<(&'static str, usize, How)> {
    let n = normalise(header);
    if n.is_empty() {
        return None;
    }
    for cw in words_of(table) {
        if let Some(i) = cw.words.iter().position(|w| normalise(w) == n) {
            return Some((cw.column, i, How::Word));
        }
    }
    // The longest word held decides; equally long words of two columns leave it unread.
    let mut best: Option<(usize, &'static str, usize, &'static str)> = None;
    let mut tie = false;
    for cw in words_of(table) {
        for (i, w) in cw.words.iter().enumerate() {
            let wn = normalise(w);
            if !containable(&wn) || !n.contains(&wn) {
                continue;
            }
            let len = wn.chars().count();
            match best {
                Some((bl, bc, _, _)) if len == bl && bc != cw.column => tie = true,
                Some((bl, _, _, _)) if len <= bl => {}
                _ => {
                    best = Some((len, cw.column, i, w));
                    tie = false;
                }
            }
        }
    }
    match best {
        Some((_, column, i, w)) if !tie => Some((column, 1000 + i, How::Contains(w.to_string()))),
        _ => None,
    }
}

/// The columns a header could be, when the vocabulary says it is ambiguous.
fn ambiguous_header(table: Table, header: &str) -> Option<Vec<String>> {
    let n = normalise(header);
    AMBIGUOUS
        .iter()
        .find(|(t, w, _)| *t == table && normalise(w) == n)
        .map(|(_, _, cols)| cols.iter().map(|c| c.to_string()).collect())
}

/// A header as written, without the marks readers add: a byte-order mark, spaces around
/// it, and polars' `_duplicated_N` suffix for a repeated CSV header.
pub fn clean(h: &str) -> String {
    let h = h.trim().trim_start_matches('\u{feff}');
    let h = match h.rfind("_duplicated_") {
        Some(i) if i + 12 < h.len() && h[i + 12..].chars().all(|c| c.is_ascii_digit()) => &h[..i],
        _ => h,
    };
    h.trim().to_string()
}

/// Reads a file's headers as a table's columns: the config's mapping first, then the
/// vocabulary. Each header is read as at most one column, each column from at most one
/// header (the better word wins; two equally good ones are a clash).
pub fn match_headers(table: Table, headers: &[String], explicit: &BTreeMap<String, String>) -> HeaderMatch {
    let mut out = HeaderMatch::default();
    let mut taken = vec![false; headers.len()];
    for &column in table.columns() {
        let Some(wanted) = explicit.get(column) else { continue };
        let i = headers
            .iter()
            .position(|h| clean(h) == *wanted)
            .or_else(|| headers.iter().position(|h| clean(h).eq_ignore_ascii_case(wanted)));
        if let Some(i) = i {
            taken[i] = true;
            out.columns.push(ColumnMatch {
                column: column.to_string(),
                header: headers[i].clone(),
                how: How::Config,
            });
        }
    }
    let mut claims: BTreeMap<&'static str, Vec<(usize, usize, How)>> = BTreeMap::new();
    for (i, h) in headers.iter().enumerate() {
        if taken[i] {
            continue;
        }
        if let Some(cols) = ambiguous_header(table, h) {
            out.ambiguous.push((h.clone(), cols));
            continue;
        }
        if let Some((column, rank, how)) = read_header(table, h) {
            if explicit.contains_key(column) {
                continue;
            }
            claims.entry(column).or_default().push((rank, i, how));
        }
    }
    for &column in table.columns() {
        let Some(mut c) = claims.remove(column) else { continue };
        c.sort_by_key(|(rank, i, _)| (*rank, *i));
        if let [(r0, i0, _), (r1, i1, _), ..] = c.as_slice() {
            if r0 == r1 {
                out.clash
                    .get_or_insert((column.to_string(), headers[*i0].clone(), headers[*i1].clone()));
                continue;
            }
        }
        let (_, i, how) = c.swap_remove(0);
        out.columns.push(ColumnMatch {
            column: column.to_string(),
            header: headers[i].clone(),
            how,
        });
    }
    let order = |c: &str| table.columns().iter().position(|x| *x == c).unwrap_or(usize::MAX);
    out.columns.sort_by_key(|m| order(&m.column));
    out
}

/// How well a row reads as the table's header: the columns it names (vocabulary words
/// count two, words held one).
pub fn header_score(table: Table, row: &[String], explicit: &BTreeMap<String, String>) -> usize {
    let m = match_headers(table, row, explicit);
    m.columns
        .iter()
        .map(|c| if c.how.uncertain() { 1 } else { 2 })
        .sum::<usize>()
        + m.ambiguous.len()
}

/// The header among the first rows: the row that names the most columns of the table,
/// the earliest of equals. `None` when no row names any.
pub fn find_header_row(table: Table, rows: &[Vec<String>], explicit: &BTreeMap<String, String>) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, row) in rows.iter().take(HEADER_SEARCH_ROWS).enumerate() {
        let score = header_score(table, row, explicit);
        if score > 0 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, i));
        }
    }
    best.map(|(_, i)| i)
}

/// The header row's cells, with a cell that is empty because it is merged with the one
/// above (a header two rows high) taking that cell's text, and still-empty cells named
/// by their place.
pub fn header_cells(rows: &[Vec<String>], at: usize) -> Vec<String> {
    let Some(row) = rows.get(at) else { return Vec::new() };
    let above = at.checked_sub(1).and_then(|a| rows.get(a));
    row.iter()
        .enumerate()
        .map(|(j, c)| {
            if !c.trim().is_empty() {
                return c.trim().to_string();
            }
            match above.and_then(|a| a.get(j)).map(|a| a.trim()).filter(|a| !a.is_empty()) {
                // A title row above the header (one cell across) is not a merged header.
                Some(a) if above.is_some_and(|r| r.iter().filter(|c| !c.trim().is_empty()).count() > 1) => {
                    a.to_string()
                }
                _ => format!("column_{}", j + 1),
            }
        })
        .collect()
}

/// Whether a cell says "this row is a total" (合计, 小 计, Total:).
pub fn is_totals(cell: &str) -> bool {
    if cell.len() > 40 {
        return false;
    }
    // 合计：12,000元 is a total too: the words without the figure.
    let n: String = normalise(cell).chars().filter(|c| c.is_alphabetic()).collect();
    let n = n.trim_end_matches('元').trim_end_matches('万');
    TOTALS.iter().any(|t| n == *t)
}

/// Whether a lone cell under or above the table is a note (制表人：张三, 注：单位为元).
pub fn is_note(cell: &str) -> bool {
    let n = normalise(cell);
    NOTE_STARTS.iter().any(|s| n.starts_with(s))
        || (cell.contains('：') || cell.contains(':')) && !n.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn units_brackets_full_width_and_spaces_do_not_count() {
        assert_eq!(normalise("服务费（元/月）"), "服务费");
        assert_eq!(normalise("收费金额(元)"), "收费金额");
        assert_eq!(normalise(" 工时 (小时) "), "工时");
        assert_eq!(normalise("Client ID"), "clientid");
        assert_eq!(normalise("client_id"), "clientid");
        assert_eq!(normalise("客户编码＊"), "客户编码");
        assert_eq!(normalise("ＩＤ"), "id");
        assert_eq!(normalise("【必填】客户编码"), "客户编码");
    }

    #[test]
    fn every_word_means_one_column_of_its_table() {
        for t in Table::all() {
            let mut seen: BTreeMap<String, &str> = BTreeMap::new();
            for cw in words_of(t) {
                assert!(t.columns().contains(&cw.column), "{t:?}.{}", cw.column);
                for w in cw.words {
                    if let Some(other) = seen.insert(normalise(w), cw.column) {
                        panic!("{t:?}: '{w}' is both {other} and {}", cw.column);
                    }
                }
            }
            for (at, w, _) in AMBIGUOUS.iter().filter(|(at, _, _)| *at == t) {
                assert!(
                    !seen.contains_key(&normalise(w)),
                    "{at:?}: '{w}' is ambiguous and a word"
                );
            }
            // Every column of the contract has its own name among its words.
            for c in t.columns() {
                let cw = words_of(t).find(|cw| cw.column == *c);
                assert!(cw.is_some_and(|cw| cw.words.contains(c)), "{t:?}.{c}");
            }
        }
    }

    #[test]
    fn chinese_export_headers_read_as_the_contract() {
        let h = s(&[
            "客户编码",
            "企业类型",
            "纳税性质",
            "所在地区",
            "涉外",
            "服务费(元/月)",
            "负责会计",
        ]);
        let m = match_headers(Table::Clients, &h, &BTreeMap::new());
        let got: Vec<(&str, &str)> = m
            .columns
            .iter()
            .map(|c| (c.column.as_str(), c.header.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("client_id", "客户编码"),
                ("client_type", "企业类型"),
                ("taxpayer_type", "纳税性质"),
                ("province", "所在地区"),
                ("international", "涉外"),
                ("monthly_fee", "服务费(元/月)"),
                ("accountant", "负责会计"),
            ]
        );
        let b = s(&["客户编码", "收费日期", "收费金额(元)", "应收日期", "实收日期"]);
        let m = match_headers(Table::Billing, &b, &BTreeMap::new());
        assert_eq!(m.header_of("invoice_date"), Some("收费日期"));
        assert_eq!(m.header_of("amount"), Some("收费金额(元)"));
        assert_eq!(m.header_of("due_date"), Some("应收日期"));
        assert_eq!(m.header_of("paid_date"), Some("实收日期"));
        let a = s(&["客户编码", "期间", "凭证张数", "工时(小时)", "资料是否延迟"]);
        let m = match_headers(Table::Activity, &a, &BTreeMap::new());
        assert_eq!(m.columns.len(), 5);
        let st = s(&["姓名", "岗位级别", "月可用工时", "状态"]);
        let m = match_headers(Table::Staff, &st, &BTreeMap::new());
        assert_eq!(m.header_of("active"), Some("状态"));
        assert_eq!(m.header_of("capacity_hours"), Some("月可用工时"));
    }

    #[test]
    fn the_better_word_wins_and_equal_ones_clash() {
        let b = s(&["实收金额", "客户编码", "应收金额", "纳税人识别号", "日期"]);
        let m = match_headers(Table::Billing, &b, &BTreeMap::new());
        assert_eq!(m.header_of("amount"), Some("应收金额"));
        assert_eq!(m.header_of("client_id"), Some("客户编码"));
        assert_eq!(m.header_of("invoice_date"), None);
        assert_eq!(m.ambiguous.len(), 1, "{:?}", m.ambiguous);
        let c = s(&["客户编码", "服务费(元/月)", "服务费(元/年)"]);
        let m = match_headers(Table::Clients, &c, &BTreeMap::new());
        assert!(
            m.clash.as_ref().is_some_and(|(col, _, _)| col == "monthly_fee"),
            "{:?}",
            m.clash
        );
    }

    #[test]
    fn a_held_word_is_uncertain_and_the_config_wins() {
        let a = s(&["客户编码", "所属期间", "本月凭证张数"]);
        let m = match_headers(Table::Activity, &a, &BTreeMap::new());
        let v = m.columns.iter().find(|c| c.column == "vouchers").unwrap();
        assert!(v.how.uncertain());
        let mut cfg = BTreeMap::new();
        cfg.insert("vouchers".to_string(), "所属期间".to_string());
        let m = match_headers(Table::Activity, &a, &cfg);
        assert_eq!(m.header_of("vouchers"), Some("所属期间"));
        assert_eq!(m.header_of("month"), None);
    }

    #[test]
    fn the_header_row_is_found_under_a_title_and_merged_cells_read_from_above() {
        let rows = vec![
            s(&["客户档案（导出日期：2026-01-02）", "", ""]),
            s(&["", "", ""]),
            s(&["客户编码", "客户名称", "纳税性质"]),
            s(&["C1", "甲公司", "一般纳税人"]),
        ];
        assert_eq!(find_header_row(Table::Clients, &rows, &BTreeMap::new()), Some(2));
        let rows = vec![s(&["客户编码", "收费信息", ""]), s(&["", "收费日期", "收费金额"])];
        assert_eq!(find_header_row(Table::Billing, &rows, &BTreeMap::new()), Some(1));
        assert_eq!(header_cells(&rows, 1), s(&["客户编码", "收费日期", "收费金额"]));
        assert_eq!(
            find_header_row(Table::Billing, &[s(&["a", "b"])], &BTreeMap::new()),
            None
        );
    }

    #[test]
    fn totals_and_notes() {
        for t in [
            "合计",
            "合 计",
            "总计：",
            "小计",
            "Total",
            "TOTAL:",
            "合计：12,000.00元",
            "本页合计(元)",
        ] {
            assert!(is_totals(t), "{t}");
        }
        for t in ["合计科技有限公司", "C001", "300"] {
            assert!(!is_totals(t), "{t}");
        }
        assert!(is_note("制表人：张三"));
        assert!(is_note("注：金额单位为元"));
        assert!(!is_note("C001"));
    }
}
