"""scikit-learn predictors: indices into the estimator's own classes, its probabilities, and an
MLP's hidden layers computed from its weights."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from bastion.models import (
    CapabilityError,
    Differentiable,
    InputSpecError,
    MLPPredictor,
    ModelError,
    Representable,
    SklearnPredictor,
)
from bastion.models.sklearn_model import mlp_representations, sklearn_predictor


def test_logistic_regression(table) -> None:
    X, y = table
    lr = LogisticRegression().fit(X, y)
    p = sklearn_predictor(lr)
    assert type(p) is SklearnPredictor and not isinstance(p, Representable | Differentiable)
    assert p.spec.shape == (3,) and p.spec.labels == ("ant", "bee", "cat")
    assert p.spec.dtype == "float64" and p.estimator is lr
    indices = p.predict(X)
    assert indices.dtype == np.int64
    assert [p.spec.label(int(i)) for i in indices] == lr.predict(X).tolist()
    np.testing.assert_array_equal(p.predict_proba(X), lr.predict_proba(X))
    assert (p.predict_proba(X).argmax(1) == indices).all()
    with pytest.raises(InputSpecError, match=r"\(n, 3\)"):
        p.predict(X[:, :2])


def test_integer_labels_keep_their_values(table) -> None:
    X, _ = table
    y = np.repeat([10, 20, 30], 20)
    p = sklearn_predictor(LogisticRegression().fit(X, y))
    assert p.spec.labels == (10, 20, 30) and all(type(v) is int for v in p.spec.labels)


def test_mlp_hidden_layers_match_a_manual_forward_pass(table, mlp) -> None:
    X, _ = table
    p = sklearn_predictor(mlp)
    assert isinstance(p, MLPPredictor) and isinstance(p, Representable)
    first = np.maximum(X @ mlp.coefs_[0] + mlp.intercepts_[0], 0)
    second = np.maximum(first @ mlp.coefs_[1] + mlp.intercepts_[1], 0)
    np.testing.assert_allclose(p.representations(X), second)
    np.testing.assert_allclose(p.representations(X, "0"), first)
    for bad in ("2", "-1", "head"):
        with pytest.raises(CapabilityError, match="hidden layers 0…1"):
            p.representations(X, bad)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_pipeline_ending_in_an_mlp(table) -> None:
    X, y = table
    pipe = make_pipeline(StandardScaler(),
                         MLPClassifier(hidden_layer_sizes=(4,), activation="tanh",
                                       max_iter=20, random_state=0)).fit(X, y)
    p = sklearn_predictor(pipe)
    assert isinstance(p, MLPPredictor) and p.spec.shape == (3,)
    scaled = pipe[0].transform(X)
    mlp = pipe[-1]
    np.testing.assert_allclose(p.representations(X),
                               np.tanh(scaled @ mlp.coefs_[0] + mlp.intercepts_[0]))
    np.testing.assert_array_equal(p.predict_proba(X), pipe.predict_proba(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_images_are_flattened_for_an_estimator_of_rows() -> None:
    rng = np.random.default_rng(0)
    images, y = rng.random((30, 2, 3)), np.repeat([0, 1, 2], 10)
    mlp = MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0)
    mlp.fit(images.reshape(30, -1), y)
    p = sklearn_predictor(mlp)
    assert p.predict(images).tolist() == mlp.predict(images.reshape(30, -1)).tolist()
    assert p.representations(images).shape == (30, 3)


def test_what_cannot_be_done_says_so(table) -> None:
    X, y = table
    with pytest.raises(CapabilityError, match="gives no probabilities"):
        sklearn_predictor(LinearSVC().fit(X, y)).predict_proba(X)
    with pytest.raises(CapabilityError, match="no probabilities"):
        sklearn_predictor(SVC().fit(X, y)).predict_proba(X)
    with pytest.raises(ModelError, match="not a fitted scikit-learn classifier"):
        SklearnPredictor(LinearRegression().fit(X, X[:, 0]))
    with pytest.raises(ModelError, match="not a fitted"):
        SklearnPredictor(LogisticRegression())
    with pytest.raises(CapabilityError, match="cannot read hidden representations"):
        mlp_representations(LogisticRegression().fit(X, y), X, None)
    unfitted = MLPClassifier()
    unfitted.classes_ = np.array([0, 1])
    assert type(sklearn_predictor(unfitted)) is SklearnPredictor  # no weights: no layers


def test_an_mlps_logits_give_its_probabilities(table) -> None:
    from scipy.special import softmax

    from bastion.models import Scorable

    X, y = table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few iterations are enough here
        mlp = MLPClassifier((5,), max_iter=50, random_state=0).fit(X, y)
        binary = MLPClassifier((5,), max_iter=50, random_state=0).fit(X, y == "ant")
    p = sklearn_predictor(mlp)
    assert isinstance(p, Scorable)
    np.testing.assert_allclose(softmax(p.logits(X), axis=1), mlp.predict_proba(X), atol=1e-9)
    z = sklearn_predictor(binary).logits(X)
    assert z.shape == (len(X), 2) and (z[:, 0] == 0).all()
    np.testing.assert_allclose(softmax(z, axis=1), binary.predict_proba(X), atol=1e-9)
    assert not isinstance(sklearn_predictor(LogisticRegression().fit(X, y)), Scorable)
