"""RemotePredictor: an Open Inference Protocol v2 endpoint as a predictor. A real MLServer for
what a served model answers; a mock transport for what a broken or hostile server might."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
from tests.mlserver import serve_sklearn

from bastion.models import ModelError
from bastion.models.remote import RemotePredictor, is_endpoint

URL = "http://model.test/v2/models/m"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, MLPClassifier]]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((32,), max_iter=300, random_state=0).fit(X / 16.0, y)
    folder = tmp_path_factory.mktemp("mlserver")
    joblib.dump(mlp, folder / "digits.joblib")
    with serve_sklearn(folder / "digits.joblib", folder / "srv", name="digits") as url:
        yield url, mlp


def test_a_served_model_answers_as_the_model_itself(
        served: tuple[str, MLPClassifier]) -> None:
    url, mlp = served
    x = load_digits().data[:300] / 16.0
    with RemotePredictor.connect(url, batch=128) as remote:  # 3 requests
        assert np.allclose(remote.predict_proba(x), mlp.predict_proba(x), atol=1e-6)
        assert (remote.predict(x) == mlp.predict(x)).all()
    with pytest.raises(ModelError, match="HTTP 404"):
        RemotePredictor.connect(url.replace("digits", "ghost"))


def _mock(answer: Callable[[httpx2.Request], httpx2.Response]) -> httpx2.Client:
    return httpx2.Client(transport=httpx2.MockTransport(answer))


def _server(meta: dict[str, Any], infer: Callable[[dict[str, Any]], Any]) -> httpx2.Client:
    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            return httpx2.Response(200, json=meta)
        body = json.loads(request.content)
        result = infer(body)
        return result if isinstance(result, httpx2.Response) else httpx2.Response(200,
                                                                                  json=result)
    return _mock(answer)


def _out(data: list[float], shape: list[int], name: str = "predict_proba") -> dict[str, Any]:
    return {"outputs": [{"name": name, "shape": shape, "datatype": "FP64", "data": data}]}


def test_declared_metadata_shapes_the_requests() -> None:
    seen: list[dict[str, Any]] = []
    meta = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 2]}]}

    def infer(body: dict[str, Any]) -> Any:
        seen.append(body)
        n = body["inputs"][0]["shape"][0]
        return _out([2.0, 0.0] * n, [n, 2], name="scores")  # logits

    remote = RemotePredictor.connect(URL, client=_server(meta, infer))
    assert remote.spec.shape == (4,) and remote.spec.dtype == "float32"
    p = remote.predict_proba(np.zeros((3, 4)))
    assert seen[0]["inputs"][0]["name"] == "pixels" and seen[0]["outputs"] == [{"name": "scores"}]
    assert seen[0]["inputs"][0]["datatype"] == "FP32"
    assert np.allclose(p[:, 0], np.exp(2) / (np.exp(2) + 1))  # softmax of the logits
    with pytest.raises(Exception, match="inputs of shape"):
        remote.predict_proba(np.zeros((3, 5)))  # checked before anything is sent


def test_labels_only_become_one_hot_rows() -> None:
    remote = RemotePredictor.connect(URL, client=_server(
        {}, lambda body: _out([2.0, 0.0, 1.0], [3], name="predict")))
    assert remote.predict_proba(np.zeros((3, 2))).tolist() == [
        [0, 0, 1], [1, 0, 0], [0, 1, 0]]


@pytest.mark.parametrize(("reply", "message"), [
    (httpx2.Response(500, text="Traceback (most recent call last): secret"), "HTTP 500"),
    (httpx2.Response(200, text="<html>"), "not an Open Inference Protocol JSON"),
    (httpx2.Response(200, json={"outputs": []}), "holds no outputs"),
    (httpx2.Response(200, json=_out([0.5, 0.5], [1, 2])), r"expected \(3, classes\)"),
    (httpx2.Response(200, content=b'{"outputs": [{"name": "predict_proba", "shape": [3, 2], '
                                  b'"data": [1, NaN, 1, NaN, 1, NaN]}]}'), "finite scores"),
    (httpx2.Response(200, json={"outputs": [{"name": "x", "data": "abc", "shape": [9]}]}),
     "not a well-formed tensor"),
    (httpx2.Response(200, json=_out([0.5, -1.0, 2.0], [3], name="predict")),
     "not class indices"),
])
def test_a_broken_server_is_a_clear_error(reply: httpx2.Response, message: str) -> None:
    remote = RemotePredictor.connect(URL, client=_server({}, lambda body: reply))
    with pytest.raises(ModelError, match=message) as raised:
        remote.predict_proba(np.zeros((3, 2)))
    assert "secret" not in str(raised.value) and "Traceback" not in str(raised.value)


def test_urls_and_unreachable_servers() -> None:
    assert is_endpoint("https://x/v2/models/m") and not is_endpoint("model.pt")
    with pytest.raises(ModelError, match="not an Open Inference Protocol model URL"):
        RemotePredictor.connect("http://host/predict")

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused")

    with pytest.raises(ModelError, match="no answer"):
        RemotePredictor.connect(URL, client=_mock(refuse))
