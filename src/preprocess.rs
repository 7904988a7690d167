//! Preprocess: the boundary between polars and ndarray. Columns of the feature table
//! become a dense `Array2<f64>` (ndarray 0.16, linfa's), missing values are imputed with
//! the median, then each feature is transformed (log1p for money and counts) and
//! standardised. The fitted [`Scaler`] is saved in the model so `score` reproduces it.

use ndarray::{Array2, ArrayView2, Axis};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::features::{feature_def, Transform};

#[derive(Debug, Error)]
pub enum PreprocessError {
    #[error("feature '{0}' is not in the feature table; the input lacks what it needs")]
    MissingFeature(String),
    #[error("feature matrix has {found} columns but the scaler expects {expected}")]
    Shape { expected: usize, found: usize },
    #[error("cannot convert feature table: {0}")]
    Polars(#[from] PolarsError),
}

/// Copies the named f64 columns into a row-major matrix; nulls become NaN.
pub fn to_matrix(df: &DataFrame, names: &[String]) -> Result<Array2<f64>, PreprocessError> {
    let mut x = Array2::<f64>::from_elem((df.height(), names.len()), f64::NAN);
    for (j, name) in names.iter().enumerate() {
        let column = df
            .column(name)
            .map_err(|_| PreprocessError::MissingFeature(name.clone()))?;
        let column = column.cast(&DataType::Float64)?;
        let values = column.f64()?;
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                x[[i, j]] = v;
            }
        }
    }
    Ok(x)
}

/// Median imputation, transform, then standardisation: fitted once, applied many times.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Scaler {
    pub features: Vec<String>,
    pub transforms: Vec<Transform>,
    /// Median of each raw feature, used for missing values.
    pub impute: Vec<f64>,
    /// Mean and standard deviation of each transformed feature.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

fn apply(t: Transform, v: f64) -> f64 {
    match t {
        Transform::None => v,
        Transform::Log1p => v.max(0.0).ln_1p(),
        Transform::SignedLog1p => v.signum() * (v.abs() / 1000.0).ln_1p(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len();
    // Selection, not a sort: linear time, which counts at a million clients per feature.
    let (left, mid, _) = v.select_nth_unstable_by(n / 2, |a, b| a.total_cmp(b));
    let upper = *mid;
    if n % 2 == 1 {
        upper
    } else {
        let lower = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

impl Scaler {
    pub fn fit(features: &[String], raw: ArrayView2<f64>) -> Result<Scaler, PreprocessError> {
        if raw.ncols() != features.len() {
            return Err(PreprocessError::Shape {
                expected: features.len(),
                found: raw.ncols(),
            });
        }
        let transforms: Vec<Transform> = features
            .iter()
            .map(|f| {
                feature_def(f)
                    .map(|d| d.transform)
                    .ok_or_else(|| PreprocessError::MissingFeature(f.clone()))
            })
            .collect::<Result<_, _>>()?;
        let impute: Vec<f64> = {
            use rayon::prelude::*;
            (0..raw.ncols())
                .into_par_iter()
                .map(|j| median(raw.column(j).to_vec()))
                .collect()
        };
        let mut scaler = Scaler {
            features: features.to_vec(),
            transforms,
            impute,
            mean: vec![0.0; features.len()],
            std: vec![1.0; features.len()],
        };
        let z = scaler.transform_unscaled(raw);
        for (j, c) in z.axis_iter(Axis(1)).enumerate() {
            let n = c.len().max(1) as f64;
            let mean = c.sum() / n;
            let var = c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            scaler.mean[j] = mean;
            // A constant feature carries no information; scale 1 keeps it at zero.
            scaler.std[j] = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
        }
        Ok(scaler)
    }

    /// Imputed and transformed, not standardised.
    fn transform_unscaled(&self, raw: ArrayView2<f64>) -> Array2<f64> {
        self.transform_rows(raw, false)
    }

    /// Imputed, transformed and (when `standardise`) standardised, rows in parallel.
    fn transform_rows(&self, raw: ArrayView2<f64>, standardise: bool) -> Array2<f64> {
        use rayon::prelude::*;
        let mut z = raw.as_standard_layout().into_owned();
        let d = z.ncols().max(1);
        if let Some(data) = z.as_slice_mut() {
            data.par_chunks_mut(d).for_each(|row| {
                for (j, v) in row.iter_mut().enumerate() {
                    let t = apply(self.transforms[j], if v.is_finite() { *v } else { self.impute[j] });
                    *v = if standardise {
                        (t - self.mean[j]) / self.std[j]
                    } else {
                        t
                    };
                }
            });
        }
        z
    }

    pub fn transform(&self, raw: ArrayView2<f64>) -> Result<Array2<f64>, PreprocessError> {
        if raw.ncols() != self.features.len() {
            return Err(PreprocessError::Shape {
                expected: self.features.len(),
                found: raw.ncols(),
            });
        }
        Ok(self.transform_rows(raw, true))
    }

    /// One raw value of feature `j` in scaled space.
    pub fn z(&self, j: usize, v: f64) -> f64 {
        (apply(self.transforms[j], if v.is_finite() { v } else { self.impute[j] }) - self.mean[j]) / self.std[j]
    }

    /// Raw values with missing ones imputed (what the decision tree is trained on, so
    /// that its rules read in original units).
    pub fn impute(&self, raw: ArrayView2<f64>) -> Array2<f64> {
        let mut x = raw.to_owned();
        for (j, mut c) in x.axis_iter_mut(Axis(1)).enumerate() {
            let fill = self.impute[j];
            c.mapv_inplace(|v| if v.is_finite() { v } else { fill });
        }
        x
    }

    /// Maps a point in scaled space back to original units (inverse of `transform`).
    pub fn inverse(&self, z: &[f64]) -> Vec<f64> {
        z.iter()
            .enumerate()
            .map(|(j, &v)| {
                let t = v * self.std[j] + self.mean[j];
                match self.transforms[j] {
                    Transform::None => t,
                    Transform::Log1p => t.exp_m1(),
                    Transform::SignedLog1p => t.signum() * t.abs().exp_m1() * 1000.0,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn standardises_with_log_and_imputes_median() {
        let names = vec!["fees_12m".to_string(), "late_payment_share".to_string()];
        let raw = array![[0.0, 0.0], [f64::NAN, 0.5], [99.0, 1.0], [9.0, f64::NAN]];
        let s = Scaler::fit(&names, raw.view()).unwrap();
        assert_eq!(s.impute, vec![9.0, 0.5]);
        let z = s.transform(raw.view()).unwrap();
        for c in z.axis_iter(Axis(1)) {
            assert!(c.sum().abs() < 1e-9);
            let var = c.iter().map(|v| v * v).sum::<f64>() / c.len() as f64;
            assert!((var - 1.0).abs() < 1e-9);
        }
        // fees is log1p: rows 1 and 3 both hold 9 after imputation.
        assert_eq!(z[[1, 0]], z[[3, 0]]);
        let back = s.inverse(&[z[[2, 0]], z[[2, 1]]]);
        assert!((back[0] - 99.0).abs() < 1e-9 && (back[1] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn constant_feature_stays_zero() {
        let names = vec!["fee_growth".to_string()];
        let raw = array![[0.3], [0.3]];
        let s = Scaler::fit(&names, raw.view()).unwrap();
        let z = s.transform(raw.view()).unwrap();
        assert!(z.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let names = vec!["fee_growth".to_string()];
        let s = Scaler::fit(&names, array![[1.0], [2.0]].view()).unwrap();
        assert!(matches!(
            s.transform(array![[1.0, 2.0]].view()),
            Err(PreprocessError::Shape { .. })
        ));
    }
}
