//! The monthly action list (行动清单): who does what for which client, by when, and why,
//! from the analyses before it: regular contact by the service plan's cycle, outreach to
//! valuable clients at churn risk, fee reviews, arrears collection, chasing late documents
//! before the filing deadline, and handovers after reassignment.

mod params;
pub use params::RawActions;

pub mod pages;

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate, Weekday};
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use super::pricing::{f64_column, longest_risk, monthly_fee};
use super::{cells, chunk, Analysis, AnalysisError, Context, Need, Outcome, Pages, Section, SectionTable, TextView};
use crate::columns::{OutputColumn, SqlType, TableName, TaskTable};
use crate::format::{date_into, int0_into, money_into, Lang};
use crate::history::column_f64;
use crate::progress::Stages;

/// Checked parameters of `[actions]`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionsParams {
    pub enabled: bool,
    /// Months between regular contacts per value tier (V1 monthly, V2 quarterly, V3
    /// half-yearly by default, or the cycles of `[[service_plans]]`); tiers not listed use
    /// the longest.
    pub contact_months: BTreeMap<String, u32>,
    /// Arrears above this many months of the client's fee are collected.
    pub arrears_months: f64,
    /// ... and above this amount (CNY).
    pub arrears_min: f64,
    /// Days of the list: actions due up to the snapshot plus this many days.
    pub horizon_days: i64,
    /// Documents are chased this many days before the filing deadline.
    pub chase_days_before: i64,
}

pub struct Actions {
    params: ActionsParams,
}

impl Actions {
    pub fn new(p: &ActionsParams) -> Actions {
        Actions { params: p.clone() }
    }
}

/// Action types, in the order of the list's columns and the report.
pub const TYPES: [&str; 6] = [
    "churn_outreach",
    "collect_arrears",
    "chase_documents",
    "handover",
    "fee_review",
    "contact",
];

pub fn type_words(code: &str) -> (&'static str, &'static str) {
    match code {
        "churn_outreach" => ("call a valuable client at risk of leaving", "高价值客户流失预警回访"),
        "collect_arrears" => ("collect arrears", "催收欠费"),
        "chase_documents" => ("chase documents before the filing deadline", "申报期前催收资料"),
        "handover" => ("hand the client over", "客户交接"),
        "fee_review" => ("review the fee", "服务费复核"),
        "contact" => ("regular contact", "定期沟通"),
        _ => ("", ""),
    }
}

/// The 15th of a month, moved to the next working day when it falls on a weekend (the
/// tax office's rule; public holidays, which also move it, are not known here).
pub fn filing_deadline(year: i32, month: u32) -> NaiveDate {
    let mut d = NaiveDate::from_ymd_opt(year, month, 15).unwrap_or_default();
    while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        d = d.succ_opt().unwrap_or(d);
    }
    d
}

/// The next filing deadline after `day`: monthly for general taxpayers, in the month
/// after a quarter (January, April, July, October) for small-scale ones.
pub fn next_deadline(day: NaiveDate, general: bool) -> NaiveDate {
    let mut y = day.year();
    let mut m = day.month();
    loop {
        let d = filing_deadline(y, m);
        if d > day && (general || matches!(m, 1 | 4 | 7 | 10)) {
            return d;
        }
        m += 1;
        if m > 12 {
            m = 1;
            y += 1;
        }
    }
}

fn add_months(d: NaiveDate, months: u32) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(months)).unwrap_or(d)
}

/// One action: for which client, what, by when and the figure behind it.
struct Row {
    client: u32,
    /// Index into `TYPES`.
    kind: u8,
    /// Done by the accountant who has the client now (a handover), not the one who will.
    by_current: bool,
    priority: u8,
    due: NaiveDate,
    /// The filing deadline, for chasing documents.
    deadline: NaiveDate,
    amount: f64,
    /// Rank of the owner's name, set when the list is sorted.
    owner: u32,
}

const OUTREACH: u8 = 0;
const ARREARS: u8 = 1;
const CHASE: u8 = 2;
const HANDOVER: u8 = 3;
const FEE: u8 = 4;
const CONTACT: u8 = 5;

/// The text columns the list reads.
struct Texts {
    ids: StringChunked,
    names: StringChunked,
    accountant: StringChunked,
    taxpayer: StringChunked,
    proposed: StringChunked,
    flag: StringChunked,
    bands: StringChunked,
}

impl Texts {
    fn read(ctx: &Context) -> Result<Texts, AnalysisError> {
        let df = &ctx.table.df;
        let n = df.height();
        let own = |name: &str| chunk(df.column(name).ok(), n);
        let earlier =
            |from: &str, name: &str| -> Result<StringChunked, AnalysisError> { Ok(chunk(ctx.column(from, name)?, n)) };
        Ok(Texts {
            ids: own("client_id"),
            names: own("name"),
            accountant: own("accountant"),
            taxpayer: own("taxpayer_type"),
            proposed: earlier("allocation", "proposed_accountant")?,
            flag: earlier("pricing", "price_flag")?,
            bands: earlier("churn", "churn_band")?,
        })
    }
}

/// Per client, what the list is made from.
struct Inputs<'a> {
    accountant: TextView<'a>,
    taxpayer: TextView<'a>,
    proposed: TextView<'a>,
    flag: TextView<'a>,
    bands: TextView<'a>,
    /// Clients, the length of every per-client vector.
    n: usize,
    /// Value tier id ("V1" ...), "" without tiers.
    tiers: Vec<&'a str>,
    /// Churn risk at the longest horizon.
    risk: Vec<f64>,
    suggested: Vec<f64>,
    fee: Vec<f64>,
    owed: Vec<f64>,
    late3: Vec<f64>,
    hours: Vec<f64>,
    /// The month the client's handover is planned (1 = this month); NaN when none is.
    handover_month: Vec<f64>,
    served: Vec<bool>,
    /// The last contact day, when the firm has a contacts table.
    last_contact: Option<Vec<Option<NaiveDate>>>,
}

impl<'a> Inputs<'a> {
    fn new(ctx: &'a Context, x: &'a Texts) -> Result<Inputs<'a>, AnalysisError> {
        let t = ctx.table;
        let n = t.df.height();
        let (suggested, hours) = (
            ctx.column("pricing", "suggested_fee")?,
            ctx.column("pricing", "monthly_hours")?,
        );
        let (risk, handover_month) = (longest_risk(ctx)?, ctx.column("allocation", "handover_month")?);
        let tiers = match ctx.segmentation("value")? {
            Some(s) => s
                .labels
                .iter()
                .map(|&l| s.model.segments.get(l).map_or("", |g| g.id.as_str()))
                .collect(),
            None => vec![""; n],
        };
        // Every per-client vector is exactly n long, so that indexing by client is safe.
        let f = |v: Vec<f64>| sized(v, n, f64::NAN);
        let ids = TextView::of(&x.ids);
        // The contacts' lookup of clients by id is one thread's work: the copies beside it.
        let (last_contact, (risk, suggested, fee, owed, late3, hours)) = rayon::join(
            || last_contacts(ctx, ids, n),
            || {
                (
                    f(risk),
                    f(f64_column(suggested, n)),
                    f(monthly_fee(t)),
                    f(column_f64(t, "open_receivables")),
                    f(column_f64(t, "late_documents_3m")),
                    f(f64_column(hours, n)),
                )
            },
        );
        Ok(Inputs {
            accountant: TextView::of(&x.accountant),
            taxpayer: TextView::of(&x.taxpayer),
            proposed: TextView::of(&x.proposed),
            flag: TextView::of(&x.flag),
            bands: TextView::of(&x.bands),
            tiers: sized(tiers, n, ""),
            risk,
            suggested,
            fee,
            owed,
            late3,
            hours,
            handover_month: f(f64_column(handover_month, n)),
            served: sized(
                ctx.served.map(|v| v.to_vec()).unwrap_or_else(|| vec![true; n]),
                n,
                false,
            ),
            last_contact,
            n,
        })
    }

    /// Who serves the client this month: the proposed accountant when the handover is
    /// this month's, else the current one.
    fn owner(&self, i: usize) -> &'a str {
        match self.next(i) {
            "" => self.accountant.get(i),
            next => next,
        }
    }

    /// The accountant the client is handed to this month, "" when none is: a handover
    /// planned for a later month waits for its month.
    fn next(&self, i: usize) -> &'a str {
        let month = self.handover_month.get(i).copied().unwrap_or(f64::NAN);
        if month > 1.0 {
            return "";
        }
        self.proposed.get(i)
    }
}

/// `v` cut or padded with `fill` to `n` values.
fn sized<T: Clone>(mut v: Vec<T>, n: usize, fill: T) -> Vec<T> {
    v.resize(n, fill);
    v
}

/// The last contact day per client (feature-table order), from the contacts table.
fn last_contacts(ctx: &Context, ids: TextView, n: usize) -> Option<Vec<Option<NaiveDate>>> {
    let c = ctx.input("contacts")?;
    let who = chunk(c.column("client_id").ok(), c.height());
    let who = TextView::of(&who);
    let days = c.column("date").ok()?.cast(&DataType::Int32).ok()?;
    let days = days.i32().ok()?.rechunk();
    let days = days.downcast_iter().next()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let index: HashMap<&str, u32, foldhash::fast::RandomState> = (0..n).map(|i| (ids.get(i), i as u32)).collect();
    // The latest day per client, as days since 1970, over the contacts in parallel.
    let none = i32::MIN;
    let latest = (0..c.height())
        .into_par_iter()
        .fold(
            || vec![none; n],
            |mut acc, k| {
                if let (Some(&i), Some(d)) = (index.get(who.get(k)), days.get(k)) {
                    if let Some(slot) = acc.get_mut(i as usize) {
                        *slot = (*slot).max(d);
                    }
                }
                acc
            },
        )
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(b).for_each(|(x, y)| *x = (*x).max(y));
            a
        })
        .unwrap_or_else(|| vec![none; n]);
    Some(
        latest
            .into_iter()
            .map(|d| match d {
                d if d == none => None,
                d => epoch.checked_add_signed(chrono::Duration::days(d as i64)),
            })
            .collect(),
    )
}

impl Analysis for Actions {
    fn id(&self) -> &'static str {
        "actions"
    }

    fn name(&self) -> (&'static str, &'static str) {
        ("action list", "行动清单")
    }

    fn fit(&self, ctx: &Context, stages: &mut Stages) -> Result<Outcome, AnalysisError> {
        let mut out = Outcome::empty("actions");
        if !self.params.enabled {
            out.skipped = Some("actions.enabled = false".into());
            return Ok(out);
        }
        stages.run("actions", |_| {
            let texts = Texts::read(ctx)?;
            let inputs = Inputs::new(ctx, &texts)?;
            // The accountants' book is counted while the list is planned.
            let ((rows, owners), book) =
                rayon::join(|| plan(&self.params, ctx, &inputs), || accountant_book(ctx, &inputs));
            Ok::<_, AnalysisError>(outcome(ctx, &self.params, &texts, &inputs, &rows, &owners, book?))
        })
    }

    fn needs(&self) -> Vec<Need> {
        vec![
            Need::segmentation("value"),
            Need::column("churn", "churn_band"),
            Need::column("churn", "churn_risk_*"),
            Need::column("pricing", "price_flag"),
            Need::column("pricing", "suggested_fee"),
            Need::column("pricing", "monthly_hours"),
            Need::column("allocation", "proposed_accountant"),
            Need::column("allocation", "handover_month"),
            Need::table("allocation", "workload"),
        ]
    }
}

/// The actions due for client `i`, at most one of each type, appended to `rows`. Their
/// words are written with the table (`reason_into`), so that planning allocates nothing.
fn client_actions(p: &ActionsParams, ctx: &Context, x: &Inputs, i: usize, rows: &mut Vec<Row>) {
    let s = ctx.table.snapshot;
    let horizon = s + chrono::Duration::days(p.horizon_days);
    let client = i as u32;
    let mut push = |kind, by_current, due, priority, amount, deadline| {
        rows.push(Row {
            client,
            kind,
            by_current,
            priority,
            due,
            deadline,
            amount,
            owner: 0,
        })
    };
    let (tier, band, fee, owed, late3) = (x.tiers[i], x.bands.get(i), x.fee[i], x.owed[i], x.late3[i]);
    let top = tier == "V1";
    // Outreach: a top-tier client at high or medium risk, or a second-tier one at high risk.
    if (top && (band == "high" || band == "medium")) || (band == "high" && tier == "V2") {
        let r = if x.risk[i].is_finite() { x.risk[i] } else { 0.0 };
        push(OUTREACH, false, s + chrono::Duration::days(7), 1, r, s);
    }
    // Arrears above the threshold.
    let threshold = (p.arrears_months * fee.max(0.0)).max(p.arrears_min);
    if owed.is_finite() && owed > threshold {
        let months = if fee > 0.0 { owed / fee } else { f64::INFINITY };
        let priority = if months >= 3.0 { 1 } else { 2 };
        push(ARREARS, false, s + chrono::Duration::days(7), priority, owed, s);
    }
    // Late documents lately: chase before the next filing deadline.
    if late3.is_finite() && late3 > 0.0 {
        let deadline = next_deadline(s, x.taxpayer.get(i) == "general");
        let due = (deadline - chrono::Duration::days(p.chase_days_before)).max(s + chrono::Duration::days(1));
        if due <= horizon {
            push(CHASE, false, due, 2, late3, deadline);
        }
    }
    // This month's handover to the proposed accountant, by the one who has the client now.
    let (now, next) = (x.accountant.get(i), x.next(i));
    if !next.is_empty() && next != now {
        push(HANDOVER, true, s + chrono::Duration::days(14), 2, f64::NAN, s);
    }
    // Fee review for the under-priced.
    if x.flag.get(i) == "under_priced" {
        push(FEE, false, s + chrono::Duration::days(30), 3, x.suggested[i], s);
    }
    // Regular contact by the plan's cycle.
    let cycle = cycle_of(p, tier);
    let last = x.last_contact.as_ref().and_then(|c| c.get(i).copied().flatten());
    let due = match (&x.last_contact, last) {
        (Some(_), Some(d)) => add_months(d, cycle),
        // No contact recorded: due now.
        (Some(_), None) => s,
        // No contacts table: the cycle starts at the snapshot.
        (None, _) => add_months(s, cycle),
    };
    if due <= horizon {
        let overdue = due <= s;
        push(
            CONTACT,
            false,
            if overdue { s + chrono::Duration::days(1) } else { due },
            if overdue && top { 2 } else { 3 },
            f64::NAN,
            s,
        );
    }
}

/// Months between contacts for a tier; tiers not listed use the longest cycle.
fn cycle_of(p: &ActionsParams, tier: &str) -> u32 {
    let longest = p.contact_months.values().copied().max().unwrap_or(6);
    p.contact_months.get(tier).copied().unwrap_or(longest)
}

/// Why action `r` is on the list, in the run's language, appended to `buf`. Numbers and
/// days go through `int0_into`, `money_into` and `date_into`: the formatter's characters
/// without its machinery, once per action.
fn reason_into(buf: &mut String, r: &Row, p: &ActionsParams, x: &Inputs, zh: bool) {
    use std::fmt::Write;
    let i = r.client as usize;
    let int = |buf: &mut String, v: u32| buf.push_str(itoa::Buffer::new().format(v));
    match r.kind {
        OUTREACH => {
            let band = x.bands.get(i);
            if zh {
                buf.push_str(if band == "high" {
                    "流失风险高："
                } else {
                    "流失风险中："
                });
            } else {
                buf.push_str(band);
                buf.push_str(" risk of leaving: ");
            }
            int0_into(buf, r.amount * 100.0);
            buf.push('%');
        }
        ARREARS => {
            let (owed, fee) = (r.amount, x.fee[i]);
            let months = if fee > 0.0 { owed / fee } else { f64::INFINITY };
            buf.push_str(if zh { "欠费 " } else { "owes " });
            money_into(buf, owed);
            let _ = if zh {
                write!(buf, " 元（{months:.1} 个月服务费）")
            } else {
                write!(buf, " CNY ({months:.1} months of fees)")
            };
        }
        CHASE => {
            buf.push_str(if zh { "近3个月 " } else { "documents late in " });
            int0_into(buf, r.amount * 100.0);
            buf.push_str(if zh {
                "% 的月份资料延迟；申报截止 "
            } else {
                "% of the last 3 months; filing deadline "
            });
            date_into(buf, r.deadline);
        }
        HANDOVER => {
            let (now, next) = (x.accountant.get(i), x.next(i));
            let from = if now.is_empty() { "-" } else { now };
            let (a, b) = if zh {
                ("由 ", " 交接给 ")
            } else {
                ("hand over from ", " to ")
            };
            for piece in [a, from, b, next] {
                buf.push_str(piece);
            }
        }
        FEE => {
            let (fee, new) = (x.fee[i], r.amount);
            buf.push_str(match (new.is_finite(), zh) {
                (true, false) => "fee ",
                (true, true) => "月费 ",
                (false, false) => "under-priced at ",
                (false, true) => "月费 ",
            });
            int0_into(buf, fee);
            match (new.is_finite(), zh) {
                (true, false) => {
                    buf.push_str(" CNY a month, suggested ");
                    int0_into(buf, new);
                }
                (true, true) => {
                    buf.push_str(" 元，建议 ");
                    int0_into(buf, new);
                    buf.push_str(" 元");
                }
                (false, false) => buf.push_str(" CNY a month; rise held back for churn risk"),
                (false, true) => buf.push_str(" 元偏低；因流失风险暂缓调价"),
            }
        }
        _ => {
            let cycle = cycle_of(p, x.tiers[i]);
            let last = x.last_contact.as_ref().and_then(|c| c.get(i).copied().flatten());
            match (last, x.last_contact.is_some(), zh) {
                (Some(d), _, false) => {
                    buf.push_str("last contact ");
                    date_into(buf, d);
                    buf.push_str("; the plan is every ");
                    int(buf, cycle);
                    buf.push_str(" months");
                }
                (Some(d), _, true) => {
                    buf.push_str("上次联系 ");
                    date_into(buf, d);
                    buf.push_str("；服务方案为每 ");
                    int(buf, cycle);
                    buf.push_str(" 个月一次");
                }
                (None, true, false) => buf.push_str("no contact recorded"),
                (None, true, true) => buf.push_str("无联系记录"),
                (None, false, false) => {
                    buf.push_str("the plan is every ");
                    int(buf, cycle);
                    buf.push_str(" months");
                }
                (None, false, true) => {
                    buf.push_str("服务方案为每 ");
                    int(buf, cycle);
                    buf.push_str(" 个月一次");
                }
            }
        }
    }
}

/// Who does action `r`: the accountant who will serve the client, or for a handover the
/// one who has it now ("-" when nobody has).
fn owner_of<'a>(r: &Row, x: &Inputs<'a>) -> &'a str {
    let i = r.client as usize;
    match (r.by_current, x.accountant.get(i)) {
        (true, "") => "-",
        (true, now) => now,
        (false, _) => x.owner(i),
    }
}

/// The list, most urgent first, and its owners by name (`Row::owner` indexes them).
fn plan<'a>(p: &ActionsParams, ctx: &Context, x: &Inputs<'a>) -> (Vec<Row>, Vec<&'a str>) {
    let n = x.n;
    let mut rows: Vec<Row> = (0..n)
        .into_par_iter()
        .filter(|&i| x.served.get(i).copied().unwrap_or(false))
        .fold(Vec::new, |mut rows, i| {
            client_actions(p, ctx, x, i, &mut rows);
            rows
        })
        .reduce(Vec::new, |mut a, mut b| {
            a.append(&mut b);
            a
        });
    // Owners numbered as first met, then by name: one lookup per row in a map of the
    // accountants (at 1M clients a set and a map of every row's owner took 90 ms).
    let mut met: HashMap<&str, u32, foldhash::fast::RandomState> = HashMap::default();
    let mut owners: Vec<&str> = Vec::new();
    for r in rows.iter_mut() {
        let o = owner_of(r, x);
        let next = owners.len() as u32;
        r.owner = *met.entry(o).or_insert_with(|| {
            owners.push(o);
            next
        });
    }
    let mut order: Vec<u32> = (0..owners.len() as u32).collect();
    order.sort_unstable_by_key(|&k| owners.get(k as usize).copied().unwrap_or(""));
    let mut rank = vec![u32::MAX; owners.len()];
    for (at, &k) in order.iter().enumerate() {
        if let Some(slot) = rank.get_mut(k as usize) {
            *slot = at as u32;
        }
    }
    let owners: Vec<&str> = order.iter().filter_map(|&k| owners.get(k as usize).copied()).collect();
    rows.par_iter_mut()
        .for_each(|r| r.owner = rank.get(r.owner as usize).copied().unwrap_or(u32::MAX));
    // Most urgent first, then by due date, accountant, client and type (by name), as one
    // number (at 1M actions 80 ms; comparing tuples, 130 ms).
    let by_name: [u8; 6] =
        std::array::from_fn(|k| TYPES.iter().filter(|t| TYPES.get(k).is_some_and(|me| *t < me)).count() as u8);
    rows.par_sort_unstable_by_key(|r| {
        let due = (r.due.num_days_from_ce() as i64 - i32::MIN as i64) as u128;
        (r.priority as u128) << 104
            | due << 72
            | (r.owner as u128) << 40
            | (r.client as u128) << 8
            | by_name.get(r.kind as usize).copied().unwrap_or(0) as u128
    });
    (rows, owners)
}

/// Per accountant (proposed, else current): clients still served by value tier and
/// their hours a month; capacities when the allocation ran.
struct Book<'a> {
    /// Value tiers in order: (id, English name, Chinese name).
    tiers: Vec<(String, String, String)>,
    /// Clients per tier, in the order of `tiers`, and hours a month.
    clients: HashMap<&'a str, (Vec<usize>, f64), foldhash::fast::RandomState>,
    capacity: Option<HashMap<String, f64>>,
}

fn accountant_book<'a>(ctx: &Context, x: &Inputs<'a>) -> Result<Book<'a>, AnalysisError> {
    let tiers: Vec<(String, String, String)> = ctx
        .segmentation("value")?
        .map(|s| {
            s.model
                .segments
                .iter()
                .map(|g| (g.id.clone(), g.name_en.clone(), g.name_zh.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut clients: HashMap<&'a str, (Vec<usize>, f64), foldhash::fast::RandomState> = HashMap::default();
    for i in (0..x.n).filter(|&i| x.served.get(i).copied().unwrap_or(false)) {
        let e = clients.entry(x.owner(i)).or_insert_with(|| (vec![0; tiers.len()], 0.0));
        if let Some(c) = tiers
            .iter()
            .position(|t| t.0 == x.tiers[i])
            .and_then(|k| e.0.get_mut(k))
        {
            *c += 1;
        }
        if x.hours[i].is_finite() {
            e.1 += x.hours[i];
        }
    }
    let capacity = ctx.table("allocation", "workload")?.and_then(|w| {
        let names = w.column("accountant").ok()?.str().ok()?.clone();
        let cap = w.column("capacity_hours").ok()?.cast(&DataType::Float64).ok()?;
        let cap = cap.f64().ok()?.clone();
        Some(
            names
                .iter()
                .zip(cap.iter())
                .filter_map(|(n, c)| Some((n?.to_string(), c?)))
                .collect(),
        )
    });
    Ok(Book {
        tiers,
        clients,
        capacity,
    })
}

/// accountants.parquet: per accountant (proposed, else current), the clients they will
/// serve by value tier (`clients_V1` ...) and their hours a month; the pages in actions/
/// are drawn from it.
fn book_frame(book: &Book) -> PolarsResult<DataFrame> {
    let mut names: Vec<&str> = book.clients.keys().copied().collect();
    names.sort_unstable();
    let mine = |o: &str| book.clients.get(o);
    let mut columns = vec![
        Column::new("accountant".into(), &names),
        Column::new(
            "monthly_hours".into(),
            names.iter().map(|o| mine(o).map_or(0.0, |m| m.1)).collect::<Vec<f64>>(),
        ),
    ];
    for (k, (id, _, _)) in book.tiers.iter().enumerate() {
        columns.push(Column::new(
            format!("clients_{id}").into(),
            names
                .iter()
                .map(|o| mine(o).and_then(|m| m.0.get(k)).copied().unwrap_or(0) as u32)
                .collect::<Vec<u32>>(),
        ));
    }
    DataFrame::new(names.len(), columns)
}

/// Client columns gathered by row: views into the table's own text, not copies.
fn gathered(rows: &[Row], at: &IdxCa, ca: &StringChunked, name: &str) -> Column {
    ca.take(at)
        .map(|c| c.with_name(name.into()).into_column())
        .unwrap_or_else(|_| Column::full_null(name.into(), rows.len(), &DataType::String))
}

/// A column of few distinct words, picked by index rather than written per row.
fn picked(rows: &[Row], name: &str, words: &[&str], of: &(dyn Fn(&Row) -> usize + Sync)) -> Column {
    let all = StringChunked::from_iter_values(name.into(), words.iter().copied());
    all.take(&IdxCa::from_vec(
        "".into(),
        rows.iter().map(|r| of(r) as IdxSize).collect(),
    ))
    .map(|c| c.into_column())
    .unwrap_or_else(|_| Column::full_null(name.into(), rows.len(), &DataType::String))
}

/// Text written per row, in parallel pieces.
fn written(rows: &[Row], name: &str, write: &(dyn Fn(&mut String, &Row) + Sync)) -> Column {
    let pieces: Vec<StringChunked> = rows
        .par_chunks(1 << 16)
        .map(|part| {
            let mut b = StringChunkedBuilder::new(name.into(), part.len());
            let mut buf = String::new();
            for r in part {
                buf.clear();
                write(&mut buf, r);
                b.append_value(&buf);
            }
            b.finish()
        })
        .collect();
    let mut all = StringChunked::full_null(name.into(), 0);
    for piece in &pieces {
        if all.append(piece).is_err() {
            return Column::full_null(name.into(), rows.len(), &DataType::String);
        }
    }
    // One piece, as the other columns are: the CSV writer aligns pieces by copying.
    all.rechunk().into_owned().into_column()
}

/// actions.csv's ten columns, then the CRM task import's own two (Subject, Priority).
fn list_columns(p: &ActionsParams, texts: &Texts, x: &Inputs, rows: &[Row], owners: &[&str], zh: bool) -> Vec<Column> {
    let at = IdxCa::from_vec("".into(), rows.iter().map(|r| r.client as IdxSize).collect());
    let words: Vec<&str> = TYPES
        .iter()
        .map(|k| if zh { type_words(k).1 } else { type_words(k).0 })
        .collect();
    let kind = |r: &Row| r.kind as usize;
    let mut days: Vec<NaiveDate> = rows.iter().map(|r| r.due).collect();
    days.sort_unstable();
    days.dedup();
    let day_names: Vec<String> = days.iter().map(|d| d.to_string()).collect();
    let day_names: Vec<&str> = day_names.iter().map(|d| d.as_str()).collect();
    let names = cells(&texts.names);
    // The columns are built side by side: at a million actions, one after the other
    // took most of a second.
    let build = |k: usize| -> Column {
        match k {
            0 => gathered(rows, &at, &texts.ids, "client_id"),
            1 => gathered(rows, &at, &texts.names, "name"),
            2 => picked(rows, "owner", owners, &|r| r.owner as usize),
            3 => picked(rows, "action", &TYPES, &kind),
            4 => picked(rows, "action_words", &words, &kind),
            5 => picked(rows, "due_date", &day_names, &|r| {
                days.binary_search(&r.due).unwrap_or(0)
            }),
            6 => Column::new(
                "priority".into(),
                rows.iter().map(|r| r.priority as u32).collect::<Vec<_>>(),
            ),
            7 => written(rows, "reason", &|buf, r| reason_into(buf, r, p, x, zh)),
            8 => Column::new(
                "figure".into(),
                rows.iter()
                    .map(|r| r.amount.is_finite().then(|| (r.amount * 1e4).round() / 1e4))
                    .collect::<Vec<_>>(),
            ),
            9 => Column::new(
                "value_tier".into(),
                rows.iter().map(|r| x.tiers[r.client as usize]).collect::<Vec<_>>(),
            ),
            10 => written(rows, "Subject", &|buf, r| {
                buf.push_str(words.get(r.kind as usize).copied().unwrap_or(""));
                let name = names.get(r.client as usize).copied().unwrap_or("");
                if !name.is_empty() {
                    buf.push_str(": ");
                    buf.push_str(name);
                }
            }),
            _ => picked(rows, "Priority", &["High", "Normal", "Low"], &|r| {
                (r.priority as usize).clamp(1, 3) - 1
            }),
        }
    };
    (0..12).into_par_iter().map(build).collect()
}

/// labels.csv's actions_due: per client, the actions due, most urgent first.
fn due_column(rows: &[Row], n: usize) -> Column {
    // Type numbers 3 bits each (a client has at most one action of each of the six types).
    let mut due_kinds: Vec<(u32, u8)> = vec![(0, 0); n];
    for r in rows {
        let k = r.kind as u32 + 1;
        if let Some((bits, count)) = due_kinds.get_mut(r.client as usize) {
            if *count < 10 {
                *bits |= k << (3 * *count as u32);
                *count += 1;
            }
        }
    }
    let mut due_column = StringChunkedBuilder::new("actions_due".into(), n);
    let mut buf = String::new();
    for (bits, count) in &due_kinds {
        if *count == 0 {
            due_column.append_null();
            continue;
        }
        buf.clear();
        for j in 0..*count as u32 {
            let k = ((bits >> (3 * j)) & 7) as usize;
            if j > 0 {
                buf.push(';');
            }
            buf.push_str(TYPES.get(k.wrapping_sub(1)).copied().unwrap_or(""));
        }
        due_column.append_value(&buf);
    }
    due_column.finish().into_column()
}

fn outcome(
    ctx: &Context,
    p: &ActionsParams,
    texts: &Texts,
    x: &Inputs,
    rows: &[Row],
    owners: &[&str],
    book: Book,
) -> Outcome {
    // The tiers as the pages show them: Chinese names, or the id and English name.
    let shown_tiers: Vec<(String, String)> = book
        .tiers
        .iter()
        .map(|(id, en, zh)| {
            let shown = match ctx.lang {
                Lang::Zh => zh.clone(),
                Lang::En => format!("{id} {en}"),
            };
            (id.clone(), shown)
        })
        .collect();
    let mut out = Outcome::empty("actions");
    out.declared = declared();
    out.table_names = vec![
        TableName {
            name: "actions".into(),
            en: "actions".into(),
            zh: "行动清单".into(),
        },
        TableName {
            name: "crm_tasks".into(),
            en: "CRM tasks".into(),
            zh: "CRM任务导入".into(),
        },
    ];
    // One task per client and action type in the CRM's database.
    out.tasks = vec![TaskTable {
        table: "client_action".into(),
        export: "actions".into(),
        columns: [
            ("client_id", SqlType::Text),
            ("action", SqlType::Text),
            ("owner", SqlType::Text),
            ("due_date", SqlType::Text),
            ("priority", SqlType::Integer),
            ("reason", SqlType::Text),
            ("figure", SqlType::Double),
        ]
        .map(|(c, ty)| (c.to_string(), ty))
        .to_vec(),
        key: 2,
    }];
    let t = ctx.table;
    let n = t.df.height();
    let zh = ctx.lang == Lang::Zh;
    // The per-client summary of the list is written beside the list's columns.
    let (mut columns, due) = rayon::join(|| list_columns(p, texts, x, rows, owners, zh), || due_column(rows, n));
    let task_columns = columns.split_off(10);
    let table = DataFrame::new_infer_height(columns);
    out.columns = vec![due];
    let mut counted: Vec<[usize; 6]> = vec![[0; 6]; owners.len()];
    for r in rows {
        if let Some(c) = counted
            .get_mut(r.owner as usize)
            .and_then(|c| c.get_mut(r.kind as usize))
        {
            *c += 1;
        }
    }
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_owner: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for (o, c) in owners.iter().zip(&counted) {
        let mine = by_owner.entry(o).or_default();
        for (k, n) in TYPES.iter().zip(c).filter(|(_, n)| **n > 0) {
            *by_type.entry(k).or_default() += n;
            mine.insert(k, *n);
        }
    }
    let total = rows.len();
    let owners = by_owner.len();
    out.headline = Some(headline(&by_type, total, owners));
    out.summary = Some(serde_json::json!({
        "actions": total,
        "accountants": owners,
        "by_type": by_type,
        "contacts_table": ctx.input("contacts").is_some(),
        "contact_months": p.contact_months,
        "horizon_days": p.horizon_days,
    }));
    // This month, by accountant: the busiest 30 by actions, with the clients each will
    // serve by tier and the hours they take.
    if let Ok(df) = book_frame(&book) {
        out.tables.push(("accountants".into(), df));
    }
    let (shown, header, table_rows) = by_accountant(&by_owner, &book);
    out.section = Some(Section {
        id: "actions".into(),
        title: ("This month, by accountant".into(), "本月行动，按会计".into()),
        lines: vec![section_line(ctx, p, &book, total, owners)],
        tables: vec![SectionTable {
            caption: (
                format!("Actions, clients by tier and hours per accountant (the {shown} with the most actions; every accountant has a page in actions/)"),
                format!("各会计的行动、各层级客户数和工时（行动最多的前 {shown} 位；每位会计的完整清单见 actions/ 文件夹）"),
            ),
            header,
            rows: table_rows,
        }],
    });
    // The same list as a CRM's task import (Zoho CRM Tasks' columns as the template).
    if let (Ok(df), Ok([subject, priority])) = (&table, <[Column; 2]>::try_from(task_columns)) {
        if let Some(tasks) = crm_tasks(df, subject, priority) {
            out.imports.push(("crm_tasks".into(), tasks));
        }
    }
    if let Ok(df) = table {
        // Each accountant's page, written beside the run's tables.
        let accountants = out
            .tables
            .iter()
            .find(|(n, _)| n == "accountants")
            .map(|(_, d)| d.clone());
        let (actions, lang, snapshot) = (df.clone(), ctx.lang, ctx.table.snapshot.to_string());
        out.pages = Some(Pages {
            folder: "actions".into(),
            write: Box::new(move |dir| {
                pages::write_pages(dir, &actions, accountants.as_ref(), &shown_tiers, lang, &snapshot)
            }),
        });
        out.exports.push(("actions".into(), df));
    }
    out
}

/// The report section's line: how many actions, by when, the contact cycles, and where
/// the last contacts come from.
fn section_line(ctx: &Context, p: &ActionsParams, book: &Book, total: usize, owners: usize) -> (String, String) {
    let t = ctx.table;
    (
    format!(
        "{total} actions due by {} for {owners} accountants, in actions.csv and actions.xlsx (one row per client and action type, most urgent first). Contact cycles: {}; {}.",
        t.snapshot + chrono::Duration::days(p.horizon_days),
        p.contact_months.iter().map(|(k, v)| format!("{k} every {v} months")).collect::<Vec<_>>().join(", "),
        if ctx.input("contacts").is_some() { "last contacts from the contacts table" } else { "no contacts table, so each cycle starts at the snapshot" }
    ),
    format!(
        "截至 {} 共 {total} 项行动，涉及 {owners} 位会计，见 actions.csv 和 actions.xlsx（每个客户每类行动一行，按紧急程度排序）。沟通周期：{}；{}。",
        t.snapshot + chrono::Duration::days(p.horizon_days),
        p.contact_months
            .iter()
            .map(|(k, v)| {
                let name = book.tiers.iter().find(|(id, _, _)| id == k).map_or(k.as_str(), |(_, _, zh)| zh.as_str());
                format!("{name}每 {v} 个月")
            })
            .collect::<Vec<_>>()
            .join("，"),
        if ctx.input("contacts").is_some() { "上次联系日期取自联系记录" } else { "无联系记录，周期从数据截止日起算" }
    ),
)
}

/// The run summary's line: actions by type.
fn headline(by_type: &BTreeMap<&str, usize>, total: usize, owners: usize) -> (String, String) {
    (
        format!(
            "actions: {total} for {owners} accountants ({})",
            TYPES
                .iter()
                .filter_map(|k| by_type.get(k).map(|c| format!("{c} {}", type_words(k).0)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "行动清单：{owners} 位会计共 {total} 项（{}）",
            TYPES
                .iter()
                .filter_map(|k| by_type.get(k).map(|c| format!("{}{c}项", type_words(k).1)))
                .collect::<Vec<_>>()
                .join("，")
        ),
    )
}

/// The report's table: per accountant (the busiest 30), actions by type, clients by tier,
/// hours a month and utilisation. Returns how many are shown, the header and the rows.
#[allow(clippy::type_complexity)]
fn by_accountant(
    by_owner: &BTreeMap<&str, BTreeMap<&str, usize>>,
    book: &Book,
) -> (usize, Vec<(String, String)>, Vec<Vec<(String, String)>>) {
    let mut owners_sorted: Vec<(&str, usize)> = by_owner.iter().map(|(o, m)| (*o, m.values().sum::<usize>())).collect();
    owners_sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown = owners_sorted.len().min(30);
    let mut header = vec![
        ("accountant".to_string(), "会计".to_string()),
        ("actions".into(), "行动数".into()),
    ];
    header.extend(
        TYPES
            .iter()
            .map(|k| (type_words(k).0.to_string(), type_words(k).1.to_string())),
    );
    header.extend(book.tiers.iter().map(|(id, en, zh)| {
        let zh = if zh.ends_with("客户") {
            format!("{zh}数")
        } else {
            format!("{zh}客户数")
        };
        (format!("{id} {en} clients"), zh)
    }));
    header.push(("hours a month".into(), "每月工时".into()));
    if book.capacity.is_some() {
        header.push(("utilisation".into(), "产能利用率".into()));
    }
    let table_rows = owners_sorted
        .iter()
        .take(shown)
        .map(|(o, c)| {
            let mut cells = vec![(o.to_string(), o.to_string()), (c.to_string(), c.to_string())];
            for k in TYPES {
                let v = by_owner.get(o).and_then(|m| m.get(k)).copied().unwrap_or(0).to_string();
                cells.push((v.clone(), v));
            }
            let mine = book.clients.get(*o);
            for k in 0..book.tiers.len() {
                let v = mine.and_then(|m| m.0.get(k)).copied().unwrap_or(0).to_string();
                cells.push((v.clone(), v));
            }
            let hours = mine.map_or(0.0, |m| m.1);
            let h = format!("{hours:.1}");
            cells.push((h.clone(), h));
            if let Some(cap) = &book.capacity {
                let u = match cap.get(*o) {
                    Some(c) if *c > 0.0 => format!("{:.0}%", hours / c * 100.0),
                    _ => "-".into(),
                };
                cells.push((u.clone(), u));
            }
            cells
        })
        .collect();
    (shown, header, table_rows)
}

/// The action list as a CRM's task import (Zoho CRM Tasks' columns).
fn crm_tasks(df: &DataFrame, subject: Column, priority: Column) -> Option<DataFrame> {
    let col = |name: &str, to: &str| df.column(name).ok().map(|c| c.clone().with_name(to.into()));
    [
        Some(subject),
        col("due_date", "Due Date"),
        Some(StringChunked::full("Status".into(), "Not Started", df.height()).into_column()),
        Some(priority),
        col("owner", "Task Owner"),
        col("client_id", "Account Number"),
        col("name", "Related To"),
        col("reason", "Description"),
    ]
    .into_iter()
    .collect::<Option<Vec<Column>>>()
    .and_then(|c| DataFrame::new(df.height(), c).ok())
}

/// The columns the action list adds to labels.csv and actions.csv, with their words.
fn declared() -> Vec<OutputColumn> {
    vec![
        OutputColumn::text("actions_due", "actions due", "待办行动"),
        OutputColumn::text("owner", "owner", "负责人"),
        OutputColumn::text("action", "action (code)", "行动类型代码"),
        OutputColumn::text("action_words", "action", "行动"),
        OutputColumn::text("due_date", "due date", "截止日期"),
        OutputColumn::number("priority", "priority", "优先级"),
        OutputColumn::number("figure", "figure", "相关数值"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_numbers_name_their_types() {
        let named = |k: u8| TYPES.get(k as usize).copied();
        assert_eq!(named(OUTREACH), Some("churn_outreach"));
        assert_eq!(named(ARREARS), Some("collect_arrears"));
        assert_eq!(named(CHASE), Some("chase_documents"));
        assert_eq!(named(HANDOVER), Some("handover"));
        assert_eq!(named(FEE), Some("fee_review"));
        assert_eq!(named(CONTACT), Some("contact"));
    }

    #[test]
    fn deadlines_move_off_weekends_and_follow_the_taxpayer() {
        // 2025-03-15 is a Saturday: the deadline is Monday the 17th.
        assert_eq!(filing_deadline(2025, 3), NaiveDate::from_ymd_opt(2025, 3, 17).unwrap());
        let s = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
        // General taxpayers file monthly: 2026-01-15 is a Thursday.
        assert_eq!(next_deadline(s, true), NaiveDate::from_ymd_opt(2026, 1, 15).unwrap());
        // Small-scale ones after the quarter: January, then April.
        assert_eq!(next_deadline(s, false), NaiveDate::from_ymd_opt(2026, 1, 15).unwrap());
        let feb = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        assert_eq!(next_deadline(feb, false), NaiveDate::from_ymd_opt(2026, 4, 15).unwrap());
        assert_eq!(next_deadline(feb, true), NaiveDate::from_ymd_opt(2026, 2, 16).unwrap());
    }
}
