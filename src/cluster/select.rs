//! Choosing k: every candidate fitted in shared passes, scored, and a rank vote of the
//! three measures.

use super::quality::ch_db_parts;
use super::*;

/// The chosen k: each measure ranks the candidates, the lowest rank sum wins (a Borda
/// count, so no one measure's scale dominates), ties go to the higher silhouette.

pub fn choose_k(scores: &[KScore]) -> usize {
    let rank = |key: &dyn Fn(&KScore) -> f64| -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| key(&scores[b]).total_cmp(&key(&scores[a])));
        let mut r = vec![0; scores.len()];
        for (pos, &i) in order.iter().enumerate() {
            r[i] = pos;
        }
        r
    };
    let sil = rank(&|s| s.silhouette);
    let ch = rank(&|s| s.calinski_harabasz);
    let db = rank(&|s| -s.davies_bouldin);
    (0..scores.len())
        .min_by(|&a, &b| {
            (sil[a] + ch[a] + db[a])
                .cmp(&(sil[b] + ch[b] + db[b]))
                .then(scores[b].silhouette.total_cmp(&scores[a].silhouette))
        })
        .map(|i| scores[i].k)
        .unwrap_or(2)
}

/// Fits every k in the range, scores each, and returns the chosen fit with all scores.
pub fn select_k(
    x: ArrayView2<f64>,
    range: (usize, usize),
    params: &KMeansSettings,
    silhouette_sample: usize,
    seed: u64,
    mut on_k: impl FnMut(usize),
) -> Result<(Clustering, Vec<KScore>), ClusterError> {
    let idx = sample_rows(x.nrows(), silhouette_sample, seed ^ 0x5111);
    let hi = range.1.min(x.nrows().saturating_sub(1)).max(range.0);
    if params.backend == KMeansBackend::Fast {
        return sweep_fast(x, (range.0, hi), params, &idx, seed, on_k);
    }
    let mut fits = Vec::new();
    let mut scores = Vec::new();
    for k in range.0..=hi {
        let c = fit(x, k, params, seed)?;
        scores.push(score(x, &c, &idx));
        fits.push(c);
        on_k(k);
    }
    let best = choose_k(&scores);
    let pos = scores.iter().position(|s| s.k == best).unwrap_or(0);
    Ok((fits.swap_remove(pos), scores))
}

/// The fast sweep: every k's restarts in the same passes ([`restarts_then_polish`]).
/// Scores come from the per-cluster totals of the final pass, so no k other than the
/// chosen one is assigned row by row again.
pub(super) fn sweep_fast(
    x: ArrayView2<f64>,
    (lo, hi): (usize, usize),
    params: &KMeansSettings,
    sample_idx: &[usize],
    seed: u64,
    mut on_k: impl FnMut(usize),
) -> Result<(Clustering, Vec<KScore>), ClusterError> {
    if x.nrows() < hi.max(lo) || lo == 0 {
        return Err(ClusterError::TooFewRows {
            k: lo.max(1),
            n: x.nrows(),
        });
    }
    let ks: Vec<usize> = (lo..=hi).collect();
    let fitted = restarts_then_polish(
        x,
        &ks,
        params.n_runs,
        StopRule::Sklearn,
        params.max_iterations as usize,
        params.tolerance,
        seed,
    );
    let Some(overall) = x.mean_axis(Axis(0)) else {
        return Err(ClusterError::TooFewRows { k: lo, n: 0 });
    };
    let sample = x.select(Axis(0), sample_idx);
    let labellings: Vec<(Array1<usize>, usize)> = fitted
        .iter()
        .zip(&ks)
        .map(|(f, &k)| (assign(sample.view(), f.centroids.view()).0, k))
        .collect();
    let sil = silhouettes(sample.view(), &labellings);
    let mut best = Vec::new();
    let mut scores = Vec::new();
    for (f, &k) in fitted.iter().zip(&ks) {
        let sizes: Vec<usize> = f.stats.counts.iter().map(|&c| c as usize).collect();
        let (ch, db) = ch_db_parts(
            f.centroids.view(),
            &sizes,
            &f.stats.dist,
            f.inertia,
            overall.view(),
            x.nrows(),
        );
        scores.push(KScore {
            k,
            silhouette: sil[scores.len()],
            calinski_harabasz: ch,
            davies_bouldin: db,
            inertia: f.inertia,
        });
        best.push(f.centroids.clone());
        on_k(k);
    }
    let chosen = choose_k(&scores);
    let pos = ks.iter().position(|&k| k == chosen).unwrap_or(0);
    Ok((finish(x, best.swap_remove(pos))?, scores))
}
