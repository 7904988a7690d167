//! Classify: a decision tree (linfa-trees) that reproduces the cluster labels from the
//! features in their original units, so its rules read as the "why" of each segment
//! ("fees_12m > 6,000 and late_payment_share <= 0.2"). Sees only ndarray.

use linfa::prelude::*;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClassifyError {
    #[error("the decision tree needs at least 10 clients, got {0}")]
    TooFewRows(usize),
    #[error("decision tree training failed: {0}")]
    Fit(String),
    #[error("matrix has {found} columns but the tree was trained on {expected}")]
    Shape { expected: usize, found: usize },
}

/// One leaf of the tree as a readable rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    pub class: usize,
    pub conditions: Vec<String>,
    /// Training rows that reach this leaf.
    pub support: usize,
    /// Share of those rows whose label is `class`.
    pub purity: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeModel {
    pub features: Vec<String>,
    pub tree: DecisionTree<f64, usize>,
    /// Accuracy on the held-out share of clients (not used in training).
    pub holdout_accuracy: f64,
    pub holdout_rows: usize,
    pub rules: Vec<Rule>,
}

impl TreeModel {
    /// Trains on a seeded split, keeps `test_share` of rows out to measure accuracy.
    /// At most this many clients train the tree, and at most this many test it.
    pub const MAX_ROWS: usize = 200_000;

    pub fn train(
        x: ArrayView2<f64>,
        labels: &Array1<usize>,
        features: &[String],
        max_depth: usize,
        test_share: f64,
        seed: u64,
    ) -> Result<TreeModel, ClassifyError> {
        let n = x.nrows();
        if n < 10 {
            return Err(ClassifyError::TooFewRows(n));
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut Xoshiro256Plus::seed_from_u64(seed));
        let n_test = ((n as f64) * test_share).ceil() as usize;
        let (test, train) = idx.split_at(n_test.clamp(1, n - 1));
        // A shallow tree learnt from a seeded sample of this size is the same tree within
        // noise, and learning from a million rows would take longer than the clustering.
        let test = &test[..test.len().min(Self::MAX_ROWS)];
        let mut train = train[..train.len().min(Self::MAX_ROWS)].to_vec();
        train.sort_unstable();
        let xt = x.select(Axis(0), &train);
        let yt = labels.select(Axis(0), &train);
        // Leaves of at least 0.5% of clients keep rules general enough to read.
        let min_leaf = ((train.len() as f32) * 0.005).max(1.0);
        let tree = DecisionTree::params()
            .max_depth(Some(max_depth))
            .min_weight_leaf(min_leaf)
            .min_weight_split(2.0 * min_leaf)
            .fit(&Dataset::new(xt.clone(), yt.clone()))
            .map_err(|e| ClassifyError::Fit(e.to_string()))?;
        let xs = x.select(Axis(0), test);
        let ys = labels.select(Axis(0), test);
        let pred = tree.predict(&xs);
        let correct = pred.iter().zip(ys.iter()).filter(|(a, b)| a == b).count();
        let rules = rules(&tree, features, xt.view(), &yt);
        Ok(TreeModel {
            features: features.to_vec(),
            tree,
            holdout_accuracy: correct as f64 / test.len() as f64,
            holdout_rows: test.len(),
            rules,
        })
    }

    pub fn predict(&self, x: ArrayView2<f64>) -> Result<Array1<usize>, ClassifyError> {
        if x.ncols() != self.features.len() {
            return Err(ClassifyError::Shape {
                expected: self.features.len(),
                found: x.ncols(),
            });
        }
        Ok(self.tree.predict(&x.to_owned()))
    }
}

/// Formats a threshold for people: thousands separators for large values.
pub fn human(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        if v < 0.0 {
            format!("-{out}")
        } else {
            out
        }
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Bounds on one feature along a path: (lower, exclusive; upper, inclusive).
type Bounds = Vec<(Option<f64>, Option<f64>)>;

fn rules(tree: &DecisionTree<f64, usize>, features: &[String], x: ArrayView2<f64>, y: &Array1<usize>) -> Vec<Rule> {
    let mut out = Vec::new();
    let rows: Vec<usize> = (0..x.nrows()).collect();
    walk(
        tree.root_node(),
        &vec![(None, None); features.len()],
        &rows,
        features,
        x,
        y,
        &mut out,
    );
    out.sort_by(|a, b| a.class.cmp(&b.class).then(b.support.cmp(&a.support)));
    out
}

fn walk(
    node: &TreeNode<f64, usize>,
    bounds: &Bounds,
    rows: &[usize],
    features: &[String],
    x: ArrayView2<f64>,
    y: &Array1<usize>,
    out: &mut Vec<Rule>,
) {
    if let Some(class) = node.prediction() {
        if rows.is_empty() {
            return;
        }
        let hits = rows.iter().filter(|&&r| y[r] == class).count();
        let conditions = bounds
            .iter()
            .enumerate()
            .filter_map(|(j, b)| match b {
                (Some(lo), Some(hi)) => Some(format!("{} < {} <= {}", human(*lo), features[j], human(*hi))),
                (Some(lo), None) => Some(format!("{} > {}", features[j], human(*lo))),
                (None, Some(hi)) => Some(format!("{} <= {}", features[j], human(*hi))),
                (None, None) => None,
            })
            .collect();
        out.push(Rule {
            class,
            conditions,
            support: rows.len(),
            purity: hits as f64 / rows.len() as f64,
        });
        return;
    }
    let (feature, threshold, _) = node.split();
    let (left_rows, right_rows): (Vec<usize>, Vec<usize>) = rows.iter().partition(|&&r| x[[r, feature]] <= threshold);
    let children = node.children();
    let mut left_bounds = bounds.clone();
    left_bounds[feature].1 = Some(left_bounds[feature].1.map_or(threshold, |h| h.min(threshold)));
    let mut right_bounds = bounds.clone();
    right_bounds[feature].0 = Some(right_bounds[feature].0.map_or(threshold, |l| l.max(threshold)));
    if let Some(Some(left)) = children.first().map(|c| c.as_deref()) {
        walk(left, &left_bounds, &left_rows, features, x, y, out);
    }
    if let Some(Some(right)) = children.get(1).map(|c| c.as_deref()) {
        walk(right, &right_bounds, &right_rows, features, x, y, out);
    }
}

/// Training matrix helper for tests and callers holding a feature-major layout.
pub fn columns_to_matrix(cols: &[Vec<f64>]) -> Array2<f64> {
    let n = cols.first().map_or(0, Vec::len);
    Array2::from_shape_fn((n, cols.len()), |(i, j)| cols[j][i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_threshold_rule() {
        // Class 1 exactly when the first feature is above 50.
        let a: Vec<f64> = (0..200).map(|i| i as f64 / 2.0).collect();
        let b: Vec<f64> = (0..200).map(|i| ((i * 37) % 11) as f64).collect();
        let x = columns_to_matrix(&[a.clone(), b]);
        let y = Array1::from(a.iter().map(|v| usize::from(*v > 50.0)).collect::<Vec<_>>());
        let names = vec!["fees_12m".to_string(), "noise".to_string()];
        let m = TreeModel::train(x.view(), &y, &names, 3, 0.2, 1).unwrap();
        assert!(m.holdout_accuracy > 0.95, "{}", m.holdout_accuracy);
        assert_eq!(m.rules.len(), 2, "{:?}", m.rules);
        assert!(m.rules.iter().all(|r| r.purity == 1.0));
        assert!(m.rules[1].conditions[0].starts_with("fees_12m >"), "{:?}", m.rules);
        let json = serde_json::to_string(&m).unwrap();
        let back: TreeModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back.predict(x.view()).unwrap(), m.predict(x.view()).unwrap());
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(1234567.4), "1,234,567");
        assert_eq!(human(-2500.0), "-2,500");
        assert_eq!(human(12.345), "12.3");
        assert_eq!(human(0.25), "0.25");
        assert_eq!(human(2.0), "2");
    }

    #[test]
    fn too_few_rows() {
        let x = Array2::zeros((5, 1));
        let y = Array1::zeros(5);
        assert!(matches!(
            TreeModel::train(x.view(), &y, &["a".into()], 2, 0.2, 1),
            Err(ClassifyError::TooFewRows(5))
        ));
    }
}
