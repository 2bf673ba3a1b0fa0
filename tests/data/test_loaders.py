"""Loaders: every supported format read for real, every bad input refused with a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bastion.data.choices import Layout
from bastion.data.interface import (
    DataError,
    DataFormatError,
    Dataset,
    DatasetKind,
    DataValidationError,
)
from bastion.data.loaders import load_dataset


def test_csv_with_guessed_label_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,x,cat\n2,y,dog\n3,,cat\n")
    ds = load_dataset(path)
    assert ds.kind is DatasetKind.TABULAR
    assert list(ds.frame.columns) == ["a", "b"]
    assert ds.classes == ("cat", "dog")
    assert ds.label_codes.tolist() == [0, 1, 0]
    assert ds.frame["b"].isna().sum() == 1


def test_parquet_detected_by_content_not_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}).to_parquet(path)
    ds = load_dataset(path, label="y")
    assert ds.frame["x"].tolist() == [1.0, 2.0]
    assert ds.labels is not None and ds.labels.tolist() == [0, 1]


def test_ragged_csv_rows_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,label\n1,2,x\n3,4\n")
    with pytest.raises(DataFormatError, match=r"ragged\.csv"):
        load_dataset(path)


def test_unknown_label_column_names_choices(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataValidationError) as info:
        load_dataset(path, label="target")
    assert info.value.hint is not None and "a, b" in info.value.hint


def test_missing_labels_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,x\n2,\n")
    with pytest.raises(DataValidationError, match="missing label"):
        load_dataset(path)


def test_infinite_feature_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,x\ninf,y\n")
    with pytest.raises(DataValidationError, match="infinite value"):
        load_dataset(path)


def test_npz_and_npy_pair(tmp_path: Path) -> None:
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.kind is DatasetKind.ARRAY and ds.matrix.tolist() == X.tolist()
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    ds2 = load_dataset(tmp_path / "X.npy")
    assert ds2.labels is not None and ds2.labels.tolist() == [0, 1, 0, 1]


def test_image_shaped_array_keeps_pixels(tmp_path: Path) -> None:
    np.savez(tmp_path / "img.npz", X=np.zeros((5, 8, 8)), y=np.arange(5))
    ds = load_dataset(tmp_path / "img.npz")
    assert ds.pixels is not None and ds.pixels.shape == (5, 8, 8, 1)
    assert ds.matrix.shape == (5, 64)
    assert ds.shape == (8, 8) and ds.layout is Layout.NHWC


@pytest.mark.parametrize(("shape", "layout"), [((1, 6, 5), Layout.NCHW), ((6, 5, 3), Layout.NHWC)])
def test_image_arrays_are_stored_nhwc_whatever_their_layout(
    tmp_path: Path, shape: tuple[int, ...], layout: Layout
) -> None:
    X = np.random.default_rng(0).random((4, *shape))
    np.savez(tmp_path / "img.npz", X=X, y=np.arange(4))
    ds = load_dataset(tmp_path / "img.npz")
    assert ds.layout is layout and ds.shape == shape
    expected = X.transpose(0, 2, 3, 1) if layout is Layout.NCHW else X
    assert ds.pixels is not None and ds.pixels.shape == (4, 6, 5, expected.shape[-1])
    np.testing.assert_allclose(ds.pixels, expected, rtol=1e-6)
    assert ds.frame.to_numpy().tolist() == X.reshape(4, -1).tolist()  # the file's order


def test_an_undecidable_layout_leaves_pixels_for_later(tmp_path: Path) -> None:
    X = np.arange(4 * 3 * 4 * 4, dtype=np.float64).reshape(4, 3, 4, 4)
    np.savez(tmp_path / "amb.npz", X=X, y=np.arange(4))
    ds = load_dataset(tmp_path / "amb.npz")
    assert ds.pixels is None and ds.layout is Layout.AUTO and ds.matrix.shape == (4, 48)
    said = load_dataset(tmp_path / "amb.npz", layout=Layout.NCHW)
    assert said.pixels is not None and said.pixels.shape == (4, 4, 4, 3)
    assert said.subset(np.array([True, False, True, False])).layout is Layout.NCHW
    volumes = np.zeros((2, 1, 2, 2, 2))
    np.savez(tmp_path / "vol.npz", X=volumes, y=np.arange(2))
    vol = load_dataset(tmp_path / "vol.npz", layout=Layout.NHWC)  # not images: ignored
    assert vol.pixels is None and vol.layout is None and vol.shape == (1, 2, 2, 2)


def test_a_sample_shape_must_fit_the_columns() -> None:
    with pytest.raises(DataValidationError, match=r"samples of shape \(2, 2\) but 3 feature"):
        Dataset(source="x", kind=DatasetKind.ARRAY, frame=pd.DataFrame(np.zeros((1, 3))),
                shape=(2, 2))


def test_mismatched_lengths(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DataValidationError, match="4 samples but y has 3"):
        load_dataset(tmp_path / "d.npz")


def test_nan_labels_and_inf_features_in_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "nan.npz", X=np.zeros((2, 2)), y=np.array([0.0, np.nan]))
    with pytest.raises(DataValidationError, match="NaN labels"):
        load_dataset(tmp_path / "nan.npz")
    np.savez(tmp_path / "inf.npz", X=np.array([[0.0, np.inf]]), y=np.array([0]))
    with pytest.raises(DataValidationError, match="infinite"):
        load_dataset(tmp_path / "inf.npz")


def test_object_arrays_are_never_unpickled(tmp_path: Path, canary: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (canary.write_text, ("pwned",))

    X = np.empty(2, dtype=object)
    X[0], X[1] = Payload(), Payload()
    np.save(tmp_path / "evil.npy", X, allow_pickle=True)
    with pytest.raises(DataFormatError, match="never loads"):
        load_dataset(tmp_path / "evil.npy")
    assert not canary.exists()


def test_unknown_and_empty_classes(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,cat\n2,dgo\n")
    with pytest.raises(DataValidationError, match="unknown label value"):
        load_dataset(path, classes=["cat", "dog"])
    path.write_text("a,label\n1,cat\n2,cat\n")
    with pytest.raises(DataValidationError, match=r"\['dog'\] have no samples"):
        load_dataset(path, classes=["cat", "dog"])


def _image(path: Path, value: int, size: tuple[int, int] = (6, 4)) -> None:
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)


def test_image_folder(tmp_path: Path) -> None:
    for cls, value in (("cat", 0), ("dog", 255)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            _image(tmp_path / cls / f"{i}.png", value)
    _image(tmp_path / "dog" / "big.png", 255, size=(12, 8))
    ds = load_dataset(tmp_path)
    assert ds.kind is DatasetKind.IMAGE
    assert ds.pixels is not None and ds.pixels.shape == (5, 4, 6, 3)
    assert ds.labels is not None and ds.labels.tolist() == ["cat"] * 2 + ["dog"] * 3
    assert float(ds.pixels[-1].mean()) == pytest.approx(1.0)


def test_empty_class_folder_and_unreadable_image(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    _image(tmp_path / "cat" / "a.png", 1)
    (tmp_path / "dog").mkdir()
    with pytest.raises(DataValidationError, match="'dog' has no images"):
        load_dataset(tmp_path)
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataFormatError, match=r"broken\.png"):
        load_dataset(tmp_path)


def test_missing_path_and_catalog_reference(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="registered dataset"):
        load_dataset("digits@1.0")
