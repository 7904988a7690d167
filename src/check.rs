//! `clientseg check DIR`: what a run would read, before it runs. Per table: the file
//! (and sheet), the header row chosen, each column's mapping with three sample values
//! and the share of its cells that parse, the rows skipped; then what the input cannot
//! support. In Chinese when the export's headers are.

use std::fmt::Write;

use polars::prelude::*;
use thiserror::Error;

use crate::config::Settings;
use crate::features;
use crate::format::{column_zh, Lang};
use crate::ingest::{self, How, IngestError, RawInputs, RawTable};
use crate::schema::Table;
use crate::validate::{self, ValidateParams};

#[derive(Debug, Error)]
pub enum CheckError {
    #[error(transparent)]
    Input(#[from] IngestError),
    #[error("checking the values failed: {0}")]
    Polars(#[from] PolarsError),
}

/// Whether the headers of the folder's tables are mostly Chinese.
pub fn chinese(tables: &[RawTable]) -> bool {
    let (mut zh, mut all) = (0usize, 0usize);
    for t in tables {
        for c in &t.layout.columns {
            all += 1;
            zh += usize::from(c.header.chars().any(|ch| !ch.is_ascii()));
        }
    }
    zh * 2 > all
}

/// Up to `n` distinct values of a raw column, as text.
fn samples(t: &RawTable, column: &str, n: usize) -> Vec<String> {
    let Ok(c) = t.df.column(column) else { return Vec::new() };
    let dict = t.dictionary(column);
    let mut out: Vec<String> = Vec::new();
    for i in 0..c.len().min(10_000) {
        let Ok(v) = c.get(i) else { break };
        let text = match (&v, dict) {
            (AnyValue::Null, _) => continue,
            (AnyValue::UInt32(code), Some(d)) => d.get(*code as usize).cloned().unwrap_or_default(),
            (AnyValue::String(s), _) => s.to_string(),
            (AnyValue::StringOwned(s), _) => s.to_string(),
            (other, _) => other.to_string(),
        };
        if !out.contains(&text) {
            out.push(text);
        }
        if out.len() == n {
            break;
        }
    }
    out
}

/// Filled cells of each (table, column), and the reject lines on them that are not for
/// emptiness: the share of cells that parse.
struct Shares {
    filled: Vec<(Table, String, usize)>,
    bad: Vec<(String, String, usize)>,
}

impl Shares {
    fn share(&self, table: Table, file: &str, column: &str) -> Option<f64> {
        let filled = self
            .filled
            .iter()
            .find(|(t, c, _)| *t == table && c == column)
            .map(|(_, _, n)| *n)?;
        let bad = self
            .bad
            .iter()
            .find(|(f, c, _)| f == file && c == column)
            .map_or(0, |(_, _, n)| *n);
        (filled > 0).then(|| 1.0 - bad.min(filled) as f64 / filled as f64)
    }
}

fn bad_cells(rejects: &DataFrame) -> PolarsResult<Vec<(String, String, usize)>> {
    if rejects.height() == 0 {
        return Ok(Vec::new());
    }
    let g = rejects
        .clone()
        .lazy()
        .filter(col("reason").neq(lit("required value is empty")))
        .group_by([col("file"), col("column")])
        .agg([col("row").n_unique().alias("n")])
        .collect()?;
    let (f, c, n) = (g.column("file")?.str()?, g.column("column")?.str()?, g.column("n")?);
    let n = n.cast(&DataType::UInt64)?;
    let n = n.u64()?;
    Ok((0..g.height())
        .filter_map(|i| Some((f.get(i)?.to_string(), c.get(i)?.to_string(), n.get(i)? as usize)))
        .collect())
}

/// The check's text for the tables the settings name.
pub fn check(settings: &Settings, zh: Option<bool>) -> Result<String, CheckError> {
    let input = &settings.input;
    let (read, problems) = read_all(settings);
    let zh = zh.unwrap_or_else(|| chinese(&read));
    let t = |en: &'static str, z: &'static str| if zh { z } else { en };
    let mut filled = Vec::new();
    for r in &read {
        for c in &r.layout.columns {
            let n = r.df.column(&c.column).map(|x| x.len() - x.null_count()).unwrap_or(0);
            filled.push((r.table, c.column.clone(), n));
        }
    }
    let snapshot = settings
        .snapshot_date
        .as_deref()
        .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
    let params = ValidateParams {
        max_reject_share: 1.0,
        ..settings.validation.clone()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}{}",
        t("clientseg check: ", "clientseg 检查："),
        input.dir.display()
    );
    for r in &read {
        write_table(&mut out, r, zh);
    }
    for (table, e) in &problems {
        let _ = writeln!(out, "\n{} ({}): {}", table.name(), table.zh(), e);
    }
    let clients = read.iter().position(|r| r.table == Table::Clients);
    let billing = read.iter().position(|r| r.table == Table::Billing);
    let (Some(_), Some(_)) = (clients, billing) else {
        let _ = writeln!(
            out,
            "\n{}",
            t(
                "a run would stop: the clients and billing tables are both needed.",
                "无法运行：需要客户档案和收费记录两张表。"
            )
        );
        return Ok(out);
    };
    let layouts: Vec<(Table, String, Vec<ingest::ColumnMatch>)> = read
        .iter()
        .map(|r| (r.table, r.file.clone(), r.layout.columns.clone()))
        .collect();
    let mut raw_clients = None;
    let mut raw_billing = None;
    let mut optional = Vec::new();
    for r in read {
        match r.table {
            Table::Clients => raw_clients = Some(r),
            Table::Billing => raw_billing = Some(r),
            _ => optional.push(r),
        }
    }
    let (Some(clients), Some(billing)) = (raw_clients, raw_billing) else {
        return Ok(out);
    };
    let inputs = RawInputs {
        clients,
        billing,
        optional,
        files: Vec::new(),
    };
    let latest = validate::latest_event_day(snapshot);
    let (validated, rejects) = match validate::validate(inputs, &params, latest) {
        Ok(v) => {
            let r = v.rejects.clone();
            (Some(v), r)
        }
        Err((e, rejects)) => {
            let _ = writeln!(out, "\n{}{e}", t("validation: ", "校验："));
            (None, rejects)
        }
    };
    let shares = Shares {
        filled,
        bad: bad_cells(&rejects)?,
    };
    write_shares(&mut out, &layouts, &shares, zh);
    if let Some(v) = validated {
        write_validated(&mut out, &v, zh);
    }
    Ok(out)
}

/// Every table the settings name that has a file, and the problems of those that could
/// not be read (or are required and have none).
fn read_all(settings: &Settings) -> (Vec<RawTable>, Vec<(Table, String)>) {
    let input = &settings.input;
    let mut read: Vec<RawTable> = Vec::new();
    let mut problems: Vec<(Table, String)> = Vec::new();
    for source in &input.sources {
        match &source.path {
            Some(path) => {
                match ingest::read_table_in(
                    source.table,
                    path,
                    source.sheet.as_deref(),
                    &source.mapping,
                    input.encoding,
                ) {
                    Ok(t) => read.push(t),
                    Err(e) => problems.push((source.table, e.to_string())),
                }
            }
            None if !source.table.optional() => problems.push((
                source.table,
                ingest::missing_table(source.table, &input.dir).to_string(),
            )),
            None => {}
        }
    }
    (read, problems)
}

/// Per table, the share of each column's filled cells that parse.
fn write_shares(out: &mut String, layouts: &[(Table, String, Vec<ingest::ColumnMatch>)], shares: &Shares, zh: bool) {
    let t = |en: &'static str, z: &'static str| if zh { z } else { en };
    let _ = writeln!(
        out,
        "\n{}",
        t("share of filled cells that parse:", "各列可解析的非空单元格比例：")
    );
    for (table, file, columns) in layouts {
        let parts: Vec<String> = columns
            .iter()
            .filter_map(|c| {
                shares
                    .share(*table, file, &c.column)
                    .map(|s| format!("{} {:.0}%", shown(&c.column, zh), (s * 100.0).floor()))
            })
            .collect();
        let name = if zh { table.zh() } else { table.name() };
        let _ = writeln!(out, "  {name}: {}", parts.join(", "));
    }
}

/// Rows a run would accept and reject, and the features it would switch off.
fn write_validated(out: &mut String, v: &validate::Validated, zh: bool) {
    let t = |en: &'static str, z: &'static str| if zh { z } else { en };
    let _ = write!(out, "\n{}", crate::report::text::rows_text_in(&v.counts, zh));
    let (_, disabled) = features::availability(&v.tables);
    if disabled.is_empty() {
        let _ = writeln!(out, "{}", t("features: all can be computed", "特征：全部可以计算"));
        return;
    }
    let _ = writeln!(
        out,
        "{}",
        t(
            "would be switched off (the input lacks what they need):",
            "将关闭（输入缺少所需数据）："
        )
    );
    for d in disabled {
        if zh {
            let name = features::display_name(&d.name, Lang::Zh);
            let _ = writeln!(out, "  {name}：{}", crate::report::page::disabled_zh(&d.name));
        } else {
            let _ = writeln!(out, "  {}: {}", d.name, d.reason);
        }
    }
}

/// A contract column as an analyst reads it: its Chinese name in a Chinese check.
fn shown(column: &str, zh: bool) -> String {
    match column_zh(column) {
        Some(z) if zh => z.to_string(),
        _ => column.to_string(),
    }
}

/// Pads to a width in terminal columns (a Chinese character is two).
fn pad(text: &str, width: usize) -> String {
    let w: usize = text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    format!("{text}{}", " ".repeat(width.saturating_sub(w)))
}

fn write_table(out: &mut String, r: &RawTable, zh: bool) {
    let t = |en: &'static str, z: &'static str| if zh { z } else { en };
    let l = &r.layout;
    let name = if zh { r.table.zh() } else { r.table.name() };
    let sheet = match &l.sheet {
        Some(s) => format!(" ({}{s})", t("sheet ", "工作表 ")),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "\n{name} <- {}{sheet}, {}{}",
        r.file,
        t("header on row ", "表头在第 "),
        if zh {
            format!("{} 行", l.header_row)
        } else {
            l.header_row.to_string()
        }
    );
    for c in &l.columns {
        let mark = match &c.how {
            How::Config => t(" (config)", "（配置）").to_string(),
            How::Word => String::new(),
            How::Contains(w) => {
                if zh {
                    format!("（不确定：表头含“{w}”）")
                } else {
                    format!(" (uncertain: the header holds '{w}')")
                }
            }
        };
        let s = samples(r, &c.column, 3);
        let _ = writeln!(
            out,
            "  {} -> {}  {}{mark}",
            pad(&c.header, 16),
            pad(&shown(&c.column, zh), 15),
            s.join(" | ")
        );
        if c.column == "late_documents" && s.iter().any(|v| validate::yes_no(v).is_some()) {
            let _ = writeln!(
                out,
                "  {}    {}",
                pad("", 16),
                t("yes/no words read as 1/0", "“是/否”读作 1/0")
            );
        }
    }
    for (h, cols) in &l.ambiguous {
        let _ = writeln!(
            out,
            "  {} -> ? {}{}",
            pad(h, 16),
            cols.iter().map(|c| shown(c, zh)).collect::<Vec<_>>().join(" / "),
            t(
                " (could be any of these: not read; map it in the config)",
                "（可能是其中任一列：未读取，请在配置中指定）"
            )
        );
    }
    if !l.unused.is_empty() {
        let _ = writeln!(out, "  {}{}", t("not used: ", "未使用："), l.unused.join(", "));
    }
    let absent: Vec<String> = r.absent.iter().map(|c| shown(c, zh)).collect();
    if !absent.is_empty() {
        let _ = writeln!(out, "  {}{}", t("not in the file: ", "文件中没有："), absent.join(", "));
    }
    if l.totals_skipped + l.notes_skipped > 0 {
        let _ = writeln!(
            out,
            "  {}",
            if zh {
                format!("跳过：合计行 {} 行，备注/空行 {} 行", l.totals_skipped, l.notes_skipped)
            } else {
                format!(
                    "skipped: totals rows {}, notes or blank rows {}",
                    l.totals_skipped, l.notes_skipped
                )
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::ingest::vocabulary::COLUMNS;
    use crate::schema::Table;

    /// The Chinese names clientseg itself writes (labels, the generator's --zh exports)
    /// read back as their columns.
    #[test]
    fn every_column_is_known_by_its_own_chinese_name() {
        for t in Table::all() {
            for c in t.columns() {
                let zh = crate::format::column_zh(c).expect("every contract column has a Chinese name");
                let words = COLUMNS.iter().find(|w| w.table == t && w.column == *c).expect("words");
                assert!(words.words.contains(&zh), "{t:?}.{c}: {zh}");
            }
        }
    }
}
