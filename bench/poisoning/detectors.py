"""The detectors the sweep compares, each behind one signature: ``(run) -> Outcome``.

* ``bastion``: :func:`bastion.data.poisoning.detect_poisoning` with its default method, given
  the trained model and the array it takes (NCHW for the CNN, flattened rows for the MLPs).
* ``bastion-no-model``: the same call with no model (Bastion's model-free default).
* ``art-AC`` / ``art-SS``: ART's ``ActivationDefence`` (Chen et al. 2018) and
  ``SpectralSignatureDefense`` (Tran et al. 2018) with their defaults. ART reads the last
  entry of the classifier's ``layer_names``: for our torch models (``features`` then
  ``head``), that is the logits.
* ``art-AC-penult`` / ``art-SS-penult``: the same on the penultimate layer (the 64-unit ReLU
  output the papers use), by ending the classifier's layer list at ``features``; other
  parameters at their defaults.

ART's defences read activations through ``get_activations``, which its scikit-learn wrapper
does not have: for ``sklearn-mlp`` the ART rows are :class:`NotApplicable`, shown ``n/a``.
ART draws from NumPy's global generator (FastICA, MiniBatchKMeans): it is seeded with the
config's seed before each call, so runs repeat.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from poisoning.attacks import Poisoned
from poisoning.models import inputs_for


@dataclass(frozen=True)
class Flagged:
    """A detector ran: these training rows are suspicious."""

    rows: np.ndarray
    """Indices into the training set."""
    seconds: float
    """Wall time of the detector alone."""


@dataclass(frozen=True)
class NotApplicable:
    """The detector cannot run on this model or data (not a miss: excluded from medians)."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """The detector raised; counted apart, never as "nothing flagged"."""

    reason: str
    seconds: float


Outcome = Flagged | NotApplicable | Failed


@dataclass(frozen=True)
class Run:
    """What a detector is given: the poisoned training data and the model trained on it."""

    poisoned: Poisoned
    model: str
    """``cnn``, ``mlp`` or ``sklearn-mlp``."""
    net: Any
    dataset: str
    seed: int


def _dataset(run: Run) -> Any:
    from bastion.data.interface import Dataset, DatasetKind

    x, y = run.poisoned.x_train, run.poisoned.y_train
    if run.dataset == "digits":
        flat = x.reshape(len(x), -1).astype(np.float64)
        frame = pd.DataFrame(flat, columns=[f"f{i}" for i in range(flat.shape[1])])
        return Dataset(source="digits", kind=DatasetKind.ARRAY, frame=frame, labels=y,
                       label_name="label", pixels=x.transpose(0, 2, 3, 1).astype(np.float32))
    from sklearn.datasets import load_breast_cancer

    names = [str(n) for n in load_breast_cancer().feature_names]
    frame = pd.DataFrame(x.astype(np.float64), columns=names)
    return Dataset(source="cancer", kind=DatasetKind.TABULAR, frame=frame, labels=y,
                   label_name="label")


def bastion(run: Run) -> np.ndarray:
    from bastion.data.poisoning import detect_poisoning

    x_in = inputs_for(run.model, run.poisoned.x_train)
    return detect_poisoning(_dataset(run), model=run.net, inputs=x_in).suspicious


def bastion_no_model(run: Run) -> np.ndarray:
    from bastion.data.poisoning import detect_poisoning

    return detect_poisoning(_dataset(run)).suspicious


def _art(kind: str, penultimate: bool) -> Callable[[Run], np.ndarray | NotApplicable]:
    def flags(run: Run) -> np.ndarray | NotApplicable:
        if run.model == "sklearn-mlp":
            return NotApplicable("ART's defences need get_activations, which its "
                                 "scikit-learn wrapper lacks")
        from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
        from art.estimators.classification import PyTorchClassifier

        x_in = inputs_for(run.model, run.poisoned.x_train)
        k = run.poisoned.n_classes
        clf = PyTorchClassifier(
            model=run.net, loss=torch.nn.CrossEntropyLoss(), input_shape=x_in.shape[1:],
            nb_classes=k, clip_values=(0.0, 1.0) if run.dataset == "digits" else None,
            device_type="cpu")
        if penultimate:
            # ART reads ``layer_names[-1]``; ending the list at ``features`` makes that the
            # penultimate layer (the classifier's own attribute, the only way ART exposes).
            clf._layer_names = clf._layer_names[:clf._layer_names.index("features") + 1]
        defence_type = ActivationDefence if kind == "AC" else SpectralSignatureDefense
        defence = defence_type(clf, x_in, np.eye(k)[run.poisoned.y_train])
        np.random.seed(run.seed)  # ART draws from the global generator
        _, clean = defence.detect_poison()
        return np.flatnonzero(np.asarray(clean) == 0)
    return flags


DETECTORS: dict[str, Callable[[Run], Any]] = {
    "bastion": bastion,
    "bastion-no-model": bastion_no_model,
    "art-AC": _art("AC", penultimate=False),
    "art-AC-penult": _art("AC", penultimate=True),
    "art-SS": _art("SS", penultimate=False),
    "art-SS-penult": _art("SS", penultimate=True),
}
BASTION = ("bastion", "bastion-no-model")


def detect(name: str, run: Run) -> Outcome:
    """Run one detector, timing it and turning its errors into :class:`Failed`."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = DETECTORS[name](run)
    except Exception as exc:  # a detector's failure is a result of the sweep
        return Failed(f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    if isinstance(rows, NotApplicable):
        return rows
    return Flagged(np.unique(np.asarray(rows, dtype=np.int64)), time.perf_counter() - start)
