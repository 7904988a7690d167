//! `[actions]` as written, and its check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::params::{invalid, share, ParamError};

use super::ActionsParams;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawActions {
    /// Write the monthly action list (default true).
    pub enabled: Option<bool>,
    /// Months between regular contacts per tier (default: from [[service_plans]] cycles,
    /// else V1 = 1, V2 = 3, V3 = 6).
    pub contact_months: Option<BTreeMap<String, u32>>,
    /// Collect arrears above this many months of fees (default 1) ...
    pub arrears_months: Option<f64>,
    /// ... and above this amount in CNY (default 100).
    pub arrears_min: Option<f64>,
    /// The list holds actions due within this many days of the snapshot (default 31).
    pub horizon_days: Option<i64>,
    /// Chase late documents this many days before the filing deadline (default 5).
    pub chase_days_before: Option<i64>,
}

/// Months in a service plan's cycle words (monthly, 每月, quarterly, 每季度, ...).
fn cycle_months(words: &str) -> Option<u32> {
    let w = words.to_lowercase();
    if w.contains("half") || w.contains("半年") {
        Some(6)
    } else if w.contains("quarter") || w.contains("季") {
        Some(3)
    } else if w.contains("month") || w.contains("月") {
        Some(1)
    } else if w.contains("year") || w.contains("annual") || w.contains("年") {
        Some(12)
    } else if w.contains("week") || w.contains("周") {
        Some(1)
    } else {
        None
    }
}

impl RawActions {
    /// The checked parameters; `plans` are the service plans' (applies_to, cycle) words,
    /// whose cycles set the contact months of the tiers they name.
    pub fn check(&self, plans: &[(String, String)]) -> Result<ActionsParams, ParamError> {
        let raw = self;
        let mut contact_months: BTreeMap<String, u32> =
            [("V1".to_string(), 1), ("V2".to_string(), 3), ("V3".to_string(), 6)]
                .into_iter()
                .collect();
        for (applies_to, cycle) in plans {
            let id = applies_to.trim();
            if id.len() >= 2 && id.starts_with('V') && id[1..].chars().all(|c| c.is_ascii_digit()) {
                if let Some(m) = cycle_months(cycle) {
                    contact_months.insert(id.to_string(), m);
                }
            }
        }
        if let Some(m) = &raw.contact_months {
            for (k, v) in m {
                if !(1..=24).contains(v) {
                    return Err(invalid(
                        &format!("actions.contact_months.{k}"),
                        "must be between 1 and 24",
                        v,
                    ));
                }
                contact_months.insert(k.clone(), *v);
            }
        }
        let horizon_days = raw.horizon_days.unwrap_or(31);
        if !(1..=366).contains(&horizon_days) {
            return Err(invalid(
                "actions.horizon_days",
                "must be between 1 and 366",
                horizon_days,
            ));
        }
        let chase_days_before = raw.chase_days_before.unwrap_or(5);
        if !(0..=30).contains(&chase_days_before) {
            return Err(invalid(
                "actions.chase_days_before",
                "must be between 0 and 30",
                chase_days_before,
            ));
        }
        Ok(ActionsParams {
            enabled: raw.enabled.unwrap_or(true),
            contact_months,
            arrears_months: share("actions.arrears_months", raw.arrears_months, 1.0, 0.0, 120.0)?,
            arrears_min: share("actions.arrears_min", raw.arrears_min, 100.0, 0.0, 1e9)?,
            horizon_days,
            chase_days_before,
        })
    }
}
