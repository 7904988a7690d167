//! report.html: one self-contained page for the analyst (charts inline as SVG, no
//! network needed), in English or Chinese.

use std::path::Path;

use super::ServicePlan;
use super::{tr, ChartFile, ReportError};
use crate::format::Lang;

/// The default plans, following how firms manage each class: the class, then content,
/// cycle, fee standard and owner team in English and in Chinese.
const PLANS: [(&str, [&str; 4], [&str; 4]); 8] = [
    (
        "high value",
        [
            "Personalised service, a named senior accountant, priority response",
            "monthly review call",
            "premium; keep, do not discount",
            "senior accountants",
        ],
        [
            "个性化服务，指定资深会计，优先响应",
            "每月回访",
            "高端定价，保持不打折",
            "资深会计组",
        ],
    ),
    (
        "medium value",
        [
            "Attention and incentives to grow: offer more services, annual prepay discount",
            "quarterly contact",
            "standard; 5% off for annual prepayment",
            "account managers",
        ],
        [
            "重点关注，激励升级：推荐增值服务，年付优惠",
            "每季度联系",
            "标准价，年付九五折",
            "客户经理组",
        ],
    ),
    (
        "low value",
        [
            "Standard service at low cost to serve; watch for growth",
            "half-yearly check",
            "standard package price",
            "service centre",
        ],
        [
            "标准化服务，控制服务成本，关注成长",
            "每半年检查",
            "标准套餐价",
            "服务中心",
        ],
    ),
    (
        "late payer",
        [
            "Payment reminders before due dates; move to prepayment",
            "monthly",
            "prepayment required after two late invoices",
            "billing team",
        ],
        ["到期前催缴提醒，改为预付费", "每月", "两次逾期后须预付", "收费组"],
    ),
    (
        "high-touch",
        [
            "Self-service guides and a document checklist; review the fee against hours",
            "monthly",
            "add a service fee for extra hours",
            "service centre",
        ],
        [
            "提供自助指南和资料清单，按工时复核收费",
            "每月",
            "超出工时加收服务费",
            "服务中心",
        ],
    ),
    (
        "declining",
        [
            "Retention call: find out why volume is falling before the contract ends",
            "within two weeks",
            "offer a lighter package rather than lose the client",
            "account managers",
        ],
        [
            "挽留回访：在合同到期前了解业务下滑原因",
            "两周内",
            "可提供简化套餐以防流失",
            "客户经理组",
        ],
    ),
    (
        "growing",
        [
            "Offer the services growth needs: general-taxpayer bookkeeping, payroll, tax planning",
            "quarterly",
            "upgrade pricing as volume grows",
            "account managers",
        ],
        [
            "推荐成长所需服务：一般纳税人记账、社保代理、税务筹划",
            "每季度",
            "随业务量升级定价",
            "客户经理组",
        ],
    ),
    (
        "pays on time",
        [
            "Loyalty terms: keep the service smooth, offer multi-year contracts",
            "half-yearly",
            "loyalty discount at renewal",
            "service centre",
        ],
        [
            "忠诚客户政策：保持服务顺畅，提供多年合同",
            "每半年",
            "续约忠诚优惠",
            "服务中心",
        ],
    ),
];

/// The default plans in the report's language.
pub fn default_plans(lang: Lang) -> Vec<ServicePlan> {
    PLANS
        .iter()
        .map(|(applies, en, zh)| {
            let t = if lang == Lang::Zh { zh } else { en };
            ServicePlan {
                applies_to: (*applies).into(),
                content: t[0].into(),
                cycle: t[1].into(),
                fee_standard: t[2].into(),
                owner_team: t[3].into(),
            }
        })
        .collect()
}

/// The plans that apply to a segment: by id first, else by words in its name.
pub fn plans_for<'a>(plans: &'a [ServicePlan], id: &str, name_en: &str) -> Vec<&'a ServicePlan> {
    let by_id: Vec<&ServicePlan> = plans.iter().filter(|p| p.applies_to == id).collect();
    if !by_id.is_empty() {
        return by_id;
    }
    plans
        .iter()
        .filter(|p| name_en.contains(p.applies_to.as_str()))
        .collect()
}

/// One segment's card.
#[derive(Debug, Clone)]
pub struct Card {
    pub id: String,
    pub name: String,
    pub name_en: String,
    pub size: usize,
    pub client_share: f64,
    pub revenue_share: f64,
    pub margin: Option<f64>,
    /// (feature, median in original units).
    pub medians: Vec<(String, f64)>,
    /// Plain-words differences from the rest.
    pub distinct: Vec<String>,
    pub rules: Vec<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct Page {
    pub lang: Lang,
    pub run_id: String,
    pub seed: u64,
    pub snapshot: String,
    pub created_at: String,
    /// (table, file, input, accepted, rejected).
    pub rows: Vec<(String, String, usize, usize, usize)>,
    pub top_rejects: String,
    pub disabled: Vec<(String, String)>,
    /// (k, silhouette, CH, DB, chosen).
    pub k_table: Vec<(usize, f64, f64, f64, bool)>,
    pub value_cards: Vec<Card>,
    pub behaviour_cards: Vec<Card>,
    pub charts: Vec<ChartFile>,
    pub migration: Option<String>,
    /// What the analyst must know about the data (in the page's language).
    pub warnings: Vec<String>,
    /// Sections of further analyses.
    pub sections: Vec<PageSection>,
    pub plans: Vec<ServicePlan>,
}

/// A further analysis's section, in the page's language.
#[derive(Debug, Clone)]
pub struct PageSection {
    pub id: String,
    pub title: String,
    pub lines: Vec<String>,
    /// (caption, header, rows).
    pub tables: Vec<(String, Vec<String>, Vec<Vec<String>>)>,
    pub charts: Vec<ChartFile>,
}

pub use crate::format::{esc, esc_into};

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn inline_svg(dir: &Path, rel: &str) -> String {
    let svg = std::fs::read_to_string(dir.join(rel)).unwrap_or_default();
    // Drop an XML declaration, keep the <svg> element.
    match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => String::new(),
    }
}

fn card_html(c: &Card, l: Lang, plans: &[ServicePlan]) -> String {
    let mut h = format!(
        "<section class=\"card\" id=\"segment-{}\"><h3>{} · {}</h3><p class=\"facts\">{}: {} ({}) · {}: {}",
        esc(&c.id),
        esc(&c.id),
        esc(&c.name),
        tr(l, "clients", "客户数"),
        c.size,
        pct(c.client_share),
        tr(l, "revenue share", "收入占比"),
        pct(c.revenue_share),
    );
    if let Some(m) = c.margin {
        h.push_str(&format!(
            " · {}: {}",
            tr(l, "median contribution margin", "贡献毛利中位数"),
            crate::format::human(m)
        ));
    }
    h.push_str("</p>");
    if !c.distinct.is_empty() {
        h.push_str(&format!("<h4>{}</h4><ul>", tr(l, "What sets it apart", "主要特征")));
        for d in &c.distinct {
            h.push_str(&format!("<li>{}</li>", esc(d)));
        }
        h.push_str("</ul>");
    }
    if !c.rules.is_empty() {
        h.push_str(&format!(
            "<h4>{}</h4><ul class=\"rules\">",
            tr(l, "Decision-tree rules", "决策树规则")
        ));
        for r in &c.rules {
            h.push_str(&format!("<li><code>{}</code></li>", esc(r)));
        }
        h.push_str("</ul>");
    }
    let ps = plans_for(plans, &c.id, &c.name_en);
    if !ps.is_empty() {
        h.push_str(&format!(
            "<h4>{}</h4><table class=\"plan\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            tr(l, "Recommended service plan", "建议服务方案"),
            tr(l, "content", "服务内容"),
            tr(l, "cycle", "周期"),
            tr(l, "fee standard", "收费标准"),
            tr(l, "owner team", "负责团队")
        ));
        for p in ps {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.content),
                esc(&p.cycle),
                esc(&p.fee_standard),
                esc(&p.owner_team)
            ));
        }
        h.push_str("</table>");
    }
    h.push_str(&format!(
        "<details><summary>{}</summary><table class=\"medians\">",
        tr(l, "Medians in original units", "各特征中位数（原始单位）")
    ));
    for (f, v) in &c.medians {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(f),
            crate::format::human(*v)
        ));
    }
    h.push_str("</table></details></section>");
    h
}

const STYLE: &str = "body{font-family:'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif;margin:2em auto;max-width:1200px;color:#222}\
h1{font-size:1.6em}h2{border-bottom:2px solid #1f77b4;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
th{background:#f0f4f8}.card{border:1px solid #ddd;border-radius:6px;padding:1em;margin:1em 0;background:#fcfcfc}\
.facts{color:#555}.chart svg{max-width:100%;height:auto}code{font-size:.9em}";

/// Writes `report.html` into the run folder (charts are read from `dir`).
pub fn write_html(dir: &Path, p: &Page) -> Result<(), ReportError> {
    let l = p.lang;
    let mut h = String::new();
    h.push_str(&format!(
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        if l == Lang::Zh { "zh-CN" } else { "en" },
        esc(&format!("clientseg {}", p.run_id))
    ));
    h.push_str(&format!(
        "<h1>{} · {}</h1>",
        tr(l, "Client segmentation", "客户分类报告"),
        esc(&p.run_id)
    ));
    h.push_str(&format!(
        "<p>{}: {} · {}: {} · {}: {}</p>",
        tr(l, "snapshot date", "数据截止日"),
        esc(&p.snapshot),
        tr(l, "seed", "随机种子"),
        p.seed,
        tr(l, "created", "生成时间"),
        esc(&p.created_at)
    ));
    data_quality(&mut h, p);
    segmentations(&mut h, dir, p);
    for sec in &p.sections {
        analysis_section(&mut h, dir, sec);
    }
    h.push_str(&format!("<section id=\"charts\"><h2>{}</h2>", tr(l, "Charts", "图表")));
    for c in p
        .charts
        .iter()
        .filter(|c| !c.svg.contains("k_selection") && !c.svg.contains("transitions_"))
    {
        h.push_str(&format!(
            "<figure class=\"chart\">{}<figcaption>{}</figcaption></figure>",
            inline_svg(dir, &c.svg),
            esc(&c.title)
        ));
    }
    h.push_str("</section>");
    migration(&mut h, dir, p);
    h.push_str("</body></html>\n");
    std::fs::write(dir.join("report.html"), h).map_err(|e| ReportError::Draw {
        file: dir.join("report.html"),
        message: e.to_string(),
    })
}

/// What was read and rejected, the warnings, and the features switched off.
fn data_quality(h: &mut String, p: &Page) {
    let l = p.lang;
    h.push_str(&format!("<section id=\"data-quality\"><h2>{}</h2><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        tr(l, "Run summary and data quality", "运行概况与数据质量"),
        tr(l, "table", "数据表"), tr(l, "file", "文件"), tr(l, "rows", "行数"), tr(l, "accepted", "接受"), tr(l, "rejected", "拒绝")));
    for (t, f, i, a, r) in &p.rows {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{i}</td><td>{a}</td><td>{r}</td></tr>",
            esc(t),
            esc(f)
        ));
    }
    h.push_str("</table>");
    h.push_str(&format!(
        "<p>{}: {}</p>",
        tr(
            l,
            "Most common problems (see rejects.csv)",
            "最常见问题（详见 rejects.csv）"
        ),
        esc(&p.top_rejects)
    ));
    if !p.warnings.is_empty() {
        h.push_str(&format!(
            "<div class=\"warnings\"><p><strong>{}</strong></p><ul>",
            tr(l, "Read this before trusting the results", "使用结果前请注意")
        ));
        for w in &p.warnings {
            h.push_str(&format!("<li>{}</li>", esc(w)));
        }
        h.push_str("</ul></div>");
    }
    if !p.disabled.is_empty() {
        h.push_str(&format!(
            "<p>{}:</p><ul>",
            tr(l, "Features switched off for lack of input", "因缺少数据而停用的特征")
        ));
        for (f, why) in &p.disabled {
            h.push_str(&format!("<li>{}: {}</li>", esc(f), esc(why)));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");
}

/// The choice of k, the value tiers with their table, and the behaviour segments' cards.
fn segmentations(h: &mut String, dir: &Path, p: &Page) {
    let l = p.lang;
    if !p.k_table.is_empty() {
        h.push_str(&format!(
            "<section id=\"k-selection\"><h2>{}</h2><table><tr><th>k</th><th>{}</th><th>Calinski-Harabasz</th><th>Davies-Bouldin</th></tr>",
            tr(l, "How many behaviour segments", "行为分群数量的选择"),
            tr(l, "silhouette", "轮廓系数")
        ));
        for (k, s, ch, db, chosen) in &p.k_table {
            let mark = if *chosen { " ✔" } else { "" };
            h.push_str(&format!(
                "<tr><td>{k}{mark}</td><td>{s:.3}</td><td>{ch:.1}</td><td>{db:.3}</td></tr>"
            ));
        }
        h.push_str("</table>");
        if let Some(c) = p.charts.iter().find(|c| c.svg.contains("k_selection")) {
            h.push_str(&format!("<div class=\"chart\">{}</div>", inline_svg(dir, &c.svg)));
        }
        h.push_str("</section>");
    }

    h.push_str(&format!("<section id=\"value-tiers\"><h2>{}</h2><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        tr(l, "Value tiers", "价值分层"), tr(l, "tier", "层级"), tr(l, "clients", "客户数"), tr(l, "share", "占比"),
        tr(l, "revenue share", "收入占比"), tr(l, "median contribution margin", "贡献毛利中位数")));
    for c in &p.value_cards {
        h.push_str(&format!(
            "<tr><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.id),
            esc(&c.name),
            c.size,
            pct(c.client_share),
            pct(c.revenue_share),
            c.margin.map(crate::format::human).unwrap_or_else(|| "-".into())
        ));
    }
    h.push_str("</table>");
    for c in &p.value_cards {
        h.push_str(&card_html(c, l, &p.plans));
    }
    h.push_str("</section>");

    if !p.behaviour_cards.is_empty() {
        h.push_str(&format!(
            "<section id=\"segments\"><h2>{}</h2>",
            tr(l, "Behaviour segments", "行为分群")
        ));
        for c in &p.behaviour_cards {
            h.push_str(&card_html(c, l, &p.plans));
        }
        h.push_str("</section>");
    }
}

/// One further analysis's section: its lines, tables and charts.
fn analysis_section(h: &mut String, dir: &Path, sec: &PageSection) {
    h.push_str(&format!(
        "<section id=\"{}\"><h2>{}</h2><ul>",
        esc(&sec.id),
        esc(&sec.title)
    ));
    for line in &sec.lines {
        h.push_str(&format!("<li>{}</li>", esc(line)));
    }
    h.push_str("</ul>");
    for (caption, header, rows) in &sec.tables {
        h.push_str(&format!(
            "<div class=\"scroll\"><table><caption>{}</caption><tr>",
            esc(caption)
        ));
        for c in header {
            h.push_str(&format!("<th>{}</th>", esc(c)));
        }
        h.push_str("</tr>");
        for row in rows {
            h.push_str("<tr>");
            for c in row {
                h.push_str(&format!("<td>{}</td>", esc(c)));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table></div>");
    }
    for c in &sec.charts {
        h.push_str(&format!(
            "<figure class=\"chart\">{}<figcaption>{}</figcaption></figure>",
            inline_svg(dir, &c.svg),
            esc(&c.title)
        ));
    }
    h.push_str("</section>");
}

/// Clients' moves since the previous run, or that there was none.
fn migration(h: &mut String, dir: &Path, p: &Page) {
    let l = p.lang;
    h.push_str(&format!(
        "<section id=\"migration\"><h2>{}</h2>",
        tr(l, "Migration since the previous run", "与上次相比的客户迁移")
    ));
    match &p.migration {
        Some(text) => {
            h.push_str(&format!("<p>{}</p>", esc(text)));
            for c in p.charts.iter().filter(|c| c.svg.contains("transitions_")) {
                h.push_str(&format!("<figure class=\"chart\">{}</figure>", inline_svg(dir, &c.svg)));
            }
        }
        None => h.push_str(&format!(
            "<p>{}</p>",
            tr(l, "No previous run to compare with.", "没有可比较的上次运行。")
        )),
    }
    h.push_str("</section>");
}
