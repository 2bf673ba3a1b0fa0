"""The sweep's model types, trained deterministically, with a cache of trained torch models.

``cnn``: the small CNN of the original benchmark (Conv16-Conv32-MaxPool-Linear64-Linear10) on
``(N, 1, 8, 8)`` images; ``mlp``: a torch MLP (d→128→64→classes, ReLU) on flattened
features; ``sklearn-mlp``: ``MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=500)``. The
torch models are a ``features`` block (up to the penultimate ReLU) and a linear ``head``, so
ART and Bastion find the same penultimate layer. Torch training: Adam (lr 2e-3), 30 epochs,
batch 64, seeded by the config's seed; one thread, so a run is the same in any worker.

Trained torch models are cached as ``state_dict`` files under ``bench/.work/poisoning/``
(git-ignored), keyed by the SHA-256 of the training data, labels, model type, seed and
training settings, so re-running detectors does not retrain and a changed attack cannot
reuse a stale model.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

EPOCHS = 30
BATCH = 64
LR = 2e-3
CACHE = Path(__file__).resolve().parent.parent / ".work" / "poisoning"
CACHE_VERSION = 1


class Net(torch.nn.Module):
    """The CNN of the original ``bench/data_poisoning.py``."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU())
        self.head = torch.nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLP(torch.nn.Module):
    """d → 128 → 64 → classes, ReLU."""

    def __init__(self, n_inputs: int, n_classes: int) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Linear(n_inputs, 128), torch.nn.ReLU(),
            torch.nn.Linear(128, 64), torch.nn.ReLU())
        self.head = torch.nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def inputs_for(model: str, x: np.ndarray) -> np.ndarray:
    """What ``model`` takes: NCHW images for the CNN, flattened rows otherwise."""
    if model == "cnn":
        return x.astype(np.float32)
    return x.reshape(len(x), -1).astype(np.float32)


def _digest(model: str, x: np.ndarray, y: np.ndarray, seed: int, n_classes: int) -> str:
    h = hashlib.sha256()
    h.update(f"{CACHE_VERSION}/{model}/{seed}/{n_classes}/{EPOCHS}/{BATCH}/{LR}".encode())
    h.update(np.ascontiguousarray(x, np.float32).tobytes())
    h.update(np.ascontiguousarray(y, np.int64).tobytes())
    return h.hexdigest()[:32]


def _fit_torch(net: torch.nn.Module, x: np.ndarray, y: np.ndarray, seed: int) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(xt), generator=gen).split(BATCH):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    net.eval()


def train(model: str, x: np.ndarray, y: np.ndarray, seed: int, n_classes: int,
          cache: bool = True) -> Any:
    """A trained ``model`` (a torch module in eval mode, or a fitted ``MLPClassifier``) on
    ``x`` (the dataset's layout; reshaped here as the model needs)."""
    x_in = inputs_for(model, x)
    if model == "sklearn-mlp":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=500, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x_in, y)
        return clf
    torch.manual_seed(seed)
    net: torch.nn.Module = (Net(n_classes) if model == "cnn"
                            else MLP(x_in.shape[1], n_classes))
    path = CACHE / f"{_digest(model, x_in, y, seed, n_classes)}.pt"
    if cache and path.exists():
        net.load_state_dict(torch.load(path, weights_only=True))
        net.eval()
        return net
    _fit_torch(net, x_in, y, seed)
    if cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(net.state_dict(), tmp)
        tmp.replace(path)
    return net


def predict(model: str, net: Any, x: np.ndarray) -> np.ndarray:
    """Predicted classes of ``x`` (the dataset's layout)."""
    x_in = inputs_for(model, x)
    if model == "sklearn-mlp":
        return np.asarray(net.predict(x_in))
    with torch.no_grad():
        return net(torch.as_tensor(x_in)).argmax(1).numpy()


def penultimate(net: torch.nn.Module) -> Any:
    """The differentiable penultimate-layer map of a torch model (its ``features`` block)."""
    return net.features
