"""as_predictor picks the right wrapper; representations() serves any model that has them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from tests.models.onnx_models import linear

from bastion.models import (
    CapabilityError,
    ModelError,
    OnnxPredictor,
    SklearnPredictor,
    TorchPredictor,
    as_predictor,
    representations,
)


def test_as_predictor(net, mlp, table) -> None:
    assert isinstance(as_predictor(net), TorchPredictor)
    assert isinstance(as_predictor(mlp), SklearnPredictor)
    p = as_predictor(net)
    assert as_predictor(p) is p
    with pytest.raises(ModelError, match="not a model Bastion can use"):
        as_predictor(object())


def test_representations_of_raw_models_and_predictors(net, x, mlp, table) -> None:
    with torch.no_grad():
        hidden = torch.tanh(net[0](torch.as_tensor(x))).numpy()
    np.testing.assert_allclose(representations(net, x), hidden, atol=1e-6)
    np.testing.assert_allclose(representations(as_predictor(net), x, batch_size=2), hidden,
                               atol=1e-6)
    X, _ = table
    assert representations(mlp, X, layer="0").shape == (60, 5)


def test_models_without_representations_say_so(x, table) -> None:
    X, y = table
    for model in (object(), LogisticRegression().fit(X, y), OnnxPredictor.from_bytes(linear())):
        what = type(model).__name__
        with pytest.raises(CapabilityError, match=f"hidden representations from a {what}") as err:
            representations(model, x)
        assert "MLPClassifier" in (err.value.hint or "")


def test_the_package_exports_lazily() -> None:
    import bastion.models

    assert bastion.models.load_model.__module__ == "bastion.models.loaders"
    assert set(bastion.models.__all__) <= set(dir(bastion.models)) | set(
        bastion.models._LAZY)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bastion.models.nope  # noqa: B018
