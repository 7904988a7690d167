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

mod archive;
mod months;
mod pricing;

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
    /// How the world changes over the history (none by default).
    pub drift: Drift,
}

/// A history whose leaving changes over time, as real firms' do: calibration learnt on
/// last year's leaving has to follow this year's. Zero everywhere is the steady firm.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Drift {
    /// Log-odds added to every client's monthly hazard by the last month, growing
    /// linearly from 0 in the first (negative: leaving falls).
    pub trend: f64,
    /// Share of clients given a fee rise in the same month, 12 months before the end.
    pub fee_wave: f64,
    /// Log-odds added for clients who join in the last 18 months of the history.
    pub cohort: f64,
}

impl Drift {
    /// `--drift rise,fee-wave,cohort`; each part may carry its size (`rise=1.2`).
    pub fn parse(text: &str) -> Result<Drift, String> {
        let mut d = Drift::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, size) = match part.split_once('=') {
                Some((n, v)) => (
                    n.trim(),
                    Some(
                        v.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite() && *v >= 0.0)
                            .ok_or_else(|| {
                                format!("--drift {part}: the size after '=' must be a number of at least 0")
                            })?,
                    ),
                ),
                None => (part, None),
            };
            match name {
                "none" => {}
                "rise" => d.trend = size.unwrap_or(0.8),
                "fall" => d.trend = -size.unwrap_or(0.8),
                "fee-wave" => d.fee_wave = size.unwrap_or(0.35).min(1.0),
                "cohort" => d.cohort = size.unwrap_or(0.8),
                other => {
                    return Err(format!(
                        "--drift: unknown part '{other}'; use rise, fall, fee-wave or cohort, comma-separated (e.g. rise,fee-wave)"
                    ))
                }
            }
        }
        Ok(d)
    }
}

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
    /// staff.csv: skills, grade (in Chinese with `--zh`), capacity, team.
    fn table(&self, chinese: bool) -> Buf {
        let s = |v: &str| Some(v.to_string());
        let mut staff = Buf::new(Table::Staff.columns());
        for k in 0..self.names.len() {
            let mut skills = vec!["bookkeeping"];
            if self.general[k] {
                skills.push("general_taxpayer");
            }
            if self.international[k] {
                skills.push("international");
            }
            let grade = match (chinese, self.grade[k]) {
                (true, "junior") => "初级",
                (true, "senior") => "中级",
                (true, _) => "主管",
                (false, g) => g,
            };
            staff.push(vec![
                Some(self.names[k].clone()),
                s(grade),
                Some(format!("{:.0}", self.capacity[k])),
                Some(skills.join(";")),
                Some(self.team[k].clone()),
                s("true"),
            ]);
        }
        staff
    }

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
    /// Log-odds the firm's drift adds in this month (0 without `--drift`).
    drift: f64,
}

fn hazard(seg: usize, tier: usize, st: &HazardState) -> f64 {
    let mut z = -5.8 + st.drift;
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

/// The tables being written, in their canonical layouts.
struct Tables {
    clients: Buf,
    billing: Buf,
    activity: Buf,
    contacts: Buf,
    truth: Buf,
    /// truth_hazard.csv, for firms small enough to write it.
    hazards: Option<Buf>,
}

impl Tables {
    fn new(write_hazards: bool) -> Tables {
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
        for c in [
            "underpriced",
            "expected_hours",
            "current_hours",
            "true_margin",
            "fair_fee",
        ] {
            truth.cols.push((c.into(), Vec::new()));
        }
        Tables {
            clients: Buf::new(Table::Clients.columns()),
            billing: Buf::new(Table::Billing.columns()),
            activity: Buf::new(Table::Activity.columns()),
            contacts: Buf::new(Table::Contacts.columns()),
            truth,
            hazards: write_hazards.then(|| Buf::new(&["client_id", "month", "hazard", "risk_3m", "risk_6m"])),
        }
    }
}

/// What every client's draws share: the parameters, the calendar, the staff list.
struct Firm<'a> {
    p: &'a GenerateParams,
    w: Writer,
    first_month: NaiveDate,
    last_month: NaiveDate,
    roster: Roster,
}

fn check(p: &GenerateParams) -> Result<(), GenerateError> {
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
    Ok(())
}

/// Writes clients, billing, activity and truth tables into `out`.
pub fn generate(p: &GenerateParams, out: &Path) -> Result<Generated, GenerateError> {
    check(p)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    let last_month = month_start(p.end);
    let n_staff = p.staff.unwrap_or((p.clients / 80).max(4)).max(1);
    let firm = Firm {
        p,
        w: Writer { chinese: p.chinese },
        first_month: add_months(last_month, -(p.months as i32 - 1)),
        last_month,
        roster: Roster::new(n_staff, p.seed, p.untimed_teams),
    };
    let mut t = Tables::new(p.clients <= HAZARD_FILE_MAX_CLIENTS);
    for i in 0..p.clients {
        let (client, mut streams) = archive::Client::draw(&firm, i);
        let client_row = t.clients.len();
        t.clients.push(client.archive_row(&firm));
        let life = months::live(&firm, &client, &mut streams, &mut t);
        // The archive's contract_end: the last day of the last month served.
        if let (Some(left), true) = (life.left_month, p.contract_dates) {
            let end = left.pred_opt().unwrap_or(left);
            t.clients.set(client_row, "contract_end", Some(firm.w.date(end)));
        }
        contacts(&firm, &client, i, life.left_month, &mut t.contacts);
        t.truth.push(truth_row(&firm, &client, &life));
    }
    let dirty_rows = add_dirt(&mut rng, &mut t.billing, &mut t.activity, p.dirty, p.clients);
    let counts = Generated {
        clients: t.clients.len(),
        billing_rows: t.billing.len(),
        activity_rows: t.activity.len(),
        dirty_rows,
    };
    write_tables(&firm, t, out)?;
    Ok(counts)
}

/// The CRM's contact log: the last two contacts. Top-tier clients are mostly called
/// every month or so, but some have been left for months.
fn contacts(firm: &Firm, c: &archive::Client, i: usize, left_month: Option<NaiveDate>, out: &mut Buf) {
    let p = firm.p;
    let s = |v: &str| Some(v.to_string());
    let mut ct_rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0xC0_17AC_7500 ^ ((i as u64) << 24));
    let until = left_month.and_then(|m| m.pred_opt()).unwrap_or(p.end);
    let ago = if c.tier == 0 && ct_rng.gen_bool(0.7) {
        ct_rng.gen_range(0..30)
    } else {
        ct_rng.gen_range(0..200)
    };
    let last = until - chrono::Duration::days(ago);
    let before = last - chrono::Duration::days(ct_rng.gen_range(20..120));
    for d in [before, last] {
        if d >= c.start {
            out.push(vec![
                s(&c.id),
                s(&firm.w.date(d)),
                s(pick(&mut ct_rng, &["电话", "微信", "上门拜访", "邮件"])),
                None,
            ]);
        }
    }
}

/// The client's row of truth.csv: planted segment and tier, whether and when it left,
/// and the truth of pricing.
fn truth_row(firm: &Firm, c: &archive::Client, life: &months::Life) -> Vec<Option<String>> {
    let s = |v: &str| Some(v.to_string());
    let (current_hours, true_margin, fair_fee, underpriced) =
        pricing::truth(firm.p, c.fee, c.expected_hours, c.planted_underpriced, &life.expected);
    let value_score = c.fee * 12.0 * (1.0 + 0.1 * c.n_extra as f64);
    vec![
        s(&c.id),
        s(PLANTED[c.seg]),
        s(PLANTED_VALUE[c.tier]),
        Some(format!("{value_score:.0}")),
        s(if life.left_month.is_some() { "true" } else { "false" }),
        life.left_month.map(|m| m.format("%Y-%m").to_string()),
        Some(format!("{:.6}", life.hazard_sum / life.hazard_n.max(1) as f64)),
        c.changed_from.map(String::from),
        s(if underpriced { "true" } else { "false" }),
        Some(format!("{:.3}", c.expected_hours)),
        Some(format!("{current_hours:.3}")),
        Some(format!("{true_margin:.4}")),
        Some(format!("{fair_fee:.2}")),
    ]
}

/// Every table into `out`: the firm's exports (Chinese headers with `--zh`), the staff
/// list, and the truth files.
fn write_tables(firm: &Firm, t: Tables, out: &Path) -> Result<(), GenerateError> {
    let p = firm.p;
    let header: Box<dyn Fn(&str) -> String> = if p.chinese {
        Box::new(chinese_header)
    } else {
        Box::new(|n: &str| n.to_string())
    };
    std::fs::create_dir_all(out).map_err(|e| GenerateError::Write {
        path: out.display().to_string(),
        message: e.to_string(),
    })?;
    for (name, buf) in [
        ("clients.csv", t.clients),
        ("billing.csv", t.billing),
        ("activity.csv", t.activity),
        ("contacts.csv", t.contacts),
    ] {
        write(out, name, buf, header.as_ref())?;
    }
    write(out, "staff.csv", firm.roster.table(p.chinese), header.as_ref())?;
    write(out, "truth.csv", t.truth, &|n: &str| n.to_string())?;
    if let Some(hazards) = t.hazards {
        write(out, "truth_hazard.csv", hazards, &|n: &str| n.to_string())?;
    }
    Ok(())
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
            drift: Drift::default(),
        }
    }

    #[test]
    fn drift_is_read_part_by_part_with_sizes() {
        assert_eq!(Drift::parse("none").unwrap(), Drift::default());
        let d = Drift::parse("rise, fee-wave,cohort=0.5").unwrap();
        assert_eq!((d.trend, d.fee_wave, d.cohort), (0.8, 0.35, 0.5));
        assert_eq!(Drift::parse("fall=1.2").unwrap().trend, -1.2);
        let e = Drift::parse("rise,spike").unwrap_err();
        assert!(e.contains("'spike'") && e.contains("rise, fall"), "{e}");
        assert!(Drift::parse("rise=-1").unwrap_err().contains("at least 0"));
    }

    #[test]
    fn a_rising_drift_raises_the_leaving_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = params(3);
        p.clients = 400;
        generate(&p, &dir.path().join("steady")).unwrap();
        p.drift = Drift::parse("rise=2").unwrap();
        generate(&p, &dir.path().join("rising")).unwrap();
        let read = |f: &str, d: &str| std::fs::read_to_string(dir.path().join(d).join(f)).unwrap();
        // The archive is the same firm; the leaving (truth.csv) is not.
        assert_eq!(read("staff.csv", "steady"), read("staff.csv", "rising"));
        let left = |d: &str| read("truth.csv", d).lines().filter(|l| l.contains(",true,")).count();
        assert!(
            left("rising") > left("steady"),
            "{} vs {}",
            left("rising"),
            left("steady")
        );
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
