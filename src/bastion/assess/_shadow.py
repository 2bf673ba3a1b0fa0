"""Shadow models for LiRA: the target's own recipe, trained afresh on other data.

A scikit-learn target is cloned (``sklearn.base.clone``: the same hyper-parameters, no fitted
state) with its ``random_state`` set per shadow; a PyTorch target is deep-copied, every
parameter re-initialised from the seed, and trained with one simple loop (Adam, cross-entropy,
batches of 64) for the policy's epochs. Anything else cannot be cloned: a
:class:`~bastion.models.CapabilityError` says so, and LiRA is reported not run.
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bastion.assess import _art
from bastion.models import Output, Predictor
from bastion.models.interface import CapabilityError

__all__ = ["Trainer", "shadow_trainer"]

Array = npt.NDArray[Any]
Trainer = Callable[[Array, npt.NDArray[np.int64], Array, int], npt.NDArray[np.float64]]
"""``train(x_train, y_train, x_eval, seed)``: a fresh shadow fitted on the first two, its
class probabilities ``(len(x_eval), n_classes)`` on ``x_eval`` (columns in the target's class
order)."""

_BATCH: Final = 64
_NOT_CLONABLE: Final = (
    "assess the scikit-learn estimator or PyTorch network the file was exported from, pass "
    "a shadow template to bastion.assess.assess(shadow=…), or drop lira from "
    "tests.membership.attacks")


def shadow_trainer(predictor: Predictor, n_classes: int, *, epochs: int, learning_rate: float,
                   template: Any = None) -> Trainer:
    """How to train a shadow of ``predictor`` (or of ``template``: an unfitted scikit-learn
    estimator or a ``torch.nn.Module`` of the target's architecture).

    Raises:
        CapabilityError: the target is neither a scikit-learn estimator nor a PyTorch network
            whose parameters can all be re-initialised, and no template was given.
    """
    base = template
    if base is None:
        base = getattr(predictor, "estimator", None)
        if base is None:
            base = getattr(predictor, "module", None)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(base, torch.nn.Module):
        if isinstance(base, torch.jit.ScriptModule):
            raise CapabilityError("LiRA trains shadow models like the target, and a "
                                  "TorchScript module cannot be re-initialised",
                                  hint=_NOT_CLONABLE)
        _check_resettable(base)
        output = Output(getattr(predictor, "output", Output.LOGITS))
        return _torch_trainer(base, predictor, output, epochs, learning_rate)
    if base is not None and _is_sklearn(base):
        classes = getattr(predictor, "estimator", base)
        labels = np.asarray(getattr(classes, "classes_", np.arange(n_classes)))
        return _sklearn_trainer(base, labels)
    raise CapabilityError(f"LiRA trains shadow models like the target, and a "
                          f"{type(predictor).__name__} cannot be cloned", hint=_NOT_CLONABLE)


def _is_sklearn(estimator: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    return isinstance(estimator, BaseEstimator)


def _sklearn_trainer(estimator: Any, labels: Array) -> Trainer:
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning

    position = {label.item() if isinstance(label, np.generic) else label: i
                for i, label in enumerate(labels)}

    def train(x: Array, y: npt.NDArray[np.int64], x_eval: Array,
              seed: int) -> npt.NDArray[np.float64]:
        shadow = clone(estimator)
        seeds = {k: seed for k in shadow.get_params() if k.split("__")[-1] == "random_state"}
        shadow.set_params(**seeds)
        with warnings.catch_warnings():
            # the target's own recipe: its iteration budget is not ours to judge here
            warnings.simplefilter("ignore", ConvergenceWarning)
            shadow.fit(_rows(x), labels[y])
        out = np.zeros((len(x_eval), len(labels)))
        got = np.asarray(shadow.predict_proba(_rows(x_eval)), dtype=np.float64)
        for j, label in enumerate(shadow.classes_):  # a half may miss a class: it scores 0
            key = label.item() if isinstance(label, np.generic) else label
            out[:, position[key]] = got[:, j]
        return out

    return train


def _rows(x: Array) -> Array:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def _check_resettable(module: Any) -> None:
    """Every parameter must belong to a layer with ``reset_parameters`` (else a shadow would
    start from the target's trained weights, and know its members)."""
    covered = {id(p) for m in module.modules() if callable(getattr(m, "reset_parameters", None))
               for p in m.parameters(recurse=False)}
    stray = [name for name, p in module.named_parameters() if id(p) not in covered]
    if stray:
        raise CapabilityError(f"LiRA re-initialises the network for each shadow model, and "
                              f"{stray[0]!r} belongs to no layer with reset_parameters()",
                              hint=_NOT_CLONABLE)


def _torch_trainer(module: Any, predictor: Predictor, output: Output, epochs: int,
                   learning_rate: float) -> Trainer:
    import torch
    import torch.nn.functional as F  # noqa: N812

    from bastion.models import TorchPredictor

    first = next((p for p in module.parameters() if p.is_floating_point()), None)
    dtype = first.dtype if first is not None else torch.float32
    device = first.device if first is not None else torch.device("cpu")

    def train(x: Array, y: npt.NDArray[np.int64], x_eval: Array,
              seed: int) -> npt.NDArray[np.float64]:
        shadow = copy.deepcopy(module)
        _art.seed_all(seed)
        for layer in shadow.modules():
            reset = getattr(layer, "reset_parameters", None)
            if callable(reset):
                reset()
        logits = _art._logits(shadow, output)
        optimiser = torch.optim.Adam(shadow.parameters(), lr=learning_rate)
        xt = torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        generator = torch.Generator().manual_seed(seed)
        logits.train()
        for _ in range(epochs):
            order = torch.randperm(len(xt), generator=generator).to(device)
            for start in range(0, len(xt), _BATCH):
                batch = order[start:start + _BATCH]
                optimiser.zero_grad()
                loss: Any = F.cross_entropy(logits(xt[batch]), yt[batch])
                loss.backward()
                optimiser.step()
        logits.eval()
        return TorchPredictor(shadow, spec=predictor.spec, output=output).predict_proba(x_eval)

    return train
