//! Value tiers (高/中/低价值客户): k-means with the configured k on the value features,
//! clusters ordered by what their clients are worth to the firm.

use serde::Serialize;

use super::segmentation::{apply_saved, explain, extend_to_all, fit_rows, prepare, rows_of, usable};
use super::{Analysis, AnalysisError, Context, Need, Outcome, SegmentKind, TreeParams};
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
    pub basis: Basis,
}

/// What ranks the tiers: the worth of the last 12 months, or the contribution expected
/// over the next 36 (churn risk's `value_ahead_36m`: margin × chance of still being
/// served, discounted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    Past,
    Forward,
}

/// Churn risk's column the forward basis ranks by.
const FORWARD: &str = "value_ahead_36m";

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
        let forward = match self.params.basis {
            Basis::Past => None,
            Basis::Forward => forward_values(ctx)?,
        };
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
            let worth = match &forward {
                Some(ahead) => ndarray::Array1::from(ahead.clone()),
                // Tiers are ordered by what the client is worth to the firm (fees_12m is
                // always computed, so there is always a worth feature).
                None => {
                    let worth_name = features::worth_feature(table).unwrap_or("fees_12m");
                    preprocess::to_matrix(&table.df, &[worth_name.to_string()])?
                        .column(0)
                        .to_owned()
                }
            };
            let (map, tiers) = segments::value_tiers(&c.labels, worth.view(), c.centroids.view());
            let labels = c.labels.mapv(|l| map[l]);
            Ok((cluster::Clustering { labels, ..c }, tiers))
        })?;
        let s = stages.run("classifier", |_| {
            explain(SegmentKind::Value, &self.tree, ctx.seed, p, c, tiers, Vec::new())
        })?;
        let (headline, summary) = match &forward {
            None if self.params.basis == Basis::Forward => (
                Some((
                    "value tiers: ranked by the last 12 months, not by the value ahead as configured (value.basis = \"forward\"): churn risk was not computed in this run".to_string(),
                    "价值层级：按近12个月排序，而非配置所选的未来36个月预期贡献：本次运行未计算流失风险".to_string(),
                )),
                Some(serde_json::json!({ "basis": "past", "configured_basis": "forward", "why": "churn risk was not computed in this run" })),
            ),
            None => (None, None),
            Some(_) => (
                Some((
                    "value tiers: ranked by the contribution expected over the next 36 months (margin × chance of still being served, discounted; a client already gone counts as 0)".to_string(),
                    "价值层级：按未来36个月的预期贡献排序（毛利 × 仍在服务的概率，折现；已流失客户计为0）".to_string(),
                )),
                Some(serde_json::json!({ "basis": "forward", "ranked_by": FORWARD })),
            ),
        };
        let section = headline.as_ref().map(|(en, zh)| super::Section {
            id: "value-basis".into(),
            title: ("What ranks the value tiers".into(), "价值层级的排序依据".into()),
            lines: vec![(
                format!("{}.", en.trim_start_matches("value tiers: ")),
                format!("{}。", zh.trim_start_matches("价值层级：")),
            )],
            tables: Vec::new(),
        });
        Ok(Outcome {
            segmentation: Some(s),
            headline,
            summary,
            section,
            ..Outcome::empty("value")
        })
    }

    fn needs(&self) -> Vec<Need> {
        match self.params.basis {
            Basis::Past => Vec::new(),
            Basis::Forward => vec![Need::column("churn", FORWARD).required()],
        }
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

/// Per client, the contribution expected over the next 36 months; a client churn risk
/// does not score (already gone) is worth nothing ahead. None when churn risk was not
/// computed (the tiers then rank by the past, and say so).
fn forward_values(ctx: &Context) -> Result<Option<Vec<f64>>, AnalysisError> {
    let why = |message: String| AnalysisError::Failed {
        analysis: "value".into(),
        message: format!("value.basis = \"forward\": churn risk's {FORWARD}: {message}"),
    };
    let Some(column) = ctx.column("churn", FORWARD)? else {
        return Ok(None);
    };
    let values = column
        .as_materialized_series()
        .cast(&polars::prelude::DataType::Float64)
        .map_err(|e| why(e.to_string()))?;
    let values = values.f64().map_err(|e| why(e.to_string()))?;
    if values.len() != ctx.table.df.height() {
        return Err(why(format!(
            "{} rows for {} clients",
            values.len(),
            ctx.table.df.height()
        )));
    }
    Ok(Some(
        values
            .iter()
            .map(|v| v.filter(|v| v.is_finite()).unwrap_or(0.0))
            .collect(),
    ))
}

/// `[value]` as written.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawValue {
    pub k: Option<usize>,
    pub features: Option<Vec<String>>,
    /// "past" (the default) or "forward".
    pub basis: Option<Basis>,
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
            basis: self.basis.unwrap_or(Basis::Past),
        })
    }
}
