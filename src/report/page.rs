//! The report's content from a run's results: chart data, one card per segment, and the
//! page; `html` lays it out.

use polars::prelude::*;

use super::html::{Card, Page};
use super::{ChartData, ChartFile, ServicePlan};
use crate::analysis::{Outcome, Section, Segmentation, Warning};
use crate::cluster;
use crate::features::{display_name, feature_def, FeatureTable, CATALOGUE};
use crate::format::Lang;
use crate::ingest::InputFile;
use crate::segments::Segment;
use crate::stability::Stability;
use crate::validate::Validated;

/// The run's segmentation whose ids follow a rank (the tiers: sizes, revenue, a table),
/// and the one whose k was chosen among several (a scatter, profiles, the choice of k).
fn segmentations(outcomes: &[Outcome]) -> (Option<&Segmentation>, Option<&Segmentation>) {
    let all = || outcomes.iter().filter_map(|o| o.segmentation.as_ref());
    (
        all().find(|s| s.kind.ids_by_rank()),
        all().find(|s| !s.kind.ids_by_rank()),
    )
}

/// What the charts show, from the fitted segmentations and segments.csv.
pub fn chart_data(lang: Lang, seed: u64, outcomes: &[Outcome], segments_df: &DataFrame) -> ChartData {
    let (value, behaviour) = segmentations(outcomes);
    let sizes = |f: &Segmentation| {
        let mut n = vec![0usize; f.model.segments.len()];
        f.labels.iter().for_each(|&l| n[l] += 1);
        n
    };
    let name = |seg: &Segment| match lang {
        Lang::En => seg.name_en.clone(),
        Lang::Zh => seg.name_zh.clone(),
    };
    let ranked: &[Segment] = value.map_or(&[], |v| v.model.segments.as_slice());
    let revenue_share: Vec<f64> = ranked
        .iter()
        .map(|seg| {
            let mask = segments_df.column("segment").ok().and_then(|c| c.str().ok().cloned());
            let share = segments_df
                .column("revenue_share")
                .ok()
                .and_then(|c| c.f64().ok().cloned());
            match (mask, share) {
                (Some(m), Some(sh)) => (0..segments_df.height())
                    .find(|&i| m.get(i) == Some(seg.id.as_str()))
                    .and_then(|i| sh.get(i))
                    .unwrap_or(0.0),
                _ => 0.0,
            }
        })
        .collect();
    let (scatter, profile, profile_features, bnames, bsizes, k_scores, chosen) = match behaviour {
        Some(b) => {
            let idx = cluster::sample_rows(b.z.nrows(), 3000, seed ^ 0xC4A7);
            let pts = super::pca::pca_2d(b.z.view(), &idx);
            let scatter = pts.iter().zip(&idx).map(|((x, y), &i)| (*x, *y, b.labels[i])).collect();
            let profile = b.model.segments.iter().map(|seg| seg.centroid.clone()).collect();
            (
                scatter,
                profile,
                b.model.features.iter().map(|f| display_name(f, lang)).collect(),
                b.model.segments.iter().map(name).collect(),
                sizes(b),
                b.k_scores.clone(),
                Some(b.model.segments.len()),
            )
        }
        None => (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            None,
        ),
    };
    ChartData {
        lang,
        k_scores,
        chosen_k: chosen,
        scatter,
        behaviour_names: bnames,
        behaviour_sizes: bsizes,
        value_names: ranked.iter().map(name).collect(),
        value_sizes: value.map(sizes).unwrap_or_default(),
        profile_features,
        profile,
        revenue_share,
    }
}

/// One segment's row of segments.csv as (name, value) pairs.
fn segment_row(segments: &DataFrame, id: &str) -> Vec<(String, f64)> {
    let Ok(ids) = segments.column("segment").and_then(|c| c.str().cloned()) else {
        return Vec::new();
    };
    let Some(i) = ids.iter().position(|v| v == Some(id)) else {
        return Vec::new();
    };
    segments
        .columns()
        .iter()
        .filter(|c| c.dtype().is_primitive_numeric())
        .filter_map(|c| {
            let v = c.cast(&DataType::Float64).ok()?.f64().ok()?.get(i)?;
            Some((c.name().to_string(), v))
        })
        .collect()
}

fn cards(lang: Lang, f: &Segmentation, segments: &DataFrame) -> Vec<Card> {
    let zh = lang == Lang::Zh;
    let total: usize = f.labels.len().max(1);
    let mut sizes = vec![0usize; f.model.segments.len()];
    f.labels.iter().for_each(|&l| sizes[l] += 1);
    f.model
        .segments
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let row = segment_row(segments, &seg.id);
            let get = |k: &str| row.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
            let mut distinct: Vec<(f64, String)> = f
                .model
                .features
                .iter()
                .zip(&seg.centroid)
                .filter(|(_, z)| z.abs() >= 0.5)
                .map(|(name, z)| {
                    let name = display_name(name, lang);
                    let text = match (zh, *z > 0.0) {
                        (false, true) => format!("{name} is well above the average client ({z:+.1} sd)"),
                        (false, false) => format!("{name} is well below the average client ({z:+.1} sd)"),
                        (true, true) => format!("{name} 明显高于平均水平（{z:+.1} 个标准差）"),
                        (true, false) => format!("{name} 明显低于平均水平（{z:+.1} 个标准差）"),
                    };
                    (z.abs(), text)
                })
                .collect();
            distinct.sort_by(|a, b| b.0.total_cmp(&a.0));
            let rules = f
                .model
                .tree
                .rules
                .iter()
                .filter(|r| r.class == i)
                .map(|r| {
                    let pct = r.purity * 100.0;
                    match (zh, r.conditions.is_empty()) {
                        (false, true) => format!("always -> {} clients, {pct:.0}% in this segment", r.support),
                        (false, false) => format!(
                            "IF {} -> {} clients, {pct:.0}% in this segment",
                            r.conditions.join(" AND "),
                            r.support
                        ),
                        (true, true) => format!("全部 → {} 位客户，{pct:.0}% 属于此分群", r.support),
                        (true, false) => format!(
                            "如果 {} → {} 位客户，{pct:.0}% 属于此分群",
                            readable_rule(&r.conditions.join(" 且 "), lang),
                            r.support
                        ),
                    }
                })
                .collect();
            Card {
                id: seg.id.clone(),
                name: if zh { seg.name_zh.clone() } else { seg.name_en.clone() },
                name_en: seg.name_en.clone(),
                size: sizes[i],
                client_share: sizes[i] as f64 / total as f64,
                revenue_share: get("revenue_share").unwrap_or(0.0),
                margin: get("median_contribution_margin"),
                medians: row
                    .iter()
                    .filter_map(|(n, v)| n.strip_prefix("median_").map(|f| (display_name(f, lang), *v)))
                    .collect(),
                distinct: distinct.into_iter().take(4).map(|d| d.1).collect(),
                rules,
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
/// Everything the page shows, besides the charts.
pub struct PageInput<'a> {
    pub lang: Lang,
    pub seed: u64,
    pub run_id: &'a str,
    pub created_at: &'a str,
    pub files: &'a [InputFile],
    pub validated: &'a Validated,
    pub table: &'a FeatureTable,
    pub outcomes: &'a [Outcome],
    pub segments: &'a DataFrame,
    pub stability: Option<&'a Stability>,
    pub warnings: &'a [Warning],
    pub plans: Option<&'a [ServicePlan]>,
}

/// An analysis's section in the report's language, with its charts.
fn page_section(sec: &Section, charts: &[(String, ChartFile)], lang: Lang) -> super::html::PageSection {
    let pick = |(en, zh): &(String, String)| match lang {
        Lang::En => en.clone(),
        Lang::Zh => zh.clone(),
    };
    super::html::PageSection {
        id: sec.id.clone(),
        title: pick(&sec.title),
        lines: sec.lines.iter().map(pick).collect(),
        tables: sec
            .tables
            .iter()
            .map(|t| {
                (
                    pick(&t.caption),
                    t.header.iter().map(pick).collect(),
                    t.rows.iter().map(|r| r.iter().map(pick).collect()).collect(),
                )
            })
            .collect(),
        charts: charts
            .iter()
            .filter(|(id, _)| *id == sec.id)
            .map(|(_, c)| c.clone())
            .collect(),
    }
}

/// The report page of a run.
pub fn page(input: &PageInput, charts: Vec<ChartFile>, section_charts: Vec<(String, ChartFile)>) -> Page {
    let PageInput {
        lang,
        seed,
        run_id,
        created_at,
        files,
        validated,
        table,
        outcomes,
        segments,
        stability,
        warnings,
        plans,
    } = *input;
    let (value, behaviour) = segmentations(outcomes);
    let rows = validated
        .counts
        .iter()
        .map(|c| {
            let file = files
                .iter()
                .find(|f| f.table == c.table)
                .map(|f| f.path.clone())
                .unwrap_or_default();
            let name = match lang {
                Lang::En => c.table.name(),
                Lang::Zh => crate::format::table_zh(c.table.name()).unwrap_or(c.table.name()),
            };
            (name.to_string(), file, c.input, c.accepted, c.rejected)
        })
        .collect();
    let k_table = behaviour
        .map(|b| {
            b.k_scores
                .iter()
                .map(|k| {
                    (
                        k.k,
                        k.silhouette,
                        k.calinski_harabasz,
                        k.davies_bouldin,
                        k.k == b.model.segments.len(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let migration = stability
        .filter(|st| st.previous_run_dir.is_some())
        .map(|st| match lang {
            Lang::Zh => format!(
                "与 {} 相比：{} 位客户迁移，{} 位新客户，{} 位客户流失（详见 migration.csv）",
                st.previous_run, st.moved, st.new, st.departed
            ),
            Lang::En => format!(
                "Since {}: {} clients moved, {} are new, {} departed (see migration.csv).",
                st.previous_run, st.moved, st.new, st.departed
            ),
        });
    Page {
        lang,
        run_id: run_id.to_string(),
        seed,
        snapshot: table.snapshot.to_string(),
        created_at: created_at.to_string(),
        rows,
        top_rejects: crate::validate::top_reasons_in(&validated.rejects, 5, lang),
        disabled: table
            .disabled
            .iter()
            .map(|d| match lang {
                Lang::En => (d.name.clone(), d.reason.clone()),
                Lang::Zh => (display_name(&d.name, lang), disabled_zh(&d.name)),
            })
            .collect(),
        k_table,
        value_cards: value.map(|v| cards(lang, v, segments)).unwrap_or_default(),
        behaviour_cards: behaviour.map(|b| cards(lang, b, segments)).unwrap_or_default(),
        charts,
        migration,
        warnings: warnings
            .iter()
            .map(|w| match lang {
                Lang::En => w.en.clone(),
                Lang::Zh => w.zh.clone(),
            })
            .collect(),
        sections: outcomes
            .iter()
            .filter_map(|o| o.section.as_ref())
            .map(|sec| page_section(sec, &section_charts, lang))
            .collect(),
        plans: plans
            .map(<[ServicePlan]>::to_vec)
            .unwrap_or_else(|| super::html::default_plans(lang)),
    }
}

/// Why a feature is off, in Chinese: the inputs it needs.
pub(crate) fn disabled_zh(name: &str) -> String {
    let Some(f) = feature_def(name) else {
        return String::new();
    };
    let needs: Vec<String> = f.needs.iter().map(|n| crate::format::input_zh(n)).collect();
    let any: Vec<String> = f.needs_any.iter().map(|n| crate::format::input_zh(n)).collect();
    let what = match (needs.is_empty(), any.is_empty()) {
        (false, _) => needs.join("、"),
        (true, false) => any.join(" 或 "),
        (true, true) => String::new(),
    };
    format!("需要{what}，输入中没有")
}

/// Feature identifiers in a rule replaced by the names people read in `lang`.
fn readable_rule(rule: &str, lang: Lang) -> String {
    if lang == Lang::En {
        return rule.to_string();
    }
    let mut names: Vec<&str> = CATALOGUE.iter().map(|f| f.name).collect();
    // Longer names first, so that no name is replaced inside another.
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = rule.to_string();
    for n in names {
        out = out.replace(n, &display_name(n, lang));
    }
    out
}
