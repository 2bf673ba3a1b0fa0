"""What a dataset contains: rows, features, types, missing values, ranges, labels, images.

    >>> from bastion.data import load_dataset, profile_dataset
    >>> profile_dataset(load_dataset("train.csv")).to_dict()["rows"]   # doctest: +SKIP
    1000
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bastion.data.interface import Dataset

__all__ = ["ColumnProfile", "DatasetProfile", "ImageProfile", "profile_dataset"]


@dataclass(frozen=True)
class ColumnProfile:
    """One feature column."""

    name: str
    """Column name."""
    dtype: str
    """pandas dtype, e.g. ``float64``, ``object``, ``datetime64[ns]``."""
    missing: int
    """Number of missing values."""
    minimum: float | str | None
    """Smallest value (numbers and timestamps), ``None`` for text."""
    maximum: float | str | None
    """Largest value (numbers and timestamps), ``None`` for text."""
    mean: float | None
    """Mean of the numbers, ``None`` otherwise."""
    distinct: int | None
    """Number of distinct values for text and categories (not computed for numbers: costly
    and rarely useful)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "dtype": self.dtype, "missing": self.missing,
                "min": self.minimum, "max": self.maximum, "mean": self.mean,
                "distinct": self.distinct}


@dataclass(frozen=True)
class ImageProfile:
    """Image statistics."""

    channel_means: tuple[float, ...]
    """Mean of each channel over all pixels, in ``[0, 1]`` for image folders."""
    channel_stds: tuple[float, ...]
    """Standard deviation of each channel."""
    sizes: dict[str, int]
    """How many images have each ``WIDTHxHEIGHT`` (before resizing to a common size)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"channel_means": list(self.channel_means),
                "channel_stds": list(self.channel_stds), "sizes": dict(self.sizes)}


@dataclass(frozen=True)
class DatasetProfile:
    """The facts a data card records about a dataset version."""

    source: str
    """Where the dataset was read from."""
    kind: str
    """``tabular``, ``array`` or ``image``."""
    rows: int
    """Number of samples."""
    features: int
    """Number of feature columns (pixels count once per value for arrays)."""
    columns: tuple[ColumnProfile, ...]
    """Per-column statistics (tabular data, and arrays up to 200 columns)."""
    label_name: str | None
    """The label column, if any."""
    label_counts: dict[str, int]
    """Samples per label value, largest first."""
    image: ImageProfile | None
    """Image statistics, for image data."""

    def card_metrics(self) -> dict[str, Any]:
        """The figures a data card's computed ``metrics`` hold (``catalog.cards.DatasetMetrics``):
        what registering a dataset version should fill in from the data itself."""
        return {"rows": self.rows, "features": self.features,
                "label_counts": dict(self.label_counts)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (schema in ``docs/data.md``)."""
        return {"source": self.source, "kind": self.kind, "rows": self.rows,
                "features": self.features, "label": self.label_name,
                "label_counts": dict(self.label_counts),
                "columns": [c.to_dict() for c in self.columns],
                "image": self.image.to_dict() if self.image else None}


_MAX_ARRAY_COLUMNS = 200


def _columns(frame: pd.DataFrame) -> tuple[ColumnProfile, ...]:
    numeric = frame.select_dtypes(include=["number", "bool"])
    stats: dict[str, tuple[float, float, float]] = {}
    if not numeric.empty:
        values = numeric.to_numpy(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN: fine
            lows, highs = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
            means = np.nanmean(values, axis=0)
        for i, name in enumerate(numeric.columns):
            stats[str(name)] = (float(lows[i]), float(highs[i]), float(means[i]))
    missing = frame.isna().sum()
    out: list[ColumnProfile] = []
    for name in frame.columns:
        col = frame[name]
        key = str(name)
        if key in stats:
            low, high, mean = (None if np.isnan(v) else v for v in stats[key])
            out.append(ColumnProfile(key, str(col.dtype), int(missing[name]), low, high, mean,
                                     None))
        elif pd.api.types.is_datetime64_any_dtype(col):
            low_t, high_t = col.min(), col.max()
            out.append(ColumnProfile(key, str(col.dtype), int(missing[name]),
                                     None if pd.isna(low_t) else str(low_t),
                                     None if pd.isna(high_t) else str(high_t), None, None))
        else:
            out.append(ColumnProfile(key, str(col.dtype), int(missing[name]), None, None, None,
                                     int(col.nunique(dropna=True))))
    return tuple(out)


def profile_dataset(dataset: Dataset) -> DatasetProfile:
    """Compute the profile of ``dataset`` (vectorised: one pass per statistic)."""
    frame = dataset.frame
    show_columns = dataset.pixels is None or frame.shape[1] <= _MAX_ARRAY_COLUMNS
    image = None
    if dataset.pixels is not None:
        pixels = dataset.pixels
        means = pixels.mean(axis=(0, 1, 2), dtype=np.float64)
        stds = pixels.std(axis=(0, 1, 2), dtype=np.float64)
        if {"width", "height"} <= set(frame.columns):
            size_text = frame["width"].astype(str) + "x" + frame["height"].astype(str)
        else:
            size_text = pd.Series([f"{pixels.shape[2]}x{pixels.shape[1]}"] * len(pixels))
        image = ImageProfile(tuple(float(m) for m in means), tuple(float(s) for s in stds),
                             {str(k): int(v) for k, v in size_text.value_counts().items()})
    counts: dict[str, int] = {}
    if dataset.labels is not None:
        series = pd.Series(dataset.labels.astype(str)).value_counts()
        counts = {str(k): int(v) for k, v in series.items()}
    features = (int(dataset.matrix.shape[1]) if dataset.kind != "tabular"
                else int(frame.shape[1]))
    return DatasetProfile(
        source=dataset.source, kind=dataset.kind.value, rows=len(dataset), features=features,
        columns=_columns(frame) if show_columns else (), label_name=dataset.label_name,
        label_counts=counts, image=image)
