//! A generated client's months: whether it leaves (the planted hazard), the work it
//! takes (vouchers, filings, questions, late documents, hours) and the invoices and
//! payments, month by month from its first month in the history.

use chrono::{Datelike, NaiveDate};
use rand::Rng;

use super::archive::{Client, Streams};
use super::{
    add_months, behaviour_of, hazard, month_no, month_start, normal, pick, poisson, Firm, HazardState, Tables,
    MISSING_HOURS_MONTHS,
};

/// What the months gave.
pub(super) struct Life {
    pub left_month: Option<NaiveDate>,
    pub hazard_sum: f64,
    pub hazard_n: usize,
    /// Expected hours of each month served: the work's mean in that month (with its
    /// trend and any spell of trouble), without the month's chance variation.
    pub expected: Vec<f64>,
}

/// What the months so far leave behind.
#[derive(Default)]
struct Past {
    /// Invoices not yet paid: (amount, paid date).
    open: Vec<(f64, Option<NaiveDate>)>,
    /// Late documents and questions of each month so far.
    late: Vec<u32>,
    tickets: Vec<u32>,
    /// Months left of a spell of trouble.
    episode_left: u32,
}

/// The client's behaviour: chance of paying late, days late, chance of not paying,
/// questions a month, chance of late documents in a month.
type Behaviour = (f64, (i64, i64), f64, f64, f64);

/// Lives the client's months into the tables.
pub(super) fn live(firm: &Firm, c: &Client, r: &mut Streams, t: &mut Tables) -> Life {
    let behaviour = behaviour_of(c.seg);
    let cycle = if c.seg == 0 {
        pick(&mut r.main, &[1, 1, 3, 6, 12, 12])
    } else {
        pick(&mut r.main, &[1, 1, 1, 1, 1, 1, 1, 3, 3, 6])
    };
    let raise_at = add_months(firm.last_month, -r.main.gen_range(6..10));
    let mut past = Past::default();
    let mut life = Life {
        left_month: None,
        hazard_sum: 0.0,
        hazard_n: 0,
        expected: Vec::new(),
    };
    let (mut m, mut k) = (c.active_from, 0);
    while m <= firm.last_month {
        if m > c.active_from {
            let h = hazard(c.seg, c.tier, &state_at(c, behaviour, m, &past));
            life.hazard_sum += h;
            life.hazard_n += 1;
            if let Some(hazards) = t.hazards.as_mut() {
                hazards.push(risk_row(c, behaviour, m, &past, h));
            }
            if r.hazard.gen_bool(h) {
                life.left_month = Some(m);
                break;
            }
        }
        life.expected
            .push(work_month(firm, c, behaviour, r, m, &mut past, &mut t.activity));
        bill_month(
            firm,
            c,
            behaviour,
            r,
            (m, k, cycle, raise_at),
            &mut past,
            &mut t.billing,
        );
        // Settled invoices no longer count towards arrears.
        let month_end = add_months(m, 1).pred_opt().unwrap_or(m);
        past.open.retain(|(_, paid)| paid.is_none_or(|d| d > month_end));
        k += 1;
        m = add_months(m, 1);
    }
    life
}

/// What the data shows at the end of the month before `m`.
fn state_at(c: &Client, behaviour: Behaviour, m: NaiveDate, past: &Past) -> HazardState {
    let cutoff = m.pred_opt().unwrap_or(m);
    let owed: f64 = past
        .open
        .iter()
        .filter(|(_, paid)| paid.is_none_or(|d| d > cutoff))
        .map(|(a, _)| *a)
        .sum();
    let recent = |v: &[u32]| v.iter().rev().take(3).copied().collect::<Vec<u32>>();
    let t3 = recent(&past.tickets);
    let mean3 = t3.iter().sum::<u32>() as f64 / t3.len().max(1) as f64;
    let months_since = |e: Option<NaiveDate>| e.map(|e| month_no(m) - month_no(e));
    HazardState {
        arrears_months: owed / c.fee.max(1.0),
        late_docs_3m: recent(&past.late).iter().sum(),
        ticket_spike: t3.len() == 3 && mean3 > 2.0 * behaviour.3 + 1.0,
        fee_raised_recently: months_since(c.raise_month).is_some_and(|d| (1..=6).contains(&d)),
        accountant_changed_recently: months_since(c.change_month).is_some_and(|d| (1..=6).contains(&d)),
        renewal_month: (month_no(m) - month_no(c.start_month)) % 12 == 0 && m > c.start_month,
        drift: c.drift_in(m),
    }
}

/// truth_hazard.csv's row: the month's hazard and the chance of leaving within 3 and 6
/// months from the end of the month before `m`, with what is known then (renewal and the
/// windows of a fee rise or a change of accountant run on by the calendar).
fn risk_row(c: &Client, behaviour: Behaviour, m: NaiveDate, past: &Past, h: f64) -> Vec<Option<String>> {
    let st = state_at(c, behaviour, m, past);
    let risk = |months: i32| {
        let mut stay = 1.0;
        for j in 0..months {
            let mut sj = state_at(c, behaviour, add_months(m, j), past);
            sj.arrears_months = st.arrears_months;
            sj.late_docs_3m = st.late_docs_3m;
            sj.ticket_spike = st.ticket_spike;
            stay *= 1.0 - hazard(c.seg, c.tier, &sj);
        }
        1.0 - stay
    };
    vec![
        Some(c.id.clone()),
        Some(add_months(m, -1).format("%Y-%m").to_string()),
        Some(format!("{h:.6}")),
        Some(format!("{:.6}", risk(3))),
        Some(format!("{:.6}", risk(6))),
    ]
}

/// The month's work into the activity table; returns its expected hours.
fn work_month(
    firm: &Firm,
    c: &Client,
    behaviour: Behaviour,
    r: &mut Streams,
    m: NaiveDate,
    past: &mut Past,
    activity: &mut super::Buf,
) -> f64 {
    let (_, _, _, ticket_rate, late_doc_p) = behaviour;
    let to_end = month_no(firm.last_month) - month_no(m);
    // Volume path: steady, falling over the last year, or growing all along.
    let trend = match c.seg {
        3 if to_end < 12 => 1.0 - 0.8 * (12 - to_end) as f64 / 12.0,
        4 => 1.07f64.powi(-(to_end)),
        _ => 1.0,
    };
    // A spell of trouble (a tax notice, a messy quarter): many questions, late documents.
    if past.episode_left == 0 && r.hazard.gen_bool(0.015) {
        past.episode_left = r.hazard.gen_range(2..5);
    }
    let (ticket_boost, late_boost) = if past.episode_left > 0 {
        past.episode_left -= 1;
        (3.0 * ticket_rate + 2.0, 0.5)
    } else {
        (0.0, 0.0)
    };
    let noise = (0.1 * normal(&mut r.main)).exp();
    let vouchers = (c.base_vouchers * trend * noise).round().max(0.0);
    let quarter_month = matches!(m.month(), 1 | 4 | 7 | 10);
    let mut filings = if c.taxpayer == "general" || quarter_month { 3 } else { 1 };
    if m.month() == 5 && c.client_type == "enterprise" {
        filings += 1;
    }
    if m.month() == 6 && c.services.contains(&"annual_report") {
        filings += 1;
    }
    let tickets = poisson(&mut r.main, ticket_rate)
        + if ticket_boost > 0.0 {
            poisson(&mut r.hazard, ticket_boost)
        } else {
            0
        };
    let late_docs = u8::from(r.main.gen_bool(late_doc_p) || (late_boost > 0.0 && r.hazard.gen_bool(late_boost)));
    past.tickets.push(tickets);
    past.late.push(u32::from(late_docs));
    // About 1-2 hours a month for a small-scale client, 3-6 for a general one.
    let spring = if matches!(m.month(), 4..=6) { 1.0 } else { 0.0 };
    let hours = (vouchers / 60.0 + filings as f64 * 0.2 + tickets as f64 * 0.2 + late_docs as f64 * 0.7 + spring * 0.5)
        * (0.1 * normal(&mut r.main)).exp();
    let hours = (c.logs_hours && !r.staff.gen_bool(MISSING_HOURS_MONTHS) && c.timed_in(firm, m)).then_some(hours);
    let s = |v: &str| Some(v.to_string());
    activity.push(vec![
        s(&c.id),
        s(&firm.w.month(m)),
        Some(format!("{vouchers:.0}")),
        Some(filings.to_string()),
        hours.map(|h| format!("{h:.1}")),
        Some(tickets.to_string()),
        Some(late_docs.to_string()),
        s(c.accountant_in(firm, m)),
    ]);
    c.base_vouchers * trend / 60.0
        + filings as f64 * 0.2
        + (ticket_rate + ticket_boost) * 0.2
        + (late_doc_p + (1.0 - late_doc_p) * late_boost) * 0.7
        + spring * 0.5
}

/// The month's invoices (one per billing cycle, plus the spring one-off services) and
/// their payments into the billing table.
fn bill_month(
    firm: &Firm,
    c: &Client,
    behaviour: Behaviour,
    r: &mut Streams,
    (m, k, cycle, raise_at): (NaiveDate, usize, usize, NaiveDate),
    past: &mut Past,
    billing: &mut super::Buf,
) {
    let (pay_late_p, late_days, unpaid_p, _, _) = behaviour;
    let rng = &mut r.main;
    let mut invoices: Vec<(f64, &str)> = Vec::new();
    if k % cycle == 0 {
        let months_billed = cycle as f64;
        let mut monthly = if c.seg == 4 && m >= raise_at {
            c.fee * 1.4
        } else {
            c.fee
        };
        if c.raise_month.is_some_and(|rm| m >= rm) {
            monthly *= c.raise_factor;
        }
        let discount = if cycle == 12 { 0.95 } else { 1.0 };
        invoices.push((
            (monthly * months_billed * discount / 10.0).round() * 10.0,
            "bookkeeping",
        ));
    }
    if m.month() == 5 && c.client_type == "enterprise" {
        let amount = if c.taxpayer == "general" {
            rng.gen_range(800.0..2000.0)
        } else {
            rng.gen_range(300.0..800.0)
        };
        invoices.push(((amount / 10.0f64).round() * 10.0, "annual_reconciliation"));
    }
    if m.month() == 6 && c.services.contains(&"annual_report") {
        invoices.push(((rng.gen_range(200.0..500.0) / 10.0f64).round() * 10.0, "annual_report"));
    }
    if m == month_start(c.start) {
        invoices.push(((rng.gen_range(500.0..1000.0) / 10.0f64).round() * 10.0, "registration"));
    }
    let (w, s) = (&firm.w, |v: &str| Some(v.to_string()));
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
        let paid = paid.filter(|d| *d <= firm.p.end);
        past.open.push((amount, paid));
        billing.push(vec![
            s(&c.id),
            s(&w.date(invoice)),
            Some(format!("{amount:.0}")),
            s(service),
            s(&w.date(due)),
            paid.map(|d| w.date(d)),
        ]);
    }
}
