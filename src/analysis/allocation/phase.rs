//! Handovers in phases: a firm can absorb only so many handovers a month, so the plan's
//! moves are spread over months, the most needed first (clients whose accountant left or
//! may not keep them, then those of the accountants furthest over the cap).
//!
//! The schedule moves exactly the plan's clients. Each month first takes the moves of
//! accountants who would otherwise miss the fewest months the limits allow, then the
//! others in order of need while the limits allow and the receiving accountant stays
//! within its cap (or within where the plan leaves it). A month that can take nothing
//! within the caps takes moves regardless, so the schedule always ends.

use serde::Serialize;

use super::solve::{forced_out, loads, Job, Member};

/// How many handovers a firm can absorb in a month; None for no limit.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Limits {
    /// Handovers a month, firm-wide.
    pub moves_per_month: Option<usize>,
    /// Handovers a month an active accountant gives or takes (an accountant who has left
    /// counts for nobody: the receiver does the work).
    pub per_accountant: Option<usize>,
}

/// One month of the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Month {
    pub month: u32,
    pub handovers: usize,
    /// The busiest active accountant's utilisation at the month's end (a share).
    pub peak_utilisation: f64,
    /// Active accountants over the cap at the month's end.
    pub over_cap: usize,
    /// Clients still with an accountant who has left or may not keep them.
    pub misplaced: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    pub limits: Limits,
    /// Per job, the month its handover is planned (1 = this month); None when it stays.
    #[serde(skip)]
    pub month_of: Vec<Option<u32>>,
    pub months: u32,
    /// No schedule of these moves within the limits takes fewer months.
    pub months_for_these_moves: u32,
    /// No plan that meets the caps and rules, within the limits, takes fewer months.
    pub months_lower_bound: u32,
    /// The first month at whose end nobody is over the cap and every client is with an
    /// accountant who may keep them; None when the plan never gets there.
    pub cap_reached: Option<u32>,
    pub path: Vec<Month>,
    /// Loads per accountant at the end of each of the first `KEEP_LOADS` months.
    #[serde(skip)]
    pub loads: Vec<Vec<f64>>,
}

/// Months whose per-accountant loads are kept (workload.csv has a column per month).
pub const KEEP_LOADS: usize = 36;

fn div_ceil(a: usize, b: usize) -> usize {
    if b == 0 {
        0
    } else {
        a.div_ceil(b)
    }
}

/// The client is with nobody, an accountant who has left, or one who may not keep it.
fn misplaced(staff: &[Member], job: &Job, at: Option<usize>) -> bool {
    at.and_then(|a| staff.get(a)).is_none_or(|m| !m.eligible(job.needs))
}

/// The plan's moves, the most needed first: 0 = the client's accountant left or may not
/// keep it; 1 = its accountant is over the cap (the further over, the sooner); 2 = the
/// rest (chains that make room). Larger clients first within a need.
fn by_need(staff: &[Member], jobs: &[Job], proposed: &[Option<usize>], cap: &[f64], before: &[f64]) -> Vec<usize> {
    let n_staff = staff.len();
    let over = |a: usize| {
        if cap[a] > 0.0 {
            before[a] / cap[a]
        } else {
            f64::INFINITY
        }
    };
    let mut moves: Vec<usize> = (0..jobs.len())
        .filter(|&i| matches!(proposed.get(i), Some(Some(a)) if Some(*a) != jobs[i].current && *a < n_staff))
        .collect();
    let need = |i: usize| -> (u8, f64) {
        match jobs[i].current.filter(|&a| a < n_staff) {
            _ if misplaced(staff, &jobs[i], jobs[i].current) => (0, 0.0),
            Some(a) if before[a] > cap[a] + 1e-9 => (1, -over(a)),
            _ => (2, 0.0),
        }
    };
    moves.sort_by(|&x, &y| {
        let (cx, ox) = need(x);
        let (cy, oy) = need(y);
        cx.cmp(&cy)
            .then(ox.total_cmp(&oy))
            .then(jobs[y].hours.total_cmp(&jobs[x].hours))
            .then(x.cmp(&y))
    });
    moves
}

/// No plan that meets the caps and rules takes fewer months within the limits: the
/// fewest moves any such plan needs, and the clients each accountant must give up.
fn lower_bound(staff: &[Member], jobs: &[Job], max_util: f64, moves_bound: f64, limits: Limits) -> usize {
    let per_acc = limits.per_accountant.filter(|&h| h > 0);
    let per_month = limits.moves_per_month.filter(|&l| l > 0);
    let (forced, _) = forced_out(staff, jobs, max_util);
    let bound = moves_bound.max(0.0).ceil() as usize;
    div_ceil(bound, per_month.unwrap_or(usize::MAX))
        .max(per_acc.map_or(0, |h| forced.iter().map(|&d| div_ceil(d, h)).max().unwrap_or(0)))
        .max(usize::from(bound > 0))
}

/// A month's record at its end: the busiest active accountant and who is over the cap.
fn month_end(staff: &[Member], load: &[f64], cap: &[f64], month: u32, handovers: usize, misplaced: usize) -> Month {
    let peak = staff
        .iter()
        .zip(load)
        .filter(|(s, _)| s.active && s.capacity > 0.0)
        .map(|(s, l)| l / s.capacity)
        .fold(0.0, f64::max);
    let over_cap = (0..staff.len())
        .filter(|&a| staff[a].active && load[a] > cap[a] + 1e-9)
        .count();
    Month {
        month,
        handovers,
        peak_utilisation: peak,
        over_cap,
        misplaced,
    }
}

/// The schedule as it is built, month by month.
struct Builder<'a> {
    staff: &'a [Member],
    jobs: &'a [Job],
    proposed: &'a [Option<usize>],
    cap: Vec<f64>,
    /// Loads once the whole plan is done: a receiver may go up to these.
    after: Vec<f64>,
    per_acc: Option<usize>,
    per_month: Option<usize>,
    /// Months the schedule aims to finish in.
    target: usize,
    load: Vec<f64>,
    month_of: Vec<Option<u32>>,
    /// Handovers each accountant still has to give or take.
    degree: Vec<usize>,
    /// Clients with an accountant who has left or may not keep them, kept up to date as
    /// they move (counting them each month would cost a pass over every client).
    wrong: usize,
}

impl Builder<'_> {
    fn counted(&self, a: Option<usize>) -> Option<usize> {
        a.filter(|&a| a < self.staff.len() && self.staff[a].active)
    }

    fn counts_as_wrong(&self, i: usize, at: Option<usize>) -> bool {
        at.is_some() && misplaced(self.staff, &self.jobs[i], at)
    }

    /// One pass over the moves left in month `m`: takes those the limits allow (only the
    /// accountants' that must use every slot to finish in time when `critical_only`;
    /// only into room under the caps when `within_caps`). Returns how many it took.
    fn sweep(
        &mut self,
        left: &[usize],
        m: usize,
        used: &mut [usize],
        critical_only: bool,
        within_caps: bool,
        taken: &mut usize,
    ) -> usize {
        let mut took = 0;
        for &i in left {
            if self.per_month.is_some_and(|l| *taken >= l) {
                break;
            }
            if self.month_of[i].is_some() {
                continue;
            }
            let job = &self.jobs[i];
            let (from, to) = (self.counted(job.current), self.proposed[i]);
            let ends = [from, to];
            if let Some(h) = self.per_acc {
                if ends.iter().flatten().any(|&a| used[a] >= h) {
                    continue;
                }
                if critical_only {
                    let slack = self.target.saturating_sub(m) * h;
                    if !ends.iter().flatten().any(|&a| self.degree[a] > slack) {
                        continue;
                    }
                }
            } else if critical_only {
                continue;
            }
            let Some(r) = to else { continue };
            if within_caps && self.load[r] + job.hours > self.cap[r].max(self.after[r]) + 1e-6 {
                continue;
            }
            self.month_of[i] = Some(m as u32);
            *taken += 1;
            took += 1;
            if let Some(a) = job.current.filter(|&a| a < self.staff.len()) {
                self.load[a] -= job.hours;
            }
            self.load[r] += job.hours;
            match (self.counts_as_wrong(i, job.current), self.counts_as_wrong(i, Some(r))) {
                (true, false) => self.wrong -= 1,
                (false, true) => self.wrong += 1,
                _ => {}
            }
            for a in ends.into_iter().flatten() {
                used[a] += 1;
                self.degree[a] = self.degree[a].saturating_sub(1);
            }
        }
        took
    }

    /// Month `m`: moves of accountants who must use every slot this month to finish in
    /// `target` months come first, then the rest by need, within the caps; sweeps repeat
    /// while they take moves (a client leaving makes room for one arriving). Then the
    /// first kind again even when the receiver is briefly over its cap, and for a month
    /// that took nothing, any move regardless of the caps. Returns the handovers taken.
    fn month(&mut self, left: &[usize], m: usize) -> usize {
        let mut used = vec![0usize; self.staff.len()];
        let mut taken = 0usize;
        for within_caps in [true, false] {
            loop {
                let mut took = self.sweep(left, m, &mut used, true, within_caps, &mut taken);
                while self.sweep(left, m, &mut used, true, true, &mut taken)
                    + self.sweep(left, m, &mut used, false, true, &mut taken)
                    > 0
                {
                    took += 1;
                }
                if took == 0 {
                    break;
                }
            }
        }
        if taken == 0 {
            self.sweep(left, m, &mut used, false, false, &mut taken);
        }
        taken
    }
}

/// Spreads the moves of `proposed` over months within `limits`.
pub fn schedule(
    staff: &[Member],
    jobs: &[Job],
    proposed: &[Option<usize>],
    limits: Limits,
    max_util: f64,
    moves_bound: f64,
) -> Phases {
    let n_staff = staff.len();
    let cap: Vec<f64> = staff
        .iter()
        .map(|m| if m.active { m.capacity.max(0.0) * max_util } else { 0.0 })
        .collect();
    let before = loads(staff, jobs, |i| jobs[i].current);
    let moves = by_need(staff, jobs, proposed, &cap, &before);
    let per_acc = limits.per_accountant.filter(|&h| h > 0);
    let per_month = limits.moves_per_month.filter(|&l| l > 0);
    let mut b = Builder {
        staff,
        jobs,
        proposed,
        cap,
        after: loads(staff, jobs, |i| proposed.get(i).copied().flatten()),
        per_acc,
        per_month,
        target: 0,
        load: before,
        month_of: vec![None; jobs.len()],
        degree: vec![0usize; n_staff],
        wrong: 0,
    };
    // Handovers per accountant in these moves.
    for &i in &moves {
        for a in [b.counted(jobs[i].current), proposed[i]].into_iter().flatten() {
            b.degree[a] += 1;
        }
    }
    let months_for_these = div_ceil(moves.len(), per_month.unwrap_or(usize::MAX))
        .max(per_acc.map_or(0, |h| b.degree.iter().map(|&d| div_ceil(d, h)).max().unwrap_or(0)))
        .max(usize::from(!moves.is_empty()));
    b.target = months_for_these;
    b.wrong = (0..jobs.len())
        .filter(|&i| b.counts_as_wrong(i, jobs[i].current))
        .count();
    let mut left = moves;
    let mut path = Vec::new();
    let mut kept_loads = Vec::new();
    let mut cap_reached = None;
    let mut m = 0usize;
    while !left.is_empty() {
        m += 1;
        let taken = b.month(&left, m);
        left.retain(|&i| b.month_of[i].is_none());
        let end = month_end(staff, &b.load, &b.cap, m as u32, taken, b.wrong);
        if cap_reached.is_none() && end.over_cap == 0 && b.wrong == 0 {
            cap_reached = Some(m as u32);
        }
        path.push(end);
        if kept_loads.len() < KEEP_LOADS {
            kept_loads.push(b.load.clone());
        }
    }
    Phases {
        limits,
        month_of: b.month_of,
        months: m as u32,
        months_for_these_moves: months_for_these as u32,
        months_lower_bound: lower_bound(staff, jobs, max_util, moves_bound, limits) as u32,
        cap_reached,
        path,
        loads: kept_loads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::allocation::solve::{solve, Settings, Weights};

    fn member(name: &str, capacity: f64, active: bool) -> Member {
        Member {
            name: name.into(),
            grade: "senior".into(),
            capacity,
            can: 7,
            team: "t".into(),
            active,
        }
    }

    fn settings() -> Settings {
        Settings {
            max_utilisation: 0.85,
            weights: Weights {
                continuity: 1.0,
                team: 0.1,
                balance: 0.05,
            },
            block_clients: 100_000,
        }
    }

    /// A lead with 35 clients leaves; four colleagues have room for them.
    fn lead_leaves() -> (Vec<Member>, Vec<Job>) {
        let mut staff = vec![member("lead", 160.0, false)];
        staff.extend((0..4).map(|k| member(&format!("a{k}"), 160.0, true)));
        let mut jobs: Vec<Job> = (0..35)
            .map(|_| Job {
                hours: 4.0,
                needs: 0,
                current: Some(0),
            })
            .collect();
        for a in 1..5 {
            jobs.extend((0..20).map(|_| Job {
                hours: 4.0,
                needs: 0,
                current: Some(a),
            }));
        }
        (staff, jobs)
    }

    #[test]
    fn a_monthly_limit_is_kept_and_the_fewest_months_are_used() {
        let (staff, jobs) = lead_leaves();
        let plan = solve(&staff, &jobs, &settings()).unwrap();
        assert_eq!(plan.moves, 35);
        let limits = Limits {
            moves_per_month: Some(10),
            per_accountant: None,
        };
        let p = schedule(&staff, &jobs, &plan.proposed, limits, 0.85, plan.moves_lower_bound);
        // 35 forced moves at 10 a month: no plan can finish in fewer than 4 months.
        assert_eq!(p.months_lower_bound, 4);
        assert_eq!(p.months, 4);
        assert_eq!(p.cap_reached, Some(4));
        assert!(p.path.iter().all(|m| m.handovers <= 10), "{:?}", p.path);
        assert_eq!(p.path.iter().map(|m| m.handovers).sum::<usize>(), 35);
        assert_eq!(p.path.last().map(|m| m.misplaced), Some(0));
        // Every moved client has its month; the others none.
        for (i, j) in jobs.iter().enumerate() {
            assert_eq!(p.month_of[i].is_some(), plan.proposed[i] != j.current);
        }
    }

    #[test]
    fn a_per_accountant_limit_binds_the_receivers() {
        let (staff, jobs) = lead_leaves();
        let plan = solve(&staff, &jobs, &settings()).unwrap();
        let limits = Limits {
            moves_per_month: None,
            per_accountant: Some(3),
        };
        let p = schedule(&staff, &jobs, &plan.proposed, limits, 0.85, plan.moves_lower_bound);
        // Four receivers taking three each: twelve a month, 35 moves in three months.
        for month in 1..=p.months {
            let mut took = vec![0; staff.len()];
            for (i, m) in p.month_of.iter().enumerate() {
                if *m == Some(month) {
                    took[plan.proposed[i].unwrap()] += 1;
                }
            }
            assert!(took.iter().all(|&t| t <= 3), "month {month}: {took:?}");
        }
        assert_eq!(p.months, p.months_for_these_moves);
        assert_eq!(p.months, 3);
    }

    #[test]
    fn overloaded_accountants_are_relieved_first() {
        // a0 is far over its cap, a1 a little; a2 and a3 have room.
        let staff: Vec<Member> = (0..4).map(|k| member(&format!("a{k}"), 100.0, true)).collect();
        let mut jobs = Vec::new();
        for (a, count) in [(0, 30), (1, 23), (2, 5), (3, 5)] {
            jobs.extend((0..count).map(|_| Job {
                hours: 4.0,
                needs: 0,
                current: Some(a),
            }));
        }
        let plan = solve(&staff, &jobs, &settings()).unwrap();
        let limits = Limits {
            moves_per_month: Some(5),
            per_accountant: None,
        };
        let p = schedule(&staff, &jobs, &plan.proposed, limits, 0.85, plan.moves_lower_bound);
        let first: Vec<usize> = (0..jobs.len()).filter(|&i| p.month_of[i] == Some(1)).collect();
        assert_eq!(first.len(), 5);
        assert!(first.iter().all(|&i| jobs[i].current == Some(0)), "{first:?}");
        // Utilisation falls month by month and ends under the cap.
        let peaks: Vec<f64> = p.path.iter().map(|m| m.peak_utilisation).collect();
        assert!(peaks.windows(2).all(|w| w[1] <= w[0] + 1e-9), "{peaks:?}");
        assert!(p.path.last().unwrap().over_cap == 0);
        assert_eq!(p.months, p.months_lower_bound);
    }

    #[test]
    fn without_limits_everything_moves_this_month() {
        let (staff, jobs) = lead_leaves();
        let plan = solve(&staff, &jobs, &settings()).unwrap();
        let p = schedule(
            &staff,
            &jobs,
            &plan.proposed,
            Limits::default(),
            0.85,
            plan.moves_lower_bound,
        );
        assert_eq!(p.months, 1);
        assert!(p.month_of.iter().flatten().all(|&m| m == 1));
    }
}
