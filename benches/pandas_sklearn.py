"""The clientseg job written the way an analyst would in pandas + scikit-learn.

Same inputs, same feature definitions (docs/data-contract.md), same scaling, the same k
range, restarts, silhouette sample and tree depth as clientseg's defaults; then churn
risk, pricing, allocation (scipy's HiGHS), the action list and the same output files
(pandas_job.py). Prints one JSON object: seconds and peak memory per stage, inertia per
k, the chosen k, and each analysis's quality (churn ROC-AUC, moves, unplaced clients).

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
import pandas_job as job
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
    staff = pd.read_csv(os.path.join(d, "staff.csv"), dtype={"accountant": str, "team": str})
    path = os.path.join(d, "contacts.csv")
    contacts = (pd.read_csv(path, dtype={"client_id": str}, parse_dates=["date"]) if os.path.exists(path)
                else pd.DataFrame({"client_id": pd.Series(dtype=str), "date": pd.Series(dtype="datetime64[ns]")}))
    return clients, billing, activity, staff, contacts


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


def snapshot_day(billing, activity):
    last_month = activity["month"].max()
    snap = max(billing["invoice_date"].max(), billing["paid_date"].max(), last_month + pd.offsets.MonthEnd(0))
    return snap


def features(data, snap, hourly_cost):
    s = (snap - pd.Timestamp("1970-01-01")).days
    out = job.features_at(data, s, hourly_cost=hourly_cost)
    # Who is still served at S, as clientseg decides it: contract_end not passed when the
    # archive records contract ends, else an invoice or work month in the last 3 months.
    if data["clients"]["contract_end"].notna().any():
        out["served"] = ~(out["contract_end_day"].notna() & (out["contract_end_day"] < s))
    else:
        out["served"] = (out["silent_months"] < 3).to_numpy()
    return out.drop(columns=["started", "contract_end_day"])


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

    clients, billing, activity, staff, contacts = st.run("ingest", lambda: ingest(args.input))
    clients, billing, activity = st.run("validate", lambda: validate(clients, billing, activity))
    snap = snapshot_day(billing, activity)

    def feature_stage():
        data = job.prepare(clients, billing, activity, staff, contacts)
        return data, features(data, snap, args.hourly_cost)

    data, feats = st.run("features", feature_stage)
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
    worth = feats["contribution_margin"].groupby(vlabels).mean().sort_values(ascending=False)
    tier = {c: f"V{i + 1}" for i, c in enumerate(worth.index)}
    sizes = pd.Series(blabels).value_counts()
    segment = {c: f"B{i + 1}" for i, c in enumerate(sizes.index)}
    labels = pd.DataFrame({
        "client_id": feats["client_id"],
        "value_tier": pd.Series(vlabels).map(tier),
        "behaviour_segment": pd.Series(blabels).map(segment),
    })

    churn_summary, risk, snaps, validation = st.run("churn", lambda: job.churn(data, feats, args.seed))
    prices, pricing_summary = st.run(
        "pricing", lambda: job.pricing(data, feats, labels, risk, churn_summary["fee_response"], args.seed, args.hourly_cost))
    alloc, workload, allocation_summary = st.run("allocation", lambda: job.allocation(data, prices))
    acts = st.run("actions", lambda: job.actions(data, feats, snap, labels, risk, prices, alloc))

    def outputs():
        out = args.out
        full = labels.merge(risk, on="client_id", how="left")
        full = full.merge(prices[["client_id", "monthly_hours", "hours_source", "monthly_cost", "margin_rate",
                                  "price_flag", "suggested_fee"]], on="client_id", how="left")
        full = full.merge(alloc[["client_id", "proposed", "reason", "handover_month"]].rename(
            columns={"proposed": "proposed_accountant", "reason": "allocation_reason"}), on="client_id", how="left")
        due = acts.groupby("client_id")["action"].agg(";".join)
        full["actions_due"] = full["client_id"].map(due)
        info = clients.set_index("client_id")
        for c in ("name", "client_type", "taxpayer_type", "industry", "province", "city", "services", "accountant"):
            full[c] = full["client_id"].map(info[c])
        job.write_csv(full, os.path.join(out, "labels.csv"))
        job.write_parquet(full, os.path.join(out, "labels.parquet"))
        job.write_parquet(feats, os.path.join(out, "features.parquet"))
        crm = full[["client_id", "name", "value_tier", "behaviour_segment", "accountant", "churn_risk_3m",
                    "churn_risk_6m", "revenue_at_risk", "churn_band", "churn_drivers", "expected_months_12m",
                    "value_ahead_12m", "value_ahead_36m", "price_flag", "suggested_fee", "proposed_accountant"]]
        job.write_csv(crm, os.path.join(out, "crm_import.csv"))
        seg = feats.drop(columns=["client_id"]).groupby(labels["behaviour_segment"]).median().reset_index()
        job.write_csv(seg, os.path.join(out, "segments.csv"))
        job.write_xlsx(seg, os.path.join(out, "segments.xlsx"))
        for name, df in (("pricing", prices), ("allocation", alloc), ("workload", workload), ("actions", acts),
                         ("fee_response", churn_summary["fee_response"])):
            job.write_csv(df, os.path.join(out, f"{name}.csv"))
            job.write_parquet(df, os.path.join(out, f"{name}.parquet"))
        for name, df in (("workload", workload), ("fee_response", churn_summary["fee_response"])):
            job.write_xlsx(df, os.path.join(out, f"{name}.xlsx"))
        tasks = pd.DataFrame({
            "Subject": acts["action_words"] + ": " + acts["name"].astype(str), "Due Date": acts["due_date"],
            "Status": "Not Started", "Priority": acts["priority"].map({1: "High", 2: "Normal", 3: "Low"}),
            "Task Owner": acts["owner"], "Account Number": acts["client_id"], "Related To": acts["name"],
            "Description": acts["reason"],
        })
        job.write_csv(tasks, os.path.join(out, "crm_tasks.csv"))
        job.write_parquet(snaps, os.path.join(out, "churn_snapshots.parquet"))
        job.write_parquet(validation, os.path.join(out, "churn_validation.parquet"))
        job.charts(out, feats, labels, scores, churn_summary, prices, workload, snaps, args.seed)
        job.pages(out, acts)
        job.report(out, [
            ("value tiers", labels["value_tier"].value_counts().rename_axis("tier").reset_index()),
            ("behaviour segments", seg),
            ("churn validation", pd.DataFrame([{k: v for k, v in h.items() if k != "calibration"}
                                               for h in churn_summary["horizons"]])),
            ("pricing", prices["price_flag"].value_counts().rename_axis("flag").reset_index()),
            ("workload", workload.sort_values("utilisation_after", ascending=False)),
            ("actions", acts["action"].value_counts().rename_axis("action").reset_index()),
        ])
        with open(os.path.join(out, "manifest.json"), "w") as fh:
            json.dump({"seed": args.seed, "churn": {k: v for k, v in churn_summary.items() if k != "fee_response"},
                       "pricing": pricing_summary, "allocation": allocation_summary}, fh, default=str)

    st.run("outputs", outputs)
    churn_quality = {f"churn {h['months']}m ROC-AUC": h.get(f"{h.get('chosen', 'logistic')}_auc")
                     for h in churn_summary["horizons"]}
    print(json.dumps({
        "timings": st.timings,
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": peak_mib(),
        "k_scores": scores,
        "chosen_k": int(bfit.n_clusters),
        "behaviour_inertia": float(bfit.inertia_),
        "value_inertia": float(vfit.inertia_),
        "holdout_accuracy": acc,
        "quality": {
            **churn_quality,
            "churn test rows": sum(h["test_rows"] for h in churn_summary["horizons"]),
            "under-priced clients": pricing_summary["under_priced"],
            "allocation moves": allocation_summary["moves"],
            "allocation unplaced": allocation_summary["unplaced"],
            "allocation peak utilisation": allocation_summary["peak_utilisation_after"],
            "actions": int(len(acts)),
        },
        "churn": {k: v for k, v in churn_summary.items() if k != "fee_response"},
        "allocation": allocation_summary,
        "versions": {"python": sys.version.split()[0], "pandas": pd.__version__, "numpy": np.__version__,
                     "scikit-learn": __import__("sklearn").__version__,
                     "scipy": __import__("scipy").__version__},
    }, default=str))


if __name__ == "__main__":
    main()
