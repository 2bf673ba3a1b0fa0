"""Audit samples, error-rate estimates and work splits, checked against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bastion.data.interface import DataValidationError
from bastion.data.sampling import audit_sample, estimate_error_rate, split_work, wilson_interval


def test_wilson_matches_closed_form() -> None:
    # 5 errors in 100 at 95%: z = 1.959964; centre = (0.05 + z²/200) / (1 + z²/100) ...
    z = 1.959963984540054
    p, n = 0.05, 100
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = wilson_interval(5, 100)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    none_low, none_high = wilson_interval(0, 50)
    assert none_low == pytest.approx(0.0, abs=1e-12) and none_high > 0.05


def test_stratified_sample_is_proportional_and_reproducible() -> None:
    labels = np.array(["a"] * 800 + ["b"] * 150 + ["c"] * 50)
    sample = audit_sample(labels, 100, seed=3)
    assert sample["label"].value_counts().to_dict() == {"a": 80, "b": 15, "c": 5}
    assert (labels[sample["row"]] == sample["label"]).all()
    assert sample["row"].is_unique and set(sample["verdict"]) == {""}
    assert sample.equals(audit_sample(labels, 100, seed=3))
    tiny = audit_sample(np.array(["a"] * 99 + ["b"]), 10, min_per_class=1)
    assert tiny["label"].tolist().count("b") == 1


def test_error_rate_estimate_weights_strata() -> None:
    labels = np.array(["a"] * 900 + ["b"] * 100)
    sample = audit_sample(labels, 100, seed=0)
    wrong_rows = set(sample.loc[sample["label"] == "a", "row"].head(9))
    sample["verdict"] = ["wrong" if r in wrong_rows else "correct" for r in sample["row"]]
    estimate = estimate_error_rate(sample)
    assert (estimate.reviewed, estimate.errors) == (100, 9)
    assert estimate.rate == pytest.approx(0.9 * 9 / 90)
    assert estimate.low < estimate.rate < estimate.high
    assert estimate.by_label == {"a": (90, 9), "b": (10, 0)}


def test_error_rate_needs_verdicts() -> None:
    sample = audit_sample(np.array(["a", "b"] * 10), 4)
    with pytest.raises(DataValidationError, match="no item has a verdict"):
        estimate_error_rate(sample)
    sample.loc[0, "verdict"] = "maybe"
    with pytest.raises(DataValidationError, match="unknown verdict"):
        estimate_error_rate(sample)


def test_split_work_respects_fraction_and_overlap() -> None:
    names = ["a", "b", "c", "d", "e"]
    plan = split_work(1000, names, max_fraction=0.25, overlap=0.1, seed=1)
    per_item = plan.groupby("item").size()
    assert len(per_item) == 1000 and (per_item <= 2).all()
    assert (per_item == 2).sum() == 100
    load = plan["labeller"].value_counts()
    assert load.max() <= 250 and set(load.index) == set(names)
    shared = plan[plan["item"].isin(per_item[per_item == 2].index)]
    assert set(shared["labeller"]) == set(names)  # everyone's agreement is measurable
    assert not plan.duplicated().any()


def test_split_work_refuses_impossible_plans() -> None:
    with pytest.raises(DataValidationError, match="cannot cover") as info:
        split_work(100, ["a", "b", "c"], max_fraction=0.3, overlap=0.2)
    assert info.value.hint is not None and "0.400" in info.value.hint
    with pytest.raises(DataValidationError, match="share no items"):
        split_work(100, ["a", "b", "c", "d", "e"], max_fraction=0.5, overlap=0.01)
    assert isinstance(split_work(10, ["a", "b"], max_fraction=1, overlap=0), pd.DataFrame)
