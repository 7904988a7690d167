"""The churn job of `clientseg bench` in scikit-learn, on clientseg's own snapshots.

Reads a run folder written with `[churn] export_snapshots = true`: churn_snapshots.parquet
(every monthly snapshot, its features and outcomes) and manifest.json (the test months,
the feature transforms, the training-row cap, the seed). For each horizon and test month
it fits LogisticRegression (standardised features, the months to renewal read as "within
the horizon", L2, C = 1) and
HistGradientBoostingClassifier on the snapshots whose outcome was known by the test month,
scores the test month, and prints pooled ROC-AUC and the fitting time as JSON.
"""

import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


def transform(x, how):
    if how == "log1p":
        return np.log1p(np.maximum(x, 0.0))
    if how == "signed_log1p":
        return np.sign(x) * np.log1p(np.abs(x) / 1000.0)
    return x


def month_index(text):
    y, m = text.split("-")
    return int(y) * 12 + int(m)


def within_horizon(z, raw, features, h):
    """The logistic regression's reading for horizon h: the months to renewal as 1 when
    from 1 to h, else 0 (as clientseg's)."""
    if "months_to_renewal" not in features:
        return z
    j = features.index("months_to_renewal")
    v = raw[:, j]
    out = z.copy()
    out[:, j] = np.where(np.isnan(v), np.nan, ((v >= 1) & (v <= h)).astype(float))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    args = ap.parse_args()
    manifest = json.load(open(f"{args.run}/manifest.json"))
    churn = manifest["analyses"]["churn"]
    features = churn["features"]
    transforms = churn["transforms"]
    rows = churn["validation_train_rows"]
    seed = churn["seed"]
    snaps = pd.read_parquet(f"{args.run}/churn_snapshots.parquet")
    raw = snaps[features].to_numpy(dtype=float)
    z = np.column_stack([transform(raw[:, j], transforms[f]) for j, f in enumerate(features)])
    out = {"horizons": [], "timings": []}
    fit_seconds = {"logistic": 0.0, "boosted": 0.0}
    for v in churn["validation"]:
        h = v["months"]
        if not v["test_months"]:
            continue
        label = snaps[f"left_{h}m"]
        known = snaps[f"known_by_{h}m"].to_numpy()
        month = snaps["month_index"].to_numpy()
        labelled = label.notna().to_numpy()
        y = label.fillna(False).to_numpy(dtype=bool)
        pooled = {"logistic": [], "boosted": [], "y": []}
        zh = within_horizon(z, raw, features, h)
        for k, t in enumerate(v["test_months"]):
            ti = month_index(t)
            train = np.flatnonzero(labelled & (known <= ti))
            test = np.flatnonzero(labelled & (month == ti))
            rng = np.random.default_rng(seed + ti)
            if len(train) > rows:
                train = np.sort(rng.choice(train, rows, replace=False))
            # Standardise with the training rows; missing values sit at the mean.
            zt = zh[train]
            mean = np.nanmean(zt, axis=0)
            std = np.nanstd(zt, axis=0)
            std[~(std > 1e-9)] = 1.0
            mean = np.nan_to_num(mean)

            def scaled(a):
                s = (a - mean) / std
                return np.clip(np.nan_to_num(s, nan=0.0), -6.0, 6.0)

            t0 = time.perf_counter()
            lr = LogisticRegression(C=1.0, max_iter=500).fit(scaled(zt), y[train])
            fit_seconds["logistic"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            gb = HistGradientBoostingClassifier(
                max_iter=80, learning_rate=0.1, max_depth=4, min_samples_leaf=20,
                l2_regularization=1.0, max_bins=64, early_stopping=False, random_state=seed,
            ).fit(raw[train], y[train])
            fit_seconds["boosted"] += time.perf_counter() - t0
            pooled["logistic"].extend(lr.predict_proba(scaled(zh[test]))[:, 1])
            pooled["boosted"].extend(gb.predict_proba(raw[test])[:, 1])
            pooled["y"].extend(y[test])
        yy = np.array(pooled["y"])
        out["horizons"].append({
            "months": h,
            "test_months": v["test_months"],
            "logistic_auc": float(roc_auc_score(yy, pooled["logistic"])),
            "boosted_auc": float(roc_auc_score(yy, pooled["boosted"])),
        })
    out["timings"] = [{"stage": f"churn {k}", "seconds": s} for k, s in fit_seconds.items()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
