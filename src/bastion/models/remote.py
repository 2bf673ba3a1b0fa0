"""A model behind an Open Inference Protocol (v2, REST) endpoint as a black-box predictor.

    >>> from bastion.models.remote import RemotePredictor
    >>> p = RemotePredictor.connect("http://127.0.0.1:8080/v2/models/digits")  # doctest: +SKIP
    >>> p.predict_proba(x).shape                                               # doctest: +SKIP
    (5, 10)

What any OIP v2 server (MLServer, KServe, Triton) answers, and nothing more: the model's
metadata (``GET /v2/models/{name}``: input name, datatype and shape when the server declares
them) and ``POST /v2/models/{name}/infer``. Scores are the one floating-point output of shape
``(n, k)``: the declared one, else the output named ``predict_proba`` (MLServer's scikit-learn
runtime returns it when asked), else the only output there is. Rows that already are
probabilities are kept; other scores are taken as logits (softmax). A server that returns only
labels gives one-hot rows: decision-based attacks (HopSkipJump) work on those, score-based ones
(Square) see no gradient of confidence. Nothing is downloaded or run locally: no gradients,
no representations. Errors name the endpoint and the HTTP status, never the server's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Self
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from bastion.models.interface import FloatArray, IndexArray, InputSpec, ModelError

__all__ = ["RemotePredictor", "is_endpoint"]

_DTYPES: Final = {"FP32": "float32", "FP64": "float64", "FP16": "float16", "INT64": "int64",
                  "INT32": "int32", "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}
_WIRE: Final = {v: k for k, v in _DTYPES.items()}
_SCORES: Final = "predict_proba"


def is_endpoint(target: str) -> bool:
    """Whether ``target`` names an HTTP(S) endpoint rather than a file or ``NAME@VER``."""
    return target.startswith(("http://", "https://"))


class RemotePredictor:
    """Predictions over HTTP from an OIP v2 model endpoint."""

    def __init__(self, client: Any, url: str, spec: InputSpec, input_name: str,
                 output_name: str | None, *, batch: int = 256) -> None:
        self._client, self._url, self._spec = client, url, spec
        self._input, self._output, self._batch = input_name, output_name, batch

    @classmethod
    def connect(cls, url: str, *, headers: Mapping[str, str] | None = None,
                timeout: float = 30.0, client: Any = None, batch: int = 256) -> Self:
        """Read the endpoint's metadata (``url`` is ``…/v2/models/NAME[/versions/V]``)."""
        import httpx2

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or "/v2/models/" not in parts.path:
            raise ModelError(f"{url} is not an Open Inference Protocol model URL",
                             hint="e.g. http://127.0.0.1:8080/v2/models/NAME")
        url = url.rstrip("/")
        client = client or httpx2.Client(headers=dict(headers or {}), timeout=timeout)
        try:
            meta = _json(_call(client, "GET", url), url)
        except ModelError:
            client.close()
            raise
        declared = [i for i in meta.get("inputs") or () if isinstance(i, Mapping)]
        first = declared[0] if declared else {}
        dtype = _DTYPES.get(str(first.get("datatype", "FP32")).upper(), "float32")
        shape = first.get("shape")
        one: tuple[int | None, ...] | None = None
        if isinstance(shape, list) and len(shape) >= 2:  # (batch, …): the batch axis dropped
            one = tuple(d if isinstance(d, int) and d > 0 else None for d in shape[1:])
        outputs = [o for o in meta.get("outputs") or () if isinstance(o, Mapping)]
        scored = [str(o["name"]) for o in outputs if "name" in o
                  and str(o.get("datatype", "")).upper().startswith("FP")]
        output = scored[0] if len(scored) == 1 else _SCORES if not outputs else None
        return cls(client, url, InputSpec(shape=one, dtype=dtype), str(first.get("name", "input")),
                   output, batch=batch)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def spec(self) -> InputSpec:
        """What the endpoint declared (shape and dtype; classes are not declared in OIP)."""
        return self._spec

    @property
    def url(self) -> str:
        """The model endpoint."""
        return self._url

    def predict(self, x: npt.ArrayLike) -> IndexArray:
        """The class index with the highest probability, per input."""
        return np.asarray(self.predict_proba(x).argmax(axis=1), dtype=np.intp)

    def predict_proba(self, x: npt.ArrayLike) -> FloatArray:
        """Class probabilities from the endpoint, ``batch`` rows a request."""
        array = self._spec.check(x)
        rows = [self._infer(array[i:i + self._batch]) for i in range(0, len(array), self._batch)]
        return np.concatenate(rows) if rows else np.zeros((0, 0))

    def _infer(self, chunk: npt.NDArray[Any]) -> FloatArray:
        body: dict[str, Any] = {"inputs": [{
            "name": self._input, "shape": list(chunk.shape),
            "datatype": _WIRE.get(chunk.dtype.name, "FP32"),
            "data": chunk.ravel().tolist()}]}
        if self._output is not None:
            body["outputs"] = [{"name": self._output}]
        answer = _json(_call(self._client, "POST", f"{self._url}/infer", json=body), self._url)
        return _scores(answer, len(chunk), self._url)


def _call(client: Any, method: str, url: str, **kwargs: Any) -> Any:
    import httpx2

    try:
        response = client.request(method, url, **kwargs)
    except httpx2.HTTPError as exc:
        raise ModelError(f"{url}: no answer ({type(exc).__name__})",
                         hint="is the model server running, and is the URL right?") from None
    if response.status_code != 200:
        raise ModelError(f"{url}: HTTP {response.status_code} from the model server",
                         hint="check the model name, the input's shape and the credentials")
    return response


def _json(response: Any, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ModelError(f"{url}: the answer is not an Open Inference Protocol JSON object")
    return data


def _scores(answer: Mapping[str, Any], n: int, url: str) -> FloatArray:
    outputs = [o for o in answer.get("outputs") or () if isinstance(o, Mapping)]
    if not outputs:
        raise ModelError(f"{url}: the answer holds no outputs")
    chosen = next((o for o in outputs if o.get("name") == _SCORES), outputs[0])
    try:
        values = np.asarray(chosen["data"], dtype=np.float64)
        shape = [int(d) for d in chosen.get("shape") or [len(values)]]
        values = values.reshape(shape)
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{url}: output {chosen.get('name')!r} is not a well-formed "
                         "tensor") from None
    if values.ndim == 1 and len(values) == n:  # labels only: one-hot
        labels = values.astype(np.int64)
        if (labels != values).any() or (labels < 0).any():
            raise ModelError(f"{url}: a one-dimensional output that is not class indices")
        onehot = np.zeros((n, int(labels.max()) + 1 if n else 0))
        onehot[np.arange(n), labels] = 1.0
        return onehot
    if values.ndim != 2 or len(values) != n or not np.isfinite(values).all():
        raise ModelError(f"{url}: expected ({n}, classes) finite scores, got shape "
                         f"{tuple(values.shape)}")
    sums = values.sum(axis=1)
    if (values >= 0).all() and np.allclose(sums, 1.0, atol=1e-4):
        return values
    shifted = np.exp(values - values.max(axis=1, keepdims=True))  # logits
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float64)

