"""A CDNOW-like purchase log for tests: a cohort of customers who first bought in the first quarter of 1997,
each buying again at their own rate until they drop out (a BG/NBD process: a gamma-distributed rate per
customer, a beta-distributed chance of dropping out after each purchase), observed until 1998-06-30, with
log-normal order amounts. In the shape of the shipped `purchase_log` mapping (order_id, customer_id,
ordered_at without a zone, amount). CDNOW's own 1/10 sample (2,357 customers, 6,919 orders, about half of the
customers buying once, a mean order near $35) is not in the repository; this has its proportions."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

COHORT_START = datetime(1997, 1, 1)
COHORT_DAYS = 90  # first purchases: 1997-01-01 .. 1997-03-31
OBSERVED_UNTIL = datetime(1998, 7, 1)  # orders up to 1998-06-30


def purchase_rows(customers: int, seed: int) -> list[tuple[str, str, str, str]]:
    """(order_id, customer_id, ordered_at, amount) rows, in time order."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(shape=0.5, scale=0.25, size=customers)  # purchases per week while active
    dropout = rng.beta(1.0, 2.0, size=customers)  # chance of never buying again after each purchase
    spend = rng.normal(3.3, 0.35, size=customers)  # each customer's typical log amount
    orders: list[tuple[datetime, int, float]] = []
    for c in range(customers):
        when = COHORT_START + timedelta(seconds=float(rng.uniform(0, COHORT_DAYS * 86400)))
        while when < OBSERVED_UNTIL:
            orders.append((when, c, float(np.exp(rng.normal(spend[c], 0.6)))))
            if rng.random() < dropout[c] or rates[c] <= 0:
                break
            when += timedelta(weeks=min(float(rng.exponential(1.0 / rates[c])), 100.0))  # 100: past the end
    orders.sort()
    return [
        (f"A-{i + 1:06d}", f"c-{c + 1:05d}", when.strftime("%Y-%m-%d %H:%M:%S"), f"{amount:.2f}")
        for i, (when, c, amount) in enumerate(orders)
    ]


def write_purchase_log(path: Path, customers: int = 2500, seed: int = 1997) -> list[tuple[str, str, str, str]]:
    rows = purchase_rows(customers, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["order_id", "customer_id", "ordered_at", "amount"])
        writer.writerows(rows)
    return rows
