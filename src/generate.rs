//! A generator of realistic client histories for a Chinese bookkeeping agency, with
//! planted behaviour segments and a planted value order. The truth goes to `truth.csv`,
//! which the pipeline never reads; tests compare what the pipeline finds against it.
//!
//! Levels follow the domain notes: small-scale taxpayers pay about 200-350 CNY a month,
//! general taxpayers 500-1,500, zero-declaration shells 100-200; vouchers 10-50 and
//! 50-500 a month; filings monthly or quarterly; spring (annual reconciliation by 31 May,
//! annual report by 30 June) adds work and one-off invoices.

use std::path::Path;

use chrono::{Datelike, Months, NaiveDate};
use polars::prelude::*;
use rand::Rng;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use thiserror::Error;

use crate::schema::Table;

#[derive(Debug, Error)]
pub enum GenerateError {
    #[error("--clients must be at least 50 (got {0})")]
    TooFewClients(usize),
    #[error("--months must be between 13 and 120 (got {0})")]
    Months(usize),
    #[error("--dirty must be between 0 and 0.2 (got {0})")]
    Dirty(f64),
    #[error("--changed must be between 0 and 1 (got {0})")]
    Changed(f64),
    #[error("--hourly-cost must be between 1 and 10000 CNY (got {0})")]
    HourlyCost(f64),
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

#[derive(Debug, Clone)]
pub struct GenerateParams {
    pub clients: usize,
    pub months: usize,
    pub seed: u64,
    /// Last day of the generated history.
    pub end: NaiveDate,
    /// Share of billing and activity rows made faulty, as hand-kept exports are.
    pub dirty: f64,
    /// Chinese headers and dates (2024年1月5日), as a Chinese firm's export looks.
    pub chinese: bool,
    /// Share of clients whose behaviour changes to another planted segment (to test
    /// migration): the same seed with and without it gives the same firm otherwise.
    pub changed: f64,
    /// Write contract_end into the archive (firms without contract dates do not).
    pub contract_dates: bool,
    /// Accountants on the staff list (default: one per 80 clients, at least 4).
    pub staff: Option<usize>,
    /// How fees are set against the work.
    pub fees: Fees,
    /// The firm's cost of an hour, which the fees are set against.
    pub hourly_cost: f64,
    /// Teams (of ten accountants, from the first) that keep no time sheets; they
    /// specialise in general taxpayers, so their clients differ from the others.
    pub untimed_teams: usize,
}

/// How the generated fees relate to the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fees {
    /// A fee by tier that covers the work 2.5 times over, and a planted 8% of clients at
    /// 60-100% of their cost: under-pricing as a gap.
    #[default]
    Planted,
    /// Negotiated: a margin per client drawn from a continuous spread around 42% (sd 18
    /// points), at least 100 CNY a month; under-pricing is a margin below 30%.
    Negotiated,
}

/// The margin a negotiated firm aims for (pricing.target_margin's default): the truth of
/// "under-priced" and of the fair fee.
pub const TARGET_MARGIN: f64 = 0.30;

/// Share of clients whose fee is planted below what their workload costs.
pub const UNDERPRICED_SHARE: f64 = 0.08;
/// Clients whose accountant logs no hours at all, and months left unlogged by the others.
const NO_HOURS_SHARE: f64 = 0.08;
const MISSING_HOURS_MONTHS: f64 = 0.03;
/// Cost of an hour (features.hourly_cost's default), the default of `--hourly-cost`.
pub const DEFAULT_HOURLY_COST: f64 = 60.0;

/// The generated staff list: names, grades, skills, capacity, team; and how likely each
/// is to be handed a new client (uneven, as hand assignment is).
struct Roster {
    names: Vec<String>,
    grade: Vec<&'static str>,
    general: Vec<bool>,
    international: Vec<bool>,
    capacity: Vec<f64>,
    team: Vec<String>,
    /// Keeps no time sheet.
    untimed: Vec<bool>,
    /// Cumulative pick weights per pool: any, general-taxpayer, international, senior.
    pools: [Vec<(f64, usize)>; 4],
}

const SURNAMES: [&str; 24] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马",
    "罗", "梁", "宋", "郑", "谢",
];
const GIVEN: [&str; 30] = [
    "芳", "娜", "伟", "洋", "静", "丽", "敏", "磊", "婷", "刚", "慧", "悦", "强", "军", "艳", "杰", "涛", "明", "超",
    "霞", "平", "辉", "鑫", "宇", "佳", "琳", "晨", "欣", "浩", "倩",
];

impl Roster {
    fn new(n: usize, seed: u64, untimed_teams: usize) -> Roster {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x57AF_F00D);
        let combos = SURNAMES.len() * GIVEN.len();
        let mut r = Roster {
            names: Vec::with_capacity(n),
            grade: Vec::with_capacity(n),
            general: Vec::with_capacity(n),
            international: Vec::with_capacity(n),
            capacity: Vec::with_capacity(n),
            team: Vec::with_capacity(n),
            untimed: Vec::with_capacity(n),
            pools: Default::default(),
        };
        let mut weight = Vec::with_capacity(n);
        for k in 0..n {
            let base = format!(
                "{}{}",
                SURNAMES[k % SURNAMES.len()],
                GIVEN[(k / SURNAMES.len()) % GIVEN.len()]
            );
            r.names.push(if k < combos {
                base
            } else {
                format!("{base}{}", k / combos + 1)
            });
            // Each team of ten has its lead; the others are mostly juniors and seniors.
            let grade = match (k % 10, rng.gen_range(0..20)) {
                (0, _) => "lead",
                (_, 0..=9) => "junior",
                (_, 10..=17) => "senior",
                _ => "lead",
            };
            r.grade.push(grade);
            r.general.push(grade != "junior" || rng.gen_bool(0.3));
            r.international.push(rng.gen_bool(0.25));
            r.capacity.push(if rng.gen_bool(0.1) { 120.0 } else { 160.0 });
            r.team.push(format!("第{}组", k / 10 + 1));
            // Some are handed far more than others.
            weight.push((0.45 * normal(&mut rng)).exp());
            // Teams without time sheets take general taxpayers, and more of them.
            let untimed = k / 10 < untimed_teams;
            r.untimed.push(untimed);
            if untimed {
                r.general[k] = true;
                weight[k] *= 3.0;
            }
        }
        let cumulative = |keep: &dyn Fn(usize) -> bool| {
            let mut acc = 0.0;
            (0..n)
                .filter(|&k| keep(k))
                .map(|k| {
                    acc += weight[k];
                    (acc, k)
                })
                .collect::<Vec<_>>()
        };
        r.pools = [
            cumulative(&|_| true),
            cumulative(&|k| r.general[k]),
            cumulative(&|k| r.international[k]),
            cumulative(&|k| r.grade[k] != "junior"),
        ];
        r
    }

    /// An accountant for a client: mostly one allowed to serve it, not always.
    fn pick(&self, rng: &mut impl Rng, general: bool, international: bool, top: bool) -> usize {
        let pool = if international && rng.gen_bool(0.9) {
            2
        } else if general && rng.gen_bool(0.96) {
            1
        } else if top && rng.gen_bool(0.9) {
            3
        } else {
            0
        };
        let p = match self.pools[pool].is_empty() {
            true => &self.pools[0],
            false => &self.pools[pool],
        };
        let total = p.last().map_or(0.0, |x| x.0);
        let u = rng.gen::<f64>() * total;
        let at = p.partition_point(|x| x.0 < u).min(p.len().saturating_sub(1));
        p.get(at).map_or(0, |x| x.1)
    }
}

/// Clients up to which `truth_hazard.csv` (one row per client and month) is written.
pub const HAZARD_FILE_MAX_CLIENTS: usize = 200_000;

/// The planted churn hazard: the chance of leaving in a month, from what the data shows
/// at the end of the month before. Coefficients on the log-odds scale.
struct HazardState {
    arrears_months: f64,
    late_docs_3m: u32,
    ticket_spike: bool,
    fee_raised_recently: bool,
    accountant_changed_recently: bool,
    renewal_month: bool,
}

fn hazard(seg: usize, tier: usize, st: &HazardState) -> f64 {
    let mut z = -5.8;
    z += [0.0, 0.3, 0.2, 1.0, -0.2][seg];
    z += [-0.4, 0.0, 0.3][tier];
    z += 0.6 * st.arrears_months.min(3.0);
    z += 0.45 * st.late_docs_3m as f64;
    z += if st.ticket_spike { 0.9 } else { 0.0 };
    z += if st.fee_raised_recently { 1.0 } else { 0.0 };
    z += if st.accountant_changed_recently { 0.9 } else { 0.0 };
    z += if st.renewal_month { 1.4 } else { 0.0 };
    1.0 / (1.0 + (-z).exp())
}

fn month_no(d: NaiveDate) -> i32 {
    d.year() * 12 + d.month() as i32
}

/// The planted behaviour segments, in truth.csv's words.
pub const PLANTED: [&str; 5] = ["punctual", "late_payer", "high_touch", "declining", "growing"];
const PLANTED_SHARE: [f64; 5] = [0.35, 0.2, 0.15, 0.15, 0.15];
/// Planted value tiers, best first.
pub const PLANTED_VALUE: [&str; 3] = ["high", "medium", "low"];
const VALUE_SHARE: [f64; 3] = [0.2, 0.45, 0.35];

const INDUSTRIES: [&str; 8] = [
    "制造业",
    "批发和零售业",
    "住宿和餐饮业",
    "信息传输、软件和信息技术服务业",
    "租赁和商务服务业",
    "建筑业",
    "交通运输、仓储和邮政业",
    "科学研究和技术服务业",
];
const PLACES: [(&str, &str); 10] = [
    ("浙江省", "杭州市"),
    ("浙江省", "宁波市"),
    ("江苏省", "苏州市"),
    ("江苏省", "南京市"),
    ("广东省", "深圳市"),
    ("广东省", "广州市"),
    ("上海市", "上海市"),
    ("北京市", "北京市"),
    ("四川省", "成都市"),
    ("湖北省", "武汉市"),
];
const TRADE_NAMES: [&str; 16] = [
    "恒信", "鼎盛", "华泰", "瑞丰", "金源", "宏达", "新锐", "佳禾", "东方", "汇通", "启明", "安泰", "博远", "众诚",
    "嘉和", "天成",
];
const ACCOUNTANTS: [&str; 12] = [
    "王芳", "李娜", "张伟", "刘洋", "陈静", "杨丽", "赵敏", "黄磊", "周婷", "吴刚", "徐慧", "孙悦",
];

/// Behaviour of a planted segment: chance of paying late, days late, chance of not paying,
/// questions a month, chance of late documents in a month.
fn behaviour_of(seg: usize) -> (f64, (i64, i64), f64, f64, f64) {
    match seg {
        0 => (0.02, (1, 10), 0.0, 0.3, 0.03),
        1 => (0.85, (20, 90), 0.15, 1.0, 0.12),
        2 => (0.08, (1, 10), 0.0, 6.0, 0.5),
        3 => (0.3, (5, 30), 0.02, 1.0, 0.2),
        _ => (0.05, (1, 10), 0.0, 2.5, 0.08),
    }
}

fn pick<T: Copy>(rng: &mut impl Rng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

fn weighted(rng: &mut impl Rng, shares: &[f64]) -> usize {
    let mut u = rng.gen::<f64>() * shares.iter().sum::<f64>();
    for (i, s) in shares.iter().enumerate() {
        if u < *s {
            return i;
        }
        u -= s;
    }
    shares.len() - 1
}

fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.gen_range(1e-12..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn poisson(rng: &mut impl Rng, lambda: f64) -> u32 {
    if lambda > 30.0 {
        return (lambda + lambda.sqrt() * normal(rng)).round().max(0.0) as u32;
    }
    let l = (-lambda).exp();
    let (mut k, mut p) = (0u32, 1.0);
    loop {
        p *= rng.gen::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Column buffers of one table.
#[derive(Default)]
struct Buf {
    cols: Vec<(String, Vec<Option<String>>)>,
}

impl Buf {
    fn new(names: &[&str]) -> Buf {
        Buf {
            cols: names.iter().map(|n| (n.to_string(), Vec::new())).collect(),
        }
    }
    fn push(&mut self, row: Vec<Option<String>>) {
        for (c, v) in self.cols.iter_mut().zip(row) {
            c.1.push(v);
        }
    }
    /// Sets one cell of an existing row.
    fn set(&mut self, row: usize, column: &str, value: Option<String>) {
        if let Some((_, c)) = self.cols.iter_mut().find(|(n, _)| n == column) {
            if let Some(v) = c.get_mut(row) {
                *v = value;
            }
        }
    }

    fn len(&self) -> usize {
        self.cols.first().map_or(0, |c| c.1.len())
    }
    fn frame(self, headers: &dyn Fn(&str) -> String) -> PolarsResult<DataFrame> {
        DataFrame::new_infer_height(
            self.cols
                .into_iter()
                .map(|(n, v)| Column::new(headers(&n).into(), v))
                .collect(),
        )
    }
}

/// Chinese headers used with `--zh`; `examples/clientseg-zh.toml` maps them back.
pub fn chinese_header(name: &str) -> String {
    crate::format::column_zh(name).unwrap_or(name).to_string()
}

struct Writer {
    chinese: bool,
}

impl Writer {
    fn date(&self, d: NaiveDate) -> String {
        if self.chinese {
            format!("{}年{}月{}日", d.year(), d.month(), d.day())
        } else {
            d.format("%Y-%m-%d").to_string()
        }
    }
    fn month(&self, d: NaiveDate) -> String {
        if self.chinese {
            format!("{}年{}月", d.year(), d.month())
        } else {
            d.format("%Y-%m").to_string()
        }
    }
}

fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn add_months(d: NaiveDate, n: i32) -> NaiveDate {
    if n >= 0 {
        d.checked_add_months(Months::new(n as u32)).unwrap_or(d)
    } else {
        d.checked_sub_months(Months::new((-n) as u32)).unwrap_or(d)
    }
}

/// Summary of what was generated.
#[derive(Debug, Clone)]
pub struct Generated {
    pub clients: usize,
    pub billing_rows: usize,
    pub activity_rows: usize,
    pub dirty_rows: usize,
}

/// Writes clients, billing, activity and truth tables into `out`.
pub fn generate(p: &GenerateParams, out: &Path) -> Result<Generated, GenerateError> {
    if p.clients < 50 {
        return Err(GenerateError::TooFewClients(p.clients));
    }
    if !(13..=120).contains(&p.months) {
        return Err(GenerateError::Months(p.months));
    }
    if !(0.0..=0.2).contains(&p.dirty) {
        return Err(GenerateError::Dirty(p.dirty));
    }
    if !(0.0..=1.0).contains(&p.changed) {
        return Err(GenerateError::Changed(p.changed));
    }
    if !(1.0..=10_000.0).contains(&p.hourly_cost) {
        return Err(GenerateError::HourlyCost(p.hourly_cost));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    let w = Writer { chinese: p.chinese };
    let last_month = month_start(p.end);
    let first_month = add_months(last_month, -(p.months as i32 - 1));

    // The canonical layout of each table, in the order the rows below are pushed.
    let mut clients = Buf::new(Table::Clients.columns());
    let mut billing = Buf::new(Table::Billing.columns());
    let mut activity = Buf::new(Table::Activity.columns());
    let mut contacts = Buf::new(Table::Contacts.columns());
    let mut truth = Buf::new(&[
        "client_id",
        "segment",
        "value_tier",
        "value_score",
        "churned",
        "left_month",
        "mean_hazard",
        "changed_from",
    ]);
    truth.cols.push(("underpriced".into(), Vec::new()));
    truth.cols.push(("expected_hours".into(), Vec::new()));
    truth.cols.push(("current_hours".into(), Vec::new()));
    truth.cols.push(("true_margin".into(), Vec::new()));
    truth.cols.push(("fair_fee".into(), Vec::new()));
    let n_staff = p.staff.unwrap_or((p.clients / 80).max(4)).max(1);
    let roster = Roster::new(n_staff, p.seed, p.untimed_teams);
    let write_hazards = p.clients <= HAZARD_FILE_MAX_CLIENTS;
    let mut hazards = Buf::new(&["client_id", "month", "hazard", "risk_3m", "risk_6m"]);
    let s = |v: &str| Some(v.to_string());

    for i in 0..p.clients {
        let id = format!("C{:06}", i + 1);
        // Each client has its own random stream, so changing one client changes no other.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64 + 1));
        let mut seg = weighted(&mut rng, &PLANTED_SHARE);
        // The fee was agreed for the behaviour the client had when it joined.
        let joined_as = seg;
        let mut change_rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0xC4A2_6E0D ^ ((i as u64) << 20));
        let mut changed_from = None;
        if p.changed > 0.0 && change_rng.gen_bool(p.changed) {
            changed_from = Some(PLANTED[seg]);
            seg = (seg + change_rng.gen_range(1..PLANTED.len())) % PLANTED.len();
        }
        let tier = weighted(&mut rng, &VALUE_SHARE);

        // Archive: who the client is follows from the planted value tier.
        let (client_type, taxpayer, fee, base_vouchers, n_extra) = match tier {
            0 => (
                "enterprise",
                "general",
                rng.gen_range(600.0..1500.0),
                rng.gen_range(80.0..300.0),
                rng.gen_range(2..5),
            ),
            1 => {
                let ct = if rng.gen_bool(0.8) {
                    "enterprise"
                } else {
                    "individual_business"
                };
                (
                    ct,
                    "small_scale",
                    rng.gen_range(220.0..350.0),
                    rng.gen_range(15.0..50.0),
                    rng.gen_range(1..3),
                )
            }
            _ => {
                let ct = match rng.gen_range(0..10) {
                    0..=4 => "enterprise",
                    5..=8 => "individual_business",
                    _ => "person",
                };
                (
                    ct,
                    "small_scale",
                    rng.gen_range(100.0..200.0),
                    rng.gen_range(5.0..12.0),
                    rng.gen_range(0..2),
                )
            }
        };
        // Behaviour parameters of the planted segment.
        let (pay_late_p, late_days, unpaid_p, ticket_rate, late_doc_p) = behaviour_of(seg);
        let (_, _, _, joined_tickets, joined_late) = behaviour_of(joined_as);
        // What a month of this client takes, on average (the hours formula below), and a
        // fee that covers it 2.5 times over, except for the planted under-priced clients.
        let filings_mean = if taxpayer == "general" { 3.0 } else { 20.0 / 12.0 }
            + if client_type == "enterprise" { 1.0 / 12.0 } else { 0.0 };
        let expected_hours =
            base_vouchers / 60.0 + filings_mean * 0.2 + joined_tickets * 0.2 + joined_late * 0.7 + 0.125;
        let mut pr_rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0x9121_CEDD ^ ((i as u64) << 23));
        let cost = expected_hours * p.hourly_cost;
        let (fee, planted_underpriced) = match p.fees {
            Fees::Planted => {
                let underpriced = pr_rng.gen_bool(UNDERPRICED_SHARE);
                let fee = if underpriced {
                    cost * pr_rng.gen_range(0.6..1.0)
                } else {
                    f64::max(fee, cost * 2.5)
                };
                (((fee / 10.0f64).round() * 10.0).max(30.0), underpriced)
            }
            Fees::Negotiated => {
                let margin = (0.42 + 0.18 * normal(&mut pr_rng)).clamp(-0.6, 0.85);
                let fee = ((cost / (1.0 - margin) / 10.0).round() * 10.0).max(100.0);
                (fee, false)
            }
        };
        let (province, city) = pick(&mut rng, &PLACES);
        let industry = pick(&mut rng, &INDUSTRIES);
        let employees = match taxpayer {
            "general" => rng.gen_range(20..300),
            _ if tier == 2 => rng.gen_range(0..5),
            _ => rng.gen_range(3..40),
        };
        let revenue = match taxpayer {
            "general" => rng.gen_range(5e6..8e7),
            _ if tier == 2 => rng.gen_range(0.0..3e5),
            _ => rng.gen_range(3e5..5e6),
        };
        let mut services = vec!["bookkeeping", "tax_filing"];
        let extras = ["annual_report", "payroll", "audit_support", "tax_planning"];
        for e in extras.iter().take(n_extra) {
            services.push(e);
        }
        // Tenure: most clients predate the history, some join during it.
        let start = if rng.gen_bool(0.7) {
            add_months(first_month, -rng.gen_range(1..60))
        } else {
            add_months(first_month, rng.gen_range(0..(p.months as i32 - 13).max(1)))
        }
        .with_day(rng.gen_range(1..28))
        .unwrap_or(first_month);
        // Churn is decided month by month below (a planted hazard); a client that leaves
        // in month M has its last invoice and work month in M - 1.
        let mut hz_rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0x7F4A_C15D ^ ((i as u64) << 21));
        let start_month = month_start(start);
        let active_from = start_month.max(first_month);
        let history_months = p.months as i32;
        let raise_month = if hz_rng.gen_bool(0.25) {
            Some(add_months(first_month, hz_rng.gen_range(0..history_months)))
        } else {
            None
        };
        let raise_factor = hz_rng.gen_range(1.15..1.4);
        let change_month = if hz_rng.gen_bool(0.3) {
            Some(add_months(first_month, hz_rng.gen_range(1..history_months)))
        } else {
            None
        };
        // Staff and pricing draw from their own streams, so the rest of the firm is the same
        // whatever the staff list.
        let _ = pick(&mut rng, &ACCOUNTANTS);
        let mut st_rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0x0A55_16E5 ^ ((i as u64) << 22));
        let international = st_rng.gen_bool(0.03);
        let first = roster.pick(&mut st_rng, taxpayer == "general", international, tier == 0);
        let second = {
            let mut k = roster.pick(&mut st_rng, taxpayer == "general", international, tier == 0);
            if k == first && roster.names.len() > 1 {
                k = (k + 1) % roster.names.len();
            }
            k
        };
        let first_accountant = roster.names[first].as_str();
        let second_accountant = roster.names[second].as_str();
        let _ = hz_rng.gen_range(0..ACCOUNTANTS.len() - 1);
        let logs_hours = !st_rng.gen_bool(NO_HOURS_SHARE);
        let timed_in = |m: NaiveDate| match change_month {
            Some(c) if m >= c => !roster.untimed[second],
            _ => !roster.untimed[first],
        };
        let accountant_in = |m: NaiveDate| match change_month {
            Some(c) if m >= c => second_accountant,
            _ => first_accountant,
        };
        let name = match client_type {
            "person" => format!("{}（个人）", pick(&mut rng, &ACCOUNTANTS)),
            "individual_business" => format!(
                "{}{}{}",
                city.trim_end_matches('市'),
                pick(&mut rng, &TRADE_NAMES),
                "经营部"
            ),
            _ => format!(
                "{}{}{}有限公司",
                city.trim_end_matches('市'),
                pick(&mut rng, &TRADE_NAMES),
                &industry.chars().take(2).collect::<String>()
            ),
        };
        let ct_text = match client_type {
            "enterprise" => "企业",
            "individual_business" => "个体工商户",
            _ => "个人",
        };
        let tp_text = if taxpayer == "general" {
            "一般纳税人"
        } else {
            "小规模纳税人"
        };
        clients.push(vec![
            s(&id),
            s(&name),
            s(if p.chinese { ct_text } else { client_type }),
            s(if p.chinese { tp_text } else { taxpayer }),
            s(industry),
            s(province),
            s(city),
            s(if international { "true" } else { "false" }),
            Some(employees.to_string()),
            Some(format!("{revenue:.0}")),
            s(&services.join(";")),
            s(&w.date(start)),
            None,
            Some(format!("{fee:.0}")),
            s(accountant_in(last_month)),
        ]);
        let _ = rng.gen_bool(0.03);
        let client_row = clients.len() - 1;

        let cycle = if seg == 0 {
            pick(&mut rng, &[1, 1, 3, 6, 12, 12])
        } else {
            pick(&mut rng, &[1, 1, 1, 1, 1, 1, 1, 3, 3, 6])
        };
        let raise_at = add_months(last_month, -rng.gen_range(6..10));

        let mut m = active_from;
        let mut k = 0;
        // Invoices not yet paid: (amount, paid date); the months of late documents and
        // the tickets of each month so far.
        let mut open: Vec<(f64, Option<NaiveDate>)> = Vec::new();
        let mut late_log: Vec<u32> = Vec::new();
        let mut ticket_log: Vec<u32> = Vec::new();
        // Expected hours of each month served: the work's mean in that month (with its
        // trend and any spell of trouble), without the month's chance variation.
        let mut expected_log: Vec<f64> = Vec::new();
        let mut episode_left = 0u32;
        let mut left_month: Option<NaiveDate> = None;
        let (mut hazard_sum, mut hazard_n) = (0.0, 0usize);
        let state_at = |m: NaiveDate, open: &[(f64, Option<NaiveDate>)], late: &[u32], tickets: &[u32]| {
            // As of the end of the month before m.
            let cutoff = m.pred_opt().unwrap_or(m);
            let owed: f64 = open
                .iter()
                .filter(|(_, paid)| paid.is_none_or(|d| d > cutoff))
                .map(|(a, _)| *a)
                .sum();
            let recent = |v: &[u32]| v.iter().rev().take(3).copied().collect::<Vec<u32>>();
            let t3 = recent(tickets);
            let mean3 = t3.iter().sum::<u32>() as f64 / t3.len().max(1) as f64;
            let months_since = |e: Option<NaiveDate>| e.map(|e| month_no(m) - month_no(e));
            HazardState {
                arrears_months: owed / fee.max(1.0),
                late_docs_3m: recent(late).iter().sum(),
                ticket_spike: t3.len() == 3 && mean3 > 2.0 * ticket_rate + 1.0,
                fee_raised_recently: months_since(raise_month).is_some_and(|d| (1..=6).contains(&d)),
                accountant_changed_recently: months_since(change_month).is_some_and(|d| (1..=6).contains(&d)),
                renewal_month: (month_no(m) - month_no(start_month)) % 12 == 0 && m > start_month,
            }
        };
        while m <= last_month {
            if m > active_from {
                let st = state_at(m, &open, &late_log, &ticket_log);
                let h = hazard(seg, tier, &st);
                hazard_sum += h;
                hazard_n += 1;
                if write_hazards {
                    // The chance of leaving within 3 and 6 months from the end of the month
                    // before m, with what is known then (renewal and the windows of a fee
                    // rise or a change of accountant run on by the calendar).
                    let risk = |months: i32| {
                        let mut stay = 1.0;
                        for j in 0..months {
                            let mj = add_months(m, j);
                            let mut sj = state_at(mj, &open, &late_log, &ticket_log);
                            sj.arrears_months = st.arrears_months;
                            sj.late_docs_3m = st.late_docs_3m;
                            sj.ticket_spike = st.ticket_spike;
                            stay *= 1.0 - hazard(seg, tier, &sj);
                        }
                        1.0 - stay
                    };
                    hazards.push(vec![
                        s(&id),
                        s(&add_months(m, -1).format("%Y-%m").to_string()),
                        Some(format!("{h:.6}")),
                        Some(format!("{:.6}", risk(3))),
                        Some(format!("{:.6}", risk(6))),
                    ]);
                }
                if hz_rng.gen_bool(h) {
                    left_month = Some(m);
                    break;
                }
            }
            let to_end = month_no(last_month) - month_no(m);
            // Volume path: steady, falling over the last year, or growing all along.
            let trend = match seg {
                3 => {
                    if to_end < 12 {
                        1.0 - 0.8 * (12 - to_end) as f64 / 12.0
                    } else {
                        1.0
                    }
                }
                4 => 1.07f64.powi(-(to_end)),
                _ => 1.0,
            };
            // A spell of trouble (a tax notice, a messy quarter): many questions, late documents.
            if episode_left == 0 && hz_rng.gen_bool(0.015) {
                episode_left = hz_rng.gen_range(2..5);
            }
            let (ticket_boost, late_boost) = if episode_left > 0 {
                episode_left -= 1;
                (3.0 * ticket_rate + 2.0, 0.5)
            } else {
                (0.0, 0.0)
            };
            let noise = (0.1 * normal(&mut rng)).exp();
            let vouchers = (base_vouchers * trend * noise).round().max(0.0);
            let quarter_month = matches!(m.month(), 1 | 4 | 7 | 10);
            let mut filings = if taxpayer == "general" {
                3
            } else if quarter_month {
                3
            } else {
                1
            };
            if m.month() == 5 && client_type == "enterprise" {
                filings += 1;
            }
            if m.month() == 6 && services.contains(&"annual_report") {
                filings += 1;
            }
            let tickets = poisson(&mut rng, ticket_rate)
                + if ticket_boost > 0.0 {
                    poisson(&mut hz_rng, ticket_boost)
                } else {
                    0
                };
            let late_docs = u8::from(rng.gen_bool(late_doc_p) || (late_boost > 0.0 && hz_rng.gen_bool(late_boost)));
            ticket_log.push(tickets);
            late_log.push(u32::from(late_docs));
            // About 1-2 hours a month for a small-scale client, 3-6 for a general one.
            let spring = if matches!(m.month(), 4 | 5 | 6) { 1.0 } else { 0.0 };
            let hours =
                (vouchers / 60.0 + filings as f64 * 0.2 + tickets as f64 * 0.2 + late_docs as f64 * 0.7 + spring * 0.5)
                    * (0.1 * normal(&mut rng)).exp();
            let hours = (logs_hours && !st_rng.gen_bool(MISSING_HOURS_MONTHS) && timed_in(m)).then_some(hours);
            expected_log.push(
                base_vouchers * trend / 60.0
                    + filings as f64 * 0.2
                    + (ticket_rate + ticket_boost) * 0.2
                    + (late_doc_p + (1.0 - late_doc_p) * late_boost) * 0.7
                    + spring * 0.5,
            );
            activity.push(vec![
                s(&id),
                s(&w.month(m)),
                Some(format!("{vouchers:.0}")),
                Some(filings.to_string()),
                hours.map(|h| format!("{h:.1}")),
                Some(tickets.to_string()),
                Some(late_docs.to_string()),
                s(accountant_in(m)),
            ]);

            // Invoices: one per billing cycle, plus the spring one-off services.
            let mut invoices: Vec<(f64, &str)> = Vec::new();
            if k % cycle == 0 {
                let months_billed = cycle as f64;
                let mut monthly = if seg == 4 && m >= raise_at { fee * 1.4 } else { fee };
                if raise_month.is_some_and(|r| m >= r) {
                    monthly *= raise_factor;
                }
                let discount = if cycle == 12 { 0.95 } else { 1.0 };
                invoices.push((
                    (monthly * months_billed * discount / 10.0).round() * 10.0,
                    "bookkeeping",
                ));
            }
            if m.month() == 5 && client_type == "enterprise" {
                let amount = if taxpayer == "general" {
                    rng.gen_range(800.0..2000.0)
                } else {
                    rng.gen_range(300.0..800.0)
                };
                invoices.push(((amount / 10.0f64).round() * 10.0, "annual_reconciliation"));
            }
            if m.month() == 6 && services.contains(&"annual_report") {
                invoices.push(((rng.gen_range(200.0..500.0) / 10.0f64).round() * 10.0, "annual_report"));
            }
            if m == month_start(start) {
                invoices.push(((rng.gen_range(500.0..1000.0) / 10.0f64).round() * 10.0, "registration"));
            }
            for (amount, service) in invoices {
                let invoice = m.with_day(rng.gen_range(1..6)).unwrap_or(m);
                let due = invoice + chrono::Duration::days(15);
                let paid = if rng.gen_bool(unpaid_p) {
                    None
                } else if rng.gen_bool(pay_late_p) {
                    Some(due + chrono::Duration::days(rng.gen_range(late_days.0..=late_days.1)))
                } else {
                    Some(invoice + chrono::Duration::days(rng.gen_range(0..14)))
                };
                // A payment after the export date has not happened yet.
                let paid = paid.filter(|d| *d <= p.end);
                open.push((amount, paid));
                billing.push(vec![
                    s(&id),
                    s(&w.date(invoice)),
                    Some(format!("{amount:.0}")),
                    s(service),
                    s(&w.date(due)),
                    paid.map(|d| w.date(d)),
                ]);
            }
            // Settled invoices no longer count towards arrears.
            let month_end = add_months(m, 1).pred_opt().unwrap_or(m);
            open.retain(|(_, paid)| paid.is_none_or(|d| d > month_end));
            k += 1;
            m = add_months(m, 1);
        }
        // The archive's contract_end: the last day of the last month served.
        if let (Some(left), true) = (left_month, p.contract_dates) {
            let end = left.pred_opt().unwrap_or(left);
            clients.set(client_row, "contract_end", Some(w.date(end)));
        }
        // The CRM's contact log: the last two contacts. Top-tier clients are mostly called
        // every month or so, but some have been left for months.
        {
            let mut ct_rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0xC0_17AC_7500 ^ ((i as u64) << 24));
            let until = left_month.and_then(|m| m.pred_opt()).unwrap_or(p.end);
            let ago = if tier == 0 && ct_rng.gen_bool(0.7) {
                ct_rng.gen_range(0..30)
            } else {
                ct_rng.gen_range(0..200)
            };
            let last = until - chrono::Duration::days(ago);
            let before = last - chrono::Duration::days(ct_rng.gen_range(20..120));
            for d in [before, last] {
                if d >= start {
                    contacts.push(vec![
                        s(&id),
                        s(&w.date(d)),
                        s(pick(&mut ct_rng, &["电话", "微信", "上门拜访", "邮件"])),
                        None,
                    ]);
                }
            }
        }
        // The truth of pricing: the work of the last 12 months served at the firm's hourly
        // cost against the fee; the fair fee meets the target margin.
        let recent = &expected_log[expected_log.len().saturating_sub(12)..];
        let current_hours = if recent.is_empty() {
            expected_hours
        } else {
            recent.iter().sum::<f64>() / recent.len() as f64
        };
        let true_margin = (fee - current_hours * p.hourly_cost) / fee;
        let fair_fee = current_hours * p.hourly_cost / (1.0 - TARGET_MARGIN);
        let underpriced = match p.fees {
            Fees::Planted => planted_underpriced,
            Fees::Negotiated => true_margin < TARGET_MARGIN,
        };
        let value_score = fee * 12.0 * (1.0 + 0.1 * n_extra as f64);
        truth.push(vec![
            s(&id),
            s(PLANTED[seg]),
            s(PLANTED_VALUE[tier]),
            Some(format!("{value_score:.0}")),
            s(if left_month.is_some() { "true" } else { "false" }),
            left_month.map(|m| m.format("%Y-%m").to_string()),
            Some(format!("{:.6}", hazard_sum / hazard_n.max(1) as f64)),
            changed_from.map(String::from),
            s(if underpriced { "true" } else { "false" }),
            Some(format!("{expected_hours:.3}")),
            Some(format!("{current_hours:.3}")),
            Some(format!("{true_margin:.4}")),
            Some(format!("{fair_fee:.2}")),
        ]);
    }

    let dirty_rows = add_dirt(&mut rng, &mut billing, &mut activity, p.dirty, p.clients);
    let header: Box<dyn Fn(&str) -> String> = if p.chinese {
        Box::new(chinese_header)
    } else {
        Box::new(|n: &str| n.to_string())
    };
    let counts = Generated {
        clients: clients.len(),
        billing_rows: billing.len(),
        activity_rows: activity.len(),
        dirty_rows,
    };
    std::fs::create_dir_all(out).map_err(|e| GenerateError::Write {
        path: out.display().to_string(),
        message: e.to_string(),
    })?;
    for (name, buf, h) in [
        ("clients.csv", clients, &header),
        ("billing.csv", billing, &header),
        ("activity.csv", activity, &header),
        ("contacts.csv", contacts, &header),
    ] {
        write(out, name, buf, h.as_ref())?;
    }
    let mut staff = Buf::new(Table::Staff.columns());
    for k in 0..roster.names.len() {
        let mut skills = vec!["bookkeeping"];
        if roster.general[k] {
            skills.push("general_taxpayer");
        }
        if roster.international[k] {
            skills.push("international");
        }
        let grade = match (p.chinese, roster.grade[k]) {
            (true, "junior") => "初级",
            (true, "senior") => "中级",
            (true, _) => "主管",
            (false, g) => g,
        };
        staff.push(vec![
            Some(roster.names[k].clone()),
            s(grade),
            Some(format!("{:.0}", roster.capacity[k])),
            Some(skills.join(";")),
            Some(roster.team[k].clone()),
            s("true"),
        ]);
    }
    write(out, "staff.csv", staff, header.as_ref())?;
    write(out, "truth.csv", truth, &|n: &str| n.to_string())?;
    if write_hazards {
        write(out, "truth_hazard.csv", hazards, &|n: &str| n.to_string())?;
    }
    Ok(counts)
}

/// Faults found in hand-kept exports: a bad date, a negative or non-numeric amount, an
/// unknown client, a duplicated month.
fn add_dirt(rng: &mut impl Rng, billing: &mut Buf, activity: &mut Buf, share: f64, n_clients: usize) -> usize {
    if share <= 0.0 {
        return 0;
    }
    let mut n = 0;
    let b = billing.len();
    for row in 0..b {
        if !rng.gen_bool(share) {
            continue;
        }
        n += 1;
        match rng.gen_range(0..4) {
            0 => billing.cols[1].1[row] = Some("2024-13-45".into()),
            1 => billing.cols[2].1[row] = Some("-300".into()),
            2 => billing.cols[2].1[row] = Some("三百".into()),
            _ => billing.cols[0].1[row] = Some(format!("X{:06}", n_clients + rng.gen_range(1..1000))),
        }
    }
    let a = activity.len();
    for row in 0..a {
        if rng.gen_bool(share / 2.0) {
            let copy: Vec<Option<String>> = activity.cols.iter().map(|c| c.1[row].clone()).collect();
            activity.push(copy);
            n += 1;
        }
    }
    n
}

fn write(out: &Path, name: &str, buf: Buf, header: &dyn Fn(&str) -> String) -> Result<(), GenerateError> {
    let path = out.join(name);
    let e = |m: String| GenerateError::Write {
        path: path.display().to_string(),
        message: m,
    };
    let mut df = buf.frame(header).map_err(|x| e(x.to_string()))?;
    let mut file = std::fs::File::create(&path).map_err(|x| e(x.to_string()))?;
    CsvWriter::new(&mut file).finish(&mut df).map_err(|x| e(x.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u64) -> GenerateParams {
        GenerateParams {
            staff: None,
            clients: 60,
            months: 24,
            seed,
            end: NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
            dirty: 0.0,
            chinese: false,
            changed: 0.0,
            contract_dates: true,
            fees: Fees::Planted,
            hourly_cost: DEFAULT_HOURLY_COST,
            untimed_teams: 0,
        }
    }

    #[test]
    fn same_seed_same_files() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        generate(&params(5), a.path()).unwrap();
        generate(&params(5), b.path()).unwrap();
        for f in ["clients.csv", "billing.csv", "activity.csv", "truth.csv"] {
            assert_eq!(
                std::fs::read(a.path().join(f)).unwrap(),
                std::fs::read(b.path().join(f)).unwrap(),
                "{f}"
            );
        }
    }

    #[test]
    fn changing_some_clients_leaves_the_others_alone() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        generate(&params(5), a.path()).unwrap();
        let mut p = params(5);
        p.changed = 0.2;
        generate(&p, b.path()).unwrap();
        let truth = std::fs::read_to_string(b.path().join("truth.csv")).unwrap();
        let at = truth
            .lines()
            .next()
            .unwrap()
            .split(',')
            .position(|h| h == "changed_from")
            .unwrap();
        let changed: Vec<&str> = truth
            .lines()
            .skip(1)
            .filter(|l| !l.split(',').nth(at).unwrap_or("").is_empty())
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert!(!changed.is_empty() && changed.len() < 30, "{changed:?}");
        let rows = |dir: &Path, f: &str| -> Vec<String> {
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .lines()
                .map(String::from)
                .collect()
        };
        for f in ["clients.csv", "activity.csv", "billing.csv"] {
            let (ra, rb) = (rows(a.path(), f), rows(b.path(), f));
            let keep = |r: &Vec<String>| -> Vec<String> {
                r.iter()
                    .filter(|l| !changed.iter().any(|c| l.starts_with(&format!("{c},"))))
                    .cloned()
                    .collect()
            };
            assert_eq!(keep(&ra), keep(&rb), "{f}: unchanged clients differ");
        }
    }

    #[test]
    fn rejects_bad_params() {
        let d = tempfile::tempdir().unwrap();
        let mut p = params(1);
        p.clients = 3;
        assert!(matches!(generate(&p, d.path()), Err(GenerateError::TooFewClients(3))));
        let mut p = params(1);
        p.months = 6;
        assert!(matches!(generate(&p, d.path()), Err(GenerateError::Months(6))));
    }

    #[test]
    fn fees_follow_the_domain() {
        let d = tempfile::tempdir().unwrap();
        generate(&params(9), d.path()).unwrap();
        let text = std::fs::read_to_string(d.path().join("clients.csv")).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let fee_col = header.iter().position(|h| *h == "monthly_fee").unwrap();
        let tp_col = header.iter().position(|h| *h == "taxpayer_type").unwrap();
        let truth = std::fs::read_to_string(d.path().join("truth.csv")).unwrap();
        let t_header: Vec<&str> = truth.lines().next().unwrap().split(',').collect();
        let under_col = t_header.iter().position(|h| *h == "underpriced").unwrap();
        let hours_col = t_header.iter().position(|h| *h == "expected_hours").unwrap();
        let mut planted = 0;
        for (line, t) in text.lines().skip(1).zip(truth.lines().skip(1)) {
            let cells: Vec<&str> = line.split(',').collect();
            let t: Vec<&str> = t.split(',').collect();
            let fee: f64 = cells[fee_col].parse().unwrap();
            let cost = t[hours_col].parse::<f64>().unwrap() * DEFAULT_HOURLY_COST;
            if t[under_col] == "true" {
                // Below what the work costs: no margin at all.
                planted += 1;
                assert!(fee <= cost + 5.0, "{line}");
                continue;
            }
            assert!(fee >= 2.5 * cost - 5.0, "{line}");
            match cells[tp_col] {
                "general" => assert!((500.0..=1500.0).contains(&fee), "{line}"),
                // Demanding small-scale clients (many vouchers and questions) pay more.
                _ => assert!((100.0..=350.0).contains(&fee) || fee <= 2.5 * cost + 5.0, "{line}"),
            }
        }
        assert!(planted > 0);
    }
}
