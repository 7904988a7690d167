//! What pricing hands on: its label columns, pricing.csv, the headline, the manifest's
//! figures and the report's section.

use std::collections::HashMap;

use polars::prelude::*;

use super::{
    churn_of, declared, fee_chart, flag_words, response_section, round2, text_column, tier_ids, Priced, Pricing,
    PricingParams, Source, MIN_FIT,
};
use crate::analysis::{AnalysisError, Context, Outcome, Section, SectionTable};
use crate::columns::TableName;
use crate::format::{money, Lang};

/// The served clients with what the report lists of them.
struct Listing<'a> {
    rows: Vec<usize>,
    tiers: Vec<String>,
    ids: Vec<String>,
    names: Vec<String>,
    /// Suggested minus current fee (NaN where none is suggested).
    change: Vec<f64>,
    /// Tier id -> its words in both languages.
    tier_words: HashMap<String, (String, String)>,
    r: &'a Priced,
}

/// The counts and sums the headline, manifest and report share.
struct Totals {
    logged: usize,
    estimated: usize,
    default: usize,
    under: usize,
    over: usize,
    held: usize,
    rises: usize,
    yearly: f64,
    /// The yearly rise weighted by each client's chance of staying.
    expected: f64,
    /// Expected gain over 12 months net of the rise's churn: model, pessimistic.
    gains: (f64, f64),
}

impl Totals {
    fn of(l: &Listing, risk: &[f64]) -> Totals {
        let (r, rows, change) = (l.r, &l.rows, &l.change);
        let count = |f: &str| rows.iter().filter(|&&i| r.flag[i] == f).count();
        let rises: Vec<usize> = rows.iter().copied().filter(|&i| change[i] > 0.0).collect();
        let by_source = |s: Source| rows.iter().filter(|&&i| r.source[i] == Some(s)).count();
        Totals {
            logged: by_source(Source::Logged),
            estimated: by_source(Source::Estimated),
            default: by_source(Source::Default),
            under: count("under_priced"),
            over: count("over_served"),
            held: rows
                .iter()
                .filter(|&&i| r.flag[i] == "under_priced" && !(change[i] > 0.0))
                .count(),
            rises: rises.len(),
            yearly: rises.iter().map(|&i| change[i] * 12.0).sum(),
            expected: rises
                .iter()
                .map(|&i| change[i] * 12.0 * (1.0 - if risk[i].is_finite() { risk[i] } else { 0.0 }))
                .sum(),
            gains: rises.iter().fold((0.0, 0.0), |acc, &i| match r.gain.get(i) {
                Some(&(g, h)) if g.is_finite() => (acc.0 + g, acc.1 + h),
                _ => acc,
            }),
        }
    }
}

/// Margin rate rounded to 4 places, for the served clients only.
fn margin_cell(r: &Priced, i: usize) -> Option<f64> {
    let m = r.margin_rate[i];
    (r.source[i].is_some() && m.is_finite()).then(|| (m * 1e4).round() / 1e4)
}

impl Pricing {
    pub(super) fn outcome(&self, ctx: &Context, r: Priced) -> Result<Outcome, AnalysisError> {
        let p = &self.params;
        let n = r.hours.len();
        let mut out = Outcome::empty("pricing");
        out.columns = label_columns(&r);
        out.declared = declared();
        out.table_names = vec![TableName {
            name: "pricing".into(),
            en: "pricing".into(),
            zh: "定价建议".into(),
        }];
        let (bands, risk) = churn_of(ctx)?;
        let tier_words: HashMap<String, (String, String)> = ctx
            .segmentation("value")?
            .map(|s| {
                s.model
                    .segments
                    .iter()
                    .map(|g| (g.id.clone(), (format!("{} {}", g.id, g.name_en), g.name_zh.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let l = Listing {
            rows: (0..n).filter(|&i| r.source[i].is_some()).collect(),
            tiers: tier_ids(ctx)?,
            ids: text_column(ctx.table.df.column("client_id").ok(), n),
            names: text_column(ctx.table.df.column("name").ok(), n),
            change: (0..n)
                .map(|i| {
                    if r.suggested[i].is_finite() {
                        r.suggested[i] - r.fee[i]
                    } else {
                        f64::NAN
                    }
                })
                .collect(),
            tier_words,
            r: &r,
        };
        let accountant = text_column(ctx.table.df.column("accountant").ok(), n);
        if let Ok(df) = pricing_table(&l, &accountant, &bands) {
            out.exports.push(("pricing".into(), df));
        }
        let t = Totals::of(&l, &risk);
        out.headline = Some((
            format!(
                "pricing: {} clients under-priced, {} fee rises suggested worth {} CNY a year ({} CNY weighted by the chance the client stays)",
                t.under,
                t.rises,
                money(t.yearly),
                money(t.expected)
            ),
            format!(
                "定价：{} 个客户定价偏低，建议调价 {} 个，年增收 {} 元（按留存概率加权 {} 元）",
                t.under,
                t.rises,
                money(t.yearly),
                money(t.expected)
            ),
        ));
        out.summary = Some(serde_json::json!({
            "clients": l.rows.len(),
            "hours_source": {"logged": t.logged, "estimated": t.estimated, "rule_of_thumb": t.default},
            "hours_model": r.model,
            "teams_without_hours": r.untimed_teams,
            "target_margin": p.target_margin,
            "max_increase": p.max_increase,
            "fee_step": p.fee_step,
            "peers": p.peers,
            "under_priced": t.under,
            "over_served": t.over,
            "rises": t.rises,
            "held_back": t.held,
            "rise_per_year": t.yearly,
            "rise_per_year_weighted_by_staying": t.expected,
            "fee_response": r.response,
            "expected_gain_12m": t.gains.0,
            "expected_gain_12m_pessimistic": t.gains.1,
        }));
        out.section = Some(section(p, &l, &t));
        out.charts = vec![fee_chart(&r, &l.rows, &l.tiers, &l.tier_words)];
        Ok(out)
    }
}

/// The columns pricing adds to every client's labels.
fn label_columns(r: &Priced) -> Vec<Column> {
    let opt = |v: &[f64]| v.iter().map(|x| round2(*x)).collect::<Vec<_>>();
    vec![
        Column::new("monthly_hours".into(), opt(&r.hours)),
        Column::new(
            "hours_source".into(),
            r.source.iter().map(|s| s.map(|s| s.code())).collect::<Vec<_>>(),
        ),
        Column::new("monthly_cost".into(), opt(&r.cost)),
        Column::new(
            "margin_rate".into(),
            (0..r.hours.len()).map(|i| margin_cell(r, i)).collect::<Vec<_>>(),
        ),
        Column::new(
            "price_flag".into(),
            r.flag.iter().map(|f| (!f.is_empty()).then_some(*f)).collect::<Vec<_>>(),
        ),
        Column::new("suggested_fee".into(), opt(&r.suggested)),
    ]
}

/// pricing.csv: one row per served client.
fn pricing_table(l: &Listing, accountant: &[String], bands: &[String]) -> PolarsResult<DataFrame> {
    let (r, rows) = (l.r, &l.rows);
    let n = r.hours.len();
    let pick_s = |v: &[String]| rows.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
    let pick_f = |v: &[f64]| rows.iter().map(|&i| round2(v[i])).collect::<Vec<_>>();
    let margin: Vec<f64> = (0..n).map(|i| r.fee[i] - r.cost[i]).collect();
    let rate: Vec<f64> = (0..n)
        .map(|i| {
            if r.hours[i] > 0.0 {
                r.fee[i] / r.hours[i]
            } else {
                f64::NAN
            }
        })
        .collect();
    DataFrame::new_infer_height(vec![
        Column::new("client_id".into(), pick_s(&l.ids)),
        Column::new("name".into(), pick_s(&l.names)),
        Column::new("accountant".into(), pick_s(accountant)),
        Column::new("value_tier".into(), pick_s(&l.tiers)),
        Column::new("churn_band".into(), pick_s(bands)),
        Column::new("monthly_fee".into(), pick_f(&r.fee)),
        Column::new("monthly_hours".into(), pick_f(&r.hours)),
        Column::new(
            "hours_source".into(),
            rows.iter().map(|&i| r.source[i].map(|s| s.code())).collect::<Vec<_>>(),
        ),
        Column::new("monthly_cost".into(), pick_f(&r.cost)),
        Column::new("margin".into(), pick_f(&margin)),
        Column::new(
            "margin_rate".into(),
            rows.iter().map(|&i| margin_cell(r, i)).collect::<Vec<_>>(),
        ),
        Column::new("fee_per_hour".into(), pick_f(&rate)),
        Column::new("peer_fee_per_hour".into(), pick_f(&r.peer_rate)),
        Column::new(
            "peers".into(),
            rows.iter().map(|&i| r.peers[i] as u32).collect::<Vec<_>>(),
        ),
        Column::new("price_flag".into(), rows.iter().map(|&i| r.flag[i]).collect::<Vec<_>>()),
        Column::new("suggested_fee".into(), pick_f(&r.suggested)),
        Column::new("fee_change".into(), pick_f(&l.change)),
        Column::new("reason".into(), pick_s(&r.reason)),
    ])
}

fn section(p: &PricingParams, l: &Listing, t: &Totals) -> Section {
    let mut lines = lines(p, l.r, t);
    let (curve_lines, curve_table) = response_section(l.r.response.as_ref(), t.gains);
    lines.extend(curve_lines);
    Section {
        id: "pricing".into(),
        title: ("Cost to serve and pricing".into(), "服务成本与定价".into()),
        lines,
        tables: [Some(margin_table(p, l)), Some(changes_table(l)), curve_table]
            .into_iter()
            .flatten()
            .collect(),
    }
}

/// How hours were found, how good the hours model is, and what pricing suggests.
fn lines(p: &PricingParams, r: &Priced, t: &Totals) -> Vec<(String, String)> {
    let (logged, estimated, default) = (t.logged, t.estimated, t.default);
    let d = &p.default_hours;
    let mut lines = vec![(
        format!(
            "Hours a month: {logged} clients from logged hours, {estimated} estimated from their vouchers, filings, questions and late documents, {default} by the rules of thumb (general taxpayer {} h, small-scale {} h, zero declaration {} h, plus {} h for each month of late documents).",
            d.general, d.small_scale, d.zero_declaration, d.chase
        ),
        format!(
            "月均工时：{logged} 个客户来自工时记录，{estimated} 个按凭证、申报、咨询和资料延迟估算，{default} 个按经验值（一般纳税人 {} 小时、小规模 {} 小时、零申报 {} 小时，资料延迟的月份另加 {} 小时）。",
            d.general, d.small_scale, d.zero_declaration, d.chase
        ),
    )];
    lines.push(match &r.model {
        Some(m) => {
            let (by_en, by_zh) = match m.holdout_by {
                "team" => (format!("{} teams held out in turn", m.holdout_groups), format!("依次留出 {} 个团队", m.holdout_groups)),
                _ => (format!("{} folds of clients held out in turn", m.holdout_groups), format!("依次留出 {} 组客户", m.holdout_groups)),
            };
            let share = m.holdout_mae / m.holdout_mean_hours.max(1e-9) * 100.0;
            (
                format!(
                    "The hours model, fitted on {} clients that log hours, is off by {:.2} hours a month ({share:.0}% of their mean {:.2} hours, bias {:+.2}) on {} clients it did not see ({by_en}); the rules of thumb are off by {:.2}.",
                    m.fitted_on, m.holdout_mae, m.holdout_mean_hours, m.holdout_bias, m.holdout_clients, m.holdout_mae_rule_of_thumb
                ),
                format!(
                    "工时模型基于 {} 个有工时记录的客户拟合，在 {} 个未参与拟合的客户上（{by_zh}）平均误差 {:.2} 小时/月（为其平均 {:.2} 小时的 {share:.0}%，偏差 {:+.2}）；经验值的误差为 {:.2} 小时。",
                    m.fitted_on, m.holdout_clients, m.holdout_mae, m.holdout_mean_hours, m.holdout_bias, m.holdout_mae_rule_of_thumb
                ),
            )
        }
        None => (
            format!("Too few clients log hours (fewer than {MIN_FIT}) to fit an hours model; the rules of thumb are used."),
            format!("有工时记录的客户少于 {MIN_FIT} 个，无法拟合工时模型，使用经验值。"),
        ),
    });
    if !r.untimed_teams.is_empty() {
        let list = r
            .untimed_teams
            .iter()
            .map(|(t, c)| format!("{t} ({c})"))
            .collect::<Vec<_>>()
            .join(", ");
        lines.push((
            format!("Teams that log no hours, whose clients' hours and costs are estimated: {list}. Their error is the held-out error above, not measured on them."),
            format!("以下团队没有工时记录，其客户的工时与成本为估算值：{list}。其误差参照上面的留出误差，无法在这些客户上直接检验。"),
        ));
    }
    let (under, over, held) = (t.under, t.over, t.held);
    lines.push((
        format!(
            "{under} clients are under-priced (margin below {:.0}%, or a fee per hour more than {:.0}% below that of their {} nearest peers), {over} over-served. Suggested rises, at most +{:.0}% and in steps of {} CNY, add {} CNY a year, {} CNY weighted by each client's chance of staying; {held} rises are held back for churn risk.",
            p.target_margin * 100.0,
            p.rate_tolerance * 100.0,
            p.peers,
            p.max_increase * 100.0,
            p.fee_step,
            money(t.yearly),
            money(t.expected)
        ),
        format!(
            "{under} 个客户定价偏低（毛利率低于 {:.0}%，或每工时收费比最接近的 {} 个同类客户低 {:.0}% 以上），{over} 个服务超量。建议调价每次不超过 +{:.0}%，以 {} 元为档，年增收 {} 元，按留存概率加权 {} 元；{held} 个因流失风险暂缓。",
            p.target_margin * 100.0,
            p.peers,
            p.rate_tolerance * 100.0,
            p.max_increase * 100.0,
            p.fee_step,
            money(t.yearly),
            money(t.expected)
        ),
    ));
    lines
}

/// Margin rate by value tier: spread and share below target.
fn margin_table(p: &PricingParams, l: &Listing) -> SectionTable {
    let (r, rows, tiers) = (l.r, &l.rows, &l.tiers);
    let mut tier_names: Vec<String> = rows.iter().map(|&i| tiers[i].clone()).collect();
    tier_names.sort();
    tier_names.dedup();
    let quantile = |v: &mut Vec<f64>, q: f64| -> f64 {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n => v[((n - 1) as f64 * q).round() as usize],
        }
    };
    let pct = |v: f64| {
        if v.is_finite() {
            format!("{:.0}%", v * 100.0)
        } else {
            "-".into()
        }
    };
    let mut by_tier = Vec::new();
    for t in &tier_names {
        let mut m: Vec<f64> = rows
            .iter()
            .filter(|&&i| &tiers[i] == t && r.margin_rate[i].is_finite())
            .map(|&i| r.margin_rate[i])
            .collect();
        let below = m.iter().filter(|v| **v < p.target_margin).count();
        let size = m.len();
        let (tier_en, tier_zh) = l.tier_words.get(t).cloned().unwrap_or_else(|| (t.clone(), t.clone()));
        let cells = [
            String::new(),
            size.to_string(),
            pct(quantile(&mut m, 0.1)),
            pct(quantile(&mut m, 0.5)),
            pct(quantile(&mut m, 0.9)),
            pct(below as f64 / size.max(1) as f64),
        ];
        let mut row: Vec<(String, String)> = cells.iter().map(|c| (c.clone(), c.clone())).collect();
        if let Some(first) = row.first_mut() {
            *first = (tier_en, tier_zh);
        }
        by_tier.push(row);
    }
    SectionTable {
        caption: ("Margin rate by value tier".into(), "各价值层级的毛利率".into()),
        header: vec![
            ("tier".into(), "价值层级".into()),
            ("clients".into(), "客户数".into()),
            ("10th percentile".into(), "10%分位".into()),
            ("median".into(), "中位数".into()),
            ("90th percentile".into(), "90%分位".into()),
            ("below target".into(), "低于目标占比".into()),
        ],
        rows: by_tier,
    }
}

/// The 20 largest suggested changes.
fn changes_table(l: &Listing) -> SectionTable {
    let (r, change, ids) = (l.r, &l.change, &l.ids);
    let mut top: Vec<usize> = l
        .rows
        .iter()
        .copied()
        .filter(|&i| r.flag[i] == "under_priced")
        .collect();
    top.sort_by(|&a, &b| {
        let ca = if change[a].is_finite() { change[a] } else { 0.0 };
        let cb = if change[b].is_finite() { change[b] } else { 0.0 };
        cb.total_cmp(&ca).then(ids[a].cmp(&ids[b]))
    });
    top.truncate(20);
    let same = |s: String| (s.clone(), s);
    SectionTable {
        caption: (
            "Suggested fee changes (the 20 largest)".into(),
            "建议调价（前20个）".into(),
        ),
        header: vec![
            ("client".into(), "客户".into()),
            ("name".into(), "名称".into()),
            ("fee".into(), "月费".into()),
            ("hours".into(), "工时".into()),
            ("suggested".into(), "建议月费".into()),
            ("flag".into(), "判断".into()),
            ("reason".into(), "原因".into()),
        ],
        rows: top
            .iter()
            .map(|&i| {
                let s = if r.suggested[i].is_finite() {
                    format!("{:.0}", r.suggested[i])
                } else {
                    "-".into()
                };
                vec![
                    same(ids[i].clone()),
                    same(l.names[i].clone()),
                    same(format!("{:.0}", r.fee[i])),
                    same(format!("{:.1}", r.hours[i])),
                    same(s),
                    (
                        flag_words(r.flag[i], Lang::En).into(),
                        flag_words(r.flag[i], Lang::Zh).into(),
                    ),
                    same(r.reason[i].clone()),
                ]
            })
            .collect(),
    }
}
