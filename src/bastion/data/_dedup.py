"""Exact and near-duplicate search without comparing every pair.

Exact duplicates: one 64-bit hash per row (``pandas.util.hash_pandas_object``), then a sort.
Near duplicates: Euclidean locality-sensitive hashing (Datar et al., "Locality-sensitive hashing
scheme based on p-stable distributions", SCG 2004). Each of ``tables`` hash tables keys a row by
``bits`` quantised random projections; rows closer than ``radius`` share a key in at least one
table with high probability, rows far apart almost never. Only rows sharing a key are compared,
so the work grows with the number of near pairs, not with n².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["NearPairs", "exact_groups", "near_pairs", "row_hashes", "standardise"]

IntArray = npt.NDArray[np.int64]
_MAX_BUCKET = 256
"""Larger buckets are compared along a sorted projection in windows of this size."""


def row_hashes(frame: pd.DataFrame) -> npt.NDArray[np.uint64]:
    """One 64-bit hash per row of ``frame``, equal for equal rows (NaN equals NaN)."""
    hashes: npt.NDArray[np.uint64] = pd.util.hash_pandas_object(frame, index=False).to_numpy(
        np.uint64
    )
    return hashes


def exact_groups(hashes: npt.NDArray[np.uint64]) -> list[IntArray]:
    """Index groups (two or more rows) that share a hash, largest first."""
    order = np.argsort(hashes, kind="stable")
    sorted_h = hashes[order]
    starts = np.flatnonzero(np.r_[True, sorted_h[1:] != sorted_h[:-1]])
    sizes = np.diff(np.r_[starts, len(hashes)])
    groups = [order[s : s + n].astype(np.int64) for s, n in zip(starts, sizes, strict=True)
              if n > 1]
    groups.sort(key=len, reverse=True)
    return groups


def standardise(matrix: npt.NDArray[np.float64], *, per_feature: bool) -> npt.NDArray[np.float64]:
    """Scale so one unit is one standard deviation (per feature, or over all values for pixels);
    missing values become the mean, so they neither create nor hide near duplicates."""
    if not matrix.size:
        return matrix
    # nan-aware reductions copy the matrix: use them only when something is missing
    has_nan = bool(np.isnan(matrix).any())
    mean, std = (np.nanmean, np.nanstd) if has_nan else (np.mean, np.std)
    centred: npt.NDArray[np.float64] = matrix - mean(matrix, axis=0)
    if per_feature:
        scale = std(matrix, axis=0)
        scale[~np.isfinite(scale) | (scale == 0)] = 1.0
    else:
        overall = float(std(matrix))
        scale = np.asarray(overall if overall > 0 else 1.0)
    centred /= scale
    if has_nan:
        np.nan_to_num(centred, nan=0.0, copy=False)
    return centred


@dataclass(frozen=True)
class NearPairs:
    """Pairs of rows within ``radius`` of each other."""

    left: IntArray
    """Row of the first member of each pair."""
    right: IntArray
    """Row of the second member (``left < right``)."""
    distance: npt.NDArray[np.float64]
    """Their Euclidean distance, in the units of the matrix searched."""


def _pairs_within_runs(order: IntArray, starts: IntArray, sizes: IntArray) -> IntArray:
    """All index pairs inside each run of ``order``, vectorised by run size."""
    chunks: list[IntArray] = []
    for size in np.unique(sizes):
        run_starts = starts[sizes == size]
        i, j = np.triu_indices(int(size), k=1)
        a = order[run_starts[:, None] + i[None, :]].ravel()
        b = order[run_starts[:, None] + j[None, :]].ravel()
        chunks.append(np.stack([a, b], axis=1))
    return np.concatenate(chunks) if chunks else np.empty((0, 2), dtype=np.int64)


def _window_pairs(members: IntArray, projection: npt.NDArray[np.float32]) -> IntArray:
    """Pairs of neighbours along one projection, for buckets too large to compare fully."""
    ranked = members[np.argsort(projection[members], kind="stable")]
    pairs = [np.stack([ranked[:-k], ranked[k:]], axis=1) for k in range(1, _MAX_BUCKET)
             if k < len(ranked)]
    return np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)


def near_pairs(
    matrix: npt.NDArray[np.float64],
    radius: float,
    *,
    tables: int = 8,
    bits: int = 8,
    seed: int = 0,
) -> NearPairs:
    """Pairs of distinct rows of ``matrix`` at Euclidean distance at most ``radius``.

    A pair at distance ``radius`` is found with probability about 0.99 (bucket width
    ``8 * radius``: each projection keeps it together with probability ~0.9, a table of 8
    projections with ~0.43, one of 8 tables with ~0.99). Exact duplicate rows always collide,
    so collapse them first when there are many.
    """
    n, d = matrix.shape
    if n < 2 or radius <= 0:
        empty = np.empty(0, dtype=np.int64)
        return NearPairs(empty, empty, np.empty(0))
    rng = np.random.default_rng(seed)
    width = 8.0 * radius
    # One matrix product for every table; float32 is plenty to bucket, distances are
    # verified in float64 below.
    directions = rng.standard_normal((d, tables * bits)).astype(np.float32)
    projected = matrix.astype(np.float32) @ directions
    projected += rng.uniform(0, width, tables * bits).astype(np.float32)
    mixers = rng.integers(1, 2**63, bits, dtype=np.uint64) | np.uint64(1)
    candidates: list[IntArray] = []
    for t in range(tables):
        block = projected[:, t * bits : (t + 1) * bits]
        cells = np.floor(block / np.float32(width)).astype(np.int64).view(np.uint64)
        keys = (cells * mixers).sum(axis=1, dtype=np.uint64)  # wraps: a multiplicative hash
        order = np.argsort(keys).astype(np.int64)
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]).astype(np.int64)
        sizes = np.diff(np.r_[starts, n]).astype(np.int64)
        small = (sizes > 1) & (sizes <= _MAX_BUCKET)
        candidates.append(_pairs_within_runs(order, starts[small], sizes[small]))
        for start, size in zip(starts[sizes > _MAX_BUCKET], sizes[sizes > _MAX_BUCKET],
                               strict=True):
            candidates.append(_window_pairs(order[start : start + size], block[:, 0]))
    pairs = np.concatenate(candidates)
    if len(pairs) == 0:
        empty = np.empty(0, dtype=np.int64)
        return NearPairs(empty, empty, np.empty(0))
    pairs.sort(axis=1)
    pairs = np.unique(pairs, axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    distance = np.empty(len(pairs))
    step = 200_000
    for s in range(0, len(pairs), step):
        chunk = pairs[s : s + step]
        distance[s : s + step] = np.linalg.norm(matrix[chunk[:, 0]] - matrix[chunk[:, 1]], axis=1)
    keep = distance <= radius
    return NearPairs(pairs[keep, 0], pairs[keep, 1], distance[keep])
