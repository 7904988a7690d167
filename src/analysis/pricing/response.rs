//! Weighing a fee rise against the chance that it drives the client away, with the firm's
//! own response to rises (the churn analysis's `fee_response`): the model's estimate of
//! how much more often clients leave after a rise of each size, and, as the pessimistic
//! case, the upper end of the 95% interval of what the firm's history shows. A rise is
//! never taken to make a client stay (ratios below 1 count as 1).
//!
//! A client's expected revenue over the next 12 months is its fee times the months it is
//! expected to stay, from its churn risk turned into a monthly hazard; a rise multiplies
//! that hazard by the ratio for its size. The suggested rise is the one with the highest
//! expected revenue among steps up to the margin's or peers' target.

use polars::prelude::*;
use serde::Serialize;

/// Months ahead the expected revenue counts.
pub const MONTHS_AHEAD: i32 = 12;

#[derive(Debug, Clone, Serialize)]
pub struct Response {
    /// The churn horizon the ratios are for (months).
    pub horizon: f64,
    /// (rise, ratio to no rise): the model's estimate, and the pessimistic one.
    pub model: Vec<(f64, f64)>,
    pub high: Vec<(f64, f64)>,
    /// The model's mean risk without a rise, over the clients it was asked about.
    pub base_risk: f64,
    /// What the history shows per group of rises, for the report.
    pub groups: Vec<HistoryGroup>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryGroup {
    pub from: f64,
    pub to: f64,
    pub clients: f64,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

fn column(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name)
        .ok()
        .and_then(|c| c.cast(&DataType::Float64).ok())
        .and_then(|c| c.f64().ok().map(|v| v.iter().map(|x| x.unwrap_or(f64::NAN)).collect()))
        .unwrap_or_default()
}

/// Linear interpolation in points sorted by x, flat beyond the ends.
fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    let Some(first) = points.first() else { return 1.0 };
    if x <= first.0 {
        return first.1;
    }
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        if x <= b.0 {
            let t = if b.0 > a.0 { (x - a.0) / (b.0 - a.0) } else { 1.0 };
            return a.1 + t * (b.1 - a.1);
        }
    }
    points.last().map_or(1.0, |p| p.1)
}

impl Response {
    /// The firm's response, when churn measured it.
    pub fn read(fee_response: Option<&DataFrame>) -> Option<Response> {
        let df = fee_response?;
        let rise = column(df, "model_rise");
        let ratio = column(df, "model_ratio");
        let rate = column(df, "leave_rate");
        let high_rate = column(df, "leave_rate_high");
        let horizon = column(df, "horizon_months").first().copied()?;
        let none = *rate.first()?;
        let model: Vec<(f64, f64)> = rise
            .iter()
            .zip(&ratio)
            .filter(|(r, q)| r.is_finite() && q.is_finite())
            .map(|(&r, &q)| (r, q.max(1.0)))
            .collect();
        if model.is_empty() || !(none > 0.0) {
            return None;
        }
        let high: Vec<(f64, f64)> = rise
            .iter()
            .zip(&high_rate)
            .zip(&model)
            .enumerate()
            .map(|(k, ((&r, &h), &(_, m)))| match k {
                // The no-rise group is the reference itself.
                0 => (r, m),
                _ => (r, if h.is_finite() { (h / none).max(m) } else { m }),
            })
            .collect();
        let (from, to, clients, low) = (
            column(df, "rise_from"),
            column(df, "rise_to"),
            column(df, "clients"),
            column(df, "leave_rate_low"),
        );
        let groups = (0..rate.len())
            .map(|k| HistoryGroup {
                from: from.get(k).copied().unwrap_or(f64::NAN),
                to: to.get(k).copied().unwrap_or(f64::NAN),
                clients: clients.get(k).copied().unwrap_or(0.0),
                rate: rate[k],
                low: low.get(k).copied().unwrap_or(f64::NAN),
                high: high_rate.get(k).copied().unwrap_or(f64::NAN),
            })
            .collect();
        let base_risk = column(df, "model_risk").first().copied().unwrap_or(f64::NAN);
        Some(Response {
            horizon,
            model,
            high,
            base_risk,
            groups,
        })
    }

    pub fn ratio(&self, rise: f64) -> f64 {
        interpolate(&self.model, rise).max(1.0)
    }

    pub fn ratio_high(&self, rise: f64) -> f64 {
        interpolate(&self.high, rise).max(self.ratio(rise))
    }
}

/// Months of fee expected in the next `MONTHS_AHEAD`, at a monthly hazard `h`.
pub fn months_kept(h: f64) -> f64 {
    let stay = (1.0 - h).clamp(0.0, 1.0);
    (0..MONTHS_AHEAD).map(|t| stay.powi(t)).sum()
}

/// The monthly hazard of a risk of leaving within `horizon` months.
pub fn monthly_hazard(risk: f64, horizon: f64) -> f64 {
    1.0 - (1.0 - risk.clamp(0.0, 0.999)).powf(1.0 / horizon.max(1.0))
}

/// The expected extra revenue of moving a fee from `fee` to `new` over the next 12 months,
/// at a churn risk `risk`: with the model's ratio, and with the pessimistic one.
pub fn gain(fee: f64, new: f64, risk: f64, r: &Response) -> (f64, f64) {
    let h0 = monthly_hazard(risk, r.horizon);
    let rise = new / fee - 1.0;
    let base = fee * months_kept(h0);
    let at = |ratio: f64| new * months_kept((h0 * ratio).min(0.99)) - base;
    (at(r.ratio(rise)), at(r.ratio_high(rise)))
}

/// The rise with the highest expected revenue among `candidates` (fees above `fee`),
/// with its gains; None when every rise is expected to lose revenue.
pub fn best(fee: f64, candidates: &[f64], risk: f64, r: &Response) -> Option<(f64, f64, f64)> {
    candidates
        .iter()
        .map(|&c| {
            let (g, g_high) = gain(fee, c, risk, r);
            (c, g, g_high)
        })
        .filter(|x| x.1 > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.total_cmp(&a.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(ratio_at_30: f64) -> Response {
        Response {
            horizon: 6.0,
            model: vec![(0.0, 1.0), (0.3, ratio_at_30)],
            high: vec![(0.0, 1.0), (0.3, ratio_at_30 * 1.5)],
            base_risk: 0.2,
            groups: Vec::new(),
        }
    }

    #[test]
    fn months_kept_by_hand() {
        assert!((months_kept(0.0) - 12.0).abs() < 1e-12);
        // (1 - 0.5^12) / 0.5
        assert!((months_kept(0.5) - (1.0 - 0.5f64.powi(12)) / 0.5).abs() < 1e-12);
        // A 6-month risk of 1 - 0.9^6 is a monthly hazard of 0.1.
        assert!((monthly_hazard(1.0 - 0.9f64.powi(6), 6.0) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn without_a_response_the_largest_rise_wins() {
        let r = response(1.0);
        let (c, g, g_high) = best(100.0, &[110.0, 120.0, 130.0], 0.2, &r).unwrap();
        assert_eq!(c, 130.0);
        // The pessimistic case (1.5 times as often at +30%) expects less.
        assert!(g > 0.0 && g_high < g, "{g} {g_high}");
    }

    #[test]
    fn a_strong_response_holds_a_rise_back_or_makes_it_smaller() {
        // Clients left three times as often after a 30% rise: at a 40% 6-month risk the
        // rise loses more in clients than it gains in fee.
        let r = response(3.0);
        let (g, g_high) = gain(100.0, 130.0, 0.4, &r);
        assert!(g < 0.0 && g_high < g, "{g} {g_high}");
        let picked = best(100.0, &[105.0, 110.0, 120.0, 130.0], 0.4, &r);
        assert!(picked.is_none_or(|p| p.0 < 130.0), "{picked:?}");
        // A ratio below 1 counts as 1: a rise never makes a client stay.
        assert_eq!(response(0.5).ratio(0.3), 1.0);
    }
}
