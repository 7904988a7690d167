//! `clientseg init DIR`: a commented clientseg.toml for a folder of exports, with the
//! table files found, each header's row, and every header mapped to the contract where
//! the vocabulary tells (客户编号 -> client_id); uncertain mappings are marked.

use std::collections::BTreeMap;
use std::path::Path;

use crate::ingest::layout::{find_header_row, header_cells, match_headers, HeaderMatch, How};
use crate::ingest::{self, Encoding, Found, FoundBy, IngestError};
use crate::schema::Table;

/// One table as `init` and `check` see it: where it is, its header row and its mapping.
pub struct Seen {
    pub found: Found,
    /// The first rows of the file or sheet.
    pub rows: Vec<Vec<String>>,
    /// Index into `rows` of the header, when one was recognised.
    pub header_at: Option<usize>,
    pub headers: Vec<String>,
    pub matched: HeaderMatch,
}

impl Seen {
    /// Up to `n` distinct sample values of a header's column, from the rows under the header.
    pub fn samples(&self, header: &str, n: usize) -> Vec<String> {
        let Some(j) = self.headers.iter().position(|h| h == header) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for row in self.rows.iter().skip(self.header_at.map_or(1, |a| a + 1)) {
            if let Some(v) = row.get(j).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                if !out.iter().any(|o| o == v) && !ingest::layout::is_totals(v) {
                    out.push(v.to_string());
                }
            }
            if out.len() == n {
                break;
            }
        }
        out
    }
}

/// Finds the tables in `dir` and reads each one's header and mapping.
pub fn look(dir: &Path, encoding: Encoding) -> Result<Vec<Seen>, IngestError> {
    let tables: Vec<Table> = Table::all().collect();
    let found = ingest::discover(dir, &tables, encoding)?;
    let none = BTreeMap::new();
    let mut out = Vec::new();
    for table in tables {
        let Some(f) = found.iter().find(|f| f.table == table) else {
            continue;
        };
        let rows = ingest::head_rows(&f.path, f.sheet.as_deref(), encoding)?;
        let header_at = find_header_row(table, &rows, &none);
        let headers = header_cells(&rows, header_at.unwrap_or(0));
        let matched = match_headers(table, &headers, &none);
        out.push(Seen {
            found: f.clone(),
            rows,
            header_at,
            headers,
            matched,
        });
    }
    Ok(out)
}

/// A string as TOML writes it (a header may hold quotes, backslashes or control
/// characters, which Rust's debug form would not escape the TOML way).
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A commented config for the exports in `dir`.
pub fn config_text(dir: &Path) -> Result<String, IngestError> {
    let seen = look(dir, Encoding::Auto)?;
    let mut out = String::new();
    out.push_str("# clientseg configuration, written by `clientseg init` from the exports in\n");
    out.push_str(&format!("# {}.\n", dir.display()));
    out.push_str("# Check the lines marked UNCERTAIN and the [columns.*] sections, then run:\n");
    out.push_str("#   clientseg run --config clientseg.toml\n");
    out.push_str("# (`clientseg check` shows sample values and how many cells parse.)\n");
    out.push_str("# Every other setting has a default; clientseg.toml in the source lists them all.\n\n");
    out.push_str("lang = \"zh\"                        # \"en\" for English words in the report\n\n");
    out.push_str(&format!("[input]\ndir = {}\n", quoted(&dir.display().to_string())));
    for t in Table::all() {
        match seen.iter().find(|s| s.found.table == t) {
            Some(s) => {
                let file = s
                    .found
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default();
                let how = match &s.found.by {
                    FoundBy::Name => "named for the table".to_string(),
                    FoundBy::Word(w) if s.found.sheet.is_some() => format!("its sheet's name holds '{w}'"),
                    FoundBy::Word(w) => format!("its name holds '{w}'"),
                    FoundBy::Headers => "UNCERTAIN: found by its headers".to_string(),
                };
                let row = match s.header_at {
                    Some(a) => format!("header on row {}", a + 1),
                    None => "UNCERTAIN: no header recognised".into(),
                };
                out.push_str(&format!("{} = {}   # {how}; {row}\n", t.name(), quoted(&file)));
            }
            None => {
                let need = if t.optional() { "optional" } else { "REQUIRED" };
                out.push_str(&format!(
                    "# {} = \"<file>\"   ({need}: no file or sheet found for {} / {})\n",
                    t.name(),
                    t.name(),
                    t.zh()
                ));
            }
        }
    }
    let sheets: Vec<(&str, &str)> = seen
        .iter()
        .filter_map(|s| s.found.sheet.as_deref().map(|sh| (s.found.table.name(), sh)))
        .collect();
    if !sheets.is_empty() {
        out.push_str("\n[input.sheets]\n");
        for (t, sh) in sheets {
            out.push_str(&format!("{t} = {}\n", quoted(sh)));
        }
    }
    out.push('\n');
    for s in &seen {
        out.push_str(&columns_section(s));
    }
    Ok(out)
}

fn columns_section(s: &Seen) -> String {
    let t = s.found.table;
    let mut out = format!("# {} ({}): headers found: {}\n", t.name(), t.zh(), s.headers.join(", "));
    out.push_str(&format!("[columns.{}]\n", t.name()));
    for c in t.columns() {
        match s.matched.columns.iter().find(|m| m.column == *c) {
            Some(m) => {
                let note = match &m.how {
                    How::Contains(w) => format!("   # UNCERTAIN: the header holds '{w}'; check it"),
                    _ => String::new(),
                };
                out.push_str(&format!("{c} = {}{note}\n", quoted(&m.header)));
            }
            None => {
                let could: Vec<&str> = s
                    .matched
                    .ambiguous
                    .iter()
                    .filter(|(_, cols)| cols.iter().any(|x| x == c))
                    .map(|(h, _)| h.as_str())
                    .collect();
                let need = if t.required().contains(c) {
                    "REQUIRED, not recognised"
                } else {
                    "optional"
                };
                if could.is_empty() {
                    out.push_str(&format!("# {c} = \"<your header>\"   ({need})\n"));
                } else {
                    out.push_str(&format!(
                        "# {c} = {}   ({need}; UNCERTAIN: that header could be another column too)\n",
                        quoted(could[0])
                    ));
                }
            }
        }
    }
    let used = |h: &String| {
        s.matched.columns.iter().any(|m| &m.header == h) || s.matched.ambiguous.iter().any(|(a, _)| a == h)
    };
    let left: Vec<&str> = s.headers.iter().filter(|h| !used(h)).map(String::as_str).collect();
    if !left.is_empty() {
        out.push_str(&format!("# not used by clientseg: {}\n", left.join(", ")));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_of_chinese_exports_is_mapped_and_uncertain_lines_marked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("客户档案.csv"),
            "客户档案（导出日期：2026-01-02）\n客户编码,客户名称,服务费(元/月),负责会计\nC1,甲,300,张三\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("收费明细.csv"),
            "客户编码,收费日期,收费金额(元),日期\nC1,2026-01-05,300,2026-01-06\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("做账记录.csv"),
            "客户编码,期间,本月凭证张数\nC1,2026-01,12\n",
        )
        .unwrap();
        let text = config_text(dir.path()).unwrap();
        assert!(text.contains("clients = \"客户档案.csv\""), "{text}");
        assert!(text.contains("header on row 2"), "{text}");
        assert!(text.contains("monthly_fee = \"服务费(元/月)\""), "{text}");
        assert!(text.contains("amount = \"收费金额(元)\""), "{text}");
        assert!(text.contains("vouchers = \"本月凭证张数\"   # UNCERTAIN"), "{text}");
        assert!(text.contains("# paid_date = \"日期\""), "{text}");
        let raw: crate::config::RawConfig = toml::from_str(&text).unwrap();
        assert_eq!(raw.columns["billing"]["invoice_date"], "收费日期");
        // Headers with quotes, backslashes and control characters stay valid TOML.
        for h in ["a \"b\"", "c\\d", "e\u{7}f", "g\th"] {
            let v: toml::Table = toml::from_str(&format!("x = {}", quoted(h))).unwrap();
            assert_eq!(v["x"].as_str(), Some(h));
        }
    }
}
