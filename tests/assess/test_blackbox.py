"""Black-box evasion tests on a scikit-learn MLP: only ``predict_proba`` is used."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier
from tests.assess.conftest import Digits, policy

from bastion.assess import Attack, EvasionResult, assess
from bastion.assess._art import BudgetSpent, QueryBudget, as_image
from bastion.assess.interface import Norm
from bastion.models import as_predictor


def _flat(digits: Digits) -> np.ndarray:
    return digits.x_test.reshape(len(digits.x_test), -1)


def test_hopskipjump_finds_small_perturbations_within_its_budget(
        digits: Digits, digits_mlp: MLPClassifier) -> None:
    pol = policy({"hopskipjump": {"eps": [0.25, 1.0, 4.0], "samples": 12, "max_queries": 400}})
    done = assess(as_predictor(digits_mlp), _flat(digits), digits.y_test, pol,
                  keep_examples=True)
    (hsj,) = done.results
    assert isinstance(hsj, EvasionResult) and hsj.attack is Attack.HOPSKIPJUMP
    assert hsj.samples == 12 and hsj.success_rate == 1.0
    assert hsj.median_queries is not None and hsj.median_queries <= 400
    assert hsj.median_perturbation is not None and 0 < hsj.median_perturbation < 4.0
    ex = hsj.examples
    assert ex is not None
    fooled = ex.fooled
    # the model itself, not the code under test, says the examples are misclassified
    assert (digits_mlp.predict(ex.x_adv[fooled]) != ex.y[fooled]).all()
    norms = np.linalg.norm((ex.x_adv - ex.x).reshape(len(ex.x), -1), axis=1)
    assert np.allclose(norms[fooled], ex.eps[fooled], atol=1e-4)
    assert ex.x_adv.min() >= 0 and ex.x_adv.max() <= 1
    robust = [p.robust_accuracy for p in hsj.curve]
    assert robust[0] > robust[-1] and robust[-1] == 0.0


def test_square_stays_inside_eps_and_lowers_accuracy(digits: Digits,
                                                     digits_mlp: MLPClassifier) -> None:
    pol = policy({"square": {"eps": [0.05, 0.3], "samples": 20, "max_queries": 200}})
    done = assess(as_predictor(digits_mlp), _flat(digits), digits.y_test, pol,
                  keep_examples=True)
    (square,) = done.results
    assert isinstance(square, EvasionResult)
    ex = square.examples
    assert ex is not None and set(ex.eps) == {0.05, 0.3}
    assert (np.abs(ex.x_adv - ex.x).max(axis=1) <= ex.eps + 1e-6).all()
    assert (digits_mlp.predict(ex.x_adv[ex.fooled]) != ex.y[ex.fooled]).all()
    big = square.at(0.3)
    assert big is not None and big.robust_accuracy < square.clean_accuracy - 0.3
    assert big.median_queries is not None and big.median_queries <= 200


def test_a_query_budget_stops_the_attack_and_keeps_the_closest_miss(
        digits_mlp: MLPClassifier, digits: Digits) -> None:
    x = _flat(digits)[:1]
    label = int(digits.y_test[0])
    budget = QueryBudget(as_predictor(digits_mlp), x[0], label, 3, Norm.L2)
    far, near = np.ones_like(x), np.clip(x + 0.9, 0, 1)
    budget(np.concatenate([far, near]))
    assert budget.queries == 2
    misses = [r for r in (far, near) if digits_mlp.predict(r)[0] != label]
    if misses:
        expected = min(float(np.linalg.norm(r - x)) for r in misses)
        assert budget.best_norm == pytest.approx(expected, rel=1e-5)
    with pytest.raises(BudgetSpent):
        budget(np.concatenate([x, x]))
    assert budget.queries == 2


@pytest.mark.parametrize(("shape", "viewed"), [
    ((5,), (1, 3, 3)), ((10,), (1, 4, 4)), ((8, 8, 1), (1, 8, 8)), ((6, 5, 3), (3, 6, 5)),
    ((3, 6, 5), (3, 6, 5))])
def test_square_sees_any_input_as_a_channels_first_image_and_back(
        shape: tuple[int, ...], viewed: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).random((3, *shape)).astype(np.float32)
    image, back = as_image(x, 0.0)
    assert image.shape == (3, *viewed)
    assert np.array_equal(back(image), x)
