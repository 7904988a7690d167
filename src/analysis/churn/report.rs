//! The churn section of the report: how the risk was validated (table, calibration and
//! lift charts), retention curves by value tier and behaviour segment, risk by tier ×
//! segment, and the clients with the most revenue at risk.

use super::backtest::{Backtest, PSI_FLAG};
use super::metrics::kaplan_meier;
use super::metrics::RESAMPLES;
use super::{
    band_of, band_words, values, BandBasis, Fit, HorizonValidation, ModelKind, SavedChurn, Thresholds, CLEARLY_BETTER,
    MIN_TEST_LEAVERS, MIN_TEST_ROWS,
};
use crate::analysis::{AnalysisError, ChartSeries, Context, LineChart, Section, SectionTable, SegmentKind};
use crate::format::{human, Lang};

pub(super) struct View<'a> {
    pub ctx: &'a Context<'a>,
    pub saved: &'a SavedChurn,
    pub fit: Option<&'a Fit>,
    /// Risk of the first horizon per client (None: left).
    pub first: &'a [Option<f64>],
    pub at_risk: &'a [Option<f64>],
    pub bands: &'a [&'a str],
    pub thresholds: &'a Thresholds,
    /// Sums of the value ahead over 12 and 36 months.
    pub value_ahead: &'a [f64],
    pub drivers: &'a [String],
    pub active: &'a [bool],
    /// Clients counted as gone with a chance of buying again, those likely back, and the
    /// value of those chances (firms without contracts).
    pub win_back: Option<(usize, usize, f64)>,
    /// With contracts: the firm's retention observed and the sBG model fitted to it.
    pub projection: Option<&'a Projection>,
    /// The value tiers and behaviour segments per client, when the run has them.
    pub tiers: Option<Groups>,
    pub segments: Option<Groups>,
}

/// Months the sBG retention curve is drawn to.
pub(super) const PROJECT_MONTHS: u32 = 60;

/// The firm's retention: Kaplan–Meier of every client, and the sBG model fitted to the
/// same months as a client.
pub(super) struct Projection {
    pub observed: Vec<(f64, f64)>,
    pub model: super::sbg::Sbg,
}

impl Projection {
    /// With contracts only: a lapse's months as a client are a guess at when it left.
    pub(super) fn of(table: &crate::features::FeatureTable, active: &[bool]) -> Option<Projection> {
        let obs: Vec<(u32, bool)> = tenures(table, active, false).into_iter().flatten().collect();
        let model = super::sbg::Sbg::fit(&obs).ok()?;
        let mut observed = kaplan_meier(&obs);
        observed.retain(|p| p.0 <= f64::from(PROJECT_MONTHS));
        Some(Projection { observed, model })
    }

    /// (months, observed share still a client if the history shows it, projected share).
    pub(super) fn at(&self, months: &[u32]) -> Vec<(u32, Option<f64>, f64)> {
        months
            .iter()
            .map(|&m| {
                let seen = self
                    .observed
                    .iter()
                    .rev()
                    .find(|p| p.0 <= f64::from(m))
                    .filter(|_| self.observed.last().is_some_and(|l| l.0 >= f64::from(m)))
                    .map(|p| p.1);
                (m, seen, self.model.survival(f64::from(m)))
            })
            .collect()
    }
}

/// A segmentation per client: its labels, and (id, English name, Chinese name) per segment.
pub(super) type Groups = (Vec<usize>, Vec<(String, String, String)>);

fn both(s: &str) -> (String, String) {
    (s.to_string(), s.to_string())
}

fn pair(en: &str, zh: &str) -> (String, String) {
    (en.to_string(), zh.to_string())
}

fn opt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

/// "0.762 (0.751–0.773)": a figure with its 95% interval when there is one.
fn with_ci(v: Option<f64>, ci: Option<(f64, f64)>, digits: usize) -> String {
    match (v, ci) {
        (Some(v), Some((lo, hi))) => format!("{v:.digits$} ({lo:.digits$}–{hi:.digits$})"),
        (Some(v), None) => format!("{v:.digits$}"),
        (None, _) => "–".into(),
    }
}

pub(super) fn skipped_section(why: &str, why_zh: &str) -> Section {
    Section {
        id: "churn".into(),
        title: pair("Churn risk", "流失风险"),
        lines: vec![(format!("Not computed: {why}."), format!("未计算：{why_zh}。"))],
        tables: Vec::new(),
    }
}

fn validation_table(v: &HorizonValidation) -> SectionTable {
    let mut rows = vec![
        (
            ModelKind::Logistic.label(),
            &v.logistic,
            v.chosen == ModelKind::Logistic,
        ),
        (ModelKind::Boosted.label(), &v.boosted, v.chosen == ModelKind::Boosted),
        (
            ("naive: days since last invoice", "朴素基线：距上次开票天数"),
            &v.recency,
            false,
        ),
        (
            (
                "naive: renewal due or arrears (rule)",
                "朴素基线：临近续约或欠费（规则）",
            ),
            &v.rule,
            false,
        ),
    ];
    if v.bgnbd.is_some() {
        rows.insert(2, (ModelKind::BgNbd.label(), &v.bgnbd, v.chosen == ModelKind::BgNbd));
    }
    let refit = if v.refit_months > 1 && v.test_months.len() > 1 {
        (
            format!(
                "; models refitted every {} test months, recalibrated every month",
                v.refit_months
            ),
            format!("；模型每 {} 个测试月重新训练，每月重新校准", v.refit_months),
        )
    } else {
        (String::new(), String::new())
    };
    // The months whose calibration carried a steady movement of the leaving rate on.
    let carried = v.monthly_carried.iter().filter(|c| **c).count();
    let trend = if carried > 0 {
        (
            format!(
                "; a steady movement of the leaving rate carried on to the month scored in {carried} of {} test months",
                v.monthly_carried.len()
            ),
            format!(
                "；{} 个测试月中有 {carried} 个将流失率的稳定变化延续到预测月",
                v.monthly_carried.len()
            ),
        )
    } else {
        (String::new(), String::new())
    };
    SectionTable {
        caption: (
            format!(
                "Leaving within {} months: rolling-origin validation over {} test months ({}){}{}",
                v.months,
                v.test_months.len(),
                v.test_months.join(", "),
                refit.0,
                trend.0
            ),
            format!(
                "{} 个月内流失：滚动验证，{} 个测试月（{}）{}{}",
                v.months,
                v.test_months.len(),
                v.test_months.join("、"),
                refit.1,
                trend.1
            ),
        ),
        header: vec![
            pair("model", "模型"),
            pair("ROC-AUC (95% interval)", "ROC-AUC（95% 区间）"),
            pair("PR-AUC (95% interval)", "PR-AUC（95% 区间）"),
            pair("Brier score (probabilities only)", "Brier 分数（仅限概率）"),
            pair("precision, top 10%", "前10%精确率"),
            pair("recall, top 10%", "前10%召回率"),
            pair("lift, top 10%", "前10%提升度"),
        ],
        rows: rows
            .iter()
            .filter_map(|(name, s, chosen)| {
                let s = s.as_ref()?;
                let mark = if *chosen { (" (used)", "（采用）") } else { ("", "") };
                Some(vec![
                    (format!("{}{}", name.0, mark.0), format!("{}{}", name.1, mark.1)),
                    both(&with_ci(s.roc_auc, s.roc_auc_ci, 3)),
                    both(&with_ci(s.pr_auc, s.pr_auc_ci, 3)),
                    both(&with_ci(s.brier, s.brier_ci, 4)),
                    both(&format!("{:.1}%", s.precision_top10 * 100.0)),
                    both(&format!("{:.1}%", s.recall_top10 * 100.0)),
                    both(&format!("{:.2}", s.lift_top10)),
                ])
            })
            .collect(),
    }
}

fn calibration_table(v: &HorizonValidation) -> SectionTable {
    SectionTable {
        caption: (
            format!(
                "Calibration, {} months: deciles of predicted risk in the test months",
                v.months
            ),
            format!("{} 个月校准：测试月按预测风险十等分", v.months),
        ),
        header: vec![
            pair("decile", "十分位"),
            pair("clients", "客户数"),
            pair("mean predicted", "平均预测"),
            pair("observed share that left", "实际流失占比"),
            pair("95% interval of the observed", "实际占比的 95% 区间"),
        ],
        rows: v
            .calibration
            .iter()
            .enumerate()
            .map(|(i, b)| {
                vec![
                    both(&(i + 1).to_string()),
                    both(&b.clients.to_string()),
                    both(&format!("{:.1}%", b.mean_predicted * 100.0)),
                    both(&format!("{:.1}%", b.observed * 100.0)),
                    both(
                        &b.observed_ci
                            .map_or("–".into(), |(lo, hi)| format!("{:.1}–{:.1}%", lo * 100.0, hi * 100.0)),
                    ),
                ]
            })
            .collect(),
    }
}

/// Earlier runs' risks against what happened since, and the features that moved.
fn earlier_predictions(b: &Backtest, lines: &mut Vec<(String, String)>, tables: &mut Vec<SectionTable>) {
    if b.checked.is_empty() && b.pending.is_empty() {
        lines.push((
            "Earlier predictions: no earlier run in the output folder has a horizon that has passed yet.".into(),
            "历次预测：输出文件夹中还没有预测期已过的早前运行。".into(),
        ));
    }
    for p in &b.pending {
        lines.push((
            format!(
                "Run {} ({}): its {}-month risks can be checked once the data runs through {}.",
                p.run, p.snapshot, p.horizon, p.known_after
            ),
            format!(
                "运行 {}（{}）：其 {} 个月流失风险要等数据覆盖到 {} 才能检验。",
                p.run, p.snapshot, p.horizon, p.known_after
            ),
        ));
    }
    for why in &b.unreadable {
        lines.push((
            format!("An earlier run was left out: {why}."),
            format!("一个早前运行未纳入检验：{why}。"),
        ));
    }
    if !b.checked.is_empty() {
        let pct = |x: f64| format!("{:.1}%", x * 100.0);
        let cell = |c: &super::backtest::Checked, g: &str| {
            c.groups.iter().find(|x| x.group == g).map_or("–".to_string(), |x| {
                format!("{} / {} ({})", pct(x.mean_predicted), pct(x.observed), x.clients)
            })
        };
        tables.push(SectionTable {
            caption: (
                "Earlier predictions against what happened: mean predicted / share that left (clients)".into(),
                "历次预测与实际：平均预测 / 实际流失占比（客户数）".into(),
            ),
            header: vec![
                pair("run", "运行"),
                pair("month", "月份"),
                pair("horizon", "预测期"),
                pair("all", "全部"),
                pair("high risk", "高风险"),
                pair("medium risk", "中风险"),
                pair("low risk", "低风险"),
                both("ROC-AUC"),
                pair("revenue at risk / of clients who left", "风险收入 / 其中已流失"),
            ],
            rows: b
                .checked
                .iter()
                .map(|c| {
                    let money = match (c.revenue_at_risk, c.revenue_at_risk_left) {
                        (Some(a), Some(l)) => format!("{} / {}", human(a), human(l)),
                        _ => "–".into(),
                    };
                    vec![
                        both(&c.run),
                        both(&c.snapshot),
                        (format!("{} months", c.horizon), format!("{} 个月", c.horizon)),
                        both(&cell(c, "all")),
                        both(&cell(c, "high")),
                        both(&cell(c, "medium")),
                        both(&cell(c, "low")),
                        c.roc_auc.map_or(
                            ("too few to judge".to_string(), "样本太少，无法评判".to_string()),
                            |a| both(&format!("{a:.3}")),
                        ),
                        both(&money),
                    ]
                })
                .collect(),
        });
    }
    if let Some(against) = &b.drift_against {
        let moved: Vec<&super::backtest::Shift> = b.drift.iter().filter(|d| d.flagged).collect();
        lines.push(if moved.is_empty() {
            (
                format!("No feature has shifted since run {against} (population stability index at most {PSI_FLAG})."),
                format!("与运行 {against} 相比，没有特征发生明显偏移（群体稳定性指数不超过 {PSI_FLAG}）。"),
            )
        } else {
            (
                format!(
                    "Features that shifted since run {against} (population stability index above {PSI_FLAG}): {}. The model learnt on the history as it was; check that the shift is real before trusting the risks of clients it touches.",
                    moved.iter().map(|d| format!("{} {:.2}", d.feature, d.psi)).collect::<Vec<_>>().join(", ")
                ),
                format!(
                    "与运行 {against} 相比发生偏移的特征（群体稳定性指数高于 {PSI_FLAG}）：{}。请先确认这些变化属实，再采信受其影响客户的风险。",
                    moved
                        .iter()
                        .map(|d| format!(
                            "{} {:.2}",
                            crate::features::feature_def(&d.feature).map_or(d.feature.clone(), |f| f.display(Lang::Zh).to_string()),
                            d.psi
                        ))
                        .collect::<Vec<_>>()
                        .join("、")
                ),
            )
        });
    }
}

/// This run's bands applied to the test months' predictions: what "high" meant there.
fn band_table(v: &HorizonValidation, t: &Thresholds) -> Option<SectionTable> {
    let k = v.chosen.scores_index();
    let mut per = [(0usize, 0.0, 0usize); 3];
    for (_, scores, left) in &v.rows {
        let b = match band_of(Some(scores[k]), t) {
            "high" => 0,
            "medium" => 1,
            _ => 2,
        };
        per[b].0 += 1;
        per[b].1 += scores[k];
        per[b].2 += usize::from(*left);
    }
    (!v.rows.is_empty()).then(|| SectionTable {
        caption: (
            format!(
                "The bands in the test months ({} months): predicted against what happened",
                v.months
            ),
            format!("测试月中的风险等级（{} 个月）：预测与实际", v.months),
        ),
        header: vec![
            pair("band", "等级"),
            pair("client-months", "客户月"),
            pair("mean predicted", "平均预测"),
            pair("observed share that left", "实际流失占比"),
        ],
        rows: ["high", "medium", "low"]
            .iter()
            .zip(per)
            .filter(|(_, (n, _, _))| *n > 0)
            .map(|(b, (n, p, left))| {
                vec![
                    (band_words(b, Lang::En).to_string(), band_words(b, Lang::Zh).to_string()),
                    both(&n.to_string()),
                    both(&format!("{:.1}%", p / n as f64 * 100.0)),
                    both(&format!("{:.1}%", left as f64 / n as f64 * 100.0)),
                ]
            })
            .collect(),
    })
}

/// Segment ids and names of an earlier segmentation per client, when the run has it.
pub(super) fn groups(ctx: &Context, kind: SegmentKind) -> Result<Option<Groups>, AnalysisError> {
    Ok(ctx.segmentation(kind.as_str())?.map(|s| {
        (
            s.labels.to_vec(),
            s.model
                .segments
                .iter()
                .map(|g| (g.id.clone(), g.name_en.clone(), g.name_zh.clone()))
                .collect(),
        )
    }))
}

impl View<'_> {
    fn groups(&self, kind: SegmentKind) -> Option<&Groups> {
        match kind {
            SegmentKind::Value => self.tiers.as_ref(),
            SegmentKind::Behaviour => self.segments.as_ref(),
        }
    }
}

fn by_tier_and_segment(v: &View) -> Option<SectionTable> {
    let (tiers, tier_names) = v.groups(SegmentKind::Value)?;
    let seg = v.groups(SegmentKind::Behaviour);
    let n = v.first.len();
    let mut cells: std::collections::BTreeMap<(usize, usize), (usize, f64, usize, f64)> = Default::default();
    for i in 0..n {
        let Some(p) = v.first[i] else { continue };
        let b = seg.as_ref().and_then(|(l, _)| l.get(i).copied()).unwrap_or(0);
        let Some(&t) = tiers.get(i) else { continue };
        let e = cells.entry((t, b)).or_default();
        e.0 += 1;
        e.1 += p;
        e.2 += usize::from(v.bands[i] == "high");
        e.3 += v.at_risk[i].unwrap_or(0.0);
    }
    let seg_name = |b: usize| match &seg {
        Some((_, names)) => names
            .get(b)
            .map(|(id, en, zh)| (format!("{id} {en}"), format!("{id} {zh}")))
            .unwrap_or_default(),
        None => both("–"),
    };
    Some(SectionTable {
        caption: pair(
            "Risk by value tier and behaviour segment (clients still with the firm)",
            "按价值层级与行为分群的流失风险（在服务客户）",
        ),
        header: vec![
            pair("value tier", "价值层级"),
            pair("behaviour segment", "行为分群"),
            pair("clients", "客户数"),
            pair("mean risk", "平均风险"),
            pair("high risk", "高风险客户"),
            pair("revenue at risk (CNY)", "风险收入（元）"),
        ],
        rows: cells
            .iter()
            .map(|((t, b), (count, sum, high, rev))| {
                let tier = tier_names
                    .get(*t)
                    .map(|(id, en, zh)| (format!("{id} {en}"), format!("{id} {zh}")))
                    .unwrap_or_default();
                vec![
                    tier,
                    seg_name(*b),
                    both(&count.to_string()),
                    both(&format!("{:.1}%", sum / *count as f64 * 100.0)),
                    both(&high.to_string()),
                    both(&human(*rev)),
                ]
            })
            .collect(),
    })
}

/// A text column of the feature table ("" where empty).
fn texts(table: &crate::features::FeatureTable, name: &str) -> Vec<String> {
    table
        .df
        .column(name)
        .ok()
        .and_then(|c| {
            c.str()
                .ok()
                .map(|c| c.iter().map(|s| s.unwrap_or("").to_string()).collect())
        })
        .unwrap_or_default()
}

fn top_clients(v: &View) -> SectionTable {
    let ids = texts(v.ctx.table, "client_id");
    let names = texts(v.ctx.table, "name");
    let tiers = v.groups(SegmentKind::Value);
    let mut order: Vec<usize> = (0..v.at_risk.len()).filter(|&i| v.at_risk[i].is_some()).collect();
    order.sort_by(|&a, &b| {
        v.at_risk[b]
            .unwrap_or(0.0)
            .total_cmp(&v.at_risk[a].unwrap_or(0.0))
            .then(a.cmp(&b))
    });
    order.truncate(20);
    let first_months = v.saved.horizons.first().map_or(3, |h| h.months);
    SectionTable {
        caption: pair(
            "The 20 clients with the most revenue at risk",
            "风险收入最高的 20 个客户",
        ),
        header: vec![
            pair("client", "客户编号"),
            pair("name", "客户名称"),
            pair("value tier", "价值层级"),
            (
                format!("risk, {first_months} months"),
                format!("{first_months}个月流失风险"),
            ),
            pair("revenue at risk (CNY)", "风险收入（元）"),
            pair("what raises the risk", "主要风险因素"),
        ],
        rows: order
            .iter()
            .map(|&i| {
                let tier = tiers
                    .as_ref()
                    .and_then(|(l, n)| l.get(i).and_then(|t| n.get(*t)))
                    .map(|(id, en, zh)| (format!("{id} {en}"), format!("{id} {zh}")))
                    .unwrap_or_default();
                vec![
                    both(ids.get(i).map_or("", |s| s.as_str())),
                    both(names.get(i).map_or("", |s| s.as_str())),
                    tier,
                    both(&v.first[i].map_or("–".into(), |p| format!("{:.1}%", p * 100.0))),
                    both(&human(v.at_risk[i].unwrap_or(0.0))),
                    both(v.drivers.get(i).map_or("", |s| s.as_str())),
                ]
            })
            .collect(),
    }
}

/// What the bands mean in this run, with how many clients each holds.
fn bands_line(v: &View, active: usize, counts: &[(usize, &str)], first_h: i32) -> (String, String) {
    let s = v.saved;
    let t = v.thresholds;
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let basis = match t.by {
        BandBasis::Relative => (
            format!(
                " The bands follow this firm: the average client's risk is {}, and medium / high start at {} / {} times its odds of leaving.",
                pct(t.firm_mean),
                s.bands.0,
                s.bands.1
            ),
            format!(
                "等级按本公司的分布划分：平均客户的流失概率为 {}，中 / 高风险分别从平均流失几率的 {} / {} 倍开始。",
                pct(t.firm_mean),
                s.bands.0,
                s.bands.1
            ),
        ),
        BandBasis::Risk => (
            format!(" The bands are fixed risks; the average client's risk is {}.", pct(t.firm_mean)),
            format!("等级按固定的概率划分；平均客户的流失概率为 {}。", pct(t.firm_mean)),
        ),
    };
    (
        format!(
            "{active} clients are still with the firm: {} by the risk of leaving within {first_h} months (high: {} and up; medium: {} to {}; low: below {}).{}",
            counts.iter().map(|(n, b)| format!("{n} {}", band_words(b, Lang::En))).collect::<Vec<_>>().join(", "),
            pct(t.high_from),
            pct(t.medium_from),
            pct(t.high_from),
            pct(t.medium_from),
            basis.0,
        ),
        format!(
            "在服务客户 {active} 个，按 {first_h} 个月内流失概率分为：{}（高风险：{} 及以上；中风险：{} 至 {}；低风险：低于 {}）。{}",
            counts.iter().map(|(n, b)| format!("{} {n} 个", band_words(b, Lang::Zh))).collect::<Vec<_>>().join("，"),
            pct(t.high_from),
            pct(t.medium_from),
            pct(t.high_from),
            pct(t.medium_from),
            basis.1,
        ),
    )
}

pub(super) fn section(v: &View) -> Section {
    let s = v.saved;
    let def = crate::history::LeaveDefinition::describe(s.definition, s.inactive_months);
    let mut lines = vec![(
        format!("What \"left\" means: {}.", def.0),
        format!("流失的定义：{}。", def.1),
    )];
    let active = v.active.iter().filter(|a| **a).count();
    let counts: Vec<(usize, &str)> = ["high", "medium", "low"]
        .iter()
        .map(|b| (v.bands.iter().filter(|x| **x == *b).count(), *b))
        .collect();
    let first_h = s.horizons.first().map_or(3, |h| h.months);
    lines.push(bands_line(v, active, &counts, first_h));
    if let [v12, v36] = v.value_ahead {
        lines.push((
            format!(
                "Value ahead: the clients still served are expected to bring {} CNY of contribution (fees less cost to serve) over the next 12 months and {} CNY over 36, discounted, if each keeps its present monthly risk of leaving (each client's figures are in the labels).",
                human(*v12),
                human(*v36)
            ),
            format!(
                "未来价值：在服务客户预计在未来12个月带来 {} 元贡献（收费减服务成本），36个月 {} 元（已折现），假设每个客户保持目前的月流失风险（各客户的数值见客户标签表）。",
                human(*v12),
                human(*v36)
            ),
        ));
    }
    if let Some(p) = v.projection {
        let at = p.at(&[12, 24, 36, 60]);
        let words = |zh: bool| {
            at.iter()
                .map(|(m, seen, model)| {
                    let seen = seen.map_or(String::new(), |s| {
                        if zh {
                            format!("，实际 {:.1}%", s * 100.0)
                        } else {
                            format!(", observed {:.1}%", s * 100.0)
                        }
                    });
                    if zh {
                        format!("{m} 个月 {:.1}%{seen}", model * 100.0)
                    } else {
                        format!("{m} months {:.1}%{seen}", model * 100.0)
                    }
                })
                .collect::<Vec<_>>()
        };
        lines.push((
            format!(
                "Retention projected by the shifted-beta-geometric model (each client leaves at a month's end with its own constant chance, beta-distributed over clients: {:.2}% a month on average, polarisation {:.3} where 0 means every client alike and 1 that clients either stay or go at once), fitted to every client's months as a client: {}.",
                p.model.mean() * 100.0,
                p.model.polarisation(),
                words(false).join("; ")
            ),
            format!(
                "按移位贝塔几何（sBG）模型预测的留存（每个客户每月末以各自固定的概率流失，该概率在客户间服从贝塔分布：平均每月 {:.2}%，极化指数 {:.3}，0 表示客户彼此相同，1 表示客户要么一直留下、要么立即离开），由全部客户的合作月数拟合：{}。",
                p.model.mean() * 100.0,
                p.model.polarisation(),
                words(true).join("；")
            ),
        ));
    }
    if let Some((gone, likely, value)) = v.win_back {
        lines.push((
            format!(
                "Win back: of the {gone} clients counted as gone, {likely} have at least a {:.0}% chance of an invoice in the next 12 months by the BG/NBD model of their purchase histories; those chances × each client's fees of the last 12 months come to {} CNY. winback.csv lists them by that value.",
                super::LIKELY_BACK * 100.0,
                human(value)
            ),
            format!(
                "挽回：{gone} 个已流失客户中，按其购买历史的 BG/NBD 模型，有 {likely} 个在未来12个月内再次开票的概率不低于 {:.0}%；这些概率乘以各客户近12个月收费合计 {} 元。可挽回客户表（winback.csv）按此价值排序列出。",
                super::LIKELY_BACK * 100.0,
                human(value)
            ),
        ));
    }
    lines.push((
        "Revenue at risk = the risk of leaving within the longest horizon × fees of the last 12 months. Drivers are the three features that raise a client's risk most against an average client.".into(),
        "风险收入 = 最长预测期内的流失概率 × 近12个月收费。风险因素是与平均客户相比、使该客户流失风险升高最多的三个特征。".into(),
    ));
    let mut tables = Vec::new();
    match v.fit {
        Some(fit) => {
            lines.push((
                format!(
                    "The models learned from {} monthly snapshots over {} months ({} of {} clients' histories), each client's features as of a month's end from rows dated up to then; windows that run past the end of the data are left out, not counted as staying.",
                    fit.snapshot_rows, fit.snapshot_months, v.ctx.history.map_or(0, |h| h.sampled), v.ctx.history.map_or(0, |h| h.clients)
                ),
                format!(
                    "模型从 {} 个月度快照中学习（{} 个月，{} / {} 个客户的历史），每个快照只用截至当月末的数据；观察期超出数据末尾的快照不计入（不视为留存）。",
                    fit.snapshot_rows, fit.snapshot_months, v.ctx.history.map_or(0, |h| h.sampled), v.ctx.history.map_or(0, |h| h.clients)
                ),
            ));
            for val in &fit.validation {
                if let Some((rows, left)) = val.too_few {
                    lines.push((
                        format!(
                            "{} months: too few to judge: {rows} client-months and {left} leavers in the test months (at least {MIN_TEST_ROWS} and {MIN_TEST_LEAVERS} are needed); no quality figure is claimed.",
                            val.months
                        ),
                        format!(
                            "{} 个月：样本太少，无法评判：测试月只有 {rows} 个客户月、{left} 个流失（至少需要 {MIN_TEST_ROWS} 和 {MIN_TEST_LEAVERS}），不报告模型质量。",
                            val.months
                        ),
                    ));
                    continue;
                }
                if let Some(why) = &val.not_validated {
                    lines.push((
                        format!(
                            "{} months: not validated: {why}; no quality figure is claimed.",
                            val.months
                        ),
                        format!("{} 个月：未验证（历史数据太短），不报告模型质量。", val.months),
                    ));
                    continue;
                }
                let (en, zh) = val.chosen.label();
                let (why_en, why_zh) = why_chosen(val);
                lines.push((
                    format!(
                        "{} months: {en} is used{why_en}. ROC-AUC per test month: {}.",
                        val.months,
                        val.monthly_auc.iter().map(|a| opt(*a)).collect::<Vec<_>>().join(", ")
                    ),
                    format!(
                        "{} 个月：采用{zh}{why_zh}。各测试月 ROC-AUC：{}。",
                        val.months,
                        val.monthly_auc.iter().map(|a| opt(*a)).collect::<Vec<_>>().join("、")
                    ),
                ));
                tables.push(validation_table(val));
                tables.push(calibration_table(val));
                if val.months == first_h {
                    tables.extend(band_table(val, v.thresholds));
                }
            }
        }
        None => lines.push((
            "Scored with a saved model; its validation is in the run that fitted it.".into(),
            "使用已保存的模型打分；模型验证结果见拟合该模型的运行。".into(),
        )),
    }
    if let Some(b) = v.fit.and_then(|f| f.backtest.as_ref()) {
        earlier_predictions(b, &mut lines, &mut tables);
    }
    tables.extend(by_tier_and_segment(v));
    tables.push(top_clients(v));
    Section {
        id: "churn".into(),
        title: pair("Churn risk", "流失风险"),
        lines,
        tables,
    }
}

/// Per client of today's table: its months as a client and whether it has left (a client
/// gone by a lapse left after its last invoice or work month); None without a tenure.
pub(super) fn tenures(table: &crate::features::FeatureTable, active: &[bool], lapse: bool) -> Vec<Option<(u32, bool)>> {
    let tenure = values(table, "tenure_months");
    let silent = values(table, "silent_months");
    (0..tenure.len())
        .map(|i| {
            let t = tenure[i];
            if !t.is_finite() {
                return None;
            }
            let left = !active.get(i).copied().unwrap_or(true);
            let t = if left && lapse {
                t - silent.get(i).copied().unwrap_or(0.0).max(0.0)
            } else {
                t
            };
            Some((t.max(0.0).round() as u32, left))
        })
        .collect()
}

/// Survival curves of today's clients by the groups of a segmentation.
fn retention(v: &View, kind: SegmentKind, stem: &str, title: (String, String)) -> Option<LineChart> {
    let (labels, names) = v.groups(kind)?;
    let lapse = v.saved.definition != crate::history::LeaveDefinition::ContractEnd;
    let mut per: Vec<Vec<(u32, bool)>> = vec![Vec::new(); names.len()];
    for (i, o) in tenures(v.ctx.table, v.active, lapse).into_iter().enumerate() {
        if let (Some(o), Some(g)) = (o, labels.get(i).and_then(|&l| per.get_mut(l))) {
            g.push(o);
        }
    }
    let series = per
        .iter()
        .zip(names)
        .filter(|(obs, _)| !obs.is_empty())
        .map(|(obs, (id, en, zh))| {
            let mut km = kaplan_meier(obs);
            km.retain(|p| p.0 <= 120.0);
            ChartSeries {
                name: (format!("{id} {en}"), format!("{id} {zh}")),
                points: km,
                dots: false,
            }
        })
        .collect();
    Some(LineChart {
        stem: stem.into(),
        title,
        x_label: pair("months as a client", "合作月数"),
        y_label: pair("share still a client", "留存比例"),
        series,
        diagonal: false,
        steps: true,
    })
}

pub(super) fn charts(v: &View) -> Vec<LineChart> {
    let mut out = Vec::new();
    if let Some(fit) = v.fit {
        for val in fit.validation.iter().filter(|x| x.not_validated.is_none()) {
            let (en, zh) = val.chosen.label();
            out.push(LineChart {
                stem: format!("churn_calibration_{}m", val.months),
                title: (
                    format!("Calibration, leaving within {} months ({en})", val.months),
                    format!("{} 个月流失概率校准（{zh}）", val.months),
                ),
                x_label: pair("mean predicted risk", "平均预测风险"),
                y_label: pair("observed share that left", "实际流失占比"),
                series: vec![ChartSeries {
                    name: pair("deciles of the test months", "测试月十分位"),
                    points: val.calibration.iter().map(|b| (b.mean_predicted, b.observed)).collect(),
                    dots: false,
                }],
                diagonal: true,
                steps: false,
            });
            out.push(LineChart {
                stem: format!("churn_lift_{}m", val.months),
                title: (
                    format!("Leavers found against clients contacted, {} months", val.months),
                    format!("{} 个月：按风险排序联系客户可覆盖的流失客户", val.months),
                ),
                x_label: pair(
                    "share of clients contacted, riskiest first",
                    "按风险从高到低联系的客户比例",
                ),
                y_label: pair("share of leavers found", "覆盖的流失客户比例"),
                series: val
                    .gains
                    .iter()
                    .map(|(name, pts)| {
                        let (en, zh) = name.split_once('|').unwrap_or((name, name));
                        ChartSeries {
                            name: pair(en, zh),
                            points: pts.clone(),
                            dots: false,
                        }
                    })
                    .collect(),
                diagonal: true,
                steps: false,
            });
        }
    }
    if let Some(p) = v.projection {
        out.push(LineChart {
            stem: "churn_retention_projected".into(),
            title: pair(
                "Retention of all clients: observed (Kaplan–Meier) and projected (shifted-beta-geometric)",
                "全部客户留存：实际（Kaplan–Meier）与预测（sBG 模型）",
            ),
            x_label: pair("months as a client", "合作月数"),
            y_label: pair("share still a client", "留存比例"),
            series: vec![
                ChartSeries {
                    name: pair("observed", "实际"),
                    points: p.observed.clone(),
                    dots: false,
                },
                ChartSeries {
                    name: pair("projected (sBG)", "预测（sBG）"),
                    points: (0..=PROJECT_MONTHS)
                        .map(|t| (f64::from(t), p.model.survival(f64::from(t))))
                        .collect(),
                    dots: false,
                },
            ],
            diagonal: false,
            steps: false,
        });
    }
    out.extend(retention(
        v,
        SegmentKind::Value,
        "churn_retention_tiers",
        pair(
            "Retention by value tier (Kaplan–Meier)",
            "各价值层级客户留存曲线（Kaplan–Meier）",
        ),
    ));
    out.extend(retention(
        v,
        SegmentKind::Behaviour,
        "churn_retention_segments",
        pair(
            "Retention by behaviour segment (Kaplan–Meier)",
            "各行为分群客户留存曲线（Kaplan–Meier）",
        ),
    ));
    out
}

/// Why the horizon's model was chosen, from the paired resamples (empty when the choice was
/// set in the config, or nothing else was validated).
fn why_chosen(val: &HorizonValidation) -> (String, String) {
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let need = pct(CLEARLY_BETTER);
    let of = |k: ModelKind| val.wins_over_logistic.iter().find(|(x, _)| *x == k).map(|(_, s)| *s);
    match (val.chosen, of(val.chosen)) {
        (ModelKind::Logistic, _)
            if !val.wins_over_logistic.is_empty() && val.wins_over_logistic.iter().all(|(_, s)| *s < CLEARLY_BETTER) =>
        {
            let en: Vec<String> = val
                .wins_over_logistic
                .iter()
                .map(|(k, s)| format!("{} in {}", k.label().0, pct(*s)))
                .collect();
            let zh: Vec<String> = val
                .wins_over_logistic
                .iter()
                .map(|(k, s)| format!("{}为 {}", k.label().1, pct(*s)))
                .collect();
            (
                format!(
                    ", the most transparent model: the other candidates ranked the test clients better in too few of the {RESAMPLES} resamples of clients ({}; {need} is needed to replace it)",
                    en.join(", ")
                ),
                format!(
                    "（最易解释的模型）：在 {RESAMPLES} 次客户重抽样中，其他候选模型排序更好的比例不足（{}；需达到 {need} 才替换）",
                    zh.join("，")
                ),
            )
        }
        (k, Some(share)) if k != ModelKind::Logistic && share >= CLEARLY_BETTER => (
            format!(
                ": it ranked the test clients better than the logistic regression in {} of {RESAMPLES} resamples of clients ({need} is needed to leave the more transparent model)",
                pct(share)
            ),
            format!(
                "：在 {RESAMPLES} 次客户重抽样中，有 {} 的情况其排序优于逻辑回归（需达到 {need} 才放弃更易解释的模型）",
                pct(share)
            ),
        ),
        _ => (String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validation_caption_says_in_how_many_months_a_movement_was_carried_on() {
        let mut v = HorizonValidation::empty(6);
        v.test_months = vec!["2025-01".into(), "2025-02".into(), "2025-03".into()];
        v.monthly_carried = vec![true, false, true];
        let (en, zh) = validation_table(&v).caption;
        assert!(
            en.contains("carried on to the month scored in 2 of 3 test months"),
            "{en}"
        );
        assert!(zh.contains("3 个测试月中有 2 个将流失率的稳定变化延续到预测月"), "{zh}");
        // Chinese words only: no identifier or English word in the Chinese caption.
        assert!(!zh.chars().any(|c| c.is_ascii_alphabetic()), "{zh}");
        v.monthly_carried = vec![false; 3];
        let (en, zh) = validation_table(&v).caption;
        assert!(!en.contains("carried") && !zh.contains("延续"), "{en} / {zh}");
    }
}
