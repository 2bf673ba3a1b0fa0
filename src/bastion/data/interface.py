"""The one shape every data check reads: a :class:`Dataset`, and the errors loading can raise.

Loaders (``bastion.data.loaders``) turn files into a :class:`Dataset`; profile, checks, leakage,
label audits, poisoning and capacity only ever see this type, so a new source (a catalog
``NAME@VER``) needs one new loader and nothing else.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from bastion.data.choices import Layout
from bastion.errors import BastionError
from bastion.findings import Location

__all__ = [
    "DataError",
    "DataFormatError",
    "DataValidationError",
    "Dataset",
    "DatasetKind",
    "Loader",
]

FloatMatrix = npt.NDArray[np.float64]


class DataError(BastionError):
    """Base of every error raised by ``bastion.data``."""


class DataFormatError(DataError):
    """A file cannot be read as the dataset it claims to be (ragged rows, unreadable image)."""


class DataValidationError(DataError):
    """The data was read but breaks a rule loading enforces (lengths, NaN, labels, classes)."""


class DatasetKind(enum.StrEnum):
    """Where the samples came from; decides which statistics and rules apply."""

    TABULAR = "tabular"
    ARRAY = "array"
    IMAGE = "image"


@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples, their labels and where they came from. Checks itself when built."""

    source: str
    """The path (or ``NAME@VER``) it was loaded from; findings point here."""
    kind: DatasetKind
    """Tabular, array or image folder."""
    frame: pd.DataFrame
    """One row per sample. Tabular: the feature columns; arrays: ``f0 … fN``; images: the
    file, width, height and mode of each image."""
    labels: npt.NDArray[np.generic] | None = None
    """One label per sample, or ``None`` for unlabelled data."""
    label_name: str | None = None
    """The label column's name (``label`` for arrays and image folders)."""
    pixels: npt.NDArray[np.float32] | None = None
    """Images only: ``(n, height, width, channels)``, whatever the file's layout; image
    folders in ``[0, 1]``, resized to the most common size when sizes differ. ``None`` for a
    4-D array whose layout is undecided (see :attr:`layout`)."""
    shape: tuple[int, ...] | None = None
    """Arrays only: one sample's shape as the file stores it (``(1, 28, 28)`` for NCHW
    digits); :attr:`frame`'s columns hold its values in that order."""
    layout: Layout | None = None
    """How the images' axes were read: ``nchw`` or ``nhwc`` (image folders: ``nhwc``);
    ``auto`` for a 4-D array whose shape does not say and whose layout was not given (no
    :attr:`pixels` until a model or the user decides: :mod:`bastion.data.layout`); ``None``
    for data that is not images."""

    def __post_init__(self) -> None:
        n = len(self.frame)
        if self.labels is not None and len(self.labels) != n:
            raise DataValidationError(
                f"{self.source}: {n} samples but {len(self.labels)} labels",
                hint="give exactly one label per sample",
            )
        if self.pixels is not None and len(self.pixels) != n:
            raise DataValidationError(f"{self.source}: {n} images but {len(self.pixels)} arrays")
        if self.shape is not None and math.prod(self.shape) != self.frame.shape[1]:
            raise DataValidationError(
                f"{self.source}: samples of shape {self.shape} but {self.frame.shape[1]} "
                "feature columns")

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def location(self) -> Location:
        """Where findings about this dataset point."""
        return Location(path=self.source)

    @cached_property
    def classes(self) -> tuple[str, ...]:
        """Distinct label values as text, sorted; empty when unlabelled."""
        if self.labels is None:
            return ()
        return tuple(str(c) for c in np.unique(self.labels.astype(str)))

    @cached_property
    def label_codes(self) -> npt.NDArray[np.intp]:
        """Labels as integers ``0 … k-1`` in the order of :attr:`classes`."""
        if self.labels is None:
            raise DataValidationError(
                f"{self.source}: the dataset has no labels",
                hint="name the label column", param="label",
            )
        _, codes = np.unique(self.labels.astype(str), return_inverse=True)
        return codes.astype(np.intp)

    @cached_property
    def matrix(self) -> FloatMatrix:
        """Numeric features, one row per sample: what distance-based checks and models use.

        Images give their flattened pixels; tabular data its numeric and boolean columns, with
        categorical text as integer codes and missing values as NaN.
        """
        if self.pixels is not None:
            return self.pixels.reshape(len(self.pixels), -1).astype(np.float64)
        columns: list[npt.NDArray[np.float64]] = []
        for name in self.frame.columns:
            col = self.frame[name]
            if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
                columns.append(pd.to_numeric(col, errors="coerce").to_numpy(np.float64))
            elif pd.api.types.is_datetime64_any_dtype(col):
                continue  # timestamps say when, not what: not a feature for distances
            else:
                codes = pd.Series(pd.Categorical(col).codes, dtype=np.float64)
                columns.append(codes.where(codes >= 0).to_numpy(np.float64))
        if not columns:
            return np.zeros((len(self.frame), 0))
        return np.column_stack(columns)

    def subset(self, keep: npt.NDArray[np.bool_], *, source: str | None = None) -> Dataset:
        """The samples where ``keep`` is true (used to write a cleaned dataset)."""
        return Dataset(
            source=source or self.source,
            kind=self.kind,
            frame=self.frame.loc[keep].reset_index(drop=True),
            labels=None if self.labels is None else self.labels[keep],
            label_name=self.label_name,
            pixels=None if self.pixels is None else self.pixels[keep],
            shape=self.shape,
            layout=self.layout,
        )


class Loader(Protocol):
    """Reads one kind of source into a :class:`Dataset`."""

    def accepts(self, source: str) -> bool:
        """Whether this loader reads ``source`` (decided by content or form, not by trust)."""
        ...

    def load(self, source: str, *, label: str | None) -> Dataset:
        """Read ``source``; ``label`` names the label column where the format has columns."""
        ...
