//! Cluster: k-means (k-means++ seeding, several seeded restarts) and the choice of k from
//! three internal quality measures. Sees only ndarray.
//!
//! Two interchangeable k-means implementations sit behind linfa's `Fit`/`Predict`:
//! [`FastKMeansParams`] (the default; [`kernel`]) and linfa-clustering's `KMeans`
//! (`kmeans.backend = "linfa"`, kept as the reference).

pub mod kernel;
mod quality;
mod select;

pub use quality::{ch_db, sample_rows, score, silhouette, silhouettes};
pub use select::{choose_k, select_k};

use linfa::prelude::*;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{s, Array1, Array2, ArrayBase, ArrayView2, Axis, Data, Ix2};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use kernel::{Rows, StopRule};

#[derive(Debug, Clone, Serialize)]
pub struct KMeansSettings {
    pub backend: KMeansBackend,
    pub n_runs: usize,
    pub max_iterations: u64,
    pub tolerance: f64,
}

/// `[kmeans]` as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawKMeans {
    pub backend: Option<KMeansBackend>,
    pub n_runs: Option<usize>,
    pub max_iterations: Option<u64>,
    pub tolerance: Option<f64>,
}

impl RawKMeans {
    pub fn check(&self) -> Result<KMeansSettings, crate::params::ParamError> {
        use crate::params::invalid;
        let k = KMeansSettings {
            backend: self.backend.unwrap_or_default(),
            n_runs: self.n_runs.unwrap_or(8),
            max_iterations: self.max_iterations.unwrap_or(300),
            tolerance: self.tolerance.unwrap_or(1e-4),
        };
        if k.n_runs == 0 || k.n_runs > 100 {
            return Err(invalid("kmeans.n_runs", "must be between 1 and 100", k.n_runs));
        }
        if k.max_iterations == 0 {
            return Err(invalid("kmeans.max_iterations", "must be at least 1", k.max_iterations));
        }
        if !(k.tolerance > 0.0) {
            return Err(invalid("kmeans.tolerance", "must be greater than 0", k.tolerance));
        }
        Ok(k)
    }
}

/// Which k-means implementation fits the clusters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KMeansBackend {
    /// The multi-threaded kernel in `cluster::kernel` (scikit-learn's stopping rule).
    #[default]
    Fast,
    /// linfa-clustering's KMeans (its own stopping rule), the reference.
    Linfa,
}

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("k-means with k = {k} needs at least {k} clients, got {n}")]
    TooFewRows { k: usize, n: usize },
    #[error("k-means failed for k = {k}: {message}")]
    KMeans { k: usize, message: String },
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}

/// Hyperparameters of the fast k-means ([`kernel`]); `fit` through linfa's `Fit`.
#[derive(Debug, Clone)]
pub struct FastKMeansParams {
    pub k: usize,
    pub n_runs: usize,
    pub max_iterations: usize,
    pub tolerance: f64,
    pub rule: StopRule,
    pub seed: u64,
    /// Starting centres (k × d) instead of k-means++: one run from them, no restarts.
    pub init: Option<Array2<f64>>,
}

impl FastKMeansParams {
    pub fn new(k: usize, settings: &KMeansSettings, seed: u64) -> Self {
        FastKMeansParams {
            k,
            n_runs: settings.n_runs,
            max_iterations: settings.max_iterations as usize,
            tolerance: settings.tolerance,
            rule: StopRule::Sklearn,
            seed,
            init: None,
        }
    }
}

/// A fitted fast k-means model.
#[derive(Debug, Clone)]
pub struct FastKMeans {
    pub centroids: Array2<f64>,
    /// Sum of squared distances (see [`StopRule`] for which assignment).
    pub inertia: f64,
    /// Lloyd iterations of the kept run.
    pub n_iter: usize,
}

/// The random stream of restart `run`: independent of how many runs there are.
fn run_rng(seed: u64, run: usize) -> Xoshiro256Plus {
    Xoshiro256Plus::seed_from_u64(seed ^ (run as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Index of the lowest inertia (the first on ties).
fn best_of(inertias: impl Iterator<Item = f64>) -> usize {
    inertias
        .enumerate()
        .fold((0, f64::INFINITY), |b, (i, v)| if v < b.1 { (i, v) } else { b })
        .0
}

/// Above twice this many rows, the restarts run on a seeded sample of this size and only
/// the best start of each k is then run to convergence on all rows. Restarts mostly differ
/// in which local optimum they reach, which a sample of this size shows as well as the
/// whole; at 1M rows this makes the restarts nearly free.
pub const RESTART_SAMPLE: usize = 100_000;

/// Runs `runs` k-means++ restarts for every k in `ks` (one shared seeding of max(ks)
/// centres per restart, whose prefixes start the smaller k), all in the same passes, and
/// returns the best fit of each k.
pub fn restarts_then_polish(
    x: ArrayView2<f64>,
    ks: &[usize],
    runs: usize,
    rule: StopRule,
    max_iter: usize,
    tol: f64,
    seed: u64,
) -> Vec<kernel::Fitted> {
    let n = x.nrows();
    let kmax = ks.iter().copied().max().unwrap_or(1);
    let runs = runs.max(1);
    let sampled = runs > 1 && n > 2 * RESTART_SAMPLE;
    let sample = sampled.then(|| x.select(Axis(0), &sample_rows(n, RESTART_SAMPLE, seed ^ 0x5A3F)));
    let srows = match &sample {
        Some(s) => Rows::new(s.view()),
        None => Rows::new(x),
    };
    let seeds: Vec<Array2<f64>> = (0..runs)
        .map(|r| kernel::kmeans_plus_plus(&srows, kmax, kernel::default_trials(kmax), &mut run_rng(seed, r)))
        .collect();
    let inits: Vec<Array2<f64>> = ks
        .iter()
        .flat_map(|&k| seeds.iter().map(move |c| c.slice(s![..k, ..]).to_owned()))
        .collect();
    let mut fitted = kernel::lloyd_many(&srows, inits, rule, max_iter, tol);
    let mut best = Vec::with_capacity(ks.len());
    for i in (0..ks.len()).rev() {
        let group: Vec<kernel::Fitted> = fitted.drain(i * runs..).collect();
        let b = best_of(group.iter().map(|f| f.inertia));
        best.push(group.into_iter().nth(b));
    }
    let best: Vec<kernel::Fitted> = best.into_iter().rev().flatten().collect();
    if !sampled {
        return best;
    }
    let full = Rows::new(x);
    kernel::lloyd_many(
        &full,
        best.into_iter().map(|f| f.centroids).collect(),
        rule,
        max_iter,
        tol,
    )
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, ClusterError> for FastKMeansParams {
    type Object = FastKMeans;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<FastKMeans, ClusterError> {
        let x = dataset.records().view();
        let k = self.k;
        if k == 0 || x.nrows() < k {
            return Err(ClusterError::TooFewRows { k, n: x.nrows() });
        }
        let f = match &self.init {
            Some(c) if c.dim() == (k, x.ncols()) => {
                let rows = Rows::new(x);
                let mut f = kernel::lloyd_many(&rows, vec![c.clone()], self.rule, self.max_iterations, self.tolerance);
                f.swap_remove(0)
            }
            Some(c) => {
                return Err(ClusterError::KMeans {
                    k,
                    message: format!("starting centres are {:?}, expected ({k}, {})", c.dim(), x.ncols()),
                })
            }
            None => restarts_then_polish(
                x,
                &[k],
                self.n_runs,
                self.rule,
                self.max_iterations,
                self.tolerance,
                self.seed,
            )
            .swap_remove(0),
        };
        Ok(FastKMeans {
            centroids: f.centroids,
            inertia: f.inertia,
            n_iter: f.n_iter,
        })
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<usize>> for FastKMeans {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<usize>) {
        let (labels, _, _) = kernel::assign(&Rows::new(x.view()), &self.centroids);
        y.iter_mut().zip(labels).for_each(|(y, l)| *y = l as usize);
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<usize> {
        Array1::zeros(x.nrows())
    }
}

/// A fitted clustering: centroids in scaled space, and each row's cluster and distance.
#[derive(Debug, Clone)]
pub struct Clustering {
    pub centroids: Array2<f64>,
    pub labels: Array1<usize>,
    pub distances: Array1<f64>,
    /// Sum of squared distances to the own centroid.
    pub inertia: f64,
}

/// Quality of one k.
#[derive(Debug, Clone, Serialize)]
pub struct KScore {
    pub k: usize,
    /// Mean silhouette on a seeded sample (higher is better, -1..1).
    pub silhouette: f64,
    /// Calinski-Harabasz index (higher is better).
    pub calinski_harabasz: f64,
    /// Davies-Bouldin index (lower is better).
    pub davies_bouldin: f64,
    pub inertia: f64,
}

/// Nearest centroid of each row and the Euclidean distance to it.
pub fn assign(x: ArrayView2<f64>, centroids: ArrayView2<f64>) -> (Array1<usize>, Array1<f64>) {
    if centroids.nrows() > 0 && x.nrows() > 0 {
        let (labels, sq, _) = kernel::assign(&Rows::new(x), &centroids.to_owned());
        return (kernel::labels_array(&labels), sq.into_iter().map(f64::sqrt).collect());
    }
    let n = x.nrows();
    let mut labels = Array1::zeros(n);
    let mut dist = Array1::zeros(n);
    for (i, row) in x.axis_iter(Axis(0)).enumerate() {
        let mut best = (0, f64::INFINITY);
        for (c, centre) in centroids.axis_iter(Axis(0)).enumerate() {
            let d: f64 = row.iter().zip(centre.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
            if d < best.1 {
                best = (c, d);
            }
        }
        labels[i] = best.0;
        dist[i] = best.1.sqrt();
    }
    (labels, dist)
}

/// Fits k-means and renumbers clusters by size (largest first, ties by centroid), so
/// that labels do not depend on the order the restarts happened to find them in.
pub fn fit(x: ArrayView2<f64>, k: usize, params: &KMeansSettings, seed: u64) -> Result<Clustering, ClusterError> {
    if x.nrows() < k {
        return Err(ClusterError::TooFewRows { k, n: x.nrows() });
    }
    let centroids = match params.backend {
        KMeansBackend::Fast => {
            FastKMeansParams::new(k, params, seed)
                .fit(&DatasetBase::from(x))?
                .centroids
        }
        KMeansBackend::Linfa => fit_linfa(x, k, params, seed)?,
    };
    finish(x, centroids)
}

/// linfa-clustering's KMeans, the reference implementation.
pub fn fit_linfa(
    x: ArrayView2<f64>,
    k: usize,
    params: &KMeansSettings,
    seed: u64,
) -> Result<Array2<f64>, ClusterError> {
    let rng = Xoshiro256Plus::seed_from_u64(seed);
    let data = DatasetBase::from(x.to_owned());
    let model = KMeans::params_with_rng(k, rng)
        .n_runs(params.n_runs)
        .max_n_iterations(params.max_iterations)
        .tolerance(params.tolerance)
        .init_method(KMeansInit::KMeansPlusPlus)
        .fit(&data)
        .map_err(|e| ClusterError::KMeans {
            k,
            message: e.to_string(),
        })?;
    Ok(model.centroids().clone())
}

/// Renumbers clusters by size (largest first, ties by centroid) and assigns every row.
/// A cluster no row is nearest to is dropped: with too little variation in the data
/// (identical clients), k-means leaves some empty, and an empty segment helps nobody.
fn finish(x: ArrayView2<f64>, centroids: Array2<f64>) -> Result<Clustering, ClusterError> {
    let (labels, _) = assign(x, centroids.view());
    let mut sizes = vec![0usize; centroids.nrows()];
    labels.iter().for_each(|&l| sizes[l] += 1);
    let keep: Vec<usize> = (0..sizes.len()).filter(|&c| sizes[c] > 0).collect();
    let (centroids, sizes) = if keep.len() < sizes.len() {
        (
            centroids.select(Axis(0), &keep),
            keep.iter().map(|&c| sizes[c]).collect(),
        )
    } else {
        (centroids, sizes)
    };
    let k = centroids.nrows();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| {
        sizes[b].cmp(&sizes[a]).then_with(|| {
            let (ra, rb) = (centroids.row(a), centroids.row(b));
            ra.iter()
                .zip(rb.iter())
                .map(|(p, q)| p.total_cmp(q))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    let ordered =
        ndarray::stack(Axis(0), &order.iter().map(|&c| centroids.row(c)).collect::<Vec<_>>()).map_err(|e| {
            ClusterError::KMeans {
                k,
                message: e.to_string(),
            }
        })?;
    let (labels, distances) = assign(x, ordered.view());
    let inertia = distances.iter().map(|d| d * d).sum();
    Ok(Clustering {
        centroids: ordered,
        labels,
        distances,
        inertia,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Three tight blobs far apart.
    fn blobs(seed: u64) -> (Array2<f64>, Vec<usize>) {
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let mut x = Array2::zeros((300, 2));
        let mut truth = Vec::new();
        for i in 0..300 {
            let c = i % 3;
            x[[i, 0]] = centres[c][0] + rng.gen_range(-1.0..1.0);
            x[[i, 1]] = centres[c][1] + rng.gen_range(-1.0..1.0);
            truth.push(c);
        }
        (x, truth)
    }

    fn params() -> KMeansSettings {
        KMeansSettings {
            backend: Default::default(),
            n_runs: 4,
            max_iterations: 100,
            tolerance: 1e-6,
        }
    }

    #[test]
    fn recovers_blobs_and_chooses_three() {
        let (x, truth) = blobs(1);
        let (c, scores) = select_k(x.view(), (2, 6), &params(), 1000, 3, |_| {}).unwrap();
        assert_eq!(c.centroids.nrows(), 3, "{scores:?}");
        // Same blob, same label.
        for i in 0..300 {
            for j in 0..3 {
                assert_eq!(truth[i] == truth[j], c.labels[i] == c.labels[j]);
            }
        }
        let s3 = scores.iter().find(|s| s.k == 3).unwrap();
        assert!(s3.silhouette > 0.8);
    }

    #[test]
    fn same_seed_same_result() {
        let (x, _) = blobs(2);
        let a = fit(x.view(), 4, &params(), 9).unwrap();
        let b = fit(x.view(), 4, &params(), 9).unwrap();
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.centroids, b.centroids);
    }

    #[test]
    fn silhouette_hand_case() {
        // Two points at 0 and 1 in cluster 0, one at 5 in cluster 1.
        let x = ndarray::array![[0.0], [1.0], [5.0]];
        let labels = Array1::from(vec![0, 0, 1]);
        let s = silhouette(x.view(), &labels, 2, &[0, 1, 2]);
        // a(0)=1, b(0)=5 -> 0.8; a(1)=1, b(1)=4 -> 0.75; singleton -> 0.
        assert!((s - (0.8 + 0.75) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn one_pass_serves_every_labelling() {
        // The hand case below, and the same rows labelled all in one cluster (b undefined:
        // every silhouette 0).
        let x = ndarray::array![[0.0], [1.0], [5.0]];
        let s = silhouettes(
            x.view(),
            &[(Array1::from(vec![0, 0, 1]), 2), (Array1::from(vec![0, 0, 0]), 1)],
        );
        assert!((s[0] - (0.8 + 0.75) / 3.0).abs() < 1e-12);
        assert_eq!(s[1], 0.0);
    }

    #[test]
    fn davies_bouldin_and_ch_hand_case() {
        let x = ndarray::array![[0.0], [2.0], [10.0], [12.0]];
        let c = Clustering {
            centroids: ndarray::array![[1.0], [11.0]],
            labels: Array1::from(vec![0, 0, 1, 1]),
            distances: Array1::from(vec![1.0, 1.0, 1.0, 1.0]),
            inertia: 4.0,
        };
        let (ch, db) = ch_db(x.view(), &c);
        // B = 2*25 + 2*25 = 100; W = 4; CH = (100/1)/(4/2) = 50. DB = (1+1)/10 = 0.2.
        assert!((ch - 50.0).abs() < 1e-9);
        assert!((db - 0.2).abs() < 1e-12);
    }

    /// Four overlapping Gaussian-ish blobs in 5 dimensions: k-means needs many iterations.
    fn overlapping(n: usize, seed: u64) -> Array2<f64> {
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        Array2::from_shape_fn((n, 5), |(i, j)| {
            let c = (i % 4) as f64;
            let noise: f64 = (0..4).map(|_| rng.gen_range(-1.0..1.0)).sum();
            c * ((j % 2) as f64 + 0.5) + noise
        })
    }

    fn rel_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
        let num: f64 = a.iter().zip(b.iter()).map(|(p, q)| (p - q) * (p - q)).sum();
        let den: f64 = a.iter().map(|p| p * p).sum();
        (num / den).sqrt()
    }

    #[test]
    fn fast_kernel_reaches_linfa_centroids_from_the_same_start() {
        let x = overlapping(5000, 11);
        let rows = Rows::new(x.view());
        let init = kernel::kmeans_plus_plus(&rows, 4, kernel::default_trials(4), &mut run_rng(3, 0));
        let tol = 1e-6;
        let reference = KMeans::params_with_rng(4, Xoshiro256Plus::seed_from_u64(0))
            .n_runs(1)
            .tolerance(tol)
            .max_n_iterations(500)
            .init_method(KMeansInit::Precomputed(init.clone()))
            .fit(&DatasetBase::from(x.clone()))
            .unwrap();
        let fast = FastKMeansParams {
            k: 4,
            n_runs: 1,
            max_iterations: 500,
            tolerance: tol,
            rule: StopRule::Linfa,
            seed: 0,
            init: Some(init.clone()),
        }
        .fit(&DatasetBase::from(x.view()))
        .unwrap();
        assert!(fast.n_iter > 5, "too easy a case: {} iterations", fast.n_iter);
        let diff = rel_diff(reference.centroids(), &fast.centroids);
        assert!(diff <= 1e-9, "relative difference {diff:e}");
        // linfa reports the mean squared distance of the last assignment.
        let inertia = fast.inertia / x.nrows() as f64;
        assert!((inertia - reference.inertia()).abs() <= 1e-9 * reference.inertia());
        // The two update rules differ step by step, so the agreement above is not trivial.
        let step = |rule| {
            FastKMeansParams {
                k: 4,
                n_runs: 1,
                max_iterations: 2,
                tolerance: 0.0,
                rule,
                seed: 0,
                init: Some(init.clone()),
            }
            .fit(&DatasetBase::from(x.view()))
            .unwrap()
            .centroids
        };
        assert!(rel_diff(&step(StopRule::Linfa), &step(StopRule::Sklearn)) > 1e-6);
    }

    #[test]
    fn predict_matches_assign_and_batching_changes_nothing() {
        let x = overlapping(3000, 5);
        let rows = Rows::new(x.view());
        let inits: Vec<Array2<f64>> = (0..3)
            .map(|r| kernel::kmeans_plus_plus(&rows, 3 + r, 3, &mut run_rng(8, r)))
            .collect();
        let together = kernel::lloyd_many(&rows, inits.clone(), StopRule::Sklearn, 100, 1e-4);
        for (i, init) in inits.into_iter().enumerate() {
            let alone = kernel::lloyd_many(&rows, vec![init], StopRule::Sklearn, 100, 1e-4);
            assert_eq!(alone[0].centroids, together[i].centroids);
            assert_eq!(alone[0].inertia, together[i].inertia);
        }
        let model = FastKMeans {
            centroids: together[2].centroids.clone(),
            inertia: 0.0,
            n_iter: 0,
        };
        let predicted: Array1<usize> = model.predict(&x);
        let (brute, _) = {
            // Plain double loop, as the reference.
            let mut l = Array1::zeros(x.nrows());
            for (i, row) in x.rows().into_iter().enumerate() {
                let mut best = (0, f64::INFINITY);
                for (c, centre) in model.centroids.rows().into_iter().enumerate() {
                    let d: f64 = row.iter().zip(centre.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
                    if d < best.1 {
                        best = (c, d);
                    }
                }
                l[i] = best.0;
            }
            (l, ())
        };
        assert_eq!(predicted, brute);
    }

    #[test]
    fn both_backends_find_the_blobs() {
        let (x, truth) = blobs(4);
        for backend in [KMeansBackend::Fast, KMeansBackend::Linfa] {
            let p = KMeansSettings { backend, ..params() };
            let c = fit(x.view(), 3, &p, 1).unwrap();
            for i in 0..300 {
                assert_eq!(truth[i] == truth[0], c.labels[i] == c.labels[0], "{backend:?}");
            }
        }
    }

    #[test]
    fn too_few_rows() {
        let x = ndarray::array![[0.0], [1.0]];
        assert!(matches!(
            fit(x.view(), 3, &params(), 1),
            Err(ClusterError::TooFewRows { .. })
        ));
    }

    #[test]
    fn identical_rows_give_no_empty_cluster() {
        let x = Array2::<f64>::zeros((50, 3));
        for backend in [KMeansBackend::Fast, KMeansBackend::Linfa] {
            let p = KMeansSettings { backend, ..params() };
            let c = fit(x.view(), 3, &p, 1).unwrap();
            assert_eq!(c.centroids.nrows(), 1, "{backend:?}");
            assert!(c.labels.iter().all(|&l| l == 0));
        }
        let two = ndarray::Array2::from_shape_fn((40, 2), |(i, _)| (i % 2) as f64);
        let (c, _) = select_k(two.view(), (2, 5), &params(), 100, 1, |_| {}).unwrap();
        let mut sizes = vec![0usize; c.centroids.nrows()];
        c.labels.iter().for_each(|&l| sizes[l] += 1);
        assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");
    }
}
