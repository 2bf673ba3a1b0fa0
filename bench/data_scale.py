"""Benchmark: profile + check of 1,000,000 rows × 50 columns, and leakage between an
800,000-row and a 200,000-row split, against the raw pandas operations in the same run.

Target: profile + check under 30 s on the development machine (2 cores). Planted: 1,000
exact duplicates, 500 near duplicates, 300 exact and 200 near copies across the splits.
The baseline (pandas describe + isna + duplicated) finds exact duplicates only: no near
duplicates, no schema, no leakage.

    .venv/bin/python bench/data_scale.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bastion.data import check_dataset, find_leakage, load_dataset, profile_dataset
from bastion.data.interface import Dataset


def make(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((rows, 50)).astype(np.float64)
    data[1000:2000] = data[:1000]                                        # exact duplicates
    data[3000:3500] = data[2500:3000] + rng.normal(0, 1e-3, (500, 50))   # near duplicates
    frame = pd.DataFrame(data, columns=[f"c{i}" for i in range(50)])
    frame["label"] = rng.integers(0, 10, rows)
    return frame


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {seconds:8.2f} s", flush=True)
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.parquet"
        make(args.rows).to_parquet(path)
        ds, _ = timed("load (Parquet)", lambda: load_dataset(path))
        _, t_profile = timed("bastion profile", lambda: profile_dataset(ds))
        findings, t_check = timed("bastion check (incl. near duplicates)",
                                  lambda: check_dataset(ds))
        for f in findings:
            print("   ", f.rule, "-", f.title)
        frame = pd.read_parquet(path)

        def baseline() -> int:
            frame.describe()
            frame.isna().sum()
            return int(frame.duplicated().sum())

        dupes, t_base = timed("baseline pandas describe+isna+duplicated", baseline)
        print(f"    baseline exact duplicates: {dupes}")
        print(f"profile+check {t_profile + t_check:.2f} s (target < 30 s); "
              f"ratio to baseline {(t_profile + t_check) / t_base:.2f}×")

        cut = int(0.8 * len(ds))
        rng = np.random.default_rng(1)
        test_frame = ds.frame.iloc[cut:].reset_index(drop=True).copy()
        test_frame.iloc[:300] = ds.frame.iloc[:300].to_numpy()
        test_frame.iloc[300:500] = ds.frame.iloc[300:500].to_numpy() + rng.normal(0, 1e-3,
                                                                                  (200, 50))
        train = ds.subset(np.arange(len(ds)) < cut, source="train")
        test = Dataset(source="test", kind=ds.kind, frame=test_frame,
                       labels=ds.labels[cut:] if ds.labels is not None else None,
                       label_name=ds.label_name)
        leaks, t_leak = timed("bastion leakage (exact + near)",
                              lambda: find_leakage({"train": train, "test": test}))
        for f in leaks:
            print("   ", f.rule, "-", f.title)
        _, t_merge = timed("baseline pandas merge (exact only)",
                           lambda: len(test.frame.merge(train.frame, how="inner")))
        print(f"leakage ratio to baseline {t_leak / t_merge:.2f}×")


if __name__ == "__main__":
    main()
