//! The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way"):
//! while "alive" a client buys at its own Poisson rate λ (gamma-distributed over
//! clients, shape r and rate α), and after each purchase stays with probability 1 − p
//! (p beta-distributed, a and b). It needs only each client's repeat purchases x, the
//! time of the last t_x and the time observed T since the first, so it suits a firm that
//! exports nothing but invoices. Fitted by maximum likelihood (the closed form of the
//! paper's equation 6) with Nelder–Mead on the logarithms of the four parameters.

use serde::{Deserialize, Serialize};

/// The four parameters of the population.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// One client's history: repeat purchases, time of the last, time observed (from the first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub x: f64,
    pub t_x: f64,
    pub t: f64,
}

impl Summary {
    /// A valid history: x ≥ 0, 0 ≤ t_x ≤ T, t_x = 0 when x = 0.
    pub fn checked(x: f64, t_x: f64, t: f64) -> Option<Summary> {
        let ok = x.is_finite()
            && t_x.is_finite()
            && t.is_finite()
            && x >= 0.0
            && t_x >= 0.0
            && t_x <= t + 1e-9
            && (x > 0.0 || t_x == 0.0);
        ok.then_some(Summary { x, t_x, t })
    }
}

/// The features a client's summary is read from: repeat invoice days, days since the
/// first invoice and since the last.
pub const INPUTS: [&str; 3] = [
    "repeat_invoice_days",
    "days_since_first_invoice",
    "days_since_last_invoice",
];

/// The inputs only this model reads (the learners keep days_since_last_invoice).
pub const OWN_INPUTS: [&str; 2] = ["repeat_invoice_days", "days_since_first_invoice"];

/// Days in an average month: the model's time runs in months, like the horizons.
const MONTH_DAYS: f64 = 30.436875;

impl Summary {
    /// From the values of [`INPUTS`]; None without an invoice or with values that
    /// contradict each other.
    pub fn of_features(repeat: f64, since_first: f64, since_last: f64) -> Option<Summary> {
        Summary::checked(
            repeat,
            (since_first - since_last) / MONTH_DAYS,
            since_first / MONTH_DAYS,
        )
    }
}

fn ln_gamma(v: f64) -> f64 {
    libm::lgamma(v)
}

impl BgNbd {
    /// Finite and positive.
    pub fn is_valid(&self) -> bool {
        [self.r, self.alpha, self.a, self.b]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
    }

    /// The log-likelihood of one client's history.
    pub fn log_likelihood(&self, s: Summary) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let Summary { x, t_x, t } = s;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + t).ln();
        if x > 0.0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + t_x).ln();
            let m = a3.max(a4);
            a1 + a2 + m + ((a3 - m).exp() + (a4 - m).exp()).ln()
        } else {
            a1 + a2 + a3
        }
    }

    /// The chance the client is still alive at T (Fader, Hardie & Lee 2008, note 021).
    pub fn p_alive(&self, s: Summary) -> f64 {
        if s.x <= 0.0 {
            return 1.0;
        }
        let BgNbd { r, alpha, a, b } = *self;
        let odds_dead = (a / (b + s.x - 1.0)) * ((alpha + s.t) / (alpha + s.t_x)).powf(r + s.x);
        1.0 / (1.0 + odds_dead)
    }

    /// The chance of no purchase in the `months` after T: dead, or alive and quiet (the
    /// rate's posterior given alive is gamma(r + x, α + T)).
    pub fn p_quiet(&self, s: Summary, months: f64) -> f64 {
        let quiet_if_alive = ((self.alpha + s.t) / (self.alpha + s.t + months)).powf(self.r + s.x);
        (1.0 - self.p_alive(s) * (1.0 - quiet_if_alive)).clamp(0.0, 1.0)
    }

    /// Fits the parameters to weighted histories by maximum likelihood.
    pub fn fit(data: &[(Summary, f64)]) -> Result<BgNbd, String> {
        let total: f64 = data.iter().map(|(_, w)| w).sum();
        if data.is_empty() || total <= 0.0 {
            return Err("BG/NBD: no histories to fit".into());
        }
        if !data.iter().any(|(s, w)| s.x > 0.0 && *w > 0.0) {
            return Err("BG/NBD: no client bought twice".into());
        }
        let cost = |theta: &[f64; 4]| -> f64 {
            let m = BgNbd {
                r: theta[0].exp(),
                alpha: theta[1].exp(),
                a: theta[2].exp(),
                b: theta[3].exp(),
            };
            let ll: f64 = data.iter().map(|(s, w)| w * m.log_likelihood(*s)).sum();
            let v = -ll / total;
            if v.is_finite() {
                v
            } else {
                f64::INFINITY
            }
        };
        // Start from r = 1, α = the mean time observed, a = b = 1; restart from the best
        // point until a restart no longer improves (Nelder–Mead can stall on a ridge).
        let mean_t = data.iter().map(|(s, w)| s.t * w).sum::<f64>() / total;
        let (best, best_f) = minimise(&cost, [0.0, mean_t.max(1e-3).ln(), 0.0, 0.0]);
        let m = BgNbd {
            r: best[0].exp(),
            alpha: best[1].exp(),
            a: best[2].exp(),
            b: best[3].exp(),
        };
        if m.is_valid() && best_f.is_finite() {
            Ok(m)
        } else {
            Err("BG/NBD: the likelihood has no finite maximum on these histories".into())
        }
    }
}

/// Nelder–Mead from `start`, restarted from the best point until a restart no longer
/// improves (it can stall on a ridge): the best point and its value.
pub(super) fn minimise<const N: usize>(f: &dyn Fn(&[f64; N]) -> f64, start: [f64; N]) -> ([f64; N], f64) {
    let mut best = start;
    let mut best_f = f(&best);
    for _ in 0..6 {
        let (theta, v) = nelder_mead(f, best, 0.5, 4000);
        let gain = best_f - v;
        if v < best_f {
            best = theta;
            best_f = v;
        }
        if gain.abs() < 1e-12 {
            break;
        }
    }
    (best, best_f)
}

/// Nelder–Mead minimisation from `start` with an initial simplex of `step` along each axis.
fn nelder_mead<const N: usize>(
    f: &dyn Fn(&[f64; N]) -> f64,
    start: [f64; N],
    step: f64,
    max_iter: usize,
) -> ([f64; N], f64) {
    let mut pts: Vec<([f64; N], f64)> = (0..=N)
        .map(|i| {
            let mut p = start;
            if i > 0 {
                p[i - 1] += step;
            }
            (p, f(&p))
        })
        .collect();
    for _ in 0..max_iter {
        pts.sort_by(|x, y| x.1.total_cmp(&y.1));
        let (lo, hi) = (pts[0].1, pts[N].1);
        if (hi - lo).abs() <= 1e-12 * (1.0 + lo.abs()) {
            break;
        }
        let mut centre = [0.0; N];
        for (p, _) in &pts[..N] {
            for j in 0..N {
                centre[j] += p[j] / N as f64;
            }
        }
        let along = |t: f64| -> [f64; N] {
            let mut q = [0.0; N];
            for j in 0..N {
                q[j] = centre[j] + t * (pts[N].0[j] - centre[j]);
            }
            q
        };
        let reflected = along(-1.0);
        let fr = f(&reflected);
        if fr < pts[0].1 {
            let expanded = along(-2.0);
            let fe = f(&expanded);
            pts[N] = if fe < fr { (expanded, fe) } else { (reflected, fr) };
        } else if fr < pts[N - 1].1 {
            pts[N] = (reflected, fr);
        } else {
            let contracted = if fr < pts[N].1 { along(-0.5) } else { along(0.5) };
            let fc = f(&contracted);
            if fc < pts[N].1.min(fr) {
                pts[N] = (contracted, fc);
            } else {
                let best = pts[0].0;
                for (p, v) in pts.iter_mut().skip(1) {
                    for j in 0..N {
                        p[j] = best[j] + 0.5 * (p[j] - best[j]);
                    }
                    *v = f(p);
                }
            }
        }
    }
    pts.sort_by(|x, y| x.1.total_cmp(&y.1));
    pts[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Beta, Distribution, Exp, Gamma};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// Purchase histories drawn from the model itself over `t` time units each.
    fn simulate(m: BgNbd, n: usize, t: f64, seed: u64) -> Vec<(Summary, f64)> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let lambda = Gamma::new(m.r, 1.0 / m.alpha).unwrap();
        let p = Beta::new(m.a, m.b).unwrap();
        (0..n)
            .map(|_| {
                let (l, p) = (lambda.sample(&mut rng), p.sample(&mut rng));
                let gap = Exp::new(l).unwrap();
                let (mut now, mut x, mut t_x) = (0.0, 0.0, 0.0);
                loop {
                    now += gap.sample(&mut rng);
                    if now > t {
                        break;
                    }
                    x += 1.0;
                    t_x = now;
                    if rng.gen::<f64>() < p {
                        break;
                    }
                }
                (Summary { x, t_x, t }, 1.0)
            })
            .collect()
    }

    #[test]
    fn it_recovers_the_parameters_it_simulated_from() {
        let truth = BgNbd {
            r: 0.5,
            alpha: 3.0,
            a: 0.8,
            b: 2.5,
        };
        let data = simulate(truth, 20_000, 36.0, 7);
        let fit = BgNbd::fit(&data).unwrap();
        let ll = |m: &BgNbd| data.iter().map(|(s, _)| m.log_likelihood(*s)).sum::<f64>();
        assert!(ll(&fit) >= ll(&truth) - 1e-6, "{fit:?}");
        for (got, want) in [
            (fit.r, truth.r),
            (fit.alpha, truth.alpha),
            (fit.a, truth.a),
            (fit.b, truth.b),
        ] {
            assert!((got / want - 1.0).abs() < 0.2, "{fit:?} against {truth:?}");
        }
    }

    /// The CDNOW sample of the paper (2,357 customers, 39 weeks, as shipped with the
    /// lifetimes package): the paper reports r = 0.243, α = 4.414, a = 0.793, b = 2.426
    /// and a log-likelihood of −9582.4.
    #[test]
    fn it_reproduces_the_papers_cdnow_fit() {
        let text = include_str!("../../../tests/btyd/cdnow_customers_summary.csv");
        let data: Vec<(Summary, f64)> = text
            .lines()
            .skip(1)
            .map(|l| {
                let v: Vec<f64> = l.split(',').skip(1).map(|x| x.parse().unwrap()).collect();
                (Summary::checked(v[0], v[1], v[2]).unwrap(), 1.0)
            })
            .collect();
        assert_eq!(data.len(), 2357);
        let fit = BgNbd::fit(&data).unwrap();
        let ll: f64 = data.iter().map(|(s, _)| fit.log_likelihood(*s)).sum();
        assert!((ll - -9582.4).abs() < 0.1, "{ll}");
        for (got, want) in [(fit.r, 0.243), (fit.alpha, 4.414), (fit.a, 0.793), (fit.b, 2.426)] {
            assert!((got - want).abs() < 0.002 * want.max(1.0), "{fit:?}");
        }
        // P(alive) of the first customer (x = 2, t_x = 30.43, T = 38.86) as lifetimes gives it.
        let s = Summary::checked(2.0, 30.43, 38.86).unwrap();
        let p = fit.p_alive(s);
        assert!((p - 0.7266).abs() < 0.001, "{p}");
        // Quiet for no time is certain; quiet for ever is being dead.
        assert!((fit.p_quiet(s, 0.0) - 1.0).abs() < 1e-12);
        assert!((fit.p_quiet(s, 1e9) - (1.0 - p)).abs() < 1e-3);
        assert!(fit.p_quiet(s, 3.0) > fit.p_quiet(s, 12.0));
    }

    #[test]
    fn bad_histories_are_refused() {
        assert!(Summary::checked(0.0, 1.0, 5.0).is_none());
        assert!(Summary::checked(2.0, 6.0, 5.0).is_none());
        assert!(Summary::checked(f64::NAN, 0.0, 5.0).is_none());
        let once = vec![(Summary::checked(0.0, 0.0, 5.0).unwrap(), 3.0)];
        assert!(BgNbd::fit(&once).unwrap_err().contains("bought twice"));
        assert!(BgNbd::fit(&[]).is_err());
    }
}
