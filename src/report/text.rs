//! The run's words: the summary printed at the end of a run and the decision rules.

use std::path::Path;

use crate::analysis::SegmentationSummary;
use crate::model::SegmentModel;
use crate::persist::Manifest;
use crate::stability::{SegmentMatch, SegmentStatus, Stability};
use crate::validate;

/// The decision rules as text, per segment.
pub fn rules_text(title: &str, m: &SegmentModel) -> String {
    let mut out = format!(
        "{title}: decision tree, hold-out accuracy {:.1}% on {} clients\n",
        m.tree.holdout_accuracy * 100.0,
        m.tree.holdout_rows
    );
    for (i, seg) in m.segments.iter().enumerate() {
        out.push_str(&format!("\n{} {} ({})\n", seg.id, seg.name_en, seg.name_zh));
        let rules: Vec<_> = m.tree.rules.iter().filter(|r| r.class == i).collect();
        if rules.is_empty() {
            out.push_str("  (no leaf of the tree predicts this segment)\n");
        }
        for r in rules {
            let cond = if r.conditions.is_empty() {
                "always".to_string()
            } else {
                r.conditions.join(" AND ")
            };
            out.push_str(&format!(
                "  IF {cond}  -> {} clients, {:.0}% in this segment\n",
                r.support,
                r.purity * 100.0
            ));
        }
    }
    out
}

pub fn rows_text(counts: &[validate::TableCounts]) -> String {
    rows_text_in(counts, false)
}

pub fn rows_text_in(counts: &[validate::TableCounts], zh: bool) -> String {
    let mut out = String::from(if zh {
        "行数（输入 = 接受 + 拒绝）：\n"
    } else {
        "rows (input = accepted + rejected):\n"
    });
    for r in counts {
        let name = r.table.name();
        let shown = if zh {
            crate::format::table_zh(name).unwrap_or(name)
        } else {
            name
        };
        // Chinese names are two columns wide per character.
        let pad = 9usize.saturating_sub(shown.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum());
        out.push_str(&format!(
            "  {shown}{} {:>9} = {:>9} + {:>6}\n",
            " ".repeat(pad),
            r.input,
            r.accepted,
            r.rejected
        ));
    }
    out
}

/// How the input files were read, for the files that were not already in the contract's
/// form: the header row, each header's column (`?` where the match is uncertain), the
/// rows skipped. Nothing for plain files.
pub fn mapping_text(inputs: &[crate::ingest::InputFile], zh: bool) -> String {
    let mut out = String::new();
    for f in inputs {
        let l = &f.layout;
        let renamed: Vec<String> = l
            .columns
            .iter()
            .filter(|c| c.header != c.column)
            .map(|c| {
                // A Chinese analyst reads the column's Chinese name, not its identifier.
                let column = match crate::format::column_zh(&c.column) {
                    Some(z) if zh => z,
                    _ => c.column.as_str(),
                };
                format!("{}→{column}{}", c.header, if c.how.uncertain() { "?" } else { "" })
            })
            .collect();
        let plain =
            renamed.is_empty() && l.header_row <= 1 && l.sheet.is_none() && l.totals_skipped + l.notes_skipped == 0;
        if plain {
            continue;
        }
        let file = std::path::Path::new(&f.path)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| f.path.clone());
        let sheet = l.sheet.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default();
        let (name, row) = if zh {
            (f.table.zh(), format!("表头第 {} 行", l.header_row))
        } else {
            (f.table.name(), format!("header row {}", l.header_row))
        };
        let columns = match (renamed.is_empty(), zh) {
            (true, _) => "-".to_string(),
            (false, true) => renamed.join("，"),
            (false, false) => renamed.join(", "),
        };
        out.push_str(&if zh {
            format!("输入 {name} ← {file}{sheet}（{row}）：{columns}")
        } else {
            format!("input {name} ← {file}{sheet} ({row}): {columns}")
        });
        if l.totals_skipped + l.notes_skipped > 0 {
            out.push_str(&if zh {
                format!(
                    "；跳过合计行 {} 行、备注或空行 {} 行",
                    l.totals_skipped, l.notes_skipped
                )
            } else {
                format!(
                    "; skipped {} totals row{}, {} note or blank row{}",
                    l.totals_skipped,
                    if l.totals_skipped == 1 { "" } else { "s" },
                    l.notes_skipped,
                    if l.notes_skipped == 1 { "" } else { "s" }
                )
            });
        }
        out.push('\n');
    }
    out
}

/// What the summary says in Chinese that the manifest keeps in English: the analyses'
/// one-line results and the most common input problems.
pub struct ZhWords {
    pub headlines: Vec<String>,
    pub reasons: String,
    /// The run's warnings, in the manifest's order.
    pub warnings: Vec<String>,
}

/// Each segmentation with its segments; where k was chosen, how.
fn segmentations_text(m: &Manifest, zh: bool) -> String {
    let t = |en: &'static str, z: &'static str| if zh { z } else { en };
    let mut out = String::new();
    let seg_line = |s: &SegmentationSummary| {
        s.segments
            .iter()
            .map(|x| {
                if zh {
                    format!("{} {}（{}）", x.id, x.name_zh, x.size)
                } else {
                    format!("{} {} ({})", x.id, x.name_en, x.size)
                }
            })
            .collect::<Vec<_>>()
            .join(" · ")
    };
    for s in &m.segmentations {
        let (en, z) = s.kind.title();
        let title = t(en, z);
        let accuracy = format!(
            "{} {:.1}%",
            t("decision tree hold-out accuracy", "决策树留出集准确率"),
            s.holdout_accuracy * 100.0
        );
        if s.k_scores.is_empty() {
            out.push_str(&format!("{title} (k = {}): {}\n  {accuracy}\n", s.k, seg_line(s)));
            continue;
        }
        out.push_str(&format!(
            "{title} (k = {} {}):\n",
            s.k,
            t(
                "chosen by silhouette, Calinski-Harabasz, Davies-Bouldin",
                "由轮廓系数、Calinski-Harabasz、Davies-Bouldin 选出"
            )
        ));
        out.push_str(t(
            "     k  silhouette   Calinski-H  Davies-B\n",
            "     k    轮廓系数   Calinski-H  Davies-B\n",
        ));
        for k in &s.k_scores {
            let mark = if k.k == s.k { "*" } else { " " };
            out.push_str(&format!(
                "  {mark} {:>2}  {:>10.3}  {:>11.1}  {:>8.3}\n",
                k.k, k.silhouette, k.calinski_harabasz, k.davies_bouldin
            ));
        }
        out.push_str(&format!("  {}\n  {accuracy}\n", seg_line(s)));
    }
    out
}

/// What changed since the previous run: segments kept, new and gone, and clients moved.
fn stability_text(st: &Stability, segmentations: &[SegmentationSummary], zh: bool) -> String {
    let t = |en: &'static str, z: &'static str| if zh { z } else { en };
    let mut out = String::new();
    out.push_str(&format!(
        "{} {}:\n",
        t("compared with", "对比上次运行"),
        st.previous_run
    ));
    let status_zh = |s: SegmentStatus| match s {
        SegmentStatus::Kept => "保持",
        SegmentStatus::New => "新出现",
        SegmentStatus::Gone => "已消失",
    };
    let line = |v: &[SegmentMatch]| {
        v.iter()
            .map(|x| match (x.status, x.distance, zh) {
                (SegmentStatus::Kept, Some(d), false) => format!("{} kept ({d:.2})", x.id),
                (SegmentStatus::Kept, Some(d), true) => format!("{} 保持（{d:.2}）", x.id),
                (status, _, false) => format!("{} {}", x.id, status.as_str()),
                (status, _, true) => format!("{} {}", x.id, status_zh(status)),
            })
            .collect::<Vec<_>>()
            .join(" · ")
    };
    for s in segmentations.iter().filter(|s| !s.kind.ids_by_rank()) {
        if let Some(v) = st.segments.get(s.kind.as_str()).filter(|v| !v.is_empty()) {
            let (en, z) = s.kind.title();
            out.push_str(&format!("  {}: {}\n", t(en, z), line(v)));
        }
    }
    if st.previous_run_dir.is_some() {
        if zh {
            out.push_str(&format!(
                "  客户：{} 个变动，{} 个新增，{} 个离开（migration.csv、transitions.csv）\n",
                st.moved, st.new, st.departed
            ));
        } else {
            out.push_str(&format!(
                "  clients: {} moved, {} new, {} departed (migration.csv, transitions.csv)\n",
                st.moved, st.new, st.departed
            ));
        }
    }
    out
}

/// The run summary printed at the end of `clientseg run`, in Chinese when `zh` is given.
pub fn summary_text(m: &Manifest, dir: &Path, zh: Option<&ZhWords>) -> String {
    let t = |en: &'static str, z: &'static str| if zh.is_some() { z } else { en };
    let mut out = if zh.is_some() {
        format!(
            "clientseg {} · 随机种子 {} · 数据截至 {}\n",
            m.run_id, m.seed, m.snapshot_date
        )
    } else {
        format!(
            "clientseg {} · seed {} · snapshot {}\n",
            m.run_id, m.seed, m.snapshot_date
        )
    };
    out.push_str(&mapping_text(&m.inputs, zh.is_some()));
    out.push_str(&rows_text_in(&m.rows, zh.is_some()));
    if m.reject_lines > 0 {
        out.push_str(&format!(
            "  {}{}\n",
            t("most common problems: ", "最常见的问题："),
            zh.map_or(m.top_reject_reasons.as_str(), |z| z.reasons.as_str())
        ));
    }
    if m.disabled_features.is_empty() {
        out.push_str(t("features: all computed\n", "特征：全部已计算\n"));
    } else {
        out.push_str(t(
            "features switched off (input lacks what they need):\n",
            "已关闭的特征（输入缺少所需数据）：\n",
        ));
        for d in &m.disabled_features {
            let (name, reason) = if zh.is_some() {
                (
                    crate::features::display_name(&d.name, crate::format::Lang::Zh),
                    super::page::disabled_zh(&d.name),
                )
            } else {
                (d.name.clone(), d.reason.clone())
            };
            out.push_str(&format!("  {name}: {reason}\n"));
        }
    }
    out.push_str(&segmentations_text(m, zh.is_some()));
    for line in zh.map_or(&m.headlines, |z| &z.headlines) {
        out.push_str(&format!("{line}\n"));
    }
    if let Some(st) = &m.stability {
        out.push_str(&stability_text(st, &m.segmentations, zh.is_some()));
    }
    let warnings = zh.map_or(&m.warnings, |z| &z.warnings);
    for w in warnings {
        out.push_str(&format!("{}{w}\n", t("warning: ", "警告：")));
    }
    for skipped in &m.skipped_outputs {
        out.push_str(&format!("{}{skipped}\n", t("not written: ", "未写出：")));
    }
    let total: f64 = m.timings.iter().filter(|t| t.within.is_none()).map(|t| t.seconds).sum();
    out.push_str(&format!(
        "{} {total:.1}s\n{} {}\n",
        t("done in", "用时"),
        t("results:", "结果："),
        dir.display()
    ));
    out
}
