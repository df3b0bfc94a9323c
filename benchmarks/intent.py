"""Benchmark purchase intent: ``python benchmarks/intent.py --users 100000 --snapshots 8``.

Draws a synthetic ``purchase_intent_training_set`` of users x weekly snapshots
(:func:`ml.intent_synthetic.synthetic_training_frame`: every user at every snapshot, a label that depends on
more than recency, frequency and money), then times :func:`ml.purchase_intent.train_purchase_intent`
(temporal split, sufficiency check, XGBoost with early stopping, the RFM logistic and recency baselines,
gain importance and TreeSHAP on a test sample) and, separately, :func:`ml.purchase_intent.write_intent_plots`.
Prints rows per part, seconds per stage, the peak RSS of this process, the best iteration and the test
metrics of the three models.

  --horizon / --interval   label window and snapshot spacing in days (default 7 / 7)
  --learning-rate          XGBoost eta (default: IntentConfig's); fewer rounds when larger
  --n-estimators           upper bound on boosting rounds (default: IntentConfig's)
  --nthread                XGBoost threads (default 0: every core)
  --no-plots               skip write_intent_plots
  --no-mlflow              skip logging the training to a temporary MLflow store (runs, plots, model, registry)
  --warehouse PATH         instead of a synthetic frame: time `dbt run` of the real snapshot models
                           (user_feature_snapshots, purchase_intent_training_set) on a built warehouse (e.g.
                           the one `benchmarks/transform.py --workdir DIR` leaves), then train on that table

Figures, not assertions: machines here are noisy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

try:
    import ml.purchase_intent as pi
except ModuleNotFoundError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import ml.purchase_intent as pi

from bench_common import peak_rss_mb  # noqa: E402 - benchmarks/bench_common.py (this folder is on sys.path)

from ml.intent_synthetic import synthetic_training_frame


def main(argv: list[str] | None = None) -> int:
    defaults = pi.IntentConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--horizon", type=int, default=defaults.horizon_days)
    parser.add_argument("--interval", type=int, default=7)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--n-estimators", type=int, default=defaults.n_estimators)
    parser.add_argument("--nthread", type=int, default=defaults.nthread)
    parser.add_argument("--no-plots", action="store_true", help="skip write_intent_plots")
    parser.add_argument("--no-mlflow", action="store_true", help="skip timing the MLflow logging")
    parser.add_argument("--warehouse", type=Path, help="a built warehouse: time the real dbt snapshot models")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.warehouse:
        frame = _dbt_training_set(args.warehouse.resolve())
        args.users, args.snapshots = frame["user_key"].nunique(), frame["as_of_date"].nunique()
    else:
        frame = synthetic_training_frame(
            args.users, args.snapshots, seed=args.seed, interval_days=args.interval, horizon_days=args.horizon
        )
    generated = time.perf_counter() - t0
    rss_data = peak_rss_mb()
    config = replace(
        defaults,
        horizon_days=args.horizon,
        learning_rate=args.learning_rate,
        n_estimators=args.n_estimators,
        nthread=args.nthread,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    result = pi.train_purchase_intent(frame, config)
    train_s = time.perf_counter() - t0
    rss_train = peak_rss_mb()

    print(
        f"rows              {len(frame):,}  ({args.users:,} users x {args.snapshots} snapshots, "
        f"{len(pi.FEATURES)} features)"
    )
    source = "dbt run + read" if args.warehouse else "generate"
    print(f"{source:<17} {generated:.2f} s  (peak RSS after: {rss_data:,.0f} MB)")
    print(f"train             {train_s:.2f} s  ({config.threads()} threads, eta {config.learning_rate:g})")
    for stage, s in result.seconds.items():
        if stage != "total":
            print(f"  {stage:<17} {s:.2f} s")
    print(f"peak RSS          {rss_train:,.0f} MB")
    split = result.split.describe()
    for part in pi.PARTS:
        c = result.sufficiency.parts[part]
        print(
            f"{part:<17} {c.rows:>9,} rows  {c.positives:>8,} positives ({c.positives / c.rows:.1%})  "
            f"{split[f'{part}_from']} .. {split[f'{part}_to']}"
        )
    print(
        f"best iteration    {result.best_iteration}  (of at most {config.n_estimators}, stop after "
        f"{config.early_stopping_rounds} without a better validation {config.eval_metric})"
    )
    print(f"validation        xgboost ROC-AUC {result.validation_metrics['roc_auc']:.4f}")
    print("test              ROC-AUC   PR-AUC  log loss   Brier  top-decile lift")
    for name, m in result.test_metrics.items():
        print(
            f"  {name:<17} {m['roc_auc']:7.4f}  {m['pr_auc']:7.4f}  {m['log_loss']:8.4f}  {m['brier']:6.4f}  "
            f"{m['top_decile_lift']:6.2f}"
        )
    top = sorted(result.shap_mean_abs.items(), key=lambda kv: -kv[1])[:6]
    print(f"mean |SHAP|       {', '.join(f'{f} {v:.3f}' for f, v in top)}  ({len(result.shap_values):,} rows)")

    if not args.no_plots:
        with tempfile.TemporaryDirectory(prefix="pulse-bench-intent-") as tmp:
            t0 = time.perf_counter()
            paths = pi.write_intent_plots(result, tmp)
            plots_s = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in paths) / 1024
        print(f"write_intent_plots {plots_s:.2f} s  ({len(paths)} PNGs, {size:,.0f} KB)")
    if not args.no_mlflow:
        from ml.intent_tracking import log_intent_training
        from ml.tracking import tracking_uri

        with tempfile.TemporaryDirectory(prefix="pulse-bench-intent-mlflow-") as tmp:
            t0 = time.perf_counter()
            registration = log_intent_training(result, tracking_uri(Path(tmp) / "mlflow.db"))
            logged_s = time.perf_counter() - t0
        print(
            f"MLflow logging    {logged_s:.2f} s  (parent + 3 child runs, plots, model v{registration.model_version})"
        )
    print(f"peak RSS (end)    {peak_rss_mb():,.0f} MB")
    return 0


def _dbt_training_set(warehouse: Path):
    """`dbt run` of the snapshot models on ``warehouse`` (its marts must be built), then the training table."""
    import duckdb

    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="pulse-bench-intent-dbt-") as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "dbt"), "run", "--quiet", "--target-path", tmp, "--log-path", tmp]
            + ["--select", "user_feature_snapshots", "purchase_intent_training_set"],
            cwd=repo / "dbt_project",
            env={**os.environ, "PULSE_WAREHOUSE": str(warehouse), "PULSE_HOME": str(warehouse.parent)},
            check=True,
        )
        print(f"dbt run (snapshots + training set) {time.perf_counter() - t0:.2f} s, dbt start-up included")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("select * from purchase_intent_training_set").df()
    finally:
        con.close()


if __name__ == "__main__":
    raise SystemExit(main())
