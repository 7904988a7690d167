//! Per client: hours, cost, margin, peer rate, and the fee to suggest with its reasons.

use super::response::{self, Response};
use super::{
    churn_of, features_of, fit_hours, monthly_fee, peer_medians, predict, rise_within, staff_grades, staff_teams,
    text_column, tier_ids, untimed, HoursModel, Logged, Priced, PricingParams, Source, WORKLOAD,
};
use crate::analysis::{AnalysisError, Context};
use crate::format::Lang;
use crate::history::column_f64;

/// Works out hours, cost, margin, peers and the suggested fee of every served client.
pub fn price(p: &PricingParams, ctx: &Context) -> Result<Priced, AnalysisError> {
    let t = ctx.table;
    let n = t.df.height();
    let served: Vec<bool> = ctx.served.map(|s| s.to_vec()).unwrap_or_else(|| vec![true; n]);
    let fee = monthly_fee(t);
    let taxpayer = text_column(t.df.column("taxpayer_type").ok(), n);
    let client_type = text_column(t.df.column("client_type").ok(), n);
    let accountant = text_column(t.df.column("accountant").ok(), n);
    let h = hours_of(p, ctx, &served, &taxpayer, &accountant);
    let grades = staff_grades(ctx);
    let rate_of = |i: usize| -> f64 {
        match (&p.by_grade, grades.get(&accountant[i])) {
            (Some(g), Some(grade)) => match grade.as_str() {
                "junior" => g.junior,
                "lead" => g.lead,
                _ => g.senior,
            },
            _ => p.hourly_cost,
        }
    };
    let cost: Vec<f64> = (0..n).map(|i| h.hours[i] * rate_of(i)).collect();
    let margin_rate: Vec<f64> = (0..n)
        .map(|i| {
            if fee[i] > 0.0 {
                (fee[i] - cost[i]) / fee[i]
            } else {
                f64::NAN
            }
        })
        .collect();
    let (peer_rate, peers) = peer_rates(p, &served, &fee, &h.hours, &taxpayer, &client_type);

    let (bands, risk) = churn_of(ctx)?;
    let resp = Response::read(ctx.table("churn", "fee_response")?);
    let tiers = tier_ids(ctx)?;
    let mut gain = vec![(f64::NAN, f64::NAN); n];
    let mut flag = vec![""; n];
    let mut suggested = vec![f64::NAN; n];
    let mut reason = vec![String::new(); n];
    for i in (0..n).filter(|&i| served[i] && fee[i] > 0.0) {
        let facts = Facts {
            fee: fee[i],
            hours: h.hours[i],
            expected: h.expected[i],
            logged: h.source[i] == Some(Source::Logged),
            cost: cost[i],
            margin_rate: margin_rate[i],
            peer_rate: peer_rate[i],
            peers: peers[i],
            top_tier: tiers[i] == "V1",
            band: bands[i].as_str(),
            risk: risk[i],
        };
        let j = judge(p, &facts, resp.as_ref());
        flag[i] = j.flag;
        if let Some(s) = j.suggested {
            suggested[i] = s;
        }
        gain[i] = j.gain;
        reason[i] = j.words.joined(ctx.lang);
    }
    Ok(Priced {
        hours: h.hours,
        source: h.source,
        cost,
        fee,
        margin_rate,
        peer_rate,
        peers,
        flag,
        suggested,
        reason,
        model: h.model,
        untimed_teams: h.untimed_teams,
        response: resp,
        gain,
    })
}

/// Hours a month per client: logged where there are some, else the workload model's
/// estimate, else the default by taxpayer type.
struct Hours {
    hours: Vec<f64>,
    source: Vec<Option<Source>>,
    /// What the workload model expects, for every client it can read.
    expected: Vec<f64>,
    model: Option<HoursModel>,
    untimed_teams: Vec<(String, usize)>,
}

fn hours_of(p: &PricingParams, ctx: &Context, served: &[bool], taxpayer: &[String], accountant: &[String]) -> Hours {
    let t = ctx.table;
    let n = t.df.height();
    let logged = column_f64(t, "hours_per_month");
    let x: Vec<Vec<f64>> = WORKLOAD.iter().map(|f| column_f64(t, f)).collect();
    let general: Vec<bool> = taxpayer.iter().map(|v| v == "general").collect();
    let d = &p.default_hours;
    let rule = |i: usize| -> f64 {
        let vouchers = x[0][i];
        let base = if general[i] {
            d.general
        } else if vouchers.is_finite() && vouchers < 1.0 {
            d.zero_declaration
        } else {
            d.small_scale
        };
        let late = x[3][i];
        base + if late.is_finite() { late * d.chase } else { 0.0 }
    };
    let (team_of, team_names) = staff_teams(ctx);
    let team: Vec<Option<u32>> = {
        use rayon::prelude::*;
        accountant
            .par_iter()
            .map(|a| team_of.get(a.as_str()).copied())
            .collect()
    };
    let rows: Vec<Logged> = (0..n)
        .filter(|&i| served[i] && logged[i].is_finite())
        .filter_map(|i| {
            features_of(&x, &general, i).map(|row| Logged {
                row,
                hours: logged[i],
                rule: rule(i),
                team: team[i],
            })
        })
        .collect();
    let untimed_teams = untimed(
        (0..n)
            .filter(|&i| served[i])
            .map(|i| (team[i], logged[i].is_finite() && logged[i] > 0.0)),
        &team_names,
    );
    let model = fit_hours(&rows, ctx.seed);
    let mut hours = vec![f64::NAN; n];
    let mut source = vec![None; n];
    let mut expected = vec![f64::NAN; n];
    for i in (0..n).filter(|&i| served[i]) {
        let est = model
            .as_ref()
            .and_then(|m| features_of(&x, &general, i).map(|r| predict(&m.weights, &r)));
        if let Some(e) = est {
            expected[i] = e;
        }
        let (h, s) = if logged[i].is_finite() && logged[i] > 0.0 {
            (logged[i], Source::Logged)
        } else if let Some(e) = est {
            (e, Source::Estimated)
        } else {
            (rule(i), Source::Default)
        };
        hours[i] = h;
        source[i] = Some(s);
    }
    Hours {
        hours,
        source,
        expected,
        model,
        untimed_teams,
    }
}

/// Peer groups: same taxpayer and client type, nearest in hours a month. Per client the
/// peers' median fee per hour and how many peers there were.
fn peer_rates(
    p: &PricingParams,
    served: &[bool],
    fee: &[f64],
    hours: &[f64],
    taxpayer: &[String],
    client_type: &[String],
) -> (Vec<f64>, Vec<usize>) {
    use rayon::prelude::*;
    let n = fee.len();
    let mut groups: std::collections::BTreeMap<(String, String), Vec<(usize, f64, f64)>> = Default::default();
    for i in (0..n).filter(|&i| served[i] && fee[i] > 0.0 && hours[i] > 0.0) {
        groups
            .entry((taxpayer[i].clone(), client_type[i].clone()))
            .or_default()
            .push((i, hours[i], fee[i] / hours[i]));
    }
    let mut peer_rate = vec![f64::NAN; n];
    let mut peers = vec![0usize; n];
    let found: Vec<Vec<(usize, f64, usize)>> = groups
        .into_par_iter()
        .map(|(_, mut m)| {
            m.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            peer_medians(&m, p.peers)
        })
        .collect();
    for (i, r, k) in found.into_iter().flatten() {
        peer_rate[i] = r;
        peers[i] = k;
    }
    (peer_rate, peers)
}

/// What pricing knows of one client with a fee.
struct Facts<'a> {
    fee: f64,
    hours: f64,
    expected: f64,
    logged: bool,
    cost: f64,
    margin_rate: f64,
    peer_rate: f64,
    peers: usize,
    /// In the top value tier.
    top_tier: bool,
    band: &'a str,
    risk: f64,
}

/// A reason in both languages, joined in the run's at the end.
#[derive(Default)]
struct Words {
    en: Vec<String>,
    zh: Vec<String>,
}

impl Words {
    fn push(&mut self, en: impl Into<String>, zh: impl Into<String>) {
        self.en.push(en.into());
        self.zh.push(zh.into());
    }

    fn joined(&self, lang: Lang) -> String {
        match lang {
            Lang::En => self.en.join("; "),
            Lang::Zh => self.zh.join("；"),
        }
    }
}

struct Judged {
    flag: &'static str,
    suggested: Option<f64>,
    gain: (f64, f64),
    words: Words,
}

/// Under-priced (thin margin or cheap against peers), over-served (more hours than its
/// workload explains) or ok; for an under-priced one, the fee to suggest.
fn judge(p: &PricingParams, c: &Facts, resp: Option<&Response>) -> Judged {
    let own_rate = c.fee / c.hours;
    let thin = c.margin_rate < p.target_margin;
    let cheap = c.peers >= 5 && own_rate < (1.0 - p.rate_tolerance) * c.peer_rate;
    let over = c.logged && c.expected.is_finite() && c.hours > 1.5 * c.expected + 0.5;
    let mut words = Words::default();
    if thin {
        let (m, t) = (c.margin_rate * 100.0, p.target_margin * 100.0);
        words.push(
            format!("margin {m:.0}% is below the {t:.0}% target"),
            format!("毛利率 {m:.0}% 低于目标 {t:.0}%"),
        );
    }
    if cheap {
        words.push(
            format!("pays {:.0} CNY an hour, peers {:.0}", own_rate, c.peer_rate),
            format!("每工时收费 {:.0} 元，同类客户 {:.0} 元", own_rate, c.peer_rate),
        );
    }
    if over {
        words.push(
            format!(
                "{:.1} hours a month where its workload explains {:.1}",
                c.hours, c.expected
            ),
            format!("每月 {:.1} 小时，按业务量应约 {:.1} 小时", c.hours, c.expected),
        );
    }
    let mut out = Judged {
        flag: if thin || cheap {
            "under_priced"
        } else if over {
            "over_served"
        } else {
            "ok"
        },
        suggested: None,
        gain: (f64::NAN, f64::NAN),
        words,
    };
    if out.flag == "under_priced" {
        (out.suggested, out.gain) = suggest(p, c, resp, &mut out.words);
    }
    out
}

/// The rise for an under-priced client: up to its peers' rate or the target margin,
/// capped, held back or halved by churn risk, and weighed against the chance the rise
/// drives the client away.
fn suggest(p: &PricingParams, c: &Facts, resp: Option<&Response>, words: &mut Words) -> (Option<f64>, (f64, f64)) {
    let fee = c.fee;
    let by_peers = if c.peer_rate.is_finite() {
        c.peer_rate * c.hours
    } else {
        0.0
    };
    let by_margin = c.cost / (1.0 - p.target_margin).max(0.01);
    let target = by_peers.max(by_margin);
    let cap = fee * (1.0 + p.max_increase);
    let mut new = rise_within(fee, target, cap, p.fee_step);
    if target > cap + 1e-9 {
        let m = p.max_increase * 100.0;
        words.push(format!("rise capped at +{m:.0}%"), format!("涨幅以 {m:.0}% 为上限"));
    }
    if c.top_tier && c.band == "high" {
        words.push(
            "rise held back: a high-value client at high churn risk",
            "暂缓调价：高价值客户且流失风险高",
        );
        new = None;
    } else if c.band == "high" || (c.top_tier && c.band == "medium") {
        // Half the rise, never rounded away to none.
        new = new.and_then(|n| rise_within(fee, fee + (n - fee) / 2.0, n, p.fee_step));
        words.push("rise halved: churn risk", "调价减半：有流失风险");
    } else if new.is_none() {
        words.push(
            "no rise suggested: less than 1 CNY of room under the cap",
            "未建议调价：上限内空间不足 1 元",
        );
    }
    let mut gain = (f64::NAN, f64::NAN);
    if let (Some(top), Some(r), true) = (new, resp, c.risk.is_finite()) {
        let candidates: Vec<f64> = (1..=6)
            .filter_map(|k| rise_within(fee, fee + (top - fee) * k as f64 / 6.0, top, p.fee_step))
            .collect();
        match response::best(fee, &candidates, c.risk, r) {
            Some((best, g, g_high)) => {
                if best + 1e-9 < top {
                    words.push(
                        format!("rise kept to {best:.0}: a larger one is expected to lose more in clients leaving than it adds"),
                        format!("调价控制在 {best:.0} 元：更大涨幅预计因客户流失而得不偿失"),
                    );
                }
                new = Some(best);
                gain = (g, g_high);
            }
            None => {
                words.push(
                    "rise held back: expected to lose more in clients leaving than it adds",
                    "暂缓调价：预计客户流失的损失大于调价收益",
                );
                new = None;
            }
        }
    }
    (new, gain)
}
