//! `[churn]` as written, and its check.

use serde::{Deserialize, Serialize};

use crate::params::{invalid, ParamError};

use super::{BandBasis, ChurnParams, ModelChoice};
use crate::history::{HistoryParams, LeaveDefinition};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawChurn {
    /// Fit the churn-risk models (default true).
    pub enabled: Option<bool>,
    /// "auto" (contract_end when the archive records any, else lapse), "contract_end"
    /// or "lapse".
    pub definition: Option<String>,
    /// Months without invoice or work after which a client has lapsed (default 3).
    pub inactive_months: Option<i64>,
    /// Months ahead the risk is for (default [3, 6]).
    pub horizons: Option<Vec<i64>>,
    /// Rolling-origin test months (default 6; fewer when the history is short).
    pub test_months: Option<usize>,
    /// Rolling-origin validation refits the models every this many test months and
    /// recalibrates them on the latest known outcomes every month (default 2; 1 refits
    /// every month).
    pub refit_months: Option<usize>,
    /// Whole client histories the models learn from (default 25,000; a seeded sample above).
    pub sample_clients: Option<usize>,
    /// Snapshot rows one model learns from (default 150,000; a seeded sample above).
    pub max_train_rows: Option<usize>,
    /// The rule baseline flags arrears above this many months of fees (default 2).
    pub arrears_months: Option<f64>,
    /// Where a client becomes medium / high risk (by the first horizon): with
    /// `bands_by = "relative"` (the default) multiples of the odds of leaving of the firm's
    /// average client, default [1.5, 3.0]; with "risk", risks, e.g. [0.05, 0.15].
    pub bands: Option<Vec<f64>>,
    /// "relative" (default) or "risk".
    pub bands_by: Option<String>,
    /// "auto" (the better-validated one), "logistic" or "boosted".
    pub model: Option<String>,
    /// Write every monthly snapshot to churn_snapshots.parquet (default false).
    pub export_snapshots: Option<bool>,
    /// Yearly rate the value ahead is discounted at (default 0.08).
    pub discount_rate: Option<f64>,
}

impl RawChurn {
    /// The checked parameters of churn, and of the history it learns from.
    pub fn check(&self) -> Result<(ChurnParams, HistoryParams), ParamError> {
        let raw = self;
        let definition = match raw.definition.as_deref().unwrap_or("auto") {
            "auto" => LeaveDefinition::Auto,
            "contract_end" => LeaveDefinition::ContractEnd,
            "lapse" => LeaveDefinition::Lapse,
            other => {
                return Err(invalid(
                    "churn.definition",
                    "must be \"auto\", \"contract_end\" or \"lapse\"",
                    other,
                ))
            }
        };
        let inactive = raw.inactive_months.unwrap_or(3);
        if !(1..=12).contains(&inactive) {
            return Err(invalid("churn.inactive_months", "must be between 1 and 12", inactive));
        }
        let mut horizons = raw.horizons.clone().unwrap_or_else(|| vec![3, 6]);
        if horizons.is_empty() || horizons.iter().any(|h| !(1..=24).contains(h)) {
            return Err(invalid(
                "churn.horizons",
                "must list 1 to 24 months each, e.g. [3, 6]",
                format!("{horizons:?}"),
            ));
        }
        horizons.sort_unstable();
        horizons.dedup();
        let test_months = raw.test_months.unwrap_or(6);
        if !(1..=36).contains(&test_months) {
            return Err(invalid("churn.test_months", "must be between 1 and 36", test_months));
        }
        let refit_months = raw.refit_months.unwrap_or(2);
        if !(1..=12).contains(&refit_months) {
            return Err(invalid("churn.refit_months", "must be between 1 and 12", refit_months));
        }
        let sample_clients = raw.sample_clients.unwrap_or(25_000);
        if sample_clients < 100 {
            return Err(invalid("churn.sample_clients", "must be at least 100", sample_clients));
        }
        let max_train_rows = raw.max_train_rows.unwrap_or(150_000);
        if max_train_rows < 1000 {
            return Err(invalid("churn.max_train_rows", "must be at least 1000", max_train_rows));
        }
        let arrears_months = raw.arrears_months.unwrap_or(2.0);
        if !(arrears_months > 0.0 && arrears_months.is_finite()) {
            return Err(invalid(
                "churn.arrears_months",
                "must be a number above 0",
                arrears_months,
            ));
        }
        let (bands, bands_by) = raw.bands()?;
        let model = match raw.model.as_deref().unwrap_or("auto") {
            "auto" => ModelChoice::Auto,
            "logistic" => ModelChoice::Logistic,
            "boosted" => ModelChoice::Boosted,
            other => {
                return Err(invalid(
                    "churn.model",
                    "must be \"auto\", \"logistic\" or \"boosted\"",
                    other,
                ))
            }
        };
        let discount_rate = raw.discount_rate.unwrap_or(0.08);
        if !(0.0..1.0).contains(&discount_rate) {
            return Err(invalid(
                "churn.discount_rate",
                "must be a yearly rate from 0 to below 1, e.g. 0.08",
                discount_rate,
            ));
        }
        Ok((
            ChurnParams {
                enabled: raw.enabled.unwrap_or(true),
                horizons: horizons.iter().map(|h| *h as i32).collect(),
                test_months,
                refit_months,
                max_train_rows,
                arrears_months,
                bands,
                bands_by,
                model,
                export_snapshots: raw.export_snapshots.unwrap_or(false),
                discount_rate,
            },
            HistoryParams {
                definition,
                inactive_months: inactive as i32,
                sample_clients,
            },
        ))
    }

    /// The risk bands and what their two bounds mean.
    fn bands(&self) -> Result<((f64, f64), BandBasis), ParamError> {
        // A config written before bands had a basis gave risks (all below 1): it keeps
        // meaning what it meant.
        let legacy_risks = self.bands.as_ref().is_some_and(|b| b.iter().all(|v| *v < 1.0));
        let bands_by = match self.bands_by.as_deref() {
            Some("relative") => BandBasis::Relative,
            Some("risk") => BandBasis::Risk,
            None if legacy_risks => BandBasis::Risk,
            None => BandBasis::Relative,
            Some(other) => return Err(invalid("churn.bands_by", "must be \"relative\" or \"risk\"", other)),
        };
        let bands = match (bands_by, self.bands.clone()) {
            (_, Some(b)) => b,
            (BandBasis::Relative, None) => vec![1.5, 3.0],
            (BandBasis::Risk, None) => vec![0.05, 0.15],
        };
        let bands = match (bands_by, bands.as_slice()) {
        (BandBasis::Risk, [lo, hi]) if 0.0 < *lo && lo < hi && *hi < 1.0 => (*lo, *hi),
        (BandBasis::Relative, [lo, hi]) if 1.0 <= *lo && lo < hi && *hi <= 100.0 => (*lo, *hi),
        (BandBasis::Risk, _) => {
            return Err(invalid(
                "churn.bands",
                "with bands_by = \"risk\" must be two risks between 0 and 1, the lower first, e.g. [0.05, 0.15]",
                format!("{bands:?}"),
            ))
        }
        (BandBasis::Relative, _) => {
            return Err(invalid(
                "churn.bands",
                "with bands_by = \"relative\" must be two multiples of the firm's odds of leaving from 1 to 100, the lower first, e.g. [1.5, 3.0] (for risks write bands_by = \"risk\")",
                format!("{bands:?}"),
            ))
        }
    };
        Ok((bands, bands_by))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bands: Option<Vec<f64>>, by: Option<&str>) -> Result<ChurnParams, ParamError> {
        RawChurn {
            bands,
            bands_by: by.map(String::from),
            ..RawChurn::default()
        }
        .check()
        .map(|(p, _)| p)
    }

    #[test]
    fn bands_follow_the_firm_unless_written_as_risks() {
        let p = check(None, None).unwrap();
        assert_eq!((p.bands_by, p.bands), (BandBasis::Relative, (1.5, 3.0)));
        // A config from before bands had a basis keeps its risks.
        let p = check(Some(vec![0.05, 0.15]), None).unwrap();
        assert_eq!((p.bands_by, p.bands), (BandBasis::Risk, (0.05, 0.15)));
        let p = check(Some(vec![2.0, 4.0]), None).unwrap();
        assert_eq!((p.bands_by, p.bands), (BandBasis::Relative, (2.0, 4.0)));
        let e = check(Some(vec![0.05, 0.15]), Some("relative")).unwrap_err().to_string();
        assert!(e.contains("churn.bands") && e.contains("bands_by = \"risk\""), "{e}");
        let e = check(None, Some("odds")).unwrap_err().to_string();
        assert!(e.contains("churn.bands_by") && e.contains("odds"), "{e}");
        let e = RawChurn {
            discount_rate: Some(1.5),
            ..RawChurn::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("churn.discount_rate"), "{e}");
    }

    #[test]
    fn validation_refits_every_other_month_unless_told() {
        let refit = |v: Option<usize>| {
            RawChurn {
                refit_months: v,
                ..RawChurn::default()
            }
            .check()
            .map(|(p, _)| p.refit_months)
        };
        assert_eq!(refit(None).unwrap(), 2);
        assert_eq!(refit(Some(1)).unwrap(), 1);
        for bad in [0, 13] {
            let e = refit(Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains("churn.refit_months") && e.contains("between 1 and 12"),
                "{e}"
            );
        }
    }
}
