"""A real purchase history for the churn tests: CDNOW's 23,570 customers (January 1997
to June 1998), as shipped with the lifetimes package.

  cdnow.py prepare DIR CUT      clients.csv and billing.csv of the purchases up to CUT
  cdnow.py judge RUN CUT H      the run's risks against who bought nothing in the H
                                months after CUT, beside lifetimes' BG/NBD fitted on
                                the same purchases (JSON on stdout)
"""

import json
import os
import sys

import numpy as np
import pandas as pd


def purchases():
    import lifetimes

    path = os.path.join(os.path.dirname(lifetimes.__file__), "datasets", "CDNOW_master.txt")
    d = pd.read_csv(path, sep=r"\s+", skiprows=1, header=None, names=["id", "date", "cds", "amount"],
                    dtype={"id": str, "date": str})
    d["date"] = pd.to_datetime(d["date"], format="%Y%m%d")
    d["client_id"] = "CD" + d["id"]
    return d


def prepare(out, cut):
    d = purchases()
    d = d[d["date"] <= cut]
    os.makedirs(out, exist_ok=True)
    pd.DataFrame({"client_id": sorted(d["client_id"].unique())}).to_csv(f"{out}/clients.csv", index=False)
    b = pd.DataFrame({"client_id": d["client_id"], "invoice_date": d["date"].dt.strftime("%Y-%m-%d"),
                      "amount": d["amount"]})
    b.to_csv(f"{out}/billing.csv", index=False)


def auc(score, y):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def judge(run, cut, h):
    from lifetimes import BetaGeoFitter

    d = purchases()
    pre = d[d["date"] <= cut].drop_duplicates(["client_id", "date"])
    g = pre.groupby("client_id")["date"]
    # lifetimes' summary in weeks: repeat purchase days, time of the last, age.
    sm = pd.DataFrame({"frequency": g.size() - 1, "recency": (g.max() - g.min()).dt.days / 7,
                       "T": (cut - g.min()).dt.days / 7})
    bg = BetaGeoFitter().fit(sm["frequency"], sm["recency"], sm["T"])
    r, alpha = bg.params_["r"], bg.params_["alpha"]
    weeks = ((cut + pd.offsets.MonthEnd(h)) - cut).days / 7
    alive = bg.conditional_probability_alive(sm["frequency"].values, sm["recency"].values, sm["T"].values)
    sm["bgnbd"] = 1 - alive * (1 - ((alpha + sm["T"]) / (alpha + sm["T"] + weeks)) ** (r + sm["frequency"]))
    later = d[(d["date"] > cut) & (d["date"] <= cut + pd.offsets.MonthEnd(h))]
    bought = set(later["client_id"])
    labels = pd.read_csv(f"{run}/labels.csv", dtype={"client_id": str}, encoding="utf-8-sig")
    risk = f"churn_risk_{h}m"
    served = labels[labels[risk].notna()].set_index("client_id").join(sm)
    y = ~served.index.isin(bought)
    p = served[risk].to_numpy()
    deciles = pd.qcut(pd.Series(p).rank(method="first"), 10, labels=False).to_numpy()
    gone = pd.read_csv(f"{run}/winback.csv", dtype={"client_id": str}, encoding="utf-8-sig")
    back = gone["client_id"].isin(set(d[d["date"] > cut]["client_id"]))
    print(json.dumps({
        "served": int(len(served)),
        "mean_predicted": float(p.mean()),
        "observed": float(y.mean()),
        "brier": float(np.mean((p - y) ** 2)),
        "brier_base_rate": float(np.mean((y.mean() - y) ** 2)),
        "auc": auc(p, y),
        "auc_bgnbd_lifetimes": auc(served["bgnbd"].to_numpy(), y),
        "bgnbd_lifetimes": {k: float(v) for k, v in bg.params_.items()},
        "deciles": [[float(p[deciles == k].mean()), float(y[deciles == k].mean()), int((deciles == k).sum())]
                    for k in range(10)],
        "gone": int(len(gone)),
        "back_share": float(back.mean()),
        "auc_chance_back": auc(gone["chance_back_12m"].to_numpy(), back),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], pd.Timestamp(sys.argv[3]))
    else:
        judge(sys.argv[2], pd.Timestamp(sys.argv[3]), int(sys.argv[4]))
