"""The assessment as a whole: labels, sampling, failing closed, the saved examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from tests.assess.conftest import Digits, policy

from bastion.assess import AssessError, SkippedTest, assess
from bastion.assess.runner import class_indices, sample_order
from bastion.findings import Severity
from bastion.models import as_predictor


def test_labels_become_the_models_class_indices_by_name() -> None:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = as_predictor(LogisticRegression().fit(x, ["b", "b", "a", "a"]))
    assert class_indices(["a", "b", "a"], model, 2).tolist() == [0, 1, 0]
    with pytest.raises(AssessError, match="does not know: c") as caught:
        class_indices(["a", "c"], model, 2)
    assert "a, b" in (caught.value.hint or "")


def test_without_class_names_labels_must_be_indices(digits_cnn: torch.nn.Module) -> None:
    net = as_predictor(digits_cnn)
    assert class_indices(np.array([0.0, 9.0, 3.0]), net, 10).tolist() == [0, 9, 3]
    for bad in (["cat"], [10], [1.5], [-1]):
        with pytest.raises(AssessError, match="class indices 0 … 9"):
            class_indices(bad, net, 10)


def test_any_prefix_of_the_sample_holds_each_class_in_proportion() -> None:
    y = np.repeat(np.arange(3), [60, 30, 10])
    order = sample_order(y, seed=4)
    assert sorted(order.tolist()) == list(range(100))
    assert np.bincount(y[order[:10]], minlength=3).tolist() == [6, 3, 1]
    assert np.bincount(y[order[:50]], minlength=3).tolist() == [30, 15, 5]
    assert not np.array_equal(order, sample_order(y, seed=5))


@pytest.mark.parametrize("labels", [None, "empty"])
def test_no_labels_or_no_samples_fail_every_test(digits: Digits,
                                                 digits_cnn: torch.nn.Module,
                                                 labels: str | None) -> None:
    x = digits.x_test[:0] if labels else digits.x_test
    y = digits.y_test[:0] if labels else None
    pol = policy({"fgsm": {"eps": [0.1]}, "hopskipjump": {"eps": [1.0]}},
                 [{"test": "fgsm", "metric": "clean_accuracy", "min": 0.0}])
    done = assess(as_predictor(digits_cnn), x, y, pol)
    assert all(isinstance(r, SkippedTest) for r in done.results)
    failing = [f for f in done.findings if f.severity >= Severity.HIGH]
    assert len(failing) == 3 and not [f for f in done.findings if f.severity is Severity.INFO]


def test_saved_examples_are_plain_arrays_that_fool_the_model(
        tmp_path: Path, digits: Digits, digits_cnn: torch.nn.Module) -> None:
    pol = policy({"fgsm": {"eps": [0.0, 0.2]},
                  "hopskipjump": {"eps": [1.0], "samples": 4, "max_queries": 150}},
                 sample_size=30)
    done = assess(as_predictor(digits_cnn), digits.x_test, digits.y_test, pol,
                  keep_examples=True)
    assert done.save_adversarial(tmp_path / "adv.npz") == 34
    with np.load(tmp_path / "adv.npz", allow_pickle=False) as saved:
        assert set(saved.files) == {"x", "y", "x_adv", "eps", "attack", "fooled"}
        attack, fooled = saved["attack"], saved["fooled"]
        assert sorted(set(attack.tolist())) == ["fgsm", "hopskipjump"]
        with torch.no_grad():
            wrong = digits_cnn(torch.from_numpy(saved["x_adv"])).argmax(1).numpy() != saved["y"]
        assert (wrong[fooled]).all() and fooled[attack == "fgsm"].sum() > 10
    assert done.to_dict()["policy"]["digest"] == pol.digest
    assert done.clip == (0.0, 1.0) and done.clip_source == "data"


def test_the_policy_range_wins_and_attacks_stay_inside_it(
        digits: Digits, digits_cnn: torch.nn.Module) -> None:
    pol = policy({"fgsm": {"eps": [0.3]}}, sample_size=20, input_range=[0.1, 0.9])
    done = assess(as_predictor(digits_cnn), digits.x_test, digits.y_test, pol,
                  keep_examples=True)
    (fgsm,) = done.results
    assert done.clip_source == "policy"
    ex = fgsm.examples  # type: ignore[union-attr]
    assert ex.x_adv.min() >= 0.1 - 1e-6 and ex.x_adv.max() <= 0.9 + 1e-6
