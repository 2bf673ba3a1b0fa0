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


# -- torch.storage._load_from_bytes: torch.load of the bytes, through this module ------------------
@pytest.mark.parametrize("value", [torch.arange(10.0), torch.arange(20_000.0)],
                         ids=["kept", "large"])
def test_a_tensor_pickled_without_torch_save_loads_equal(value: torch.Tensor) -> None:
    loaded = restricted.loads(pickle.dumps(value, protocol=4))
    assert torch.equal(loaded, value)


def test_a_joblib_dump_of_tensors_loads_equal(tmp_path) -> None:
    value = {"w": torch.randn(3, 2), "large": torch.arange(20_000.0)}
    joblib.dump(value, tmp_path / "t.joblib")
    with (tmp_path / "t.joblib").open("rb") as f:
        loaded = RestrictedUnpickler(f).load()
    assert all(torch.equal(loaded[k], v) for k, v in value.items())


def test_load_from_bytes_loads_under_the_same_policy(tmp_path) -> None:
    from tests.scan.pickle.torch_bytes import LoadFromBytes, Point, System, legacy

    canary = tmp_path / "canary"
    evil = pickle.dumps(LoadFromBytes(legacy(System(f"touch {canary}"))), protocol=4)
    with pytest.raises(pickle.UnpicklingError, match=r"posix\.system"):
        restricted.loads(evil)
    assert not canary.exists()
    point = pickle.dumps(LoadFromBytes(legacy(Point(1, 2))), protocol=4)
    with pytest.raises(pickle.UnpicklingError, match="Point"):
        restricted.loads(point)
    allowed = Policy.default().allowing([f"{Point.__module__}.Point"])
    assert restricted.loads(point, policy=allowed) == Point(1, 2)


def test_load_from_bytes_of_anything_but_bytes_is_refused() -> None:
    data = b"\x80\x04ctorch.storage\n_load_from_bytes\n\x8c\x03abc\x85R."
    with pytest.raises(pickle.UnpicklingError, match="not bytes"):
        restricted.loads(data)


def test_build_on_an_imported_class_is_refused() -> None:
    """BUILD's target is under its state on the stack: the class, not the dict, is judged."""
    import io

    from bastion.scan.pickle import RestrictedUnpickler, UnsafePickleError

    data = b"\x80\x02ccollections\nOrderedDict\n}X\x04\x00\x00\x00fromK\x01sb."
    with pytest.raises(UnsafePickleError, match="BUILD on the imported object"):
        RestrictedUnpickler(io.BytesIO(data)).load()


def test_a_partial_of_a_reviewed_function_loads_and_cannot_be_swapped_or_called() -> None:
    import functools
    import io
    import pickle

    from sklearn.metrics import accuracy_score

    from bastion.scan.pickle import RestrictedUnpickler, UnsafePickleError

    value = functools.partial(accuracy_score, normalize=False)
    data = pickle.dumps(value, protocol=4)
    loaded = RestrictedUnpickler(io.BytesIO(data)).load()
    assert loaded.func is accuracy_score and loaded.keywords == {"normalize": False}
    swapped = data.replace(b"accuracy_score", b"f1_score\x00\x00\x00\x00\x00\x00")
    assert swapped != data
    with pytest.raises(UnsafePickleError):
        RestrictedUnpickler(io.BytesIO(swapped)).load()
    called = data[:-1] + b")R."  # partial(...)() while loading
    with pytest.raises(UnsafePickleError, match="kept as data"):
        RestrictedUnpickler(io.BytesIO(called)).load()


def test_owner_new_of_its_own_class_is_what_newobj_does() -> None:
    import io

    from bastion.scan.pickle import RestrictedUnpickler, UnsafePickleError

    # getattr(OrderedDict, "__new__")(OrderedDict): sympy writes its objects so
    data = (b"\x80\x02cbuiltins\ngetattr\nccollections\nOrderedDict\nX\x07\x00\x00\x00__new__"
            b"\x86Rccollections\nOrderedDict\n\x85R.")
    assert type(RestrictedUnpickler(io.BytesIO(data)).load()).__name__ == "OrderedDict"
    other = data.replace(b"\x86Rccollections\nOrderedDict\n", b"\x86Rccollections\nCounter\n")
    with pytest.raises(UnsafePickleError, match="__new__"):
        RestrictedUnpickler(io.BytesIO(other)).load()
