//! `[churn]` as written, and its check.

use serde::{Deserialize, Serialize};

use crate::params::{invalid, ParamError};

use super::{ChurnParams, ModelChoice};
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
    /// Whole client histories the models learn from (default 25,000; a seeded sample above).
    pub sample_clients: Option<usize>,
    /// Snapshot rows one model learns from (default 150,000; a seeded sample above).
    pub max_train_rows: Option<usize>,
    /// The rule baseline flags arrears above this many months of fees (default 2).
    pub arrears_months: Option<f64>,
    /// Risk of the first horizon from which a client is medium / high risk
    /// (default [0.05, 0.15]: a 15% chance of leaving within 3 months is several times the usual).
    pub bands: Option<Vec<f64>>,
    /// "auto" (the better-validated one), "logistic" or "boosted".
    pub model: Option<String>,
    /// Write every monthly snapshot to churn_snapshots.parquet (default false).
    pub export_snapshots: Option<bool>,
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
        let bands = raw.bands.clone().unwrap_or_else(|| vec![0.05, 0.15]);
        let bands = match bands.as_slice() {
            [lo, hi] if 0.0 < *lo && lo < hi && *hi < 1.0 => (*lo, *hi),
            _ => {
                return Err(invalid(
                    "churn.bands",
                    "must be two risks between 0 and 1, the lower first, e.g. [0.05, 0.15]",
                    format!("{bands:?}"),
                ))
            }
        };
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
        Ok((
            ChurnParams {
                enabled: raw.enabled.unwrap_or(true),
                horizons: horizons.iter().map(|h| *h as i32).collect(),
                test_months,
                max_train_rows,
                arrears_months,
                bands,
                model,
                export_snapshots: raw.export_snapshots.unwrap_or(false),
            },
            HistoryParams {
                definition,
                inactive_months: inactive as i32,
                sample_clients,
            },
        ))
    }
}
