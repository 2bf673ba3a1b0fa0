"""Capacity: rules of thumb, the learning-curve fit and the baselines, on data with known
answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits

from bastion.data.capacity import (
    LearningCurve,
    Task,
    _fit_curve,
    assess_capacity,
    count_parameters,
)
from bastion.data.interface import Dataset, DatasetKind


def _ds(X: np.ndarray, y: np.ndarray, kind: DatasetKind = DatasetKind.TABULAR) -> Dataset:
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    return Dataset(source="d.csv", kind=kind, frame=frame, labels=y, label_name="y")


def test_curve_fit_recovers_a_known_power_law() -> None:
    sizes = np.array([50, 100, 200, 400, 800, 1600], dtype=np.float64)
    scores = 0.95 - 2.0 * sizes ** (-0.5)          # a = 2, b = 0.5, c = 0.95
    curve = _fit_curve(sizes, scores, target=0.9, ceiling=1.0)
    assert curve.fit == pytest.approx((2.0, 0.5, 0.95), rel=1e-3)
    # 0.95 - 2 / sqrt(n) = 0.9  ⇒  n = (2 / 0.05)² = 1600
    assert curve.samples_needed == pytest.approx(1600, abs=2)
    unreachable = _fit_curve(sizes, scores, target=0.97, ceiling=1.0)
    assert unreachable.samples_needed is None
    assert isinstance(curve, LearningCurve) and curve.predict([1600])[0] == pytest.approx(0.9)


def test_regression_one_in_ten_rule() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 8))
    y = X @ rng.standard_normal(8) + 0.1 * rng.standard_normal(60)
    report = assess_capacity(_ds(X, y), folds=3)
    assert report.task is Task.REGRESSION
    finding = {f.rule: f for f in report.findings(_ds(X, y))}["data.capacity.cases_per_predictor"]
    assert finding.evidence == {"samples": 60, "needed": 80}
    assert report.baselines[0].name == "linear regression (ridge)"


def test_vision_rule_parameters_and_unjustified_model() -> None:
    digits = load_digits()
    X, y = digits.data[:600], digits.target[:600]   # small: quick baselines
    ds = _ds(X, y, DatasetKind.IMAGE)
    net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    params = count_parameters(net)
    assert params == 64 * 128 + 128 + 128 * 10 + 10
    report = assess_capacity(ds, parameters=params, model_score=0.9, target=0.99, folds=3)
    assert report.task is Task.VISION
    found = {f.rule: f for f in report.findings(ds)}
    assert len(found["data.capacity.images_per_class"].evidence["classes"]) == 10
    assert found["data.capacity.parameters"].evidence == {"parameters": params,
                                                          "samples": 600}
    # logistic regression already reaches ~0.95 on digits: a 0.9 model is not justified
    assert found["data.capacity.unjustified"].evidence["gain"] < 0
    names = {b.name for b in report.baselines}
    assert names == {"logistic regression", "decision tree", "gradient boosting"}
    assert report.baselines[-1].name == "decision tree"
    assert 0.9 < report.curve.scores[-1] <= 1.0
    assert report.baselines[0].score > 0.9
