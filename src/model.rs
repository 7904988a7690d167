//! The fitted model: for each segmentation, the features used, the scaler, the named
//! segments with their centroids, and the decision tree that explains them; for the
//! other analyses, what they saved. A model labels new data without refitting
//! (`clientseg score`).

use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::classify::{ClassifyError, TreeModel};
use crate::cluster::assign;
use crate::features::{FeatureDef, FeatureGroup, Transform};
use crate::preprocess::{PreprocessError, Scaler};
use crate::segments::Segment;

/// Bumped whenever the model file's layout changes. 2: the decision tree as clientseg's
/// own nodes (1 stored linfa-trees' tree, which still loads). 3: the parts of further
/// analyses (churn risk) under `analyses`. 4: segmentations too, as
/// `analyses.<id>.segmentation`.
pub const SCHEMA_VERSION: u32 = 4;

/// Older layouts that still load.
const READABLE_VERSIONS: &[u32] = &[1, 2, 3, 4];

/// Where layouts 1 to 3 kept their two segmentations: top-level keys, which are also the
/// analyses' ids.
const LEGACY_SEGMENTATIONS: [&str; 2] = ["value", "behaviour"];

/// The key of a segmentation's part under `analyses.<id>`.
const SEGMENTATION: &str = "segmentation";

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("cannot read model {path}: {message}")]
    Read { path: String, message: String },
    #[error(
        "model {path} has schema version {found}; this clientseg reads version {expected}. Refit with `clientseg run`"
    )]
    Version { path: String, found: u32, expected: u32 },
    #[error("model {path} is damaged or was edited by hand: {message}. Use a model file as `clientseg run` wrote it, or refit")]
    Invalid { path: String, message: String },
    #[error("{source}\nIt is the previous run's model ({path}), from which segment ids are kept from run to run. Put back a good copy (the model.json of the latest run folder), or start afresh with `--previous none` (segment ids then start again from V1 and B1)")]
    Previous {
        path: std::path::PathBuf,
        source: Box<ModelError>,
    },
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Classify(#[from] ClassifyError),
}

/// A feature as documented in the model file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureDoc {
    pub name: String,
    pub group: String,
    pub unit: String,
    pub transform: Transform,
    pub definition: String,
}

impl From<&FeatureDef> for FeatureDoc {
    fn from(f: &FeatureDef) -> Self {
        FeatureDoc {
            name: f.name.into(),
            group: match f.group {
                FeatureGroup::Value => "value".into(),
                FeatureGroup::Behaviour => "behaviour".into(),
            },
            unit: f.unit.into(),
            transform: f.transform,
            definition: f.definition.into(),
        }
    }
}

/// The settings that change feature values; `score` must compute features the same way.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureSettings {
    pub hourly_cost: f64,
    pub payment_terms_days: i64,
    pub long_term_months: i64,
}

/// One segmentation (value or behaviour). Label i is `segments[i]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentModel {
    pub features: Vec<String>,
    pub scaler: Scaler,
    pub segments: Vec<Segment>,
    pub tree: TreeModel,
}

impl SegmentModel {
    /// Another model's centroids, expressed in this model's scaled space: back to
    /// original units through their scaler, then through this one. Features the other
    /// model lacks sit at this model's median.
    pub fn centroids_of(&self, other: &SegmentModel) -> Result<Vec<Vec<f64>>, ModelError> {
        let mut out = Vec::new();
        for seg in &other.segments {
            let raw_other = other.scaler.inverse(&seg.centroid);
            let raw: Vec<f64> = self
                .features
                .iter()
                .enumerate()
                .map(|(j, f)| match other.features.iter().position(|g| g == f) {
                    Some(k) => raw_other[k],
                    None => self.scaler.impute[j],
                })
                .collect();
            let row = ndarray::Array2::from_shape_vec((1, raw.len()), raw).map_err(|e| ModelError::Read {
                path: "centroids".into(),
                message: e.to_string(),
            })?;
            out.push(self.scaler.transform(row.view())?.row(0).to_vec());
        }
        Ok(out)
    }

    /// Checks that the parts of a loaded segmentation agree: one scaler entry and one
    /// centroid coordinate per feature, finite numbers, and a tree that splits only on
    /// those features and predicts only those segments. `what` names it in the message.
    pub fn check(&self, what: &str) -> Result<(), String> {
        let d = self.features.len();
        if d == 0 {
            return Err(format!("{what}: no features"));
        }
        if let Some(f) = self.features.iter().find(|f| crate::features::feature_def(f).is_none()) {
            return Err(format!("{what}: unknown feature '{f}'"));
        }
        let sc = &self.scaler;
        for (name, len) in [
            ("scaler.features", sc.features.len()),
            ("scaler.transforms", sc.transforms.len()),
            ("scaler.impute", sc.impute.len()),
            ("scaler.mean", sc.mean.len()),
            ("scaler.std", sc.std.len()),
            ("tree.features", self.tree.features.len()),
        ] {
            if len != d {
                return Err(format!("{what}: {name} has {len} entries for {d} features"));
            }
        }
        if sc.features != self.features {
            return Err(format!("{what}: scaler.features differ from features"));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !finite(&sc.impute) || !finite(&sc.mean) || !sc.std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(format!("{what}: scaler values must be finite numbers, std above 0"));
        }
        if self.segments.is_empty() {
            return Err(format!("{what}: no segments"));
        }
        for seg in &self.segments {
            if seg.centroid.len() != d {
                return Err(format!(
                    "{what}: segment {} has a centroid of {} values for {d} features",
                    seg.id,
                    seg.centroid.len()
                ));
            }
            if !finite(&seg.centroid) {
                return Err(format!("{what}: segment {} has a centroid that is not finite", seg.id));
            }
        }
        let k = self.segments.len();
        for node in self.tree.tree.nodes() {
            match node {
                crate::classify::Node::Split { feature, threshold, .. } if *feature >= d || !threshold.is_finite() => {
                    return Err(format!("{what}: the decision tree splits on feature {feature} of {d}"));
                }
                crate::classify::Node::Leaf { class } if *class >= k => {
                    return Err(format!("{what}: the decision tree predicts segment {class} of {k}"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn centroids(&self) -> Array2<f64> {
        let k = self.segments.len();
        let d = self.features.len();
        Array2::from_shape_fn((k, d), |(i, j)| {
            self.segments[i].centroid.get(j).copied().unwrap_or(0.0)
        })
    }

    /// Nearest segment and distance for raw (unscaled) feature rows.
    pub fn label(&self, raw: ArrayView2<f64>) -> Result<(Array1<usize>, Array1<f64>), ModelError> {
        let z = self.scaler.transform(raw)?;
        Ok(assign(z.view(), self.centroids().view()))
    }

    /// The decision tree's reading of the same rows.
    pub fn explain(&self, raw: ArrayView2<f64>) -> Result<Array1<usize>, ModelError> {
        Ok(self.tree.predict(self.scaler.impute(raw).view())?)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub schema_version: u32,
    pub clientseg_version: String,
    pub run_id: String,
    pub seed: u64,
    pub snapshot_date: String,
    pub feature_settings: FeatureSettings,
    pub features: Vec<FeatureDoc>,
    /// The run folder this model came from, so a later run can compare clients with it.
    #[serde(default)]
    pub run_dir: Option<String>,
    /// Each segmentation, by its analysis's id (written under `analyses.<id>`).
    #[serde(skip)]
    pub segmentations: std::collections::BTreeMap<String, SegmentModel>,
    /// Each further analysis's saved part, by its id; the analysis checks it on load.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub analyses: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Model {
    /// The model file's text, in this version's layout.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialisation cannot fail.
        let mut v = serde_json::to_value(self).expect("model serialises");
        v["schema_version"] = SCHEMA_VERSION.into();
        // Beside whatever else the analysis saved under its id.
        for (id, s) in &self.segmentations {
            v["analyses"][id.as_str()][SEGMENTATION] = serde_json::to_value(s).expect("segmentation serialises");
        }
        serde_json::to_string_pretty(&v).expect("model serialises")
    }

    /// The segmentation of analysis `id`, when the model has one.
    pub fn segmentation(&self, id: &str) -> Option<&SegmentModel> {
        self.segmentations.get(id)
    }

    /// Takes the segmentations out of a file's JSON: the top-level ones of layouts 1 to
    /// 3, or `analyses.<id>.segmentation`.
    fn segmentations_of(
        probe: &mut serde_json::Value,
        version: u32,
    ) -> Result<std::collections::BTreeMap<String, SegmentModel>, String> {
        let mut parts: Vec<(String, serde_json::Value)> = Vec::new();
        if version < 4 {
            let Some(top) = probe.as_object_mut() else {
                return Err("not a JSON object".into());
            };
            for id in LEGACY_SEGMENTATIONS {
                if let Some(v) = top.remove(id).filter(|v| !v.is_null()) {
                    parts.push((id.to_string(), v));
                }
            }
        } else if let Some(analyses) = probe.get_mut("analyses").and_then(|a| a.as_object_mut()) {
            let ids: Vec<String> = analyses
                .iter()
                .filter(|(_, v)| v.get(SEGMENTATION).is_some())
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                let Some(own) = analyses.get_mut(&id).and_then(|v| v.as_object_mut()) else {
                    continue;
                };
                if let Some(v) = own.remove(SEGMENTATION) {
                    parts.push((id.clone(), v));
                }
                // The analysis's own part, if it saved more than its segmentation.
                if own.is_empty() {
                    analyses.remove(&id);
                }
            }
        }
        parts
            .into_iter()
            .map(|(id, v)| {
                serde_json::from_value(v)
                    .map(|s| (id.clone(), s))
                    .map_err(|e| format!("{id}: {e}"))
            })
            .collect()
    }

    pub fn load(path: &std::path::Path) -> Result<Model, ModelError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Read {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let mut probe: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Read {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let found = probe.get("schema_version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if !READABLE_VERSIONS.contains(&found) {
            return Err(ModelError::Version {
                path: p,
                found,
                expected: SCHEMA_VERSION,
            });
        }
        let segmentations = Model::segmentations_of(&mut probe, found).map_err(|message| ModelError::Read {
            path: p.clone(),
            message,
        })?;
        let mut model: Model = serde_json::from_value(probe).map_err(|e| ModelError::Read {
            path: p.clone(),
            message: e.to_string(),
        })?;
        model.segmentations = segmentations;
        model
            .check()
            .map_err(|message| ModelError::Invalid { path: p, message })?;
        Ok(model)
    }

    /// The checks of [`SegmentModel::check`] for every segmentation; a model has at least one.
    pub fn check(&self) -> Result<(), String> {
        if self.segmentations.is_empty() {
            return Err("it has no segmentation".into());
        }
        for (id, s) in &self.segmentations {
            s.check(id)?;
        }
        let f = &self.feature_settings;
        if !(f.hourly_cost.is_finite() && f.hourly_cost >= 0.0) || f.payment_terms_days < 0 || f.long_term_months < 1 {
            return Err("feature_settings are out of range".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/model-v1/model-v1.json")
    }

    /// The fixture as JSON, edited by `edit`, written to a temporary file and loaded.
    fn load_edited(edit: impl Fn(&mut serde_json::Value)) -> (Result<Model, ModelError>, tempfile::TempDir) {
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap();
        edit(&mut v);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        std::fs::write(&path, v.to_string()).unwrap();
        (Model::load(&path), dir)
    }

    #[test]
    fn a_model_round_trips_through_its_file() {
        let m = Model::load(&fixture()).unwrap();
        assert_eq!(m.schema_version, 1);
        let ids: Vec<&String> = m.segmentations.keys().collect();
        assert_eq!(ids, ["behaviour", "value"]);
        // Written in this version's layout, with the segmentations under `analyses`.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("again.json");
        std::fs::write(&path, m.to_json()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert!(v.get("value").is_none() && v["analyses"]["value"]["segmentation"]["scaler"].is_object());
        let again = Model::load(&path).unwrap();
        assert_eq!(again.schema_version, SCHEMA_VERSION);
        assert_eq!(again.to_json(), m.to_json());
        // A segmentation expressed in its own scaled space is its own centroids.
        let value = m.segmentation("value").unwrap();
        let own = value.centroids_of(value).unwrap();
        let c = value.centroids();
        for (k, row) in own.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                assert!((v - c[[k, j]]).abs() < 1e-9, "{k},{j}");
            }
        }
    }

    #[test]
    fn an_analysis_keeps_what_it_saved_beside_its_segmentation() {
        let mut m = Model::load(&fixture()).unwrap();
        m.analyses.insert("value".into(), serde_json::json!({ "note": 1 }));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("both.json");
        std::fs::write(&path, m.to_json()).unwrap();
        let again = Model::load(&path).unwrap();
        assert_eq!(again.analyses.get("value"), Some(&serde_json::json!({ "note": 1 })));
        assert!(again.segmentation("value").is_some() && again.segmentation("behaviour").is_some());
        assert!(
            !again.analyses.contains_key("behaviour"),
            "nothing but its segmentation"
        );
    }

    #[test]
    fn a_damaged_model_names_its_file_and_what_is_wrong() {
        let (r, _d) = load_edited(|v| v["schema_version"] = 99.into());
        assert!(matches!(r, Err(ModelError::Version { found: 99, .. })), "{r:?}");
        let (r, _d) = load_edited(|v| {
            v["value"]["segments"][0]["centroid"].as_array_mut().unwrap().pop();
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains("model.json") && e.contains("centroid of"), "{e}");
        // The same damage in this version's layout.
        let (r, _d) = load_edited(|v| {
            let m = Model::load(&fixture()).unwrap();
            *v = serde_json::from_str(&m.to_json()).unwrap();
            v["analyses"]["value"]["segmentation"]["segments"][0]["centroid"]
                .as_array_mut()
                .unwrap()
                .pop();
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains("model.json") && e.contains("centroid of"), "{e}");
        let (r, _d) = load_edited(|v| v["value"]["features"][0] = "no_such_feature".into());
        assert!(r.unwrap_err().to_string().contains("unknown feature 'no_such_feature'"));
        let (r, _d) = load_edited(|v| v["feature_settings"]["hourly_cost"] = (-1.0).into());
        assert!(r.unwrap_err().to_string().contains("feature_settings are out of range"));
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.json");
        let text = std::fs::read_to_string(fixture()).unwrap();
        std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
        assert!(matches!(Model::load(&cut), Err(ModelError::Read { .. })));
    }
}
