//! `clientseg init DIR`: a commented clientseg.toml for a folder of exports, with every
//! header found mapped to the contract where it can tell (客户编号 -> client_id), so that
//! the next run is one edit away.

use std::path::Path;

use crate::ingest::{self, IngestError};
use crate::schema::Table;

/// Other names firms give the contract's columns (besides the canonical name and
/// [`crate::format::column_zh`]).
fn aliases(column: &str) -> &'static [&'static str] {
    match column {
        "client_id" => &[
            "客户ID",
            "客户代码",
            "客户号",
            "编号",
            "统一社会信用代码",
            "id",
            "customer_id",
        ],
        "name" => &["客户", "公司名称", "企业名称", "名称", "client_name", "customer_name"],
        "monthly_fee" => &["月费", "服务费", "代账费", "fee"],
        "accountant" => &["会计", "负责会计", "记账会计", "owner"],
        "invoice_date" => &["开票时间", "账单日期", "日期", "date"],
        "amount" => &["开票金额", "应收金额", "收费金额", "price"],
        "paid_date" => &["到账日期", "付款日期", "收款时间"],
        "due_date" => &["到期日", "应付日期"],
        "month" => &["所属月份", "期间", "会计期间"],
        "hours" => &["耗时", "工时（小时）"],
        "late_documents" => &["资料延迟次数", "迟交资料"],
        "tickets" => &["咨询", "工单数"],
        _ => &[],
    }
}

/// The header of `headers` that is `column` of the contract, if any.
pub fn match_header(column: &str, headers: &[String]) -> Option<String> {
    let norm = |s: &str| s.trim().to_lowercase().replace([' ', '-'], "_");
    let zh = crate::format::column_zh(column);
    headers
        .iter()
        .find(|h| norm(h) == column)
        .or_else(|| headers.iter().find(|h| zh.is_some_and(|z| h.trim() == z)))
        .or_else(|| {
            headers
                .iter()
                .find(|h| aliases(column).iter().any(|a| norm(h) == norm(a)))
        })
        .cloned()
}

/// The column mapping [`config_text`] writes, for a run without a config file: every
/// header recognised under another name.
pub fn mapping(dir: &Path) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for t in Table::all() {
        let Some(headers) = ingest::find_table_file(dir, t.name()).and_then(|p| ingest::headers(&p).ok()) else {
            continue;
        };
        let m: std::collections::BTreeMap<String, String> = t
            .columns()
            .iter()
            .filter_map(|c| {
                match_header(c, &headers)
                    .filter(|h| h.trim() != *c)
                    .map(|h| (c.to_string(), h))
            })
            .collect();
        if !m.is_empty() {
            out.insert(t.name().to_string(), m);
        }
    }
    out
}

/// A commented config for the exports in `dir`.
pub fn config_text(dir: &Path) -> Result<String, IngestError> {
    let mut out = String::new();
    out.push_str("# clientseg configuration, written by `clientseg init` from the exports in\n");
    out.push_str(&format!(
        "# {}. Check the [columns.*] sections, then run:\n",
        dir.display()
    ));
    out.push_str("#   clientseg run --config clientseg.toml\n");
    out.push_str("# Every other setting has a default; clientseg.toml in the source lists them all.\n\n");
    out.push_str("lang = \"zh\"                        # \"en\" for English words in the report\n\n");
    out.push_str(&format!("[input]\ndir = {:?}\n\n", dir.display().to_string()));
    for t in Table::all() {
        let Some(path) = ingest::find_table_file(dir, t.name()) else {
            let need = if t.optional() { "optional" } else { "REQUIRED" };
            out.push_str(&format!(
                "# {}: no {}.csv / .xlsx / .parquet in the folder ({need})\n\n",
                t.name(),
                t.name()
            ));
            continue;
        };
        let headers = ingest::headers(&path)?;
        out.push_str(&format!(
            "# {} ({}): headers found: {}\n",
            t.name(),
            path.file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default(),
            headers.join(", ")
        ));
        out.push_str(&format!("[columns.{}]\n", t.name()));
        let mut used: Vec<String> = Vec::new();
        for c in t.columns() {
            match match_header(c, &headers) {
                Some(h) if h.trim() == *c => {
                    used.push(h);
                    out.push_str(&format!("# {c} = {c:?}        (already the contract's name)\n"));
                }
                Some(h) => {
                    out.push_str(&format!("{c} = {h:?}\n"));
                    used.push(h);
                }
                None if t.required().contains(c) => {
                    out.push_str(&format!("# REQUIRED, not recognised: {c} = \"<your header>\"\n"));
                }
                None => out.push_str(&format!("# {c} = \"<your header>\"   (optional)\n")),
            }
        }
        let left: Vec<&String> = headers.iter().filter(|h| !used.contains(h)).collect();
        if !left.is_empty() {
            out.push_str(&format!(
                "# not used by clientseg: {}\n",
                left.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_and_english_headers_map_to_the_contract() {
        let h: Vec<String> = ["客户编号", "Name", "月服务费", "负责会计", "其他"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(match_header("client_id", &h).as_deref(), Some("客户编号"));
        assert_eq!(match_header("name", &h).as_deref(), Some("Name"));
        assert_eq!(match_header("monthly_fee", &h).as_deref(), Some("月服务费"));
        assert_eq!(match_header("accountant", &h).as_deref(), Some("负责会计"));
        assert_eq!(match_header("industry", &h), None);
    }
}
