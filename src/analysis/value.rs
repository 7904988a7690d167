//! Value tiers (高/中/低价值客户): k-means with the configured k on the value features,
//! clusters ordered by what their clients are worth to the firm.

use serde::Serialize;

use super::segmentation::{apply_saved, explain, extend_to_all, fit_rows, prepare, rows_of, usable};
use super::{Analysis, AnalysisError, Context, Outcome, SegmentKind, TreeParams};
use crate::cluster::{self, KMeansSettings};
use crate::features;
use crate::model::Model;
use crate::params::{invalid, ParamError};
use crate::preprocess;
use crate::progress::Stages;
use crate::segments;

#[derive(Debug, Clone, Serialize)]
pub struct ValueParams {
    /// Number of tiers.
    pub k: usize,
    pub features: Vec<String>,
}

pub struct ValueTiers {
    params: ValueParams,
    kmeans: KMeansSettings,
    tree: TreeParams,
}

impl ValueTiers {
    pub fn new(params: &ValueParams, kmeans: &KMeansSettings, tree: &TreeParams) -> ValueTiers {
        ValueTiers {
            params: params.clone(),
            kmeans: kmeans.clone(),
            tree: tree.clone(),
        }
    }
}

impl Analysis for ValueTiers {
    fn id(&self) -> &'static str {
        "value"
    }

    fn name(&self) -> (&'static str, &'static str) {
        ("value tiers", "价值层级")
    }

    fn fit(&self, ctx: &Context, stages: &mut Stages) -> Result<Outcome, AnalysisError> {
        let table = ctx.table;
        let names = usable(&self.params.features, table);
        if names.is_empty() {
            return Err(AnalysisError::NoValueFeatures(self.params.features.clone()));
        }
        let p = stages.run("scaling", |_| prepare(table, &names))?;
        let (c, tiers) = stages.run("final fits", |_| -> Result<_, AnalysisError> {
            // A firm smaller than k gets one tier per client (the warnings say so).
            let k = self.params.k.min(p.z.nrows()).max(1);
            let c = match fit_rows(ctx.served, k) {
                Some(rows) => extend_to_all(
                    cluster::fit(rows_of(p.z.view(), &rows).view(), k, &self.kmeans, ctx.seed)?,
                    p.z.view(),
                ),
                None => cluster::fit(p.z.view(), k, &self.kmeans, ctx.seed)?,
            };
            // Tiers are ordered by what the client is worth to the firm (fees_12m is
            // always computed, so there is always a worth feature).
            let worth_name = features::worth_feature(table).unwrap_or("fees_12m");
            let worth = preprocess::to_matrix(&table.df, &[worth_name.to_string()])?;
            let (map, tiers) = segments::value_tiers(&c.labels, worth.column(0), c.centroids.view());
            let labels = c.labels.mapv(|l| map[l]);
            Ok((cluster::Clustering { labels, ..c }, tiers))
        })?;
        let s = stages.run("classifier", |_| {
            explain(SegmentKind::Value, &self.tree, ctx.seed, p, c, tiers, Vec::new())
        })?;
        Ok(Outcome {
            segmentation: Some(s),
            ..Outcome::empty("value")
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
            return Err(AnalysisError::Failed {
                analysis: self.id().into(),
                message: format!(
                    "the model {} has no value tiers; use a model.json written by `clientseg run`",
                    model_path.display()
                ),
            });
        };
        let s = stages.run("label", |_| {
            apply_saved(SegmentKind::Value, saved, ctx.table, model_path)
        })?;
        Ok(Outcome {
            segmentation: Some(s),
            ..Outcome::empty("value")
        })
    }
}

/// `[value]` as written.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawValue {
    pub k: Option<usize>,
    pub features: Option<Vec<String>>,
}

impl RawValue {
    pub fn check(&self) -> Result<ValueParams, ParamError> {
        let k = self.k.unwrap_or(3);
        if !(2..=10).contains(&k) {
            return Err(invalid("value.k", "must be between 2 and 10", k));
        }
        Ok(ValueParams {
            k,
            features: features::check_features("value.features", self.features.clone(), features::FeatureGroup::Value)?,
        })
    }
}
