//! `actions/<accountant>.html`: one page per accountant with this month's actions, their
//! clients by tier and their workload, for a phone: no scripts, nothing loaded from the
//! network, nothing wider than the screen (cards, not tables; long words wrap).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use polars::prelude::*;

use crate::analysis::pricing::f64_column;
use crate::analysis::AnalysisError;
use crate::analysis::{chunk, TextView};
use crate::format::Lang;
use crate::format::{esc, esc_into};

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
.list{list-style:none;padding:0;margin:0}\
.list li{border:1px solid #ddd;border-left:6px solid #95a5a6;border-radius:8px;padding:8px 10px;margin:8px 0}\
.p1{border-left-color:#c0392b!important}.p2{border-left-color:#e67e22!important}\
.p1::before,.p2::before{font-size:.85em;font-weight:600;margin-right:.4em}\
.p1::before{color:#c0392b}.p2::before{color:#b3591a}\
.meta{color:#555;font-size:.9em}\
a{color:#1f5f9e}";

/// How priorities 1 and 2 are marked on a card (the style's generated text), in words.
fn priority_style(zh: bool) -> &'static str {
    if zh {
        ".p1::before{content:'紧急'}.p2::before{content:'尽快'}"
    } else {
        ".p1::before{content:'urgent'}.p2::before{content:'soon'}"
    }
}

/// An action type's id (a link target or an element id) and its words, each escaped,
/// between the given pieces of markup.
fn type_words(h: &mut String, open: &str, id: &str, between: &str, words: &str) {
    h.push_str(open);
    esc_into(h, id);
    h.push_str(between);
    esc_into(h, words);
}

/// The action list's columns a page shows.
struct Cards<'a> {
    owner: TextView<'a>,
    client: TextView<'a>,
    name: TextView<'a>,
    kind: TextView<'a>,
    words: TextView<'a>,
    due: TextView<'a>,
    reason: TextView<'a>,
    priority: Vec<f64>,
}

/// Per accountant: clients by tier (in the run's words, in tier order) and hours a month,
/// from accountants.parquet's table.
type Workloads = std::collections::HashMap<String, (Vec<(String, u32)>, f64)>;

fn workloads(accountants: Option<&DataFrame>, tiers: &[(String, String)]) -> Workloads {
    let mut book = Workloads::new();
    let Some(df) = accountants else { return book };
    let names = texts(df, "accountant");
    let names = TextView::of(&names);
    let hours = numbers(df, "monthly_hours");
    let counts: Vec<(&str, Vec<f64>)> = tiers
        .iter()
        .map(|(id, shown)| (shown.as_str(), numbers(df, &format!("clients_{id}"))))
        .collect();
    for (i, h) in hours.iter().enumerate() {
        let by_tier = counts
            .iter()
            .filter_map(|(shown, c)| c.get(i).filter(|v| **v > 0.0).map(|v| (shown.to_string(), *v as u32)))
            .collect();
        book.insert(names.get(i).to_string(), (by_tier, *h));
    }
    book
}

/// Distinct file names, even for names that differ only in punctuation.
fn stems<'a>(owners: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, String> {
    let mut stems: BTreeMap<&str, String> = BTreeMap::new();
    let mut taken: std::collections::HashSet<String> = Default::default();
    for o in owners {
        let base = file_stem(o);
        let mut stem = base.clone();
        let mut n = 2;
        while !taken.insert(stem.clone()) {
            stem = format!("{base}-{n}");
            n += 1;
        }
        stems.insert(o, stem);
    }
    stems
}

fn write_file(path: std::path::PathBuf, text: String) -> Result<(), AnalysisError> {
    std::fs::write(&path, text).map_err(|e| AnalysisError::Write {
        path: path.clone(),
        message: e.to_string(),
    })
}

/// Writes one page per owner of `actions` (and index.html) into `dir`; returns the file
/// names, relative to the run folder.
pub fn write_pages(
    dir: &Path,
    actions: &DataFrame,
    accountants: Option<&DataFrame>,
    tiers: &[(String, String)],
    lang: Lang,
    snapshot: &str,
) -> Result<Vec<String>, AnalysisError> {
    std::fs::create_dir_all(dir).map_err(|e| AnalysisError::Write {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let zh = lang == Lang::Zh;
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
    let none = StringChunked::full_null("".into(), 0);
    let [owner, client, name, kind, words, due, reason]: [TextView; 7] =
        std::array::from_fn(|k| TextView::of(columns.get(k).unwrap_or(&none)));
    let cards = Cards {
        owner,
        client,
        name,
        kind,
        words,
        due,
        reason,
        priority: numbers(actions, "priority"),
    };
    let mut grouped: std::collections::HashMap<&str, Vec<usize>, foldhash::fast::RandomState> = Default::default();
    for i in 0..actions.height() {
        grouped.entry(cards.owner.get(i)).or_default().push(i);
    }
    let by_owner: BTreeMap<&str, Vec<usize>> = grouped.into_iter().collect();
    let book = workloads(accountants, tiers);
    let stems = stems(by_owner.keys().copied());
    // One page after the other, on the caller's thread: the pages are written beside the
    // tables, whose writers keep the thread pool busy (made in the pool, the pages waited
    // for it most of the stage). Files created side by side in one folder would also wait
    // on its lock, spinning.
    let mut files = Vec::with_capacity(by_owner.len() + 1);
    for (o, rows) in &by_owner {
        let stem = stems.get(o).cloned().unwrap_or_else(|| file_stem(o));
        let h = owner_page(o, rows, &cards, book.get(*o), zh, snapshot);
        write_file(dir.join(format!("{stem}.html")), h)?;
        files.push(format!("actions/{stem}.html"));
    }
    write_file(dir.join("index.html"), index_page(&by_owner, &stems, zh, snapshot))?;
    files.push("actions/index.html".into());
    Ok(files)
}

/// One accountant's page: the action types as links, the workload, then a list of cards
/// per type.
fn owner_page(
    o: &str,
    rows: &[usize],
    c: &Cards,
    workload: Option<&(Vec<(String, u32)>, f64)>,
    zh: bool,
    snapshot: &str,
) -> String {
    let t = |en: &'static str, z: &'static str| if zh { z } else { en };
    let mut h = String::with_capacity(256 * rows.len() + 2000);
    h.push_str(&format!(
            "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}{}</style></head><body>",
            if zh { "zh" } else { "en" },
            esc(o),
            priority_style(zh)
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
    // One list per action type, the type with the most urgent action first (the
    // rows come most urgent first); in each, most urgent first.
    // (type, its words, its rows)
    let mut kinds: Vec<(&str, &str, Vec<usize>)> = Vec::new();
    for &i in rows.iter() {
        match kinds.iter_mut().find(|(k, _, _)| *k == c.kind.get(i)) {
            Some((_, _, v)) => v.push(i),
            None => kinds.push((c.kind.get(i), c.words.get(i), vec![i])),
        }
    }
    // The types and their counts, each a link to its list.
    h.push_str("<ul class=\"pills\">");
    for (k, w, list) in &kinds {
        type_words(&mut h, "<li><a href=\"#", k, "\">", w);
        let _ = write!(h, " {}</a></li>", list.len());
    }
    h.push_str("</ul>");
    if let Some((by_tier, hrs)) = workload {
        h.push_str(&format!(
            "<h2>{}</h2><ul class=\"pills\">",
            t("Clients and workload", "客户与工作量")
        ));
        for (tier, n) in by_tier {
            h.push_str(&format!("<li>{} {n}</li>", esc(tier)));
        }
        h.push_str(&format!("<li>{} {:.0}</li></ul>", t("hours a month", "月工时"), hrs));
    }
    let due_word = t("due", "截止");
    for (k, w, list) in &kinds {
        type_words(&mut h, "<section id=\"", k, "\"><h2>", w);
        let _ = write!(h, " · {}</h2><ul class=list>", list.len());
        for &i in list {
            // Pushed, not formatted: a million cards.
            let p = c.priority.get(i).copied().unwrap_or(3.0).clamp(0.0, 9.0) as u8;
            h.push_str("<li class=p");
            h.push(char::from(b'0' + p));
            h.push_str(" data-client=\"");
            esc_into(&mut h, c.client.get(i));
            h.push_str("\"><b>");
            esc_into(&mut h, c.name.get(i));
            h.push_str("</b> ");
            esc_into(&mut h, c.client.get(i));
            h.push_str("<br>");
            h.push_str(due_word);
            h.push(' ');
            esc_into(&mut h, c.due.get(i));
            h.push_str(" · ");
            esc_into(&mut h, c.reason.get(i));
            h.push_str("</li>");
        }
        h.push_str("</ul></section>");
    }
    h.push_str("</body></html>");
    h
}

/// index.html: every accountant with their count of actions.
fn index_page(
    by_owner: &BTreeMap<&str, Vec<usize>>,
    stems: &BTreeMap<&str, String>,
    zh: bool,
    snapshot: &str,
) -> String {
    let t = |en: &'static str, z: &'static str| if zh { z } else { en };
    let mut idx = format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1><p class=\"meta\">{} {}</p><ul>",
        if zh { "zh" } else { "en" },
        t("Actions by accountant", "各会计本月行动"),
        t("Actions by accountant", "各会计本月行动"),
        t("data up to", "数据截至"),
        esc(snapshot)
    );
    for (o, rows) in by_owner {
        let stem = stems.get(o).cloned().unwrap_or_default();
        idx.push_str(&format!(
            "<li><a href=\"{}.html\">{}</a> · {}</li>",
            esc(&stem),
            esc(o),
            rows.len()
        ));
    }
    idx.push_str("</ul></body></html>");
    idx
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
