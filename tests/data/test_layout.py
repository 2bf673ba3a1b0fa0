"""Layouts and model inputs: NCHW, NHWC and grey arrays, tables, every model kind users hold,
fed exactly what they were trained on (checked against a direct forward pass)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

from bastion.data.choices import Layout, Method
from bastion.data.interface import Dataset, DatasetKind, DataValidationError
from bastion.data.layout import infer_layout, model_inputs, to_nhwc, with_layout
from bastion.data.loaders import load_dataset
from bastion.data.poisoning import detect_poisoning
from bastion.models import load_model


def _digits(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Digits as PyTorch holds them: (n, 1, 8, 8) float32 in [0, 1]."""
    digits = load_digits()
    return (digits.images[:n, None] / 16.0).astype(np.float32), digits.target[:n]


def _cnn(channels: int = 1, size: int = 8, seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * (size - 2) ** 2, 10))


class CustomNet(torch.nn.Module):
    """Not a Sequential: its spec says nothing, its first declared layer does."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 4, 3)
        self.head = torch.nn.Linear(4 * 1 * 2, 10)  # (4, 3, 4) in: (4, 1, 2) out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).flatten(1))


def _forward(net: torch.nn.Module, nchw: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(net.eval()(torch.from_numpy(nchw)).argmax(1).numpy())


def _save(tmp_path: Path, name: str, X: np.ndarray, y: np.ndarray) -> Path:
    np.savez(tmp_path / name, X=X, y=y)
    return tmp_path / name


@pytest.mark.parametrize(("shape", "expected"), [
    ((1, 28, 28), Layout.NCHW), ((3, 32, 32), Layout.NCHW), ((28, 28, 3), Layout.NHWC),
    ((8, 8, 1), Layout.NHWC), ((3, 4, 4), Layout.AUTO), ((1, 8, 1), Layout.AUTO),
    ((8, 8, 8), Layout.AUTO), ((8, 8), Layout.AUTO)])
def test_infer_layout(shape: tuple[int, ...], expected: Layout) -> None:
    assert infer_layout(shape) is expected


def test_to_nhwc_needs_a_decided_layout() -> None:
    with pytest.raises(ValueError, match="decided layout"):
        to_nhwc(np.zeros((1, 1, 2, 2)), Layout.AUTO)


# ---------------------------------------------------------------- images for a conv network


@pytest.mark.parametrize("stored", ["nchw", "nhwc", "grey"])
def test_a_cnn_gets_nchw_whatever_the_file_layout(tmp_path: Path, stored: str) -> None:
    X, y = _digits()
    on_disk = {"nchw": X, "nhwc": X.transpose(0, 2, 3, 1), "grey": X[:, 0]}[stored]
    ds = load_dataset(_save(tmp_path, "d.npz", on_disk, y))
    assert ds.pixels is not None and ds.pixels.shape == (300, 8, 8, 1)  # stored NHWC
    net = _cnn()
    loaded = load_model(_torch_save(tmp_path, net))
    x = model_inputs(ds, loaded.predictor)
    assert x.shape == (300, 1, 8, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(x, X)
    assert loaded.predictor.predict(x).tolist() == _forward(net, X).tolist()


def _torch_save(tmp_path: Path, net: torch.nn.Module, name: str = "cnn.pt") -> Path:
    torch.save(net, tmp_path / name)
    return tmp_path / name


def test_the_pytorch_layout_bug_is_gone(tmp_path: Path) -> None:
    """(N, 1, H, W) was read as (n, h=1, w=H, c=W) and the CNN fed (N, 8, 1, 8)."""
    X, y = _digits()
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    ds = load_dataset(tmp_path / "X.npy")
    assert ds.layout is Layout.NCHW and ds.shape == (1, 8, 8)
    net = load_model(_torch_save(tmp_path, _cnn())).predictor
    report = detect_poisoning(ds, model=net, inputs=model_inputs(ds, net),
                              method=Method.SPECTRAL)
    assert len(report.scores) == 300


def test_torchscript_gets_the_same_inputs(tmp_path: Path) -> None:
    X, y = _digits()
    net = _cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(tmp_path / "ts.pt"))
    loaded = load_model(tmp_path / "ts.pt")
    assert loaded.format.value == "torchscript"
    ds = load_dataset(_save(tmp_path, "d.npz", X.transpose(0, 2, 3, 1), y))
    x = model_inputs(ds, loaded.predictor)
    np.testing.assert_array_equal(x, X)
    assert loaded.predictor.predict(x).tolist() == _forward(net, X).tolist()


def test_no_model_gives_nchw_images_or_the_matrix(tmp_path: Path) -> None:
    X, y = _digits(20)
    images = load_dataset(_save(tmp_path, "i.npz", X.transpose(0, 2, 3, 1), y))
    np.testing.assert_array_equal(model_inputs(images), X)
    table = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "label": [0, 1]})
    table.to_csv(tmp_path / "t.csv", index=False)
    assert model_inputs(load_dataset(tmp_path / "t.csv")).tolist() == [[1.0, 3.0], [2.0, 4.0]]


# -------------------------------------------------------------------------- ambiguous arrays


def _ambiguous(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """(n, 3, 4, 4): three channels first, or four channels last? The shape cannot say."""
    rng = np.random.default_rng(0)
    X = rng.random((40, 3, 4, 4)).astype(np.float32)
    y = np.repeat([0, 1], 20)
    return _save(tmp_path, "amb.npz", X, y), X, y


def test_an_ambiguous_array_loads_but_waits_for_a_decision(tmp_path: Path) -> None:
    path, X, _ = _ambiguous(tmp_path)
    ds = load_dataset(path)
    assert ds.pixels is None and ds.layout is Layout.AUTO and ds.shape == (3, 4, 4)
    assert ds.matrix.tolist() == X.reshape(40, -1).tolist()  # model-free checks need no layout
    with pytest.raises(DataValidationError, match=r"X \(n, 3, 4, 4\) could be NCHW or NHWC") \
            as caught:
        model_inputs(ds)
    assert caught.value.param == "layout" and "nchw" in (caught.value.hint or "")


@pytest.mark.parametrize("as_file", [False, True])
def test_the_models_first_layer_decides(tmp_path: Path, as_file: bool) -> None:
    path, X, _ = _ambiguous(tmp_path)
    ds = load_dataset(path)
    three, four = _cnn(channels=3, size=4), CustomNet(channels=4)
    m3: object = load_model(_torch_save(tmp_path, three, "c3.pt")).predictor if as_file else three
    x = model_inputs(ds, m3)
    np.testing.assert_array_equal(x, X)  # read as NCHW: three channels
    assert with_layout(ds, m3).layout is Layout.NCHW
    # a custom module's spec is empty: the first convolution it declares takes 4 channels
    x = model_inputs(ds, four)
    np.testing.assert_array_equal(x, X.transpose(0, 3, 1, 2))  # read as NHWC: (n, 4, 3, 4)
    decided = with_layout(ds, four)
    assert decided.layout is Layout.NHWC and decided.pixels is not None
    np.testing.assert_array_equal(decided.pixels, X)
    assert _forward(four, x).tolist() == _forward(four, X.transpose(0, 3, 1, 2)).tolist()


def test_the_user_says_the_layout(tmp_path: Path) -> None:
    path, X, _ = _ambiguous(tmp_path)
    ds = load_dataset(path, layout=Layout.NHWC)
    assert ds.layout is Layout.NHWC and ds.pixels is not None
    np.testing.assert_array_equal(model_inputs(ds), X.transpose(0, 3, 1, 2))
    # said later, it overrides what loading decided
    np.testing.assert_array_equal(model_inputs(ds, layout=Layout.NCHW), X)
    # a model that takes both layouts' channel counts cannot decide: the user must
    both = _cnn(channels=3, size=3)
    square = load_dataset(_save(tmp_path, "sq.npz", np.zeros((4, 3, 3, 3), np.float32),
                                np.arange(4)))
    with pytest.raises(DataValidationError, match="the model takes either"):
        model_inputs(square, both)
    assert model_inputs(square, both, Layout.NCHW).shape == (4, 3, 3, 3)
    assert with_layout(square).pixels is None  # nothing decides: left as it was


# ------------------------------------------------------------------------------- mismatches


def test_channels_that_do_not_match_name_both_shapes(tmp_path: Path) -> None:
    X, y = _digits(20)
    ds = load_dataset(_save(tmp_path, "d.npz", X, y))
    with pytest.raises(DataValidationError,
                       match=r"takes images \(n, 3, \?, \?\).*X \(n, 1, 8, 8\)"):
        model_inputs(ds, _cnn(channels=3))
    with pytest.raises(DataValidationError,
                       match=r"takes images .* but the data gives X \(n, 64\)"):
        model_inputs(load_dataset(_save(tmp_path, "flat.npz", X.reshape(20, -1), y)), _cnn())


def test_a_network_sized_for_other_images_fails_cleanly(tmp_path: Path) -> None:
    X, y = _digits(20)
    padded = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)))  # 10×10; the Linear wants 8×8's
    ds = load_dataset(_save(tmp_path, "d.npz", padded, y))
    with pytest.raises(DataValidationError,
                       match=r"cannot run on inputs \(n, 1, 10, 10\).*mat1 and mat2"):
        model_inputs(ds, _cnn())


def test_a_flat_model_on_the_wrong_features(tmp_path: Path) -> None:
    X, y = _digits(20)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(30, 4), torch.nn.ReLU(), torch.nn.Linear(4, 10))
    with pytest.raises(DataValidationError,
                       match=r"takes 30 features per sample, but the data gives 64 "
                             r"\(X \(n, 1, 8, 8\)\)"):
        model_inputs(load_dataset(_save(tmp_path, "d.npz", X, y)), mlp)


def test_other_input_ranks_must_match_the_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    conv1d = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.Flatten(),
                                 torch.nn.Linear(3 * 4, 2))
    X = np.random.default_rng(0).random((10, 2, 6)).astype(np.float32)
    ds = load_dataset(_save(tmp_path, "s.npz", X, np.repeat([0, 1], 5)))
    np.testing.assert_array_equal(model_inputs(ds, conv1d), X)
    ds5 = load_dataset(_save(tmp_path, "v.npz", np.zeros((4, 1, 2, 2, 2)), np.arange(4)))
    with pytest.raises(DataValidationError, match=r"takes inputs \(n, 2, \?\)"):
        model_inputs(ds5, conv1d)


# ----------------------------------------------------------------------- flat and tabular


def test_a_torch_mlp_gets_the_files_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((30, 3, 2, 2)).astype(np.float32)  # NCHW, 3 channels
    ds = load_dataset(_save(tmp_path, "d.npz", X, np.repeat([0, 1, 2], 10)))
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(12, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    x = model_inputs(ds, mlp)
    # flattened as the file holds it, not as the NHWC pixels would flatten
    np.testing.assert_array_equal(x, X.reshape(30, -1))
    assert not np.array_equal(x, ds.pixels.reshape(30, -1))  # type: ignore[union-attr]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_tables_with_scikit_learn_and_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((80, 3)), columns=["a", "b", "c"])
    frame["label"] = np.repeat(["x", "y"], 40)
    frame.to_csv(tmp_path / "t.csv", index=False)
    ds = load_dataset(tmp_path / "t.csv")
    mlp = MLPClassifier((4,), max_iter=20, random_state=0).fit(frame[["a", "b", "c"]]
                                                               .to_numpy(), frame["label"])
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(mlp))
    loaded = load_model(tmp_path / "m.pkl").predictor
    x = model_inputs(ds, loaded)
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, frame[["a", "b", "c"]].to_numpy())
    assert loaded.predict(x).tolist() == [list(mlp.classes_).index(v)
                                          for v in mlp.predict(x)]
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    assert model_inputs(ds, net).dtype == np.float32
    wide = MLPClassifier((4,), max_iter=5, random_state=0).fit(np.zeros((4, 5)), [0, 1, 0, 1])
    with pytest.raises(DataValidationError, match="takes 5 features per sample, but the "
                                                  "data gives 3"):
        model_inputs(ds, wide)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_named_columns_are_matched_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((40, 3)), columns=["a", "b", "c"])
    y = np.repeat([0, 1], 20)
    mlp = MLPClassifier((4,), max_iter=10, random_state=0).fit(frame, y)  # names a, b, c
    ds = Dataset(source="t.csv", kind=DatasetKind.TABULAR, frame=frame[["c", "a", "b"]],
                 labels=y, label_name="label")
    np.testing.assert_array_equal(model_inputs(ds, mlp), frame.to_numpy())
    short = Dataset(source="t.csv", kind=DatasetKind.TABULAR, frame=frame[["a", "b"]],
                    labels=y, label_name="label")
    with pytest.raises(DataValidationError, match=r"fitted on column.* the data lacks: c"):
        model_inputs(short, mlp)


def test_an_object_that_is_no_model_gets_the_matrix(tmp_path: Path) -> None:
    X, y = _digits(10)
    ds = load_dataset(_save(tmp_path, "d.npz", X, y))
    assert model_inputs(ds, object()).shape == (10, 64)
