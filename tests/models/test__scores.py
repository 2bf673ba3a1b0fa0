"""Scores to probabilities (every output kind, one binary score too) and labels to indices."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.models import InputSpecError, Output
from bastion.models._scores import class_indices, probabilities


def test_every_output_kind_gives_the_same_probabilities() -> None:
    z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities(z, Output.LOGITS), p)
    np.testing.assert_allclose(probabilities(p, Output.PROBABILITIES), p)
    np.testing.assert_allclose(probabilities(np.log(p), Output.LOG_PROBABILITIES), p)
    np.testing.assert_allclose(probabilities(z[:, :, None], Output.LOGITS), p)  # (n, k, 1)


def test_one_binary_score() -> None:
    positive = np.array([0.1, 0.9])
    logit = np.log(positive / (1 - positive))
    expected = np.stack([1 - positive, positive], axis=1)
    for scores, kind in ((logit, Output.LOGITS), (positive, Output.PROBABILITIES),
                         (np.log(positive), Output.LOG_PROBABILITIES)):
        np.testing.assert_allclose(probabilities(scores[:, None], kind), expected)


def test_class_indices() -> None:
    assert class_indices([0, 2, 1], 3, 3).tolist() == [0, 2, 1]
    assert class_indices(np.eye(3)[[2, 0]], 2, 3).tolist() == [2, 0]
    assert class_indices(np.array([1.0, 0.0]), 2, None).tolist() == [1, 0]
    with pytest.raises(InputSpecError, match="labels for 3 inputs"):
        class_indices([0, 1], 3, 2)
    with pytest.raises(InputSpecError, match="0…1"):
        class_indices([0, -1], 2, 2)
