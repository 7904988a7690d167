//! The fast k-means kernel: Lloyd iterations over a contiguous row-major buffer.
//!
//! Several models (the restarts of one k, or every (k, restart) pair of a k sweep) are
//! advanced together in one pass over the rows, so memory is read once per iteration
//! however many models there are. Rows are split into fixed chunks whose partial sums are
//! added in chunk order: results do not depend on the number of threads.
//!
//! Distances use |x|² + |c|² − 2x·c with the centres packed four at a time, so the inner
//! loop is four independent multiply-adds per feature (AVX2/FMA when the CPU has them,
//! chosen at run time).

use std::borrow::Cow;

use ndarray::{Array1, Array2, ArrayView2};
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows per parallel task.
const CHUNK: usize = 4096;
/// Centres per packed group (one 256-bit register of f64).
const LANES: usize = 4;
/// Rows scored together, for independent multiply-add chains (four measured faster than
/// two or eight).
const BLOCK: usize = 4;

/// When an iteration counts as converged, and how centres are updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopRule {
    /// scikit-learn's Lloyd: centres are plain means; stop when the summed squared centre
    /// shift is at most `tol` times the mean feature variance; the inertia is that of the
    /// final centres.
    Sklearn,
    /// linfa-clustering 0.8: the old centre counts as one more member of its cluster;
    /// stop when the Frobenius norm of the shift is below `tol`; the inertia is that of
    /// the last assignment (before the last update).
    Linfa,
}

/// A row-major, contiguous view of the data (borrowed when the input already is).
pub struct Rows<'a> {
    data: Cow<'a, [f64]>,
    n: usize,
    d: usize,
}

impl<'a> Rows<'a> {
    pub fn new(x: ArrayView2<'a, f64>) -> Self {
        let (n, d) = x.dim();
        let data = match x.to_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(x.iter().copied().collect()),
        };
        Rows { data, n, d }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn d(&self) -> usize {
        self.d
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.d..(i + 1) * self.d]
    }

    /// Mean of the per-feature variances (scikit-learn scales its tolerance by it).
    pub fn mean_variance(&self) -> f64 {
        if self.n == 0 || self.d == 0 {
            return 0.0;
        }
        let mut mean = vec![0.0; self.d];
        for i in 0..self.n {
            mean.iter_mut().zip(self.row(i)).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= self.n as f64);
        let mut var = vec![0.0; self.d];
        for i in 0..self.n {
            var.iter_mut()
                .zip(self.row(i).iter().zip(&mean))
                .for_each(|(s, (v, m))| *s += (v - m) * (v - m));
        }
        var.iter().sum::<f64>() / (self.n as f64 * self.d as f64)
    }
}

/// Per-cluster totals of one pass for one model.
#[derive(Debug, Clone)]
pub struct Stats {
    pub counts: Vec<u64>,
    /// k × d sums of member rows.
    pub sums: Vec<f64>,
    /// Sum of squared distances to the nearest centre, per cluster.
    pub sq: Vec<f64>,
    /// Sum of distances to the nearest centre, per cluster.
    pub dist: Vec<f64>,
}

impl Stats {
    fn zeros(k: usize, d: usize) -> Self {
        Stats {
            counts: vec![0; k],
            sums: vec![0.0; k * d],
            sq: vec![0.0; k],
            dist: vec![0.0; k],
        }
    }

    fn add(&mut self, other: &Stats) {
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        self.sums.iter_mut().zip(&other.sums).for_each(|(a, b)| *a += b);
        self.sq.iter_mut().zip(&other.sq).for_each(|(a, b)| *a += b);
        self.dist.iter_mut().zip(&other.dist).for_each(|(a, b)| *a += b);
    }

    pub fn inertia(&self) -> f64 {
        self.sq.iter().sum()
    }
}

/// Centres of several models packed for the distance loop.
struct Packed {
    d: usize,
    /// Group g holds centres 4g..4g+4 of its model, feature-major: `[j * 4 + lane]`.
    groups: Vec<f64>,
    /// |c|² per packed centre; +inf for padding, so it never wins.
    norms: Vec<f64>,
    /// Per model: first group, number of groups, k.
    models: Vec<(usize, usize, usize)>,
}

impl Packed {
    fn new(centres: &[&Array2<f64>], d: usize) -> Self {
        let mut groups = Vec::new();
        let mut norms = Vec::new();
        let mut models = Vec::new();
        let mut g0 = 0;
        for c in centres {
            let k = c.nrows();
            let ng = k.div_ceil(LANES);
            for g in 0..ng {
                for j in 0..d {
                    for l in 0..LANES {
                        let i = g * LANES + l;
                        groups.push(if i < k { c[[i, j]] } else { 0.0 });
                    }
                }
                for l in 0..LANES {
                    let i = g * LANES + l;
                    norms.push(if i < k {
                        c.row(i).iter().map(|v| v * v).sum()
                    } else {
                        f64::INFINITY
                    });
                }
            }
            models.push((g0, ng, k));
            g0 += ng;
        }
        Packed {
            d,
            groups,
            norms,
            models,
        }
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Nearest centre of model `m` for `R` rows given feature-major (`xt[j][r]`), with their
/// squared norms: (label, squared distance).
#[inline(always)]
fn nearest<const R: usize, const FMA: bool>(
    xt: &[[f64; R]],
    xx: &[f64; R],
    p: &Packed,
    m: usize,
    out: &mut [(u32, f64); R],
) {
    let d = p.d;
    let (g0, ng, _) = p.models[m];
    let mut best = [(0u32, f64::INFINITY); R];
    for g in g0..g0 + ng {
        let cg = &p.groups[g * d * LANES..(g + 1) * d * LANES];
        let mut acc = [[0.0f64; LANES]; R];
        for (xj, c) in xt.iter().zip(cg.chunks_exact(LANES)) {
            let Ok(c) = <&[f64; LANES]>::try_from(c) else { continue };
            for r in 0..R {
                for l in 0..LANES {
                    acc[r][l] = madd::<FMA>(xj[r], c[l], acc[r][l]);
                }
            }
        }
        let Ok(norms) = <&[f64; LANES]>::try_from(&p.norms[g * LANES..(g + 1) * LANES]) else {
            continue;
        };
        // Branch-free minimum: which centre is nearest is unpredictable.
        let base = ((g - g0) * LANES) as u32;
        for r in 0..R {
            for l in 0..LANES {
                let s = norms[l] - 2.0 * acc[r][l];
                let better = s < best[r].1;
                best[r].1 = if better { s } else { best[r].1 };
                best[r].0 = if better { base + l as u32 } else { best[r].0 };
            }
        }
    }
    for r in 0..R {
        out[r] = (best[r].0, (best[r].1 + xx[r]).max(0.0));
    }
}

/// Rows `i..i + R` feature-major into `xt`, and their squared norms when `SQ` (zeros
/// otherwise: the nearest centre does not depend on them).
#[inline(always)]
fn transpose<const R: usize, const FMA: bool, const SQ: bool>(
    rows: &[f64],
    d: usize,
    i: usize,
    xt: &mut [[f64; R]],
) -> [f64; R] {
    let mut xx = [0.0; R];
    for r in 0..R {
        let x = &rows[(i + r) * d..(i + r + 1) * d];
        for (j, v) in x.iter().enumerate() {
            xt[j][r] = *v;
            if SQ {
                xx[r] = madd::<FMA>(*v, *v, xx[r]);
            }
        }
    }
    xx
}

/// What a pass must total besides counts and sums.
#[derive(Debug, Clone, Copy)]
struct Need {
    /// Squared distances (the inertia).
    sq: bool,
    /// Distances (square roots: dear, so only on a final pass).
    dist: bool,
}

impl Need {
    const MEANS: Need = Need { sq: false, dist: false };
    const SQ: Need = Need { sq: true, dist: false };
    const ALL: Need = Need { sq: true, dist: true };
}

/// One chunk of rows against every model: per-model stats, and labels of model 0 when asked.
/// Without `SQ`, squared distances are neither computed nor totalled.
#[inline(always)]
fn chunk_pass<const FMA: bool, const SQ: bool>(
    rows: &[f64],
    p: &Packed,
    mut labels: Option<(&mut [u32], &mut [f64])>,
    with_dist: bool,
) -> Vec<Stats> {
    let d = p.d;
    let n = rows.len() / d.max(1);
    let mut stats: Vec<Stats> = p.models.iter().map(|&(_, _, k)| Stats::zeros(k, d)).collect();
    let mut i = 0;
    let visit =
        |i: usize, found: &[(u32, f64)], st: &mut Stats, m: usize, labels: &mut Option<(&mut [u32], &mut [f64])>| {
            for (r, &(c, sq)) in found.iter().enumerate() {
                let c = c as usize;
                st.counts[c] += 1;
                if SQ {
                    st.sq[c] += sq;
                }
                if SQ && with_dist {
                    st.dist[c] += sq.sqrt();
                }
                let x = &rows[(i + r) * d..(i + r + 1) * d];
                st.sums[c * d..(c + 1) * d].iter_mut().zip(x).for_each(|(s, v)| *s += v);
                if m == 0 {
                    if let Some((l, dd)) = labels.as_mut() {
                        l[i + r] = c as u32;
                        dd[i + r] = sq;
                    }
                }
            }
        };
    let mut xt = vec![[0.0; BLOCK]; d];
    while i + BLOCK <= n {
        let xx = transpose::<BLOCK, FMA, SQ>(rows, d, i, &mut xt);
        for (m, st) in stats.iter_mut().enumerate() {
            let mut found = [(0u32, 0.0); BLOCK];
            nearest::<BLOCK, FMA>(&xt, &xx, p, m, &mut found);
            visit(i, &found, st, m, &mut labels);
        }
        i += BLOCK;
    }
    let mut xt1 = vec![[0.0; 1]; d];
    while i < n {
        let xx = transpose::<1, FMA, SQ>(rows, d, i, &mut xt1);
        for (m, st) in stats.iter_mut().enumerate() {
            let mut found = [(0u32, 0.0); 1];
            nearest::<1, FMA>(&xt1, &xx, p, m, &mut found);
            visit(i, &found, st, m, &mut labels);
        }
        i += 1;
    }
    stats
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_pass_avx2(
    rows: &[f64],
    p: &Packed,
    labels: Option<(&mut [u32], &mut [f64])>,
    need: Need,
) -> Vec<Stats> {
    if need.sq {
        chunk_pass::<true, true>(rows, p, labels, need.dist)
    } else {
        chunk_pass::<true, false>(rows, p, labels, false)
    }
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn chunk_dispatch(
    rows: &[f64],
    p: &Packed,
    labels: Option<(&mut [u32], &mut [f64])>,
    fast: bool,
    need: Need,
) -> Vec<Stats> {
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: only called when the CPU reports AVX2 and FMA.
        return unsafe { chunk_pass_avx2(rows, p, labels, need) };
    }
    let _ = fast;
    if need.sq {
        chunk_pass::<false, true>(rows, p, labels, need.dist)
    } else {
        chunk_pass::<false, false>(rows, p, labels, false)
    }
}

/// One pass of all rows against the packed models, in parallel; stats summed in chunk order.
fn pass(x: &Rows, p: &Packed, need: Need) -> Vec<Stats> {
    let fast = has_avx2_fma();
    let d = x.d.max(1);
    let parts: Vec<Vec<Stats>> = x
        .data
        .par_chunks(CHUNK * d)
        .map(|rows| chunk_dispatch(rows, p, None, fast, need))
        .collect();
    reduce(parts, p, x.d)
}

fn reduce(parts: Vec<Vec<Stats>>, p: &Packed, d: usize) -> Vec<Stats> {
    let mut total: Vec<Stats> = p.models.iter().map(|&(_, _, k)| Stats::zeros(k, d)).collect();
    for part in &parts {
        total.iter_mut().zip(part).for_each(|(t, s)| t.add(s));
    }
    total
}

/// Nearest centre and squared distance of every row.
pub fn assign(x: &Rows, centres: &Array2<f64>) -> (Vec<u32>, Vec<f64>, Stats) {
    let p = Packed::new(&[centres], x.d);
    let fast = has_avx2_fma();
    let d = x.d.max(1);
    let mut labels = vec![0u32; x.n];
    let mut sq = vec![0.0; x.n];
    let parts: Vec<Vec<Stats>> = x
        .data
        .par_chunks(CHUNK * d)
        .zip(labels.par_chunks_mut(CHUNK))
        .zip(sq.par_chunks_mut(CHUNK))
        .map(|((rows, l), s)| chunk_dispatch(rows, &p, Some((l, s)), fast, Need::ALL))
        .collect();
    let stats = reduce(parts, &p, x.d).swap_remove(0);
    (labels, sq, stats)
}

/// Result of one model's Lloyd run.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub centroids: Array2<f64>,
    pub inertia: f64,
    pub n_iter: usize,
    /// Per-cluster totals for the returned centroids (scikit-learn rule) or for the last
    /// assignment (linfa rule).
    pub stats: Stats,
}

/// Runs Lloyd's algorithm for every starting set in `inits`, all in the same passes.
pub fn lloyd_many(x: &Rows, inits: Vec<Array2<f64>>, rule: StopRule, max_iter: usize, tol: f64) -> Vec<Fitted> {
    let d = x.d;
    let tol_abs = match rule {
        StopRule::Sklearn => tol * x.mean_variance(),
        StopRule::Linfa => tol,
    };
    let mut centres = inits;
    let mut done: Vec<Option<(usize, Stats)>> = vec![None; centres.len()];
    let mut iters = vec![0usize; centres.len()];
    let max_iter = max_iter.max(1);
    loop {
        let active: Vec<usize> = (0..centres.len()).filter(|&m| done[m].is_none()).collect();
        if active.is_empty() {
            break;
        }
        let refs: Vec<&Array2<f64>> = active.iter().map(|&m| &centres[m]).collect();
        let p = Packed::new(&refs, d);
        // scikit-learn's rule moves centres by means alone; linfa's reports the inertia of
        // the last assignment, so every pass totals it.
        let need = match rule {
            StopRule::Sklearn => Need::MEANS,
            StopRule::Linfa => Need::SQ,
        };
        let stats = pass(x, &p, need);
        for (st, &m) in stats.into_iter().zip(&active) {
            let old = &centres[m];
            let mut new = old.clone();
            for c in 0..old.nrows() {
                let cnt = st.counts[c] as f64;
                for j in 0..d {
                    let s = st.sums[c * d + j];
                    new[[c, j]] = match rule {
                        StopRule::Sklearn if cnt > 0.0 => s / cnt,
                        // An empty cluster keeps its centre.
                        StopRule::Sklearn => old[[c, j]],
                        StopRule::Linfa => (s + old[[c, j]]) / (cnt + 1.0),
                    };
                }
            }
            let shift2: f64 = new.iter().zip(old.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
            iters[m] += 1;
            let converged = match rule {
                StopRule::Sklearn => shift2 <= tol_abs,
                StopRule::Linfa => shift2.sqrt() < tol_abs,
            };
            centres[m] = new;
            if converged || iters[m] >= max_iter {
                done[m] = Some((iters[m], st));
            }
        }
    }
    let finals: Vec<Stats> = match rule {
        // scikit-learn reports the inertia of the final centres: one more assignment.
        StopRule::Sklearn => {
            let refs: Vec<&Array2<f64>> = centres.iter().collect();
            pass(x, &Packed::new(&refs, d), Need::ALL)
        }
        StopRule::Linfa => done
            .iter()
            .map(|s| s.as_ref().map(|s| s.1.clone()).unwrap_or_else(|| Stats::zeros(0, d)))
            .collect(),
    };
    centres
        .into_iter()
        .zip(finals)
        .zip(iters)
        .map(|((c, stats), n_iter)| Fitted {
            centroids: c,
            inertia: stats.inertia(),
            n_iter,
            stats,
        })
        .collect()
}

/// Greedy k-means++ seeding (scikit-learn's variant: `2 + ln k` candidates per step, the
/// one that lowers the potential most is kept). Any prefix of the result is a seeding for
/// a smaller k, which is how a k sweep shares one seeding per restart.
pub fn kmeans_plus_plus(x: &Rows, k: usize, trials: usize, rng: &mut impl Rng) -> Array2<f64> {
    let (n, d) = (x.n, x.d);
    let mut centres = Array2::zeros((k, d));
    if n == 0 || k == 0 {
        return centres;
    }
    let first = rng.gen_range(0..n);
    centres
        .row_mut(0)
        .iter_mut()
        .zip(x.row(first))
        .for_each(|(c, v)| *c = *v);
    let sqdist = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum() };
    let mut closest: Vec<f64> = x.data.par_chunks(d.max(1)).map(|r| sqdist(r, x.row(first))).collect();
    let trials = trials.max(1);
    for c in 1..k {
        let potential: f64 = closest.iter().sum();
        let mut cumulative = Vec::with_capacity(n);
        let mut run = 0.0;
        for v in &closest {
            run += v;
            cumulative.push(run);
        }
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                let target = rng.gen::<f64>() * potential;
                cumulative.partition_point(|&v| v < target).min(n - 1)
            })
            .collect();
        // Each candidate's potential if chosen: one pass over the rows for all of them.
        let cand_rows: Vec<&[f64]> = candidates.iter().map(|&i| x.row(i)).collect();
        let sums: Vec<Vec<f64>> = x
            .data
            .par_chunks(CHUNK * d.max(1))
            .zip(closest.par_chunks(CHUNK))
            .map(|(rows, cl)| {
                let mut s = vec![0.0; cand_rows.len()];
                for (r, &best) in rows.chunks_exact(d.max(1)).zip(cl) {
                    for (t, cr) in cand_rows.iter().enumerate() {
                        s[t] += sqdist(r, cr).min(best);
                    }
                }
                s
            })
            .collect();
        let mut totals = vec![0.0; cand_rows.len()];
        for s in &sums {
            totals.iter_mut().zip(s).for_each(|(t, v)| *t += v);
        }
        let pick = (0..totals.len())
            .min_by(|&a, &b| totals[a].total_cmp(&totals[b]))
            .unwrap_or(0);
        let chosen = candidates[pick];
        centres
            .row_mut(c)
            .iter_mut()
            .zip(x.row(chosen))
            .for_each(|(dst, v)| *dst = *v);
        let row = x.row(chosen);
        closest.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, cl)| {
            for (o, v) in cl.iter_mut().enumerate() {
                let i = ci * CHUNK + o;
                *v = v.min(sqdist(x.row(i), row));
            }
        });
    }
    centres
}

/// Candidates per k-means++ step, as scikit-learn picks them.
pub fn default_trials(k: usize) -> usize {
    2 + (k.max(1) as f64).ln() as usize
}

/// Labels as ndarray indices.
pub fn labels_array(labels: &[u32]) -> Array1<usize> {
    labels.iter().map(|&l| l as usize).collect()
}
