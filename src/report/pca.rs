//! The scatter chart's projection: rows onto the first two principal components.

use ndarray::{Array2, ArrayView2, Axis};

/// Projects the rows in `idx` onto the first two principal components of `x` (for the
/// scatter chart). Eigenvectors of the covariance matrix by cyclic Jacobi rotations,
/// which is exact enough for the handful of features clustered here.
pub fn pca_2d(x: ArrayView2<f64>, idx: &[usize]) -> Vec<(f64, f64)> {
    let d = x.ncols();
    if d == 0 || x.nrows() == 0 {
        return Vec::new();
    }
    let Some(mean) = x.mean_axis(Axis(0)) else {
        return Vec::new();
    };
    let mut cov = Array2::<f64>::zeros((d, d));
    for row in x.axis_iter(Axis(0)) {
        let c = &row - &mean;
        for i in 0..d {
            for j in i..d {
                cov[[i, j]] += c[i] * c[j];
            }
        }
    }
    for i in 0..d {
        for j in 0..i {
            cov[[i, j]] = cov[[j, i]];
        }
    }
    let mut v = Array2::<f64>::eye(d);
    for _sweep in 0..50 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| cov[[i, j]].powi(2))
            .sum();
        if off < 1e-18 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                if cov[[p, q]].abs() < 1e-300 {
                    continue;
                }
                let theta = (cov[[q, q]] - cov[[p, p]]) / (2.0 * cov[[p, q]]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (cov[[k, p]], cov[[k, q]]);
                    cov[[k, p]] = c * akp - s * akq;
                    cov[[k, q]] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (cov[[p, k]], cov[[q, k]]);
                    cov[[p, k]] = c * apk - s * aqk;
                    cov[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| cov[[b, b]].total_cmp(&cov[[a, a]]));
    let pc = |row: ndarray::ArrayView1<f64>, k: usize| -> f64 {
        if k >= d {
            return 0.0;
        }
        let col = order[k];
        // Fix the sign so the picture does not flip between runs.
        let sign = if v
            .column(col)
            .iter()
            .copied()
            .fold(0.0, |a: f64, b: f64| if b.abs() > a.abs() { b } else { a })
            < 0.0
        {
            -1.0
        } else {
            1.0
        };
        (0..d).map(|j| (row[j] - mean[j]) * v[[j, col]] * sign).sum()
    };
    idx.iter().map(|&i| (pc(x.row(i), 0), pc(x.row(i), 1))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_long_axis() {
        // Points along the diagonal y = x with a little noise: PC1 is that diagonal.
        let x = ndarray::array![[0.0, 0.1], [1.0, 0.9], [2.0, 2.1], [3.0, 2.9], [4.0, 4.0]];
        let p = pca_2d(x.view(), &[0, 1, 2, 3, 4]);
        let spread1: f64 = p.iter().map(|q| q.0 * q.0).sum();
        let spread2: f64 = p.iter().map(|q| q.1 * q.1).sum();
        assert!(spread1 > 100.0 * spread2, "{p:?}");
        // Largest eigenvalue of the scatter matrix [[10, 9.8], [9.8, 9.64]], by hand.
        let lambda = (19.64 + (0.36f64 * 0.36 + 4.0 * 9.8 * 9.8).sqrt()) / 2.0;
        assert!((spread1 - lambda).abs() < 1e-9, "{spread1} vs {lambda}");
    }
}
