"""Model files load only through the scanner's allowlist; anything else is refused unrun."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.neural_network import MLPClassifier

from bastion.data.interface import DataFormatError
from bastion.data.models import load_model
from bastion.errors import BastionError


def test_whole_torch_module_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    torch.save(net, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "net.pt")
    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), net(x))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_pickle_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), np.repeat([0, 1], 20)
    mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=10, random_state=0).fit(X, y)
    (tmp_path / "mlp.pkl").write_bytes(pickle.dumps(mlp))
    assert (load_model(tmp_path / "mlp.pkl").predict(X) == mlp.predict(X)).all()


def test_malicious_pickle_is_refused_unrun(tmp_path: Path, canary: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (canary.write_text, ("pwned",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(BastionError):
        load_model(tmp_path / "evil.pkl")
    torch.save({"w": torch.zeros(1), "x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(BastionError):
        load_model(tmp_path / "evil.pt")
    assert not canary.exists()


def test_garbage_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a model at all")
    with pytest.raises(DataFormatError, match=r"junk\.pt"):
        load_model(tmp_path / "junk.pt")
