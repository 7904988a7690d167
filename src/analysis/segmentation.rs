//! What value tiers and behaviour segments share: a clustering of scaled features, named
//! segments, the decision tree that explains them, and their labels for every client.

use ndarray::{Array1, Array2, ArrayView2};
use serde::Serialize;

use super::AnalysisError;
use crate::classify::TreeModel;
use crate::cluster::{Clustering, KScore};
use crate::columns::{OutputColumn, SqlType};
use crate::features::FeatureTable;
use crate::model::SegmentModel;
use crate::params::{invalid, ParamError};
use crate::preprocess::{self, Scaler};
use crate::segments::Segment;

/// Which segmentation: they differ in id prefix, column names and report section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentKind {
    Value,
    Behaviour,
}

impl SegmentKind {
    /// The letter segment ids start with (V1, B2).
    pub fn prefix(self) -> &'static str {
        match self {
            SegmentKind::Value => "V",
            SegmentKind::Behaviour => "B",
        }
    }

    /// The labels.csv column holding the segment id.
    pub fn id_column(self) -> &'static str {
        self.label_columns()[0]
    }

    /// Its name in segments.csv's `kind`, the manifest and the model file.
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentKind::Value => "value",
            SegmentKind::Behaviour => "behaviour",
        }
    }

    /// Its ids follow its rank (value tiers: V1 is the most valuable), so a new run
    /// keeps them whatever the match with the previous run; other segmentations carry
    /// the previous run's ids over to the segments that match.
    pub fn ids_by_rank(self) -> bool {
        self == SegmentKind::Value
    }

    /// Its heading in rules.txt.
    pub fn heading(self) -> &'static str {
        match self {
            SegmentKind::Value => "Value tiers",
            SegmentKind::Behaviour => "Behaviour segments",
        }
    }

    /// Its name in the run summary, (English, Chinese).
    pub fn title(self) -> (&'static str, &'static str) {
        match self {
            SegmentKind::Value => ("value tiers", "价值分层"),
            SegmentKind::Behaviour => ("behaviour segments", "行为分群"),
        }
    }

    /// Its labels.csv columns: segment id, English name, Chinese name, distance.
    pub fn label_columns(self) -> [&'static str; 4] {
        match self {
            SegmentKind::Value => ["value_tier", "value_tier_en", "value_tier_zh", "value_distance"],
            SegmentKind::Behaviour => [
                "behaviour_segment",
                "behaviour_segment_en",
                "behaviour_segment_zh",
                "behaviour_distance",
            ],
        }
    }

    /// Its labels.csv columns as declared: words, push, migration.
    pub fn declared(self) -> Vec<OutputColumn> {
        let [id, en, zh, distance] = self.label_columns();
        let (what, what_zh, title, title_zh) = match self {
            SegmentKind::Value => (
                "value tier",
                "价值层级",
                "Value tier transitions since the previous run",
                "与上次相比的价值层级迁移",
            ),
            SegmentKind::Behaviour => (
                "behaviour segment",
                "行为分群",
                "Behaviour segment transitions since the previous run",
                "与上次相比的行为分群迁移",
            ),
        };
        vec![
            OutputColumn::text(id, what, what_zh)
                .push(SqlType::Text)
                .tracked(self.as_str(), title, title_zh)
                .moves(en),
            OutputColumn::text(en, &format!("{what} (English)"), &format!("{what_zh}（英文）")).push(SqlType::Text),
            OutputColumn::text(zh, &format!("{what} name"), &format!("{what_zh}名称")).push(SqlType::Text),
            OutputColumn::number(distance, &format!("{what} distance"), &format!("{what_zh}距离")),
        ]
    }
}

/// Parameters of the decision trees that explain the segmentations.
#[derive(Debug, Clone, Serialize)]
pub struct TreeParams {
    pub max_depth: usize,
    /// Share of clients held out to measure the tree's accuracy.
    pub test_share: f64,
}

/// `[classifier]` as written.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawClassifier {
    pub max_depth: Option<usize>,
    pub test_share: Option<f64>,
}

impl RawClassifier {
    pub fn check(&self) -> Result<TreeParams, ParamError> {
        let max_depth = self.max_depth.unwrap_or(4);
        if !(1..=12).contains(&max_depth) {
            return Err(invalid("classifier.max_depth", "must be between 1 and 12", max_depth));
        }
        let test_share = self.test_share.unwrap_or(0.2);
        if !(0.05..=0.5).contains(&test_share) {
            return Err(invalid(
                "classifier.test_share",
                "must be between 0.05 and 0.5",
                test_share,
            ));
        }
        Ok(TreeParams { max_depth, test_share })
    }
}

/// A fitted segmentation and its labels for the current data.
pub struct Segmentation {
    pub kind: SegmentKind,
    pub model: SegmentModel,
    pub labels: Array1<usize>,
    pub distances: Array1<f64>,
    /// The scaled feature matrix the clustering saw.
    pub z: Array2<f64>,
    pub inertia: f64,
    pub k_scores: Vec<KScore>,
    /// With a saved model (`score`): the share of clients its decision tree puts where
    /// the centroids do.
    pub tree_agreement: Option<f64>,
}

/// A segmentation as the manifest records it (under `analyses.<id>`).
#[derive(Debug, Clone, Serialize)]
pub struct SegmentationSummary {
    #[serde(skip)]
    pub kind: SegmentKind,
    pub features: Vec<String>,
    pub k: usize,
    pub inertia: f64,
    pub holdout_accuracy: f64,
    pub k_scores: Vec<KScore>,
    pub segments: Vec<SegmentSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentSummary {
    pub id: String,
    pub name_en: String,
    pub name_zh: String,
    pub size: usize,
}

impl Segmentation {
    /// Clients per segment.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![0usize; self.model.segments.len()];
        self.labels.iter().for_each(|&l| sizes[l] += 1);
        sizes
    }

    pub fn summary(&self) -> SegmentationSummary {
        SegmentationSummary {
            kind: self.kind,
            features: self.model.features.clone(),
            k: self.model.segments.len(),
            inertia: self.inertia,
            holdout_accuracy: self.model.tree.holdout_accuracy,
            k_scores: self.k_scores.clone(),
            segments: self
                .model
                .segments
                .iter()
                .zip(self.sizes())
                .map(|(s, n)| SegmentSummary {
                    id: s.id.clone(),
                    name_en: s.name_en.clone(),
                    name_zh: s.name_zh.clone(),
                    size: n,
                })
                .collect(),
        }
    }
}

/// The features of `wanted` that this input allows.
/// The rows a segmentation is fitted on: the clients still served, when the run knows
/// who left and enough remain (a client who left long ago has no fees or behaviour in
/// the window and would pull a segment of its own); otherwise every client.
pub(super) fn fit_rows(served: Option<&[bool]>, min: usize) -> Option<Vec<usize>> {
    let served = served?;
    let rows: Vec<usize> = (0..served.len()).filter(|&i| served[i]).collect();
    (rows.len() >= min.max(10) && rows.len() < served.len()).then_some(rows)
}

/// The fitted rows of a scaled matrix.
pub(super) fn rows_of(z: ArrayView2<f64>, rows: &[usize]) -> Array2<f64> {
    z.select(ndarray::Axis(0), rows)
}

/// A clustering fitted on some rows, extended to every row by the nearest centroid.
pub(super) fn extend_to_all(c: Clustering, z: ArrayView2<f64>) -> Clustering {
    let (labels, distances) = crate::cluster::assign(z, c.centroids.view());
    let inertia = distances.iter().map(|d| d * d).sum();
    Clustering {
        centroids: c.centroids,
        labels,
        distances,
        inertia,
    }
}

pub(super) fn usable(wanted: &[String], table: &FeatureTable) -> Vec<String> {
    wanted.iter().filter(|f| table.is_enabled(f)).cloned().collect()
}

/// A feature matrix as clustered: raw values, the scaler fitted on them, scaled values.
pub(super) struct Prepared {
    pub names: Vec<String>,
    pub raw: Array2<f64>,
    pub scaler: Scaler,
    pub z: Array2<f64>,
}

pub(super) fn prepare(table: &FeatureTable, names: &[String]) -> Result<Prepared, AnalysisError> {
    let raw = preprocess::to_matrix(&table.df, names)?;
    let scaler = Scaler::fit(names, raw.view())?;
    let z = scaler.transform(raw.view())?;
    Ok(Prepared {
        names: names.to_vec(),
        raw,
        scaler,
        z,
    })
}

/// The decision tree that explains a clustering, and the fitted segmentation.
pub(super) fn explain(
    kind: SegmentKind,
    tree: &TreeParams,
    seed: u64,
    p: Prepared,
    c: Clustering,
    segments: Vec<Segment>,
    k_scores: Vec<KScore>,
) -> Result<Segmentation, AnalysisError> {
    let tree = TreeModel::train(
        p.scaler.impute(p.raw.view()).view(),
        &c.labels,
        &p.names,
        tree.max_depth,
        tree.test_share,
        seed,
    )?;
    Ok(Segmentation {
        kind,
        model: SegmentModel {
            features: p.names,
            scaler: p.scaler,
            segments,
            tree,
        },
        labels: c.labels,
        distances: c.distances,
        z: p.z,
        inertia: c.inertia,
        k_scores,
        tree_agreement: None,
    })
}

/// Labels the current clients with a saved segmentation (`score`).
pub(super) fn apply_saved(
    kind: SegmentKind,
    saved: &SegmentModel,
    table: &FeatureTable,
    model_path: &std::path::Path,
) -> Result<Segmentation, AnalysisError> {
    if let Some(f) = saved.features.iter().find(|f| !table.is_enabled(f)) {
        return Err(AnalysisError::ScoreFeature {
            model: model_path.display().to_string(),
            feature: f.clone(),
        });
    }
    let raw = preprocess::to_matrix(&table.df, &saved.features)?;
    let (labels, distances) = saved.label(raw.view())?;
    let z = saved.scaler.transform(raw.view())?;
    let inertia = distances.iter().map(|d| d * d).sum();
    let explained = saved.explain(raw.view())?;
    let same = labels.iter().zip(explained.iter()).filter(|(a, b)| a == b).count();
    let agreement = same as f64 / labels.len().max(1) as f64;
    Ok(Segmentation {
        kind,
        model: saved.clone(),
        labels,
        distances,
        z,
        inertia,
        k_scores: Vec::new(),
        tree_agreement: Some(agreement),
    })
}
