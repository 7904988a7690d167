//! Finding the tables in a folder of exports: by the file's (or the sheet's) name in
//! English or Chinese (客户档案.xlsx, 收费明细.xlsx), else by its headers. A workbook
//! with a sheet per table gives each sheet its own chance. Two equally good candidates
//! for one table stop the run with both names: guessing would analyse the wrong file.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::layout::{find_header_row, header_cells, match_headers};
use super::vocabulary::TABLE_WORDS;
use super::{head_rows, Encoding, IngestError};
use crate::schema::Table;

/// The file types a table may come in.
pub const EXTENSIONS: &[&str] = &["csv", "txt", "xlsx", "xlsm", "xls", "parquet"];

/// How a table's file was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// Named as the table (clients.csv).
    Name,
    /// Its file or sheet name holds a word for the table (客户档案).
    Word(String),
    /// Its headers hold the table's required columns.
    Headers,
}

/// A table's file (and sheet, in a workbook of several).
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub table: Table,
    pub path: PathBuf,
    pub sheet: Option<String>,
    pub by: FoundBy,
}

/// One file or one sheet that may hold a table.
#[derive(Debug, Clone)]
struct Candidate {
    path: PathBuf,
    sheet: Option<String>,
    /// The name that says what it holds: the sheet's in a workbook of several, else the
    /// file's stem.
    name: String,
    /// The file's stem, which speaks for a sheet whose own name says nothing (Sheet1).
    stem: String,
    ext_rank: usize,
}

impl Candidate {
    fn label(&self) -> String {
        let file = super::file_name(&self.path);
        match &self.sheet {
            Some(s) => format!("{file} (sheet {s})"),
            None => file,
        }
    }
}

fn is_table_file(path: &Path) -> Option<usize> {
    let name = path.file_name()?.to_str()?;
    // Excel's lock files (~$客户档案.xlsx) and hidden files are not exports.
    if name.starts_with("~$") || name.starts_with('.') || !path.is_file() {
        return None;
    }
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    EXTENSIONS.iter().position(|e| *e == ext)
}

fn candidates(dir: &Path) -> Result<Vec<Candidate>, IngestError> {
    let entries = std::fs::read_dir(dir).map_err(IngestError::io(dir))?;
    let mut paths: Vec<(PathBuf, usize)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| is_table_file(&p).map(|r| (p, r)))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for (path, ext_rank) in paths {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let sheets = if ext_rank >= 2 && ext_rank <= 4 {
            sheet_names(&path)
        } else {
            Vec::new()
        };
        if sheets.len() > 1 {
            for s in sheets {
                out.push(Candidate {
                    path: path.clone(),
                    name: s.clone(),
                    sheet: Some(s),
                    stem: stem.clone(),
                    ext_rank,
                });
            }
        } else {
            out.push(Candidate {
                path,
                sheet: None,
                name: stem.clone(),
                stem,
                ext_rank,
            });
        }
    }
    Ok(out)
}

/// The sheets of a workbook that hold anything.
pub fn sheet_names(path: &Path) -> Vec<String> {
    use calamine::Reader;
    let Ok(mut book) = calamine::open_workbook_auto(path) else {
        return Vec::new();
    };
    let names = book.sheet_names().to_vec();
    names
        .into_iter()
        .filter(|n| book.worksheet_range(n).is_ok_and(|r| !r.is_empty()))
        .collect()
}

/// The table a name says, with the length of the word that says it; `None` when no word
/// is found or two tables' words are equally long.
pub fn table_by_name(name: &str) -> Option<(Table, String)> {
    let low = name.to_lowercase();
    if let Some(t) = Table::all().find(|t| low.trim() == t.name()) {
        return Some((t, t.name().to_string()));
    }
    let mut best: Option<(usize, Table, &str)> = None;
    let mut tie = false;
    for (t, words) in TABLE_WORDS {
        for w in *words {
            if !low.contains(w) {
                continue;
            }
            let len = w.chars().count() * if w.is_ascii() { 1 } else { 3 };
            match best {
                Some((bl, bt, _)) if len == bl && bt != *t => tie = true,
                Some((bl, _, _)) if len <= bl => {}
                _ => {
                    best = Some((len, *t, w));
                    tie = false;
                }
            }
        }
    }
    match best {
        Some((_, t, w)) if !tie => Some((t, w.to_string())),
        _ => None,
    }
}

/// How well a candidate's headers (found among its first rows) fit a table: `None` unless
/// they hold the table's required columns, two columns at least, and at least half the
/// headers are the table's (a file of ids, months and risks is not a work log); else the
/// number of its columns they hold.
fn fit(c: &Candidate, table: Table, encoding: Encoding) -> Option<usize> {
    let rows = head_rows(&c.path, c.sheet.as_deref(), encoding).ok()?;
    let none = Default::default();
    let at = find_header_row(table, &rows, &none)?;
    let headers = header_cells(&rows, at);
    let m = match_headers(table, &headers, &none);
    let named = headers.iter().filter(|h| !h.starts_with("column_")).count();
    let ok = table.required().iter().all(|r| m.header_of(r).is_some())
        && m.columns.len() >= 2
        && m.columns.len() * 2 >= named;
    ok.then_some(m.columns.len())
}

/// Finds the files of `tables` in `dir`. Tables not found are left out; two candidates
/// for one table that cannot be told apart are an error naming both.
pub fn discover(dir: &Path, tables: &[Table], encoding: Encoding) -> Result<Vec<Found>, IngestError> {
    let all = candidates(dir)?;
    let mut used = vec![false; all.len()];
    let mut found = Vec::new();
    // By name first, for every table, so that a file named for one table is not taken
    // by another's headers.
    for &table in tables {
        let exact: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].sheet.is_none() && all[i].name.to_lowercase() == table.name())
            .collect();
        if let Some(&i) = exact.iter().min_by_key(|&&i| all[i].ext_rank) {
            used[i] = true;
            found.push(Found {
                table,
                path: all[i].path.clone(),
                sheet: None,
                by: FoundBy::Name,
            });
            continue;
        }
        let by_name = |i: usize, name: &str| match table_by_name(name) {
            Some((t, w)) if t == table => Some((i, w)),
            _ => None,
        };
        let mut named: Vec<(usize, String)> = (0..all.len())
            .filter(|&i| !used[i])
            .filter_map(|i| by_name(i, &all[i].name))
            .collect();
        {
            // 客户档案.xlsx whose sheets are 数据 and 说明: the file's name speaks for the
            // sheet that holds the table, or the first.
            let sheets: Vec<(usize, String)> = (0..all.len())
                .filter(|&i| !used[i] && all[i].sheet.is_some() && table_by_name(&all[i].name).is_none())
                .filter_map(|i| by_name(i, &all[i].stem))
                .collect();
            let fitting: Vec<(usize, String)> = sheets
                .iter()
                .filter(|(i, _)| fit(&all[*i], table, encoding).is_some())
                .cloned()
                .collect();
            match (fitting.as_slice(), sheets.first()) {
                ([a, b, ..], _) => return Err(ambiguous(table, &all[a.0], &all[b.0])),
                ([f], _) => named.push(f.clone()),
                ([], Some(s)) if named.is_empty() => named.push(s.clone()),
                ([], _) => {}
            }
        }
        let pick = match named.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => {
                // Several names fit: the ones whose headers hold the table decide.
                let fits: Vec<&(usize, String)> = many
                    .iter()
                    .filter(|(i, _)| fit(&all[*i], table, encoding).is_some())
                    .collect();
                match fits.as_slice() {
                    [one] => Some((*one).clone()),
                    [a, b, ..] => return Err(ambiguous(table, &all[a.0], &all[b.0])),
                    [] => return Err(ambiguous(table, &all[many[0].0], &all[many[1].0])),
                }
            }
        };
        if let Some((i, w)) = pick {
            used[i] = true;
            found.push(Found {
                table,
                path: all[i].path.clone(),
                sheet: all[i].sheet.clone(),
                by: FoundBy::Word(w),
            });
        }
    }
    // Then by headers, for the tables no name was found for, among files no name claims:
    // each file goes to the table it fits best.
    let open: Vec<Table> = tables
        .iter()
        .copied()
        .filter(|t| !found.iter().any(|f| f.table == *t))
        .collect();
    let mut claims: Vec<(Table, usize)> = Vec::new();
    for i in (0..all.len()).filter(|&i| !used[i] && table_by_name(&all[i].name).is_none()) {
        let best = open
            .iter()
            .filter_map(|&t| fit(&all[i], t, encoding).map(|score| (score, t)))
            .max_by_key(|(score, _)| *score);
        if let Some((_, t)) = best {
            claims.push((t, i));
        }
    }
    for &table in &open {
        let fits: Vec<usize> = claims.iter().filter(|(t, _)| *t == table).map(|(_, i)| *i).collect();
        match fits.as_slice() {
            [] => {}
            [i] => found.push(Found {
                table,
                path: all[*i].path.clone(),
                sheet: all[*i].sheet.clone(),
                by: FoundBy::Headers,
            }),
            [a, b, ..] => return Err(ambiguous(table, &all[*a], &all[*b])),
        }
    }
    Ok(found)
}

fn ambiguous(table: Table, a: &Candidate, b: &Candidate) -> IngestError {
    let how = match &a.sheet {
        Some(s) => format!(
            "[input] {t} = \"{f}\" and [input.sheets] {t} = \"{s}\"",
            t = table.name(),
            f = super::file_name(&a.path)
        ),
        None => format!("[input] {} = \"{}\"", table.name(), super::file_name(&a.path)),
    };
    IngestError::AmbiguousTable {
        table: table.name(),
        a: a.label(),
        b: b.label(),
        how,
    }
}

/// The files and sheets of a folder, for the message when a table is not found.
pub fn listing(dir: &Path) -> String {
    match candidates(dir) {
        Ok(c) if !c.is_empty() => c.iter().map(Candidate::label).collect::<Vec<_>>().join(", "),
        _ => "no .csv, .xlsx or .parquet files".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_chinese_and_english_say_the_table() {
        let t = |n: &str| table_by_name(n).map(|(t, _)| t);
        assert_eq!(t("客户档案"), Some(Table::Clients));
        assert_eq!(t("客户信息导出20260102"), Some(Table::Clients));
        assert_eq!(t("收费明细"), Some(Table::Billing));
        assert_eq!(t("应收账款"), Some(Table::Billing));
        assert_eq!(t("会计工作记录"), Some(Table::Activity));
        assert_eq!(t("员工名单"), Some(Table::Staff));
        assert_eq!(t("客户跟进记录"), Some(Table::Contacts));
        assert_eq!(t("Invoices 2025"), Some(Table::Billing));
        assert_eq!(t("billing"), Some(Table::Billing));
        assert_eq!(t("Sheet1"), None);
    }

    #[test]
    fn a_workbook_named_for_a_table_gives_it_the_sheet_that_fits() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = rust_xlsxwriter::Workbook::new();
        let notes = book.add_worksheet().set_name("说明").unwrap();
        notes.write(0, 0, "本表由系统导出").unwrap();
        let data = book.add_worksheet().set_name("数据").unwrap();
        for (j, h) in ["客户编码", "收费日期", "收费金额"].iter().enumerate() {
            data.write(0, j as u16, *h).unwrap();
        }
        data.write(1, 0, "C1").unwrap();
        data.write(1, 1, "2025-01-05").unwrap();
        data.write(1, 2, 300).unwrap();
        book.save(dir.path().join("收费明细.xlsx")).unwrap();
        std::fs::write(dir.path().join("客户档案.csv"), "客户编码\nC1\n").unwrap();
        let found = discover(dir.path(), &[Table::Clients, Table::Billing], Encoding::Auto).unwrap();
        let billing = found.iter().find(|f| f.table == Table::Billing).unwrap();
        assert_eq!(billing.sheet.as_deref(), Some("数据"));
        // Two files named for the billing, both with its columns: both named in the error.
        std::fs::write(
            dir.path().join("收款记录.csv"),
            "客户编码,收费日期,收费金额\nC1,2025-01-05,300\n",
        )
        .unwrap();
        let err = discover(dir.path(), &[Table::Clients, Table::Billing], Encoding::Auto).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("收款记录.csv") && msg.contains("收费明细.xlsx"), "{msg}");
    }
}
