//! The run's words: the summary printed at the end of a run and the decision rules.

use std::path::Path;

use crate::analysis::SegmentationSummary;
use crate::model::SegmentModel;
use crate::persist::Manifest;
use crate::stability::{SegmentMatch, SegmentStatus};
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
    let mut out = String::from("rows (input = accepted + rejected):\n");
    for r in counts {
        out.push_str(&format!(
            "  {:<9} {:>9} = {:>9} + {:>6}\n",
            r.table.name(),
            r.input,
            r.accepted,
            r.rejected
        ));
    }
    out
}

/// The run summary printed at the end of `clientseg run`.
pub fn summary_text(m: &Manifest, dir: &Path) -> String {
    let mut out = format!(
        "clientseg {} · seed {} · snapshot {}\n",
        m.run_id, m.seed, m.snapshot_date
    );
    out.push_str(&rows_text(&m.rows));
    if m.reject_lines > 0 {
        out.push_str(&format!("  most common problems: {}\n", m.top_reject_reasons));
    }
    if m.disabled_features.is_empty() {
        out.push_str("features: all computed\n");
    } else {
        out.push_str("features switched off (input lacks what they need):\n");
        for d in &m.disabled_features {
            out.push_str(&format!("  {}: {}\n", d.name, d.reason));
        }
    }
    let seg_line = |s: &SegmentationSummary| {
        s.segments
            .iter()
            .map(|x| format!("{} {} ({})", x.id, x.name_en, x.size))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    out.push_str(&format!(
        "value tiers (k = {}): {}\n  decision tree hold-out accuracy {:.1}%\n",
        m.value.k,
        seg_line(&m.value),
        m.value.holdout_accuracy * 100.0
    ));
    match &m.behaviour {
        Some(b) => {
            out.push_str(&format!(
                "behaviour segments (k = {} chosen by silhouette, Calinski-Harabasz, Davies-Bouldin):\n",
                b.k
            ));
            out.push_str("     k  silhouette   Calinski-H  Davies-B\n");
            for k in &b.k_scores {
                let mark = if k.k == b.k { "*" } else { " " };
                out.push_str(&format!(
                    "  {mark} {:>2}  {:>10.3}  {:>11.1}  {:>8.3}\n",
                    k.k, k.silhouette, k.calinski_harabasz, k.davies_bouldin
                ));
            }
            out.push_str(&format!(
                "  {}\n  decision tree hold-out accuracy {:.1}%\n",
                seg_line(b),
                b.holdout_accuracy * 100.0
            ));
        }
        None => out.push_str("behaviour segments: skipped, no behaviour feature could be computed from the input\n"),
    }
    for line in &m.headlines {
        out.push_str(&format!("{line}\n"));
    }
    if let Some(st) = &m.stability {
        out.push_str(&format!("compared with {}:\n", st.previous_run));
        let line = |v: &[SegmentMatch]| {
            v.iter()
                .map(|x| match (x.status, x.distance) {
                    (SegmentStatus::Kept, Some(d)) => format!("{} kept ({d:.2})", x.id),
                    (status, _) => format!("{} {}", x.id, status.as_str()),
                })
                .collect::<Vec<_>>()
                .join(" · ")
        };
        if !st.behaviour.is_empty() {
            out.push_str(&format!("  behaviour segments: {}\n", line(&st.behaviour)));
        }
        if st.previous_run_dir.is_some() {
            out.push_str(&format!(
                "  clients: {} moved, {} new, {} departed (migration.csv, transitions.csv)\n",
                st.moved, st.new, st.departed
            ));
        }
    }
    for w in &m.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    for skipped in &m.skipped_outputs {
        out.push_str(&format!("not written: {skipped}\n"));
    }
    let total: f64 = m.timings.iter().map(|t| t.seconds).sum();
    out.push_str(&format!("done in {total:.1}s\nresults: {}\n", dir.display()));
    out
}
