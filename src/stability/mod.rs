//! Stability: segment ids and names that last from run to run. Each run's centroids are
//! matched to the previous run's by optimal assignment (`carry_over`), clients near a
//! boundary keep last run's segment unless another is clearly closer (`stick`), and
//! `migration` lists who moved. Used for every analysis whose segments keep their ids.

pub mod migration;

use std::path::{Path, PathBuf};

use ndarray::{Array1, ArrayView2, Axis};
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use crate::analysis::Outcome;
use crate::model::{Model, ModelError};
use crate::segments::Segment;

/// Which earlier run segments are matched against.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Previous {
    /// models_dir/latest.json if it exists.
    Auto,
    None,
    /// A run folder or a model file.
    Path(PathBuf),
}

/// The stability stage's checked parameters (`[stability]` of the config).
#[derive(Debug, Clone, Serialize)]
pub struct StabilityParams {
    pub previous: Previous,
    /// Largest centroid distance (in standard deviations) at which a segment continues
    /// a previous one.
    pub match_threshold: f64,
    /// How much farther than the nearest centroid a client's previous segment may be
    /// and still keep it.
    pub hysteresis: f64,
}

/// How a current segment relates to the previous run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentStatus {
    /// Continues a previous segment, under its id and name.
    Kept,
    /// Has no predecessor.
    New,
    /// A previous segment without successor (then the match's `id` is the old id).
    Gone,
}

impl SegmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentStatus::Kept => "kept",
            SegmentStatus::New => "new",
            SegmentStatus::Gone => "gone",
        }
    }
}

/// How this run's segments continue the previous run's.
#[derive(Debug, Clone, Serialize)]
pub struct Stability {
    pub previous_run: String,
    pub previous_run_dir: Option<String>,
    /// Per segmentation (by its kind's name), how its segments match the previous run's.
    #[serde(flatten)]
    pub segments: std::collections::BTreeMap<String, Vec<SegmentMatch>>,
    pub moved: usize,
    pub new: usize,
    pub departed: usize,
}

/// The run a new run is compared with.
pub struct PreviousRun {
    pub model: Model,
    /// Its folder, when it still exists (for client-level migration).
    pub run_dir: Option<PathBuf>,
}

/// Finds the previous run: the one named in the settings, or `models_dir/latest.json`.
pub fn load_previous(params: &StabilityParams, models_dir: &Path) -> Result<Option<PreviousRun>, ModelError> {
    let from_model = |model: Model| {
        let run_dir = model.run_dir.as_ref().map(PathBuf::from).filter(|d| d.is_dir());
        PreviousRun { model, run_dir }
    };
    match &params.previous {
        Previous::None => Ok(None),
        Previous::Auto => {
            let latest = models_dir.join("latest.json");
            if !latest.is_file() {
                return Ok(None);
            }
            // A damaged file would quietly restart every segment id: stop and say so.
            match Model::load(&latest) {
                Ok(model) => Ok(Some(from_model(model))),
                Err(source) => Err(ModelError::Previous {
                    path: latest,
                    source: Box::new(source),
                }),
            }
        }
        Previous::Path(p) if p.is_dir() => {
            let model = Model::load(&p.join("model.json"))?;
            Ok(Some(PreviousRun {
                model,
                run_dir: Some(p.clone()),
            }))
        }
        Previous::Path(p) => Ok(Some(from_model(Model::load(p)?))),
    }
}

/// Carries segment ids over from the previous run, one segmentation at a time as each
/// is fitted: the analyses after it then read the ids and labels the run writes.
pub struct CarryOver<'a> {
    prev: &'a PreviousRun,
    prev_labels: Option<DataFrame>,
    ids: &'a [String],
    params: &'a StabilityParams,
    report: Stability,
}

impl<'a> CarryOver<'a> {
    /// Reads the previous run's labels (when its folder is still there) once.
    pub fn new(prev: &'a PreviousRun, ids: &'a [String], params: &'a StabilityParams) -> Result<Self, StabilityError> {
        let prev_labels = match prev.run_dir.as_ref().filter(|d| d.join("labels.parquet").is_file()) {
            Some(dir) => Some(migration::read_parquet(&dir.join("labels.parquet"))?),
            None => None,
        };
        Ok(CarryOver {
            prev,
            prev_labels,
            ids,
            params,
            report: Stability {
                previous_run: prev.model.run_id.clone(),
                previous_run_dir: prev.run_dir.as_ref().map(|p| p.display().to_string()),
                segments: Default::default(),
                moved: 0,
                new: 0,
                departed: 0,
            },
        })
    }

    /// Renames the outcome's segments as the previous run's where they match, and keeps
    /// boundary clients in last run's segment unless clearly closer to another.
    pub fn apply(&mut self, outcome: &mut Outcome) -> Result<(), StabilityError> {
        let Some(s) = outcome.segmentation.as_mut() else {
            return Ok(());
        };
        let Some(previous) = self.prev.model.segmentation(outcome.id) else {
            return Ok(());
        };
        let mapped = s.model.centroids_of(previous)?;
        let (threshold, prefix) = (self.params.match_threshold, s.kind.prefix());
        let matches = if s.kind.ids_by_rank() {
            // Named by rank: the match only records how far each moved.
            let mut tiers = s.model.segments.clone();
            carry_over(&mut tiers, &previous.segments, &mapped, threshold, prefix)
        } else {
            carry_over(&mut s.model.segments, &previous.segments, &mapped, threshold, prefix)
        };
        self.report.segments.insert(s.kind.as_str().to_string(), matches);
        if let Some(prev_labels) = &self.prev_labels {
            let before = migration::labels_by_client(prev_labels, s.kind.id_column());
            let index: std::collections::HashMap<&str, usize> = s
                .model
                .segments
                .iter()
                .enumerate()
                .map(|(i, seg)| (seg.id.as_str(), i))
                .collect();
            let previous: Vec<Option<usize>> = self
                .ids
                .iter()
                .map(|id| before.get(id).and_then(|p| index.get(p.as_str()).copied()))
                .collect();
            let centroids = s.model.centroids();
            stick(
                s.z.view(),
                centroids.view(),
                &mut s.labels,
                &mut s.distances,
                &previous,
                self.params.hysteresis,
            );
        }
        Ok(())
    }

    /// What was carried over, for the manifest.
    pub fn finish(self) -> Stability {
        self.report
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StabilityError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Migration(#[from] migration::MigrationError),
}

/// Keeps rows in their previous cluster while its centroid is at most `(1 + margin)`
/// times as far as the nearest one. `previous[i]` is row i's previous cluster, if any.
/// Returns how many rows were kept back.
pub fn stick(
    x: ArrayView2<f64>,
    centroids: ArrayView2<f64>,
    labels: &mut Array1<usize>,
    distances: &mut Array1<f64>,
    previous: &[Option<usize>],
    margin: f64,
) -> usize {
    let mut kept = 0;
    for (i, row) in x.axis_iter(Axis(0)).enumerate() {
        let Some(p) = previous.get(i).copied().flatten() else {
            continue;
        };
        if p == labels[i] || p >= centroids.nrows() {
            continue;
        }
        let d: f64 = row
            .iter()
            .zip(centroids.row(p).iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        if d <= (1.0 + margin) * distances[i] {
            labels[i] = p;
            distances[i] = d;
            kept += 1;
        }
    }
    kept
}

/// Minimum-cost assignment of rows to columns (Hungarian algorithm, O(n^3)); works for
/// rectangular matrices. Returns for each row its column, or None when there are more
/// rows than columns and the row is left out.
pub fn assign_min_cost(cost: &[Vec<f64>]) -> Vec<Option<usize>> {
    let rows = cost.len();
    let cols = cost.first().map_or(0, Vec::len);
    let n = rows.max(cols);
    if n == 0 {
        return Vec::new();
    }
    // Square the matrix with zero-cost dummy rows or columns.
    let c = |i: usize, j: usize| if i < rows && j < cols { cost[i][j] } else { 0.0 };
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; n + 1]);
    let (mut p, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = c(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; rows];
    for j in 1..=n {
        if p[j] >= 1 && p[j] - 1 < rows && j - 1 < cols {
            out[p[j] - 1] = Some(j - 1);
        }
    }
    out
}

/// How one current segment relates to the previous run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentMatch {
    pub id: String,
    /// The previous segment it continues, if any.
    pub previous_id: Option<String>,
    /// Distance between the two centroids in the current scaled space.
    pub distance: Option<f64>,
    pub status: SegmentStatus,
}

/// Gives current segments the ids and names of the previous run's segments they
/// continue: optimal assignment on centroid distance (both sets of centroids in the
/// current scaled space), accepted up to `threshold`. Unmatched segments get fresh ids.
pub fn carry_over(
    current: &mut [Segment],
    previous: &[Segment],
    previous_in_current_space: &[Vec<f64>],
    threshold: f64,
    prefix: &str,
) -> Vec<SegmentMatch> {
    let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let cost: Vec<Vec<f64>> = current
        .iter()
        .map(|s| previous_in_current_space.iter().map(|p| dist(&s.centroid, p)).collect())
        .collect();
    let assignment = assign_min_cost(&cost);
    let mut next_number = previous
        .iter()
        .chain(current.iter())
        .filter_map(|s| s.id.strip_prefix(prefix).and_then(|n| n.parse::<usize>().ok()))
        .max()
        .unwrap_or(0)
        + 1;
    let fresh: Vec<(String, String)> = current.iter().map(|s| (s.name_en.clone(), s.name_zh.clone())).collect();
    let mut matches = Vec::new();
    let mut taken = vec![false; previous.len()];
    for (i, seg) in current.iter_mut().enumerate() {
        match assignment[i] {
            Some(j) if cost[i][j] <= threshold => {
                taken[j] = true;
                seg.id = previous[j].id.clone();
                seg.name_en = previous[j].name_en.clone();
                seg.name_zh = previous[j].name_zh.clone();
                matches.push(SegmentMatch {
                    id: seg.id.clone(),
                    previous_id: Some(seg.id.clone()),
                    distance: Some(cost[i][j]),
                    status: SegmentStatus::Kept,
                });
            }
            other => {
                seg.id = format!("{prefix}{next_number}");
                next_number += 1;
                seg.name_en = fresh[i].0.clone();
                seg.name_zh = fresh[i].1.clone();
                let distance = other.map(|j| cost[i][j]);
                matches.push(SegmentMatch {
                    id: seg.id.clone(),
                    previous_id: None,
                    distance,
                    status: SegmentStatus::New,
                });
            }
        }
    }
    // A fresh name may repeat a kept one: mark it as new.
    let kept: Vec<String> = current
        .iter()
        .zip(&matches)
        .filter(|(_, m)| m.status == SegmentStatus::Kept)
        .map(|(s, _)| s.name_en.clone())
        .collect();
    for (seg, m) in current.iter_mut().zip(&matches) {
        if m.status == SegmentStatus::New && kept.contains(&seg.name_en) {
            seg.name_en = format!("{} (new)", seg.name_en);
            seg.name_zh = format!("{}（新）", seg.name_zh);
        }
    }
    for (j, p) in previous.iter().enumerate() {
        if !taken[j] {
            matches.push(SegmentMatch {
                id: p.id.clone(),
                previous_id: Some(p.id.clone()),
                distance: None,
                status: SegmentStatus::Gone,
            });
        }
    }
    matches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hungarian_hand_cases() {
        let cost = vec![vec![4.0, 1.0, 3.0], vec![2.0, 0.0, 5.0], vec![3.0, 2.0, 2.0]];
        // Optimum 1 + 2 + 2 = 5: rows -> columns 1, 0, 2.
        assert_eq!(assign_min_cost(&cost), vec![Some(1), Some(0), Some(2)]);
        let wide = vec![vec![9.0, 1.0, 9.0], vec![1.0, 9.0, 9.0]];
        assert_eq!(assign_min_cost(&wide), vec![Some(1), Some(0)]);
        let tall = vec![vec![1.0], vec![0.5], vec![2.0]];
        assert_eq!(assign_min_cost(&tall), vec![None, Some(0), None]);
    }

    fn seg(id: &str, name: &str, c: &[f64]) -> Segment {
        Segment {
            id: id.into(),
            name_en: name.into(),
            name_zh: name.into(),
            centroid: c.to_vec(),
        }
    }

    #[test]
    fn ids_and_names_carry_over() {
        let previous = vec![
            seg("B1", "late payer", &[5.0, 0.0]),
            seg("B2", "punctual", &[0.0, 0.0]),
            seg("B3", "gone one", &[0.0, 9.0]),
        ];
        let prev_c: Vec<Vec<f64>> = previous.iter().map(|s| s.centroid.clone()).collect();
        let mut current = vec![
            seg("B1", "pays on time", &[0.1, 0.0]),
            seg("B2", "late payer", &[5.2, 0.1]),
            seg("B3", "growing", &[-6.0, 0.0]),
        ];
        let m = carry_over(&mut current, &previous, &prev_c, 1.0, "B");
        assert_eq!(
            (current[0].id.as_str(), current[0].name_en.as_str()),
            ("B2", "punctual")
        );
        assert_eq!(
            (current[1].id.as_str(), current[1].name_en.as_str()),
            ("B1", "late payer")
        );
        assert_eq!((current[2].id.as_str(), current[2].name_en.as_str()), ("B4", "growing"));
        assert_eq!(
            m.iter()
                .filter(|x| x.status == SegmentStatus::Gone)
                .map(|x| x.id.as_str())
                .collect::<Vec<_>>(),
            ["B3"]
        );
        assert_eq!(m[2].status, SegmentStatus::New);
    }
}
