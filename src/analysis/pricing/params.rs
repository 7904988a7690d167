//! `[pricing]` as written, and its check.

use serde::{Deserialize, Serialize};

use crate::params::{invalid, share, ParamError};

use super::{DefaultHours, GradeCost, PricingParams};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPricing {
    /// Work out cost to serve and suggest fees (default true).
    pub enabled: Option<bool>,
    /// Margin rate below which a client is under-priced (default 0.30).
    pub target_margin: Option<f64>,
    /// Largest rise per review, as a share of the fee (default 0.30).
    pub max_increase: Option<f64>,
    /// Suggested fees are multiples of this, in CNY (default 50).
    pub fee_step: Option<f64>,
    /// Also under-priced when the fee per hour is this share below the peers' (default 0.5: half).
    pub rate_tolerance: Option<f64>,
    /// Clients in a peer group (default 50).
    pub peers: Option<usize>,
    /// Hours a month by rule of thumb, where neither logged nor estimable.
    pub default_hours: RawDefaultHours,
    /// Cost of an hour per grade of the client's accountant (else features.hourly_cost).
    pub hourly_cost: Option<RawGradeCost>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDefaultHours {
    pub zero_declaration: Option<f64>,
    pub small_scale: Option<f64>,
    pub general: Option<f64>,
    pub chase: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGradeCost {
    pub junior: f64,
    pub senior: f64,
    pub lead: f64,
}

impl RawPricing {
    /// The checked parameters; `hourly_cost` is the firm's cost of an hour (`[features]`).
    pub fn check(&self, hourly_cost: f64) -> Result<PricingParams, ParamError> {
        let raw = self;
        let d = &raw.default_hours;
        let peers = raw.peers.unwrap_or(50);
        if !(5..=1000).contains(&peers) {
            return Err(invalid("pricing.peers", "must be between 5 and 1000", peers));
        }
        let by_grade = match &raw.hourly_cost {
            Some(g) => {
                for (k, v) in [("junior", g.junior), ("senior", g.senior), ("lead", g.lead)] {
                    if !(v >= 0.0 && v.is_finite()) {
                        return Err(invalid(&format!("pricing.hourly_cost.{k}"), "must be a number >= 0", v));
                    }
                }
                Some(GradeCost {
                    junior: g.junior,
                    senior: g.senior,
                    lead: g.lead,
                })
            }
            None => None,
        };
        Ok(PricingParams {
            enabled: raw.enabled.unwrap_or(true),
            target_margin: share("pricing.target_margin", raw.target_margin, 0.30, 0.0, 0.95)?,
            max_increase: share("pricing.max_increase", raw.max_increase, 0.30, 0.0, 5.0)?,
            fee_step: share("pricing.fee_step", raw.fee_step, 50.0, 0.0, 10_000.0)?,
            rate_tolerance: share("pricing.rate_tolerance", raw.rate_tolerance, 0.5, 0.0, 0.95)?,
            peers,
            default_hours: DefaultHours {
                zero_declaration: share(
                    "pricing.default_hours.zero_declaration",
                    d.zero_declaration,
                    0.17,
                    0.0,
                    200.0,
                )?,
                small_scale: share("pricing.default_hours.small_scale", d.small_scale, 0.5, 0.0, 200.0)?,
                general: share("pricing.default_hours.general", d.general, 1.5, 0.0, 200.0)?,
                chase: share("pricing.default_hours.chase", d.chase, 0.5, 0.0, 200.0)?,
            },
            hourly_cost,
            by_grade,
        })
    }
}
