//! Behaviour segments: k-means on the scale-free behaviour features, k chosen from the
//! configured range by three quality measures, segments named from their centroids.

use serde::Serialize;

use super::segmentation::{apply_saved, explain, extend_to_all, fit_rows, prepare, rows_of, usable};
use super::{Analysis, AnalysisError, Context, Outcome, SegmentKind, TreeParams};
use crate::cluster::{self, KMeansSettings};
use crate::features;
use crate::model::Model;
use crate::params::{invalid, ParamError};
use crate::progress::Stages;
use crate::segments;

#[derive(Debug, Clone, Serialize)]
pub struct BehaviourParams {
    /// Smallest and largest k tried.
    pub k_range: (usize, usize),
    pub features: Vec<String>,
    /// Clustered instead when none of `features` can be computed (the defaults only).
    pub fallback: Vec<String>,
    /// Clients the silhouette is computed on.
    pub silhouette_sample: usize,
}

pub struct BehaviourSegments {
    params: BehaviourParams,
    kmeans: KMeansSettings,
    tree: TreeParams,
}

impl BehaviourSegments {
    pub fn new(params: &BehaviourParams, kmeans: &KMeansSettings, tree: &TreeParams) -> BehaviourSegments {
        BehaviourSegments {
            params: params.clone(),
            kmeans: kmeans.clone(),
            tree: tree.clone(),
        }
    }
}

const SKIPPED: &str = "no behaviour feature could be computed from the input";

impl Analysis for BehaviourSegments {
    fn id(&self) -> &'static str {
        "behaviour"
    }

    fn name(&self) -> (&'static str, &'static str) {
        ("behaviour segments", "行为分群")
    }

    fn fit(&self, ctx: &Context, stages: &mut Stages) -> Result<Outcome, AnalysisError> {
        let mut names = usable(&self.params.features, ctx.table);
        if names.is_empty() {
            names = usable(&self.params.fallback, ctx.table);
        }
        if names.is_empty() {
            return Ok(Outcome {
                skipped: Some(SKIPPED.into()),
                ..Outcome::empty("behaviour")
            });
        }
        let n = ctx.table.df.height();
        if n <= self.params.k_range.0 {
            return Ok(Outcome {
                skipped: Some(format!(
                    "{n} clients are too few for behaviour segments (at least {} are needed)",
                    self.params.k_range.0 + 1
                )),
                ..Outcome::empty("behaviour")
            });
        }
        let p = stages.run("scaling", |_| prepare(ctx.table, &names))?;
        let (lo, hi) = self.params.k_range;
        let rows = fit_rows(ctx.served, hi + 1);
        let (c, scores) = stages.run("k selection", |bar| {
            let fitted = rows.as_ref().map(|r| rows_of(p.z.view(), r));
            cluster::select_k(
                fitted.as_ref().map_or(p.z.view(), |f| f.view()),
                (lo, hi),
                &self.kmeans,
                self.params.silhouette_sample,
                ctx.seed,
                |k| bar.set_message(format!("behaviour segments: scored k = {k} of {lo}..={hi}")),
            )
        })?;
        let c = match rows {
            Some(_) => extend_to_all(c, p.z.view()),
            None => c,
        };
        let segs = segments::behaviour_segments(c.centroids.view(), &p.names);
        let s = stages.run("classifier", |_| {
            explain(SegmentKind::Behaviour, &self.tree, ctx.seed, p, c, segs, scores)
        })?;
        Ok(Outcome {
            segmentation: Some(s),
            ..Outcome::empty("behaviour")
        })
    }

    fn apply(
        &self,
        ctx: &Context,
        stages: &mut Stages,
        model: &Model,
        model_path: &std::path::Path,
    ) -> Result<Outcome, AnalysisError> {
        let Some(saved) = model.segmentation(self.id()) else {
            return Ok(Outcome {
                skipped: Some("the model has no behaviour segments".into()),
                ..Outcome::empty("behaviour")
            });
        };
        let s = stages.run("label", |_| {
            apply_saved(SegmentKind::Behaviour, saved, ctx.table, model_path)
        })?;
        Ok(Outcome {
            segmentation: Some(s),
            ..Outcome::empty("behaviour")
        })
    }
}

/// `[behaviour]` as written.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBehaviour {
    pub k_min: Option<usize>,
    pub k_max: Option<usize>,
    pub k: Option<usize>,
    pub features: Option<Vec<String>>,
    pub silhouette_sample: Option<usize>,
}

impl RawBehaviour {
    pub fn check(&self) -> Result<BehaviourParams, ParamError> {
        let (k_min, k_max) = match self.k {
            Some(k) => (k, k),
            None => (self.k_min.unwrap_or(2), self.k_max.unwrap_or(8)),
        };
        if k_min < 2 || k_max < k_min || k_max > 20 {
            return Err(invalid(
                "behaviour.k_min/k_max",
                "must satisfy 2 <= k_min <= k_max <= 20",
                format!("{k_min}..={k_max}"),
            ));
        }
        let silhouette_sample = self.silhouette_sample.unwrap_or(4000);
        if silhouette_sample < 100 {
            return Err(invalid(
                "behaviour.silhouette_sample",
                "must be at least 100",
                silhouette_sample,
            ));
        }
        Ok(BehaviourParams {
            k_range: (k_min, k_max),
            // Features chosen by default fall back to others the input allows.
            fallback: match self.features {
                None => features::fallback_features(),
                Some(_) => Vec::new(),
            },
            features: features::check_features(
                "behaviour.features",
                self.features.clone(),
                features::FeatureGroup::Behaviour,
            )?,
            silhouette_sample,
        })
    }
}
