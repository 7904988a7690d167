//! How often clients left after a fee rise of each size, in this firm's own history: the
//! monthly snapshots grouped by the recent fee change they showed (`fee_rise`), and the
//! share of each group that left within the longest horizon. Clients with a rise differ
//! from the others in more than the rise, so the ratio is what the firm saw, not a proven
//! effect; its interval counts clients, not snapshot months (a client shows the same rise
//! in several months).

use polars::prelude::*;
use serde::Serialize;

use super::models::{Boosted, ModelKind, Rows};
use super::{label, matrix, SavedChurn, Snapshots};
use crate::columns::OutputColumn;
use crate::history::History;

/// Upper edges of the rise sizes compared (the first group is "no rise").
pub const EDGES: [f64; 5] = [0.02, 0.10, 0.20, 0.30, f64::INFINITY];

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The fee rise, as a share of the fee before: above `from`, up to `to`.
    pub from: f64,
    pub to: f64,
    pub snapshots: usize,
    pub clients: usize,
    pub left: usize,
    pub rate: f64,
    /// Wilson 95% interval of the rate, over clients.
    pub rate_low: f64,
    pub rate_high: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeeResponse {
    pub horizon: i32,
    pub groups: Vec<Group>,
    /// The churn model asked, for clients served today, what their risk would be with a
    /// recent fee rise of each size (everything else as it is): one point per group.
    pub model: Vec<ModelPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelPoint {
    pub rise: f64,
    /// Mean risk of leaving within the horizon, and its ratio to that without a rise.
    pub risk: f64,
    pub ratio: f64,
}

/// The rise each group is represented by when the model is asked.
pub const MODEL_RISES: [f64; 5] = [0.0, 0.06, 0.15, 0.25, 0.35];

/// Clients served today the model is asked about (every k-th, for speed at 1M).
const MODEL_SAMPLE: usize = 5000;

/// The longest horizon's model asked about fee rises of each size for a sample of the
/// clients served today; empty without a fee_rise feature or served clients.
pub(super) fn model_curve(saved: &SavedChurn, cols: &[Vec<f64>], active: &[bool]) -> Vec<ModelPoint> {
    let Some(col) = saved.features.iter().position(|n| n == "fee_rise") else {
        return Vec::new();
    };
    let Some(h) = saved.horizons.iter().max_by_key(|h| h.months) else {
        return Vec::new();
    };
    let served = active.iter().filter(|a| **a).count();
    let step = served.div_ceil(MODEL_SAMPLE).max(1);
    let mut k = 0usize;
    let keep: Vec<bool> = active
        .iter()
        .map(|&a| {
            if !a {
                return false;
            }
            k += 1;
            (k - 1) % step == 0
        })
        .collect();
    let mut x = matrix(cols, &keep);
    let d = saved.features.len();
    if x.is_empty() || d == 0 {
        return Vec::new();
    }
    let boosted = match (h.kind, &h.boosted) {
        (ModelKind::Boosted, Some(json)) => match Boosted::from_json(json) {
            Ok(b) => Some(b),
            Err(_) => return Vec::new(),
        },
        _ => None,
    };
    let mut risks = Vec::with_capacity(MODEL_RISES.len());
    for &r in &MODEL_RISES {
        for row in x.chunks_mut(d) {
            if let Some(v) = row.get_mut(col) {
                *v = r;
            }
        }
        let rows = Rows { x: &x, d };
        let margin = match (&boosted, &h.logistic) {
            (Some(b), _) => b.margin(&rows),
            (None, Some(l)) => l.margin(&rows),
            (None, None) => return Vec::new(),
        };
        let p = h.platt.apply(&margin);
        risks.push(p.iter().sum::<f64>() / p.len().max(1) as f64);
    }
    let base = risks.first().copied().unwrap_or(f64::NAN);
    MODEL_RISES
        .iter()
        .zip(&risks)
        .map(|(&rise, &risk)| ModelPoint {
            rise,
            risk,
            ratio: if base > 0.0 { risk / base } else { f64::NAN },
        })
        .collect()
}

fn wilson(p: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let z = 1.96f64;
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let w = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    ((c - w).max(0.0), (c + w).min(1.0))
}

/// The groups for horizon `hz`, or None without the fee_rise feature or labelled rows.
pub(super) fn measure(s: &Snapshots, names: &[String], h: &History, hz: i32) -> Option<FeeResponse> {
    let col = names.iter().position(|n| n == "fee_rise")?;
    let mut clients: Vec<std::collections::HashSet<u32>> = vec![Default::default(); EDGES.len()];
    let mut rows = vec![0usize; EDGES.len()];
    let mut left = vec![0usize; EDGES.len()];
    for i in 0..s.n() {
        let Some(y) = label(s, i, hz, h) else { continue };
        let Some(&r) = s.x.get(i * s.d + col) else { continue };
        if !r.is_finite() {
            continue;
        }
        let g = EDGES.iter().position(|&e| r <= e).unwrap_or(EDGES.len() - 1);
        rows[g] += 1;
        left[g] += usize::from(y);
        if let Some(c) = s.client.get(i) {
            clients[g].insert(*c);
        }
    }
    if rows.iter().all(|&r| r == 0) {
        return None;
    }
    let groups = (0..EDGES.len())
        .map(|g| {
            let rate = if rows[g] > 0 {
                left[g] as f64 / rows[g] as f64
            } else {
                f64::NAN
            };
            let (lo, hi) = if rows[g] > 0 {
                wilson(rate, clients[g].len() as f64)
            } else {
                (f64::NAN, f64::NAN)
            };
            Group {
                from: if g == 0 { f64::NEG_INFINITY } else { EDGES[g - 1] },
                to: EDGES[g],
                snapshots: rows[g],
                clients: clients[g].len(),
                left: left[g],
                rate,
                rate_low: lo,
                rate_high: hi,
            }
        })
        .collect();
    Some(FeeResponse {
        horizon: hz,
        groups,
        model: Vec::new(),
    })
}

/// The columns of the `fee_response` export, with their words.
pub fn declared() -> Vec<OutputColumn> {
    [
        ("rise_from", "rise from", "调价幅度下限"),
        ("rise_to", "rise to", "调价幅度上限"),
        ("horizon_months", "horizon (months)", "预测期（月）"),
        ("snapshots", "snapshots", "快照数"),
        ("left", "left", "流失数"),
        ("leave_rate", "leave rate", "流失率"),
        ("leave_rate_low", "leave rate, 95% low", "流失率 95% 下限"),
        ("leave_rate_high", "leave rate, 95% high", "流失率 95% 上限"),
        ("model_rise", "rise the model was asked about", "模型测算涨幅"),
        ("model_risk", "model's risk", "模型流失风险"),
        ("model_ratio", "risk relative to no rise", "相对未调价的流失倍数"),
    ]
    .into_iter()
    .map(|(name, en, zh)| OutputColumn::number(name, en, zh))
    .collect()
}

impl FeeResponse {
    /// The groups as the `fee_response` export.
    pub fn frame(&self) -> PolarsResult<DataFrame> {
        let g = &self.groups;
        let finite = |v: f64| v.is_finite().then_some(v);
        DataFrame::new_infer_height(vec![
            Column::new("rise_from".into(), g.iter().map(|x| finite(x.from)).collect::<Vec<_>>()),
            Column::new("rise_to".into(), g.iter().map(|x| finite(x.to)).collect::<Vec<_>>()),
            Column::new("horizon_months".into(), vec![self.horizon; g.len()]),
            Column::new(
                "snapshots".into(),
                g.iter().map(|x| x.snapshots as u64).collect::<Vec<_>>(),
            ),
            Column::new("clients".into(), g.iter().map(|x| x.clients as u64).collect::<Vec<_>>()),
            Column::new("left".into(), g.iter().map(|x| x.left as u64).collect::<Vec<_>>()),
            Column::new(
                "leave_rate".into(),
                g.iter().map(|x| finite(x.rate)).collect::<Vec<_>>(),
            ),
            Column::new(
                "leave_rate_low".into(),
                g.iter().map(|x| finite(x.rate_low)).collect::<Vec<_>>(),
            ),
            Column::new(
                "leave_rate_high".into(),
                g.iter().map(|x| finite(x.rate_high)).collect::<Vec<_>>(),
            ),
            Column::new(
                "model_rise".into(),
                (0..g.len())
                    .map(|k| self.model.get(k).map(|m| m.rise))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "model_risk".into(),
                (0..g.len())
                    .map(|k| self.model.get(k).map(|m| m.risk))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "model_ratio".into(),
                (0..g.len())
                    .map(|k| self.model.get(k).map(|m| m.ratio).filter(|v| v.is_finite()))
                    .collect::<Vec<_>>(),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_textbook_case() {
        // 10 of 100: 95% Wilson interval 0.0552 to 0.1744.
        let (lo, hi) = wilson(0.1, 100.0);
        assert!((lo - 0.0552).abs() < 5e-4 && (hi - 0.1744).abs() < 5e-4, "{lo} {hi}");
    }
}
