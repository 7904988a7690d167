//! What a generated client pays against the work it takes: the fee agreed when it
//! joined (planted under-pricing, or a negotiated margin), and the truth of pricing
//! (current hours, true margin, fair fee) for truth.csv.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{normal, Fees, GenerateParams, TARGET_MARGIN, UNDERPRICED_SHARE};

/// The fee agreed for what a month of the client takes on average (the hours formula of
/// the work log): 2.5 times its cost by tier, except for the planted under-priced
/// clients; or a negotiated margin. Returns (fee, planted under-priced, expected hours).
pub(super) fn agreed_fee(
    p: &GenerateParams,
    i: usize,
    (client_type, taxpayer): (&str, &str),
    tier_fee: f64,
    base_vouchers: f64,
    (tickets, late): (f64, f64),
) -> (f64, bool, f64) {
    let filings_mean = if taxpayer == "general" { 3.0 } else { 20.0 / 12.0 }
        + if client_type == "enterprise" { 1.0 / 12.0 } else { 0.0 };
    let expected_hours = base_vouchers / 60.0 + filings_mean * 0.2 + tickets * 0.2 + late * 0.7 + 0.125;
    let mut pr_rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0x9121_CEDD ^ ((i as u64) << 23));
    let cost = expected_hours * p.hourly_cost;
    let (fee, underpriced) = match p.fees {
        Fees::Planted => {
            let underpriced = pr_rng.gen_bool(UNDERPRICED_SHARE);
            let fee = if underpriced {
                cost * pr_rng.gen_range(0.6..1.0)
            } else {
                f64::max(tier_fee, cost * 2.5)
            };
            (((fee / 10.0f64).round() * 10.0).max(30.0), underpriced)
        }
        Fees::Negotiated => {
            let margin = (0.42 + 0.18 * normal(&mut pr_rng)).clamp(-0.6, 0.85);
            let fee = ((cost / (1.0 - margin) / 10.0).round() * 10.0).max(100.0);
            (fee, false)
        }
    };
    (fee, underpriced, expected_hours)
}

/// The truth of pricing: the work of the last 12 months served (`expected`, hours a
/// month) at the firm's hourly cost against the fee; the fair fee meets the target
/// margin. Returns (current hours, true margin, fair fee, under-priced).
pub(super) fn truth(
    p: &GenerateParams,
    fee: f64,
    agreed_hours: f64,
    planted: bool,
    expected: &[f64],
) -> (f64, f64, f64, bool) {
    let recent = &expected[expected.len().saturating_sub(12)..];
    let current_hours = if recent.is_empty() {
        agreed_hours
    } else {
        recent.iter().sum::<f64>() / recent.len() as f64
    };
    let true_margin = (fee - current_hours * p.hourly_cost) / fee;
    let fair_fee = current_hours * p.hourly_cost / (1.0 - TARGET_MARGIN);
    let underpriced = match p.fees {
        Fees::Planted => planted,
        Fees::Negotiated => true_margin < TARGET_MARGIN,
    };
    (current_hours, true_margin, fair_fee, underpriced)
}
