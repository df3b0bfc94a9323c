"""Benchmark segmentation: ``python benchmarks/segmentation.py --users 500000``.

Draws a synthetic ``user_features`` frame of N users with the five planted demo personas
(:func:`ml.synthetic.synthetic_user_features`), then times :func:`ml.segmentation.fit_segments` over the
whole k range (default 2-10, production settings) and prints seconds per stage, the peak RSS of this
process, the silhouette of every k, the chosen k, Ward's silhouette, the ARI against the personas and the
segments.

  --refit          also time a second fit matched to the first (what a daily refit costs)
  --features-file  draw the N rows with replacement from a real ``user_features`` export (Parquet or CSV,
                   e.g. the demo's) instead: real segments overlap more, and K-Means needs more iterations;
                   with a ``persona`` column (the demo's ground truth joined on) the ARI is against it
  --minibatch      also time scikit-learn's MiniBatchKMeans on the same matrix and k range, for the record
                   of why exact K-Means is used

Figures, not assertions: machines here are noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    import ml.segmentation as seg
except ModuleNotFoundError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import ml.segmentation as seg

from bench_common import peak_rss_mb  # noqa: E402 - benchmarks/bench_common.py (this folder is on sys.path)

from ml.synthetic import PERSONAS, synthetic_user_features


def resample(path: Path, users: int, seed: int):
    import numpy as np
    import pandas as pd

    real = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    rows = np.random.default_rng(seed).integers(0, len(real), size=users)
    df = real.iloc[rows].reset_index(drop=True)
    df["user_key"] = [f"r{i:08d}" for i in range(users)]
    persona = None
    if "persona" in df.columns:
        persona = df["persona"].map({p: i for i, p in enumerate(PERSONAS)}).fillna(-1).to_numpy()
    return df, persona


def minibatch(df, config: seg.SegmentationConfig) -> None:
    import numpy as np
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = seg.FeatureTransform.from_config(config).matrix(df)
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    print("\nk   KMeans s  inertia/user   MiniBatch s  inertia/user")
    totals = [0.0, 0.0]
    for k in range(config.k_min, config.k_max + 1):
        row = []
        for i, algo in enumerate((KMeans, MiniBatchKMeans)):
            extra = {"batch_size": 4096} if algo is MiniBatchKMeans else {}
            t = time.perf_counter()
            fitted = algo(n_clusters=k, n_init=config.n_init, random_state=config.seed, **extra).fit(x)
            s = time.perf_counter() - t
            totals[i] += s
            row.append(f"{s:8.2f}  {fitted.inertia_ / len(x):12.4f}")
        print(f"{k:<3} {row[0]}   {row[1]}")
    print(f"all {totals[0]:8.2f}                 {totals[1]:8.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--k-min", type=int, default=2)
    parser.add_argument("--k-max", type=int, default=10)
    parser.add_argument("--n-init", type=int, default=seg.SegmentationConfig.n_init)
    parser.add_argument("--silhouette-sample", type=int, default=seg.SegmentationConfig.silhouette_sample)
    parser.add_argument("--features-file", type=Path, help="resample a real user_features export instead")
    parser.add_argument("--refit", action="store_true", help="time a second fit matched to the first")
    parser.add_argument("--minibatch", action="store_true", help="also time MiniBatchKMeans on the same data")
    args = parser.parse_args(argv)

    from sklearn.metrics import adjusted_rand_score

    t0 = time.perf_counter()
    if args.features_file:
        df, persona = resample(args.features_file, args.users, args.seed)
    else:
        df, persona = synthetic_user_features(args.users, seed=args.seed)
    generated = time.perf_counter() - t0
    rss_data = peak_rss_mb()
    config = seg.SegmentationConfig(
        k_min=args.k_min,
        k_max=args.k_max,
        seed=args.seed,
        n_init=args.n_init,
        silhouette_sample=args.silhouette_sample,
    )
    t0 = time.perf_counter()
    result = seg.fit_segments(df, config)
    fit_s = time.perf_counter() - t0
    ari = adjusted_rand_score(persona, result.assignments["segment_id"]) if persona is not None else float("nan")

    print(f"users             {result.n_users:,}  ({len(result.model.columns)} model columns)")
    print(f"generate          {generated:.2f} s  (peak RSS after: {rss_data:,.0f} MB)")
    print(f"fit_segments      {fit_s:.2f} s  (k {config.k_min}-{config.k_max}, n_init {config.n_init})")
    for stage, s in result.seconds.items():
        if stage != "total":
            print(f"  {stage:<15} {s:.2f} s")
    print(f"peak RSS          {peak_rss_mb():,.0f} MB")
    print(f"silhouette sample {result.sample_size:,}")
    print("silhouette        " + "  ".join(f"k{k}={v:.3f}" for k, v in result.silhouettes.items()))
    print(f"chosen k          {result.chosen_k}  (silhouette {result.silhouette:.3f})")
    print(f"Ward (sample)     silhouette {result.ward_silhouette:.3f}, ARI vs K-Means {result.ward_kmeans_ari:.3f}")
    print(f"ARI vs personas   {ari:.3f}  ({', '.join(PERSONAS)})")
    prof = result.profile[result.profile["segment_id"] >= 0]
    for row in prof.itertuples():
        print(f"  segment {row.segment_id}: {row.segment_name:<28} {row.users:>9,}  {row.share:6.1%}")

    if args.refit:
        later = df.sample(frac=0.95, random_state=args.seed + 1)
        t0 = time.perf_counter()
        refit = seg.fit_segments(later, config, previous=result.model)
        print(f"refit (matched)   {time.perf_counter() - t0:.2f} s, k {refit.chosen_k}, ", end="")
        print(f"id agreement vs previous {refit.id_agreement_vs_previous:.3f}")
    if args.minibatch:
        minibatch(df, config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
