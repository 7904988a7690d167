//! Quality of a clustering: silhouette (exact, on a seeded sample, one pass for many
//! labellings), Calinski-Harabasz and Davies-Bouldin.

use rand::seq::index::sample;

use super::*;

/// Mean silhouette of the rows in `idx` (distances among those rows only).
pub fn silhouette(x: ArrayView2<f64>, labels: &Array1<usize>, k: usize, idx: &[usize]) -> f64 {
    let sample = x.select(Axis(0), idx);
    let sample_labels: Array1<usize> = idx.iter().map(|&i| labels[i]).collect();
    silhouettes(sample.view(), &[(sample_labels, k)])[0]
}

/// One row's silhouette from its summed distances to each cluster.
pub(super) fn point_silhouette(sums: &[f64], counts: &[usize], own: usize) -> f64 {
    if counts[own] <= 1 {
        // A singleton's silhouette is 0 by convention.
        return 0.0;
    }
    let a = sums[own] / (counts[own] - 1) as f64;
    let b = (0..counts.len())
        .filter(|&c| c != own && counts[c] > 0)
        .map(|c| sums[c] / counts[c] as f64)
        .fold(f64::INFINITY, f64::min);
    if b.is_finite() {
        (b - a) / a.max(b).max(1e-300)
    } else {
        0.0
    }
}

/// Mean silhouettes of several labellings of the same rows (one per k of a sweep): each
/// row's distances to the others, the O(m²) part, are computed once, in parallel, and
/// shared by every labelling; memory stays O(m) per thread.
pub fn silhouettes(x: ArrayView2<f64>, labellings: &[(Array1<usize>, usize)]) -> Vec<f64> {
    let m = x.nrows();
    if m == 0 {
        return vec![0.0; labellings.len()];
    }
    let rows = Rows::new(x);
    let counts: Vec<Vec<usize>> = labellings
        .iter()
        .map(|(labels, k)| {
            let mut c = vec![0usize; *k];
            labels.iter().for_each(|&l| c[l] += 1);
            c
        })
        .collect();
    let totals = (0..m)
        .into_par_iter()
        .map(|a| {
            let ra = rows.row(a);
            let dist: Vec<f64> = (0..m)
                .map(|b| {
                    rows.row(b)
                        .iter()
                        .zip(ra)
                        .map(|(p, q)| (p - q) * (p - q))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect();
            labellings
                .iter()
                .zip(&counts)
                .map(|((labels, k), counts)| {
                    let mut sums = vec![0.0; *k];
                    for (b, d) in dist.iter().enumerate() {
                        sums[labels[b]] += d;
                    }
                    point_silhouette(&sums, counts, labels[a])
                })
                .collect::<Vec<f64>>()
        })
        .reduce(
            || vec![0.0; labellings.len()],
            |mut x, y| {
                x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
                x
            },
        );
    totals.into_iter().map(|t| t / m as f64).collect()
}

/// Calinski-Harabasz and Davies-Bouldin indices over all rows.
pub fn ch_db(x: ArrayView2<f64>, c: &Clustering) -> (f64, f64) {
    let k = c.centroids.nrows();
    let Some(overall) = x.mean_axis(Axis(0)) else {
        return (0.0, f64::INFINITY);
    };
    let mut sizes = vec![0usize; k];
    let mut scatter = vec![0.0; k];
    for (l, d) in c.labels.iter().zip(c.distances.iter()) {
        sizes[*l] += 1;
        scatter[*l] += d;
    }
    ch_db_parts(
        c.centroids.view(),
        &sizes,
        &scatter,
        c.inertia,
        overall.view(),
        x.nrows(),
    )
}

/// The two indices from per-cluster sizes and summed distances, and the inertia.
pub(super) fn ch_db_parts(
    centroids: ArrayView2<f64>,
    sizes: &[usize],
    scatter: &[f64],
    inertia: f64,
    overall: ndarray::ArrayView1<f64>,
    n: usize,
) -> (f64, f64) {
    let k = centroids.nrows();
    let between: f64 = (0..k)
        .map(|j| {
            sizes[j] as f64
                * centroids
                    .row(j)
                    .iter()
                    .zip(overall.iter())
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
        })
        .sum();
    let ch = if inertia > 0.0 && k > 1 && n > k {
        (between / (k - 1) as f64) / (inertia / (n - k) as f64)
    } else {
        0.0
    };
    let s: Vec<f64> = (0..k)
        .map(|j| {
            if sizes[j] > 0 {
                scatter[j] / sizes[j] as f64
            } else {
                0.0
            }
        })
        .collect();
    let mut db = 0.0;
    for i in 0..k {
        let mut worst: f64 = 0.0;
        for j in 0..k {
            if i == j {
                continue;
            }
            let d: f64 = centroids
                .row(i)
                .iter()
                .zip(centroids.row(j).iter())
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            worst = worst.max((s[i] + s[j]) / d.max(1e-12));
        }
        db += worst;
    }
    (ch, db / k as f64)
}

/// A seeded sample of row indices, sorted (all rows when `n <= size`).
pub fn sample_rows(n: usize, size: usize, seed: u64) -> Vec<usize> {
    if n <= size {
        return (0..n).collect();
    }
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut idx = sample(&mut rng, n, size).into_vec();
    idx.sort_unstable();
    idx
}

pub fn score(x: ArrayView2<f64>, c: &Clustering, sample_idx: &[usize]) -> KScore {
    let k = c.centroids.nrows();
    let (ch, db) = ch_db(x, c);
    KScore {
        k,
        silhouette: silhouette(x, &c.labels, k, sample_idx),
        calinski_harabasz: ch,
        davies_bouldin: db,
        inertia: c.inertia,
    }
}
