"""The fewest handovers that meet every hard rule, solved exactly by scipy's HiGHS.

Reads a JSON firm (staff: capacity, can, active; jobs: hours, needs, current;
max_utilisation) and prints {"moves": the minimum, "placed": clients placed}: each client
goes to one active accountant whose skills cover its needs, within capacity x
max_utilisation, staying with its current accountant where possible. A client no
accountant may take is left out, as clientseg leaves it unplaced ("unplaceable" counts
them; clientseg counts them among the clients that change accountant).
"""
import json
import sys

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix


def main(path):
    firm = json.load(open(path))
    staff, jobs, u = firm["staff"], firm["jobs"], firm["max_utilisation"]
    pairs = []
    for i, j in enumerate(jobs):
        for a, m in enumerate(staff):
            if m["active"] and (j["needs"] & ~m["can"]) == 0:
                pairs.append((i, a))
    placeable = sorted({i for i, _ in pairs})
    row_of = {i: k for k, i in enumerate(placeable)}
    n = len(pairs)
    # Minimise moves = placed clients - those that stay: reward each staying pair.
    c = np.array([-1.0 if jobs[i]["current"] == a else 0.0 for i, a in pairs])
    one = lil_matrix((len(placeable), n))
    cap = lil_matrix((len(staff), n))
    for k, (i, a) in enumerate(pairs):
        one[row_of[i], k] = 1.0
        cap[a, k] = jobs[i]["hours"]
    limits = [max(m["capacity"], 0.0) * u if m["active"] else 0.0 for m in staff]
    res = milp(
        c,
        constraints=[
            LinearConstraint(one.tocsr(), 1.0, 1.0),
            LinearConstraint(cap.tocsr(), -np.inf, np.array(limits)),
        ],
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": 120},
    )
    if res.status != 0:
        print(json.dumps({"status": int(res.status), "message": res.message}))
        return
    stays = int(round(-res.fun))
    print(json.dumps({
        "status": 0,
        "moves": len(placeable) - stays,
        "placed": len(placeable),
        "unplaceable": len(jobs) - len(placeable),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
