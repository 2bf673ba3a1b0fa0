"""Real models trained here, small enough for the whole folder to run in well under 90 s:
a CNN on scikit-learn's 8×8 digits, the same CNN behind an input quantiser, and a
scikit-learn MLP on the same digits as flat rows."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

from bastion.assess.policy import Policy

TRAIN = 1200


class Digits(NamedTuple):
    x_train: np.ndarray  # (n, 1, 8, 8) float32 in [0, 1]
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class Quantise(torch.nn.Module):
    """Rounds inputs to five levels, 0, ¼, ½, ¾, 1, with the thresholds moved 1/32 off the
    digits' own values (multiples of 1/16): no L∞ perturbation under 1/32 changes what the
    network sees, so its accuracy there is its clean accuracy, whatever the attack."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(4 * x - 0.125) / 4


def cnn(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(512, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def train(net: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 12) -> torch.nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One thread: these networks are tiny, and on a busy machine two threads spin more than
    they compute (the suite ran 5× slower beside a benchmark)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a workspace, ``assess run`` caches under ``$XDG_CACHE_HOME``: a fresh one per
    test, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    monkeypatch.delenv("BASTION_HOME", raising=False)


@pytest.fixture(scope="session")
def digits() -> Digits:
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = data.target.astype(np.int64)
    return Digits(x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:])


@pytest.fixture(scope="session")
def digits_cnn(digits: Digits) -> torch.nn.Sequential:
    """An undefended CNN (about 95 % clean accuracy)."""
    return train(cnn(), digits.x_train, digits.y_train)  # type: ignore[return-value]


@pytest.fixture(scope="session")
def quantised_cnn(digits: Digits) -> torch.nn.Module:
    """The same CNN trained and run behind :class:`Quantise`."""
    return train(torch.nn.Sequential(Quantise(), cnn()), digits.x_train, digits.y_train)


@pytest.fixture(scope="session")
def digits_mlp(digits: Digits) -> MLPClassifier:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: enough iterations for this
        return MLPClassifier((32,), max_iter=150, random_state=0).fit(
            digits.x_train.reshape(TRAIN, -1), digits.y_train)


def policy(tests: dict, requirements: list | None = None, **top: object) -> Policy:
    """A small policy for tests (few samples, few steps)."""
    return Policy.from_mapping({"version": 1, "seed": 0, "sample_size": 120, **top,
                                "tests": tests, "requirements": requirements or []})
