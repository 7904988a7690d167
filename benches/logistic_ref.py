"""scikit-learn's LogisticRegression (L2, C = 1) on the rows clientseg's churn model fits.

Reads x.npy (raw features, NaN where missing), y.npy (1 = left) and model.json (the
transforms, means and standard deviations clientseg's logistic regression standardised
with, and the feature it reads as "within the horizon"), standardises the same way (a
missing value sits at the mean; |z| at most 6), fits,
and prints the coefficients, intercept and ROC-AUC as JSON.
"""
import json
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from churn_sklearn import transform


def main(x_path, y_path, model_path):
    x = np.load(x_path)
    y = np.load(y_path)[:, 0].astype(int)
    m = json.load(open(model_path))
    w = m.get("window")
    if w:
        v = x[:, w["feature"]].copy()
        x[:, w["feature"]] = np.where(np.isnan(v), np.nan, ((v >= 1) & (v <= w["months"])).astype(float))
        m["transforms"][w["feature"]] = "none"
    z = np.column_stack([
        (transform(x[:, j], m["transforms"][j]) - m["mean"][j]) / m["std"][j] for j in range(x.shape[1])
    ])
    z = np.clip(np.nan_to_num(z, nan=0.0), -6.0, 6.0)
    lr = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(z, y)
    print(json.dumps({
        "coef": lr.coef_[0].tolist(),
        "intercept": float(lr.intercept_[0]),
        "auc": float(roc_auc_score(y, lr.decision_function(z))),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:4])
