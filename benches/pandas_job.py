"""The rest of clientseg's job in pandas, scikit-learn and scipy, for pandas_sklearn.py.

The features as of any day (the 31 churn features of docs/data-contract.md), churn risk
(monthly snapshots, rolling-origin validation of LogisticRegression and
HistGradientBoostingClassifier with Platt scaling, bootstrap intervals), pricing (hours
regression validated over whole teams, peer rates, suggested fees weighed against churn),
allocation (a linear programme solved by scipy's HiGHS, rounded), the action list and the
same output files (CSV, Parquet, xlsx, charts, a report, a page per accountant). Written
the way an analyst would: vectorised pandas where it is natural, no tricks clientseg does
not also do.
"""

import html
import warnings
import os
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linprog
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import GroupKFold, KFold

EPOCH = pd.Timestamp("1970-01-01")
# Means of empty slices (a feature nobody has yet in an early month) are NaN, as meant.
warnings.filterwarnings("ignore", category=RuntimeWarning)
CHURN_FEATURES = [
    "fees_12m", "avg_monthly_fee", "contract_fee", "fee_growth", "cost_to_serve", "contribution_margin",
    "hours_per_month", "filings_per_month", "tenure_months", "n_services", "days_since_last_payment",
    "payments_per_year", "mean_payment_delay_days", "late_payment_share", "open_receivables",
    "vouchers_per_month", "vouchers_cv", "tickets_per_month", "late_documents_share", "activity_trend",
    "days_since_last_invoice", "invoices_per_year", "longest_invoice_gap_days", "invoice_gap_cv", "fee_rise",
    "arrears_change_3m", "late_documents_3m", "tickets_trend", "months_to_renewal", "accountant_changes_6m",
    "silent_months",
]
LOG1P = {
    "fees_12m", "avg_monthly_fee", "contract_fee", "cost_to_serve", "hours_per_month", "filings_per_month",
    "tenure_months", "days_since_last_payment", "payments_per_year", "mean_payment_delay_days",
    "open_receivables", "vouchers_per_month", "tickets_per_month", "days_since_last_invoice",
    "invoices_per_year", "longest_invoice_gap_days",
}
SIGNED_LOG1P = {"contribution_margin", "arrears_change_3m"}


def days(s):
    return (s - EPOCH).dt.days


def month_of(d):
    return d.dt.year * 12 + d.dt.month - 1


def prepare(clients, billing, activity, staff, contacts):
    """Day and month numbers once, so that every snapshot is a filter."""
    b = pd.DataFrame({
        "client_id": billing["client_id"],
        "inv": days(billing["invoice_date"]),
        "due": days(billing["due_date"]),
        "paid": days(billing["paid_date"]),
        "amount": billing["amount"],
        "service": billing["service"],
    })
    a = activity.assign(m=month_of(activity["month"]))
    return {"clients": clients, "billing": b, "activity": a, "staff": staff, "contacts": contacts}


def features_at(data, s, ids=None, hourly_cost=60.0):
    """Every feature as of day s (days since 1970), from rows dated up to s only."""
    clients, b, a = data["clients"], data["billing"], data["activity"]
    if ids is not None:
        clients = clients[clients["client_id"].isin(ids)]
        b = b[b["client_id"].isin(ids)]
        a = a[a["client_id"].isin(ids)]
    b = b[b["inv"] <= s]
    sm = month_of(pd.Series([EPOCH + pd.Timedelta(days=int(s))])).iloc[0]
    a = a[a["m"] <= sm]

    inv, due, paid, amount = b["inv"], b["due"], b["paid"], b["amount"]
    paid_by_s = paid.notna() & (paid <= s)
    settled = paid.where(paid_by_s, s)
    delay = (settled - due).clip(lower=0)
    due_in = (due > s - 365) & (due <= s)
    in12 = (inv > s - 365) & (inv <= s)
    last6 = (inv > s - 182) & (inv <= s)
    prior6 = (inv > s - 365) & (inv <= s - 182)
    paid_by_91 = paid.notna() & (paid <= s - 91)
    bb = pd.DataFrame({
        "client_id": b["client_id"],
        "fees_12m": amount.where(in12, 0.0),
        "last6": amount.where(last6, 0.0),
        "prior6": amount.where(prior6, 0.0),
        "amt_last6": amount.where(last6),
        "amt_prior6": amount.where(prior6),
        "first_invoice": inv,
        "last_invoice": inv,
        "invoices": in12.astype(float),
        "last_payment": paid.where(paid_by_s),
        "payments": ((paid > s - 365) & (paid <= s)).astype(float),
        "delay": delay.where(due_in),
        "late": (delay > 0).astype(float).where(due_in),
        "open": amount.where(~paid_by_s, 0.0),
        "open91": amount.where((inv <= s - 91) & ~paid_by_91, 0.0),
        "service12": b["service"].where(in12),
    })
    bf = bb.groupby("client_id", sort=False).agg(
        fees_12m=("fees_12m", "sum"), last6=("last6", "sum"), prior6=("prior6", "sum"),
        med_last6=("amt_last6", "median"), med_prior6=("amt_prior6", "median"),
        first_invoice=("first_invoice", "min"), last_invoice=("last_invoice", "max"),
        invoices_per_year=("invoices", "sum"), last_payment=("last_payment", "max"),
        payments_per_year=("payments", "sum"), mean_payment_delay_days=("delay", "mean"),
        late_payment_share=("late", "mean"), open_receivables=("open", "sum"), open91=("open91", "sum"),
        services_billed=("service12", "nunique"),
    )
    # Gaps between consecutive invoice days.
    g = bb[["client_id", "first_invoice"]].drop_duplicates().sort_values(["client_id", "first_invoice"])
    gap = g["first_invoice"].diff().where(g["client_id"].eq(g["client_id"].shift()))
    gaps = pd.DataFrame({"client_id": g["client_id"], "gap": gap, "recent": gap.where(g["first_invoice"] > s - 365)})
    gg = gaps.groupby("client_id", sort=False).agg(
        longest_invoice_gap_days=("gap", "max"), gmean=("recent", "mean"), gstd=("recent", "std"),
        repeat_invoice_days=("gap", "count"),
    )

    t = (a["m"] - sm).astype(float)
    a = a.assign(t=t)
    a = a[a["t"] > -12]
    known = a["vouchers"].notna()
    a = a.assign(
        tv=a["t"] * a["vouchers"], tk=a["t"].where(known), tt=(a["t"] * a["t"]).where(known),
        late=(a["late_documents"] > 0).astype(float),
        late3=(a["late_documents"] > 0).astype(float).where(a["t"] > -3),
        tick3=a["tickets"].where(a["t"] > -3), tick9=a["tickets"].where(a["t"] <= -3),
        acc6=a["accountant"].where(a["t"] > -6),
        logged=a["hours"].where(a["hours"].notna()),
    )
    af = a.groupby("client_id", sort=False).agg(
        n=("vouchers", "count"), vouchers_per_month=("vouchers", "mean"), vstd=("vouchers", "std"),
        tickets_per_month=("tickets", "mean"), late_documents_share=("late", "mean"), hours=("hours", "sum"),
        hours_per_month=("logged", "mean"), filings_per_month=("filings", "mean"),
        st=("tk", "sum"), sv=("vouchers", "sum"), stv=("tv", "sum"), stt=("tt", "sum"),
        late_documents_3m=("late3", "mean"), tick3=("tick3", "mean"), tick9=("tick9", "mean"),
        accountants_6m=("acc6", "nunique"), last_work=("m", "max"),
    )
    mean = af["vouchers_per_month"]
    af["vouchers_cv"] = np.where(mean > 0, af["vstd"] / mean, 0.0)
    denom = af["n"] * af["stt"] - af["st"] ** 2
    slope = (af["n"] * af["stv"] - af["st"] * af["sv"]) / denom
    af["activity_trend"] = np.where((denom > 0) & (mean > 0), slope / mean, 0.0)

    f = clients[["client_id", "contract_start", "contract_end", "services", "monthly_fee"]]
    f = f.merge(bf, left_on="client_id", right_index=True, how="left")
    f = f.merge(gg, left_on="client_id", right_index=True, how="left")
    f = f.merge(af, left_on="client_id", right_index=True, how="left")
    cstart = days(f["contract_start"])
    cstart = cstart.where(cstart <= s)
    start = cstart.fillna(f["first_invoice"])
    cend = days(f["contract_end"])
    cend = cend.where(cend <= s)
    end = cend.where(cend.notna() & (cend < s), s)
    tenure = ((end - start) / 30.4375).clip(lower=0)
    fees = f["fees_12m"].fillna(0.0)
    l6, p6 = f["last6"].fillna(0.0), f["prior6"].fillna(0.0)
    mid = (l6 + p6) / 2
    cost = f["hours"].fillna(0.0) * hourly_cost
    listed = f["services"].str.count(";") + 1
    t3, t9 = f["tick3"], f["tick9"]
    tmid = (t3 + t9) / 2
    start_month = month_of(EPOCH + pd.to_timedelta(start, unit="D"))
    last_inv_month = month_of(EPOCH + pd.to_timedelta(f["last_invoice"], unit="D"))
    last_any = pd.concat([last_inv_month, f["last_work"]], axis=1).max(axis=1)
    out = pd.DataFrame({
        "client_id": f["client_id"].to_numpy(),
        "fees_12m": fees,
        "avg_monthly_fee": fees / tenure.clip(1, 12),
        "contract_fee": f["monthly_fee"],
        "fee_growth": np.where(mid > 0, ((l6 - p6) / mid.where(mid > 0, 1)).clip(-2, 2), 0.0),
        "cost_to_serve": cost,
        "contribution_margin": fees - cost,
        "hours_per_month": f["hours_per_month"],
        "filings_per_month": f["filings_per_month"],
        "tenure_months": tenure,
        "n_services": listed.fillna(f["services_billed"].fillna(0.0)),
        "days_since_last_payment": (s - f["last_payment"]).fillna(s - f["first_invoice"]),
        "payments_per_year": f["payments_per_year"].fillna(0.0),
        "mean_payment_delay_days": f["mean_payment_delay_days"],
        "late_payment_share": f["late_payment_share"],
        "open_receivables": f["open_receivables"].fillna(0.0),
        "vouchers_per_month": f["vouchers_per_month"],
        "vouchers_cv": f["vouchers_cv"],
        "tickets_per_month": f["tickets_per_month"],
        "late_documents_share": f["late_documents_share"],
        "activity_trend": f["activity_trend"],
        "days_since_last_invoice": s - f["last_invoice"],
        "invoices_per_year": f["invoices_per_year"].fillna(0.0),
        "longest_invoice_gap_days": f["longest_invoice_gap_days"],
        "invoice_gap_cv": np.where(f["gmean"] > 0, f["gstd"] / f["gmean"], np.nan),
        "fee_rise": f["med_last6"] / f["med_prior6"] - 1,
        "arrears_change_3m": f["open_receivables"].fillna(0.0) - f["open91"].fillna(0.0),
        "late_documents_3m": f["late_documents_3m"],
        "tickets_trend": np.where(tmid > 0, ((t3 - t9) / tmid.where(tmid > 0, 1)).clip(-2, 2), 0.0),
        "months_to_renewal": (start_month - sm) % 12,
        "accountant_changes_6m": (f["accountants_6m"].fillna(1) - 1).clip(lower=0),
        "silent_months": (sm - last_any).clip(upper=36),
        "repeat_invoice_days": f["repeat_invoice_days"].fillna(0.0),
        "started": start.notna().to_numpy(),
        "contract_end_day": cend,
    })
    return out.reset_index(drop=True)


def transform(x, name):
    if name in LOG1P:
        return np.log1p(np.maximum(x, 0.0))
    if name in SIGNED_LOG1P:
        return np.sign(x) * np.log1p(np.abs(x) / 1000.0)
    return x


# ---------------------------------------------------------------- churn


def month_end_day(m):
    y, mm = divmod(int(m) + 1, 12)
    return int((pd.Timestamp(year=y, month=mm + 1, day=1) - EPOCH).days) - 1


def churn_snapshots(data, seed, sample_clients=25_000, inactive_months=3):
    """Every month's features of a seeded sample of clients, with the outcome of each horizon."""
    clients, b, a = data["clients"], data["billing"], data["activity"]
    rng = np.random.default_rng(seed)
    ids = clients["client_id"].to_numpy()
    if len(ids) > sample_clients:
        ids = rng.choice(ids, sample_clients, replace=False)
    first = int(min(month_of(EPOCH + pd.to_timedelta(b["inv"], unit="D")).min(), a["m"].min()))
    last = int(max(month_of(EPOCH + pd.to_timedelta(b["inv"], unit="D")).max(), a["m"].max()))
    contract = clients["contract_end"].notna().any()
    ends = clients.set_index("client_id")["contract_end"]
    left_month = month_of(ends + pd.Timedelta(days=1)).reindex(ids)
    # With a lapse: the months with an invoice or work, per client.
    busy = None
    if not contract:
        sb = b[b["client_id"].isin(ids)]
        sa = a[a["client_id"].isin(ids)]
        busy = pd.concat([
            pd.DataFrame({"client_id": sb["client_id"], "m": month_of(EPOCH + pd.to_timedelta(sb["inv"], unit="D"))}),
            sa[["client_id", "m"]],
        ]).drop_duplicates()
    sample = {**data, "clients": clients[clients["client_id"].isin(ids)], "billing": b[b["client_id"].isin(ids)],
              "activity": a[a["client_id"].isin(ids)]}
    frames = []
    for m in range(first + 4, last):
        f = features_at(sample, month_end_day(m))
        f = f[f["started"]]
        if contract:
            lm = f["client_id"].map(left_month)
            f = f[~(lm <= m)]
            lm = f["client_id"].map(left_month)
            for h in (3, 6):
                f[f"left_{h}m"] = np.where(m + h <= last, (lm <= m + h).astype(float), np.nan)
        else:
            f = f[f["silent_months"] < inactive_months]
            for h in (3, 6):
                later = busy[(busy["m"] > m) & (busy["m"] <= m + h)]["client_id"].unique()
                f[f"left_{h}m"] = np.where(m + h <= last, (~f["client_id"].isin(later)).astype(float), np.nan)
        f["month_index"] = m
        frames.append(f)
    snaps = pd.concat(frames, ignore_index=True)
    return snaps, last


def _platt(margin, y):
    lr = LogisticRegression(C=1e6, max_iter=200).fit(margin.reshape(-1, 1), y)
    return lambda m: lr.predict_proba(m.reshape(-1, 1))[:, 1]


class Candidate:
    """A model fitted on the earlier two thirds of its months, Platt-scaled on the latest third."""

    def __init__(self, kind, seed, horizon):
        self.kind, self.seed, self.horizon = kind, seed, horizon

    def linear(self, raw):
        """The logistic regression's reading: transformed, and the months to renewal as
        "within the horizon" (1 to h)."""
        z = np.column_stack([transform(raw[:, j], n) for j, n in enumerate(CHURN_FEATURES)])
        r = CHURN_FEATURES.index("months_to_renewal")
        v = raw[:, r]
        z[:, r] = np.where(np.isnan(v), np.nan, ((v >= 1) & (v <= self.horizon)).astype(float))
        return z

    def matrix(self, df):
        raw = df[CHURN_FEATURES].to_numpy(dtype=float)
        if self.kind == "boosted":
            # The trees bin each feature; one never known in the training rows is left out.
            return np.where(self.unknown, 0.0, raw)
        z = self.linear(raw)
        return np.clip(np.nan_to_num((z - self.mean) / self.std, nan=0.0), -6, 6)

    def margin(self, x):
        return self.model.decision_function(x)

    def fit(self, rows, y):
        months = np.sort(rows["month_index"].unique())
        cut = months[int(np.ceil(len(months) * 2 / 3)) - 1] if len(months) > 2 else months[-1]
        early = (rows["month_index"] <= cut).to_numpy()
        if self.kind == "logistic":
            z = self.linear(rows[CHURN_FEATURES].to_numpy(dtype=float))
            self.mean = np.nan_to_num(np.nanmean(z[early], axis=0))
            sd = np.nanstd(z[early], axis=0)
            sd[~(sd > 1e-9)] = 1.0
            self.std = sd
            self.model = LogisticRegression(C=1.0, max_iter=500)
        else:
            self.unknown = np.isnan(rows[CHURN_FEATURES].to_numpy(dtype=float)[early]).all(axis=0)
            self.model = HistGradientBoostingClassifier(
                max_iter=80, learning_rate=0.1, max_depth=4, min_samples_leaf=20, l2_regularization=1.0,
                max_bins=64, early_stopping=False, random_state=self.seed,
            )
        x = self.matrix(rows)
        self.model.fit(x[early], y[early])
        late = ~early if (~early).any() and len(np.unique(y[~early])) == 2 else early
        self.calibrate = _platt(self.margin(x[late]), y[late])
        return self

    def predict(self, df):
        return self.calibrate(self.margin(self.matrix(df)))


def _cap(idx, n, rng):
    return np.sort(rng.choice(idx, n, replace=False)) if len(idx) > n else idx


def _weighted_scores(y, w, starts):
    """ROC-AUC, average precision and nothing else, from rows sorted by falling score
    (ties grouped at `starts`) with weights w: the same sums scikit-learn's do."""
    pos = np.add.reduceat(w * y, starts)
    neg = np.add.reduceat(w * (1 - y), starts)
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    auc = (np.sum(neg * (tp - pos)) + 0.5 * np.sum(neg * pos)) / (tp[-1] * fp[-1])
    hit = pos > 0
    ap = np.sum(pos[hit] / tp[-1] * tp[hit] / (tp[hit] + fp[hit]))
    return auc, ap


def bootstrap(clients, y, p, seed, reps=200):
    """95% intervals over clients (a client's test months go together): each resample
    weighs a row by how often its client was drawn. The rows are sorted once."""
    order = np.argsort(-p, kind="stable")
    y, p, clients = y[order].astype(float), p[order], np.asarray(clients)[order]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    codes, uniq = pd.factorize(clients)
    rng = np.random.default_rng(seed)
    out = {"roc_auc": [], "pr_auc": [], "brier": []}
    for _ in range(reps):
        w = np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))[codes].astype(float)
        if (w * y).sum() == 0 or (w * (1 - y)).sum() == 0:
            continue
        auc, ap = _weighted_scores(y, w, starts)
        out["roc_auc"].append(auc)
        out["pr_auc"].append(ap)
        out["brier"].append(np.sum(w * (p - y) ** 2) / w.sum())
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in out.items() if v}


def share_better(clients, y, a, b, seed, reps=200):
    """Share of resamples of clients (the same draws for both) in which scores b rank
    better than scores a: the rule by which trees replace the logistic regression."""
    codes, uniq = pd.factorize(np.asarray(clients))
    y = y.astype(float)
    sorted_ = []
    for p in (a, b):
        order = np.argsort(-p, kind="stable")
        sp = p[order]
        sorted_.append((order, np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])))
    rng = np.random.default_rng(seed)
    wins = total = 0
    for _ in range(reps):
        w = np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))[codes].astype(float)
        if (w * y).sum() == 0 or (w * (1 - y)).sum() == 0:
            continue
        auc_a, auc_b = (_weighted_scores(y[o], w[o], st)[0] for o, st in sorted_)
        wins += auc_b > auc_a
        total += 1
    return wins / total if total >= 20 else 0.0


def churn(data, today, seed, max_train_rows=150_000, test_months=6):
    snaps, last = churn_snapshots(data, seed)
    rng = np.random.default_rng(seed)
    result = {"horizons": [], "snapshot_rows": int(len(snaps))}
    validation_rows = []
    finals = {}
    for h in (3, 6):
        label = snaps[f"left_{h}m"]
        labelled = label.notna().to_numpy()
        y = label.fillna(0).to_numpy(dtype=int)
        month = snaps["month_index"].to_numpy()
        known = month + h
        tests = [t for t in sorted(np.unique(month[labelled])) if t + h <= last][-test_months:]
        pooled = {"logistic": [], "boosted": [], "recency": [], "y": [], "client": [], "month": []}
        for t in tests:
            train = _cap(np.flatnonzero(labelled & (known <= t)), max_train_rows * 2 // 5, rng)
            test = np.flatnonzero(labelled & (month == t))
            if len(train) < 100 or len(np.unique(y[train])) < 2:
                continue
            for kind in ("logistic", "boosted"):
                c = Candidate(kind, seed, h).fit(snaps.iloc[train], y[train])
                pooled[kind].extend(c.predict(snaps.iloc[test]))
            pooled["recency"].extend(snaps["days_since_last_invoice"].to_numpy()[test])
            pooled["y"].extend(y[test])
            pooled["client"].extend(snaps["client_id"].to_numpy()[test])
            pooled["month"].extend(month[test])
        yy = np.array(pooled["y"])
        entry = {"months": h, "test_months": len(tests), "test_rows": int(len(yy)), "leavers": int(yy.sum())}
        if len(yy) >= 300 and yy.sum() >= 30 and yy.sum() < len(yy):
            for kind in ("logistic", "boosted"):
                entry[f"{kind}_auc"] = float(roc_auc_score(yy, pooled[kind]))
            entry["recency_auc"] = float(roc_auc_score(yy, np.nan_to_num(np.array(pooled["recency"], dtype=float))))
            clients = np.array(pooled["client"])
            entry["boosted_wins"] = share_better(
                clients, yy, np.array(pooled["logistic"]), np.array(pooled["boosted"]), seed
            )
            better = entry["boosted_wins"] >= 0.95 and entry["boosted_auc"] > entry["logistic_auc"]
            chosen = "boosted" if better else "logistic"
            p = np.array(pooled[chosen])
            entry["chosen"] = chosen
            entry["pr_auc"] = float(average_precision_score(yy, p))
            entry["brier"] = float(brier_score_loss(yy, p))
            entry.update({f"{k}_ci": v for k, v in bootstrap(np.array(pooled["client"]), yy, p, seed).items()})
            deciles = pd.qcut(p, 10, labels=False, duplicates="drop")
            entry["calibration"] = (
                pd.DataFrame({"d": deciles, "p": p, "y": yy}).groupby("d").agg(predicted=("p", "mean"), observed=("y", "mean"))
                .reset_index().to_dict("records")
            )
        else:
            entry["chosen"] = "logistic"
        validation_rows.append(pd.DataFrame({
            "client_id": pooled["client"], "month_index": pooled["month"], "horizon_months": h,
            "logistic": pooled["logistic"], "boosted": pooled["boosted"], "recency": pooled["recency"], "left": yy,
        }))
        all_rows = _cap(np.flatnonzero(labelled), max_train_rows, rng)
        finals[h] = Candidate(entry["chosen"], seed, h).fit(snaps.iloc[all_rows], y[all_rows])
        result["horizons"].append(entry)

    served = today[today["served"]].reset_index(drop=True)
    scores = pd.DataFrame({"client_id": served["client_id"]})
    for h, model in finals.items():
        scores[f"churn_risk_{h}m"] = model.predict(served)
    # The top three of the logistic regression's contributions, in words.
    lr = finals[3]
    if lr.kind != "logistic":
        rows = _cap(np.flatnonzero(snaps["left_3m"].notna()), max_train_rows, rng)
        lr = Candidate("logistic", seed, 3).fit(snaps.iloc[rows], snaps["left_3m"].to_numpy()[rows].astype(int))
    contrib = lr.matrix(served) * lr.model.coef_[0]
    top = np.argsort(-contrib, axis=1)[:, :3]
    names = np.array(CHURN_FEATURES)
    raw = served[CHURN_FEATURES].to_numpy(dtype=float)
    tv = np.take_along_axis(raw, top, axis=1)
    tc = np.take_along_axis(contrib, top, axis=1)
    scores["churn_drivers"] = [
        "; ".join(f"{names[j].replace('_', ' ')} {v:,.0f}" for j, v, c in zip(r, vals, cs) if c > 0.1)
        for r, vals, cs in zip(top, tv, tc)
    ]
    r6 = scores["churn_risk_6m"].to_numpy()
    mean = r6.mean()
    scores["churn_band"] = np.select([r6 >= 2.5 * mean, r6 >= 1.5 * mean], ["high", "medium"], "low")
    fee = served["contract_fee"].fillna(served["avg_monthly_fee"]).to_numpy()
    margin = np.clip(np.nan_to_num(served["contribution_margin"] / served["fees_12m"].where(served["fees_12m"] > 0)), 0, 1)
    scores["revenue_at_risk"] = np.round(r6 * fee * 12, 2)
    hazard = 1 - (1 - np.clip(r6, 0, 0.999999)) ** (1 / 6)
    k = np.arange(1, 37)
    surv = (1 - hazard[:, None]) ** k[None, :]
    disc = (1 + 0.08) ** (-k / 12)
    scores["expected_months_12m"] = surv[:, :12].sum(axis=1)
    monthly_value = (fee * margin)[:, None]
    scores["value_ahead_12m"] = (monthly_value * surv[:, :12] * disc[:12]).sum(axis=1)
    scores["value_ahead_36m"] = (monthly_value * surv * disc).sum(axis=1)
    result["fee_response"] = fee_response(snaps, finals[max(finals)], served, seed)
    result["served"] = int(len(served))
    return result, scores, snaps, pd.concat(validation_rows, ignore_index=True)


def fee_response(snaps, model, served, seed):
    """The history's leave rate by recent rise (Wilson interval), and the model's risk with each rise."""
    bins = [-np.inf, 0.02, 0.10, 0.20, 0.30, np.inf]
    lab = snaps[snaps["left_6m"].notna()]
    g = lab.groupby(pd.cut(lab["fee_rise"].fillna(0), bins), observed=False)["left_6m"].agg(["count", "sum"])
    n, k = g["count"].to_numpy(dtype=float), g["sum"].to_numpy(dtype=float)
    p = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    z = 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    sample = served.sample(min(5000, len(served)), random_state=seed)
    rises = [0.0, 0.06, 0.15, 0.25, 0.35]
    risks = [float(model.predict(sample.assign(fee_rise=r)).mean()) for r in rises]
    return pd.DataFrame({
        "rise_from": bins[:-1], "rise_to": bins[1:], "horizon_months": 6, "snapshots": n, "left": k,
        "leave_rate": p, "leave_rate_low": centre - half, "leave_rate_high": centre + half,
        "model_rise": rises, "model_risk": risks, "model_ratio": [max(1.0, r / risks[0]) for r in risks],
    })


# ---------------------------------------------------------------- pricing


def pricing(data, today, labels, scores, response, seed, hourly_cost=60.0):
    clients, a, staff = data["clients"], data["activity"], data["staff"]
    served = today[today["served"]][["client_id", "contract_fee", "avg_monthly_fee", "hours_per_month",
                                      "vouchers_per_month", "filings_per_month", "tickets_per_month",
                                      "late_documents_share"]]
    c = clients.set_index("client_id")
    p = served.merge(c[["name", "accountant", "taxpayer_type", "client_type"]], left_on="client_id",
                     right_index=True, how="left")
    p = p.merge(labels[["client_id", "value_tier"]], on="client_id", how="left")
    p = p.merge(scores[["client_id", "churn_band", "churn_risk_6m"]], on="client_id", how="left")
    team = staff.set_index("accountant")["team"]
    p["team"] = p["accountant"].map(team)
    general = (p["taxpayer_type"] == "general").astype(float)
    x = np.column_stack([p[c].fillna(0.0) for c in ("vouchers_per_month", "filings_per_month",
                                                     "tickets_per_month", "late_documents_share")] + [general])
    logged = p["hours_per_month"].notna().to_numpy()
    model = {}
    estimate = np.full(len(p), np.nan)
    if logged.sum() >= 30:
        xl, yl = x[logged], p["hours_per_month"].to_numpy()[logged]
        groups = p["team"].fillna("").to_numpy()[logged]
        folds = (GroupKFold(5).split(xl, yl, groups) if len(np.unique(groups)) >= 3
                 else KFold(5, shuffle=True, random_state=seed).split(xl))
        err = []
        for tr, te in folds:
            err.append(LinearRegression().fit(xl[tr], yl[tr]).predict(xl[te]) - yl[te])
        err = np.concatenate(err)
        model = {"mae": float(np.abs(err).mean()), "bias": float(err.mean())}
        estimate = np.maximum(LinearRegression().fit(xl, yl).predict(x), 0.0)
    thumb = np.where(general > 0, 1.5, np.where(p["vouchers_per_month"].fillna(0) > 0, 0.5, 0.17)) + 0.5 * p[
        "late_documents_share"].fillna(0)
    hours = np.where(logged, p["hours_per_month"], np.where(np.isnan(estimate), thumb, estimate))
    p["monthly_hours"] = np.round(hours, 2)
    p["hours_source"] = np.where(logged, "logged", np.where(np.isnan(estimate), "rule_of_thumb", "estimated"))
    p["monthly_cost"] = np.round(hours * hourly_cost, 2)
    fee = p["contract_fee"].fillna(p["avg_monthly_fee"])
    p["monthly_fee"] = fee
    p["margin"] = fee - p["monthly_cost"]
    p["margin_rate"] = np.where(fee > 0, p["margin"] / fee.where(fee > 0, 1), np.nan)
    p["fee_per_hour"] = fee / p["monthly_hours"].where(p["monthly_hours"] > 0)
    # Peers: the 50 of the same taxpayer and client type nearest in hours.
    p = p.sort_values(["taxpayer_type", "client_type", "monthly_hours"])
    p["peer_fee_per_hour"] = (
        p.groupby(["taxpayer_type", "client_type"], sort=False)["fee_per_hour"]
        .transform(lambda s: s.rolling(51, center=True, min_periods=1).median())
    )
    p["peers"] = p.groupby(["taxpayer_type", "client_type"], sort=False)["fee_per_hour"].transform(
        lambda s: np.minimum(50, len(s) - 1))
    p = p.sort_index()
    under = (p["margin_rate"] < 0.3) | (p["fee_per_hour"] < 0.5 * p["peer_fee_per_hour"])
    over = logged & ~np.isnan(estimate) & (p["hours_per_month"] > 1.5 * estimate + 0.5)
    p["price_flag"] = np.where(under, "under_priced", np.where(over, "over_served", "ok"))
    want = np.maximum(p["peer_fee_per_hour"] * p["monthly_hours"], p["monthly_cost"] / 0.7)
    cap = fee * 1.3
    target = np.minimum(want, cap)
    held = (p["value_tier"] == "V1") & (p["churn_band"] == "high")
    half = (p["churn_band"] == "high") | ((p["value_tier"] == "V1") & (p["churn_band"] == "medium"))
    target = np.where(half, fee + (target - fee) / 2, target)
    up50 = np.ceil(target / 50) * 50
    down50 = np.floor(target / 50) * 50
    step = np.where(up50 <= cap, up50, np.where(down50 > fee, down50, np.where(
        np.floor(target / 10) * 10 > fee, np.floor(target / 10) * 10, np.floor(target))))
    # Weighed against churn: the best of six steps up to the fee by expected revenue.
    r6 = p["churn_risk_6m"].fillna(0).clip(0, 0.999999).to_numpy()
    hz = 1 - (1 - r6) ** (1 / 6)
    k = np.arange(1, 13)

    def revenue(f, mult):
        h = np.minimum(hz * mult, 1.0)
        return f * ((1 - h)[:, None] ** k[None, :]).sum(axis=1)

    base = revenue(fee.to_numpy(), 1.0)
    best, best_rev = fee.to_numpy().copy(), base.copy()
    for j in range(1, 7):
        cand = fee.to_numpy() + (step - fee.to_numpy()) * j / 6
        rise = np.maximum(cand / fee.where(fee > 0, 1).to_numpy() - 1, 0)
        r = revenue(cand, np.interp(rise, response["model_rise"], response["model_ratio"]))
        better = r > best_rev
        best, best_rev = np.where(better, np.round(cand), best), np.where(better, r, best_rev)
    rise_ok = under & ~held & (best > fee)
    p["suggested_fee"] = np.where(rise_ok, best, np.nan)
    p["fee_change"] = p["suggested_fee"] - fee
    p["reason"] = np.select(
        [under & held, rise_ok & (best < step), rise_ok, under],
        ["held back: top-tier client at high churn risk", "rise kept to what keeps the most revenue",
         "under-priced against peers and the target margin", "held back: expected to lose more than it adds"],
        "",
    )
    summary = {"clients": int(len(p)), "under_priced": int(under.sum()), "rises": int(rise_ok.sum()),
               "hours_model": model, "expected_gain_12m": float((best_rev - base)[rise_ok.to_numpy()].sum())}
    cols = ["client_id", "name", "accountant", "value_tier", "churn_band", "monthly_fee", "monthly_hours",
            "hours_source", "monthly_cost", "margin", "margin_rate", "fee_per_hour", "peer_fee_per_hour", "peers",
            "price_flag", "suggested_fee", "fee_change", "reason", "taxpayer_type", "team"]
    return p[cols], summary


# ---------------------------------------------------------------- allocation


def allocation(data, prices, time_limit=120.0):
    """One linear programme for the firm, solved by HiGHS, then rounded.

    A variable per client for staying with its accountant, and per group of moving clients
    (same needs, same team) and eligible accountant of that team the hours it takes; a
    slack per group for hours nobody can take. Clients the relaxation moves are packed into
    the hours it gave each accountant, largest first, never above the cap.
    """
    staff = data["staff"].copy()
    staff["active"] = staff["active"].astype(str).str.lower().isin(["true", "1", "yes"]) if staff["active"].dtype != bool else staff["active"]
    skills = staff["skills"].fillna("")
    staff["gt"] = skills.str.contains("general_taxpayer")
    staff["intl"] = skills.str.contains("international")
    staff["senior"] = staff["grade"].isin(["senior", "lead"])
    staff["cap"] = staff["capacity_hours"] * 0.85 * staff["active"]
    acc_index = {a: i for i, a in enumerate(staff["accountant"])}
    n_acc = len(staff)

    c = data["clients"].set_index("client_id")
    p = prices[["client_id", "name", "value_tier", "accountant", "monthly_hours", "taxpayer_type"]].copy()
    p["international"] = p["client_id"].map(c["international"]).astype(str).str.lower().eq("true").to_numpy()
    p["need_gt"] = (p["taxpayer_type"] == "general").to_numpy()
    p["need_senior"] = (p["value_tier"] == "V1").to_numpy()
    acc = p["accountant"].map(acc_index)
    p["acc"] = acc.fillna(-1).astype(int)
    known = p["acc"] >= 0
    ai = p["acc"].clip(lower=0).to_numpy()
    ok = known.to_numpy() & staff["active"].to_numpy()[ai]
    ok &= ~p["need_gt"].to_numpy() | staff["gt"].to_numpy()[ai]
    ok &= ~p["international"].to_numpy() | staff["intl"].to_numpy()[ai]
    ok &= ~p["need_senior"].to_numpy() | staff["senior"].to_numpy()[ai]
    p["may_stay"] = ok
    p["team"] = np.where(known, staff["team"].to_numpy()[ai], "")
    p["group"] = p.groupby(["team", "need_gt", "international", "need_senior"], sort=False).ngroup()
    hours = p["monthly_hours"].to_numpy(dtype=float)
    n = len(p)

    # Eligible (group, accountant) pairs: same team, skills and grade.
    groups = p.groupby("group").agg(team=("team", "first"), gt=("need_gt", "first"), intl=("international", "first"),
                                    senior=("need_senior", "first"), hours=("monthly_hours", "sum"))
    members = staff[staff["active"]].assign(idx=lambda s: s["accountant"].map(acc_index))
    # As clientseg: firms of more than 20,000 clients are planned team by team.
    by_team = n > 20_000
    pairs = groups.reset_index().merge(members[["team", "idx", "gt", "intl", "senior"]], how="inner" if by_team else "cross",
                                       on="team" if by_team else None, suffixes=("", "_a"))
    pairs = pairs[(~pairs["gt"] | pairs["gt_a"]) & (~pairs["intl"] | pairs["intl_a"]) & (~pairs["senior"] | pairs["senior_a"])]
    g_of, a_of = pairs["group"].to_numpy(), pairs["idx"].to_numpy()
    n_pairs, n_groups = len(pairs), len(groups)

    # Variables: stay (n), take (n_pairs), slack (n_groups). Minimise moves + 1000 per unplaced hour.
    stay_cost = -np.ones(n)
    outside = (pairs["team"].to_numpy() != pairs["team_a"].to_numpy()) if not by_team else np.zeros(n_pairs, bool)
    cost = np.concatenate([stay_cost, 1e-4 + 0.1 * outside, np.full(n_groups, 1000.0)])
    upper = np.concatenate([p["may_stay"].to_numpy(dtype=float), np.full(n_pairs, np.inf), np.full(n_groups, np.inf)])
    rows_c = np.concatenate([ai[known.to_numpy()], a_of])
    cols_c = np.concatenate([np.flatnonzero(known.to_numpy()), n + np.arange(n_pairs)])
    vals_c = np.concatenate([hours[known.to_numpy()], np.ones(n_pairs)])
    a_cap = sp.csr_matrix((vals_c, (rows_c, cols_c)), shape=(n_acc, n + n_pairs + n_groups))
    # Demand: sum of stays' hours + takes + slack = the group's hours.
    gi = p["group"].to_numpy()
    rows_d = np.concatenate([gi, g_of, np.arange(n_groups)])
    cols_d = np.concatenate([np.arange(n), n + np.arange(n_pairs), n + n_pairs + np.arange(n_groups)])
    vals_d = np.concatenate([hours, np.ones(n_pairs), np.ones(n_groups)])
    a_eq = sp.csr_matrix((vals_d, (rows_d, cols_d)), shape=(n_groups, n + n_pairs + n_groups))
    t = time.perf_counter()
    res = linprog(cost, A_ub=a_cap, b_ub=staff["cap"].to_numpy(), A_eq=a_eq, b_eq=groups["hours"].to_numpy(),
                  bounds=np.column_stack([np.zeros(len(cost)), upper]), method="highs",
                  options={"time_limit": time_limit, "presolve": True})
    lp_seconds = time.perf_counter() - t
    if res.x is None:
        stay = p["may_stay"].to_numpy(dtype=float)
        take = np.zeros(n_pairs)
    else:
        stay, take = res.x[:n], res.x[n:n + n_pairs]

    # Rounding: a client stays when the relaxation keeps it whole.
    keeps = stay > 1 - 1e-6
    room = staff["cap"].to_numpy().copy()
    np.subtract.at(room, ai[keeps], hours[keeps])
    proposed = np.where(keeps, ai, -1)
    share = pd.DataFrame({"group": g_of, "acc": a_of, "take": take})
    offers = {g: list(zip(df["acc"], df["take"])) for g, df in share[share["take"] > 1e-9].groupby("group")}
    eligible = {g: list(df["acc"]) for g, df in share.groupby("group")}
    movers = np.flatnonzero(~keeps)
    movers = movers[np.argsort(-hours[movers], kind="stable")]
    for i in movers:
        g = gi[i]
        best = -1
        for a, _ in sorted(offers.get(g, []), key=lambda x: -x[1]):
            if room[a] >= hours[i]:
                best = a
                break
        if best < 0:
            for a in eligible.get(g, []):
                if room[a] >= hours[i] and (best < 0 or room[a] > room[best]):
                    best = a
        if best < 0:
            # Nobody in its team has room: the accountant with the most room anywhere who may take it.
            may = (staff["active"].to_numpy() & (staff["gt"].to_numpy() | ~p["need_gt"].iat[i])
                   & (staff["intl"].to_numpy() | ~p["international"].iat[i])
                   & (staff["senior"].to_numpy() | ~p["need_senior"].iat[i]))
            free = np.where(may, room, -np.inf)
            if free.max() >= hours[i]:
                best = int(free.argmax())
        if best >= 0:
            room[best] -= hours[i]
            proposed[i] = best
    names = staff["accountant"].to_numpy()
    out = p[["client_id", "name", "value_tier", "accountant", "monthly_hours"]].rename(columns={"accountant": "current"})
    out["proposed"] = np.where(proposed >= 0, names[np.maximum(proposed, 0)], "")
    moved = (proposed >= 0) & (proposed != np.where(known, ai, -2))
    reason = np.where(~known, "no_accountant", np.where(~staff["active"].to_numpy()[ai], "accountant_inactive", np.where(
        ~p["may_stay"], np.where(p["need_senior"] & ~staff["senior"].to_numpy()[ai], "seniority", "skill"),
        "over_capacity")))
    out["reason"] = np.where(proposed < 0, "unplaced", np.where(moved, reason, "kept"))
    # Handovers: at most 10 a month per giving accountant, most needed first.
    rank = out[moved].groupby("current").cumcount()
    out["handover_month"] = np.nan
    out.loc[moved, "handover_month"] = rank // 10 + 1
    out["hours"] = out.pop("monthly_hours")
    before = np.bincount(ai[known.to_numpy()], weights=hours[known.to_numpy()], minlength=n_acc)
    after = np.bincount(np.maximum(proposed, 0), weights=np.where(proposed >= 0, hours, 0), minlength=n_acc)
    wl = staff[["accountant", "team", "grade", "capacity_hours"]].copy()
    wl["hours_before"] = before.round(2)
    wl["utilisation_before"] = (before / staff["capacity_hours"]).round(4)
    wl["hours_after"] = after.round(2)
    wl["utilisation_after"] = (after / staff["capacity_hours"]).round(4)
    wl["clients_before"] = np.bincount(ai[known.to_numpy()], minlength=n_acc)
    wl["clients_after"] = np.bincount(proposed[proposed >= 0], minlength=n_acc)
    tiers = pd.crosstab(out["proposed"], out["value_tier"])
    for tier in tiers.columns:
        wl[f"clients_{tier}"] = wl["accountant"].map(tiers[tier]).fillna(0).astype(int)
    summary = {"moves": int(moved.sum()), "unplaced": int((proposed < 0).sum()), "lp_seconds": lp_seconds,
               "lp_status": int(res.status), "lp_objective": float(res.fun) if res.x is not None else None,
               "peak_utilisation_before": float(wl["utilisation_before"].max()),
               "peak_utilisation_after": float(wl["utilisation_after"].max())}
    return out, wl, summary


# ---------------------------------------------------------------- actions


def next_deadline(snap, general, chase_days=5):
    """5 days before the next filing deadline (the 15th; quarterly months for small-scale), off weekends."""
    first = snap + pd.Timedelta(days=1)
    out = []
    for quarterly in (False, True):
        d = pd.Timestamp(year=first.year, month=first.month, day=15)
        while True:
            if d < first or (quarterly and d.month not in (1, 4, 7, 10)):
                d = (d + pd.offsets.MonthBegin(1)).replace(day=15)
                continue
            while d.weekday() >= 5:
                d += pd.Timedelta(days=1)
            break
        out.append(d - pd.Timedelta(days=chase_days))
    return np.where(general, out[0], out[1])


def actions(data, today, snap, labels, scores, prices, alloc, horizon_days=31):
    c = data["clients"].set_index("client_id")
    f = today[today["served"]][["client_id", "open_receivables", "contract_fee", "avg_monthly_fee", "late_documents_3m"]]
    f = f.merge(labels[["client_id", "value_tier"]], on="client_id", how="left")
    f = f.merge(scores[["client_id", "churn_band", "churn_risk_3m"]], on="client_id", how="left")
    f = f.merge(prices[["client_id", "price_flag", "suggested_fee"]], on="client_id", how="left")
    f = f.merge(alloc[["client_id", "current", "proposed", "reason", "handover_month"]], on="client_id", how="left")
    f["name"] = f["client_id"].map(c["name"])
    f["owner"] = f["proposed"].where(f["proposed"].fillna("") != "", f["current"])
    day = lambda n: snap + pd.Timedelta(days=n)
    out = []

    def add(mask, action, words, due, priority, reason, figure, owner=None):
        d = f[mask]
        sel = mask.to_numpy()
        out.append(pd.DataFrame({
            "client_id": d["client_id"], "name": d["name"], "owner": (f["owner"] if owner is None else owner)[mask],
            "action": action, "action_words": words,
            "due_date": due[sel] if isinstance(due, np.ndarray) else due,
            "priority": priority[sel] if isinstance(priority, np.ndarray) else priority,
            "reason": reason[mask] if isinstance(reason, pd.Series) else reason,
            "figure": figure[mask], "value_tier": d["value_tier"],
        }))

    band, tier = f["churn_band"], f["value_tier"]
    m = ((tier == "V1") & band.isin(["high", "medium"])) | ((tier == "V2") & (band == "high"))
    add(m, "churn_outreach", "call: churn risk", day(7), 1,
        "churn risk " + (f["churn_risk_3m"] * 100).round(0).astype("Int64").astype(str) + "% in 3 months", f["churn_risk_3m"])
    fee = f["contract_fee"].fillna(f["avg_monthly_fee"])
    months = f["open_receivables"] / fee.where(fee > 0)
    m = (f["open_receivables"] > fee) & (f["open_receivables"] > 100)
    add(m, "collect_arrears", "collect arrears", day(7), np.where(months >= 3, 1, 2),
        "owes " + f["open_receivables"].round(0).astype("Int64").astype(str) + " CNY (" + months.round(1).astype(str) + " months of fees)",
        f["open_receivables"])
    general = (f["client_id"].map(c["taxpayer_type"]) == "general").to_numpy()
    m = f["late_documents_3m"].fillna(0) > 0
    add(m, "chase_documents", "chase documents", next_deadline(snap, general), 2,
        "documents late in " + (f["late_documents_3m"] * 100).round(0).astype("Int64").astype(str) + "% of the last 3 months",
        f["late_documents_3m"])
    m = (f["reason"].fillna("kept") != "kept") & (f["reason"] != "unplaced") & (f["handover_month"] == 1)
    add(m, "handover", "hand over", day(14), 2, "to " + f["proposed"].fillna("") + " (" + f["reason"].fillna("") + ")",
        fee, owner=f["current"])
    m = f["price_flag"] == "under_priced"
    add(m, "fee_review", "review the fee", day(30), 3, "suggested fee " + f["suggested_fee"].round(0).astype("Int64").astype(str),
        f["suggested_fee"])
    # Contact: the last contact plus the tier's cycle.
    contacts = data["contacts"]
    last = contacts[contacts["date"] <= snap].groupby("client_id")["date"].max()
    cycle = f["value_tier"].map({"V1": 1, "V2": 3, "V3": 6}).fillna(6).astype(int)
    lastc = f["client_id"].map(last)
    # The last contact plus whole months, the day kept within the month (31 Jan + 1 = 28 Feb).
    mm = lastc.dt.year * 12 + lastc.dt.month - 1 + cycle
    first = pd.to_datetime(pd.DataFrame({"year": mm // 12, "month": mm % 12 + 1, "day": 1}), errors="coerce")
    day_of = np.minimum(lastc.dt.day, first.dt.days_in_month) - 1
    due = (first + pd.to_timedelta(day_of, unit="D")).fillna(snap)
    m = due <= day(horizon_days)
    overdue = due <= snap
    add(m, "contact", "get in touch", np.where(overdue, day(1), due).astype("datetime64[ns]"),
        np.where(overdue & (f["value_tier"] == "V1"), 2, 3), "last contact " + lastc.dt.strftime("%Y-%m-%d").fillna("none"),
        cycle.astype(float))
    acts = pd.concat(out, ignore_index=True)
    acts["due_date"] = pd.to_datetime(acts["due_date"]).dt.strftime("%Y-%m-%d")
    acts = acts.sort_values(["priority", "due_date", "client_id"], kind="stable").reset_index(drop=True)
    return acts


# ---------------------------------------------------------------- outputs


def write_csv(df, path):
    # Every text cell that Excel would read as a formula is written with a leading quote.
    df = df.copy()
    for c in df.select_dtypes(include=["object", "string"]).columns:
        text = df[c].astype("string")
        df[c] = text.mask(text.str.match(r"^[=+\-@\t\r]").fillna(False), "'" + text)
    df.to_csv(path + ".tmp", index=False, encoding="utf-8-sig")
    os.replace(path + ".tmp", path)


def write_parquet(df, path):
    df.to_parquet(path + ".tmp", index=False)
    os.replace(path + ".tmp", path)


def write_xlsx(df, path):
    import xlsxwriter

    wb = xlsxwriter.Workbook(path + ".tmp", {"constant_memory": True, "strings_to_formulas": False,
                                             "strings_to_urls": False, "nan_inf_to_errors": True})
    ws = wb.add_worksheet()
    ws.write_row(0, 0, list(df.columns))
    for r, row in enumerate(df.itertuples(index=False), start=1):
        ws.write_row(r, 0, [None if isinstance(v, float) and np.isnan(v) else v for v in row])
    wb.close()
    os.replace(path + ".tmp", path)


def charts(out, feats, labels, scores_k, churn_summary, prices, workload, snaps, seed):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = os.path.join(out, "charts")
    os.makedirs(d, exist_ok=True)

    def save(fig, name):
        for ext in ("png", "svg"):
            fig.savefig(os.path.join(d, f"{name}.{ext}"), dpi=100)
        plt.close(fig)

    fig, ax = plt.subplots()
    ax.plot([s["k"] for s in scores_k], [s["silhouette"] for s in scores_k], marker="o")
    ax.set_xlabel("k"), ax.set_ylabel("silhouette")
    save(fig, "k_selection")
    sizes = labels["behaviour_segment"].value_counts().sort_index()
    fig, ax = plt.subplots()
    ax.bar(sizes.index, sizes.to_numpy())
    save(fig, "segment_sizes")
    rev = feats["fees_12m"].groupby(labels["value_tier"]).sum()
    fig, ax = plt.subplots()
    ax.pie(rev.to_numpy(), labels=rev.index)
    save(fig, "revenue_share")
    num = feats.select_dtypes("number").drop(columns=["served"], errors="ignore")
    prof = num.groupby(labels["behaviour_segment"]).median()
    prof = (prof - prof.mean()) / prof.std().replace(0, 1)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.imshow(prof.to_numpy(), aspect="auto", cmap="RdBu_r")
    ax.set_yticks(range(len(prof.index)), prof.index)
    save(fig, "profile_heatmap")
    sample = num.sample(min(5000, len(num)), random_state=seed).fillna(0).to_numpy()
    sample = (sample - sample.mean(axis=0)) / np.where(sample.std(axis=0) > 0, sample.std(axis=0), 1)
    u, s_, vt = np.linalg.svd(sample, full_matrices=False)
    fig, ax = plt.subplots()
    ax.scatter(u[:, 0] * s_[0], u[:, 1] * s_[1], s=2)
    save(fig, "segments_pca")
    for h in churn_summary["horizons"]:
        cal = h.get("calibration", [])
        fig, ax = plt.subplots()
        ax.plot([c["predicted"] for c in cal], [c["observed"] for c in cal], marker="o")
        ax.plot([0, 1], [0, 1], ls="--")
        save(fig, f"churn_calibration_{h['months']}m")
        fig, ax = plt.subplots()
        ax.bar(range(len(cal)), [c["observed"] for c in cal])
        save(fig, f"churn_lift_{h['months']}m")
    # Retention 0, 3 and 6 months after a snapshot, by today's tier and segment; and the
    # whole firm's projected over 36 months at the 6-month rate.
    for name, col in (("tiers", "value_tier"), ("segments", "behaviour_segment")):
        group = snaps["client_id"].map(pd.Series(labels[col].to_numpy(), index=feats["client_id"]))
        fig, ax = plt.subplots()
        for g, rows in snaps.groupby(group):
            ax.plot([0, 3, 6], [1, 1 - rows["left_3m"].mean(), 1 - rows["left_6m"].mean()], marker="o", label=g)
        ax.legend()
        save(fig, f"churn_retention_{name}")
    s6 = 1 - snaps["left_6m"].mean()
    k = np.arange(0, 37)
    fig, ax = plt.subplots()
    ax.plot(k, s6 ** (k / 6))
    ax.plot([0, 3, 6], [1, 1 - snaps["left_3m"].mean(), s6], marker="o", ls="")
    save(fig, "churn_retention_projected")
    sp_ = prices.sample(min(5000, len(prices)), random_state=seed)
    fig, ax = plt.subplots()
    ax.scatter(sp_["monthly_hours"], sp_["monthly_fee"], s=2)
    save(fig, "pricing_fee_vs_hours")
    fig, ax = plt.subplots()
    ax.hist([workload["utilisation_before"], workload["utilisation_after"]], bins=40)
    save(fig, "allocation_utilisation")


def _escape(s):
    s = s.astype("string").fillna("")
    return s.str.replace("&", "&amp;").str.replace("<", "&lt;").str.replace(">", "&gt;").str.replace('"', "&quot;")


def pages(out, acts):
    d = os.path.join(out, "actions")
    os.makedirs(d, exist_ok=True)
    cards = ("<div class=card><b>" + _escape(acts["name"]) + "</b> " + _escape(acts["action_words"]) + " ("
             + acts["due_date"].astype("string") + ")<br>" + _escape(acts["reason"]) + "</div>")
    links = []
    for owner, g in cards.groupby(acts["owner"].fillna(""), sort=True):
        safe = "".join(ch if ch.isalnum() else "_" for ch in str(owner))
        name = html.escape(str(owner))
        with open(os.path.join(d, safe + ".html"), "w", encoding="utf-8") as fh:
            fh.write(f"<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
                     f"<title>{name}</title><h1>{name}</h1>" + "".join(g.tolist()))
        links.append(f"<li><a href='{safe}.html'>{name}</a> ({len(g)})</li>")
    with open(os.path.join(d, "index.html"), "w", encoding="utf-8") as fh:
        fh.write("<!doctype html><meta charset=utf-8><ul>" + "".join(links) + "</ul>")


def report(out, sections):
    body = "".join(f"<h2>{html.escape(t)}</h2>{df.to_html(index=False, max_rows=50)}" for t, df in sections)
    charts_dir = os.path.join(out, "charts")
    svgs = "".join(open(os.path.join(charts_dir, f), encoding="utf-8").read()
                   for f in sorted(os.listdir(charts_dir)) if f.endswith(".svg"))
    with open(os.path.join(out, "report.html.tmp"), "w", encoding="utf-8") as fh:
        fh.write("<!doctype html><meta charset=utf-8><title>report</title>" + body + svgs)
    os.replace(os.path.join(out, "report.html.tmp"), os.path.join(out, "report.html"))
