"""The clientseg job written the way an analyst would in pandas + scikit-learn.

Same inputs, same feature definitions (docs/data-contract.md), same scaling, the same k
range, restarts, silhouette sample and tree depth as clientseg's defaults. Prints one
JSON object: seconds and peak memory per stage, inertia per k, and the chosen k.

Run by `clientseg bench`; by hand:
    benches/.venv/bin/python benches/pandas_sklearn.py --input DIR --out DIR
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

LOG1P = {
    "fees_12m", "avg_monthly_fee", "cost_to_serve", "tenure_months", "days_since_last_payment",
    "payments_per_year", "mean_payment_delay_days", "open_receivables", "vouchers_per_month", "tickets_per_month",
}
SIGNED_LOG1P = {"contribution_margin"}


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Stages:
    def __init__(self):
        self.timings = []

    def run(self, name, f):
        t = time.perf_counter()
        out = f()
        self.timings.append({"stage": name, "seconds": time.perf_counter() - t, "peak_rss_mib": peak_mib()})
        print(f"  python {name}: {self.timings[-1]['seconds']:.2f}s", file=sys.stderr, flush=True)
        return out


def ingest(d):
    clients = pd.read_csv(
        os.path.join(d, "clients.csv"),
        dtype={"client_id": str, "services": str},
        parse_dates=["contract_start", "contract_end"],
    )
    billing = pd.read_csv(
        os.path.join(d, "billing.csv"),
        dtype={"client_id": str, "service": str},
        parse_dates=["invoice_date", "due_date", "paid_date"],
    )
    activity = pd.read_csv(os.path.join(d, "activity.csv"), dtype={"client_id": str, "month": str})
    return clients, billing, activity


def validate(clients, billing, activity):
    clients = clients[clients["client_id"].notna() & ~clients["client_id"].duplicated()]
    known = clients["client_id"]
    billing = billing[
        billing["client_id"].isin(known)
        & billing["invoice_date"].notna()
        & billing["amount"].notna()
        & (billing["amount"] >= 0)
    ]
    activity = activity.assign(month=pd.to_datetime(activity["month"], format="%Y-%m"))
    spans = clients.set_index("client_id")[["contract_start", "contract_end"]]
    start = activity["client_id"].map(spans["contract_start"]).dt.to_period("M").dt.to_timestamp()
    end = activity["client_id"].map(spans["contract_end"]).dt.to_period("M").dt.to_timestamp()
    ok = (
        activity["client_id"].isin(known)
        & activity["month"].notna()
        & ~(activity["month"] < start)
        & ~(activity["month"] > end)
        & ~activity.duplicated(["client_id", "month"])
    )
    for c in ["vouchers", "filings", "hours", "tickets", "late_documents"]:
        ok &= ~(activity[c] < 0)
    return clients, billing, activity[ok]


def features(clients, billing, activity, hourly_cost):
    def days(s):
        return (s - pd.Timestamp("1970-01-01")).dt.days

    last_month = activity["month"].max()
    snap = max(billing["invoice_date"].max(), billing["paid_date"].max(), last_month + pd.offsets.MonthEnd(0))
    s = (snap - pd.Timestamp("1970-01-01")).days

    inv = days(billing["invoice_date"])
    due = days(billing["due_date"])
    paid = days(billing["paid_date"])
    amount = billing["amount"]
    paid_by_s = paid.notna() & (paid <= s)
    settled = paid.where(paid_by_s, s)
    delay = (settled - due).clip(lower=0)
    due_in = (due > s - 365) & (due <= s)
    in12 = (inv > s - 365) & (inv <= s)
    b = pd.DataFrame(
        {
            "client_id": billing["client_id"],
            "fees_12m": amount.where(in12, 0.0),
            "last6": amount.where((inv > s - 182) & (inv <= s), 0.0),
            "prior6": amount.where((inv > s - 365) & (inv <= s - 182), 0.0),
            "first_invoice": inv,
            "last_payment": paid.where(paid_by_s),
            "payments": ((paid > s - 365) & (paid <= s)).astype(float),
            "delay": delay.where(due_in),
            "late": (delay > 0).astype(float).where(due_in),
            "open": amount.where((inv <= s) & ~paid_by_s, 0.0),
            "service12": billing["service"].where(in12),
        }
    )
    g = b.groupby("client_id", sort=False)
    bf = g.agg(
        fees_12m=("fees_12m", "sum"),
        last6=("last6", "sum"),
        prior6=("prior6", "sum"),
        first_invoice=("first_invoice", "min"),
        last_payment=("last_payment", "max"),
        payments_per_year=("payments", "sum"),
        mean_payment_delay_days=("delay", "mean"),
        late_payment_share=("late", "mean"),
        open_receivables=("open", "sum"),
        services_billed=("service12", "nunique"),
    )

    t = (activity["month"].dt.year * 12 + activity["month"].dt.month) - (snap.year * 12 + snap.month)
    a = activity.assign(t=t.astype(float))
    a = a[(a["t"] > -12) & (a["t"] <= 0)]
    known = a["vouchers"].notna()
    a = a.assign(
        tv=a["t"] * a["vouchers"],
        tk=a["t"].where(known),
        tt=(a["t"] * a["t"]).where(known),
        late=(a["late_documents"] > 0).astype(float),
    )
    ga = a.groupby("client_id", sort=False)
    af = ga.agg(
        n=("vouchers", "count"),
        vouchers_per_month=("vouchers", "mean"),
        vstd=("vouchers", "std"),
        tickets_per_month=("tickets", "mean"),
        late_documents_share=("late", "mean"),
        hours=("hours", "sum"),
        st=("tk", "sum"),
        sv=("vouchers", "sum"),
        stv=("tv", "sum"),
        stt=("tt", "sum"),
    )
    mean = af["vouchers_per_month"]
    af["vouchers_cv"] = np.where(mean > 0, af["vstd"] / mean, 0.0)
    denom = af["n"] * af["stt"] - af["st"] ** 2
    slope = (af["n"] * af["stv"] - af["st"] * af["sv"]) / denom
    af["activity_trend"] = np.where((denom > 0) & (mean > 0), slope / mean, 0.0)

    f = clients[["client_id", "contract_start", "contract_end", "services"]].merge(
        bf, left_on="client_id", right_index=True, how="left"
    )
    f = f.merge(af, left_on="client_id", right_index=True, how="left")
    start = days(f["contract_start"]).fillna(f["first_invoice"])
    cend = days(f["contract_end"])
    end = cend.where(cend.notna() & (cend < s), s)
    tenure = ((end - start) / 30.4375).clip(lower=0)
    fees = f["fees_12m"].fillna(0.0)
    last6, prior6 = f["last6"].fillna(0.0), f["prior6"].fillna(0.0)
    mid = (last6 + prior6) / 2
    cost = f["hours"].fillna(0.0) * hourly_cost
    listed = f["services"].str.count(";") + 1
    out = pd.DataFrame(
        {
            "client_id": f["client_id"],
            "fees_12m": fees,
            "avg_monthly_fee": fees / tenure.clip(1, 12),
            "fee_growth": np.where(mid > 0, (last6 - prior6) / mid.where(mid > 0, 1), 0.0),
            "cost_to_serve": cost,
            "contribution_margin": fees - cost,
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
        }
    )
    # Who is still served at S, as clientseg decides it: contract_end not passed when the
    # archive records contract ends, else an invoice or work month in the last 3 months.
    if cend.notna().any():
        out["served"] = ~(cend.notna() & (cend < s))
    else:
        snap_month = snap.year * 12 + snap.month
        last_inv = billing[billing["invoice_date"] <= snap].groupby("client_id")["invoice_date"].max()
        last_work = activity[activity["month"] <= snap].groupby("client_id")["month"].max()
        idx = lambda d: d.dt.year * 12 + d.dt.month
        li = f["client_id"].map(idx(last_inv))
        lw = f["client_id"].map(idx(last_work)) if len(activity) else li * np.nan
        silent = snap_month - pd.concat([li, lw], axis=1).max(axis=1)
        out["served"] = (silent < 3).to_numpy()
    return out.reset_index(drop=True)


def scale(df, names):
    raw = df[names].to_numpy(dtype=float)
    med = np.nanmedian(raw, axis=0)
    raw = np.where(np.isnan(raw), med, raw)
    x = raw.copy()
    for j, n in enumerate(names):
        if n in LOG1P:
            x[:, j] = np.log1p(np.maximum(x[:, j], 0))
        elif n in SIGNED_LOG1P:
            x[:, j] = np.sign(x[:, j]) * np.log1p(np.abs(x[:, j]) / 1000.0)
    return raw, StandardScaler().fit_transform(x)


def k_selection(z, args):
    scores, fits = [], {}
    for k in range(args.k_min, args.k_max + 1):
        km = KMeans(
            n_clusters=k, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol,
            algorithm="lloyd", random_state=args.seed,
        ).fit(z)
        sil = silhouette_score(z, km.labels_, sample_size=min(args.silhouette_sample, len(z)), random_state=args.seed)
        scores.append({
            "k": k,
            "silhouette": float(sil),
            "calinski_harabasz": float(calinski_harabasz_score(z, km.labels_)),
            "davies_bouldin": float(davies_bouldin_score(z, km.labels_)),
            "inertia": float(km.inertia_),
        })
        fits[k] = km
    # The same rank vote as clientseg: lowest rank sum, ties to the higher silhouette.
    def ranks(key, reverse):
        order = sorted(range(len(scores)), key=lambda i: scores[i][key], reverse=reverse)
        r = [0] * len(scores)
        for pos, i in enumerate(order):
            r[i] = pos
        return r
    rs = [ranks("silhouette", True), ranks("calinski_harabasz", True), ranks("davies_bouldin", False)]
    best = min(range(len(scores)), key=lambda i: (sum(r[i] for r in rs), -scores[i]["silhouette"]))
    return scores, fits[scores[best]["k"]]


def tree(raw, labels, seed):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(raw))
    n_test = int(np.ceil(len(raw) * 0.2))
    test, train = idx[:n_test], idx[n_test:]
    t = DecisionTreeClassifier(max_depth=4, min_samples_leaf=max(1, int(len(train) * 0.005)), random_state=seed)
    t.fit(raw[train], labels[train])
    return float((t.predict(raw[test]) == labels[test]).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    # The clustered features, as clientseg's defaults list them (the bench passes them).
    ap.add_argument("--value-features", required=True, type=lambda v: v.split(","))
    ap.add_argument("--behaviour-features", required=True, type=lambda v: v.split(","))
    ap.add_argument("--k-min", type=int, default=2)
    ap.add_argument("--k-max", type=int, default=8)
    ap.add_argument("--value-k", type=int, default=3)
    ap.add_argument("--n-init", type=int, default=8)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--silhouette-sample", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--hourly-cost", type=float, default=60.0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    st = Stages()
    started = time.perf_counter()

    clients, billing, activity = st.run("ingest", lambda: ingest(args.input))
    clients, billing, activity = st.run("validate", lambda: validate(clients, billing, activity))
    feats = st.run("features", lambda: features(clients, billing, activity, args.hourly_cost))
    del billing, activity
    (vraw, vz), (braw, bz) = st.run("scaling", lambda: (scale(feats, args.value_features), scale(feats, args.behaviour_features)))
    # Segments are fitted on the clients still served and every client is labelled.
    served = feats["served"].to_numpy(dtype=bool)
    scores, bfit = st.run("k selection", lambda: k_selection(bz[served], args))
    vfit = st.run(
        "final fits",
        lambda: KMeans(n_clusters=args.value_k, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol,
                       algorithm="lloyd", random_state=args.seed).fit(vz[served]),
    )
    vlabels, blabels = vfit.predict(vz), bfit.predict(bz)
    acc = st.run("classifier", lambda: (tree(vraw, vlabels, args.seed), tree(braw, blabels, args.seed)))

    def outputs():
        worth = feats["contribution_margin"].groupby(vlabels).mean().sort_values(ascending=False)
        tier = {c: f"V{i + 1}" for i, c in enumerate(worth.index)}
        labels = pd.DataFrame({
            "client_id": feats["client_id"],
            "value_tier": pd.Series(vlabels).map(tier),
            "behaviour_segment": ["B" + str(l + 1) for l in blabels],
        })
        labels.to_csv(os.path.join(args.out, "labels.csv"), index=False)
        labels.to_parquet(os.path.join(args.out, "labels.parquet"), index=False)
        feats.to_parquet(os.path.join(args.out, "features.parquet"), index=False)
        seg = feats.drop(columns=["client_id"]).groupby(labels["behaviour_segment"]).mean()
        seg.to_csv(os.path.join(args.out, "segments.csv"))

    st.run("outputs", outputs)
    print(json.dumps({
        "timings": st.timings,
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": peak_mib(),
        "k_scores": scores,
        "chosen_k": int(bfit.n_clusters),
        "behaviour_inertia": float(bfit.inertia_),
        "value_inertia": float(vfit.inertia_),
        "holdout_accuracy": acc,
        "versions": {"python": sys.version.split()[0], "pandas": pd.__version__, "numpy": np.__version__,
                     "scikit-learn": __import__("sklearn").__version__},
    }))


if __name__ == "__main__":
    main()
