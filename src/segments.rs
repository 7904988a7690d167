//! Segments: turns clusters into named segments. Value clusters become ordered tiers
//! (high / medium / low value, 高/中/低价值客户) by their members' contribution; behaviour
//! clusters are named from what sets their centroid apart, in English and Chinese.

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

/// A named segment of one kind (value tier or behaviour).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    /// Stable code: V1 (highest value) ... or B1 (largest behaviour segment) ...
    pub id: String,
    pub name_en: String,
    pub name_zh: String,
    /// Centroid in the scaled space the clustering used.
    pub centroid: Vec<f64>,
}

/// Tier names for k value clusters, best first.
pub fn tier_names(k: usize) -> Vec<(String, String)> {
    let fixed: &[(&str, &str)] = match k {
        2 => &[("high value", "高价值客户"), ("low value", "低价值客户")],
        3 => &[
            ("high value", "高价值客户"),
            ("medium value", "中价值客户"),
            ("low value", "低价值客户"),
        ],
        4 => &[
            ("high value", "高价值客户"),
            ("upper-medium value", "中高价值客户"),
            ("lower-medium value", "中低价值客户"),
            ("low value", "低价值客户"),
        ],
        _ => &[],
    };
    if !fixed.is_empty() {
        return fixed.iter().map(|(e, z)| (e.to_string(), z.to_string())).collect();
    }
    (1..=k)
        .map(|i| (format!("value tier {i} of {k}"), format!("价值第{i}档（共{k}档）")))
        .collect()
}

/// Orders value clusters by the mean of `worth` (contribution margin) of their members,
/// highest first. Returns the new label of each old cluster and the ordered tiers.
pub fn value_tiers(
    labels: &Array1<usize>,
    worth: ArrayView1<f64>,
    centroids: ArrayView2<f64>,
) -> (Vec<usize>, Vec<Segment>) {
    let k = centroids.nrows();
    let mut sum = vec![0.0; k];
    let mut n = vec![0usize; k];
    for (l, w) in labels.iter().zip(worth.iter()) {
        if w.is_finite() {
            sum[*l] += w;
            n[*l] += 1;
        }
    }
    let mean: Vec<f64> = (0..k)
        .map(|c| {
            if n[c] > 0 {
                sum[c] / n[c] as f64
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| mean[b].total_cmp(&mean[a]).then(a.cmp(&b)));
    let mut new_label = vec![0; k];
    for (rank, &old) in order.iter().enumerate() {
        new_label[old] = rank;
    }
    let names = tier_names(k);
    let tiers = order
        .iter()
        .enumerate()
        .map(|(rank, &old)| Segment {
            id: format!("V{}", rank + 1),
            name_en: names[rank].0.clone(),
            name_zh: names[rank].1.clone(),
            centroid: centroids.row(old).to_vec(),
        })
        .collect();
    (new_label, tiers)
}

/// Words for a feature being far above or below the population (en, zh), from the
/// feature's definition.
fn descriptor(feature: &str, high: bool) -> Option<(&'static str, &'static str)> {
    let f = crate::features::feature_def(feature)?;
    if high {
        f.high
    } else {
        f.low
    }
}

/// Every wording a segment name can use (for checking the chart font covers them).
pub fn all_descriptors() -> Vec<(&'static str, &'static str)> {
    crate::features::CATALOGUE
        .iter()
        .flat_map(|f| [descriptor(f.name, true), descriptor(f.name, false)])
        .flatten()
        .chain([("typical", "常规"), ("(new)", "（新）")])
        .collect()
}

/// How far (in standard deviations) a centroid must sit from the mean for a feature
/// to name it.
const NAMING_THRESHOLD: f64 = 0.35;

/// Names each behaviour centroid from its most distinctive features; names are unique.
pub fn behaviour_names(centroids: ArrayView2<f64>, features: &[String]) -> Vec<(String, String)> {
    let k = centroids.nrows();
    // Descriptors of each centroid, most distinctive first, duplicates of wording dropped.
    let lists: Vec<Vec<(&str, &str)>> = (0..k)
        .map(|c| {
            let mut scored: Vec<(f64, (&str, &str))> = features
                .iter()
                .enumerate()
                .filter_map(|(j, f)| {
                    let z = centroids[[c, j]];
                    descriptor(f, z > 0.0).map(|d| (z.abs(), d))
                })
                .filter(|(z, _)| *z >= NAMING_THRESHOLD)
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut out: Vec<(&str, &str)> = Vec::new();
            for (_, d) in scored {
                if !out.contains(&d) {
                    out.push(d);
                }
            }
            out
        })
        .collect();
    let join = |parts: &[(&str, &str)]| -> (String, String) {
        if parts.is_empty() {
            return ("typical".into(), "常规".into());
        }
        (
            parts.iter().map(|p| p.0).collect::<Vec<_>>().join(", "),
            parts.iter().map(|p| p.1).collect::<Vec<_>>().join("、"),
        )
    };
    let mut names: Vec<(String, String)> = lists.iter().map(|l| join(&l[..l.len().min(2)])).collect();
    // Make names unique: first lengthen clashing ones, then number what still clashes.
    for _ in 0..2 {
        for c in 0..k {
            let clash = (0..k).any(|o| o != c && names[o].0 == names[c].0);
            if clash {
                let take = (names[c].0.matches(", ").count() + 2).min(lists[c].len());
                names[c] = join(&lists[c][..take]);
            }
        }
    }
    for c in 0..k {
        let same: Vec<usize> = (0..k).filter(|&o| names[o].0 == names[c].0).collect();
        if same.len() > 1 {
            for (i, &o) in same.iter().enumerate() {
                if i > 0 {
                    names[o].0 = format!("{} ({})", names[o].0, i + 1);
                    names[o].1 = format!("{}（{}）", names[o].1, i + 1);
                }
            }
        }
    }
    names
}

pub fn behaviour_segments(centroids: ArrayView2<f64>, features: &[String]) -> Vec<Segment> {
    behaviour_names(centroids, features)
        .into_iter()
        .enumerate()
        .map(|(c, (en, zh))| Segment {
            id: format!("B{}", c + 1),
            name_en: en,
            name_zh: zh,
            centroid: centroids.row(c).to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn tiers_ordered_by_worth() {
        let labels = Array1::from(vec![0, 0, 1, 1, 2, 2]);
        let worth = array![10.0, 12.0, 500.0, 700.0, 100.0, 90.0];
        let centroids = array![[0.0], [1.0], [2.0]];
        let (map, tiers) = value_tiers(&labels, worth.view(), centroids.view());
        assert_eq!(map, vec![2, 0, 1]);
        assert_eq!(tiers[0].name_en, "high value");
        assert_eq!(tiers[0].name_zh, "高价值客户");
        assert_eq!(tiers[0].centroid, vec![1.0]);
        assert_eq!(tiers[2].id, "V3");
    }

    #[test]
    fn names_from_profile_and_unique() {
        let f: Vec<String> = ["late_payment_share", "tickets_per_month", "activity_trend"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = array![
            [1.5, 0.1, 0.0],
            [-0.8, -0.6, 0.1],
            [0.0, 1.2, 0.0],
            [0.2, 0.0, -1.9],
            [0.0, 1.1, 0.0]
        ];
        let names = behaviour_names(c.view(), &f);
        assert_eq!(names[0].0, "late payer");
        assert_eq!(
            names[1],
            (
                "pays on time, self-sufficient".to_string(),
                "按时付款、自主省心".to_string()
            )
        );
        assert_eq!(names[3].0, "declining, at risk");
        assert_ne!(names[2].0, names[4].0);
        let mut en: Vec<&String> = names.iter().map(|n| &n.0).collect();
        en.sort();
        en.dedup();
        assert_eq!(en.len(), 5);
    }

    #[test]
    fn flat_centroid_is_typical() {
        let f = vec!["late_payment_share".to_string()];
        let names = behaviour_names(array![[0.1], [2.0]].view(), &f);
        assert_eq!(names[0], ("typical".to_string(), "常规".to_string()));
    }
}
