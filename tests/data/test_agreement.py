"""Agreement statistics against scikit-learn and hand-computed textbook examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from bastion.data.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha
from bastion.data.interface import DataValidationError


def test_cohen_textbook_example() -> None:
    # 50 items: both yes 20, A yes / B no 5, A no / B yes 10, both no 15.
    # p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cohen_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, 300)
    b = np.where(rng.random(300) < 0.7, a, rng.integers(0, 4, 300))
    assert cohen_kappa(a.tolist(), b.tolist()) == pytest.approx(cohen_kappa_score(a, b))


def test_fleiss_textbook_example() -> None:
    # Fleiss' kappa worked example (Wikipedia, "Fleiss' kappa"): 10 subjects, 14 raters,
    # 5 categories; P-bar = 0.378, P_e = 0.213, kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_two_raters_equals_scotts_pi() -> None:
    # With two raters Fleiss' kappa is Scott's pi: p_o = 0.7, pooled shares 0.55 / 0.45,
    # p_e = 0.55² + 0.45² = 0.505, pi = (0.7 - 0.505) / 0.495.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    table = [[(x == "yes") + (y == "yes"), (x == "no") + (y == "no")]
             for x, y in zip(a, b, strict=True)]
    assert fleiss_kappa(table) == pytest.approx((0.7 - 0.505) / 0.495)


def test_fleiss_needs_equal_rating_counts() -> None:
    with pytest.raises(DataValidationError, match="same number"):
        fleiss_kappa([[2, 0], [1, 2]])


def test_krippendorff_textbook_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the nominal example
    # with missing data: 4 observers, 12 units, alpha = 0.743.
    nan = None
    data = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        "C": [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    }
    ratings = pd.DataFrame(data).T  # raters × units
    assert krippendorff_alpha(ratings) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_perfect_and_unpairable() -> None:
    assert krippendorff_alpha(pd.DataFrame([[1, 2, 1], [1, 2, 1]])) == 1.0
    with pytest.raises(DataValidationError, match="at least two ratings"):
        krippendorff_alpha(pd.DataFrame([[1, None], [None, 2]]))
