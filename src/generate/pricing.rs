//! What a generated client pays against the work it takes: the fee agreed when it
//! joined (planted under-pricing, or a negotiated margin), and the truth of pricing
//! (current hours, true margin, fair fee) written to truth.csv.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::archive::Client;
use super::months::Life;
use super::{normal, Fees, Firm, GenerateParams, PLANTED, PLANTED_VALUE, TARGET_MARGIN, UNDERPRICED_SHARE};

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

/// The client's row of truth.csv: planted segment and tier, whether and when it left,
/// and the truth of pricing: the work of the last 12 months served at the firm's hourly
/// cost against the fee; the fair fee meets the target margin.
pub(super) fn truth_row(firm: &Firm, c: &Client, life: &Life) -> Vec<Option<String>> {
    let p = firm.p;
    let s = |v: &str| Some(v.to_string());
    let recent = &life.expected[life.expected.len().saturating_sub(12)..];
    let current_hours = if recent.is_empty() {
        c.expected_hours
    } else {
        recent.iter().sum::<f64>() / recent.len() as f64
    };
    let true_margin = (c.fee - current_hours * p.hourly_cost) / c.fee;
    let fair_fee = current_hours * p.hourly_cost / (1.0 - TARGET_MARGIN);
    let underpriced = match p.fees {
        Fees::Planted => c.planted_underpriced,
        Fees::Negotiated => true_margin < TARGET_MARGIN,
    };
    let value_score = c.fee * 12.0 * (1.0 + 0.1 * c.n_extra as f64);
    vec![
        s(&c.id),
        s(PLANTED[c.seg]),
        s(PLANTED_VALUE[c.tier]),
        Some(format!("{value_score:.0}")),
        s(if life.left_month.is_some() { "true" } else { "false" }),
        life.left_month.map(|m| m.format("%Y-%m").to_string()),
        Some(format!("{:.6}", life.hazard_sum / life.hazard_n.max(1) as f64)),
        c.changed_from.map(String::from),
        s(if underpriced { "true" } else { "false" }),
        Some(format!("{:.3}", c.expected_hours)),
        Some(format!("{current_hours:.3}")),
        Some(format!("{true_margin:.4}")),
        Some(format!("{fair_fee:.2}")),
    ]
}
