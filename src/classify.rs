//! Classify: a decision tree (CART, Gini impurity) that reproduces the cluster labels
//! from the features in their original units, so its rules read as the "why" of each
//! segment ("fees_12m > 6,000 and late_payment_share <= 0.2"). Sees only ndarray.
//!
//! The tree is grown here rather than by linfa-trees: linfa's sums class counts over a
//! `HashMap`, whose order changes from process to process, so near-equal splits and tied
//! leaves came out differently in two runs with the same seed. Here every sum and every
//! tie has a fixed order. Model files written with linfa's tree still load (converted).

use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::format::human;

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

/// A node of the tree: rows with `x[feature] <= threshold` go left.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    Leaf {
        class: usize,
    },
    Split {
        feature: usize,
        threshold: f64,
        left: Box<Node>,
        right: Box<Node>,
    },
}

impl Node {
    fn predict_row(&self, row: ndarray::ArrayView1<f64>) -> usize {
        let mut node = self;
        loop {
            match node {
                Node::Leaf { class } => return *class,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    node = if row[*feature] <= *threshold { left } else { right };
                }
            }
        }
    }

    /// Every node, depth first.
    pub fn nodes(&self) -> Vec<&Node> {
        let mut out = vec![self];
        let mut i = 0;
        while i < out.len() {
            if let Node::Split { left, right, .. } = out[i] {
                out.push(left);
                out.push(right);
            }
            i += 1;
        }
        out
    }

    /// A tree as linfa-trees stored it (model files of schema version 1).
    fn from_linfa(node: &TreeNode<f64, usize>) -> Node {
        if let Some(class) = node.prediction() {
            return Node::Leaf { class };
        }
        let (feature, threshold, _) = node.split();
        let children = node.children();
        let child = |i: usize| match children.get(i).and_then(|c| c.as_deref()) {
            Some(c) => Node::from_linfa(c),
            // linfa always gives an inner node two children; a damaged file is caught by
            // the model checks, which see the leaf's class.
            None => Node::Leaf { class: usize::MAX },
        };
        Node::Split {
            feature,
            threshold,
            left: Box::new(child(0)),
            right: Box::new(child(1)),
        }
    }
}

/// The tree as stored: this version's nodes, or linfa's tree from older model files.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredTree {
    Nodes(Node),
    Linfa(DecisionTree<f64, usize>),
}

fn stored_tree<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
    Ok(match StoredTree::deserialize(d)? {
        StoredTree::Nodes(n) => n,
        StoredTree::Linfa(t) => Node::from_linfa(t.root_node()),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeModel {
    pub features: Vec<String>,
    #[serde(deserialize_with = "stored_tree")]
    pub tree: Node,
    /// Accuracy on the held-out share of clients (not used in training).
    pub holdout_accuracy: f64,
    pub holdout_rows: usize,
    pub rules: Vec<Rule>,
}

/// Growth limits of the tree.
struct Limits {
    max_depth: usize,
    /// Fewest rows in a leaf.
    min_leaf: usize,
    /// Smallest impurity decrease worth a split.
    min_decrease: f64,
}

/// Gini impurity of class counts totalling `n`.
fn gini(counts: &[usize], n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    1.0 - counts.iter().map(|&c| (c as f64 / n).powi(2)).sum::<f64>()
}

/// The most frequent class; the lowest class wins a tie.
fn modal(counts: &[usize]) -> usize {
    let mut best = 0;
    for (c, &n) in counts.iter().enumerate() {
        if n > counts[best] {
            best = c;
        }
    }
    best
}

/// The best split of `rows` on feature `j`: (impurity decrease, threshold).
fn best_split(x: ArrayView2<f64>, y: &[usize], rows: &[usize], j: usize, k: usize, lim: &Limits) -> Option<(f64, f64)> {
    let n = rows.len();
    let mut order: Vec<(f64, usize)> = rows.iter().map(|&r| (x[[r, j]], y[r])).collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = vec![0usize; k];
    order.iter().for_each(|&(_, c)| total[c] += 1);
    let parent = gini(&total, n);
    let mut left = vec![0usize; k];
    let mut right_counts = vec![0usize; k];
    let mut best: Option<(f64, f64)> = None;
    for i in 0..n.saturating_sub(1) {
        left[order[i].1] += 1;
        if order[i].0 == order[i + 1].0 {
            continue;
        }
        let (nl, nr) = (i + 1, n - i - 1);
        if nl < lim.min_leaf || nr < lim.min_leaf {
            continue;
        }
        for c in 0..k {
            right_counts[c] = total[c] - left[c];
        }
        let child = (nl as f64 * gini(&left, nl) + nr as f64 * gini(&right_counts, nr)) / n as f64;
        let decrease = parent - child;
        if best.is_none_or(|(d, _)| decrease > d) {
            best = Some((decrease, (order[i].0 + order[i + 1].0) / 2.0));
        }
    }
    best
}

fn grow(x: ArrayView2<f64>, y: &[usize], rows: Vec<usize>, k: usize, depth: usize, lim: &Limits) -> Node {
    let mut counts = vec![0usize; k];
    rows.iter().for_each(|&r| counts[y[r]] += 1);
    let class = modal(&counts);
    if depth >= lim.max_depth || rows.len() < 2 * lim.min_leaf || counts[class] == rows.len() {
        return Node::Leaf { class };
    }
    // Features are scored side by side; the lowest feature wins a tie.
    let splits: Vec<Option<(f64, f64)>> = (0..x.ncols())
        .into_par_iter()
        .map(|j| best_split(x, y, &rows, j, k, lim))
        .collect();
    let mut best: Option<(f64, usize, f64)> = None;
    for (j, s) in splits.into_iter().enumerate() {
        if let Some((d, t)) = s {
            if best.is_none_or(|(bd, _, _)| d > bd) {
                best = Some((d, j, t));
            }
        }
    }
    let Some((decrease, feature, threshold)) = best.filter(|b| b.0 >= lim.min_decrease) else {
        return Node::Leaf { class };
    };
    let _ = decrease;
    let (l, r): (Vec<usize>, Vec<usize>) = rows.into_iter().partition(|&i| x[[i, feature]] <= threshold);
    Node::Split {
        feature,
        threshold,
        left: Box::new(grow(x, y, l, k, depth + 1, lim)),
        right: Box::new(grow(x, y, r, k, depth + 1, lim)),
    }
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
        if x.ncols() != features.len() {
            return Err(ClassifyError::Shape {
                expected: features.len(),
                found: x.ncols(),
            });
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
        let k = labels.iter().max().map_or(1, |m| m + 1);
        // Leaves of at least 0.5% of clients keep rules general enough to read.
        let limits = Limits {
            max_depth,
            min_leaf: ((train.len() as f64) * 0.005).ceil().max(1.0) as usize,
            min_decrease: 1e-5,
        };
        let y: Vec<usize> = yt.to_vec();
        let tree = grow(xt.view(), &y, (0..train.len()).collect(), k, 0, &limits);
        let correct = test
            .iter()
            .filter(|&&r| tree.predict_row(x.row(r)) == labels[r])
            .count();
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
        Ok(x.rows().into_iter().map(|row| self.tree.predict_row(row)).collect())
    }
}

/// Bounds on one feature along a path: (lower, exclusive; upper, inclusive).
type Bounds = Vec<(Option<f64>, Option<f64>)>;

fn rules(tree: &Node, features: &[String], x: ArrayView2<f64>, y: &Array1<usize>) -> Vec<Rule> {
    let mut out = Vec::new();
    let rows: Vec<usize> = (0..x.nrows()).collect();
    walk(
        tree,
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
    node: &Node,
    bounds: &Bounds,
    rows: &[usize],
    features: &[String],
    x: ArrayView2<f64>,
    y: &Array1<usize>,
    out: &mut Vec<Rule>,
) {
    match node {
        Node::Leaf { class } => {
            if rows.is_empty() {
                return;
            }
            let hits = rows.iter().filter(|&&r| y[r] == *class).count();
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
                class: *class,
                conditions,
                support: rows.len(),
                purity: hits as f64 / rows.len() as f64,
            });
        }
        Node::Split {
            feature,
            threshold,
            left,
            right,
        } => {
            let (feature, threshold) = (*feature, *threshold);
            let (left_rows, right_rows): (Vec<usize>, Vec<usize>) =
                rows.iter().partition(|&&r| x[[r, feature]] <= threshold);
            let mut left_bounds = bounds.clone();
            left_bounds[feature].1 = Some(left_bounds[feature].1.map_or(threshold, |h| h.min(threshold)));
            let mut right_bounds = bounds.clone();
            right_bounds[feature].0 = Some(right_bounds[feature].0.map_or(threshold, |l| l.max(threshold)));
            walk(left, &left_bounds, &left_rows, features, x, y, out);
            walk(right, &right_bounds, &right_rows, features, x, y, out);
        }
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
    fn same_data_same_tree_and_a_hand_computed_split() {
        // Two classes split at x0 = 2.5 (midpoint of 2 and 3); x1 is noise.
        let x = ndarray::array![[1.0, 5.0], [2.0, 1.0], [2.0, 3.0], [3.0, 2.0], [4.0, 4.0], [5.0, 0.0]];
        let y = [0usize, 0, 0, 1, 1, 1];
        let lim = Limits {
            max_depth: 3,
            min_leaf: 1,
            min_decrease: 1e-5,
        };
        let tree = grow(x.view(), &y, (0..6).collect(), 2, 0, &lim);
        let want = Node::Split {
            feature: 0,
            threshold: 2.5,
            left: Box::new(Node::Leaf { class: 0 }),
            right: Box::new(Node::Leaf { class: 1 }),
        };
        assert_eq!(tree, want);
        // Many near-equal splits: the same tree every time.
        let a: Vec<f64> = (0..3000).map(|i| ((i * 7919) % 1000) as f64).collect();
        let b: Vec<f64> = (0..3000).map(|i| ((i * 104_729) % 997) as f64).collect();
        let x = columns_to_matrix(&[a.clone(), b.clone()]);
        let y = Array1::from(
            (0..3000)
                .map(|i| (a[i] as usize + b[i] as usize) % 3)
                .collect::<Vec<_>>(),
        );
        let names = vec!["a".to_string(), "b".to_string()];
        let first = TreeModel::train(x.view(), &y, &names, 4, 0.2, 3).unwrap();
        for _ in 0..3 {
            let again = TreeModel::train(x.view(), &y, &names, 4, 0.2, 3).unwrap();
            assert_eq!(again.tree, first.tree);
            assert_eq!(again.rules, first.rules);
        }
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
