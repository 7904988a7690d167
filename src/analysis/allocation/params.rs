//! `[allocation]` as written, and its check.

use serde::{Deserialize, Serialize};

use crate::params::{invalid, limit, share, ParamError};

use super::{AllocationParams, Limits, Weights};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAllocation {
    /// Plan who serves whom when there is a staff table (default true).
    pub enabled: Option<bool>,
    /// Share of an accountant's capacity the plan may fill (default 0.85).
    pub max_utilisation: Option<f64>,
    /// Hours a month of staff without capacity_hours (default 160).
    pub default_capacity: Option<f64>,
    /// Weight per client that changes accountant (default 1).
    pub continuity_weight: Option<f64>,
    /// Weight per client placed outside its team (default 0.1).
    pub team_weight: Option<f64>,
    /// Weight per percentage point of the busiest accountant's utilisation (default 0.05).
    pub balance_weight: Option<f64>,
    /// Firms with more clients are planned team by team (default 20,000).
    pub block_clients: Option<usize>,
    /// The skill general-taxpayer clients need (default "general_taxpayer"; 一般纳税人 also counts).
    pub general_skill: Option<String>,
    /// The skill international clients need (default "international"; 涉外 also counts).
    pub international_skill: Option<String>,
    /// Value tiers served only by senior or lead accountants (default ["V1"]).
    pub senior_tiers: Option<Vec<String>>,
    /// Handovers a month, firm-wide (default 0: no firm-wide limit).
    pub max_moves_per_month: Option<i64>,
    /// Handovers a month one accountant gives or takes (default 10; 0: no limit).
    pub max_handovers_per_accountant: Option<i64>,
}

impl RawAllocation {
    pub fn check(&self) -> Result<AllocationParams, ParamError> {
        let raw = self;
        let block_clients = raw.block_clients.unwrap_or(20_000);
        if block_clients < 100 {
            return Err(invalid(
                "allocation.block_clients",
                "must be at least 100",
                block_clients,
            ));
        }
        let senior_tiers = raw.senior_tiers.clone().unwrap_or_else(|| vec!["V1".into()]);
        if let Some(bad) = senior_tiers
            .iter()
            .find(|t| !(t.len() >= 2 && t.starts_with('V') && t[1..].chars().all(|c| c.is_ascii_digit())))
        {
            return Err(invalid(
                "allocation.senior_tiers",
                "must list tier codes such as \"V1\"",
                bad,
            ));
        }
        Ok(AllocationParams {
            enabled: raw.enabled.unwrap_or(true),
            max_utilisation: share("allocation.max_utilisation", raw.max_utilisation, 0.85, 0.05, 1.5)?,
            default_capacity: share("allocation.default_capacity", raw.default_capacity, 160.0, 0.0, 744.0)?,
            weights: Weights {
                continuity: share("allocation.continuity_weight", raw.continuity_weight, 1.0, 0.0, 1e6)?,
                team: share("allocation.team_weight", raw.team_weight, 0.1, 0.0, 1e6)?,
                balance: share("allocation.balance_weight", raw.balance_weight, 0.05, 0.0, 1e6)?,
            },
            block_clients,
            general_skill: raw
                .general_skill
                .clone()
                .unwrap_or_else(|| "general_taxpayer".into())
                .to_lowercase(),
            international_skill: raw
                .international_skill
                .clone()
                .unwrap_or_else(|| "international".into())
                .to_lowercase(),
            senior_tiers,
            limits: Limits {
                moves_per_month: limit("allocation.max_moves_per_month", raw.max_moves_per_month, 0)?,
                per_accountant: limit(
                    "allocation.max_handovers_per_accountant",
                    raw.max_handovers_per_accountant,
                    10,
                )?,
            },
        })
    }
}
