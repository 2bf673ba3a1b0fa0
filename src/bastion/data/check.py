"""Dataset quality checks (NCSC 2.6: completeness, timeliness, validity, consistency, integrity,
balance) and verification against a declared schema (NCSC 2.2).

    >>> from bastion.data import load_dataset, check_dataset
    >>> findings = check_dataset(load_dataset("train.csv"))      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from bastion import atlas
from bastion.data._dedup import exact_groups, near_pairs, row_hashes, standardise
from bastion.data.interface import Dataset, DatasetKind
from bastion.data.schema import ColumnRule, DataSchema
from bastion.findings import Finding, Principle, Severity

__all__ = ["DEFAULT_NEAR_TOLERANCE", "check_dataset", "dataset_finding", "duplicate_keys"]

DEFAULT_NEAR_TOLERANCE = 0.01
"""Near duplicates differ by at most this root-mean-square per feature, in standard
deviations (pixels: of the overall pixel spread)."""
_POISON = (atlas.POISON_TRAINING_DATA,)
_EXAMPLES = 10


def dataset_finding(
    dataset: Dataset,
    rule: str,
    severity: Severity,
    title: str,
    *,
    principle: Principle = Principle.P2_6,
    detail: str = "",
    remediation: str = "",
    techniques: Sequence[str] = (),
    **evidence: Any,
) -> Finding:
    """A finding about ``dataset``, located at its source."""
    return Finding(rule=rule, severity=severity, title=title, principle=principle, detail=detail,
                   location=dataset.location, techniques=tuple(techniques),
                   remediation=remediation, evidence=evidence)


def _by_fraction(fraction: float, medium: float, high: float | None = None) -> Severity:
    if high is not None and fraction >= high:
        return Severity.HIGH
    return Severity.MEDIUM if fraction >= medium else Severity.LOW


def duplicate_keys(dataset: Dataset) -> npt.NDArray[np.uint64]:
    """Row hashes over what a sample *is*: the features (pixels for image data)."""
    if dataset.pixels is not None:
        return row_hashes(pd.DataFrame(dataset.matrix))
    return row_hashes(dataset.frame)


def _completeness(ds: Dataset) -> list[Finding]:
    missing = ds.frame.isna().sum()
    out = []
    for name, count in missing[missing > 0].items():
        fraction = int(count) / len(ds)
        out.append(dataset_finding(
            ds, "data.completeness.missing", _by_fraction(fraction, 0.05, 0.5),
            f"column {name!r} is missing {int(count)} value(s) ({fraction:.1%})",
            detail="missing values bias what a model learns and hide where data came from",
            remediation="find why values are missing; impute or drop with a recorded reason",
            column=str(name), missing=int(count), fraction=fraction))
    return out


def _type_ok(col: pd.Series, kind: str) -> bool:
    values = col.dropna()
    if kind == "int":
        if pd.api.types.is_integer_dtype(col):
            return True
        return bool(pd.api.types.is_float_dtype(col) and (values == np.round(values)).all())
    if kind in {"float", "number"}:
        return bool(pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col))
    if kind == "bool":
        return bool(pd.api.types.is_bool_dtype(col))
    if kind == "datetime":
        if pd.api.types.is_datetime64_any_dtype(col):
            return True
        return bool(pd.to_datetime(values, errors="coerce", utc=True).notna().all())
    return bool(pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col))


def _column_validity(ds: Dataset, name: str, rule: ColumnRule) -> list[Finding]:
    col = ds.frame[name]
    out = []
    nulls = int(col.isna().sum())
    if not rule.nullable and nulls:
        out.append(dataset_finding(
            ds, "data.schema.null", Severity.HIGH,
            f"column {name!r} must not be empty but has {nulls} missing value(s)",
            principle=Principle.P2_2, remediation="fill or drop the rows; fix the source",
            column=name, missing=nulls))
    if rule.type is not None and not _type_ok(col, rule.type):
        out.append(dataset_finding(
            ds, "data.schema.type", Severity.HIGH,
            f"column {name!r} should hold {rule.type} values but holds {col.dtype}",
            principle=Principle.P2_2,
            remediation="fix the column's values or the declared type",
            column=name, expected=rule.type, found=str(col.dtype)))
        return out
    if (rule.min is not None or rule.max is not None) and pd.api.types.is_numeric_dtype(col):
        values = col.to_numpy(np.float64)
        low = values < rule.min if rule.min is not None else np.zeros(len(values), bool)
        high = values > rule.max if rule.max is not None else np.zeros(len(values), bool)
        bad = np.flatnonzero(low | high)
        if len(bad):
            out.append(dataset_finding(
                ds, "data.schema.range", Severity.MEDIUM,
                f"column {name!r} has {len(bad)} value(s) outside [{rule.min}, {rule.max}]",
                principle=Principle.P2_2,
                detail="out-of-range values are errors, corruption or tampering",
                remediation="inspect the listed rows; correct or remove them",
                column=name, count=len(bad), rows=bad[:_EXAMPLES].tolist()))
    if rule.allowed is not None:
        allowed = {str(v) for v in rule.allowed}
        present = col.dropna().astype(str)
        bad_mask = ~present.isin(allowed)
        if bad_mask.any():
            values = sorted(present[bad_mask].unique().tolist())
            out.append(dataset_finding(
                ds, "data.schema.allowed", Severity.MEDIUM,
                f"column {name!r} has {int(bad_mask.sum())} value(s) outside the allowed set",
                principle=Principle.P2_2, remediation="correct the values or the schema",
                column=name, count=int(bad_mask.sum()), values=values[:_EXAMPLES]))
    return out


def _validity(ds: Dataset, schema: DataSchema) -> list[Finding]:
    out = []
    present = {str(c) for c in ds.frame.columns}
    for name, rule in schema.columns.items():
        if name not in present:
            out.append(dataset_finding(
                ds, "data.schema.column_missing", Severity.HIGH,
                f"declared column {name!r} is absent", principle=Principle.P2_2,
                remediation="add the column or remove it from the schema", column=name))
        else:
            out.extend(_column_validity(ds, name, rule))
    if not schema.additional_columns:
        extra = sorted(present - set(schema.columns) - {schema.timestamp or ""})
        if extra:
            out.append(dataset_finding(
                ds, "data.schema.column_extra", Severity.MEDIUM,
                f"{len(extra)} column(s) not in the schema: {', '.join(extra[:_EXAMPLES])}",
                principle=Principle.P2_2,
                detail="unexpected columns can carry data that should not be there",
                remediation="declare them or drop them", columns=extra))
    if schema.labels is not None and ds.labels is not None:
        allowed = {str(v) for v in schema.labels}
        labels = pd.Series(ds.labels.astype(str))
        bad = ~labels.isin(allowed)
        if bad.any():
            out.append(dataset_finding(
                ds, "data.schema.label", Severity.HIGH,
                f"{int(bad.sum())} label(s) outside the allowed labels",
                principle=Principle.P2_2, remediation="fix the labels or the allowed list",
                values=sorted(labels[bad].unique().tolist())[:_EXAMPLES],
                rows=np.flatnonzero(bad.to_numpy())[:_EXAMPLES].tolist()))
    return out


def _consistency(ds: Dataset, hashes: npt.NDArray[np.uint64],
                 groups: list[npt.NDArray[np.int64]]) -> list[Finding]:
    out = []
    if ds.labels is not None and groups:
        labels = ds.labels.astype(str)
        conflicts = [g for g in groups if len(set(labels[g])) > 1]
        if conflicts:
            rows = sum(len(g) for g in conflicts)
            out.append(dataset_finding(
                ds, "data.consistency.label_conflict", Severity.HIGH,
                f"{len(conflicts)} group(s) of identical samples carry different labels "
                f"({rows} rows)",
                principle=Principle.P2_2, techniques=_POISON,
                detail="the same input with two labels is a labelling error or label flipping",
                remediation="review the groups; keep one correct label",
                groups=[g[:_EXAMPLES].tolist() for g in conflicts[:_EXAMPLES]]))
    for name in ds.frame.select_dtypes(include=["object", "string"]).columns:
        col = ds.frame[name].dropna()
        if col.empty:
            continue
        numeric = pd.to_numeric(col, errors="coerce").notna()
        if 0.5 <= numeric.mean() < 1.0:
            text = col[~numeric]
            out.append(dataset_finding(
                ds, "data.consistency.mixed_types", Severity.MEDIUM,
                f"column {name!r} is mostly numbers but has {len(text)} text value(s)",
                remediation="fix the text values or declare the column as text",
                column=str(name), examples=sorted(text.astype(str).unique().tolist())[:5]))
    constant = _constant_columns(ds.frame) if len(ds) > 1 else []
    if constant:
        out.append(dataset_finding(
            ds, "data.consistency.constant", Severity.LOW,
            f"{len(constant)} column(s) hold a single value: {', '.join(constant[:5])}",
            remediation="drop columns that carry no information", columns=constant))
    return out


def _constant_columns(frame: pd.DataFrame) -> list[str]:
    """Columns with one value (numbers: min equals max, no gaps; others: one distinct)."""
    numeric = frame.select_dtypes(include="number")
    values = numeric.to_numpy(np.float64)
    same = (values.min(axis=0) == values.max(axis=0)) if len(values) else np.zeros(0, bool)
    out = [str(c) for c, s in zip(numeric.columns, same, strict=True) if s]
    rest = frame.drop(columns=numeric.columns)
    out += [str(c) for c, k in rest.nunique(dropna=False).items() if k <= 1]
    return out


def _duplicates(ds: Dataset, hashes: npt.NDArray[np.uint64],
                groups: list[npt.NDArray[np.int64]], tolerance: float) -> list[Finding]:
    out = []
    if groups:
        extra = sum(len(g) - 1 for g in groups)
        fraction = extra / len(ds)
        out.append(dataset_finding(
            ds, "data.duplicates.exact", _by_fraction(fraction, 0.1),
            f"{extra} duplicate row(s) in {len(groups)} group(s) ({fraction:.1%})",
            detail="duplicates over-weight some samples and leak between splits",
            remediation="deduplicate before splitting into train / validation / test",
            duplicates=extra, groups=[g[:_EXAMPLES].tolist() for g in groups[:_EXAMPLES]]))
    _, first = np.unique(hashes, return_index=True)
    distinct = np.sort(first)
    matrix = ds.matrix[distinct]
    if matrix.shape[1] == 0 or tolerance <= 0:
        return out
    scaled = standardise(matrix, per_feature=ds.pixels is None)
    pairs = near_pairs(scaled, tolerance * np.sqrt(matrix.shape[1]))
    if len(pairs.left):
        rows = np.unique(np.r_[pairs.left, pairs.right])
        fraction = len(rows) / len(ds)
        out.append(dataset_finding(
            ds, "data.duplicates.near", _by_fraction(fraction, 0.1),
            f"{len(pairs.left)} near-duplicate pair(s) involving {len(rows)} row(s)",
            detail=f"rows differing by at most {tolerance} standard deviations per feature",
            remediation="check whether they are the same sample re-recorded; keep one",
            pairs=[[int(distinct[a]), int(distinct[b])]
                   for a, b in zip(pairs.left[:_EXAMPLES], pairs.right[:_EXAMPLES],
                                   strict=True)],
            tolerance=tolerance))
    return out


def _balance(ds: Dataset) -> list[Finding]:
    if ds.labels is None:
        return []
    counts = pd.Series(ds.labels.astype(str)).value_counts()
    if len(counts) < 2:
        return [dataset_finding(ds, "data.balance.single_class", Severity.HIGH,
                                f"every sample has the same label {counts.index[0]!r}",
                                remediation="a classifier needs samples of every class")]
    ratio = float(counts.iloc[0] / counts.iloc[-1])
    if ratio < 3:
        return []
    return [dataset_finding(
        ds, "data.balance.imbalance", Severity.MEDIUM if ratio >= 10 else Severity.LOW,
        f"classes are imbalanced: {counts.index[0]!r} has {ratio:.1f}× the samples of "
        f"{counts.index[-1]!r}",
        detail="rare classes are learned poorly and are easy to overwhelm by poisoning",
        remediation="collect more of the rare classes, re-weight, or stratify the metrics",
        ratio=ratio, counts={str(k): int(v) for k, v in counts.items()})]


def _timeliness(ds: Dataset, column: str, max_age_days: float | None,
                now: datetime) -> list[Finding]:
    if column not in ds.frame.columns:
        return [dataset_finding(ds, "data.timeliness.column_missing", Severity.HIGH,
                                f"timestamp column {column!r} is absent",
                                remediation="name an existing column as the timestamp column")]
    raw = ds.frame[column]
    if pd.api.types.is_datetime64_any_dtype(raw):
        stamps = raw.dt.tz_localize(UTC) if raw.dt.tz is None else raw.dt.tz_convert(UTC)
    else:
        stamps = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    out = []
    unparsed = int((raw.notna() & stamps.isna()).sum())
    if unparsed:
        out.append(dataset_finding(
            ds, "data.timeliness.unparseable", Severity.MEDIUM,
            f"{unparsed} value(s) in {column!r} are not dates",
            remediation="use ISO 8601 timestamps", column=column, count=unparsed))
    moment = pd.Timestamp(now)
    future = np.flatnonzero((stamps > moment).to_numpy())
    if len(future):
        out.append(dataset_finding(
            ds, "data.timeliness.future", Severity.MEDIUM,
            f"{len(future)} record(s) are dated in the future",
            detail="future dates point to clock errors or fabricated records",
            remediation="correct the timestamps or find where the records came from",
            column=column, rows=future[:_EXAMPLES].tolist()))
    newest = stamps.max()
    if max_age_days is not None and not pd.isna(newest):
        age = (moment - newest).total_seconds() / 86400
        if age > max_age_days:
            out.append(dataset_finding(
                ds, "data.timeliness.stale", Severity.MEDIUM,
                f"the newest record is {age:.0f} days old (limit {max_age_days:g})",
                detail="stale data no longer describes what the model will meet",
                remediation="refresh the dataset", column=column, newest=str(newest),
                age_days=age))
    return out


def check_dataset(
    dataset: Dataset,
    *,
    schema: DataSchema | None = None,
    timestamp: str | None = None,
    max_age_days: float | None = None,
    near_tolerance: float = DEFAULT_NEAR_TOLERANCE,
    now: datetime | None = None,
) -> list[Finding]:
    """Every quality check on ``dataset``; an empty list means none found anything.

    Checks: 1. completeness (missing values per column); 2. validity against ``schema``;
    3. consistency (identical samples with different labels, text in numeric columns,
    constant columns); 4. exact and near duplicates; 5. class balance; 6. timeliness when a
    timestamp column is named (here or in the schema).
    """
    timestamp = timestamp or (schema.timestamp if schema else None)
    max_age_days = max_age_days if max_age_days is not None else (
        schema.max_age_days if schema else None)
    hashes = duplicate_keys(dataset)
    groups = exact_groups(hashes)
    findings = _completeness(dataset)                                   # 1
    if schema is not None:
        findings += _validity(dataset, schema)                          # 2
    findings += _consistency(dataset, hashes, groups)                   # 3
    findings += _duplicates(dataset, hashes, groups, near_tolerance)    # 4
    findings += _balance(dataset)                                       # 5
    if timestamp is not None:                                           # 6
        findings += _timeliness(dataset, timestamp, max_age_days, now or datetime.now(UTC))
    if dataset.kind is DatasetKind.IMAGE and dataset.pixels is not None:
        sizes = dataset.frame["width"].astype(str) + "x" + dataset.frame["height"].astype(str)
        if sizes.nunique() > 1:
            findings.append(dataset_finding(
                dataset, "data.consistency.image_sizes", Severity.LOW,
                f"images come in {sizes.nunique()} sizes; they were resized to the most common",
                remediation="resize deliberately in your pipeline and record how",
                sizes={str(k): int(v) for k, v in sizes.value_counts().items()}))
    return findings
