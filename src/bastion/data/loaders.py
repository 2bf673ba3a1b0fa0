"""Read datasets from files: CSV, Parquet, NumPy (``.npy`` / ``.npz``) and image folders.

Format is decided by content (magic bytes), never by extension. Nothing is unpickled: NumPy
files load with ``allow_pickle=False``. Every problem is a :class:`DataError` saying which file,
what was wrong and what to do::

    >>> from bastion.data.loaders import load_dataset
    >>> ds = load_dataset("train.csv", label="y")   # doctest: +SKIP
    >>> ds = load_dataset("digits.npz")             # arrays X and y   # doctest: +SKIP
    >>> ds = load_dataset("images/")                # a folder per class   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from bastion.data.choices import Layout
from bastion.data.interface import (
    DataError,
    DataFormatError,
    Dataset,
    DatasetKind,
    DataValidationError,
    Loader,
)
from bastion.data.layout import infer_layout, to_nhwc

__all__ = ["Fetch", "ImageFolderLoader", "NumpyLoader", "RegisteredLoader", "TableLoader",
           "load_dataset"]

Fetch = Callable[[str, Path], object]
"""Writes a registered version's files into a new directory: ``Catalog.get`` (which verifies
every digest and audits the read)."""

_PARQUET_MAGIC = b"PAR1"
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_LABEL_GUESSES = ("label", "target", "class", "y")
_CATALOG_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*@[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _head(path: Path, size: int = 8) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


def _finite_or_fail(values: npt.NDArray[np.float64], source: str, what: str) -> None:
    """Infinity is never a measurement; NaN is missing (reported by checks, not refused)."""
    bad = np.isinf(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataValidationError(
            f"{source}: {what} contain {int(bad.sum())} infinite value(s), the first in row {row}",
            hint="replace infinities by real values or NaN (missing) before checking",
        )


class TableLoader:
    """CSV (strict: every row must have the header's number of fields) and Parquet."""

    def accepts(self, source: str) -> bool:
        path = Path(source)
        return path.is_file() and _head(path, 6) != _NPY_MAGIC and _head(path, 4) != _ZIP_MAGIC

    def load(self, source: str, *, label: str | None) -> Dataset:
        path = Path(source)
        frame = self._read(path)
        if frame.columns.duplicated().any():
            dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
            raise DataFormatError(f"{source}: duplicate column names {dupes}",
                                  hint="give every column a distinct name")
        if label is None:
            label = next((c for c in _LABEL_GUESSES if c in frame.columns), None)
        elif label not in frame.columns:
            raise DataValidationError(
                f"{source}: no column named {label!r}",
                hint=f"the label is one of: {', '.join(map(str, frame.columns[:20]))}",
                param="label",
            )
        labels = None
        if label is not None:
            column = frame.pop(label)
            if column.isna().any():
                row = int(np.flatnonzero(column.isna().to_numpy())[0])
                count = int(column.isna().sum())
                raise DataValidationError(
                    f"{source}: {count} missing label(s), the first in row {row}",
                    hint="label every sample, or drop the unlabelled rows",
                )
            labels = column.to_numpy()
        numeric = frame.select_dtypes(include="number")
        if not numeric.empty:
            _finite_or_fail(numeric.to_numpy(np.float64), source, "features")
        return Dataset(source=source, kind=DatasetKind.TABULAR, frame=frame,
                       labels=labels, label_name=label)

    @staticmethod
    def _read(path: Path) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        try:
            if _head(path, 4) == _PARQUET_MAGIC:
                table = pq.read_table(path)
            else:
                # an empty field is a missing value, for text columns too
                options = pacsv.ConvertOptions(strings_can_be_null=True)
                table = pacsv.read_csv(path, convert_options=options)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise DataFormatError(
                f"{path}: not a readable CSV or Parquet table: {str(exc).splitlines()[0]}",
                hint="every CSV row needs the same number of fields as the header",
            ) from exc
        if table.num_rows == 0:
            raise DataValidationError(f"{path}: the table has no rows", hint="check the file")
        return table.to_pandas()


class NumpyLoader:
    """``X.npy`` (with ``y.npy`` beside it, or ``labels_file``) or an ``.npz`` holding X and y.

    ``(n, h, w)`` arrays are grey images; ``(n, c, h, w)`` and ``(n, h, w, c)`` are images in
    ``layout``, inferred from the shape when ``auto`` (:mod:`bastion.data.layout`).
    """

    def __init__(self, labels_file: str | None = None, layout: Layout = Layout.AUTO) -> None:
        self.labels_file = labels_file
        self.layout = Layout(layout)

    def accepts(self, source: str) -> bool:
        path = Path(source)
        return path.is_file() and (_head(path, 6) == _NPY_MAGIC or _head(path, 4) == _ZIP_MAGIC)

    def load(self, source: str, *, label: str | None) -> Dataset:
        path = Path(source)
        if _head(path, 4) == _ZIP_MAGIC:
            arrays = self._npz(path)
            features, labels = arrays.get("X", arrays.get("x")), arrays.get("y")
            if features is None:
                raise DataValidationError(f"{source}: the .npz has no array named 'X'",
                                          hint=f"arrays present: {sorted(arrays)}")
        else:
            features = self._npy(path)
            labels_path = Path(self.labels_file) if self.labels_file else None
            if labels_path is None and path.name in ("X.npy", "x.npy"):
                sibling = path.with_name("y.npy")
                labels_path = sibling if sibling.exists() else None
            labels = self._npy(labels_path) if labels_path else None
        return self._dataset(source, features, labels, self.layout)

    @staticmethod
    def _npy(path: Path) -> npt.NDArray[np.generic]:
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataFormatError(
                f"{path}: not a plain NumPy array ({exc})",
                hint="object arrays need pickle, which Bastion never loads; save numbers or text",
            ) from exc
        if not isinstance(array, np.ndarray):
            raise DataFormatError(f"{path}: expected one array, found an archive")
        return array

    @staticmethod
    def _npz(path: Path) -> dict[str, npt.NDArray[np.generic]]:
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (ValueError, OSError, EOFError) as exc:
            raise DataFormatError(
                f"{path}: not a plain NumPy .npz archive ({exc})",
                hint="object arrays need pickle, which Bastion never loads; save numbers or text",
            ) from exc

    @staticmethod
    def _dataset(
        source: str, features: npt.NDArray[np.generic], labels: npt.NDArray[np.generic] | None,
        layout: Layout = Layout.AUTO,
    ) -> Dataset:
        if features.ndim < 2 or features.dtype.kind not in "biuf":
            raise DataValidationError(
                f"{source}: X must be a numeric array of shape (samples, features…), "
                f"found {features.dtype} {features.shape}",
                hint="store one sample per row",
            )
        if labels is not None:
            if labels.ndim != 1:
                raise DataValidationError(f"{source}: y must be one-dimensional, is {labels.shape}")
            if len(labels) != len(features):
                raise DataValidationError(
                    f"{source}: X has {len(features)} samples but y has {len(labels)} labels",
                    hint="X and y must have the same length (one label per sample)",
                )
            if labels.dtype.kind == "f":
                _finite_or_fail(labels.astype(np.float64), source, "labels")
                if np.isnan(labels).any():
                    raise DataValidationError(f"{source}: y contains NaN labels",
                                              hint="label every sample")
        flat = features.reshape(len(features), -1).astype(np.float64)
        _finite_or_fail(flat, source, "features")
        frame = pd.DataFrame(flat, columns=[f"f{i}" for i in range(flat.shape[1])], copy=False)
        pixels, read = None, None
        if features.ndim == 3:  # (n, h, w): grey images, a channel axis added
            pixels, read = features[..., None].astype(np.float32), Layout.NHWC
        elif features.ndim == 4:  # NCHW or NHWC: stored NHWC once the layout is known
            read = layout if layout is not Layout.AUTO else infer_layout(features.shape[1:])
            pixels = None if read is Layout.AUTO else to_nhwc(features, read)
        return Dataset(source=source, kind=DatasetKind.ARRAY, frame=frame, labels=labels,
                       label_name="label" if labels is not None else None, pixels=pixels,
                       shape=tuple(int(d) for d in features.shape[1:]), layout=read)


class ImageFolderLoader:
    """A folder with one sub-folder per class; every file inside must be a readable image."""

    def accepts(self, source: str) -> bool:
        return Path(source).is_dir()

    def load(self, source: str, *, label: str | None) -> Dataset:
        from PIL import Image, UnidentifiedImageError

        root = Path(source)
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise DataValidationError(f"{source}: no class folders",
                                      hint="put each class's images in a folder named for it")
        rows: list[tuple[str, int, int, str]] = []
        images: list[npt.NDArray[np.float32]] = []
        labels: list[str] = []
        for class_dir in class_dirs:
            files = sorted(p for p in class_dir.iterdir()
                           if p.is_file() and not p.name.startswith("."))
            if not files:
                raise DataValidationError(f"{source}: class {class_dir.name!r} has no images",
                                          hint="remove the empty folder or add its images")
            for file in files:
                try:
                    with Image.open(file) as img:
                        img.load()
                        mode = "L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
                        converted = img.convert(mode)
                except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
                    raise DataFormatError(f"{file}: not a readable image ({exc})",
                                          hint="remove or replace the file") from exc
                array = np.asarray(converted, dtype=np.float32) / 255.0
                images.append(array if array.ndim == 3 else array[..., None])
                rows.append((str(file.relative_to(root)), converted.width, converted.height, mode))
                labels.append(class_dir.name)
        frame = pd.DataFrame(rows, columns=["file", "width", "height", "mode"])
        return Dataset(source=source, kind=DatasetKind.IMAGE, frame=frame,
                       labels=np.asarray(labels), label_name="label",
                       pixels=_stack(images), layout=Layout.NHWC)


class RegisteredLoader:
    """A registered dataset version ``NAME@VER``, fetched by the catalog, then read by the
    loader its files call for (one file, an ``X.npy`` beside ``y.npy``, or an image folder)."""

    def __init__(self, fetch: Fetch, layout: Layout = Layout.AUTO) -> None:
        self.fetch = fetch
        self.layout = layout

    def accepts(self, source: str) -> bool:
        return bool(_CATALOG_REF.match(source)) and not Path(source).exists()

    def load(self, source: str, *, label: str | None) -> Dataset:
        with tempfile.TemporaryDirectory(prefix="bastion-data-") as tmp:
            root = Path(tmp) / "version"
            self.fetch(source, root)
            files = [p for p in root.rglob("*") if p.is_file()]
            inner = (files[0] if len(files) == 1
                     else root / "X.npy" if (root / "X.npy").exists() else root)
            dataset = load_dataset(inner, label=label, layout=self.layout)  # read into memory
        return dataclasses.replace(dataset, source=source)


def _stack(images: Sequence[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    """Stack images, resizing to the most common (height, width) and channel count."""
    from PIL import Image

    (height, width, channels), _ = Counter(i.shape for i in images).most_common(1)[0]
    out = np.empty((len(images), height, width, channels), dtype=np.float32)
    for n, original in enumerate(images):
        img = original
        if img.shape[2] != channels:
            img = img.mean(axis=2, keepdims=True) if channels == 1 else np.repeat(img, 3, axis=2)
        if img.shape[:2] != (height, width):
            planes = [np.asarray(Image.fromarray(img[..., c]).resize((width, height)))
                      for c in range(channels)]
            img = np.stack(planes, axis=-1)
        out[n] = img
    return out


def load_dataset(
    source: str | Path,
    *,
    label: str | None = None,
    labels_file: str | Path | None = None,
    classes: Sequence[str] | None = None,
    fetch: Fetch | None = None,
    layout: Layout = Layout.AUTO,
) -> Dataset:
    """Load ``source`` with the loader its content calls for.

    Args:
        source: a CSV / Parquet / ``.npy`` / ``.npz`` file or an image folder.
        label: the label column of a table (default: ``label``, ``target``, ``class`` or ``y``
            when present).
        labels_file: a ``.npy`` of labels for an ``X.npy`` not named ``X.npy``.
        classes: the allowed label values; any other value, or a class without samples, is an
            error.
        fetch: how to fetch a registered ``NAME@VER`` (``Catalog(workspace).get``).
        layout: how a 4-D array's axes are ordered, ``nchw`` or ``nhwc``; ``auto``: inferred
            from the shape when it says (a channel axis of 1, 3 or 4 on one side only), else
            left for a model to decide (:func:`bastion.data.layout.model_inputs`).
    """
    text = str(source)
    path = Path(text)
    if not path.exists():
        if _CATALOG_REF.match(text) and fetch is None:
            raise DataError(
                f"{text} looks like a registered dataset (NAME@VER), but no catalog was given",
                hint="run inside a workspace (bastion init), or pass the dataset's files",
            )
        if not _CATALOG_REF.match(text):
            raise DataError(f"{text}: no such file or folder", hint="check the path")
    loaders: tuple[Loader, ...] = (
        *((RegisteredLoader(fetch, layout),) if fetch is not None else ()),
        ImageFolderLoader(),
        NumpyLoader(str(labels_file) if labels_file else None, layout),
        TableLoader(),
    )
    loader = next((ld for ld in loaders if ld.accepts(text)), None)
    if loader is None:
        raise DataFormatError(f"{text}: not a file or folder Bastion can read as a dataset")
    dataset = loader.load(text, label=label)
    if classes is not None:
        _check_classes(dataset, classes)
    return dataset


def _check_classes(dataset: Dataset, classes: Sequence[str]) -> None:
    allowed = [str(c) for c in classes]
    present = set(dataset.classes)
    unknown = sorted(present - set(allowed))
    if unknown:
        raise DataValidationError(
            f"{dataset.source}: unknown label value(s) {unknown[:5]}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""),
            hint=f"allowed labels are {allowed}; fix the labels or the allowed list",
        )
    empty = [c for c in allowed if c not in present]
    if empty:
        raise DataValidationError(
            f"{dataset.source}: class(es) {empty} have no samples",
            hint="collect samples for every class, or drop the class from the allowed list",
        )
