//! How good a risk score is on clients whose outcome is known: ranking (ROC-AUC,
//! PR-AUC), probability (Brier score, calibration table) and the top of the list
//! (precision, recall and lift in the riskiest 10%).

use serde::{Deserialize, Serialize};

/// Rank-based ROC-AUC with ties counted half; None when one class is absent.
pub fn roc_auc(score: &[f64], label: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let (mut pos, mut neg) = (0f64, 0f64);
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        // Ranks i+1..=j+1 share their mean.
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if label[k] {
                pos += 1.0;
                rank_sum += mean_rank;
            } else {
                neg += 1.0;
            }
        }
        i = j + 1;
    }
    (pos > 0.0 && neg > 0.0).then(|| (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Average precision (the area under the precision-recall curve, step-wise), ties in
/// score taken together.
pub fn pr_auc(score: &[f64], label: &[bool]) -> Option<f64> {
    let total = label.iter().filter(|l| **l).count() as f64;
    if total == 0.0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let (mut tp, mut seen, mut ap) = (0f64, 0f64, 0f64);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        let new_tp = idx[i..=j].iter().filter(|&&k| label[k]).count() as f64;
        tp += new_tp;
        seen += (j - i + 1) as f64;
        ap += new_tp / total * (tp / seen);
        i = j + 1;
    }
    Some(ap)
}

pub fn brier(p: &[f64], label: &[bool]) -> f64 {
    let n = p.len().max(1) as f64;
    p.iter()
        .zip(label)
        .map(|(p, l)| (p - f64::from(u8::from(*l))).powi(2))
        .sum::<f64>()
        / n
}

/// One decile of predicted risk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub clients: usize,
    pub mean_predicted: f64,
    pub observed: f64,
    /// 95% interval of `observed`, by resampling clients.
    #[serde(default)]
    pub observed_ci: Option<(f64, f64)>,
}

/// Ten groups of equal size by predicted risk, lowest first.
pub fn calibration(p: &[f64], label: &[bool]) -> Vec<CalibrationBin> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let n = idx.len();
    (0..10)
        .filter_map(|d| {
            let (lo, hi) = (d * n / 10, (d + 1) * n / 10);
            (hi > lo).then(|| {
                let part = &idx[lo..hi];
                let m = part.len() as f64;
                CalibrationBin {
                    clients: part.len(),
                    mean_predicted: part.iter().map(|&k| p[k]).sum::<f64>() / m,
                    observed: part.iter().filter(|&&k| label[k]).count() as f64 / m,
                    observed_ci: None,
                }
            })
        })
        .collect()
}

/// Precision, recall and lift of the riskiest `share` of clients.
pub fn top_share(score: &[f64], label: &[bool], share: f64) -> (f64, f64, f64) {
    let n = score.len();
    let total = label.iter().filter(|l| **l).count();
    if n == 0 || total == 0 {
        return (0.0, 0.0, 0.0);
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let k = ((n as f64 * share).ceil() as usize).clamp(1, n);
    let hit = idx[..k].iter().filter(|&&i| label[i]).count();
    let precision = hit as f64 / k as f64;
    let recall = hit as f64 / total as f64;
    let base = total as f64 / n as f64;
    (precision, recall, precision / base)
}

/// Cumulative share of leavers found against share of clients contacted (riskiest
/// first), at 20 points: the lift chart.
pub fn gains(score: &[f64], label: &[bool]) -> Vec<(f64, f64)> {
    let n = score.len();
    let total = label.iter().filter(|l| **l).count();
    if n == 0 || total == 0 {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let mut out = vec![(0.0, 0.0)];
    let mut hit = 0;
    let mut next = 1;
    for (i, &k) in idx.iter().enumerate() {
        hit += usize::from(label[k]);
        let at = (i + 1) as f64 / n as f64;
        if at >= next as f64 / 20.0 {
            out.push((at, hit as f64 / total as f64));
            next += 1;
        }
    }
    out
}

/// All the measures of one scored set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scores {
    pub clients: usize,
    pub left: usize,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    /// Only for scores that are probabilities (not for days since the last invoice, nor
    /// for a rule's flag).
    pub brier: Option<f64>,
    pub precision_top10: f64,
    pub recall_top10: f64,
    pub lift_top10: f64,
    /// 95% intervals by resampling clients (a client's test months go together).
    #[serde(default)]
    pub roc_auc_ci: Option<(f64, f64)>,
    #[serde(default)]
    pub pr_auc_ci: Option<(f64, f64)>,
    #[serde(default)]
    pub brier_ci: Option<(f64, f64)>,
}

/// The measures of scores `p`; `probability` says whether they are chances of leaving
/// (only then is a Brier score meaningful).
pub fn scores(p: &[f64], label: &[bool], probability: bool) -> Scores {
    let (precision_top10, recall_top10, lift_top10) = top_share(p, label, 0.1);
    Scores {
        clients: p.len(),
        left: label.iter().filter(|l| **l).count(),
        roc_auc: roc_auc(p, label),
        pr_auc: pr_auc(p, label),
        brier: (probability && p.iter().all(|v| (0.0..=1.0).contains(v))).then(|| brier(p, label)),
        precision_top10,
        recall_top10,
        lift_top10,
        roc_auc_ci: None,
        pr_auc_ci: None,
        brier_ci: None,
    }
}

/// Resamples of the clients for the intervals.
pub const RESAMPLES: usize = 200;

/// Resamples measured together in one pass over the rows: their weights sit side by side,
/// so each row's sums are one vector operation instead of eight scattered ones.
const LANES: usize = 8;

/// Rows sorted by score once, so that each resample's measures are one weighted pass.
pub struct Resampler<'a> {
    label: &'a [bool],
    /// Per row, its client (0..clients).
    group: Vec<u32>,
    clients: usize,
    /// By [`LANES`] resamples: per client, how many times each of them drew it.
    lanes: Vec<Vec<[u32; LANES]>>,
}

impl<'a> Resampler<'a> {
    /// `RESAMPLES` draws of the clients with replacement, from `seed`.
    pub fn new(label: &'a [bool], group: Vec<u32>, seed: u64) -> Resampler<'a> {
        use rand::{Rng, SeedableRng};
        let clients = group.iter().map(|g| *g as usize + 1).max().unwrap_or(0);
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        // Drawn resample by resample, in the same order as ever, straight into the lanes.
        let mut lanes: Vec<Vec<[u32; LANES]>> = vec![vec![[0; LANES]; clients]; RESAMPLES.div_ceil(LANES)];
        for r in 0..RESAMPLES {
            let Some(block) = lanes.get_mut(r / LANES) else { break };
            for _ in 0..clients {
                if let Some(c) = block.get_mut(rng.gen_range(0..clients)) {
                    c[r % LANES] += 1;
                }
            }
        }
        Resampler {
            label,
            group,
            clients,
            lanes,
        }
    }

    /// Fills in the intervals of `s`, the measures of scores `p`; returns each resample's
    /// ROC-AUC, in draw order, so that two scorers can be compared on the same draws.
    pub fn intervals(&self, p: &[f64], s: &mut Scores) -> Vec<Option<f64>> {
        if self.clients == 0 || p.len() != self.label.len() {
            return Vec::new();
        }
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        // Laid out in score order once: each pass is then sequential and only looks up
        // its clients' draw counts.
        let sorted: Vec<(u32, bool)> = order.iter().map(|&i| (self.group[i], self.label[i])).collect();
        let mut ties = Vec::new();
        let mut k = 0;
        while k < order.len() {
            let mut j = k;
            while j < order.len() && p[order[j]] == p[order[k]] {
                j += 1;
            }
            ties.push(j);
            k = j;
        }
        use rayon::prelude::*;
        let probability = s.brier.is_some();
        let mut each: Vec<(Option<f64>, Option<f64>, Option<f64>)> = self
            .lanes
            .par_iter()
            .flat_map_iter(|block| {
                let weight = |g: u32| block.get(g as usize).copied().unwrap_or([0; LANES]);
                let ranks = weighted_ranks(&sorted, &ties, weight);
                let briers = if probability {
                    let (mut sum, mut total) = ([0.0; LANES], [0.0; LANES]);
                    for (i, pi) in p.iter().enumerate() {
                        let w = weight(self.group[i]);
                        let e = (pi - f64::from(u8::from(self.label[i]))).powi(2);
                        for l in 0..LANES {
                            let wi = f64::from(w[l]);
                            total[l] += wi;
                            sum[l] += wi * e;
                        }
                    }
                    std::array::from_fn(|l| (total[l] > 0.0).then(|| sum[l] / total[l]))
                } else {
                    [None; LANES]
                };
                ranks.into_iter().zip(briers).map(|((a, pr), br)| (a, pr, br))
            })
            .collect();
        // The last block's unused lanes.
        each.truncate(RESAMPLES);
        let auc = each.iter().filter_map(|e| e.0).collect();
        let ap = each.iter().filter_map(|e| e.1).collect();
        let br = each.iter().filter_map(|e| e.2).collect();
        s.roc_auc_ci = interval(auc);
        s.pr_auc_ci = interval(ap);
        s.brier_ci = interval(br);
        each.iter().map(|e| e.0).collect()
    }

    /// Fills in the intervals of the observed share of each decile of `bins` (made by
    /// [`calibration`] from the same `p`).
    pub fn calibration_intervals(&self, p: &[f64], bins: &mut [CalibrationBin]) {
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        let n = order.len();
        use rayon::prelude::*;
        bins.par_iter_mut().enumerate().take(10).for_each(|(d, bin)| {
            let part = &order[d * n / 10..(d + 1) * n / 10];
            let shares = (0..RESAMPLES)
                .filter_map(|r| {
                    let w = self.lanes.get(r / LANES)?;
                    let (mut left, mut all) = (0.0, 0.0);
                    for &i in part {
                        let k = w.get(self.group[i] as usize).map_or(0, |c| c[r % LANES]) as f64;
                        all += k;
                        if self.label[i] {
                            left += k;
                        }
                    }
                    (all > 0.0).then(|| left / all)
                })
                .collect();
            bin.observed_ci = interval(shares);
        });
    }
}

/// Weighted ROC-AUC and average precision over (client, left) rows in ascending score
/// order, for [`LANES`] weightings at once; `ties[g]` ends the g-th run of equal scores;
/// `weight` is a client's weight in each. The weights are draw counts, so every sum but
/// the precision's is of whole numbers and exact in any order.
fn weighted_ranks(
    sorted: &[(u32, bool)],
    ties: &[usize],
    weight: impl Fn(u32) -> [u32; LANES],
) -> [(Option<f64>, Option<f64>); LANES] {
    // Each row's weight, as the leaver's and the stayer's share (one of them zero).
    let split = |&(g, left): &(u32, bool)| {
        let w = weight(g);
        let m = f64::from(u8::from(left));
        let (mut p, mut n) = ([0.0; LANES], [0.0; LANES]);
        for l in 0..LANES {
            let x = f64::from(w[l]);
            p[l] = x * m;
            n[l] = x - p[l];
        }
        (p, n)
    };
    let (mut pos, mut neg) = ([0.0; LANES], [0.0; LANES]);
    for row in sorted {
        let (p, n) = split(row);
        for l in 0..LANES {
            pos[l] += p[l];
            neg[l] += n[l];
        }
    }
    // Tie groups, ascending: AUC counts the negatives below each positive (ties half);
    // average precision takes each group as reached from the top, with every row above
    // and in it seen.
    let (mut below, mut pos_below) = ([0.0; LANES], [0.0; LANES]);
    let (mut area, mut ap) = ([0.0; LANES], [0.0; LANES]);
    let mut start = 0;
    for &end in ties {
        let (mut gp, mut gn) = ([0.0; LANES], [0.0; LANES]);
        for row in sorted.get(start..end).unwrap_or_default() {
            let (p, n) = split(row);
            for l in 0..LANES {
                gp[l] += p[l];
                gn[l] += n[l];
            }
        }
        for l in 0..LANES {
            area[l] += gp[l] * (below[l] + 0.5 * gn[l]);
            let tp = pos[l] - pos_below[l];
            let seen = pos[l] + neg[l] - below[l] - pos_below[l];
            ap[l] += if seen > 0.0 { gp[l] / pos[l] * (tp / seen) } else { 0.0 };
            below[l] += gn[l];
            pos_below[l] += gp[l];
        }
        start = end;
    }
    std::array::from_fn(|l| {
        if pos[l] <= 0.0 || neg[l] <= 0.0 {
            (None, None)
        } else {
            (Some(area[l] / (pos[l] * neg[l])), Some(ap[l]))
        }
    })
}

/// The share of resamples in which `b` ranked better than `a` (ROC-AUC per resample, on
/// the same draws of clients); None with fewer than 20 resamples where both are defined.
pub fn share_better(a: &[Option<f64>], b: &[Option<f64>]) -> Option<f64> {
    let both: Vec<(f64, f64)> = a.iter().zip(b).filter_map(|(x, y)| Some(((*x)?, (*y)?))).collect();
    (both.len() >= 20).then(|| both.iter().filter(|(x, y)| y > x).count() as f64 / both.len() as f64)
}

/// The 2.5% and 97.5% points.
fn interval(mut v: Vec<f64>) -> Option<(f64, f64)> {
    v.retain(|x| x.is_finite());
    if v.len() < 20 {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

/// Kaplan–Meier: the share of clients still with the firm after each month of tenure,
/// from (duration in months, left) pairs; (month, survival) steps.
pub fn kaplan_meier(obs: &[(u32, bool)]) -> Vec<(f64, f64)> {
    let max = obs.iter().map(|o| o.0).max().unwrap_or(0);
    let mut at_risk = obs.len() as f64;
    let mut s = 1.0;
    let mut out = vec![(0.0, 1.0)];
    let mut events = vec![0u32; max as usize + 2];
    let mut censored = vec![0u32; max as usize + 2];
    for &(d, left) in obs {
        if left {
            events[d as usize] += 1;
        } else {
            censored[d as usize] += 1;
        }
    }
    for m in 0..=max as usize {
        if at_risk <= 0.0 {
            break;
        }
        if events[m] > 0 {
            s *= 1.0 - events[m] as f64 / at_risk;
        }
        out.push((m as f64, s));
        at_risk -= (events[m] + censored[m]) as f64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_known_orders() {
        let l = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.3, 0.4], &l), Some(1.0));
        assert_eq!(roc_auc(&[0.4, 0.3, 0.2, 0.1], &l), Some(0.0));
        assert_eq!(roc_auc(&[0.5; 4], &l), Some(0.5));
        // One inversion of four pairs.
        assert_eq!(roc_auc(&[0.1, 0.3, 0.2, 0.4], &l), Some(0.75));
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn a_scorer_that_ranks_better_wins_nearly_every_paired_resample() {
        // Two scorers of the same 2,000 clients: b separates the leavers far better than
        // a, so it wins on (almost) every draw; a never beats itself (ties are not wins).
        let n = 2_000;
        let y: Vec<bool> = (0..n).map(|i| i % 5 == 0).collect();
        let noise = |i: usize, k: u64| ((i as u64 * 2_654_435_761 + k) % 1_000) as f64 / 1_000.0;
        let a: Vec<f64> = (0..n).map(|i| f64::from(u8::from(y[i])) * 0.3 + noise(i, 7)).collect();
        let b: Vec<f64> = (0..n).map(|i| f64::from(u8::from(y[i])) * 0.9 + noise(i, 11)).collect();
        let r = Resampler::new(&y, (0..n as u32).collect(), 3);
        let mut sa = scores(&a, &y, true);
        let mut sb = scores(&b, &y, true);
        let (ra, rb) = (r.intervals(&a, &mut sa), r.intervals(&b, &mut sb));
        assert_eq!((ra.len(), rb.len()), (RESAMPLES, RESAMPLES));
        // The point figure lies within its own interval.
        let (lo, hi) = sb.roc_auc_ci.unwrap();
        assert!(lo <= sb.roc_auc.unwrap() && sb.roc_auc.unwrap() <= hi, "{sb:?}");
        assert!(share_better(&ra, &rb).unwrap() >= 0.99);
        assert_eq!(share_better(&rb, &ra), Some(0.0));
        assert_eq!(share_better(&ra, &ra), Some(0.0));
        // Too few resamples with both figures: no share is claimed.
        assert_eq!(share_better(&ra[..19], &rb[..19]), None);
        assert_eq!(share_better(&[None; 30], &rb[..30]), None);
    }

    #[test]
    fn average_precision_by_hand() {
        // Ranked: T F T -> (1/1 + 2/3) / 2.
        let ap = pr_auc(&[0.9, 0.8, 0.7], &[true, false, true]).unwrap();
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn top_decile_and_calibration() {
        let p: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let l: Vec<bool> = (0..100).map(|i| i >= 90).collect();
        let (prec, rec, lift) = top_share(&p, &l, 0.1);
        assert_eq!((prec, rec), (1.0, 1.0));
        assert!((lift - 10.0).abs() < 1e-12);
        let c = calibration(&p, &l);
        assert_eq!(c.len(), 10);
        assert_eq!(c[9].observed, 1.0);
        assert_eq!(c[0].observed, 0.0);
    }

    #[test]
    fn unit_weights_give_the_plain_measures() {
        let p: [f64; 8] = [0.1, 0.4, 0.4, 0.2, 0.9, 0.3, 0.7, 0.7];
        let l = [false, true, false, false, true, true, false, true];
        // Each row its own client, in score order, with the runs of equal scores.
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        let sorted: Vec<(u32, bool)> = order.iter().map(|&i| (i as u32, l[i])).collect();
        let ties: Vec<usize> = (1..=order.len())
            .filter(|&k| k == order.len() || p[order[k]] != p[order[k - 1]])
            .collect();
        let [(auc, ap), ..] = weighted_ranks(&sorted, &ties, |_| [1; LANES]);
        assert!((auc.unwrap() - roc_auc(&p, &l).unwrap()).abs() < 1e-12);
        assert!((ap.unwrap() - pr_auc(&p, &l).unwrap()).abs() < 1e-12);
        // A weight of 2 is the row twice; each lane keeps to its own weights, and a lane
        // with no weight claims nothing.
        let (p2, l2): (Vec<f64>, Vec<bool>) = p.iter().zip(&l).chain([(&0.4, &true)]).map(|(a, b)| (*a, *b)).unzip();
        let lanes = weighted_ranks(&sorted, &ties, |g| {
            std::array::from_fn(|k| u32::from(k != 2) + u32::from(k == 1 && g == 1))
        });
        assert!((lanes[1].0.unwrap() - roc_auc(&p2, &l2).unwrap()).abs() < 1e-12);
        assert!((lanes[1].1.unwrap() - pr_auc(&p2, &l2).unwrap()).abs() < 1e-12);
        assert!((lanes[0].0.unwrap() - roc_auc(&p, &l).unwrap()).abs() < 1e-12);
        assert_eq!(lanes[2], (None, None));
    }

    #[test]
    fn intervals_hold_the_estimate_and_narrow_with_more_clients() {
        use rand::{Rng, SeedableRng};
        let width = |clients: usize| {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
            let (mut p, mut l, mut g) = (Vec::new(), Vec::new(), Vec::new());
            for c in 0..clients {
                for _ in 0..3 {
                    let x: f64 = rng.gen_range(0.0..1.0);
                    p.push(x);
                    l.push(rng.gen_bool(x * 0.5));
                    g.push(c as u32);
                }
            }
            let mut s = scores(&p, &l, true);
            let r = Resampler::new(&l, g, 9);
            r.intervals(&p, &mut s);
            let (lo, hi) = s.roc_auc_ci.unwrap();
            let auc = s.roc_auc.unwrap();
            assert!(lo < auc && auc < hi, "{lo} {auc} {hi}");
            let (blo, bhi) = s.brier_ci.unwrap();
            assert!(blo < s.brier.unwrap() && s.brier.unwrap() < bhi);
            let mut bins = calibration(&p, &l);
            r.calibration_intervals(&p, &mut bins);
            assert!(bins.iter().all(|b| b
                .observed_ci
                .is_some_and(|(lo, hi)| lo <= b.observed && b.observed <= hi)));
            hi - lo
        };
        let (small, large) = (width(300), width(5000));
        assert!(large < small / 2.0, "{small} {large}");
    }

    #[test]
    fn a_flag_or_a_count_of_days_has_no_brier_score() {
        let l = [false, true, true];
        assert!(scores(&[0.0, 1.0, 1.0], &l, false).brier.is_none());
        assert!(scores(&[3.0, 90.0, 120.0], &l, true).brier.is_none());
        assert!(scores(&[0.1, 0.8, 0.6], &l, true).brier.is_some());
    }

    #[test]
    fn kaplan_meier_by_hand() {
        // Four clients: leave at 1, censored at 1, leave at 2, censored at 3.
        let km = kaplan_meier(&[(1, true), (1, false), (2, true), (3, false)]);
        let at = |m: f64| km.iter().find(|p| p.0 == m).unwrap().1;
        assert_eq!(at(0.0), 1.0);
        assert!((at(1.0) - 0.75).abs() < 1e-12);
        assert!((at(2.0) - 0.375).abs() < 1e-12);
    }
}
