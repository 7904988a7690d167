//! `actions/<accountant>.html`: one page per accountant with this month's actions, their
//! clients by tier and their workload, for a phone: no scripts, nothing loaded from the
//! network, nothing wider than the screen (cards, not tables; long words wrap).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;

use super::html::{esc, esc_into};
use super::ReportError;
use crate::analysis::pricing::f64_column;
use crate::analysis::{cells, chunk};
use crate::format::Lang;

fn texts(df: &DataFrame, name: &str) -> StringChunked {
    chunk(df.column(name).ok(), df.height())
}

fn numbers(df: &DataFrame, name: &str) -> Vec<f64> {
    f64_column(df.column(name).ok(), df.height())
}

/// A file name for an accountant: letters and digits (any script) kept, the rest `_`.
pub fn file_stem(owner: &str) -> String {
    let s: String = owner
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "unassigned".into()
    } else {
        s
    }
}

const STYLE: &str = "*{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,'PingFang SC','Microsoft YaHei',sans-serif;margin:0 auto;padding:12px;max-width:860px;color:#222;line-height:1.45;overflow-wrap:anywhere;word-break:break-word}\
h1{font-size:1.25em;margin:.3em 0}h2{font-size:1.05em;margin:1em 0 .4em}\
.pills{display:flex;flex-wrap:wrap;gap:6px;padding:0;margin:0;list-style:none}\
.pills li{background:#eef2f7;border-radius:12px;padding:2px 10px;font-size:.9em}\
.card{border:1px solid #ddd;border-left:6px solid #95a5a6;border-radius:8px;padding:8px 10px;margin:8px 0}\
.p1{border-left-color:#c0392b}.p2{border-left-color:#e67e22}\
.meta{color:#555;font-size:.9em}.client{font-weight:600}\
a{color:#1f5f9e}";

/// Writes one page per owner of `actions` (and index.html) into `dir`; returns the file
/// names, relative to the run folder.
pub fn write_pages(
    dir: &Path,
    actions: &DataFrame,
    labels: &DataFrame,
    lang: Lang,
    snapshot: &str,
) -> Result<Vec<String>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::Write {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let zh = lang == Lang::Zh;
    let t = |en: &'static str, z: &'static str| if zh { z } else { en };
    let columns: Vec<StringChunked> = [
        "owner",
        "client_id",
        "name",
        "action",
        "action_words",
        "due_date",
        "reason",
    ]
    .iter()
    .map(|c| texts(actions, c))
    .collect();
    let [owner, client, name, kind, words, due, reason]: [Vec<&str>; 7] =
        std::array::from_fn(|k| columns.get(k).map(cells).unwrap_or_default());
    let priority = numbers(actions, "priority");
    let mut by_owner: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, o) in owner.iter().enumerate() {
        by_owner.entry(o).or_default().push(i);
    }
    // Clients by tier and hours a month, per accountant who (will) serve them.
    // Tiers by name in the run's language ("V1 high value", "高价值客户"), in tier order.
    let tier_name = if zh { "value_tier_zh" } else { "value_tier_en" };
    let label_columns: Vec<StringChunked> = ["proposed_accountant", "accountant", "value_tier", tier_name]
        .iter()
        .map(|c| texts(labels, c))
        .collect();
    let [proposed, current, tier_ids, tier_names]: [Vec<&str>; 4] =
        std::array::from_fn(|k| label_columns.get(k).map(cells).unwrap_or_default());
    let mut named: std::collections::HashMap<&str, String> = Default::default();
    for (id, name) in tier_ids.iter().zip(&tier_names) {
        if !named.contains_key(id) {
            let shown = match (zh, name.is_empty()) {
                (_, true) => id.to_string(),
                (true, false) => name.to_string(),
                (false, false) => format!("{id} {name}"),
            };
            named.insert(id, shown);
        }
    }
    let tiers = &tier_ids;
    let hours = numbers(labels, "monthly_hours");
    let mut book: std::collections::HashMap<&str, (BTreeMap<&str, usize>, f64)> = Default::default();
    for i in 0..labels.height().min(hours.len()).min(tiers.len()) {
        if !hours[i].is_finite() {
            continue;
        }
        let who = if proposed[i].is_empty() {
            current[i]
        } else {
            proposed[i]
        };
        let e = book.entry(who).or_default();
        *e.0.entry(tiers[i]).or_default() += 1;
        e.1 += hours[i];
    }
    // Distinct file names, even for names that differ only in punctuation.
    let mut stems: BTreeMap<&str, String> = BTreeMap::new();
    let mut taken: std::collections::HashSet<String> = Default::default();
    for o in by_owner.keys() {
        let base = file_stem(o);
        let mut stem = base.clone();
        let mut n = 2;
        while !taken.insert(stem.clone()) {
            stem = format!("{base}-{n}");
            n += 1;
        }
        stems.insert(o, stem);
    }
    let owners: Vec<(&str, &Vec<usize>)> = by_owner.iter().map(|(o, v)| (*o, v)).collect();
    owners
        .par_iter()
        .map(|(o, rows)| {
            let mut h = String::with_capacity(600 * rows.len() + 2000);
            h.push_str(&format!(
                "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>",
                if zh { "zh" } else { "en" },
                esc(o)
            ));
            h.push_str(&format!(
                "<p class=\"meta\"><a href=\"index.html\">{}</a></p><h1>{} · {}</h1><p class=\"meta\">{} {} · {} {}</p>",
                t("all accountants", "全部会计"),
                esc(o),
                t("this month", "本月行动"),
                t("data up to", "数据截至"),
                esc(snapshot),
                rows.len(),
                t("actions", "项行动")
            ));
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for &i in rows.iter() {
                *counts.entry(words[i]).or_default() += 1;
            }
            h.push_str("<ul class=\"pills\">");
            for (w, c) in &counts {
                h.push_str(&format!("<li>{} {c}</li>", esc(w)));
            }
            h.push_str("</ul>");
            if let Some((by_tier, hrs)) = book.get(o) {
                h.push_str(&format!("<h2>{}</h2><ul class=\"pills\">", t("Clients and workload", "客户与工作量")));
                for (tier, c) in by_tier {
                    let shown = named.get(tier).map_or(if tier.is_empty() { "-" } else { tier }, |s| s.as_str());
                    h.push_str(&format!("<li>{} {c}</li>", esc(shown)));
                }
                h.push_str(&format!("<li>{} {:.0}</li></ul>", t("hours a month", "月工时"), hrs));
            }
            h.push_str(&format!("<h2>{}</h2>", t("Actions, most urgent first", "行动（按紧急程度）")));
            let (due_word, priority_word) = (t("due", "截止"), t("priority", "优先级"));
            for &i in rows.iter() {
                let p = priority[i] as u8;
                let _ = write!(h, "<div class=\"card p{p}\" data-client=\"");
                esc_into(&mut h, client[i]);
                h.push_str("\" data-action=\"");
                esc_into(&mut h, kind[i]);
                h.push_str("\"><div class=\"meta\">");
                esc_into(&mut h, words[i]);
                let _ = write!(h, " · {due_word} ");
                esc_into(&mut h, due[i]);
                let _ = write!(h, " · {priority_word} {p}</div><div class=\"client\">");
                esc_into(&mut h, name[i]);
                h.push_str(" (");
                esc_into(&mut h, client[i]);
                h.push_str(")</div><div>");
                esc_into(&mut h, reason[i]);
                h.push_str("</div></div>");
            }
            h.push_str("</body></html>");
            let stem = stems.get(o).cloned().unwrap_or_else(|| file_stem(o));
            let path = dir.join(format!("{stem}.html"));
            std::fs::write(&path, h).map_err(|e| ReportError::Write {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok(format!("actions/{stem}.html"))
        })
        .collect::<Result<Vec<_>, ReportError>>()
        .and_then(|mut files| {
            let mut idx = format!(
                "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1><p class=\"meta\">{} {}</p><ul>",
                if zh { "zh" } else { "en" },
                t("Actions by accountant", "各会计本月行动"),
                t("Actions by accountant", "各会计本月行动"),
                t("data up to", "数据截至"),
                esc(snapshot)
            );
            for (o, rows) in &owners {
                let stem = stems.get(o).cloned().unwrap_or_default();
                idx.push_str(&format!(
                    "<li><a href=\"{}.html\">{}</a> · {}</li>",
                    esc(&stem),
                    esc(o),
                    rows.len()
                ));
            }
            idx.push_str("</ul></body></html>");
            let path = dir.join("index.html");
            std::fs::write(&path, idx).map_err(|e| ReportError::Write {
                path: path.clone(),
                message: e.to_string(),
            })?;
            files.push("actions/index.html".into());
            Ok(files)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_keep_names_and_drop_path_characters() {
        assert_eq!(file_stem("王芳"), "王芳");
        assert_eq!(file_stem("../etc/x"), "___etc_x");
        assert_eq!(file_stem(""), "unassigned");
    }

    #[test]
    fn escaping_in_place_matches_escaping_to_a_string() {
        let s = "a<b & \"c\"> 王芳";
        let mut out = String::from("x");
        esc_into(&mut out, s);
        assert_eq!(out, "xa&lt;b &amp; &quot;c&quot;&gt; 王芳");
        assert_eq!(esc(s), &out[1..]);
    }
}
