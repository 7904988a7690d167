//! Who a generated client is: its planted segment and value tier, the archive's row
//! (type, taxpayer, size, place, services, start), its accountants and the events of its
//! history (a fee rise, a change of accountant). Each part draws from its own stream.

use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{
    add_months, behaviour_of, month_start, pick, pricing, weighted, Firm, ACCOUNTANTS, INDUSTRIES, NO_HOURS_SHARE,
    PLACES, PLANTED, PLANTED_SHARE, TRADE_NAMES, VALUE_SHARE,
};

/// The random streams a client's months go on drawing from.
pub(super) struct Streams {
    /// The archive, the work and the invoices.
    pub main: Xoshiro256PlusPlus,
    /// Leaving, spells of trouble.
    pub hazard: Xoshiro256PlusPlus,
    /// Which months go without a time sheet.
    pub staff: Xoshiro256PlusPlus,
}

/// A client as drawn, before its months.
pub(super) struct Client {
    pub id: String,
    /// The planted behaviour segment (after a planted change, with `--changed`).
    pub seg: usize,
    pub changed_from: Option<&'static str>,
    pub tier: usize,
    pub client_type: &'static str,
    pub taxpayer: &'static str,
    pub fee: f64,
    pub planted_underpriced: bool,
    /// The hours a month the fee was agreed for.
    pub expected_hours: f64,
    pub base_vouchers: f64,
    pub n_extra: usize,
    pub services: Vec<&'static str>,
    pub name: String,
    pub place: (&'static str, &'static str),
    pub industry: &'static str,
    pub employees: i64,
    pub revenue: f64,
    pub international: bool,
    pub start: NaiveDate,
    pub start_month: NaiveDate,
    /// The first month of the history it is served in.
    pub active_from: NaiveDate,
    pub raise_month: Option<NaiveDate>,
    pub raise_factor: f64,
    pub change_month: Option<NaiveDate>,
    /// The accountants before and after `change_month` (rows of the roster).
    pub accountants: (usize, usize),
    pub logs_hours: bool,
    /// Log-odds `--drift` adds to its hazard in each month of the history (index 0 the
    /// first month); empty without drift.
    pub drift: Vec<f64>,
    /// `month_no` of the history's first month, where `drift` starts.
    pub drift_from: i32,
}

impl Client {
    /// Draws client `i` of the firm: the same client whatever the other flags, as far as
    /// they allow (each part has its own stream).
    pub fn draw(firm: &Firm, i: usize) -> (Client, Streams) {
        let p = firm.p;
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
        let (client_type, taxpayer, fee, base_vouchers, n_extra) = kind_of(&mut rng, tier);
        let (_, _, _, joined_tickets, joined_late) = behaviour_of(joined_as);
        let (fee, planted_underpriced, expected_hours) = pricing::agreed_fee(
            p,
            i,
            (client_type, taxpayer),
            fee,
            base_vouchers,
            (joined_tickets, joined_late),
        );
        let place = pick(&mut rng, &PLACES);
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
        let first_month = firm.first_month;
        let start = if rng.gen_bool(0.7) {
            add_months(first_month, -rng.gen_range(1..60))
        } else {
            add_months(first_month, rng.gen_range(0..(p.months as i32 - 13).max(1)))
        }
        .with_day(rng.gen_range(1..28))
        .unwrap_or(first_month);
        // Churn is decided month by month (a planted hazard); a client that leaves in
        // month M has its last invoice and work month in M - 1.
        let mut hz_rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0x7F4A_C15D ^ ((i as u64) << 21));
        let start_month = month_start(start);
        let history_months = p.months as i32;
        let (raise_month, raise_factor, drift) = fee_rise(firm, i, start_month, &mut hz_rng);
        let change_month = if hz_rng.gen_bool(0.3) {
            Some(add_months(first_month, hz_rng.gen_range(1..history_months)))
        } else {
            None
        };
        // Staff draw from their own stream, so the rest of the firm is the same whatever
        // the staff list.
        let _ = pick(&mut rng, &ACCOUNTANTS);
        let mut st_rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0x0A55_16E5 ^ ((i as u64) << 22));
        let international = st_rng.gen_bool(0.03);
        let roster = &firm.roster;
        let first = roster.pick(&mut st_rng, taxpayer == "general", international, tier == 0);
        let second = {
            let mut k = roster.pick(&mut st_rng, taxpayer == "general", international, tier == 0);
            if k == first && roster.names.len() > 1 {
                k = (k + 1) % roster.names.len();
            }
            k
        };
        let _ = hz_rng.gen_range(0..ACCOUNTANTS.len() - 1);
        let logs_hours = !st_rng.gen_bool(NO_HOURS_SHARE);
        let name = name_of(&mut rng, client_type, place.1, industry);
        let _ = rng.gen_bool(0.03);
        let client = Client {
            id,
            seg,
            changed_from,
            tier,
            client_type,
            taxpayer,
            fee,
            planted_underpriced,
            expected_hours,
            base_vouchers,
            n_extra,
            services,
            name,
            place,
            industry,
            employees,
            revenue,
            international,
            start,
            start_month,
            active_from: start_month.max(first_month),
            raise_month,
            raise_factor,
            change_month,
            accountants: (first, second),
            logs_hours,
            drift,
            drift_from: super::month_no(first_month),
        };
        let streams = Streams {
            main: rng,
            hazard: hz_rng,
            staff: st_rng,
        };
        (client, streams)
    }

    /// The log-odds `--drift` adds in month `m` (months past the history keep the last).
    pub fn drift_in(&self, m: NaiveDate) -> f64 {
        let k = (super::month_no(m) - self.drift_from).max(0) as usize;
        self.drift.get(k).or(self.drift.last()).copied().unwrap_or(0.0)
    }

    /// The accountant serving in month `m`.
    pub fn accountant_in<'f>(&self, firm: &'f Firm, m: NaiveDate) -> &'f str {
        let k = match self.change_month {
            Some(c) if m >= c => self.accountants.1,
            _ => self.accountants.0,
        };
        firm.roster.names.get(k).map_or("", String::as_str)
    }

    /// Whether the accountant serving in month `m` keeps time sheets.
    pub fn timed_in(&self, firm: &Firm, m: NaiveDate) -> bool {
        let k = match self.change_month {
            Some(c) if m >= c => self.accountants.1,
            _ => self.accountants.0,
        };
        !firm.roster.untimed.get(k).copied().unwrap_or(false)
    }

    /// Its row of clients.csv (contract_end is set once its months are known).
    pub fn archive_row(&self, firm: &Firm) -> Vec<Option<String>> {
        let (p, w) = (firm.p, &firm.w);
        let s = |v: &str| Some(v.to_string());
        let ct_text = match self.client_type {
            "enterprise" => "企业",
            "individual_business" => "个体工商户",
            _ => "个人",
        };
        let tp_text = if self.taxpayer == "general" {
            "一般纳税人"
        } else {
            "小规模纳税人"
        };
        vec![
            s(&self.id),
            s(&self.name),
            s(if p.chinese { ct_text } else { self.client_type }),
            s(if p.chinese { tp_text } else { self.taxpayer }),
            s(self.industry),
            s(self.place.0),
            s(self.place.1),
            s(if self.international { "true" } else { "false" }),
            Some(self.employees.to_string()),
            Some(format!("{:.0}", self.revenue)),
            s(&self.services.join(";")),
            s(&w.date(self.start)),
            None,
            Some(format!("{:.0}", self.fee)),
            s(self.accountant_in(firm, firm.last_month)),
        ]
    }
}

/// Who the client is follows from the planted value tier: (type, taxpayer, a fee by
/// tier, vouchers a month, extra services).
fn kind_of(rng: &mut impl Rng, tier: usize) -> (&'static str, &'static str, f64, f64, usize) {
    match tier {
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
    }
}

/// A name as the archive holds it: a company, a shop, or a person.
fn name_of(rng: &mut impl Rng, client_type: &str, city: &str, industry: &str) -> String {
    match client_type {
        "person" => format!("{}（个人）", pick(rng, &ACCOUNTANTS)),
        "individual_business" => format!("{}{}{}", city.trim_end_matches('市'), pick(rng, &TRADE_NAMES), "经营部"),
        _ => format!(
            "{}{}{}有限公司",
            city.trim_end_matches('市'),
            pick(rng, &TRADE_NAMES),
            &industry.chars().take(2).collect::<String>()
        ),
    }
}

/// A client's fee rise (its month and factor) and the log-odds `--drift` adds to its
/// hazard month by month: a fee-rise wave may move the rise, the trend and the cohort
/// add to the hazard. The drift draws from its own stream, so the same seed without it
/// is the same firm.
fn fee_rise(
    firm: &Firm,
    i: usize,
    start_month: NaiveDate,
    hz_rng: &mut Xoshiro256PlusPlus,
) -> (Option<NaiveDate>, f64, Vec<f64>) {
    let p = firm.p;
    let history_months = p.months as i32;
    let raise_month = if hz_rng.gen_bool(0.25) {
        Some(add_months(firm.first_month, hz_rng.gen_range(0..history_months)))
    } else {
        None
    };
    let raise_factor = hz_rng.gen_range(1.15..1.4);
    let d = p.drift;
    let raise_month = if d.fee_wave > 0.0 {
        let mut wave_rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0x5EED_D21F ^ ((i as u64) << 23));
        if wave_rng.gen_bool(d.fee_wave) {
            Some(add_months(firm.last_month, -12))
        } else {
            raise_month
        }
    } else {
        raise_month
    };
    let drift = if d == super::Drift::default() {
        Vec::new()
    } else {
        let late_joiner = start_month > add_months(firm.last_month, -18);
        let span = (history_months - 1).max(1) as f64;
        (0..history_months)
            .map(|k| d.trend * k as f64 / span + if late_joiner { d.cohort } else { 0.0 })
            .collect()
    };
    (raise_month, raise_factor, drift)
}
