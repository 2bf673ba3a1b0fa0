"""Quality checks on generated data with planted problems: each finding is asserted exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bastion.data.check import check_dataset
from bastion.data.interface import DataError, Dataset, DatasetKind
from bastion.data.profile import profile_dataset
from bastion.data.schema import DataSchema
from bastion.findings import Finding, Principle, Severity


def _tabular(frame: pd.DataFrame, labels: list[object] | np.ndarray | None = None) -> Dataset:
    return Dataset(source="mem.csv", kind=DatasetKind.TABULAR, frame=frame,
                   labels=None if labels is None else np.asarray(labels), label_name="label")


def _rules(findings: list[Finding]) -> dict[str, Finding]:
    return {f.rule: f for f in findings}


def _clean(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.standard_normal((n, 6)), columns=[f"c{i}" for i in range(6)])
    return frame, rng.integers(0, 2, n)


def test_clean_data_has_no_findings() -> None:
    frame, y = _clean()
    assert check_dataset(_tabular(frame, y)) == []


def test_planted_exact_and_near_duplicates() -> None:
    frame, y = _clean()
    frame.iloc[10] = frame.iloc[3]
    frame.iloc[11] = frame.iloc[3]
    y[[3, 10, 11]] = 1
    frame.iloc[50] = frame.iloc[40] + 1e-4
    frame.iloc[51] = frame.iloc[41] - 2e-4
    found = _rules(check_dataset(_tabular(frame, y)))
    exact = found["data.duplicates.exact"]
    assert exact.evidence["duplicates"] == 2
    assert exact.evidence["groups"] == [[3, 10, 11]]
    near = found["data.duplicates.near"]
    assert sorted(map(sorted, near.evidence["pairs"])) == [[40, 50], [41, 51]]
    assert near.principle is Principle.P2_6
    assert "data.consistency.label_conflict" not in found


def test_identical_samples_with_different_labels() -> None:
    frame, y = _clean()
    frame.iloc[7] = frame.iloc[2]
    y[2], y[7] = 0, 1
    finding = _rules(check_dataset(_tabular(frame, y)))["data.consistency.label_conflict"]
    assert finding.severity is Severity.HIGH and finding.principle is Principle.P2_2
    assert finding.evidence["groups"] == [[2, 7]]


def test_completeness_severity_scales_with_missing_share() -> None:
    frame, y = _clean(n=100)
    frame.loc[:1, "c0"] = np.nan
    frame.loc[:59, "c1"] = np.nan
    found = [f for f in check_dataset(_tabular(frame, y)) if f.rule == "data.completeness.missing"]
    by_column = {f.evidence["column"]: f for f in found}
    assert by_column["c0"].severity is Severity.LOW and by_column["c0"].evidence["missing"] == 2
    assert by_column["c1"].severity is Severity.HIGH


def test_balance_and_single_class() -> None:
    frame, _ = _clean(n=220)
    labels = ["a"] * 200 + ["b"] * 20
    finding = _rules(check_dataset(_tabular(frame, labels)))["data.balance.imbalance"]
    assert finding.evidence["ratio"] == pytest.approx(10.0)
    assert finding.severity is Severity.MEDIUM
    only = _rules(check_dataset(_tabular(frame, ["a"] * 220)))
    assert only["data.balance.single_class"].severity is Severity.HIGH


def test_schema_validity(tmp_path: Path) -> None:
    schema_file = tmp_path / "schema.yaml"
    schema_file.write_text(
        "columns:\n"
        "  age: {type: int, min: 0, max: 120, nullable: false}\n"
        "  country: {type: str, allowed: [UK, FR]}\n"
        "  income: {type: float}\n"
        "labels: ['yes', 'no']\n"
        "additional_columns: false\n"
    )
    schema = DataSchema.from_file(schema_file)
    frame = pd.DataFrame({
        "age": [30, 150, -1, None],
        "country": ["UK", "FR", "DE", "UK"],
        "extra": [1, 2, 3, 4],
    })
    found = _rules(check_dataset(_tabular(frame, ["yes", "no", "maybe", "yes"]), schema=schema))
    assert found["data.schema.null"].evidence["missing"] == 1
    assert found["data.schema.range"].evidence["rows"] == [1, 2]
    assert found["data.schema.allowed"].evidence["values"] == ["DE"]
    assert found["data.schema.column_missing"].evidence["column"] == "income"
    assert found["data.schema.column_extra"].evidence["columns"] == ["extra"]
    assert found["data.schema.label"].evidence["rows"] == [2]
    assert "data.schema.type" not in found  # ints with a gap become floats: still integers


def test_schema_type_mismatch_and_bad_schema(tmp_path: Path) -> None:
    schema = DataSchema.model_validate({"columns": {"n": {"type": "int"}}})
    frame = pd.DataFrame({"n": ["one", "two"]})
    found = _rules(check_dataset(_tabular(frame), schema=schema))
    assert found["data.schema.type"].evidence == {"column": "n", "expected": "int",
                                                  "found": "str"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns:\n  n: {type: integer}\n")
    with pytest.raises(DataError, match=r"columns\.n\.type"):
        DataSchema.from_file(bad)


def test_mixed_types_and_constant_columns() -> None:
    frame = pd.DataFrame({"v": ["1", "2", "3", "x"], "k": [5, 5, 5, 5], "z": [1, 2, 3, 4]})
    found = _rules(check_dataset(_tabular(frame)))
    assert found["data.consistency.mixed_types"].evidence["examples"] == ["x"]
    assert found["data.consistency.constant"].evidence["columns"] == ["k"]


def test_timeliness() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    frame = pd.DataFrame({
        "x": [1.0, 2.0, 3.0, 4.0],
        "when": ["2024-01-01", "2024-02-01", "not a date", "2027-01-01"],
    })
    found = _rules(check_dataset(_tabular(frame), timestamp="when", max_age_days=30, now=now))
    assert found["data.timeliness.unparseable"].evidence["count"] == 1
    assert found["data.timeliness.future"].evidence["rows"] == [3]
    assert "data.timeliness.stale" not in found  # the future record is the newest
    old = frame.drop(index=3)
    stale = _rules(check_dataset(_tabular(old), timestamp="when", max_age_days=30, now=now))
    assert stale["data.timeliness.stale"].evidence["age_days"] == pytest.approx(1005, abs=1)


def test_profile_counts_and_ranges() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": ["x", "y", "x"]})
    prof = profile_dataset(_tabular(frame, ["p", "q", "p"])).to_dict()
    assert prof["rows"] == 3 and prof["features"] == 2
    assert prof["label_counts"] == {"p": 2, "q": 1}
    a, b = prof["columns"]
    assert (a["missing"], a["min"], a["max"], a["mean"]) == (1, 1.0, 3.0, 2.0)
    assert b["distinct"] == 2


def test_profile_fills_a_data_card() -> None:
    from bastion.catalog.cards import DatasetMetrics

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    metrics = profile_dataset(_tabular(frame, ["p", "q", "p"])).card_metrics()
    assert DatasetMetrics.model_validate(metrics).label_counts == {"p": 2, "q": 1}


def test_image_profile_channel_means() -> None:
    pixels = np.zeros((2, 2, 2, 3), dtype=np.float32)
    pixels[..., 0] = 1.0
    pixels[1, ..., 2] = 0.5
    frame = pd.DataFrame({"file": ["a", "b"], "width": [2, 4], "height": [2, 4],
                          "mode": ["RGB", "RGB"]})
    ds = Dataset(source="imgs", kind=DatasetKind.IMAGE, frame=frame,
                 labels=np.array(["a", "b"]), label_name="label", pixels=pixels)
    image = profile_dataset(ds).to_dict()["image"]
    assert image["channel_means"] == pytest.approx([1.0, 0.0, 0.25])
    assert image["sizes"] == {"2x2": 1, "4x4": 1}
    assert _rules(check_dataset(ds))["data.consistency.image_sizes"].severity is Severity.LOW
