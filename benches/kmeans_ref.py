"""scikit-learn's Lloyd k-means from given starting centres, for `clientseg bench` and the
equivalence test. Reads X and the centres as .npy files, prints JSON: iterations,
seconds, inertia and the final centres.

    python benches/kmeans_ref.py X.npy INIT.npy [--tol 1e-4] [--max-iter 300]
"""

import argparse
import json
import time

import numpy as np
from sklearn.cluster import KMeans


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("x")
    ap.add_argument("init")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    x = np.load(args.x)
    init = np.load(args.init)
    best = None
    for _ in range(max(1, args.repeat)):
        t = time.perf_counter()
        km = KMeans(n_clusters=len(init), init=init, n_init=1, tol=args.tol, max_iter=args.max_iter,
                    algorithm="lloyd").fit(x)
        s = time.perf_counter() - t
        best = s if best is None else min(best, s)
    print(json.dumps({
        "n_iter": int(km.n_iter_),
        "seconds": best,
        "inertia": float(km.inertia_),
        "centroids": km.cluster_centers_.tolist(),
    }))


if __name__ == "__main__":
    main()
