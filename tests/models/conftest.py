"""Tiny real models, built by their own libraries in the test run."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.neural_network import MLPClassifier


def make_net(seed: int = 0, *, act: type[torch.nn.Module] = torch.nn.Tanh) -> torch.nn.Sequential:
    """4 inputs → 3 hidden → 2 classes (smooth activation by default: finite differences)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), act(), torch.nn.Linear(3, 2))


@pytest.fixture
def net() -> torch.nn.Sequential:
    return make_net()


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)


@pytest.fixture(scope="session")
def table() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = np.repeat(np.array(["ant", "bee", "cat"]), 20)
    X[y == "bee"] += 2.0
    X[y == "cat"] -= 2.0
    return X, y


@pytest.fixture(scope="session")
def mlp(table: tuple[np.ndarray, np.ndarray]) -> MLPClassifier:
    X, y = table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few iterations suffice here
        return MLPClassifier(hidden_layer_sizes=(5, 4), max_iter=30, random_state=0).fit(X, y)


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """torch.jit.script without its deprecation warning (TorchScript files are still common)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(module)


def trace(module: torch.nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.trace(module, example)
