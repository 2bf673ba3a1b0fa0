"""RestrictedUnpickler: the scanner's policy at load time; benign models load, payloads don't."""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from tests.scan.conftest import ScannedCorpus
from tests.scan.corpus import MALICIOUS

from bastion.scan.pickle import Policy, RestrictedUnpickler, restricted


def test_loads_benign_torch_checkpoints(tmp_path) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    for legacy in (False, True):
        path = tmp_path / f"m{legacy}.pt"
        torch.save({"model": net.state_dict(), "full": net}, path,
                   _use_new_zipfile_serialization=not legacy)
        loaded = torch.load(path, pickle_module=restricted, weights_only=False)
        assert torch.equal(loaded["model"]["0.weight"], net[0].weight)
        assert isinstance(loaded["full"], torch.nn.Sequential)


def test_loads_benign_sklearn_and_numpy() -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(x, y)
    for proto in range(6):
        loaded = restricted.loads(pickle.dumps(model, protocol=proto))
        assert (loaded.predict(x) == model.predict(x)).all()
    arr = np.array([1, "a", None], dtype=object)
    assert list(restricted.loads(pickle.dumps(arr))) == [1, "a", None]


@pytest.mark.parametrize("case", [c for c in MALICIOUS if c.family == "pickle"],
                         ids=lambda c: c.name)
def test_refuses_every_malicious_pickle(scanned_corpus: ScannedCorpus, case) -> None:
    path = next(w.path for w in scanned_corpus.written if w.case is case)
    data = path.read_bytes()
    with pytest.raises((pickle.UnpicklingError, ValueError, TypeError, KeyError, EOFError)):
        stream = io.BytesIO(data)
        while True:  # every stacked pickle, as a multi-pickle loader would
            RestrictedUnpickler(stream).load()
    assert not scanned_corpus.canary.exists()


def test_refusal_message_names_the_global() -> None:
    data = pickle.dumps(print)
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.print"):
        restricted.loads(data)


def test_user_allowlist_is_honoured() -> None:
    data = pickle.dumps(len)
    assert RestrictedUnpickler(io.BytesIO(data),
                               policy=Policy.default().allowing(["builtins.len"])).load() is len


def test_joblib_with_restricted_policy_agrees_with_scan(scanned_corpus: ScannedCorpus) -> None:
    """Scanning and loading never disagree: every allowed global in a benign joblib loads."""
    path = next(w.path for w in scanned_corpus.written if w.case.name == "sklearn_pipeline.joblib")
    model = joblib.load(path)
    assert restricted.loads(pickle.dumps(model)).steps[0][0] == "standardscaler"
